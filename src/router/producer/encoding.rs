//! One encoding of a producer: one RTP stream from the publisher (a simulcast layer, or
//! the whole track when there is one) with its RTX stream. It owns everything that is
//! per stream on the receiving side: receive statistics and score (its receiver report
//! block), the NACK generator and retransmission buffer, the sender report mapping, its
//! keyframe requests toward the publisher (`keyframe`) and the receive rate.

use std::time::{Duration, Instant};

use sfu_control::responses::EncodingStats;

use crate::router::nack::{NackGenerator, PacketKind};
use crate::router::negotiate::EncodingStream;
use crate::router::recv_stats::RecvStats;
use crate::router::rtx_buffer::RetransmissionBuffer;
use crate::router::score::ScoreTracker;
use crate::rtcp::ReportBlock;
use crate::stats::Traffic;

use super::keyframe::{KeyframeNeed, KeyframeRequests};
use super::rate::RateMeter;

/// An encoding that received nothing for this long is inactive (the publisher stopped
/// sending it: bandwidth, or the page deactivated it).
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(1);

/// What becomes of a packet of the encoding's stream after the per-stream ingest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// New: forward it.
    New,
    /// Already received (a retransmission that crossed the original): drop it.
    Duplicate,
}

/// RTP timestamp ticks (2 s at 90 kHz) behind the newest seen beyond which a packet is
/// taken for a restarted stream rather than a late one, when counting frames.
const FRAME_CLOCK_RESTART: i32 = 180_000;

/// One encoding's receive state.
#[derive(Debug)]
pub struct Encoding {
    /// The media SSRC: signalled, or learnt from the first packet naming the RID.
    ssrc: Option<u32>,
    rtx_ssrc: Option<u32>,
    rid: Option<String>,
    temporal_layers: u8,
    recv: RecvStats,
    traffic: Traffic,
    rate: RateMeter,
    /// Frames (new RTP timestamps) per 100 ms over the last second.
    frames: RateMeter,
    /// The newest RTP timestamp seen, to count frames.
    last_timestamp: Option<u32>,
    last_packet: Option<Instant>,
    /// Gap detection and NACKs toward the publisher, when it accepts generic NACK.
    nack: Option<NackGenerator>,
    /// Recent packets for answering consumers' NACKs (video only).
    rtx_buffer: Option<RetransmissionBuffer>,
    score: ScoreTracker,
    /// NTP time (64-bit) and RTP time of this stream's last sender report, and when it
    /// came: consumer sender reports keep the publisher's mapping (lip-sync).
    last_sr: Option<(u64, u32, Instant)>,
    /// PLI/FIR toward the publisher for this stream: aggregated, throttled, repeated.
    keyframe_requests: KeyframeRequests,
    keyframes_received: u64,
    rtx_packets: u64,
    duplicates: u64,
}

impl Encoding {
    /// The state of one validated encoding; `video` gives it a retransmission buffer,
    /// `nack` a NACK generator; `keyframes_detectable` (VP8, H264) lets its keyframe
    /// requests be known answered, so aggregated and repeated.
    pub fn new(
        stream: EncodingStream,
        video: bool,
        nack: bool,
        keyframes_detectable: bool,
    ) -> Self {
        Self {
            ssrc: stream.ssrc,
            rtx_ssrc: stream.rtx_ssrc,
            rid: stream.rid,
            temporal_layers: stream.temporal_layers.max(1),
            recv: RecvStats::default(),
            traffic: Traffic::default(),
            rate: RateMeter::default(),
            frames: RateMeter::default(),
            last_timestamp: None,
            last_packet: None,
            nack: nack.then(NackGenerator::default),
            rtx_buffer: video.then(RetransmissionBuffer::default),
            score: ScoreTracker::new(0),
            last_sr: None,
            keyframe_requests: KeyframeRequests::new(keyframes_detectable),
            keyframes_received: 0,
            rtx_packets: 0,
            duplicates: 0,
        }
    }

    /// The media SSRC, once known.
    pub fn ssrc(&self) -> Option<u32> {
        self.ssrc
    }

    pub fn rtx_ssrc(&self) -> Option<u32> {
        self.rtx_ssrc
    }

    pub fn rid(&self) -> Option<&str> {
        self.rid.as_deref()
    }

    pub fn temporal_layers(&self) -> u8 {
        self.temporal_layers
    }

    /// Learns the media (or, with `rtx`, the RTX) SSRC of a rid-named encoding. At
    /// most one of each per encoding: returns false, changing nothing, when that SSRC
    /// is already known and differs (a second stream claiming the same RID).
    pub fn latch(&mut self, ssrc: u32, rtx: bool) -> bool {
        let slot = if rtx {
            &mut self.rtx_ssrc
        } else {
            &mut self.ssrc
        };
        match *slot {
            Some(known) => known == ssrc,
            None => {
                *slot = Some(ssrc);
                true
            }
        }
    }

    pub fn recv(&self) -> &RecvStats {
        &self.recv
    }

    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Counts an RTX packet (before it is unwrapped).
    pub fn on_rtx(&mut self) {
        self.rtx_packets += 1;
    }

    /// The per-stream ingest of a media packet (RTX already unwrapped): NACK
    /// bookkeeping and duplicate detection, the retransmission buffer, receive
    /// statistics and rate. `arrival` is in the stream's RTP clock units.
    pub fn on_packet(
        &mut self,
        now: Instant,
        seq: u16,
        timestamp: u32,
        arrival: u32,
        pkt: &[u8],
    ) -> Receipt {
        if let Some(nack) = self.nack.as_mut() {
            if nack.on_packet(now, seq) == PacketKind::Duplicate {
                self.duplicates += 1;
                return Receipt::Duplicate;
            }
        }
        if let Some(b) = self.rtx_buffer.as_mut() {
            b.insert(now, seq, pkt);
        }
        self.traffic.add(pkt.len());
        self.rate.add(now, pkt.len());
        // A timestamp newer than any before starts a frame (a late or repaired packet
        // of an older one does not); one far behind is a restarted stream, whose frames
        // count from there.
        if self.last_timestamp.is_none_or(|last| {
            let ahead = timestamp.wrapping_sub(last) as i32;
            !(-FRAME_CLOCK_RESTART..=0).contains(&ahead)
        }) {
            self.last_timestamp = Some(timestamp);
            self.frames.add(now, 1);
        }
        self.last_packet = Some(now);
        self.recv.on_packet(seq, timestamp, arrival);
        Receipt::New
    }

    /// Counts a keyframe start received on this stream; it answers the keyframe
    /// requests so far.
    pub fn on_keyframe(&mut self) {
        self.keyframes_received += 1;
        self.keyframe_requests.on_keyframe();
    }

    /// Bits per second received over about the last second.
    pub fn bitrate(&self, now: Instant) -> u32 {
        self.rate.bitrate(now)
    }

    /// Frames per second received over about the last second.
    pub fn frame_rate(&self, now: Instant) -> u32 {
        self.frames.per_second(now)
    }

    /// Whether a packet arrived within [`ACTIVE_WINDOW`].
    pub fn active(&self, now: Instant) -> bool {
        self.last_packet
            .is_some_and(|at| now.saturating_duration_since(at) < ACTIVE_WINDOW)
    }

    pub fn retransmission_buffer(&self) -> Option<&RetransmissionBuffer> {
        self.rtx_buffer.as_ref()
    }

    /// When NACKs toward the publisher are next due (newly missing packets, or retries).
    pub fn nack_deadline(&self) -> Option<Instant> {
        self.nack.as_ref().and_then(NackGenerator::poll_timeout)
    }

    /// The encoding's earliest deadline: its NACKs, a deferred or repeated keyframe
    /// request.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let keyframe = self.keyframe_requests.poll_timeout();
        self.nack_deadline().into_iter().chain(keyframe).min()
    }

    /// Puts the sequence numbers to NACK now into `lost`; returns whether losses were
    /// given up on, so that a keyframe is needed.
    pub fn poll_nacks(&mut self, now: Instant, lost: &mut Vec<u16>) -> bool {
        let Some(nack) = self.nack.as_mut() else {
            return false;
        };
        // The publisher's RTT is unknown from RTCP (we only send it receiver reports);
        // the generator times its retries by the repairs it measures.
        nack.poll_nacks(now, None, lost);
        nack.take_keyframe_request()
    }

    /// Records that a keyframe is wanted for `need`. Returns true when a request
    /// should go out now; otherwise the unanswered request serves it, or it is due at
    /// [`Self::poll_timeout`] ([`KeyframeRequests::want`]).
    pub fn want_keyframe(&mut self, now: Instant, need: KeyframeNeed) -> bool {
        self.keyframe_requests.want(now, need)
    }

    /// At the producer's timer: whether a deferred or repeated keyframe request goes out
    /// now; `waiting`: whether a consumer still waits for a keyframe of this stream. A
    /// repeat waits while the publisher sends nothing of it ([`KeyframeRequests::poll`]).
    pub fn poll_keyframe_request(&mut self, now: Instant, waiting: bool) -> bool {
        let active = self.active(now);
        self.keyframe_requests.poll(now, waiting, active)
    }

    /// Whether a keyframe request was sent for this stream and no keyframe came since.
    pub fn keyframe_request_unanswered(&self) -> bool {
        self.keyframe_requests.unanswered()
    }

    /// Whether the keyframe requests have something due at or before `now`.
    pub fn keyframe_request_due(&self, now: Instant) -> bool {
        self.keyframe_requests
            .poll_timeout()
            .is_some_and(|at| at <= now)
    }

    /// Keyframe requests sent for this stream (the FIR command sequence number, RFC
    /// 5104 4.3.1.1, is its low byte).
    pub fn keyframe_requests_sent(&self) -> u64 {
        self.keyframe_requests.sent()
    }

    /// A sender report from the publisher for this stream.
    pub fn on_sender_report(&mut self, ntp_time: u64, rtp_time: u32, now: Instant) {
        self.last_sr = Some((ntp_time, rtp_time, now));
        self.recv.on_sender_report(ntp_time, now);
    }

    pub fn last_sr(&self) -> Option<(u64, u32, Instant)> {
        self.last_sr
    }

    /// Whether anything was received on this stream yet.
    pub fn has_received(&self) -> bool {
        self.traffic.packets > 0
    }

    /// The report block of our next receiver report for this stream, and the new score
    /// when it changed. `clock_rate` converts its jitter to milliseconds.
    pub fn report(&mut self, now: Instant, clock_rate: u32) -> Option<(ReportBlock, Option<u8>)> {
        let ssrc = self.ssrc?;
        let block = self.recv.report_block(ssrc, now);
        let jitter_ms = f64::from(block.jitter) * 1000.0 / f64::from(clock_rate.max(1));
        let score = self
            .score
            .update(f64::from(block.fraction_lost) / 256.0, jitter_ms);
        Some((block, score))
    }

    pub fn score(&self) -> u8 {
        self.score.current()
    }

    pub fn nack_count(&self) -> u64 {
        self.nack.as_ref().map_or(0, |n| n.stats().requested)
    }

    pub fn packets_recovered(&self) -> u64 {
        self.nack.as_ref().map_or(0, |n| n.stats().recovered)
    }

    pub fn packets_given_up(&self) -> u64 {
        self.nack.as_ref().map_or(0, |n| n.stats().given_up)
    }

    /// The uplink's measured repair round trip (NACK sent to the repair's arrival).
    pub fn repair_rtt(&self) -> Option<Duration> {
        self.nack.as_ref()?.repair_rtt()
    }

    pub fn rtx_packets(&self) -> u64 {
        self.rtx_packets
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// This encoding's entry of `producer.getStats`; `layer` is its spatial layer.
    pub fn stats(&self, layer: u8, now: Instant) -> EncodingStats {
        EncodingStats {
            rid: self.rid.clone(),
            ssrc: self.ssrc,
            rtx_ssrc: self.rtx_ssrc,
            spatial_layer: layer,
            temporal_layers: self.temporal_layers,
            packets_received: self.traffic.packets,
            bytes_received: self.traffic.bytes,
            bitrate: self.bitrate(now),
            packets_lost: self.recv.lost(),
            jitter: self.recv.jitter(),
            score: self.score(),
            nack_count: self.nack_count(),
            rtx_packets_received: self.rtx_packets,
            key_frame_requests_sent: self.keyframe_requests.sent(),
            keyframes_received: self.keyframes_received,
        }
    }
}
