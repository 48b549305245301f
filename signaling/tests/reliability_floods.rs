//! Soak/abuse cases against the real `sfu-signaling` (counts scale with SFU_SOAK_SCALE):
//! the memory flood (connections each holding an unfinished WebSocket message) and the fd
//! flood (idle TCP connections), each printing one `reliability: {json}` line.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;
use tokio_tungstenite::tungstenite::Message;

use common::{
    close_code, connect_from, fd_count, frame_header, get_from, loopback, parse_prometheus,
    raise_own_nofile, rss_kib, sample, soak_scale, write_raw, ws_from, KeepAlive, Signaling,
    DEADLINE, METRICS_TOKEN,
};

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
/// The default `max_message`.
const MAX_MESSAGE: usize = 65536;

/// The highest RSS of `pid` seen over `window` (the server reads what was sent a little
/// after the writes return).
async fn peak_rss(pid: u32, window: Duration) -> u64 {
    let start = Instant::now();
    let mut peak = rss_kib(pid);
    while start.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(rss_kib(pid));
    }
    peak
}

/// Joins on a fresh WebSocket from `from` and leaves: the service still works.
async fn join_works(from: IpAddr, srv: &Signaling, name: &str) -> Duration {
    let start = Instant::now();
    let mut ws = ws_from(from, srv).await;
    ws.send(Message::text(
        json!({"type": "join", "room": "flood", "name": name}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        use futures_util::StreamExt;
        let m = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("joined in time");
        let t = m.expect("open").expect("read").into_text().unwrap();
        assert!(!t.contains("\"error\""), "{t}");
        if t.contains("\"joined\"") {
            break;
        }
    }
    let _ = ws.close(None).await;
    start.elapsed()
}

#[tokio::test]
async fn memory_flood_of_unfinished_messages() {
    raise_own_nofile();
    let n = 100 * soak_scale();
    let srv = Signaling::start(&[
        "--metrics-token",
        METRICS_TOKEN,
        "--max-connections",
        &(n + 64).to_string(),
    ]);
    let pid = srv.pid();
    let from = |i: usize| loopback(i / 50);
    let started = Instant::now();
    // Warm up the allocator and the runtime with one session.
    join_works(LOCAL, &srv, "warmup").await;
    let rss_before = peak_rss(pid, Duration::from_millis(200)).await;
    let fds_before = fd_count(pid);

    // 1 MB messages (under the old fixed 1 MiB limit): each closed at its header.
    let mut closed_1009 = 0;
    for i in 0..n {
        let mut ws = ws_from(from(i), &srv).await;
        let _ = write_raw(&mut ws, &frame_header(Data::Text, true, 1_000_000)).await;
        let _ = write_raw(&mut ws, &vec![b' '; 999_999]).await;
        // (A reset instead of the close frame is possible when our writes meet the
        // closed socket; the connection ends either way.)
        if close_code(&mut ws, DEADLINE).await.0 == Some(1009) {
            closed_1009 += 1;
        }
    }
    let rss_big = peak_rss(pid, Duration::from_millis(500)).await;

    // max_message - 1 byte messages, one byte short: held, as a slow client's would be.
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut ws = ws_from(from(i), &srv).await;
        write_raw(
            &mut ws,
            &frame_header(Data::Text, true, (MAX_MESSAGE - 1) as u64),
        )
        .await
        .unwrap();
        write_raw(&mut ws, &vec![b' '; MAX_MESSAGE - 2])
            .await
            .unwrap();
        held.push(ws);
    }
    let rss_held = peak_rss(pid, Duration::from_millis(500)).await;
    let healthz = get_from(LOCAL, &srv, "/healthz").await.0;
    let join = join_works(LOCAL, &srv, "during").await;
    drop(held);
    let fds_after = {
        let deadline = Instant::now() + DEADLINE;
        while fd_count(pid) > fds_before + 4 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        fd_count(pid)
    };
    println!(
        "reliability: {}",
        json!({
            "case": "ws_memory_flood",
            "connections": n,
            "max_message": MAX_MESSAGE,
            "closed_1009_of_1mb": closed_1009,
            "rss_kib_before": rss_before,
            "rss_kib_after_1mb_messages": rss_big,
            "rss_kib_holding_max_message": rss_held,
            "fds_before": fds_before,
            "fds_after": fds_after,
            "join_ms_during": join.as_millis() as u64,
            "secs": started.elapsed().as_secs_f64(),
        })
    );
    assert_eq!(healthz, 200);
    // Every 1 MB message was refused: memory did not grow by anything like n MB (the old
    // limit let each connection hold 1 MB: +104 MiB for 100).
    let n = n as u64;
    assert!(
        closed_1009 as u64 >= n * 9 / 10,
        "{closed_1009} of {n} closed with 1009"
    );
    assert!(
        rss_big.saturating_sub(rss_before) < 16 * 1024 + n * 64,
        "1 MB messages grew RSS from {rss_before} to {rss_big} KiB"
    );
    // Held messages cost about max_message each, plus the session.
    let per_conn = (MAX_MESSAGE / 1024) as u64 + 128;
    assert!(
        rss_held.saturating_sub(rss_before) < 16 * 1024 + n * per_conn,
        "{n} held messages grew RSS from {rss_before} to {rss_held} KiB"
    );
    assert!(
        fds_after <= fds_before + 4,
        "fds {fds_before} -> {fds_after}"
    );
}

/// `/healthz` from `from`, timed; panics if it is not answered 200 within 2 s.
async fn healthz_in_time(from: IpAddr, srv: &Signaling) -> Duration {
    let start = Instant::now();
    let (status, text) = get_from(from, srv, "/healthz").await;
    let took = start.elapsed();
    assert_eq!(status, 200, "{text}");
    assert!(took < Duration::from_secs(2), "/healthz took {took:?}");
    took
}

#[tokio::test]
async fn fd_flood_of_idle_connections() {
    raise_own_nofile();
    let n = 1100 * soak_scale();
    // A low open-file limit: the caps, not the limit, must be what protects the server.
    let nofile = 512;
    let srv = Signaling::start_with_nofile(
        &["--metrics-token", METRICS_TOKEN, "--handshake-timeout", "2"],
        nofile,
    );
    let pid = srv.pid();
    let started = Instant::now();
    join_works(LOCAL, &srv, "warmup").await;
    let fds_before = fd_count(pid);
    let rss_before = rss_kib(pid);
    let mut worst_healthz = Duration::ZERO;

    // One address, as in the finding: its 64 places fill, the rest are refused.
    let flooder: IpAddr = "127.0.0.2".parse().unwrap();
    let mut idle = Vec::with_capacity(n);
    let mut connect_failed = 0;
    for i in 0..n {
        match connect_from(flooder, srv.socket_addr()).await {
            Ok(s) => idle.push(s),
            Err(_) => connect_failed += 1,
        }
        if i % 100 == 99 {
            worst_healthz = worst_healthz.max(healthz_in_time(LOCAL, &srv).await);
        }
    }
    let fds_single = fd_count(pid);
    let join_single = join_works(LOCAL, &srv, "single").await;
    drop(idle);

    // Many addresses (10 each, under the per-address cap): the total cap fills instead;
    // a keep-alive connection opened before is served throughout.
    let mut ka = KeepAlive::connect(LOCAL, &srv).await;
    let mut spread = Vec::with_capacity(n);
    for i in 0..n {
        if let Ok(s) = connect_from(loopback(i / 10), srv.socket_addr()).await {
            spread.push(s);
        }
        if i % 100 == 99 {
            let t = Instant::now();
            assert_eq!(ka.get("/healthz").await.0, 200);
            worst_healthz = worst_healthz.max(t.elapsed());
        }
    }
    let fds_spread = fd_count(pid);
    let (_, _, metrics) = ka.get("/metrics").await;
    let m = parse_prometheus(&metrics);
    let refused = |r| {
        sample(
            &m,
            "sfu_signaling_connections_refused_total",
            &[("reason", r)],
        )
    };
    let (per_ip, total) = (refused("per_ip").unwrap(), refused("total").unwrap());
    let cap = sample(&m, "sfu_signaling_connections_max", &[]).unwrap();
    drop(spread);
    drop(ka);
    // The idle ones left are cut by the handshake timeout or go with the client.
    let deadline = Instant::now() + DEADLINE;
    while fd_count(pid) > fds_before + 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fds_after = fd_count(pid);
    let join_after = join_works(LOCAL, &srv, "after").await;
    println!(
        "reliability: {}",
        json!({
            "case": "tcp_fd_flood",
            "connections": n,
            "server_nofile": nofile,
            "connections_max": cap,
            "refused_per_ip": per_ip,
            "refused_total": total,
            "connect_failed": connect_failed,
            "fds_before": fds_before,
            "fds_single_address": fds_single,
            "fds_many_addresses": fds_spread,
            "fds_after": fds_after,
            "rss_kib_before": rss_before,
            "rss_kib_after": rss_kib(pid),
            "worst_healthz_ms": worst_healthz.as_millis() as u64,
            "join_ms_during": join_single.as_millis() as u64,
            "join_ms_after": join_after.as_millis() as u64,
            "secs": started.elapsed().as_secs_f64(),
        })
    );
    assert!(fds_single < nofile as usize && fds_spread < nofile as usize);
    assert!(per_ip >= (n - 64 - 100) as f64, "per_ip refusals {per_ip}");
    assert!(total >= (n as f64 - cap - 100.0), "total refusals {total}");
    assert!(
        fds_after <= fds_before + 4,
        "fds {fds_before} -> {fds_after}"
    );
}
