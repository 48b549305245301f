//! One control connection to one worker: a writer task that numbers requests, a reader
//! task that matches responses to them by id and dispatches notifications to whoever
//! subscribed to the target entity (the room that created it).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use super::params::Notification;
use super::DaemonError;

/// The daemon's frame limit (docs/PROTOCOL.md); a larger announced length means the
/// stream is out of sync.
const MAX_FRAME: usize = 1 << 20;
/// A worker answers in microseconds; this only bounds a hung daemon.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests slower than this are logged: the daemon normally answers in microseconds.
const SLOW_REQUEST: Duration = Duration::from_millis(100);

type Reply = oneshot::Sender<Result<Value, DaemonError>>;
type Pending = Arc<Mutex<HashMap<u64, (&'static str, Reply)>>>;
/// Subscribers by entity id.
type Subscribers = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Notification>>>>;

struct Call {
    method: &'static str,
    target: Option<String>,
    data: Option<Value>,
    reply: Reply,
}

/// What a worker says first on every connection.
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    pub worker: usize,
    pub workers: usize,
}

/// A handle to one worker's control connection; cheap to clone.
#[derive(Clone)]
pub struct WorkerClient {
    calls: mpsc::Sender<Call>,
    conn: Arc<Conn>,
}

/// What the handles and the reader and writer tasks share. (The tasks hold this, not a
/// handle: the writer ends when the last handle is dropped.)
struct Conn {
    index: usize,
    subscribers: Subscribers,
    pending: Pending,
    lost: AtomicBool,
    lost_events: mpsc::UnboundedSender<usize>,
    /// The reader and writer tasks, aborted by [`WorkerClient::close`].
    tasks: Mutex<Vec<AbortHandle>>,
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

async fn read_frame(rd: &mut OwnedReadHalf) -> Result<Value, DaemonError> {
    let len = rd.read_u32().await.map_err(|_| DaemonError::Lost)? as usize;
    if len > MAX_FRAME {
        return Err(DaemonError::Protocol(format!("frame of {len} bytes")));
    }
    let mut body = vec![0; len];
    rd.read_exact(&mut body)
        .await
        .map_err(|_| DaemonError::Lost)?;
    serde_json::from_slice(&body).map_err(|e| DaemonError::Protocol(e.to_string()))
}

async fn write_frame(wr: &mut OwnedWriteHalf, v: &Value) -> std::io::Result<()> {
    let body = serde_json::to_vec(v)?;
    let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    wr.write_all(&frame).await
}

impl WorkerClient {
    /// Connects to a worker's socket and waits for its `ready` notification. When the
    /// connection is lost, the worker's index is sent to `lost_events`.
    pub async fn connect(
        path: &Path,
        lost_events: mpsc::UnboundedSender<usize>,
    ) -> Result<(Self, Ready), DaemonError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| DaemonError::Connect(format!("{}: {e}", path.display())))?;
        let (mut rd, wr) = stream.into_split();
        let first = tokio::time::timeout(REQUEST_TIMEOUT, read_frame(&mut rd))
            .await
            .map_err(|_| {
                DaemonError::Connect(format!("{}: no ready notification", path.display()))
            })??;
        let ready = match (first.get("event"), first.get("data")) {
            (Some(e), Some(d)) if e == "ready" => Ready {
                worker: d.get("worker").and_then(Value::as_u64).unwrap_or(0) as usize,
                workers: d.get("workers").and_then(Value::as_u64).unwrap_or(1) as usize,
            },
            _ => {
                return Err(DaemonError::Protocol(format!(
                    "expected a ready notification, got {first}"
                )))
            }
        };
        let (tx, rx) = mpsc::channel(1024);
        let conn = Arc::new(Conn {
            index: ready.worker,
            subscribers: Subscribers::default(),
            pending: Pending::default(),
            lost: AtomicBool::new(false),
            lost_events,
            tasks: Mutex::default(),
        });
        let w = tokio::spawn(writer(rx, wr, conn.clone()));
        let r = tokio::spawn(reader(rd, conn.clone()));
        lock(&conn.tasks).extend([w.abort_handle(), r.abort_handle()]);
        Ok((Self { calls: tx, conn }, ready))
    }

    /// The worker's index.
    pub fn index(&self) -> usize {
        self.conn.index
    }

    /// Whether the connection is gone (the worker closed our routers with it).
    pub fn is_lost(&self) -> bool {
        self.conn.lost.load(Ordering::Relaxed)
    }

    /// Sends a request and waits for its response's `data` (Null when there is none).
    pub async fn request(
        &self,
        method: &'static str,
        target: Option<&str>,
        data: Option<Value>,
    ) -> Result<Value, DaemonError> {
        let (reply, rx) = oneshot::channel();
        let call = Call {
            method,
            target: target.map(str::to_owned),
            data,
            reply,
        };
        let started = std::time::Instant::now();
        self.calls.send(call).await.map_err(|_| DaemonError::Lost)?;
        let result = match tokio::time::timeout(REQUEST_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(DaemonError::Lost),
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
        for handle in lock(&self.conn.tasks).drain(..) {
            handle.abort();
        }
    }
}

impl Conn {
    /// Marks the connection lost (first caller only: the reader at EOF, the writer on a
    /// failed write, or `close`), before failing what is pending, so that whoever gets
    /// an error from it can tell it was a loss.
    fn mark_lost(&self) {
        if self.lost.swap(true, Ordering::Relaxed) {
            return;
        }
        tracing::debug!(worker = self.index, "control connection to the worker gone");
        let _ = self.lost_events.send(self.index);
        // Nobody will be notified about these entities any more; the rooms learn of the
        // loss from the daemon's state (see `Daemon::watch`).
        lock(&self.subscribers).clear();
        for (_, (_, reply)) in lock(&self.pending).drain() {
            let _ = reply.send(Err(DaemonError::Lost));
        }
    }
}

async fn writer(mut calls: mpsc::Receiver<Call>, mut wr: OwnedWriteHalf, conn: Arc<Conn>) {
    let pending = &conn.pending;
    let lost = &conn.lost;
    let mut next_id: u64 = 1;
    while let Some(call) = calls.recv().await {
        if lost.load(Ordering::Relaxed) {
            let _ = call.reply.send(Err(DaemonError::Lost));
            continue;
        }
        let id = next_id;
        next_id += 1;
        let mut req = json!({ "id": id, "method": call.method });
        if let Some(t) = call.target {
            req["target"] = Value::String(t);
        }
        if let Some(d) = call.data {
            req["data"] = d;
        }
        tracing::trace!(%req, "daemon request");
        // Registered before writing: the response cannot overtake its registration.
        lock(pending).insert(id, (call.method, call.reply));
        if lost.load(Ordering::Relaxed) {
            // Lost between the check above and the registration: mark_lost may have
            // drained the map already, so fail this one here.
            if let Some((_, reply)) = lock(pending).remove(&id) {
                let _ = reply.send(Err(DaemonError::Lost));
            }
            continue;
        }
        if let Err(e) = write_frame(&mut wr, &req).await {
            // The daemon is gone (the reader sees EOF shortly): say so first, then this
            // request fails with the others.
            tracing::warn!(worker = conn.index, error = %e, "cannot write to the daemon");
            conn.mark_lost();
        }
    }
}

async fn reader(mut rd: OwnedReadHalf, conn: Arc<Conn>) {
    let pending = &conn.pending;
    loop {
        let msg = match read_frame(&mut rd).await {
            Ok(m) => m,
            Err(e) => {
                if !matches!(e, DaemonError::Lost) {
                    tracing::error!(error = %e, "unreadable frame from the daemon");
                }
                break;
            }
        };
        tracing::trace!(%msg, "daemon message");
        if msg.get("event").is_some() {
            match serde_json::from_value::<Notification>(msg) {
                Ok(n) => {
                    let tx = lock(&conn.subscribers).get(&n.target).cloned();
                    if let Some(tx) = tx {
                        let _ = tx.send(n);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "unreadable daemon notification"),
            }
            continue;
        }
        let Some(id) = msg.get("id").and_then(Value::as_u64) else {
            tracing::warn!(%msg, "daemon response without an id");
            continue;
        };
        let Some((method, reply)) = lock(pending).remove(&id) else {
            tracing::warn!(id, "daemon response to no pending request");
            continue;
        };
        let result = if msg.get("accepted").and_then(Value::as_bool) == Some(true) {
            Ok(msg.get("data").cloned().unwrap_or(Value::Null))
        } else {
            Err(DaemonError::Refused {
                method,
                kind: msg
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("Unknown")
                    .to_owned(),
                reason: msg
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            })
        };
        let _ = reply.send(result);
    }
    conn.mark_lost();
}
