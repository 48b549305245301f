//! The codecs and header extensions this server negotiates, and what one browser can
//! receive.
//!
//! Receive side: the server's offers use a fixed payload-type table (below), intersected
//! with the `RTCRtpReceiver.getCapabilities()` the browser sent when it joined.
//! Send side: the browser's own payload types are kept; one codec per track is chosen.

use serde::Deserialize;
use serde_json::json;

use super::parse::{fmtp_pairs, SdpCodec};
use crate::config::VideoCodec;
use crate::daemon::params::{
    CodecParameters, MediaKind, RtcpFeedback, RtpCapabilities, RtpCodecCapability,
    RtpHeaderExtensionCapability,
};

/// Header extension URIs.
pub const EXT_MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub const EXT_AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
pub const EXT_VIDEO_ORIENTATION: &str = "urn:3gpp:video-orientation";

/// RTCP feedback the daemon implements (NACK/RTX, transport-cc and REMB are not yet, so
/// they are never negotiated).
pub const FEEDBACK: [(&str, &str); 2] = [("nack", "pli"), ("ccm", "fir")];

/// Header extensions accepted from publishers: MID (BUNDLE demultiplexing by the
/// browser's own rules), audio level and video orientation (forwarded to subscribers).
pub const SEND_EXTENSIONS: [(MediaKind, &str); 4] = [
    (MediaKind::Audio, EXT_MID),
    (MediaKind::Audio, EXT_AUDIO_LEVEL),
    (MediaKind::Video, EXT_MID),
    (MediaKind::Video, EXT_VIDEO_ORIENTATION),
];

/// Header extensions offered to subscribers, with their fixed ids. MID is not among them:
/// the daemon does not forward it and browsers demultiplex forwarded streams by SSRC.
pub const RECV_EXTENSIONS: [(MediaKind, &str, u8); 2] = [
    (MediaKind::Audio, EXT_AUDIO_LEVEL, 1),
    (MediaKind::Video, EXT_VIDEO_ORIENTATION, 4),
];

/// One row of the receive-side payload-type table.
struct TableCodec {
    kind: MediaKind,
    mime: &'static str,
    pt: u8,
    clock_rate: u32,
    channels: Option<u8>,
    fmtp: &'static str,
}

/// The receive side's payload types: the numbers Chromium itself uses for these codecs.
const TABLE: [TableCodec; 4] = [
    TableCodec {
        kind: MediaKind::Audio,
        mime: "audio/opus",
        pt: 111,
        clock_rate: 48000,
        channels: Some(2),
        fmtp: "minptime=10;useinbandfec=1",
    },
    TableCodec {
        kind: MediaKind::Video,
        mime: "video/VP8",
        pt: 96,
        clock_rate: 90000,
        channels: None,
        fmtp: "",
    },
    TableCodec {
        kind: MediaKind::Video,
        mime: "video/VP9",
        pt: 98,
        clock_rate: 90000,
        channels: None,
        fmtp: "profile-id=0",
    },
    TableCodec {
        kind: MediaKind::Video,
        mime: "video/H264",
        pt: 102,
        clock_rate: 90000,
        channels: None,
        fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
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

fn feedback() -> Vec<RtcpFeedback> {
    FEEDBACK
        .iter()
        .map(|(k, p)| RtcpFeedback::new(k, p))
        .collect()
}

fn table_parameters(t: &TableCodec) -> CodecParameters {
    super::parse::fmtp_to_parameters(t.fmtp)
}

/// The `rtpCapabilities` for `transport.consume` on behalf of a browser: table rows the
/// browser can receive, with the table's payload types and extension ids. Without
/// capabilities (an old browser), Opus and VP8, which every WebRTC browser must
/// implement (RFC 7874, RFC 7742).
pub fn receive_capabilities(browser: Option<&BrowserCapabilities>) -> RtpCapabilities {
    let codecs = TABLE
        .iter()
        .filter(|t| match browser {
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
        })
        .map(|t| RtpCodecCapability {
            kind: t.kind,
            mime_type: t.mime.into(),
            preferred_payload_type: t.pt,
            clock_rate: t.clock_rate,
            channels: t.channels,
            parameters: table_parameters(t),
            rtcp_feedback: feedback(),
        })
        .collect();
    let header_extensions = RECV_EXTENSIONS
        .iter()
        .filter(|(_, uri, _)| {
            browser.is_none_or(|b| b.header_extensions.iter().any(|e| e.uri == *uri))
        })
        .map(|(kind, uri, id)| RtpHeaderExtensionCapability {
            kind: Some(*kind),
            uri: (*uri).into(),
            preferred_id: *id,
        })
        .collect();
    RtpCapabilities {
        codecs,
        header_extensions,
    }
}

/// The codec a publisher's m-line will send, from the codecs it offered: Opus for audio;
/// for video the configured codec if offered, else VP8.
pub fn choose_send_codec(
    kind: MediaKind,
    offered: &[SdpCodec],
    preferred_video: VideoCodec,
) -> Option<&SdpCodec> {
    let wanted: Vec<&str> = match (kind, preferred_video) {
        (MediaKind::Audio, _) => vec!["audio/opus"],
        (MediaKind::Video, VideoCodec::Vp8) => vec!["video/VP8"],
        (MediaKind::Video, VideoCodec::Vp9) => vec!["video/VP9", "video/VP8"],
        (MediaKind::Video, VideoCodec::H264) => vec!["video/H264", "video/VP8"],
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
        .filter(|t| t.kind == kind)
        .map(|t| t.mime)
        .collect();
    json!(list).to_string()
}
