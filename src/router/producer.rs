//! A producer: one incoming track. It owns its ingest (what happens to a publisher's
//! packet once the transport has unprotected it and found the producer by SSRC): RTX
//! unwrapping (RFC 4588), NACK bookkeeping and duplicate drop (RFC 4585), the
//! retransmission buffer its consumers' NACKs are answered from, and receive
//! statistics. It also throttles keyframe requests toward its publisher.

use std::time::{Duration, Instant};

use serde_json::Value;
use sfu_control::responses::{ProducerStats, StatsType};

use crate::channel::params::{MediaKind, RtpParameters};
use crate::ids::{ProducerId, RouterId};
use crate::router::nack::{NackGenerator, PacketKind};
use crate::router::negotiate::ProducerStream;
use crate::router::recv_stats::RecvStats;
use crate::router::rtx_buffer::RetransmissionBuffer;
use crate::router::score::ScoreTracker;
use crate::router::{ConsumerKey, TransportKey};
use crate::rtcp::ReportBlock;
use crate::rtp::audio_level::{AudioLevel, AudioLevels};
use crate::rtp::rtx::unwrap_rtx;
use crate::rtp::{is_vp8_keyframe, RtpHeader};
use crate::stats::{DropReason, Traffic};

/// PLI/FIR toward a publisher at most this often (keyframes are expensive).
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// What `transport.produce` establishes: who the producer is and what it sends.
#[derive(Debug)]
pub struct ProducerParams {
    pub id: ProducerId,
    pub router: RouterId,
    pub transport: TransportKey,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
    pub stream: ProducerStream,
    pub paused: bool,
    pub app_data: Value,
}

/// A publisher's packet accepted for forwarding: its plaintext is `buf[..len]` of the
/// buffer given to [`Producer::receive_rtp`].
#[derive(Debug, Clone, Copy)]
pub struct Ingested {
    pub len: usize,
    pub hdr: RtpHeader,
    /// Arrival time in the producer's RTP clock units (the munger's gap handling).
    pub arrival: u32,
    /// Whether it starts a keyframe a consumer waiting for one may begin with.
    pub keyframe: bool,
}

/// One incoming track.
#[derive(Debug)]
pub struct Producer {
    id: ProducerId,
    kind: MediaKind,
    router: RouterId,
    transport: TransportKey,
    rtp_parameters: RtpParameters,
    ssrc: u32,
    rtx_ssrc: Option<u32>,
    /// Payload type -> clock rate of each media codec.
    media_pts: Vec<(u8, u32)>,
    vp8: bool,
    /// Whether keyframes are asked for with FIR (RFC 5104) rather than PLI: only when
    /// the publisher accepts FIR and not PLI.
    uses_fir: bool,
    paused: bool,
    /// Consumers of this producer, in creation order (the fan-out's order).
    consumers: Vec<ConsumerKey>,
    app_data: Value,
    recv: RecvStats,
    traffic: Traffic,
    /// Last PLI/FIR sent, and whether one is waiting for the throttle to open.
    last_keyframe_request: Option<Instant>,
    keyframe_pending: bool,
    keyframe_requests_sent: u64,
    /// NTP time (64-bit) and RTP time of the last sender report, and when it came:
    /// lets consumer sender reports keep the publisher's NTP/RTP mapping (lip-sync).
    last_sr: Option<(u64, u32, Instant)>,
    rtx_packets: u64,
    /// RTX payload type -> repaired media payload type.
    rtx_pts: Vec<(u8, u8)>,
    /// Gap detection and NACKs toward the publisher, when it accepts generic NACK.
    nack: Option<NackGenerator>,
    /// Recent packets for answering consumers' NACKs (video only), shared by all
    /// consumers of this producer.
    rtx_buffer: Option<RetransmissionBuffer>,
    duplicates: u64,
    score: ScoreTracker,
    /// The publisher's audio levels (RFC 6464), for active-speaker detection.
    audio_levels: AudioLevels,
}

impl Producer {
    /// A producer for a validated `transport.produce` (see `negotiate::validate_producer`).
    pub fn new(p: ProducerParams) -> Self {
        let first_codec = p.rtp_parameters.codecs.first();
        let accepts = |kind: &str, parameter: &str| {
            first_codec.is_some_and(|c| {
                c.rtcp_feedback
                    .iter()
                    .any(|f| f.kind == kind && f.parameter == parameter)
            })
        };
        let uses_fir = !accepts("nack", "pli") && accepts("ccm", "fir");
        let audio_levels = AudioLevels::new(p.kind, &p.rtp_parameters);
        Self {
            id: p.id,
            kind: p.kind,
            router: p.router,
            transport: p.transport,
            rtp_parameters: p.rtp_parameters,
            ssrc: p.stream.ssrc,
            rtx_ssrc: p.stream.rtx_ssrc,
            media_pts: p.stream.media_pts,
            vp8: p.stream.vp8,
            uses_fir,
            paused: p.paused,
            consumers: Vec::new(),
            app_data: p.app_data,
            recv: RecvStats::default(),
            traffic: Traffic::default(),
            last_keyframe_request: None,
            keyframe_pending: false,
            keyframe_requests_sent: 0,
            last_sr: None,
            rtx_packets: 0,
            rtx_pts: p.stream.rtx_pts,
            nack: p.stream.nack.then(NackGenerator::default),
            rtx_buffer: (p.kind == MediaKind::Video).then(RetransmissionBuffer::default),
            duplicates: 0,
            score: ScoreTracker::new(0),
            audio_levels,
        }
    }

    pub fn id(&self) -> &ProducerId {
        &self.id
    }

    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    pub fn router(&self) -> &RouterId {
        &self.router
    }

    /// The publisher's transport.
    pub fn transport(&self) -> TransportKey {
        self.transport
    }

    pub fn app_data(&self) -> &Value {
        &self.app_data
    }

    pub fn rtp_parameters(&self) -> &RtpParameters {
        &self.rtp_parameters
    }

    /// The media SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    pub fn rtx_ssrc(&self) -> Option<u32> {
        self.rtx_ssrc
    }

    /// Whether keyframes are detectable in its stream (VP8), so a consumer can wait
    /// for one.
    pub fn vp8(&self) -> bool {
        self.vp8
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Pauses or resumes; returns whether that changed anything.
    pub fn set_paused(&mut self, paused: bool) -> bool {
        let changed = self.paused != paused;
        self.paused = paused;
        changed
    }

    /// Its consumers' keys.
    pub fn consumers(&self) -> &[ConsumerKey] {
        &self.consumers
    }

    pub fn add_consumer(&mut self, ck: ConsumerKey) {
        self.consumers.push(ck);
    }

    pub fn remove_consumer(&mut self, ck: ConsumerKey) {
        self.consumers.retain(|k| *k != ck);
    }

    pub fn recv(&self) -> &RecvStats {
        &self.recv
    }

    /// Packets and bytes received (RTX unwrapped, duplicates not counted).
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// Whether anything was received yet.
    pub fn has_received(&self) -> bool {
        self.traffic.packets > 0
    }

    pub fn score(&self) -> u8 {
        self.score.current()
    }

    /// The last sender report's NTP and RTP time and when it came.
    pub fn last_sr(&self) -> Option<(u64, u32, Instant)> {
        self.last_sr
    }

    /// Clock rate of a media payload type.
    pub fn clock_rate(&self, pt: u8) -> Option<u32> {
        self.media_pts
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, r)| *r)
    }

    /// The ingest of one packet of this producer's stream (its media or RTX SSRC),
    /// unprotected and parsed as `hdr` in `buf[..len]`, arrived `micros` after the
    /// core's epoch: turns RTX back into the original packet (RFC 4588), drops
    /// duplicates, keeps it for retransmission and in the receive statistics. Returns
    /// the packet to forward, `Ok(None)` when there is nothing to forward (a duplicate,
    /// a padding-only probe, a paused producer), or the reason for a counted drop.
    pub fn receive_rtp(
        &mut self,
        now: Instant,
        micros: u64,
        buf: &mut [u8],
        len: usize,
        hdr: RtpHeader,
    ) -> Result<Option<Ingested>, DropReason> {
        let (mut len, mut hdr) = (len, hdr);
        if Some(hdr.ssrc) == self.rtx_ssrc {
            self.rtx_packets += 1;
            let Some(&(_, media_pt)) = self
                .rtx_pts
                .iter()
                .find(|(rtx, _)| *rtx == hdr.payload_type)
            else {
                return Ok(None);
            };
            // A padding-only RTX packet is a bandwidth probe: nothing to forward.
            let Ok(n) = unwrap_rtx(buf, len, &hdr, self.ssrc, media_pt) else {
                return Ok(None);
            };
            let Some(Ok(h)) = buf.get(..n).map(RtpHeader::parse) else {
                return Ok(None);
            };
            (len, hdr) = (n, h);
        }
        let Some(clock_rate) = self.clock_rate(hdr.payload_type) else {
            return Err(DropReason::UnknownSsrc);
        };
        if let Some(nack) = self.nack.as_mut() {
            if nack.on_packet(now, hdr.sequence) == PacketKind::Duplicate {
                self.duplicates += 1;
                return Ok(None);
            }
        }
        let Some(pkt) = buf.get(..len) else {
            return Ok(None);
        };
        if let Some(b) = self.rtx_buffer.as_mut() {
            b.insert(now, hdr.sequence, pkt);
        }
        self.traffic.add(len);
        let arrival = (micros.wrapping_mul(u64::from(clock_rate)) / 1_000_000) as u32;
        self.recv.on_packet(hdr.sequence, hdr.timestamp, arrival);
        if self.paused {
            return Ok(None);
        }
        let keyframe = self.vp8 && is_vp8_keyframe(hdr.payload(pkt));
        Ok(Some(Ingested {
            len,
            hdr,
            arrival,
            keyframe,
        }))
    }

    /// The publisher's audio levels, read from each packet it forwards
    /// (`worker::rtp_observers`).
    pub fn audio_levels_mut(&mut self) -> &mut AudioLevels {
        &mut self.audio_levels
    }

    /// The packets kept for answering consumers' NACKs (video producers).
    pub fn retransmission_buffer(&self) -> Option<&RetransmissionBuffer> {
        self.rtx_buffer.as_ref()
    }

    /// When NACKs toward the publisher are next due (newly missing packets, or retries).
    pub fn nack_deadline(&self) -> Option<Instant> {
        self.nack.as_ref().and_then(NackGenerator::poll_timeout)
    }

    /// Whether NACKs toward the publisher are due.
    pub fn nack_due(&self, now: Instant) -> bool {
        self.nack_deadline().is_some_and(|at| at <= now)
    }

    /// The producer's earliest deadline: its NACKs, or a deferred keyframe request when
    /// the throttle opens.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let keyframe = self
            .keyframe_pending
            .then_some(self.last_keyframe_request)
            .flatten()
            .map(|t| t + KEYFRAME_REQUEST_INTERVAL);
        self.nack_deadline().into_iter().chain(keyframe).min()
    }

    /// Puts the sequence numbers to NACK now into `lost`; returns whether losses were
    /// given up on, so that a keyframe is needed.
    pub fn poll_nacks(&mut self, now: Instant, lost: &mut Vec<u16>) -> bool {
        let Some(nack) = self.nack.as_mut() else {
            return false;
        };
        // The publisher's RTT is unknown (we only send it receiver reports); the
        // generator then retries at its default interval.
        nack.poll_nacks(now, None, lost);
        nack.take_keyframe_request()
    }

    /// Records that a keyframe is wanted. Returns true when a PLI should go out now;
    /// otherwise it is sent by the timer when the throttle opens.
    pub fn want_keyframe(&mut self, now: Instant) -> bool {
        let open = self
            .last_keyframe_request
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_REQUEST_INTERVAL);
        if open {
            self.last_keyframe_request = Some(now);
            self.keyframe_pending = false;
            self.keyframe_requests_sent += 1;
        } else {
            self.keyframe_pending = true;
        }
        open
    }

    /// Whether a keyframe request waits for the throttle to open.
    pub fn keyframe_pending(&self) -> bool {
        self.keyframe_pending
    }

    /// Whether keyframes are asked for with FIR rather than PLI, and the FIR command
    /// sequence number of the latest request (RFC 5104 4.3.1.1).
    pub fn keyframe_request_form(&self) -> (bool, u8) {
        (self.uses_fir, self.keyframe_requests_sent as u8)
    }

    /// A sender report from the publisher for this stream.
    pub fn on_sender_report(&mut self, ntp_time: u64, rtp_time: u32, now: Instant) {
        self.last_sr = Some((ntp_time, rtp_time, now));
        self.recv.on_sender_report(ntp_time, now);
    }

    /// The report block of our next receiver report for this stream, and the new score
    /// when it changed (what the publisher's path does to its stream).
    pub fn report(&mut self, now: Instant) -> (ReportBlock, Option<u8>) {
        let block = self.recv.report_block(self.ssrc, now);
        let clock = self
            .media_pts
            .first()
            .map_or(90_000, |(_, rate)| *rate)
            .max(1);
        let jitter_ms = f64::from(block.jitter) * 1000.0 / f64::from(clock);
        let score = self
            .score
            .update(f64::from(block.fraction_lost) / 256.0, jitter_ms);
        (block, score)
    }

    /// Stats for `producer.getStats`.
    pub fn stats(&self) -> ProducerStats {
        ProducerStats {
            kind: StatsType::InboundRtp,
            id: self.id.clone(),
            media_kind: self.kind,
            ssrc: self.ssrc,
            paused: self.paused,
            packets_received: self.traffic.packets,
            bytes_received: self.traffic.bytes,
            packets_lost: self.recv.lost(),
            jitter: self.recv.jitter(),
            key_frame_requests_sent: self.keyframe_requests_sent,
            rtx_packets_received: self.rtx_packets,
            duplicate_packets_received: self.duplicates,
            nack_count: self.nack.as_ref().map_or(0, |n| n.stats().requested),
            packets_recovered: self.nack.as_ref().map_or(0, |n| n.stats().recovered),
            packets_given_up: self.nack.as_ref().map_or(0, |n| n.stats().given_up),
            score: self.score.current(),
            consumers: self.consumers.len(),
            audio_level: self.audio_levels.last().map(AudioLevel::dbov),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::rtx::write_rtx;

    const SSRC: u32 = 0x2222_0002;
    const RTX_SSRC: u32 = 0x2222_0003;

    fn producer() -> Producer {
        Producer::new(ProducerParams {
            id: ProducerId("p".into()),
            router: RouterId("r".into()),
            transport: 0,
            kind: MediaKind::Video,
            rtp_parameters: RtpParameters::default(),
            stream: ProducerStream {
                ssrc: SSRC,
                rtx_ssrc: Some(RTX_SSRC),
                media_pts: vec![(96, 90_000)],
                vp8: true,
                rtx_pts: vec![(97, 96)],
                nack: true,
                twcc_id: None,
                remb: false,
            },
            paused: false,
            app_data: Value::Null,
        })
    }

    fn packet(pt: u8, seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend(seq.to_be_bytes());
        p.extend(9000_u32.to_be_bytes());
        p.extend(SSRC.to_be_bytes());
        // A VP8 descriptor (S=1) and a keyframe tag with the start code (RFC 6386 9.1).
        p.extend([0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a, 0x00]);
        p
    }

    fn receive(p: &mut Producer, mut buf: Vec<u8>) -> Result<Option<Ingested>, DropReason> {
        let len = buf.len();
        let hdr = RtpHeader::parse(&buf).expect("test packet parses");
        p.receive_rtp(Instant::now(), 1_000_000, &mut buf, len, hdr)
    }

    /// The ingest: media forwarded (a keyframe noticed), RTX turned back into the
    /// packet it repairs, a second copy dropped as a duplicate, an unknown payload type
    /// a counted drop; everything received is buffered for retransmission.
    #[test]
    fn receive_rtp_unwraps_rtx_and_drops_duplicates() {
        let mut p = producer();
        let first = receive(&mut p, packet(96, 1)).expect("accepted");
        assert!(first.is_some_and(|i| i.keyframe && i.hdr.sequence == 1));

        let original = packet(96, 2);
        let hdr = RtpHeader::parse(&original).expect("parses");
        let mut rtx = vec![0; original.len() + 2];
        let n = write_rtx(&mut rtx, &original, &hdr, RTX_SSRC, 97, 500).expect("RTX");
        rtx.truncate(n);
        let repaired = receive(&mut p, rtx).expect("accepted").expect("forwarded");
        assert_eq!((repaired.hdr.ssrc, repaired.hdr.sequence), (SSRC, 2));
        assert_eq!(repaired.len, original.len());

        assert!(
            matches!(receive(&mut p, packet(96, 2)), Ok(None)),
            "a duplicate"
        );
        assert!(matches!(
            receive(&mut p, packet(100, 3)),
            Err(DropReason::UnknownSsrc)
        ));
        let stats = p.stats();
        assert_eq!(stats.rtx_packets_received, 1);
        assert_eq!(stats.duplicate_packets_received, 1);
        assert_eq!(stats.packets_received, 2);
        let buffer = p.retransmission_buffer().expect("video buffers");
        assert_eq!(buffer.get(Instant::now(), 2), Some(original.as_slice()));
    }

    /// A paused producer still ingests (stats, buffer, NACKs) but forwards nothing.
    #[test]
    fn paused_producer_ingests_without_forwarding() {
        let mut p = producer();
        assert!(p.set_paused(true));
        assert!(matches!(receive(&mut p, packet(96, 1)), Ok(None)));
        assert!(p.has_received());
        assert!(p
            .retransmission_buffer()
            .is_some_and(|b| b.get(Instant::now(), 1).is_some()));
    }
}
