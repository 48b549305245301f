//! Process lifecycle and placement: SIGTERM stops the signaling process cleanly within
//! 2 s (WebSockets closed with 1001, routers closed, the private daemon stopped); the
//! private daemon never outlives it; new rooms go to the least-loaded worker.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use common::{alive, children, fixture, get_json, sfu_bin, wait_gone, Client, Daemon, Signaling};

fn start_raw() -> (std::process::Child, u32) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfu-signaling"))
        .args(["--listen", "127.0.0.1:0", "--workers", "1", "--log", "warn"])
        .arg("--sfu")
        .arg(sfu_bin())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("http://127.0.0.1:"), "{line}");
    let kids = children(child.id());
    assert_eq!(kids.len(), 1, "one daemon started: {kids:?}");
    (child, kids[0])
}

#[test]
fn the_private_daemon_stops_with_sigterm() {
    let (mut child, daemon) = start_raw();
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    wait_gone(daemon);
}

#[test]
fn the_private_daemon_stops_even_on_sigkill() {
    let (mut child, daemon) = start_raw();
    child.kill().unwrap();
    child.wait().unwrap();
    wait_gone(daemon);
}

#[tokio::test]
async fn rooms_go_to_the_least_loaded_worker() {
    let srv = Signaling::start(&["--workers", "2"]);
    let room_worker = |stats: Value| stats["worker"].as_u64().unwrap();
    let mut a = Client::connect(&srv.ws_url()).await;
    a.join("first", "ada").await;
    a.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    a.until("answer").await;
    let mut b = Client::connect(&srv.ws_url()).await;
    b.join("second", "bob").await;
    let w1 = room_worker(get_json(&srv.addr, "/api/rooms/first").await);
    let w2 = room_worker(get_json(&srv.addr, "/api/rooms/second").await);
    assert_ne!(w1, w2, "the second room avoids the loaded worker");
    // A third joiner of the first room stays on its worker.
    let mut c = Client::connect(&srv.ws_url()).await;
    c.join("first", "cy").await;
    let first = get_json(&srv.addr, "/api/rooms/first").await;
    assert_eq!(room_worker(first.clone()), w1);
    assert_eq!(first["peers"].as_array().unwrap().len(), 2);
}

/// A participant publishing in `room`.
async fn publisher(srv: &Signaling, room: &str, name: &str) -> Client {
    let mut c = Client::connect(&srv.ws_url()).await;
    c.join(room, name).await;
    c.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    c.until("answer").await;
    c
}

#[tokio::test]
async fn sigterm_closes_websockets_with_1001_and_exits_0_within_2_s() {
    let mut srv = Signaling::start(&[]);
    let daemon = children(srv.pid());
    assert_eq!(daemon.len(), 1);
    let mut ada = publisher(&srv, "sigterm", "ada").await;
    let mut bob = publisher(&srv, "sigterm", "bob").await;
    let (status, took) = srv.terminate();
    println!("# SIGTERM with two participants publishing: exit {status} after {took:?}");
    assert!(status.success(), "exit 0 on SIGTERM: {status}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    for c in [&mut ada, &mut bob] {
        assert_eq!(c.closed().await, Some(1001), "going away");
    }
    wait_gone(daemon[0]);
}

#[tokio::test]
async fn sigterm_with_an_external_daemon_closes_its_routers_and_leaves_it_running() {
    let daemon = Daemon::start();
    let dir = daemon.dir.path().to_str().unwrap().to_owned();
    let mut srv = Signaling::start(&["--daemon", &dir]);
    let _ada = publisher(&srv, "external", "ada").await;
    let mut control = daemon.control();
    assert_eq!(control.load().routers, 1);
    let (status, took) = srv.terminate();
    println!("# SIGTERM with an external daemon: exit {status} after {took:?}");
    assert!(status.success(), "exit 0 on SIGTERM: {status}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    control.wait_load(Duration::from_secs(2), |l| {
        l.routers == 0 && l.transports == 0
    });
    assert!(
        alive(daemon.pid()),
        "the external daemon is not ours to stop"
    );
}
