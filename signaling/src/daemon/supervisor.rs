//! Keeps a connection to the daemon. On a loss (a control socket's EOF, which comes at
//! once when the daemon dies, or our own daemon's exit) it publishes "down", drops every
//! connection, restarts the daemon if we started it, and reconnects with a short backoff
//! until the sockets are back (as systemd restarts an external daemon with the same
//! control directory), then publishes the next generation.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::spawn::{SpawnOptions, SpawnedDaemon};
use super::{connect_all, Daemon, DaemonCounters, DaemonState, WorkerClient};

/// Where the daemon comes from.
#[derive(Debug, Clone)]
pub enum DaemonSource {
    /// A daemon someone else runs (systemd), listening in this control directory.
    External(PathBuf),
    /// A daemon we start, restart and stop ourselves.
    Spawned(SpawnOptions),
}

/// How long an external daemon may take to be reachable when we start.
const STARTUP_WAIT: Duration = Duration::from_secs(10);
/// First and longest pause between reconnection attempts: short, so that a restarted
/// daemon is found within a fraction of a second of listening again.
const RETRY_FIRST: Duration = Duration::from_millis(25);
const RETRY_MAX: Duration = Duration::from_millis(250);
/// Consecutive failed starts of our own daemon before giving up (the process then exits
/// non-zero, for its own supervisor to act).
const MAX_FAILED_STARTS: u32 = 5;

/// The supervision task. Dropping it leaves the task running; call [`Supervisor::stop`].
#[derive(Debug)]
pub struct Supervisor {
    /// Some(grace) once stopping: how long our own daemon gets to stop.
    stop: watch::Sender<Option<Duration>>,
    task: JoinHandle<()>,
    fatal: Option<oneshot::Receiver<String>>,
}

/// What the task owns.
struct Task {
    source: DaemonSource,
    dir: PathBuf,
    /// Keeps our own daemon's control directory alive (removed on drop).
    _own_dir: Option<tempfile::TempDir>,
    child: Option<SpawnedDaemon>,
    state: watch::Sender<DaemonState>,
    counters: Arc<DaemonCounters>,
    stop: watch::Receiver<Option<Duration>>,
}

/// Exponential backoff between attempts.
struct Backoff(Duration);

impl Backoff {
    fn new() -> Self {
        Self(RETRY_FIRST)
    }

    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(RETRY_MAX);
        d
    }
}

impl Supervisor {
    /// Starts (or reaches) the daemon, connects to every worker, and supervises the
    /// connection from then on.
    pub async fn start(source: DaemonSource) -> Result<(Daemon, Self), String> {
        let (stop_tx, stop) = watch::channel(None);
        let mut own_dir = None;
        let mut child = None;
        let dir = match &source {
            DaemonSource::External(dir) => dir.clone(),
            DaemonSource::Spawned(opts) => {
                let d = tempfile::Builder::new()
                    .prefix("sfu-signaling-")
                    .tempdir()
                    .map_err(|e| format!("cannot create a control directory: {e}"))?;
                child = Some(SpawnedDaemon::start(opts, d.path()).await?);
                let path = d.path().to_path_buf();
                own_dir = Some(d);
                path
            }
        };
        let (lost_tx, lost_rx) = mpsc::unbounded_channel();
        let deadline = Instant::now() + STARTUP_WAIT;
        let mut backoff = Backoff::new();
        let workers = loop {
            match connect_all(&dir, &lost_tx).await {
                Ok(w) => break w,
                Err(e) if Instant::now() >= deadline || child.is_some() => {
                    return Err(e.to_string())
                }
                Err(e) => {
                    tracing::info!(error = %e, "waiting for the media daemon");
                    tokio::time::sleep(backoff.next()).await;
                }
            }
        };
        let (state_tx, state_rx) = watch::channel(DaemonState {
            generation: 1,
            workers: workers.into(),
        });
        let counters = Arc::new(DaemonCounters::default());
        let (fatal_tx, fatal_rx) = oneshot::channel();
        let task = Task {
            source,
            dir,
            _own_dir: own_dir,
            child,
            state: state_tx,
            counters: counters.clone(),
            stop,
        };
        let handle = tokio::spawn(async move {
            if let Err(msg) = task.run(lost_rx).await {
                let _ = fatal_tx.send(msg);
            }
        });
        let daemon = Daemon {
            state: state_rx,
            counters,
        };
        Ok((
            daemon,
            Self {
                stop: stop_tx,
                task: handle,
                fatal: Some(fatal_rx),
            },
        ))
    }

    /// Resolves if supervision gives up (our own daemon cannot be started again).
    pub async fn fatal(&mut self) -> String {
        match self.fatal.as_mut() {
            Some(rx) => match rx.await {
                Ok(msg) => msg,
                // The task ended without a fatal error: stopped.
                Err(_) => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// Stops supervising: closes every connection (the daemon closes our routers) and
    /// stops our own daemon, SIGKILLing it if it is still there near `deadline`.
    pub async fn stop(self, deadline: Instant) {
        // Leave a moment after the kill to reap the process.
        let grace = deadline
            .saturating_duration_since(Instant::now())
            .saturating_sub(Duration::from_millis(100));
        let _ = self.stop.send(Some(grace));
        if tokio::time::timeout_at(deadline.into(), self.task)
            .await
            .is_err()
        {
            tracing::warn!("the daemon supervisor did not stop in time");
        }
    }
}

impl Task {
    fn stopping(&self) -> bool {
        self.stop.borrow().is_some()
    }

    /// The grace period asked for by [`Supervisor::stop`].
    fn grace(&self) -> Duration {
        self.stop.borrow().unwrap_or(Duration::from_millis(1500))
    }

    /// Runs until stopped (Ok) or until our own daemon cannot be started (Err).
    async fn run(mut self, mut lost_rx: mpsc::UnboundedReceiver<usize>) -> Result<(), String> {
        loop {
            // Up: wait for a loss.
            let mut stop = self.stop.clone();
            let child_exit = async {
                match &mut self.child {
                    Some(c) => c.exited().await,
                    None => std::future::pending().await,
                }
            };
            let why = tokio::select! {
                Some(worker) = lost_rx.recv() => Some(format!("lost the control connection to worker {worker}")),
                msg = child_exit => Some(msg),
                _ = stop.wait_for(Option::is_some) => None,
            };
            let Some(why) = why else {
                self.shutdown().await;
                return Ok(());
            };
            let lost_at = Instant::now();
            tracing::error!(reason = %why, "media daemon lost: reconnecting");
            self.drop_connections();
            let (tx, rx) = mpsc::unbounded_channel();
            lost_rx = rx;
            let Some(workers) = self.reconnect(&tx).await? else {
                self.shutdown().await;
                return Ok(());
            };
            DaemonCounters::bump(&self.counters.reconnects);
            let generation = self.state.borrow().generation + 1;
            tracing::info!(
                generation,
                workers = workers.len(),
                took = ?lost_at.elapsed(),
                "media daemon back"
            );
            self.state.send_replace(DaemonState {
                generation,
                workers: workers.into(),
            });
        }
    }

    /// Publishes "down" and closes every remaining connection: a daemon that lost one
    /// connection is treated as gone as a whole (it closes what was created over the
    /// others when they close).
    fn drop_connections(&self) {
        let old = self.state.borrow().clone();
        for w in old.workers.iter() {
            w.close();
        }
        self.state.send_replace(DaemonState {
            generation: old.generation,
            workers: Arc::from(Vec::<WorkerClient>::new()),
        });
    }

    /// Restarts our own daemon if needed and connects again, retrying until it works.
    /// None when stopped meanwhile.
    async fn reconnect(
        &mut self,
        lost: &mpsc::UnboundedSender<usize>,
    ) -> Result<Option<Vec<WorkerClient>>, String> {
        let mut backoff = Backoff::new();
        let mut failed_starts = 0;
        loop {
            if self.stopping() {
                return Ok(None);
            }
            if let DaemonSource::Spawned(opts) = &self.source {
                if let Some(old) = self.child.take() {
                    // Whatever state it is in, it is no longer the daemon we talk to.
                    old.stop(Duration::from_millis(500)).await;
                }
                match SpawnedDaemon::start(opts, &self.dir).await {
                    Ok(c) => {
                        tracing::info!(pid = c.pid(), "media daemon restarted");
                        DaemonCounters::bump(&self.counters.restarts);
                        self.child = Some(c);
                    }
                    Err(e) => {
                        failed_starts += 1;
                        tracing::error!(error = %e, attempt = failed_starts, "cannot restart the media daemon");
                        if failed_starts >= MAX_FAILED_STARTS {
                            return Err(format!(
                                "the media daemon could not be restarted {failed_starts} times: {e}"
                            ));
                        }
                        self.pause(Duration::from_millis(200) * failed_starts).await;
                        continue;
                    }
                }
            }
            match connect_all(&self.dir, lost).await {
                Ok(w) => return Ok(Some(w)),
                Err(e) => {
                    tracing::debug!(error = %e, dir = %self.dir.display(), "daemon not back yet");
                    let pause = backoff.next();
                    self.pause(pause).await;
                }
            }
        }
    }

    /// Sleeps, or less if stopped meanwhile.
    async fn pause(&mut self, d: Duration) {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = stop.wait_for(Option::is_some) => {}
        }
    }

    async fn shutdown(&mut self) {
        self.drop_connections();
        if let Some(c) = self.child.take() {
            c.stop(self.grace()).await;
        }
    }
}
