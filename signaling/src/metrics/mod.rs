//! `/metrics`: the signaling process's own gauges (rooms, participants, WebSocket
//! sessions, the daemon connection) and every worker's `worker.getStats`, gathered at
//! scrape time and written in the Prometheus text format, labelled by worker.

pub mod exposition;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sfu_control::requests::WorkerGetStats;
use tokio::task::JoinSet;

use crate::daemon::Daemon;
use crate::room::Rooms;
use exposition::Exposition;

pub use exposition::CONTENT_TYPE;

/// A worker that does not answer within this is reported down for this scrape (a
/// Prometheus scrape times out after 10 s by default).
const WORKER_TIMEOUT: Duration = Duration::from_secs(2);

/// What a scrape reads.
#[derive(Clone)]
pub struct Sources {
    pub rooms: Rooms,
    pub daemon: Daemon,
    pub sessions: Arc<AtomicU64>,
    /// The public listener's connections.
    pub http: crate::http::HttpStats,
}

/// One scrape: asks every connected worker for its stats (in parallel) and renders all.
pub async fn scrape(src: &Sources) -> String {
    let mut e = Exposition::new();
    own(&mut e, src);
    let state = src.daemon.state();
    let mut asks = JoinSet::new();
    for w in state.workers.iter().filter(|w| !w.is_lost()) {
        let w = w.clone();
        asks.spawn(async move {
            let r =
                tokio::time::timeout(WORKER_TIMEOUT, w.request(&WorkerGetStats::default())).await;
            (w.index(), r)
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = asks.join_next().await {
        let Ok((index, r)) = joined else {
            continue;
        };
        let stats = match r {
            // The exposition reads the stats by their wire names.
            Ok(Ok(stats)) => serde_json::to_value(stats).ok(),
            Ok(Err(err)) => {
                tracing::warn!(worker = index, error = %err, "asking the worker for its stats failed");
                None
            }
            Err(_) => {
                tracing::warn!(worker = index, "the worker did not send its stats in time");
                None
            }
        };
        answers.push((index, stats));
    }
    answers.sort_by_key(|(i, _)| *i);
    for (index, stats) in &answers {
        worker::write(&mut e, *index, stats.as_ref());
    }
    e.render()
}

/// The connection limits: what is open, and what they refused and closed.
fn connections(e: &mut Exposition, http: &crate::http::HttpStats) {
    let c = &http.counters;
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    e.gauge(
        "sfu_signaling_connections",
        "Open HTTP and WebSocket connections of the public listener.",
        &[],
        http.limits.open() as u64,
    );
    e.gauge(
        "sfu_signaling_connections_max",
        "The cap on open connections (max_connections, lowered to fit the open-file limit).",
        &[],
        http.limits.max_total() as u64,
    );
    let refused = "Connections refused by a cap (answered 503 with Retry-After, or closed at once when too many are being refused).";
    for (reason, v) in [
        ("per_ip", n(&c.refused_per_ip)),
        ("total", n(&c.refused_total)),
    ] {
        e.counter(
            "sfu_signaling_connections_refused_total",
            refused,
            &[("reason", reason)],
            v,
        );
    }
    e.counter(
        "sfu_signaling_connections_refused_unanswered_total",
        "Refused connections closed without a 503 (too many being refused at once).",
        &[],
        n(&c.refused_unanswered),
    );
    let closed = "Connections closed by a timeout or limit.";
    for (reason, v) in [
        ("handshake_timeout", n(&c.handshake_timeouts)),
        ("http_idle", n(&c.http_idle_closes)),
        ("ws_join_timeout", n(&c.ws_join_timeouts)),
        ("ws_idle", n(&c.ws_idle_timeouts)),
        ("ws_message_too_big", n(&c.ws_too_big)),
    ] {
        e.counter(
            "sfu_signaling_connections_closed_total",
            closed,
            &[("reason", reason)],
            v,
        );
    }
}

fn own(e: &mut Exposition, src: &Sources) {
    let rooms = src.rooms.counters();
    let state = src.daemon.state();
    let daemon = src.daemon.counters();
    e.gauge(
        "sfu_signaling_rooms",
        "Rooms open in the signaling process.",
        &[],
        src.rooms.len() as u64,
    );
    e.gauge(
        "sfu_signaling_peers",
        "Participants in all rooms.",
        &[],
        rooms.peers.load(Ordering::Relaxed),
    );
    e.gauge(
        "sfu_signaling_websocket_sessions",
        "Open WebSocket connections.",
        &[],
        src.sessions.load(Ordering::Relaxed),
    );
    e.counter(
        "sfu_signaling_joins_total",
        "Joins accepted.",
        &[],
        rooms.joins.load(Ordering::Relaxed),
    );
    e.counter(
        "sfu_signaling_media_restarts_total",
        "Participants told to restart their media after the media daemon was lost.",
        &[],
        rooms.restarts.load(Ordering::Relaxed),
    );
    e.gauge(
        "sfu_signaling_daemon_up",
        "1 while every worker of the media daemon is connected.",
        &[],
        u64::from(state.is_up()),
    );
    e.gauge(
        "sfu_signaling_daemon_workers",
        "Workers of the media daemon connected.",
        &[],
        state.workers.iter().filter(|w| !w.is_lost()).count() as u64,
    );
    e.counter(
        "sfu_signaling_daemon_reconnects_total",
        "Reconnections to the media daemon after losing it.",
        &[],
        daemon.reconnects.load(Ordering::Relaxed),
    );
    e.counter(
        "sfu_signaling_daemon_restarts_total",
        "Restarts of the media daemon started by the signaling process.",
        &[],
        daemon.restarts.load(Ordering::Relaxed),
    );
    connections(e, &src.http);
}
