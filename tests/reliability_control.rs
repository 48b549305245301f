//! Soak/abuse case for the control plane (RELIABILITY.md; counts scale with
//! `SFU_SOAK_SCALE`): `scale` clients, one after another, each offered 100,000
//! `worker.getStats` to send without ever reading, while a second connection sends
//! garbage and oversized frames and a third keeps asking `worker.load`. Each flooder is
//! cut off once its unread answers reach the writer-queue bound; the daemon's memory and
//! descriptors stay bounded whatever the scale, the garbage is answered with errors and
//! the third connection is answered throughout.

mod common;
#[path = "support/control_flood.rs"]
mod control_flood;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use control_flood::*;
use serde_json::json;

/// Garbage frames (and one oversized frame per this many) per unit of scale.
const GARBAGE_FRAMES: u64 = 2_000;
const OVERSIZED_EVERY: u64 = 100;

#[test]
fn reliability_control_flood_garbage_and_a_client_still_answered() {
    let scale = soak_scale();
    const OFFERED: u64 = 100_000;
    let daemon = Daemon::start(1);
    let pid = daemon.pid();
    let path = daemon.workers[0].1.clone();
    let mut watcher = daemon.control(0);
    watcher.ok("worker.getStats", None, json!(null));
    let (rss_before, fds_before) = (rss_kib(pid), fds(pid));
    let start = Instant::now();

    // The third connection: answered all along, its slowest answer recorded.
    let done = Arc::new(AtomicBool::new(false));
    let steady = {
        let (done, mut ctl) = (done.clone(), daemon.control(0));
        std::thread::spawn(move || {
            let (mut answered, mut slowest) = (0u64, Duration::ZERO);
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                ctl.ok("worker.load", None, json!(null));
                slowest = slowest.max(t.elapsed());
                answered += 1;
            }
            (answered, slowest)
        })
    };
    // The second: garbage, every error answered, the connection kept.
    let garbage = {
        let mut ctl = daemon.control(0);
        std::thread::spawn(move || {
            let (mut malformed, mut oversized) = (0u64, 0u64);
            for i in 0..GARBAGE_FRAMES * scale {
                if i % OVERSIZED_EVERY == 0 {
                    let big = sfu_control::framing::MAX_FRAME + 1;
                    let mut frame = (big as u32).to_be_bytes().to_vec();
                    frame.resize(4 + big, b'x');
                    ctl.send_raw(&frame);
                    let r = ctl.read_response();
                    assert_eq!(r["error"], "Oversized", "{r}");
                    oversized += 1;
                } else {
                    ctl.send_frame(format!("{{\"id\":{i},\"method\":").as_bytes());
                    let r = ctl.read_response();
                    assert_eq!(r["error"], "Malformed", "{r}");
                    malformed += 1;
                }
            }
            ctl.ok("worker.load", None, json!(null));
            (malformed, oversized)
        })
    };

    // Flooders, one at a time.
    let (mut sent, mut most) = (0u64, 0u64);
    let flooders = scale;
    for _ in 0..flooders {
        let mut stream = connect_unread(&path);
        let flood = flood_unread(&mut stream, OFFERED);
        assert!(flood.disconnected, "a flooder was not cut off: {flood:?}");
        sent += flood.sent;
        most = most.max(flood.sent);
    }
    // Every flooder was counted and its router-less connection closed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let dropped = loop {
        let stats = watcher.ok("worker.getStats", None, json!(null));
        let load = watcher.ok("worker.load", None, json!(null));
        let dropped = stats["controlClientsDropped"].as_u64().unwrap_or(0);
        if dropped == flooders && load["routers"] == 0 {
            break dropped;
        }
        assert!(Instant::now() < deadline, "dropped {dropped} of {flooders}");
    };
    let (malformed, oversized) = garbage.join().unwrap();
    done.store(true, Ordering::Relaxed);
    let (answered, slowest) = steady.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    // The flooders' sockets are gone once their connections closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while fds(pid) > fds_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (rss_after, fds_after) = (rss_kib(pid), fds(pid));
    println!(
        "reliability: {}",
        json!({
            "case": "control_flood_garbage",
            "scale": scale,
            "unread_requests_sent": sent,
            "most_sent_by_one_flooder": most,
            "flooders_disconnected": dropped,
            "garbage_frames": malformed,
            "oversized_frames": oversized,
            "steady_answers": answered,
            "steady_slowest_ms": slowest.as_millis() as u64,
            "rss_kib_before": rss_before,
            "rss_kib_after": rss_after,
            "fds_before": fds_before,
            "fds_after": fds_after,
            "secs": (secs * 10.0).round() / 10.0,
        })
    );
    assert!(answered > 0);
    // 16 MiB of queue at a time, whatever the number of flooders.
    assert!(
        rss_after < rss_before + 40 * 1024,
        "RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(fds_after <= fds_before, "fds {fds_before} -> {fds_after}");
}
