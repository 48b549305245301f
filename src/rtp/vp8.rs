//! VP8 payload descriptor (RFC 7741 4.2): keyframe detection, used to decide when a
//! paused or switched consumer can resume (only a keyframe is decodable on its own), and
//! the parsing and in-place rewriting of the fields a simulcast consumer keeps
//! continuous across layer switches and dropped temporal layers (PictureID, TL0PICIDX,
//! KEYIDX) or filters on (TID, Y).

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

/// A PictureID (RFC 7741 4.2, I bit) and its width on the wire: 7 bits, or 15 when the
/// M bit is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PictureId {
    pub value: u16,
    pub long: bool,
}

impl PictureId {
    /// The number of bits of its width.
    pub fn bits(self) -> u32 {
        if self.long {
            15
        } else {
            7
        }
    }
}

/// The fields of a VP8 payload descriptor (RFC 7741 4.2), with where the rewritable ones
/// are, relative to the start of the RTP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Descriptor {
    /// S: the packet starts a VP8 partition.
    pub start_of_partition: bool,
    /// PID: the partition index.
    pub partition_id: u8,
    pub picture_id: Option<PictureId>,
    pub tl0_pic_idx: Option<u8>,
    /// TID: the temporal layer, when the T bit is set.
    pub tid: Option<u8>,
    /// Y: the frame depends only on base-layer (TL0) frames, so a receiver can move up to
    /// its temporal layer here. Meaningful only with `tid`.
    pub layer_sync: bool,
    /// KEYIDX, when the K bit is set.
    pub key_idx: Option<u8>,
    /// Offsets of the PictureID, TL0PICIDX and TID/Y/KEYIDX bytes (0 = absent: the
    /// first byte is never one of them).
    picture_id_at: usize,
    tl0_at: usize,
    tk_at: usize,
    /// The descriptor's length: the VP8 payload header starts here.
    pub len: usize,
}

impl Vp8Descriptor {
    /// Parses the descriptor at the start of `payload` (the RTP payload, padding
    /// excluded). None when it is cut short or there is nothing after it: such a packet
    /// is malformed.
    pub fn parse(payload: &[u8]) -> Option<Self> {
        let b0 = *payload.first()?;
        let mut d = Self {
            start_of_partition: b0 & 0x10 != 0,
            partition_id: b0 & 0x07,
            picture_id: None,
            tl0_pic_idx: None,
            tid: None,
            layer_sync: false,
            key_idx: None,
            picture_id_at: 0,
            tl0_at: 0,
            tk_at: 0,
            len: 1,
        };
        if b0 & 0x80 == 0 {
            return (payload.len() > d.len).then_some(d);
        }
        let x = *payload.get(1)?;
        let mut pos = 2;
        if x & 0x80 != 0 {
            let hi = *payload.get(pos)?;
            d.picture_id_at = pos;
            d.picture_id = Some(if hi & 0x80 != 0 {
                let lo = *payload.get(pos + 1)?;
                pos += 2;
                PictureId {
                    value: u16::from_be_bytes([hi & 0x7f, lo]),
                    long: true,
                }
            } else {
                pos += 1;
                PictureId {
                    value: u16::from(hi),
                    long: false,
                }
            });
        }
        if x & 0x40 != 0 {
            d.tl0_pic_idx = Some(*payload.get(pos)?);
            d.tl0_at = pos;
            pos += 1;
        }
        if x & 0x30 != 0 {
            let tk = *payload.get(pos)?;
            d.tk_at = pos;
            pos += 1;
            if x & 0x20 != 0 {
                d.tid = Some(tk >> 6);
                d.layer_sync = tk & 0x20 != 0;
            }
            if x & 0x10 != 0 {
                d.key_idx = Some(tk & 0x1f);
            }
        }
        d.len = pos;
        (payload.len() > d.len).then_some(d)
    }

    /// Whether the packet starts a frame (the start of partition 0).
    pub fn starts_frame(&self) -> bool {
        self.start_of_partition && self.partition_id == 0
    }

    /// Writes new PictureID (in its own width), TL0PICIDX and KEYIDX into `payload`, the
    /// payload this descriptor was parsed from (or a copy of it), leaving every other bit
    /// as it was. A value given for a field the descriptor does not have is ignored.
    /// False when `payload` is too short (not that payload).
    pub fn rewrite(
        &self,
        payload: &mut [u8],
        picture_id: Option<u16>,
        tl0_pic_idx: Option<u8>,
        key_idx: Option<u8>,
    ) -> bool {
        if payload.len() < self.len {
            return false;
        }
        if let (Some(pid), Some(value)) = (self.picture_id, picture_id) {
            let at = self.picture_id_at;
            if pid.long {
                let [hi, lo] = (value & 0x7fff).to_be_bytes();
                if let Some([a, b]) = payload
                    .get_mut(at..at + 2)
                    .and_then(|s| s.first_chunk_mut())
                {
                    *a = 0x80 | hi;
                    *b = lo;
                }
            } else if let Some(a) = payload.get_mut(at) {
                *a = (value & 0x7f) as u8;
            }
        }
        if let (Some(_), Some(value)) = (self.tl0_pic_idx, tl0_pic_idx) {
            if let Some(a) = payload.get_mut(self.tl0_at) {
                *a = value;
            }
        }
        if let (Some(_), Some(value)) = (self.key_idx, key_idx) {
            if let Some(a) = payload.get_mut(self.tk_at) {
                *a = (*a & 0xe0) | (value & 0x1f);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

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

    #[test]
    fn descriptor_fields_and_offsets() {
        // X S; I (15-bit 0x1234) L (0x56) T (TID 2, Y) K (KEYIDX 5).
        let p = with(&[0x90, 0xF0, 0x92, 0x34, 0x56, 0xA5], &KEY);
        let d = Vp8Descriptor::parse(&p).expect("well formed");
        assert!(d.starts_frame());
        assert_eq!(
            d.picture_id,
            Some(PictureId {
                value: 0x1234,
                long: true
            })
        );
        assert_eq!(d.tl0_pic_idx, Some(0x56));
        assert_eq!((d.tid, d.layer_sync, d.key_idx), (Some(2), true, Some(5)));
        assert_eq!(d.len, 6);
        // 7-bit PictureID, T without K: KEYIDX is not there to read.
        let p = with(&[0x80, 0xA0, 0x12, 0x40], &DELTA);
        let d = Vp8Descriptor::parse(&p).expect("well formed");
        assert!(!d.starts_frame());
        assert_eq!(d.picture_id.map(|p| (p.value, p.bits())), Some((0x12, 7)));
        assert_eq!(
            (d.tid, d.layer_sync, d.key_idx, d.tl0_pic_idx),
            (Some(1), false, None, None)
        );
        // No X: nothing but S and PID.
        let d = Vp8Descriptor::parse(&with(&[0x10], &KEY)).expect("well formed");
        assert_eq!((d.picture_id, d.tid, d.len), (None, None, 1));
    }

    #[test]
    fn rewrite_round_trips_and_keeps_the_width_and_other_bits() {
        let original = with(&[0x90, 0xF0, 0x92, 0x34, 0x56, 0xA5], &KEY);
        let mut p = original.clone();
        let d = Vp8Descriptor::parse(&p).expect("well formed");
        assert!(d.rewrite(&mut p, Some(0x8001), Some(0xff), Some(0x3f)));
        let r = Vp8Descriptor::parse(&p).expect("still well formed");
        // 15 bits kept: the value wraps into them, the M bit stays.
        assert_eq!(
            r.picture_id.map(|p| (p.value, p.long)),
            Some((0x0001, true))
        );
        assert_eq!(r.tl0_pic_idx, Some(0xff));
        assert_eq!(
            (r.tid, r.layer_sync, r.key_idx),
            (Some(2), true, Some(0x1f))
        );
        assert_eq!(p[..2], original[..2]);
        assert_eq!(p[6..], original[6..], "the VP8 payload is untouched");
        // Back to the original values: the original bytes.
        assert!(r.rewrite(&mut p, Some(0x1234), Some(0x56), Some(5)));
        assert_eq!(p, original);
        // 7-bit PictureID stays 7 bits; absent fields are not invented.
        let mut p = with(&[0x80, 0xA0, 0x12, 0x40], &DELTA);
        let before = p.clone();
        let d = Vp8Descriptor::parse(&p).expect("well formed");
        assert!(d.rewrite(&mut p, Some(0x1ff), Some(9), Some(9)));
        assert_eq!(p[2], 0x7f);
        assert_eq!(p[3], before[3], "no K: TID/Y byte unchanged");
        assert_eq!(p[4..], before[4..]);
        // Too short for the descriptor: refused, nothing written.
        let mut short = [0x90u8, 0xF0, 0x92];
        assert!(!d.rewrite(&mut short[..1], Some(1), None, None));
    }

    #[test]
    fn malformed_descriptors_are_refused_never_panic() {
        let full = with(&[0x90, 0xF0, 0x92, 0x34, 0x56, 0xA5], &DELTA);
        // Cut anywhere up to and including the end of the descriptor: refused.
        for n in 0..=6 {
            assert_eq!(Vp8Descriptor::parse(&full[..n]), None, "len {n}");
        }
        assert!(Vp8Descriptor::parse(&full[..7]).is_some());
        // Every short byte string parses or is refused without panicking, and a parsed
        // one can be rewritten in place.
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        for _ in 0..100_000 {
            let n = rng.gen_range(0..10);
            let mut b: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            if let Some(d) = Vp8Descriptor::parse(&b) {
                assert!(d.len < b.len());
                assert!(d.rewrite(&mut b, Some(rng.gen()), Some(rng.gen()), Some(rng.gen())));
                assert_eq!(Vp8Descriptor::parse(&b).map(|r| r.len), Some(d.len));
            }
        }
    }
}
