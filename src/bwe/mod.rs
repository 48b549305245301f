//! Send-side bandwidth estimation toward subscribers, from their transport-cc
//! feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01) on the packets we
//! forward, which we number with our own transport-wide sequence numbers.
//!
//! [`SendSideEstimator`] is a simplified Google Congestion Control
//! (draft-ietf-rmcat-gcc-02, "GCC" below), one per transport:
//!
//! 1. **Delivered rate** (GCC 5.5's R_hat): bytes reported received over the last
//!    500 ms of receive time (`acked.rs`).
//! 2. **Loss**: packets reported lost / reported, over two windows. A short one (at
//!    least 20 packets and 200 ms) reacts to heavy loss quickly; a long one (100
//!    packets and 200 ms, or 20 packets and 1 s) resolves the 2% increase threshold,
//!    which 20 packets cannot. A packet reported lost and later received is taken
//!    back.
//! 3. **Delay gradient** (GCC 5.2-5.4, as libwebrtc implements it): packets grouped
//!    into 5 ms send bursts; per group pair d = inter-arrival - inter-departure;
//!    the accumulated, smoothed d is fitted with a line over 20 groups, and its
//!    slope (scaled) is compared with an adaptive threshold, giving overuse /
//!    normal / underuse (`trendline.rs`).
//! 4. **Rate control**, on each feedback — one AIMD combining delay and loss:
//!    - overuse, or a short-window loss sample above 10%: decrease to 0.85 x the
//!      delivered rate (never up), at most once per 200 ms;
//!    - normal delay and long-window loss below 2%: multiplicative increase, 8% per second of
//!      elapsed time, capped at 1.5 x the delivered rate + 10 kbps while that is
//!      known (GCC 5.5: do not grow far beyond what the sender actually sends);
//!    - otherwise (underuse: a queue is draining; or loss 2-10%): hold.
//!
//!    The estimate starts at 1 Mbps and stays within 30 kbps..100 Mbps.
//!
//! Simplifications against GCC and libwebrtc, knowingly:
//! - one controller for delay and loss, where GCC runs a delay-based and a
//!   loss-based controller and takes the minimum; our loss rule is GCC 6's
//!   thresholds with the delay rule's decrease, except that loss between the two
//!   thresholds while the delay detector has seen no queue for [`QUEUE_MEMORY`] still
//!   lets the estimate grow,
//!   at [`INHERENT_LOSS_INCREASE_PER_SECOND`]: such loss is the path's own (radio,
//!   a lossy hop), not congestion, which fills a queue before it drops (libwebrtc's
//!   loss-based v2 estimates this "inherent loss" instead). GCC 6's hold left a
//!   subscriber behind a link with 5 % random loss at its start rate for good, at its
//!   lowest layers and frame rates;
//! - no additive increase near convergence (GCC 5.5's "near max" mode) and no link
//!   capacity estimate: after a decrease we climb back multiplicatively, so the
//!   estimate saw-tooths around the capacity somewhat more than libwebrtc's;
//! - no ALR detection: while subscribers receive less than the path could carry,
//!   the 1.5 x delivered cap keeps the estimate from claiming capacity that was never
//!   tested, until a probe cluster (`probe.rs`) tests it: a cluster's measured rate,
//!   when above the estimate and neither delay nor loss objects, becomes the estimate
//!   at once, as libwebrtc takes a probe result;
//! - no RTT: the decrease interval is a fixed 200 ms (libwebrtc uses the RTT,
//!   bounded to 10-200 ms), and there is no back-off when feedback stops coming
//!   (the estimate is held);
//! - packets are taken in sequence (send) order as reported, not re-sorted by
//!   arrival; reordered groups are skipped by the grouping stage.
//!
//! Sans-IO: the caller passes `now` and owns the clock. The send history starts at
//! [`HISTORY_START`] entries on the first packet and doubles, up to [`HISTORY`], while
//! packets awaiting feedback would be overwritten sooner than [`HISTORY_SPAN`]: at
//! most a few allocations per transport, none in steady state.
//!
//! What is done with the estimate, per subscriber transport
//! ([`CongestionControl`], driven by `worker/congestion.rs`): `allocation.rs` shares
//! it among the transport's video consumers' layers, `probe.rs` tests a higher rate
//! before the allocation may use it (and measures probe clusters inside the
//! estimator), `budget.rs` holds retransmissions to a share of it, `pacer.rs` keeps
//! bursts within a multiple of it.

mod acked;
pub mod allocation;
mod bucket;
pub mod budget;
pub mod control;
mod inherent;
pub mod pacer;
pub mod playout;
pub mod probe;
mod trendline;

use std::time::{Duration, Instant};

pub use allocation::{Allocation, BandwidthAllocator, LayerBitrates, Layers, VideoDemand};
pub use budget::RetransmitBudget;
pub use control::CongestionControl;
pub use pacer::{Pacer, PacerStats, Urgency};
pub use playout::{PlayoutDelay, PlayoutDelayLimits};
pub use probe::{ProbeController, ProbeResult, ProbeState, ProbeStats};
pub use trendline::DelayState;

use crate::rtcp::twcc::TwccFeedback;
use acked::AckedRate;
use inherent::InherentLoss;
use probe::ProbeMeasurement;
use trendline::DelayDetector;

/// Most sent packets remembered per transport (a power of two): 400 ms at 10,000
/// packets/s (~100 Mbps). Feedback about older packets is ignored.
pub const HISTORY: usize = 4096;
/// Sent packets remembered at first (a power of two): 4 KB, where 4,096 entries
/// were 64 KB per subscriber transport whatever its rate.
pub const HISTORY_START: usize = 256;
/// The history grows while a packet still awaiting feedback would be overwritten
/// younger than this; feedback comes every 50-100 ms, so later than this it is lost.
pub const HISTORY_SPAN: Duration = Duration::from_millis(500);
/// First extended sequence number (room to unwrap backwards).
const EXT_BASE: u64 = 1 << 32;
/// GCC's beta: after overuse, go a bit below what got through (GCC 5.5).
const BETA: f64 = 0.85;
/// Multiplicative increase per second (GCC 5.5, "eta = 1.08").
const INCREASE_PER_SECOND: f64 = 1.08;
/// Loss thresholds (GCC 6).
const LOSS_DECREASE: f64 = 0.10;
const LOSS_INCREASE: f64 = 0.02;
/// Multiplicative increase per second with loss between the thresholds and no queue.
const INHERENT_LOSS_INCREASE_PER_SECOND: f64 = 1.03;
/// A loss sample covers this many packets and at least this long...
const LOSS_WINDOW: LossWindowSize = LossWindowSize {
    packets: 100,
    interval: Duration::from_millis(200),
};
/// ...or, on a quiet transport, 20 packets and this long. Fewer packets would make
/// random loss look like congestion: at 5 % loss, one 20-packet window in 13 holds
/// three losses (15 %), and decreasing on each kept such a path at a fraction of its
/// capacity.
const QUIET_LOSS_WINDOW: LossWindowSize = LossWindowSize {
    packets: 20,
    interval: Duration::from_secs(1),
};
/// At most one decrease per this long after overuse...
const DECREASE_INTERVAL: Duration = Duration::from_millis(200);
/// ...and per this long after loss (libwebrtc: 300 ms plus the RTT).
const LOSS_DECREASE_INTERVAL: Duration = Duration::from_millis(300);
/// The pacing rate (`pacer.rs`), as a multiple of the estimate: libwebrtc's 2.5 while
/// the path has shown no queue...
pub const PACING_FACTOR: f64 = 2.5;
/// ...and closer to the estimate for [`QUEUE_MEMORY`] after the delay detector saw
/// one: the estimate is then near what the bottleneck carries, and a burst much above
/// it overflows the bottleneck's queue (measured behind a 400 kbit/s link with a
/// 200 ms queue: keyframes forwarded unpaced lost packets every time). On a path
/// without a queue the estimate is often below what it carries (random loss holds it
/// back), and pacing near it only delays the picture.
pub const PACING_FACTOR_QUEUED: f64 = 1.5;
pub const QUEUE_MEMORY: Duration = Duration::from_secs(10);
/// While the delivered rate is known, increase no higher than
/// `APP_LIMIT_FACTOR * delivered + APP_LIMIT_OFFSET_BPS` (GCC 5.5).
const APP_LIMIT_FACTOR: f64 = 1.5;
const APP_LIMIT_OFFSET_BPS: f64 = 10_000.0;
/// Reference time: 64 ms units, 24 bits (draft-holmer 3.1).
const REFERENCE_TICK_US: i64 = 64_000;
const REFERENCE_BITS: u32 = 24;

/// Start and bounds of a [`SendSideEstimator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BweConfig {
    pub start_bps: u64,
    pub min_bps: u64,
    pub max_bps: u64,
}

impl Default for BweConfig {
    fn default() -> Self {
        Self {
            start_bps: 600_000,
            min_bps: 30_000,
            max_bps: 100_000_000,
        }
    }
}

/// A snapshot for statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BweStats {
    /// Available bitrate estimate, bits/s.
    pub estimate_bps: u64,
    /// Delivered (acknowledged) bitrate, bits/s, once known.
    pub delivered_bps: Option<u64>,
    /// Last loss sample (0..=1), once there was one.
    pub loss_fraction: Option<f64>,
    pub delay: DelayState,
    /// Scaled delay trend and the adaptive threshold it is compared with (ms).
    pub delay_trend: f64,
    pub delay_threshold: f64,
    /// Feedback packets processed, and reported packets we had no record of (too
    /// old, never sent, or from a different numbering).
    pub feedback: u64,
    pub unknown_packets: u64,
    /// Packets recorded as sent ([`SendSideEstimator::on_packet_sent`]): every RTP packet
    /// of the transport when its consumers negotiated transport-wide sequence numbers.
    pub packets_sent: u64,
}

/// Per-packet record state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Empty,
    Sent,
    Lost,
    Received,
}

#[derive(Debug, Clone, Copy)]
struct Sent {
    sent_us: u64,
    size: u16,
    /// The wire sequence number, to tell this packet from older ones in the slot.
    seq: u16,
    fate: Fate,
}

impl Sent {
    const EMPTY: Self = Self {
        sent_us: 0,
        size: 0,
        seq: 0,
        fate: Fate::Empty,
    };
}

/// Available-bitrate estimate for one egress transport. See the module docs for
/// the algorithm.
///
/// Driving contract: [`Self::on_packet_sent`] for every RTP packet sent on the
/// transport with the transport-wide sequence number we stamped on it (sequential,
/// as stamped); [`Self::on_feedback`] for every transport-cc feedback parsed from
/// the subscriber. Read [`Self::estimate_bps`] at will.
#[derive(Debug, Clone)]
pub struct SendSideEstimator {
    cfg: BweConfig,
    history: Vec<Sent>,
    epoch: Option<Instant>,
    highest_sent: Option<u64>,
    /// Unwrapped reference time (64 ms ticks) of the last feedback.
    remote_reference: Option<i64>,
    acked: AckedRate,
    delay: DelayDetector,
    loss: LossWindow,
    loss_fraction: Option<f64>,
    /// The path's own loss, learnt while no queue is in sight.
    inherent: InherentLoss,
    estimate: f64,
    last_update: Option<Instant>,
    last_decrease: Option<Instant>,
    /// When the delay detector last saw overuse (a queue on the path).
    last_overuse: Option<Instant>,
    feedback: u64,
    unknown: u64,
    sent: u64,
    probe: ProbeMeasurement,
    probe_result: Option<ProbeResult>,
}

impl Default for SendSideEstimator {
    fn default() -> Self {
        Self::new(BweConfig::default())
    }
}

impl SendSideEstimator {
    pub fn new(config: BweConfig) -> Self {
        let min = config.min_bps;
        let max = config.max_bps.max(min);
        Self {
            cfg: BweConfig {
                start_bps: config.start_bps.clamp(min, max),
                min_bps: min,
                max_bps: max,
            },
            history: Vec::new(),
            epoch: None,
            highest_sent: None,
            remote_reference: None,
            acked: AckedRate::new(),
            delay: DelayDetector::new(),
            loss: LossWindow::default(),
            loss_fraction: None,
            inherent: InherentLoss::default(),
            estimate: config.start_bps.clamp(min, max) as f64,
            last_update: None,
            last_decrease: None,
            last_overuse: None,
            feedback: 0,
            unknown: 0,
            sent: 0,
            probe: ProbeMeasurement::default(),
            probe_result: None,
        }
    }

    /// Opens a probe cluster: the packets sent from now on are measured together
    /// (`probe.rs`), until [`Self::end_probe`].
    pub fn start_probe(&mut self) {
        self.probe.open();
        self.probe_result = None;
    }

    /// Closes the probe cluster; its result comes with the feedback about it.
    pub fn end_probe(&mut self) {
        self.probe.close();
    }

    /// The rate the transport's pacer lets packets go at (`pacer.rs`): the estimate
    /// times [`PACING_FACTOR_QUEUED`] within [`QUEUE_MEMORY`] of overuse, else times
    /// [`PACING_FACTOR`].
    pub fn pacing_bps(&self, now: Instant) -> u64 {
        let factor = if self.queued_recently(now) {
            PACING_FACTOR_QUEUED
        } else {
            PACING_FACTOR
        };
        (self.estimate * factor) as u64
    }

    /// The loss below which the estimate may grow and probes may run: within
    /// [`QUEUE_MEMORY`] of a queue (a full tail-drop queue keeps the delay flat while it
    /// drops: such loss is congestion's), GCC 6's increase threshold, or a little above
    /// the path's own loss when it has one ([`InherentLoss::tolerated`]); its decrease
    /// threshold otherwise (the path's own loss). Without the inherent part, one
    /// overuse on a path with 5 % random loss (delay jitter is enough) held the
    /// estimate for 10 s and blocked every probe, while each overuse took it to
    /// 0.85 x what it delivered: measured from 3.3 Mbit/s down to 200 kbit/s in 12 s,
    /// the subscriber at its lowest layer and frame rate.
    pub fn tolerated_loss(&self, now: Instant) -> f64 {
        if self.queued_recently(now) {
            self.inherent.tolerated(LOSS_INCREASE)
        } else {
            LOSS_DECREASE
        }
    }

    /// The last loss sample's fraction lost, once there was one.
    pub fn loss_fraction(&self) -> Option<f64> {
        self.loss_fraction
    }

    /// The path's own loss fraction, once learnt (stats).
    pub fn inherent_loss(&self) -> Option<f64> {
        self.inherent.fraction()
    }

    /// Whether the delay detector saw a queue on the path within [`QUEUE_MEMORY`].
    fn queued_recently(&self, now: Instant) -> bool {
        self.last_overuse
            .is_some_and(|t| now.saturating_duration_since(t) < QUEUE_MEMORY)
    }

    /// Bytes sent since the probe cluster opened (the prober tops them up to its
    /// target).
    pub fn probe_sent_bytes(&self) -> u64 {
        self.probe.sent_bytes()
    }

    /// The last closed cluster's result, once its feedback came (taken once).
    pub fn take_probe_result(&mut self) -> Option<ProbeResult> {
        self.probe_result.take()
    }

    /// The available-bitrate estimate, bits/s.
    pub fn estimate_bps(&self) -> u64 {
        self.estimate as u64
    }

    /// Everything worth putting in stats.
    pub fn stats(&self) -> BweStats {
        let (delay_trend, delay_threshold) = self.delay.trend_and_threshold();
        BweStats {
            estimate_bps: self.estimate_bps(),
            delivered_bps: self.acked.rate_bps().map(|r| r as u64),
            loss_fraction: self.loss_fraction,
            delay: self.delay.state(),
            delay_trend,
            delay_threshold,
            feedback: self.feedback,
            unknown_packets: self.unknown,
            packets_sent: self.sent,
        }
    }

    /// Records that the packet with transport-wide sequence number `twcc_seq` and
    /// `size` bytes (as sent, SRTP included) left at `now`.
    pub fn on_packet_sent(&mut self, now: Instant, twcc_seq: u16, size: usize) {
        let epoch = *self.epoch.get_or_insert(now);
        self.sent += 1;
        if self.history.is_empty() {
            self.history = vec![Sent::EMPTY; HISTORY_START];
        }
        let ext = match self.highest_sent {
            None => EXT_BASE + u64::from(twcc_seq),
            Some(h) => h.wrapping_add_signed(i64::from(twcc_seq.wrapping_sub(h as u16) as i16)),
        };
        let sent_us =
            u64::try_from(now.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX);
        if let (Some(h), Some(old)) = (self.highest_sent, self.history.get(self.slot(ext))) {
            let young = sent_us.saturating_sub(old.sent_us) < HISTORY_SPAN.as_micros() as u64;
            if old.fate == Fate::Sent && young && self.history.len() < HISTORY {
                self.grow_history(h);
            }
        }
        self.highest_sent = Some(self.highest_sent.map_or(ext, |h| h.max(ext)));
        self.probe.on_sent(ext, sent_us, size as u64);
        let slot = self.slot(ext);
        if let Some(slot) = self.history.get_mut(slot) {
            *slot = Sent {
                sent_us,
                size: u16::try_from(size).unwrap_or(u16::MAX),
                seq: twcc_seq,
                fate: Fate::Sent,
            };
        }
    }

    /// The history's slot of extended sequence number `ext` (its length is a power
    /// of two).
    fn slot(&self, ext: u64) -> usize {
        (ext & (self.history.len() as u64).wrapping_sub(1)) as usize
    }

    /// Doubles the history (up to [`HISTORY`]), keeping every record: the ring holds
    /// the packets `highest - len + 1..=highest`, so slot i's packet is the one of
    /// those congruent to i.
    fn grow_history(&mut self, highest: u64) {
        let len = self.history.len();
        let grown_len = (len * 2).min(HISTORY);
        let mut grown = vec![Sent::EMPTY; grown_len];
        let (mask, grown_mask) = (len as u64 - 1, grown_len as u64 - 1);
        for (i, rec) in self.history.iter().enumerate() {
            let ext = highest.wrapping_sub(highest.wrapping_sub(i as u64) & mask);
            if let Some(slot) = grown.get_mut((ext & grown_mask) as usize) {
                *slot = *rec;
            }
        }
        self.history = grown;
    }

    /// Index of the record of `seq` and its extended number, if we still have it.
    fn lookup(&self, seq: u16) -> Option<(usize, u64)> {
        let h = self.highest_sent?;
        let ext = h.wrapping_add_signed(i64::from(seq.wrapping_sub(h as u16) as i16));
        if ext > h || h - ext >= self.history.len() as u64 {
            return None;
        }
        let idx = self.slot(ext);
        let s = self.history.get(idx)?;
        (s.seq == seq && s.fate != Fate::Empty).then_some((idx, ext))
    }

    /// Processes one transport-cc feedback from the subscriber, received at `now`,
    /// and updates the estimate.
    pub fn on_feedback(&mut self, now: Instant, feedback: &TwccFeedback) {
        self.feedback += 1;
        // Unwrap the 24-bit reference time against the previous feedback's: the
        // nearer of the forward and backward readings (libwebrtc GetBaseDelta).
        let r = i64::from(feedback.reference_time & ((1 << REFERENCE_BITS) - 1));
        let reference = match self.remote_reference {
            None => r,
            Some(prev) => {
                let span = 1i64 << REFERENCE_BITS;
                let mut d = (r - prev).rem_euclid(span);
                if d >= span / 2 {
                    d -= span;
                }
                prev + d
            }
        };
        self.remote_reference = Some(reference);
        let base_us = reference * REFERENCE_TICK_US;

        for (seq, arrival) in feedback.packets() {
            let Some((idx, ext)) = self.lookup(seq) else {
                self.unknown += 1;
                continue;
            };
            let Some(rec) = self.history.get_mut(idx) else {
                continue;
            };
            match (rec.fate, arrival) {
                (Fate::Sent, None) => {
                    rec.fate = Fate::Lost;
                    self.probe.on_report(ext, u64::from(rec.size), None);
                    self.loss.add(true);
                }
                (Fate::Sent | Fate::Lost, Some(at)) => {
                    if rec.fate == Fate::Lost {
                        // Reported lost before, received after all.
                        self.loss.take_back();
                        self.probe.take_back_loss(ext);
                    } else {
                        self.loss.add(false);
                    }
                    rec.fate = Fate::Received;
                    let remote_us = base_us.saturating_add(at);
                    let sent_us = i64::try_from(rec.sent_us).unwrap_or(i64::MAX);
                    self.acked.add(remote_us, u64::from(rec.size));
                    self.probe
                        .on_report(ext, u64::from(rec.size), Some(remote_us));
                    self.delay.on_packet(sent_us, remote_us);
                }
                // Already known: a re-report.
                _ => {}
            }
        }
        self.update(now);
        if let Some(result) = self.probe.poll_result() {
            self.on_probe_result(now, result);
        }
    }

    /// A probe cluster's measured rate raises the estimate at once when neither the
    /// delay detector nor loss above what is [tolerated](Self::tolerated_loss) objects.
    fn on_probe_result(&mut self, now: Instant, result: ProbeResult) {
        self.probe_result = Some(result);
        let Some(bps) = result.bps else { return };
        let loss = self.loss_fraction.unwrap_or(0.0);
        if self.delay.state().is_overusing() || loss >= self.tolerated_loss(now) {
            return;
        }
        self.estimate = self
            .estimate
            .max(bps as f64)
            .clamp(self.cfg.min_bps as f64, self.cfg.max_bps as f64);
    }

    fn update(&mut self, now: Instant) {
        let fresh_loss = self
            .loss
            .sample(now, LOSS_WINDOW)
            .or_else(|| self.loss.sample(now, QUIET_LOSS_WINDOW));
        if fresh_loss.is_some() {
            self.loss_fraction = fresh_loss;
        }
        if let Some(p) = fresh_loss {
            // Loss while the path shows no queue, and has shown none for a while, is
            // the path's own.
            if self.delay.state() == DelayState::Normal && !self.queued_recently(now) {
                self.inherent.on_sample(p);
            }
        }
        let elapsed = self
            .last_update
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
            .min(Duration::from_secs(1));
        self.last_update = Some(now);

        let delivered = self.acked.rate_bps();
        let state = self.delay.state();
        let loss = self.loss_fraction.unwrap_or(0.0);
        let since_decrease = |interval| {
            self.last_decrease
                .is_none_or(|t| now.saturating_duration_since(t) >= interval)
        };
        if state.is_overusing() {
            self.last_overuse = Some(now);
            let target = BETA * delivered.unwrap_or(self.estimate);
            // Never raise the rate because of overuse: if more got through than we
            // estimated, keep the estimate (libwebrtc does the same).
            if since_decrease(DECREASE_INTERVAL) && target < self.estimate {
                self.estimate = target;
                self.last_decrease = Some(now);
            }
        } else if let Some(p) = fresh_loss.filter(|p| *p > LOSS_DECREASE) {
            // GCC 6: in proportion to the loss.
            if since_decrease(LOSS_DECREASE_INTERVAL) {
                self.estimate *= 1.0 - 0.5 * p;
                self.last_decrease = Some(now);
            }
        } else if state == DelayState::Normal && loss < self.tolerated_loss(now) {
            let eta = if loss < LOSS_INCREASE {
                INCREASE_PER_SECOND
            } else {
                INHERENT_LOSS_INCREASE_PER_SECOND
            };
            let mut next = self.estimate * eta.powf(elapsed.as_secs_f64());
            if let Some(d) = delivered {
                next = next.min((APP_LIMIT_FACTOR * d + APP_LIMIT_OFFSET_BPS).max(self.estimate));
            }
            self.estimate = next;
        }
        self.estimate = self
            .estimate
            .clamp(self.cfg.min_bps as f64, self.cfg.max_bps as f64);
    }
}

/// When a loss window gives a sample.
#[derive(Debug, Clone, Copy)]
struct LossWindowSize {
    packets: u64,
    interval: Duration,
}

/// Packets reported lost and reported in total since the last sample.
#[derive(Debug, Clone, Copy, Default)]
struct LossWindow {
    lost: u64,
    total: u64,
    /// When the window (re)started: the previous sample, or the first report.
    since: Option<Instant>,
}

impl LossWindow {
    fn add(&mut self, lost: bool) {
        self.total += 1;
        self.lost += u64::from(lost);
    }

    fn take_back(&mut self) {
        self.lost = self.lost.saturating_sub(1);
    }

    /// The loss fraction, if the window is full at `now` (and then starts over).
    fn sample(&mut self, now: Instant, size: LossWindowSize) -> Option<f64> {
        let since = *self.since.get_or_insert(now);
        if self.total < size.packets || now.saturating_duration_since(since) < size.interval {
            return None;
        }
        let p = self.lost.min(self.total) as f64 / self.total as f64;
        *self = Self {
            lost: 0,
            total: 0,
            since: Some(now),
        };
        Some(p)
    }
}

#[cfg(test)]
mod tests;
