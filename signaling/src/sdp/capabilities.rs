//! The codecs and header extensions this server negotiates, and what one browser can
//! receive.
//!
//! Receive side: the server's offers use a fixed payload-type table (below), intersected
//! with the `RTCRtpReceiver.getCapabilities()` the browser sent when it joined.
//! Send side: the browser's own payload types are kept; one codec per track is chosen,
//! with its RTX codec when the browser offers one.
//!
//! Feedback negotiated (both sides, what the daemon acts on, docs/PROTOCOL.md): generic
//! NACK with RTX (RFC 4585, RFC 4588), `nack pli`, `ccm fir` for video; and, unless
//! bandwidth feedback is turned off, the transport-wide-cc extension with `transport-cc`
//! feedback for audio and video, plus `goog-remb` from publishers that offer it (the
//! daemon sends REMB only to publishers without transport-cc).

use serde::Deserialize;
use serde_json::json;

use super::parse::{fmtp_pairs, SdpCodec};
use crate::config::VideoCodec;
use sfu_control::params::{
    CodecParameters, MediaKind, RtcpFeedback, RtpCapabilities, RtpCodecCapability,
    RtpHeaderExtensionCapability,
};

/// Header extension URIs.
pub const EXT_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
/// RID and repaired RID (RFC 8852): which simulcast encoding a packet, or the RTX packet
/// repairing it, belongs to. Browsers send them (with MID) until the SSRCs are known.
pub const EXT_RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
pub const EXT_REPAIRED_RID: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
pub const EXT_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
pub const EXT_VIDEO_ORIENTATION: &str = "urn:3gpp:video-orientation";
/// The playout-delay extension (webrtc.org experiments): the daemon asks a subscriber on
/// a lossy path to hold video frames long enough for a second repair (docs/PROTOCOL.md).
pub const EXT_PLAYOUT_DELAY: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
/// Transport-wide sequence numbers (draft-holmer-rmcat-transport-wide-cc-extensions-01):
/// what transport-cc feedback refers to.
pub const EXT_TRANSPORT_CC: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// RTCP feedback of video codecs that the daemon acts on in both directions: generic NACK
/// (it NACKs publishers' gaps and answers subscribers' NACKs), PLI and FIR.
pub const VIDEO_FEEDBACK: [(&str, &str); 3] = [("nack", ""), ("nack", "pli"), ("ccm", "fir")];

/// Bandwidth feedback: transport-cc goes with [`EXT_TRANSPORT_CC`]; goog-remb is what the
/// daemon sends a publisher without transport-wide sequence numbers.
pub const FB_TRANSPORT_CC: (&str, &str) = ("transport-cc", "");
pub const FB_REMB: (&str, &str) = ("goog-remb", "");

/// What the server negotiates beyond the fixed rules: the configuration's choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiation {
    /// The video codec publishers are asked for when they offer it (else VP8).
    pub video_codec: VideoCodec,
    /// transport-cc / goog-remb (and the transport-wide-cc extension) with publishers
    /// and subscribers. Off only to diagnose or to test what the feedback changes:
    /// publishers then stay near their start bitrate.
    pub bandwidth_feedback: bool,
}

impl Default for Negotiation {
    fn default() -> Self {
        Self {
            video_codec: VideoCodec::Vp8,
            bandwidth_feedback: true,
        }
    }
}

/// Header extensions accepted from publishers: MID (BUNDLE demultiplexing by the
/// browser's own rules), audio level and video orientation (forwarded to subscribers);
/// transport-wide-cc only with bandwidth feedback (the daemon reads it and sends
/// transport-cc feedback; it is never forwarded); RID and repaired RID on simulcast
/// m-lines only (the daemon tells the encodings apart by them).
pub const SEND_EXTENSIONS: [(MediaKind, &str); 8] = [
    (MediaKind::Audio, EXT_MID),
    (MediaKind::Audio, EXT_AUDIO_LEVEL),
    (MediaKind::Audio, EXT_TRANSPORT_CC),
    (MediaKind::Video, EXT_MID),
    (MediaKind::Video, EXT_VIDEO_ORIENTATION),
    (MediaKind::Video, EXT_TRANSPORT_CC),
    (MediaKind::Video, EXT_RID),
    (MediaKind::Video, EXT_REPAIRED_RID),
];

/// Header extensions offered to subscribers, with their fixed ids (`None`: both kinds;
/// BUNDLE needs one id per URI across m-lines). MID is not among them: the daemon does
/// not forward it and browsers demultiplex forwarded streams by SSRC. transport-wide-cc
/// carries the worker's own sequence numbers; only with bandwidth feedback. Playout
/// delay carries the worker's own limits, on video (`bwe::playout` in the daemon).
pub const RECV_EXTENSIONS: [(Option<MediaKind>, &str, u8); 4] = [
    (Some(MediaKind::Audio), EXT_AUDIO_LEVEL, 1),
    (None, EXT_TRANSPORT_CC, 3),
    (Some(MediaKind::Video), EXT_VIDEO_ORIENTATION, 4),
    (Some(MediaKind::Video), EXT_PLAYOUT_DELAY, 6),
];

/// One row of the receive-side payload-type table.
struct TableCodec {
    kind: MediaKind,
    mime: &'static str,
    pt: u8,
    clock_rate: u32,
    channels: Option<u8>,
    fmtp: &'static str,
    /// The payload type of its RTX codec (RFC 4588), for video.
    rtx_pt: Option<u8>,
}

/// The receive side's payload types: the numbers Chromium itself uses for these codecs
/// and their RTX codecs. `audio/red` (RFC 2198) is offered to browsers that can receive
/// it, when the publisher sends it: the daemon forwards it as it is (its blocks name
/// Opus by the publisher's 111, which this table keeps) and unwraps it for the others.
const TABLE: [TableCodec; 5] = [
    TableCodec {
        kind: MediaKind::Audio,
        mime: "audio/opus",
        pt: 111,
        clock_rate: 48000,
        channels: Some(2),
        fmtp: "minptime=10;useinbandfec=1",
        rtx_pt: None,
    },
    TableCodec {
        kind: MediaKind::Audio,
        mime: "audio/red",
        pt: 63,
        clock_rate: 48000,
        channels: Some(2),
        fmtp: "",
        rtx_pt: None,
    },
    TableCodec {
        kind: MediaKind::Video,
        mime: "video/VP8",
        pt: 96,
        clock_rate: 90000,
        channels: None,
        fmtp: "",
        rtx_pt: Some(97),
    },
    TableCodec {
        kind: MediaKind::Video,
        mime: "video/VP9",
        pt: 98,
        clock_rate: 90000,
        channels: None,
        fmtp: "profile-id=0",
        rtx_pt: Some(99),
    },
    TableCodec {
        kind: MediaKind::Video,
        mime: "video/H264",
        pt: 102,
        clock_rate: 90000,
        channels: None,
        fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        rtx_pt: Some(103),
    },
];

/// One codec of `RTCRtpReceiver.getCapabilities(kind).codecs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserCodec {
    pub mime_type: String,
    pub clock_rate: u32,
    #[serde(default)]
    pub channels: Option<u8>,
    #[serde(default)]
    pub sdp_fmtp_line: Option<String>,
}

/// One header extension of `RTCRtpReceiver.getCapabilities(kind).headerExtensions`.
#[derive(Debug, Clone, Deserialize)]
pub struct BrowserExtension {
    pub uri: String,
}

/// What the browser can receive: audio and video `getCapabilities()` merged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrowserCapabilities {
    #[serde(default)]
    pub codecs: Vec<BrowserCodec>,
    #[serde(default)]
    pub header_extensions: Vec<BrowserExtension>,
}

/// Both the profile-id rule (VP9: absent means 0) and the packetization-mode rule
/// (H264: absent means 0) compare a parameter with a default.
fn fmtp_value<'a>(fmtp: &'a str, key: &str, default: &'a str) -> &'a str {
    fmtp_pairs(fmtp)
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map_or(default, |(_, v)| v)
}

/// Whether a codec described by (mime, clock, channels, fmtp) is the table row `t`.
fn matches_table(t: &TableCodec, mime: &str, clock: u32, channels: Option<u8>, fmtp: &str) -> bool {
    if !mime.eq_ignore_ascii_case(t.mime) || clock != t.clock_rate {
        return false;
    }
    if t.kind == MediaKind::Audio && channels.unwrap_or(1) != t.channels.unwrap_or(1) {
        return false;
    }
    match t.mime {
        "video/VP9" => fmtp_value(fmtp, "profile-id", "0") == "0",
        "video/H264" => fmtp_value(fmtp, "packetization-mode", "0") == "1",
        _ => true,
    }
}

/// Whether a subscriber's offered codec is one the daemon forwards to subscribers as
/// it is (Opus, VP8, VP9 profile 0, H264 packetization-mode 1): what a WHEP player's
/// offer may ask for. RED is left out: a player gets plain Opus.
pub fn forwarded_codec(kind: MediaKind, c: &SdpCodec) -> bool {
    TABLE.iter().any(|t| {
        t.kind == kind
            && t.mime != "audio/red"
            && matches_table(t, &c.mime(kind), c.clock_rate, c.channels, &c.fmtp)
    })
}

/// The feedback a subscriber is offered for a codec of `kind`: transport-cc only when
/// the worker stamps transport-wide sequence numbers for it (`transport_cc`).
fn receive_feedback(kind: MediaKind, transport_cc: bool) -> Vec<RtcpFeedback> {
    let video: &[(&str, &str)] = match kind {
        MediaKind::Video => &VIDEO_FEEDBACK,
        MediaKind::Audio => &[],
    };
    video
        .iter()
        .chain(transport_cc.then_some(&FB_TRANSPORT_CC))
        .map(|(k, p)| RtcpFeedback::new(k, p))
        .collect()
}

fn table_parameters(t: &TableCodec) -> CodecParameters {
    super::parse::fmtp_to_parameters(t.fmtp)
}

/// The `rtpCapabilities` for `transport.consume` on behalf of a browser: table rows the
/// browser can receive, with the table's payload types and extension ids, each video
/// codec followed by its RTX codec when the browser can receive `video/rtx`. Without
/// capabilities (an old browser), Opus and VP8, which every WebRTC browser must
/// implement (RFC 7874, RFC 7742), with NACK/PLI/FIR but neither RTX nor transport-cc
/// (nothing says it has them). `getCapabilities()` lists no feedback types: generic NACK,
/// PLI and FIR are mandatory for WebRTC video (RFC 8834 section 5.1), transport-cc is
/// assumed with the transport-wide-cc extension.
pub fn receive_capabilities(
    browser: Option<&BrowserCapabilities>,
    bandwidth_feedback: bool,
) -> RtpCapabilities {
    let knows_ext =
        |uri: &str| browser.is_none_or(|b| b.header_extensions.iter().any(|e| e.uri == uri));
    let transport_cc = bandwidth_feedback
        && browser.is_some_and(|b| {
            b.header_extensions
                .iter()
                .any(|e| e.uri == EXT_TRANSPORT_CC)
        });
    let rtx = browser.is_some_and(|b| {
        b.codecs
            .iter()
            .any(|c| c.mime_type.eq_ignore_ascii_case("video/rtx") && c.clock_rate == 90000)
    });
    let mut codecs = Vec::new();
    for t in TABLE.iter().filter(|t| match browser {
        Some(b) => b.codecs.iter().any(|c| {
            matches_table(
                t,
                &c.mime_type,
                c.clock_rate,
                c.channels,
                c.sdp_fmtp_line.as_deref().unwrap_or_default(),
            )
        }),
        None => matches!(t.mime, "audio/opus" | "video/VP8"),
    }) {
        codecs.push(RtpCodecCapability {
            kind: t.kind,
            mime_type: t.mime.into(),
            preferred_payload_type: t.pt,
            clock_rate: t.clock_rate,
            channels: t.channels,
            parameters: table_parameters(t),
            rtcp_feedback: receive_feedback(t.kind, transport_cc),
        });
        if let (true, Some(rtx_pt)) = (rtx, t.rtx_pt) {
            let mut parameters = CodecParameters::new();
            parameters.insert("apt".into(), t.pt.into());
            codecs.push(RtpCodecCapability {
                kind: t.kind,
                mime_type: format!("{}/rtx", t.kind.as_str()),
                preferred_payload_type: rtx_pt,
                clock_rate: t.clock_rate,
                channels: None,
                parameters,
                rtcp_feedback: Vec::new(),
            });
        }
    }
    let header_extensions = RECV_EXTENSIONS
        .iter()
        .filter(|(_, uri, _)| {
            if *uri == EXT_TRANSPORT_CC {
                transport_cc
            } else {
                knows_ext(uri)
            }
        })
        .map(|(kind, uri, id)| RtpHeaderExtensionCapability {
            kind: *kind,
            uri: (*uri).into(),
            preferred_id: *id,
            preferred_encrypt: false,
            direction: None,
        })
        .collect();
    RtpCapabilities {
        codecs,
        header_extensions,
    }
}

/// The codec a publisher's m-line will send, from the codecs it offered: Opus for audio;
/// for video the configured codec if offered, else VP8, else any other we forward
/// (broadcast tools such as OBS with x264 offer H264 alone; browsers always offer VP8).
pub fn choose_send_codec(
    kind: MediaKind,
    offered: &[SdpCodec],
    preferred_video: VideoCodec,
) -> Option<&SdpCodec> {
    let wanted: Vec<&str> = match (kind, preferred_video) {
        (MediaKind::Audio, _) => vec!["audio/opus"],
        (MediaKind::Video, VideoCodec::Vp8) => vec!["video/VP8", "video/H264", "video/VP9"],
        (MediaKind::Video, VideoCodec::Vp9) => vec!["video/VP9", "video/VP8", "video/H264"],
        (MediaKind::Video, VideoCodec::H264) => vec!["video/H264", "video/VP8", "video/VP9"],
    };
    for mime in wanted {
        let Some(t) = TABLE.iter().find(|t| t.mime == mime) else {
            continue;
        };
        let mut candidates = offered
            .iter()
            .filter(|c| matches_table(t, &c.mime(kind), c.clock_rate, c.channels, &c.fmtp));
        let found = if mime == "video/H264" {
            // Constrained baseline (42e0..) decodes everywhere; prefer it to baseline.
            let all: Vec<&SdpCodec> = candidates.collect();
            all.iter()
                .find(|c| {
                    c.param("profile-level-id")
                        .is_some_and(|p| p.to_ascii_lowercase().starts_with("42e0"))
                })
                .or_else(|| all.first())
                .copied()
        } else {
            candidates.next()
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// A short list of what this server supports, for error messages.
pub fn supported_summary(kind: MediaKind) -> String {
    let list: Vec<&str> = TABLE
        .iter()
        .filter(|t| t.kind == kind && t.mime != "audio/red")
        .map(|t| t.mime)
        .collect();
    json!(list).to_string()
}
