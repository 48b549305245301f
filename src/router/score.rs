//! The 0-10 quality score of a producer's or consumer's RTP stream, as mediasoup
//! reports it (`producer.score` / `consumer.score` notifications): 10 is a perfect
//! stream, 0 a useless or stopped one.
//!
//! # Mapping
//!
//! Loss dominates, as in mediasoup's `RtpStreamRecv`/`RtpStreamSend::UpdateScore`:
//! `10 * (1 - loss)^4`, so a few percent cost a point and 20 % leaves 4
//! (1 % -> 9.6, 5 % -> 8.1, 10 % -> 6.6, 20 % -> 4.1, 50 % -> 0.6). The fourth power
//! reflects that video degrades much faster than linearly with loss (every lost
//! packet can cost a frame, and the frames that depend on it).
//!
//! Jitter (RFC 3550 6.4.1 interarrival jitter, in milliseconds) then subtracts: nothing
//! up to [`JITTER_FREE_MS`] (paced video bursts alone produce 10-30 ms), then one point
//! per [`JITTER_MS_PER_POINT`], at most [`MAX_JITTER_PENALTY`] points (reached at
//! 130 ms: the receiver's jitter buffer, and so the delay, grows with it, but the
//! media still arrives).
//!
//! # Smoothing
//!
//! One sample per reporting interval (an RTCP receiver report, about one a second).
//! [`ScoreTracker`] reports the weighted mean of the last [`HISTORY`] samples, the
//! newest weighing most (as mediasoup's `RtpStream::UpdateScore`), and reports a
//! change only when the mean moves past the current score by more than half a point
//! plus [`HYSTERESIS`], so a mean hovering at x.5 does not notify every interval.

/// Jitter up to this costs nothing.
pub const JITTER_FREE_MS: f64 = 30.0;
/// Beyond [`JITTER_FREE_MS`], one point per this much jitter.
pub const JITTER_MS_PER_POINT: f64 = 20.0;
/// Most points jitter can cost.
pub const MAX_JITTER_PENALTY: f64 = 5.0;
/// Samples averaged by [`ScoreTracker`].
pub const HISTORY: usize = 8;
/// Extra distance beyond rounding before the reported score changes.
pub const HYSTERESIS: f64 = 0.1;

/// The unrounded score of one interval, 0.0..=10.0.
///
/// `fraction_lost` is 0.0..=1.0 (e.g. an RR's fraction lost / 256); out-of-range
/// values are clamped, NaN counts as no loss (no information). `jitter_ms`: negative
/// or NaN counts as none, infinity as the maximum penalty.
pub fn raw_score(fraction_lost: f64, jitter_ms: f64) -> f64 {
    let loss = if fraction_lost.is_nan() {
        0.0
    } else {
        fraction_lost.clamp(0.0, 1.0)
    };
    let delivered = 1.0 - loss;
    let base = 10.0 * delivered.powi(4);
    let jitter = if jitter_ms.is_nan() {
        0.0
    } else {
        jitter_ms.max(0.0)
    };
    let penalty = ((jitter - JITTER_FREE_MS) / JITTER_MS_PER_POINT).clamp(0.0, MAX_JITTER_PENALTY);
    (base - penalty).clamp(0.0, 10.0)
}

/// The score of one interval, rounded: 0..=10. See the module docs for the mapping.
pub fn score(fraction_lost: f64, jitter_ms: f64) -> u8 {
    to_u8(raw_score(fraction_lost, jitter_ms))
}

/// Rounds a 0.0..=10.0 value (clamped again, so any f64 is safe).
fn to_u8(v: f64) -> u8 {
    // In 0..=10 after the clamp, so the cast is exact.
    v.clamp(0.0, 10.0).round() as u8
}

/// Smooths interval scores and tells when the reported score changes.
#[derive(Debug, Clone)]
pub struct ScoreTracker {
    /// Ring of the last `len` raw samples; `next` is where the next one goes.
    samples: [f64; HISTORY],
    len: usize,
    next: usize,
    current: u8,
}

impl ScoreTracker {
    /// A tracker reporting `initial` (clamped to 10) until samples say otherwise.
    /// mediasoup starts producers at 0 (nothing received yet) and consumers at 10.
    pub fn new(initial: u8) -> Self {
        Self {
            samples: [0.0; HISTORY],
            len: 0,
            next: 0,
            current: initial.min(10),
        }
    }

    /// The score reported so far.
    pub fn current(&self) -> u8 {
        self.current
    }

    /// Adds one reporting interval's loss (0.0..=1.0) and jitter (ms). Returns the
    /// new score when the reported value changes (notify then), `None` otherwise.
    ///
    /// An interval in which nothing was expected carries no information: skip it,
    /// or call [`Self::reset`] if the stream stopped.
    pub fn update(&mut self, fraction_lost: f64, jitter_ms: f64) -> Option<u8> {
        if let Some(slot) = self.samples.get_mut(self.next) {
            *slot = raw_score(fraction_lost, jitter_ms);
        }
        self.next = (self.next + 1) % HISTORY;
        self.len = (self.len + 1).min(HISTORY);

        // Weights 1..=len from the oldest sample to the newest.
        let oldest = (self.next + HISTORY - self.len) % HISTORY;
        let (mut sum, mut weights) = (0.0, 0.0);
        for k in 0..self.len {
            let w = (k + 1) as f64;
            sum += w * self
                .samples
                .get((oldest + k) % HISTORY)
                .copied()
                .unwrap_or(0.0);
            weights += w;
        }
        let mean = if weights > 0.0 { sum / weights } else { 0.0 };

        let candidate = to_u8(mean);
        if candidate != self.current && (mean - f64::from(self.current)).abs() > 0.5 + HYSTERESIS {
            self.current = candidate;
            return Some(candidate);
        }
        None
    }

    /// Forgets the history and reports `score` (clamped to 10) from now on, e.g. 0
    /// when a stream stops (mediasoup resets an inactive producer stream to 0).
    /// Returns it when that is a change.
    pub fn reset(&mut self, score: u8) -> Option<u8> {
        let score = score.min(10);
        self.len = 0;
        self.next = 0;
        let changed = score != self.current;
        self.current = score;
        changed.then_some(score)
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn loss_mapping() {
        assert_eq!(score(0.0, 0.0), 10);
        assert_eq!(score(0.01, 0.0), 10);
        assert_eq!(score(0.02, 0.0), 9);
        assert_eq!(score(0.05, 0.0), 8);
        assert_eq!(score(0.10, 0.0), 7);
        assert_eq!(score(0.20, 0.0), 4);
        assert_eq!(score(0.50, 0.0), 1);
        assert_eq!(score(0.70, 0.0), 0);
        assert_eq!(score(1.0, 0.0), 0);
        // Monotonic in loss.
        let mut last = 10;
        for i in 0..=256 {
            let s = score(f64::from(i) / 256.0, 0.0);
            assert!(s <= last);
            last = s;
        }
    }

    #[test]
    fn jitter_penalty() {
        assert_eq!(score(0.0, 30.0), 10);
        assert_eq!(score(0.0, 50.0), 9);
        assert_eq!(score(0.0, 70.0), 8);
        assert_eq!(score(0.0, 130.0), 5);
        assert_eq!(score(0.0, 10_000.0), 5);
        assert_eq!(score(0.05, 70.0), 6);
        // Loss and jitter together bottom out at 0, never below.
        assert_eq!(score(0.5, 500.0), 0);
    }

    #[test]
    fn odd_inputs_are_safe() {
        assert_eq!(score(f64::NAN, f64::NAN), 10);
        assert_eq!(score(-1.0, -5.0), 10);
        assert_eq!(score(7.0, 0.0), 0);
        assert_eq!(score(0.0, f64::INFINITY), 5);
        assert_eq!(score(f64::NEG_INFINITY, f64::NEG_INFINITY), 10);
        assert_eq!(score(f64::INFINITY, 0.0), 0);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut t = ScoreTracker::new(200);
        assert_eq!(t.current(), 10);
        for _ in 0..10_000 {
            let f = f64::from_bits(rng.gen());
            let j = f64::from_bits(rng.gen());
            assert!(score(f, j) <= 10);
            if let Some(s) = t.update(f, j) {
                assert!(s <= 10);
            }
        }
    }

    #[test]
    fn tracker_reports_only_changes() {
        let mut t = ScoreTracker::new(10);
        assert_eq!(t.update(0.0, 5.0), None);
        assert_eq!(t.update(0.0, 5.0), None);
        // One very bad interval after two good ones: weighted mean
        // (1*10 + 2*10 + 3*0) / 6 = 5.
        assert_eq!(t.update(1.0, 0.0), Some(5));
        assert_eq!(t.current(), 5);
        // Recovery is gradual, each step notified once.
        let mut seen = vec![];
        for _ in 0..HISTORY + 2 {
            if let Some(s) = t.update(0.0, 0.0) {
                seen.push(s);
            }
        }
        assert_eq!(seen.last(), Some(&10));
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        assert_eq!(t.update(0.0, 0.0), None);
    }

    #[test]
    fn hysteresis_stops_flapping() {
        // Samples alternating around 8.5: the rounded mean would flip between 8 and 9.
        let mut t = ScoreTracker::new(9);
        let mut changes = 0;
        for i in 0..100 {
            // raw 8.45 and 8.55 through the jitter penalty alone.
            let jitter = if i % 2 == 0 { 61.0 } else { 59.0 };
            if t.update(0.0, jitter).is_some() {
                changes += 1;
            }
        }
        assert_eq!(changes, 0);
        assert_eq!(t.current(), 9);
        // A real move is reported.
        for _ in 0..HISTORY {
            t.update(0.0, 70.0);
        }
        assert_eq!(t.current(), 8);
    }

    #[test]
    fn reset_forgets_history() {
        let mut t = ScoreTracker::new(0);
        assert_eq!(t.update(0.0, 0.0), Some(10));
        assert_eq!(t.reset(0), Some(0));
        assert_eq!(t.reset(0), None);
        // A fresh start: the first sample alone decides.
        assert_eq!(t.update(0.05, 0.0), Some(8));
    }
}
