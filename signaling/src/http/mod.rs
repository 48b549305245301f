//! The HTTP/1.1 server under the routes: hyper driven by our own accept loop, so that
//! what an unauthenticated client can make us hold is bounded. A connection is admitted
//! under a cap per source address and a total cap ([`limits`]), or answered 503
//! ([`refuse`]); an admitted one must send its request headers within the handshake
//! timeout and may wait at most the idle timeout for its next request ([`conn`]). The
//! WebSocket session's own timeouts (join, ping, idle) are in `crate::ws`. With [`tls`],
//! the TLS handshake runs first, under the same handshake timeout.

mod conn;
pub mod limits;
pub mod nofile;
pub mod refuse;
pub mod tls;

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use limits::{ConnectionLimits, Refusal};

/// The timeouts of plain HTTP connections.
#[derive(Debug, Clone, Copy)]
pub struct HttpSettings {
    /// Request headers (a WebSocket upgrade's included) must arrive within this, from the
    /// accept or from the end of the previous request.
    pub handshake_timeout: Duration,
    /// A keep-alive connection waiting longer than this for its next request is closed.
    pub http_idle_timeout: Duration,
}

/// Connections refused and closed by the limits, for /metrics.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    pub refused_per_ip: AtomicU64,
    pub refused_total: AtomicU64,
    /// Refused connections closed without an answer (too many being answered already).
    pub refused_unanswered: AtomicU64,
    pub handshake_timeouts: AtomicU64,
    pub http_idle_closes: AtomicU64,
    pub ws_join_timeouts: AtomicU64,
    pub ws_idle_timeouts: AtomicU64,
    pub ws_too_big: AtomicU64,
}

impl ConnectionCounters {
    fn refused(&self, why: Refusal) {
        match why {
            Refusal::PerIp => &self.refused_per_ip,
            Refusal::Total => &self.refused_total,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
}

/// The address a request came from (a request extension), for per-address limits.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// What /metrics reads of one listener.
#[derive(Debug, Clone)]
pub struct HttpStats {
    pub limits: ConnectionLimits,
    pub counters: Arc<ConnectionCounters>,
}

/// After a failed accept for want of descriptors or memory, wait this long before the
/// next (the pending connection stays in the backlog).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one warning about failing accepts per this.
const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` (over TLS when `tls` is given) until `stop` turns true;
/// then stops accepting and waits for the plain HTTP connections to finish (upgraded
/// WebSockets close on `stop` by themselves).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: HttpSettings,
    stats: HttpStats,
    tls: Option<tls::Tls>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let refusing = Arc::new(Semaphore::new(refuse::REFUSING));
    // Each connection task holds a receiver; `closed()` tells when all are done.
    let (done_tx, done_rx) = watch::channel(());
    let mut warned: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = async { let _ = stop.wait_for(|s| *s).await; } => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                if is_resource_error(&e) {
                    if warned.is_none_or(|t| t.elapsed() >= ACCEPT_WARN_EVERY) {
                        tracing::warn!(error = %e, "cannot accept connections");
                        warned = Some(Instant::now());
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                // Otherwise the connection failed before we took it (reset, aborted).
                continue;
            }
        };
        match stats.limits.try_admit(peer.ip()) {
            Ok(permit) => {
                let io = conn::Admitted::new(stream, permit);
                let (app, counters, stop, done, tls) = (
                    app.clone(),
                    stats.counters.clone(),
                    stop.clone(),
                    done_rx.clone(),
                    tls.clone(),
                );
                tokio::spawn(async move {
                    match tls {
                        None => {
                            conn::serve(io, ClientAddr(peer), app, settings, counters, stop).await
                        }
                        Some(tls) => {
                            let handshake = tls.acceptor().accept(io);
                            match tokio::time::timeout(settings.handshake_timeout, handshake).await
                            {
                                Ok(Ok(io)) => {
                                    let peer = ClientAddr(peer);
                                    conn::serve(io, peer, app, settings, counters, stop).await;
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                }
                                Err(_) => {
                                    counters.handshake_timeouts.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                        }
                    }
                    drop(done);
                });
            }
            Err(why) => {
                stats.counters.refused(why);
                tracing::debug!(%peer, reason = why.label(), "connection refused");
                match refusing.clone().try_acquire_owned() {
                    Ok(slot) => {
                        tokio::spawn(async move {
                            refuse::answer(stream).await;
                            drop(slot);
                        });
                    }
                    Err(_) => {
                        stats
                            .counters
                            .refused_unanswered
                            .fetch_add(1, Ordering::Relaxed);
                        drop(stream);
                    }
                }
            }
        }
    }
    drop(listener);
    drop(done_rx);
    done_tx.closed().await;
    Ok(())
}

/// Accept errors that say this process (or the system) is out of descriptors or memory.
fn is_resource_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}
