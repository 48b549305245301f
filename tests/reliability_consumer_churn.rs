//! Soak: consumers created and closed one after another (four at a time) on one
//! long-lived subscriber transport of the real daemon (issue 12). Every consumer gets media before it closes,
//! decrypted and received by str0m; the subscriber's long-lived consumer keeps getting
//! every packet; nothing is dropped; the worker's consumers, the daemon's RSS and its
//! fds come back to where they were. Before the fix the subscriber went silent after
//! 1,024 consumers (their SRTP state was never freed). `SFU_SOAK_SCALE` multiplies the
//! cycles (default 1: 2,000 cycles).

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use str0m::Event;

const CYCLES: usize = 2_000;
/// Consumers open at once: created together, each given media, closed together (str0m's
/// publisher sends a queued packet only every ~15 ms, so one at a time would take
/// 30 s for 2,000).
const ROUND: usize = 4;
/// RSS the daemon may gain over the whole run, at any scale: what the first consumers
/// warm up (allocator arenas, maps at their high-water mark), never per cycle.
const RSS_GROWTH_LIMIT_KIB: u64 = 8 * 1024;

fn scale() -> usize {
    std::env::var("SFU_SOAK_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn worker_stats(ctl: &mut Control) -> Value {
    ctl.ok("worker.getStats", None, json!(null))
}

/// Sends an audio packet every few milliseconds until the subscriber has received one
/// for each SSRC of `want`; returns whether it did before `deadline`.
fn deliver(call: &mut Call, seq: &mut u64, want: &[u32], deadline: Instant) -> bool {
    let mut got = vec![false; want.len()];
    let mut last_send: Option<Instant> = None;
    while Instant::now() < deadline {
        if last_send.is_none_or(|t| t.elapsed() >= Duration::from_millis(3)) {
            *seq += 1;
            let ts = (*seq * 960) as u32;
            send(
                &mut call.publisher,
                AUDIO_SSRC,
                call.opus,
                *seq,
                ts,
                opus_payload(*seq as u32),
            );
            last_send = Some(Instant::now());
        }
        call.publisher.pump(Duration::from_millis(1));
        call.sub.pump(Duration::from_millis(1));
        for e in call.sub.events.drain(..) {
            if let Event::RtpPacket(p) = e {
                if let Some(i) = want.iter().position(|s| *s == *p.header.ssrc) {
                    got[i] = true;
                }
            }
        }
        if got.iter().all(|g| *g) {
            return true;
        }
    }
    false
}

#[test]
fn consumer_churn_on_one_subscriber_transport() {
    let cycles = CYCLES * scale();
    let rounds = cycles.div_ceil(ROUND);
    let daemon = Daemon::start(1);
    let mut call = Call::start(&daemon, false);
    let pid = daemon.pid();
    let mut seq = 0u64;
    // Warm-up: the long-lived consumer is served and a round of consumers comes and
    // goes, so the baseline includes what the first ones allocate.
    let churn = |call: &mut Call, seq: &mut u64, round: usize| {
        let caps = call.sub.rtp_capabilities();
        let mut opened = Vec::with_capacity(ROUND);
        let mut want = vec![call.sub_audio];
        for _ in 0..ROUND {
            let c = call.ctl.ok(
                "transport.consume",
                Some(&call.ts),
                json!({ "producerId": call.pa, "rtpCapabilities": caps }),
            );
            let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
            // The subscriber's audio media expects each new SSRC; str0m keeps a stream
            // per expected SSRC until it is removed.
            call.sub
                .rtc
                .direct_api()
                .expect_stream_rx(ssrc.into(), None, "a".into(), None);
            opened.push((c["consumerId"].as_str().unwrap().to_owned(), ssrc));
            want.push(ssrc);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(
            deliver(call, seq, &want, deadline),
            "round {round}: consumers {opened:?} or the long-lived one got no media"
        );
        for (id, ssrc) in opened {
            call.ctl.ok("consumer.close", Some(&id), json!(null));
            call.sub.rtc.direct_api().remove_stream_rx(ssrc.into());
        }
        call.ctl.notifications.clear();
    };
    churn(&mut call, &mut seq, 0);
    let base = worker_stats(&mut call.ctl);
    let (rss_before, fds_before) = (rss_kib(pid), fds(pid));
    let start = Instant::now();
    for round in 1..=rounds {
        churn(&mut call, &mut seq, round);
    }
    let secs = start.elapsed().as_secs_f64();
    // Media still reaches the long-lived consumer and a last new one.
    churn(&mut call, &mut seq, rounds + 1);
    let after = worker_stats(&mut call.ctl);
    let (rss_after, fds_after) = (rss_kib(pid), fds(pid));
    println!(
        "reliability: {}",
        json!({
            "case": "consumer_churn",
            "cycles": rounds * ROUND,
            "rss_kib_before": rss_before,
            "rss_kib_after": rss_after,
            "fds_before": fds_before,
            "fds_after": fds_after,
            "consumers_before": base["load"]["consumers"],
            "consumers_after": after["load"]["consumers"],
            "dropped_total_before": base["droppedTotal"],
            "dropped_total_after": after["droppedTotal"],
            "secs": (secs * 10.0).round() / 10.0,
        })
    );
    assert_eq!(
        after["dropped"], base["dropped"],
        "drops during the churn: {} then {}",
        base["dropped"], after["dropped"]
    );
    assert_eq!(after["load"]["consumers"], base["load"]["consumers"]);
    assert_eq!(fds_after, fds_before, "fds");
    assert!(
        rss_after <= rss_before + RSS_GROWTH_LIMIT_KIB,
        "RSS grew from {rss_before} to {rss_after} KiB over {cycles} cycles"
    );
    let t = call
        .ctl
        .ok("transport.getStats", Some(&call.ts), json!(null));
    let t = if t.is_array() { t[0].clone() } else { t };
    assert_eq!(
        t["consumers"], 1,
        "only the long-lived consumer is left: {t}"
    );
    assert_eq!(t["packetsDropped"], 0, "{t}");
}
