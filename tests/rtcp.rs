//! RTCP through the daemon with str0m peers: keyframe requests when a consumer starts,
//! PLI from a subscriber relayed to the publisher and throttled, sender reports toward
//! subscribers and receiver reports toward publishers.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use str0m::media::KeyframeRequestKind;
use str0m::Event;

fn keyframe_requests(p: &Peer) -> usize {
    p.events
        .iter()
        .filter(|e| matches!(e, Event::KeyframeRequest(_)))
        .count()
}

#[test]
fn keyframe_requests_and_reports_flow_both_ways() {
    let daemon = Daemon::start(1);
    let stats = |b: str0m::RtcConfig| b.set_stats_interval(Some(Duration::from_millis(500)));
    let call = Call::start_with(&daemon, true, stats);
    let Call {
        mut ctl,
        mut publisher,
        mut sub,
        opus,
        vp8,
        video,
        ..
    } = call;
    let (pv, cv, sub_video) = video.expect("video");

    // The new video consumer (once it can decrypt) makes the daemon ask for a keyframe.
    let asked = drive_all(
        &mut [&mut publisher, &mut sub],
        Instant::now() + Duration::from_secs(5),
        |ps| keyframe_requests(ps[0]) >= 1,
    );
    assert!(
        asked,
        "no keyframe request reached the publisher when the consumer started"
    );

    // Media for 3 s (50 packets/s each), so that reports are exchanged.
    let start = Instant::now();
    let mut i = 0u32;
    while start.elapsed() < Duration::from_secs(3) {
        send(
            &mut publisher,
            AUDIO_SSRC,
            opus,
            100 + u64::from(i),
            i * 960,
            opus_payload(i),
        );
        send(
            &mut publisher,
            VIDEO_SSRC,
            vp8,
            900 + u64::from(i),
            i * 1800,
            vp8_payload(i, i % 25 == 0),
        );
        i += 1;
        let tick = Instant::now() + Duration::from_millis(20);
        drive_all(&mut [&mut publisher, &mut sub], tick, |_| false);
    }

    // A burst of 10 PLIs from the subscriber: at least one reaches the publisher, and the
    // 500 ms throttle lets at most 3 through in the next 1.2 s.
    let before = keyframe_requests(&publisher);
    for _ in 0..10 {
        sub.rtc
            .direct_api()
            .stream_rx(&sub_video.into())
            .expect("subscriber video stream")
            .request_keyframe(KeyframeRequestKind::Pli);
        sub.pump(Duration::from_millis(5));
    }
    drive_all(
        &mut [&mut publisher, &mut sub],
        Instant::now() + Duration::from_millis(1200),
        |_| false,
    );
    let relayed = keyframe_requests(&publisher) - before;
    assert!(
        (1..=3).contains(&relayed),
        "{relayed} keyframe requests relayed for a burst of 10 PLIs"
    );
    let c = ctl.ok("consumer.getStats", Some(&cv), json!(null));
    let w = ctl.ok("worker.getStats", None, json!(null));
    assert_eq!(w["transportsCreated"], 2, "{w}");
    assert!(w["pliReceived"].as_u64().unwrap() >= 10, "{w}");
    assert!(w["keyFrameRequestsSent"].as_u64().unwrap() >= 2, "{w}");
    assert!(c["pliCount"].as_u64().unwrap() >= 1, "{c}");

    // Sender reports reached the subscriber (str0m exposes them as remote egress stats)...
    let sr_seen = sub
        .events
        .iter()
        .any(|e| matches!(e, Event::MediaIngressStats(s) if s.remote.is_some()));
    assert!(sr_seen, "the subscriber never received a sender report");
    // ...and receiver reports with our LSR/DLSR reached the publisher (it computes RTT).
    let rr_seen = publisher
        .events
        .iter()
        .any(|e| matches!(e, Event::MediaEgressStats(s) if s.rtt.is_some() && s.loss.is_some()));
    assert!(
        rr_seen,
        "the publisher never received a receiver report with a round-trip time"
    );
    let p = ctl.ok("producer.getStats", Some(&pv), json!(null));
    assert_eq!(p["packetsLost"], 0, "{p}");
}
