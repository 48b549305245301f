//! mediasoup 3.15.8 as a peer SFU: one worker, driven through its Node API by our control
//! process (`benches/mediasoup/control.cjs`), both started in the target namespace and
//! pinned to the target core (the worker inherits the pinning of the Node process that
//! spawns it). One router per room, one `WebRtcTransport` per session, producers and
//! consumers signalled like our daemon's. The worker is built by
//! `scripts/install-mediasoup.sh` against Debian's libraries (see there for how that build
//! differs from the official one).

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Stdio};

use serde_json::{json, Value};

use super::{kill_child, Env, PubSpec, Signalled, SubSpec, Target, TargetStats};
use crate::webrtc::Remote;

pub(crate) struct Mediasoup {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The worker's pid: the process whose CPU and memory are reported (the Node process
    /// only signals).
    worker_pid: u32,
    next_id: u64,
}

/// The control script, beside this crate's sources.
fn control_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mediasoup/control.cjs")
}

/// Where `scripts/install-mediasoup.sh` keeps its build.
pub(crate) fn cache_dir() -> PathBuf {
    match std::env::var_os("SFU_MEDIASOUP_CACHE") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/sfu-mediasoup"),
    }
}

/// Whether the cached build is there (the smoke run skips mediasoup without it).
pub(crate) fn available() -> bool {
    cache_dir().join("bin/mediasoup-worker").is_file()
        && cache_dir()
            .join("node/node_modules/mediasoup/package.json")
            .is_file()
}

impl Mediasoup {
    pub(crate) fn start(env: &Env) -> Result<Self, String> {
        if !available() {
            return Err(format!(
                "no mediasoup build in {} (run scripts/install-mediasoup.sh)",
                cache_dir().display()
            ));
        }
        let mut cmd = env.command("node");
        cmd.arg(control_script())
            .env("SFU_MEDIASOUP_CACHE", cache_dir())
            .env("SERVER_IP", env.server_ip.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| format!("start mediasoup: {e}"))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            kill_child(&mut child);
            return Err("mediasoup control: no pipes".into());
        };
        let mut m = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            worker_pid: 0,
            next_id: 1,
        };
        let ready = m.read_line()?;
        m.worker_pid = ready["pid"]
            .as_u64()
            .and_then(|p| u32::try_from(p).ok())
            .ok_or_else(|| format!("mediasoup control: bad ready line {ready}"))?;
        Ok(m)
    }

    /// The next answer line; other output (mediasoup's debug logging, when `DEBUG` asks
    /// for it, also goes to stdout) is passed on to stderr.
    fn read_line(&mut self) -> Result<Value, String> {
        loop {
            let mut line = String::new();
            let n = self
                .stdout
                .read_line(&mut line)
                .map_err(|e| format!("mediasoup control read: {e}"))?;
            if n == 0 {
                return Err("mediasoup control exited".into());
            }
            if !line.starts_with('{') {
                eprint!("{line}");
                continue;
            }
            return serde_json::from_str(&line)
                .map_err(|e| format!("mediasoup control {line:?}: {e}"));
        }
    }

    fn call(&mut self, mut request: Value) -> Result<Signalled, String> {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = json!(id);
        let mut line = request.to_string();
        line.push('\n');
        self.stdin
            .write_all(line.as_bytes())
            .map_err(|e| format!("mediasoup control write: {e}"))?;
        let r = self.read_line()?;
        if r["id"] != id {
            return Err(format!("mediasoup control: answer to another request: {r}"));
        }
        if let Some(e) = r.get("error") {
            return Err(format!("mediasoup {}: {e}", request["method"]));
        }
        remote(&r["ok"])
    }
}

/// The transport's ICE parameters and candidate; we are the DTLS client.
fn remote(ok: &Value) -> Result<Signalled, String> {
    let ip = ok["ip"].as_str().ok_or("mediasoup: no candidate")?;
    let port = ok["port"].as_u64().ok_or("mediasoup: no candidate port")?;
    let addr: SocketAddr = format!("{ip}:{port}")
        .parse()
        .map_err(|e| format!("mediasoup candidate: {e}"))?;
    Ok(Signalled::Ice(Remote {
        addr,
        ufrag: ok["ufrag"].as_str().unwrap_or_default().to_owned(),
        pwd: ok["pwd"].as_str().unwrap_or_default().to_owned(),
        dtls_client: true,
    }))
}

impl Target for Mediasoup {
    fn pid(&self) -> u32 {
        self.worker_pid
    }

    fn add_publisher(&mut self, p: &PubSpec) -> Result<Signalled, String> {
        self.call(json!({
            "method": "publisher",
            "room": p.room,
            "index": p.index,
            "fingerprint": p.fingerprint,
            "audioSsrc": p.audio_ssrc,
            "videoSsrc": p.video_ssrc(),
            "videoRtxSsrc": p.video_rtx_ssrc,
            "feedback": p.feedback,
        }))
    }

    fn add_subscriber(&mut self, s: &SubSpec) -> Result<Signalled, String> {
        self.call(json!({
            "method": "subscriber",
            "room": s.room,
            "fingerprint": s.fingerprint,
            "publishers": s.publishers,
            "feedback": s.feedback,
        }))
    }

    fn stats(&mut self, _reset: bool) -> Result<TargetStats, String> {
        // mediasoup exposes no forwarding-latency histogram.
        Ok(TargetStats::default())
    }
}

impl Drop for Mediasoup {
    fn drop(&mut self) {
        // The worker exits when its Node parent does (its channel closes).
        kill_child(&mut self.child);
    }
}
