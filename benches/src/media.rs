//! Synthetic media: VP8-like video and Opus-like audio RTP with a benchmark trailer, and
//! the receive-side accounting (loss, duplicates, reordering, latency).
//!
//! Every payload carries, at a fixed offset, `SFUB` + stream id + the packet's index in its
//! stream + the send time. The SFU (and Janus) rewrite SSRC, sequence number and timestamp
//! but never touch the payload, so a subscriber that decrypts one packet of an SSRC learns
//! which publisher stream it is and the constant offset between the outgoing and the
//! original sequence numbers. From then on every packet is attributed from its clear RTP
//! header alone; only a sample is decrypted, for latency.

use hdrhistogram::Histogram;

/// RTP fixed header length (we send no CSRCs and no extensions).
const RTP_HEADER: usize = 12;
/// Offset of the trailer in the payload: after the longest VP8 descriptor we write
/// (6 bytes: X, PictureID of 15 bits, TL0PICIDX, TID/Y) + frame tag + start code (the
/// short descriptor and audio pad to the same offset).
const TRAILER_AT: usize = 12;
const MAGIC: &[u8; 4] = b"SFUB";
const TRAILER_LEN: usize = 4 + 4 + 4 + 8;

pub(crate) const VIDEO_PT: u8 = 96;
pub(crate) const AUDIO_PT: u8 = 111;

/// What one publisher sends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MediaSpec {
    /// Video bit rate (RTP bytes, before SRTP), bits/s.
    pub(crate) video_bps: u64,
    /// Video RTP packet size (before SRTP).
    pub(crate) video_packet: usize,
    pub(crate) fps: u32,
    /// One keyframe every this many frames.
    pub(crate) keyframe_every: u32,
    pub(crate) audio_pps: u32,
    /// Audio RTP packet size (before SRTP).
    pub(crate) audio_packet: usize,
}

impl Default for MediaSpec {
    fn default() -> Self {
        Self {
            video_bps: 1_000_000,
            video_packet: 1100,
            fps: 30,
            keyframe_every: 30,
            audio_pps: 50,
            audio_packet: 120,
        }
    }
}

/// How a publisher sends its video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VideoShape {
    /// One stream at the spec's rate, one producer (today's camera).
    Single,
    /// The [`SIMULCAST_LAYERS`] as three encodings of one producer (simulcast): each
    /// subscriber's simulcast consumer forwards one of them.
    Simulcast,
    /// The same three streams as three single-layer producers, each subscriber consuming
    /// one of them with a simple consumer: the baseline of `Simulcast`, with the same
    /// packets in and out.
    Layers,
}

impl VideoShape {
    pub(crate) fn layered(self) -> bool {
        self != Self::Single
    }
}

/// One encoding of a simulcast camera.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayerRate {
    /// RTP bytes, before SRTP, bits/s.
    pub(crate) bps: u64,
    /// RTP packet size.
    pub(crate) packet: usize,
}

/// A browser's three-layer VP8 simulcast at 30 frames/s, lowest first: ~320x180 at
/// 150 kbit/s (one 625-byte packet a frame), ~640x360 at 500 kbit/s and ~1280x720 at
/// 1.5 Mbit/s (1,100-byte packets): 30, 56.8 and 170.5 packets/s.
pub(crate) const SIMULCAST_LAYERS: [LayerRate; 3] = [
    LayerRate {
        bps: 150_000,
        packet: 625,
    },
    LayerRate {
        bps: 500_000,
        packet: 1100,
    },
    LayerRate {
        bps: 1_500_000,
        packet: 1100,
    },
];

/// VP8 temporal layers of an L1T3 encoder, by frame number modulo 4 (RFC 7741's TID):
/// 0, 2, 1, 2; the first TID 2 and the TID 1 frame after a TL0 frame are layer-sync (Y).
pub(crate) fn l1t3(frame: u32) -> (u8, bool) {
    match frame % 4 {
        0 => (0, false),
        1 => (2, true),
        2 => (1, true),
        _ => (2, false),
    }
}

impl MediaSpec {
    /// The video streams of a publisher of `shape`: (bits/s, packet size), lowest first.
    pub(crate) fn video_layers(&self, shape: VideoShape) -> Vec<LayerRate> {
        match shape {
            VideoShape::Single => vec![LayerRate {
                bps: self.video_bps,
                packet: self.video_packet,
            }],
            VideoShape::Simulcast | VideoShape::Layers => SIMULCAST_LAYERS.to_vec(),
        }
    }

    /// Nominal packets per second of one publisher of `shape` (audio + video).
    pub(crate) fn pps_of(&self, shape: VideoShape) -> f64 {
        let fps = f64::from(self.fps);
        let video: f64 = self
            .video_layers(shape)
            .iter()
            // At least one packet a frame, as the generator sends.
            .map(|l| (l.bps as f64 / 8.0 / l.packet as f64).max(fps))
            .sum();
        video + f64::from(self.audio_pps)
    }
}

/// The VP8 payload descriptor of a video packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vp8Head {
    /// First packet of its frame (S=1).
    pub(crate) first: bool,
    /// The frame is a keyframe (frame tag P=0 on its first packet).
    pub(crate) key: bool,
    /// The extended descriptor a simulcast encoder writes (RFC 7741 4.2), or the one-byte
    /// descriptor when None.
    pub(crate) layered: Option<Vp8Layering>,
}

/// The extended descriptor's fields: a 15-bit PictureID, TL0PICIDX, TID and Y (K=0).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vp8Layering {
    pub(crate) picture_id: u16,
    pub(crate) tl0_pic_idx: u8,
    pub(crate) tid: u8,
    pub(crate) layer_sync: bool,
}

/// Writes an RTP packet into `buf` and returns its length.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_packet(
    buf: &mut [u8],
    len: usize,
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    stream: u32,
    index: u32,
    send_ns: u64,
    vp8_head: Option<Vp8Head>,
) -> usize {
    let len = len
        .max(RTP_HEADER + TRAILER_AT + TRAILER_LEN)
        .min(buf.len());
    buf[0] = 0x80;
    buf[1] = pt | if marker { 0x80 } else { 0 };
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let p = &mut buf[RTP_HEADER..len];
    match vp8_head {
        // VP8 payload descriptor (RFC 7741): S=1 PID=0 on a frame's first packet; its frame
        // tag has P=0 on keyframes, followed by the start code 9d 01 2a (RFC 6386 9.1).
        Some(h) => {
            let s = if h.first { 0x10 } else { 0x00 };
            let at = match h.layered {
                None => {
                    p[0] = s;
                    1
                }
                Some(l) => {
                    // X=1; I, L and T present; M=1 (15-bit PictureID).
                    p[0] = 0x80 | s;
                    p[1] = 0xe0;
                    p[2..4].copy_from_slice(&((l.picture_id & 0x7fff) | 0x8000).to_be_bytes());
                    p[4] = l.tl0_pic_idx;
                    p[5] = ((l.tid & 0x03) << 6) | if l.layer_sync { 0x20 } else { 0 };
                    6
                }
            };
            p[at] = if h.key { 0x00 } else { 0x01 };
            p[at + 1] = 0;
            p[at + 2] = 0;
            p[at + 3..at + 6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
            p[at + 6..TRAILER_AT].fill(0);
        }
        // Opus TOC byte (CELT FB 20 ms), then padding up to the trailer.
        None => {
            p[0] = 0xfc;
            p[1..TRAILER_AT].fill(0);
        }
    }
    let t = &mut p[TRAILER_AT..TRAILER_AT + TRAILER_LEN];
    t[..4].copy_from_slice(MAGIC);
    t[4..8].copy_from_slice(&stream.to_be_bytes());
    t[8..12].copy_from_slice(&index.to_be_bytes());
    t[12..20].copy_from_slice(&send_ns.to_be_bytes());
    // The rest is filler the receiver never reads.
    p[TRAILER_AT + TRAILER_LEN..].fill((index % 251) as u8);
    len
}

/// The trailer of a decrypted RTP packet: (stream, index, send_ns).
pub(crate) fn read_trailer(rtp: &[u8]) -> Option<(u32, u32, u64)> {
    let cc = usize::from(rtp.first()? & 0x0f);
    let mut off = RTP_HEADER + 4 * cc;
    if rtp[0] & 0x10 != 0 {
        // Header extension: skip it (targets may add their own).
        let ext = rtp.get(off..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[2], ext[3]]));
    }
    let t = rtp.get(off + TRAILER_AT..off + TRAILER_AT + TRAILER_LEN)?;
    if &t[..4] != MAGIC {
        return None;
    }
    Some((
        u32::from_be_bytes(t[4..8].try_into().ok()?),
        u32::from_be_bytes(t[8..12].try_into().ok()?),
        u64::from_be_bytes(t[12..20].try_into().ok()?),
    ))
}

/// Sequence number and SSRC of an RTP packet whose header is in the clear (SRTP encrypts
/// only the payload). `None` for RTCP (RFC 5761 payload types 64-95 with the marker).
pub(crate) fn rtp_seq_ssrc(p: &[u8]) -> Option<(u16, u32)> {
    if p.len() < RTP_HEADER || p[0] >> 6 != 2 || (64..96).contains(&(p[1] & 0x7f)) {
        return None;
    }
    Some((
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    ))
}

/// The measurement window, in each publisher stream's packet indices: `[start, end)`.
/// `end` is `u32::MAX` while the window is open.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

/// One (subscriber, publisher stream) pair.
#[derive(Default)]
pub(crate) struct RxStream {
    /// Outgoing minus original RTP sequence number, learnt from a decrypted packet.
    pub(crate) offset: Option<u16>,
    /// Index of the last packet attributed, to extend 16-bit sequence numbers.
    last_index: u32,
    max_index: Option<u32>,
    /// Bit i: packet `window.start + i` received.
    seen: Vec<u64>,
    pub(crate) unique: u64,
    pub(crate) duplicates: u64,
    pub(crate) reordered: u64,
}

impl RxStream {
    /// The original index of a packet with outgoing sequence `seq` (the offset is known).
    fn index_of(&self, seq: u16, base_seq: u16) -> Option<u32> {
        let orig = seq.wrapping_sub(self.offset?);
        // Index modulo 2^16 is (orig - base_seq); extend to 32 bits nearest the last one.
        let low = orig.wrapping_sub(base_seq);
        let last = self.last_index;
        let cand = (last & !0xffff) | u32::from(low);
        let best = [cand.wrapping_sub(0x10000), cand, cand.wrapping_add(0x10000)]
            .into_iter()
            .min_by_key(|c| (i64::from(*c) - i64::from(last)).unsigned_abs())
            .unwrap_or(cand);
        Some(best)
    }

    /// Counts a packet. `window` is that of the stream; packets outside it are ignored.
    pub(crate) fn on_packet(
        &mut self,
        seq: u16,
        base_seq: u16,
        window: Option<Window>,
    ) -> Option<u32> {
        let index = self.index_of(seq, base_seq)?;
        self.last_index = index;
        let Some(w) = window else { return Some(index) };
        if index < w.start || index >= w.end {
            return Some(index);
        }
        let bit = (index - w.start) as usize;
        let word = bit / 64;
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        let mask = 1u64 << (bit % 64);
        if self.seen[word] & mask != 0 {
            self.duplicates += 1;
        } else {
            self.seen[word] |= mask;
            self.unique += 1;
        }
        match self.max_index {
            Some(m) if index < m => self.reordered += 1,
            _ => self.max_index = Some(index),
        }
        Some(index)
    }

    /// Learns the offset from a decrypted packet: `seq` on the wire, `index` in the trailer.
    pub(crate) fn learn(&mut self, seq: u16, index: u32, base_seq: u16) {
        let orig = base_seq.wrapping_add(index as u16);
        self.offset = Some(seq.wrapping_sub(orig));
        self.last_index = index;
    }

    /// Forgets window counts (a new window starts).
    pub(crate) fn reset_window(&mut self) {
        self.seen.clear();
        self.unique = 0;
        self.duplicates = 0;
        self.reordered = 0;
        self.max_index = None;
    }
}

/// A latency histogram in microseconds.
pub(crate) fn histogram() -> Histogram<u64> {
    // 1 us .. 60 s, 3 significant digits, as the daemon's own histogram.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("histogram"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_round_trip_and_accounting() {
        let mut buf = [0u8; 1200];
        let n = build_packet(
            &mut buf,
            1100,
            VIDEO_PT,
            true,
            65535,
            9,
            7,
            3,
            70_000,
            42,
            Some(Vp8Head {
                first: true,
                key: true,
                layered: None,
            }),
        );
        assert_eq!(n, 1100);
        assert!(sfu::rtp::is_vp8_keyframe(&buf[12..n]));
        assert_eq!(read_trailer(&buf[..n]), Some((3, 70_000, 42)));
        assert_eq!(rtp_seq_ssrc(&buf[..n]), Some((65535, 7)));
        // base 100: index 0 has seq 100. The target adds 5000.
        let base = 100u16;
        let mut s = RxStream::default();
        s.learn(base.wrapping_add(5000).wrapping_add(10), 10, base);
        let w = Some(Window { start: 11, end: 20 });
        let seq = |i: u32| base.wrapping_add(5000).wrapping_add(i as u16);
        assert_eq!(s.on_packet(seq(11), base, w), Some(11));
        assert_eq!(s.on_packet(seq(13), base, w), Some(13));
        assert_eq!(s.on_packet(seq(12), base, w), Some(12));
        assert_eq!(s.on_packet(seq(12), base, w), Some(12));
        assert_eq!(s.on_packet(seq(25), base, w), Some(25));
        assert_eq!((s.unique, s.duplicates, s.reordered), (3, 1, 2));
        // The simulcast descriptor parses as the daemon reads it, keyframe included.
        let head = |key| Vp8Head {
            first: true,
            key,
            layered: Some(Vp8Layering {
                picture_id: 0x8123,
                tl0_pic_idx: 7,
                tid: 2,
                layer_sync: true,
            }),
        };
        let n = build_packet(
            &mut buf,
            600,
            VIDEO_PT,
            false,
            1,
            2,
            3,
            4,
            5,
            6,
            Some(head(true)),
        );
        let payload = &buf[12..n];
        assert!(sfu::rtp::is_vp8_keyframe(payload));
        let d = sfu::rtp::Vp8Descriptor::parse(payload).expect("descriptor");
        assert_eq!(
            d.picture_id,
            Some(sfu::rtp::PictureId {
                value: 0x0123,
                long: true
            })
        );
        assert_eq!(
            (d.tl0_pic_idx, d.tid, d.layer_sync),
            (Some(7), Some(2), true)
        );
        assert_eq!(read_trailer(&buf[..n]), Some((4, 5, 6)));
        build_packet(
            &mut buf,
            600,
            VIDEO_PT,
            false,
            1,
            2,
            3,
            4,
            5,
            6,
            Some(head(false)),
        );
        assert!(!sfu::rtp::is_vp8_keyframe(&buf[12..n]));
        // Wrap-around of the 16-bit sequence is followed.
        let mut s = RxStream::default();
        s.learn(seq(65_530), 65_530, base);
        assert_eq!(s.on_packet(seq(65_540), base, None), Some(65_540));
    }
}
