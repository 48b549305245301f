//! One control connection to one worker, on `sfu-control`'s async client: typed
//! requests with a deadline, and the worker's notifications dispatched to whoever
//! subscribed to the target entity (the room that created it).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sfu_control::client::{AsyncClient, Events};
use sfu_control::{ClientError, Event, Notification, Request};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::DaemonError;

/// A worker answers in microseconds; this only bounds a hung daemon.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests slower than this are logged: the daemon normally answers in microseconds.
const SLOW_REQUEST: Duration = Duration::from_millis(100);

/// Subscribers by entity id.
type Subscribers = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Notification>>>>;

/// What a worker says first on every connection.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub worker: usize,
    pub workers: usize,
}

/// A handle to one worker's control connection; cheap to clone.
#[derive(Clone)]
pub struct WorkerClient {
    client: AsyncClient,
    conn: Arc<Conn>,
}

/// What the handles and the dispatching task share.
struct Conn {
    index: usize,
    subscribers: Subscribers,
    lost: AtomicBool,
    lost_events: mpsc::UnboundedSender<usize>,
    /// The task dispatching notifications, aborted by [`WorkerClient::close`].
    dispatcher: Mutex<Option<AbortHandle>>,
}

impl std::fmt::Debug for WorkerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WorkerClient({})", self.conn.index)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps stay consistent whatever panicked while holding them (single inserts and
    // removes), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl From<ClientError> for DaemonError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Io(_) | ClientError::Closed => Self::Lost,
            ClientError::Refused { method, refusal } => Self::Refused {
                method: method.name(),
                kind: refusal.kind,
                reason: refusal.reason,
            },
            ClientError::Protocol(m) => Self::Protocol(m),
        }
    }
}

/// Waits for the `ready` notification every worker sends first.
async fn ready(events: &mut Events, path: &Path) -> Result<Ready, DaemonError> {
    let first = tokio::time::timeout(REQUEST_TIMEOUT, events.recv())
        .await
        .map_err(|_| DaemonError::Connect(format!("{}: no ready notification", path.display())))?
        .ok_or(DaemonError::Lost)?;
    match first.event {
        Event::Ready {
            worker, workers, ..
        } => Ok(Ready { worker, workers }),
        other => Err(DaemonError::Protocol(format!(
            "expected a ready notification, got {}",
            other.name()
        ))),
    }
}

impl WorkerClient {
    /// Connects to a worker's socket and waits for its `ready` notification. When the
    /// connection is lost, the worker's index is sent to `lost_events`.
    pub async fn connect(
        path: &Path,
        lost_events: mpsc::UnboundedSender<usize>,
    ) -> Result<(Self, Ready), DaemonError> {
        let (client, mut events) = AsyncClient::connect(path)
            .await
            .map_err(|e| DaemonError::Connect(format!("{}: {e}", path.display())))?;
        let ready = match ready(&mut events, path).await {
            Ok(r) => r,
            Err(e) => {
                client.close();
                return Err(e);
            }
        };
        let conn = Arc::new(Conn {
            index: ready.worker,
            subscribers: Subscribers::default(),
            lost: AtomicBool::new(false),
            lost_events,
            dispatcher: Mutex::default(),
        });
        let task = tokio::spawn(dispatch(events, conn.clone()));
        *lock(&conn.dispatcher) = Some(task.abort_handle());
        Ok((Self { client, conn }, ready))
    }

    /// The worker's index.
    pub fn index(&self) -> usize {
        self.conn.index
    }

    /// Whether the connection is gone (the worker closed our routers with it).
    pub fn is_lost(&self) -> bool {
        self.conn.lost.load(Ordering::Relaxed)
    }

    /// Sends a request and waits for its response.
    pub async fn request<R: Request>(&self, request: &R) -> Result<R::Response, DaemonError> {
        let method = R::METHOD.name();
        if self.is_lost() {
            return Err(DaemonError::Lost);
        }
        tracing::trace!(?request, "daemon request");
        let started = std::time::Instant::now();
        let result = match tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request)).await
        {
            Ok(result) => result.map_err(DaemonError::from),
            Err(_) => Err(DaemonError::Timeout(method)),
        };
        let took = started.elapsed();
        if took > SLOW_REQUEST {
            tracing::warn!(worker = self.index(), method, ?took, "slow daemon request");
        } else {
            tracing::trace!(worker = self.index(), method, ?took, "daemon request done");
        }
        result
    }

    /// Routes notifications whose target is `id` to `tx`.
    pub fn subscribe(&self, id: &str, tx: &mpsc::UnboundedSender<Notification>) {
        lock(&self.conn.subscribers).insert(id.to_owned(), tx.clone());
    }

    /// Stops routing notifications for `id`.
    pub fn unsubscribe(&self, id: &str) {
        lock(&self.conn.subscribers).remove(id);
    }

    /// Closes the connection (the worker then closes the routers created over it) and
    /// fails what is pending. Used when another worker of the same daemon was lost: the
    /// whole daemon is reconnected at once.
    pub fn close(&self) {
        if !self.is_lost() {
            tracing::debug!(worker = self.index(), "closing the control connection");
        }
        self.conn.mark_lost();
        self.client.close();
        if let Some(handle) = lock(&self.conn.dispatcher).take() {
            handle.abort();
        }
    }
}

impl Conn {
    /// Marks the connection lost (first caller only: the dispatcher when the events end,
    /// or `close`).
    fn mark_lost(&self) {
        if self.lost.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::debug!(worker = self.index, "control connection to the worker gone");
        let _ = self.lost_events.send(self.index);
        // Nobody will be notified about these entities any more; the rooms learn of the
        // loss from the daemon's state (see `Daemon::watch`).
        lock(&self.subscribers).clear();
    }
}

/// Hands each notification to the subscriber of its target until the connection ends.
async fn dispatch(mut events: Events, conn: Arc<Conn>) {
    while let Some(n) = events.recv().await {
        tracing::trace!(target = %n.target, event = n.event.name(), "daemon notification");
        let tx = lock(&conn.subscribers).get(&n.target).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(n);
        }
    }
    conn.mark_lost();
}
