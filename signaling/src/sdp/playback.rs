//! The playback side (WHEP): a player offers receive-only m-lines and cannot renegotiate.
//! Each m-line we can serve is answered sendonly with the player's own payload types,
//! feedback and header-extension ids, which also become the `rtpCapabilities` of the
//! consumer shown in it: the daemon then writes the player's numbers (no mapping in
//! the SDP). An m-line we cannot serve (data channel, inactive) is rejected (port 0).

use super::answer::{accepted_feedback, client_dtls, offered_rtx};
use super::capabilities::{
    forwarded_codec, supported_summary, Negotiation, EXT_TRANSPORT_CC, FB_REMB, RECV_EXTENSIONS,
};
use super::offer::{push_codec_lines, push_stream_lines};
use super::parse::{fmtp_to_parameters, Description, Direction, MediaSection};
use super::{attr, flag, media_port, media_section, push_candidates, session, SdpError};
use sfu_control::params::{
    CodecParameters, DtlsParameters, MediaKind, RtcpParameters, RtpCapabilities,
    RtpCodecCapability, RtpCodecParameters, RtpHeaderExtensionCapability,
    RtpHeaderExtensionParameters, RtpParameters,
};
use sfu_control::responses::TransportCreated;

/// Most m-lines a player may offer (an audio and a video track, with room to spare).
pub const MAX_PLAY_LINES: usize = 4;

/// One m-line of a player's offer that we serve.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayLine {
    /// Its position in the offer.
    pub index: usize,
    pub mid: String,
    pub kind: MediaKind,
    /// What the answer shows: the offered codecs we forward (with their RTX codecs) and
    /// header extensions we write, under the player's numbers.
    pub answered: RtpParameters,
    /// The same, as `transport.consume` takes it.
    pub caps: RtpCapabilities,
}

/// A player's offer, read.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayOffer {
    pub lines: Vec<PlayLine>,
    /// The player's DTLS parameters, for `transport.connect`.
    pub dtls: DtlsParameters,
}

impl PlayOffer {
    /// The line at `mid`.
    pub fn line(&self, mid: &str) -> Option<&PlayLine> {
        self.lines.iter().find(|l| l.mid == mid)
    }
}

/// A consumer shown in an answered m-line.
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a> {
    pub mid: &'a str,
    pub rtp: &'a RtpParameters,
    pub stream_id: &'a str,
    pub track_id: &'a str,
}

/// Reads a player's offer: which m-lines we serve, with what.
pub fn read_play_offer(offer: &Description, policy: &Negotiation) -> Result<PlayOffer, SdpError> {
    if offer.media.is_empty() {
        return Err(SdpError::Invalid("the offer has no m-line".into()));
    }
    if offer.media.len() > MAX_PLAY_LINES {
        return Err(SdpError::Unsupported(format!(
            "at most {MAX_PLAY_LINES} m-lines can be played, the offer has {}",
            offer.media.len()
        )));
    }
    let mut lines = Vec::new();
    let mut dtls = None;
    for m in &offer.media {
        let where_ = format!("m-line {} ({})", m.index, m.media);
        let Some(kind) = m.kind() else {
            // A data channel, say: nothing to play there.
            continue;
        };
        if m.is_rejected() || m.direction == Direction::Inactive {
            continue;
        }
        let Some(mid) = m.mid.clone().filter(|s| !s.is_empty() && s.len() <= 32) else {
            return Err(SdpError::Invalid(format!("{where_} has no a=mid")));
        };
        if m.proto != "UDP/TLS/RTP/SAVPF" {
            return Err(SdpError::Unsupported(format!(
                "{where_}: protocol {} (UDP/TLS/RTP/SAVPF is required)",
                m.proto
            )));
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
        if m.direction == Direction::SendOnly {
            return Err(SdpError::Unsupported(format!(
                "{where_} is sendonly: a WHEP session only plays (publish with WHIP)"
            )));
        }
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
        lines.push(play_line(m, &mid, kind, policy, &where_)?);
    }
    let Some(dtls) = dtls else {
        return Err(SdpError::Invalid(
            "the offer has no audio or video m-line to play".into(),
        ));
    };
    Ok(PlayOffer { lines, dtls })
}

fn play_line(
    m: &MediaSection,
    mid: &str,
    kind: MediaKind,
    policy: &Negotiation,
    where_: &str,
) -> Result<PlayLine, SdpError> {
    let header_extensions: Vec<RtpHeaderExtensionParameters> = m
        .extmaps
        .iter()
        .filter(|e| {
            e.direction
                .as_deref()
                .is_none_or(|d| d == "sendrecv" || d == "recvonly")
        })
        .filter(|e| {
            RECV_EXTENSIONS
                .iter()
                .any(|(k, uri, _)| k.is_none_or(|k| k == kind) && e.uri == *uri)
        })
        .filter(|e| policy.bandwidth_feedback || e.uri != EXT_TRANSPORT_CC)
        .fold(Vec::new(), |mut out, e| {
            // One id per URI (a second extmap for a URI would be ambiguous).
            if !out
                .iter()
                .any(|x: &RtpHeaderExtensionParameters| x.uri == e.uri)
            {
                out.push(RtpHeaderExtensionParameters {
                    uri: e.uri.clone(),
                    id: e.id,
                    encrypt: false,
                    parameters: CodecParameters::new(),
                });
            }
            out
        });
    let transport_cc = header_extensions.iter().any(|e| e.uri == EXT_TRANSPORT_CC);
    let mut codecs = Vec::new();
    for c in m.codecs.iter().filter(|c| forwarded_codec(kind, c)) {
        let rtcp_feedback = accepted_feedback(kind, c, transport_cc, policy)
            .into_iter()
            // The daemon sends no REMB to subscribers.
            .filter(|fb| (fb.kind.as_str(), fb.parameter.as_str()) != FB_REMB)
            .collect();
        codecs.push(RtpCodecParameters {
            mime_type: c.mime(kind),
            payload_type: c.pt,
            clock_rate: c.clock_rate,
            channels: c.channels,
            parameters: fmtp_to_parameters(&c.fmtp),
            rtcp_feedback,
        });
        if let Some(rtx) = offered_rtx(m, c).filter(|_| kind == MediaKind::Video) {
            let mut parameters = CodecParameters::new();
            parameters.insert("apt".into(), c.pt.into());
            codecs.push(RtpCodecParameters {
                mime_type: rtx.mime(kind),
                payload_type: rtx.pt,
                clock_rate: rtx.clock_rate,
                channels: None,
                parameters,
                rtcp_feedback: Vec::new(),
            });
        }
    }
    if codecs.is_empty() {
        return Err(SdpError::NoCommonCodec(format!(
            "{where_} offers none of {}",
            supported_summary(kind)
        )));
    }
    let caps = RtpCapabilities {
        codecs: codecs
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
        header_extensions: header_extensions
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
    Ok(PlayLine {
        index: m.index,
        mid: mid.to_owned(),
        kind,
        answered: RtpParameters {
            mid: Some(mid.to_owned()),
            codecs,
            header_extensions,
            encodings: Vec::new(),
            rtcp: RtcpParameters {
                cname: None,
                reduced_size: m.rtcp_rsize,
                mux: true,
            },
        },
        caps,
    })
}

/// The answer to a player's `offer` on `transport`: the served m-lines sendonly, DTLS
/// passive, with the `a=ssrc` lines of the consumers already `shown` in them (a consumer
/// made later, when its publisher starts, sends on the m-line's payload types and the
/// player takes its unsignalled stream by payload type or MID); the others rejected.
pub fn build_play_answer(
    offer: &Description,
    play: &PlayOffer,
    transport: &TransportCreated,
    session_id: u64,
    shown: &[Shown<'_>],
) -> String {
    let mut sd = session(session_id, 1);
    let mut bundle = Vec::new();
    for m in &offer.media {
        let Some(line) = play.lines.iter().find(|l| l.index == m.index) else {
            let format = m
                .codecs
                .first()
                .map_or_else(|| "0".to_owned(), |c| c.pt.to_string());
            let mut md = media_section(&m.media, 0, vec![format], transport, "passive");
            md.media_name.protos = m.proto.split('/').map(str::to_owned).collect();
            md.attributes = m.mid.iter().map(|mid| attr("mid", mid)).collect();
            md.attributes.push(flag("inactive"));
            sd.media_descriptions.push(md);
            continue;
        };
        let formats = line
            .answered
            .codecs
            .iter()
            .map(|c| c.payload_type.to_string())
            .collect();
        let mut md = media_section(
            line.kind.as_str(),
            media_port(transport),
            formats,
            transport,
            "passive",
        );
        md.attributes.push(attr("mid", &line.mid));
        md.attributes.push(flag("sendonly"));
        md.attributes.push(flag("rtcp-mux"));
        if line.answered.rtcp.reduced_size {
            md.attributes.push(flag("rtcp-rsize"));
        }
        for e in &line.answered.header_extensions {
            md.attributes
                .push(attr("extmap", format!("{} {}", e.id, e.uri)));
        }
        push_codec_lines(&mut md, &line.answered);
        if let Some(s) = shown.iter().find(|s| s.mid == line.mid) {
            push_stream_lines(&mut md, s.rtp, s.stream_id, s.track_id);
        }
        push_candidates(&mut md, transport);
        sd.media_descriptions.push(md);
        bundle.push(line.mid.clone());
    }
    sd.attributes
        .push(attr("group", format!("BUNDLE {}", bundle.join(" "))));
    sd.attributes.push(attr("msid-semantic", " WMS *"));
    sd.marshal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::parse::parse;

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn the_players_payload_types_and_extension_ids_are_kept() {
        let desc = parse(&fixture("whep-firefox-recv-offer.sdp")).unwrap();
        let play = read_play_offer(&desc, &Negotiation::default()).unwrap();
        assert_eq!(play.lines.len(), 2);
        let audio = &play.lines[0];
        assert_eq!((audio.mid.as_str(), audio.kind), ("0", MediaKind::Audio));
        let pts: Vec<(String, u8)> = audio
            .caps
            .codecs
            .iter()
            .map(|c| (c.mime_type.clone(), c.preferred_payload_type))
            .collect();
        assert_eq!(pts, [("audio/opus".to_owned(), 109)]);
        let video = &play.lines[1];
        let pts: Vec<(String, u8)> = video
            .caps
            .codecs
            .iter()
            .map(|c| (c.mime_type.clone(), c.preferred_payload_type))
            .collect();
        // AV1, RED and ULPFEC are not forwarded; VP8 and VP9 keep Firefox's numbers.
        assert_eq!(
            pts,
            [
                ("video/VP8".to_owned(), 120),
                ("video/rtx".to_owned(), 124),
                ("video/VP9".to_owned(), 121),
                ("video/rtx".to_owned(), 125)
            ]
        );
        let twcc = video
            .caps
            .header_extensions
            .iter()
            .find(|e| e.uri == EXT_TRANSPORT_CC)
            .unwrap();
        assert_eq!(twcc.preferred_id, 7);
    }

    #[test]
    fn the_answer_is_sendonly_passive_and_shows_known_consumers() {
        let desc = parse(&fixture("whep-chromium-recv-offer.sdp")).unwrap();
        let play = read_play_offer(&desc, &Negotiation::default()).unwrap();
        let transport = crate::room::placeholder_transport();
        let mut rtp = play.lines[1].answered.clone();
        rtp.encodings = vec![sfu_control::params::RtpEncodingParameters {
            ssrc: Some(1234),
            ..Default::default()
        }];
        let shown = [Shown {
            mid: "1",
            rtp: &rtp,
            stream_id: "s",
            track_id: "t",
        }];
        let sdp = build_play_answer(&desc, &play, &transport, 1, &shown);
        let answer = parse(&sdp).unwrap();
        assert_eq!(answer.bundle, ["0", "1"]);
        assert!(answer
            .media
            .iter()
            .all(|m| m.direction == Direction::SendOnly));
        assert_eq!(answer.setup(&answer.media[0]), Some("passive"));
        assert!(answer.media[0].ssrcs.is_empty(), "no consumer yet: {sdp}");
        assert_eq!(answer.media[1].primary_ssrc(), Some(1234));
        assert_eq!(answer.media[1].codecs[0].name, "VP8");
        assert_eq!(answer.media[1].codecs[0].pt, 96);
    }

    #[test]
    fn offers_that_cannot_be_played_are_refused_with_a_reason() {
        let offer = fixture("whep-chromium-recv-offer.sdp");
        let policy = Negotiation::default();
        let sendonly = offer.replace("a=recvonly", "a=sendonly");
        let e = read_play_offer(&parse(&sendonly).unwrap(), &policy).unwrap_err();
        assert!(matches!(e, SdpError::Unsupported(_)), "{e}");
        let no_codec = offer
            .replace("opus/48000/2", "foo/48000/2")
            .replace("a=rtpmap:63 red/48000/2\r\n", "");
        let e = read_play_offer(&parse(&no_codec).unwrap(), &policy).unwrap_err();
        assert!(matches!(e, SdpError::NoCommonCodec(_)), "{e}");
        let inactive = offer.replace("a=recvonly", "a=inactive");
        let e = read_play_offer(&parse(&inactive).unwrap(), &policy).unwrap_err();
        assert!(matches!(e, SdpError::Invalid(_)), "{e}");
    }
}
