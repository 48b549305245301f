//! Surviving the media server: when the daemon dies, restarts or closes the router, the
//! room forgets every daemon entity but keeps its participants, waits for the daemon's
//! next generation, creates a new router and sends each participant `restart`: the page
//! re-creates its peer connections and publishes again, and the room offers it the
//! others' tracks as they come (the usual join path from there on).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Room;
use crate::daemon::{DaemonError, WorkerClient};
use crate::protocol::ServerMessage;

/// Pause before trying again when re-creating the router failed for another reason than
/// a loss (the daemon refused or was slow).
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl Room {
    /// Whether the room's daemon entities are gone or going (requests may fail for that).
    pub(super) fn media_lost(&self) -> bool {
        self.suspended.is_some() || self.worker.as_ref().is_some_and(WorkerClient::is_lost)
    }

    /// Compares the room's media with the daemon's state: drops it when its generation
    /// is gone, re-creates it when the daemon is (back) up. Called after every step.
    pub(super) async fn check_daemon(&mut self) {
        let state = self.daemon_rx.borrow_and_update().clone();
        if self.router_id.is_some()
            && (state.generation != self.router_generation || self.media_lost())
        {
            self.drop_media("lost the media server", self.router_generation);
        }
        let Some(after) = self.suspended else {
            return;
        };
        if self.peers.is_empty()
            || !state.is_up()
            || state.generation <= after
            || self.retry_at.is_some()
        {
            return;
        }
        self.recover().await;
    }

    /// Forgets every daemon entity (they died with the daemon or the router) and waits
    /// for a generation above `after` to re-create them.
    pub(super) fn drop_media(&mut self, why: &str, after: u64) {
        tracing::warn!(
            reason = why,
            peers = self.peers.len(),
            "media lost: the room waits to re-create it"
        );
        if let Some(w) = &self.worker {
            if let Some(r) = &self.router_id {
                w.unsubscribe(r);
            }
            for id in self.entities.keys() {
                w.unsubscribe(id);
            }
        }
        self.entities.clear();
        self.producers.clear();
        self.forget_speaker_observer();
        self.router_id = None;
        self.worker = None;
        for p in &mut self.peers {
            p.send = None;
            p.screen = None;
            p.recv.reset(rand::random::<u32>().into());
            if p.playback.take().is_some() {
                // A player cannot renegotiate: it gets nothing more and its session ends
                // on the `restart` (the client makes a new one).
                p.receives = false;
            }
        }
        self.suspended = Some(after);
    }

    /// Creates the new router and tells every participant to restart its media.
    async fn recover(&mut self) {
        let before = self.daemon.state().generation;
        match self.create_router().await {
            Ok(()) => {}
            Err(DaemonError::Lost) => {
                // Lost again: wait for the next generation.
                self.suspended = Some(before);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-create the room's router yet");
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
                return;
            }
        }
        self.suspended = None;
        let ids: Vec<String> = self.peers.iter().map(|p| p.id.clone()).collect();
        tracing::info!(peers = ids.len(), "media re-created: participants restart");
        for id in ids {
            let Some(p) = self.peer_mut(&id) else {
                continue;
            };
            p.epoch += 1;
            let epoch = p.epoch;
            self.send_to(
                &id,
                ServerMessage::Restart {
                    epoch,
                    reason: "the media server restarted".into(),
                },
            );
            self.rooms
                .counters()
                .restarts
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}
