//! TURN for the pages: the `ice_servers` setting reaches each page in `joined`, TURN
//! credentials derived per participant from the shared secret as coturn's REST API
//! checks them (HMAC-SHA1 recomputed here with the `hmac` crate, independently of the
//! server's code); bad entries stop the process at start naming the key; the secret is
//! hidden in `--print-config`.

mod common;

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;

use common::{Client, Signaling};

const CONFIG: &str = r#"
[[ice_servers]]
urls = ["stun:stun.example.com:3478"]

[[ice_servers]]
urls = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com:5349"]
secret = "north-sea"
ttl = 600
"#;

fn write_config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signaling.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

#[tokio::test]
async fn joined_pages_get_the_ice_servers_with_fresh_turn_credentials() {
    let (_dir, path) = write_config(CONFIG);
    let srv = Signaling::start(&["--config", &path]);
    let mut c = Client::connect(&srv.ws_url()).await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let joined = c.join("harbour", "ada").await;
    let servers = joined["iceServers"].as_array().expect("iceServers").clone();
    assert_eq!(servers.len(), 2, "{joined}");
    assert_eq!(servers[0], json!({"urls": ["stun:stun.example.com:3478"]}));
    assert_eq!(
        servers[1]["urls"],
        json!([
            "turn:turn.example.com:3478?transport=udp",
            "turns:turn.example.com:5349"
        ])
    );
    let username = servers[1]["username"].as_str().unwrap();
    let (expiry, name) = username.split_once(':').unwrap();
    assert_eq!(name, "ada");
    let expiry: u64 = expiry.parse().unwrap();
    assert!(
        (before + 600..=before + 602).contains(&expiry),
        "expires ttl after the join: {expiry} vs {before}"
    );
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"north-sea").unwrap();
    mac.update(username.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(servers[1]["credential"], expected.as_str());

    // Without the setting, `joined` carries none (the page then uses no STUN/TURN).
    let plain = Signaling::start(&[]);
    let mut c = Client::connect(&plain.ws_url()).await;
    let joined = c.join("harbour", "bob").await;
    assert!(joined.get("iceServers").is_none(), "{joined}");
}

#[test]
fn bad_entries_exit_78_and_the_secret_is_hidden() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sfu-signaling"))
            .args(args)
            .output()
            .unwrap()
    };
    let (_d, bad) = write_config("[[ice_servers]]\nurls = [\"turn:turn.example.com\"]\n");
    let out = run(&["--config", &bad]);
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ice_servers") && err.contains("needs a secret"),
        "{err}"
    );

    let (_d, good) = write_config(CONFIG);
    let out = run(&["--config", &good, "--print-config"]);
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("turns:turn.example.com:5349"), "{printed}");
    assert!(!printed.contains("north-sea"), "{printed}");
}
