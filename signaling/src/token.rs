//! Join tokens: `v1.<payload>.<mac>`, both parts base64url without padding. The payload is
//! JSON `{"room": .., "name": .., "exp": <unix seconds>}`; the MAC is HMAC-SHA256 over the
//! literal text `v1.<payload>` with the server's `--auth-secret`, so the signed bytes are
//! exactly the bytes received (no re-serialisation ambiguity).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "v1";
/// Tokens longer than this are refused unparsed (room and name are short).
const MAX_TOKEN_LEN: usize = 1024;

/// What a token grants: joining `room` as `name` until `exp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    pub room: String,
    pub name: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token was refused. The text goes to the client as is: it says what is wrong
/// without revealing anything about the secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("this server requires a token to join (add ?token=... to the room link)")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is wrong")]
    BadSignature,
    #[error("the token expired")]
    Expired,
    #[error("the token is for another room or name")]
    WrongSubject,
}

fn mac(secret: &[u8], signed: &str) -> HmacSha256 {
    // HMAC accepts keys of any length; new_from_slice only fails for fixed-size MACs.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    m.update(signed.as_bytes());
    m
}

/// Mints a token for `claims`.
pub fn mint(secret: &[u8], claims: &Claims) -> String {
    // Serialising a struct of strings and an integer cannot fail.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(json));
    let tag = mac(secret, &signed).finalize().into_bytes();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Checks `token` against the secret, the clock (`now`, Unix seconds) and the room and
/// name the client asks for.
pub fn verify(
    secret: &[u8],
    token: Option<&str>,
    room: &str,
    name: &str,
    now: u64,
) -> Result<Claims, TokenError> {
    let claims = open(secret, token, now)?;
    if claims.room != room || claims.name != name {
        return Err(TokenError::WrongSubject);
    }
    Ok(claims)
}

/// Checks `token` for `room` whatever name it grants, and returns its claims: a WHIP
/// client (OBS) sends only the token, which then names the participant.
pub fn verify_room(
    secret: &[u8],
    token: Option<&str>,
    room: &str,
    now: u64,
) -> Result<Claims, TokenError> {
    let claims = open(secret, token, now)?;
    if claims.room != room {
        return Err(TokenError::WrongSubject);
    }
    Ok(claims)
}

/// The claims of a token with a good signature that has not expired.
fn open(secret: &[u8], token: Option<&str>, now: u64) -> Result<Claims, TokenError> {
    let token = token.filter(|t| !t.is_empty()).ok_or(TokenError::Missing)?;
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let (signed, tag_b64) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (version, payload_b64) = signed.split_once('.').ok_or(TokenError::Malformed)?;
    if version != VERSION {
        return Err(TokenError::Malformed);
    }
    let tag = URL_SAFE_NO_PAD
        .decode(tag_b64)
        .map_err(|_| TokenError::Malformed)?;
    // Constant-time comparison (hmac's verify_slice) before looking at the payload.
    mac(secret, signed)
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            room: "standup".into(),
            name: "ada".into(),
            exp,
        }
    }

    #[test]
    fn a_minted_token_verifies() {
        let t = mint(b"s3cret", &claims(2000));
        assert_eq!(
            verify(b"s3cret", Some(&t), "standup", "ada", 1000),
            Ok(claims(2000))
        );
    }

    #[test]
    fn refusals() {
        let t = mint(b"s3cret", &claims(2000));
        let v = |secret: &[u8], tok: Option<&str>, room, name, now| {
            verify(secret, tok, room, name, now).unwrap_err()
        };
        assert_eq!(
            v(b"s3cret", None, "standup", "ada", 1000),
            TokenError::Missing
        );
        assert_eq!(
            v(b"s3cret", Some(""), "standup", "ada", 1000),
            TokenError::Missing
        );
        assert_eq!(
            v(b"other", Some(&t), "standup", "ada", 1000),
            TokenError::BadSignature
        );
        assert_eq!(
            v(b"s3cret", Some(&t), "standup", "ada", 2000),
            TokenError::Expired
        );
        assert_eq!(
            v(b"s3cret", Some(&t), "retro", "ada", 1000),
            TokenError::WrongSubject
        );
        assert_eq!(
            v(b"s3cret", Some(&t), "standup", "bob", 1000),
            TokenError::WrongSubject
        );
        for junk in ["x", "v1.a", "v2.a.b", "v1..", "v1.!!.??", &"a".repeat(5000)] {
            assert!(
                verify(b"s3cret", Some(junk), "standup", "ada", 0).is_err(),
                "{junk}"
            );
        }
        // A payload swapped in under a valid-looking tag is refused by the MAC.
        let other = mint(
            b"s3cret",
            &Claims {
                room: "retro".into(),
                ..claims(2000)
            },
        );
        let (_, tag) = t.rsplit_once('.').unwrap();
        let (signed_other, _) = other.rsplit_once('.').unwrap();
        let forged = format!("{signed_other}.{tag}");
        assert_eq!(
            v(b"s3cret", Some(&forged), "retro", "ada", 1000),
            TokenError::BadSignature
        );
    }
}
