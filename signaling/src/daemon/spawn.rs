//! Starting a private daemon: `sfu` with a control directory of ours, waited for by its
//! one-line `ready` announcement on stdout (no polling for sockets), restarted by the
//! supervisor when it dies, stopped when the signaling process stops.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a starting daemon may take to announce itself.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How to start the daemon.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    pub binary: PathBuf,
    pub workers: Option<usize>,
    pub listen_ip: IpAddr,
    pub rtc_port: u16,
    pub announced_ip: Option<IpAddr>,
    pub log: String,
}

/// A running daemon we started. Dropping it kills the process (`kill_on_drop`).
#[derive(Debug)]
pub(super) struct SpawnedDaemon {
    child: Child,
}

/// `sfu` in the directory of the running executable (how `cargo build` and packages lay
/// binaries out).
pub fn sfu_beside_current_exe() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate own executable: {e}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", exe.display()))?;
    Ok(dir.join("sfu"))
}

impl SpawnedDaemon {
    /// Starts the daemon with control directory `dir` and waits until all its workers
    /// listen.
    pub(super) async fn start(opts: &SpawnOptions, dir: &Path) -> Result<Self, String> {
        if !opts.binary.is_file() {
            return Err(format!(
                "cannot find the media daemon at {} (build it with `cargo build -p sfu`, or pass --sfu PATH or --daemon DIR)",
                opts.binary.display()
            ));
        }
        let mut cmd = Command::new(&opts.binary);
        cmd.arg("--control")
            .arg(dir)
            .args(["--rtc-port", &opts.rtc_port.to_string()])
            .args(["--listen-ip", &opts.listen_ip.to_string()])
            // The signaling process and browsers share the machine's cores in a one-command
            // setup; pinning the workers would fight them.
            .args(["--pin", "false"])
            .args(["--log", &opts.log])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(n) = opts.workers {
            cmd.args(["--workers", &n.to_string()]);
        }
        if let Some(ip) = opts.announced_ip {
            cmd.args(["--announced-ip", &ip.to_string()]);
        }
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent. It makes
        // the kernel stop the daemon if this process dies without running destructors
        // (SIGKILL), so a private daemon never outlives its signaling process.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", opts.binary.display()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| "daemon stdout not captured".to_owned())?;
        let mut lines = BufReader::new(stdout).lines();
        let wait_ready = async {
            loop {
                match lines.next_line().await {
                    Ok(Some(line)) => {
                        let v: serde_json::Value = match serde_json::from_str(&line) {
                            Ok(v) => v,
                            Err(_) => continue,
                        };
                        if v.get("event").and_then(|e| e.as_str()) == Some("ready") {
                            return Ok(v);
                        }
                    }
                    Ok(None) => return Err("the daemon exited before it was ready".to_owned()),
                    Err(e) => return Err(format!("cannot read the daemon's output: {e}")),
                }
            }
        };
        let ready = tokio::time::timeout(READY_TIMEOUT, wait_ready)
            .await
            .map_err(|_| format!("the daemon was not ready within {READY_TIMEOUT:?}"))??;
        tracing::info!(pid = child.id(), %ready, "media daemon started");
        // Keep draining stdout so that a later write never blocks or fails the daemon.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child })
    }

    /// The daemon's process id, while it runs.
    pub(super) fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Resolves when the daemon exits (which it must not do on its own).
    pub(super) async fn exited(&mut self) -> String {
        match self.child.wait().await {
            Ok(status) => format!("the media daemon exited: {status}"),
            Err(e) => format!("cannot wait for the media daemon: {e}"),
        }
    }

    /// Stops the daemon: SIGTERM (it closes every transport, telling the browsers), then
    /// SIGKILL if it is still there after `grace`.
    pub(super) async fn stop(mut self, grace: Duration) {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
            tracing::warn!(pid, "the media daemon did not stop in time: killing it");
        }
        let _ = self.child.kill().await;
    }
}
