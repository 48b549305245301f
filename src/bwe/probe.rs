//! Bandwidth probing toward a subscriber: before the allocator moves a consumer up to a
//! layer the estimate does not cover, the transport sends a short cluster at the rate
//! that layer needs, media topped up with padding (padding-only RTP on a consumer's RTX
//! SSRC, as libwebrtc and mediasoup pad), and measures what arrived from the
//! subscriber's transport-cc feedback. A cluster that got through raises the estimate
//! at once, as GCC's probe controller does (libwebrtc `ProbeController`,
//! `ProbeBitrateEstimator`), where the estimator's own increase (8 % a second, capped
//! at 1.5 x what was delivered) would take many seconds to reach the next layer.
//!
//! Two parts, both sans-IO:
//! - [`ProbeController`] (one per transport) decides when to probe, for how long and
//!   at what rate, and paces the padding in [`PADDING_SLICE`] slices from the
//!   transport's timer;
//! - `ProbeMeasurement` (inside the estimator) marks the packets sent while a
//!   cluster is open and, from the feedback about them, computes the rate the path
//!   carried: the lower of the send rate and the receive rate over the cluster
//!   (libwebrtc's rule: a path cannot deliver faster than we sent), once at least
//!   [`MIN_REPORTED_SHARE`] of its packets were reported.

use std::time::{Duration, Instant};

/// How long a cluster sends. Short: a cluster above what the path carries fills its
/// bottleneck queue for as long as it lasts (measured behind a 400 kbit/s `tbf` with a
/// 200 ms queue: 500 ms clusters at twice the estimate overflowed it, and the media
/// packets lost with the padding froze the picture), while a quarter second still
/// spans 15-40 packets at the rates probed.
pub const CLUSTER_DURATION: Duration = Duration::from_millis(250);
/// Padding goes out in slices this far apart.
pub const PADDING_SLICE: Duration = Duration::from_millis(5);
/// A cluster's result must come this soon after it ends, or the probe failed.
pub const RESULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Never probe above this multiple of the current estimate. libwebrtc's exponential
/// start-up probing doubles, but its clusters last 15 ms; ours last
/// [`CLUSTER_DURATION`], so each step overshoots less: from 300 kbit/s a path proves
/// 3 Mbit/s in six steps, about 3 s when each succeeds.
pub const MAX_PROBE_FACTOR: f64 = 1.5;
/// A probe succeeded when the path carried at least this share of its target.
pub const SUCCESS_SHARE: f64 = 0.85;
/// After a failed probe, wait this long before the next (doubled per failure, up to
/// [`MAX_BACKOFF`]; reset by a success).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// The measurement needs this share of the cluster's packets reported, and this many.
pub const MIN_REPORTED_SHARE: f64 = 0.8;
pub const MIN_PACKETS: u32 = 5;
/// Loss above this in a cluster makes its result unusable.
pub const MAX_LOSS: f64 = 0.1;
/// Most padding bytes per padding-only RTP packet (RFC 3550 5.1: the count is one
/// octet).
pub const MAX_PADDING: usize = 255;

/// What a transport's prober is doing, for stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeState {
    Idle,
    /// Sending a cluster at `target_bps` until `ends`.
    Probing {
        target_bps: u64,
        ends: Instant,
    },
    /// The cluster was sent; waiting for its feedback.
    Measuring {
        target_bps: u64,
        since: Instant,
    },
    /// The last probe failed; none before `until`.
    Backoff {
        until: Instant,
    },
}

impl ProbeState {
    pub fn is_probing(&self) -> bool {
        matches!(self, Self::Probing { .. })
    }

    /// The wire name (`transport.getStats` `probing`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Probing { .. } => "probing",
            Self::Measuring { .. } => "measuring",
            Self::Backoff { .. } => "backoff",
        }
    }
}

/// What a cluster measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeResult {
    /// The rate the path carried, bits/s (None: too few packets reported, or too
    /// much loss to tell).
    pub bps: Option<u64>,
}

/// Counters for stats.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProbeStats {
    pub clusters: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Of the failed: ended early because the path congested under them.
    pub aborted: u64,
    pub padding_bytes: u64,
    /// The last cluster's measured rate.
    pub last_result_bps: Option<u64>,
}

/// Decides when a transport probes and paces its padding. Driving contract:
/// [`Self::start`] when the allocator has a [`probe_target`](super::BandwidthAllocator::probe_target)
/// above the estimate (it starts a cluster when allowed, and the caller opens the
/// estimator's measurement); at [`Self::poll_timeout`], [`Self::poll_padding`] gives
/// the padding bytes to send now and whether the cluster just ended (the caller closes
/// the measurement); [`Self::on_result`] with the estimator's result.
///
/// The padding tops up what the transport actually sent during the cluster (media
/// comes in frames, bursty over a quarter second), so the cluster as a whole goes out
/// at its target rate rather than at the target on top of an assumed media rate.
#[derive(Debug, Clone)]
pub struct ProbeController {
    state: ProbeState,
    /// When the cluster started, and when padding was last computed.
    started: Option<Instant>,
    last_padding: Option<Instant>,
    /// Bytes of the target the cluster will not catch up on (timers that fired late).
    forgiven: f64,
    backoff: Duration,
    stats: ProbeStats,
}

impl Default for ProbeController {
    fn default() -> Self {
        Self {
            state: ProbeState::Idle,
            started: None,
            last_padding: None,
            forgiven: 0.0,
            backoff: FIRST_BACKOFF,
            stats: ProbeStats::default(),
        }
    }
}

impl ProbeController {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn state(&self) -> ProbeState {
        self.state
    }

    pub fn stats(&self) -> ProbeStats {
        self.stats
    }

    /// Starts a cluster toward `target_bps` (capped at [`MAX_PROBE_FACTOR`] x
    /// `estimate_bps`), if none is under way or held off and the target is above both
    /// the estimate and the media sent (`media_bps`). Returns whether it started.
    pub fn start(
        &mut self,
        now: Instant,
        target_bps: u64,
        estimate_bps: u64,
        media_bps: u64,
    ) -> bool {
        match self.state {
            ProbeState::Probing { .. } | ProbeState::Measuring { .. } => return false,
            ProbeState::Backoff { until } if now < until => return false,
            _ => {}
        }
        let target = target_bps.min((estimate_bps as f64 * MAX_PROBE_FACTOR) as u64);
        if target <= estimate_bps || target <= media_bps {
            self.state = ProbeState::Idle;
            return false;
        }
        self.state = ProbeState::Probing {
            target_bps: target,
            ends: now + CLUSTER_DURATION,
        };
        self.started = Some(now);
        self.last_padding = Some(now);
        self.forgiven = 0.0;
        self.stats.clusters += 1;
        true
    }

    /// When the controller next has work: the next padding slice, the end of the
    /// result wait, or the end of a back-off.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ProbeState::Idle => None,
            ProbeState::Probing { ends, .. } => Some(
                self.last_padding
                    .map_or(ends, |t| (t + PADDING_SLICE).min(ends)),
            ),
            ProbeState::Measuring { since, .. } => Some(since + RESULT_TIMEOUT),
            ProbeState::Backoff { until } => Some(until),
        }
    }

    /// The padding (bytes) due at `now`, given the bytes the transport sent since the
    /// cluster started (`cluster_sent`: media, retransmissions and padding, as the
    /// estimator's measurement counts them), and whether the cluster ended with this
    /// call (then the measurement is to be closed). Also fails a cluster whose result
    /// did not come in time and ends a back-off.
    pub fn poll_padding(&mut self, now: Instant, cluster_sent: u64) -> (usize, bool) {
        match self.state {
            ProbeState::Probing { target_bps, ends } => {
                let until = now.min(ends);
                let rate = target_bps as f64 / 8.0;
                let elapsed = self
                    .started
                    .map_or(0.0, |s| until.saturating_duration_since(s).as_secs_f64());
                let due = rate * elapsed - self.forgiven - cluster_sent as f64;
                // Paced, not caught up: a late timer does not turn into a burst (at most
                // two slices' worth at once; the rest is forgiven).
                let most = rate * 2.0 * PADDING_SLICE.as_secs_f64();
                if due > most {
                    self.forgiven += due - most;
                }
                self.last_padding = Some(until);
                let bytes = due.clamp(0.0, most) as usize;
                self.stats.padding_bytes += bytes as u64;
                let ended = now >= ends;
                if ended {
                    self.state = ProbeState::Measuring {
                        target_bps,
                        since: now,
                    };
                }
                (bytes, ended)
            }
            ProbeState::Measuring { since, .. } if now >= since + RESULT_TIMEOUT => {
                self.fail(now);
                (0, false)
            }
            ProbeState::Backoff { until } if now >= until => {
                self.state = ProbeState::Idle;
                (0, false)
            }
            _ => (0, false),
        }
    }

    /// Takes the estimator's measurement of the last cluster. Returns whether it
    /// confirmed the cluster's target.
    pub fn on_result(&mut self, now: Instant, result: ProbeResult) -> bool {
        let ProbeState::Measuring { target_bps, .. } = self.state else {
            return false;
        };
        self.stats.last_result_bps = result.bps;
        if result
            .bps
            .is_some_and(|bps| bps as f64 >= SUCCESS_SHARE * target_bps as f64)
        {
            self.stats.succeeded += 1;
            self.backoff = FIRST_BACKOFF;
            self.state = ProbeState::Idle;
            true
        } else {
            self.fail(now);
            false
        }
    }

    /// Ends a cluster under way at once, as failed: the path is congesting under it
    /// (delay growing or packets lost), so sending the rest only deepens the queue the
    /// media waits in. Returns whether a cluster was aborted (then the estimator's
    /// measurement is to be closed).
    pub fn abort(&mut self, now: Instant) -> bool {
        if !self.state.is_probing() {
            return false;
        }
        self.stats.aborted += 1;
        self.fail(now);
        true
    }

    fn fail(&mut self, now: Instant) {
        self.stats.failed += 1;
        self.state = ProbeState::Backoff {
            until: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }
}

/// Measures one probe cluster inside the estimator: the packets sent while it is open
/// (media and padding alike, by extended transport-wide sequence number) and what the
/// feedback says of them.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ProbeMeasurement {
    /// Extended sequence numbers of the cluster's first and last packets.
    first: Option<u64>,
    last: Option<u64>,
    open: bool,
    sent: u32,
    sent_bytes: u64,
    first_sent_us: u64,
    last_sent_us: u64,
    received: u32,
    lost: u32,
    /// Bytes received, and the first arrival's size (the receive rate excludes it,
    /// the send rate the last packet's).
    received_bytes: u64,
    first_arrival: Option<(i64, u64)>,
    last_arrival_us: i64,
    last_size: u64,
}

impl ProbeMeasurement {
    /// Opens a cluster: packets sent from now on are part of it.
    pub(super) fn open(&mut self) {
        *self = Self {
            open: true,
            ..Self::default()
        };
    }

    /// Closes the cluster: its result comes once enough of it is reported.
    pub(super) fn close(&mut self) {
        self.open = false;
    }

    pub(super) fn on_sent(&mut self, ext: u64, sent_us: u64, size: u64) {
        if !self.open {
            return;
        }
        if self.first.is_none() {
            self.first = Some(ext);
            self.first_sent_us = sent_us;
        }
        self.last = Some(ext);
        self.last_sent_us = sent_us;
        self.last_size = size;
        self.sent += 1;
        self.sent_bytes += size;
    }

    /// Bytes sent in the cluster so far.
    pub(super) fn sent_bytes(&self) -> u64 {
        self.sent_bytes
    }

    fn contains(&self, ext: u64) -> bool {
        self.first
            .zip(self.last)
            .is_some_and(|(f, l)| (f..=l).contains(&ext))
    }

    /// A report about packet `ext` of `size` bytes: received at `arrival_us`, or lost.
    pub(super) fn on_report(&mut self, ext: u64, size: u64, arrival_us: Option<i64>) {
        if !self.contains(ext) {
            return;
        }
        match arrival_us {
            None => self.lost += 1,
            Some(at) => {
                self.received += 1;
                self.received_bytes += size;
                match self.first_arrival {
                    Some((first, _)) if first <= at => {}
                    _ => self.first_arrival = Some((at, size)),
                }
                self.last_arrival_us = self.last_arrival_us.max(at);
            }
        }
    }

    /// A packet reported lost earlier was received after all.
    pub(super) fn take_back_loss(&mut self, ext: u64) {
        if self.contains(ext) {
            self.lost = self.lost.saturating_sub(1);
        }
    }

    /// The result, once the cluster is closed and enough of it was reported; the
    /// measurement is then reset.
    pub(super) fn poll_result(&mut self) -> Option<ProbeResult> {
        if self.open || self.first.is_none() {
            return None;
        }
        let reported = self.received + self.lost;
        if f64::from(reported) < MIN_REPORTED_SHARE * f64::from(self.sent) {
            return None;
        }
        let result = self.rate();
        *self = Self::default();
        Some(ProbeResult { bps: result })
    }

    fn rate(&self) -> Option<u64> {
        let reported = self.received + self.lost;
        if self.received < MIN_PACKETS
            || f64::from(self.lost) > MAX_LOSS * f64::from(reported.max(1))
        {
            return None;
        }
        let send_us = self.last_sent_us.saturating_sub(self.first_sent_us);
        let (first_at, first_size) = self.first_arrival?;
        let recv_us = self.last_arrival_us.saturating_sub(first_at);
        if send_us == 0 || recv_us <= 0 {
            return None;
        }
        let send = self.sent_bytes.saturating_sub(self.last_size) as f64 * 8e6 / send_us as f64;
        let recv = self.received_bytes.saturating_sub(first_size) as f64 * 8e6 / recv_us as f64;
        Some(send.min(recv) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn a_cluster_pads_up_to_its_target_in_slices_then_waits_for_its_result() {
        let t0 = Instant::now();
        let mut p = ProbeController::new();
        assert!(
            !p.start(t0, 900_000, 1_000_000, 300_000),
            "not above the estimate"
        );
        assert!(p.start(t0, 3_000_000, 1_000_000, 300_000));
        assert_eq!(
            p.state(),
            ProbeState::Probing {
                target_bps: 1_500_000,
                ends: t0 + CLUSTER_DURATION
            },
            "capped at 1.5 x the estimate"
        );
        assert!(!p.start(t0, 3_000_000, 1_000_000, 300_000), "one at a time");
        // Media at 300 kbps, all of it in the cluster's first 100 ms (frames are bursty).
        let media =
            |t: Instant| (t - t0).min(Duration::from_millis(100)).as_micros() as u64 * 3 / 32;
        let mut padding = 0;
        let mut now = t0;
        loop {
            let at = p.poll_timeout().unwrap();
            assert!(at > now && at <= now + PADDING_SLICE, "paced in slices");
            now = at;
            let (bytes, ended) = p.poll_padding(now, media(now) + padding as u64);
            padding += bytes;
            if ended {
                break;
            }
        }
        assert_eq!(now, t0 + CLUSTER_DURATION);
        // The cluster as a whole at 1.5 Mbps for 250 ms: padding tops up the media.
        let want = 1_500_000 / 8 / 4 - media(now) as usize;
        assert!(padding.abs_diff(want) <= 2, "{padding} vs {want}");
        assert_eq!(p.state().name(), "measuring");
        p.on_result(
            now,
            ProbeResult {
                bps: Some(1_400_000),
            },
        );
        assert_eq!(p.state(), ProbeState::Idle);
        assert_eq!(p.stats().succeeded, 1);
    }

    #[test]
    fn a_late_timer_does_not_burst_the_padding() {
        let t0 = Instant::now();
        let mut p = ProbeController::new();
        assert!(p.start(t0, 2_000_000, 1_000_000, 0));
        // 100 ms late: two 5 ms slices of 1.5 Mbps, not 100 ms of it.
        let (bytes, ended) = p.poll_padding(ms(t0, 100), 0);
        assert!(!ended);
        assert_eq!(bytes, 1_500_000 / 8 / 100);
    }

    #[test]
    fn a_cluster_the_path_congests_under_is_aborted_and_backs_off() {
        let t0 = Instant::now();
        let mut p = ProbeController::new();
        assert!(!p.abort(t0), "nothing to abort");
        assert!(p.start(t0, 2_000_000, 1_000_000, 0));
        let _ = p.poll_padding(ms(t0, 50), 0);
        assert!(p.abort(ms(t0, 60)));
        assert_eq!(
            p.state(),
            ProbeState::Backoff {
                until: ms(t0, 60) + FIRST_BACKOFF
            }
        );
        assert_eq!(p.poll_padding(ms(t0, 65), 0), (0, false), "no more padding");
        let s = p.stats();
        assert_eq!((s.failed, s.aborted), (1, 1));
        assert!(!p.abort(ms(t0, 70)), "aborted once");
    }

    #[test]
    fn a_failed_or_unanswered_probe_backs_off_longer_each_time() {
        let t0 = Instant::now();
        let mut p = ProbeController::new();
        assert!(p.start(t0, 2_000_000, 1_000_000, 0));
        let _ = p.poll_padding(ms(t0, 500), 0);
        p.on_result(
            ms(t0, 600),
            ProbeResult {
                bps: Some(1_100_000),
            },
        );
        assert_eq!(
            p.state(),
            ProbeState::Backoff {
                until: ms(t0, 600) + FIRST_BACKOFF
            }
        );
        assert!(!p.start(ms(t0, 700), 2_000_000, 1_000_000, 0));
        let until = ms(t0, 600) + FIRST_BACKOFF;
        assert_eq!(p.poll_timeout(), Some(until));
        let _ = p.poll_padding(until, 0);
        assert!(p.start(until, 2_000_000, 1_000_000, 0));
        let end = until + CLUSTER_DURATION;
        let _ = p.poll_padding(end, 0);
        // No result at all: failed after the timeout, backing off twice as long.
        assert_eq!(p.poll_timeout(), Some(end + RESULT_TIMEOUT));
        let _ = p.poll_padding(end + RESULT_TIMEOUT, 0);
        assert_eq!(
            p.state(),
            ProbeState::Backoff {
                until: end + RESULT_TIMEOUT + FIRST_BACKOFF * 2
            }
        );
        assert_eq!(p.stats().failed, 2);
    }

    #[test]
    fn the_measurement_is_the_lower_of_send_and_receive_rate() {
        let mut m = ProbeMeasurement::default();
        m.on_sent(1, 0, 1000);
        m.open();
        // 20 packets of 1,000 bytes sent 2 ms apart (4 Mbps) arrive 4 ms apart
        // (2 Mbps): a bottleneck at 2 Mbps.
        for i in 0..20u64 {
            m.on_sent(10 + i, i * 2_000, 1000);
        }
        m.close();
        assert_eq!(m.poll_result(), None, "nothing reported yet");
        m.on_report(1, 1000, Some(0));
        for i in 0..20u64 {
            m.on_report(10 + i, 1000, Some(50_000 + i as i64 * 4_000));
        }
        let r = m.poll_result().unwrap().bps.unwrap();
        assert!(r.abs_diff(2_000_000) < 20_000, "{r}");
        assert_eq!(m.poll_result(), None, "reset after its result");
    }

    #[test]
    fn a_lossy_cluster_has_no_rate() {
        let mut m = ProbeMeasurement::default();
        m.open();
        for i in 0..20u64 {
            m.on_sent(i, i * 1_000, 1000);
        }
        m.close();
        for i in 0..20u64 {
            let arrival = (i % 4 != 0).then_some(i as i64 * 1_000);
            m.on_report(i, 1000, arrival);
        }
        assert_eq!(m.poll_result(), Some(ProbeResult { bps: None }));
    }
}
