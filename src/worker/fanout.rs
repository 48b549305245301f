//! Fan-out of a receive batch, consumer by consumer.
//!
//! The packet path works in two passes over each batch the shell receives. The first
//! ([`WorkerCore::receive`]) unprotects and ingests every datagram and leaves each
//! packet to forward, as plaintext, in its receive buffer, noting it here as a [`Job`].
//! The second ([`WorkerCore::fan_out`]) groups the jobs by producer and queues, for each
//! consumer in turn, *all* its copies of the batch back to back. A video frame arrives as
//! a burst of 3-4 equal-size packets, so each subscriber's copies of it sit together in
//! the send batch and leave as one UDP GSO super-datagram: one pass through the kernel's
//! UDP/IP/route path per subscriber and frame rather than one per packet. Copying packet
//! by packet instead interleaves every subscriber's datagrams, and once a flush holds
//! fewer datagrams than there are subscribers no two of them share a destination.
//!
//! A simulcast consumer's forwarded layers change in its egress (a switch at a keyframe,
//! a temporal step): the changes are collected here and notified (`layerschange`) once
//! the step is done, and each such consumer is handed its producer's encodings'
//! sender-report clocks with the group, for placing a new layer's timestamps.
//!
//! This module only decides the order. Each copy is the consumer's own egress,
//! [`Consumer::send_rtp`], over the subscriber transport's [`Egress`] borrowed once per
//! consumer and group, so a copy costs no lookup, allocation or dynamic dispatch.
//!
//! Within one publisher's packets of the batch, a subscriber transport gets its copies of
//! all that publisher's producers together, video first: when the frame's last packet is
//! full-size, the audio packet after it can ride as the shorter last segment of the same
//! GSO send (only the last segment may be shorter), and otherwise it still costs no
//! extra pass over another subscriber's state.
//!
//! The shell sends the batch between calls to `fan_out` (the `limit`), and sending can
//! park on a full socket, letting control requests run: a consumer may then be created
//! or closed mid-fan-out. The cursor survives that: each consumer is marked with the pass
//! that served it, and a changed consumer list restarts the group's scan from the start
//! (skipping marked consumers), so nobody gets a copy twice or loses one.

use std::time::Instant;

use slab::Slab;

use sfu_control::responses::{ConsumerLayers, WorkerTotals};

use crate::batch::SendBatch;
use crate::channel::Event;
use crate::router::{
    Consumer, ConsumerKey, Egress, LayerClock, Producer, ProducerKey, Transmission, TransportKey,
    MAX_SPATIAL_LAYERS,
};
use crate::rtp::RtpHeader;
use crate::worker::congestion::wake_pacer;
use crate::worker::core::WorkerCore;

/// A producer packet accepted for forwarding; its plaintext stays in the receive buffer
/// `slot` (first `len` bytes) until the fan-out is done.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Job {
    pub(crate) slot: usize,
    /// The publisher's transport: its producers' copies are queued together.
    pub(crate) publisher: TransportKey,
    /// Video sorts before audio (larger packets first, for GSO).
    pub(crate) video: bool,
    pub(crate) producer: ProducerKey,
    pub(crate) len: usize,
    pub(crate) hdr: RtpHeader,
    /// Arrival time in the producer's RTP clock units (for the munger's gap handling).
    pub(crate) arrival: u32,
    pub(crate) keyframe: bool,
    /// The spatial layer (encoding, 0 = lowest) of the producer packet.
    pub(crate) layer: u8,
}

/// The jobs of the batch being received or fanned out, and where the fan-out is.
#[derive(Debug, Default)]
pub(crate) struct FanOut {
    jobs: Vec<Job>,
    /// Whether `jobs` is sorted and `pass` assigned (the fan-out has begun).
    started: bool,
    /// Start of the producer group being fanned out, in `jobs`.
    group: usize,
    /// Index in that producer's consumer list to continue from.
    next: usize,
    /// The worker's topology generation when `next` was taken.
    topology: u64,
    /// Identifies this batch's fan-out; consumers served in it carry it.
    pass: u64,
    /// Simulcast consumers whose forwarded layers changed in this step, to notify.
    layer_changes: Vec<(ConsumerKey, Option<ConsumerLayers>)>,
    /// Consumers that switched to another producer in this step (`consumer.setProducer`).
    switches: Vec<ConsumerKey>,
}

impl FanOut {
    pub(crate) fn push(&mut self, job: Job) {
        self.jobs.push(job);
    }

    /// Whether packets wait for [`WorkerCore::fan_out`].
    pub(crate) fn is_pending(&self) -> bool {
        !self.jobs.is_empty()
    }
}

impl WorkerCore {
    /// Queues copies of the received packets (see [`Self::receive`]) to every active
    /// consumer, consumer by consumer, until done or `out` holds at least `limit`
    /// datagrams (checked between consumers). `packet(slot)` returns the receive buffer a
    /// job's plaintext is in. Returns true when every job is done; call again after
    /// sending `out` otherwise. No allocation (but for a `layerschange` notification).
    pub fn fan_out<'a>(
        &mut self,
        now: Instant,
        packet: impl Fn(usize) -> Option<&'a [u8]>,
        out: &mut SendBatch,
        limit: usize,
    ) -> bool {
        let done = self.fan_out_step(now, packet, out, limit);
        self.notify_layer_changes();
        if !self.fanout.switches.is_empty() {
            let mut switches = std::mem::take(&mut self.fanout.switches);
            self.finish_producer_switches(&mut switches);
            self.fanout.switches = switches;
        }
        done
    }

    /// Notifies `layerschange` for the simulcast consumers whose layers changed, and
    /// counts their switches.
    fn notify_layer_changes(&mut self) {
        let mut changes = std::mem::take(&mut self.fanout.layer_changes);
        for (ck, layers) in changes.drain(..) {
            let Some(c) = self.consumers.get_mut(ck) else {
                continue;
            };
            count_layer_switches(&mut self.totals, c);
            let Some(router) = self.transports.get(c.transport()).map(|t| t.router.clone()) else {
                continue;
            };
            let id = c.id().0.clone();
            self.notify(&router, &id, Event::LayersChange(layers));
        }
        self.fanout.layer_changes = changes;
    }

    fn fan_out_step<'a>(
        &mut self,
        now: Instant,
        packet: impl Fn(usize) -> Option<&'a [u8]>,
        out: &mut SendBatch,
        limit: usize,
    ) -> bool {
        let topology = self.topology;
        let Self {
            transports,
            producers,
            consumers,
            rtp_out,
            drops,
            fanout: f,
            timers,
            ..
        } = self;
        if !f.started {
            f.started = true;
            // Grouped by publisher, then producer (video first), in arrival order within
            // a group (slots are unique).
            f.jobs
                .sort_unstable_by_key(|j| (j.publisher, !j.video, j.producer, j.slot));
            f.pass = f.pass.wrapping_add(1);
            f.group = 0;
            f.next = 0;
            f.topology = topology;
        } else if f.topology != topology {
            // Consumers came or went while the last flush was sent: rescan the group;
            // the pass marks skip the consumers already served.
            f.next = 0;
            f.topology = topology;
        }
        while let Some(first) = f.jobs.get(f.group) {
            let end = run_end(&f.jobs, f.group, |j| j.producer);
            let group = f.jobs.get(f.group..end).unwrap_or_default();
            // This publisher's later producer groups, served per subscriber transport.
            let span_end = run_end(&f.jobs, f.group, |j| j.publisher);
            let producer = live_producer(producers, first);
            let consumers_of = producer.map(Producer::consumers).unwrap_or_default();
            while let Some(&ck) = consumers_of.get(f.next) {
                f.next += 1;
                let Some(c) = consumers.get_mut(ck) else {
                    continue;
                };
                if !c.mark_served(f.pass, first.producer) {
                    continue;
                }
                let tk = c.transport();
                let Some(t) = transports.get_mut(tk) else {
                    continue;
                };
                let egress = Egress::new(t, out, rtp_out, drops);
                let was = c.producer();
                copy_group(now, c, egress, group, &packet, producer);
                if c.producer() != was {
                    f.switches.push(ck);
                }
                if let Some(change) = c.take_layers_change() {
                    f.layer_changes.push((ck, change));
                }
                // The same subscriber's consumers of the publisher's other producers.
                let mut h = end;
                while h < span_end {
                    let h_end = run_end(&f.jobs, h, |j| j.producer);
                    let later = f.jobs.get(h..h_end).unwrap_or_default();
                    let later_producer = later.first().and_then(|j| live_producer(producers, j));
                    let hp = later
                        .first()
                        .filter(|_| later_producer.is_some())
                        .map(|j| j.producer);
                    let follower = t.consumers.iter().copied().find(|&k| {
                        consumers.get(k).is_some_and(|x| {
                            hp.is_some() && x.producer() == hp && !x.served_in(f.pass)
                        })
                    });
                    if let Some((fk, fc)) =
                        follower.and_then(|k| consumers.get_mut(k).map(|c| (k, c)))
                    {
                        fc.mark_served(f.pass, later.first().map_or(0, |j| j.producer));
                        let egress = Egress::new(t, out, rtp_out, drops);
                        copy_group(now, fc, egress, later, &packet, later_producer);
                        if let Some(change) = fc.take_layers_change() {
                            f.layer_changes.push((fk, change));
                        }
                    }
                    h = h_end;
                }
                wake_pacer(now, timers, tk, t);
                if out.len() >= limit {
                    return false;
                }
            }
            f.group = end;
            f.next = 0;
        }
        f.jobs.clear();
        f.started = false;
        true
    }
}

/// The end of the run of jobs from `start` that share `key` (the sorted jobs' producer
/// groups and publisher spans).
fn run_end<K: PartialEq>(jobs: &[Job], start: usize, key: impl Fn(&Job) -> K) -> usize {
    let rest = jobs.get(start..).unwrap_or_default();
    let k = rest.first().map(&key);
    start + rest.iter().take_while(|j| Some(key(j)) == k).count()
}

/// The producer of `job`, unless it was closed while a flush was pending: its slab slot
/// may then hold another producer, and its packets go nowhere (its consumers are closed
/// too).
fn live_producer<'p>(producers: &'p Slab<Producer>, job: &Job) -> Option<&'p Producer> {
    producers
        .get(job.producer)
        .filter(|p| p.layer_ssrc(job.layer) == Some(job.hdr.ssrc))
}

/// Queues one consumer's copies of a producer group, through its egress
/// ([`Consumer::send_rtp`]); a simulcast consumer first gets the producer's encodings'
/// sender-report clocks.
#[inline]
fn copy_group<'a>(
    now: Instant,
    c: &mut Consumer,
    mut egress: Egress<'_>,
    group: &[Job],
    packet: &impl Fn(usize) -> Option<&'a [u8]>,
    producer: Option<&Producer>,
) {
    if let (true, Some(p)) = (c.is_simulcast(), producer) {
        c.set_layer_clocks(&layer_clocks(p));
    }
    for job in group {
        if let Some(pkt) = packet(job.slot).and_then(|b| b.get(..job.len)) {
            let how = Transmission::Forward {
                arrival: job.arrival,
                keyframe: job.keyframe,
                layer: job.layer,
                source: job.producer,
            };
            c.send_rtp(now, &mut egress, pkt, &job.hdr, how);
        }
    }
}

/// A producer's encodings' NTP/RTP mappings from their last sender reports.
fn layer_clocks(p: &Producer) -> [Option<LayerClock>; MAX_SPATIAL_LAYERS] {
    let mut clocks = [None; MAX_SPATIAL_LAYERS];
    for (layer, clock) in clocks.iter_mut().enumerate() {
        *clock = p
            .last_sr(layer as u8)
            .map(|(ntp, rtp, _)| LayerClock { ntp, rtp });
    }
    clocks
}

/// Adds consumer `c`'s layer switches since last asked to the worker's totals.
pub(crate) fn count_layer_switches(totals: &mut WorkerTotals, c: &mut Consumer) {
    let s = c.take_layer_switches();
    totals.spatial_layer_switches += s.spatial;
    totals.temporal_layer_switches += s.temporal;
}
