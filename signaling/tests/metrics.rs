//! `/metrics`: Prometheus text (checked by an independent strict parser), the signaling
//! process's own gauges and every worker's stats labelled by worker; behind the secret
//! when access control is on; on its own listener with `--metrics-listen`.

mod common;

use serde_json::json;

use common::{fixture, http_get, parse_prometheus, sample, sum, Client, Signaling};

#[tokio::test]
async fn rooms_peers_and_every_worker_are_reported() {
    let srv = Signaling::start(&["--workers", "2"]);
    let mut ada = Client::connect(&srv.ws_url()).await;
    ada.join("gauges", "ada").await;
    ada.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    ada.until("answer").await;
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("gauges", "bob").await;
    bob.until("offer").await;

    let (status, headers, body) = http_get(&srv.addr, "/metrics", &[]).await;
    assert_eq!(status, 200);
    let ct = headers.iter().find(|(k, _)| k == "content-type").unwrap();
    assert_eq!(ct.1, "text/plain; version=0.0.4; charset=utf-8");
    let m = parse_prometheus(&body);
    let one = |name: &str| sample(&m, name, &[]).unwrap_or_else(|| panic!("{name}:\n{body}"));
    assert_eq!(one("sfu_signaling_rooms"), 1.0);
    assert_eq!(one("sfu_signaling_peers"), 2.0);
    assert_eq!(one("sfu_signaling_websocket_sessions"), 2.0);
    assert_eq!(one("sfu_signaling_joins_total"), 2.0);
    assert_eq!(one("sfu_signaling_daemon_up"), 1.0);
    assert_eq!(one("sfu_signaling_daemon_workers"), 2.0);
    for w in ["0", "1"] {
        assert_eq!(
            sample(&m, "sfu_worker_up", &[("worker", w)]),
            Some(1.0),
            "{body}"
        );
        for name in [
            "sfu_worker_rtp_packets_received_total",
            "sfu_worker_rtp_bytes_sent_total",
            "sfu_worker_consumers",
            "sfu_worker_load",
            "sfu_worker_forwarding_latency_seconds_count",
            "sfu_worker_control_clients_dropped_total",
        ] {
            assert!(
                sample(&m, name, &[("worker", w)]).is_some(),
                "{name} {w}:\n{body}"
            );
        }
        assert!(
            sample(
                &m,
                "sfu_worker_dropped_packets_total",
                &[("worker", w), ("class", "malformed")]
            )
            .is_some(),
            "{body}"
        );
    }
    assert_eq!(sum(&m, "sfu_worker_routers"), 1.0);
    assert_eq!(sum(&m, "sfu_worker_producers"), 2.0);
    assert_eq!(sum(&m, "sfu_worker_consumers"), 2.0);
    assert_eq!(sum(&m, "sfu_worker_transports"), 2.0);
    bob.close().await;
    ada.close().await;
}

#[tokio::test]
async fn metrics_need_the_secret_when_access_control_is_on() {
    let srv = Signaling::start(&["--auth-secret", "hunter2"]);
    let (status, _, _) = http_get(&srv.addr, "/metrics", &[]).await;
    assert_eq!(status, 401);
    let (status, _, body) = http_get(
        &srv.addr,
        "/metrics",
        &[("Authorization", "Bearer hunter2")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(sample(&parse_prometheus(&body), "sfu_signaling_rooms", &[]).is_some());
}

#[tokio::test]
async fn a_metrics_listener_of_its_own() {
    // A free port for the metrics listener: bind, read, release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let srv = Signaling::start(&["--metrics-listen", &addr, "--auth-secret", "s"]);
    let (status, _, body) = http_get(&addr, "/metrics", &[]).await;
    assert_eq!(status, 200, "no secret needed on the private listener");
    assert!(sample(
        &parse_prometheus(&body),
        "sfu_worker_up",
        &[("worker", "0")]
    )
    .is_some());
    let (status, _, _) = http_get(&srv.addr, "/metrics", &[("Authorization", "Bearer s")]).await;
    assert_eq!(status, 404, "not on the public listener");
}
