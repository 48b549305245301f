//! Padding-only RTP packets (RFC 3550 5.1: P bit set, no payload, the last octet counts
//! the padding), sent on a consumer's RTX stream to probe a subscriber's path, as
//! libwebrtc pads (RFC 4588 lets a receiver drop RTX packets without an OSN: a
//! padding-only one carries none). The transport-wide sequence number goes in a
//! one-byte header extension (RFC 8285 4.2) so the subscriber's transport-cc feedback
//! reports it.

use super::FIXED_HEADER_LEN;

/// A one-byte-header extension block holding one 2-byte element, padded to 4 bytes.
const TWCC_EXTENSION_LEN: usize = 4 + 4;
/// Most padding one packet carries (the count is one octet).
pub const MAX_PADDING: usize = 255;

/// The fields of a padding packet.
#[derive(Debug, Clone, Copy)]
pub struct Padding {
    pub ssrc: u32,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    /// The transport-wide sequence extension (id 1..=14, value).
    pub transport_seq: Option<(u8, u16)>,
    /// Padding octets, 1..=[`MAX_PADDING`] (clamped).
    pub len: usize,
}

impl Padding {
    /// The packet's length.
    pub fn packet_len(&self) -> usize {
        FIXED_HEADER_LEN
            + self.transport_seq.map_or(0, |_| TWCC_EXTENSION_LEN)
            + self.len.clamp(1, MAX_PADDING)
    }

    /// Writes the packet at the start of `buf`; returns its length, or None when `buf`
    /// is too short or the extension id is not a one-byte one.
    pub fn write(&self, buf: &mut [u8]) -> Option<usize> {
        let len = self.packet_len();
        let pad = self.len.clamp(1, MAX_PADDING);
        let out = buf.get_mut(..len)?;
        let ext = self.transport_seq.is_some();
        out[0] = 0x80 | 0x20 | if ext { 0x10 } else { 0 };
        out[1] = self.payload_type & 0x7f;
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let mut at = FIXED_HEADER_LEN;
        if let Some((id, seq)) = self.transport_seq {
            if !(1..=14).contains(&id) {
                return None;
            }
            let [hi, lo] = seq.to_be_bytes();
            out[at..at + TWCC_EXTENSION_LEN].copy_from_slice(&[
                0xbe,
                0xde,
                0x00,
                0x01,
                id << 4 | 1,
                hi,
                lo,
                0,
            ]);
            at += TWCC_EXTENSION_LEN;
        }
        out[at..len].fill(0);
        out[len - 1] = pad as u8;
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::extension::read_extension_u16;
    use crate::rtp::RtpHeader;

    #[test]
    fn a_padding_packet_parses_as_empty_with_its_transport_sequence() {
        let mut buf = [0xaa; 400];
        let p = Padding {
            ssrc: 0x1234_5678,
            payload_type: 97,
            sequence: 7,
            timestamp: 90_000,
            transport_seq: Some((3, 0xbeef)),
            len: 1000,
        };
        let n = p.write(&mut buf).unwrap();
        assert_eq!(n, 12 + 8 + 255);
        let h = RtpHeader::parse(&buf[..n]).unwrap();
        assert_eq!(h.ssrc, 0x1234_5678);
        assert_eq!(h.payload_type, 97);
        assert_eq!(h.sequence, 7);
        assert_eq!(h.padding_len, 255);
        assert!(h.payload(&buf[..n]).is_empty());
        assert_eq!(read_extension_u16(&buf[..n], &h, 3), Some(0xbeef));
        assert_eq!(p.write(&mut buf[..100]), None, "too short");
        let plain = Padding {
            transport_seq: None,
            len: 10,
            ..p
        };
        let n = plain.write(&mut buf).unwrap();
        let h = RtpHeader::parse(&buf[..n]).unwrap();
        assert_eq!((n, h.padding_len), (22, 10));
    }
}
