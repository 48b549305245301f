//! An async client over tokio's `UnixStream`, for the signaling process: a writer task
//! sends whole frames (so a cancelled request never leaves half a frame on the wire), a
//! reader task matches responses to pending requests by id and passes notifications on.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use crate::error::ClientError;
use crate::events::Notification;
use crate::framing::{encode, Frame, FrameDecoder};
use crate::message::{decode_response, request_frame, Message, Response};
use crate::method::Method;
use crate::requests::Request;

/// The notifications of one connection, in order (`ready` first); the channel ends when
/// the connection closes.
pub type Events = mpsc::UnboundedReceiver<Notification>;

type Reply = oneshot::Sender<Result<Value, ClientError>>;

/// Requests queued for the writer at most: past it, `request` waits for the socket
/// (backpressure toward the callers) instead of queueing without bound.
const WRITE_QUEUE: usize = 1024;

/// A handle to one control connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct AsyncClient {
    writes: mpsc::Sender<Vec<u8>>,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<HashMap<u64, (Method, Reply)>>,
    next_id: AtomicU64,
    closed: AtomicBool,
    tasks: Mutex<Vec<AbortHandle>>,
    /// Stops the reader when the writer failed, so that the events end either way.
    shutdown: tokio::sync::Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Single inserts and removes: the map stays consistent whatever panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Marks the connection closed (once) and fails what is pending.
    fn mark_closed(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // A stored permit: the reader stops even if it is not waiting yet.
        self.shutdown.notify_one();
        for (_, (_, reply)) in lock(&self.pending).drain() {
            let _ = reply.send(Err(ClientError::Closed));
        }
    }
}

impl AsyncClient {
    /// Connects to a worker socket; spawns the reader and writer tasks.
    pub async fn connect(path: &Path) -> Result<(Self, Events), ClientError> {
        let stream = UnixStream::connect(path).await?;
        Ok(Self::new(stream))
    }

    /// A client over a connected stream.
    pub fn new(stream: UnixStream) -> (Self, Events) {
        let (rd, wr) = stream.into_split();
        let (writes, frames) = mpsc::channel(WRITE_QUEUE);
        let (events_tx, events) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            next_id: AtomicU64::new(1),
            ..Shared::default()
        });
        let w = tokio::spawn(writer(frames, wr, shared.clone()));
        let r = tokio::spawn(reader(rd, events_tx, shared.clone()));
        lock(&shared.tasks).extend([w.abort_handle(), r.abort_handle()]);
        (Self { writes, shared }, events)
    }

    /// Sends a request and waits for its response.
    pub async fn request<R: Request>(&self, request: &R) -> Result<R::Response, ClientError> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = request_frame(id, request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let body = serde_json::to_vec(&frame).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let (reply, rx) = oneshot::channel();
        // Registered before writing: the response cannot overtake its registration.
        lock(&self.shared.pending).insert(id, (R::METHOD, reply));
        if self.shared.closed.load(Ordering::SeqCst)
            || self.writes.send(encode(&body)).await.is_err()
        {
            lock(&self.shared.pending).remove(&id);
            return Err(ClientError::Closed);
        }
        let data = rx.await.map_err(|_| ClientError::Closed)??;
        decode_response::<R>(data).map_err(|e| ClientError::Protocol(format!("{}: {e}", R::METHOD)))
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Closes the connection (the worker then closes the routers created over it) and
    /// fails what is pending; the events channel ends.
    pub fn close(&self) {
        self.shared.mark_closed();
        for handle in lock(&self.shared.tasks).drain(..) {
            handle.abort();
        }
    }
}

async fn writer(mut frames: mpsc::Receiver<Vec<u8>>, mut wr: OwnedWriteHalf, shared: Arc<Shared>) {
    while let Some(frame) = frames.recv().await {
        if wr.write_all(&frame).await.is_err() {
            break;
        }
    }
    shared.mark_closed();
}

async fn reader(
    mut rd: OwnedReadHalf,
    events: mpsc::UnboundedSender<Notification>,
    shared: Arc<Shared>,
) {
    let mut decoder = FrameDecoder::default();
    let mut frames = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    'read: loop {
        let n = tokio::select! {
            read = rd.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            () = shared.shutdown.notified() => break,
        };
        decoder.push(buf.get(..n).unwrap_or_default(), &mut frames);
        for frame in frames.drain(..) {
            let Frame::Body(body) = frame else {
                // Workers never send frames over the maximum: the stream is not the
                // protocol.
                break 'read;
            };
            match Message::parse(&body) {
                Ok(Message::Notification(n)) => {
                    let _ = events.send(n);
                }
                Ok(Message::Response(r)) => answer(&shared, r),
                // An event this client does not know, or garbage: nothing waits for it.
                Err(_) => {}
            }
        }
    }
    shared.mark_closed();
}

fn answer(shared: &Shared, r: Response) {
    let Some(id) = r.id else {
        return;
    };
    let Some((method, reply)) = lock(&shared.pending).remove(&id) else {
        return;
    };
    let result = r
        .into_result()
        .map_err(|refusal| ClientError::Refused { method, refusal });
    let _ = reply.send(result);
}
