//! The daemon's control channel (docs/PROTOCOL.md, "Control channel"): a connection per
//! worker socket, placement of new rooms on the least-loaded worker, and supervision: when
//! a connection is lost (the daemon died or restarted), every connection is dropped and
//! re-made once the sockets are back, and a daemon we started ourselves is restarted.
//! Each successful connection is a new *generation*; rooms watch it to know when their
//! routers are gone and when they can re-create them.

mod client;
mod spawn;
mod supervisor;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfu_control::requests::WorkerLoad;
use sfu_control::ErrorKind;
use tokio::sync::{mpsc, watch};

pub use client::WorkerClient;
pub use spawn::{sfu_beside_current_exe, SpawnOptions};
pub use supervisor::{DaemonSource, Supervisor};

/// A failure talking to the daemon.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot connect to the daemon: {0}")]
    Connect(String),
    #[error("the media server connection was lost")]
    Lost,
    #[error("the media server did not answer {0} in time")]
    Timeout(&'static str),
    #[error("the media server refused {method}: {kind}: {reason}")]
    Refused {
        method: &'static str,
        kind: ErrorKind,
        reason: String,
    },
    #[error("unexpected message from the media server: {0}")]
    Protocol(String),
}

/// The daemon as the signaling process sees it now.
#[derive(Debug, Clone, Default)]
pub struct DaemonState {
    /// Incremented by every successful (re)connection; entities created in one
    /// generation do not exist in the next.
    pub generation: u64,
    /// Connections to every worker; empty while the daemon is away.
    pub workers: Arc<[WorkerClient]>,
}

impl DaemonState {
    /// Whether every worker is connected.
    pub fn is_up(&self) -> bool {
        !self.workers.is_empty() && self.workers.iter().all(|w| !w.is_lost())
    }
}

/// Counters about the daemon connection, for /metrics.
#[derive(Debug, Default)]
pub struct DaemonCounters {
    /// Re-connections after a loss.
    pub reconnects: AtomicU64,
    /// Restarts of a daemon we started ourselves.
    pub restarts: AtomicU64,
}

/// A handle to the supervised daemon connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct Daemon {
    state: watch::Receiver<DaemonState>,
    counters: Arc<DaemonCounters>,
}

impl Daemon {
    /// The current state.
    pub fn state(&self) -> DaemonState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every change of state (loss, new generation).
    pub fn watch(&self) -> watch::Receiver<DaemonState> {
        self.state.clone()
    }

    /// Re-connections and restarts so far.
    pub fn counters(&self) -> &DaemonCounters {
        &self.counters
    }

    /// The live worker with the lowest `worker.load` (ties: the lowest index), with the
    /// generation it belongs to.
    pub async fn least_loaded(&self) -> Result<(WorkerClient, u64), DaemonError> {
        let state = self.state();
        let mut best: Option<(u64, &WorkerClient)> = None;
        let mut last_err = DaemonError::Lost;
        // Sequential: a handful of workers, each answering in microseconds.
        for w in state.workers.iter().filter(|w| !w.is_lost()) {
            match w.request(&WorkerLoad::default()).await {
                Ok(l) if best.is_none_or(|(b, _)| l.load < b) => best = Some((l.load, w)),
                Ok(_) => {}
                Err(e) => last_err = e,
            }
        }
        best.map(|(_, w)| (w.clone(), state.generation))
            .ok_or(last_err)
    }
}

/// How long a worker socket other than worker-0 may take to appear after worker-0's
/// (a starting daemon binds them one by one).
const OTHER_WORKERS_WAIT: Duration = Duration::from_secs(5);

/// Connects to `DIR/worker-0.sock`, learns the number of workers from its `ready`
/// notification, then connects to the others. Losses are reported on `lost`.
async fn connect_all(
    dir: &Path,
    lost: &mpsc::UnboundedSender<usize>,
) -> Result<Vec<WorkerClient>, DaemonError> {
    let (first, ready) = WorkerClient::connect(&dir.join("worker-0.sock"), lost.clone()).await?;
    let mut workers = vec![first];
    let deadline = Instant::now() + OTHER_WORKERS_WAIT;
    for i in 1..ready.workers {
        let path = dir.join(format!("worker-{i}.sock"));
        let mut pause = Duration::from_millis(10);
        let w = loop {
            match WorkerClient::connect(&path, lost.clone()).await {
                Ok((w, _)) => break w,
                Err(e) if Instant::now() >= deadline => {
                    for w in &workers {
                        w.close();
                    }
                    return Err(e);
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
            }
        };
        workers.push(w);
    }
    tracing::info!(workers = workers.len(), dir = %dir.display(), "connected to the daemon");
    Ok(workers)
}

impl DaemonCounters {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
