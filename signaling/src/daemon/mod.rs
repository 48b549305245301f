//! The daemon's control channel (docs/PROTOCOL.md, "Control channel"): a connection per
//! worker socket, placement of new rooms on the least-loaded worker, and starting a
//! private daemon when none is given.

mod client;
pub mod params;
mod spawn;

use std::collections::BTreeSet;
use std::path::Path;

use tokio::sync::mpsc;

pub use client::WorkerClient;
pub use spawn::{sfu_beside_current_exe, SpawnOptions, SpawnedDaemon};

use params::WorkerLoad;

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
        kind: String,
        reason: String,
    },
    #[error("unexpected message from the media server: {0}")]
    Protocol(String),
}

/// Tells when every worker connection is gone.
#[derive(Debug)]
pub struct LostWatcher {
    rx: mpsc::UnboundedReceiver<usize>,
    lost: BTreeSet<usize>,
    total: usize,
}

impl LostWatcher {
    /// Resolves once no worker is reachable any more.
    pub async fn all_lost(&mut self) {
        while self.lost.len() < self.total {
            match self.rx.recv().await {
                Some(i) => {
                    self.lost.insert(i);
                }
                None => std::future::pending::<()>().await,
            }
        }
    }
}

/// Connections to every worker of one daemon.
#[derive(Debug, Clone)]
pub struct Daemon {
    workers: Vec<WorkerClient>,
}

impl Daemon {
    /// Connects to `DIR/worker-0.sock`, learns the number of workers from its `ready`
    /// notification, then connects to the others.
    pub async fn connect(dir: &Path) -> Result<(Self, LostWatcher), DaemonError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (first, ready) = WorkerClient::connect(&dir.join("worker-0.sock"), tx.clone()).await?;
        let mut workers = vec![first];
        for i in 1..ready.workers {
            let path = dir.join(format!("worker-{i}.sock"));
            let (w, _) = WorkerClient::connect(&path, tx.clone()).await?;
            workers.push(w);
        }
        tracing::info!(workers = workers.len(), dir = %dir.display(), "connected to the daemon");
        let watcher = LostWatcher {
            rx,
            lost: BTreeSet::new(),
            total: workers.len(),
        };
        Ok((Self { workers }, watcher))
    }

    /// Number of workers.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always false: a daemon has at least one worker.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Whether every worker connection is gone.
    pub fn all_lost(&self) -> bool {
        self.workers.iter().all(WorkerClient::is_lost)
    }

    /// The live worker with the lowest `worker.load` (ties: the lowest index).
    pub async fn least_loaded(&self) -> Result<WorkerClient, DaemonError> {
        let live: Vec<&WorkerClient> = self.workers.iter().filter(|w| !w.is_lost()).collect();
        let mut best: Option<(u64, &WorkerClient)> = None;
        let mut last_err = DaemonError::Lost;
        // Sequential: a handful of workers, each answering in microseconds.
        for w in live {
            match w.request("worker.load", None, None).await {
                Ok(v) => match serde_json::from_value::<WorkerLoad>(v) {
                    Ok(l) if best.is_none_or(|(b, _)| l.load < b) => best = Some((l.load, w)),
                    Ok(_) => {}
                    Err(e) => last_err = DaemonError::Protocol(e.to_string()),
                },
                Err(e) => last_err = e,
            }
        }
        best.map(|(_, w)| w.clone()).ok_or(last_err)
    }
}
