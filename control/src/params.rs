//! Parameter objects in mediasoup's JSON shapes (camelCase), so that applications written
//! for mediasoup-client can be served: RtpCapabilities, RtpParameters, IceParameters,
//! IceCandidate, DtlsParameters, TransportTuple.
//!
//! Serialization is canonical: the parameters the worker answers with (`RtpParameters`)
//! always carry `parameters`, `rtcpFeedback`, `encrypt`, `reducedSize` and `mux`, as
//! docs/PROTOCOL.md shows them; capabilities (only ever sent by clients) leave out what is
//! empty or default.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// "audio" or "video".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

impl MediaKind {
    /// The wire name, also the SDP media type (`m=audio`) and the MIME type prefix.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
        }
    }

    /// Parses an SDP media type.
    pub fn from_sdp(media: &str) -> Option<Self> {
        match media {
            "audio" => Some(Self::Audio),
            "video" => Some(Self::Video),
            _ => None,
        }
    }
}

/// An RTCP feedback mechanism of a codec, e.g. `{type: "nack", parameter: "pli"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtcpFeedback {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub parameter: String,
}

impl RtcpFeedback {
    /// `{type: kind, parameter}`; an empty `parameter` is left out.
    pub fn new(kind: &str, parameter: &str) -> Self {
        Self {
            kind: kind.into(),
            parameter: parameter.into(),
        }
    }
}

/// Codec-specific fmtp parameters; values are strings or numbers as in mediasoup.
pub type CodecParameters = BTreeMap<String, serde_json::Value>;

fn is_false(b: &bool) -> bool {
    !b
}

/// A codec the endpoint can receive (RtpCapabilities.codecs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecCapability {
    pub kind: MediaKind,
    pub mime_type: String,
    pub preferred_payload_type: u8,
    pub clock_rate: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: CodecParameters,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

/// A header extension the endpoint understands (RtpCapabilities.headerExtensions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpHeaderExtensionCapability {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MediaKind>,
    pub uri: String,
    pub preferred_id: u8,
    #[serde(default, skip_serializing_if = "is_false")]
    pub preferred_encrypt: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
}

/// What a consuming endpoint can receive.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCapabilities {
    #[serde(default)]
    pub codecs: Vec<RtpCodecCapability>,
    #[serde(default)]
    pub header_extensions: Vec<RtpHeaderExtensionCapability>,
}

/// A codec in use on a stream (RtpParameters.codecs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpCodecParameters {
    pub mime_type: String,
    pub payload_type: u8,
    pub clock_rate: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<u8>,
    #[serde(default)]
    pub parameters: CodecParameters,
    #[serde(default)]
    pub rtcp_feedback: Vec<RtcpFeedback>,
}

impl RtpCodecParameters {
    /// RTX and other repair formats are not media codecs.
    pub fn is_media(&self) -> bool {
        let sub = self.mime_type.rsplit('/').next().unwrap_or_default();
        !["rtx", "red", "ulpfec", "flexfec"]
            .iter()
            .any(|r| sub.eq_ignore_ascii_case(r))
    }

    /// The "apt" fmtp of an RTX codec: the payload type it repairs.
    pub fn apt(&self) -> Option<u8> {
        let v = self.parameters.get("apt")?;
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .and_then(|n| u8::try_from(n).ok())
    }
}

/// A header extension in use (RtpParameters.headerExtensions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpHeaderExtensionParameters {
    pub uri: String,
    pub id: u8,
    #[serde(default)]
    pub encrypt: bool,
    #[serde(default)]
    pub parameters: CodecParameters,
}

/// The RTX stream of an encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtxParameters {
    pub ssrc: u32,
}

/// One encoding of a stream: one RTP stream, named by its SSRC or by its RID
/// (RFC 8851/8852: the SSRC is then learnt from the first packets carrying the RID).
/// A simulcast producer has several, each a spatial layer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpEncodingParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssrc: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtx: Option<RtxParameters>,
    /// Bits per second the publisher may send on this encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bitrate: Option<u32>,
    /// The W3C webrtc-svc scalability mode, e.g. "L1T3": one spatial layer, three
    /// temporal layers (a simulcast consumer's encoding: "L3T3").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scalability_mode: Option<String>,
    /// How much smaller than the captured picture this encoding is (1 = full size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_resolution_down_by: Option<f64>,
}

/// RTCP parameters of a stream. `reducedSize` and `mux` default to true, as in
/// mediasoup: every WebRTC endpoint muxes RTCP and browsers send reduced-size RTCP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtcpParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cname: Option<String>,
    #[serde(default = "yes")]
    pub reduced_size: bool,
    #[serde(default = "yes")]
    pub mux: bool,
}

impl Default for RtcpParameters {
    fn default() -> Self {
        Self {
            cname: None,
            reduced_size: true,
            mux: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// How a stream is sent: codecs, header extensions, encodings and RTCP.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
    pub codecs: Vec<RtpCodecParameters>,
    #[serde(default)]
    pub header_extensions: Vec<RtpHeaderExtensionParameters>,
    #[serde(default)]
    pub encodings: Vec<RtpEncodingParameters>,
    #[serde(default)]
    pub rtcp: RtcpParameters,
}

/// Local ICE parameters of a transport. The daemon is always ICE-lite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceParameters {
    pub username_fragment: String,
    pub password: String,
    #[serde(default)]
    pub ice_lite: bool,
}

/// A local ICE candidate: the worker's UDP socket, or its ICE-TCP listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    pub foundation: String,
    pub priority: u32,
    pub ip: String,
    pub address: String,
    pub protocol: String,
    pub port: u16,
    #[serde(rename = "type")]
    pub kind: String,
    /// For a TCP candidate, its RFC 6544 tcptype: the daemon's are `"passive"` (it
    /// accepts, the peer connects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_type: Option<String>,
}

/// DTLS role. The daemon answers as server; "auto" means the same for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtlsRole {
    Auto,
    Client,
    Server,
}

/// One certificate fingerprint, e.g. `{algorithm: "sha-256", value: "AB:CD:..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtlsFingerprint {
    pub algorithm: String,
    pub value: String,
}

/// DTLS parameters of one side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtlsParameters {
    #[serde(default = "auto_role")]
    pub role: DtlsRole,
    pub fingerprints: Vec<DtlsFingerprint>,
}

fn auto_role() -> DtlsRole {
    DtlsRole::Auto
}

/// The 5-tuple a transport uses once ICE selected it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportTuple {
    pub local_ip: String,
    pub local_port: u16,
    pub remote_ip: String,
    pub remote_port: u16,
    pub protocol: String,
}

/// A transport's ICE state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IceState {
    New,
    Connected,
    Disconnected,
}

impl IceState {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
        }
    }
}

/// A transport's DTLS state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DtlsState {
    New,
    Connecting,
    Connected,
    Failed,
    Closed,
}

impl DtlsState {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Failed => "failed",
            Self::Closed => "closed",
        }
    }
}
