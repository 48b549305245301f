//! The core's timers: one deadline per transport and per producer, kept in a min-heap so
//! that [`WorkerCore::poll_timeout`] is the earliest real deadline and
//! [`WorkerCore::handle_timeout`] visits only the entities that are due.
//!
//! A transport's deadline is the earliest of its ICE consent expiry, DTLS
//! retransmission, next RTCP report, transport-cc feedback and REMB; a producer's the
//! earliest of its encodings' NACKs (first request or retry) and deferred or repeated
//! keyframe requests (`Producer::poll_timeout`). Whatever can make a deadline earlier
//! lowers it where it happens: the packet path (a gap to NACK, transport-cc packets
//! pending), STUN and DTLS datagrams, a keyframe request deferred or left to repeat. A
//! control request can change any entity, so it asks for one rescan of all of them at
//! the next timeout, which it makes due at once: control requests are rare next to
//! packets, and one scan serves a burst of them.
//!
//! An active-speaker observer's deadline is its next comparison, none while it heard
//! nothing but silence for a second; the packet path lowers it at the next sound
//! (`worker::rtp_observers`).
//!
//! Where an entity's whole deadline is recomputed (after it ran, after STUN or DTLS
//! input, after feedback or NACKs went out from the packet path) it is set exactly;
//! where only one of its timers is known (the packet path noting a NACK or feedback
//! deadline) it is only lowered. Either way the heap is updated lazily: a heap entry
//! whose time no longer matches its entity's scheduled time is stale and skipped when it
//! comes up, and an entity that runs early (its deadline moved later, or its slab key
//! was reused) finds nothing due and is rescheduled at its real deadline. Nothing here
//! scans every entity per packet.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::batch::SendBatch;
use crate::router::{Producer, ProducerKey, RtpObserverKey, TransportKey};
use crate::transport::WebRtcTransport;
use crate::worker::core::WorkerCore;

/// An entity that owns timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    Transport(TransportKey),
    Producer(ProducerKey),
    /// An active-speaker observer's next comparison (`worker::rtp_observers`).
    RtpObserver(RtpObserverKey),
}

/// A deadline that was still due right after its entity ran (work it could not do, for
/// instance feedback with no SRTP context yet) is retried this much later rather than at
/// once, so a stuck deadline cannot spin the timer.
const RETRY_DUE: Duration = Duration::from_millis(1);

/// Scheduled deadlines and the heap that orders them.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    /// The deadline each transport / producer (by slab key) is scheduled at.
    transports: Vec<Option<Instant>>,
    producers: Vec<Option<Instant>>,
    observers: Vec<Option<Instant>>,
    /// A control request ran at this time: every deadline is recomputed at the next
    /// timeout.
    rescan: Option<Instant>,
    /// Reused list of the entities due in one `handle_timeout`.
    due: Vec<TimerKey>,
}

impl Timers {
    fn slot(&mut self, key: TimerKey) -> &mut Option<Instant> {
        let (slots, i) = match key {
            TimerKey::Transport(k) => (&mut self.transports, k),
            TimerKey::Producer(k) => (&mut self.producers, k),
            TimerKey::RtpObserver(k) => (&mut self.observers, k),
        };
        if slots.len() <= i {
            slots.resize(i + 1, None);
        }
        &mut slots[i]
    }

    /// Makes `key` due at `at` at the latest (keeps an earlier deadline).
    pub(crate) fn lower(&mut self, key: TimerKey, at: Instant) {
        let slot = self.slot(key);
        if slot.is_none_or(|s| at < s) {
            *slot = Some(at);
            self.heap.push(Reverse((at, key)));
        }
    }

    /// Schedules `key` exactly at `at` (after it ran, in a rescan, or recomputed whole).
    fn set(&mut self, key: TimerKey, at: Option<Instant>) {
        let slot = self.slot(key);
        if *slot == at {
            return;
        }
        *slot = at;
        if let Some(at) = at {
            self.heap.push(Reverse((at, key)));
        }
    }

    /// Every deadline must be recomputed at the next timeout (a control request ran).
    pub(crate) fn request_rescan(&mut self, now: Instant) {
        self.rescan.get_or_insert(now);
    }

    /// The earliest deadline; may be earlier than the real one (a stale entry), never
    /// later.
    pub(crate) fn next(&self) -> Option<Instant> {
        let heap = self.heap.peek().map(|Reverse((at, _))| *at);
        match (heap, self.rescan) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the entities due at `now` into `self.due` (stale entries dropped).
    fn take_due(&mut self, now: Instant) {
        self.due.clear();
        while let Some(&Reverse((at, key))) = self.heap.peek() {
            if at > now {
                break;
            }
            self.heap.pop();
            let slot = self.slot(key);
            if *slot == Some(at) {
                *slot = None;
                self.due.push(key);
            }
        }
    }
}

/// A transport's earliest deadline.
fn transport_deadline(t: &WebRtcTransport, now: Instant) -> Option<Instant> {
    // REMB has no deadline before its first evaluation, which it wants at once.
    let remb = t.remb.as_ref().map(|r| r.poll_timeout().unwrap_or(now));
    [
        t.ice.poll_timeout(),
        t.dtls.poll_timeout(),
        t.connected.then_some(t.next_rtcp),
        t.twcc_in.as_ref().and_then(|(_, r)| r.poll_timeout()),
        remb,
        // Congestion control runs only with an estimate to allocate.
        t.bwe
            .as_ref()
            .and_then(|b| t.cc.poll_timeout(b.pacing_bps(now))),
    ]
    .into_iter()
    .flatten()
    .min()
}

impl WorkerCore {
    /// When [`Self::handle_timeout`] next has work: the earliest deadline of any
    /// transport (ICE consent, DTLS retransmission, RTCP report, transport-cc feedback,
    /// REMB) or producer (NACK, deferred or repeated keyframe request); `None` while
    /// nothing is scheduled. Cheap (no scan). Ask again after every input and request:
    /// they can move it earlier. It may be early (nothing due then), never late.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Runs the timers that are due at `now` and nothing else: ICE consent, DTLS
    /// retransmissions, RTCP reports, transport-cc feedback and REMB of due transports;
    /// NACKs and deferred or repeated keyframe requests of due producers.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut SendBatch) {
        if self.timers.rescan.is_some_and(|at| at <= now) {
            self.timers.rescan = None;
            self.rescan_timers(now);
        }
        self.timers.take_due(now);
        let mut due = std::mem::take(&mut self.timers.due);
        for &key in &due {
            match key {
                TimerKey::Transport(tk) => self.transport_timeout(now, tk, out),
                TimerKey::Producer(pk) => self.producer_timeout(now, pk, out),
                TimerKey::RtpObserver(ok) => self.rtp_observer_timeout(now, ok),
            }
        }
        for &key in &due {
            let at = match key {
                TimerKey::Transport(tk) => self
                    .transports
                    .get(tk)
                    .and_then(|t| transport_deadline(t, now)),
                TimerKey::Producer(pk) => self.producers.get(pk).and_then(Producer::poll_timeout),
                TimerKey::RtpObserver(ok) => self.rtp_observers.deadline(ok),
            };
            let at = at.map(|at| at.max(now + RETRY_DUE));
            self.timers.set(key, at);
        }
        due.clear();
        self.timers.due = due;
    }

    /// Recomputes every entity's deadline (after control requests).
    fn rescan_timers(&mut self, now: Instant) {
        for (tk, t) in &self.transports {
            self.timers
                .set(TimerKey::Transport(tk), transport_deadline(t, now));
        }
        for (pk, p) in &self.producers {
            self.timers.set(TimerKey::Producer(pk), p.poll_timeout());
        }
        for (ok, o) in &self.rtp_observers.slab {
            self.timers.set(TimerKey::RtpObserver(ok), o.poll_timeout());
        }
    }

    /// Schedules a transport at what its state asks for now (after STUN and DTLS
    /// input, after feedback went out from the packet path). Exact, as its deadline is
    /// the minimum over all its timers; a deadline already past makes the next timeout
    /// run it.
    pub(crate) fn reschedule_transport(&mut self, now: Instant, tk: TransportKey) {
        let at = self
            .transports
            .get(tk)
            .and_then(|t| transport_deadline(t, now));
        self.timers.set(TimerKey::Transport(tk), at);
    }

    /// Schedules a producer at what its state asks for now (a keyframe request deferred
    /// or left to repeat, NACKs sent from the packet path).
    pub(crate) fn reschedule_producer(&mut self, pk: ProducerKey) {
        let at = self.producers.get(pk).and_then(Producer::poll_timeout);
        self.timers.set(TimerKey::Producer(pk), at);
    }

    /// A producer's due work, per encoding: its deferred or repeated keyframe
    /// request, its NACKs.
    fn producer_timeout(&mut self, now: Instant, pk: ProducerKey, out: &mut SendBatch) {
        self.keyframe_requests_due(now, pk, out);
        self.send_nacks(now, pk, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_live_deadline_comes_first_and_stale_ones_are_skipped() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut timers = Timers::default();
        timers.lower(TimerKey::Transport(0), ms(100));
        timers.lower(TimerKey::Producer(3), ms(40));
        // A later deadline does not replace an earlier one...
        timers.lower(TimerKey::Producer(3), ms(70));
        assert_eq!(timers.next(), Some(ms(40)));
        // ...an earlier one does, leaving a stale entry behind.
        timers.lower(TimerKey::Transport(0), ms(10));
        assert_eq!(timers.next(), Some(ms(10)));
        timers.take_due(ms(50));
        assert_eq!(
            timers.due,
            [TimerKey::Transport(0), TimerKey::Producer(3)],
            "due in deadline order"
        );
        // The stale 100 ms entry of transport 0 is not due again.
        timers.take_due(ms(200));
        assert!(timers.due.is_empty());
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn a_rescan_is_due_at_once() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.lower(TimerKey::Producer(0), t0 + Duration::from_secs(1));
        timers.request_rescan(t0);
        assert_eq!(timers.next(), Some(t0));
    }
}
