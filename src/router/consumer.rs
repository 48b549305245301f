//! A consumer: one outgoing track for one subscriber. It owns its egress: every packet
//! it sends, forwarded or retransmitted, goes through [`Consumer::send_rtp`], one
//! pipeline (payload type map, extension remap, sequence/timestamp rewrite, RTX wrap
//! for retransmissions, the transport's own transport-wide sequence number, SRTP
//! protect, commit to the send batch, send-side estimator and counters).
//!
//! State common to every kind of consumer lives in [`Consumer`]; what differs per kind
//! ([`ConsumerKind::Simple`], [`ConsumerKind::Simulcast`], as mediasoup's
//! `SimpleConsumer` / `SimulcastConsumer`) is in the variant and dispatched by a
//! `match`, never a trait object, on the packet path.

mod counter_map;
mod egress;
mod padding;
mod remote_loss;
mod simple;
mod simulcast;

pub use egress::Egress;
pub use remote_loss::{RemoteLoss, MAX_PASSED_ON};
pub use simple::SimpleConsumer;
pub use simulcast::{LayerClock, LayerSwitches, Layers, SimulcastConsumer, MAX_SPATIAL_LAYERS};

use simulcast::{Planned, Verdict};

use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use sfu_control::responses::{ConsumerLayers, ConsumerStats, ConsumerType, StatsType};

use crate::bwe::{PlayoutDelayLimits, Urgency};
use crate::channel::params::{MediaKind, RtpParameters};
use crate::ids::ConsumerId;
use crate::router::negotiate::ConsumerStream;
use crate::router::rtx_buffer::{retransmit_interval, RetransmissionBuffer, RetransmitLimiter};
use crate::router::score::ScoreTracker;
use crate::router::{ProducerKey, TransportKey};
use crate::rtcp::ReportBlock;
use crate::rtp::extension::{
    insert_extension, insert_extension_u16, remap_extensions, set_extension_u16, ExtensionMap,
    MAX_EXTENSION_GROWTH,
};
use crate::rtp::munger::SeqTsMunger;
use crate::rtp::red;
use crate::rtp::rtx::{wrap_rtx, OSN_LEN};
use crate::rtp::{rewrite, RtpHeader};
use crate::stats::{DropReason, Traffic};
use crate::worker::core::{drop_outgoing, protect_drop_reason};

/// Payload type map entry of a producer payload type the subscriber did not negotiate.
const NO_PT: u8 = 0xff;

/// What `transport.consume` establishes for a new consumer.
#[derive(Debug)]
pub struct ConsumerParams {
    pub id: ConsumerId,
    pub producer: ProducerKey,
    pub transport: TransportKey,
    pub media_kind: MediaKind,
    /// The consumer's media SSRC and the one reserved for its RTX stream.
    pub ssrc: u32,
    pub rtx_ssrc: u32,
    pub stream: ConsumerStream,
    pub paused: bool,
    pub producer_paused: bool,
    /// Whether the producer's keyframes are detectable (VP8, H264), so video starts on
    /// one.
    pub producer_vp8: bool,
    /// The producer's spatial layers (encodings) and temporal layers: more than one
    /// spatial layer makes a simulcast consumer.
    pub spatial_layers: u8,
    pub temporal_layers: u8,
    /// A simulcast consumer's preferred spatial and temporal layer to start with.
    pub preferred_layers: Option<(u8, Option<u8>)>,
    /// Outlives its producer, idle, for `consumer.setProducer` to point elsewhere.
    pub follow: bool,
    pub app_data: Value,
}

/// The producer a consumer was pointed at (`consumer.setProducer`) and has not switched
/// to yet: its payload type and extension maps onto the consumer's own.
#[derive(Debug)]
struct PendingSource {
    producer: ProducerKey,
    pt_map: [u8; 128],
    red_unwrap: u8,
    ext_map: ExtensionMap,
    /// Whether its keyframes are detectable: then the switch waits for one.
    keyframe_gated: bool,
    /// The last fan-out pass that served the consumer this producer's packets.
    fanout_pass: u64,
}

/// What a consumer's switch to another producer takes: see [`Consumer::point_at`].
#[derive(Debug)]
pub struct SourceMaps {
    pub producer: ProducerKey,
    pub pt_map: Vec<(u8, u8)>,
    pub ext_map: Vec<(u8, u8)>,
    pub red_unwrap: Option<u8>,
    pub keyframe_gated: bool,
}

/// The kinds of consumer, each with the state of its forwarding policy.
#[derive(Debug)]
pub enum ConsumerKind {
    Simple(SimpleConsumer),
    /// Boxed: its state (numbering history, VP8 counters) is large, and most consumers
    /// are simple.
    Simulcast(Box<SimulcastConsumer>),
}

impl ConsumerKind {
    /// The `type` of the consumer in the control protocol.
    pub fn wire(&self) -> ConsumerType {
        match self {
            Self::Simple(_) => ConsumerType::Simple,
            Self::Simulcast(_) => ConsumerType::Simulcast,
        }
    }
}

/// Why a packet goes to the subscriber; the steps of [`Consumer::send_rtp`] that
/// differ between the two are chosen by it.
#[derive(Debug, Clone, Copy)]
pub enum Transmission {
    /// A producer packet fanned out: `arrival` in the producer's RTP clock units,
    /// `keyframe` when it starts one, `layer` the spatial layer (encoding, 0 = lowest)
    /// of the producer packet.
    Forward {
        arrival: u32,
        keyframe: bool,
        layer: u8,
        /// The producer the packet came from: the consumer's, or the one it switches to.
        source: ProducerKey,
    },
    /// A buffered producer packet resent for the subscriber's NACK of `out_seq`
    /// (RFC 4585), over RTX when negotiated (RFC 4588).
    Retransmit { out_seq: u16 },
}

/// One outgoing track for one subscriber.
#[derive(Debug)]
pub struct Consumer {
    id: ConsumerId,
    media_kind: MediaKind,
    /// None while a following consumer is idle (its producer closed).
    producer: Option<ProducerKey>,
    /// A switch to another producer under way (boxed: rare, and its maps are large).
    pending: Option<Box<PendingSource>>,
    /// A switch made in the egress, for the core to finish: the producer left (None
    /// when the consumer was idle).
    switched: Option<Option<ProducerKey>>,
    follow: bool,
    transport: TransportKey,
    ssrc: u32,
    rtp_parameters: RtpParameters,
    /// Producer payload type -> ours; [`NO_PT`] = not negotiated (dropped).
    pt_map: [u8; 128],
    /// The producer's RED payload type when the subscriber did not negotiate RED
    /// (RFC 2198): such packets go out as their primary block; [`NO_PT`] = none.
    red_unwrap: u8,
    /// RED packets sent as their primary block (forwarded and retransmitted).
    red_unwrapped: u64,
    ext_map: ExtensionMap,
    clock_rate: u32,
    paused: bool,
    producer_paused: bool,
    app_data: Value,
    traffic: Traffic,
    /// Last forwarded packet: (input RTP ts, output RTP ts, when, its spatial layer).
    /// Maps the producer's timeline (that layer's) to ours for sender reports.
    last_forwarded: Option<(u32, u32, Instant, u8)>,
    plis_received: u64,
    firs_received: u64,
    nacks_received: u64,
    rtt_ms: Option<f64>,
    fraction_lost: u8,
    /// The subscriber's loss kept for an audio producer's publisher (its RR).
    remote_loss: RemoteLoss,
    packets_lost_reported: u32,
    /// RTX (SSRC, payload type) when the subscriber negotiated it (RFC 4588).
    rtx: Option<(u32, u8)>,
    rtx_seq: u16,
    /// Rate limit for resending one packet (duplicate and late NACKs).
    limiter: RetransmitLimiter,
    retransmissions: u64,
    score: ScoreTracker,
    /// The consumer's transport-wide sequence extension id (we stamp our own numbers).
    twcc_id: Option<u8>,
    /// The playout-delay extension id, for video whose subscriber negotiated it.
    playout_delay_id: Option<u8>,
    /// The playout delay its producer's lossy uplink asks for (set at the producer's
    /// receiver reports): written when it asks more than the transport does.
    upstream_playout: Option<PlayoutDelayLimits>,
    /// The last fan-out pass that served this consumer (`worker::fanout`).
    fanout_pass: u64,
    /// Its weight when the transport's bandwidth is shared among its consumers (1-255).
    priority: u8,
    kind: ConsumerKind,
}

impl Consumer {
    /// A consumer for a negotiated `transport.consume`: simulcast for a video producer
    /// with several encodings, else simple; `rng` draws its initial sequence numbers and
    /// timestamp (RFC 3550 5.1, RFC 4588).
    pub fn new<R: Rng + ?Sized>(p: ConsumerParams, rng: &mut R) -> Self {
        let mut ext_map = ExtensionMap::new();
        for (from, to) in &p.stream.ext_map {
            ext_map.insert(*from, *to);
        }
        let video = p.media_kind == MediaKind::Video;
        let keyframe_gated = video && p.producer_vp8;
        let mut rtp_parameters = p.stream.rtp_parameters;
        let kind = if video && p.spatial_layers > 1 {
            let vp8 = rtp_parameters
                .codecs
                .first()
                .is_some_and(|c| c.mime_type.eq_ignore_ascii_case("video/VP8"));
            let s = SimulcastConsumer::new(
                p.spatial_layers,
                p.temporal_layers,
                vp8,
                p.stream.clock_rate,
                p.preferred_layers,
                rng.gen(),
                rng.gen(),
            );
            if let Some(e) = rtp_parameters.encodings.first_mut() {
                e.scalability_mode = Some(s.scalability_mode());
            }
            ConsumerKind::Simulcast(Box::new(s))
        } else {
            ConsumerKind::Simple(SimpleConsumer::new(
                SeqTsMunger::new_random(p.ssrc, rng),
                keyframe_gated,
            ))
        };
        Self {
            id: p.id,
            media_kind: p.media_kind,
            producer: Some(p.producer),
            pending: None,
            switched: None,
            follow: p.follow,
            transport: p.transport,
            ssrc: p.ssrc,
            pt_map: pt_table(&p.stream.pt_map),
            red_unwrap: p.stream.red_unwrap.unwrap_or(NO_PT),
            red_unwrapped: 0,
            ext_map,
            clock_rate: p.stream.clock_rate,
            paused: p.paused,
            producer_paused: p.producer_paused,
            app_data: p.app_data,
            traffic: Traffic::default(),
            last_forwarded: None,
            plis_received: 0,
            firs_received: 0,
            nacks_received: 0,
            rtt_ms: None,
            fraction_lost: 0,
            remote_loss: RemoteLoss::default(),
            packets_lost_reported: 0,
            rtx: p.stream.rtx_pt.map(|pt| (p.rtx_ssrc, pt)),
            rtx_seq: rng.gen(),
            limiter: RetransmitLimiter::default(),
            retransmissions: 0,
            score: ScoreTracker::new(10),
            twcc_id: p.stream.twcc_id,
            playout_delay_id: p.stream.playout_delay_id,
            upstream_playout: None,
            fanout_pass: 0,
            priority: 1,
            kind,
            rtp_parameters,
        }
    }

    pub fn id(&self) -> &ConsumerId {
        &self.id
    }

    pub fn media_kind(&self) -> MediaKind {
        self.media_kind
    }

    pub fn kind(&self) -> &ConsumerKind {
        &self.kind
    }

    /// Its producer; None while a following consumer is idle.
    pub fn producer(&self) -> Option<ProducerKey> {
        self.producer
    }

    /// The producer it switches to at that producer's next keyframe (video) or packet.
    pub fn pending_producer(&self) -> Option<ProducerKey> {
        self.pending.as_ref().map(|p| p.producer)
    }

    /// Whether it outlives its producer (`follow`).
    pub fn follows(&self) -> bool {
        self.follow
    }

    /// Points the consumer at another producer (`consumer.setProducer`): it keeps
    /// forwarding its current one until the new one's first keyframe (video whose
    /// keyframes are detectable) or first packet (audio), then switches, continuing its
    /// own sequence numbers and timestamps. Returns the producer it was pending on
    /// before, whose registration the core drops.
    pub fn point_at(&mut self, maps: SourceMaps) -> Option<ProducerKey> {
        let mut ext_map = ExtensionMap::new();
        for (from, to) in &maps.ext_map {
            ext_map.insert(*from, *to);
        }
        let before = self.pending_producer();
        self.pending = Some(Box::new(PendingSource {
            producer: maps.producer,
            pt_map: pt_table(&maps.pt_map),
            red_unwrap: maps.red_unwrap.unwrap_or(NO_PT),
            ext_map,
            keyframe_gated: maps.keyframe_gated,
            fanout_pass: self.fanout_pass,
        }));
        before
    }

    /// Cancels a switch under way; returns the producer it was pending on.
    pub fn cancel_pending(&mut self) -> Option<ProducerKey> {
        self.pending.take().map(|p| p.producer)
    }

    /// Its producer closed: a following consumer goes idle (until pointed at another
    /// one). Returns false for one that does not follow (the core closes it).
    pub fn on_producer_closed(&mut self, pk: ProducerKey) -> bool {
        if self.pending_producer() == Some(pk) {
            self.pending = None;
            return true;
        }
        if !self.follow {
            return false;
        }
        self.producer = None;
        self.producer_paused = false;
        true
    }

    /// The producer it left in a switch made since last asked (inner None: it was
    /// idle), for the core to drop its registration there and notify `producerchange`.
    #[inline]
    pub fn take_switch(&mut self) -> Option<Option<ProducerKey>> {
        self.switched.take()
    }

    /// Whether a packet of `source` may start the switch to the pending producer now.
    fn switch_ready(&self, source: ProducerKey, keyframe: bool) -> bool {
        self.pending
            .as_ref()
            .is_some_and(|p| p.producer == source && (keyframe || !p.keyframe_gated))
    }

    /// Makes the pending producer the consumer's: its maps replace the old ones and the
    /// numbering continues from the last packet sent (`SeqTsMunger::mark_resync`, with
    /// the elapsed arrival time on the timestamps).
    fn switch_source(&mut self) {
        let Some(p) = self.pending.take() else {
            return;
        };
        self.switched = Some(self.producer);
        self.producer = Some(p.producer);
        self.pt_map = p.pt_map;
        self.red_unwrap = p.red_unwrap;
        self.ext_map = p.ext_map;
        self.producer_paused = false;
        self.last_forwarded = None;
        if let ConsumerKind::Simple(s) = &mut self.kind {
            s.switch_source();
        }
    }

    /// The subscriber's transport.
    pub fn transport(&self) -> TransportKey {
        self.transport
    }

    /// The media SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The SSRCs the consumer sends with: media, and RTX when negotiated.
    pub fn ssrcs(&self) -> impl Iterator<Item = u32> {
        std::iter::once(self.ssrc).chain(self.rtx.map(|(s, _)| s))
    }

    pub fn app_data(&self) -> &Value {
        &self.app_data
    }

    pub fn rtp_parameters(&self) -> &RtpParameters {
        &self.rtp_parameters
    }

    /// Whether packets flow to the subscriber now.
    #[inline]
    pub fn active(&self) -> bool {
        !self.paused && !self.producer_paused
    }

    pub fn producer_paused(&self) -> bool {
        self.producer_paused
    }

    /// Pauses or resumes the consumer (`consumer.pause`/`resume`); returns whether that
    /// changed anything. A resumed consumer continues its sequence from a keyframe.
    pub fn set_paused(&mut self, paused: bool) -> bool {
        if self.paused == paused {
            return false;
        }
        self.paused = paused;
        if paused {
            self.stop_stream();
        } else {
            self.resume_stream();
        }
        true
    }

    /// Follows its producer's pause state.
    pub fn set_producer_paused(&mut self, paused: bool) {
        self.producer_paused = paused;
        if paused {
            self.stop_stream();
        } else {
            self.resume_stream();
        }
    }

    fn stop_stream(&mut self) {
        match &mut self.kind {
            ConsumerKind::Simple(_) => {}
            ConsumerKind::Simulcast(s) => s.stop(),
        }
    }

    fn resume_stream(&mut self) {
        if !self.active() {
            return;
        }
        match &mut self.kind {
            ConsumerKind::Simple(s) => s.resume(),
            ConsumerKind::Simulcast(s) => s.resume(),
        }
    }

    /// Its weight in the transport's bandwidth allocation (`consumer.setPriority`).
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Sets the weight; 0 is not a weight (the control arm refuses it).
    pub fn set_priority(&mut self, priority: u8) {
        self.priority = priority.max(1);
    }

    /// `consumer.setPreferredLayers`: the layers to forward when the path allows,
    /// clamped to what the producer sends; None for a consumer without layers to choose
    /// from (simple).
    pub fn set_preferred_layers(
        &mut self,
        spatial: u8,
        temporal: Option<u8>,
    ) -> Option<ConsumerLayers> {
        match &mut self.kind {
            ConsumerKind::Simple(_) => None,
            ConsumerKind::Simulcast(s) => {
                let l = s.set_preferred(spatial, temporal);
                Some(ConsumerLayers {
                    spatial_layer: l.spatial,
                    temporal_layer: l.temporal,
                })
            }
        }
    }

    /// The bandwidth allocation's cap on a simulcast consumer's layers (spatial,
    /// temporal; None: no cap): the layers it switches to are the lower of this and
    /// the preferred ones. Nothing for a simple consumer.
    pub fn set_target_layers(&mut self, cap: Option<(u8, u8)>) {
        if let ConsumerKind::Simulcast(s) = &mut self.kind {
            s.set_allocation(cap);
        }
    }

    /// The spatial layer a keyframe for this consumer is asked for on: the one it
    /// forwards (or waits for); 0 for a simple consumer.
    pub fn keyframe_layer(&self) -> u8 {
        match &self.kind {
            ConsumerKind::Simple(_) => 0,
            ConsumerKind::Simulcast(s) => s.keyframe_layer(),
        }
    }

    /// The encoding a keyframe is wanted on, once (a simulcast consumer whose target
    /// changed, that starts or resumes): the core sends the request upstream.
    pub fn take_keyframe_request(&mut self) -> Option<u8> {
        match &mut self.kind {
            ConsumerKind::Simple(_) => None,
            ConsumerKind::Simulcast(s) => s.take_keyframe_request(),
        }
    }

    /// The forwarded layers when they changed since last asked, for the `layerschange`
    /// notification (inner None: it forwards nothing). Always None for a simple consumer.
    #[inline]
    pub fn take_layers_change(&mut self) -> Option<Option<ConsumerLayers>> {
        match &mut self.kind {
            ConsumerKind::Simple(_) => None,
            ConsumerKind::Simulcast(s) => s.take_layers_change().map(|l| l.map(wire_layers)),
        }
    }

    /// A simulcast consumer's layer switches since last asked (none for a simple one).
    pub fn take_layer_switches(&mut self) -> LayerSwitches {
        match &mut self.kind {
            ConsumerKind::Simple(_) => LayerSwitches::default(),
            ConsumerKind::Simulcast(s) => s.take_switches(),
        }
    }

    /// Whether the bandwidth allocation holds an active simulcast consumer below the
    /// layers its subscriber prefers (its target is the lower of both).
    pub fn limited_by_bandwidth(&self) -> bool {
        match &self.kind {
            ConsumerKind::Simple(_) => false,
            ConsumerKind::Simulcast(s) => self.active() && s.target() != s.preferred(),
        }
    }

    /// Gives a simulcast consumer its producer's encodings' sender-report clocks (it
    /// places a new layer's timestamps on the old one's timeline with them).
    #[inline]
    pub fn set_layer_clocks(&mut self, clocks: &[Option<LayerClock>; MAX_SPATIAL_LAYERS]) {
        if let ConsumerKind::Simulcast(s) = &mut self.kind {
            s.set_clocks(clocks);
        }
    }

    /// Whether it forwards a choice of the producer's layers.
    #[inline]
    pub fn is_simulcast(&self) -> bool {
        matches!(self.kind, ConsumerKind::Simulcast(_))
    }

    /// Marks the consumer served by fan-out pass `pass` with `source`'s packets (its
    /// producer's or the pending one's); false if it already was.
    #[inline]
    pub fn mark_served(&mut self, pass: u64, source: ProducerKey) -> bool {
        let mark = match &mut self.pending {
            Some(p) if p.producer == source => &mut p.fanout_pass,
            _ => &mut self.fanout_pass,
        };
        let fresh = *mark != pass;
        *mark = pass;
        fresh
    }

    /// Whether fan-out pass `pass` served the consumer already.
    #[inline]
    pub fn served_in(&self, pass: u64) -> bool {
        self.fanout_pass == pass
    }

    /// Counts a PLI from the subscriber.
    pub fn on_pli(&mut self) {
        self.plis_received += 1;
    }

    /// Counts a FIR from the subscriber.
    pub fn on_fir(&mut self) {
        self.firs_received += 1;
    }

    /// Counts a NACK from the subscriber (answered by [`Self::retransmit`]).
    pub fn on_nack(&mut self) {
        self.nacks_received += 1;
    }

    /// Takes a report block of the subscriber's receiver report about this stream;
    /// `now_mid` is the middle 32 bits of the NTP time now. Returns the new score when
    /// it changed.
    pub fn on_receiver_report(
        &mut self,
        now: Instant,
        block: &ReportBlock,
        now_mid: u32,
    ) -> Option<u8> {
        self.fraction_lost = block.fraction_lost;
        self.remote_loss.on_report(now, block.fraction_lost);
        self.packets_lost_reported = block.total_lost;
        if block.last_sr != 0 {
            // RFC 3550 6.4.1: RTT = A - LSR - DLSR, in 1/65536 s.
            let rtt = now_mid
                .wrapping_sub(block.last_sr)
                .wrapping_sub(block.delay_since_last_sr);
            if rtt < 65536 * 10 {
                self.rtt_ms = Some(f64::from(rtt) * 1000.0 / 65536.0);
            }
        }
        let jitter_ms = f64::from(block.jitter) * 1000.0 / f64::from(self.clock_rate.max(1));
        self.score
            .update(f64::from(block.fraction_lost) / 256.0, jitter_ms)
    }

    /// Sets the playout delay its producer's uplink asks for (None: nothing).
    pub fn set_upstream_playout(&mut self, limits: Option<PlayoutDelayLimits>) {
        self.upstream_playout = limits;
    }

    /// The subscriber's recent loss to pass on to the publisher of an audio producer
    /// (`remote_loss`): 0 for video (its publisher repairs by NACK and keyframes, and
    /// does not read it) and while paused (nothing is sent to lose).
    pub fn loss_for_publisher(&self, now: Instant) -> u8 {
        if self.media_kind != MediaKind::Audio || !self.active() {
            return 0;
        }
        self.remote_loss.passed_on(now)
    }

    /// What a sender report for this stream needs: the clock rate, the last forwarded
    /// packet's (input ts, output ts, when), and packets and bytes sent.
    pub fn sender_info(&self) -> Option<SenderInfo> {
        let (in_ts, out_ts, at, layer) = self.last_forwarded?;
        Some(SenderInfo {
            layer,
            ssrc: self.ssrc,
            clock_rate: self.clock_rate,
            in_ts,
            out_ts,
            at,
            packets: self.traffic.packets,
            bytes: self.traffic.bytes,
        })
    }

    /// Packets and bytes forwarded.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// RED packets sent to the subscriber as their primary Opus block.
    pub fn red_unwrapped(&self) -> u64 {
        self.red_unwrapped
    }

    /// The round trip to the subscriber, from its last receiver report.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt_ms
            .filter(|ms| ms.is_finite() && *ms >= 0.0)
            .map(|ms| Duration::from_secs_f64(ms / 1000.0))
    }

    /// PLIs received from the subscriber.
    pub fn plis_received(&self) -> u64 {
        self.plis_received
    }

    /// NACKs received from the subscriber.
    pub fn nacks_received(&self) -> u64 {
        self.nacks_received
    }

    /// Answers a subscriber's NACK for `lost` (sequence numbers in the consumer's own
    /// numbering) from the producer's retransmission buffers (`buffer(layer)`, the
    /// encoding each packet came from). Each packet is resent at most once per the
    /// consumer's RTT (duplicate and late NACKs).
    pub fn retransmit<'b>(
        &mut self,
        now: Instant,
        buffer: impl Fn(u8) -> Option<&'b RetransmissionBuffer>,
        lost: &[u16],
        egress: &mut Egress<'_>,
    ) {
        for &out_seq in lost {
            let original = match &self.kind {
                ConsumerKind::Simple(s) => s.original_seq(out_seq).map(|seq| (0, seq)),
                ConsumerKind::Simulcast(s) => s.original(out_seq),
            };
            let Some(pkt) = original.and_then(|(layer, seq)| buffer(layer)?.get(now, seq)) else {
                continue;
            };
            let Ok(hdr) = RtpHeader::parse(pkt) else {
                continue;
            };
            self.send_rtp(now, egress, pkt, &hdr, Transmission::Retransmit { out_seq });
        }
    }

    /// Sends one packet of the producer's stream (`pkt`, parsed as `hdr`) to the
    /// subscriber: the consumer's whole egress pipeline, for fan-out and retransmission
    /// alike. A packet that fails to rewrite or protect, or whose VP8 descriptor a
    /// simulcast consumer cannot read, is a counted drop; one the consumer's policy
    /// does not send (paused, waiting for a keyframe, payload type not negotiated, a
    /// duplicate, resent too recently, another spatial layer or a temporal layer above
    /// the current one) is neither sent nor counted. No allocation.
    #[inline]
    pub fn send_rtp(
        &mut self,
        now: Instant,
        egress: &mut Egress<'_>,
        pkt: &[u8],
        hdr: &RtpHeader,
        how: Transmission,
    ) {
        if let Transmission::Forward {
            source, keyframe, ..
        } = how
        {
            // A packet of the producer it switches to: nothing before the switch point,
            // which makes that producer's maps the consumer's.
            if self.producer != Some(source) {
                if !self.switch_ready(source, keyframe) {
                    return;
                }
                self.switch_source();
            }
        }
        // Which packets go out, and how they are numbered: by the kind's policy when
        // forwarded, as first sent when retransmitted.
        let pt_of = |pt: u8| self.pt_map.get(usize::from(pt)).copied().unwrap_or(NO_PT);
        // What is copied after the header: the payload with its padding, or, for RED
        // toward a subscriber without it, the primary block alone (the redundant
        // blocks only repeat earlier packets).
        let (out_pt, body) = if hdr.payload_type == self.red_unwrap {
            let Ok(block) = red::primary_block(hdr.payload(pkt)) else {
                return drop_outgoing(
                    egress.transport_drops,
                    egress.worker_drops,
                    DropReason::Malformed,
                );
            };
            let at = hdr.header_len;
            (
                pt_of(block.payload_type),
                at + block.range.start..at + block.range.end,
            )
        } else {
            (pt_of(hdr.payload_type), hdr.header_len..pkt.len())
        };
        if out_pt == NO_PT {
            return;
        }
        let numbering = match how {
            Transmission::Forward {
                arrival,
                keyframe,
                layer,
                ..
            } => {
                // Not before the transport can send: a keyframe taken now would start a
                // stream the subscriber never gets the start of.
                if !self.active() || egress.path.is_none() {
                    return;
                }
                match &mut self.kind {
                    ConsumerKind::Simple(s) => {
                        if !s.admit(keyframe) {
                            return;
                        }
                        Numbering::Map { arrival }
                    }
                    // The simulcast policy decides before the copy: most packets of a
                    // producer's other layers are not for this consumer.
                    ConsumerKind::Simulcast(s) => {
                        let payload = hdr.payload(pkt);
                        match s.forward(
                            layer,
                            hdr.sequence,
                            hdr.timestamp,
                            payload,
                            keyframe,
                            arrival,
                        ) {
                            Verdict::Send(planned) => Numbering::Planned(planned),
                            Verdict::Skip => return,
                            Verdict::Malformed => {
                                return drop_outgoing(
                                    egress.transport_drops,
                                    egress.worker_drops,
                                    DropReason::Malformed,
                                )
                            }
                        }
                    }
                }
            }
            Transmission::Retransmit { out_seq } => match &self.kind {
                ConsumerKind::Simple(s) => {
                    let Some(ts) = s.output_ts(hdr.timestamp) else {
                        return;
                    };
                    Numbering::Fixed { seq: out_seq, ts }
                }
                ConsumerKind::Simulcast(s) => {
                    let Some(planned) = s.retransmission(out_seq, hdr.payload(pkt)) else {
                        return;
                    };
                    Numbering::Planned(planned)
                }
            },
        };
        if let Transmission::Retransmit { out_seq } = how {
            let rtt = self.rtt_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0));
            if !self.limiter.allow(now, out_seq, retransmit_interval(rtt)) {
                return;
            }
            // Within what the path carries (counted by the budget when not).
            if let Some(bwe) = egress.bwe.as_ref() {
                if !egress.rtx_budget.allow(now, bwe.estimate_bps(), pkt.len()) {
                    return;
                }
            }
        }
        let Some((dest, srtp)) = egress.path.as_mut() else {
            return;
        };
        let (dest, srtp, out) = (*dest, &mut **srtp, &mut *egress.out);
        let (Some(head), Some(body)) = (pkt.get(..hdr.header_len), pkt.get(body)) else {
            return;
        };
        let len = head.len() + body.len();
        let rtx_room = match how {
            Transmission::Forward { .. } => 0,
            Transmission::Retransmit { .. } => OSN_LEN,
        };
        // Room for two elements inserted: the transport-wide sequence number and the
        // playout delay.
        let room = len + 2 * MAX_EXTENSION_GROWTH + rtx_room + srtp.profile().rtp_overhead();
        let slot = out.start(dest, room);
        let Some(dst) = slot.get_mut(..len) else {
            out.commit(0);
            return drop_outgoing(
                egress.transport_drops,
                egress.worker_drops,
                DropReason::ProtectFailed,
            );
        };
        let (dst_head, dst_body) = dst.split_at_mut(head.len());
        dst_head.copy_from_slice(head);
        dst_body.copy_from_slice(body);
        // An unwrapped RED packet leaves its padding behind: the copy has none.
        let red_unwrapped = len != pkt.len();
        let unwrapped_hdr;
        let hdr = if !red_unwrapped {
            hdr
        } else {
            if let Some(b0) = dst_head.first_mut() {
                *b0 &= !0x20;
            }
            unwrapped_hdr = RtpHeader {
                payload_end: len,
                padding_len: 0,
                ..*hdr
            };
            &unwrapped_hdr
        };
        // Extensions first: a packet that cannot be remapped is dropped before the munger
        // assigns it a sequence number, so it leaves no gap.
        if remap_extensions(slot, hdr, &self.ext_map).is_err() {
            out.commit(0);
            return drop_outgoing(
                egress.transport_drops,
                egress.worker_drops,
                DropReason::ProtectFailed,
            );
        }
        let (seq, ts) = match numbering {
            Numbering::Fixed { seq, ts } => (seq, ts),
            Numbering::Planned(p) => {
                if let Some((desc, f)) = p.vp8 {
                    let payload = slot.get_mut(hdr.header_len..).unwrap_or_default();
                    desc.rewrite(payload, f.picture_id, f.tl0_pic_idx, f.key_idx);
                }
                (p.seq, p.ts)
            }
            Numbering::Map { arrival } => {
                let mapped = match &mut self.kind {
                    ConsumerKind::Simple(s) => s.forward(hdr.sequence, hdr.timestamp, arrival),
                    ConsumerKind::Simulcast(_) => None,
                };
                let Some(mapped) = mapped else {
                    out.commit(0);
                    return;
                };
                mapped
            }
        };
        rewrite(slot, self.ssrc, out_pt, seq, ts);
        let mut plain = len;
        if let (Transmission::Retransmit { .. }, Some((rtx_ssrc, rtx_pt))) = (how, self.rtx) {
            // RFC 4588 4: the RTX stream has its own sequence. The header, extensions
            // included, stays where it was, so `hdr` still locates the extensions below.
            let rtx_seq = self.rtx_seq;
            self.rtx_seq = rtx_seq.wrapping_add(1);
            match wrap_rtx(slot, len, hdr, rtx_ssrc, rtx_pt, rtx_seq) {
                Ok(n) => plain = n,
                Err(_) => {
                    out.commit(0);
                    return drop_outgoing(
                        egress.transport_drops,
                        egress.worker_drops,
                        DropReason::ProtectFailed,
                    );
                }
            }
        }
        // The transport's playout delay while it asks for one (`bwe::playout`), before
        // the sequence number below, which then finds the header as it now is.
        let delayed_hdr;
        let playout = match (egress.playout_delay, self.upstream_playout) {
            (Some(a), Some(b)) => Some(if b.min_ms > a.min_ms { b } else { a }),
            (a, b) => a.or(b),
        };
        let hdr = match (self.playout_delay_id, playout) {
            (Some(id), Some(limits)) => {
                match insert_extension(slot, plain, hdr, id, &limits.to_bytes()) {
                    Ok(n) if n != plain => {
                        plain = n;
                        match slot.get(..n).map(RtpHeader::parse) {
                            Some(Ok(h)) => {
                                delayed_hdr = h;
                                &delayed_hdr
                            }
                            _ => {
                                out.commit(0);
                                return drop_outgoing(
                                    egress.transport_drops,
                                    egress.worker_drops,
                                    DropReason::ProtectFailed,
                                );
                            }
                        }
                    }
                    // Overwritten in place, or a block it cannot go into: as it was.
                    _ => hdr,
                }
            }
            _ => hdr,
        };
        // The transport's own transport-wide sequence number, on every packet it sends
        // (the subscriber's transport-cc feedback reports them all): in place when the
        // publisher's element was kept, else inserted.
        let transport_seq = self.twcc_id.map(|id| {
            let n = *egress.transport_seq;
            *egress.transport_seq = n.wrapping_add(1);
            if !set_extension_u16(slot, hdr, id, n) {
                plain = insert_extension_u16(slot, plain, hdr, id, n).unwrap_or(plain);
            }
            n
        });
        match srtp.protect_rtp(slot, plain) {
            Ok(n) => {
                // Within the pacing rate, or held back in the transport's pacer (which
                // records it as sent when it leaves). Audio and retransmissions (held
                // to their own budget) never wait: a repair queued behind the media it
                // repairs comes too late to help.
                let urgency = match (self.media_kind, how) {
                    (MediaKind::Video, Transmission::Forward { .. }) => Urgency::Paced,
                    _ => Urgency::Now,
                };
                let held = egress
                    .bwe
                    .as_ref()
                    .is_some_and(|bwe| !egress.pacer.admit(now, bwe.pacing_bps(now), n, urgency));
                if held {
                    egress
                        .pacer
                        .enqueue(dest, slot.get(..n).unwrap_or_default(), transport_seq);
                    out.commit(0);
                } else {
                    out.commit(n);
                    if let (Some(seq), Some(bwe)) = (transport_seq, egress.bwe.as_mut()) {
                        bwe.on_packet_sent(now, seq, n);
                    }
                    egress.transport_rtp_out.add(n);
                    egress.worker_rtp_out.add(n);
                }
                self.red_unwrapped += u64::from(red_unwrapped);
                match how {
                    Transmission::Forward { layer, .. } => {
                        self.traffic.add(n);
                        self.last_forwarded = Some((hdr.timestamp, ts, now, layer));
                    }
                    Transmission::Retransmit { .. } => self.retransmissions += 1,
                }
            }
            Err(e) => {
                out.commit(0);
                drop_outgoing(
                    egress.transport_drops,
                    egress.worker_drops,
                    protect_drop_reason(e),
                );
            }
        }
    }

    fn simulcast(&self) -> Option<&SimulcastConsumer> {
        match &self.kind {
            ConsumerKind::Simulcast(s) => Some(s),
            ConsumerKind::Simple(_) => None,
        }
    }

    /// Stats for `consumer.getStats`.
    pub fn stats(&self) -> ConsumerStats {
        ConsumerStats {
            kind: StatsType::OutboundRtp,
            id: self.id.clone(),
            media_kind: self.media_kind,
            ssrc: self.ssrc,
            paused: self.paused,
            producer_paused: self.producer_paused,
            packets_sent: self.traffic.packets,
            bytes_sent: self.traffic.bytes,
            pli_count: self.plis_received,
            fir_count: self.firs_received,
            nack_count: self.nacks_received,
            round_trip_time: self.rtt_ms,
            fraction_lost: self.fraction_lost,
            packets_lost: self.packets_lost_reported,
            rtx_ssrc: self.rtx.map(|(ssrc, _)| ssrc),
            retransmitted_packets_sent: self.retransmissions,
            score: self.score.current(),
            preferred_layers: self.simulcast().map(|s| wire_layers(s.preferred())),
            current_layers: self.simulcast().and_then(|s| s.current()).map(wire_layers),
            target_layers: self.simulcast().map(|s| wire_layers(s.target())),
            priority: Some(self.priority),
        }
    }
}

/// How a packet sent by [`Consumer::send_rtp`] gets its sequence number and timestamp.
#[derive(Debug, Clone, Copy)]
enum Numbering {
    /// Mapped by the consumer kind's policy (forwarding).
    Map { arrival: u32 },
    /// The numbers it was first sent with (a simple consumer's retransmission).
    Fixed { seq: u16, ts: u32 },
    /// Decided by a simulcast consumer's policy before the copy, with its VP8
    /// descriptor rewrite (forwarding and retransmission).
    Planned(Planned),
}

fn wire_layers(l: Layers) -> ConsumerLayers {
    ConsumerLayers {
        spatial_layer: l.spatial,
        temporal_layer: l.temporal,
    }
}

/// What a sender report about a consumer's stream is built from.
#[derive(Debug, Clone, Copy)]
pub struct SenderInfo {
    /// The producer's spatial layer (encoding) `in_ts` belongs to.
    pub layer: u8,
    pub ssrc: u32,
    pub clock_rate: u32,
    /// The last forwarded packet: producer timestamp, ours, and when.
    pub in_ts: u32,
    pub out_ts: u32,
    pub at: Instant,
    pub packets: u64,
    pub bytes: u64,
}

/// Builds the payload type table of a consumer.
fn pt_table(pt_map: &[(u8, u8)]) -> [u8; 128] {
    let mut t = [NO_PT; 128];
    for (from, to) in pt_map {
        if let Some(slot) = t.get_mut(usize::from(*from)) {
            *slot = *to;
        }
    }
    t
}

#[cfg(test)]
mod red_tests;
#[cfg(test)]
mod tests;
