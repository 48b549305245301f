//! The packet-level targets: `stun`, `rtp`, `rtcp`, `srtp`. Each parses or transforms one
//! input with no state beyond it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use hmac::{Hmac, Mac};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sha1::Sha1;

use crate::ice::{self, IceCredentials, IceLite};
use crate::rtcp::{self, Feedback, ReportBlock};
use crate::rtp::audio_level::read_audio_level;
use crate::rtp::munger::SeqTsMunger;
use crate::rtp::{
    find_extension, is_h264_keyframe, is_vp8_keyframe, read_extension_str, remap_extensions,
    rewrite, ExtensionMap, RtpHeader, Vp8Descriptor,
};
use crate::srtp::{contexts_from_keying_material, SrtpContext, SrtpError, SrtpProfile};

use super::{epoch, frame};

// ---------------------------------------------------------------------------------------
// stun: ice::local_ufrag_of + IceLite::handle_stun
// ---------------------------------------------------------------------------------------

/// The credentials of the `stun` target's agent (fixed, so seeds can be built for them).
pub fn stun_credentials() -> IceCredentials {
    IceCredentials::generate(&mut StdRng::seed_from_u64(0x5f75))
}

/// Flags of the `stun` target's first byte: what the harness fixes up before the agent
/// sees the message, so that the checks behind a valid FINGERPRINT and
/// MESSAGE-INTEGRITY are reached by mutated messages too.
pub mod stun_flags {
    /// Insert `USERNAME = <our ufrag>:fuzz` as the first attribute.
    pub const USERNAME: u8 = 0x01;
    /// Append MESSAGE-INTEGRITY computed with our password.
    pub const INTEGRITY: u8 = 0x02;
    /// Append FINGERPRINT.
    pub const FINGERPRINT: u8 = 0x04;
    /// Receive it from an IPv6 address (IPv6 XOR-MAPPED-ADDRESS).
    pub const IPV6: u8 = 0x08;
}

/// `stun` target: `[flags][STUN message]`.
pub fn stun(data: &[u8]) {
    let Some((&flags, msg)) = data.split_first() else {
        return;
    };
    let creds = stun_credentials();
    let msg = seal_stun(msg, flags, &creds);
    let _ = ice::local_ufrag_of(&msg);
    let from = if flags & stun_flags::IPV6 != 0 {
        SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
            50_000,
        )
    } else {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)), 50_000)
    };
    let (now, _) = epoch();
    let mut agent = IceLite::new(creds.clone());
    let mut out = Vec::new();
    for at in [now, now + ice::CONSENT_TIMEOUT * 2] {
        if let Ok(true) = agent.handle_stun(at, from, &msg, &mut out) {
            // Whatever we answer must be a response an independent parser verifies.
            let mut m = stun::message::Message::new();
            m.unmarshal_binary(&out).expect("our STUN response parses");
            stun::integrity::MessageIntegrity::new_short_term_integrity(creds.pwd.clone())
                .check(&mut m)
                .expect("our STUN response carries valid MESSAGE-INTEGRITY");
        }
        while agent.poll_event().is_some() {}
    }
}

/// Applies the [`stun_flags`] fix-ups. Without any, the message is used as it is.
fn seal_stun(msg: &[u8], flags: u8, creds: &IceCredentials) -> Vec<u8> {
    let seal = flags & (stun_flags::USERNAME | stun_flags::INTEGRITY | stun_flags::FINGERPRINT);
    let mut m = msg.to_vec();
    if seal == 0 || m.len() < 20 {
        return m;
    }
    // RFC 5389 section 6: magic cookie; attributes are 32-bit aligned.
    m[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    m.resize(20 + (m.len() - 20).next_multiple_of(4), 0);
    if flags & stun_flags::USERNAME != 0 {
        let username = format!("{}:fuzz", creds.ufrag);
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attr.extend_from_slice(username.as_bytes());
        attr.resize(attr.len().next_multiple_of(4), 0);
        m.splice(20..20, attr);
    }
    if flags & stun_flags::INTEGRITY != 0 {
        // RFC 5389 section 15.4: the length field covers MESSAGE-INTEGRITY when hashing.
        set_stun_len(&mut m, 24);
        let mut mac =
            Hmac::<Sha1>::new_from_slice(creds.pwd.as_bytes()).expect("HMAC takes any key");
        mac.update(&m);
        m.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
        m.extend_from_slice(&mac.finalize().into_bytes());
    }
    if flags & stun_flags::FINGERPRINT != 0 {
        set_stun_len(&mut m, 8);
        let crc = stun::fingerprint::fingerprint_value(&m);
        m.extend_from_slice(&[0x80, 0x28, 0x00, 0x04]);
        m.extend_from_slice(&crc.to_be_bytes());
    } else {
        set_stun_len(&mut m, 0);
    }
    m
}

/// Sets the header length to the attributes present plus `extra` bytes still to come.
fn set_stun_len(m: &mut [u8], extra: usize) {
    let len = (m.len() - 20 + extra).min(usize::from(u16::MAX)) as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
}

// ---------------------------------------------------------------------------------------
// rtp: header view, extension remapping, rewriting, munger, VP8 keyframes
// ---------------------------------------------------------------------------------------

/// `rtp` target: `[extension map selector][RTP packet]` (its extensions read, audio
/// levels included, its payload read as RED); the payload bytes then drive a
/// sequence/timestamp munger.
pub fn rtp(data: &[u8]) {
    let Some((&sel, pkt)) = data.split_first() else {
        return;
    };
    let Ok(hdr) = RtpHeader::parse(pkt) else {
        return;
    };
    assert!(hdr.header_len <= hdr.payload_end && hdr.payload_end <= pkt.len());
    let payload = hdr.payload(pkt);
    let _ = is_vp8_keyframe(payload);
    let _ = is_h264_keyframe(payload);
    if let Ok(b) = crate::rtp::red::primary_block(payload) {
        // The primary block RED unwrapping copies is a non-empty tail of the payload.
        assert!(b.range.start < b.range.end && b.range.end == payload.len());
    }
    if let Some(d) = Vp8Descriptor::parse(payload) {
        // A simulcast consumer's rewrite keeps the descriptor's shape.
        let mut copy = payload.to_vec();
        assert!(d.rewrite(&mut copy, Some(0x7fff), Some(0xff), Some(0x1f)));
        assert_eq!(Vp8Descriptor::parse(&copy).map(|r| r.len), Some(d.len));
    }
    for id in [1, 2, 5, 14, 15, 200] {
        let _ = find_extension(pkt, &hdr, id);
        if let Some(s) = read_extension_str(pkt, &hdr, id) {
            assert!(!s.is_empty() && s.last() != Some(&0));
        }
        if let Some(level) = read_audio_level(pkt, &hdr, id) {
            assert!(level.attenuation <= 127 && level.dbov() <= 0);
        }
    }

    let map = extension_map(sel);
    let mut buf = pkt.to_vec();
    match remap_extensions(&mut buf, &hdr, &map) {
        // Remapping never changes the packet's length or layout.
        Ok(()) => {
            let again = RtpHeader::parse(&buf).expect("a remapped packet still parses");
            assert_eq!(
                (again.header_len, again.payload_end),
                (hdr.header_len, hdr.payload_end)
            );
        }
        Err(_) => assert_eq!(buf, pkt, "a failed remap leaves the packet unchanged"),
    }
    rewrite(&mut buf, 0x0102_0304, sel, 0xfffe, 0x8000_0001);
    let again = RtpHeader::parse(&buf).expect("a rewritten packet still parses");
    assert_eq!(
        (
            again.ssrc,
            again.payload_type,
            again.sequence,
            again.timestamp,
            again.marker
        ),
        (0x0102_0304, sel & 0x7f, 0xfffe, 0x8000_0001, hdr.marker)
    );

    // The munger sees the packet's numbers, then (seq, ts, resync) triples from the payload.
    let mut m = SeqTsMunger::new(0xabcd, u16::from_be_bytes([sel, sel]), u32::from(sel) << 24);
    let mut last = m
        .process(hdr.sequence, hdr.timestamp, None)
        .map(|_| hdr.sequence);
    for c in payload.chunks_exact(7) {
        let seq = u16::from_be_bytes([c[0], c[1]]);
        let ts = u32::from_be_bytes([c[2], c[3], c[4], c[5]]);
        if c[6] & 1 != 0 {
            m.mark_resync();
            last = None;
        }
        let hint = (c[6] & 2 != 0).then_some(ts);
        let forwarded = m.process(seq, ts, hint).is_some();
        // The same packet twice in a row is a duplicate and is never forwarded twice.
        if forwarded && last == Some(seq) {
            panic!("munger forwarded sequence number {seq} twice in a row");
        }
        if forwarded {
            last = Some(seq);
        }
    }
    let _ = m.last_out();
}

/// A few fixed maps: identity, rotated one-byte ids, remove all, two-byte ids.
fn extension_map(sel: u8) -> ExtensionMap {
    let mut map = ExtensionMap::new();
    match sel % 4 {
        0 => (1..=14).for_each(|id| map.insert(id, id)),
        1 => (1..=14).for_each(|id| map.insert(id, id % 14 + 1)),
        2 => {}
        _ => (1..=255).for_each(|id| map.insert(id, 255 - id / 2)),
    }
    map
}

// ---------------------------------------------------------------------------------------
// rtcp: compound parsing and the writers
// ---------------------------------------------------------------------------------------

/// `rtcp` target: the input is a compound RTCP packet; its first bytes also feed the
/// writers, whose output must parse back to what was written.
pub fn rtcp(data: &[u8]) {
    let mut out = Vec::new();
    let _ = rtcp::parse_compound(data, &mut out);

    let mut u = Unstructured::new(data);
    let Ok((a, b, c, seq)) = <(u32, u32, u32, u8)>::arbitrary(&mut u) else {
        return;
    };
    let block = ReportBlock {
        ssrc: b,
        fraction_lost: seq,
        total_lost: c & 0x7f_ffff,
        highest_seq: c,
        jitter: a,
        last_sr: b,
        delay_since_last_sr: c,
    };
    let ntp = (u64::from(a) << 32) | u64::from(b);
    let mut buf = Vec::new();
    rtcp::write_pli(&mut buf, a, b);
    rtcp::write_fir(&mut buf, a, b, seq);
    rtcp::write_sender_report(&mut buf, a, ntp, c, b, a);
    rtcp::write_receiver_report(&mut buf, a, &[block]);
    out.clear();
    rtcp::parse_compound(&buf, &mut out).expect("our own RTCP parses");
    let expected = [
        Feedback::Pli {
            sender_ssrc: a,
            media_ssrc: b,
        },
        Feedback::Fir {
            sender_ssrc: a,
            media_ssrcs: vec![(b, seq)],
        },
        Feedback::SenderReport {
            ssrc: a,
            ntp_time: ntp,
            rtp_time: c,
            packet_count: b,
            octet_count: a,
        },
        Feedback::ReceiverReport {
            ssrc: a,
            reports: vec![block],
        },
    ];
    assert_eq!(out, expected, "RTCP writers and parser disagree");

    // A NACK covers every sequence number it was asked for, in any order and across the
    // 16-bit wrap.
    let lost: Vec<u16> = data
        .chunks_exact(2)
        .take(64)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    if !lost.is_empty() {
        buf.clear();
        out.clear();
        rtcp::write_nack(&mut buf, a, b, &lost);
        rtcp::parse_compound(&buf, &mut out).expect("our own NACK parses");
        let reported: Vec<u16> = out
            .iter()
            .flat_map(|f| match f {
                Feedback::Nack { lost, .. } => lost.clone(),
                _ => Vec::new(),
            })
            .collect();
        for s in &lost {
            assert!(reported.contains(s), "NACK lost sequence number {s}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// srtp: protect / unprotect, both profiles
// ---------------------------------------------------------------------------------------

/// Fixed keying material of the `srtp` target (RFC 5764 4.2 layout, 60 bytes: enough for
/// either profile's prefix).
const SRTP_KEYING_MATERIAL: [u8; 60] = {
    let mut k = [0u8; 60];
    let mut i = 0;
    while i < 60 {
        k[i] = (i as u8).wrapping_mul(37).wrapping_add(11);
        i += 1;
    }
    k
};

/// The `srtp` target's (sender, receiver) contexts for `profile`: the sender is the DTLS
/// client's outbound context, the receiver the server's inbound one. Seed generators
/// protect packets with the sender.
pub fn srtp_contexts(profile: SrtpProfile) -> (SrtpContext, SrtpContext) {
    let km = &SRTP_KEYING_MATERIAL[..profile.keying_material_len()];
    let (client_out, _) =
        contexts_from_keying_material(profile, km, true).expect("fixed keys are valid");
    let (_, server_in) =
        contexts_from_keying_material(profile, km, false).expect("fixed keys are valid");
    (client_out, server_in)
}

/// Operations of the `srtp` target.
pub mod srtp_ops {
    /// Unprotect the bytes as SRTP.
    pub const UNPROTECT_RTP: u8 = 0;
    /// Unprotect the bytes as SRTCP.
    pub const UNPROTECT_RTCP: u8 = 1;
    /// Protect the bytes as RTP, then unprotect: must give them back.
    pub const ROUND_TRIP_RTP: u8 = 2;
    /// Protect the bytes as RTCP, then unprotect: must give them back.
    pub const ROUND_TRIP_RTCP: u8 = 3;
}

/// `srtp` target: `[profile: even = AES-GCM, odd = AES-CM]` then `[op][frame]...`. One
/// receiver sees every packet, so replay and rollover state carry across them.
pub fn srtp(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(sel) = u8::arbitrary(&mut u) else {
        return;
    };
    let profile = if sel & 1 == 0 {
        SrtpProfile::AeadAes128Gcm
    } else {
        SrtpProfile::Aes128CmHmacSha1_80
    };
    let (mut tx, mut rx) = srtp_contexts(profile);
    while !u.is_empty() {
        let (Ok(op), Ok(bytes)) = (u8::arbitrary(&mut u), frame(&mut u)) else {
            return;
        };
        let mut buf = bytes.to_vec();
        match op % 4 {
            srtp_ops::UNPROTECT_RTP => {
                let _ = rx.unprotect_rtp(&mut buf);
            }
            srtp_ops::UNPROTECT_RTCP => {
                let _ = rx.unprotect_rtcp(&mut buf);
            }
            op => {
                let rtcp = op == srtp_ops::ROUND_TRIP_RTCP;
                let len = buf.len();
                buf.resize(len + profile.rtcp_overhead(), 0);
                let sealed = if rtcp {
                    tx.protect_rtcp(&mut buf, len)
                } else {
                    tx.protect_rtp(&mut buf, len)
                };
                let Ok(n) = sealed else { continue };
                buf.truncate(n);
                let opened = if rtcp {
                    rx.unprotect_rtcp(&mut buf)
                } else {
                    rx.unprotect_rtp(&mut buf)
                };
                match opened {
                    Ok(m) => assert_eq!(
                        buf.get(..m),
                        Some(bytes),
                        "SRTP round trip changed the packet"
                    ),
                    // The fuzzer may send one sequence number twice; the receiver rightly
                    // refuses the second, and more than MAX_SSRCS streams.
                    Err(SrtpError::Replayed | SrtpError::TooOld | SrtpError::TooManySsrcs) => {}
                    Err(e) => panic!("a packet we protected does not unprotect: {e}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stun_fix_ups_make_a_valid_check() {
        let mut m = vec![0x00, 0x01, 0, 0, 0, 0, 0, 0];
        m.extend(*b"transaction!");
        m.extend([0x00, 0x25, 0x00, 0x00]); // USE-CANDIDATE
        let flags = stun_flags::USERNAME | stun_flags::INTEGRITY | stun_flags::FINGERPRINT;
        let creds = stun_credentials();
        let sealed = seal_stun(&m, flags, &creds);
        let mut agent = IceLite::new(creds);
        let mut out = Vec::new();
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 1);
        assert_eq!(
            agent.handle_stun(epoch().0, from, &sealed, &mut out),
            Ok(true)
        );
        assert_eq!(agent.selected(), Some(from));
    }
}
