//! The ICE servers handed to the pages (`ice_servers` in the configuration), so that a
//! client behind a NAT or firewall that lets no media through relays via the operator's
//! TURN server. Each entry is either static (STUN, or TURN with a fixed username and
//! credential) or a TURN server with coturn's REST API credentials
//! (draft-uberti-behave-turn-rest-00, coturn's `use-auth-secret` /
//! `static-auth-secret`): time-limited, derived per participant from a secret shared with
//! the TURN server, never stored:
//! `username = "<expiry unix seconds>:<name>"`,
//! `credential = base64(HMAC-SHA1(secret, username))`.
//!
//! Plain functions of the configuration and the time: the WebSocket session mints them
//! at each join (a rejoin gets fresh ones).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize, Serializer};
use sha1::Sha1;

/// Credentials live this long unless `ttl` says otherwise (coturn's documentation uses a
/// day; a call that outlives them keeps its allocation, only new ones are refused).
pub const DEFAULT_TTL_SECS: u64 = 24 * 3600;

/// Most entries and URLs accepted (each is sent to every page).
const MAX_SERVERS: usize = 8;
const MAX_URLS: usize = 8;

/// One configured ICE server (`[[ice_servers]]` in the TOML file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IceServerConfig {
    /// `stun:`, `turn:` or `turns:` URLs (RFC 7064, RFC 7065), e.g.
    /// `"turn:turn.example.com:3478?transport=udp"`.
    pub urls: Vec<String>,
    /// Fixed TURN credentials...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "hidden"
    )]
    pub credential: Option<String>,
    /// ...or coturn's `static-auth-secret`, from which each participant's are derived.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "hidden"
    )]
    pub secret: Option<String>,
    /// Lifetime of derived credentials, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u64>,
}

fn hidden<S: Serializer>(_: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<hidden>")
}

/// One entry of a page's `RTCConfiguration.iceServers` (W3C WebRTC, `RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceServerConfig {
    /// Why the entry cannot work, for the configuration error.
    pub fn check(&self) -> Result<(), String> {
        if self.urls.is_empty() || self.urls.len() > MAX_URLS {
            return Err(format!("urls: 1 to {MAX_URLS} URLs"));
        }
        for url in &self.urls {
            let scheme = url.split(':').next().unwrap_or_default();
            if !matches!(scheme, "stun" | "stuns" | "turn" | "turns") || !url.contains(':') {
                return Err(format!(
                    "{url:?} is not a stun:, stuns:, turn: or turns: URL"
                ));
            }
        }
        let fixed = self.username.is_some() || self.credential.is_some();
        if self.secret.is_some() && fixed {
            return Err("secret derives username and credential: give one or the other".into());
        }
        if self.username.is_some() != self.credential.is_some() {
            return Err("username and credential go together".into());
        }
        if self.secret.as_deref() == Some("") {
            return Err("secret must not be empty".into());
        }
        if self.ttl.is_some() && self.secret.is_none() {
            return Err("ttl applies to credentials derived from a secret".into());
        }
        if self.ttl == Some(0) {
            return Err("ttl must be at least 1 second".into());
        }
        let turn = self.urls.iter().any(|u| u.starts_with("turn"));
        if turn && self.secret.is_none() && !fixed {
            return Err("a TURN server needs a secret, or a username and credential".into());
        }
        Ok(())
    }

    /// What a participant called `name` gets at `now_unix` (seconds since the epoch).
    pub fn for_participant(&self, name: &str, now_unix: u64) -> IceServer {
        let (username, credential) = match &self.secret {
            Some(secret) => {
                let expiry = now_unix.saturating_add(self.ttl.unwrap_or(DEFAULT_TTL_SECS));
                let (u, c) = rest_credentials(secret, name, expiry);
                (Some(u), Some(c))
            }
            None => (self.username.clone(), self.credential.clone()),
        };
        IceServer {
            urls: self.urls.clone(),
            username,
            credential,
        }
    }
}

/// Checks a whole `ice_servers` list.
pub fn check_all(servers: &[IceServerConfig]) -> Result<(), String> {
    if servers.len() > MAX_SERVERS {
        return Err(format!("at most {MAX_SERVERS} entries"));
    }
    for (i, s) in servers.iter().enumerate() {
        s.check().map_err(|e| format!("entry {}: {e}", i + 1))?;
    }
    Ok(())
}

/// coturn's REST API credentials for `name`, valid until `expiry` (unix seconds).
pub fn rest_credentials(secret: &str, name: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{name}");
    // HMAC accepts keys of any length: new_from_slice cannot fail for it.
    let credential = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(username.as_bytes());
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    (username, credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(secret: Option<&str>) -> IceServerConfig {
        IceServerConfig {
            urls: vec!["turn:turn.example.com:3478?transport=udp".into()],
            username: None,
            credential: None,
            secret: secret.map(str::to_owned),
            ttl: None,
        }
    }

    #[test]
    fn rest_credentials_match_an_independent_hmac_sha1() {
        // Python: base64.b64encode(hmac.new(b"north-sea", b"1700000000:ada",
        // hashlib.sha1).digest())
        assert_eq!(
            rest_credentials("north-sea", "ada", 1_700_000_000),
            (
                "1700000000:ada".to_owned(),
                "UnHh+AfGX3whs78Z2lI/vqSmfew=".to_owned()
            )
        );
    }

    #[test]
    fn derived_credentials_expire_after_the_ttl() {
        let mut cfg = turn(Some("north-sea"));
        let s = cfg.for_participant("ada", 1_700_000_000 - DEFAULT_TTL_SECS);
        assert_eq!(s.username.as_deref(), Some("1700000000:ada"));
        assert_eq!(
            s.credential.as_deref(),
            Some("UnHh+AfGX3whs78Z2lI/vqSmfew=")
        );
        cfg.ttl = Some(60);
        let s = cfg.for_participant("bob", 1000);
        assert_eq!(s.username.as_deref(), Some("1060:bob"));
    }

    #[test]
    fn bad_entries_are_refused_with_a_reason() {
        assert!(turn(Some("s")).check().is_ok());
        assert!(turn(None).check().unwrap_err().contains("needs a secret"));
        assert!(turn(Some("")).check().is_err());
        let mut both = turn(Some("s"));
        both.username = Some("u".into());
        both.credential = Some("c".into());
        assert!(both.check().unwrap_err().contains("one or the other"));
        let mut bad_url = turn(Some("s"));
        bad_url.urls = vec!["http://example.com".into()];
        assert!(bad_url.check().unwrap_err().contains("not a stun"));
        let stun = IceServerConfig {
            urls: vec!["stun:stun.example.com:3478".into()],
            ..turn(None)
        };
        assert!(stun.check().is_ok());
        assert_eq!(
            stun.for_participant("ada", 0),
            IceServer {
                urls: stun.urls.clone(),
                username: None,
                credential: None
            }
        );
    }
}
