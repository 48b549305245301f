//! Bandwidth feedback through the daemon with str0m peers: transport-cc feedback toward a
//! publisher that stamps transport-wide sequence numbers (its send-side estimator must
//! act on it), and our own transport-wide sequence numbers toward a subscriber whose
//! feedback feeds the daemon's per-transport estimate.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use str0m::bwe::BweKind;
use str0m::format::Codec;
use str0m::media::MediaKind;
use str0m::Event;

const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

fn estimates(p: &Peer) -> Vec<u64> {
    p.events
        .iter()
        .filter_map(|e| match e {
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => Some(estimate.as_u64()),
            _ => None,
        })
        .collect()
}

#[test]
fn transport_cc_flows_both_ways() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let router = ctl.create_router();
    let mut room = Room { ctl, router };
    const START_BPS: u64 = 300_000;
    let mut publisher =
        Peer::with_config(|b| b.enable_bwe(Some(str0m::bwe::Bitrate::bps(START_BPS))));
    let mut sub = Peer::new();
    let tp = room.transport(&mut publisher);
    let ts = room.transport(&mut sub);
    let mut ctl = room.ctl;
    sub.rtc.direct_api().enable_twcc_feedback();

    let vp8 = publisher.pt(Codec::Vp8);
    publisher.send_stream("v", MediaKind::Video, VIDEO_SSRC);
    let fb = json!([{ "type": "transport-cc" }, { "type": "nack", "parameter": "pli" }]);
    // str0m's standard extension map has transport-wide-cc at id 3.
    let pv = ctl.ok(
        "transport.produce",
        Some(&tp),
        json!({ "kind": "video", "rtpParameters": {
            "codecs": [{ "mimeType": "video/VP8", "payloadType": vp8, "clockRate": 90000, "rtcpFeedback": fb }],
            "headerExtensions": [{ "uri": TWCC, "id": 3 }],
            "encodings": [{ "ssrc": VIDEO_SSRC }] } }),
    )["producerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let caps = json!({
        "codecs": [{ "kind": "video", "mimeType": "video/VP8", "preferredPayloadType": sub.pt(Codec::Vp8),
                     "clockRate": 90000, "rtcpFeedback": fb }],
        "headerExtensions": [{ "kind": "video", "uri": TWCC, "preferredId": 3 }] });
    let c = ctl.ok(
        "transport.consume",
        Some(&ts),
        json!({ "producerId": pv, "rtpCapabilities": caps }),
    );
    assert_eq!(
        c["rtpParameters"]["headerExtensions"][0]["uri"], TWCC,
        "{c}"
    );
    let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
    sub.recv_stream("v", MediaKind::Video, ssrc);
    wait_connected(&mut [&mut publisher, &mut sub]);
    wait_dtls_connected(&mut ctl, &tp);
    wait_dtls_connected(&mut ctl, &ts);

    // ~1 Mbps of video for 4 s.
    let start = Instant::now();
    let mut i = 0u32;
    while start.elapsed() < Duration::from_secs(4) {
        send(
            &mut publisher,
            VIDEO_SSRC,
            vp8,
            100 + u64::from(i),
            i * 900,
            vp8_payload(i, i % 100 == 0),
        );
        i += 1;
        let due = start + Duration::from_millis(u64::from(i) * 10);
        drive_all(&mut [&mut publisher, &mut sub], due, |_| false);
    }

    // Toward the publisher: our feedback drives its estimator up from where it started
    // (without feedback a GCC sender holds or backs off).
    let tp_stats = ctl.ok("transport.getStats", Some(&tp), json!(null));
    assert!(
        tp_stats["transportCcFeedbackSent"].as_u64().unwrap() >= 20,
        "{tp_stats}"
    );
    let est = estimates(&publisher);
    let last = *est.last().expect("publisher produced bandwidth estimates");
    assert!(
        last > START_BPS,
        "publisher estimate stayed at {last} bps: {est:?}"
    );

    // Toward the subscriber: our transport-wide numbers come back as its feedback.
    let ts_stats = ctl.ok("transport.getStats", Some(&ts), json!(null));
    assert!(
        ts_stats["transportCcFeedbackReceived"].as_u64().unwrap() >= 10,
        "{ts_stats}"
    );
    assert!(
        ts_stats["availableOutgoingBitrate"].as_u64().unwrap() > 0,
        "{ts_stats}"
    );
    eprintln!("publisher estimates {est:?}; subscriber side {ts_stats}");
}
