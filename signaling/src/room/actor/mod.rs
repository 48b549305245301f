//! The room actor: handles one command or daemon notification at a time, then sends the
//! receive-side offers that became due. When the media server is lost, the room keeps
//! its participants and re-creates its media once the server is back (restart.rs).

mod chat;
mod layers;
mod playback;
mod publish;
mod restart;
mod speaker;

pub(crate) use publish::placeholder_transport;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;
use sfu_control::requests::{
    ConsumerClose, ConsumerResume, ConsumerSetPriority, ProducerPause, ProducerResume, RouterClose,
    RouterCreate, TransportClose, TransportConnect, TransportConsume, TransportCreate,
};
use sfu_control::{ErrorKind, Event, Request};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::chat::{ChatHistory, ChatRate};
use super::dynacast::Dynacast;
use super::recv::{ConsumerSlot, RecvSession};
use super::{JoinRequest, ParticipantKind, PeerStats, RoomCmd, RoomSettings, RoomStats, Rooms};
use crate::daemon::{Daemon, DaemonError, DaemonState, WorkerClient};
use crate::protocol::{
    Direction, ErrorCode, PeerInfo, ProducerInfo, ProtocolError, ServerMessage, Source,
};
use crate::sdp::offer::read_recv_answer;
use crate::sdp::parse::parse;
use sfu_control::params::{DtlsState, MediaKind, RtpCapabilities};
use sfu_control::responses::{ConsumerCreated, ConsumerType, TransportCreated};
use sfu_control::Notification;

/// What a daemon entity id belongs to, for routing its notifications.
#[derive(Debug, Clone)]
enum Entity {
    Transport {
        peer_id: String,
        direction: Direction,
    },
    Producer,
    Consumer {
        peer_id: String,
    },
    /// The room's active-speaker observer (`speaker`).
    SpeakerObserver,
}

/// A published track.
#[derive(Debug, Clone)]
struct Produced {
    peer_id: String,
    info: ProducerInfo,
    /// Creation order: a newcomer is offered tracks in the order they were published.
    seq: u64,
    /// The daemon's last producer score (0-10; 0 until media arrives, as in mediasoup).
    score: u8,
}

struct Peer {
    id: String,
    name: String,
    out: mpsc::Sender<ServerMessage>,
    caps: RtpCapabilities,
    /// False for a WHIP publisher: it consumes nothing (nor does a player before its
    /// offer).
    receives: bool,
    /// Shown to the others (not a player).
    listed: bool,
    /// A player's (WHEP) offer and whom it plays.
    playback: Option<playback::Playback>,
    send: Option<TransportCreated>,
    recv: RecvSession,
    audio_muted: bool,
    video_muted: bool,
    /// `restart` messages sent to this participant; its offers name the one they answer.
    epoch: u64,
    /// How many chat messages it may send now.
    chat_rate: ChatRate,
    /// The send transport of its screen share, while it shares.
    screen: Option<TransportCreated>,
}

impl Peer {
    fn info(&self) -> PeerInfo {
        PeerInfo {
            peer_id: self.id.clone(),
            name: self.name.clone(),
            audio_muted: self.audio_muted,
            video_muted: self.video_muted,
        }
    }
}

/// Why a participant is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// It asked to leave: tell it `left`.
    Left,
    /// Its WebSocket closed.
    Gone,
    /// It could not keep up with its messages.
    Slow,
}

struct Room {
    name: String,
    generation: u64,
    rooms: Rooms,
    daemon: Daemon,
    settings: RoomSettings,
    worker: Option<WorkerClient>,
    router_id: Option<String>,
    /// The daemon generation the router was created in.
    router_generation: u64,
    daemon_rx: watch::Receiver<DaemonState>,
    /// The media is gone (daemon lost, router closed): re-create it once the daemon's
    /// generation is above this one.
    suspended: Option<u64>,
    /// When to try re-creating the media again after a failure that was not a loss.
    retry_at: Option<Instant>,
    /// In joining order.
    peers: Vec<Peer>,
    /// By producer id.
    producers: HashMap<String, Produced>,
    entities: HashMap<String, Entity>,
    notify_tx: mpsc::UnboundedSender<Notification>,
    /// Participants whose message queue overflowed, removed after the current step.
    slow: Vec<String>,
    next_seq: u64,
    /// Which simulcast encodings publishers send.
    dynacast: Dynacast,
    /// The router's active-speaker observer, and the participant it last named.
    speaker_observer: Option<String>,
    active_speaker: Option<String>,
    /// The recent chat, for late joiners.
    chat: ChatHistory,
}

pub(super) fn spawn(
    name: String,
    generation: u64,
    rx: mpsc::Receiver<RoomCmd>,
    rooms: Rooms,
    daemon: Daemon,
    settings: RoomSettings,
) {
    let span = tracing::info_span!("room", room = %name);
    let (notify_tx, notify_rx) = mpsc::unbounded_channel();
    let daemon_rx = daemon.watch();
    let room = Room {
        name,
        generation,
        rooms,
        daemon,
        settings,
        worker: None,
        router_id: None,
        router_generation: 0,
        daemon_rx,
        suspended: None,
        retry_at: None,
        peers: Vec::new(),
        producers: HashMap::new(),
        entities: HashMap::new(),
        notify_tx,
        slow: Vec::new(),
        next_seq: 0,
        dynacast: Dynacast::default(),
        speaker_observer: None,
        active_speaker: None,
        chat: ChatHistory::default(),
    };
    tokio::spawn(room.run(rx, notify_rx).instrument(span));
}

fn server_error(e: &DaemonError) -> ProtocolError {
    ProtocolError::new(ErrorCode::ServerError, e.to_string())
}

/// The bandwidth weight of a screen share's consumers (`consumer.setPriority`; cameras
/// have the default 1).
const SCREEN_PRIORITY: u8 = 4;

/// A consumer's score before the daemon reports one (it starts consumers at 10).
const CONSUMER_INITIAL_SCORE: u8 = 10;

/// The `score` message about a received track.
fn consumer_score(c: &ConsumerSlot, producer_score: u8) -> ServerMessage {
    ServerMessage::Score {
        peer_id: c.peer_id.clone(),
        producer_id: c.producer_id.clone(),
        kind: c.kind,
        consumer_id: Some(c.consumer_id.clone()),
        score: c.score,
        producer_score: Some(producer_score),
    }
}

/// Sleeps until `at`, or forever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Room {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<RoomCmd>,
        mut notify_rx: mpsc::UnboundedReceiver<Notification>,
    ) {
        tracing::info!("room opened");
        loop {
            let mut daemon_rx = self.daemon_rx.clone();
            let retry = sleep_until(self.retry_at);
            let dynacast = sleep_until(self.dynacast.poll_timeout());
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                Some(n) = notify_rx.recv() => self.on_notification(n).await,
                // A loss or a new generation; checked below. (Err: the supervisor is gone,
                // the process is stopping.)
                Ok(()) = daemon_rx.changed() => {}
                () = retry => self.retry_at = None,
                // Handled in after_step.
                () = dynacast => {}
            }
            self.check_daemon().await;
            self.after_step().await;
            if self.peers.is_empty() && self.rooms.retire(&self.name, self.generation, &rx) {
                break;
            }
        }
        self.close().await;
        self.rooms.actor_ended();
    }

    /// Updates dynacast, removes participants that fell behind, then sends due offers.
    async fn after_step(&mut self) {
        self.update_dynacast(Instant::now());
        while let Some(id) = self.slow.pop() {
            tracing::warn!(peer = %id, "participant too slow to take its messages: removed");
            self.remove_peer(&id, Removal::Slow).await;
        }
        for i in 0..self.peers.len() {
            let Some(peer) = self.peers.get_mut(i) else {
                continue;
            };
            if let Some(offer) = peer.recv.next_offer() {
                let id = peer.id.clone();
                tracing::debug!(peer = %id, offer = offer.offer_id, consumers = offer.consumers.len(), "offer");
                self.send_to(
                    &id,
                    ServerMessage::Offer {
                        offer_id: offer.offer_id,
                        sdp: offer.sdp,
                        consumers: offer.consumers,
                    },
                );
            }
        }
        while let Some(id) = self.slow.pop() {
            self.remove_peer(&id, Removal::Slow).await;
        }
    }

    async fn close(&mut self) {
        if let (Some(w), Some(r)) = (&self.worker, &self.router_id) {
            if !w.is_lost() {
                if let Err(e) = w.request(&RouterClose::new(r.as_str())).await {
                    tracing::warn!(error = %e, "closing the router failed");
                }
            }
            w.unsubscribe(r);
            for id in self.entities.keys() {
                w.unsubscribe(id);
            }
        }
        tracing::info!("room closed");
    }

    fn peer(&self, id: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.id == id)
    }

    fn peer_mut(&mut self, id: &str) -> Option<&mut Peer> {
        self.peers.iter_mut().find(|p| p.id == id)
    }

    /// Queues a message for one participant without waiting: a participant whose queue
    /// is full is removed rather than allowed to stall the room.
    fn send_to(&mut self, peer_id: &str, msg: ServerMessage) {
        let Some(peer) = self.peer(peer_id) else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = peer.out.try_send(msg) {
            self.slow.push(peer_id.to_owned());
        }
    }

    fn error_to(&mut self, peer_id: &str, e: ProtocolError, in_reply_to: &'static str) {
        if e.code == ErrorCode::ServerError && self.media_lost() {
            // The daemon went away under this request: the participant is about to be
            // told to restart its media, which supersedes the error.
            tracing::debug!(peer = %peer_id, message = %e.message, "error during a media loss: not sent");
            return;
        }
        tracing::debug!(peer = %peer_id, code = ?e.code, message = %e.message, "error to client");
        self.send_to(peer_id, ServerMessage::error(e, Some(in_reply_to)));
    }

    fn broadcast(&mut self, except: &str, msg: &ServerMessage) {
        let ids: Vec<String> = self
            .peers
            .iter()
            .filter(|p| p.id != except)
            .map(|p| p.id.clone())
            .collect();
        for id in ids {
            self.send_to(&id, msg.clone());
        }
    }

    fn worker(&self) -> Result<&WorkerClient, DaemonError> {
        self.worker.as_ref().ok_or(DaemonError::Lost)
    }

    async fn request<R: Request>(&self, request: &R) -> Result<R::Response, DaemonError> {
        self.worker()?.request(request).await
    }

    fn track(&mut self, id: &str, entity: Entity) {
        if let Some(w) = &self.worker {
            w.subscribe(id, &self.notify_tx);
        }
        self.entities.insert(id.to_owned(), entity);
    }

    fn untrack(&mut self, id: &str) {
        if let Some(w) = &self.worker {
            w.unsubscribe(id);
        }
        self.entities.remove(id);
    }

    async fn handle(&mut self, cmd: RoomCmd) {
        match cmd {
            RoomCmd::Join(req) => self.on_join(req).await,
            RoomCmd::Offer {
                peer_id,
                sdp,
                epoch,
                encodings,
                source,
            } => {
                if let Err(e) = self
                    .on_offer(&peer_id, &sdp, epoch, &encodings, source)
                    .await
                {
                    self.error_to(&peer_id, e, "offer");
                }
            }
            RoomCmd::StopScreen { peer_id } => self.stop_screen(&peer_id).await,
            RoomCmd::Answer {
                peer_id,
                offer_id,
                sdp,
            } => {
                if let Err(e) = self.on_answer(&peer_id, offer_id, &sdp).await {
                    self.error_to(&peer_id, e, "answer");
                }
            }
            RoomCmd::Play {
                peer_id,
                source,
                sdp,
            } => {
                if let Err(e) = self.on_play(&peer_id, source.as_deref(), &sdp).await {
                    self.error_to(&peer_id, e, "offer");
                }
            }
            RoomCmd::Mute {
                peer_id,
                kind,
                muted,
            } => {
                if let Err(e) = self.on_mute(&peer_id, kind, muted).await {
                    self.error_to(&peer_id, e, "mute");
                }
            }
            RoomCmd::PreferredLayers {
                peer_id,
                consumer_id,
                spatial_layer,
                temporal_layer,
            } => {
                let result = self
                    .on_preferred_layers(&peer_id, &consumer_id, spatial_layer, temporal_layer)
                    .await;
                if let Err(e) = result {
                    self.error_to(&peer_id, e, "preferredLayers");
                }
            }
            RoomCmd::PauseConsumer {
                peer_id,
                consumer_id,
                paused,
            } => {
                if let Err(e) = self.on_pause_consumer(&peer_id, &consumer_id, paused).await {
                    self.error_to(&peer_id, e, "pauseConsumer");
                }
            }
            RoomCmd::Leave { peer_id, explicit } => {
                let how = if explicit {
                    Removal::Left
                } else {
                    Removal::Gone
                };
                self.remove_peer(&peer_id, how).await;
            }
            RoomCmd::Chat { peer_id, text } => {
                if let Err(e) = self.on_chat(&peer_id, text, Instant::now()) {
                    self.error_to(&peer_id, e, "chat");
                }
            }
            RoomCmd::Stats(reply) => {
                let _ = reply.send(self.stats());
            }
        }
    }

    fn stats(&self) -> RoomStats {
        RoomStats {
            room: self.name.clone(),
            worker: self.worker.as_ref().map(WorkerClient::index),
            restarting: self.suspended.is_some(),
            peers: self
                .peers
                .iter()
                .map(|p| PeerStats {
                    peer_id: p.id.clone(),
                    name: p.name.clone(),
                    producers: self
                        .producers
                        .values()
                        .filter(|x| x.peer_id == p.id)
                        .count(),
                    consumers: p.recv.consumers().count(),
                })
                .collect(),
        }
    }

    /// Makes sure the room has a router before a participant enters. While the media
    /// server is away the participant is let in all the same: it is told to (re)start its
    /// media with everyone else when the server is back.
    async fn ensure_router(&mut self) -> Result<(), ProtocolError> {
        if self.router_id.is_some() || self.suspended.is_some() {
            return Ok(());
        }
        let before = self.daemon.state().generation;
        match self.create_router().await {
            Ok(()) => Ok(()),
            Err(DaemonError::Lost) => {
                tracing::warn!("the media server is away: the room waits for it");
                self.suspended = Some(before);
                Ok(())
            }
            Err(e) => Err(server_error(&e)),
        }
    }

    /// Creates the room's router on the least-loaded worker.
    async fn create_router(&mut self) -> Result<(), DaemonError> {
        let (worker, generation) = self.daemon.least_loaded().await?;
        let create = RouterCreate {
            app_data: json!({ "room": self.name }),
        };
        let created = worker.request(&create).await?;
        let id = created.router_id.0.as_str();
        tracing::info!(
            worker = worker.index(),
            router = id,
            generation,
            "router created"
        );
        // Its `workerclose` notification says the daemon is stopping.
        worker.subscribe(id, &self.notify_tx);
        self.router_id = Some(id.to_owned());
        self.router_generation = generation;
        self.worker = Some(worker);
        self.create_speaker_observer().await;
        Ok(())
    }

    async fn on_join(&mut self, req: JoinRequest) {
        let JoinRequest {
            peer_id,
            name,
            caps,
            kind,
            ice_servers,
            out,
            reply,
        } = req;
        if self.peers.len() >= self.settings.max_peers {
            let _ = reply.send(Err(ProtocolError::new(
                ErrorCode::RoomFull,
                format!(
                    "the room has its maximum of {} participants",
                    self.settings.max_peers
                ),
            )));
            return;
        }
        if self
            .peers
            .iter()
            .any(|p| p.name.to_lowercase() == name.to_lowercase())
        {
            let _ = reply.send(Err(ProtocolError::new(
                ErrorCode::NameTaken,
                format!("someone in this room is already called {name:?}"),
            )));
            return;
        }
        if let Err(e) = self.ensure_router().await {
            let _ = reply.send(Err(e));
            return;
        }
        let others: Vec<PeerInfo> = self
            .peers
            .iter()
            .filter(|p| p.listed)
            .map(Peer::info)
            .collect();
        let peer = Peer {
            id: peer_id.clone(),
            name: name.clone(),
            out,
            caps,
            receives: kind == ParticipantKind::Page,
            listed: kind != ParticipantKind::Player,
            playback: None,
            send: None,
            recv: RecvSession::new(rand::random::<u32>().into()),
            audio_muted: false,
            video_muted: false,
            epoch: 0,
            chat_rate: ChatRate::new(Instant::now()),
            screen: None,
        };
        let info = peer.info();
        self.peers.push(peer);
        let counters = self.rooms.counters();
        counters.peers.fetch_add(1, Ordering::Relaxed);
        counters.joins.fetch_add(1, Ordering::Relaxed);
        tracing::info!(peer = %peer_id, name = %name, "joined");
        self.send_to(
            &peer_id,
            ServerMessage::Joined {
                peer_id: peer_id.clone(),
                room: self.name.clone(),
                name,
                peers: others,
                ice_servers,
            },
        );
        let _ = reply.send(Ok(()));
        self.chat_history_for_newcomer(&peer_id);
        self.active_speaker_for_newcomer(&peer_id);
        if kind != ParticipantKind::Player {
            self.broadcast(&peer_id, &ServerMessage::PeerJoined { peer: info });
        }
        let mut existing: Vec<(u64, String)> = self
            .producers
            .iter()
            .filter(|(_, p)| p.peer_id != peer_id)
            .map(|(id, p)| (p.seq, id.clone()))
            .collect();
        existing.sort();
        for (_, producer_id) in existing {
            self.consume(&peer_id, &producer_id).await;
        }
    }

    async fn ensure_recv_transport(&mut self, peer_id: &str) -> Result<(), ProtocolError> {
        if self
            .peer(peer_id)
            .is_some_and(|p| p.recv.transport.is_some())
        {
            return Ok(());
        }
        let info = self.create_transport(peer_id, Direction::Recv).await?;
        if let Some(p) = self.peer_mut(peer_id) {
            p.recv.transport = Some(info);
        }
        Ok(())
    }

    async fn create_transport(
        &mut self,
        peer_id: &str,
        direction: Direction,
    ) -> Result<TransportCreated, ProtocolError> {
        let router = self.router_id.clone().unwrap_or_default();
        let dir = match direction {
            Direction::Send => "send",
            Direction::Recv => "recv",
        };
        let create = TransportCreate {
            router_id: router.into(),
            app_data: json!({ "peer": peer_id, "direction": dir }),
        };
        let info = self.request(&create).await.map_err(|e| server_error(&e))?;
        self.track(
            &info.transport_id.0,
            Entity::Transport {
                peer_id: peer_id.to_owned(),
                direction,
            },
        );
        Ok(info)
    }

    /// Makes `peer_id` consume `producer_id` (paused until its answer arrives). Problems
    /// are reported to that participant only.
    async fn consume(&mut self, peer_id: &str, producer_id: &str) {
        let Some(owner) = self.producers.get(producer_id).cloned() else {
            return;
        };
        let Some(peer) = self.peer(peer_id).filter(|p| p.receives) else {
            return;
        };
        // A player takes only its participant's tracks, each in its own m-line of the
        // track's kind, with that m-line's payload types; it is not paused, as the
        // player's answer came first (its offer).
        let line = match peer.playback {
            Some(_) => match self.play_line(peer_id, &owner) {
                Some(line) => Some(line),
                None => return,
            },
            None => None,
        };
        if let Err(e) = self.ensure_recv_transport(peer_id).await {
            self.error_to(peer_id, e, "join");
            return;
        }
        let Some(peer) = self.peer(peer_id) else {
            return;
        };
        let transport_id = peer
            .recv
            .transport
            .as_ref()
            .map(|t| t.transport_id.clone())
            .unwrap_or_default();
        let (mid, rtp_capabilities) = match &line {
            Some(l) => (l.mid.clone(), l.caps.clone()),
            None => (peer.recv.next_mid(), peer.caps.clone()),
        };
        let consume = TransportConsume {
            transport_id,
            producer_id: producer_id.into(),
            rtp_capabilities,
            paused: line.is_none(),
            mid: Some(mid.clone()),
            preferred_layers: None,
            follow: self.follows_speaker(peer_id),
            app_data: serde_json::Value::Null,
        };
        let info: ConsumerCreated = match self.request(&consume).await {
            Ok(info) => info,
            Err(DaemonError::Refused {
                kind: ErrorKind::Unsupported,
                reason,
                ..
            }) => {
                let who = self
                    .peer(&owner.peer_id)
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                let e = ProtocolError::new(
                    ErrorCode::NoCommonCodec,
                    format!(
                        "cannot receive {who}'s {}: {reason}",
                        owner.info.kind.as_str()
                    ),
                );
                self.error_to(peer_id, e, "join");
                return;
            }
            Err(e) => {
                self.error_to(peer_id, server_error(&e), "join");
                return;
            }
        };
        self.track(
            &info.consumer_id.0,
            Entity::Consumer {
                peer_id: peer_id.to_owned(),
            },
        );
        let Some(peer) = self.peer_mut(peer_id) else {
            return;
        };
        let slot = ConsumerSlot {
            consumer_id: info.consumer_id.0,
            producer_id: producer_id.to_owned(),
            peer_id: owner.peer_id,
            kind: info.kind,
            source: owner.info.source,
            rtp: info.rtp_parameters,
            resumed: line.is_some(),
            score: CONSUMER_INITIAL_SCORE,
            hidden: false,
            preferred_spatial: None,
            preferred_temporal: None,
            simulcast: info.consumer_type == ConsumerType::Simulcast,
        };
        // The daemon notifies scores only when they change: the page learns the
        // starting point here (a perfect downlink keeps it forever).
        let first = consumer_score(&slot, owner.score);
        let consumer_id = slot.consumer_id.clone();
        if line.is_some() {
            peer.recv.place(&mid, slot);
        } else {
            let assigned = peer.recv.add(slot);
            debug_assert_eq!(assigned, mid);
        }
        self.send_to(peer_id, first);
        if owner.info.source == Source::Screen {
            // A shared screen is text and detail: when the downlink cannot carry
            // everything, it gets its share first.
            let priority = ConsumerSetPriority {
                consumer_id: consumer_id.as_str().into(),
                priority: SCREEN_PRIORITY,
            };
            if let Err(e) = self.request(&priority).await {
                tracing::warn!(consumer = %consumer_id, error = %e, "setting the screen share's priority failed");
            }
        }
    }

    /// A daemon `score` notification: kept, and relayed to whom it concerns.
    fn on_score(&mut self, entity: &Entity, id: &str, score: u8, producer_score: Option<u8>) {
        // From the daemon, so trusted, but a bad value must not take the room down.
        let score = score.min(10);
        match entity {
            Entity::Producer => {
                let Some(p) = self.producers.get_mut(id) else {
                    return;
                };
                p.score = score;
                let (owner, kind) = (p.peer_id.clone(), p.info.kind);
                self.send_to(
                    &owner,
                    ServerMessage::Score {
                        peer_id: owner.clone(),
                        producer_id: id.to_owned(),
                        kind,
                        consumer_id: None,
                        score,
                        producer_score: None,
                    },
                );
                // The subscribers' tiles show the worse of both paths: tell them too.
                let updates: Vec<(String, ServerMessage)> = self
                    .peers
                    .iter()
                    .flat_map(|peer| {
                        peer.recv
                            .consumers()
                            .filter(|c| c.producer_id == id)
                            .map(|c| (peer.id.clone(), consumer_score(c, score)))
                    })
                    .collect();
                for (to, msg) in updates {
                    self.send_to(&to, msg);
                }
            }
            Entity::Consumer { peer_id } => {
                let Some(c) = self.peer_mut(peer_id).and_then(|p| p.recv.consumer_mut(id)) else {
                    return;
                };
                c.score = score;
                let producer_id = c.producer_id.clone();
                let c = c.clone();
                let producer_score = producer_score
                    .map(|s| s.min(10))
                    .or_else(|| self.producers.get(&producer_id).map(|p| p.score))
                    .unwrap_or(0);
                let to = peer_id.clone();
                self.send_to(&to, consumer_score(&c, producer_score));
            }
            Entity::Transport { .. } | Entity::SpeakerObserver => {}
        }
    }

    async fn on_answer(
        &mut self,
        peer_id: &str,
        offer_id: u64,
        sdp: &str,
    ) -> Result<(), ProtocolError> {
        let Some(peer) = self.peer(peer_id) else {
            return Ok(());
        };
        let Some(pending) = peer.recv.pending(offer_id) else {
            if peer.recv.is_stale(offer_id) {
                // The answer to an offer of transports lost with the media server.
                tracing::debug!(peer = %peer_id, offer_id, "answer from before a media restart: ignored");
                return Ok(());
            }
            return Err(ProtocolError::new(
                ErrorCode::OutOfOrder,
                format!("no offer {offer_id} is waiting for an answer"),
            ));
        };
        let desc = parse(sdp)?;
        let answer = read_recv_answer(&desc, &pending.mids)?;
        let connected = peer.recv.connected;
        let transport_id = peer
            .recv
            .transport
            .as_ref()
            .map(|t| t.transport_id.clone())
            .unwrap_or_default();
        if !connected {
            let connect = TransportConnect {
                transport_id,
                dtls_parameters: answer.dtls,
            };
            self.request(&connect).await.map_err(|e| server_error(&e))?;
        }
        let Some(peer) = self.peer_mut(peer_id) else {
            return Ok(());
        };
        peer.recv.connected = true;
        let Some(done) = peer.recv.answered() else {
            return Ok(());
        };
        // m-lines the browser refused: their consumers are of no use.
        let rejected: Vec<String> = answer
            .rejected
            .iter()
            .filter_map(|mid| peer.recv.consumer_at(mid).map(|c| c.consumer_id.clone()))
            .collect();
        for cid in rejected {
            if let Some(p) = self.peer_mut(peer_id) {
                p.recv.remove(&cid);
            }
            let _ = self.request(&ConsumerClose::new(cid.as_str())).await;
            self.untrack(&cid);
        }
        for cid in done.to_resume {
            let Some(hidden) = self.peer(peer_id).and_then(|p| {
                p.recv
                    .consumers()
                    .find(|c| c.consumer_id == cid)
                    .map(|c| c.hidden)
            }) else {
                continue;
            };
            if hidden {
                // Its page paused it before it was shown: it stays paused until the page
                // resumes it (`pauseConsumer`).
                if let Some(p) = self.peer_mut(peer_id) {
                    p.recv.set_resumed(&cid);
                }
                continue;
            }
            match self.request(&ConsumerResume::new(cid.as_str())).await {
                Ok(_) => {
                    if let Some(p) = self.peer_mut(peer_id) {
                        p.recv.set_resumed(&cid);
                    }
                }
                Err(e) => {
                    tracing::warn!(consumer = %cid, error = %e, "resuming the consumer failed")
                }
            }
        }
        Ok(())
    }

    async fn on_mute(
        &mut self,
        peer_id: &str,
        kind: MediaKind,
        muted: bool,
    ) -> Result<(), ProtocolError> {
        let Some(peer) = self.peer_mut(peer_id) else {
            return Ok(());
        };
        let flag = match kind {
            MediaKind::Audio => &mut peer.audio_muted,
            MediaKind::Video => &mut peer.video_muted,
        };
        if *flag == muted {
            return Ok(());
        }
        *flag = muted;
        let producer = self
            .producers
            .iter()
            .find(|(_, p)| p.peer_id == peer_id && p.info.kind == kind && p.info.source.is_camera())
            .map(|(id, _)| id.clone());
        if let Some(pid) = producer {
            let result = if muted {
                self.request(&ProducerPause::new(pid)).await
            } else {
                self.request(&ProducerResume::new(pid)).await
            };
            result.map_err(|e| server_error(&e))?;
        }
        self.broadcast(
            peer_id,
            &ServerMessage::MuteChanged {
                peer_id: peer_id.to_owned(),
                kind,
                muted,
            },
        );
        Ok(())
    }

    /// Takes a participant out: closes its transports (the daemon closes their producers
    /// and, with them, the other participants' consumers of them), tells the others and
    /// renegotiates their receive sides.
    async fn remove_peer(&mut self, peer_id: &str, how: Removal) {
        let Some(idx) = self.peers.iter().position(|p| p.id == peer_id) else {
            return;
        };
        let peer = self.peers.remove(idx);
        self.speaker_left(peer_id);
        self.rooms.counters().peers.fetch_sub(1, Ordering::Relaxed);
        tracing::info!(peer = %peer_id, name = %peer.name, ?how, "left");
        let own: Vec<(String, ProducerInfo)> = self
            .producers
            .iter()
            .filter(|(_, p)| p.peer_id == peer_id)
            .map(|(id, p)| (id.clone(), p.info.clone()))
            .collect();
        // The others' consumers of its producers: gone from their offers now; the
        // daemon's producerclose notifications for them will find nothing left to do.
        for (pid, _) in &own {
            self.producers.remove(pid);
            self.untrack(pid);
            let mut closed = Vec::new();
            for other in &mut self.peers {
                // A speaker player's consumers outlive the producer (idle, `follow`)
                // until the next speaker's are set on them.
                if other
                    .playback
                    .as_ref()
                    .is_some_and(playback::Playback::follows)
                {
                    continue;
                }
                closed.extend(
                    other
                        .recv
                        .remove_producer(pid)
                        .into_iter()
                        .map(|c| c.consumer_id),
                );
            }
            for cid in closed {
                self.untrack(&cid);
            }
        }
        for c in peer.recv.consumers() {
            self.untrack(&c.consumer_id);
        }
        for (pid, info) in own {
            self.broadcast(
                peer_id,
                &ServerMessage::ProducerRemoved {
                    peer_id: peer_id.to_owned(),
                    producer_id: pid,
                    kind: info.kind,
                },
            );
        }
        if peer.listed {
            self.broadcast(
                peer_id,
                &ServerMessage::PeerLeft {
                    peer_id: peer_id.to_owned(),
                },
            );
        }
        match how {
            Removal::Left => {
                let _ = peer.out.try_send(ServerMessage::Left {});
            }
            Removal::Slow => {
                let _ = peer.out.try_send(ServerMessage::error(
                    ProtocolError::new(
                        ErrorCode::ServerError,
                        "removed from the room: too many unread messages",
                    ),
                    None,
                ));
            }
            Removal::Gone => {}
        }
        // Speaker players that played it move on to whoever is played now.
        self.players_follow().await;
        // Closing the transports is the daemon's part and may take a while under load:
        // it runs beside the room (pipelined on the worker connection), so that the others'
        // renegotiation, sent after this step, does not wait for it.
        let transports: Vec<String> = peer
            .send
            .iter()
            .chain(peer.screen.iter())
            .chain(peer.recv.transport.iter())
            .map(|t| t.transport_id.0.clone())
            .collect();
        for tid in transports {
            self.untrack(&tid);
            if let Some(w) = self.worker.clone().filter(|w| !w.is_lost()) {
                tokio::spawn(async move {
                    match w.request(&TransportClose::new(tid.as_str())).await {
                        Ok(()) => {}
                        // The room closed its router first (it was the last participant),
                        // which closed the transport already.
                        Err(DaemonError::Refused {
                            kind: ErrorKind::NotFound,
                            ..
                        }) => {
                            tracing::debug!(transport = %tid, "transport already closed");
                        }
                        Err(e) => {
                            tracing::warn!(transport = %tid, error = %e, "closing the transport failed");
                        }
                    }
                });
            }
        }
        // Dropping `peer` drops its message sender: the session sees the end of it.
    }

    async fn on_notification(&mut self, n: Notification) {
        if n.event == Event::WorkerClose && self.router_id.as_deref() == Some(n.target.as_str()) {
            // The daemon is stopping (restart): the next generation gets the media back.
            self.drop_media("the media server is stopping", self.router_generation);
            return;
        }
        let Some(entity) = self.entities.get(&n.target).cloned() else {
            return;
        };
        match (entity, n.event) {
            (Entity::SpeakerObserver, Event::DominantSpeaker { producer_id }) => {
                self.on_dominant_speaker(&producer_id.0);
                self.players_follow().await;
            }
            (Entity::Consumer { peer_id }, Event::ProducerChange { producer_id }) => {
                tracing::debug!(peer = %peer_id, consumer = %n.target, producer = %producer_id, "player switched");
            }
            (Entity::Transport { .. } | Entity::SpeakerObserver, Event::RouterClose) => {
                // Closed under us while the daemon runs on: re-create it right away.
                let generation = self.router_generation.saturating_sub(1);
                self.drop_media("the media server closed this room's router", generation);
            }
            (Entity::Consumer { peer_id }, Event::ProducerClose | Event::TransportClose) => {
                self.untrack(&n.target);
                if let Some(p) = self.peer_mut(&peer_id) {
                    p.recv.remove(&n.target);
                }
            }
            (
                Entity::Transport { peer_id, direction },
                event @ (Event::IceStateChange { .. } | Event::DtlsStateChange { .. }),
            ) => {
                let (ice_state, dtls_state) = match event {
                    Event::IceStateChange { ice_state } => {
                        (Some(ice_state.name().to_owned()), None)
                    }
                    Event::DtlsStateChange { dtls_state } => (None, Some(dtls_state)),
                    _ => (None, None),
                };
                tracing::debug!(peer = %peer_id, ?direction, ?ice_state, ?dtls_state, "transport state");
                if dtls_state == Some(DtlsState::Failed) {
                    let e = ProtocolError::new(
                        ErrorCode::TransportFailed,
                        "the secure media connection failed (DTLS)",
                    );
                    self.send_to(&peer_id, ServerMessage::error(e, None));
                }
                self.send_to(
                    &peer_id,
                    ServerMessage::TransportState {
                        direction,
                        ice_state,
                        dtls_state: dtls_state.map(|s| s.name().to_owned()),
                    },
                );
            }
            (
                entity,
                Event::Score {
                    score,
                    producer_score,
                },
            ) => self.on_score(&entity, &n.target, score, producer_score),
            (Entity::Consumer { peer_id }, Event::LayersChange(layers)) => {
                self.on_layers_change(&peer_id, &n.target, layers);
            }
            (Entity::Producer, Event::TransportClose) => {
                self.producers.remove(&n.target);
                self.untrack(&n.target);
            }
            _ => {}
        }
    }
}
