//! `signaling_ws`: the text messages of one WebSocket session, in order, interleaved with
//! what the participant's room does to its receive side.
//!
//! The session and room tasks themselves (ws.rs, room/actor) cannot run without a socket
//! and a daemon, so this drives the code they call, as they call it: message parsing, the
//! join checks (names, token, capabilities), the send-side translation of `offer`, and
//! the receive-side offer/answer state ([`RecvSession`]): offers sent when due, answers
//! matched to the outstanding offer (wrong, stale and repeated offer ids), consumers
//! added and closed, media restarts.
//!
//! Input: frames ([`super::push_frame`]), each `[op][payload]`:
//! - [`WS_CONSUME`]: the room adds a consumer; payload `[kind (bit 0)][producer][codec]`.
//! - [`WS_CLOSE`]: the room closes a live consumer; payload `[which][its producer's (bit 0)]`.
//! - [`WS_RESTART`]: the media server was lost and came back.
//! - anything else ([`WS_TEXT`]): the payload is a text message from the browser.

use std::io::Cursor;

use serde_json::Value;

use crate::names::{validate_name, validate_room};
use crate::protocol::{
    ChatEntry, ClientMessage, ErrorCode, Join, ProtocolError, ServerMessage, Source,
};
use crate::room::recv::{ConsumerSlot, RecvSession};
use crate::sdp::capabilities::{receive_capabilities, Negotiation};
use crate::sdp::offer::read_recv_answer;
use crate::sdp::parse::parse;
use crate::token::{self, Claims};
use sfu_control::params::{
    MediaKind, RtcpParameters, RtpCapabilities, RtpCodecCapability, RtpCodecParameters,
    RtpEncodingParameters, RtpHeaderExtensionParameters, RtpParameters, RtxParameters,
};

use super::{frames, sdp::answer_offer, transport};

/// A text message from the browser.
pub const WS_TEXT: u8 = 0;
/// The room adds a consumer to the receive side.
pub const WS_CONSUME: u8 = 1;
/// The room closes a consumer (or all of one producer's).
pub const WS_CLOSE: u8 = 2;
/// The media server was lost and the room's media re-created.
pub const WS_RESTART: u8 = 3;

/// The `--auth-secret` a `join` with a token is checked against; seeds mint with it.
pub const WS_SECRET: &[u8] = b"signaling-fuzz-secret";
/// The clock of token checks (Unix seconds): inputs replay the same way on any day.
pub const WS_NOW: u64 = 1_800_000_000;

/// `--max-message`'s default (config.rs): the WebSocket reader closes the session (1009)
/// on a longer message before ws.rs sees it.
const MAX_MESSAGE: usize = 64 * 1024;

/// How far an input got, for tests that check the seeds still reach deep.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WsReport {
    /// Joins that passed every check.
    pub joins: usize,
    /// Offers answered by the send-side translation.
    pub published: usize,
    /// Receive-side offers sent, their SDP in order.
    pub offers: Vec<String>,
    /// Receive-side answers accepted.
    pub answers: usize,
}

/// The `signaling_ws` target.
pub fn signaling_ws(data: &[u8]) {
    run_ws(data);
}

/// Runs an input of `signaling_ws` and says how far it got.
pub fn run_ws(data: &[u8]) -> WsReport {
    let mut s = Session::new();
    for frame in frames(data) {
        let (op, payload) = frame.split_first().unwrap_or((&WS_TEXT, &[]));
        match *op {
            WS_CONSUME => s.consume(payload),
            WS_CLOSE => s.close(payload),
            WS_RESTART => s.restart(),
            _ => s.text(&String::from_utf8_lossy(payload)),
        }
        // The room's after_step.
        s.send_due_offer();
    }
    s.report
}

struct Session {
    /// From the last successful join (the server assumes Opus and VP8 before).
    caps: RtpCapabilities,
    recv: RecvSession,
    /// Numbers consumer ids and SSRCs.
    consumers: u32,
    restarts: u64,
    report: WsReport,
}

impl Session {
    fn new() -> Self {
        let mut recv = RecvSession::new(1);
        recv.transport = Some(transport(false));
        Self {
            caps: receive_capabilities(None, true),
            recv,
            consumers: 0,
            restarts: 0,
            report: WsReport::default(),
        }
    }

    /// ws.rs's `on_text`: the reply, if any, must serialise.
    fn text(&mut self, text: &str) {
        if text.len() > MAX_MESSAGE {
            return;
        }
        let reply = match ClientMessage::parse(text) {
            Ok(msg) => {
                let kind = msg.kind();
                self.message(msg)
                    .err()
                    .map(|e| ServerMessage::error(e, Some(kind)))
            }
            Err(e) => Some(ServerMessage::error(e, None)),
        };
        if let Some(reply) = reply {
            check_serialises(&reply);
        }
    }

    fn message(&mut self, msg: ClientMessage) -> Result<(), ProtocolError> {
        match msg {
            ClientMessage::Join(j) => self.join(j),
            ClientMessage::Offer(o) => {
                answer_offer(
                    &parse(&o.sdp)?,
                    &Negotiation::default(),
                    false,
                    &o.encodings,
                )?;
                self.report.published += 1;
                Ok(())
            }
            ClientMessage::Answer(a) => self.answer(a.offer_id, &a.sdp),
            // What the room sends everyone for a chat text that passed the checks.
            ClientMessage::Chat(c) => {
                check_serialises(&ServerMessage::ChatMessage {
                    entry: ChatEntry {
                        peer_id: "p".into(),
                        name: "n".into(),
                        text: c.text,
                        at: 0,
                    },
                });
                Ok(())
            }
            // What these do is daemon requests and room bookkeeping, nothing to run here.
            ClientMessage::Mute(_)
            | ClientMessage::PreferredLayers(_)
            | ClientMessage::PauseConsumer(_)
            | ClientMessage::StopScreen
            | ClientMessage::Leave => Ok(()),
        }
    }

    /// ws.rs's join checks, before the room is asked. A join with a token is checked as
    /// on a server with `--auth-secret` [`WS_SECRET`], one without as on an open server.
    fn join(&mut self, j: Join) -> Result<(), ProtocolError> {
        validate_room(&j.room).map_err(|m| ProtocolError::new(ErrorCode::InvalidRoom, m))?;
        validate_name(&j.name).map_err(|m| ProtocolError::new(ErrorCode::InvalidName, m))?;
        // Whatever passes the name checks can be granted a token that then verifies.
        let claims = Claims {
            room: j.room.clone(),
            name: j.name.clone(),
            exp: WS_NOW + 1,
        };
        let minted = token::mint(WS_SECRET, &claims);
        assert_eq!(
            token::verify(WS_SECRET, Some(&minted), &j.room, &j.name, WS_NOW),
            Ok(claims),
            "a minted token does not verify"
        );
        if j.token.is_some() {
            token::verify(WS_SECRET, j.token.as_deref(), &j.room, &j.name, WS_NOW)
                .map_err(|e| ProtocolError::new(ErrorCode::Unauthorized, e.to_string()))?;
        }
        self.caps = receive_capabilities(j.rtp_capabilities.as_ref(), true);
        self.report.joins += 1;
        Ok(())
    }

    /// The room's `on_answer` (room/actor/mod.rs) without its daemon requests
    /// (`transport.connect`, `consumer.close`, `consumer.resume`).
    fn answer(&mut self, offer_id: u64, sdp: &str) -> Result<(), ProtocolError> {
        let Some(pending) = self.recv.pending(offer_id) else {
            if self.recv.is_stale(offer_id) {
                return Ok(());
            }
            return Err(ProtocolError::new(ErrorCode::OutOfOrder, "no such offer"));
        };
        let answer = read_recv_answer(&parse(sdp)?, &pending.mids)?;
        self.recv.connected = true;
        let Some(done) = self.recv.answered() else {
            return Ok(());
        };
        for mid in &answer.rejected {
            if let Some(id) = self.recv.consumer_at(mid).map(|c| c.consumer_id.clone()) {
                self.recv.remove(&id);
            }
        }
        for id in &done.to_resume {
            self.recv.set_resumed(id);
        }
        self.report.answers += 1;
        Ok(())
    }

    /// A consumer as the room creates it: `rtpParameters` as the daemon's
    /// `transport.consume` returns them for the last join's capabilities (docs/PROTOCOL.md:
    /// one codec with its RTX codec, the header extensions of the kind, the consumer's own
    /// SSRCs). No codec of the kind: the daemon refuses, nothing changes.
    fn consume(&mut self, payload: &[u8]) {
        let byte = |i: usize| payload.get(i).copied().unwrap_or(0);
        let kind = if byte(0) & 1 == 0 {
            MediaKind::Audio
        } else {
            MediaKind::Video
        };
        let is_rtx = |c: &RtpCodecCapability| c.mime_type.to_ascii_lowercase().ends_with("/rtx");
        let media: Vec<&RtpCodecCapability> = self
            .caps
            .codecs
            .iter()
            .filter(|c| c.kind == kind && !is_rtx(c))
            .collect();
        let Some(codec) = media.get(usize::from(byte(2)) % media.len().max(1)) else {
            return;
        };
        let apt = Value::from(codec.preferred_payload_type);
        let rtx = self
            .caps
            .codecs
            .iter()
            .find(|c| c.kind == kind && is_rtx(c) && c.parameters.get("apt") == Some(&apt));
        self.consumers += 1;
        let ssrc = self.consumers.wrapping_mul(0x9E37_79B9);
        let mid = self.recv.next_mid();
        let rtp = RtpParameters {
            mid: Some(mid.clone()),
            codecs: std::iter::once(*codec)
                .chain(rtx)
                .map(|c| RtpCodecParameters {
                    mime_type: c.mime_type.clone(),
                    payload_type: c.preferred_payload_type,
                    clock_rate: c.clock_rate,
                    channels: c.channels,
                    parameters: c.parameters.clone(),
                    rtcp_feedback: c.rtcp_feedback.clone(),
                })
                .collect(),
            header_extensions: self
                .caps
                .header_extensions
                .iter()
                .filter(|e| e.kind.is_none_or(|k| k == kind))
                .map(|e| RtpHeaderExtensionParameters {
                    uri: e.uri.clone(),
                    id: e.preferred_id,
                    encrypt: false,
                    parameters: Default::default(),
                })
                .collect(),
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(ssrc),
                rtx: rtx.map(|_| RtxParameters { ssrc: !ssrc }),
                ..RtpEncodingParameters::default()
            }],
            rtcp: RtcpParameters {
                cname: Some(format!("cname-{ssrc}")),
                ..RtcpParameters::default()
            },
        };
        let producer = byte(1) % 4;
        let assigned = self.recv.add(ConsumerSlot {
            consumer_id: format!("consumer-{}", self.consumers),
            producer_id: format!("producer-{producer}-{}", kind.as_str()),
            peer_id: format!("peer-{producer}"),
            kind,
            source: Source::Camera,
            rtp,
            resumed: false,
            score: 10,
            hidden: false,
            preferred_spatial: None,
            preferred_temporal: None,
            simulcast: false,
        });
        // The room asks the daemon for a consumer at next_mid() (room/actor/mod.rs).
        assert_eq!(assigned, mid, "the consumer got another mid than announced");
    }

    /// The room closes a live consumer, or every consumer of its producer.
    fn close(&mut self, payload: &[u8]) {
        let live: Vec<(String, String)> = self
            .recv
            .consumers()
            .map(|c| (c.consumer_id.clone(), c.producer_id.clone()))
            .collect();
        let which = payload.first().map_or(0, |b| usize::from(*b));
        let Some((consumer, producer)) = live.get(which % live.len().max(1)) else {
            return;
        };
        if payload.get(1).is_some_and(|b| b & 1 == 1) {
            assert!(!self.recv.remove_producer(producer).is_empty());
        } else {
            assert!(self.recv.remove(consumer).is_some());
        }
    }

    /// room/actor/restart.rs: a new receive transport, no m-lines, offer ids going on.
    /// The new transport alternates address families.
    fn restart(&mut self) {
        self.restarts += 1;
        self.recv.reset(self.restarts + 1);
        self.recv.transport = Some(transport(self.restarts % 2 == 1));
    }

    /// The room's after_step: the next offer, if one is due, must describe exactly the
    /// m-lines the session then expects answered.
    fn send_due_offer(&mut self) {
        let Some(offer) = self.recv.next_offer() else {
            return;
        };
        let text = &offer.sdp;
        if let Err(e) = ::sdp::SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes())) {
            panic!("the sdp crate cannot read our offer ({e}):\n{text}");
        }
        let ours =
            parse(text).unwrap_or_else(|e| panic!("we cannot read our offer ({e}):\n{text}"));
        let pending = self
            .recv
            .pending(offer.offer_id)
            .unwrap_or_else(|| panic!("offer {} is not pending", offer.offer_id));
        let mids: Vec<(String, bool)> = ours
            .media
            .iter()
            .map(|m| (m.mid.clone().unwrap_or_default(), m.port != 0))
            .collect();
        let shown: Vec<&String> = mids.iter().map(|(m, _)| m).collect();
        let expected: Vec<&String> = pending.mids.iter().map(|(m, _)| m).collect();
        assert_eq!(shown, expected, "offer m-lines:\n{text}");
        let live = pending.mids.iter().filter(|(_, live)| *live).count();
        assert_eq!(offer.consumers.len(), live, "offer consumers:\n{text}");
        // (A disabled first m-line keeps its port but is not live.)
        for ((_, open), (_, live)) in mids.iter().zip(&pending.mids) {
            assert!(
                *open || !*live,
                "a live consumer on a closed m-line:\n{text}"
            );
        }
        check_serialises(&ServerMessage::Offer {
            offer_id: offer.offer_id,
            sdp: offer.sdp.clone(),
            consumers: offer.consumers,
        });
        self.report.offers.push(offer.sdp);
    }
}

/// ws.rs sends `serde_json::to_string(msg).unwrap_or_default()`: a message that did not
/// serialise would go out as an empty text frame.
fn check_serialises(msg: &ServerMessage) {
    let text = serde_json::to_string(msg).expect("a server message serialises");
    let v: Value = serde_json::from_str(&text).expect("a server message is JSON");
    assert!(v.get("type").is_some_and(Value::is_string), "{text}");
}
