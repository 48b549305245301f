//! The send side: a browser's offer of its tracks -> our answer and the
//! `transport.produce` parameters of each track.

use super::capabilities::{choose_send_codec, supported_summary, FEEDBACK, SEND_EXTENSIONS};
use super::parse::{fmtp_to_parameters, Description, Direction, MediaSection, SdpCodec};
use super::{attr, flag, media_port, media_section, push_candidates, session, SdpError};
use crate::config::VideoCodec;
use crate::daemon::params::{
    DtlsParameters, MediaKind, RtcpFeedback, RtcpParameters, RtpCodecParameters,
    RtpEncodingParameters, RtpHeaderExtensionParameters, RtpParameters, TransportInfo,
};

/// Most tracks one browser may publish at once (a camera, a microphone, a screen...).
pub const MAX_SEND_TRACKS: usize = 4;

/// One track to produce.
#[derive(Debug, Clone, PartialEq)]
pub struct ProduceParams {
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
}

/// What a send-side offer turns into.
#[derive(Debug, Clone)]
pub struct SendAnswer {
    /// The answer SDP for the browser.
    pub sdp: String,
    /// The browser's DTLS parameters, for `transport.connect`.
    pub dtls: DtlsParameters,
    /// One entry per accepted m-line.
    pub producers: Vec<ProduceParams>,
}

/// The browser's DTLS fingerprints from m-line `m` (or the session), checking that it
/// can be the DTLS client: the daemon is always the server.
pub(crate) fn client_dtls(
    desc: &Description,
    m: &MediaSection,
    offer: bool,
) -> Result<DtlsParameters, SdpError> {
    let fingerprints = desc.fingerprints(m).to_vec();
    if fingerprints.is_empty() {
        return Err(SdpError::Invalid("no a=fingerprint".into()));
    }
    let setup = desc
        .setup(m)
        .unwrap_or(if offer { "actpass" } else { "active" });
    let ok = if offer {
        matches!(setup, "actpass" | "active")
    } else {
        setup == "active"
    };
    if !ok {
        return Err(SdpError::Unsupported(format!(
            "a=setup:{setup}: the server is always the DTLS server, the browser must be active"
        )));
    }
    Ok(DtlsParameters {
        role: "client".into(),
        fingerprints,
    })
}

fn accepted_feedback(codec: &SdpCodec) -> Vec<RtcpFeedback> {
    codec
        .rtcp_fb
        .iter()
        .filter(|(k, p)| FEEDBACK.iter().any(|(fk, fp)| k == fk && p == fp))
        .map(|(k, p)| RtcpFeedback::new(k, p))
        .collect()
}

/// Answers a send-side offer on `transport`. `session_id` identifies our side of this
/// peer connection in `o=`.
pub fn answer_send_offer(
    offer: &Description,
    transport: &TransportInfo,
    preferred_video: VideoCodec,
    session_id: u64,
) -> Result<SendAnswer, SdpError> {
    if offer.media.is_empty() {
        return Err(SdpError::Invalid("the offer has no m-line".into()));
    }
    if offer.media.len() > MAX_SEND_TRACKS {
        return Err(SdpError::Unsupported(format!(
            "at most {MAX_SEND_TRACKS} m-lines can be published, the offer has {}",
            offer.media.len()
        )));
    }
    let mut sd = session(session_id, 1);
    let mut producers = Vec::new();
    let mut bundle = Vec::new();
    let mut dtls = None;
    for m in &offer.media {
        let where_ = format!("m-line {} ({})", m.index, m.media);
        let Some(mid) = m.mid.clone().filter(|s| !s.is_empty() && s.len() <= 32) else {
            return Err(SdpError::Invalid(format!("{where_} has no a=mid")));
        };
        let Some(kind) = m.kind() else {
            return Err(SdpError::Unsupported(format!(
                "{where_}: only audio and video can be published"
            )));
        };
        if m.proto != "UDP/TLS/RTP/SAVPF" {
            return Err(SdpError::Unsupported(format!(
                "{where_}: protocol {} (UDP/TLS/RTP/SAVPF is required)",
                m.proto
            )));
        }
        if m.is_rejected() {
            // The browser itself disabled this m-line: reject it in the answer too.
            let mut md = media_section(
                kind.as_str(),
                0,
                vec![first_format(m)],
                transport,
                "passive",
            );
            md.attributes = vec![attr("mid", mid), flag("inactive")];
            sd.media_descriptions.push(md);
            continue;
        }
        if !offer.bundle.contains(&mid) {
            return Err(SdpError::Invalid(format!(
                "{where_} is not in a=group:BUNDLE (BUNDLE is required)"
            )));
        }
        if !m.rtcp_mux {
            return Err(SdpError::Invalid(format!(
                "{where_} lacks a=rtcp-mux (required)"
            )));
        }
        if !matches!(m.direction, Direction::SendOnly | Direction::SendRecv) {
            return Err(SdpError::Invalid(format!(
                "{where_} does not send: the send side's m-lines must be sendonly"
            )));
        }
        if m.simulcast {
            return Err(SdpError::Unsupported(format!(
                "{where_}: simulcast is not supported"
            )));
        }
        let codec = choose_send_codec(kind, &m.codecs, preferred_video).ok_or_else(|| {
            SdpError::NoCommonCodec(format!(
                "{where_} offers none of {}",
                supported_summary(kind)
            ))
        })?;
        let ssrc = m.primary_ssrc().ok_or_else(|| {
            SdpError::Invalid(format!(
                "{where_} has no a=ssrc: the server needs the SSRC of the track"
            ))
        })?;
        let d = client_dtls(offer, m, true)?;
        match &dtls {
            None => dtls = Some(d),
            Some(first) if *first != d => {
                return Err(SdpError::Invalid(
                    "m-lines carry different fingerprints".into(),
                ))
            }
            Some(_) => {}
        }
        let extensions: Vec<RtpHeaderExtensionParameters> = m
            .extmaps
            .iter()
            .filter(|e| {
                e.direction
                    .as_deref()
                    .is_none_or(|d| d == "sendrecv" || d == "sendonly")
            })
            .filter(|e| {
                SEND_EXTENSIONS
                    .iter()
                    .any(|(k, uri)| *k == kind && e.uri == *uri)
            })
            .map(|e| RtpHeaderExtensionParameters {
                uri: e.uri.clone(),
                id: e.id,
            })
            .collect();
        let feedback = accepted_feedback(codec);

        let mut md = media_section(
            kind.as_str(),
            media_port(transport),
            vec![codec.pt.to_string()],
            transport,
            "passive",
        );
        md.attributes.push(attr("mid", &mid));
        md.attributes.push(flag("recvonly"));
        md.attributes.push(flag("rtcp-mux"));
        if m.rtcp_rsize {
            md.attributes.push(flag("rtcp-rsize"));
        }
        for e in &extensions {
            md.attributes
                .push(attr("extmap", format!("{} {}", e.id, e.uri)));
        }
        md.attributes.push(attr("rtpmap", rtpmap(codec)));
        for fb in &feedback {
            md.attributes.push(attr(
                "rtcp-fb",
                format!("{} {} {}", codec.pt, fb.kind, fb.parameter),
            ));
        }
        if !codec.fmtp.is_empty() {
            md.attributes
                .push(attr("fmtp", format!("{} {}", codec.pt, codec.fmtp)));
        }
        push_candidates(&mut md, transport);
        sd.media_descriptions.push(md);
        bundle.push(mid.clone());

        producers.push(ProduceParams {
            kind,
            rtp_parameters: RtpParameters {
                mid: Some(mid),
                codecs: vec![RtpCodecParameters {
                    mime_type: codec.mime(kind),
                    payload_type: codec.pt,
                    clock_rate: codec.clock_rate,
                    channels: codec.channels,
                    parameters: fmtp_to_parameters(&codec.fmtp),
                    rtcp_feedback: feedback,
                }],
                header_extensions: extensions,
                encodings: vec![RtpEncodingParameters {
                    ssrc: Some(ssrc),
                    rtx: None,
                }],
                rtcp: RtcpParameters {
                    cname: m.cname(ssrc).map(str::to_owned),
                    reduced_size: m.rtcp_rsize,
                },
            },
        });
    }
    let Some(dtls) = dtls else {
        return Err(SdpError::Invalid("the offer has no active m-line".into()));
    };
    sd.attributes
        .push(attr("group", format!("BUNDLE {}", bundle.join(" "))));
    sd.attributes.push(attr("msid-semantic", " WMS *"));
    Ok(SendAnswer {
        sdp: sd.marshal(),
        dtls,
        producers,
    })
}

fn first_format(m: &MediaSection) -> String {
    m.codecs
        .first()
        .map_or_else(|| "0".into(), |c| c.pt.to_string())
}

/// `a=rtpmap` value of a codec.
pub(crate) fn rtpmap(c: &SdpCodec) -> String {
    match c.channels {
        Some(ch) => format!("{} {}/{}/{}", c.pt, c.name, c.clock_rate, ch),
        None => format!("{} {}/{}", c.pt, c.name, c.clock_rate),
    }
}
