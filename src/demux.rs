//! RFC 7983 first-byte demultiplexing of one UDP port shared by STUN, DTLS and SRTP/SRTCP.
//!
//! Which transport a datagram belongs to is decided elsewhere (`worker::core`): STUN by the
//! USERNAME ufrag, everything else by source address, both by hash lookup.

/// What a datagram is, judged by its first byte (RFC 7983 section 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    /// 0..=3: STUN.
    Stun,
    /// 20..=63: DTLS.
    Dtls,
    /// 128..=191 with an RTCP payload type (RFC 5761 section 4): SRTCP.
    Rtcp,
    /// 128..=191 otherwise: SRTP.
    Rtp,
    /// Anything else (including ZRTP and TURN channel data, which we do not speak).
    Unknown,
}

/// Classifies a datagram. Never panics; an empty datagram is `Unknown`.
pub fn classify(datagram: &[u8]) -> PacketClass {
    match datagram.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(128..=191) => match datagram.get(1) {
            // RFC 5761 section 4: RTCP packet types 192..=223 occupy the byte where RTP
            // has marker + payload type; RTP payload types 64..=95 are avoided for that.
            Some(192..=223) => PacketClass::Rtcp,
            Some(_) => PacketClass::Rtp,
            None => PacketClass::Unknown,
        },
        _ => PacketClass::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_first_byte() {
        assert_eq!(classify(&[0x00, 0x01]), PacketClass::Stun);
        assert_eq!(classify(&[22, 0xfe, 0xfd]), PacketClass::Dtls);
        assert_eq!(classify(&[0x80, 96]), PacketClass::Rtp);
        assert_eq!(classify(&[0x80, 96 | 0x80]), PacketClass::Rtp);
        assert_eq!(classify(&[0x81, 200]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x8f, 206]), PacketClass::Rtcp);
        assert_eq!(classify(&[0x80]), PacketClass::Unknown);
        assert_eq!(classify(&[]), PacketClass::Unknown);
        assert_eq!(classify(&[64]), PacketClass::Unknown);
        assert_eq!(classify(&[255, 0]), PacketClass::Unknown);
    }
}
