//! Zero-allocation RTP header view and in-place rewriting for the forwarding hot path.
//!
//! The `rtp` crate's `Header` owns `Vec`s for CSRCs and extensions, so a full
//! unmarshal + marshal round trip costs 100-180 ns per packet. An SFU only needs to
//! read a handful of fixed-offset fields and rewrite SSRC / PT / sequence / timestamp
//! (and remap extension ids), which done by hand on the received buffer costs ~2 ns.
//!
//! Layout (RFC 3550 5.1):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      defined by profile       |           length              |  (if X, RFC 3550 5.3.1)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        header extension                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Every function here takes untrusted bytes: all indexing goes through `get` /
//! `first_chunk` and all offset arithmetic is checked, so malformed input yields an
//! [`RtpError`] (or `None` / `false`) and never a panic.

pub mod audio_level;
pub mod extension;
mod h264;
pub mod munger;
pub mod padding;
pub mod red;
pub mod rtx;
mod vp8;

pub use extension::{find_extension, read_extension_str, remap_extensions, ExtensionMap};
pub use h264::is_h264_keyframe;
pub use vp8::{is_vp8_keyframe, PictureId, Vp8Descriptor};

/// Fixed part of the RTP header (RFC 3550 5.1).
pub const FIXED_HEADER_LEN: usize = 12;

/// The only RTP version in use (RFC 3550 5.1).
const RTP_VERSION: u8 = 2;

/// Errors from parsing or rewriting an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// The buffer ends before the part of the header that its own fields announce.
    #[error("RTP packet too short: {len} bytes, header needs {needed}")]
    TooShort { len: usize, needed: usize },
    /// Version field is not 2 (RFC 3550 5.1).
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    /// P bit set but the padding count is 0 or reaches into the header
    /// (RFC 3550 5.1: the last octet counts the padding, itself included).
    #[error("invalid RTP padding length {0}")]
    BadPadding(u8),
    /// An RFC 8285 extension element runs past the end of the extension block.
    #[error("malformed RTP header extension element")]
    MalformedExtension,
}

/// Location of the header extension's element area inside the packet buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionBlock {
    /// "defined by profile" field: 0xBEDE for RFC 8285 one-byte elements,
    /// 0x100X for two-byte elements, anything else is opaque (RFC 3550 5.3.1).
    pub profile: u16,
    /// Offset of the first element byte (just after the 4-byte extension header).
    pub start: usize,
    /// Length in bytes of the element area (a multiple of 4).
    pub len: usize,
}

impl ExtensionBlock {
    /// RFC 8285 4.2 one-byte header form.
    pub const PROFILE_ONE_BYTE: u16 = 0xBEDE;
    /// RFC 8285 4.3 two-byte header form: 0x100 followed by 4 "appbits".
    pub const PROFILE_TWO_BYTE: u16 = 0x1000;

    /// Whether the block uses the RFC 8285 one-byte element form.
    pub fn is_one_byte(&self) -> bool {
        self.profile == Self::PROFILE_ONE_BYTE
    }

    /// Whether the block uses the RFC 8285 two-byte element form (any appbits).
    pub fn is_two_byte(&self) -> bool {
        self.profile & 0xFFF0 == Self::PROFILE_TWO_BYTE
    }
}

/// A parsed, borrowed-nothing view of an RTP header: plain values and offsets into
/// the buffer it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrc_count: u8,
    /// Offset of the payload: fixed header + CSRCs + extension.
    pub header_len: usize,
    /// End of the payload, excluding RTP padding.
    pub payload_end: usize,
    /// Number of padding bytes at the end of the packet (0 if the P bit is clear).
    pub padding_len: u8,
    pub extension: Option<ExtensionBlock>,
}

impl RtpHeader {
    /// Parses and bounds-checks the header of `buf`.
    ///
    /// Checks version 2, that the CSRC list and extension block announced by the
    /// header fit in the buffer, and that the padding count (RFC 3550 5.1) is
    /// non-zero and does not reach back into the header. After `Ok`, every offset
    /// in the result is within `buf`, so the payload is `buf[header_len..payload_end]`.
    pub fn parse(buf: &[u8]) -> Result<Self, RtpError> {
        let len = buf.len();
        let Some(fixed) = buf.first_chunk::<FIXED_HEADER_LEN>() else {
            return Err(RtpError::TooShort {
                len,
                needed: FIXED_HEADER_LEN,
            });
        };
        let [b0, b1, s0, s1, t0, t1, t2, t3, i0, i1, i2, i3] = *fixed;

        let version = b0 >> 6;
        if version != RTP_VERSION {
            return Err(RtpError::BadVersion(version));
        }
        let has_padding = b0 & 0x20 != 0;
        let has_extension = b0 & 0x10 != 0;
        let csrc_count = b0 & 0x0F;

        // CC <= 15, so this cannot overflow; checked anyway to keep the rule simple.
        let mut header_len = FIXED_HEADER_LEN + usize::from(csrc_count) * 4;
        if len < header_len {
            return Err(RtpError::TooShort {
                len,
                needed: header_len,
            });
        }

        let extension = if has_extension {
            // RFC 3550 5.3.1: 16-bit profile, 16-bit length in 32-bit words
            // (not counting the 4-byte extension header itself).
            let ext_header_end = header_len + 4;
            let Some(&[p0, p1, l0, l1]) = buf
                .get(header_len..ext_header_end)
                .and_then(|s| s.first_chunk::<4>())
            else {
                return Err(RtpError::TooShort {
                    len,
                    needed: ext_header_end,
                });
            };
            let ext_len = usize::from(u16::from_be_bytes([l0, l1])) * 4;
            let end = ext_header_end + ext_len;
            if len < end {
                return Err(RtpError::TooShort { len, needed: end });
            }
            header_len = end;
            Some(ExtensionBlock {
                profile: u16::from_be_bytes([p0, p1]),
                start: ext_header_end,
                len: ext_len,
            })
        } else {
            None
        };

        let padding_len = if has_padding {
            // RFC 3550 5.1: the last octet of the padding holds the count of padding
            // octets including itself, so it is at least 1 and must not eat the header.
            let count = buf.last().copied().unwrap_or(0);
            if count == 0 || usize::from(count) > len - header_len {
                return Err(RtpError::BadPadding(count));
            }
            count
        } else {
            0
        };

        Ok(Self {
            marker: b1 & 0x80 != 0,
            payload_type: b1 & 0x7F,
            sequence: u16::from_be_bytes([s0, s1]),
            timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
            ssrc: u32::from_be_bytes([i0, i1, i2, i3]),
            csrc_count,
            header_len,
            payload_end: len - usize::from(padding_len),
            padding_len,
            extension,
        })
    }

    /// The payload without padding. Empty if `buf` is not the buffer this header
    /// was parsed from (never panics).
    pub fn payload<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.header_len..self.payload_end).unwrap_or(&[])
    }
}

/// Rewrites SSRC, payload type, sequence number and timestamp in place, keeping the
/// marker bit and the first byte (V/P/X/CC) as they are.
///
/// `buf` is expected to have been validated by [`RtpHeader::parse`]; a buffer shorter
/// than the fixed header is left untouched rather than panicking. `payload_type` is
/// masked to 7 bits so it can never clobber the marker bit.
#[inline]
pub fn rewrite(buf: &mut [u8], ssrc: u32, payload_type: u8, sequence: u16, timestamp: u32) {
    let Some(h) = buf.first_chunk_mut::<FIXED_HEADER_LEN>() else {
        return;
    };
    h[1] = (h[1] & 0x80) | (payload_type & 0x7F);
    let [s0, s1] = sequence.to_be_bytes();
    let [t0, t1, t2, t3] = timestamp.to_be_bytes();
    let [i0, i1, i2, i3] = ssrc.to_be_bytes();
    h[2] = s0;
    h[3] = s1;
    h[4] = t0;
    h[5] = t1;
    h[6] = t2;
    h[7] = t3;
    h[8] = i0;
    h[9] = i1;
    h[10] = i2;
    h[11] = i3;
}

#[cfg(test)]
mod tests;
