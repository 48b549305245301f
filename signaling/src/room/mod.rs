//! Rooms: one actor task per room owns all of its state (participants, their transports,
//! producers and consumers) and talks to the daemon one request at a time, so a room's
//! state changes in one place and in order. WebSocket sessions and daemon notifications
//! reach it through channels.

mod actor;
pub mod chat;
pub mod dynacast;
pub mod recv;

#[cfg(test)]
pub(crate) use actor::placeholder_transport;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

use crate::daemon::Daemon;
use crate::protocol::{ErrorCode, ProtocolError, ServerMessage, Source};
use crate::sdp::capabilities::Negotiation;
use crate::sdp::simulcast::EncodingHint;
use crate::turn::IceServer;
use sfu_control::params::{MediaKind, RtpCapabilities};

/// Commands queued per room; a session waits when its room is this far behind.
const ROOM_QUEUE: usize = 256;

/// Settings every room shares.
#[derive(Debug, Clone)]
pub struct RoomSettings {
    /// Codec choice and bandwidth feedback for publishers' answers.
    pub negotiation: Negotiation,
    pub max_peers: usize,
}

/// A participant asking to enter.
#[derive(Debug)]
pub struct JoinRequest {
    pub peer_id: String,
    pub name: String,
    pub caps: RtpCapabilities,
    pub kind: ParticipantKind,
    /// The page's ICE servers, told in `joined`.
    pub ice_servers: Vec<IceServer>,
    /// Where the room sends this participant's messages. Dropped by the room when the
    /// participant is out (left, removed, room failed).
    pub out: mpsc::Sender<ServerMessage>,
    pub reply: oneshot::Sender<Result<(), ProtocolError>>,
}

/// What a participant is to the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantKind {
    /// A page: publishes, and receives the others' tracks.
    Page,
    /// A WHIP publisher: gets no consumers and no receive transport.
    Publisher,
    /// A WHEP player: receives only what its `RoomCmd::Play` names, and is not shown
    /// to the others (no `peerJoined`/`peerLeft`, not in `joined`): an audience is
    /// not a tile.
    Player,
}

/// What a room is asked to do.
#[derive(Debug)]
pub enum RoomCmd {
    Join(JoinRequest),
    Offer {
        peer_id: String,
        sdp: String,
        /// The `restart` epoch the offer answers (0 before any).
        epoch: u64,
        /// The page's simulcast encodings by mid (checked).
        encodings: BTreeMap<String, Vec<EncodingHint>>,
        /// Camera and microphone, or a screen share (its own send transport).
        source: Source,
    },
    /// The participant stops its screen share.
    StopScreen {
        peer_id: String,
    },
    Answer {
        peer_id: String,
        offer_id: u64,
        sdp: String,
    },
    /// A player's (WHEP) receive-only offer: it plays the participant named `source`
    /// (its tracks now, and whenever it publishes again), or with None the room's
    /// active speaker, following it; answered with `answer`.
    Play {
        peer_id: String,
        source: Option<String>,
        sdp: String,
    },
    Mute {
        peer_id: String,
        kind: MediaKind,
        muted: bool,
    },
    /// The most a video consumer of the participant should receive.
    PreferredLayers {
        peer_id: String,
        consumer_id: String,
        spatial_layer: u8,
        temporal_layer: Option<u8>,
    },
    /// The participant pauses (or resumes) one of its consumers (its tile is hidden).
    PauseConsumer {
        peer_id: String,
        consumer_id: String,
        paused: bool,
    },
    /// Explicit leave (`explicit`: the session stays and waits for `left`) or the
    /// WebSocket closed.
    Leave {
        peer_id: String,
        explicit: bool,
    },
    /// A chat message from the participant (checked: protocol.rs `Chat`).
    Chat {
        peer_id: String,
        text: String,
    },
    Stats(oneshot::Sender<RoomStats>),
}

/// A room as `/api/rooms/<room>` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomStats {
    pub room: String,
    pub worker: Option<usize>,
    /// The room's media is being re-created after the media server was lost.
    pub restarting: bool,
    pub peers: Vec<PeerStats>,
}

/// One participant in [`RoomStats`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerStats {
    pub peer_id: String,
    pub name: String,
    pub producers: usize,
    pub consumers: usize,
}

/// How long a room may take to answer a join (milliseconds normally): bounds a stuck
/// daemon.
const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);
/// Messages a room may queue for one participant before the participant counts as stuck.
const OUT_QUEUE: usize = 256;

/// A participant in a room, as its session holds it.
#[derive(Debug)]
pub struct Entered {
    pub room: RoomHandle,
    pub peer_id: String,
    /// What the room sends this participant; ends when the room lets go of it.
    pub out: mpsc::Receiver<ServerMessage>,
}

/// A way to send commands to a room.
#[derive(Debug, Clone)]
pub struct RoomHandle {
    tx: mpsc::Sender<RoomCmd>,
}

impl RoomHandle {
    /// Queues a command; false if the room is gone.
    pub async fn send(&self, cmd: RoomCmd) -> bool {
        self.tx.send(cmd).await.is_ok()
    }
}

struct Entry {
    generation: u64,
    handle: RoomHandle,
}

struct Inner {
    map: Mutex<HashMap<String, Entry>>,
    /// Room actors still running (a retired room runs until its router is closed), for
    /// waiting until all are done at shutdown.
    actors: watch::Sender<usize>,
    daemon: Daemon,
    settings: RoomSettings,
    next_generation: AtomicU64,
    counters: RoomCounters,
}

/// Totals over all rooms, for /metrics.
#[derive(Debug, Default)]
pub struct RoomCounters {
    /// Participants in all rooms now.
    pub peers: AtomicU64,
    /// Joins accepted so far.
    pub joins: AtomicU64,
    /// `restart` messages sent (participants told to re-create their transports).
    pub restarts: AtomicU64,
}

/// All rooms of this process.
#[derive(Clone)]
pub struct Rooms {
    inner: Arc<Inner>,
}

impl Rooms {
    pub fn new(daemon: Daemon, settings: RoomSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                map: Mutex::default(),
                actors: watch::Sender::new(0),
                daemon,
                settings,
                next_generation: AtomicU64::new(1),
                counters: RoomCounters::default(),
            }),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // Only whole-entry inserts and removals happen under the lock.
        self.inner
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `req` to `room`, creating the room if needed. Done under the registry lock,
    /// which a retiring room also takes: a join can never be queued to a room that has
    /// already decided to close.
    pub fn join(&self, room: &str, req: JoinRequest) -> Result<RoomHandle, ProtocolError> {
        let mut map = self.map();
        let entry = map.entry(room.to_owned()).or_insert_with(|| {
            let generation = self.inner.next_generation.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = mpsc::channel(ROOM_QUEUE);
            self.inner.actors.send_modify(|n| *n += 1);
            actor::spawn(
                room.to_owned(),
                generation,
                rx,
                self.clone(),
                self.inner.daemon.clone(),
                self.inner.settings.clone(),
            );
            Entry {
                generation,
                handle: RoomHandle { tx },
            }
        });
        entry.handle.tx.try_send(RoomCmd::Join(req)).map_err(|_| {
            ProtocolError::new(ErrorCode::ServerError, "the room is busy, try again")
        })?;
        Ok(entry.handle.clone())
    }

    /// Enters `room` as `name` (checked by the caller: room, name, token) and waits for
    /// the room's answer. On a timeout the room is told to remove the participant again,
    /// should it still add it.
    pub async fn enter(
        &self,
        room: &str,
        name: String,
        caps: RtpCapabilities,
        kind: ParticipantKind,
        ice_servers: Vec<IceServer>,
    ) -> Result<Entered, ProtocolError> {
        let peer_id = format!("{:016x}", rand::random::<u64>());
        let (out_tx, out) = mpsc::channel(OUT_QUEUE);
        let (reply_tx, reply_rx) = oneshot::channel();
        let handle = self.join(
            room,
            JoinRequest {
                peer_id: peer_id.clone(),
                name,
                caps,
                kind,
                ice_servers,
                out: out_tx,
                reply: reply_tx,
            },
        )?;
        match tokio::time::timeout(JOIN_TIMEOUT, reply_rx).await {
            Ok(Ok(Ok(()))) => Ok(Entered {
                room: handle,
                peer_id,
                out,
            }),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(ProtocolError::new(
                ErrorCode::ServerError,
                "the room closed; try again",
            )),
            Err(_) => {
                handle
                    .send(RoomCmd::Leave {
                        peer_id,
                        explicit: false,
                    })
                    .await;
                Err(ProtocolError::new(
                    ErrorCode::ServerError,
                    "joining took too long",
                ))
            }
        }
    }

    /// Checks a publisher's offer as the room will (the same SDP code, against a
    /// placeholder transport), without a room, a join or a daemon transport.
    pub fn check_send_offer(&self, sdp: &str) -> Result<(), ProtocolError> {
        let desc = crate::sdp::parse::parse(sdp)?;
        crate::sdp::answer::answer_send_offer(
            &desc,
            &actor::placeholder_transport(),
            &self.inner.settings.negotiation,
            0,
            &BTreeMap::new(),
        )?;
        Ok(())
    }

    /// Checks a player's offer as the room will, without a room or a daemon transport.
    pub fn check_play_offer(&self, sdp: &str) -> Result<(), ProtocolError> {
        let desc = crate::sdp::parse::parse(sdp)?;
        crate::sdp::playback::read_play_offer(&desc, &self.inner.settings.negotiation)?;
        Ok(())
    }

    /// Totals over all rooms.
    pub fn counters(&self) -> &RoomCounters {
        &self.inner.counters
    }

    /// Waits until every room has closed, or `deadline`; true if all closed.
    pub async fn wait_closed(&self, deadline: Instant) -> bool {
        let mut rx = self.inner.actors.subscribe();
        tokio::time::timeout_at(deadline.into(), rx.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The room's participants and counts, if the room exists.
    pub async fn stats(&self, room: &str) -> Option<RoomStats> {
        let handle = self.map().get(room).map(|e| e.handle.clone())?;
        let (tx, rx) = oneshot::channel();
        if !handle.send(RoomCmd::Stats(tx)).await {
            return None;
        }
        rx.await.ok()
    }

    /// Number of open rooms.
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether no room is open.
    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// Called by a room actor when it has finished (router closed).
    fn actor_ended(&self) {
        self.inner.actors.send_modify(|n| *n = n.saturating_sub(1));
    }

    /// Called by an empty room: unregisters it unless commands are still queued for it
    /// (then it must handle them first). True when the room may stop.
    fn retire(&self, room: &str, generation: u64, rx: &mpsc::Receiver<RoomCmd>) -> bool {
        let mut map = self.map();
        if !rx.is_empty() {
            return false;
        }
        if map.get(room).is_some_and(|e| e.generation == generation) {
            map.remove(room);
        }
        true
    }
}
