//! `signaling_whip`: one WHIP or WHEP request's untrusted parts, read as `POST
//! /whip/<room>` and `POST /whep/<room>/<participant>` read them, and as `PATCH` of a
//! session reads them (`crate::whip::request`).
//!
//! Input: frames ([`super::push_frame`]) `Content-Type`, `Authorization`, `If-Match`,
//! body, the session's original offer and the `<participant>` of a WHEP path. Header
//! frames that are no valid header value are left out, as hyper would refuse them.

use std::collections::BTreeMap;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

use super::frames;
use super::sdp::answer_offer;
use crate::protocol::ProtocolError;
use crate::sdp::capabilities::Negotiation;
use crate::sdp::parse::{parse, Description, Direction};
use crate::sdp::playback::{build_play_answer, read_play_offer, PlayOffer};
use crate::token;
use crate::whip::request::{self, IfMatch, Patch, Refusal};

/// The session's entity tag the `If-Match` frame is compared with.
pub const WHIP_ETAG: &str = "\"0123456789abcdef\"";
/// The `auth_secret` the bearer token is checked against.
pub const WHIP_SECRET: &[u8] = b"fuzz secret";
/// The largest offer the harness reads (the server's is `max_message`).
const MAX_OFFER: usize = 8 * 1024;

/// An offer is refused as a client error: 400, or 422 for what we cannot take.
fn check_refusal(e: ProtocolError) {
    let status = Refusal::from(e).status;
    assert!(
        matches!(
            status,
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY
        ),
        "offer refused with {status}"
    );
}

/// A player's answer parses, has the offer's m-lines in order, and serves each line
/// read (sendonly, the line's mid, in BUNDLE) with the player's own payload types.
fn check_play_answer(offer: &Description, play: &PlayOffer) {
    let sdp = build_play_answer(offer, play, &super::transport(false), 1, &[]);
    let answer = match parse(&sdp) {
        Ok(a) => a,
        Err(e) => panic!("our WHEP answer does not parse: {e}\n{sdp}"),
    };
    assert_eq!(answer.media.len(), offer.media.len(), "{sdp}");
    for line in &play.lines {
        let m = &answer.media[line.index];
        assert_eq!(m.mid.as_deref(), Some(line.mid.as_str()), "{sdp}");
        assert_eq!(m.direction, Direction::SendOnly, "{sdp}");
        assert!(answer.bundle.contains(&line.mid), "{sdp}");
        let offered = &offer.media[line.index];
        for c in &line.caps.codecs {
            assert!(
                offered
                    .codecs
                    .iter()
                    .any(|o| o.pt == c.preferred_payload_type),
                "payload type {} was not offered",
                c.preferred_payload_type
            );
        }
    }
}

/// The `signaling_whip` target: every check gives an answer of the statuses
/// docs/PROTOCOL.md lists for it, and a restart is always told apart from trickle when
/// `If-Match: *` says so.
pub fn signaling_whip(data: &[u8]) {
    let mut parts = frames(data);
    let mut headers = HeaderMap::new();
    for name in [
        header::CONTENT_TYPE,
        header::AUTHORIZATION,
        header::IF_MATCH,
    ] {
        if let Some(v) = parts.next().and_then(|b| HeaderValue::from_bytes(b).ok()) {
            headers.insert(name, v);
        }
    }
    let body = parts.next().unwrap_or_default();
    let offered = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let participant = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let _ = crate::names::validate_name(&participant);

    for media_type in [request::SDP, request::SDPFRAG] {
        if let Err(r) = request::check_content_type(&headers, media_type) {
            assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{r:?}");
        }
    }
    let bearer = request::bearer(&headers);
    if let Ok(claims) = token::verify_room(WHIP_SECRET, bearer, "room", 0) {
        assert_eq!(claims.room, "room");
    }

    // POST: the offer, refused as the handler refuses it.
    match request::body_text(body, MAX_OFFER) {
        Ok(text) => {
            assert!(text.len() <= MAX_OFFER);
            let verdict = parse(text).map_err(ProtocolError::from).and_then(|desc| {
                answer_offer(&desc, &Negotiation::default(), false, &BTreeMap::new())
                    .map_err(ProtocolError::from)
            });
            if let Err(e) = verdict {
                check_refusal(e);
            }
            // WHEP: the same body as a player's offer.
            let played = parse(text).and_then(|desc| {
                let play = read_play_offer(&desc, &Negotiation::default())?;
                Ok((desc, play))
            });
            match played {
                Ok((desc, play)) => check_play_answer(&desc, &play),
                Err(e) => check_refusal(e.into()),
            }
        }
        Err(r) => assert!(
            matches!(
                r.status,
                StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE
            ),
            "{r:?}"
        ),
    }

    // PATCH: the trickle-ICE fragment against the session's offer.
    let if_match = request::if_match(&headers, WHIP_ETAG);
    let offered = request::ice_credentials(&offered);
    for v in [&offered.ufrag, &offered.pwd].into_iter().flatten() {
        assert!(v.chars().count() <= 256);
    }
    if let Ok(fragment) = request::body_text(body, request::MAX_SDPFRAG) {
        let patch = request::classify_patch(fragment, if_match, &offered);
        if if_match == IfMatch::Any {
            assert_eq!(patch, Patch::Restart);
        }
    }
}
