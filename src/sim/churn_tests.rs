//! Entity churn on one connected call (issue 12): a closed consumer or producer frees
//! its SRTP state, so a long-lived transport never reaches the context's SSRC cap; and
//! a transport that does reach it counts every copy it cannot protect.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use sfu_control::params::{
    self, RtcpParameters, RtpCodecParameters, RtpEncodingParameters, RtpParameters,
};
use sfu_control::requests::{
    ConsumerClose, ProducerClose, ProducerGetStats, TransportConsume, TransportGetStats,
    TransportProduce, WorkerGetStats,
};
use sfu_control::responses::WorkerStats;
use str0m::media::MediaKind;

use super::call::AUDIO_SSRC;
use super::*;
use crate::demux::PacketClass;
use crate::srtp::MAX_SSRCS;

fn one_subscriber(seed: u64) -> Call {
    Call::new(
        seed,
        CallConfig {
            subscribers: 1,
            ..CallConfig::default()
        },
    )
}

fn worker_stats(call: &mut Call) -> WorkerStats {
    call.sim.ok(&WorkerGetStats::default())
}

/// The newest index `peer` received on `stream`.
fn newest(call: &Call, peer: &str, stream: &str) -> Option<u32> {
    call.sim.trace().received(peer, stream).last().copied()
}

#[test]
fn consumer_churn_past_the_srtp_cap_keeps_media_flowing() {
    let mut call = one_subscriber(91);
    let sub = call.sub(0).clone();
    let baseline = call.sim.transport_state(&sub.transport);
    let producer = call.audio_producer.clone();
    let mut seen = HashSet::new();
    for i in 0..MAX_SSRCS + 200 {
        let mid = format!("c{i}");
        let (id, ssrc) = call.consume(sub.peer, &sub.transport, &producer, &mid, &mid);
        assert!(seen.insert(ssrc), "consumer {i} got a used SSRC {ssrc:#x}");
        let index = call.send_audio();
        call.sim.run_for(Duration::from_millis(25));
        // The setup's audio consumer and the new one.
        assert_eq!(newest(&call, "sub1", "a"), Some(index), "consumer {i}");
        assert_eq!(newest(&call, "sub1", &mid), Some(index), "consumer {i}");
        call.sim.ok(&ConsumerClose::new(id.as_str()));
        // The subscriber forgets the stream too.
        call.sim.peer(sub.peer).forget_stream(&mid, ssrc);
    }
    let stats = worker_stats(&mut call);
    assert_eq!(stats.dropped_total, 0, "{stats:?}");
    let end = call.sim.transport_state(&sub.transport);
    assert_eq!(end.consumers, baseline.consumers);
    assert_eq!(end.consumers_by_ssrc, baseline.consumers_by_ssrc);
    // Only the setup's audio consumer has sent media: its SSRC is the one left.
    assert_eq!(end.srtp_out.map(|c| c.0), Some(1), "{end:?}");
}

#[test]
fn a_subscriber_at_the_srtp_cap_counts_every_copy_it_cannot_protect() {
    let mut call = one_subscriber(92);
    let sub = call.sub(0).clone();
    let caps = call.capabilities(sub.peer);
    let producer = call.audio_producer.clone();
    let extra = MAX_SSRCS + 10;
    for _ in 0..extra {
        call.sim.ok(&TransportConsume {
            transport_id: sub.transport.as_str().into(),
            producer_id: producer.as_str().into(),
            rtp_capabilities: caps.clone(),
            paused: false,
            mid: None,
            preferred_layers: None,
            follow: false,
            app_data: Value::Null,
        });
    }
    call.send_audio();
    call.sim.run_for(Duration::from_millis(50));
    // 1 + extra audio consumers; the subscriber's outbound context holds MAX_SSRCS.
    let refused = (1 + extra - MAX_SSRCS) as u64;
    let copies = call
        .sim
        .trace()
        .delivered("sfu", "sub1", PacketClass::Rtp)
        .len();
    assert_eq!(copies, MAX_SSRCS);
    let stats = worker_stats(&mut call);
    assert_eq!(stats.dropped.srtp_ssrc_limit, refused, "{stats:?}");
    assert_eq!(stats.dropped_total, refused, "{stats:?}");
    let t = call.sim.ok(&TransportGetStats::new(sub.transport.as_str()));
    assert_eq!(t.packets_dropped, refused, "{t:?}");
}

#[test]
fn producer_churn_past_the_srtp_cap_keeps_the_publisher_heard() {
    let mut call = one_subscriber(93);
    let (publisher, transport, opus) =
        (call.publisher, call.publisher_transport.clone(), call.opus);
    for i in 0..MAX_SSRCS as u32 + 50 {
        let ssrc = 0x5000_0000 + i;
        let mid = format!("m{i}");
        call.sim
            .peer(publisher)
            .send_stream(&mid, MediaKind::Audio, ssrc, None);
        let p = call.sim.ok(&TransportProduce {
            transport_id: transport.as_str().into(),
            kind: params::MediaKind::Audio,
            rtp_parameters: RtpParameters {
                mid: Some(mid.clone()),
                codecs: vec![RtpCodecParameters {
                    mime_type: "audio/opus".into(),
                    payload_type: opus,
                    clock_rate: 48000,
                    channels: Some(2),
                    parameters: Default::default(),
                    rtcp_feedback: vec![],
                }],
                header_extensions: vec![],
                encodings: vec![RtpEncodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                }],
                rtcp: RtcpParameters {
                    cname: Some("pub".into()),
                    ..Default::default()
                },
            },
            paused: false,
            app_data: Value::Null,
        });
        let id = p.producer_id.0;
        let now = call.sim.now();
        call.sim
            .peer(publisher)
            .write(now, ssrc, opus, 1, 0, indexed(vec![0xfc; 40], i));
        call.sim.run_for(Duration::from_millis(20));
        let stats = call.sim.ok(&ProducerGetStats::new(id.as_str()));
        assert_eq!(stats.packets_received, 1, "producer {i}: {stats:?}");
        call.sim.ok(&ProducerClose::new(id.as_str()));
        // The publisher stops the stream too.
        call.sim.peer(publisher).forget_send_stream(&mid, ssrc);
    }
    let stats = worker_stats(&mut call);
    assert_eq!(stats.dropped_total, 0, "{stats:?}");
    let state = call.sim.transport_state(&transport);
    assert_eq!(state.srtp_in.map(|c| c.0), Some(0), "{state:?}");
}

#[test]
fn reports_for_many_consumers_are_split_into_mtu_sized_packets() {
    let mut call = one_subscriber(94);
    let sub = call.sub(0).clone();
    let producer = call.audio_producer.clone();
    let consumers = 100;
    let mids: Vec<String> = (0..consumers).map(|i| format!("r{i}")).collect();
    for mid in &mids {
        call.consume(sub.peer, &sub.transport, &producer, mid, mid);
    }
    call.send_audio();
    call.sim.run_for(Duration::from_millis(1500));
    let rtcp = call.sim.trace().delivered("sfu", "sub1", PacketClass::Rtcp);
    assert!(
        rtcp.iter().all(|(_, len)| *len <= 1200 + 20),
        "an RTCP datagram over the MTU: {rtcp:?}"
    );
    let first_round = rtcp.first().map(|(at, _)| *at);
    let in_first_round = rtcp
        .iter()
        .filter(|(at, _)| Some(*at) == first_round)
        .count();
    assert!(in_first_round > 1, "{rtcp:?}");
    // Every consumer that sent (the setup's audio one and the new ones) is reported.
    let reported: HashSet<&str> = call
        .sim
        .trace()
        .records()
        .filter_map(|r| match r {
            Record::SenderReport { peer, mid } if peer == "sub1" => Some(mid.as_str()),
            _ => None,
        })
        .collect();
    for mid in mids.iter().map(String::as_str).chain(["a"]) {
        assert!(reported.contains(mid), "no sender report for {mid}");
    }
    let stats = worker_stats(&mut call);
    assert_eq!(stats.dropped_total, 0, "{stats:?}");
}

#[test]
fn a_stream_without_a_producer_holds_no_inbound_srtp_state() {
    let mut call = one_subscriber(95);
    let (publisher, transport, opus) =
        (call.publisher, call.publisher_transport.clone(), call.opus);
    let audio = call.audio_producer.clone();
    call.sim.ok(&ProducerClose::new(audio.as_str()));
    // The publisher goes on sending on the closed producer's SSRC and on SSRCs nobody
    // produced, far more of them than the inbound context has room for.
    let n = MAX_SSRCS as u32 + 50;
    for i in 0..n {
        let now = call.sim.now();
        if i % 2 == 0 {
            call.sim.peer(publisher).write(
                now,
                AUDIO_SSRC,
                opus,
                u64::from(i),
                0,
                indexed(vec![0xfc; 40], i),
            );
        } else {
            let (ssrc, mid) = (0x6000_0000 + i, format!("x{i}"));
            let p = call.sim.peer(publisher);
            p.send_stream(&mid, MediaKind::Audio, ssrc, None);
            p.write(now, ssrc, opus, 1, 0, indexed(vec![0xfc; 40], i));
            call.sim.run_for(Duration::from_millis(1));
            call.sim.peer(publisher).forget_send_stream(&mid, ssrc);
        }
        call.sim.run_for(Duration::from_millis(10));
    }
    let stats = worker_stats(&mut call);
    assert_eq!(stats.dropped.unknown_ssrc, u64::from(n), "{stats:?}");
    assert_eq!(stats.dropped_total, u64::from(n), "{stats:?}");
    let state = call.sim.transport_state(&transport);
    assert_eq!(
        state.srtp_in.map(|c| c.0),
        Some(0),
        "only producers' SSRCs keep state"
    );
    // The remaining (video) producer is still heard.
    call.send_video();
    call.sim.run_for(Duration::from_millis(50));
    assert_eq!(call.sim.trace().received("sub1", "v"), [0]);
    let stats = worker_stats(&mut call);
    assert_eq!(stats.dropped_total, u64::from(n), "{stats:?}");
    let state = call.sim.transport_state(&transport);
    assert_eq!(state.srtp_in.map(|c| c.0), Some(1));
}
