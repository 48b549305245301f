//! What an unauthenticated client can make the real `sfu-signaling` hold is bounded: a
//! WebSocket message over `max_message` closes with 1009 before it is buffered; a slow or
//! silent HTTP client is cut by the handshake timeout, an idle keep-alive connection by
//! the idle timeout, an unjoined WebSocket by the join timeout, a silent session by the
//! idle timeout while one that answers pings stays; the per-address and total caps answer
//! 503 while others keep being served.

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::protocol::frame::coding::Data;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use common::{
    close_code, connect_from, frame_header, get_from, http_get, parse_prometheus, sample, wait_eof,
    write_raw, ws_from, KeepAlive, Signaling, DEADLINE, METRICS_TOKEN,
};

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `sfu_signaling_connections_closed_total{reason}` (or `_refused_total`), read over `ka`.
async fn counter(ka: &mut KeepAlive, name: &str, reason: &str) -> f64 {
    let (status, _, body) = ka.get("/metrics").await;
    assert_eq!(status, 200, "{body}");
    sample(&parse_prometheus(&body), name, &[("reason", reason)])
        .unwrap_or_else(|| panic!("{name}{{reason={reason}}}:\n{body}"))
}

/// Sends `join` and reads until `joined` (or fails on an error).
async fn join(ws: &mut WebSocketStream<tokio::net::TcpStream>, room: &str, name: &str) {
    let msg = json!({"type": "join", "room": room, "name": name}).to_string();
    ws.send(Message::text(msg)).await.unwrap();
    loop {
        let m = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("joined in time")
            .expect("open")
            .expect("read");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_ne!(v["type"], "error", "{v}");
            if v["type"] == "joined" {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_message_over_max_message_closes_with_1009_before_it_is_buffered() {
    let srv = Signaling::start(&["--metrics-token", METRICS_TOKEN, "--max-message", "16384"]);
    // One frame announced at 900 kB (under the old fixed 1 MiB limit): closed after its
    // header and 16 KiB, long before the rest would be buffered.
    let mut one = ws_from(LOCAL, &srv).await;
    write_raw(&mut one, &frame_header(Data::Text, true, 900_000))
        .await
        .unwrap();
    let _ = write_raw(&mut one, &[b' '; 16 * 1024]).await;
    assert_eq!(close_code(&mut one, DEADLINE).await.0, Some(1009));

    // The same in fragments of 8 KiB: the third passes the limit.
    let mut fragments = ws_from(LOCAL, &srv).await;
    let mut bytes = frame_header(Data::Text, false, 8192);
    bytes.extend_from_slice(&[b' '; 8192]);
    for _ in 0..2 {
        bytes.extend_from_slice(&frame_header(Data::Continue, false, 8192));
        bytes.extend_from_slice(&[b' '; 8192]);
    }
    let _ = write_raw(&mut fragments, &bytes).await;
    assert_eq!(close_code(&mut fragments, DEADLINE).await.0, Some(1009));

    // Whole messages over the limit, text or binary, close too (they used to get an error
    // and the session went on).
    for big in [
        Message::text("x".repeat(20_000)),
        Message::binary(vec![0u8; 20_000]),
    ] {
        let mut c = ws_from(LOCAL, &srv).await;
        let _ = c.send(big).await;
        assert_eq!(close_code(&mut c, DEADLINE).await.0, Some(1009));
    }

    // A message of exactly max_message is read and answered, and the session goes on.
    let mut fits = ws_from(LOCAL, &srv).await;
    fits.send(Message::text(" ".repeat(16384))).await.unwrap();
    let reply = tokio::time::timeout(DEADLINE, fits.next()).await.unwrap();
    let reply = reply.unwrap().unwrap().into_text().unwrap();
    assert!(reply.contains("BadJson"), "{reply}");
    join(&mut fits, "fits", "ada").await;

    let mut ka = KeepAlive::connect(LOCAL, &srv).await;
    assert_eq!(
        counter(
            &mut ka,
            "sfu_signaling_connections_closed_total",
            "ws_message_too_big"
        )
        .await,
        4.0
    );
}

#[tokio::test]
async fn slowloris_and_silent_tcp_clients_are_cut_by_the_handshake_timeout() {
    let srv = Signaling::start(&["--metrics-token", METRICS_TOKEN, "--handshake-timeout", "1"]);
    let start = Instant::now();
    let mut silent = connect_from(LOCAL, srv.socket_addr()).await.unwrap();
    let mut slow = connect_from(LOCAL, srv.socket_addr()).await.unwrap();
    // Half a request line, then a header byte now and then: never a complete head.
    slow.write_all(b"GET /healthz HT").await.unwrap();
    let trickle = async {
        for b in b"TP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
            if slow.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let silent_closed = async { wait_eof(&mut silent, DEADLINE).await };
    let ((), silent_after) = tokio::join!(trickle, silent_closed);
    let slow_after = wait_eof(&mut slow, DEADLINE).await;
    assert!(
        silent_after >= Duration::from_millis(900) && silent_after < Duration::from_secs(4),
        "silent client closed after {silent_after:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "slow client closed after {slow_after:?}"
    );
    // Meanwhile and after, requests that come whole are served.
    let (status, _, body) = http_get(&srv.addr, "/healthz", &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    let mut ka = KeepAlive::connect(LOCAL, &srv).await;
    assert!(
        counter(
            &mut ka,
            "sfu_signaling_connections_closed_total",
            "handshake_timeout"
        )
        .await
            >= 2.0
    );
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let srv = Signaling::start(&[
        "--metrics-token",
        METRICS_TOKEN,
        "--http-idle-timeout",
        "0.5",
    ]);
    let mut ka = KeepAlive::connect(LOCAL, &srv).await;
    // Requests closer together than the timeout keep the connection.
    for _ in 0..4 {
        assert_eq!(ka.get("/healthz").await.0, 200);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(ka.get("/healthz").await.0, 200);
    let mut raw = ka.into_stream();
    let after = wait_eof(&mut raw, DEADLINE).await;
    assert!(
        after >= Duration::from_millis(400) && after < Duration::from_secs(3),
        "closed {after:?} after the last answer"
    );
    let mut ka = KeepAlive::connect(LOCAL, &srv).await;
    assert!(
        counter(
            &mut ka,
            "sfu_signaling_connections_closed_total",
            "http_idle"
        )
        .await
            >= 1.0
    );
}

#[tokio::test]
async fn an_unjoined_websocket_is_closed_by_the_join_timeout() {
    let srv = Signaling::start(&["--metrics-token", METRICS_TOKEN, "--ws-join-timeout", "1"]);
    let start = Instant::now();
    let mut idle = ws_from(LOCAL, &srv).await;
    // A joined one is not affected; after `leave` the timer runs again.
    let mut leaver = ws_from(LOCAL, &srv).await;
    join(&mut leaver, "jt", "ada").await;
    let (code, _) = close_code(&mut idle, DEADLINE).await;
    let after = start.elapsed();
    assert_eq!(code, Some(1008));
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_secs(4),
        "closed after {after:?}"
    );
    leaver
        .send(Message::text(json!({"type": "leave"}).to_string()))
        .await
        .unwrap();
    let left_at = Instant::now();
    let (code, _) = close_code(&mut leaver, DEADLINE).await;
    assert_eq!(code, Some(1008));
    assert!(left_at.elapsed() >= Duration::from_millis(900));
    let mut ka = KeepAlive::connect(LOCAL, &srv).await;
    assert_eq!(
        counter(
            &mut ka,
            "sfu_signaling_connections_closed_total",
            "ws_join_timeout"
        )
        .await,
        2.0
    );
}

#[tokio::test]
async fn a_joined_session_answering_pings_stays_open_and_a_silent_one_is_closed() {
    let srv = Signaling::start(&[
        "--metrics-token",
        METRICS_TOKEN,
        "--ws-ping-interval",
        "0.3",
        "--ws-idle-timeout",
        "1",
    ]);
    let mut alive = ws_from(LOCAL, &srv).await;
    join(&mut alive, "pings", "ada").await;
    let mut silent = ws_from(LOCAL, &srv).await;
    join(&mut silent, "pings", "bob").await;
    // Reading makes tungstenite answer every ping (as a browser does): three idle timeouts
    // pass and the session is still open. Bob's client reads nothing meanwhile.
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_secs(3) {
        match tokio::time::timeout(Duration::from_millis(100), alive.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(Message::Close(f)))) => panic!("closed after {:?}: {f:?}", start.elapsed()),
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("connection ended: {other:?}"),
        }
    }
    assert!(pings >= 5, "{pings} pings in 3 s");
    // Bob answered none: the server closed his session (1008). His client reads the pings
    // sent before, and its late pongs may meet the closed socket before it reads the close
    // frame: the end of the connection counts too (the counter below tells why).
    let (code, bob_pings) = close_code(&mut silent, Duration::from_secs(1)).await;
    assert!(matches!(code, Some(1008) | None), "{code:?}");
    assert!(bob_pings <= 5, "{bob_pings}");
    // Ada's session still works.
    alive
        .send(Message::text(
            json!({"type": "mute", "kind": "audio", "muted": true}).to_string(),
        ))
        .await
        .unwrap();
    alive
        .send(Message::text(json!({"type": "leave"}).to_string()))
        .await
        .unwrap();
    let left = loop {
        match tokio::time::timeout(DEADLINE, alive.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) if t.contains("\"left\"") => break true,
            Some(Ok(_)) => {}
            _ => break false,
        }
    };
    assert!(left);
    let mut ka = KeepAlive::connect(LOCAL, &srv).await;
    assert_eq!(
        counter(&mut ka, "sfu_signaling_connections_closed_total", "ws_idle").await,
        1.0
    );
}

#[tokio::test]
async fn the_caps_answer_503_while_others_keep_being_served() {
    let srv = Signaling::start(&[
        "--metrics-token",
        METRICS_TOKEN,
        "--max-connections-per-ip",
        "4",
        "--max-connections",
        "8",
    ]);
    // Two of ours from 127.0.0.1: a keep-alive connection and a WebSocket.
    let mut ka = KeepAlive::connect(LOCAL, &srv).await;
    assert_eq!(ka.get("/healthz").await.0, 200);
    let mut ws = ws_from(LOCAL, &srv).await;

    // 127.0.0.2 fills its four places; its fifth connection is answered 503.
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            connect_from(ip("127.0.0.2"), srv.socket_addr())
                .await
                .unwrap(),
        );
    }
    let (status, text) = get_from(ip("127.0.0.2"), &srv, "/healthz").await;
    assert_eq!(status, 503, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: "),
        "{text}"
    );
    // Others are served: a new connection, the keep-alive one, a join.
    assert_eq!(get_from(ip("127.0.0.3"), &srv, "/healthz").await.0, 200);
    assert_eq!(ka.get("/healthz").await.0, 200);
    join(&mut ws, "caps", "ada").await;

    // 127.0.0.3 takes the last two places: everyone new is refused, whatever the address.
    for _ in 0..2 {
        held.push(
            connect_from(ip("127.0.0.3"), srv.socket_addr())
                .await
                .unwrap(),
        );
    }
    for from in ["127.0.0.4", "127.0.0.1"] {
        let (status, text) = get_from(ip(from), &srv, "/healthz").await;
        assert_eq!(status, 503, "{from}: {text}");
    }
    // Connections already in are served on.
    assert_eq!(ka.get("/healthz").await.0, 200);
    ws.send(Message::text(json!({"type": "leave"}).to_string()))
        .await
        .unwrap();
    join_after_leave(&mut ws).await;
    assert_eq!(
        counter(&mut ka, "sfu_signaling_connections_refused_total", "per_ip").await,
        1.0
    );
    assert_eq!(
        counter(&mut ka, "sfu_signaling_connections_refused_total", "total").await,
        2.0
    );
    // The places come back when the connections go.
    drop(held);
    let mut served = false;
    let start = Instant::now();
    while !served && start.elapsed() < DEADLINE {
        served = get_from(ip("127.0.0.4"), &srv, "/healthz").await.0 == 200;
    }
    assert!(served, "places freed by closed connections are taken again");
}

/// After `leave`: waits for `left`, then joins again on the same WebSocket.
async fn join_after_leave(ws: &mut WebSocketStream<tokio::net::TcpStream>) {
    loop {
        match tokio::time::timeout(DEADLINE, ws.next()).await.unwrap() {
            Some(Ok(Message::Text(t))) if t.contains("\"left\"") => break,
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
    join(ws, "caps", "ada").await;
}
