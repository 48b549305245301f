//! RTP retransmission payload format (RFC 4588), session-multiplexed (SSRC-multiplexed,
//! RFC 4588 4 and 8.3): the retransmission stream has its own SSRC, payload type and
//! sequence numbers, and each packet carries the original sequence number (OSN) in
//! the first two bytes of its payload.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         RTP Header                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |            OSN                |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               |
//! |                  Original RTP Packet Payload                  |
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! RFC 4588 4: the RTX header keeps the original timestamp, marker bit, CSRCs and
//! header extensions; only SSRC, payload type and sequence number change. Padding is
//! not part of the payload, so the original's padding is dropped when wrapping, and
//! an RTX packet's own padding (browsers pad RTX for bandwidth probing) is dropped
//! when unwrapping.
//!
//! Both directions work on caller-owned buffers and never allocate. Inputs are
//! untrusted: every length is checked and a mismatch is an [`RtpError`], never a panic.

use super::{RtpError, RtpHeader, FIXED_HEADER_LEN};

/// Size of the original sequence number field (RFC 4588 4).
pub const OSN_LEN: usize = 2;

/// P bit of the first header byte (RFC 3550 5.1).
const PADDING_BIT: u8 = 0x20;

/// Checks that `header` describes a packet of `len` bytes held in a buffer of
/// `buf_len` (a caller may pass a header parsed from some other buffer) and returns
/// (payload start, payload end). A mismatch is reported as [`RtpError::TooShort`]
/// with the length the header implies, the nearest variant the error has.
fn payload_bounds(
    buf_len: usize,
    len: usize,
    header: &RtpHeader,
) -> Result<(usize, usize), RtpError> {
    let end_with_padding = header
        .payload_end
        .checked_add(usize::from(header.padding_len));
    if len > buf_len
        || header.header_len < FIXED_HEADER_LEN
        || header.header_len > header.payload_end
        || end_with_padding != Some(len)
    {
        return Err(RtpError::TooShort {
            len: buf_len.min(len),
            needed: end_with_padding
                .unwrap_or(usize::MAX)
                .max(header.header_len),
        });
    }
    Ok((header.header_len, header.payload_end))
}

/// Writes sequence number, payload type (keeping the marker bit) and SSRC into a
/// fixed header and clears its P bit.
fn set_fields(h: &mut [u8; FIXED_HEADER_LEN], ssrc: u32, payload_type: u8, sequence: u16) {
    h[0] &= !PADDING_BIT;
    h[1] = (h[1] & 0x80) | (payload_type & 0x7F);
    h[2..4].copy_from_slice(&sequence.to_be_bytes());
    h[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Turns the RTX packet in `buf[..len]` (parsed as `header`) back into the original
/// packet, in place, and returns its length (RFC 4588 4): the sequence number becomes
/// the OSN, SSRC and payload type become the media stream's, the payload moves two
/// bytes to the left over the OSN, and the RTX packet's padding is removed (P bit
/// cleared). Timestamp, marker, CSRCs and extensions are kept.
///
/// An RTX packet without room for an OSN is rejected with [`RtpError::TooShort`]:
/// that is what a padding-only bandwidth probe looks like (header + padding, no
/// payload), which the caller should drop rather than forward.
pub fn unwrap_rtx(
    buf: &mut [u8],
    len: usize,
    header: &RtpHeader,
    media_ssrc: u32,
    media_pt: u8,
) -> Result<usize, RtpError> {
    let (start, end) = payload_bounds(buf.len(), len, header)?;
    let osn_end = start + OSN_LEN;
    if osn_end > end {
        return Err(RtpError::TooShort {
            len: end,
            needed: osn_end,
        });
    }
    let Some(&[o0, o1]) = buf.get(start..osn_end).and_then(|s| s.first_chunk::<2>()) else {
        return Err(RtpError::TooShort {
            len,
            needed: osn_end,
        });
    };
    let osn = u16::from_be_bytes([o0, o1]);
    // Checked above: start + 2 <= end <= len <= buf.len().
    buf.copy_within(osn_end..end, start);
    let Some(h) = buf.first_chunk_mut::<FIXED_HEADER_LEN>() else {
        return Err(RtpError::TooShort {
            len,
            needed: FIXED_HEADER_LEN,
        });
    };
    set_fields(h, media_ssrc, media_pt, osn);
    Ok(end - OSN_LEN)
}

/// Builds the RTX packet for `original` (parsed as `header`) into `dst` and returns
/// its length (RFC 4588 4): the original header with SSRC, payload type (marker
/// kept) and sequence number replaced, then the OSN (the original sequence number),
/// then the original payload; the original padding is dropped (P bit cleared).
///
/// `dst` must hold `header.payload_end + 2` bytes, else [`RtpError::TooShort`] names
/// the size needed.
pub fn write_rtx(
    dst: &mut [u8],
    original: &[u8],
    header: &RtpHeader,
    rtx_ssrc: u32,
    rtx_pt: u8,
    rtx_seq: u16,
) -> Result<usize, RtpError> {
    let (start, end) = payload_bounds(original.len(), original.len(), header)?;
    let total = end + OSN_LEN;
    let (Some(hdr), Some(payload)) = (original.get(..start), original.get(start..end)) else {
        return Err(RtpError::TooShort {
            len: original.len(),
            needed: end,
        });
    };
    let Some(out) = dst.get_mut(..total) else {
        return Err(RtpError::TooShort {
            len: dst.len(),
            needed: total,
        });
    };
    let (out_hdr, rest) = out.split_at_mut(start);
    let (osn, out_payload) = rest.split_at_mut(OSN_LEN);
    out_hdr.copy_from_slice(hdr);
    osn.copy_from_slice(&header.sequence.to_be_bytes());
    out_payload.copy_from_slice(payload);
    let Some(h) = out.first_chunk_mut::<FIXED_HEADER_LEN>() else {
        return Err(RtpError::TooShort {
            len: total,
            needed: FIXED_HEADER_LEN,
        });
    };
    set_fields(h, rtx_ssrc, rtx_pt, rtx_seq);
    Ok(total)
}

/// [`write_rtx`] in place: turns the packet in `buf[..len]` (parsed as `header`) into
/// its RTX packet, shifting the payload two bytes to the right, and returns the new
/// length. Saves a copy on the retransmission path, where the packet has already been
/// copied into the send buffer and rewritten for the consumer. `buf` must have room
/// for `header.payload_end + 2` bytes.
pub fn wrap_rtx(
    buf: &mut [u8],
    len: usize,
    header: &RtpHeader,
    rtx_ssrc: u32,
    rtx_pt: u8,
    rtx_seq: u16,
) -> Result<usize, RtpError> {
    let (start, end) = payload_bounds(buf.len(), len, header)?;
    let total = end + OSN_LEN;
    if total > buf.len() {
        return Err(RtpError::TooShort {
            len: buf.len(),
            needed: total,
        });
    }
    // Read the original sequence number from the bytes, not from `header`: the
    // caller may have rewritten it (e.g. to the consumer's numbering) since parsing.
    let Some(h) = buf.first_chunk_mut::<FIXED_HEADER_LEN>() else {
        return Err(RtpError::TooShort {
            len,
            needed: FIXED_HEADER_LEN,
        });
    };
    let osn = [h[2], h[3]];
    set_fields(h, rtx_ssrc, rtx_pt, rtx_seq);
    // Checked above: start <= end and end + 2 <= buf.len().
    buf.copy_within(start..end, start + OSN_LEN);
    if let Some(o) = buf.get_mut(start..start + OSN_LEN) {
        o.copy_from_slice(&osn);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use ::rtp::extension::HeaderExtension;
    use ::rtp::header::{Extension, Header};
    use ::rtp::packet::Packet;
    use bytes::Bytes;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Serialises with the `rtp` crate (see `rtp/tests.rs` for why through a trait
    /// object: the crate's `Marshal` trait lives in a crate we do not depend on).
    fn crate_marshal(packet: Packet) -> Vec<u8> {
        let HeaderExtension::Custom { extension, .. } = (HeaderExtension::Custom {
            uri: "".into(),
            extension: Box::new(packet),
        }) else {
            unreachable!()
        };
        extension.marshal().expect("crate marshal").to_vec()
    }

    fn header(csrcs: u32, exts: bool, padding: bool, marker: bool) -> Header {
        Header {
            version: 2,
            padding,
            extension: exts,
            marker,
            payload_type: 96,
            sequence_number: 0xFFFF,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1111_2222,
            csrc: (0..csrcs).map(|i| 0xC000_0000 + i).collect(),
            extension_profile: if exts { 0xBEDE } else { 0 },
            extensions: if exts {
                vec![
                    Extension {
                        id: 3,
                        payload: Bytes::from_static(&[1, 2, 3]),
                    },
                    Extension {
                        id: 9,
                        payload: Bytes::from_static(&[9]),
                    },
                ]
            } else {
                vec![]
            },
            extensions_padding: 0,
        }
    }

    /// Every shape: CSRCs, extensions, padding, marker, payload sizes (0 included:
    /// RFC 4588 allows retransmitting an empty payload, the RTX payload is the OSN).
    fn cases() -> Vec<(Header, Vec<u8>)> {
        let mut out = Vec::new();
        for csrcs in [0, 2] {
            for exts in [false, true] {
                for padding in [false, true] {
                    for marker in [false, true] {
                        for n in [0usize, 1, 2, 5, 1000] {
                            let payload = (0..n).map(|i| (i * 7) as u8).collect();
                            out.push((header(csrcs, exts, padding, marker), payload));
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn write_rtx_matches_crate_and_unwrap_restores_original() {
        for (h, payload) in cases() {
            let original = crate_marshal(Packet {
                header: h.clone(),
                payload: Bytes::from(payload.clone()),
            });
            let parsed = RtpHeader::parse(&original).expect("parse original");

            // Expected RTX bytes, built by the crate: same header, P bit clear, new
            // SSRC/PT/seq, payload = OSN + original payload.
            let mut rtx_header = h.clone();
            rtx_header.padding = false;
            rtx_header.ssrc = 0xAAAA_BBBB;
            rtx_header.payload_type = 97;
            rtx_header.sequence_number = 0x0102;
            let mut rtx_payload = h.sequence_number.to_be_bytes().to_vec();
            rtx_payload.extend_from_slice(&payload);
            let expected = crate_marshal(Packet {
                header: rtx_header,
                payload: Bytes::from(rtx_payload),
            });

            let mut dst = [0u8; 1600];
            let n = write_rtx(&mut dst, &original, &parsed, 0xAAAA_BBBB, 97, 0x0102)
                .expect("write_rtx");
            assert_eq!(&dst[..n], &expected[..], "{h:?}");

            // In place gives the same bytes.
            let mut inplace = original.clone();
            inplace.resize(original.len() + 2, 0);
            let m = wrap_rtx(
                &mut inplace,
                original.len(),
                &parsed,
                0xAAAA_BBBB,
                97,
                0x0102,
            )
            .expect("wrap_rtx");
            assert_eq!(&inplace[..m], &expected[..]);

            // Round trip: the original without its padding.
            let mut plain_header = h.clone();
            plain_header.padding = false;
            let unpadded = crate_marshal(Packet {
                header: plain_header,
                payload: Bytes::from(payload.clone()),
            });
            let rtx_parsed = RtpHeader::parse(&dst[..n]).expect("parse rtx");
            assert_eq!(rtx_parsed.sequence, 0x0102);
            assert_eq!(rtx_parsed.ssrc, 0xAAAA_BBBB);
            assert_eq!(rtx_parsed.payload_type, 97);
            assert_eq!(rtx_parsed.marker, h.marker);
            let back = unwrap_rtx(&mut dst, n, &rtx_parsed, 0x1111_2222, 96).expect("unwrap");
            assert_eq!(&dst[..back], &unpadded[..], "{h:?}");
        }
    }

    #[test]
    fn unwrap_drops_rtx_padding() {
        // An RTX packet padded by the sender (as browsers do) unwraps to the bare
        // original.
        let h = header(1, true, false, true);
        let payload = vec![0x55u8; 33];
        let original = crate_marshal(Packet {
            header: h.clone(),
            payload: Bytes::from(payload.clone()),
        });
        let mut rtx_header = h.clone();
        rtx_header.padding = true;
        rtx_header.ssrc = 5;
        rtx_header.payload_type = 97;
        rtx_header.sequence_number = 9;
        let mut rtx_payload = h.sequence_number.to_be_bytes().to_vec();
        rtx_payload.extend_from_slice(&payload);
        let mut rtx = crate_marshal(Packet {
            header: rtx_header,
            payload: Bytes::from(rtx_payload),
        });
        let parsed = RtpHeader::parse(&rtx).expect("parse");
        assert!(parsed.padding_len > 0);
        let len = rtx.len();
        let n = unwrap_rtx(&mut rtx, len, &parsed, 0x1111_2222, 96).expect("unwrap");
        assert_eq!(&rtx[..n], &original[..]);
    }

    #[test]
    fn osn_wraps_and_pt_keeps_marker() {
        let h = header(0, false, false, true);
        let original = crate_marshal(Packet {
            header: h,
            payload: Bytes::from_static(b"abc"),
        });
        let parsed = RtpHeader::parse(&original).expect("parse");
        let mut dst = [0u8; 64];
        // Out-of-range PT is masked, never touching the marker.
        let n = write_rtx(&mut dst, &original, &parsed, 1, 0xFF, 0xFFFF).expect("write");
        let r = RtpHeader::parse(&dst[..n]).expect("parse rtx");
        assert!(r.marker);
        assert_eq!(r.payload_type, 0x7F);
        assert_eq!(r.payload(&dst[..n]), &[0xFF, 0xFF, b'a', b'b', b'c']);
    }

    #[test]
    fn padding_only_probe_and_short_buffers_are_errors() {
        // Header + padding only: a bandwidth probe, no OSN.
        let mut h = header(0, false, true, false);
        h.ssrc = 5;
        let mut probe = crate_marshal(Packet {
            header: h,
            payload: Bytes::new(),
        });
        let parsed = RtpHeader::parse(&probe).expect("parse");
        let len = probe.len();
        assert!(matches!(
            unwrap_rtx(&mut probe, len, &parsed, 1, 96),
            Err(RtpError::TooShort { .. })
        ));

        let original = crate_marshal(Packet {
            header: header(0, false, false, false),
            payload: Bytes::from_static(&[1; 100]),
        });
        let parsed = RtpHeader::parse(&original).expect("parse");
        let mut small = [0u8; 113];
        assert_eq!(
            write_rtx(&mut small, &original, &parsed, 1, 97, 1),
            Err(RtpError::TooShort {
                len: 113,
                needed: 114
            })
        );
        let mut exact = original.clone();
        let len = exact.len();
        assert!(wrap_rtx(&mut exact, len, &parsed, 1, 97, 1).is_err());
        assert_eq!(exact, original, "unchanged on error");
        // A header that does not describe the buffer.
        assert!(write_rtx(&mut [0u8; 200], &original[..50], &parsed, 1, 97, 1).is_err());
        assert!(unwrap_rtx(&mut exact, len + 1, &parsed, 1, 96).is_err());
        assert!(unwrap_rtx(&mut exact[..50], len, &parsed, 1, 96).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4588);
        let mut buf = [0u8; 256];
        let mut dst = [0u8; 256];
        for _ in 0..200_000 {
            let len = rng.gen_range(0..=buf.len());
            rng.fill(&mut buf[..len]);
            if rng.gen_ratio(1, 2) {
                buf[0] = (buf[0] & 0x3F) | 0x80;
            }
            let parsed = match RtpHeader::parse(&buf[..len]) {
                Ok(h) => h,
                // A header that does not describe this buffer at all.
                Err(_) => RtpHeader {
                    marker: false,
                    payload_type: 0,
                    sequence: 0,
                    timestamp: 0,
                    ssrc: 0,
                    csrc_count: 0,
                    header_len: rng.gen_range(0..300),
                    payload_end: rng.gen_range(0..300),
                    padding_len: rng.gen(),
                    extension: None,
                },
            };
            let dlen = rng.gen_range(0..=dst.len());
            if let Ok(n) = write_rtx(&mut dst[..dlen], &buf[..len], &parsed, 1, 2, 3) {
                assert_eq!(n, parsed.payload_end + 2);
            }
            let l = rng.gen_range(0..=len + 2).min(buf.len());
            let _ = wrap_rtx(&mut buf, l, &parsed, 1, 2, 3);
            if let Ok(n) = unwrap_rtx(&mut buf, l, &parsed, 1, 2) {
                assert!(n <= l);
            }
        }
    }
}
