//! One WebSocket session: reads client messages, answers bad ones with an error to this
//! client only, forwards good ones to its room, and writes what the room sends back.
//! A session is bounded: a message over `max_message` closes it (1009) before it is
//! buffered, a session not in a room within the join timeout is closed (1008), and the
//! server pings every ping interval and closes a session that sent nothing, pongs
//! included, for the idle timeout (1008). Browsers answer pings on their own, so a page
//! that is open is never idle.

use std::future::pending;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use crate::http::ConnectionCounters;
use crate::names::{validate_name, validate_room};
use crate::protocol::{ClientMessage, ErrorCode, Join, ProtocolError, ServerMessage};
use crate::room::{ParticipantKind, RoomCmd, RoomHandle, Rooms};
use crate::sdp::capabilities::receive_capabilities;
use crate::token;
use crate::turn::IceServerConfig;

/// Close code when the server stops (RFC 6455 section 7.4.1, "going away"): pages
/// reconnect and rejoin.
pub const GOING_AWAY: u16 = 1001;
/// Close code of the join and idle timeouts (RFC 6455 section 7.4.1, "policy violation").
pub const POLICY: u16 = 1008;
/// Close code of a message over `max_message` (RFC 6455 section 7.4.1, "message too big").
pub const TOO_BIG: u16 = 1009;
/// Close code of a frame that breaks RFC 6455 (unmasked, bad opcode, bad UTF-8...).
pub const PROTOCOL_ERROR: u16 = 1002;
/// Largest read into the frame buffer: a session then holds about `max_message` plus this
/// (tungstenite's default, 128 KiB, zero-filled per read, would be most of the cost of
/// an idle session).
const READ_BUFFER: usize = 16 * 1024;

/// The session timeouts.
#[derive(Debug, Clone, Copy)]
pub struct SessionTimeouts {
    /// A session must be in a room this long after opening (or after its `leave`).
    pub join: Duration,
    /// The server pings this often.
    pub ping: Duration,
    /// A session that sent no frame (pongs included) for this long is closed.
    pub idle: Duration,
}

/// What sessions share.
#[derive(Clone)]
pub struct SessionConfig {
    pub rooms: Rooms,
    pub auth_secret: Option<Arc<[u8]>>,
    /// Largest frame and message read; larger ones close the session with 1009.
    pub max_message: usize,
    /// Whether subscribers are offered transport-cc (the `bandwidth_feedback` setting).
    pub bandwidth_feedback: bool,
    /// Becomes true when the server stops: every session closes with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// Open WebSocket sessions, for /metrics.
    pub sessions: Arc<AtomicU64>,
    /// What `/metrics` on this listener reads; None when served elsewhere.
    pub metrics: Option<crate::metrics::Sources>,
    pub timeouts: SessionTimeouts,
    /// Sessions closed by the limits, for /metrics.
    pub counters: Arc<ConnectionCounters>,
    /// The `ice_servers` setting: each joining page gets them, TURN credentials minted
    /// for it (`crate::turn`).
    pub ice_servers: Arc<[IceServerConfig]>,
}

/// `GET /ws`.
pub async fn upgrade(ws: WebSocketUpgrade, State(cfg): State<SessionConfig>) -> Response {
    // Both limits: a message may come in one frame or in many fragments.
    ws.max_message_size(cfg.max_message)
        .max_frame_size(cfg.max_message)
        .read_buffer_size(READ_BUFFER.min(cfg.max_message))
        .on_upgrade(move |socket| Session::new(cfg).run(socket))
}

struct Joined {
    room: RoomHandle,
    peer_id: String,
    out: mpsc::Receiver<ServerMessage>,
    /// A `leave` was sent: the end of `out` is expected.
    leaving: bool,
}

/// Which session deadline passed.
#[derive(Debug, Clone, Copy)]
enum Expired {
    Join,
    Idle,
}

struct Session {
    cfg: SessionConfig,
    joined: Option<Joined>,
}

fn to_text(msg: &ServerMessage) -> Message {
    // Our own message types always serialise.
    Message::Text(serde_json::to_string(msg).unwrap_or_default().into())
}

impl Session {
    fn new(cfg: SessionConfig) -> Self {
        Self { cfg, joined: None }
    }

    async fn run(mut self, mut socket: WebSocket) {
        tracing::debug!("WebSocket session opened");
        let sessions = self.cfg.sessions.clone();
        sessions.fetch_add(1, Ordering::Relaxed);
        let mut shutdown = self.cfg.shutdown.clone();
        let timeouts = self.cfg.timeouts;
        let mut ping = tokio::time::interval_at(Instant::now() + timeouts.ping, timeouts.ping);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        // When the session last was out of a room (opened, left, removed).
        let mut unjoined_since = Some(Instant::now());
        loop {
            match (&self.joined, unjoined_since) {
                (None, None) => unjoined_since = Some(Instant::now()),
                (Some(_), Some(_)) => unjoined_since = None,
                _ => {}
            }
            let (deadline, why) = match unjoined_since {
                Some(t) if t + timeouts.join < last_heard + timeouts.idle => {
                    (t + timeouts.join, Expired::Join)
                }
                _ => (last_heard + timeouts.idle, Expired::Idle),
            };
            let from_room = async {
                match &mut self.joined {
                    Some(j) => j.out.recv().await,
                    None => pending().await,
                }
            };
            tokio::select! {
                incoming = socket.recv() => {
                    let msg = match incoming {
                        Some(Ok(m)) => m,
                        Some(Err(e)) => {
                            let frame = self.read_error(e);
                            let _ = socket.send(Message::Close(Some(frame))).await;
                            break;
                        }
                        None => break,
                    };
                    // Any frame, a pong to our ping included, shows the client is there.
                    last_heard = Instant::now();
                    let reply = match msg {
                        Message::Text(t) => self.on_text(t.as_str()).await,
                        Message::Binary(_) => Some(ServerMessage::error(
                            ProtocolError::new(ErrorCode::BadMessage, "binary messages are not supported; send JSON text"),
                            None,
                        )),
                        Message::Close(_) => break,
                        Message::Ping(_) | Message::Pong(_) => None,
                    };
                    if let Some(reply) = reply {
                        if socket.send(to_text(&reply)).await.is_err() {
                            break;
                        }
                    }
                }
                // (The guard wait_for returns must not live across the send below.)
                () = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                    let frame = CloseFrame { code: GOING_AWAY, reason: "server restarting".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
                out = from_room => match out {
                    Some(msg) => {
                        // `left` is the room's last word to us: we are out of the room
                        // from here, so a `join` the client sends on reading it is taken
                        // (waiting for the channel to close would race that join).
                        if matches!(msg, ServerMessage::Left {}) {
                            self.joined = None;
                        }
                        if socket.send(to_text(&msg)).await.is_err() {
                            break;
                        }
                    }
                    None => {
                        // The room let go of us: after our leave (its `left` came first),
                        // or because it removed us (it sent the reason).
                        self.joined = None;
                    }
                },
                _ = ping.tick() => {
                    if socket.send(Message::Ping(Default::default())).await.is_err() {
                        break;
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    let frame = self.expired(why, timeouts);
                    tracing::debug!(reason = %frame.reason, "WebSocket session timed out");
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
        }
        if let Some(j) = self.joined.take() {
            j.room
                .send(RoomCmd::Leave {
                    peer_id: j.peer_id,
                    explicit: false,
                })
                .await;
        }
        sessions.fetch_sub(1, Ordering::Relaxed);
        tracing::debug!("WebSocket session closed");
    }

    /// The close frame for a read error: 1009 for a message over `max_message` (the
    /// reader refused to buffer it), 1002 for a frame that breaks the protocol.
    fn read_error(&self, e: axum::Error) -> CloseFrame {
        tracing::debug!(error = %e, "WebSocket read error");
        let too_big = e
            .into_inner()
            .downcast_ref::<tungstenite::Error>()
            .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)));
        if too_big {
            self.cfg.counters.ws_too_big.fetch_add(1, Ordering::Relaxed);
            CloseFrame {
                code: TOO_BIG,
                reason: format!("message larger than {} bytes", self.cfg.max_message).into(),
            }
        } else {
            CloseFrame {
                code: PROTOCOL_ERROR,
                reason: "malformed frame".into(),
            }
        }
    }

    fn expired(&self, why: Expired, t: SessionTimeouts) -> CloseFrame {
        let (counter, reason) = match why {
            Expired::Join => (
                &self.cfg.counters.ws_join_timeouts,
                format!("no join within {} s", t.join.as_secs_f64()),
            ),
            Expired::Idle => (
                &self.cfg.counters.ws_idle_timeouts,
                format!("nothing received for {} s", t.idle.as_secs_f64()),
            ),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        CloseFrame {
            code: POLICY,
            reason: reason.into(),
        }
    }

    /// Handles one text message; returns the reply to send directly, if any.
    async fn on_text(&mut self, text: &str) -> Option<ServerMessage> {
        let msg = match ClientMessage::parse(text) {
            Ok(m) => m,
            Err(e) => return Some(ServerMessage::error(e, None)),
        };
        let kind = msg.kind();
        self.on_message(msg)
            .await
            .err()
            .map(|e| ServerMessage::error(e, Some(kind)))
    }

    async fn on_message(&mut self, msg: ClientMessage) -> Result<(), ProtocolError> {
        let out_of_order = |m: &str| ProtocolError::new(ErrorCode::OutOfOrder, m);
        if let ClientMessage::Join(join) = msg {
            if self.joined.is_some() {
                return Err(out_of_order("already in a room: leave first"));
            }
            return self.join(join).await;
        }
        let Some(j) = &mut self.joined else {
            return Err(out_of_order("join a room first"));
        };
        if j.leaving {
            return Err(out_of_order("leaving the room"));
        }
        let peer_id = j.peer_id.clone();
        let cmd = match msg {
            ClientMessage::Offer(o) => RoomCmd::Offer {
                peer_id,
                sdp: o.sdp,
                epoch: o.epoch,
                encodings: o.encodings,
                source: o.source,
            },
            ClientMessage::Answer(a) => RoomCmd::Answer {
                peer_id,
                offer_id: a.offer_id,
                sdp: a.sdp,
            },
            ClientMessage::Mute(m) => RoomCmd::Mute {
                peer_id,
                kind: m.kind,
                muted: m.muted,
            },
            ClientMessage::PreferredLayers(p) => RoomCmd::PreferredLayers {
                peer_id,
                consumer_id: p.consumer_id,
                spatial_layer: p.spatial_layer,
                temporal_layer: p.temporal_layer,
            },
            ClientMessage::PauseConsumer(p) => RoomCmd::PauseConsumer {
                peer_id,
                consumer_id: p.consumer_id,
                paused: p.paused,
            },
            ClientMessage::Leave => {
                j.leaving = true;
                RoomCmd::Leave {
                    peer_id,
                    explicit: true,
                }
            }
            ClientMessage::StopScreen => RoomCmd::StopScreen { peer_id },
            ClientMessage::Chat(c) => RoomCmd::Chat {
                peer_id,
                text: c.text,
            },
            // Handled above.
            ClientMessage::Join(_) => return Ok(()),
        };
        if !j.room.send(cmd).await {
            self.joined = None;
            return Err(ProtocolError::new(
                ErrorCode::ServerError,
                "the room is gone; join again",
            ));
        }
        Ok(())
    }

    async fn join(&mut self, j: Join) -> Result<(), ProtocolError> {
        validate_room(&j.room).map_err(|m| ProtocolError::new(ErrorCode::InvalidRoom, m))?;
        validate_name(&j.name).map_err(|m| ProtocolError::new(ErrorCode::InvalidName, m))?;
        if let Some(secret) = &self.cfg.auth_secret {
            token::verify(
                secret,
                j.token.as_deref(),
                &j.room,
                &j.name,
                token::unix_now(),
            )
            .map_err(|e| ProtocolError::new(ErrorCode::Unauthorized, e.to_string()))?;
        }
        if let Some(c) = &j.rtp_capabilities {
            if c.codecs.len() > 128 || c.header_extensions.len() > 128 {
                return Err(ProtocolError::new(
                    ErrorCode::BadMessage,
                    "rtpCapabilities is too long",
                ));
            }
        }
        let caps = receive_capabilities(j.rtp_capabilities.as_ref(), self.cfg.bandwidth_feedback);
        let now = token::unix_now();
        let ice_servers = self
            .cfg
            .ice_servers
            .iter()
            .map(|s| s.for_participant(&j.name, now))
            .collect();
        let entered = self
            .cfg
            .rooms
            .enter(&j.room, j.name, caps, ParticipantKind::Page, ice_servers)
            .await?;
        self.joined = Some(Joined {
            room: entered.room,
            peer_id: entered.peer_id,
            out: entered.out,
            leaving: false,
        });
        Ok(())
    }
}
