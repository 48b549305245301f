//! Per-subscriber congestion control in the core: each subscriber transport's estimate
//! (`bwe::SendSideEstimator`) allocated to its video consumers' layers
//! (`bwe::allocation`), probes before an upgrade the estimate does not cover yet
//! (`bwe::probe`, padding through a consumer's egress), run after every transport-cc
//! feedback from the subscriber and at the transport's congestion deadline (the next
//! padding slice, the periodic re-allocation, the pacer's next packet). The pacer's
//! queue (`bwe::pacer`) drains here too.

use std::time::{Duration, Instant};

use crate::batch::SendBatch;
use crate::bwe::{Allocation, LayerBitrates, Layers, VideoDemand};
use crate::channel::params::MediaKind;
use crate::router::consumer::Layers as SimulcastLayers;
use crate::router::{Consumer, ConsumerKey, ConsumerKind, Egress, Producer, Router, TransportKey};
use crate::transport::WebRtcTransport;
use crate::worker::core::WorkerCore;
use crate::worker::timers::{TimerKey, Timers};

impl WorkerCore {
    /// Runs a subscriber transport's congestion control at `now`: re-allocates its
    /// estimate when due ([`Self::allocate_bandwidth`]), probes when an upgrade waits
    /// for one ([`Self::probe_bandwidth`]), then has each consumer given layers follow
    /// them (the keyframe a spatial switch needs, `layerschange`). Nothing without an
    /// estimate (no consumer negotiated transport-cc).
    pub(crate) fn congestion_control(
        &mut self,
        now: Instant,
        tk: TransportKey,
        out: &mut SendBatch,
    ) {
        self.drain_pacer(now, tk, out);
        let allocated = self.allocate_bandwidth(now, tk);
        self.probe_bandwidth(now, tk, out);
        if !allocated {
            return;
        }
        let Some(t) = self.transports.get(tk) else {
            return;
        };
        let given: Vec<ConsumerKey> = t.cc.demands.iter().map(|d| d.key).collect();
        for ck in given {
            self.follow_consumer(now, ck, out);
        }
    }

    /// At `transport.consume`: the transport's allocation with the new consumer `new`
    /// in it, so the first keyframe it asks for (the caller's) is of the layer it will
    /// get; the other consumers follow what they were given.
    pub(crate) fn allocate_for_new_consumer(
        &mut self,
        now: Instant,
        tk: TransportKey,
        new: ConsumerKey,
        out: &mut SendBatch,
    ) {
        if !self.allocate_bandwidth(now, tk) {
            return;
        }
        let Some(t) = self.transports.get(tk) else {
            return;
        };
        let others: Vec<ConsumerKey> =
            t.cc.demands
                .iter()
                .map(|d| d.key)
                .filter(|ck| *ck != new)
                .collect();
        for ck in others {
            self.follow_consumer(now, ck, out);
        }
    }

    /// Sends what the transport's pacer lets go at `now`, to the transport's selected
    /// tuple (it may have moved while the packets waited), and records each with the
    /// estimator as sent now.
    fn drain_pacer(&mut self, now: Instant, tk: TransportKey, out: &mut SendBatch) {
        let Some(t) = self.transports.get_mut(tk) else {
            return;
        };
        let Some(bwe) = t.bwe.as_mut() else {
            return;
        };
        let pacing = bwe.pacing_bps(now);
        while let Some(p) = t.cc.pacer.pop(now, pacing) {
            if let Some(dest) = t.ice.selected() {
                out.push(dest, &p.data);
                if let Some(seq) = p.transport_seq {
                    bwe.on_packet_sent(now, seq, p.data.len());
                }
                t.rtp_out.add(p.data.len());
                self.rtp_out.add(p.data.len());
            }
            t.cc.pacer.recycle(p.data);
        }
    }

    /// Takes a probe cluster's result, and allocates the transport's estimate to its
    /// consumers' layers if an allocation is due (`BandwidthAllocator::due`). Returns
    /// whether it allocated.
    fn allocate_bandwidth(&mut self, now: Instant, tk: TransportKey) -> bool {
        let Self {
            routers,
            transports,
            consumers,
            producers,
            totals,
            ..
        } = self;
        let Some(t) = transports.get_mut(tk) else {
            return false;
        };
        let Some(bwe) = t.bwe.as_mut() else {
            return false;
        };
        if let Some(result) = bwe.take_probe_result() {
            if t.cc.probe.on_result(now, result) {
                totals.probe_clusters_succeeded += 1;
            }
        }
        let estimate = bwe.estimate_bps();
        // The active speaker's video: that of the publisher (transport) whose audio
        // producer the router's observers last named dominant.
        let speaker = routers
            .get(&t.router)
            .and_then(Router::active_speaker)
            .and_then(|pk| producers.get(pk))
            .map(Producer::transport);
        let mut demands = std::mem::take(&mut t.cc.demands);
        demands.clear();
        let mut audio_bps = 0;
        // The longest round trip among the video consumers: what a repair takes.
        let mut rtt: Option<Duration> = None;
        for &ck in &t.consumers {
            let Some(c) = consumers.get(ck) else {
                continue;
            };
            if c.media_kind() == MediaKind::Video {
                rtt = rtt.max(c.rtt());
            }
            let Some(p) = c.producer().and_then(|k| producers.get(k)) else {
                continue;
            };
            match c.media_kind() {
                MediaKind::Audio => {
                    if c.active() {
                        audio_bps += u64::from(p.layer_bitrate(0, now));
                    }
                }
                MediaKind::Video => {
                    let speaking = speaker == Some(p.transport());
                    demands.push(video_demand(now, ck, c, p, speaking));
                }
            }
        }
        t.cc.playout.update(now, bwe.inherent_loss(), rtt);
        t.cc.playout_announced = t.cc.playout.announce(now);
        // Until a lossy path's own loss is known (and a playout delay covers repairs),
        // no consumer moves up to a higher spatial layer.
        let hold =
            t.cc.playout
                .holds_upward_moves(now, bwe.loss_fraction(), bwe.inherent_loss());
        t.cc.allocator.hold_spatial_moves_up(hold);
        let due = t.cc.allocator.due(now, estimate, &demands);
        if due {
            let s = bwe.stats();
            tracing::debug!(
                transport = %t.id,
                estimate,
                audio_bps,
                loss = ?s.loss_fraction,
                delay = ?s.delay,
                probing = t.cc.probe.state().name(),
                paced_bytes = t.cc.pacer.queued_bytes(),
                inherent_loss = ?bwe.inherent_loss(),
                playout_delay_ms = t.cc.playout.current().as_millis(),
                ?rtt,
                "allocating the estimate"
            );
            for a in t.cc.allocator.allocate(now, estimate, audio_bps, &demands) {
                if let Some(c) = consumers.get_mut(a.key) {
                    apply_allocation(c, a);
                }
            }
        }
        t.cc.demands = demands;
        due
    }

    /// Starts a probe cluster when the last allocation waits for one and the path is
    /// calm, sends the padding due, and schedules the transport's next congestion
    /// deadline.
    fn probe_bandwidth(&mut self, now: Instant, tk: TransportKey, out: &mut SendBatch) {
        let Self {
            transports,
            consumers,
            rtp_out,
            drops,
            timers,
            totals,
            ..
        } = self;
        let Some(t) = transports.get_mut(tk) else {
            return;
        };
        let Some(bwe) = t.bwe.as_mut() else {
            return;
        };
        // Any consumer that can carry padding: the transport's packets all share one
        // transport-wide numbering, which is what the probe measures.
        let carrier = t
            .consumers
            .iter()
            .copied()
            .find(|ck| consumers.get(*ck).is_some_and(Consumer::can_pad));
        // Probe only a path that is not congested now: a probe into a queue or into
        // congestion loss measures nothing but the congestion and adds to it (GCC
        // probes from a steady state too). Loss the estimator tolerates (a lossy path
        // without a queue) does not stop a probe.
        let stats = bwe.stats();
        let calm = !stats.delay.is_overusing()
            && stats
                .loss_fraction
                .is_none_or(|l| l < bwe.tolerated_loss(now));
        if let Some(target) =
            t.cc.allocator
                .probe_target()
                .filter(|_| calm && carrier.is_some())
        {
            let media = t.cc.allocator.allocated_bps();
            if t.cc.probe.start(now, target, bwe.estimate_bps(), media) {
                bwe.start_probe();
                totals.probe_clusters_started += 1;
            }
        }
        if !calm && t.cc.probe.abort(now) {
            bwe.end_probe();
            totals.probe_clusters_aborted += 1;
        }
        let (padding, ended) = t.cc.probe.poll_padding(now, bwe.probe_sent_bytes());
        let pacing = bwe.pacing_bps(now);
        if ended {
            bwe.end_probe();
        }
        // Padding only tops up an idle pacer: with packets waiting, the path is already
        // as full as the estimate allows.
        if padding > 0 && t.cc.pacer.queued_bytes() == 0 {
            if let Some(c) = carrier.and_then(|ck| consumers.get_mut(ck)) {
                let sent = c.send_padding(now, &mut Egress::new(t, out, rtp_out, drops), padding);
                totals.probe_padding_packets += sent.packets;
                totals.probe_padding_bytes += sent.bytes;
            }
        }
        if let Some(at) = t.cc.poll_timeout(pacing) {
            timers.lower(TimerKey::Transport(tk), at);
        }
    }
}

/// Arms transport `tk`'s timer for its pacer when packets started waiting in it (after
/// the packet path sent through the transport's egress).
pub(crate) fn wake_pacer(
    now: Instant,
    timers: &mut Timers,
    tk: TransportKey,
    t: &mut WebRtcTransport,
) {
    if !t.cc.pacer.take_wake() {
        return;
    }
    let at = t
        .bwe
        .as_ref()
        .and_then(|b| t.cc.pacer.poll_timeout(b.pacing_bps(now)));
    if let Some(at) = at {
        timers.lower(TimerKey::Transport(tk), at);
    }
}

/// A video consumer as the allocator sees it.
fn video_demand(
    now: Instant,
    ck: ConsumerKey,
    c: &Consumer,
    p: &Producer,
    active_speaker: bool,
) -> VideoDemand {
    let (bitrates, preferred, current) = match c.kind() {
        // One stream: its layer is whatever the producer's first encoding sends.
        ConsumerKind::Simple(_) => (
            LayerBitrates::single(p.layer_bitrate(0, now)),
            Layers::default(),
            Some(Layers::default()),
        ),
        ConsumerKind::Simulcast(s) => {
            let layers = |l: SimulcastLayers| Layers::new(l.spatial, l.temporal);
            let current = s.current().map(layers);
            (
                producer_bitrates(now, p, current.map(|l| l.spatial)),
                layers(s.preferred()),
                current,
            )
        }
    };
    VideoDemand {
        key: ck,
        priority: c.priority(),
        active_speaker,
        preferred,
        bitrates,
        current,
        paused: !c.active(),
        keyframe_requests: c.plis_received(),
    }
}

/// What each of a producer's layers costs: each active encoding's received bitrate
/// (`LayerBitrates::set_encodings`: split over its temporal layers, and never less
/// than a step above the active encoding below it).
///
/// An encoding above the one the consumer forwards (`current`) that delivers under three
/// quarters of the frame rate of the lowest active one counts as inactive: one the
/// publisher just started (dynacast, or its own bandwidth estimate allowing it again)
/// ramps up from a few frames a second, and a subscriber moved to it then saw 480 rows
/// at 1-12 fps and freezes of 0.5-1.8 s (lab, 5 % loss on the publisher's link). The
/// consumer's own layer is not judged so: a dip there would switch it down, through a
/// keyframe, for what is likely a moment.
fn producer_bitrates(now: Instant, p: &Producer, current: Option<u8>) -> LayerBitrates {
    let mut b = LayerBitrates::new(p.spatial_layers(), p.temporal_layers());
    let base_fps = (0..p.spatial_layers())
        .find(|&l| p.layer_active(l, now))
        .map_or(0, |l| p.layer_frame_rate(l, now));
    b.set_encodings((0..p.spatial_layers()).map(|layer| {
        let smooth = current.is_some_and(|c| layer <= c)
            || p.layer_frame_rate(layer, now).saturating_mul(4) >= base_fps * 3;
        if p.layer_active(layer, now) && smooth {
            p.layer_bitrate(layer, now).max(1)
        } else {
            0
        }
    }));
    b
}

/// Hands a consumer the layers the allocation gave it (a simple consumer has one layer
/// and ignores it). A paused consumer keeps its cap: it gets a new one when it resumes.
fn apply_allocation(c: &mut Consumer, a: &Allocation) {
    if let Some(l) = a.target {
        c.set_target_layers(Some((l.spatial, l.temporal)));
    }
}
