//! Delay-based overuse detection: packet groups, the trendline filter and the
//! adaptive-threshold detector of draft-ietf-rmcat-gcc-02 section 5, with the
//! constants of libwebrtc's `InterArrivalDelta` and `TrendlineEstimator` (which
//! replaced the draft's Kalman filter with a linear fit over a window of smoothed
//! accumulated delay variation).

/// Packets sent within this of a group's first packet belong to the group
/// (draft 5.2: a "group" is what was sent in one burst interval).
const GROUP_US: i64 = 5_000;
/// libwebrtc's burst rule: packets arriving within this of the group's last one,
/// sooner than they were sent apart, belong to the group (a burst queued somewhere).
const BURST_DELTA_US: i64 = 5_000;
const MAX_BURST_US: i64 = 100_000;
/// Consecutive reordered groups after which grouping restarts.
const REORDER_RESET: u32 = 3;
/// Trendline window (points) and smoothing (libwebrtc defaults).
const WINDOW: usize = 20;
const SMOOTHING: f64 = 0.9;
const THRESHOLD_GAIN: f64 = 4.0;
/// The trend is scaled by the number of deltas seen, up to this many.
const MIN_DELTAS: u32 = 60;
/// Overuse must last this long (ms) and two samples before it is signalled
/// (draft 5.4: "overuse_time_th").
const OVERUSE_TIME_MS: f64 = 10.0;
/// Adaptive threshold (draft 5.4, libwebrtc's gains): start, bounds, up/down gains
/// and the jump beyond which a sample does not adapt it.
const THRESHOLD_START: f64 = 12.5;
const THRESHOLD_MIN: f64 = 6.0;
const THRESHOLD_MAX: f64 = 600.0;
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
const MAX_ADAPT_OFFSET: f64 = 15.0;

/// What the delay detector concludes (draft 5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DelayState {
    /// Queueing delay stable.
    #[default]
    Normal,
    /// Queueing delay growing: the path is over capacity.
    Overusing,
    /// Queueing delay shrinking: a queue is draining.
    Underusing,
}

impl DelayState {
    pub fn is_overusing(self) -> bool {
        self == Self::Overusing
    }
}

#[derive(Debug, Clone, Copy)]
struct Group {
    first_send_us: i64,
    send_us: i64,
    first_arrival_us: i64,
    complete_us: i64,
}

impl Group {
    fn new(send_us: i64, arrival_us: i64) -> Self {
        Self {
            first_send_us: send_us,
            send_us,
            first_arrival_us: arrival_us,
            complete_us: arrival_us,
        }
    }
}

/// Groups packets, measures the inter-group delay variation and runs the trendline
/// detector on it. Fed packets in send order with their send time (our clock) and
/// receive time (the receiver's clock); both only ever enter as differences.
#[derive(Debug, Clone)]
pub(super) struct DelayDetector {
    current: Option<Group>,
    prev: Option<Group>,
    reordered: u32,
    first_arrival_ms: Option<f64>,
    accumulated: f64,
    smoothed: f64,
    deltas: u32,
    /// Ring of (arrival ms since first, smoothed delay ms).
    history: [(f64, f64); WINDOW],
    history_len: usize,
    history_next: usize,
    trend: f64,
    prev_trend: f64,
    modified_trend: f64,
    threshold: f64,
    last_threshold_ms: Option<f64>,
    time_over_using: Option<f64>,
    overuse_count: u32,
    state: DelayState,
}

impl DelayDetector {
    pub(super) fn new() -> Self {
        Self {
            current: None,
            prev: None,
            reordered: 0,
            first_arrival_ms: None,
            accumulated: 0.0,
            smoothed: 0.0,
            deltas: 0,
            history: [(0.0, 0.0); WINDOW],
            history_len: 0,
            history_next: 0,
            trend: 0.0,
            prev_trend: 0.0,
            modified_trend: 0.0,
            threshold: THRESHOLD_START,
            last_threshold_ms: None,
            time_over_using: None,
            overuse_count: 0,
            state: DelayState::Normal,
        }
    }

    pub(super) fn state(&self) -> DelayState {
        self.state
    }

    /// The scaled trend (ms) and the threshold it is compared with.
    pub(super) fn trend_and_threshold(&self) -> (f64, f64) {
        (self.modified_trend, self.threshold)
    }

    /// One received packet (libwebrtc `InterArrivalDelta::ComputeDeltas`).
    pub(super) fn on_packet(&mut self, send_us: i64, arrival_us: i64) {
        let Some(cur) = self.current else {
            self.current = Some(Group::new(send_us, arrival_us));
            return;
        };
        if send_us < cur.first_send_us {
            // Sent before the current group: out of order, ignored.
            return;
        }
        if !self.starts_new_group(&cur, send_us, arrival_us) {
            if let Some(c) = self.current.as_mut() {
                c.send_us = c.send_us.max(send_us);
                c.complete_us = arrival_us;
            }
            return;
        }
        if let Some(prev) = self.prev {
            let send_delta = cur.send_us - prev.send_us;
            let arrival_delta = cur.complete_us - prev.complete_us;
            if arrival_delta < 0 {
                // The group was reordered in the network; a few in a row mean our
                // groups no longer make sense.
                self.reordered += 1;
                if self.reordered >= REORDER_RESET {
                    self.current = None;
                    self.prev = None;
                    self.reordered = 0;
                }
                return;
            }
            self.reordered = 0;
            self.update_trend(
                arrival_delta as f64 / 1000.0,
                send_delta as f64 / 1000.0,
                arrival_us as f64 / 1000.0,
            );
        }
        self.prev = Some(cur);
        self.current = Some(Group::new(send_us, arrival_us));
    }

    fn starts_new_group(&self, cur: &Group, send_us: i64, arrival_us: i64) -> bool {
        // libwebrtc `BelongsToBurst`.
        let arrival_delta = arrival_us - cur.complete_us;
        let send_delta = send_us - cur.send_us;
        if send_delta == 0 {
            return false;
        }
        let propagation_delta = arrival_delta - send_delta;
        if propagation_delta < 0
            && arrival_delta <= BURST_DELTA_US
            && arrival_us - cur.first_arrival_us < MAX_BURST_US
        {
            return false;
        }
        send_us - cur.first_send_us > GROUP_US
    }

    /// libwebrtc `TrendlineEstimator::UpdateTrendline`: accumulate the delay
    /// variation d(i) = arrival delta - send delta (draft 5.3), smooth it, fit a
    /// line through the last [`WINDOW`] points and detect on its slope.
    fn update_trend(&mut self, arrival_delta_ms: f64, send_delta_ms: f64, arrival_ms: f64) {
        self.deltas = (self.deltas + 1).min(1000);
        let first = *self.first_arrival_ms.get_or_insert(arrival_ms);
        self.accumulated += arrival_delta_ms - send_delta_ms;
        self.smoothed = SMOOTHING * self.smoothed + (1.0 - SMOOTHING) * self.accumulated;
        if let Some(slot) = self.history.get_mut(self.history_next) {
            *slot = (arrival_ms - first, self.smoothed);
        }
        self.history_next = (self.history_next + 1) % WINDOW;
        self.history_len = (self.history_len + 1).min(WINDOW);
        if self.history_len == WINDOW {
            if let Some(slope) = linear_fit_slope(&self.history) {
                self.trend = slope;
            }
        }
        self.detect(send_delta_ms, arrival_ms);
    }

    /// libwebrtc `TrendlineEstimator::Detect` (draft 5.4).
    fn detect(&mut self, send_delta_ms: f64, now_ms: f64) {
        if self.deltas < 2 {
            self.state = DelayState::Normal;
            return;
        }
        let modified = f64::from(self.deltas.min(MIN_DELTAS)) * self.trend * THRESHOLD_GAIN;
        self.modified_trend = modified;
        if modified > self.threshold {
            let over = match self.time_over_using {
                None => send_delta_ms / 2.0,
                Some(t) => t + send_delta_ms,
            };
            self.time_over_using = Some(over);
            self.overuse_count += 1;
            if over > OVERUSE_TIME_MS && self.overuse_count > 1 && self.trend >= self.prev_trend {
                self.time_over_using = Some(0.0);
                self.overuse_count = 0;
                self.state = DelayState::Overusing;
            }
        } else if modified < -self.threshold {
            self.time_over_using = None;
            self.overuse_count = 0;
            self.state = DelayState::Underusing;
        } else {
            self.time_over_using = None;
            self.overuse_count = 0;
            self.state = DelayState::Normal;
        }
        self.prev_trend = self.trend;
        self.update_threshold(modified, now_ms);
    }

    /// Draft 5.4 adaptive threshold: gamma += dt * k * (|m| - gamma), k_up when
    /// above, k_down when below, skipped for outliers.
    fn update_threshold(&mut self, modified: f64, now_ms: f64) {
        let last = *self.last_threshold_ms.get_or_insert(now_ms);
        if modified.abs() > self.threshold + MAX_ADAPT_OFFSET {
            self.last_threshold_ms = Some(now_ms);
            return;
        }
        let k = if modified.abs() < self.threshold {
            K_DOWN
        } else {
            K_UP
        };
        let dt = (now_ms - last).clamp(0.0, 100.0);
        self.threshold += k * (modified.abs() - self.threshold) * dt;
        self.threshold = self.threshold.clamp(THRESHOLD_MIN, THRESHOLD_MAX);
        self.last_threshold_ms = Some(now_ms);
    }
}

/// Least-squares slope of y over x; `None` when all x are equal.
fn linear_fit_slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(sx, sy), &(x, y)| (sx + x, sy + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), &(x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den != 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Groups every 10 ms; arrival spacing = send spacing + `extra` us per group.
    fn feed(d: &mut DelayDetector, groups: i64, start: i64, extra: i64) -> i64 {
        let mut arrival = start;
        for g in 0..groups {
            let send = (start / 10_000 + g) * 10_000;
            arrival += 10_000 + extra;
            for p in 0..3 {
                d.on_packet(send + p * 100, arrival + p * 100);
            }
        }
        arrival
    }

    #[test]
    fn steady_is_normal_growing_is_overuse_draining_is_underuse() {
        let mut d = DelayDetector::new();
        let t = feed(&mut d, 100, 0, 0);
        assert_eq!(d.state(), DelayState::Normal);
        // 1 ms more per 10 ms group: queueing delay grows 10%.
        feed(&mut d, 30, t, 1_000);
        assert_eq!(
            d.state(),
            DelayState::Overusing,
            "{:?}",
            d.trend_and_threshold()
        );
        let mut d = DelayDetector::new();
        let t = feed(&mut d, 100, 0, 0);
        feed(&mut d, 30, t, -1_000);
        assert_eq!(d.state(), DelayState::Underusing);
    }

    #[test]
    fn reordered_groups_are_skipped_and_reset() {
        let mut d = DelayDetector::new();
        let t = feed(&mut d, 50, 0, 0);
        // Groups arriving before the previous ones: ignored, then a reset.
        for g in 0..5 {
            d.on_packet(600_000 + g * 10_000, t - 100_000 - g * 20_000);
        }
        // Sent before the current group: ignored.
        d.on_packet(0, t);
        feed(&mut d, 50, 700_000, 0);
        assert_eq!(d.state(), DelayState::Normal);
    }

    #[test]
    fn slope_fit() {
        assert_eq!(
            linear_fit_slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]),
            Some(2.0)
        );
        assert_eq!(linear_fit_slope(&[(1.0, 1.0), (1.0, 3.0)]), None);
    }
}
