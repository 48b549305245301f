//! Entry points for the cargo-fuzz targets in fuzz/ (see FUZZING.md): one function per
//! target, so that each target is a one-liner and the harnesses build, lint and run as
//! part of the library (tests/fuzz_regressions.rs replays crashes through them).
//!
//! Style item 8, "network input never panics", is what they check: a panic anywhere below
//! is a bug in the daemon. Beyond that they assert only properties that must hold for any
//! input (a remapped RTP header still parses, SRTP round-trips, every SRTP datagram the
//! worker sends authenticates at its peer).
//!
//! Byte-level targets read their input with [`Unstructured`]; variable-length pieces are
//! framed by a 2-byte little-endian length ([`push_frame`] writes them), so seed
//! generators and humans can build inputs without knowing `arbitrary`'s internals. The
//! `worker` target decodes a sequence of [`Op`]s the same way ([`encode_ops`]).

mod parsers;
mod tcp;
mod worker;

pub use parsers::{rtcp, rtp, srtp, srtp_contexts, srtp_ops, stun, stun_credentials, stun_flags};
pub use tcp::ice_tcp;
pub use worker::{
    consumer_ssrcs, decode_ops, encode_ops, worker, Op, ABS_SEND_TIME_ID, AUDIO_SSRC, MID_ID,
    OPUS_PT, RTX_PT, VIDEO_RTX_SSRC, VIDEO_SSRC, VP8_PT,
};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rtc_dtls::config::{ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::Endpoint;
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_shared::TransportProtocol;
use serde_json::Value;

use crate::batch::SendBatch;
use crate::channel::framing::{Frame, FrameDecoder};
use crate::channel::params::DtlsFingerprint;
use crate::channel::{parse_request, RequestFrame};
use crate::dtls::{fingerprint_hex, DtlsIdentity, DtlsServer};
use crate::worker::core::{CoreConfig, WorkerCore};

// ---------------------------------------------------------------------------------------
// Shared helpers and fixtures
// ---------------------------------------------------------------------------------------

/// Appends `bytes` with the 2-byte little-endian length prefix [`frame`] reads.
pub fn push_frame(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(bytes.get(..len).unwrap_or_default());
}

/// Reads one length-prefixed piece; a length past the end takes what is left, so every
/// input decodes to something.
fn frame<'a>(u: &mut Unstructured<'a>) -> ArbResult<&'a [u8]> {
    let len = usize::from(u16::arbitrary(u)?);
    u.bytes(len.min(u.len()))
}

/// A fixed virtual clock origin: targets never read the clock while running ops, so
/// an input replays the same way (up to the core's own random ids and SSRCs).
/// The core's RNG, always from the same seed: a fuzz input replays exactly (ids, ICE
/// credentials and consumer SSRCs are the same every run).
pub fn core_rng() -> StdRng {
    StdRng::seed_from_u64(0xF022)
}

fn epoch() -> (Instant, SystemTime) {
    thread_local!(static EPOCH: (Instant, SystemTime) = (Instant::now(), SystemTime::now()));
    EPOCH.with(|e| *e)
}

/// Certificates and DTLS configurations: generating them costs milliseconds, so they are
/// built once per process and shared by all iterations.
struct Fixtures {
    server: DtlsIdentity,
    /// DTLS clients offering only AES-GCM / only AES-CM SRTP, so the worker target's two
    /// transports use one profile each.
    client_gcm: Arc<HandshakeConfig>,
    client_cm: Arc<HandshakeConfig>,
    /// sha-256 fingerprint of the clients' shared certificate.
    client_fingerprint: String,
}

fn with_fixtures<R>(f: impl FnOnce(&Fixtures) -> R) -> R {
    thread_local!(static FIXTURES: Fixtures = build_fixtures());
    FIXTURES.with(f)
}

fn build_fixtures() -> Fixtures {
    // A harness that cannot set itself up must fail loudly, not fuzz nothing.
    let server = DtlsIdentity::generate().expect("server DTLS identity");
    let provider = rtc_dtls::crypto_provider::default_provider().expect("crypto provider");
    let cert = Certificate::generate_self_signed_with_alg(
        vec!["fuzz-client".to_owned()],
        &rcgen::PKCS_ECDSA_P256_SHA256,
        provider.crypto(),
    )
    .expect("client certificate");
    let der = cert.certificate.first().expect("client certificate DER");
    let client_fingerprint =
        fingerprint_hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
    let client = |profile| {
        let config = ConfigBuilder::default()
            .with_crypto_provider(provider.clone())
            .with_certificates(vec![cert.clone()])
            .with_srtp_protection_profiles(vec![profile])
            .with_extended_master_secret(ExtendedMasterSecretType::Require)
            .with_insecure_skip_verify(true)
            .build(true, None)
            .expect("client DTLS config");
        Arc::new(config)
    };
    Fixtures {
        server,
        client_gcm: client(SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm),
        client_cm: client(SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80),
        client_fingerprint,
    }
}

// ---------------------------------------------------------------------------------------
// control: framing + request parsing + WorkerCore::handle_request
// ---------------------------------------------------------------------------------------

/// `control` target: `[chunk size][byte stream of frames]`. The stream is fed to a
/// [`FrameDecoder`] in chunks; each body has `$0`..`$9` replaced by the ids handed out so
/// far (routers, transports, producers, consumers, in order), so requests can name
/// entities by the order they were made rather than by the ids the seeded core picked.
pub fn control(data: &[u8]) {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let (now, wall) = epoch();
    let mut core =
        with_fixtures(|f| WorkerCore::new(core_config(), f.server.clone(), core_rng(), now, wall));
    let mut decoder = FrameDecoder::default();
    let mut frames = Vec::new();
    let mut ids = Vec::new();
    for piece in stream.chunks(usize::from(chunk).max(1)) {
        decoder.push(piece, &mut frames);
        for f in frames.drain(..) {
            let Frame::Body(body) = f else { continue };
            let body = substitute_ids(&body, &ids);
            if let Ok(req) = parse_request(&body) {
                call(&mut core, now, 1, req, &mut ids);
            }
        }
        drain(&mut core);
    }
    let mut out = SendBatch::new();
    core.handle_timeout(now + Duration::from_secs(1), &mut out);
    core.close_connection(now, 1);
    drain(&mut core);
}

fn core_config() -> CoreConfig {
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000);
    CoreConfig {
        index: 0,
        workers: 1,
        local,
        announced: local,
        also_announced: Vec::new(),
        tcp_port: None,
    }
}

/// Runs a request as the shell would (the response is serialized), remembering every id
/// it hands out.
fn call(
    core: &mut WorkerCore,
    now: Instant,
    conn: u64,
    req: RequestFrame,
    ids: &mut Vec<String>,
) -> Value {
    let resp = core.handle_request(now, conn, req);
    serde_json::to_vec(&resp).expect("responses serialize");
    let data = resp.data.unwrap_or_default();
    for key in ["routerId", "transportId", "producerId", "consumerId"] {
        if let Some(id) = data.get(key).and_then(Value::as_str) {
            // A consume response names its producer too: keep ids unique so the ID_*
            // positions hold.
            if !ids.iter().any(|known| known == id) {
                ids.push(id.to_owned());
            }
        }
    }
    data
}

/// Takes notifications and queued datagrams the way the shell does.
fn drain(core: &mut WorkerCore) {
    for (_, n) in core.drain_notifications() {
        serde_json::to_vec(&n).expect("notifications serialize");
    }
    core.control_out().clear();
}

/// Replaces `$0`..`$9` by the `n`th id (unknown ones stay as they are).
fn substitute_ids(body: &[u8], ids: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        let id = body
            .get(i + 1)
            .filter(|_| b == b'$')
            .and_then(|d| ids.get(usize::from(d.wrapping_sub(b'0'))));
        match id {
            Some(id) => {
                out.extend_from_slice(id.as_bytes());
                i += 2;
            }
            None => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// dtls: DtlsServer on arbitrary records
// ---------------------------------------------------------------------------------------

/// Flags of the `dtls` target's first byte.
pub mod dtls_flags {
    /// A real client's ClientHello reaches the server before the fuzzer's records.
    pub const CLIENT_HELLO: u8 = 0x01;
    /// A whole real handshake completes before the fuzzer's records.
    pub const HANDSHAKE: u8 = 0x02;
    /// The right client fingerprint is signalled first (otherwise a wrong one, later).
    pub const FINGERPRINT: u8 = 0x04;
    /// Time passes (retransmission timers fire) after each record.
    pub const TIMERS: u8 = 0x08;
}

/// `dtls` target: `[flags][frame]...`, each frame one datagram to the server.
pub fn dtls(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(flags) = u8::arbitrary(&mut u) else {
        return;
    };
    let (mut now, _) = epoch();
    with_fixtures(|f| {
        let mut server = DtlsServer::new(&f.server);
        if flags & dtls_flags::FINGERPRINT != 0 {
            server.set_remote_fingerprints(vec![sha256_fingerprint(&f.client_fingerprint)]);
        }
        if flags & (dtls_flags::CLIENT_HELLO | dtls_flags::HANDSHAKE) != 0 {
            let mut client = Endpoint::new(worker::PEER_A, TransportProtocol::UDP, None);
            client
                .connect(now, core_config().local, f.client_gcm.clone(), None)
                .expect("client starts a handshake");
            let rounds = if flags & dtls_flags::HANDSHAKE != 0 {
                8
            } else {
                1
            };
            for _ in 0..rounds {
                while let Some(t) = client.poll_transmit() {
                    let _ = server.handle_datagram(now, &t.message);
                }
                while let Some(d) = server.poll_transmit() {
                    let _ = client.read(now, core_config().local, None, d);
                }
            }
        }
        while !u.is_empty() {
            let Ok(record) = frame(&mut u) else { break };
            let _ = server.handle_datagram(now, record);
            while server.poll_transmit().is_some() {}
            if flags & dtls_flags::TIMERS != 0 {
                now += Duration::from_secs(1);
                server.handle_timeout(now);
                while server.poll_transmit().is_some() {}
            }
        }
        if flags & dtls_flags::FINGERPRINT == 0 {
            server.set_remote_fingerprints(vec![sha256_fingerprint("00:11")]);
        }
        server.close(now);
        while server.poll_transmit().is_some() {}
    });
}

fn sha256_fingerprint(value: &str) -> DtlsFingerprint {
    DtlsFingerprint {
        algorithm: "sha-256".into(),
        value: value.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_survives_trivial_inputs() {
        for input in [&[][..], &[0], &[0xff; 64], &[0x01; 300]] {
            stun(input);
            rtp(input);
            rtcp(input);
            srtp(input);
            control(input);
            dtls(input);
            worker(input);
            ice_tcp(input);
        }
    }
}
