//! The HTTP inputs of WHIP/WHEP read and checked before anything is held for them: the
//! media type, the body's size and encoding, the bearer token, `If-Match` and the
//! trickle-ICE fragment of a `PATCH`. Untrusted: every function here is total, and the
//! `signaling_whip` fuzz target drives them with any bytes.

use axum::http::{header, HeaderMap, StatusCode};

use crate::protocol::{ErrorCode, ProtocolError};

/// The offer's media type (RFC 9725 section 4.2).
pub const SDP: &str = "application/sdp";
/// A `PATCH` body's media type (RFC 8840 section 9).
pub const SDPFRAG: &str = "application/trickle-ice-sdpfrag";
/// Longest trickle-ICE fragment read: a few candidates are a few hundred bytes.
pub const MAX_SDPFRAG: usize = 16 * 1024;

/// A refusal: the status and the reason sent as the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub reason: String,
}

impl Refusal {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }
}

impl From<ProtocolError> for Refusal {
    /// The status that says what the room or the SDP layer refused.
    fn from(e: ProtocolError) -> Self {
        let status = match e.code {
            ErrorCode::BadSdp
            | ErrorCode::BadJson
            | ErrorCode::BadMessage
            | ErrorCode::UnknownType
            | ErrorCode::InvalidRoom
            | ErrorCode::InvalidName => StatusCode::BAD_REQUEST,
            // Well-formed, but nothing we can take (RFC 9110 section 15.5.21).
            ErrorCode::NoCommonCodec | ErrorCode::Unsupported => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::NameTaken | ErrorCode::OutOfOrder => StatusCode::CONFLICT,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RoomFull | ErrorCode::ServerError | ErrorCode::TransportFailed => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        Self::new(status, e.message)
    }
}

/// Whether the request's `Content-Type` is `expected` (parameters ignored, case-
/// insensitive as RFC 9110 section 8.3.1 says); 415 otherwise.
pub fn check_content_type(headers: &HeaderMap, expected: &str) -> Result<(), Refusal> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim());
    match given {
        Some(t) if t.eq_ignore_ascii_case(expected) => Ok(()),
        Some(t) => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Type {:?} is not {expected}",
                t.chars().take(64).collect::<String>()
            ),
        )),
        None => Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type {expected} is required"),
        )),
    }
}

/// A body as text: 413 past `max` bytes (checked by the reader before buffering more),
/// 400 if not UTF-8 or empty.
pub fn body_text(body: &[u8], max: usize) -> Result<&str, Refusal> {
    if body.len() > max {
        return Err(too_large(max));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "the body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "the body is empty"));
    }
    Ok(text)
}

/// The 413 of a body over `max` bytes.
pub fn too_large(max: usize) -> Refusal {
    Refusal::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than {max} bytes"),
    )
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 section 2.1), if exactly one
/// such header is there and it is text.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return None;
    };
    let v = v.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// What `If-Match` asks of a `PATCH` (RFC 9110 section 13.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    /// No `If-Match`.
    Absent,
    /// `*`: RFC 9725 section 4.3.2 marks an ICE restart with it.
    Any,
    /// One of the listed entity tags is the session's.
    Matches,
    /// None is: 412.
    Mismatch,
}

/// Reads `If-Match` against the session's entity tag (`etag`, quotes included).
pub fn if_match(headers: &HeaderMap, etag: &str) -> IfMatch {
    let mut any_header = false;
    for v in headers.get_all(header::IF_MATCH) {
        any_header = true;
        let Ok(v) = v.to_str() else {
            continue;
        };
        for tag in v.split(',').map(str::trim) {
            if tag == "*" {
                return IfMatch::Any;
            }
            // Weak tags never match under If-Match (strong comparison).
            if tag == etag {
                return IfMatch::Matches;
            }
        }
    }
    if any_header {
        IfMatch::Mismatch
    } else {
        IfMatch::Absent
    }
}

/// The ICE credentials a description or trickle-ICE fragment carries (the first of each;
/// RFC 8840 section 4.4: a fragment restarting ICE carries new ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceCredentials {
    pub ufrag: Option<String>,
    pub pwd: Option<String>,
}

/// Reads `a=ice-ufrag` and `a=ice-pwd` from SDP text; lines of other kinds (candidates,
/// `a=mid`, `m=`) are skipped. Values longer than 256 characters are cut (RFC 8839 allows
/// 256 at most).
pub fn ice_credentials(text: &str) -> IceCredentials {
    let mut out = IceCredentials::default();
    for line in text.lines().map(str::trim) {
        let cut = |v: &str| v.trim().chars().take(256).collect::<String>();
        if let Some(v) = line.strip_prefix("a=ice-ufrag:") {
            out.ufrag.get_or_insert_with(|| cut(v));
        } else if let Some(v) = line.strip_prefix("a=ice-pwd:") {
            out.pwd.get_or_insert_with(|| cut(v));
        }
    }
    out
}

/// What a `PATCH` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch {
    /// New candidates (or end-of-candidates) for the session's ICE: nothing to do for an
    /// ICE-lite server, which learns the client's addresses from its checks.
    Trickle,
    /// New ICE credentials: an ICE restart.
    Restart,
}

/// Classifies a `PATCH` body against the credentials of the session's offer
/// (`offered`). `If-Match: *` marks a restart (RFC 9725 section 4.3.2); so do credentials
/// other than the offer's.
pub fn classify_patch(fragment: &str, if_match: IfMatch, offered: &IceCredentials) -> Patch {
    let frag = ice_credentials(fragment);
    let changed = frag
        .ufrag
        .as_ref()
        .is_some_and(|u| Some(u) != offered.ufrag.as_ref())
        || frag
            .pwd
            .as_ref()
            .is_some_and(|p| Some(p) != offered.pwd.as_ref());
    if if_match == IfMatch::Any || changed {
        Patch::Restart
    } else {
        Patch::Trickle
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(k.clone(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn content_types() {
        let ok = headers(&[(header::CONTENT_TYPE, "Application/SDP; charset=utf-8")]);
        assert!(check_content_type(&ok, SDP).is_ok());
        let json = headers(&[(header::CONTENT_TYPE, "application/json")]);
        let e = check_content_type(&json, SDP).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(e.reason.contains("application/json"), "{e:?}");
        let e = check_content_type(&HeaderMap::new(), SDP).unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn bodies() {
        assert_eq!(body_text(b"v=0", 10), Ok("v=0"));
        assert_eq!(
            body_text(b"v=0", 2).unwrap_err().status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            body_text(&[0xff, 0xfe], 10).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            body_text(b" \r\n", 10).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn bearer_tokens() {
        let h = headers(&[(header::AUTHORIZATION, "bearer  v1.abc.def ")]);
        assert_eq!(bearer(&h), Some("v1.abc.def"));
        assert_eq!(
            bearer(&headers(&[(header::AUTHORIZATION, "Basic eA==")])),
            None
        );
        let two = headers(&[
            (header::AUTHORIZATION, "Bearer a"),
            (header::AUTHORIZATION, "Bearer b"),
        ]);
        assert_eq!(bearer(&two), None);
    }

    #[test]
    fn if_match_is_compared_strongly() {
        let etag = "\"abc\"";
        assert_eq!(if_match(&HeaderMap::new(), etag), IfMatch::Absent);
        assert_eq!(
            if_match(&headers(&[(header::IF_MATCH, "\"x\", \"abc\"")]), etag),
            IfMatch::Matches
        );
        assert_eq!(
            if_match(&headers(&[(header::IF_MATCH, "W/\"abc\"")]), etag),
            IfMatch::Mismatch
        );
        assert_eq!(
            if_match(&headers(&[(header::IF_MATCH, "*")]), etag),
            IfMatch::Any
        );
    }

    #[test]
    fn a_patch_with_new_credentials_or_if_match_star_is_a_restart() {
        let offered =
            ice_credentials("v=0\r\na=ice-ufrag:abcd\r\na=ice-pwd:secretsecretsecretsecret\r\n");
        assert_eq!(offered.ufrag.as_deref(), Some("abcd"));
        let trickle = "a=ice-ufrag:abcd\r\na=ice-pwd:secretsecretsecretsecret\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host\r\n";
        assert_eq!(
            classify_patch(trickle, IfMatch::Matches, &offered),
            Patch::Trickle
        );
        assert_eq!(
            classify_patch("a=end-of-candidates\r\n", IfMatch::Absent, &offered),
            Patch::Trickle
        );
        let restart = "a=ice-ufrag:wxyz\r\na=ice-pwd:newsecretnewsecretnewsec\r\n";
        assert_eq!(
            classify_patch(restart, IfMatch::Matches, &offered),
            Patch::Restart
        );
        assert_eq!(
            classify_patch(trickle, IfMatch::Any, &offered),
            Patch::Restart
        );
    }

    #[test]
    fn errors_map_to_statuses() {
        let s = |code| Refusal::from(ProtocolError::new(code, "x")).status;
        assert_eq!(s(ErrorCode::BadSdp), StatusCode::BAD_REQUEST);
        assert_eq!(
            s(ErrorCode::NoCommonCodec),
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(s(ErrorCode::Unauthorized), StatusCode::UNAUTHORIZED);
        assert_eq!(s(ErrorCode::RoomFull), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(s(ErrorCode::NameTaken), StatusCode::CONFLICT);
    }
}
