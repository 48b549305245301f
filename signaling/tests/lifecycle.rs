//! Process lifecycle and placement: the private daemon stops with the signaling process;
//! new rooms go to the least-loaded worker.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{fixture, sfu_bin, Client, Signaling};

/// Pids of the direct children of `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces, so split after ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(pid.to_string().as_str()) {
            out.push(child);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

fn wait_gone(pid: u32) {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "process {pid} still alive"
        );
        std::thread::yield_now();
    }
}

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

async fn get_json(addr: &str, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {out}"))
}
