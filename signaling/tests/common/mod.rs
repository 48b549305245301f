//! Test harness: the real `sfu-signaling` binary (which starts the real `sfu`), a
//! WebSocket client, and a control-channel client for checking the daemon's own view.
#![allow(dead_code, unreachable_pub, unused_imports)]

mod limits;
mod prometheus;

pub use limits::*;
pub use prometheus::{parse_prometheus, sample, sum, PromSample};

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sfu_control::requests::WorkerLoad;
use sfu_control::responses::Load;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound of any single wait in these tests.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// `sfu`, built beside `sfu-signaling` by `cargo test --workspace` (or `cargo build -p sfu`).
pub fn sfu_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_sfu-signaling")).with_file_name("sfu");
    assert!(
        p.is_file(),
        "{} is missing: build the daemon first (cargo build -p sfu)",
        p.display()
    );
    p
}

/// A running `sfu-signaling`, killed on drop (its private daemon follows it).
pub struct Signaling {
    child: Child,
    pub url: String,
    pub addr: String,
}

impl Signaling {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit: (status, time it took).
    pub fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let start = Instant::now();
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        (status, start.elapsed())
    }

    pub fn start(extra: &[&str]) -> Self {
        Self::start_with(extra, |_| {})
    }

    /// `start`, with `tweak` applied to the command first (limits, environment).
    pub fn start_with(extra: &[&str], tweak: impl FnOnce(&mut Command)) -> Self {
        let sfu = sfu_bin();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sfu-signaling"));
        tweak(&mut cmd);
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0"])
            .args(if extra.contains(&"--workers") {
                &[][..]
            } else {
                &["--workers", "1"][..]
            })
            .arg("--sfu")
            .arg(&sfu)
            .args([
                "--log",
                &std::env::var("SFU_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sfu-signaling");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("ready line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://") || w.starts_with("https://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .trim_end_matches('/')
            .to_owned();
        let addr = url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_owned();
        Self { child, url, addr }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }
}

impl Drop for Signaling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon started by the test (for `--daemon DIR` and for looking at its state).
pub struct Daemon {
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Daemon {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let child = Self::spawn(dir.path());
        Self { child, dir }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash would (no notifications, no close_notify, stale sockets).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as `systemctl stop` would: the daemon closes everything with
    /// notifications and exits.
    pub fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the daemon stops cleanly: {status}");
    }

    /// Starts it again with the same command line and control directory, as systemd's
    /// `Restart=` would; returns once it announced itself ready.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Self::spawn(self.dir.path());
    }

    fn spawn(dir: &Path) -> Child {
        let mut child = Command::new(sfu_bin())
            .args([
                "--workers",
                "1",
                "--rtc-port",
                "0",
                "--pin",
                "false",
                "--listen-ip",
                "127.0.0.1",
            ])
            .arg("--control")
            .arg(dir)
            .args(["--log", "warn,rtc_dtls=error"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sfu");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("ready line");
        assert!(line.contains("\"ready\""), "{line}");
        child
    }

    /// A control connection of our own (the signaling process has its own).
    pub fn control(&self) -> Control {
        Control::connect(&self.dir.path().join("worker-0.sock"))
    }

    /// An admin control connection: it may look at signaling's routers and consumers.
    pub fn admin(&self) -> Control {
        Control::connect(&self.dir.path().join("worker-0.admin.sock"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking control-channel client (sfu-control's), with the worker's `ready` read.
pub struct Control {
    client: sfu_control::client::Client,
}

impl Control {
    pub fn connect(path: &Path) -> Self {
        let client = sfu_control::client::Client::connect(path).unwrap();
        client.stream().set_read_timeout(Some(DEADLINE)).unwrap();
        let mut c = Self { client };
        let ready = c.client.next_event().unwrap();
        assert!(
            matches!(ready.event, sfu_control::Event::Ready { .. }),
            "{ready:?}"
        );
        c
    }

    /// `worker.load`.
    pub fn load(&mut self) -> Load {
        self.client.request(&WorkerLoad::default()).unwrap()
    }

    /// `consumer.getStats` of `consumer_id`.
    pub fn consumer_stats(&mut self, consumer_id: &str) -> sfu_control::responses::ConsumerStats {
        self.client
            .request(&sfu_control::requests::ConsumerGetStats::new(consumer_id))
            .unwrap()
    }

    /// Waits (with a deadline, no fixed sleep) until `worker.load` satisfies `f`.
    pub fn wait_load(&mut self, within: Duration, f: impl Fn(&Load) -> bool) -> Load {
        let start = Instant::now();
        loop {
            let load = self.load();
            if f(&load) {
                return load;
            }
            assert!(
                start.elapsed() < within,
                "worker.load never matched: {load:?}"
            );
            std::thread::yield_now();
        }
    }
}

/// A WebSocket client speaking the signaling protocol.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Everything received, in order.
    pub log: Vec<Value>,
}

impl Client {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        Self {
            ws,
            log: Vec::new(),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_raw(
        &mut self,
        m: Message,
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        self.ws.send(m).await
    }

    /// The next message, whatever it is.
    pub async fn next(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("no message in time")
                .expect("connection ended")
                .expect("read");
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                self.log.push(v.clone());
                return v;
            }
        }
    }

    /// The next message, which must be of type `ty`.
    pub async fn expect(&mut self, ty: &str) -> Value {
        let v = self.next().await;
        assert_eq!(v["type"], ty, "expected {ty}, got {v}");
        v
    }

    /// Skips messages until one of type `ty` (transport states, producer notices...).
    pub async fn until(&mut self, ty: &str) -> Value {
        loop {
            let v = self.next().await;
            if v["type"] == ty {
                return v;
            }
            assert_ne!(
                v["type"], "error",
                "unexpected error while waiting for {ty}: {v}"
            );
        }
    }

    /// The next message must be an error with `code`.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let v = self.expect("error").await;
        assert_eq!(v["code"], code, "{v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        v
    }

    /// Reads until the server closes; returns the close code if one was sent.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(DEADLINE, self.ws.next())
                .await
                .expect("not closed in time")
            {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn join(&mut self, room: &str, name: &str) -> Value {
        self.send(json!({ "type": "join", "room": room, "name": name }))
            .await;
        self.expect("joined").await
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A fixture file of signaling/tests/fixtures.
pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// A browser-like answer to a receive-side offer: every m-line accepted (recvonly),
/// DTLS active, a fixed fingerprint.
pub fn answer_for(offer: &str) -> String {
    let mut out = Vec::new();
    for line in offer.split("\r\n").filter(|l| !l.is_empty()) {
        let l = match line {
            "a=sendonly" => "a=recvonly".to_owned(),
            "a=setup:actpass" => "a=setup:active".to_owned(),
            "a=ice-lite" => continue,
            l if l.starts_with("a=candidate") || l == "a=end-of-candidates" => continue,
            l if l.starts_with("a=ssrc") || l.starts_with("a=msid:") => continue,
            l if l.starts_with("a=fingerprint") => {
                "a=fingerprint:sha-256 AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99".to_owned()
            }
            l if l.starts_with("a=ice-ufrag") => "a=ice-ufrag:abcd".to_owned(),
            l if l.starts_with("a=ice-pwd") => "a=ice-pwd:abcdefghijklmnopqrstuvwx".to_owned(),
            l => l.to_owned(),
        };
        out.push(l);
    }
    out.join("\r\n") + "\r\n"
}

/// A plain HTTP/1.1 GET: (status, lower-cased headers, body).
pub async fn http_get(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    http_request(addr, "GET", path, headers, b"").await
}

/// The value of header `name` (lower case) in an [`http_request`] answer's headers.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A plain HTTP/1.1 request with a body (Content-Length set when there is one):
/// (status, lower-cased headers, body).
pub async fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut req = req.into_bytes();
    req.extend_from_slice(body);
    // The server may answer (413) and close before reading all of a large body.
    let _ = s.write_all(&req).await;
    let mut raw = Vec::new();
    // A reset after the answer (the server closed with unread body bytes) still leaves
    // the answer read.
    let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut raw))
        .await
        .expect("HTTP answer in time");
    let out = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {out:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    // Chunked bodies (axum streams /metrics this way) are de-chunked.
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, headers, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(rest.get(..n).unwrap_or(rest));
        s = rest.get(n..).unwrap_or_default().trim_start_matches("\r\n");
    }
    out
}

/// The `--metrics-token` of tests that scrape `/metrics` on the public listener.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// `/metrics` of a server started with `--metrics-token` [`METRICS_TOKEN`], parsed.
pub async fn scrape(addr: &str) -> Vec<PromSample> {
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let (status, _, body) = http_get(addr, "/metrics", &[("Authorization", &bearer)]).await;
    assert_eq!(status, 200, "/metrics: {body}");
    parse_prometheus(&body)
}

/// GET of a JSON document, with [`METRICS_TOKEN`] (the room API needs it on a server
/// started with `--metrics-token`; an open server without one ignores it).
pub async fn get_json(addr: &str, path: &str) -> Value {
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let (status, _, body) = http_get(addr, path, &[("Authorization", &bearer)]).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{status} {e}: {body}"))
}

/// Pids of the direct children of `pid`.
pub fn children(pid: u32) -> Vec<u32> {
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

pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

pub fn wait_gone(pid: u32) {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "process {pid} still alive"
        );
        std::thread::yield_now();
    }
}
