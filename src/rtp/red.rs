//! RTP payload for redundant audio data (RFC 2198), as Chromium sends Opus with it
//! (`audio/red`, fmtp `<opus pt>/<opus pt>`): block headers, then the redundant
//! blocks (older frames), then the primary block (this packet's own frame).
//!
//! A subscriber that did not negotiate RED gets the primary block alone, as a plain
//! Opus packet ([`primary_block`] finds it in place; the consumer copies just it).

use std::ops::Range;

/// Size of the header of a redundant block: F=1, block PT (7 bits), timestamp offset
/// (14 bits), block length (10 bits) (RFC 2198 section 3).
const REDUNDANT_HEADER_LEN: usize = 4;

/// Why a RED payload could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedError {
    /// The block headers run past the payload (no final one-byte header).
    #[error("RED block headers run past the payload")]
    TruncatedHeaders,
    /// The redundant blocks' lengths add up past the payload.
    #[error("RED redundant blocks run past the payload")]
    TruncatedBlocks,
    /// The primary block is empty: no frame to forward.
    #[error("RED primary block is empty")]
    EmptyPrimary,
}

/// The primary block of a RED payload: its payload type and where it is in `payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryBlock {
    pub payload_type: u8,
    pub range: Range<usize>,
}

/// Finds the primary block of a RED `payload` (the RTP payload, padding excluded).
/// Reads the block headers only; no allocation. The primary block is the last one: its
/// header is the one-byte header with F=0, its data what follows the redundant blocks.
pub fn primary_block(payload: &[u8]) -> Result<PrimaryBlock, RedError> {
    let mut at = 0usize;
    let mut redundant = 0usize;
    loop {
        let Some(&first) = payload.get(at) else {
            return Err(RedError::TruncatedHeaders);
        };
        if first & 0x80 == 0 {
            let start = at + 1 + redundant;
            if start > payload.len() {
                return Err(RedError::TruncatedBlocks);
            }
            if start == payload.len() {
                return Err(RedError::EmptyPrimary);
            }
            return Ok(PrimaryBlock {
                payload_type: first & 0x7f,
                range: start..payload.len(),
            });
        }
        let Some(h) = payload.get(at..at + REDUNDANT_HEADER_LEN) else {
            return Err(RedError::TruncatedHeaders);
        };
        // 10-bit block length: the low 2 bits of the third byte and the fourth.
        let len = (usize::from(h[2] & 0x03) << 8) | usize::from(h[3]);
        redundant += len;
        at += REDUNDANT_HEADER_LEN;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An audio/red payload laid out as Chromium sends it (RED pt 63 over Opus pt 111,
    /// `WebRTC-Audio-Red-For-Opus`: one redundant block, the previous 20 ms frame:
    /// header 0xef 0x0f 0x00 0x49 = F, pt 111, timestamp offset 960, length 73), then
    /// the primary header 0x6f and the 66-byte primary frame. Only the block structure
    /// matters here; the Opus bytes are a TOC and a filler.
    fn chromium_red() -> Vec<u8> {
        let mut p = vec![0xef, 0x0f, 0x00, 0x49, 0x6f];
        // Redundant Opus frame (TOC 0x78: SILK-only WB 20 ms, as Chromium's VoIP mode).
        p.push(0x78);
        p.extend(std::iter::repeat_n(0xa5, 72));
        // Primary Opus frame.
        p.push(0x78);
        p.extend(std::iter::repeat_n(0x5a, 65));
        p
    }

    #[test]
    fn chromium_packet_primary_is_the_last_block() {
        let p = chromium_red();
        let b = primary_block(&p).unwrap();
        assert_eq!(b.payload_type, 111);
        assert_eq!(b.range, 5 + 73..p.len());
        assert_eq!(b.range.len(), 66);
        assert_eq!(p[b.range.start], 0x78);
        assert!(p[b.range.clone()][1..].iter().all(|&x| x == 0x5a));
    }

    #[test]
    fn primary_only_packet() {
        // Chromium's first RED packet has no earlier frame: just the one-byte header.
        let p = [0x6f, 0x78, 0x01, 0x02];
        assert_eq!(
            primary_block(&p).unwrap(),
            PrimaryBlock {
                payload_type: 111,
                range: 1..4
            }
        );
    }

    #[test]
    fn two_redundant_blocks() {
        let mut p = vec![0xef, 0x1e, 0x00, 0x02, 0xef, 0x0f, 0x00, 0x03, 0x6f];
        p.extend([1, 1, 2, 2, 2, 9, 9]);
        let b = primary_block(&p).unwrap();
        assert_eq!(&p[b.range], &[9, 9]);
    }

    #[test]
    fn malformed_payloads_are_errors() {
        assert_eq!(primary_block(&[]), Err(RedError::TruncatedHeaders));
        // F=1 header cut short.
        assert_eq!(
            primary_block(&[0xef, 0x0f, 0x00]),
            Err(RedError::TruncatedHeaders)
        );
        // Only redundant headers, never the final one.
        assert_eq!(
            primary_block(&[0xef, 0x0f, 0x00, 0x00]),
            Err(RedError::TruncatedHeaders)
        );
        // A redundant block longer than what is left (1023 bytes).
        assert_eq!(
            primary_block(&[0xef, 0x0f, 0x03, 0xff, 0x6f, 1, 2]),
            Err(RedError::TruncatedBlocks)
        );
        // Redundant blocks fill the payload exactly: no primary frame.
        assert_eq!(
            primary_block(&[0xef, 0x0f, 0x00, 0x02, 0x6f, 1, 2]),
            Err(RedError::EmptyPrimary)
        );
    }

    #[test]
    fn any_bytes_never_panic() {
        let mut x = 0x1234_5678u32;
        for len in 0..64 {
            let p: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            if let Ok(b) = primary_block(&p) {
                assert!(b.range.start < b.range.end && b.range.end == p.len());
            }
        }
    }
}
