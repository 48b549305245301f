//! VP8 keyframe detection from the RTP payload (RFC 7741), used to decide when a
//! paused or switched consumer can resume: only a keyframe is decodable on its own.

/// Whether `payload` (the RTP payload, padding excluded) starts a VP8 keyframe.
///
/// Walks the RFC 7741 4.2 payload descriptor:
///
/// ```text
///       +-+-+-+-+-+-+-+-+
///       |X|R|N|S|R| PID | (REQUIRED)
///  X:   |I|L|T|K| RSV   | (OPTIONAL)
///  I:   |M| PictureID   | (OPTIONAL, second byte if M)
///  L:   |   TL0PICIDX   | (OPTIONAL)
///  T/K: |TID|Y| KEYIDX  | (OPTIONAL)
/// ```
///
/// A keyframe can only be recognised in the packet holding the start of partition 0
/// (S=1, PID=0), because only that packet carries the VP8 payload header
/// (RFC 7741 4.3), whose P bit ("inverse key frame flag") is 0 for keyframes. To
/// avoid false positives on garbage we also require the keyframe start code
/// 0x9d 0x01 0x2a that follows the 3-byte frame tag (RFC 6386 9.1).
pub fn is_vp8_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let extended = b0 & 0x80 != 0;
    let start_of_partition = b0 & 0x10 != 0;
    let partition_id = b0 & 0x07;
    if !start_of_partition || partition_id != 0 {
        return false;
    }

    let mut pos = 1;
    if extended {
        let Some(&x) = payload.get(pos) else {
            return false;
        };
        pos += 1;
        if x & 0x80 != 0 {
            // I: PictureID, 7 or 15 bits depending on its M bit.
            let Some(&pic) = payload.get(pos) else {
                return false;
            };
            pos += if pic & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            // L: TL0PICIDX.
            pos += 1;
        }
        if x & 0x30 != 0 {
            // T or K: one shared TID/Y/KEYIDX byte.
            pos += 1;
        }
    }

    // VP8 payload header: frame tag (3 bytes, P bit is bit 0 of the first), then for
    // keyframes the start code.
    match payload.get(pos..pos + 6) {
        Some(&[tag, _, _, 0x9d, 0x01, 0x2a]) => tag & 0x01 == 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keyframe VP8 payload header: P=0, version 0, show_frame=1, then start code
    /// and a 640x480 size.
    const KEY: [u8; 10] = [0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01];
    /// Interframe: P=1 and no start code.
    const DELTA: [u8; 6] = [0x31, 0x02, 0x00, 0x11, 0x22, 0x33];

    fn with(descriptor: &[u8], frame: &[u8]) -> Vec<u8> {
        let mut p = descriptor.to_vec();
        p.extend_from_slice(frame);
        p
    }

    #[test]
    fn minimal_descriptor() {
        assert!(is_vp8_keyframe(&with(&[0x10], &KEY)));
        assert!(!is_vp8_keyframe(&with(&[0x10], &DELTA)));
        // S=0: continuation of a partition, no payload header to read.
        assert!(!is_vp8_keyframe(&with(&[0x00], &KEY)));
        // S=1 but PID=1: start of a later partition.
        assert!(!is_vp8_keyframe(&with(&[0x11], &KEY)));
    }

    #[test]
    fn extended_descriptor_all_fields() {
        // X=1 S=1; I L T K set; 15-bit PictureID; TL0PICIDX; TID/Y/KEYIDX.
        let d = [0x90, 0xF0, 0x80 | 0x12, 0x34, 0x56, 0x40];
        assert!(is_vp8_keyframe(&with(&d, &KEY)));
        assert!(!is_vp8_keyframe(&with(&d, &DELTA)));
        // 7-bit PictureID only.
        let d = [0x90, 0x80, 0x12];
        assert!(is_vp8_keyframe(&with(&d, &KEY)));
        // Chrome-like: I with 15-bit PictureID, L and T.
        let d = [0x90, 0xE0, 0x81, 0x02, 0x03, 0x20];
        assert!(is_vp8_keyframe(&with(&d, &KEY)));
        // Same descriptor with the frame shifted by one byte must not match.
        let d = [0x90, 0xE0, 0x81, 0x02, 0x03];
        assert!(!is_vp8_keyframe(&with(&d, &KEY[1..])));
    }

    #[test]
    fn truncated_never_matches() {
        let full = with(&[0x90, 0xF0, 0x80, 0x34, 0x56, 0x40], &KEY);
        for n in 0..full.len() - 4 {
            assert!(!is_vp8_keyframe(&full[..n]), "len {n}");
        }
    }
}
