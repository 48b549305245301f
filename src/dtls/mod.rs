//! DTLS-SRTP for one transport, as the DTLS server (RFC 5763/5764).
//!
//! `webrtc-dtls` spawns tokio tasks and cannot run on a glommio executor, so this drives
//! the sans-IO `rtc-dtls` Endpoint inline: the worker feeds it datagrams and timer ticks.
//! Certificates are not validated by a CA: the peer's certificate must match a
//! fingerprint signalled in `transport.connect` (RFC 8122 section 5), which is checked here
//! once both the handshake and the fingerprint are known, in whichever order they come.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_shared::TransportProtocol;

use crate::channel::params::DtlsFingerprint;
use crate::srtp::SrtpProfile;

mod resend;
use resend::FlightResend;

/// The association key inside the per-transport Endpoint. rtc-dtls keys associations by
/// remote address; we give each transport its own Endpoint and always use this key, so
/// that a client whose address changes (ICE follows it) keeps its DTLS association.
const PEER_KEY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9);

/// Errors of the DTLS layer.
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    #[error("certificate generation failed: {0}")]
    Certificate(String),
    #[error("DTLS configuration failed: {0}")]
    Config(String),
    #[error("DTLS record rejected: {0}")]
    Record(String),
}

/// The daemon's one ECDSA P-256 certificate and the server configuration built on it.
#[derive(Clone)]
pub struct DtlsIdentity {
    config: Arc<HandshakeConfig>,
    fingerprint: String,
}

impl DtlsIdentity {
    /// Generates a fresh self-signed certificate (once per daemon start).
    pub fn generate() -> Result<Self, DtlsError> {
        let provider = rtc_dtls::crypto_provider::default_provider()
            .map_err(|e| DtlsError::Config(e.to_string()))?;
        let cert = Certificate::generate_self_signed_with_alg(
            vec!["sfu".to_owned()],
            &rcgen::PKCS_ECDSA_P256_SHA256,
            provider.crypto(),
        )
        .map_err(|e| DtlsError::Certificate(e.to_string()))?;
        let der = cert
            .certificate
            .first()
            .ok_or_else(|| DtlsError::Certificate("no certificate generated".into()))?;
        let fingerprint =
            fingerprint_hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
        let config = ConfigBuilder::default()
            .with_crypto_provider(provider)
            .with_certificates(vec![cert])
            .with_srtp_protection_profiles(vec![
                // Preferred first: AES-GCM is ~4x cheaper per packet here (platform notes).
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ])
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            // Self-signed browser certificates: trust comes from the signalled fingerprint.
            .with_insecure_skip_verify(true)
            .build(false, None)
            .map_err(|e| DtlsError::Config(e.to_string()))?;
        Ok(Self {
            config: Arc::new(config),
            fingerprint,
        })
    }

    /// The certificate's sha-256 fingerprint, `AB:CD:...`.
    pub fn fingerprint_sha256(&self) -> &str {
        &self.fingerprint
    }
}

impl std::fmt::Debug for DtlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// Uppercase colon-separated hex, the SDP/mediasoup fingerprint notation.
pub fn fingerprint_hex(digest: &[u8]) -> String {
    let mut s = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push_str(&format!("{b:02X}"));
    }
    s
}

/// Whether `der` matches any of the signalled fingerprints (algorithm names as in RFC 4572).
pub fn fingerprint_matches(der: &[u8], fingerprints: &[DtlsFingerprint]) -> bool {
    fingerprints.iter().any(|fp| {
        let alg = match fp.algorithm.to_ascii_lowercase().as_str() {
            "sha-256" => &ring::digest::SHA256,
            "sha-384" => &ring::digest::SHA384,
            "sha-512" => &ring::digest::SHA512,
            "sha-1" => &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            _ => return false,
        };
        let want = fingerprint_hex(ring::digest::digest(alg, der).as_ref());
        want.eq_ignore_ascii_case(fp.value.trim())
    })
}

/// Why a datagram is not acceptable DTLS for us, before the DTLS engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordCheck {
    /// Record headers or lengths do not add up (RFC 6347 4.1).
    Malformed,
    /// A content type we never accept: application data (no data channels here),
    /// heartbeat, or an unknown type. The DTLS engine would drop these silently; we count.
    Unexpected,
}

/// Walks the records of a datagram: 13-byte headers (RFC 6347 4.1) whose lengths must
/// exactly fill the datagram, each of content type change_cipher_spec (20), alert (21) or
/// handshake (22).
pub fn check_records(datagram: &[u8]) -> Result<(), RecordCheck> {
    let mut rest = datagram;
    if rest.is_empty() {
        return Err(RecordCheck::Malformed);
    }
    while !rest.is_empty() {
        let Some(header) = rest.get(..13) else {
            return Err(RecordCheck::Malformed);
        };
        let len = usize::from(u16::from_be_bytes([header[11], header[12]]));
        let Some(next) = rest.get(13 + len..) else {
            return Err(RecordCheck::Malformed);
        };
        if !matches!(header[0], 20..=22) {
            return Err(RecordCheck::Unexpected);
        }
        rest = next;
    }
    Ok(())
}

/// A transport's DTLS state: the control protocol's type, so what the daemon tracks is
/// what it reports.
pub use sfu_control::params::DtlsState;

/// What a DTLS input led to.
#[derive(Debug)]
pub enum DtlsOutcome {
    /// Handshake done and fingerprint verified: SRTP keying material is ready.
    Connected {
        profile: SrtpProfile,
        keying_material: Vec<u8>,
    },
    /// The transport must fail (bad fingerprint, fatal alert, unsupported profile).
    Failed(String),
    /// The peer sent close_notify.
    Closed,
}

/// One transport's DTLS server.
pub struct DtlsServer {
    endpoint: Endpoint,
    state: DtlsState,
    remote_fingerprints: Option<Vec<DtlsFingerprint>>,
    handshake_done: bool,
    /// Our last handshake flight, sent again when the client repeats its ClientHello.
    resend: FlightResend,
}

impl DtlsServer {
    /// A server waiting for the client's first flight.
    pub fn new(identity: &DtlsIdentity) -> Self {
        let local = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        Self {
            endpoint: Endpoint::new(local, TransportProtocol::UDP, Some(identity.config.clone())),
            state: DtlsState::New,
            remote_fingerprints: None,
            handshake_done: false,
            resend: FlightResend::default(),
        }
    }

    /// Current state.
    pub fn state(&self) -> DtlsState {
        self.state
    }

    /// Sets the fingerprints from `transport.connect`. If the handshake already finished,
    /// verification happens now.
    pub fn set_remote_fingerprints(&mut self, fps: Vec<DtlsFingerprint>) -> Option<DtlsOutcome> {
        self.remote_fingerprints = Some(fps);
        if self.handshake_done && self.state == DtlsState::Connecting {
            return Some(self.verify_and_export());
        }
        None
    }

    /// Feeds one DTLS datagram.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        data: &[u8],
    ) -> Result<Option<DtlsOutcome>, DtlsError> {
        if matches!(self.state, DtlsState::Failed | DtlsState::Closed) {
            return Ok(None);
        }
        if self.state == DtlsState::New {
            self.state = DtlsState::Connecting;
        }
        self.resend.input();
        let events = self
            .endpoint
            .read(now, PEER_KEY, None, BytesMut::from(data))
            .map_err(|e| DtlsError::Record(e.to_string()))?;
        // A ClientHello that leaves the engine mid-handshake without a retransmission
        // timer drew no answer (an answer arms the timer): the client repeats its hello
        // because it never got our flight.
        if !self.handshake_done
            && self.endpoint.poll_timeout(&PEER_KEY).is_none()
            && resend::starts_with_client_hello(data)
        {
            self.resend.peer_repeated();
        }
        let mut outcome = None;
        for ev in events {
            match ev {
                EndpointEvent::HandshakeComplete => {
                    self.handshake_done = true;
                    if self.remote_fingerprints.is_some() {
                        outcome = Some(self.verify_and_export());
                    }
                }
                EndpointEvent::PeerClosed => {
                    self.state = DtlsState::Closed;
                    outcome = Some(DtlsOutcome::Closed);
                }
                // No data channels: application data is ignored.
                _ => {}
            }
        }
        Ok(outcome)
    }

    fn verify_and_export(&mut self) -> DtlsOutcome {
        let outcome = self.try_verify_and_export();
        self.state = match outcome {
            DtlsOutcome::Connected { .. } => DtlsState::Connected,
            DtlsOutcome::Failed(_) => DtlsState::Failed,
            DtlsOutcome::Closed => DtlsState::Closed,
        };
        outcome
    }

    fn try_verify_and_export(&mut self) -> DtlsOutcome {
        let Some(state) = self.endpoint.get_connection_state(PEER_KEY) else {
            return DtlsOutcome::Failed("DTLS association vanished".into());
        };
        let Some(der) = state.peer_certificates.first() else {
            return DtlsOutcome::Failed("peer sent no certificate".into());
        };
        let fps = self.remote_fingerprints.as_deref().unwrap_or_default();
        if !fingerprint_matches(der, fps) {
            return DtlsOutcome::Failed(
                "remote certificate does not match the signalled fingerprint".into(),
            );
        }
        let profile = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => SrtpProfile::AeadAes128Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => SrtpProfile::Aes128CmHmacSha1_80,
            other => return DtlsOutcome::Failed(format!("unsupported SRTP profile {other:?}")),
        };
        match state.export_keying_material(
            "EXTRACTOR-dtls_srtp",
            &[],
            profile.keying_material_len(),
        ) {
            Ok(material) => DtlsOutcome::Connected {
                profile,
                keying_material: material.as_ref().to_vec(),
            },
            Err(e) => DtlsOutcome::Failed(format!("keying material export failed: {e}")),
        }
    }

    /// Next datagram to send to the peer.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        if let Some(t) = self.endpoint.poll_transmit() {
            if self.state == DtlsState::Connecting && !self.handshake_done {
                self.resend.sent(&t.message);
            }
            return Some(t.message);
        }
        if self.handshake_done {
            self.resend.clear();
            return None;
        }
        self.resend.poll()
    }

    /// When [`Self::handle_timeout`] next has work (a handshake retransmission); never
    /// once the association failed or closed, whatever the endpoint still holds.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            DtlsState::Failed | DtlsState::Closed => None,
            _ => self.endpoint.poll_timeout(&PEER_KEY),
        }
    }

    /// Drives retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.resend.input();
        if let Some(at) = self.endpoint.poll_timeout(&PEER_KEY) {
            if now >= at && self.endpoint.handle_timeout(PEER_KEY, now).is_err() {
                // Retransmissions exhausted: the handshake cannot finish.
                self.state = DtlsState::Failed;
            }
        }
    }

    /// Sends close_notify (on transport close).
    pub fn close(&mut self, now: Instant) {
        if self.state == DtlsState::Connected {
            let _ = self.endpoint.stop(now, PEER_KEY);
        }
        self.state = DtlsState::Closed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_framing_is_checked() {
        let rec = |ct: u8, body: &[u8]| {
            let mut r = vec![ct, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1];
            r.extend_from_slice(&(body.len() as u16).to_be_bytes());
            r.extend_from_slice(body);
            r
        };
        assert_eq!(check_records(&rec(22, &[1, 2, 3])), Ok(()));
        let mut two = rec(22, &[1]);
        two.extend(rec(20, &[1]));
        assert_eq!(check_records(&two), Ok(()));
        assert_eq!(check_records(&rec(23, &[1])), Err(RecordCheck::Unexpected));
        let mut short = rec(22, &[1, 2, 3]);
        short.pop();
        assert_eq!(check_records(&short), Err(RecordCheck::Malformed));
        assert_eq!(check_records(&[22, 0xfe]), Err(RecordCheck::Malformed));
        assert_eq!(check_records(&[]), Err(RecordCheck::Malformed));
    }

    #[test]
    fn identity_has_a_sha256_fingerprint() {
        let id = DtlsIdentity::generate().unwrap();
        let fp = id.fingerprint_sha256();
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.chars().all(|c| c == ':' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn fingerprint_matching_is_case_insensitive_and_algorithm_aware() {
        let der = b"not really a certificate";
        let sha256 = fingerprint_hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
        let fp = |alg: &str, v: &str| DtlsFingerprint {
            algorithm: alg.into(),
            value: v.into(),
        };
        assert!(fingerprint_matches(
            der,
            &[fp("sha-256", &sha256.to_lowercase())]
        ));
        assert!(!fingerprint_matches(der, &[fp("sha-384", &sha256)]));
        assert!(!fingerprint_matches(der, &[fp("md5", &sha256)]));
        assert!(!fingerprint_matches(der, &[]));
    }
}
