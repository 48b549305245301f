//! Helpers of the limit and flood tests: clients from chosen loopback addresses, raw
//! WebSocket frames (partial ones included), a keep-alive HTTP client, a server under a
//! low open-file limit, and the process figures (RSS, open fds) the tests check.

use std::net::{IpAddr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{Signaling, DEADLINE};

/// `SFU_SOAK_SCALE` (default 1): soak and flood counts are multiplied by it.
pub fn soak_scale() -> usize {
    std::env::var("SFU_SOAK_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}

/// Raises this test process's soft open-file limit to its hard limit (floods hold
/// thousands of client sockets); returns the limit now in force.
pub fn raise_own_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write and read the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

impl Signaling {
    /// `start` with the server's open-file limit (soft and hard) set to `nofile`, so that
    /// raising the soft limit to the hard one cannot lift it.
    pub fn start_with_nofile(extra: &[&str], nofile: u64) -> Self {
        Self::start_with(extra, |cmd| {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: nofile,
                        rlim_max: nofile,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        })
    }

    pub fn socket_addr(&self) -> SocketAddr {
        self.addr.parse().unwrap()
    }
}

/// The `i`th of many distinct loopback source addresses (127.1.x.y), for floods that must
/// stay under the per-address cap.
pub fn loopback(i: usize) -> IpAddr {
    // 250 per third octet: the last one stays in 1..=250 (never 0 or 255).
    let (hi, lo) = (u8::try_from(i / 250).unwrap(), (i % 250) as u8);
    IpAddr::from([127, 1, hi, lo + 1])
}

/// A TCP connection to `to` from address `from` (any port).
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(from, 0))?;
    s.connect(to).await
}

/// A WebSocket to `/ws` from address `from`.
pub async fn ws_from(from: IpAddr, srv: &Signaling) -> WebSocketStream<TcpStream> {
    let tcp = connect_from(from, srv.socket_addr()).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(srv.ws_url(), tcp)
        .await
        .expect("WebSocket handshake");
    ws
}

/// The bytes of a masked client frame header announcing `len` payload bytes (the mask is
/// zero, so the payload goes as it is).
pub fn frame_header(data: Data, is_final: bool, len: u64) -> Vec<u8> {
    let header = FrameHeader {
        is_final,
        opcode: OpCode::Data(data),
        mask: Some([0; 4]),
        ..FrameHeader::default()
    };
    let mut out = Vec::new();
    header.format(len, &mut out).unwrap();
    out
}

/// Writes raw bytes under a WebSocket (after its handshake): frames tungstenite would not
/// send, such as one announced longer than what follows.
pub async fn write_raw(ws: &mut WebSocketStream<TcpStream>, bytes: &[u8]) -> std::io::Result<()> {
    ws.get_mut().write_all(bytes).await
}

/// Reads until the server's close frame (its code) or the end of the connection (None),
/// within `within`; panics if neither comes. Also counts the pings seen.
pub async fn close_code(
    ws: &mut WebSocketStream<TcpStream>,
    within: Duration,
) -> (Option<u16>, usize) {
    let end = Instant::now() + within;
    let mut pings = 0;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => panic!("the server did not close within {within:?}"),
            Ok(Some(Ok(Message::Close(f)))) => return (f.map(|f| u16::from(f.code)), pings),
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return (None, pings),
        }
    }
}

/// Waits until the server closes `s` (EOF or reset); the time it took.
pub async fn wait_eof(s: &mut TcpStream, within: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = within.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => panic!("not closed within {within:?}"),
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// An HTTP/1.1 keep-alive connection: several requests, one socket.
pub struct KeepAlive {
    s: TcpStream,
    host: String,
    buf: Vec<u8>,
}

impl KeepAlive {
    pub async fn connect(from: IpAddr, srv: &Signaling) -> Self {
        Self {
            s: connect_from(from, srv.socket_addr()).await.unwrap(),
            host: srv.addr.clone(),
            buf: Vec::new(),
        }
    }

    /// The socket, to watch it close.
    pub fn into_stream(self) -> TcpStream {
        self.s
    }

    /// GET `path`: (status, head, body). Bodies are de-chunked.
    pub async fn get(&mut self, path: &str) -> (u16, String, String) {
        // With the metrics token, so `/metrics` answers on servers started with it.
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\r\n",
            self.host,
            super::METRICS_TOKEN
        );
        self.s.write_all(req.as_bytes()).await.unwrap();
        tokio::time::timeout(DEADLINE, self.read_response())
            .await
            .expect("HTTP answer in time")
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = self.s.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the keep-alive connection");
        self.buf.extend_from_slice(&chunk[..n]);
    }

    async fn read_response(&mut self) -> (u16, String, String) {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        self.buf.drain(..head_end);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let lower = head.to_ascii_lowercase();
        let body = if lower.contains("transfer-encoding: chunked") {
            let end = loop {
                if let Some(i) = find(&self.buf, b"\r\n0\r\n\r\n") {
                    break i + 7;
                }
                self.fill().await;
            };
            let raw: Vec<u8> = self.buf.drain(..end).collect();
            super::dechunk(&String::from_utf8_lossy(&raw))
        } else {
            let len: usize = lower
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while self.buf.len() < len {
                self.fill().await;
            }
            String::from_utf8_lossy(&self.buf.drain(..len).collect::<Vec<_>>()).to_string()
        };
        (status, head, body)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A one-shot GET from address `from`: (status, head). Connection refused or closed
/// without an answer is status 0.
pub async fn get_from(from: IpAddr, srv: &Signaling, path: &str) -> (u16, String) {
    let Ok(mut s) = connect_from(from, srv.socket_addr()).await else {
        return (0, String::new());
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        srv.addr
    );
    if s.write_all(req.as_bytes()).await.is_err() {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let read = tokio::time::timeout(DEADLINE, s.read_to_end(&mut out))
        .await
        .expect("an answer or a close in time");
    if read.is_err() && out.is_empty() {
        return (0, String::new());
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Resident memory of `pid`, KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Polls `f` until it holds, for at most `within`; false if it never did.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() >= within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
