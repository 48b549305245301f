//! The systems under test, behind one interface: our SFU (`sfu`), the floor forwarder
//! (`floor`), Janus (`janus`) and mediasoup (`mediasoup`). Each target runs in the server network namespace, pinned
//! to its core; the generator signals sessions through the target's own API.

pub(crate) mod control;
pub(crate) mod floor;
pub(crate) mod janus;
pub(crate) mod mediasoup;
pub(crate) mod sdp;
pub(crate) mod sfu;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use ::sfu::srtp::SrtpProfile;
use serde_json::Value;

use crate::media::VideoShape;
use crate::webrtc::Remote;

/// How the generator reaches the target and where things run.
#[derive(Clone, Debug)]
pub(crate) struct Env {
    /// Named network namespace of the targets (`ip netns exec NAME`), if any.
    pub(crate) netns: Option<String>,
    /// The targets' address on the veth pair.
    pub(crate) server_ip: std::net::Ipv4Addr,
    /// CPU the target is pinned to, if any.
    pub(crate) cpu: Option<usize>,
    /// Directory of the built binaries (target/release).
    pub(crate) bin_dir: PathBuf,
    /// Scratch directory for control sockets and configuration.
    pub(crate) work_dir: PathBuf,
}

impl Env {
    /// A command that runs `program` in the target namespace, pinned.
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut argv: Vec<String> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns].map(String::from));
        }
        if let Some(cpu) = self.cpu {
            argv.extend(["taskset".into(), "-c".into(), cpu.to_string()]);
        }
        argv.push(program.to_owned());
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..]);
        c.stdin(Stdio::null());
        // A target must not outlive the generator (e.g. when the bench is interrupted):
        // the kernel kills it when its parent dies. `ip netns exec` and `taskset` exec
        // their argument, which keeps this setting.
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        c
    }

    /// The netns file for `connect_in_netns`.
    pub(crate) fn netns_path(&self) -> Option<PathBuf> {
        self.netns
            .as_ref()
            .map(|n| PathBuf::from(format!("/var/run/netns/{n}")))
    }
}

/// A publisher the generator wants: its socket address and ICE credentials, its SSRCs.
#[derive(Clone, Debug)]
pub(crate) struct PubSpec {
    pub(crate) room: usize,
    /// Global publisher index.
    pub(crate) index: usize,
    pub(crate) local: SocketAddr,
    pub(crate) ufrag: String,
    pub(crate) pwd: String,
    pub(crate) fingerprint: String,
    pub(crate) audio_ssrc: u32,
    /// One SSRC per video stream, lowest layer first (one unless `video` is layered).
    pub(crate) video_ssrcs: Vec<u32>,
    /// RTX SSRC of the video stream, signalled when `feedback`.
    pub(crate) video_rtx_ssrc: u32,
    pub(crate) video: VideoShape,
    /// Negotiate NACK with RTX (the feedback scenarios).
    pub(crate) feedback: bool,
}

impl PubSpec {
    /// The SSRC of the (first) video stream: that of a single-layer publisher.
    pub(crate) fn video_ssrc(&self) -> u32 {
        self.video_ssrcs.first().copied().unwrap_or(0)
    }
}

/// A subscriber: which publishers (global indices) it receives.
#[derive(Clone, Debug)]
pub(crate) struct SubSpec {
    pub(crate) room: usize,
    pub(crate) index: usize,
    pub(crate) local: SocketAddr,
    pub(crate) ufrag: String,
    pub(crate) pwd: String,
    pub(crate) fingerprint: String,
    pub(crate) publishers: Vec<usize>,
    /// The video layer it receives of layered publishers (0 = lowest).
    pub(crate) layer: u8,
    /// Negotiate NACK and transport-cc (the feedback scenarios).
    pub(crate) feedback: bool,
}

/// What signalling produced for a session.
pub(crate) enum Signalled {
    /// Real ICE + DTLS against `Remote`.
    Ice(Remote),
    /// The floor: no ICE or DTLS, SRTP keys agreed beforehand (we act as DTLS client).
    Preshared {
        addr: SocketAddr,
        profile: SrtpProfile,
        material: Vec<u8>,
    },
}

/// The target's own view of its forwarding latency and counters.
#[derive(Default, Debug, Clone)]
pub(crate) struct TargetStats {
    /// In-target latency (receive -> send submission), the daemon's `worker.getLatency` shape.
    pub(crate) latency: Option<Value>,
    pub(crate) extra: Value,
}

pub(crate) trait Target {
    /// Process whose CPU and memory are reported.
    fn pid(&self) -> u32;
    fn add_publisher(&mut self, p: &PubSpec) -> Result<Signalled, String>;
    /// Called once every publisher is connected and sending (Janus needs a publisher's
    /// `webrtcup` before anyone can subscribe).
    fn publishers_ready(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn add_subscriber(&mut self, s: &SubSpec) -> Result<Signalled, String>;
    /// Reads (and with `reset`, restarts) the target's own latency histogram.
    fn stats(&mut self, reset: bool) -> Result<TargetStats, String>;
    /// Keeps signalling sessions alive during long runs (Janus sessions time out).
    fn keepalive(&mut self) {}
}

/// Kills a child we started (by its pid, never by name) and reaps it.
pub(crate) fn kill_child(child: &mut Child) {
    // SIGTERM first so Janus/the daemon can exit cleanly; then SIGKILL.
    // SAFETY: signalling a pid we own.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    for _ in 0..50 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The pid of the real server under `ip netns exec` / `taskset`, which exec their
/// argument, so the pid is the child's own.
pub(crate) fn child_pid(child: &Child) -> u32 {
    child.id()
}
