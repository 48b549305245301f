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

use crate::batch::SendBatch;
use crate::router::{Consumer, Producer, ProducerKey, TransportKey};
use crate::rtp::extension::{
    insert_extension_u16, remap_extensions, set_extension_u16, MAX_EXTENSION_GROWTH,
};
use crate::rtp::{rewrite, RtpHeader};
use crate::stats::{DropCounters, DropReason, Traffic};
use crate::transport::WebRtcTransport;
use crate::worker::core::{drop_outgoing, protect_drop_reason, WorkerCore};

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
    /// sending `out` otherwise. No allocation.
    pub fn fan_out<'a>(
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
            let consumers_of = live_producer(producers, first)
                .map(|p| p.consumers.as_slice())
                .unwrap_or_default();
            while let Some(&ck) = consumers_of.get(f.next) {
                f.next += 1;
                let Some(c) = consumers.get_mut(ck) else {
                    continue;
                };
                if c.fanout_pass == f.pass {
                    continue;
                }
                c.fanout_pass = f.pass;
                let Some(t) = transports.get_mut(c.transport) else {
                    continue;
                };
                let mut sink = Sink {
                    rtp_out,
                    drops,
                    out,
                };
                copy_group(now, c, t, group, &packet, &mut sink);
                // The same subscriber's consumers of the publisher's other producers.
                let mut h = end;
                while h < span_end {
                    let h_end = run_end(&f.jobs, h, |j| j.producer);
                    let later = f.jobs.get(h..h_end).unwrap_or_default();
                    let hp = later
                        .first()
                        .filter(|j| live_producer(producers, j).is_some())
                        .map(|j| j.producer);
                    let follower = t.consumers.iter().copied().find(|&k| {
                        consumers
                            .get(k)
                            .is_some_and(|x| Some(x.producer) == hp && x.fanout_pass != f.pass)
                    });
                    if let Some(fc) = follower.and_then(|k| consumers.get_mut(k)) {
                        fc.fanout_pass = f.pass;
                        copy_group(now, fc, t, later, &packet, &mut sink);
                    }
                    h = h_end;
                }
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
        .filter(|p| p.ssrc == job.hdr.ssrc)
}

/// Where copies go: the send batch, and the worker's counters of what was sent and
/// what could not be.
struct Sink<'s> {
    rtp_out: &'s mut Traffic,
    drops: &'s mut DropCounters,
    out: &'s mut SendBatch,
}

/// Queues one consumer's copies of a producer group.
fn copy_group<'a>(
    now: Instant,
    c: &mut Consumer,
    t: &mut WebRtcTransport,
    group: &[Job],
    packet: &impl Fn(usize) -> Option<&'a [u8]>,
    sink: &mut Sink<'_>,
) {
    for job in group {
        if let Some(pkt) = packet(job.slot).and_then(|b| b.get(..job.len)) {
            copy_to(now, c, t, job, pkt, sink);
        }
    }
}

/// Queues one consumer's copy of a producer packet: copy, rewrite, protect with the
/// consumer's context. A copy that fails to rewrite or protect is a counted drop.
fn copy_to(
    now: Instant,
    c: &mut Consumer,
    t: &mut WebRtcTransport,
    job: &Job,
    pkt: &[u8],
    sink: &mut Sink<'_>,
) {
    let Sink {
        rtp_out,
        drops,
        out,
    } = sink;
    let hdr = &job.hdr;
    if !c.active() {
        return;
    }
    if c.wait_keyframe {
        if !job.keyframe {
            return;
        }
        c.wait_keyframe = false;
    }
    let out_pt = c
        .pt_map
        .get(usize::from(hdr.payload_type))
        .copied()
        .unwrap_or(0xff);
    if out_pt == 0xff {
        return;
    }
    let (Some(dest), Some(srtp_out)) = (t.ice.selected(), t.srtp_out.as_mut()) else {
        return;
    };
    let len = pkt.len();
    let room = len + MAX_EXTENSION_GROWTH + srtp_out.profile().rtp_overhead();
    let slot = out.start(dest, room);
    let Some(dst) = slot.get_mut(..len) else {
        out.commit(0);
        return drop_outgoing(&mut t.drops, drops, DropReason::ProtectFailed);
    };
    dst.copy_from_slice(pkt);
    // Extensions first: a packet that cannot be remapped is dropped before the munger
    // assigns it a sequence number, so it leaves no gap.
    if remap_extensions(slot, hdr, &c.ext_map).is_err() {
        out.commit(0);
        return drop_outgoing(&mut t.drops, drops, DropReason::ProtectFailed);
    }
    let Some((seq, ts)) = c
        .munger
        .process(hdr.sequence, hdr.timestamp, Some(job.arrival))
    else {
        out.commit(0);
        return;
    };
    rewrite(slot, c.ssrc, out_pt, seq, ts);
    // Our own transport-wide sequence number for the subscriber's feedback: in place when
    // the publisher's element was kept, else inserted.
    let mut plain = len;
    let twcc = c.twcc_id.map(|id| {
        let n = t.twcc_out_seq;
        t.twcc_out_seq = n.wrapping_add(1);
        if !set_extension_u16(slot, hdr, id, n) {
            plain = insert_extension_u16(slot, len, hdr, id, n).unwrap_or(len);
        }
        n
    });
    match srtp_out.protect_rtp(slot, plain) {
        Ok(n) => {
            out.commit(n);
            if let (Some(twcc), Some(bwe)) = (twcc, t.bwe.as_mut()) {
                bwe.on_packet_sent(now, twcc, n);
            }
            c.traffic.add(n);
            c.last_forwarded = Some((hdr.timestamp, ts, now));
            t.rtp_out.add(n);
            rtp_out.add(n);
        }
        Err(e) => {
            out.commit(0);
            drop_outgoing(&mut t.drops, drops, protect_drop_reason(e));
        }
    }
}
