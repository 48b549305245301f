//! Validating a producer's RtpParameters and deriving a consumer's from them and the
//! consuming endpoint's RtpCapabilities (the role of mediasoup's ortc.ts). A video
//! producer may have several encodings (simulcast), ordered here into spatial layers; a
//! consumer gets one stream.

use crate::channel::params::{
    CodecParameters, MediaKind, RtcpFeedback, RtcpParameters, RtpCapabilities, RtpCodecCapability,
    RtpCodecParameters, RtpEncodingParameters, RtpHeaderExtensionCapability,
    RtpHeaderExtensionParameters, RtpParameters, RtxParameters,
};
use crate::channel::ControlError;

/// Header extensions that are never forwarded as they are: their values describe the
/// publisher's transport or m-line (MID/RID), or are transport-wide (transport-cc), or
/// are the worker's to set toward each subscriber (playout delay), so copying them to a
/// subscriber would be wrong. The browser demultiplexes forwarded streams by SSRC
/// instead.
const NOT_FORWARDED: [&str; 5] = [
    MID_URI,
    RID_URI,
    REPAIRED_RID_URI,
    TWCC_URI,
    PLAYOUT_DELAY_URI,
];

/// The playout-delay extension (webrtc.org experiments): the minimum and maximum delay
/// the worker asks a subscriber's browser to render video frames with (`bwe::playout`).
pub const PLAYOUT_DELAY_URI: &str = "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";

/// The transport-wide sequence number extension (draft-holmer-rmcat-transport-wide-cc-
/// extensions-01). Publishers' values are consumed by the worker (transport-cc feedback);
/// toward subscribers the worker writes its own, per transport.
pub const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// RTCP feedback the daemon acts on for its consumers: generic NACK (answered from the
/// producer's retransmission buffer), PLI and FIR.
const SUPPORTED_FEEDBACK: [(&str, &str); 4] = [
    ("nack", ""),
    ("nack", "pli"),
    ("ccm", "fir"),
    ("transport-cc", ""),
];

fn invalid(reason: impl Into<String>) -> ControlError {
    ControlError::InvalidData {
        method: "transport.produce",
        reason: reason.into(),
    }
}

/// The RTP stream id extensions (RFC 8852 3.1, 3.2) and the MID extension (RFC 8843
/// 15.2): how a publisher names the encoding of a packet whose SSRC it never signalled.
pub const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
pub const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
pub const REPAIRED_RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";

/// Most encodings a video producer may have (browsers send up to three; mediasoup
/// accepts four).
pub const MAX_ENCODINGS: usize = 4;

/// Longest rid (RFC 8851 10: rid-syntax is 1*255 alphanumerics, browsers use one to
/// three characters); also bounds the bytes compared per packet while latching.
pub const MAX_RID_LEN: usize = 16;

/// The codec whose keyframes the ingest recognises, so that a consumer can wait for
/// one (and a simulcast consumer switch at one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeCodec {
    Vp8,
    H264,
    /// Audio, or a codec whose keyframes we do not parse.
    None,
}

/// One validated encoding, as it sits in its producer's layer order.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodingStream {
    /// The media SSRC if signalled; else learnt from the first packet with `rid`.
    pub ssrc: Option<u32>,
    pub rtx_ssrc: Option<u32>,
    pub rid: Option<String>,
    /// Temporal layers of the encoding (`scalabilityMode` LxTy: y), 1 when not given.
    pub temporal_layers: u8,
    pub max_bitrate: Option<u32>,
}

/// Header extension ids a producer's ingest reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamIdExtensions {
    pub mid: Option<u8>,
    pub rid: Option<u8>,
    pub repaired_rid: Option<u8>,
}

/// What the daemon needs to know of a validated producer.
#[derive(Debug, Clone)]
pub struct ProducerStream {
    /// The encodings as spatial layers, lowest first (see [`order_layers`]).
    pub encodings: Vec<EncodingStream>,
    /// Payload types of media codecs with their clock rate, and of an audio producer's
    /// RED codec (RFC 2198), whose packets are forwarded too.
    pub media_pts: Vec<(u8, u32)>,
    /// Whose keyframes the first media codec has (see `rtp`).
    pub keyframes: KeyframeCodec,
    /// RTX payload type -> the media payload type it repairs (RFC 4588 "apt").
    pub rtx_pts: Vec<(u8, u8)>,
    /// Whether the publisher accepts generic NACK (RFC 4585), so we may ask for
    /// retransmissions of lost packets.
    pub nack: bool,
    /// The publisher's transport-wide sequence number extension id, if it sends one.
    pub twcc_id: Option<u8>,
    /// Whether the publisher accepts REMB (goog-remb) feedback.
    pub remb: bool,
    /// Where the MID and RID of a packet are, for learning rid-only encodings' SSRCs.
    pub stream_ids: StreamIdExtensions,
}

impl ProducerStream {
    /// Every SSRC the publisher signalled (media and RTX of every encoding).
    pub fn signalled_ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.encodings
            .iter()
            .flat_map(|e| e.ssrc.into_iter().chain(e.rtx_ssrc))
    }
}

/// Validates `transport.produce` parameters.
pub fn validate_producer(
    kind: MediaKind,
    params: &RtpParameters,
) -> Result<ProducerStream, ControlError> {
    let media: Vec<&RtpCodecParameters> = params.codecs.iter().filter(|c| c.is_media()).collect();
    let Some(first) = media.first() else {
        return Err(invalid("rtpParameters.codecs has no media codec"));
    };
    for c in &params.codecs {
        if c.payload_type > 127 {
            return Err(invalid(format!(
                "payload type {} is not 0..=127",
                c.payload_type
            )));
        }
        if c.clock_rate == 0 {
            return Err(invalid(format!("codec {} has clockRate 0", c.mime_type)));
        }
        let kind_prefix = match kind {
            MediaKind::Audio => "audio/",
            MediaKind::Video => "video/",
        };
        if !c.mime_type.to_ascii_lowercase().starts_with(kind_prefix) {
            return Err(invalid(format!(
                "codec {} does not match kind {kind:?}",
                c.mime_type
            )));
        }
    }
    for e in &params.header_extensions {
        if e.id == 0 {
            return Err(invalid(format!("header extension {} has id 0", e.uri)));
        }
    }
    let ext_id = |uri: &str| {
        params
            .header_extensions
            .iter()
            .find(|e| e.uri == uri)
            .map(|e| e.id)
    };
    let stream_ids = StreamIdExtensions {
        mid: ext_id(MID_URI),
        rid: ext_id(RID_URI),
        repaired_rid: ext_id(REPAIRED_RID_URI),
    };
    let encodings = validate_encodings(kind, &params.encodings, stream_ids)?;
    let rtx_pts = params
        .codecs
        .iter()
        .filter(|c| is_rtx(&c.mime_type))
        .filter_map(|c| c.apt().map(|apt| (c.payload_type, apt)))
        .collect();
    let nack = media.iter().any(|c| {
        c.rtcp_feedback
            .iter()
            .any(|f| f.kind == "nack" && f.parameter.is_empty())
    });
    let remb = media
        .iter()
        .any(|c| c.rtcp_feedback.iter().any(|f| f.kind == "goog-remb"));
    let keyframes = if first.mime_type.eq_ignore_ascii_case("video/VP8") {
        KeyframeCodec::Vp8
    } else if first.mime_type.eq_ignore_ascii_case("video/H264") {
        KeyframeCodec::H264
    } else {
        KeyframeCodec::None
    };
    Ok(ProducerStream {
        encodings: order_layers(encodings),
        twcc_id: ext_id(TWCC_URI),
        remb,
        rtx_pts,
        nack,
        media_pts: media
            .iter()
            .copied()
            .chain(params.codecs.iter().filter(|c| is_audio_red(c)))
            .map(|c| (c.payload_type, c.clock_rate))
            .collect(),
        keyframes,
        stream_ids,
    })
}

/// An encoding as given, with what orders it among its siblings.
#[derive(Debug, Clone)]
pub struct GivenEncoding {
    pub stream: EncodingStream,
    pub scale_down: Option<f64>,
}

/// Checks each encoding and the set of them: 1..=[`MAX_ENCODINGS`] for video (one for
/// audio), each named by an SSRC or a RID (a RID alone only when the publisher sends
/// the rtp-stream-id extension), no SSRC or RID used twice.
fn validate_encodings(
    kind: MediaKind,
    encodings: &[RtpEncodingParameters],
    ids: StreamIdExtensions,
) -> Result<Vec<GivenEncoding>, ControlError> {
    let max = match kind {
        MediaKind::Audio => 1,
        MediaKind::Video => MAX_ENCODINGS,
    };
    if encodings.is_empty() || encodings.len() > max {
        return Err(invalid(format!(
            "rtpParameters.encodings has {} entries; a {} producer takes 1..={max}",
            encodings.len(),
            kind_name(kind)
        )));
    }
    let mut ssrcs: Vec<u32> = Vec::new();
    let mut rids: Vec<&str> = Vec::new();
    let mut out = Vec::with_capacity(encodings.len());
    for (i, e) in encodings.iter().enumerate() {
        let at = |what: &str| format!("rtpParameters.encodings[{i}]: {what}");
        for ssrc in e.ssrc.into_iter().chain(e.rtx.map(|r| r.ssrc)) {
            if ssrcs.contains(&ssrc) {
                return Err(invalid(at(&format!("ssrc {ssrc} is used twice"))));
            }
            ssrcs.push(ssrc);
        }
        if let Some(rid) = e.rid.as_deref() {
            if rid.is_empty()
                || rid.len() > MAX_RID_LEN
                || !rid
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(invalid(at(&format!(
                    "rid {rid:?} is not 1..={MAX_RID_LEN} letters, digits, '-' or '_'"
                ))));
            }
            if rids.contains(&rid) {
                return Err(invalid(at(&format!("rid {rid:?} is used twice"))));
            }
            rids.push(rid);
        }
        match (e.ssrc, e.rid.is_some()) {
            (None, false) => return Err(invalid(at("neither ssrc nor rid"))),
            (None, true) if kind == MediaKind::Audio => {
                return Err(invalid(at("an audio encoding needs its ssrc")))
            }
            (None, true) if ids.rid.is_none() => {
                return Err(invalid(at(&format!(
                    "rid without ssrc needs the {RID_URI} header extension"
                ))))
            }
            _ => {}
        }
        let temporal_layers = match e.scalability_mode.as_deref() {
            None => 1,
            Some(mode) => temporal_layers(mode).ok_or_else(|| {
                invalid(at(&format!(
                    "scalabilityMode {mode:?} is not L1T1, L1T2 or L1T3"
                )))
            })?,
        };
        if let Some(by) = e.scale_resolution_down_by {
            if !(by.is_finite() && by >= 1.0) {
                return Err(invalid(at(&format!(
                    "scaleResolutionDownBy {by} is not a number >= 1"
                ))));
            }
        }
        out.push(GivenEncoding {
            stream: EncodingStream {
                ssrc: e.ssrc,
                rtx_ssrc: e.rtx.map(|r| r.ssrc),
                rid: e.rid.clone(),
                temporal_layers,
                max_bitrate: e.max_bitrate,
            },
            scale_down: e.scale_resolution_down_by,
        });
    }
    Ok(out)
}

/// Temporal layers of a W3C webrtc-svc scalability mode with one spatial layer per
/// encoding ("L1T3" -> 3; simulcast carries the spatial layers as encodings). The
/// "_KEY"/"h" variants describe spatial dependencies and do not apply here.
pub fn temporal_layers(mode: &str) -> Option<u8> {
    let t = mode.strip_prefix("L1T")?;
    match t {
        "1" => Some(1),
        "2" => Some(2),
        "3" => Some(3),
        _ => None,
    }
}

/// Orders encodings into spatial layers, lowest first (mediasoup's convention): by
/// `maxBitrate` ascending when every encoding has one, else by
/// `scaleResolutionDownBy` descending when every encoding has one, else as given. The
/// sort is stable, so equal keys keep their given order.
pub fn order_layers(mut given: Vec<GivenEncoding>) -> Vec<EncodingStream> {
    if given.iter().all(|e| e.stream.max_bitrate.is_some()) {
        given.sort_by_key(|e| e.stream.max_bitrate);
    } else if given.iter().all(|e| e.scale_down.is_some()) {
        given.sort_by(|a, b| {
            let (a, b) = (a.scale_down.unwrap_or(1.0), b.scale_down.unwrap_or(1.0));
            b.total_cmp(&a)
        });
    }
    given.into_iter().map(|e| e.stream).collect()
}

/// Whether `c` is RED for audio (RFC 2198, `audio/red`): redundant Opus frames in one
/// packet, as Chromium sends when the answer lists it first.
fn is_audio_red(c: &RtpCodecParameters) -> bool {
    c.mime_type.eq_ignore_ascii_case("audio/red")
}

fn is_rtx(mime: &str) -> bool {
    mime.rsplit('/')
        .next()
        .is_some_and(|s| s.eq_ignore_ascii_case("rtx"))
}

fn kind_name(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Audio => "audio",
        MediaKind::Video => "video",
    }
}

/// A consumer's negotiated stream.
#[derive(Debug, Clone)]
pub struct ConsumerStream {
    pub rtp_parameters: RtpParameters,
    /// Producer payload type -> consumer payload type.
    pub pt_map: Vec<(u8, u8)>,
    /// Producer header extension id -> consumer id.
    pub ext_map: Vec<(u8, u8)>,
    pub clock_rate: u32,
    /// The consumer's RTX payload type when it can receive RTX for its first codec.
    pub rtx_pt: Option<u8>,
    /// The consumer's transport-wide sequence number extension id: the worker stamps
    /// its own per-transport sequence into forwarded packets when set.
    pub twcc_id: Option<u8>,
    /// The consumer's playout-delay extension id (video whose subscriber offered it):
    /// the worker writes its transport's playout delay there while it asks for one.
    pub playout_delay_id: Option<u8>,
    /// The producer's RED payload type when the subscriber cannot take RED: its packets
    /// are sent as their primary block alone (`rtp::red`).
    pub red_unwrap: Option<u8>,
}

fn param_str(params: &CodecParameters, key: &str) -> String {
    match params.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "0".into(),
    }
}

fn codec_matches(kind: MediaKind, p: &RtpCodecParameters, cap: &RtpCodecCapability) -> bool {
    if cap.kind != kind
        || !p.mime_type.eq_ignore_ascii_case(&cap.mime_type)
        || p.clock_rate != cap.clock_rate
    {
        return false;
    }
    if kind == MediaKind::Audio && p.channels.unwrap_or(1) != cap.channels.unwrap_or(1) {
        return false;
    }
    match p.mime_type.to_ascii_lowercase().as_str() {
        // The packetization mode must agree (RFC 6184 section 8.1); profiles are the
        // decoder's business and browsers decode the profiles they offer.
        "video/h264" => {
            param_str(&p.parameters, "packetization-mode")
                == param_str(&cap.parameters, "packetization-mode")
        }
        "video/vp9" => {
            param_str(&p.parameters, "profile-id") == param_str(&cap.parameters, "profile-id")
        }
        _ => true,
    }
}

/// RED (RFC 2198) for a consumer of an audio producer that sends it: forwarded as it is
/// (the RED codec first in the consumer's codecs, mapped like a media codec) when the
/// subscriber's capabilities list `audio/red` and its first codec keeps the producer's
/// payload type (the blocks inside a RED packet name their payload type, which is
/// not rewritten); else the producer's RED payload type, whose packets the consumer
/// unwraps to their primary block.
fn negotiate_red(
    kind: MediaKind,
    producer: &RtpParameters,
    caps: &RtpCapabilities,
    codecs: &mut Vec<RtpCodecParameters>,
    pt_map: &mut Vec<(u8, u8)>,
) -> Option<u8> {
    if kind != MediaKind::Audio {
        return None;
    }
    let red = producer.codecs.iter().find(|c| is_audio_red(c))?;
    let primary = codecs.first()?.payload_type;
    let same_primary = pt_map.first().is_some_and(|(from, to)| from == to);
    let cap = caps.codecs.iter().find(|cap| {
        cap.kind == kind
            && cap.mime_type.eq_ignore_ascii_case("audio/red")
            && cap.clock_rate == red.clock_rate
            && cap.preferred_payload_type <= 127
            && cap.preferred_payload_type != primary
            && !pt_map.iter().any(|(_, c)| *c == cap.preferred_payload_type)
    });
    match cap {
        Some(cap) if same_primary => {
            codecs.insert(
                0,
                RtpCodecParameters {
                    mime_type: red.mime_type.clone(),
                    payload_type: cap.preferred_payload_type,
                    clock_rate: red.clock_rate,
                    channels: red.channels,
                    parameters: red.parameters.clone(),
                    rtcp_feedback: Vec::new(),
                },
            );
            pt_map.push((red.payload_type, cap.preferred_payload_type));
            None
        }
        _ => Some(red.payload_type),
    }
}

/// Maps another producer's stream onto an existing consumer's (`consumer.setProducer`):
/// the consumer's negotiated codecs and header extensions stand for its capabilities,
/// and the producer must be forwardable under them with the same first codec (payload
/// type and clock rate) and RTX, since the consumer keeps what its subscriber was told.
pub fn remap_stream(
    kind: MediaKind,
    producer: &RtpParameters,
    consumer: &RtpParameters,
) -> Result<ConsumerStream, ControlError> {
    let caps = RtpCapabilities {
        codecs: consumer
            .codecs
            .iter()
            .map(|c| RtpCodecCapability {
                kind,
                mime_type: c.mime_type.clone(),
                preferred_payload_type: c.payload_type,
                clock_rate: c.clock_rate,
                channels: c.channels,
                parameters: c.parameters.clone(),
                rtcp_feedback: c.rtcp_feedback.clone(),
            })
            .collect(),
        header_extensions: consumer
            .header_extensions
            .iter()
            .map(|e| RtpHeaderExtensionCapability {
                kind: Some(kind),
                uri: e.uri.clone(),
                preferred_id: e.id,
                preferred_encrypt: false,
                direction: None,
            })
            .collect(),
    };
    let stream = consumer_stream(kind, producer, &caps, 0, 0, None)?;
    let first = |p: &RtpParameters| p.codecs.first().map(|c| (c.payload_type, c.clock_rate));
    let has_rtx = |p: &RtpParameters| p.codecs.iter().any(|c| is_rtx(&c.mime_type));
    if first(&stream.rtp_parameters) != first(consumer)
        || has_rtx(&stream.rtp_parameters) != has_rtx(consumer)
    {
        return Err(ControlError::Unsupported(
            "the producer's codecs do not map onto the consumer's: its first codec or RTX differs"
                .into(),
        ));
    }
    Ok(stream)
}

/// Derives a consumer's RtpParameters. `rtx_ssrc` is used when the consumer can
/// receive RTX (RFC 4588) for its first codec and NACKs it.
pub fn consumer_stream(
    kind: MediaKind,
    producer: &RtpParameters,
    caps: &RtpCapabilities,
    ssrc: u32,
    rtx_ssrc: u32,
    mid: Option<String>,
) -> Result<ConsumerStream, ControlError> {
    let mut codecs = Vec::new();
    let mut pt_map = Vec::new();
    let mut clock_rate = 0;
    for p in producer.codecs.iter().filter(|c| c.is_media()) {
        let found = caps.codecs.iter().find(|cap| codec_matches(kind, p, cap));
        let Some(cap) = found else { continue };
        if cap.preferred_payload_type > 127
            || pt_map.iter().any(|(_, c)| *c == cap.preferred_payload_type)
        {
            continue;
        }
        if codecs.is_empty() {
            clock_rate = p.clock_rate;
        }
        let rtcp_feedback = cap
            .rtcp_feedback
            .iter()
            .filter(|fb| {
                SUPPORTED_FEEDBACK
                    .iter()
                    .any(|(t, prm)| fb.kind == *t && fb.parameter == *prm)
            })
            .cloned()
            .collect::<Vec<RtcpFeedback>>();
        codecs.push(RtpCodecParameters {
            mime_type: p.mime_type.clone(),
            payload_type: cap.preferred_payload_type,
            clock_rate: p.clock_rate,
            channels: p.channels,
            parameters: p.parameters.clone(),
            rtcp_feedback,
        });
        pt_map.push((p.payload_type, cap.preferred_payload_type));
    }
    if codecs.is_empty() {
        return Err(ControlError::Unsupported(
            "the consumer's rtpCapabilities include none of the producer's codecs".into(),
        ));
    }
    // RTX for the first (forwarded) codec, when the consumer lists an rtx codec whose apt
    // is that codec's payload type and asked for generic NACK.
    let rtx_pt = codecs.first().and_then(|first: &RtpCodecParameters| {
        let nack = first
            .rtcp_feedback
            .iter()
            .any(|f| f.kind == "nack" && f.parameter.is_empty());
        let cap = caps.codecs.iter().find(|c| {
            c.kind == kind
                && is_rtx(&c.mime_type)
                && c.clock_rate == first.clock_rate
                && c.parameters.get("apt").and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                }) == Some(u64::from(first.payload_type))
        })?;
        let pt = cap.preferred_payload_type;
        (nack && pt <= 127 && !pt_map.iter().any(|(_, c)| *c == pt)).then_some(pt)
    });
    if let (Some(pt), Some(first)) = (rtx_pt, codecs.first()) {
        let mut parameters = CodecParameters::new();
        parameters.insert("apt".into(), first.payload_type.into());
        let rtx = RtpCodecParameters {
            mime_type: format!("{}/rtx", kind_name(kind)),
            payload_type: pt,
            clock_rate: first.clock_rate,
            channels: None,
            parameters,
            rtcp_feedback: Vec::new(),
        };
        codecs.push(rtx);
    }
    let red_unwrap = negotiate_red(kind, producer, caps, &mut codecs, &mut pt_map);
    let mut header_extensions = Vec::new();
    let mut ext_map = Vec::new();
    for e in &producer.header_extensions {
        if NOT_FORWARDED.contains(&e.uri.as_str()) {
            continue;
        }
        let Some(cap) = caps
            .header_extensions
            .iter()
            .find(|c| c.uri == e.uri && c.kind.is_none_or(|k| k == kind))
        else {
            continue;
        };
        if cap.preferred_id == 0 || ext_map.iter().any(|(_, to)| *to == cap.preferred_id) {
            continue;
        }
        header_extensions.push(RtpHeaderExtensionParameters {
            uri: e.uri.clone(),
            id: cap.preferred_id,
            encrypt: false,
            parameters: Default::default(),
        });
        ext_map.push((e.id, cap.preferred_id));
    }
    // Our own transport-wide sequence numbers toward the subscriber. The publisher's element,
    // if any, is kept under the consumer's id so the value can be overwritten in place.
    let twcc_id = caps
        .header_extensions
        .iter()
        .find(|c| c.uri == TWCC_URI && c.kind.is_none_or(|k| k == kind))
        .map(|c| c.preferred_id)
        .filter(|id| *id != 0 && !ext_map.iter().any(|(_, to)| to == id));
    if let Some(id) = twcc_id {
        header_extensions.push(RtpHeaderExtensionParameters {
            uri: TWCC_URI.into(),
            id,
            encrypt: false,
            parameters: Default::default(),
        });
        if let Some(e) = producer
            .header_extensions
            .iter()
            .find(|e| e.uri == TWCC_URI)
        {
            ext_map.push((e.id, id));
        }
    }
    // Our own playout delay toward the subscriber, for video it can take it for.
    let playout_delay_id = caps
        .header_extensions
        .iter()
        .find(|c| c.uri == PLAYOUT_DELAY_URI && c.kind.is_none_or(|k| k == kind))
        .map(|c| c.preferred_id)
        .filter(|id| {
            kind == MediaKind::Video
                && *id != 0
                && Some(*id) != twcc_id
                && !ext_map.iter().any(|(_, to)| to == id)
        });
    if let Some(id) = playout_delay_id {
        header_extensions.push(RtpHeaderExtensionParameters {
            uri: PLAYOUT_DELAY_URI.into(),
            id,
            encrypt: false,
            parameters: Default::default(),
        });
    }
    Ok(ConsumerStream {
        twcc_id,
        playout_delay_id,
        red_unwrap,
        rtp_parameters: RtpParameters {
            mid,
            codecs,
            header_extensions,
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(ssrc),
                rtx: rtx_pt.map(|_| RtxParameters { ssrc: rtx_ssrc }),
                ..Default::default()
            }],
            rtcp: RtcpParameters {
                cname: producer.rtcp.cname.clone(),
                reduced_size: true,
                mux: true,
            },
        },
        pt_map,
        ext_map,
        clock_rate,
        rtx_pt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vp8_producer() -> RtpParameters {
        serde_json::from_value(json!({
            "mid": "1",
            "codecs": [
                {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000,
                 "rtcpFeedback": [{"type": "nack", "parameter": "pli"}]},
                {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}}
            ],
            "headerExtensions": [
                {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4},
                {"uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 2},
                {"uri": "urn:3gpp:video-orientation", "id": 13}
            ],
            "encodings": [{"ssrc": 1111, "rtx": {"ssrc": 2222}}],
            "rtcp": {"cname": "c"}
        }))
        .unwrap()
    }

    fn caps() -> RtpCapabilities {
        serde_json::from_value(json!({
            "codecs": [
                {"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 111, "clockRate": 48000, "channels": 2},
                {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 100, "clockRate": 90000,
                 "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}, {"type": "ccm", "parameter": "fir"}, {"type": "goog-remb"}]}
            ],
            "headerExtensions": [
                {"kind": "video", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1},
                {"kind": "video", "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "preferredId": 3}
            ]
        }))
        .unwrap()
    }

    /// Regression test for issue 14 (`consumer.setProducer`): another publisher's VP8
    /// under other payload types and extension ids maps onto the consumer's own; an H264
    /// producer does not, and is refused as Unsupported.
    #[test]
    fn another_producer_maps_onto_a_consumers_parameters() {
        let consumer = consumer_stream(MediaKind::Video, &vp8_producer(), &caps(), 1, 2, None)
            .unwrap()
            .rtp_parameters;
        let mut other = vp8_producer();
        other.codecs[0].payload_type = 120;
        other.codecs[1].payload_type = 121;
        other.codecs[1].parameters.insert("apt".into(), 120.into());
        other.header_extensions[1].id = 9;
        let s = remap_stream(MediaKind::Video, &other, &consumer).unwrap();
        assert_eq!(s.pt_map, vec![(120, 100)]);
        assert_eq!(s.ext_map, vec![(9, 3)]);
        let mut h264 = other;
        h264.codecs[0].mime_type = "video/H264".into();
        assert!(matches!(
            remap_stream(MediaKind::Video, &h264, &consumer),
            Err(ControlError::Unsupported(_))
        ));
    }

    #[test]
    fn producer_validation() {
        let s = validate_producer(MediaKind::Video, &vp8_producer()).unwrap();
        assert_eq!(s.encodings.len(), 1);
        assert_eq!(s.encodings[0].ssrc, Some(1111));
        assert_eq!(s.encodings[0].rtx_ssrc, Some(2222));
        assert_eq!(s.encodings[0].temporal_layers, 1);
        assert_eq!(s.keyframes, KeyframeCodec::Vp8);
        assert_eq!(s.media_pts, vec![(96, 90000)]);
        assert_eq!(s.rtx_pts, vec![(97, 96)]);
        assert_eq!(s.stream_ids.mid, Some(4));
        assert!(!s.nack, "the producer's VP8 offers only nack pli");
        assert!(validate_producer(MediaKind::Audio, &vp8_producer()).is_err());
        let mut no_ssrc = vp8_producer();
        no_ssrc.encodings[0].ssrc = None;
        assert!(validate_producer(MediaKind::Video, &no_ssrc).is_err());
    }

    /// Three rid-only encodings with RTX by repaired RID, as a browser publishes
    /// simulcast: given highest first ("f", "h", "q"), ordered lowest first.
    fn simulcast_producer() -> RtpParameters {
        let mut p = vp8_producer();
        p.header_extensions.extend([
            RtpHeaderExtensionParameters {
                uri: RID_URI.into(),
                id: 10,
                encrypt: false,
                parameters: Default::default(),
            },
            RtpHeaderExtensionParameters {
                uri: REPAIRED_RID_URI.into(),
                id: 11,
                encrypt: false,
                parameters: Default::default(),
            },
        ]);
        p.encodings = serde_json::from_value(json!([
            {"rid": "f", "maxBitrate": 1500000, "scalabilityMode": "L1T3"},
            {"rid": "h", "maxBitrate": 500000, "scalabilityMode": "L1T3", "scaleResolutionDownBy": 2.0},
            {"rid": "q", "maxBitrate": 150000, "scalabilityMode": "L1T2", "scaleResolutionDownBy": 4.0}
        ]))
        .unwrap();
        p
    }

    fn refusal(kind: MediaKind, params: &RtpParameters) -> String {
        match validate_producer(kind, params) {
            Err(ControlError::InvalidData { reason, .. }) => reason,
            other => panic!("expected InvalidData, got {other:?}"),
        }
    }

    #[test]
    fn simulcast_encodings_are_ordered_lowest_first() {
        let s = validate_producer(MediaKind::Video, &simulcast_producer()).unwrap();
        let rids: Vec<_> = s.encodings.iter().map(|e| e.rid.as_deref()).collect();
        assert_eq!(rids, [Some("q"), Some("h"), Some("f")], "by maxBitrate");
        let temporal: Vec<_> = s.encodings.iter().map(|e| e.temporal_layers).collect();
        assert_eq!(temporal, [2, 3, 3]);
        assert_eq!(
            s.stream_ids,
            StreamIdExtensions {
                mid: Some(4),
                rid: Some(10),
                repaired_rid: Some(11)
            }
        );

        // Without bitrates: by scaleResolutionDownBy, largest first.
        let mut by_scale = simulcast_producer();
        for (e, by) in by_scale.encodings.iter_mut().zip([1.0, 2.0, 4.0]) {
            e.max_bitrate = None;
            e.scale_resolution_down_by = Some(by);
        }
        let s = validate_producer(MediaKind::Video, &by_scale).unwrap();
        let rids: Vec<_> = s.encodings.iter().map(|e| e.rid.as_deref()).collect();
        assert_eq!(rids, [Some("q"), Some("h"), Some("f")]);

        // With neither on every encoding: as given.
        by_scale.encodings[0].scale_resolution_down_by = None;
        let s = validate_producer(MediaKind::Video, &by_scale).unwrap();
        let rids: Vec<_> = s.encodings.iter().map(|e| e.rid.as_deref()).collect();
        assert_eq!(rids, [Some("f"), Some("h"), Some("q")]);
    }

    #[test]
    fn bad_encodings_are_refused_with_the_reason() {
        let mut p = simulcast_producer();
        p.encodings[1].rid = Some("f".into());
        assert!(refusal(MediaKind::Video, &p).contains("rid \"f\" is used twice"));

        let mut p = simulcast_producer();
        p.encodings[0].ssrc = Some(5);
        p.encodings[2].rtx = Some(RtxParameters { ssrc: 5 });
        assert!(refusal(MediaKind::Video, &p).contains("ssrc 5 is used twice"));

        let mut p = simulcast_producer();
        p.encodings[2].rid = None;
        assert!(refusal(MediaKind::Video, &p).contains("neither ssrc nor rid"));

        let mut p = simulcast_producer();
        p.encodings.extend(p.encodings.clone());
        assert!(refusal(MediaKind::Video, &p).contains("takes 1..=4"));
        p.encodings.clear();
        assert!(refusal(MediaKind::Video, &p).contains("has 0 entries"));

        let mut p = simulcast_producer();
        p.encodings[0].scalability_mode = Some("L3T3".into());
        assert!(refusal(MediaKind::Video, &p).contains("scalabilityMode"));

        let mut p = simulcast_producer();
        p.encodings[0].scale_resolution_down_by = Some(0.5);
        assert!(refusal(MediaKind::Video, &p).contains("scaleResolutionDownBy"));

        let mut p = simulcast_producer();
        p.encodings[0].rid = Some("a b".into());
        assert!(refusal(MediaKind::Video, &p).contains("is not 1..=16"));

        let mut p = simulcast_producer();
        p.header_extensions.retain(|e| e.uri != RID_URI);
        assert!(refusal(MediaKind::Video, &p).contains(RID_URI));
        // ...unless the SSRCs are signalled.
        for (i, e) in p.encodings.iter_mut().enumerate() {
            e.ssrc = Some(100 + i as u32);
        }
        assert!(validate_producer(MediaKind::Video, &p).is_ok());
    }

    #[test]
    fn audio_takes_one_encoding_with_its_ssrc() {
        let opus: RtpParameters = serde_json::from_value(json!({
            "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2}],
            "headerExtensions": [{"uri": RID_URI, "id": 10}],
            "encodings": [{"ssrc": 1}, {"ssrc": 2}]
        }))
        .unwrap();
        assert!(refusal(MediaKind::Audio, &opus).contains("takes 1..=1"));
        let mut one = opus.clone();
        one.encodings.truncate(1);
        let s = validate_producer(MediaKind::Audio, &one).unwrap();
        assert_eq!(s.keyframes, KeyframeCodec::None);
        one.encodings[0] = RtpEncodingParameters {
            rid: Some("a".into()),
            ..Default::default()
        };
        assert!(refusal(MediaKind::Audio, &one).contains("needs its ssrc"));
    }

    #[test]
    fn scalability_modes() {
        assert_eq!(temporal_layers("L1T1"), Some(1));
        assert_eq!(temporal_layers("L1T3"), Some(3));
        assert_eq!(temporal_layers("L1T4"), None);
        assert_eq!(temporal_layers("L2T2"), None);
        assert_eq!(temporal_layers(""), None);
    }

    #[test]
    fn consumer_gets_its_own_payload_types_and_extension_ids() {
        let s = consumer_stream(
            MediaKind::Video,
            &vp8_producer(),
            &caps(),
            5555,
            6666,
            Some("0".into()),
        )
        .unwrap();
        assert_eq!(s.pt_map, vec![(96, 100)]);
        assert_eq!(
            s.ext_map,
            vec![(2, 3)],
            "mid is not forwarded, orientation not negotiated"
        );
        let p = &s.rtp_parameters;
        assert_eq!(p.codecs.len(), 1);
        assert_eq!(p.codecs[0].payload_type, 100);
        assert_eq!(
            p.codecs[0].rtcp_feedback.len(),
            3,
            "nack, nack pli, ccm fir"
        );
        assert_eq!(s.rtx_pt, None, "the consumer offered no rtx codec");
        assert_eq!(p.encodings[0].rtx, None);
        assert_eq!(p.encodings[0].ssrc, Some(5555));
        assert_eq!(p.mid.as_deref(), Some("0"));
        assert_eq!(s.clock_rate, 90000);
    }

    #[test]
    fn consumer_gets_rtx_when_it_offers_it_with_nack() {
        let mut c = caps();
        c.codecs.push(
            serde_json::from_value(
                json!({"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": 101,
                "clockRate": 90000, "parameters": {"apt": 100}}),
            )
            .unwrap(),
        );
        let s = consumer_stream(MediaKind::Video, &vp8_producer(), &c, 5555, 6666, None).unwrap();
        assert_eq!(s.rtx_pt, Some(101));
        let p = &s.rtp_parameters;
        assert_eq!(p.encodings[0].rtx.map(|r| r.ssrc), Some(6666));
        assert_eq!(p.codecs[1].mime_type, "video/rtx");
        assert_eq!(p.codecs[1].apt(), Some(100));
        // Without generic NACK there is nothing to retransmit for.
        c.codecs[1]
            .rtcp_feedback
            .retain(|f| !(f.kind == "nack" && f.parameter.is_empty()));
        let s = consumer_stream(MediaKind::Video, &vp8_producer(), &c, 5555, 6666, None).unwrap();
        assert_eq!(s.rtx_pt, None);
    }

    /// What the signaling's answer to Chromium produces: RED first, then Opus.
    fn red_producer() -> RtpParameters {
        serde_json::from_value(json!({
            "mid": "0",
            "codecs": [
                {"mimeType": "audio/red", "payloadType": 63, "clockRate": 48000, "channels": 2},
                {"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
                 "parameters": {"minptime": 10, "useinbandfec": 1}}
            ],
            "encodings": [{"ssrc": 3333}],
            "rtcp": {"cname": "c"}
        }))
        .unwrap()
    }

    fn with_red(mut caps: RtpCapabilities, pt: u8) -> RtpCapabilities {
        caps.codecs.push(
            serde_json::from_value(json!({"kind": "audio", "mimeType": "audio/red",
                "preferredPayloadType": pt, "clockRate": 48000, "channels": 2}))
            .unwrap(),
        );
        caps
    }

    #[test]
    fn red_producer_forwards_red_packets() {
        let s = validate_producer(MediaKind::Audio, &red_producer()).unwrap();
        assert_eq!(s.media_pts, vec![(111, 48000), (63, 48000)]);
    }

    #[test]
    fn subscriber_with_red_gets_red_first() {
        let c = with_red(caps(), 63);
        let s = consumer_stream(MediaKind::Audio, &red_producer(), &c, 1, 2, None).unwrap();
        let mimes: Vec<(&str, u8)> = s
            .rtp_parameters
            .codecs
            .iter()
            .map(|c| (c.mime_type.as_str(), c.payload_type))
            .collect();
        assert_eq!(mimes, vec![("audio/red", 63), ("audio/opus", 111)]);
        assert_eq!(s.pt_map, vec![(111, 111), (63, 63)]);
        assert_eq!(s.red_unwrap, None);
        assert_eq!(s.clock_rate, 48000);
    }

    #[test]
    fn subscriber_without_red_gets_it_unwrapped() {
        let s = consumer_stream(MediaKind::Audio, &red_producer(), &caps(), 1, 2, None).unwrap();
        assert_eq!(s.rtp_parameters.codecs.len(), 1);
        assert_eq!(s.rtp_parameters.codecs[0].mime_type, "audio/opus");
        assert_eq!(s.pt_map, vec![(111, 111)]);
        assert_eq!(s.red_unwrap, Some(63));
    }

    /// The blocks inside a RED packet carry the producer's Opus payload type: a
    /// subscriber numbering Opus differently cannot take RED as it is.
    #[test]
    fn subscriber_with_another_opus_number_gets_red_unwrapped() {
        let mut c = with_red(caps(), 63);
        c.codecs[0].preferred_payload_type = 109;
        let s = consumer_stream(MediaKind::Audio, &red_producer(), &c, 1, 2, None).unwrap();
        assert_eq!(s.pt_map, vec![(111, 109)]);
        assert_eq!(s.red_unwrap, Some(63));
        // Nor can a RED payload type colliding with Opus's be used.
        let c = with_red(caps(), 111);
        let s = consumer_stream(MediaKind::Audio, &red_producer(), &c, 1, 2, None).unwrap();
        assert_eq!(s.red_unwrap, Some(63));
    }

    #[test]
    fn consumer_without_a_common_codec_is_refused() {
        let mut c = caps();
        c.codecs.retain(|c| c.kind == MediaKind::Audio);
        assert!(matches!(
            consumer_stream(MediaKind::Video, &vp8_producer(), &c, 1, 2, None),
            Err(ControlError::Unsupported(_))
        ));
    }
}
