//! The receive side: the server offers one sendonly m-line per consumer (the browser
//! demultiplexes by the `a=ssrc` lines) and reads the browser's answer.

use super::answer::{client_dtls, rtcp_fb};
use super::parse::{parameters_to_fmtp, Description};
use super::{attr, flag, media_port, media_section, push_candidates, session, SdpError};
use sdp::MediaDescription;
use sfu_control::params::{DtlsParameters, MediaKind, RtpCodecParameters, RtpParameters};
use sfu_control::responses::TransportCreated;

/// What one m-line of a receive-side offer shows.
#[derive(Debug, Clone, Copy)]
pub enum OfferedMedia<'a> {
    /// A live consumer: sendonly with its SSRC, under msid `stream_id track_id`.
    Active {
        mid: &'a str,
        kind: MediaKind,
        rtp: &'a RtpParameters,
        stream_id: &'a str,
        track_id: &'a str,
    },
    /// A closed consumer whose m-line carries the BUNDLE transport: kept, inactive
    /// (closing it would close the transport, RFC 8843 section 7.3.3).
    Disabled {
        mid: &'a str,
        kind: MediaKind,
        rtp: &'a RtpParameters,
    },
    /// A closed consumer: port 0, out of the BUNDLE group; its place may be recycled by a
    /// later m-line with a new mid.
    Closed {
        mid: &'a str,
        kind: MediaKind,
        rtp: &'a RtpParameters,
    },
}

impl OfferedMedia<'_> {
    /// The m-line's mid.
    pub fn mid(&self) -> &str {
        match self {
            Self::Active { mid, .. } | Self::Disabled { mid, .. } | Self::Closed { mid, .. } => mid,
        }
    }
}

fn codec_name(mime: &str) -> &str {
    mime.split_once('/').map_or(mime, |(_, n)| n)
}

/// Builds the offer. `version` must grow with every offer of this session (`o=` line).
pub fn build_recv_offer(
    transport: &TransportCreated,
    session_id: u64,
    version: u64,
    media: &[OfferedMedia<'_>],
) -> String {
    let mut sd = session(session_id, version);
    let mut bundle = Vec::new();
    for m in media {
        let (mid, kind, rtp, port) = match *m {
            OfferedMedia::Active { mid, kind, rtp, .. }
            | OfferedMedia::Disabled { mid, kind, rtp } => (mid, kind, rtp, media_port(transport)),
            OfferedMedia::Closed { mid, kind, rtp } => (mid, kind, rtp, 0),
        };
        let formats = if rtp.codecs.is_empty() {
            vec![match kind {
                MediaKind::Audio => "111".to_owned(),
                MediaKind::Video => "96".to_owned(),
            }]
        } else {
            rtp.codecs
                .iter()
                .map(|c| c.payload_type.to_string())
                .collect()
        };
        let mut md = media_section(kind.as_str(), port, formats, transport, "actpass");
        md.attributes.push(attr("mid", mid));
        match m {
            OfferedMedia::Active { .. } => md.attributes.push(flag("sendonly")),
            _ => md.attributes.push(flag("inactive")),
        }
        if matches!(m, OfferedMedia::Closed { .. }) {
            // Nothing else matters on a rejected m-line; keep one format for syntax.
            if let Some(c) = rtp.codecs.first() {
                md.attributes.push(attr(
                    "rtpmap",
                    rtpmap_value(c.payload_type, &c.mime_type, c.clock_rate, c.channels),
                ));
            }
            sd.media_descriptions.push(md);
            continue;
        }
        bundle.push(mid.to_owned());
        md.attributes.push(flag("rtcp-mux"));
        md.attributes.push(flag("rtcp-rsize"));
        if let OfferedMedia::Active { .. } = m {
            for e in &rtp.header_extensions {
                md.attributes
                    .push(attr("extmap", format!("{} {}", e.id, e.uri)));
            }
        }
        push_codec_lines(&mut md, rtp);
        if let OfferedMedia::Active {
            stream_id,
            track_id,
            ..
        } = m
        {
            push_stream_lines(&mut md, rtp, stream_id, track_id);
        }
        push_candidates(&mut md, transport);
        sd.media_descriptions.push(md);
    }
    if !bundle.is_empty() {
        sd.attributes
            .push(attr("group", format!("BUNDLE {}", bundle.join(" "))));
    }
    sd.attributes.push(attr("msid-semantic", " WMS *"));
    sd.marshal()
}

/// `a=rtpmap`, `a=rtcp-fb` and `a=fmtp` of each codec of `rtp`.
pub(super) fn push_codec_lines(md: &mut MediaDescription, rtp: &RtpParameters) {
    for c in &rtp.codecs {
        md.attributes.push(attr(
            "rtpmap",
            rtpmap_value(c.payload_type, &c.mime_type, c.clock_rate, c.channels),
        ));
        for fb in &c.rtcp_feedback {
            md.attributes
                .push(attr("rtcp-fb", rtcp_fb(c.payload_type, fb)));
        }
        let fmtp = match red_fmtp(rtp, c) {
            Some(red) => red,
            None => parameters_to_fmtp(&c.parameters),
        };
        if !fmtp.is_empty() {
            md.attributes
                .push(attr("fmtp", format!("{} {fmtp}", c.payload_type)));
        }
    }
}

/// The `a=msid` of a consumer's track and the `a=ssrc` lines of its streams, by which the
/// receiver demultiplexes them.
pub(super) fn push_stream_lines(
    md: &mut MediaDescription,
    rtp: &RtpParameters,
    stream_id: &str,
    track_id: &str,
) {
    md.attributes
        .push(attr("msid", format!("{stream_id} {track_id}")));
    let encoding = rtp.encodings.first();
    if let Some(ssrc) = encoding.and_then(|e| e.ssrc) {
        let cname = rtp.rtcp.cname.as_deref().unwrap_or(stream_id);
        // The consumer's RTX stream (RFC 4588 section 8.3: FID group, media SSRC
        // first), present when the daemon negotiated RTX for this consumer.
        let rtx = encoding.and_then(|e| e.rtx).map(|r| r.ssrc);
        let ssrcs: Vec<u32> = std::iter::once(ssrc).chain(rtx).collect();
        if let Some(rtx) = rtx {
            md.attributes
                .push(attr("ssrc-group", format!("FID {ssrc} {rtx}")));
        }
        for s in ssrcs {
            md.attributes
                .push(attr("ssrc", format!("{s} cname:{cname}")));
            md.attributes
                .push(attr("ssrc", format!("{s} msid:{stream_id} {track_id}")));
        }
    }
}

/// RED's fmtp (RFC 2198 section 5: the payload type of each block, `111/111`): the
/// m-line's Opus, which RED carries; None for other codecs.
fn red_fmtp(rtp: &RtpParameters, c: &RtpCodecParameters) -> Option<String> {
    if !c.mime_type.eq_ignore_ascii_case("audio/red") {
        return None;
    }
    let opus = rtp
        .codecs
        .iter()
        .find(|o| o.mime_type.eq_ignore_ascii_case("audio/opus"))?;
    Some(format!("{0}/{0}", opus.payload_type))
}

fn rtpmap_value(pt: u8, mime: &str, clock: u32, channels: Option<u8>) -> String {
    match channels {
        Some(ch) if ch > 1 => format!("{pt} {}/{clock}/{ch}", codec_name(mime)),
        _ => format!("{pt} {}/{clock}", codec_name(mime)),
    }
}

/// What the browser's answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvAnswer {
    /// For `transport.connect`.
    pub dtls: DtlsParameters,
    /// Mids of live m-lines the browser rejected (port 0).
    pub rejected: Vec<String>,
}

/// Reads the answer to an offer whose m-lines had `offered` mids (with whether each was
/// live).
pub fn read_recv_answer(
    answer: &Description,
    offered: &[(String, bool)],
) -> Result<RecvAnswer, SdpError> {
    if answer.media.len() != offered.len() {
        return Err(SdpError::Invalid(format!(
            "the answer has {} m-lines, the offer had {}",
            answer.media.len(),
            offered.len()
        )));
    }
    let mut rejected = Vec::new();
    let mut dtls = None;
    for (m, (mid, live)) in answer.media.iter().zip(offered) {
        if m.mid.as_deref() != Some(mid.as_str()) && m.port != 0 {
            return Err(SdpError::Invalid(format!(
                "m-line {} of the answer has mid {:?}, the offer's was {mid:?}",
                m.index,
                m.mid.as_deref().unwrap_or("")
            )));
        }
        if m.port == 0 {
            if *live {
                rejected.push(mid.clone());
            }
            continue;
        }
        if dtls.is_none() {
            dtls = Some(client_dtls(answer, m, false)?);
        }
    }
    let dtls = match dtls {
        Some(d) => d,
        // Every m-line rejected: the session-level fingerprint still identifies the peer.
        None => match answer.media.first() {
            Some(m) => client_dtls(answer, m, false)?,
            None => return Err(SdpError::Invalid("the answer has no m-line".into())),
        },
    };
    Ok(RecvAnswer { dtls, rejected })
}
