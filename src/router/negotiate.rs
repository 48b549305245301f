//! Validating a producer's RtpParameters and deriving a consumer's from them and the
//! consuming endpoint's RtpCapabilities (the role of mediasoup's ortc.ts, simplified to
//! one encoding per producer).

use crate::channel::params::{
    CodecParameters, MediaKind, RtcpFeedback, RtcpParameters, RtpCapabilities, RtpCodecCapability,
    RtpCodecParameters, RtpEncodingParameters, RtpHeaderExtensionParameters, RtpParameters,
    RtxParameters,
};
use crate::channel::ControlError;

/// Header extensions that are never forwarded as they are: their values describe the
/// publisher's transport or m-line (MID/RID), or are transport-wide (transport-cc), so
/// copying them to a subscriber would be wrong. The browser demultiplexes forwarded
/// streams by SSRC instead.
const NOT_FORWARDED: [&str; 4] = [
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
    "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id",
    TWCC_URI,
];

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

/// What the daemon needs to know of a validated producer.
#[derive(Debug, Clone)]
pub struct ProducerStream {
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
    /// Payload types of media codecs with their clock rate.
    pub media_pts: Vec<(u8, u32)>,
    /// Whether the first media codec is VP8 (keyframes detectable, see `rtp`).
    pub vp8: bool,
    /// RTX payload type -> the media payload type it repairs (RFC 4588 "apt").
    pub rtx_pts: Vec<(u8, u8)>,
    /// Whether the publisher accepts generic NACK (RFC 4585), so we may ask for
    /// retransmissions of lost packets.
    pub nack: bool,
    /// The publisher's transport-wide sequence number extension id, if it sends one.
    pub twcc_id: Option<u8>,
    /// Whether the publisher accepts REMB (goog-remb) feedback.
    pub remb: bool,
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
    let [encoding] = params.encodings.as_slice() else {
        return Err(ControlError::Unsupported(format!(
            "exactly one encoding is supported (simulcast is not), got {}",
            params.encodings.len()
        )));
    };
    let Some(ssrc) = encoding.ssrc else {
        return Err(invalid("rtpParameters.encodings[0].ssrc is required"));
    };
    let rtx_ssrc = encoding.rtx.map(|r| r.ssrc);
    if rtx_ssrc == Some(ssrc) {
        return Err(invalid("rtx ssrc equals the media ssrc"));
    }
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
    let twcc_id = params
        .header_extensions
        .iter()
        .find(|e| e.uri == TWCC_URI)
        .map(|e| e.id);
    let remb = media
        .iter()
        .any(|c| c.rtcp_feedback.iter().any(|f| f.kind == "goog-remb"));
    Ok(ProducerStream {
        twcc_id,
        remb,
        rtx_pts,
        nack,
        ssrc,
        rtx_ssrc,
        media_pts: media
            .iter()
            .map(|c| (c.payload_type, c.clock_rate))
            .collect(),
        vp8: first.mime_type.eq_ignore_ascii_case("video/VP8"),
    })
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
    Ok(ConsumerStream {
        twcc_id,
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

    #[test]
    fn producer_validation() {
        let s = validate_producer(MediaKind::Video, &vp8_producer()).unwrap();
        assert_eq!(s.ssrc, 1111);
        assert_eq!(s.rtx_ssrc, Some(2222));
        assert!(s.vp8);
        assert_eq!(s.media_pts, vec![(96, 90000)]);
        assert_eq!(s.rtx_pts, vec![(97, 96)]);
        assert!(!s.nack, "the producer's VP8 offers only nack pli");
        assert!(validate_producer(MediaKind::Audio, &vp8_producer()).is_err());
        let mut no_ssrc = vp8_producer();
        no_ssrc.encodings[0].ssrc = None;
        assert!(validate_producer(MediaKind::Video, &no_ssrc).is_err());
        let mut simulcast = vp8_producer();
        simulcast.encodings.push(Default::default());
        assert!(matches!(
            validate_producer(MediaKind::Video, &simulcast),
            Err(ControlError::Unsupported(_))
        ));
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
