//! Header parse / rewrite / extension remap checked against the `rtp` crate.
//!
//! The crate's `Marshal`/`Unmarshal` traits live in `webrtc-util`, which is not a
//! direct dependency, so they cannot be imported. `Marshal` is reachable as a trait
//! object through `HeaderExtension::Custom`, and trait-object methods need no import,
//! so packets are serialised with the crate and compared byte for byte with what our
//! in-place code produces (a stricter check than comparing re-parsed fields).

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rtp::extension::HeaderExtension;
use rtp::header::{Extension, Header};
use rtp::packet::Packet;

use super::*;

/// Serialises a packet with the `rtp` crate.
fn crate_marshal(packet: Packet) -> Vec<u8> {
    let HeaderExtension::Custom { extension, .. } = (HeaderExtension::Custom {
        uri: "".into(),
        extension: Box::new(packet),
    }) else {
        unreachable!()
    };
    extension.marshal().expect("crate marshal").to_vec()
}

fn ext(id: u8, payload: &[u8]) -> Extension {
    Extension {
        id,
        payload: Bytes::copy_from_slice(payload),
    }
}

fn crate_header(csrcs: usize, profile: Option<u16>, exts: Vec<Extension>, pad: bool) -> Header {
    Header {
        version: 2,
        padding: pad,
        extension: profile.is_some(),
        marker: true,
        payload_type: 111,
        sequence_number: 0xFFFE,
        timestamp: 0xDEAD_BEEF,
        ssrc: 0x1234_5678,
        csrc: (0..csrcs as u32).map(|i| 0xC000_0000 + i).collect(),
        extension_profile: profile.unwrap_or(0),
        extensions: exts,
        extensions_padding: 0,
    }
}

fn one_byte_exts() -> Vec<Extension> {
    vec![
        ext(1, &[0x11]),
        ext(3, &[0x31, 0x32, 0x33]),
        ext(5, &[0x51, 0x52]),
        ext(14, &[0xE0; 16]),
    ]
}

fn two_byte_exts() -> Vec<Extension> {
    vec![
        ext(1, &[]),
        ext(20, &[0x20; 17]),
        ext(200, &[0xC8, 0xC9]),
        ext(255, &[0xFF; 3]),
    ]
}

/// Every combination the tests sweep: CSRC count, extension form, padding, payload.
fn cases() -> Vec<(Header, Vec<u8>)> {
    let mut out = Vec::new();
    for csrcs in [0, 1, 3, 15] {
        for (profile, exts) in [
            (None, vec![]),
            (Some(0xBEDE), one_byte_exts()),
            (Some(0x1000), two_byte_exts()),
        ] {
            for pad in [false, true] {
                for payload_len in [0usize, 1, 3, 4, 200] {
                    let payload = (0..payload_len).map(|i| i as u8).collect();
                    out.push((crate_header(csrcs, profile, exts.clone(), pad), payload));
                }
            }
        }
    }
    out
}

#[test]
fn parse_matches_crate_layout() {
    for (header, payload) in cases() {
        let bytes = crate_marshal(Packet {
            header: header.clone(),
            payload: Bytes::from(payload.clone()),
        });
        let h = RtpHeader::parse(&bytes).unwrap_or_else(|e| panic!("{e} for {header:?}"));
        assert!(h.marker);
        assert_eq!(h.payload_type, header.payload_type);
        assert_eq!(h.sequence, header.sequence_number);
        assert_eq!(h.timestamp, header.timestamp);
        assert_eq!(h.ssrc, header.ssrc);
        assert_eq!(usize::from(h.csrc_count), header.csrc.len());
        assert_eq!(h.payload(&bytes), &payload[..]);
        assert_eq!(h.payload_end + usize::from(h.padding_len), bytes.len());
        assert_eq!(h.padding_len > 0, header.padding);
        match h.extension {
            None => assert!(!header.extension),
            Some(block) => {
                assert_eq!(block.profile, header.extension_profile);
                assert_eq!(block.start, 12 + 4 * header.csrc.len() + 4);
                assert_eq!(block.start + block.len, h.header_len);
                for e in &header.extensions {
                    assert_eq!(
                        find_extension(&bytes, &h, e.id),
                        Some(&e.payload[..]),
                        "id {}",
                        e.id
                    );
                }
                assert_eq!(find_extension(&bytes, &h, 2), None);
            }
        }
    }
}

#[test]
fn rewrite_matches_crate_marshal() {
    for (header, payload) in cases() {
        for marker in [false, true] {
            let mut header = header.clone();
            header.marker = marker;
            let mut bytes = crate_marshal(Packet {
                header: header.clone(),
                payload: Bytes::from(payload.clone()),
            });
            RtpHeader::parse(&bytes).unwrap();
            rewrite(&mut bytes, 0xA1B2_C3D4, 96, 7, 0x0102_0304);

            let mut expected = header.clone();
            expected.ssrc = 0xA1B2_C3D4;
            expected.payload_type = 96;
            expected.sequence_number = 7;
            expected.timestamp = 0x0102_0304;
            let expected = crate_marshal(Packet {
                header: expected,
                payload: Bytes::from(payload.clone()),
            });
            assert_eq!(bytes, expected);
            let h = RtpHeader::parse(&bytes).unwrap();
            assert_eq!(h.marker, marker);
        }
    }
}

#[test]
fn rewrite_masks_payload_type_and_tolerates_short_buffers() {
    let mut bytes = crate_marshal(Packet {
        header: crate_header(0, None, vec![], false),
        payload: Bytes::from_static(b"x"),
    });
    rewrite(&mut bytes, 1, 0xFF, 2, 3);
    let h = RtpHeader::parse(&bytes).unwrap();
    assert!(h.marker);
    assert_eq!(h.payload_type, 0x7F);
    let mut short = [0x80u8; 11];
    rewrite(&mut short, 1, 2, 3, 4);
    assert_eq!(short, [0x80; 11]);
}

/// Checks that `got` equals the crate's serialisation of `header` with `kept`
/// extensions, except that our element area keeps its original length, the
/// difference being 0 padding at its end.
fn assert_remapped(got: &[u8], header: &Header, kept: Vec<Extension>, payload: &[u8]) {
    let mut h = header.clone();
    h.extensions = kept;
    let expected = crate_marshal(Packet {
        header: h,
        payload: Bytes::copy_from_slice(payload),
    });
    let ours = RtpHeader::parse(got).unwrap();
    let theirs = RtpHeader::parse(&expected).unwrap();
    let (ob, tb) = (ours.extension.unwrap(), theirs.extension.unwrap());
    // Fixed header and CSRCs identical (the extension length field may differ).
    assert_eq!(got[..ob.start - 2], expected[..tb.start - 2]);
    let ours_area = &got[ob.start..ob.start + ob.len];
    let theirs_area = &expected[tb.start..tb.start + tb.len];
    assert!(ob.len >= tb.len);
    assert_eq!(&ours_area[..tb.len], theirs_area);
    assert!(
        ours_area[tb.len..].iter().all(|&b| b == 0),
        "{ours_area:x?}"
    );
    assert_eq!(&got[ours.header_len..], &expected[theirs.header_len..]);
}

#[test]
fn remap_one_byte_with_removal() {
    for pad in [false, true] {
        let header = crate_header(2, Some(0xBEDE), one_byte_exts(), pad);
        let payload = b"vp8 payload bytes";
        let mut bytes = crate_marshal(Packet {
            header: header.clone(),
            payload: Bytes::from_static(payload),
        });
        let len = bytes.len();
        let h = RtpHeader::parse(&bytes).unwrap();
        let mut map = ExtensionMap::new();
        map.insert(1, 2);
        // 3 is not negotiated by the consumer.
        map.insert(5, 14);
        map.insert(14, 1);
        remap_extensions(&mut bytes, &h, &map).unwrap();
        assert_eq!(bytes.len(), len);
        assert_remapped(
            &bytes,
            &header,
            vec![ext(2, &[0x11]), ext(14, &[0x51, 0x52]), ext(1, &[0xE0; 16])],
            payload,
        );
        let h2 = RtpHeader::parse(&bytes).unwrap();
        assert_eq!(find_extension(&bytes, &h2, 14), Some(&[0x51, 0x52][..]));
        assert_eq!(find_extension(&bytes, &h2, 3), None);
    }
}

#[test]
fn remap_two_byte_with_removal() {
    let header = crate_header(0, Some(0x1000), two_byte_exts(), true);
    let payload = b"opus";
    let mut bytes = crate_marshal(Packet {
        header: header.clone(),
        payload: Bytes::from_static(payload),
    });
    let h = RtpHeader::parse(&bytes).unwrap();
    let mut map = ExtensionMap::new();
    map.insert(1, 1);
    map.insert(20, 100);
    // 200 is dropped; 255 goes to an id only the two-byte form can carry.
    map.insert(255, 250);
    remap_extensions(&mut bytes, &h, &map).unwrap();
    assert_remapped(
        &bytes,
        &header,
        vec![ext(1, &[]), ext(100, &[0x20; 17]), ext(250, &[0xFF; 3])],
        payload,
    );
}

#[test]
fn two_byte_profile_appbits_are_accepted() {
    // RFC 8285 4.3: the low 4 bits of 0x100X are application bits; the crate only
    // emits 0x1000, so patch the profile after serialising.
    let header = crate_header(0, Some(0x1000), two_byte_exts(), false);
    let mut bytes = crate_marshal(Packet {
        header: header.clone(),
        payload: Bytes::from_static(b"x"),
    });
    bytes[13] = 0x0A;
    let h = RtpHeader::parse(&bytes).unwrap();
    let block = h.extension.unwrap();
    assert_eq!(block.profile, 0x100A);
    assert!(block.is_two_byte() && !block.is_one_byte());
    assert_eq!(find_extension(&bytes, &h, 200), Some(&[0xC8, 0xC9][..]));
    let mut map = ExtensionMap::new();
    map.insert(200, 3);
    remap_extensions(&mut bytes, &h, &map).unwrap();
    assert_eq!(find_extension(&bytes, &h, 3), Some(&[0xC8, 0xC9][..]));
    assert_eq!(find_extension(&bytes, &h, 20), None);
}

#[test]
fn remap_identity_and_remove_all() {
    for (profile, exts) in [(0xBEDE, one_byte_exts()), (0x1000, two_byte_exts())] {
        let header = crate_header(1, Some(profile), exts.clone(), false);
        let original = crate_marshal(Packet {
            header: header.clone(),
            payload: Bytes::from_static(b"p"),
        });
        let h = RtpHeader::parse(&original).unwrap();

        let mut identity = ExtensionMap::new();
        for e in &exts {
            identity.insert(e.id, e.id);
        }
        let mut bytes = original.clone();
        remap_extensions(&mut bytes, &h, &identity).unwrap();
        assert_eq!(bytes, original);

        let mut bytes = original.clone();
        remap_extensions(&mut bytes, &h, &ExtensionMap::new()).unwrap();
        let block = h.extension.unwrap();
        assert!(bytes[block.start..block.start + block.len]
            .iter()
            .all(|&b| b == 0));
        assert_eq!(bytes[..block.start], original[..block.start]);
        assert_eq!(bytes[h.header_len..], original[h.header_len..]);
        assert_eq!(RtpHeader::parse(&bytes).unwrap(), h);
    }
}

#[test]
fn parse_rejects_malformed() {
    let good = crate_marshal(Packet {
        header: crate_header(2, Some(0xBEDE), one_byte_exts(), true),
        payload: Bytes::from_static(b"abc"),
    });
    let h = RtpHeader::parse(&good).unwrap();

    for n in 0..h.header_len {
        assert!(
            matches!(
                RtpHeader::parse(&good[..n]),
                Err(RtpError::TooShort { .. } | RtpError::BadPadding(_))
            ),
            "len {n}"
        );
    }
    let mut v1 = good.clone();
    v1[0] = (v1[0] & 0x3F) | 0x40;
    assert_eq!(RtpHeader::parse(&v1), Err(RtpError::BadVersion(1)));

    let mut zero_pad = good.clone();
    *zero_pad.last_mut().unwrap() = 0;
    assert_eq!(RtpHeader::parse(&zero_pad), Err(RtpError::BadPadding(0)));

    let mut huge_pad = good.clone();
    *huge_pad.last_mut().unwrap() = 255;
    assert_eq!(RtpHeader::parse(&huge_pad), Err(RtpError::BadPadding(255)));

    // Padding exactly as long as everything after the header is allowed.
    let mut all_pad = good[..h.header_len].to_vec();
    all_pad.extend_from_slice(&[0, 0, 3]);
    let p = RtpHeader::parse(&all_pad).unwrap();
    assert_eq!((p.payload_end, p.padding_len), (h.header_len, 3));
    assert!(p.payload(&all_pad).is_empty());
}

/// Random bytes, and valid packets with random bytes flipped, must never panic and
/// anything `parse` accepts must have in-bounds offsets.
#[test]
fn random_garbage_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED);
    let seeds: Vec<Vec<u8>> = cases()
        .into_iter()
        .map(|(header, payload)| {
            crate_marshal(Packet {
                header,
                payload: Bytes::from(payload),
            })
        })
        .collect();
    let mut map = ExtensionMap::new();
    for id in 1..=255u8 {
        map.insert(id, rng.gen());
    }
    for i in 0..200_000 {
        let mut buf: Vec<u8> = if i % 2 == 0 {
            let len = rng.gen_range(0..64);
            (0..len).map(|_| rng.gen()).collect()
        } else {
            let mut b = seeds[rng.gen_range(0..seeds.len())].clone();
            for _ in 0..rng.gen_range(1..4) {
                let at = rng.gen_range(0..b.len());
                b[at] = rng.gen();
            }
            // Force v=2 most of the time so the deeper paths get exercised.
            b[0] = (b[0] & 0x3F) | 0x80;
            let keep = rng.gen_range(0..=b.len());
            b.truncate(keep);
            b
        };
        let Ok(h) = RtpHeader::parse(&buf) else {
            continue;
        };
        assert!(h.header_len <= h.payload_end && h.payload_end <= buf.len());
        let _ = is_vp8_keyframe(h.payload(&buf));
        for id in [0, 1, 5, 14, 15, 200] {
            let _ = find_extension(&buf, &h, id);
        }
        let len = buf.len();
        let _ = remap_extensions(&mut buf, &h, &map);
        assert_eq!(buf.len(), len);
        rewrite(&mut buf, rng.gen(), rng.gen(), rng.gen(), rng.gen());
        // A stale header applied to another buffer must not panic either.
        let _ = remap_extensions(&mut buf[..len / 2], &h, &map);
        let _ = find_extension(&buf[..len / 2], &h, 1);
    }
    for _ in 0..100_000 {
        let len = rng.gen_range(0..24);
        let payload: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let _ = is_vp8_keyframe(&payload);
    }
}
