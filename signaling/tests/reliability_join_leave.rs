//! Soak: 5,000 x `SFU_SOAK_SCALE` join/leave cycles through the WebSocket protocol against
//! the real `sfu-signaling` and the `sfu` daemon it starts, as pages do them: connect,
//! join, publish (send transport and two producers on the daemon), receive the room's
//! tracks (receive transport, consumers, an answer), then leave (half with `leave`, half
//! by dropping the connection, as a closed tab does). Several clients churn at once: in
//! rooms that keep a resident publisher (so its receive transport sees consumers come
//! and go), and in rooms of their own that open and close every cycle (a router each).
//!
//! Afterwards nothing may be left: no rooms, participants or sessions in signaling, no
//! routers, transports, producers or consumers on the daemon, and the memory (VmRSS) and
//! open files of both processes within bounds of what they were after a warm-up. The
//! bounds are fixed, not proportional to the cycles: they hold at any scale.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

use common::{
    answer_for, children, fixture, sample, scrape, sum, Client, Signaling, METRICS_TOKEN,
};

/// Cycles at `SFU_SOAK_SCALE=1`.
const CYCLES: u64 = 5_000;
/// Cycles before the "before" figures are taken: buffers, pools and caches fill up first.
const WARMUP_CYCLES: u64 = 300;
/// Rooms with a resident publisher, and clients churning in each.
const RESIDENT_ROOMS: usize = 4;
const CHURNERS_PER_ROOM: usize = 2;
/// Clients churning through rooms of their own (router created and closed every cycle).
const SOLO_CHURNERS: usize = 4;
/// Growth of VmRSS allowed from after the warm-up to the end, per process. A leak of a
/// few hundred bytes per cycle passes it at scale 1 and fails at scale 20; one of a few
/// KiB (a transport's or a session's state) fails at scale 1.
const RSS_GROWTH_KIB: u64 = 12 * 1024;
/// Open files allowed above the warm-up figure (none are expected; a connection being
/// torn down when the figure is read is tolerated).
const FD_SLACK: usize = 2;
/// How long the system may take to settle after a phase (closing is asynchronous).
const SETTLE: Duration = Duration::from_secs(20);

fn soak_scale() -> u64 {
    std::env::var("SFU_SOAK_SCALE")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(1)
}

/// VmRSS of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS for {pid}"))
}

/// CPU time (user + system) `pid` has used, ms.
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // "pid (comm) state ppid ...": utime and stime are fields 14 and 15, the 12th and
    // 13th after the comm.
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // SAFETY: sysconf reads a constant of the system; no memory is involved.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1000 / hz
}

/// Open file descriptors of `pid`.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[derive(Debug, Clone, Copy)]
struct Figures {
    signaling_rss: u64,
    signaling_fds: usize,
    daemon_rss: u64,
    daemon_fds: usize,
}

impl Figures {
    fn read(signaling: u32, daemon: u32) -> Self {
        Self {
            signaling_rss: rss_kib(signaling),
            signaling_fds: fds(signaling),
            daemon_rss: rss_kib(daemon),
            daemon_fds: fds(daemon),
        }
    }
}

/// The pid of the daemon `sfu-signaling` started (its only child).
fn daemon_pid(srv: &Signaling) -> u32 {
    let kids = children(srv.pid());
    let sfu: Vec<u32> = kids
        .into_iter()
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sfu")
        })
        .collect();
    assert_eq!(sfu.len(), 1, "one sfu child of signaling: {sfu:?}");
    sfu[0]
}

/// Answers a receive-side offer as a page does.
async fn answer(c: &mut Client, offer: &Value) {
    let sdp = answer_for(offer["sdp"].as_str().unwrap());
    c.send(json!({"type": "answer", "offerId": offer["offerId"], "sdp": sdp}))
        .await;
}

/// A participant that stays for the whole phase: publishes, then answers every offer
/// (the churners' tracks) until told to stop, then leaves.
async fn resident(ws_url: String, room: String, mut stop: watch::Receiver<bool>) {
    let mut c = Client::connect(&ws_url).await;
    c.join(&room, "resident").await;
    c.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    c.until("answer").await;
    loop {
        let m = tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            m = c.next() => m,
        };
        assert_ne!(m["type"], "error", "resident of {room}: {m}");
        if m["type"] == "offer" {
            answer(&mut c, &m).await;
        }
    }
    c.send(json!({"type": "leave"})).await;
    c.until("left").await;
    c.close().await;
}

/// One page's visit: join, publish, receive (where someone publishes), leave.
async fn visit(ws_url: &str, room: &str, name: &str, expect_tracks: bool, say_leave: bool) {
    let mut c = Client::connect(ws_url).await;
    c.join(room, name).await;
    c.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    let (mut published, mut received) = (false, !expect_tracks);
    while !(published && received) {
        let m = c.next().await;
        match m["type"].as_str() {
            Some("answer") => published = true,
            Some("offer") => {
                answer(&mut c, &m).await;
                received = true;
            }
            Some("error") => panic!("{name} in {room}: {m}"),
            _ => {}
        }
    }
    if say_leave {
        c.send(json!({"type": "leave"})).await;
        c.until("left").await;
        c.close().await;
    }
    // Otherwise dropped: the TCP connection ends without a close frame.
}

/// Runs `cycles` visits spread over the churning clients, with residents in their rooms;
/// returns once every visit and every resident is done.
async fn phase(srv: &Signaling, tag: &str, cycles: u64) {
    let ws_url = &srv.ws_url();
    let (stop, stop_rx) = watch::channel(false);
    let mut residents = Vec::new();
    for r in 0..RESIDENT_ROOMS {
        let room = format!("soak-{tag}-{r}");
        residents.push(tokio::spawn(resident(
            ws_url.to_owned(),
            room,
            stop_rx.clone(),
        )));
    }
    // The residents are in and publishing before anyone visits: wait for their tracks.
    let t = Instant::now();
    loop {
        let m = scrape(&srv.addr).await;
        if sample(&m, "sfu_signaling_peers", &[]) == Some(RESIDENT_ROOMS as f64)
            && sum(&m, "sfu_worker_producers") == (2 * RESIDENT_ROOMS) as f64
        {
            break;
        }
        assert!(t.elapsed() < SETTLE, "residents not publishing in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let clients = RESIDENT_ROOMS * CHURNERS_PER_ROOM + SOLO_CHURNERS;
    let mut tasks = Vec::new();
    for i in 0..clients {
        let share = cycles / clients as u64 + u64::from((i as u64) < cycles % clients as u64);
        let ws_url = ws_url.to_owned();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            let (room, resident_room) = if i < RESIDENT_ROOMS * CHURNERS_PER_ROOM {
                (format!("soak-{tag}-{}", i % RESIDENT_ROOMS), true)
            } else {
                (format!("soak-{tag}-solo-{i}"), false)
            };
            for k in 0..share {
                let name = format!("c{i}-{k}");
                visit(&ws_url, &room, &name, resident_room, k % 2 == 0).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let _ = stop.send(true);
    for r in residents {
        r.await.unwrap();
    }
}

/// Waits until signaling and the daemon hold nothing; returns the last scrape.
async fn settled(addr: &str) -> Vec<common::PromSample> {
    let t = Instant::now();
    loop {
        let m = scrape(addr).await;
        let own = [
            "sfu_signaling_rooms",
            "sfu_signaling_peers",
            "sfu_signaling_websocket_sessions",
        ]
        .map(|n| sample(&m, n, &[]).unwrap_or(f64::NAN));
        let daemon = [
            "sfu_worker_routers",
            "sfu_worker_transports",
            "sfu_worker_producers",
            "sfu_worker_consumers",
        ]
        .map(|n| sum(&m, n));
        if own.iter().chain(&daemon).all(|&v| v == 0.0) {
            return m;
        }
        assert!(
            t.elapsed() < SETTLE,
            "still held after {SETTLE:?}: rooms/peers/sessions {own:?}, \
             routers/transports/producers/consumers {daemon:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads the figures once the open files are back within `bound` (a connection closing
/// in the kernel when read is waited for, not counted), or after `SETTLE`.
async fn figures_within(signaling: u32, daemon: u32, bound: Option<Figures>) -> Figures {
    let t = Instant::now();
    loop {
        let f = Figures::read(signaling, daemon);
        let ok = bound.is_none_or(|b| {
            f.signaling_fds <= b.signaling_fds + FD_SLACK && f.daemon_fds <= b.daemon_fds + FD_SLACK
        });
        if ok || t.elapsed() > SETTLE {
            return f;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_cycles_leave_nothing_behind() {
    let cycles = CYCLES * soak_scale();
    let srv = Signaling::start(&["--workers", "2", "--metrics-token", METRICS_TOKEN]);
    let (signaling, daemon) = (srv.pid(), daemon_pid(&srv));

    phase(&srv, "warmup", WARMUP_CYCLES).await;
    let warm = settled(&srv.addr).await;
    let before = figures_within(signaling, daemon, None).await;

    let started = Instant::now();
    let cpu_before = (cpu_ms(signaling), cpu_ms(daemon));
    phase(&srv, "soak", cycles).await;
    let secs = started.elapsed().as_secs_f64();
    let cpu = (
        cpu_ms(signaling) - cpu_before.0,
        cpu_ms(daemon) - cpu_before.1,
    );
    let end = settled(&srv.addr).await;
    let after = figures_within(signaling, daemon, Some(before)).await;

    // Every cycle was a join that reached the daemon: one send transport per visit, one
    // receive transport per visit to a room with a resident.
    let delta = |name: &str| sum(&end, name) - sum(&warm, name);
    let visits = cycles as f64;
    let resident_share = (RESIDENT_ROOMS * CHURNERS_PER_ROOM) as f64
        / (RESIDENT_ROOMS * CHURNERS_PER_ROOM + SOLO_CHURNERS) as f64;
    let joins = delta("sfu_signaling_joins_total");
    let transports = delta("sfu_worker_transports_created_total");
    assert_eq!(joins, visits + RESIDENT_ROOMS as f64, "joins");
    assert!(
        transports >= visits + (visits * resident_share).floor(),
        "transports created: {transports} for {visits} visits"
    );
    assert_eq!(
        sample(&end, "sfu_signaling_daemon_restarts_total", &[]),
        Some(0.0),
        "the daemon never died"
    );
    assert_eq!(daemon_pid(&srv), daemon);

    println!(
        "reliability: {}",
        json!({
            "case": "ws_join_leave",
            "cycles": cycles,
            "clients": RESIDENT_ROOMS * CHURNERS_PER_ROOM + SOLO_CHURNERS,
            "rooms": RESIDENT_ROOMS + SOLO_CHURNERS,
            "transports_created": transports as u64,
            "secs": (secs * 10.0).round() / 10.0,
            "ms_per_cycle": (secs * 1e3 / visits * 100.0).round() / 100.0,
            "signaling_cpu_ms": cpu.0,
            "daemon_cpu_ms": cpu.1,
            "signaling_rss_kib_before": before.signaling_rss,
            "signaling_rss_kib_after": after.signaling_rss,
            "signaling_fds_before": before.signaling_fds,
            "signaling_fds_after": after.signaling_fds,
            "daemon_rss_kib_before": before.daemon_rss,
            "daemon_rss_kib_after": after.daemon_rss,
            "daemon_fds_before": before.daemon_fds,
            "daemon_fds_after": after.daemon_fds,
        })
    );
    for (who, b, a) in [
        ("signaling", before.signaling_fds, after.signaling_fds),
        ("daemon", before.daemon_fds, after.daemon_fds),
    ] {
        assert!(a <= b + FD_SLACK, "{who} open files: {b} -> {a}");
    }
    for (who, b, a) in [
        ("signaling", before.signaling_rss, after.signaling_rss),
        ("daemon", before.daemon_rss, after.daemon_rss),
    ] {
        assert!(
            a <= b + RSS_GROWTH_KIB,
            "{who} VmRSS grew {} KiB over {cycles} cycles (bound {RSS_GROWTH_KIB} KiB): {b} -> {a} KiB",
            a.saturating_sub(b)
        );
    }
}
