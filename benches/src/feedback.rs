//! RTCP feedback under load (the `feedback-*` scenarios): what real receivers and senders
//! add to a call beyond media.
//!
//! - Subscribers pretend to lose a share of the video they receive (`loss`, Bernoulli per
//!   packet, never a retransmission), NACK it (RFC 4585 6.2.1) on the next tick, send a
//!   receiver report (RFC 3550 6.4.2) every second and transport-cc feedback
//!   (draft-holmer-rmcat-transport-wide-cc-extensions-01) as the daemon's own recorder
//!   paces it (every ~100 ms). A retransmission of a packet they NACKed is counted as
//!   that packet's arrival.
//! - Publishers lose the same share of their video on the way up (not sent, kept in their
//!   history) and answer the target's NACKs with RTX (RFC 4588) from that history.
//!
//! The RTCP writers and the transport-cc recorder are the daemon's own (`sfu::rtcp`): the
//! wire format is checked by its tests against str0m.

use std::time::{Duration, Instant};

use rand::Rng;
use sfu::rtcp::twcc::TwccRecorder;
use sfu::rtcp::{self, Feedback, ReportBlock};

use crate::media::VIDEO_PT;

/// The transport-wide sequence number extension and the id we negotiate for it.
pub(crate) const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
pub(crate) const TWCC_ID: u8 = 3;
/// RTX payload type of the publishers' video (apt = VIDEO_PT).
pub(crate) const RTX_PT: u8 = 97;

const RR_INTERVAL: Duration = Duration::from_secs(1);
/// Publisher history: the last this many video packets (a NACK older than that is
/// ignored, as a browser's would be after ~1 s at 1 Mbit/s).
const HISTORY: usize = 512;
/// Sequence numbers NACKed and not yet retransmitted, per subscriber (bounded: the
/// oldest is forgotten).
const MAX_AWAITED: usize = 256;

/// Counters of the feedback paths (generator side), per measurement window.
#[derive(Default, Debug, Clone, Copy)]
pub(crate) struct FeedbackCounts {
    /// Received packets the subscribers pretended to lose.
    pub(crate) dropped_rx: u64,
    /// Of those, retransmitted by the target and received.
    pub(crate) recovered: u64,
    /// Video packets publishers did not send (upstream loss).
    pub(crate) dropped_tx: u64,
    /// RTX packets publishers sent in answer to the target's NACKs.
    pub(crate) rtx_sent: u64,
    /// NACKed sequence numbers the target asked publishers for.
    pub(crate) nacks_received: u64,
    /// Sequence numbers subscribers NACKed.
    pub(crate) nacks_sent: u64,
    pub(crate) rr_sent: u64,
    pub(crate) twcc_sent: u64,
    /// SRTCP packets sent by subscribers (each a compound of the above).
    pub(crate) rtcp_packets: u64,
}

/// The transport-wide sequence number of an RTP packet (RFC 8285 one-byte form).
pub(crate) fn twcc_seq(p: &[u8], id: u8) -> Option<u16> {
    if p.first()? & 0x10 == 0 {
        return None;
    }
    let at = 12 + 4 * usize::from(p[0] & 0x0f);
    let head = p.get(at..at + 4)?;
    if head[0..2] != [0xbe, 0xde] {
        return None;
    }
    let words = usize::from(u16::from_be_bytes([head[2], head[3]]));
    let ext = p.get(at + 4..at + 4 + 4 * words)?;
    let mut i = 0;
    while i < ext.len() {
        let b = ext[i];
        if b == 0 {
            i += 1;
            continue;
        }
        let (eid, len) = (b >> 4, usize::from(b & 0x0f) + 1);
        if eid == 15 {
            return None;
        }
        if eid == id && len == 2 {
            let v = ext.get(i + 1..i + 3)?;
            return Some(u16::from_be_bytes([v[0], v[1]]));
        }
        i += 1 + len;
    }
    None
}

/// One received stream's receiver-report state.
struct RxState {
    ssrc: u32,
    highest: u32,
    received: u32,
}

/// A subscriber's feedback state.
pub(crate) struct SubFeedback {
    loss: f64,
    sender_ssrc: u32,
    twcc: TwccRecorder,
    /// The media SSRC transport-cc feedback names (the first one received).
    twcc_media: Option<u32>,
    streams: Vec<RxState>,
    /// To NACK on the next poll: (media SSRC, sequence number).
    to_nack: Vec<(u32, u16)>,
    /// NACKed, waiting for the retransmission.
    awaited: Vec<(u32, u16)>,
    next_rr: Instant,
    lost: Vec<u16>,
}

impl SubFeedback {
    pub(crate) fn new(loss: f64, now: Instant) -> Self {
        Self {
            loss,
            sender_ssrc: rand::random(),
            twcc: TwccRecorder::new(),
            twcc_media: None,
            streams: Vec::new(),
            to_nack: Vec::new(),
            awaited: Vec::new(),
            next_rr: now + RR_INTERVAL,
            lost: Vec::new(),
        }
    }

    /// A received RTP packet (clear header). Returns false when it is to be treated as
    /// lost (not counted; it will be NACKed).
    pub(crate) fn on_rtp(
        &mut self,
        now: Instant,
        pkt: &[u8],
        ssrc: u32,
        seq: u16,
        counts: &mut FeedbackCounts,
    ) -> bool {
        if let Some(t) = twcc_seq(pkt, TWCC_ID) {
            self.twcc.on_packet(t, now);
            self.twcc_media.get_or_insert(ssrc);
        }
        if let Some(i) = self.awaited.iter().position(|a| *a == (ssrc, seq)) {
            self.awaited.swap_remove(i);
            counts.recovered += 1;
            self.count(ssrc, seq);
            return true;
        }
        // Only video negotiates NACK (as browsers do): audio loss would stay lost.
        let video = pkt.get(1).is_some_and(|b| b & 0x7f == VIDEO_PT);
        if video && self.loss > 0.0 && rand::thread_rng().gen_bool(self.loss.min(1.0)) {
            counts.dropped_rx += 1;
            self.to_nack.push((ssrc, seq));
            return false;
        }
        self.count(ssrc, seq);
        true
    }

    fn count(&mut self, ssrc: u32, seq: u16) {
        let s = match self.streams.iter_mut().position(|s| s.ssrc == ssrc) {
            Some(i) => &mut self.streams[i],
            None => {
                self.streams.push(RxState {
                    ssrc,
                    highest: u32::from(seq),
                    received: 0,
                });
                self.streams.last_mut().expect("just pushed")
            }
        };
        s.received = s.received.wrapping_add(1);
        let hi = s.highest as u16;
        if (seq.wrapping_sub(hi) as i16) > 0 {
            let cycles = s.highest & 0xffff_0000;
            let wrapped = if seq < hi { 0x1_0000 } else { 0 };
            s.highest = cycles + wrapped + u32::from(seq);
        }
    }

    /// The compound RTCP packet due now (receiver report, NACKs, transport-cc), if any,
    /// written to `out` (cleared first).
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        out: &mut Vec<u8>,
        counts: &mut FeedbackCounts,
    ) -> bool {
        out.clear();
        let rr_due = now >= self.next_rr;
        if rr_due || !self.to_nack.is_empty() {
            // Reduced-size RTCP (RFC 5506) is what browsers send; a receiver report leads
            // the compound when one is due.
            if rr_due {
                self.next_rr = now + RR_INTERVAL;
                let blocks: Vec<ReportBlock> = self
                    .streams
                    .iter()
                    .map(|s| ReportBlock {
                        ssrc: s.ssrc,
                        fraction_lost: 0,
                        total_lost: 0,
                        highest_seq: s.highest,
                        jitter: 0,
                        last_sr: 0,
                        delay_since_last_sr: 0,
                    })
                    .collect();
                rtcp::write_receiver_report(out, self.sender_ssrc, &blocks);
                counts.rr_sent += 1;
            }
            self.to_nack.sort_unstable();
            let mut i = 0;
            while i < self.to_nack.len() {
                let ssrc = self.to_nack[i].0;
                self.lost.clear();
                while i < self.to_nack.len() && self.to_nack[i].0 == ssrc {
                    self.lost.push(self.to_nack[i].1);
                    i += 1;
                }
                rtcp::write_nack(out, self.sender_ssrc, ssrc, &self.lost);
                counts.nacks_sent += self.lost.len() as u64;
            }
            for n in self.to_nack.drain(..) {
                if self.awaited.len() >= MAX_AWAITED {
                    self.awaited.remove(0);
                }
                self.awaited.push(n);
            }
        }
        if let Some(media) = self.twcc_media {
            if self.twcc.poll_feedback(now, self.sender_ssrc, media, out) {
                counts.twcc_sent += 1;
            }
        }
        !out.is_empty()
    }
}

/// A publisher's feedback state: the video history NACKs are answered from.
pub(crate) struct PubFeedback {
    loss: f64,
    rtx_ssrc: u32,
    rtx_seq: u16,
    /// Plain RTP packets by sequence number modulo HISTORY.
    history: Vec<Option<(u16, Vec<u8>)>>,
    feedback: Vec<Feedback>,
}

impl PubFeedback {
    pub(crate) fn new(loss: f64, rtx_ssrc: u32) -> Self {
        Self {
            loss,
            rtx_ssrc,
            rtx_seq: rand::random(),
            history: (0..HISTORY).map(|_| None).collect(),
            feedback: Vec::new(),
        }
    }

    /// Keeps a plain video packet; returns false if it is to be "lost" on the way up.
    pub(crate) fn on_send(&mut self, plain: &[u8], seq: u16, counts: &mut FeedbackCounts) -> bool {
        let slot = &mut self.history[usize::from(seq) % HISTORY];
        match slot {
            Some((s, buf)) => {
                *s = seq;
                buf.clear();
                buf.extend_from_slice(plain);
            }
            None => *slot = Some((seq, plain.to_vec())),
        }
        if self.loss > 0.0 && rand::thread_rng().gen_bool(self.loss.min(1.0)) {
            counts.dropped_tx += 1;
            return false;
        }
        true
    }

    /// Decrypted RTCP from the target: the RTX packets (plain) answering its NACKs for
    /// `video_ssrc`, appended to `out`.
    pub(crate) fn on_rtcp(
        &mut self,
        plain: &[u8],
        video_ssrc: u32,
        out: &mut Vec<Vec<u8>>,
        counts: &mut FeedbackCounts,
    ) {
        self.feedback.clear();
        if rtcp::parse_compound(plain, &mut self.feedback).is_err() {
            return;
        }
        for f in &self.feedback {
            let Feedback::Nack {
                media_ssrc, lost, ..
            } = f
            else {
                continue;
            };
            if *media_ssrc != video_ssrc {
                continue;
            }
            counts.nacks_received += lost.len() as u64;
            for &seq in lost {
                let Some((s, p)) = &self.history[usize::from(seq) % HISTORY] else {
                    continue;
                };
                if *s != seq || p.len() < 12 {
                    continue;
                }
                // RFC 4588 4: the original header with the RTX payload type, SSRC and
                // sequence number, then the original sequence number, then the payload.
                let mut rtx = Vec::with_capacity(p.len() + 2 + 32);
                rtx.extend_from_slice(&p[..12]);
                rtx[1] = (rtx[1] & 0x80) | RTX_PT;
                rtx[2..4].copy_from_slice(&self.rtx_seq.to_be_bytes());
                rtx[8..12].copy_from_slice(&self.rtx_ssrc.to_be_bytes());
                rtx.extend_from_slice(&seq.to_be_bytes());
                rtx.extend_from_slice(&p[12..]);
                self.rtx_seq = self.rtx_seq.wrapping_add(1);
                counts.rtx_sent += 1;
                out.push(rtx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_transport_wide_sequence_number() {
        let mut p = vec![0x90, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        p.extend_from_slice(&[0xbe, 0xde, 0, 1, (TWCC_ID << 4) | 1, 0x12, 0x34, 0]);
        p.extend_from_slice(&[0; 20]);
        assert_eq!(twcc_seq(&p, TWCC_ID), Some(0x1234));
        assert_eq!(twcc_seq(&p, 5), None);
        p[0] = 0x80;
        assert_eq!(twcc_seq(&p, TWCC_ID), None);
    }

    #[test]
    fn nack_is_answered_with_rtx_of_the_kept_packet() {
        let mut counts = FeedbackCounts::default();
        let mut pubf = PubFeedback::new(0.0, 0xabcd);
        let mut pkt = vec![0x80, 96, 0x10, 0x00, 0, 0, 0, 9, 0, 0, 0, 7];
        pkt.extend_from_slice(b"payload");
        assert!(pubf.on_send(&pkt, 0x1000, &mut counts));
        let mut nack = Vec::new();
        rtcp::write_nack(&mut nack, 1, 7, &[0x1000]);
        let mut out = Vec::new();
        pubf.on_rtcp(&nack, 7, &mut out, &mut counts);
        assert_eq!(out.len(), 1);
        let rtx = &out[0];
        assert_eq!(rtx[1] & 0x7f, RTX_PT);
        assert_eq!(&rtx[8..12], &0xabcd_u32.to_be_bytes());
        assert_eq!(&rtx[12..14], &[0x10, 0x00]);
        assert_eq!(&rtx[14..], b"payload");
    }

    #[test]
    fn a_dropped_packet_is_nacked_and_its_retransmission_counted() {
        let now = Instant::now();
        let mut counts = FeedbackCounts::default();
        let mut sub = SubFeedback::new(1.0, now);
        let pkt = [0x80, 96, 0, 5, 0, 0, 0, 0, 0, 0, 0, 7];
        assert!(!sub.on_rtp(now, &pkt, 7, 5, &mut counts));
        let mut out = Vec::new();
        assert!(sub.poll(now, &mut out, &mut counts));
        let mut fb = Vec::new();
        rtcp::parse_compound(&out, &mut fb).expect("valid RTCP");
        assert!(fb
            .iter()
            .any(|f| matches!(f, Feedback::Nack { media_ssrc: 7, lost, .. } if lost == &[5])));
        // The retransmission is not dropped again.
        assert!(sub.on_rtp(now, &pkt, 7, 5, &mut counts));
        assert_eq!(counts.recovered, 1);
    }
}
