//! `/metrics`: Prometheus text (checked by an independent strict parser), the signaling
//! process's own gauges and every worker's stats labelled by worker; on the public
//! listener only with `--metrics-token` (never opened by the join tokens' `--auth-secret`);
//! on its own listener with `--metrics-listen`.

mod common;

use serde_json::json;

use common::{fixture, http_get, parse_prometheus, sample, sum, Client, Signaling, METRICS_TOKEN};

const BEARER: &str = "Bearer test-metrics-token";

#[tokio::test]
async fn rooms_peers_and_every_worker_are_reported() {
    assert_eq!(BEARER, format!("Bearer {METRICS_TOKEN}"));
    let srv = Signaling::start(&["--workers", "2", "--metrics-token", METRICS_TOKEN]);
    let mut ada = Client::connect(&srv.ws_url()).await;
    ada.join("gauges", "ada").await;
    ada.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    ada.until("answer").await;
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("gauges", "bob").await;
    bob.until("offer").await;

    let (status, headers, body) =
        http_get(&srv.addr, "/metrics", &[("Authorization", BEARER)]).await;
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
            "sfu_worker_probe_clusters_total",
            "sfu_worker_probe_clusters_succeeded_total",
            "sfu_worker_probe_clusters_aborted_total",
            "sfu_worker_probe_padding_bytes_total",
            "sfu_worker_retransmissions_over_budget_total",
            "sfu_worker_keyframe_requests_repeated_total",
            "sfu_worker_dominant_speaker_changes_total",
            "sfu_worker_consumers_limited_by_bandwidth",
            "sfu_worker_red_packets_unwrapped_total",
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
        for layer in ["spatial", "temporal"] {
            assert!(
                sample(
                    &m,
                    "sfu_worker_layer_switches_total",
                    &[("worker", w), ("layer", layer)]
                )
                .is_some(),
                "{body}"
            );
        }
    }
    assert_eq!(sum(&m, "sfu_worker_routers"), 1.0);
    assert_eq!(sum(&m, "sfu_worker_producers"), 2.0);
    assert_eq!(sum(&m, "sfu_worker_consumers"), 2.0);
    assert_eq!(sum(&m, "sfu_worker_transports"), 2.0);
    bob.close().await;
    ada.close().await;
}

/// The status of `/metrics` on the public listener with `authorization` (if any).
async fn metrics_status(srv: &Signaling, authorization: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = authorization
        .map(|a| ("Authorization", a))
        .into_iter()
        .collect();
    let (status, _, body) = http_get(&srv.addr, "/metrics", &headers).await;
    (status, body)
}

#[tokio::test]
async fn the_metrics_token_opens_metrics_and_the_auth_secret_does_not() {
    let srv = Signaling::start(&["--auth-secret", "hunter2", "--metrics-token", "scrape-me"]);
    let (status, body) = metrics_status(&srv, Some("Bearer scrape-me")).await;
    assert_eq!(status, 200, "{body}");
    assert!(sample(&parse_prometheus(&body), "sfu_signaling_rooms", &[]).is_some());
    // Whoever may scrape must not learn to mint join tokens, and the reverse: the HMAC
    // secret is no bearer token.
    assert_eq!(metrics_status(&srv, Some("Bearer hunter2")).await.0, 401);
    assert_eq!(metrics_status(&srv, None).await.0, 401);
    // Wrong tokens of the same length and of other lengths, a prefix, another scheme.
    for wrong in [
        "Bearer scrape-mE",
        "Bearer xcrape-me",
        "Bearer scrape-m",
        "Bearer scrape-me-too",
        "Bearer s",
        "Basic scrape-me",
        "scrape-me",
    ] {
        let (status, body) = metrics_status(&srv, Some(wrong)).await;
        assert_eq!(status, 401, "{wrong}: {body}");
        assert!(!body.contains("sfu_signaling_rooms"), "{wrong}");
    }
    // The scheme name is case-insensitive (RFC 9110 §11.1).
    assert_eq!(metrics_status(&srv, Some("bearer scrape-me")).await.0, 200);
}

#[tokio::test]
async fn without_a_metrics_token_the_public_listener_does_not_serve_metrics() {
    // With access control: the secret opens nothing here.
    let srv = Signaling::start(&["--auth-secret", "hunter2"]);
    for auth in [Some("Bearer hunter2"), None] {
        let (status, body) = metrics_status(&srv, auth).await;
        assert_eq!(status, 404, "{auth:?}: {body}");
        assert!(body.contains("metrics_token"), "says what to set: {body}");
    }
    // Nor on an open server: metrics are for operators, not for whoever reaches the page.
    let open = Signaling::start(&[]);
    assert_eq!(metrics_status(&open, None).await.0, 404);
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
    let srv = Signaling::start(&[
        "--metrics-listen",
        &addr,
        "--auth-secret",
        "s",
        "--metrics-token",
        "m",
    ]);
    let (status, _, body) = http_get(&addr, "/metrics", &[]).await;
    assert_eq!(status, 200, "no secret needed on the private listener");
    assert!(sample(
        &parse_prometheus(&body),
        "sfu_worker_up",
        &[("worker", "0")]
    )
    .is_some());
    for token in ["s", "m"] {
        let (status, _) = metrics_status(&srv, Some(&format!("Bearer {token}"))).await;
        assert_eq!(
            status, 404,
            "not on the public listener, whatever the token"
        );
    }
}
