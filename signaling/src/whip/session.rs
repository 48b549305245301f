//! WHIP/WHEP sessions: the registry of sessions by id (bounded in total and per client
//! address), and the task that holds one session's place in its room until the client
//! ends it (`DELETE`), its media stops, or the server stops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::request::{IceCredentials, Refusal};
use crate::protocol::ServerMessage;
use crate::room::{Entered, RoomCmd};

/// A session whose ICE never connects is ended after this (the client went away between
/// its POST and its first check).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A session whose ICE stays disconnected (the daemon's consent checks failed) this long
/// is ended: the client stopped without a `DELETE`.
const DISCONNECTED_GRACE: Duration = Duration::from_secs(15);

/// Most sessions, in total and from one client address (the WebSocket path's connection
/// caps: a page holds one connection, a session holds no connection at all).
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub total: usize,
    pub per_ip: usize,
}

/// One registered session.
#[derive(Debug)]
struct Entry {
    room: String,
    ip: IpAddr,
    /// Empty while the offer is being answered (the session is not addressable yet).
    etag: String,
    offered: IceCredentials,
    /// Tells the session task to end (dropped: the same).
    end: Option<oneshot::Sender<()>>,
}

/// What a `PATCH` needs to know of a session.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub etag: String,
    pub offered: IceCredentials,
}

/// All WHIP and WHEP sessions of this process, by id.
#[derive(Debug, Default)]
pub struct Registry {
    map: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // Only whole-entry inserts, updates and removals happen under the lock.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a place for a new session from `ip` in `room`: its id, or 503 when a cap is
    /// reached.
    pub fn reserve(
        &self,
        room: &str,
        ip: IpAddr,
        limits: SessionLimits,
    ) -> Result<String, Refusal> {
        let mut map = self.map();
        if map.len() >= limits.total {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the server has its maximum of {} WHIP/WHEP sessions",
                    limits.total
                ),
            ));
        }
        if map.values().filter(|e| e.ip == ip).count() >= limits.per_ip {
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "this address has its maximum of {} WHIP/WHEP sessions",
                    limits.per_ip
                ),
            ));
        }
        let id = format!("{:032x}", rand::random::<u128>());
        map.insert(
            id.clone(),
            Entry {
                room: room.to_owned(),
                ip,
                etag: String::new(),
                offered: IceCredentials::default(),
                end: None,
            },
        );
        Ok(id)
    }

    /// Makes a reserved session addressable; false if it was removed meanwhile.
    pub fn activate(
        &self,
        id: &str,
        etag: String,
        offered: IceCredentials,
        end: oneshot::Sender<()>,
    ) -> bool {
        match self.map().get_mut(id) {
            Some(e) => {
                e.etag = etag;
                e.offered = offered;
                e.end = Some(end);
                true
            }
            None => false,
        }
    }

    /// The active session `id` of `room`.
    pub fn view(&self, room: &str, id: &str) -> Option<SessionView> {
        self.map()
            .get(id)
            .filter(|e| e.room == room && !e.etag.is_empty())
            .map(|e| SessionView {
                etag: e.etag.clone(),
                offered: e.offered.clone(),
            })
    }

    /// Ends the active session `id` of `room`; false if there is none.
    pub fn end(&self, room: &str, id: &str) -> bool {
        let mut map = self.map();
        if !map
            .get(id)
            .is_some_and(|e| e.room == room && !e.etag.is_empty())
        {
            return false;
        }
        if let Some(mut e) = map.remove(id) {
            if let Some(end) = e.end.take() {
                let _ = end.send(());
            }
        }
        true
    }

    /// Frees the place of session `id` (ended, or its offer refused).
    pub fn release(&self, id: &str) {
        self.map().remove(id);
    }

    /// Sessions now, for tests and metrics.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy)]
enum Ended {
    Deleted,
    ServerStopping,
    RemovedByRoom,
    MediaRestart,
    NeverConnected,
    Disconnected,
}

/// Holds the participant `entered` in its room until the session ends, then takes it out
/// and frees the session's place in `registry`.
pub async fn run(
    id: String,
    mut entered: Entered,
    mut end: oneshot::Receiver<()>,
    mut shutdown: watch::Receiver<bool>,
    registry: std::sync::Arc<Registry>,
) {
    let mut connected = false;
    let mut deadline = Some(Instant::now() + CONNECT_TIMEOUT);
    let why = loop {
        let expiry = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut end => break Ended::Deleted,
            () = async { let _ = shutdown.wait_for(|s| *s).await; } => break Ended::ServerStopping,
            () = expiry => break if connected { Ended::Disconnected } else { Ended::NeverConnected },
            msg = entered.out.recv() => match msg {
                None => break Ended::RemovedByRoom,
                // The media server was lost: the client must publish again (a new POST).
                Some(ServerMessage::Restart { .. }) => break Ended::MediaRestart,
                Some(ServerMessage::TransportState { ice_state: Some(state), .. }) => {
                    match state.as_str() {
                        "connected" => {
                            connected = true;
                            deadline = None;
                        }
                        "disconnected" if deadline.is_none() => {
                            deadline = Some(Instant::now() + DISCONNECTED_GRACE);
                        }
                        _ => {}
                    }
                }
                Some(ServerMessage::Error { code, message, .. }) => {
                    tracing::debug!(session = %id, ?code, %message, "error for a WHIP/WHEP session");
                }
                // Room news (others joining, scores) concern pages, not this client.
                Some(_) => {}
            },
        }
    };
    tracing::info!(session = %id, peer = %entered.peer_id, reason = ?why, "WHIP/WHEP session ended");
    registry.release(&id);
    entered
        .room
        .send(RoomCmd::Leave {
            peer_id: entered.peer_id,
            explicit: false,
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_capped_per_address_and_in_total() {
        let r = Registry::default();
        let limits = SessionLimits {
            total: 3,
            per_ip: 2,
        };
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = r.reserve("room", a, limits).unwrap();
        r.reserve("room", a, limits).unwrap();
        let e = r.reserve("room", a, limits).unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        r.reserve("room", b, limits).unwrap();
        assert!(r.reserve("other", b, limits).is_err(), "total cap");
        r.release(&first);
        r.reserve("room", a, limits).unwrap();
    }

    #[test]
    fn a_session_is_addressed_by_room_and_id_once_active() {
        let r = Registry::default();
        let limits = SessionLimits {
            total: 4,
            per_ip: 4,
        };
        let id = r
            .reserve("room", "10.0.0.1".parse().unwrap(), limits)
            .unwrap();
        assert!(r.view("room", &id).is_none(), "not before its answer");
        let (tx, mut rx) = oneshot::channel();
        assert!(r.activate(&id, "\"e\"".into(), IceCredentials::default(), tx));
        assert!(r.view("other", &id).is_none());
        assert_eq!(r.view("room", &id).unwrap().etag, "\"e\"");
        assert!(!r.end("other", &id));
        assert!(r.end("room", &id));
        assert!(rx.try_recv().is_ok());
        assert!(!r.end("room", &id), "ended once");
        assert!(r.is_empty());
    }
}
