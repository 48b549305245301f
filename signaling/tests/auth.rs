//! Access control: with `--auth-secret`, joining needs a token minted by
//! `sfu-signaling token`; missing, wrong and expired tokens are refused. The room API is
//! opened by `--metrics-token`, never by the secret that mints join tokens.

mod common;

use std::process::Command;

use serde_json::json;
use sfu_signaling::token::{mint, Claims};

use common::{Client, Signaling};

fn token_cli(secret: &str, room: &str, name: &str, ttl: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sfu-signaling"))
        .args([
            "token", "--secret", secret, "--room", room, "--name", name, "--ttl", ttl,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn tokens_are_checked() {
    let srv = Signaling::start(&[
        "--auth-secret",
        "correct horse",
        "--metrics-token",
        "battery-staple",
    ]);
    let mut c = Client::connect(&srv.ws_url()).await;
    let join = |token: Option<String>| json!({"type": "join", "room": "vault", "name": "ada", "token": token});

    c.send(join(None)).await;
    let e = c.expect_error("Unauthorized").await;
    assert!(
        e["message"].as_str().unwrap().contains("requires a token"),
        "{e}"
    );

    c.send(join(Some(token_cli("wrong secret", "vault", "ada", "600"))))
        .await;
    let e = c.expect_error("Unauthorized").await;
    assert!(e["message"].as_str().unwrap().contains("signature"), "{e}");

    let expired = mint(
        b"correct horse",
        &Claims {
            room: "vault".into(),
            name: "ada".into(),
            exp: 1,
        },
    );
    c.send(join(Some(expired))).await;
    let e = c.expect_error("Unauthorized").await;
    assert!(e["message"].as_str().unwrap().contains("expired"), "{e}");

    c.send(join(Some(token_cli(
        "correct horse",
        "other-room",
        "ada",
        "600",
    ))))
    .await;
    c.expect_error("Unauthorized").await;
    c.send(join(Some("v1.garbage.garbage".into()))).await;
    c.expect_error("Unauthorized").await;

    c.send(join(Some(token_cli(
        "correct horse",
        "vault",
        "ada",
        "600",
    ))))
    .await;
    c.expect("joined").await;

    // The room API needs the metrics token; the join tokens' secret does not open it.
    for bearer in [None, Some("correct horse"), Some("battery-stapl3")] {
        let refused = get_status(&srv.addr, "/api/rooms/vault", bearer).await;
        assert!(refused.starts_with("HTTP/1.1 401"), "{bearer:?}: {refused}");
        assert!(!refused.contains("\"ada\""), "{refused}");
    }
    let ok = get_status(&srv.addr, "/api/rooms/vault", Some("battery-staple")).await;
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.contains("\"ada\""),
        "{ok}"
    );
}

#[tokio::test]
async fn without_a_metrics_token_a_protected_server_shows_no_rooms() {
    let srv = Signaling::start(&["--auth-secret", "correct horse"]);
    for bearer in [Some("correct horse"), None] {
        let r = get_status(&srv.addr, "/api/rooms/vault", bearer).await;
        assert!(r.starts_with("HTTP/1.1 404"), "{bearer:?}: {r}");
        assert!(r.contains("metrics_token"), "says what to set: {r}");
    }
}

#[test]
fn one_secret_for_both_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_sfu-signaling"))
        .args([
            "--auth-secret",
            "same",
            "--metrics-token",
            "same",
            "--print-config",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`metrics_token`"), "{stderr}");
    assert!(
        !stderr.contains("same"),
        "the secret is not echoed: {stderr}"
    );
}

async fn get_status(addr: &str, path: &str, bearer: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = bearer
        .map(|b| format!("Authorization: Bearer {b}\r\n"))
        .unwrap_or_default();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[test]
fn the_token_command_refuses_bad_input() {
    let out = Command::new(env!("CARGO_BIN_EXE_sfu-signaling"))
        .args(["token", "--secret", "s", "--room", "a b", "--name", "ada"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid room"));
}
