//! The send side: a browser's offer of its tracks -> our answer and the
//! `transport.produce` parameters of each track.

use std::collections::BTreeMap;

use super::capabilities::{
    choose_send_codec, supported_summary, Negotiation, EXT_MID, EXT_REPAIRED_RID, EXT_RID,
    EXT_TRANSPORT_CC, FB_REMB, FB_TRANSPORT_CC, SEND_EXTENSIONS, VIDEO_FEEDBACK,
};
use super::parse::{fmtp_to_parameters, Description, Direction, MediaSection, SdpCodec};
use super::simulcast::{simulcast_encodings, EncodingHint};
use super::{attr, flag, media_port, media_section, push_candidates, session, SdpError};
use sfu_control::params::{
    CodecParameters, DtlsParameters, DtlsRole, MediaKind, RtcpFeedback, RtcpParameters,
    RtpCodecParameters, RtpEncodingParameters, RtpHeaderExtensionParameters, RtpParameters,
    RtxParameters,
};
use sfu_control::responses::TransportCreated;

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
        role: DtlsRole::Client,
        fingerprints,
    })
}

/// The offered feedback of `codec` that the daemon acts on, in the browser's order:
/// NACK/PLI/FIR for video; transport-cc when the transport-wide-cc extension was
/// accepted on the m-line (the feedback refers to its sequence numbers); goog-remb when
/// bandwidth feedback is on (the daemon sends REMB only if transport-cc is absent, but
/// accepting it costs nothing and keeps the answer a plain subset of the offer).
pub(crate) fn accepted_feedback(
    kind: MediaKind,
    codec: &SdpCodec,
    transport_cc: bool,
    policy: &Negotiation,
) -> Vec<RtcpFeedback> {
    codec
        .rtcp_fb
        .iter()
        .filter(|(k, p)| {
            let is = |(fk, fp): &(&str, &str)| k == fk && p == fp;
            (kind == MediaKind::Video && VIDEO_FEEDBACK.iter().any(is))
                || (transport_cc && is(&FB_TRANSPORT_CC))
                || (policy.bandwidth_feedback && is(&FB_REMB))
        })
        .fold(Vec::new(), |mut out, (k, p)| {
            // A browser repeating a line gets it answered once.
            let fb = RtcpFeedback::new(k, p);
            if !out.contains(&fb) {
                out.push(fb);
            }
            out
        })
}

/// The offered RTX codec repairing `codec` (RFC 4588: `a=fmtp:<pt> apt=<codec pt>`).
pub(crate) fn offered_rtx<'a>(m: &'a MediaSection, codec: &SdpCodec) -> Option<&'a SdpCodec> {
    m.codecs.iter().find(|c| {
        c.name.eq_ignore_ascii_case("rtx")
            && c.clock_rate == codec.clock_rate
            && c.param("apt").and_then(|a| a.trim().parse::<u8>().ok()) == Some(codec.pt)
    })
}

/// How the daemon will know a track's packets.
enum Streams {
    /// One SSRC (the first of an FID group) and the RTX SSRC of that group, if any.
    Ssrc { ssrc: u32, rtx_ssrc: Option<u32> },
    /// RID simulcast: the accepted rids in the offer's order (for the answer) and the
    /// encodings, lowest first; the daemon learns the SSRCs from MID and RID.
    Simulcast {
        rids: Vec<String>,
        encodings: Vec<RtpEncodingParameters>,
    },
}

/// The offered RED codec (RFC 2198, `audio/red`) carrying `codec` (Opus): its fmtp
/// names that payload type for every block (`a=fmtp:63 111/111`, RFC 2198 section 5),
/// as Chromium offers it.
fn offered_red<'a>(m: &'a MediaSection, codec: &SdpCodec) -> Option<&'a SdpCodec> {
    m.codecs.iter().find(|c| {
        c.name.eq_ignore_ascii_case("red")
            && c.clock_rate == codec.clock_rate
            && c.channels == codec.channels
            && !c.fmtp.trim().is_empty()
            && c.fmtp
                .trim()
                .split('/')
                .all(|pt| pt.parse::<u8>().ok() == Some(codec.pt))
    })
}

/// Answers a send-side offer on `transport`. `session_id` identifies our side of this
/// peer connection in `o=`. `hints`: what the page said of the encodings of its
/// simulcast m-lines, by mid (checked by [`super::simulcast::check_hints`]); every mid
/// named must be a simulcast m-line of this offer.
pub fn answer_send_offer(
    offer: &Description,
    transport: &TransportCreated,
    policy: &Negotiation,
    session_id: u64,
    hints: &BTreeMap<String, Vec<EncodingHint>>,
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
    if let Some(mid) = hints.keys().find(|mid| {
        !offer
            .media
            .iter()
            .any(|m| m.mid.as_ref() == Some(*mid) && m.simulcast.is_some())
    }) {
        let shown: String = mid.chars().take(32).collect();
        return Err(SdpError::Invalid(format!(
            "encodings given for mid {shown:?}, which is no simulcast m-line of the offer"
        )));
    }
    // The CNAME is the peer connection's: an m-line without a=ssrc lines (Chromium's
    // simulcast) shares the one of the others.
    let any_cname = offer
        .media
        .iter()
        .flat_map(|m| m.ssrcs.iter())
        .find_map(|(_, a)| a.strip_prefix("cname:"));
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
        let codec = choose_send_codec(kind, &m.codecs, policy.video_codec).ok_or_else(|| {
            SdpError::NoCommonCodec(format!(
                "{where_} offers none of {}",
                supported_summary(kind)
            ))
        })?;
        let streams = match (&m.simulcast, kind) {
            (Some(_), MediaKind::Audio) => {
                return Err(SdpError::Unsupported(format!("{where_}: simulcast audio")))
            }
            (Some(send), MediaKind::Video) => {
                let (rids, encodings) = simulcast_encodings(
                    &where_,
                    send,
                    &m.rids,
                    hints.get(&mid).map(Vec::as_slice),
                )?;
                Streams::Simulcast { rids, encodings }
            }
            (None, _) => {
                let ssrc = m.primary_ssrc().ok_or_else(|| {
                    SdpError::Invalid(format!(
                        "{where_} has no a=ssrc: the server needs the SSRC of the track"
                    ))
                })?;
                Streams::Ssrc {
                    ssrc,
                    rtx_ssrc: m.rtx_ssrc(ssrc),
                }
            }
        };
        let simulcast = matches!(streams, Streams::Simulcast { .. });
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
            .filter(|e| policy.bandwidth_feedback || e.uri != EXT_TRANSPORT_CC)
            .filter(|e| simulcast || (e.uri != EXT_RID && e.uri != EXT_REPAIRED_RID))
            .fold(
                Vec::new(),
                |mut out: Vec<RtpHeaderExtensionParameters>, e| {
                    // One id per URI (a second extmap for a URI would be ambiguous).
                    if !out.iter().any(|x| x.uri == e.uri) {
                        out.push(RtpHeaderExtensionParameters {
                            uri: e.uri.clone(),
                            id: e.id,
                            encrypt: false,
                            parameters: CodecParameters::new(),
                        });
                    }
                    out
                },
            );
        let has_ext = |uri: &str| extensions.iter().any(|e| e.uri == uri);
        if simulcast && !(has_ext(EXT_MID) && has_ext(EXT_RID)) {
            return Err(SdpError::Unsupported(format!(
                "{where_}: simulcast needs the {EXT_MID} and {EXT_RID} header extensions"
            )));
        }
        let transport_cc = has_ext(EXT_TRANSPORT_CC);
        let feedback = accepted_feedback(kind, codec, transport_cc, policy);
        // RTX needs a way to tell its packets apart: the FID group's SSRC, or for
        // simulcast the repaired-RID extension.
        let rtx = match (&streams, kind) {
            (_, MediaKind::Audio) => None,
            (Streams::Ssrc { rtx_ssrc, .. }, MediaKind::Video) => {
                rtx_ssrc.and_then(|_| offered_rtx(m, codec))
            }
            (Streams::Simulcast { .. }, MediaKind::Video) => {
                offered_rtx(m, codec).filter(|_| has_ext(EXT_REPAIRED_RID))
            }
        };
        // RED first: Chromium sends RED only when the answer's first codec is RED.
        let red = match kind {
            MediaKind::Audio => offered_red(m, codec),
            MediaKind::Video => None,
        };

        let mut formats: Vec<String> = red.map(|r| r.pt.to_string()).into_iter().collect();
        formats.push(codec.pt.to_string());
        formats.extend(rtx.map(|c| c.pt.to_string()));
        let mut md = media_section(
            kind.as_str(),
            media_port(transport),
            formats,
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
        if let Some(r) = red {
            md.attributes.push(attr("rtpmap", rtpmap(r)));
            md.attributes
                .push(attr("fmtp", format!("{} {}/{}", r.pt, codec.pt, codec.pt)));
        }
        md.attributes.push(attr("rtpmap", rtpmap(codec)));
        for fb in &feedback {
            md.attributes.push(attr("rtcp-fb", rtcp_fb(codec.pt, fb)));
        }
        if !codec.fmtp.is_empty() {
            md.attributes
                .push(attr("fmtp", format!("{} {}", codec.pt, codec.fmtp)));
        }
        if let Some(r) = rtx {
            md.attributes.push(attr("rtpmap", rtpmap(r)));
            md.attributes
                .push(attr("fmtp", format!("{} apt={}", r.pt, codec.pt)));
        }
        if let Streams::Simulcast { rids, .. } = &streams {
            for rid in rids {
                md.attributes.push(attr("rid", format!("{rid} recv")));
            }
            md.attributes
                .push(attr("simulcast", format!("recv {}", rids.join(";"))));
        }
        push_candidates(&mut md, transport);
        sd.media_descriptions.push(md);
        bundle.push(mid.clone());

        let mut codecs: Vec<RtpCodecParameters> = red
            .map(|r| RtpCodecParameters {
                mime_type: r.mime(kind),
                payload_type: r.pt,
                clock_rate: r.clock_rate,
                channels: r.channels,
                parameters: CodecParameters::new(),
                rtcp_feedback: Vec::new(),
            })
            .into_iter()
            .collect();
        codecs.push(RtpCodecParameters {
            mime_type: codec.mime(kind),
            payload_type: codec.pt,
            clock_rate: codec.clock_rate,
            channels: codec.channels,
            parameters: fmtp_to_parameters(&codec.fmtp),
            rtcp_feedback: feedback,
        });
        if let Some(r) = rtx {
            let mut parameters = CodecParameters::new();
            parameters.insert("apt".into(), codec.pt.into());
            codecs.push(RtpCodecParameters {
                mime_type: r.mime(kind),
                payload_type: r.pt,
                clock_rate: r.clock_rate,
                channels: None,
                parameters,
                rtcp_feedback: Vec::new(),
            });
        }
        let (encodings, cname) = match streams {
            Streams::Ssrc { ssrc, rtx_ssrc } => (
                vec![RtpEncodingParameters {
                    ssrc: Some(ssrc),
                    rtx: rtx.and(rtx_ssrc).map(|ssrc| RtxParameters { ssrc }),
                    ..RtpEncodingParameters::default()
                }],
                m.cname(ssrc),
            ),
            Streams::Simulcast { encodings, .. } => (encodings, any_cname),
        };
        producers.push(ProduceParams {
            kind,
            rtp_parameters: RtpParameters {
                mid: Some(mid),
                codecs,
                header_extensions: extensions,
                encodings,
                rtcp: RtcpParameters {
                    cname: cname.map(str::to_owned),
                    reduced_size: m.rtcp_rsize,
                    // BUNDLE offers without rtcp-mux are refused (parse.rs).
                    mux: true,
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

/// `a=rtcp-fb` value: `<pt> <type>[ <parameter>]`.
pub(crate) fn rtcp_fb(pt: u8, fb: &RtcpFeedback) -> String {
    if fb.parameter.is_empty() {
        format!("{pt} {}", fb.kind)
    } else {
        format!("{pt} {} {}", fb.kind, fb.parameter)
    }
}

/// `a=rtpmap` value of a codec.
pub(crate) fn rtpmap(c: &SdpCodec) -> String {
    match c.channels {
        Some(ch) => format!("{} {}/{}/{}", c.pt, c.name, c.clock_rate, ch),
        None => format!("{} {}/{}", c.pt, c.name, c.clock_rate),
    }
}
