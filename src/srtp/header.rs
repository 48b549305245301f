//! The few RTP / RTCP header fields SRTP needs, read from untrusted bytes
//! without allocating, indexing out of bounds or overflowing.

use super::SrtpError;

/// RTP fixed header length (RFC 3550 5.1).
const RTP_FIXED_LEN: usize = 12;
/// RTCP common header plus the sender SSRC (RFC 3550 6.4.1): the part of an
/// SRTCP packet that stays in the clear (RFC 3711 3.4).
pub(crate) const RTCP_CLEAR_LEN: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RtpHeader {
    /// Fixed header + CSRCs + header extension: the part SRTP leaves in the
    /// clear (RFC 3711 3.1) and GCM authenticates as AAD (RFC 7714 8.2).
    pub(crate) len: usize,
    pub(crate) seq: u16,
    pub(crate) ssrc: u32,
}

/// Parses the RTP header at the front of `pkt`, which must contain all of it.
pub(crate) fn parse_rtp(pkt: &[u8]) -> Result<RtpHeader, SrtpError> {
    let Some(fixed) = pkt.first_chunk::<RTP_FIXED_LEN>() else {
        return Err(SrtpError::TooShort);
    };
    // RFC 3550 5.1: version 2. Anything else is not RTP (RFC 7983 demux should
    // have kept it out) and its header length cannot be trusted.
    if fixed[0] >> 6 != 2 {
        return Err(SrtpError::BadHeader);
    }
    let seq = u16::from_be_bytes([fixed[2], fixed[3]]);
    let ssrc = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]);
    // At most 12 + 15 * 4 + 4 + 65535 * 4 bytes: no overflow on any usize >= 32 bits.
    let mut len = RTP_FIXED_LEN + 4 * usize::from(fixed[0] & 0x0f);
    if fixed[0] & 0x10 != 0 {
        // RFC 3550 5.3.1: 16-bit profile field, 16-bit length in 32-bit words
        // excluding the 4-byte extension header itself.
        let Some(ext) = pkt.get(len..).and_then(<[u8]>::first_chunk::<4>) else {
            return Err(SrtpError::BadHeader);
        };
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    if len > pkt.len() {
        return Err(SrtpError::BadHeader);
    }
    Ok(RtpHeader { len, seq, ssrc })
}

/// Returns the sender SSRC of the first RTCP packet in `pkt` (RFC 3711 3.4
/// keys SRTCP state by it).
pub(crate) fn parse_rtcp_ssrc(pkt: &[u8]) -> Result<u32, SrtpError> {
    let Some(h) = pkt.first_chunk::<RTCP_CLEAR_LEN>() else {
        return Err(SrtpError::TooShort);
    };
    if h[0] >> 6 != 2 {
        return Err(SrtpError::BadHeader);
    }
    Ok(u32::from_be_bytes([h[4], h[5], h[6], h[7]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_length_counts_csrcs_and_extension() {
        let mut p = vec![0x80, 96, 0x12, 0x34, 0, 0, 0, 1, 0xca, 0xfe, 0xba, 0xbe];
        assert_eq!(
            parse_rtp(&p),
            Ok(RtpHeader {
                len: 12,
                seq: 0x1234,
                ssrc: 0xcafe_babe
            })
        );
        p[0] = 0x92; // X=1, CC=2
        p.extend_from_slice(&[0; 8]);
        assert_eq!(parse_rtp(&p), Err(SrtpError::BadHeader));
        p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01]);
        assert_eq!(parse_rtp(&p), Err(SrtpError::BadHeader));
        p.extend_from_slice(&[0x10, 0xff, 0, 0]);
        assert_eq!(parse_rtp(&p).map(|h| h.len), Ok(28));
        p[22] = 0xff;
        p[23] = 0xff;
        assert_eq!(parse_rtp(&p), Err(SrtpError::BadHeader));
    }

    #[test]
    fn rejects_short_and_non_v2() {
        assert_eq!(parse_rtp(&[0x80; 11]), Err(SrtpError::TooShort));
        assert_eq!(parse_rtp(&[0x40; 12]), Err(SrtpError::BadHeader));
        assert_eq!(parse_rtp(&[0x8f; 12]), Err(SrtpError::BadHeader));
        assert_eq!(parse_rtcp_ssrc(&[0x80; 7]), Err(SrtpError::TooShort));
        assert_eq!(parse_rtcp_ssrc(&[0xc0; 8]), Err(SrtpError::BadHeader));
        assert_eq!(
            parse_rtcp_ssrc(&[0x80, 200, 0, 6, 1, 2, 3, 4]),
            Ok(0x0102_0304)
        );
    }
}
