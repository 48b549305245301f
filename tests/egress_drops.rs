//! Packets the daemon cannot protect are counted by class, never dropped silently
//! (issue 12): a subscriber transport whose outbound SRTP context already holds state
//! for `MAX_SSRCS` (1,024) consumer streams still open gets media on those, and every
//! copy for a stream past the cap counts as `srtpSsrcLimit`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use str0m::Event;

/// The daemon's per-context SSRC cap (`sfu::srtp::MAX_SSRCS`).
const CAP: usize = 1024;
/// Consumers past the cap.
const OVER: usize = 40;
/// Consumers served at once: each packet's copies arrive as one burst, which must fit
/// the subscriber's default socket buffer (about 150 datagrams on loopback).
const BATCH: usize = 50;

fn dropped(ctl: &mut Control) -> Value {
    ctl.ok("worker.getStats", None, json!(null))["dropped"].clone()
}

fn total(d: &Value) -> u64 {
    d.as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum()
}

/// Creates `n` consumers of the call's audio producer on the subscriber transport,
/// expected by the subscriber's str0m: (id, SSRC) each.
fn consume_audio(call: &mut Call, n: usize) -> Vec<(String, u32)> {
    let caps = call.sub.rtp_capabilities();
    (0..n)
        .map(|_| {
            let c = call.ctl.ok(
                "transport.consume",
                Some(&call.ts),
                json!({ "producerId": call.pa, "rtpCapabilities": caps }),
            );
            let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
            call.sub
                .rtc
                .direct_api()
                .expect_stream_rx(ssrc.into(), None, "a".into(), None);
            (c["consumerId"].as_str().unwrap().to_owned(), ssrc)
        })
        .collect()
}

/// Sends audio every few milliseconds for `period`, or until every SSRC of `want` has
/// received a packet if `want` is not empty; returns the SSRCs the subscriber received.
fn audio_for(call: &mut Call, seq: &mut u64, want: &[u32], period: Duration) -> Vec<u32> {
    let deadline = Instant::now() + period;
    let mut got = Vec::new();
    let mut last_send: Option<Instant> = None;
    while Instant::now() < deadline {
        if last_send.is_none_or(|t| t.elapsed() >= Duration::from_millis(3)) {
            *seq += 1;
            send(
                &mut call.publisher,
                AUDIO_SSRC,
                call.opus,
                *seq,
                (*seq * 960) as u32,
                opus_payload(*seq as u32),
            );
            last_send = Some(Instant::now());
        }
        call.publisher.pump(Duration::from_millis(1));
        call.sub.pump(Duration::from_millis(1));
        for e in call.sub.events.drain(..) {
            if let Event::RtpPacket(p) = e {
                if !got.contains(&*p.header.ssrc) {
                    got.push(*p.header.ssrc);
                }
            }
        }
        if !want.is_empty() && want.iter().all(|s| got.contains(s)) {
            break;
        }
    }
    got
}

#[test]
fn copies_past_the_srtp_ssrc_cap_are_counted() {
    let daemon = Daemon::start(1);
    let mut call = Call::start(&daemon, false);
    let mut seq = 0;
    // Fill the subscriber's outbound context: the long-lived consumer and CAP - 1 more,
    // each given media (so its SSRC has state) a batch at a time, then paused (it stays
    // open and keeps its state, but takes no more copies).
    let mut filled = 1;
    while filled < CAP {
        let batch = consume_audio(&mut call, BATCH.min(CAP - filled));
        let mut want: Vec<u32> = batch.iter().map(|(_, s)| *s).collect();
        want.push(call.sub_audio);
        let got = audio_for(&mut call, &mut seq, &want, Duration::from_secs(5));
        let missing: Vec<&u32> = want.iter().filter(|s| !got.contains(s)).collect();
        assert!(
            missing.is_empty(),
            "consumers {filled}..: no media on {missing:x?}"
        );
        for (id, ssrc) in &batch {
            call.ctl.ok("consumer.pause", Some(id), json!(null));
            call.sub.rtc.direct_api().remove_stream_rx((*ssrc).into());
        }
        filled += batch.len();
        call.ctl.notifications.clear();
    }
    let before = dropped(&mut call.ctl);
    let base = before["srtpSsrcLimit"]
        .as_u64()
        .expect("srtpSsrcLimit is a drop class");
    assert_eq!(total(&before), 0, "{before}");

    // Past the cap: the long-lived consumer still gets media, the new ones nothing, and
    // each copy refused is counted.
    let over: Vec<u32> = consume_audio(&mut call, OVER)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    let got = audio_for(&mut call, &mut seq, &[], Duration::from_millis(500));
    assert!(
        got.contains(&call.sub_audio),
        "the long-lived consumer is served"
    );
    let leaked: Vec<&u32> = over.iter().filter(|s| got.contains(s)).collect();
    assert!(
        leaked.is_empty(),
        "no media can be protected past the cap: {leaked:x?}"
    );

    let after = dropped(&mut call.ctl);
    let refused = after["srtpSsrcLimit"].as_u64().unwrap() - base;
    assert!(
        refused >= 3 * OVER as u64,
        "refused copies are counted: {after}"
    );
    assert_eq!(
        refused % OVER as u64,
        0,
        "each forwarded packet counts one refusal per consumer past the cap: {refused}"
    );
    assert_eq!(
        total(&after) - total(&before),
        refused,
        "{before} -> {after}"
    );
    let t = call
        .ctl
        .ok("transport.getStats", Some(&call.ts), json!(null));
    assert_eq!(t["packetsDropped"].as_u64(), Some(refused), "{t}");
}
