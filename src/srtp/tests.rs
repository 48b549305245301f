//! Known-answer, interop (against `webrtc-srtp`) and robustness tests.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

use super::kdf::{self, Prf};
use super::*;

const PROFILES: [SrtpProfile; 2] = [SrtpProfile::Aes128CmHmacSha1_80, SrtpProfile::AeadAes128Gcm];

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn reference_profile(p: SrtpProfile) -> ProtectionProfile {
    match p {
        SrtpProfile::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpProfile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
    }
}

fn master(p: SrtpProfile, rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
    let mut key = vec![0; p.key_len()];
    let mut salt = vec![0; p.salt_len()];
    rng.fill_bytes(&mut key);
    rng.fill_bytes(&mut salt);
    (key, salt)
}

fn reference(p: SrtpProfile, key: &[u8], salt: &[u8]) -> Context {
    Context::new(
        key,
        salt,
        reference_profile(p),
        Some(srtp_replay_protection(64)),
        Some(srtcp_replay_protection(64)),
    )
    .unwrap()
}

fn ours(p: SrtpProfile, key: &[u8], salt: &[u8]) -> SrtpContext {
    SrtpContext::new(p, key, salt).unwrap()
}

/// Header shapes exercising every part of the RTP header SRTP must skip (and,
/// for GCM, authenticate as AAD) plus RTP padding inside the encrypted part.
#[derive(Clone, Copy, Debug)]
enum Shape {
    Plain,
    Csrcs,
    OneByteExt,
    TwoByteExt,
    Rfc3550Ext,
    Padding,
    Everything,
}

const SHAPES: [Shape; 7] = [
    Shape::Plain,
    Shape::Csrcs,
    Shape::OneByteExt,
    Shape::TwoByteExt,
    Shape::Rfc3550Ext,
    Shape::Padding,
    Shape::Everything,
];

fn rtp(shape: Shape, seq: u16, ssrc: u32, rng: &mut StdRng) -> Vec<u8> {
    let csrcs = matches!(shape, Shape::Csrcs | Shape::Everything);
    let ext: Option<(u16, Vec<u8>)> = match shape {
        // RFC 8285 4.2: id 1 (3 bytes), id 2 (5 bytes), 3 bytes of padding.
        Shape::OneByteExt | Shape::Everything => {
            Some((0xbede, vec![0x12, 1, 2, 3, 0x24, 4, 5, 6, 7, 8, 0, 0]))
        }
        // RFC 8285 4.3: id 5 with 3 bytes, 3 bytes of padding.
        Shape::TwoByteExt => Some((0x1000, vec![5, 3, 9, 9, 9, 0, 0, 0])),
        // RFC 3550 5.3.1 with an arbitrary profile.
        Shape::Rfc3550Ext => Some((0x1234, vec![0xaa; 8])),
        _ => None,
    };
    let padding = matches!(shape, Shape::Padding | Shape::Everything);
    let mut b0 = 0x80u8;
    if padding {
        b0 |= 0x20;
    }
    if ext.is_some() {
        b0 |= 0x10;
    }
    if csrcs {
        b0 |= 3;
    }
    let mut p = vec![b0, 0x80 | 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&rng.gen::<u32>().to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    if csrcs {
        for c in [0x1111_1111u32, 0x2222_2222, 0x3333_3333] {
            p.extend_from_slice(&c.to_be_bytes());
        }
    }
    if let Some((profile, body)) = ext {
        p.extend_from_slice(&profile.to_be_bytes());
        p.extend_from_slice(&u16::try_from(body.len() / 4).unwrap().to_be_bytes());
        p.extend_from_slice(&body);
    }
    let payload_len = rng.gen_range(1..300);
    p.extend((0..payload_len).map(|_| rng.gen::<u8>()));
    if padding {
        p.extend_from_slice(&[0, 0, 0, 4]);
    }
    p
}

/// An SR or RR with one report block and a consistent length field
/// (RFC 3550 6.4: SSRC, 5 words of sender info for SR, 6 per report block).
fn rtcp(ssrc: u32, sr: bool, rng: &mut StdRng) -> Vec<u8> {
    let body_words: u16 = if sr { 1 + 5 + 6 } else { 1 + 6 };
    let mut p = vec![0x81, if sr { 200 } else { 201 }];
    p.extend_from_slice(&body_words.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend((0..usize::from(body_words) * 4 - 4).map(|_| rng.gen::<u8>()));
    p
}

fn protect_rtp(ctx: &mut SrtpContext, plain: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + ctx.profile().rtp_overhead(), 0);
    let n = ctx.protect_rtp(&mut buf, plain.len())?;
    buf.truncate(n);
    Ok(buf)
}

fn unprotect_rtp(ctx: &mut SrtpContext, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = packet.to_vec();
    let n = ctx.unprotect_rtp(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn protect_rtcp(ctx: &mut SrtpContext, plain: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + ctx.profile().rtcp_overhead(), 0);
    let n = ctx.protect_rtcp(&mut buf, plain.len())?;
    buf.truncate(n);
    Ok(buf)
}

fn unprotect_rtcp(ctx: &mut SrtpContext, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
    let mut buf = packet.to_vec();
    let n = ctx.unprotect_rtcp(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Sequence numbers per SSRC: one stream wraps 65535 -> 0 (ROC 0 -> 1) with
/// reordering on both sides of the wrap, one starts low, one starts mid-range.
fn schedule() -> Vec<(u32, u16)> {
    let wrapping = [
        65_530u16, 65_531, 65_533, 65_532, 65_535, 0, 65_534, 1, 2, 4, 3, 5, 6, 7, 8, 9, 10,
    ];
    let mut out = Vec::new();
    for (i, &seq) in wrapping.iter().enumerate() {
        let i = u16::try_from(i).unwrap();
        out.push((0x0bad_cafe, seq));
        out.push((0x1234_5678, 1000 + i));
        out.push((0xffff_0001, 40_000 + 2 * i));
    }
    out
}

#[test]
fn rtp_matches_webrtc_srtp_byte_for_byte() {
    let mut rng = StdRng::seed_from_u64(1);
    for p in PROFILES {
        let (key, salt) = master(p, &mut rng);
        let (mut our_tx, mut our_rx) = (ours(p, &key, &salt), ours(p, &key, &salt));
        let (mut ref_tx, mut ref_rx) = (reference(p, &key, &salt), reference(p, &key, &salt));
        for (i, (ssrc, seq)) in schedule().into_iter().enumerate() {
            let plain = rtp(SHAPES[i % SHAPES.len()], seq, ssrc, &mut rng);
            let mine = protect_rtp(&mut our_tx, &plain).unwrap();
            let theirs = ref_tx.encrypt_rtp(&plain).unwrap();
            assert_eq!(mine, theirs[..], "{p:?} protect ssrc {ssrc:#x} seq {seq}");
            assert_eq!(mine.len(), plain.len() + p.rtp_overhead());

            assert_eq!(unprotect_rtp(&mut our_rx, &theirs).unwrap(), plain);
            assert_eq!(ref_rx.decrypt_rtp(&mine).unwrap()[..], plain[..]);
        }
        assert_eq!(
            our_tx.rtp.get_mut(0x0bad_cafe).expect("state").roc.roc(),
            1,
            "ROC advanced on wrap"
        );
        assert_eq!(our_rx.rtp.get_mut(0x0bad_cafe).expect("state").roc.roc(), 1);
        assert_eq!(our_rx.rtp.len(), 3);
    }
}

#[test]
fn rtcp_matches_webrtc_srtp_byte_for_byte() {
    let mut rng = StdRng::seed_from_u64(2);
    for p in PROFILES {
        let (key, salt) = master(p, &mut rng);
        let (mut our_tx, mut our_rx) = (ours(p, &key, &salt), ours(p, &key, &salt));
        let (mut ref_tx, mut ref_rx) = (reference(p, &key, &salt), reference(p, &key, &salt));
        for i in 0..30 {
            let ssrc = [1u32, 0xdead_beef, 0x8000_0000][i % 3];
            let plain = rtcp(ssrc, i % 2 == 0, &mut rng);
            let mine = protect_rtcp(&mut our_tx, &plain).unwrap();
            let theirs = ref_tx.encrypt_rtcp(&plain).unwrap();
            assert_eq!(mine, theirs[..], "{p:?} protect ssrc {ssrc:#x} #{i}");
            assert_eq!(mine.len(), plain.len() + p.rtcp_overhead());

            assert_eq!(unprotect_rtcp(&mut our_rx, &theirs).unwrap(), plain);
            assert_eq!(ref_rx.decrypt_rtcp(&mine).unwrap()[..], plain[..]);
        }
        assert_eq!(our_tx.rtcp[&1].sent, 10);
    }
}

/// libsrtp's `srtp_validate` / `srtp_validate_gcm` reference packets (SSRC
/// 0xcafebabe, SEQ 0x1234, first SRTCP index 1): an oracle independent of
/// webrtc-srtp.
#[test]
fn libsrtp_known_answers() {
    let rtp_plain = hex("800f1234decafbadcafebabe abababababababababababababababab");
    let rtcp_plain = hex("81c8000bcafebabe abababababababababababababababab");
    let cases = [
        (
            SrtpProfile::Aes128CmHmacSha1_80,
            hex("e1f97a0d3e018be0d64fa32c06de4139"),
            hex("0ec675ad498afeebb6960b3aabe6"),
            hex("800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb"),
            hex("81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798"),
        ),
        (
            SrtpProfile::AeadAes128Gcm,
            hex("000102030405060708090a0b0c0d0e0f"),
            hex("a0a1a2a3a4a5a6a7a8a9aaab"),
            hex("800f1234decafbadcafebabe c5002ede04cfdd2eb91159e0880aa06e
                 d2976826f796b201df3131a127e8a392"),
            hex("81c8000bcafebabe c98b8b5df0392a55852b6c21ac8e7025
                 c52c6fbea2b3b446ea31123ba88ce61e 80000001"),
        ),
    ];
    for (p, key, salt, srtp, srtcp) in cases {
        let mut tx = ours(p, &key, &salt);
        assert_eq!(protect_rtp(&mut tx, &rtp_plain).unwrap(), srtp, "{p:?}");
        assert_eq!(protect_rtcp(&mut tx, &rtcp_plain).unwrap(), srtcp, "{p:?}");
        let mut rx = ours(p, &key, &salt);
        assert_eq!(unprotect_rtp(&mut rx, &srtp).unwrap(), rtp_plain);
        assert_eq!(unprotect_rtcp(&mut rx, &srtcp).unwrap(), rtcp_plain);
    }
}

#[test]
fn replays_and_stale_packets_are_rejected() {
    let mut rng = StdRng::seed_from_u64(3);
    for p in PROFILES {
        let (key, salt) = master(p, &mut rng);
        let mut tx = ours(p, &key, &salt);
        let mut rx = ours(p, &key, &salt);
        let packets: Vec<Vec<u8>> = (0..300u16)
            .map(|seq| protect_rtp(&mut tx, &rtp(Shape::Plain, seq, 7, &mut rng)).unwrap())
            .collect();

        assert!(unprotect_rtp(&mut rx, &packets[200]).is_ok());
        assert_eq!(
            unprotect_rtp(&mut rx, &packets[200]),
            Err(SrtpError::Replayed)
        );
        // Reordered but inside the window: accepted once.
        assert!(unprotect_rtp(&mut rx, &packets[150]).is_ok());
        assert_eq!(
            unprotect_rtp(&mut rx, &packets[150]),
            Err(SrtpError::Replayed)
        );
        assert!(unprotect_rtp(&mut rx, &packets[299]).is_ok());
        // 299 - 100 > REPLAY_WINDOW.
        assert_eq!(
            unprotect_rtp(&mut rx, &packets[100]),
            Err(SrtpError::TooOld)
        );
        assert!(unprotect_rtp(&mut rx, &packets[298]).is_ok());

        let sr = protect_rtcp(&mut tx, &rtcp(7, true, &mut rng)).unwrap();
        let rr = protect_rtcp(&mut tx, &rtcp(7, false, &mut rng)).unwrap();
        assert!(unprotect_rtcp(&mut rx, &rr).is_ok());
        assert_eq!(unprotect_rtcp(&mut rx, &rr), Err(SrtpError::Replayed));
        assert!(unprotect_rtcp(&mut rx, &sr).is_ok());
        assert_eq!(unprotect_rtcp(&mut rx, &sr), Err(SrtpError::Replayed));
    }
}

/// Flipping any single bit must fail (RFC 3711 3.3 step 6 / RFC 7714) and
/// must not create or move any per-SSRC state.
#[test]
fn any_tampering_is_rejected_without_state_change() {
    let mut rng = StdRng::seed_from_u64(4);
    for p in PROFILES {
        let (key, salt) = master(p, &mut rng);
        let mut tx = ours(p, &key, &salt);
        let srtp = protect_rtp(&mut tx, &rtp(Shape::Everything, 10, 9, &mut rng)).unwrap();
        let srtcp = protect_rtcp(&mut tx, &rtcp(9, true, &mut rng)).unwrap();

        let mut rx = ours(p, &key, &salt);
        for bit in 0..srtp.len() * 8 {
            let mut bad = srtp.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(unprotect_rtp(&mut rx, &bad).is_err(), "{p:?} RTP bit {bit}");
        }
        for bit in 0..srtcp.len() * 8 {
            let mut bad = srtcp.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                unprotect_rtcp(&mut rx, &bad).is_err(),
                "{p:?} RTCP bit {bit}"
            );
        }
        assert!(
            rx.rtp.len() == 0 && rx.rtcp.is_empty(),
            "no state from forgeries"
        );

        // A forgery far ahead of an established stream must not drag its ROC.
        assert!(unprotect_rtp(&mut rx, &srtp).is_ok());
        let ahead = protect_rtp(&mut tx, &rtp(Shape::Plain, 30_000, 9, &mut rng)).unwrap();
        let mut forged = ahead.clone();
        *forged.last_mut().unwrap() ^= 1;
        assert_eq!(unprotect_rtp(&mut rx, &forged), Err(SrtpError::AuthFailed));
        assert_eq!(rx.rtp.get_mut(9).expect("state").roc.estimate(11), Ok(11));
        assert!(unprotect_rtp(&mut rx, &ahead).is_ok());
    }
}

/// RFC 3711 3.4 / RFC 7714 9.3: an SRTCP packet with E = 0 is authenticated
/// but not encrypted; we never send one but must accept (only) genuine ones.
#[test]
fn unencrypted_srtcp_is_authenticated() {
    let mut rng = StdRng::seed_from_u64(5);
    let plain = rtcp(0x55, false, &mut rng);
    let index = 77u32;
    let word = index.to_be_bytes();

    let (key, salt) = master(SrtpProfile::Aes128CmHmacSha1_80, &mut rng);
    let auth_key: [u8; 20] = Prf::new(&key, &salt).unwrap().derive(kdf::LABEL_RTCP_AUTH);
    let mut mac = <hmac::Hmac<sha1::Sha1> as hmac::Mac>::new_from_slice(&auth_key).unwrap();
    let mut cm_packet = [plain.as_slice(), &word].concat();
    hmac::Mac::update(&mut mac, &cm_packet);
    cm_packet.extend_from_slice(&hmac::Mac::finalize(mac).into_bytes()[..10]);
    let mut rx = ours(SrtpProfile::Aes128CmHmacSha1_80, &key, &salt);
    check_unencrypted(&mut rx, &cm_packet, &plain, plain.len() + 3);

    let (key, salt) = master(SrtpProfile::AeadAes128Gcm, &mut rng);
    let prf = Prf::new(&key, &salt).unwrap();
    let k: [u8; 16] = prf.derive(kdf::LABEL_RTCP_ENCRYPTION);
    let mut iv: [u8; 12] = prf.derive(kdf::LABEL_RTCP_SALT);
    for (b, s) in iv[2..6].iter_mut().zip(0x55u32.to_be_bytes()) {
        *b ^= s;
    }
    for (b, s) in iv[8..].iter_mut().zip(word) {
        *b ^= s;
    }
    let aead = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &k).unwrap());
    let aad = [plain.as_slice(), &word].concat();
    let tag = aead
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(&aad), &mut [])
        .unwrap();
    let gcm_packet = [plain.as_slice(), tag.as_ref(), &word].concat();
    let mut rx = ours(SrtpProfile::AeadAes128Gcm, &key, &salt);
    check_unencrypted(&mut rx, &gcm_packet, &plain, plain.len() + 3);
}

fn check_unencrypted(rx: &mut SrtpContext, packet: &[u8], plain: &[u8], flip_at: usize) {
    let mut bad = packet.to_vec();
    bad[flip_at] ^= 0x40;
    assert_eq!(unprotect_rtcp(rx, &bad), Err(SrtpError::AuthFailed));
    assert_eq!(unprotect_rtcp(rx, packet).unwrap(), plain);
    assert_eq!(unprotect_rtcp(rx, packet), Err(SrtpError::Replayed));
}

#[test]
fn ssrc_maps_are_capped() {
    let mut rng = StdRng::seed_from_u64(6);
    for p in PROFILES {
        let (key, salt) = master(p, &mut rng);
        let mut tx = ours(p, &key, &salt);
        let mut rx = ours(p, &key, &salt);
        let ssrcs = u32::try_from(MAX_SSRCS).unwrap();
        for ssrc in 0..ssrcs {
            let pkt = protect_rtp(&mut tx, &rtp(Shape::Plain, 1, ssrc, &mut rng)).unwrap();
            unprotect_rtp(&mut rx, &pkt).unwrap();
            let pkt = protect_rtcp(&mut tx, &rtcp(ssrc, false, &mut rng)).unwrap();
            unprotect_rtcp(&mut rx, &pkt).unwrap();
        }
        let extra = rtp(Shape::Plain, 1, ssrcs, &mut rng);
        assert_eq!(protect_rtp(&mut tx, &extra), Err(SrtpError::TooManySsrcs));
        let extra_rtcp = rtcp(ssrcs, false, &mut rng);
        assert_eq!(
            protect_rtcp(&mut tx, &extra_rtcp),
            Err(SrtpError::TooManySsrcs)
        );

        let mut other_tx = ours(p, &key, &salt);
        let pkt = protect_rtp(&mut other_tx, &extra).unwrap();
        assert_eq!(unprotect_rtp(&mut rx, &pkt), Err(SrtpError::TooManySsrcs));
        let pkt = protect_rtcp(&mut other_tx, &extra_rtcp).unwrap();
        assert_eq!(unprotect_rtcp(&mut rx, &pkt), Err(SrtpError::TooManySsrcs));
        // Known SSRCs keep working.
        let pkt = protect_rtp(&mut tx, &rtp(Shape::Plain, 2, 5, &mut rng)).unwrap();
        assert!(unprotect_rtp(&mut rx, &pkt).is_ok());
        assert_eq!(rx.rtp.len(), MAX_SSRCS);
    }
}

#[test]
fn removed_ssrcs_free_room_under_the_cap() {
    let mut rng = StdRng::seed_from_u64(9);
    for p in PROFILES {
        let (key, salt) = master(p, &mut rng);
        let mut tx = ours(p, &key, &salt);
        let mut rx = reference(p, &key, &salt);
        let cap = u32::try_from(MAX_SSRCS).unwrap();
        // Streams come and go one after another, three times the cap: each closed one is
        // removed, so every next one is protected (and the reference decrypts it).
        for ssrc in 1..=3 * cap {
            let plain = rtp(Shape::Plain, 7, ssrc, &mut rng);
            let pkt = protect_rtp(&mut tx, &plain).unwrap();
            assert_eq!(rx.decrypt_rtp(&pkt).unwrap()[..], plain[..], "ssrc {ssrc}");
            protect_rtcp(&mut tx, &rtcp(ssrc, true, &mut rng)).unwrap();
            assert!(tx.remove_ssrc(ssrc));
            assert_eq!(tx.ssrc_counts(), (0, 0));
        }
        assert!(!tx.remove_ssrc(1), "already removed");

        // At the cap, removing one (the inline one included) admits exactly one more.
        let mut tx = ours(p, &key, &salt);
        for ssrc in 0..cap {
            protect_rtp(&mut tx, &rtp(Shape::Plain, 1, ssrc, &mut rng)).unwrap();
        }
        let extra = rtp(Shape::Plain, 1, cap, &mut rng);
        assert_eq!(protect_rtp(&mut tx, &extra), Err(SrtpError::TooManySsrcs));
        assert!(tx.remove_ssrc(0));
        assert!(protect_rtp(&mut tx, &extra).is_ok());
        let another = rtp(Shape::Plain, 1, cap + 1, &mut rng);
        assert_eq!(protect_rtp(&mut tx, &another), Err(SrtpError::TooManySsrcs));
        // Survivors keep their state: the next packet of each still protects.
        for ssrc in [1, cap / 2, cap - 1] {
            assert!(protect_rtp(&mut tx, &rtp(Shape::Plain, 2, ssrc, &mut rng)).is_ok());
        }
        assert_eq!(tx.ssrc_counts().0, MAX_SSRCS);
    }
}

#[test]
fn keying_material_is_split_per_rfc5764() {
    let mut rng = StdRng::seed_from_u64(7);
    for p in PROFILES {
        let mut material = vec![0; p.keying_material_len()];
        rng.fill_bytes(&mut material);
        let (mut client_out, mut client_in) =
            contexts_from_keying_material(p, &material, true).unwrap();
        let (mut server_out, mut server_in) =
            contexts_from_keying_material(p, &material, false).unwrap();

        let plain = rtp(Shape::Plain, 1, 1, &mut rng);
        let from_client = protect_rtp(&mut client_out, &plain).unwrap();
        let from_server = protect_rtp(&mut server_out, &plain).unwrap();
        // Our own packets are not valid inbound (different direction keys).
        assert_eq!(
            unprotect_rtp(&mut client_in, &from_client),
            Err(SrtpError::AuthFailed)
        );
        assert_eq!(unprotect_rtp(&mut server_in, &from_client).unwrap(), plain);
        assert_eq!(unprotect_rtp(&mut client_in, &from_server).unwrap(), plain);

        // Client write key = material[..16], client salt right after both keys.
        let k = p.key_len();
        let s = p.salt_len();
        let mut ref_client = reference(p, &material[..k], &material[2 * k..2 * k + s]);
        assert_eq!(ref_client.encrypt_rtp(&plain).unwrap()[..], from_client[..]);

        assert_eq!(
            contexts_from_keying_material(p, &material[1..], true).err(),
            Some(SrtpError::BadKeyLength)
        );
    }
}

#[test]
fn argument_errors() {
    let p = SrtpProfile::Aes128CmHmacSha1_80;
    assert_eq!(
        SrtpContext::new(p, &[0; 15], &[0; 14]).err(),
        Some(SrtpError::BadKeyLength)
    );
    assert_eq!(
        SrtpContext::new(p, &[0; 16], &[0; 12]).err(),
        Some(SrtpError::BadSaltLength)
    );
    assert_eq!(
        SrtpContext::new(SrtpProfile::AeadAes128Gcm, &[0; 16], &[0; 14]).err(),
        Some(SrtpError::BadSaltLength)
    );
    for p in PROFILES {
        assert_eq!(SrtpProfile::from_dtls_id(p.dtls_id()), Some(p));
        let mut ctx = ours(p, &[1; 16], &vec![2; p.salt_len()]);
        let mut buf = [0x80u8; 40];
        assert_eq!(
            ctx.protect_rtp(&mut buf, 31),
            Err(SrtpError::BufferTooSmall)
        );
        assert_eq!(
            ctx.protect_rtp(&mut buf, 41),
            Err(SrtpError::BufferTooSmall)
        );
        assert_eq!(
            ctx.protect_rtp(&mut buf, usize::MAX),
            Err(SrtpError::BufferTooSmall)
        );
        assert_eq!(ctx.protect_rtp(&mut buf, 11), Err(SrtpError::TooShort));
        assert_eq!(ctx.protect_rtcp(&mut buf, 7), Err(SrtpError::TooShort));
        assert_eq!(
            ctx.protect_rtcp(&mut buf, 27),
            Err(SrtpError::BufferTooSmall)
        );
        buf[0] = 0x40;
        assert_eq!(ctx.protect_rtp(&mut buf, 20), Err(SrtpError::BadHeader));
        assert_eq!(ctx.protect_rtcp(&mut buf, 20), Err(SrtpError::BadHeader));
        assert!(ctx.rtp.len() == 0 && ctx.rtcp.is_empty());
    }
    assert_eq!(SrtpProfile::from_dtls_id(2), None);
    assert_eq!(SrtpProfile::Aes128CmHmacSha1_80.keying_material_len(), 60);
    assert_eq!(SrtpProfile::AeadAes128Gcm.keying_material_len(), 56);
    assert_eq!(SrtpProfile::Aes128CmHmacSha1_80.rtcp_overhead(), 14);
    assert_eq!(SrtpProfile::AeadAes128Gcm.rtcp_overhead(), 20);
}

/// Random garbage, truncations and bit flips of valid packets, and random
/// lengths passed to protect: every outcome is a value, never a panic, and a
/// modified packet never authenticates.
#[test]
fn garbage_never_panics() {
    let mut rng = StdRng::seed_from_u64(8);
    for p in PROFILES {
        let (key, salt) = master(p, &mut rng);
        let mut tx = ours(p, &key, &salt);
        let mut rx = ours(p, &key, &salt);
        let mut valid_rtp = Vec::new();
        let mut valid_rtcp = Vec::new();
        for i in 0..50u16 {
            let shape = SHAPES[usize::from(i) % SHAPES.len()];
            valid_rtp.push(protect_rtp(&mut tx, &rtp(shape, i, 3, &mut rng)).unwrap());
            valid_rtcp.push(protect_rtcp(&mut tx, &rtcp(3, i % 2 == 0, &mut rng)).unwrap());
        }

        for _ in 0..4000 {
            // Pure garbage, usually with a plausible first byte so parsing goes deeper.
            let mut junk = vec![0u8; rng.gen_range(0..200)];
            rng.fill_bytes(&mut junk);
            if rng.gen_bool(0.8) {
                if let Some(b) = junk.first_mut() {
                    *b = 0x80 | (*b & 0x3f);
                }
            }
            let _ = rx.unprotect_rtp(&mut junk.clone());
            let _ = rx.unprotect_rtcp(&mut junk.clone());
            let len = rng.gen_range(0..junk.len() + 20);
            let _ = tx.protect_rtp(&mut junk.clone(), len);
            let _ = tx.protect_rtcp(&mut junk.clone(), len);

            // Mangled valid packets.
            let (original, is_rtp) = if rng.gen_bool(0.5) {
                (&valid_rtp[rng.gen_range(0..valid_rtp.len())], true)
            } else {
                (&valid_rtcp[rng.gen_range(0..valid_rtcp.len())], false)
            };
            let mut bad = original.clone();
            bad.truncate(rng.gen_range(0..=bad.len()));
            for _ in 0..rng.gen_range(0..3) {
                if !bad.is_empty() {
                    let at = rng.gen_range(0..bad.len());
                    bad[at] ^= rng.gen::<u8>();
                }
            }
            if bad == *original {
                continue;
            }
            let result = if is_rtp {
                rx.unprotect_rtp(&mut bad)
            } else {
                rx.unprotect_rtcp(&mut bad)
            };
            assert!(result.is_err(), "{p:?} modified packet accepted");
        }
        assert!(rx.rtp.len() == 0 && rx.rtcp.is_empty());
        for pkt in &valid_rtp {
            assert!(unprotect_rtp(&mut rx, pkt).is_ok());
        }
        for pkt in &valid_rtcp {
            assert!(unprotect_rtcp(&mut rx, pkt).is_ok());
        }
    }
}
