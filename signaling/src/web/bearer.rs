//! The bearer token of the operator endpoints (RFC 6750 §2.1: `Authorization: Bearer
//! <token>`). Only the SHA-256 digest of the expected token is kept, and a presented
//! token is compared by digest in constant time (`subtle`): the comparison takes as long
//! whatever the presented bytes and whatever their length, so timing tells an attacker
//! neither a matching prefix nor the token's length.

use axum::http::{header, HeaderMap};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The expected token, as its digest.
#[derive(Clone)]
pub struct BearerToken {
    digest: [u8; 32],
}

impl BearerToken {
    pub fn new(token: &str) -> Self {
        Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// Whether `headers` carry this token as their (single) bearer credential.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => credentials(v.as_bytes()).is_some_and(|c| self.matches(c)),
            // None, or several Authorization headers (ambiguous: refused).
            _ => false,
        }
    }

    /// Constant-time in the content and length of `presented` (one digest of it, then a
    /// fixed-length comparison).
    pub fn matches(&self, presented: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        digest.ct_eq(&self.digest).into()
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<hidden>)")
    }
}

/// The credentials of an `Authorization: Bearer <token>` value: the scheme name is
/// case-insensitive (RFC 9110 §11.1), separated from the token by spaces.
fn credentials(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer";
    let scheme = value.get(..SCHEME.len())?;
    let rest = value.get(SCHEME.len()..)?;
    if !scheme.eq_ignore_ascii_case(SCHEME) || !rest.starts_with(b" ") {
        return None;
    }
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn only_the_exact_token_matches() {
        let t = BearerToken::new("scrape-me");
        assert!(t.matches(b"scrape-me"));
        for wrong in [
            &b""[..],
            b"scrape-mE",
            b"scrape-m",
            b"scrape-me ",
            b"scrape-me-and-more",
            b"xcrape-me",
        ] {
            assert!(!t.matches(wrong), "{}", String::from_utf8_lossy(wrong));
        }
    }

    #[test]
    fn the_header_must_carry_it_as_a_bearer_credential() {
        let t = BearerToken::new("scrape-me");
        assert!(t.admits(&headers(&["Bearer scrape-me"])));
        assert!(t.admits(&headers(&["bearer scrape-me"])));
        assert!(t.admits(&headers(&["BEARER   scrape-me"])));
        for refused in [
            &[][..],
            &["scrape-me"],
            &["Bearerscrape-me"],
            &["Bearer"],
            &["Bearer "],
            &["Basic scrape-me"],
            &["Bearer other-one"],
            &["Bearer scrape-me", "Bearer scrape-me"],
        ] {
            assert!(!t.admits(&headers(refused)), "{refused:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_token() {
        let t = BearerToken::new("scrape-me");
        assert_eq!(format!("{t:?}"), "BearerToken(<hidden>)");
    }
}
