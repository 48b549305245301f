//! `signaling_sdp`: one SDP description from a browser, read as a publisher's offer
//! (send side) and as a subscriber's answer (receive side).
//!
//! Input: `[flags][SDP text]`, the text lossily decoded as UTF-8 (a WebSocket text frame
//! is valid UTF-8). The flags pick the server configuration and transport:
//! [`SDP_VP9`] / [`SDP_H264`] (bits 0-1: `--video-codec`), [`SDP_NO_FEEDBACK`]
//! (`--no-bandwidth-feedback`), [`SDP_IPV6`] (the worker's address family) and
//! [`SDP_FIXED_MIDS`] (which offer the text answers, see [`signaling_sdp`]).

use std::collections::BTreeMap;
use std::io::Cursor;

use crate::config::VideoCodec;
use crate::sdp::answer::{answer_send_offer, SendAnswer};
use crate::sdp::capabilities::Negotiation;
use crate::sdp::offer::read_recv_answer;
use crate::sdp::parse::{parse, Description};
use crate::sdp::simulcast::EncodingHint;
use crate::sdp::SdpError;

/// `--video-codec vp9` (bits 0-1 = 1).
pub const SDP_VP9: u8 = 1;
/// `--video-codec h264` (bits 0-1 = 2; 3 is VP8 like 0).
pub const SDP_H264: u8 = 2;
/// `--no-bandwidth-feedback`.
pub const SDP_NO_FEEDBACK: u8 = 4;
/// The worker's candidate is IPv6.
pub const SDP_IPV6: u8 = 8;
/// Read the text as the answer to an offer of mids `0` and `1` (both live) instead of an
/// offer of the text's own mids.
pub const SDP_FIXED_MIDS: u8 = 16;

/// The `signaling_sdp` target. The send side runs as the room does (`on_offer`); the
/// receive side answers either an offer of the description's own mids, so that the
/// mid check passes and the DTLS and rejection rules are reached, or ([`SDP_FIXED_MIDS`])
/// the offer of a two-track call.
pub fn signaling_sdp(data: &[u8]) {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let Ok(desc) = parse(&String::from_utf8_lossy(text)) else {
        return;
    };
    let policy = Negotiation {
        video_codec: match flags & 3 {
            SDP_VP9 => VideoCodec::Vp9,
            SDP_H264 => VideoCodec::H264,
            _ => VideoCodec::Vp8,
        },
        bandwidth_feedback: flags & SDP_NO_FEEDBACK == 0,
    };
    let _ = answer_offer(&desc, &policy, flags & SDP_IPV6 != 0, &BTreeMap::new());

    let offered: Vec<(String, bool)> = if flags & SDP_FIXED_MIDS != 0 {
        vec![("0".into(), true), ("1".into(), true)]
    } else {
        desc.media
            .iter()
            .map(|m| (m.mid.clone().unwrap_or_default(), true))
            .collect()
    };
    if let Ok(answer) = read_recv_answer(&desc, &offered) {
        assert!(
            !answer.dtls.fingerprints.is_empty(),
            "connect without a fingerprint"
        );
        for mid in &answer.rejected {
            assert!(
                offered.iter().any(|(m, live)| m == mid && *live),
                "rejected mid {mid:?} was not offered live"
            );
        }
    }
}

/// The room's handling of a publisher's offer (room/actor/publish.rs): checked against a
/// placeholder transport before a real one is created, then answered on the real one.
/// Both must give the same verdict (else a bad offer would cost a daemon transport, or a
/// good one be refused), and a successful answer must be a valid answer to the offer.
pub(super) fn answer_offer(
    offer: &Description,
    policy: &Negotiation,
    ipv6: bool,
    hints: &BTreeMap<String, Vec<EncodingHint>>,
) -> Result<SendAnswer, SdpError> {
    // Like publish.rs's placeholder: no fingerprint yet.
    let mut placeholder = super::transport(false);
    placeholder.dtls_parameters.fingerprints.clear();
    let checked = answer_send_offer(offer, &placeholder, policy, 0, hints);
    let answered = answer_send_offer(
        offer,
        &super::transport(ipv6),
        policy,
        u32::MAX.into(),
        hints,
    );
    assert_eq!(
        checked.as_ref().err(),
        answered.as_ref().err(),
        "the placeholder and the real transport disagree"
    );
    let answer = answered?;
    check_answer(offer, &answer);
    Ok(answer)
}

/// Our answer parses (with the `sdp` crate and with our own parser), answers every
/// m-line of the offer in order, and has one producer per accepted m-line, sending the
/// codec its m-line names first.
fn check_answer(offer: &Description, answer: &SendAnswer) {
    let text = &answer.sdp;
    if let Err(e) = ::sdp::SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes())) {
        panic!("the sdp crate cannot read our answer ({e}):\n{text}");
    }
    let ours = parse(text).unwrap_or_else(|e| panic!("we cannot read our answer ({e}):\n{text}"));
    let mids = |d: &Description| -> Vec<Option<String>> {
        d.media.iter().map(|m| m.mid.clone()).collect()
    };
    assert_eq!(mids(&ours), mids(offer), "answer m-lines:\n{text}");
    let accepted: Vec<_> = ours.media.iter().filter(|m| m.port != 0).collect();
    assert_eq!(accepted.len(), answer.producers.len(), "producers:\n{text}");
    for (m, p) in accepted.iter().zip(&answer.producers) {
        let rtp = &p.rtp_parameters;
        assert_eq!(m.mid, rtp.mid, "producer mid:\n{text}");
        assert_eq!(
            m.codecs.first().map(|c| c.pt),
            rtp.codecs.first().map(|c| c.payload_type),
            "producer codec:\n{text}"
        );
    }
}
