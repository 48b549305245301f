//! Control-plane abuse helpers shared by tests/control_plane.rs and
//! tests/reliability_control.rs: a client that floods requests and never reads, and the
//! daemon's memory and descriptors as /proc shows them.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a flood did.
#[derive(Debug)]
pub struct Flood {
    /// Requests written before the daemon closed the connection (or all of them).
    pub sent: u64,
    /// Whether the daemon closed the connection.
    pub disconnected: bool,
    pub secs: f64,
}

/// Requests written per `write` (one request is about 40 bytes).
const CHUNK: u64 = 500;

/// Writes up to `max` `worker.getStats` requests on `stream` without ever reading,
/// stopping early when the daemon closes the connection.
pub fn flood_unread(stream: &mut UnixStream, max: u64) -> Flood {
    // A daemon that neither reads nor closes would block us forever.
    stream
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let start = Instant::now();
    let mut sent = 0;
    let mut buf = Vec::new();
    while sent < max {
        buf.clear();
        let n = CHUNK.min(max - sent);
        for id in sent..sent + n {
            let body = format!(r#"{{"id":{id},"method":"worker.getStats"}}"#);
            buf.extend(sfu_control::framing::encode(body.as_bytes()));
        }
        match stream.write_all(&buf) {
            Ok(()) => sent += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                return Flood {
                    sent,
                    disconnected: true,
                    secs: start.elapsed().as_secs_f64(),
                }
            }
            Err(e) => panic!("flood write failed: {e}"),
        }
    }
    Flood {
        sent,
        disconnected: false,
        secs: start.elapsed().as_secs_f64(),
    }
}

/// Connects to a control socket without reading anything (not even `ready`).
pub fn connect_unread(path: &Path) -> UnixStream {
    UnixStream::connect(path).expect("connect control socket")
}

/// Resident set size of process `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Open file descriptors of process `pid`.
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// `SFU_SOAK_SCALE` (default 1): how many times longer the soak cases run.
pub fn soak_scale() -> u64 {
    std::env::var("SFU_SOAK_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1)
}
