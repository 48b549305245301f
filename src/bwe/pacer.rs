//! The pacer of one subscriber transport: keeps what the SFU sends toward the subscriber
//! within a multiple of the send-side estimate, so a burst (a keyframe forwarded as
//! fast as the publisher's pacer sent it over a wide uplink, a run of retransmissions)
//! waits in the SFU instead of overflowing the subscriber's bottleneck queue.
//!
//! Measured without it, behind a 400 kbit/s link with a 200 ms queue: a publisher's
//! keyframe arrived at several Mbit/s, the link's queue overflowed, the keyframe's lost
//! packets could not all be repaired, and the picture froze until the next keyframe
//! (2-6 s at a time).
//!
//! A token bucket filled at the pacing rate (a multiple of the estimate:
//! `SendSideEstimator::pacing_bps`) and holding [`BURST`] of it decides, per packet, whether it goes now. Only what exceeds the bucket is queued
//! (copied, SRTP already applied); packets that fit go straight into the worker's send
//! batch, so a transport whose estimate covers its media costs one comparison per
//! packet and keeps GSO batching. Audio and retransmissions do not wait for the bucket
//! (audio is small and the delay would be heard; retransmissions are held to their own
//! budget, `budget.rs`, and one that waits comes too late), but take their bytes from
//! it. Nothing overtakes what waits: every packet carries its transport-wide sequence
//! number, written before SRTP, and the subscriber's feedback would report the
//! overtaken ones lost; the queue holds what the bottleneck's queue would have held
//! anyway, so waiting in it costs audio no more than the path would. The queue drains at the transport's
//! timer, faster than the pacing rate when it would otherwise take longer than
//! [`MAX_QUEUE_DELAY`], and is bounded ([`MAX_QUEUE_BYTES`]): past that, the oldest
//! packets go at once, in order (the behaviour without a pacer), rather than being
//! dropped by us.
//!
//! Sans-IO: fed `(now, estimate, packet)`; the caller sends what it returns.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::bucket::TokenBucket;

/// The bucket holds this much time's worth of the pacing rate...
pub const BURST: Duration = Duration::from_millis(20);
/// ...and never less than this (a few full-size packets: a frame's packets still leave
/// together on a slow path).
pub const MIN_BURST_BYTES: f64 = 4_500.0;
/// The queue drains at least at the rate that would empty it within this (the rate
/// falls as it empties, down to the pacing rate).
pub const MAX_QUEUE_DELAY: Duration = Duration::from_millis(500);
/// Most bytes queued per transport.
pub const MAX_QUEUE_BYTES: usize = 256 * 1024;
/// Emptied buffers kept for reuse (the queue's steady state allocates nothing).
const SPARE_BUFFERS: usize = 16;

/// How a packet is to be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Audio, retransmissions: goes at once unless packets wait, its bytes taken from
    /// the bucket.
    Now,
    /// Forwarded video: paced.
    Paced,
}

/// A packet waiting in the pacer.
#[derive(Debug)]
pub struct Paced {
    pub dest: SocketAddr,
    /// The datagram, SRTP applied.
    pub data: Vec<u8>,
    /// Its transport-wide sequence number, when it has one (the estimator records the
    /// packet as sent when it leaves the queue).
    pub transport_seq: Option<u16>,
}

/// Counters for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacerStats {
    /// Packets that waited in the queue.
    pub paced_packets: u64,
    /// Packets sent ahead of the pacing rate because the queue was full.
    pub overflowed: u64,
}

/// One transport's pacer.
#[derive(Debug, Default)]
pub struct Pacer {
    /// Bytes the bucket holds (negative: owed, after audio or a packet larger than the
    /// bucket went).
    bucket: TokenBucket,
    queue: VecDeque<Paced>,
    queued_bytes: usize,
    spare: Vec<Vec<u8>>,
    /// A packet was queued into an empty queue: the transport's timer is to be armed.
    wake: bool,
    stats: PacerStats,
}

impl Pacer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn stats(&self) -> PacerStats {
        self.stats
    }

    /// Bytes waiting now.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Bytes per second the queue drains at with pacing rate `pacing_bps`.
    fn rate(&self, pacing_bps: u64) -> f64 {
        let paced = pacing_bps as f64 / 8.0;
        let drain = self.queued_bytes as f64 / MAX_QUEUE_DELAY.as_secs_f64();
        paced.max(drain).max(1.0)
    }

    fn refill(&mut self, now: Instant, pacing_bps: u64) {
        let rate = self.rate(pacing_bps);
        self.bucket.refill(now, rate, BURST, MIN_BURST_BYTES);
    }

    /// Whether a packet of `size` bytes may go at `now`; takes its bytes if so. Nothing
    /// goes while packets wait; otherwise an urgent packet goes, and a paced one when
    /// the bucket is not exhausted (so one larger than the bucket never waits forever).
    /// A packet that may not go is to be [queued](Self::enqueue).
    pub fn admit(&mut self, now: Instant, pacing_bps: u64, size: usize, urgency: Urgency) -> bool {
        self.refill(now, pacing_bps);
        let go = self.queue.is_empty() && (urgency == Urgency::Now || self.bucket.tokens() >= 0.0);
        if go {
            self.bucket.take(size as f64);
        }
        go
    }

    /// Queues a copy of `data` (a packet [`admit`](Self::admit) held back).
    pub fn enqueue(&mut self, dest: SocketAddr, data: &[u8], transport_seq: Option<u16>) {
        self.wake |= self.queue.is_empty() || self.overflowing();
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(data);
        self.queued_bytes += buf.len();
        self.stats.paced_packets += 1;
        self.queue.push_back(Paced {
            dest,
            data: buf,
            transport_seq,
        });
    }

    /// Whether packets started waiting since the last call (the caller arms the
    /// transport's timer for [`poll_timeout`](Self::poll_timeout)).
    pub fn take_wake(&mut self) -> bool {
        std::mem::take(&mut self.wake)
    }

    /// When the next queued packet may go (None: nothing waits).
    pub fn poll_timeout(&self, pacing_bps: u64) -> Option<Instant> {
        if self.queue.is_empty() {
            return None;
        }
        let last = self.bucket.last()?;
        if self.bucket.tokens() >= 0.0 || self.overflowing() {
            return Some(last);
        }
        let wait = -self.bucket.tokens() / self.rate(pacing_bps);
        Some(last + Duration::from_secs_f64(wait.min(1.0)))
    }

    /// The next queued packet, if it may go at `now`. Hand its buffer back with
    /// [`recycle`](Self::recycle) once sent.
    pub fn pop(&mut self, now: Instant, pacing_bps: u64) -> Option<Paced> {
        if self.queue.is_empty() {
            return None;
        }
        self.refill(now, pacing_bps);
        if self.overflowing() {
            self.stats.overflowed += 1;
        } else if self.bucket.tokens() < 0.0 {
            return None;
        }
        let p = self.queue.pop_front()?;
        self.queued_bytes = self.queued_bytes.saturating_sub(p.data.len());
        self.bucket.take(p.data.len() as f64);
        Some(p)
    }

    /// Whether more than [`MAX_QUEUE_BYTES`] wait: the oldest go regardless of the
    /// rate until they fit.
    fn overflowing(&self) -> bool {
        self.queued_bytes > MAX_QUEUE_BYTES
    }

    /// Takes back a sent packet's buffer for reuse.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < SPARE_BUFFERS {
            self.spare.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 5000))
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    /// Offers `packets` of `size` bytes at `at`, queueing what is held back; returns how
    /// many went at once.
    fn offer(p: &mut Pacer, at: Instant, bps: u64, packets: usize, size: usize) -> usize {
        let mut went = 0;
        for i in 0..packets {
            if p.admit(at, bps, size, Urgency::Paced) {
                went += 1;
            } else {
                p.enqueue(dest(), &vec![0; size], Some(i as u16));
            }
        }
        went
    }

    /// Drains the queue from `t0` by its own deadlines; returns when each packet left.
    fn drain(p: &mut Pacer, mut now: Instant, bps: u64) -> Vec<Instant> {
        let mut left = Vec::new();
        while let Some(at) = p.poll_timeout(bps) {
            now = now.max(at);
            while let Some(sent) = p.pop(now, bps) {
                left.push(now);
                p.recycle(sent.data);
            }
            now += Duration::from_micros(100);
        }
        left
    }

    #[test]
    fn a_burst_within_the_bucket_goes_at_once() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        // 3 Mbps for 20 ms: 7.5 KB; six 1,200-byte packets fit.
        assert_eq!(offer(&mut p, t0, 3_000_000, 6, 1200), 6);
        assert_eq!(p.queued_bytes(), 0);
        assert_eq!(p.poll_timeout(3_000_000), None);
        assert_eq!(p.stats().paced_packets, 0);
    }

    #[test]
    fn a_keyframe_burst_leaves_at_the_pacing_rate() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        // A 30 KB keyframe in one instant, paced at 600 kbps (a 400 kbps path that
        // showed a queue): about 400 ms, not the 5 ms the publisher's uplink took.
        let went = offer(&mut p, t0, 600_000, 25, 1200);
        assert!(went <= 5, "{went} went at once");
        let left = drain(&mut p, t0, 600_000);
        assert_eq!(went + left.len(), 25);
        let took = *left.last().unwrap() - t0;
        let want = Duration::from_secs_f64((30_000.0 - MIN_BURST_BYTES) / 75_000.0);
        assert!(
            took.abs_diff(want) < Duration::from_millis(25),
            "{took:?} vs {want:?}"
        );
        // Evenly: no 100 ms window carries more than the pacing rate's worth and a
        // packet.
        for w in left.windows(6) {
            assert!(
                w[5] - w[0] >= Duration::from_millis(70),
                "{:?}",
                w[5] - w[0]
            );
        }
        assert_eq!(p.stats().paced_packets, (25 - went) as u64);
    }

    #[test]
    fn audio_does_not_wait_for_the_bucket_but_delays_the_video_after_it() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        // The bucket exhausted by video that went, nothing queued.
        while p.admit(t0, 600_000, 1200, Urgency::Paced) {}
        assert_eq!(p.queued_bytes(), 0);
        assert!(p.admit(t0, 600_000, 200, Urgency::Now), "audio goes");
        assert!(!p.admit(ms(t0, 1), 600_000, 1200, Urgency::Paced));
        p.enqueue(dest(), &[0; 1200], Some(1));
        let at = p.poll_timeout(600_000).unwrap();
        // The video went 900 bytes over the bucket; with the audio's 200 owed too, the
        // next packet waits 1,100 bytes at 75 KB/s from t0 (12 ms without the audio).
        assert!(at - t0 >= Duration::from_millis(14), "{:?}", at - t0);
        // Behind waiting video, audio waits too (in sequence order).
        assert!(!p.admit(ms(t0, 2), 600_000, 200, Urgency::Now));
    }

    #[test]
    fn nothing_overtakes_what_waits() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        let _ = offer(&mut p, t0, 600_000, 10, 1200);
        // Even with tokens again, a new packet queues behind the others, urgent or not.
        assert!(!p.admit(ms(t0, 50), 600_000, 100, Urgency::Now));
        p.enqueue(dest(), &[7; 100], Some(99));
        let mut order = Vec::new();
        let mut now = t0;
        while let Some(at) = p.poll_timeout(600_000) {
            now = now.max(at);
            while let Some(s) = p.pop(now, 600_000) {
                order.push(s.transport_seq);
            }
            now += Duration::from_millis(1);
        }
        assert_eq!(order.last(), Some(&Some(99)));
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    #[test]
    fn a_long_queue_drains_within_the_delay_bound() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        // 100 KB at a pacing rate of 150 kbps would take 5.3 s; the drain rate follows the queue (half of it leaves in ~350 ms), then
        // the last few KB at the pacing rate: under 2 s in all.
        let _ = offer(&mut p, t0, 150_000, 100, 1000);
        let left = drain(&mut p, t0, 150_000);
        let took = *left.last().unwrap() - t0;
        assert!(took < MAX_QUEUE_DELAY * 4, "{took:?}");
        let half = left[left.len() / 2] - t0;
        assert!(half < MAX_QUEUE_DELAY, "{half:?}");
    }

    #[test]
    fn a_full_queue_sends_its_oldest_at_once_rather_than_drop_anything() {
        let t0 = Instant::now();
        let mut p = Pacer::new();
        let n = MAX_QUEUE_BYTES / 1000 + 50;
        let went = offer(&mut p, t0, 150_000, n, 1000);
        assert!(p.queued_bytes() > MAX_QUEUE_BYTES);
        assert!(p.take_wake());
        assert_eq!(p.poll_timeout(150_000), Some(t0), "due at once");
        let mut order = Vec::new();
        while let Some(s) = p.pop(t0, 150_000) {
            order.push(s.transport_seq);
        }
        // Just enough to fit again, oldest first, none at the pacing rate yet.
        assert!(p.queued_bytes() <= MAX_QUEUE_BYTES);
        assert!(p.queued_bytes() + 1000 > MAX_QUEUE_BYTES);
        assert!(order.len() >= 40, "{}", order.len());
        assert!(order.windows(2).all(|w| w[0] < w[1]), "oldest first");
        assert_eq!(p.stats().overflowed, order.len() as u64);
        assert_eq!(went + order.len() + p.queue.len(), n, "nothing dropped");
    }
}
