//! H264 keyframe detection from the RTP payload (RFC 6184), so that a consumer of an
//! H264 producer can start, resume or switch layers at a picture decodable on its own.

/// NAL unit types (ITU-T H.264 table 7-1, RFC 6184 5.2).
const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// Whether `payload` (the RTP payload, padding excluded) starts an H264 keyframe: an
/// IDR slice or a sequence parameter set (which browsers send right before the IDR),
/// as a single NAL unit packet (RFC 6184 5.6), inside a STAP-A aggregate (5.7.1), or
/// as the first fragment of an FU-A (5.8, S bit set). Other packetizations (STAP-B,
/// MTAP, FU-B: interleaved mode, which WebRTC does not use) are not recognised. Never
/// panics on any input.
pub fn is_h264_keyframe(payload: &[u8]) -> bool {
    let Some(&first) = payload.first() else {
        return false;
    };
    match first & 0x1F {
        NAL_IDR | NAL_SPS => true,
        STAP_A => stap_a_has_keyframe(payload.get(1..).unwrap_or_default()),
        FU_A => {
            // FU header: S|E|R|type (RFC 6184 5.8).
            payload
                .get(1)
                .is_some_and(|&fu| fu & 0x80 != 0 && matches!(fu & 0x1F, NAL_IDR | NAL_SPS))
        }
        _ => false,
    }
}

/// Walks the aggregation units of a STAP-A (each a 16-bit size and a NAL unit).
fn stap_a_has_keyframe(mut units: &[u8]) -> bool {
    while let Some((&[hi, lo], rest)) = units.split_first_chunk::<2>() {
        let size = usize::from(u16::from_be_bytes([hi, lo]));
        let Some(nal) = rest.get(..size) else {
            return false;
        };
        if nal
            .first()
            .is_some_and(|&h| matches!(h & 0x1F, NAL_IDR | NAL_SPS))
        {
            return true;
        }
        units = rest.get(size..).unwrap_or_default();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_nal_units() {
        assert!(is_h264_keyframe(&[0x65, 0x88, 0x80]), "IDR, nal_ref_idc 3");
        assert!(is_h264_keyframe(&[0x67, 0x42, 0xc0, 0x1f]), "SPS");
        assert!(!is_h264_keyframe(&[0x41, 0x9a]), "non-IDR slice");
        assert!(!is_h264_keyframe(&[0x68, 0xce]), "PPS alone");
        assert!(!is_h264_keyframe(&[]));
    }

    #[test]
    fn stap_a_with_sps_pps_idr() {
        // STAP-A: SPS (4 bytes), PPS (2 bytes), then an IDR.
        let stap = [
            0x78, 0x00, 0x04, 0x67, 0x42, 0xc0, 0x1f, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x65,
            0x88,
        ];
        assert!(is_h264_keyframe(&stap));
        // PPS and a non-IDR slice only.
        let stap = [0x78, 0x00, 0x02, 0x68, 0xce, 0x00, 0x02, 0x41, 0x9a];
        assert!(!is_h264_keyframe(&stap));
        // A unit whose size runs past the end.
        assert!(!is_h264_keyframe(&[0x78, 0x00, 0x09, 0x65]));
        assert!(!is_h264_keyframe(&[0x78, 0x00]));
    }

    #[test]
    fn fu_a_start_of_idr_only() {
        assert!(is_h264_keyframe(&[0x7c, 0x85, 0x88]), "FU-A start, IDR");
        assert!(!is_h264_keyframe(&[0x7c, 0x05, 0x88]), "FU-A middle of IDR");
        assert!(
            !is_h264_keyframe(&[0x7c, 0x81, 0x9a]),
            "FU-A start, non-IDR"
        );
        assert!(!is_h264_keyframe(&[0x7c]), "truncated FU-A");
    }

    #[test]
    fn never_panics_on_any_short_input() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let _ = is_h264_keyframe(&[a, b]);
                let _ = is_h264_keyframe(&[a, 0, b, a]);
            }
        }
    }
}
