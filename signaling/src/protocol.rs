//! The WebSocket protocol (docs/PROTOCOL.md, "WebSocket protocol"): JSON text messages
//! with a `type`. Client messages are parsed in two steps so that each kind of bad input
//! gets its own error code: JSON, then `type`, then the fields of that type.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sdp::answer::MAX_SEND_TRACKS;
use crate::sdp::capabilities::BrowserCapabilities;
use crate::sdp::simulcast::{check_hints, EncodingHint};
use crate::turn::IceServer;
use sfu_control::params::MediaKind;

/// Message types a client may send.
pub const CLIENT_TYPES: [&str; 9] = [
    "join",
    "offer",
    "answer",
    "mute",
    "preferredLayers",
    "pauseConsumer",
    "leave",
    "chat",
    "stopScreen",
];

/// Highest spatial or temporal layer a client may name (layers count from 0; the
/// daemon clamps to what the producer has).
pub const MAX_LAYER: u8 = 3;

/// `join`: enter a room.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Join {
    pub room: String,
    pub name: String,
    #[serde(default)]
    pub token: Option<String>,
    /// `RTCRtpReceiver.getCapabilities()` of audio and video, merged.
    #[serde(default)]
    pub rtp_capabilities: Option<BrowserCapabilities>,
}

/// `offer`: the send side's offer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    pub sdp: String,
    /// The epoch of the `restart` this offer follows (0, or absent, before any).
    #[serde(default)]
    pub epoch: u64,
    /// Per mid of a simulcast m-line: the page's `sendEncodings` (SDP has no bitrates).
    #[serde(default)]
    pub encodings: BTreeMap<String, Vec<EncodingHint>>,
    /// What the offer sends: the camera and microphone (absent), or a screen share (one
    /// video m-line on a send transport of its own).
    #[serde(default)]
    pub source: Source,
}

/// Where a published track comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Source {
    /// Camera or microphone.
    #[default]
    Camera,
    /// A screen (or window) share.
    Screen,
}

impl Source {
    pub fn is_camera(&self) -> bool {
        *self == Self::Camera
    }
}

/// `stopScreen`: stop one's screen share (closes its send transport).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopScreen {}

/// `answer`: the answer to the server's receive-side offer `offerId`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Answer {
    pub offer_id: u64,
    pub sdp: String,
}

/// `mute`: pause or resume one's own track of `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mute {
    pub kind: MediaKind,
    pub muted: bool,
}

/// `preferredLayers`: the layers one of one's own video consumers should receive at
/// most (the rendered size of its tile needs no more).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferredLayers {
    pub consumer_id: String,
    pub spatial_layer: u8,
    #[serde(default)]
    pub temporal_layer: Option<u8>,
}

/// `pauseConsumer`: stop (or restart) receiving one of one's own consumers, e.g. while
/// its tile is hidden.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PauseConsumer {
    pub consumer_id: String,
    pub paused: bool,
}

/// `leave`: leave the room (the WebSocket stays open; closing it also leaves).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Leave {}

/// Longest chat text, in characters (Unicode scalar values).
pub const CHAT_MAX_CHARS: usize = 1000;

/// `chat`: a text message to everyone in the room.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chat {
    pub text: String,
}

impl Chat {
    /// The text as the room shows it: trimmed, not empty, at most [`CHAT_MAX_CHARS`]
    /// characters, no control characters but line breaks and tabs.
    fn checked(self) -> Result<Self, String> {
        let text = self.text.trim();
        if text.is_empty() {
            return Err("the text is empty".into());
        }
        if text.chars().count() > CHAT_MAX_CHARS {
            return Err(format!(
                "the text is longer than {CHAT_MAX_CHARS} characters"
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err("the text has control characters".into());
        }
        Ok(Self {
            text: text.to_owned(),
        })
    }
}

/// A parsed client message.
#[derive(Debug, Clone)]
pub enum ClientMessage {
    Join(Join),
    Offer(Offer),
    Answer(Answer),
    Mute(Mute),
    PreferredLayers(PreferredLayers),
    PauseConsumer(PauseConsumer),
    Leave,
    Chat(Chat),
    StopScreen,
}

impl ClientMessage {
    /// Parses one text message.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let mut v: Value = serde_json::from_str(text)
            .map_err(|e| ProtocolError::new(ErrorCode::BadJson, format!("not JSON: {e}")))?;
        let Some(obj) = v.as_object_mut() else {
            return Err(ProtocolError::new(
                ErrorCode::BadMessage,
                "a message must be a JSON object",
            ));
        };
        let Some(Value::String(kind)) = obj.remove("type") else {
            return Err(ProtocolError::new(
                ErrorCode::BadMessage,
                "a message needs a string \"type\"",
            ));
        };
        let fields = |e: serde_json::Error| {
            ProtocolError::new(
                ErrorCode::BadMessage,
                format!("bad \"{kind}\" message: {e}"),
            )
        };
        Ok(match kind.as_str() {
            "join" => Self::Join(serde_json::from_value(v).map_err(fields)?),
            "offer" => {
                let offer: Offer = serde_json::from_value(v).map_err(fields)?;
                check_hints(&offer.encodings, MAX_SEND_TRACKS).map_err(|e| {
                    ProtocolError::new(ErrorCode::BadMessage, format!("bad \"offer\" message: {e}"))
                })?;
                Self::Offer(offer)
            }
            "answer" => Self::Answer(serde_json::from_value(v).map_err(fields)?),
            "mute" => Self::Mute(serde_json::from_value(v).map_err(fields)?),
            "preferredLayers" => {
                let p: PreferredLayers = serde_json::from_value(v).map_err(fields)?;
                if p.spatial_layer > MAX_LAYER || p.temporal_layer.is_some_and(|t| t > MAX_LAYER) {
                    return Err(ProtocolError::new(
                        ErrorCode::BadMessage,
                        format!("bad \"preferredLayers\" message: layers are 0 to {MAX_LAYER}"),
                    ));
                }
                Self::PreferredLayers(p)
            }
            "pauseConsumer" => Self::PauseConsumer(serde_json::from_value(v).map_err(fields)?),
            "leave" => {
                let _: Leave = serde_json::from_value(v).map_err(fields)?;
                Self::Leave
            }
            "stopScreen" => {
                let _: StopScreen = serde_json::from_value(v).map_err(fields)?;
                Self::StopScreen
            }
            "chat" => {
                let chat: Chat = serde_json::from_value(v).map_err(fields)?;
                Self::Chat(chat.checked().map_err(|e| {
                    ProtocolError::new(ErrorCode::BadMessage, format!("bad \"chat\" message: {e}"))
                })?)
            }
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(ProtocolError::new(
                    ErrorCode::UnknownType,
                    format!("unknown message type {shown:?} (expected one of {CLIENT_TYPES:?})"),
                ));
            }
        })
    }

    /// The `type` of this message.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Join(_) => "join",
            Self::Offer(_) => "offer",
            Self::Answer(_) => "answer",
            Self::Mute(_) => "mute",
            Self::PreferredLayers(_) => "preferredLayers",
            Self::PauseConsumer(_) => "pauseConsumer",
            Self::Leave => "leave",
            Self::Chat(_) => "chat",
            Self::StopScreen => "stopScreen",
        }
    }
}

/// Error codes sent in `error` messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The message is not JSON.
    BadJson,
    /// JSON, but not a valid message (not an object, no type, wrong fields).
    BadMessage,
    /// `type` names no message.
    UnknownType,
    /// Valid, but not now (e.g. an offer before join, a second join, a stale answer).
    OutOfOrder,
    /// The room name is invalid.
    InvalidRoom,
    /// The display name is invalid.
    InvalidName,
    /// Someone in the room already has this name.
    NameTaken,
    /// The room has as many participants as the server allows.
    RoomFull,
    /// A token is required and this one is missing, wrong or expired.
    Unauthorized,
    /// The SDP does not parse or breaks a rule (BUNDLE, rtcp-mux, fingerprint...).
    BadSdp,
    /// The SDP offers no codec the server supports.
    NoCommonCodec,
    /// A `consumerId` that is not (or no longer) one of the sender's consumers.
    NotFound,
    /// Valid but not supported (data channels, simulcast audio...).
    Unsupported,
    /// The media transport failed (e.g. DTLS fingerprint mismatch).
    TransportFailed,
    /// The server could not do it (media server refused or unreachable).
    ServerError,
    /// Too many messages of this kind in a short time (chat): try again later.
    RateLimited,
}

/// An error for one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<crate::sdp::SdpError> for ProtocolError {
    fn from(e: crate::sdp::SdpError) -> Self {
        use crate::sdp::SdpError;
        let code = match e {
            SdpError::Parse(_) | SdpError::Invalid(_) => ErrorCode::BadSdp,
            SdpError::NoCommonCodec(_) => ErrorCode::NoCommonCodec,
            SdpError::Unsupported(_) => ErrorCode::Unsupported,
        };
        Self::new(code, e.to_string())
    }
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub peer_id: String,
    pub name: String,
    pub audio_muted: bool,
    pub video_muted: bool,
}

/// One chat message as the room keeps and sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatEntry {
    /// The sender (who may have left since).
    pub peer_id: String,
    /// The sender's display name when it was sent.
    pub name: String,
    pub text: String,
    /// When the server received it: milliseconds since the Unix epoch.
    pub at: u64,
}

/// A published track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerInfo {
    pub producer_id: String,
    pub kind: MediaKind,
    pub mid: String,
    /// `screen` for a screen share; absent for the camera and microphone.
    #[serde(default, skip_serializing_if = "Source::is_camera")]
    pub source: Source,
}

/// A consumer in a receive-side offer: which m-line shows whose track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerView {
    pub mid: String,
    pub consumer_id: String,
    pub producer_id: String,
    pub peer_id: String,
    pub kind: MediaKind,
    /// `screen` for a screen share; absent for the camera and microphone.
    #[serde(default, skip_serializing_if = "Source::is_camera")]
    pub source: Source,
}

/// One encoding of a published simulcast track, in `setEncodings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncodingActive {
    pub rid: String,
    pub active: bool,
}

/// Which of a participant's two peer connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Send,
    Recv,
}

/// Messages the server sends. (Deserialize is for pages' counterparts in tests and the
/// golden test of PROTOCOL.md's examples; the server only writes them.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum ServerMessage {
    Joined {
        peer_id: String,
        room: String,
        name: String,
        peers: Vec<PeerInfo>,
        /// The page's `RTCConfiguration.iceServers` (the `ice_servers` setting, TURN
        /// credentials minted at this join); absent when none are configured.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    Answer {
        sdp: String,
        producers: Vec<ProducerInfo>,
    },
    Offer {
        offer_id: u64,
        sdp: String,
        consumers: Vec<ConsumerView>,
    },
    PeerJoined {
        peer: PeerInfo,
    },
    PeerLeft {
        peer_id: String,
    },
    ProducerAdded {
        peer_id: String,
        producer_id: String,
        kind: MediaKind,
    },
    ProducerRemoved {
        peer_id: String,
        producer_id: String,
        kind: MediaKind,
    },
    MuteChanged {
        peer_id: String,
        kind: MediaKind,
        muted: bool,
    },
    TransportState {
        direction: Direction,
        #[serde(skip_serializing_if = "Option::is_none")]
        ice_state: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        dtls_state: Option<String>,
    },
    /// The quality (0-10) of a track: one's own published track (`consumerId` absent:
    /// `score` is what the path from this browser does to it), or a track this browser
    /// receives (`score` for the path to this browser, `producerScore` for the
    /// publisher's own path). Sent when a track is first received and on every change.
    Score {
        /// The publishing participant.
        peer_id: String,
        producer_id: String,
        kind: MediaKind,
        #[serde(skip_serializing_if = "Option::is_none")]
        consumer_id: Option<String>,
        score: u8,
        #[serde(skip_serializing_if = "Option::is_none")]
        producer_score: Option<u8>,
    },
    /// The layers a consumer of this browser now forwards (the daemon's
    /// `layerschange`; both absent: nothing is forwarded).
    LayersChanged {
        consumer_id: String,
        producer_id: String,
        /// The publishing participant.
        peer_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spatial_layer: Option<u8>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        temporal_layer: Option<u8>,
    },
    /// Dynacast: which encodings of one's own simulcast track anyone needs; the page
    /// sets `RTCRtpSender` encodings' `active` to match (lowest first).
    SetEncodings {
        producer_id: String,
        encodings: Vec<EncodingActive>,
    },
    /// The participant the media server hears as the dominant speaker now (its
    /// active-speaker observer, from the audio levels browsers send): the page
    /// highlights its tile. Sent on every change and to a participant who joins.
    ActiveSpeaker {
        peer_id: String,
    },
    /// The media server was lost and the room's media re-created: close both peer
    /// connections, publish again on a new one (an `offer` with this `epoch`) and answer
    /// the receive-side offers that follow on another new one.
    Restart {
        epoch: u64,
        reason: String,
    },
    /// A chat message, to everyone in the room (its sender included).
    ChatMessage {
        #[serde(flatten)]
        entry: ChatEntry,
    },
    /// The room's recent chat (oldest first), sent after `joined` when there is any.
    ChatHistory {
        messages: Vec<ChatEntry>,
    },
    Left {},
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_reply_to: Option<Cow<'static, str>>,
    },
}

impl ServerMessage {
    /// An `error` message.
    pub fn error(e: ProtocolError, in_reply_to: Option<&'static str>) -> Self {
        Self::Error {
            code: e.code,
            message: e.message,
            in_reply_to: in_reply_to.map(Cow::Borrowed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> ErrorCode {
        ClientMessage::parse(text).unwrap_err().code
    }

    #[test]
    fn bad_input_classes() {
        assert_eq!(code("{"), ErrorCode::BadJson);
        assert_eq!(code("[1]"), ErrorCode::BadMessage);
        assert_eq!(code("{\"room\":\"x\"}"), ErrorCode::BadMessage);
        assert_eq!(code("{\"type\":7}"), ErrorCode::BadMessage);
        assert_eq!(code("{\"type\":\"dance\"}"), ErrorCode::UnknownType);
        assert_eq!(
            code("{\"type\":\"join\",\"room\":1}"),
            ErrorCode::BadMessage
        );
        assert_eq!(
            code("{\"type\":\"mute\",\"kind\":\"smell\",\"muted\":true}"),
            ErrorCode::BadMessage
        );
        assert_eq!(code("{\"type\":\"leave\",\"x\":1}"), ErrorCode::BadMessage);
        assert_eq!(code("{\"type\":\"chat\"}"), ErrorCode::BadMessage);
        assert_eq!(
            code("{\"type\":\"chat\",\"text\":7}"),
            ErrorCode::BadMessage
        );
    }

    /// Chat text limits (untrusted input shown to everyone): empty, too long and control
    /// characters are refused; the text is trimmed.
    #[test]
    fn chat_text_limits() {
        let chat = |text: &str| {
            ClientMessage::parse(&serde_json::json!({"type": "chat", "text": text}).to_string())
        };
        assert!(
            matches!(chat("  hi\n there \t"), Ok(ClientMessage::Chat(c)) if c.text == "hi\n there")
        );
        assert_eq!(chat("   ").unwrap_err().code, ErrorCode::BadMessage);
        assert_eq!(chat("a\u{0}b").unwrap_err().code, ErrorCode::BadMessage);
        assert_eq!(chat("\u{1b}[31m").unwrap_err().code, ErrorCode::BadMessage);
        let max = "é".repeat(CHAT_MAX_CHARS);
        assert!(matches!(chat(&max), Ok(ClientMessage::Chat(_))));
        let over = format!("{max}x");
        assert_eq!(chat(&over).unwrap_err().code, ErrorCode::BadMessage);
    }

    #[test]
    fn good_messages() {
        assert!(matches!(
            ClientMessage::parse("{\"type\":\"join\",\"room\":\"r\",\"name\":\"n\"}"),
            Ok(ClientMessage::Join(_))
        ));
        assert!(matches!(
            ClientMessage::parse("{\"type\":\"leave\"}"),
            Ok(ClientMessage::Leave)
        ));
    }

    #[test]
    fn server_messages_are_camel_case() {
        let m = ServerMessage::PeerLeft {
            peer_id: "p".into(),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            "{\"type\":\"peerLeft\",\"peerId\":\"p\"}"
        );
        let e = ServerMessage::error(ProtocolError::new(ErrorCode::BadJson, "x"), Some("join"));
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            "{\"type\":\"error\",\"code\":\"BadJson\",\"message\":\"x\",\"inReplyTo\":\"join\"}"
        );
    }
}
