//! One admitted HTTP/1.1 connection, served by hyper: its request headers must arrive
//! within the handshake timeout (hyper's `header_read_timeout`, which also runs while a
//! keep-alive connection waits for its next request), and a keep-alive connection that
//! waits longer than the idle timeout is closed. An upgraded WebSocket leaves here with
//! its socket and its [`Permit`] (under TLS, inside the TLS stream).

use std::convert::Infallible;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{Request, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tower_service::Service;

use super::limits::Permit;
use super::{ClientAddr, ConnectionCounters, HttpSettings};

/// Most bytes of request head hyper buffers (its floor is 8 KiB); a browser's requests
/// need 1-2 KiB.
const MAX_HEAD: usize = 32 * 1024;

/// A connection's socket with its place under the caps: the place is freed when the
/// socket is closed, whoever holds it (hyper, or the WebSocket session after an upgrade).
pub(super) struct Admitted {
    stream: TcpStream,
    _permit: Permit,
}

impl Admitted {
    pub(super) fn new(stream: TcpStream, permit: Permit) -> Self {
        Self {
            stream,
            _permit: permit,
        }
    }
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Where a connection is between requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before its first request: only the handshake timeout runs.
    AwaitingFirst,
    /// Requests being handled.
    Busy(usize),
    /// Keep-alive, waiting for the next request since then.
    IdleSince(Instant),
}

/// A request in flight; the connection is idle again when the last one ends (answered, or
/// dropped with the connection).
struct InFlight(Arc<watch::Sender<Phase>>);

impl InFlight {
    fn enter(phase: &Arc<watch::Sender<Phase>>) -> Self {
        phase.send_modify(|p| {
            *p = match *p {
                Phase::Busy(n) => Phase::Busy(n.saturating_add(1)),
                _ => Phase::Busy(1),
            }
        });
        Self(phase.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|p| {
            if let Phase::Busy(n) = *p {
                *p = if n <= 1 {
                    Phase::IdleSince(Instant::now())
                } else {
                    Phase::Busy(n - 1)
                };
            }
        });
    }
}

/// The routes, with each request marking the connection busy while it is handled.
#[derive(Clone)]
struct Tracked {
    router: Router,
    phase: Arc<watch::Sender<Phase>>,
    peer: ClientAddr,
}

impl Service<Request<Incoming>> for Tracked {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request<Incoming>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        // Handlers that bound what one address may hold (WHIP/WHEP sessions) read it.
        req.extensions_mut().insert(self.peer);
        let in_flight = InFlight::enter(&self.phase);
        let answer = self.router.call(req);
        Box::pin(async move {
            let r = answer.await;
            drop(in_flight);
            r
        })
    }
}

/// Serves `io` until it closes, times out, is upgraded, or `stop` turns true (then the
/// request in flight is finished and the connection closed).
pub(super) async fn serve<I>(
    io: I,
    peer: ClientAddr,
    router: Router,
    settings: HttpSettings,
    counters: Arc<ConnectionCounters>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let phase = Arc::new(watch::Sender::new(Phase::AwaitingFirst));
    let mut phase_rx = phase.subscribe();
    let svc = TowerToHyperService::new(Tracked {
        router,
        phase: phase.clone(),
        peer,
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.handshake_timeout)
        .max_buf_size(MAX_HEAD);
    let mut conn = pin!(builder
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades());
    let mut closing = false;
    loop {
        let idle_deadline = match *phase_rx.borrow_and_update() {
            Phase::IdleSince(t) if !closing => Some(t + settings.http_idle_timeout),
            _ => None,
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        counters.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::debug!(error = %e, "HTTP connection ended");
                }
                break;
            }
            () = async { let _ = stop.wait_for(|s| *s).await; }, if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = phase_rx.changed() => {}
            () = sleep_until(idle_deadline), if idle_deadline.is_some() => {
                counters.http_idle_closes.fetch_add(1, Ordering::Relaxed);
                closing = true;
                // Idle: hyper closes at once.
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
