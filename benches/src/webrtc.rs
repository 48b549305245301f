//! The client side of one WebRTC session, built from the project's crates (no browser
//! stack): ICE as the controlling full agent (Binding requests with USE-CANDIDATE, built
//! and checked with the `stun` crate), DTLS 1.2 with `rtc-dtls` in either role, and
//! `sfu::srtp` in place for SRTP. Sans-IO: the generator feeds datagrams and ticks and
//! sends what [`Session::poll_transmit`] returns.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::Rng;
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_shared::TransportProtocol;
use sfu::srtp::{contexts_from_keying_material, SrtpContext, SrtpProfile};
use stun::attributes::{ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_USERNAME, ATTR_USE_CANDIDATE};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{Message, Setter, BINDING_REQUEST, BINDING_SUCCESS, CLASS_REQUEST};
use stun::textattrs::TextAttribute;

/// How often an unanswered Binding request is repeated.
const ICE_RETRY: Duration = Duration::from_millis(100);
/// Consent freshness (RFC 7675): both the SFU and Janus drop a peer after ~30 s without
/// checks, and a capacity trial can outlast that.
const ICE_KEEPALIVE: Duration = Duration::from_secs(5);

/// The generator's one certificate, shared by all sessions in either DTLS role.
pub(crate) struct Identity {
    client: Arc<HandshakeConfig>,
    server: Arc<HandshakeConfig>,
    /// sha-256 fingerprint, `AB:CD:...`.
    pub(crate) fingerprint: String,
}

impl Identity {
    pub(crate) fn generate() -> Result<Self, String> {
        let provider = rtc_dtls::crypto_provider::default_provider().map_err(|e| e.to_string())?;
        let cert = Certificate::generate_self_signed_with_alg(
            vec!["loadgen".to_owned()],
            &rcgen::PKCS_ECDSA_P256_SHA256,
            provider.crypto(),
        )
        .map_err(|e| e.to_string())?;
        let der = cert.certificate.first().ok_or("no certificate")?;
        let fingerprint =
            sfu::dtls::fingerprint_hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
        let build = |is_client: bool| -> Result<Arc<HandshakeConfig>, String> {
            let provider =
                rtc_dtls::crypto_provider::default_provider().map_err(|e| e.to_string())?;
            let cfg = ConfigBuilder::default()
                .with_crypto_provider(provider)
                .with_certificates(vec![cert.clone()])
                // GCM first, as Chromium offers; the target picks.
                .with_srtp_protection_profiles(vec![
                    SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                    SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
                ])
                .with_extended_master_secret(ExtendedMasterSecretType::Require)
                .with_client_auth(ClientAuthType::RequireAnyClientCert)
                // Trust comes from the signalled fingerprint, checked by the target; we do
                // not verify the target's (a benchmark, not a security boundary).
                .with_insecure_skip_verify(true)
                .build(is_client, None)
                .map_err(|e| e.to_string())?;
            Ok(Arc::new(cfg))
        };
        Ok(Self {
            client: build(true)?,
            server: build(false)?,
            fingerprint,
        })
    }
}

/// Random ICE credentials (ice-char alphabet, RFC 8839).
pub(crate) fn ice_credentials() -> (String, String) {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::thread_rng();
    let mut gen = |n: usize| -> String {
        (0..n)
            .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
            .collect()
    };
    (gen(8), gen(24))
}

/// What the signalling told us about the other end.
#[derive(Clone, Debug)]
pub(crate) struct Remote {
    pub(crate) addr: SocketAddr,
    pub(crate) ufrag: String,
    pub(crate) pwd: String,
    /// Whether we are the DTLS client (the SFU is always the server; Janus may be either).
    pub(crate) dtls_client: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// ICE checks in flight.
    Checking,
    /// ICE nominated, DTLS running.
    Handshaking,
    /// SRTP keys in place.
    Connected,
    Failed,
}

/// One client session (a publisher or a subscriber PeerConnection).
pub(crate) struct Session {
    pub(crate) remote: Remote,
    local_ufrag: String,
    local_pwd: String,
    pub(crate) state: State,
    pending: Option<[u8; 12]>,
    next_check: Instant,
    dtls: Endpoint,
    client_config: Arc<HandshakeConfig>,
    tx: VecDeque<Vec<u8>>,
    pub(crate) srtp_out: Option<SrtpContext>,
    pub(crate) srtp_in: Option<SrtpContext>,
    pub(crate) profile: Option<SrtpProfile>,
    pub(crate) error: Option<String>,
}

/// Key of the one association inside each session's Endpoint.
fn peer_key(remote: &Remote) -> SocketAddr {
    remote.addr
}

impl Session {
    pub(crate) fn new(
        local_ufrag: String,
        local_pwd: String,
        remote: Remote,
        identity: &Identity,
        now: Instant,
    ) -> Self {
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        let server = (!remote.dtls_client).then(|| identity.server.clone());
        Self {
            remote,
            local_ufrag,
            local_pwd,
            state: State::Checking,
            pending: None,
            next_check: now,
            dtls: Endpoint::new(local, TransportProtocol::UDP, server),
            client_config: identity.client.clone(),
            tx: VecDeque::new(),
            srtp_out: None,
            srtp_in: None,
            profile: None,
            error: None,
        }
    }

    /// Next datagram to send to `remote.addr`.
    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if let Some(d) = self.tx.pop_front() {
            return Some(d);
        }
        self.dtls.poll_transmit().map(|t| t.message.to_vec())
    }

    fn binding_request(&mut self) -> Vec<u8> {
        let mut tid = [0u8; 12];
        rand::thread_rng().fill(&mut tid);
        self.pending = Some(tid);
        let mut m = Message::new();
        m.typ = BINDING_REQUEST;
        m.transaction_id = stun::agent::TransactionId(tid);
        m.write_header();
        let user = format!("{}:{}", self.remote.ufrag, self.local_ufrag);
        // Building into a fresh message cannot fail for these attributes.
        let _ = TextAttribute::new(ATTR_USERNAME, user).add_to(&mut m);
        m.add(
            ATTR_ICE_CONTROLLING,
            &rand::thread_rng().gen::<u64>().to_be_bytes(),
        );
        m.add(ATTR_USE_CANDIDATE, &[]);
        m.add(ATTR_PRIORITY, &0x6e7f_1eff_u32.to_be_bytes());
        let _ = MessageIntegrity::new_short_term_integrity(self.remote.pwd.clone()).add_to(&mut m);
        let _ = FINGERPRINT.add_to(&mut m);
        m.raw
    }

    /// Answers a Binding request from the target (Janus's libnice may send some even in
    /// lite mode; answering keeps it happy).
    fn binding_response(&self, req: &Message, from: SocketAddr) -> Vec<u8> {
        let mut m = Message::new();
        m.typ = BINDING_SUCCESS;
        m.transaction_id = req.transaction_id;
        m.write_header();
        let _ = stun::xoraddr::XorMappedAddress {
            ip: from.ip(),
            port: from.port(),
        }
        .add_to(&mut m);
        let _ = MessageIntegrity::new_short_term_integrity(self.local_pwd.clone()).add_to(&mut m);
        let _ = FINGERPRINT.add_to(&mut m);
        m.raw
    }

    /// Drives timers: ICE retries and keepalives, DTLS retransmissions.
    pub(crate) fn tick(&mut self, now: Instant) {
        // Failed sessions stay quiet; pre-shared (floor) sessions have no ICE at all.
        if self.state == State::Failed || self.remote.ufrag.is_empty() {
            return;
        }
        if now >= self.next_check {
            let req = self.binding_request();
            self.tx.push_back(req);
            self.next_check = now
                + if self.state == State::Checking {
                    ICE_RETRY
                } else {
                    ICE_KEEPALIVE
                };
        }
        if self.state == State::Handshaking {
            let key = peer_key(&self.remote);
            if let Some(at) = self.dtls.poll_timeout(&key) {
                if now >= at && self.dtls.handle_timeout(key, now).is_err() {
                    self.fail("DTLS retransmissions exhausted".into());
                }
            }
        }
    }

    fn fail(&mut self, why: String) {
        self.state = State::Failed;
        self.error = Some(why);
    }

    /// Feeds a non-media datagram (STUN or DTLS; RFC 7983 demultiplexing by first byte).
    pub(crate) fn handle(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match data.first() {
            Some(0..=3) => self.on_stun(now, from, data),
            Some(20..=63) => self.on_dtls(now, data),
            _ => {}
        }
    }

    fn on_stun(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let mut m = Message::new();
        if m.unmarshal_binary(data).is_err() {
            return;
        }
        if m.typ.class == CLASS_REQUEST {
            let resp = self.binding_response(&m, from);
            self.tx.push_back(resp);
            return;
        }
        if m.typ != BINDING_SUCCESS || self.pending != Some(m.transaction_id.0) {
            return;
        }
        if MessageIntegrity::new_short_term_integrity(self.remote.pwd.clone())
            .check(&mut m)
            .is_err()
        {
            return;
        }
        self.pending = None;
        if self.state == State::Checking {
            self.state = State::Handshaking;
            self.next_check = now + ICE_KEEPALIVE;
            if self.remote.dtls_client {
                let key = peer_key(&self.remote);
                let cfg = self.client_config.clone();
                if let Err(e) = self.dtls.connect(now, key, cfg, None) {
                    self.fail(format!("DTLS connect: {e}"));
                }
            }
        }
    }

    fn on_dtls(&mut self, now: Instant, data: &[u8]) {
        if self.state == State::Failed {
            return;
        }
        let key = peer_key(&self.remote);
        let events = match self.dtls.read(now, key, None, BytesMut::from(data)) {
            Ok(ev) => ev,
            Err(e) => {
                // A stray record (e.g. a retransmission) is not fatal before we connect.
                if self.state != State::Connected {
                    self.error = Some(format!("DTLS: {e}"));
                }
                return;
            }
        };
        for ev in events {
            if let EndpointEvent::HandshakeComplete = ev {
                self.on_handshake();
            }
        }
    }

    fn on_handshake(&mut self) {
        let key = peer_key(&self.remote);
        let Some(state) = self.dtls.get_connection_state(key) else {
            return self.fail("DTLS association vanished".into());
        };
        let profile = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => SrtpProfile::AeadAes128Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => SrtpProfile::Aes128CmHmacSha1_80,
            other => return self.fail(format!("unexpected SRTP profile {other:?}")),
        };
        let material = match state.export_keying_material(
            "EXTRACTOR-dtls_srtp",
            &[],
            profile.keying_material_len(),
        ) {
            Ok(m) => m.as_ref().to_vec(),
            Err(e) => return self.fail(format!("keying material: {e}")),
        };
        match contexts_from_keying_material(profile, &material, self.remote.dtls_client) {
            Ok((out, inb)) => {
                self.srtp_out = Some(out);
                self.srtp_in = Some(inb);
                self.profile = Some(profile);
                self.state = State::Connected;
            }
            Err(e) => self.fail(format!("SRTP contexts: {e}")),
        }
    }
}
