//! Entity churn on one connected call (issue 12): a closed consumer or producer frees
//! its SRTP state, so a long-lived transport never reaches the context's SSRC cap; and
//! a transport that does reach it counts every copy it cannot protect.

use std::collections::HashSet;

use super::*;
use crate::ids::TransportId;
use crate::srtp::MAX_SSRCS;
use crate::stats::DropReason;
use crate::transport::WebRtcTransport;

fn transport(s: &Session, id: usize) -> &WebRtcTransport {
    let tk = s.core.transport_ids[&TransportId(s.ids[id].clone())];
    &s.core.transports[tk]
}

fn request(s: &mut Session, method: &str, target: String, data: Value) -> Value {
    let req = RequestFrame {
        id: 7,
        method: method.into(),
        target: Some(target),
        data,
    };
    let resp = s.core.handle_request(s.now, CONN, req);
    assert_eq!(resp.accepted, Some(true), "{method}: {:?}", resp.reason);
    drain(&mut s.core);
    resp.data.unwrap_or_default()
}

/// A new consumer of the audio producer on the subscriber transport: (id, SSRC).
fn consume_audio(s: &mut Session) -> (String, u32) {
    let data = json!({ "producerId": s.ids[ID_AUDIO_PRODUCER],
        "rtpCapabilities": subscriber_capabilities() });
    let target = s.ids[ID_TRANSPORT_B].clone();
    let c = request(s, "transport.consume", target, data);
    let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
    (c["consumerId"].as_str().unwrap().to_owned(), ssrc)
}

/// One audio packet from the publisher, received and fanned out; the oracle in
/// `flush` checks every copy decrypts with the subscriber's keys.
fn send_audio(s: &mut Session, seq: u16) {
    s.apply(Op::Media {
        stream: 1,
        seq,
        ts: u32::from(seq) * 960,
        flags: 0,
        payload: vec![1; 40],
    });
    s.deliver(None);
    s.flush();
}

#[test]
fn consumer_churn_past_the_srtp_cap_keeps_media_flowing() {
    let mut s = Session::new();
    let live_by_ssrc = transport(&s, ID_TRANSPORT_B).consumers_by_ssrc.len();
    let live = s.core.consumers.len();
    let mut seen = HashSet::new();
    for i in 0..MAX_SSRCS + 200 {
        let (id, ssrc) = consume_audio(&mut s);
        assert!(seen.insert(ssrc), "consumer {i} got a used SSRC {ssrc:#x}");
        let sent = s.core.rtp_out.packets;
        send_audio(&mut s, i as u16 + 1);
        // The setup's audio consumer and the new one.
        assert_eq!(s.core.rtp_out.packets, sent + 2, "consumer {i}");
        request(&mut s, "consumer.close", id, Value::Null);
        // The subscriber forgets the stream too (its context has the same cap).
        s.peers[1].rx.remove_ssrc(ssrc);
    }
    assert_eq!(s.core.drops().total(), 0, "{}", s.core.drops().to_json());
    assert_eq!(s.core.consumers.len(), live);
    let t = transport(&s, ID_TRANSPORT_B);
    assert_eq!(t.consumers_by_ssrc.len(), live_by_ssrc);
    assert_eq!(t.consumers.len(), live);
    // Only the setup's audio consumer has sent: its SSRC is the one left.
    let srtp = t.srtp_out.as_ref().unwrap();
    assert_eq!(srtp.ssrc_counts(), (1, 0));
}

#[test]
fn a_subscriber_at_the_srtp_cap_counts_every_copy_it_cannot_protect() {
    let mut s = Session::new();
    let extra = MAX_SSRCS + 10;
    for _ in 0..extra {
        consume_audio(&mut s);
    }
    send_audio(&mut s, 1);
    // 1 + extra audio consumers; the subscriber's outbound context holds MAX_SSRCS.
    let refused = (1 + extra - MAX_SSRCS) as u64;
    assert_eq!(s.core.rtp_out.packets, MAX_SSRCS as u64);
    assert_eq!(s.core.drops().get(DropReason::SrtpSsrcLimit), refused);
    assert_eq!(s.core.drops().total(), refused);
    assert_eq!(transport(&s, ID_TRANSPORT_B).drops, refused);
    let stats = s.core.worker_stats(s.now);
    assert_eq!(stats.dropped.srtp_ssrc_limit, refused);
}

#[test]
fn producer_churn_past_the_srtp_cap_keeps_the_publisher_heard() {
    let mut s = Session::new();
    for i in 0..MAX_SSRCS as u32 + 50 {
        let ssrc = 0x5000_0000 + i;
        let mut data = audio_produce();
        data["rtpParameters"]["encodings"][0]["ssrc"] = json!(ssrc);
        data["rtpParameters"]["mid"] = json!(format!("m{i}"));
        let target = s.ids[ID_TRANSPORT_A].clone();
        let p = request(&mut s, "transport.produce", target, data);
        let id = p["producerId"].as_str().unwrap().to_owned();
        let sealed = s.seal(0, false, media_packet(ssrc, OPUS_PT, 1, 0, 0, &[1; 40]));
        let from = s.peers[0].addr;
        s.queue(from, sealed);
        s.deliver(None);
        s.flush();
        let pk = s.core.producer_ids[&crate::ids::ProducerId(id.clone())];
        assert_eq!(s.core.producers[pk].traffic.packets, 1, "producer {i}");
        request(&mut s, "producer.close", id, Value::Null);
        // The publisher's own context has the same cap.
        s.peers[0].tx.remove_ssrc(ssrc);
    }
    assert_eq!(s.core.drops().total(), 0, "{}", s.core.drops().to_json());
    let srtp = transport(&s, ID_TRANSPORT_A).srtp_in.as_ref().unwrap();
    assert_eq!(srtp.ssrc_counts(), (0, 0));
}

#[test]
fn reports_for_many_consumers_are_split_into_mtu_sized_packets() {
    let mut s = Session::new();
    let consumers = 100;
    for _ in 0..consumers {
        consume_audio(&mut s);
    }
    send_audio(&mut s, 1);
    s.now += Duration::from_secs(2);
    let now = s.now;
    s.core.handle_timeout(now, &mut s.out);
    let mut senders = HashSet::new();
    let mut packets = 0;
    for (dest, d) in s.out.iter() {
        if dest != PEER_B || classify(d) != PacketClass::Rtcp {
            continue;
        }
        packets += 1;
        assert!(
            d.len() <= 1200 + 20,
            "an RTCP datagram of {} bytes",
            d.len()
        );
        let mut plain = d.to_vec();
        let n = s.peers[1].rx.unprotect_rtcp(&mut plain).unwrap();
        let mut feedback = Vec::new();
        rtcp::parse_compound(&plain[..n], &mut feedback).unwrap();
        for fb in feedback {
            if let rtcp::Feedback::SenderReport { ssrc, .. } = fb {
                assert!(senders.insert(ssrc), "two reports for {ssrc:#x}");
            }
        }
    }
    // Every consumer that sent (the setup's audio one and the new ones) is reported.
    assert_eq!(senders.len(), consumers + 1);
    assert!(packets > 1, "{packets}");
    s.flush();
    assert_eq!(s.core.drops().total(), 0);
}

#[test]
fn a_stream_without_a_producer_holds_no_inbound_srtp_state() {
    let mut s = Session::new();
    let target = s.ids[ID_AUDIO_PRODUCER].clone();
    request(&mut s, "producer.close", target, Value::Null);
    // The publisher goes on sending on the closed producer's SSRC and on SSRCs nobody
    // produced, far more of them than the inbound context has room for.
    for i in 0..MAX_SSRCS as u32 + 50 {
        let ssrc = if i % 2 == 0 {
            AUDIO_SSRC
        } else {
            0x6000_0000 + i
        };
        let sealed = s.seal(
            0,
            false,
            media_packet(ssrc, OPUS_PT, i as u16, 0, 0, &[1; 40]),
        );
        s.peers[0].tx.remove_ssrc(0x6000_0000 + i);
        let from = s.peers[0].addr;
        s.queue(from, sealed);
        s.deliver(None);
        s.flush();
    }
    let unknown = s.core.drops().get(DropReason::UnknownSsrc);
    assert_eq!(
        unknown,
        u64::from(MAX_SSRCS as u32 + 50),
        "{}",
        s.core.drops().to_json()
    );
    assert_eq!(s.core.drops().total(), unknown);
    let srtp = transport(&s, ID_TRANSPORT_A).srtp_in.as_ref().unwrap();
    assert_eq!(srtp.ssrc_counts().0, 0, "only producers' SSRCs keep state");
    // The remaining (video) producer is still heard.
    s.apply(Op::Media {
        stream: 0,
        seq: 1,
        ts: 0,
        flags: 2,
        payload: vec![0; 100],
    });
    s.deliver(None);
    s.flush();
    assert_eq!(s.core.drops().total(), unknown);
    assert_eq!(
        transport(&s, ID_TRANSPORT_A)
            .srtp_in
            .as_ref()
            .unwrap()
            .ssrc_counts()
            .0,
        1
    );
}
