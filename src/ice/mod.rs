//! Sans-IO ICE-lite responder for one WebRTC transport.
//!
//! We are a lite agent (RFC 8445 section 2.5): we gather only host candidates, never send
//! connectivity checks and are always controlled (section 6.1.1: a full peer takes the
//! controlling role). All we do is answer the browser's Binding requests, learn the
//! nominated tuple from USE-CANDIDATE (section 7.3.2) and track consent freshness
//! (RFC 7675) from the requests the browser keeps sending.
//!
//! Nothing here reads the clock or touches a socket: callers pass `now` and send what
//! `handle_stun` writes into `out`.
//!
//! Deliberately left out:
//! - Error responses other than 487 (400/401/420 of RFC 5389 section 10.1.2, 7.3.1): an
//!   invalid request is returned as a [`StunError`] for the caller to count and drop; that
//!   also keeps us from being a reflector for unauthenticated traffic.
//! - Unknown comprehension-required attributes are ignored rather than answered with 420.
//! - The remote part of USERNAME is not checked against the remote ufrag from signaling;
//!   MESSAGE-INTEGRITY with our password already proves the peer saw our SDP.

mod wire;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;
use stun::agent::TransactionId;
use stun::error_code::{ErrorCodeAttribute, CODE_ROLE_CONFLICT};
use stun::fingerprint::{fingerprint_value, FINGERPRINT};
use stun::integrity::MessageIntegrity;
use stun::message::{Message, Setter, BINDING_ERROR, BINDING_SUCCESS};
use stun::xoraddr::XorMappedAddress;

use self::wire::Frame;

/// RFC 7675 section 5.1: consent expires 30 s after the last authenticated check.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Length of generated ufrags. RFC 8839 section 5.4 asks for at least 4 characters and
/// RFC 8445 section 5.3 for at least 24 bits of randomness; 16 ice-chars give 96.
pub const UFRAG_LEN: usize = 16;
/// Length of generated passwords. RFC 8839 section 5.4 asks for at least 22 characters and
/// RFC 8445 section 5.3 for at least 128 bits; 32 ice-chars give 192.
pub const PWD_LEN: usize = 32;

/// RFC 8839 section 5.4: ice-char = ALPHA / DIGIT / "+" / "/". 64 symbols, 6 bits each.
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// RFC 5389 section 15.4: HMAC-SHA1 output.
const MESSAGE_INTEGRITY_LEN: usize = 20;

/// Local ICE credentials (a=ice-ufrag / a=ice-pwd, RFC 8839 section 5.4).
#[derive(Clone, PartialEq, Eq)]
pub struct IceCredentials {
    pub ufrag: String,
    pub pwd: String,
}

impl IceCredentials {
    /// Fresh random credentials from the caller's RNG (the worker's, seeded from OS
    /// entropy by the shell; seeded deterministically in tests and fuzzing). The
    /// password is a secret: the RNG must be cryptographically secure outside tests.
    pub fn generate<R: Rng + ?Sized>(rng: &mut R) -> Self {
        Self {
            ufrag: random_ice_chars(rng, UFRAG_LEN),
            pwd: random_ice_chars(rng, PWD_LEN),
        }
    }
}

// The password is the MESSAGE-INTEGRITY key: keep it out of logs.
impl fmt::Debug for IceCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceCredentials")
            .field("ufrag", &self.ufrag)
            .field("pwd", &"<redacted>")
            .finish()
    }
}

fn random_ice_chars<R: Rng + ?Sized>(rng: &mut R, len: usize) -> String {
    (0..len)
        .map(|_| char::from(ICE_CHARS[rng.gen_range(0..ICE_CHARS.len())]))
        .collect()
}

/// Cheap, allocation-free: the local ufrag (before ':') of a STUN message's USERNAME
/// attribute, for a hash lookup that picks the transport before any full parse. `None` for
/// anything that is not a well-formed-enough STUN message (bad header, attributes out of
/// bounds, no USERNAME before MESSAGE-INTEGRITY, no ':', empty or non-UTF-8 local part).
///
/// Nothing is authenticated here: the transport it picks must still run
/// [`IceLite::handle_stun`].
pub fn local_ufrag_of(datagram: &[u8]) -> Option<&str> {
    wire::local_ufrag_of(datagram)
}

/// Connectivity of the transport as seen by the lite agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IceState {
    /// No nominated tuple yet.
    #[default]
    New,
    /// A tuple is nominated and consent is fresh.
    Connected,
    /// Consent expired (RFC 7675 section 5.1); a new nomination brings us back.
    Disconnected,
}

/// Changes the owner of the transport must react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IceEvent {
    StateChanged(IceState),
    /// Media now goes to this address (first nomination or the client moved).
    SelectedTupleChanged(SocketAddr),
}

/// Why a datagram was dropped. Callers count by variant, so keep them specific.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StunError {
    #[error("malformed STUN message")]
    Malformed,
    #[error("STUN message is not a Binding request")]
    NotBindingRequest,
    #[error("Binding request without USERNAME")]
    MissingUsername,
    #[error("USERNAME is not <local ufrag>:<remote ufrag>")]
    WrongUfrag,
    #[error("Binding request without MESSAGE-INTEGRITY")]
    MissingIntegrity,
    #[error("MESSAGE-INTEGRITY does not verify with the local password")]
    BadIntegrity,
    #[error("Binding request without FINGERPRINT")]
    MissingFingerprint,
    #[error("FINGERPRINT does not match")]
    BadFingerprint,
    #[error("could not encode the STUN response")]
    Encode,
}

impl StunError {
    /// Stable snake_case name, e.g. for a metrics label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotBindingRequest => "not_binding_request",
            Self::MissingUsername => "missing_username",
            Self::WrongUfrag => "wrong_ufrag",
            Self::MissingIntegrity => "missing_integrity",
            Self::BadIntegrity => "bad_integrity",
            Self::MissingFingerprint => "missing_fingerprint",
            Self::BadFingerprint => "bad_fingerprint",
            Self::Encode => "encode",
        }
    }
}

/// What an authenticated Binding request asks of us.
#[derive(Debug, Clone, Copy)]
struct CheckedRequest {
    transaction_id: [u8; 12],
    /// RFC 8445 sections 7.1.2 and 7.3.2.
    use_candidate: bool,
    /// ICE-CONTROLLED present: the peer thinks it is controlled too.
    role_conflict: bool,
}

/// ICE-lite responder state for one transport.
pub struct IceLite {
    local: IceCredentials,
    /// Short-term credential key (RFC 5389 section 15.4: the SASLprep'd password; ice-chars
    /// are plain ASCII so SASLprep is the identity).
    integrity: MessageIntegrity,
    state: IceState,
    selected: Option<SocketAddr>,
    /// Last authenticated check from the selected tuple; meaningful while Connected.
    consent_at: Option<Instant>,
    events: VecDeque<IceEvent>,
}

impl fmt::Debug for IceLite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceLite")
            .field("local", &self.local)
            .field("state", &self.state)
            .field("selected", &self.selected)
            .field("consent_at", &self.consent_at)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl IceLite {
    pub fn new(local: IceCredentials) -> Self {
        let integrity = MessageIntegrity::new_short_term_integrity(local.pwd.clone());
        Self {
            local,
            integrity,
            state: IceState::New,
            selected: None,
            consent_at: None,
            events: VecDeque::new(),
        }
    }

    pub fn local_credentials(&self) -> &IceCredentials {
        &self.local
    }

    /// Handles one STUN datagram from `from`. On a valid Binding request writes the full
    /// response into `out` (cleared first) and returns `Ok(true)` if `out` must be sent to
    /// `from`. Binding indications and responses are ignored with `Ok(false)`: they are NOT
    /// authenticated, so only `Ok(true)` proves `from` holds our password (a 487 answer
    /// included). On `Err` `out` is empty and nothing changed beyond applying a consent
    /// expiry already due at `now` (as [`Self::handle_timeout`] would).
    ///
    /// # Errors
    /// Any [`StunError`]: the datagram is to be dropped, without a response.
    pub fn handle_stun(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool, StunError> {
        out.clear();
        // Apply an expiry the caller has not polled for yet, so a late non-nominating check
        // cannot quietly revive consent that already lapsed (RFC 7675 section 5.1).
        self.handle_timeout(now);

        let frame = Frame::parse(datagram).ok_or(StunError::Malformed)?;
        match frame.msg_type {
            wire::BINDING_REQUEST => {}
            // RFC 8445 section 11: indications are keepalives that need no answer. A lite
            // agent sends no requests, so responses are stray or spoofed: nothing to do.
            wire::BINDING_INDICATION | wire::BINDING_SUCCESS | wire::BINDING_ERROR => {
                return Ok(false)
            }
            _ => return Err(StunError::NotBindingRequest),
        }
        let request = self.check_request(&frame, datagram)?;

        if request.role_conflict {
            // Both sides claim controlled. RFC 8445 section 7.3.1.1 (written for full agents)
            // resolves that by tie-breaker; a lite agent can never take the controlling role
            // (section 6.1.1), so it always answers 487, making the full peer switch, and
            // otherwise ignores the request.
            self.write_response(request.transaction_id, from, true, out)?;
            return Ok(true);
        }

        // RFC 8445 section 7.3 / RFC 5389 section 10.1.3: success response mirroring the
        // source transport address.
        self.write_response(request.transaction_id, from, false, out)?;
        self.on_valid_check(now, from, request.use_candidate);
        Ok(true)
    }

    /// The nominated tuple media should go to; kept after consent expiry so a renomination
    /// from the same address does not report a tuple change.
    pub fn selected(&self) -> Option<SocketAddr> {
        self.selected
    }

    pub fn state(&self) -> IceState {
        self.state
    }

    pub fn poll_event(&mut self) -> Option<IceEvent> {
        self.events.pop_front()
    }

    /// When consent expires unless refreshed; `None` while not Connected.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            IceState::Connected => self.consent_at?.checked_add(CONSENT_TIMEOUT),
            IceState::New | IceState::Disconnected => None,
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(deadline) = self.poll_timeout() {
            if now >= deadline {
                self.set_state(IceState::Disconnected);
            }
        }
    }

    /// Authenticates a Binding request per RFC 8445 section 7.3 / RFC 5389 section 10.1.2.
    fn check_request(
        &self,
        frame: &Frame<'_>,
        datagram: &[u8],
    ) -> Result<CheckedRequest, StunError> {
        let mut username = None;
        let mut integrity = None;
        let mut fingerprint = None;
        let mut use_candidate = false;
        let mut role_conflict = false;

        for attr in frame.attrs() {
            if fingerprint.is_some() {
                // RFC 5389 section 15.5: FINGERPRINT MUST be the last attribute.
                return Err(StunError::Malformed);
            }
            match attr.typ {
                wire::ATTR_FINGERPRINT => fingerprint = Some(attr),
                // RFC 5389 section 15.4: everything after MESSAGE-INTEGRITY but FINGERPRINT is
                // unauthenticated and MUST be ignored (e.g. a USE-CANDIDATE appended there).
                _ if integrity.is_some() => {}
                wire::ATTR_MESSAGE_INTEGRITY => integrity = Some(attr),
                // RFC 5389 section 15: only the first occurrence of an attribute counts.
                wire::ATTR_USERNAME => {
                    username.get_or_insert(attr.value);
                }
                // Fixed-size ICE attributes (RFC 8445 section 7.1); PRIORITY only matters for
                // peer-reflexive candidates, which a lite agent does not learn.
                wire::ATTR_PRIORITY => expect_len(attr.value, 4)?,
                wire::ATTR_USE_CANDIDATE => {
                    expect_len(attr.value, 0)?;
                    use_candidate = true;
                }
                wire::ATTR_ICE_CONTROLLED => {
                    expect_len(attr.value, 8)?;
                    role_conflict = true;
                }
                wire::ATTR_ICE_CONTROLLING => expect_len(attr.value, 8)?,
                // Browsers add comprehension-optional extras (GOOG-NETWORK-INFO, ...).
                _ => {}
            }
        }

        // FINGERPRINT first: it is the cheap check that this is STUN at all (RFC 5389
        // section 8) and RFC 8445 section 7 makes it mandatory for ICE.
        let fingerprint = fingerprint.ok_or(StunError::MissingFingerprint)?;
        let received: [u8; 4] = fingerprint
            .value
            .try_into()
            .map_err(|_| StunError::Malformed)?;
        // As the last attribute, the header length already covers it, which is exactly what
        // the sender hashed.
        let covered = datagram
            .get(..fingerprint.offset)
            .ok_or(StunError::Malformed)?;
        if fingerprint_value(covered) != u32::from_be_bytes(received) {
            return Err(StunError::BadFingerprint);
        }

        // RFC 8445 sections 7.2.2 and 7.3: USERNAME must be "<our ufrag>:<their ufrag>".
        let username = username.ok_or(StunError::MissingUsername)?;
        let mut parts = username.splitn(2, |&b| b == b':');
        let local = parts.next().unwrap_or_default();
        let remote = parts.next().ok_or(StunError::WrongUfrag)?;
        if local != self.local.ufrag.as_bytes() || remote.is_empty() {
            return Err(StunError::WrongUfrag);
        }

        let integrity = integrity.ok_or(StunError::MissingIntegrity)?;
        if integrity.value.len() != MESSAGE_INTEGRITY_LEN {
            return Err(StunError::Malformed);
        }
        // The stun crate's check handles the length-field rewrite of RFC 5389 section 15.4
        // and compares in constant time. Its decode agrees with `Frame::parse` (which already
        // accepted this datagram), and the layout checks above rule out the inputs its
        // offset arithmetic does not guard against.
        let mut message = Message::new();
        message
            .unmarshal_binary(datagram)
            .map_err(|_| StunError::Malformed)?;
        self.integrity
            .check(&mut message)
            .map_err(|_| StunError::BadIntegrity)?;

        Ok(CheckedRequest {
            transaction_id: frame.transaction_id,
            use_candidate,
            role_conflict,
        })
    }

    /// Nomination and consent bookkeeping for an authenticated, answered check.
    fn on_valid_check(&mut self, now: Instant, from: SocketAddr, use_candidate: bool) {
        if use_candidate {
            // RFC 8445 section 7.3.2: a lite agent selects the pair the controlling agent
            // marked with USE-CANDIDATE. A later nomination from another address is the
            // client moving (network change, NAT rebinding), so the newest one wins rather
            // than the highest-priority one.
            let tuple_changed = self.selected != Some(from);
            self.selected = Some(from);
            self.consent_at = Some(now);
            self.set_state(IceState::Connected);
            if tuple_changed {
                self.events.push_back(IceEvent::SelectedTupleChanged(from));
            }
        } else if self.selected == Some(from) && self.state == IceState::Connected {
            // RFC 7675 section 5.1 refreshes consent on responses to our own checks; a lite
            // agent sends none, so the peer's authenticated checks on the selected tuple
            // (which it sends at least every 5 s for its own consent) stand in for them.
            self.consent_at = Some(now);
        }
        // Checks from other tuples are answered (they may become nominated) but prove
        // nothing about the selected one.
    }

    fn set_state(&mut self, state: IceState) {
        if self.state != state {
            self.state = state;
            self.events.push_back(IceEvent::StateChanged(state));
        }
    }

    fn write_response(
        &self,
        transaction_id: [u8; 12],
        to: SocketAddr,
        role_conflict: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), StunError> {
        let mut message = Message::new();
        message.typ = if role_conflict {
            BINDING_ERROR
        } else {
            BINDING_SUCCESS
        };
        // RFC 5389 section 6: responses carry the request's transaction id (it is also
        // part of the XOR key for IPv6 XOR-MAPPED-ADDRESS, so set it first).
        message.transaction_id = TransactionId(transaction_id);
        message.write_header();
        let encoded = if role_conflict {
            ErrorCodeAttribute {
                code: CODE_ROLE_CONFLICT,
                reason: b"Role Conflict".to_vec(),
            }
            .add_to(&mut message)
        } else {
            XorMappedAddress {
                // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the peer sent
                // over IPv4, so tell it its IPv4 address (RFC 5389 section 15.2 families).
                ip: to.ip().to_canonical(),
                port: to.port(),
            }
            .add_to(&mut message)
        };
        // RFC 5389 section 10.1.3: a response to an authenticated request carries
        // MESSAGE-INTEGRITY with the same key (our password); RFC 8445 section 7 makes
        // FINGERPRINT mandatory on connectivity checks.
        encoded
            .and_then(|()| self.integrity.add_to(&mut message))
            .and_then(|()| FINGERPRINT.add_to(&mut message))
            .map_err(|_| StunError::Encode)?;
        out.extend_from_slice(&message.raw);
        Ok(())
    }
}

fn expect_len(value: &[u8], len: usize) -> Result<(), StunError> {
    if value.len() == len {
        Ok(())
    } else {
        Err(StunError::Malformed)
    }
}
