//! A producer: one incoming track, sent by its publisher as one or more encodings
//! (simulcast: one RTP stream per spatial layer). It owns its ingest (what happens to a
//! publisher's packet once the transport has unprotected it and routed it here by SSRC,
//! or by MID/RID, `transport::latch`): RTX unwrapping (RFC 4588), then the packet's
//! encoding (`encoding`): NACK bookkeeping and duplicate drop (RFC 4585), the
//! retransmission buffer its consumers' NACKs are answered from, receive statistics,
//! sender report mapping and keyframe requests toward the publisher (aggregated,
//! throttled and repeated until answered, `keyframe`), all per encoding. It also
//! recognises keyframes (VP8, H264).
//!
//! Encodings are spatial layers, index 0 the lowest (`negotiate::order_layers`). A
//! producer with one encoding is layer 0 throughout.

mod encoding;
mod keyframe;
mod rate;
mod upstream_delay;

use std::time::Instant;

use serde_json::Value;
use sfu_control::responses::{ProducerStats, StatsType};

use crate::bwe::PlayoutDelayLimits;
use crate::channel::params::{MediaKind, RtpParameters};
use crate::ids::{ProducerId, RouterId};
use crate::router::negotiate::{KeyframeCodec, ProducerStream, StreamIdExtensions};
use crate::router::rtx_buffer::RetransmissionBuffer;
use crate::router::{ConsumerKey, TransportKey};
use crate::rtcp::ReportBlock;
use crate::rtp::audio_level::{AudioLevel, AudioLevels};
use crate::rtp::rtx::unwrap_rtx;
use crate::rtp::{is_h264_keyframe, is_vp8_keyframe, RtpHeader};
use crate::stats::{DropReason, Traffic};

pub use encoding::{Encoding, Receipt, ACTIVE_WINDOW};
pub use keyframe::{
    KeyframeNeed, KeyframeRequests, KEYFRAME_REPEAT_FIRST, KEYFRAME_REPEAT_MAX,
    KEYFRAME_REQUEST_INTERVAL,
};
pub use rate::RateMeter;

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
    /// The spatial layer (encoding, 0 = lowest) the packet belongs to.
    pub layer: u8,
}

/// Which of a producer's RTP streams a packet came on: an encoding's media stream, or
/// (`rtx`) its RTX stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerStream {
    /// The spatial layer (encoding, 0 = lowest).
    pub layer: u8,
    pub rtx: bool,
}

/// One incoming track.
#[derive(Debug)]
pub struct Producer {
    id: ProducerId,
    kind: MediaKind,
    router: RouterId,
    transport: TransportKey,
    rtp_parameters: RtpParameters,
    /// Spatial layers, lowest first; never empty (validation requires an encoding).
    encodings: Vec<Encoding>,
    /// Payload type -> clock rate of each media codec.
    media_pts: Vec<(u8, u32)>,
    keyframes: KeyframeCodec,
    /// Whether keyframes are asked for with FIR (RFC 5104) rather than PLI: only when
    /// the publisher accepts FIR and not PLI.
    uses_fir: bool,
    /// RTX payload type -> repaired media payload type.
    rtx_pts: Vec<(u8, u8)>,
    stream_ids: StreamIdExtensions,
    paused: bool,
    /// Consumers of this producer, in creation order (the fan-out's order).
    consumers: Vec<ConsumerKey>,
    app_data: Value,
    /// The score last reported (the best of the encodings').
    score: u8,
    /// The publisher's audio levels (RFC 6464), for active-speaker detection.
    audio_levels: AudioLevels,
    /// The playout delay its uplink's loss calls for at its subscribers.
    upstream_delay: upstream_delay::UpstreamDelay,
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
        let video = p.kind == MediaKind::Video;
        let nack = p.stream.nack;
        let detectable = p.stream.keyframes != KeyframeCodec::None;
        let encodings = p
            .stream
            .encodings
            .into_iter()
            .map(|e| Encoding::new(e, video, nack, detectable))
            .collect();
        Self {
            id: p.id,
            kind: p.kind,
            router: p.router,
            transport: p.transport,
            rtp_parameters: p.rtp_parameters,
            encodings,
            media_pts: p.stream.media_pts,
            keyframes: p.stream.keyframes,
            uses_fir,
            rtx_pts: p.stream.rtx_pts,
            stream_ids: p.stream.stream_ids,
            paused: p.paused,
            upstream_delay: upstream_delay::UpstreamDelay::default(),
            consumers: Vec::new(),
            app_data: p.app_data,
            score: 0,
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

    /// The MID of the publisher's m-line, if signalled.
    pub fn mid(&self) -> Option<&str> {
        self.rtp_parameters.mid.as_deref()
    }

    /// Where the publisher puts MID and RID in its packets.
    pub fn stream_ids(&self) -> StreamIdExtensions {
        self.stream_ids
    }

    /// The media SSRC of the lowest layer, 0 while it is not known yet (a rid-named
    /// encoding before its first packet).
    pub fn ssrc(&self) -> u32 {
        self.layer_ssrc(0).unwrap_or(0)
    }

    /// The media SSRC of spatial layer `layer`, once known.
    pub fn layer_ssrc(&self, layer: u8) -> Option<u32> {
        self.encoding(layer).and_then(Encoding::ssrc)
    }

    /// Every media and RTX SSRC of every encoding known so far.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        self.encodings
            .iter()
            .flat_map(|e| e.ssrc().into_iter().chain(e.rtx_ssrc()))
    }

    /// The encodings, lowest spatial layer first.
    pub fn encodings(&self) -> &[Encoding] {
        &self.encodings
    }

    fn encoding(&self, layer: u8) -> Option<&Encoding> {
        self.encodings.get(usize::from(layer))
    }

    fn encoding_mut(&mut self, layer: u8) -> Option<&mut Encoding> {
        self.encodings.get_mut(usize::from(layer))
    }

    /// How many spatial layers (encodings) it has.
    pub fn spatial_layers(&self) -> u8 {
        self.encodings.len() as u8
    }

    /// Temporal layers per encoding (the most any encoding declares).
    pub fn temporal_layers(&self) -> u8 {
        self.encodings
            .iter()
            .map(Encoding::temporal_layers)
            .max()
            .unwrap_or(1)
    }

    /// The spatial layer whose encoding has `rid`.
    pub fn layer_of_rid(&self, rid: &[u8]) -> Option<u8> {
        self.encodings
            .iter()
            .position(|e| e.rid().is_some_and(|r| r.as_bytes() == rid))
            .map(|i| i as u8)
    }

    /// Whether some encoding still waits to learn its media or RTX SSRC from a RID.
    pub fn awaits_ssrcs(&self) -> bool {
        self.encodings
            .iter()
            .any(|e| e.rid().is_some() && (e.ssrc().is_none() || e.rtx_ssrc().is_none()))
    }

    /// Learns the media (`rtx` false) or RTX SSRC of `layer` from a packet naming its
    /// RID; false when that encoding already has another one (see [`Encoding::latch`]).
    pub fn latch(&mut self, layer: u8, ssrc: u32, rtx: bool) -> bool {
        self.encoding_mut(layer).is_some_and(|e| e.latch(ssrc, rtx))
    }

    /// Whether keyframes are detectable in its stream (VP8, H264), so a consumer can
    /// wait for one.
    pub fn keyframes_detectable(&self) -> bool {
        self.keyframes != KeyframeCodec::None
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

    /// Packets expected and received over all encodings (REMB's loss input).
    pub fn expected_and_received(&self) -> (u64, u64) {
        self.encodings.iter().fold((0, 0), |(e, r), x| {
            (e + x.recv().expected(), r + x.recv().received())
        })
    }

    /// RFC 3550 cumulative packets lost, over all encodings.
    pub fn packets_lost(&self) -> u64 {
        self.encodings.iter().map(|e| e.recv().lost()).sum()
    }

    /// Packets and bytes received on all encodings (RTX unwrapped, duplicates not
    /// counted).
    pub fn traffic(&self) -> Traffic {
        self.encodings.iter().fold(Traffic::default(), |mut t, e| {
            t.packets += e.traffic().packets;
            t.bytes += e.traffic().bytes;
            t
        })
    }

    /// Whether anything was received yet.
    pub fn has_received(&self) -> bool {
        self.encodings.iter().any(Encoding::has_received)
    }

    /// The producer's score: the best of its encodings' (a subscriber can be given
    /// whichever layer arrives well).
    pub fn score(&self) -> u8 {
        self.score
    }

    /// The last sender report's NTP and RTP time of layer `layer`'s stream and when it
    /// came.
    pub fn last_sr(&self, layer: u8) -> Option<(u64, u32, Instant)> {
        self.encoding(layer).and_then(Encoding::last_sr)
    }

    /// Bits per second received on layer `layer` over about the last second.
    pub fn layer_bitrate(&self, layer: u8, now: Instant) -> u32 {
        self.encoding(layer).map_or(0, |e| e.bitrate(now))
    }

    /// Frames per second layer `layer` received over about the last second.
    pub fn layer_frame_rate(&self, layer: u8, now: Instant) -> u32 {
        self.encoding(layer).map_or(0, |e| e.frame_rate(now))
    }

    /// Whether layer `layer` received a packet within about the last second.
    pub fn layer_active(&self, layer: u8, now: Instant) -> bool {
        self.encoding(layer).is_some_and(|e| e.active(now))
    }

    /// Clock rate of a media payload type.
    pub fn clock_rate(&self, pt: u8) -> Option<u32> {
        self.media_pts
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, r)| *r)
    }

    /// The ingest of one packet of `stream` (an encoding's media or RTX stream),
    /// unprotected and parsed as `hdr` in `buf[..len]`, arrived `micros`
    /// after the core's epoch: turns RTX back into the original packet (RFC 4588),
    /// drops duplicates, keeps it for retransmission and in the encoding's receive
    /// statistics. Returns the packet to forward, `Ok(None)` when there is nothing to
    /// forward (a duplicate, a padding-only probe, RTX for a stream whose SSRC is not
    /// known yet, a paused producer), or the reason for a counted drop.
    pub fn receive_rtp(
        &mut self,
        now: Instant,
        micros: u64,
        buf: &mut [u8],
        len: usize,
        hdr: RtpHeader,
        stream: LayerStream,
    ) -> Result<Option<Ingested>, DropReason> {
        let (mut len, mut hdr, layer) = (len, hdr, stream.layer);
        if stream.rtx {
            let media_pt = self
                .rtx_pts
                .iter()
                .find(|(rtx, _)| *rtx == hdr.payload_type)
                .map(|&(_, media)| media);
            let Some(e) = self.encoding_mut(layer) else {
                return Err(DropReason::UnknownSsrc);
            };
            e.on_rtx();
            let (Some(media_pt), Some(media_ssrc)) = (media_pt, e.ssrc()) else {
                return Ok(None);
            };
            // A padding-only RTX packet is a bandwidth probe: nothing to forward.
            let Ok(n) = unwrap_rtx(buf, len, &hdr, media_ssrc, media_pt) else {
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
        let Some(pkt) = buf.get(..len) else {
            return Ok(None);
        };
        let arrival = (micros.wrapping_mul(u64::from(clock_rate)) / 1_000_000) as u32;
        let keyframe = match self.keyframes {
            KeyframeCodec::Vp8 => is_vp8_keyframe(hdr.payload(pkt)),
            KeyframeCodec::H264 => is_h264_keyframe(hdr.payload(pkt)),
            KeyframeCodec::None => false,
        };
        let paused = self.paused;
        let Some(e) = self.encoding_mut(layer) else {
            return Err(DropReason::UnknownSsrc);
        };
        if e.on_packet(now, hdr.sequence, hdr.timestamp, arrival, pkt) == Receipt::Duplicate {
            return Ok(None);
        }
        if keyframe {
            e.on_keyframe();
        }
        if paused {
            return Ok(None);
        }
        Ok(Some(Ingested {
            len,
            hdr,
            arrival,
            keyframe,
            layer,
        }))
    }

    /// The publisher's audio levels, read from each packet it forwards
    /// (`worker::rtp_observers`).
    pub fn audio_levels_mut(&mut self) -> &mut AudioLevels {
        &mut self.audio_levels
    }

    /// The packets of layer `layer` kept for answering consumers' NACKs (video
    /// producers).
    pub fn retransmission_buffer(&self, layer: u8) -> Option<&RetransmissionBuffer> {
        self.encoding(layer)
            .and_then(Encoding::retransmission_buffer)
    }

    /// When NACKs toward the publisher are next due, on any encoding.
    pub fn nack_deadline(&self) -> Option<Instant> {
        self.encodings
            .iter()
            .filter_map(Encoding::nack_deadline)
            .min()
    }

    /// Whether NACKs for layer `layer` are due.
    pub fn nack_due(&self, layer: u8, now: Instant) -> bool {
        self.encoding(layer)
            .and_then(Encoding::nack_deadline)
            .is_some_and(|at| at <= now)
    }

    /// The producer's earliest deadline: any encoding's NACKs, deferred or repeated
    /// keyframe request.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.encodings
            .iter()
            .filter_map(Encoding::poll_timeout)
            .min()
    }

    /// Puts the sequence numbers of layer `layer` to NACK now into `lost`; returns
    /// whether losses were given up on, so that a keyframe of that layer is needed.
    pub fn poll_nacks(&mut self, layer: u8, now: Instant, lost: &mut Vec<u16>) -> bool {
        self.encoding_mut(layer)
            .is_some_and(|e| e.poll_nacks(now, lost))
    }

    /// Records that a keyframe of layer `layer` is wanted for `need`. Returns true when
    /// a request should go out now; otherwise the request on its way serves it, or the
    /// producer's timer sends it ([`Self::poll_keyframe_request`]).
    pub fn want_keyframe(&mut self, now: Instant, layer: u8, need: KeyframeNeed) -> bool {
        self.encoding_mut(layer)
            .is_some_and(|e| e.want_keyframe(now, need))
    }

    /// Whether layer `layer`'s keyframe requests have something due at `now` (a
    /// deferred request, a repeat).
    pub fn keyframe_request_due(&self, layer: u8, now: Instant) -> bool {
        self.encoding(layer)
            .is_some_and(|e| e.keyframe_request_due(now))
    }

    /// At the timer: whether a deferred or repeated keyframe request of layer `layer`
    /// goes out now. `waiting`: whether a consumer still waits for that keyframe (else
    /// the request is forgotten).
    pub fn poll_keyframe_request(&mut self, layer: u8, now: Instant, waiting: bool) -> bool {
        self.encoding_mut(layer)
            .is_some_and(|e| e.poll_keyframe_request(now, waiting))
    }

    /// Whether a keyframe request for layer `layer` is unanswered (a request sent now
    /// is a repeat).
    pub fn keyframe_request_unanswered(&self, layer: u8) -> bool {
        self.encoding(layer)
            .is_some_and(Encoding::keyframe_request_unanswered)
    }

    /// Whether keyframes are asked for with FIR rather than PLI, and the FIR command
    /// sequence number of layer `layer`'s latest request (RFC 5104 4.3.1.1).
    pub fn keyframe_request_form(&self, layer: u8) -> (bool, u8) {
        let sent = self
            .encoding(layer)
            .map_or(0, Encoding::keyframe_requests_sent);
        (self.uses_fir, sent as u8)
    }

    /// A sender report from the publisher for layer `layer`'s stream.
    pub fn on_sender_report(&mut self, layer: u8, ntp_time: u64, rtp_time: u32, now: Instant) {
        if let Some(e) = self.encoding_mut(layer) {
            e.on_sender_report(ntp_time, rtp_time, now);
        }
    }

    /// Adds the report blocks of our next receiver report (one per encoding that has
    /// received) to `blocks`; returns the producer's new score when it changed.
    pub fn report(&mut self, now: Instant, blocks: &mut Vec<ReportBlock>) -> Option<u8> {
        let clock = self.media_pts.first().map_or(90_000, |(_, rate)| *rate);
        for e in self.encodings.iter_mut().filter(|e| e.has_received()) {
            if let Some((block, _)) = e.report(now, clock) {
                blocks.push(block);
            }
        }
        if self.kind == MediaKind::Video {
            let missing = self
                .encodings
                .iter()
                .map(|e| e.packets_recovered() + e.packets_given_up())
                .sum();
            let received = self.encodings.iter().map(|e| e.traffic().packets).sum();
            let repair_rtt = self.encodings.iter().filter_map(Encoding::repair_rtt).max();
            self.upstream_delay
                .on_report(now, missing, received, repair_rtt);
        }
        let best = self
            .encodings
            .iter()
            .filter(|e| e.has_received())
            .map(Encoding::score)
            .max()
            .unwrap_or(0);
        (best != self.score).then(|| {
            self.score = best;
            best
        })
    }

    /// The playout delay its uplink's loss asks its subscribers for at `now`, if any
    /// (`upstream_delay.rs`), as of the last receiver report.
    pub fn upstream_playout_delay(&self, now: Instant) -> Option<PlayoutDelayLimits> {
        self.upstream_delay.announce(now)
    }

    /// The minimum playout delay its uplink's loss asks for (stats).
    pub fn upstream_playout_delay_ms(&self) -> u64 {
        u64::try_from(self.upstream_delay.current().as_millis()).unwrap_or(u64::MAX)
    }

    /// Stats for `producer.getStats`.
    pub fn stats(&self, now: Instant) -> ProducerStats {
        let traffic = self.traffic();
        let sum = |f: fn(&Encoding) -> u64| self.encodings.iter().map(f).sum::<u64>();
        ProducerStats {
            kind: StatsType::InboundRtp,
            id: self.id.clone(),
            media_kind: self.kind,
            ssrc: self.ssrc(),
            paused: self.paused,
            packets_received: traffic.packets,
            bytes_received: traffic.bytes,
            packets_lost: self.packets_lost(),
            jitter: self.encodings.first().map_or(0, |e| e.recv().jitter()),
            key_frame_requests_sent: sum(Encoding::keyframe_requests_sent),
            rtx_packets_received: sum(Encoding::rtx_packets),
            duplicate_packets_received: sum(Encoding::duplicates),
            nack_count: sum(Encoding::nack_count),
            packets_recovered: sum(Encoding::packets_recovered),
            packets_given_up: sum(Encoding::packets_given_up),
            score: self.score,
            consumers: self.consumers.len(),
            audio_level: self.audio_levels.last().map(AudioLevel::dbov),
            playout_delay: (self.kind == MediaKind::Video)
                .then(|| self.upstream_playout_delay_ms()),
            encodings: self
                .encodings
                .iter()
                .enumerate()
                .map(|(i, e)| e.stats(i as u8, now))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests;
