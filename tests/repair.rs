//! Loss repair through the daemon with str0m peers and an impairment shim: 5% loss on
//! the publisher's path and 5% on the subscriber's. The daemon NACKs the publisher (which
//! answers with RTX), keeps a retransmission buffer and answers the subscriber's NACKs
//! with RTX of its own.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::rtp::RtpWrite;

const RTX_SSRC: u32 = 0x2222_0003;

#[test]
fn five_percent_loss_each_way_is_repaired() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let router = ctl.create_router();
    let mut room = Room { ctl, router };
    let (mut publisher, mut sub) = (Peer::new(), Peer::new());
    let tp = room.transport(&mut publisher);
    let ts = room.transport(&mut sub);
    let mut ctl = room.ctl;

    let vp8 = publisher.pt(Codec::Vp8);
    let params = publisher
        .rtc
        .codec_config()
        .iter()
        .find(|p| p.spec().codec == Codec::Vp8)
        .cloned()
        .unwrap();
    let rtx = *params.resend().expect("str0m offers RTX for VP8");
    {
        let mut api = publisher.rtc.direct_api();
        api.declare_media("v".into(), MediaKind::Video);
        api.declare_stream_tx(VIDEO_SSRC.into(), Some(RTX_SSRC.into()), "v".into(), None);
    }
    let nack_fb = json!([{ "type": "nack" }, { "type": "nack", "parameter": "pli" }]);
    let pv = ctl.ok(
        "transport.produce",
        Some(&tp),
        json!({ "kind": "video", "rtpParameters": {
            "mid": "v",
            "codecs": [
                { "mimeType": "video/VP8", "payloadType": vp8, "clockRate": 90000, "rtcpFeedback": nack_fb },
                { "mimeType": "video/rtx", "payloadType": rtx, "clockRate": 90000, "parameters": { "apt": vp8 } }],
            "encodings": [{ "ssrc": VIDEO_SSRC, "rtx": { "ssrc": RTX_SSRC } }] } }),
    )["producerId"]
        .as_str()
        .unwrap()
        .to_owned();

    let (sub_vp8, sub_rtx) = (sub.pt(Codec::Vp8), {
        let p = sub
            .rtc
            .codec_config()
            .iter()
            .find(|p| p.spec().codec == Codec::Vp8)
            .cloned()
            .unwrap();
        *p.resend().unwrap()
    });
    let caps = json!({ "codecs": [
        { "kind": "video", "mimeType": "video/VP8", "preferredPayloadType": sub_vp8, "clockRate": 90000, "rtcpFeedback": nack_fb },
        { "kind": "video", "mimeType": "video/rtx", "preferredPayloadType": sub_rtx, "clockRate": 90000, "parameters": { "apt": sub_vp8 } }] });
    let c = ctl.ok(
        "transport.consume",
        Some(&ts),
        json!({ "producerId": pv, "rtpCapabilities": caps }),
    );
    let cv = c["consumerId"].as_str().unwrap().to_owned();
    let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
    let rtx_ssrc = c["rtpParameters"]["encodings"][0]["rtx"]["ssrc"]
        .as_u64()
        .expect("consumer negotiated RTX") as u32;
    {
        let mut api = sub.rtc.direct_api();
        api.declare_media("v".into(), MediaKind::Video);
        api.expect_stream_rx(ssrc.into(), Some(rtx_ssrc.into()), "v".into(), None);
    }
    wait_connected(&mut [&mut publisher, &mut sub]);
    wait_dtls_connected(&mut ctl, &tp);
    wait_dtls_connected(&mut ctl, &ts);

    // Impairment starts once the call is up.
    publisher.loss_out = 0.05;
    sub.loss_in = 0.05;

    // 600 video packets at 100 packets/s, keyframe first and every 100.
    const N: u32 = 600;
    let mut sent_at = Vec::new();
    let start = Instant::now();
    for i in 0..N {
        let due = start + Duration::from_millis(u64::from(i) * 10);
        drive_all(&mut [&mut publisher, &mut sub], due, |_| false);
        let now = Instant::now();
        sent_at.push(now);
        let mut api = publisher.rtc.direct_api();
        let stream = api.stream_tx(&VIDEO_SSRC.into()).unwrap();
        let w = RtpWrite::new(
            vp8.into(),
            (10_000 + u64::from(i)).into(),
            i * 900,
            now,
            vp8_payload(i, i % 100 == 0),
        );
        stream.write_rtp(w.nackable(true));
    }
    drive_all(
        &mut [&mut publisher, &mut sub],
        Instant::now() + Duration::from_secs(2),
        |_| false,
    );

    // First arrival of each packet, by its payload index.
    let mut arrived: BTreeMap<u32, Instant> = BTreeMap::new();
    let mut arrivals = Vec::new();
    for e in &sub.events {
        if let str0m::Event::RtpPacket(p) = e {
            if *p.header.ssrc == ssrc && p.payload.len() >= 11 {
                let i =
                    u32::from_be_bytes([p.payload[7], p.payload[8], p.payload[9], p.payload[10]]);
                arrivals.push((i, p.timestamp));
            }
        }
    }
    for (i, t) in arrivals {
        arrived.entry(i).or_insert(t);
    }
    let got = arrived.len();
    let p = ctl.ok("producer.getStats", Some(&pv), json!(null));
    let c = ctl.ok("consumer.getStats", Some(&cv), json!(null));
    assert!(
        got * 1000 >= N as usize * 995,
        "subscriber got {got} of {N} video packets; producer {p}; consumer {c}"
    );
    eprintln!("repair: got {got} of {N}; producer {p}; consumer {c}");
    assert!(
        p["nackCount"].as_u64().unwrap() > 0,
        "no NACK toward the publisher: {p}"
    );
    assert!(
        p["rtxPacketsReceived"].as_u64().unwrap() > 0,
        "no RTX from the publisher: {p}"
    );
    assert!(
        c["retransmittedPacketsSent"].as_u64().unwrap() > 0,
        "no retransmission to the subscriber: {c}"
    );

    // No gap in decoding longer than 500 ms: packet i is decodable once it and all
    // before it have arrived; that moment must never trail its sending by 500 ms.
    let mut decodable = start;
    let mut worst = Duration::ZERO;
    for (i, sent) in sent_at.iter().enumerate() {
        let Some(at) = arrived.get(&(i as u32)) else {
            continue;
        };
        decodable = decodable.max(*at);
        worst = worst.max(decodable.saturating_duration_since(*sent));
    }
    assert!(
        worst < Duration::from_millis(500),
        "a packet became decodable {worst:?} after it was sent"
    );
}
