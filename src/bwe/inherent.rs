//! The path's own loss ("inherent loss", as libwebrtc's loss-based estimator v2 calls
//! it): what a subscriber behind a radio link or a lossy hop loses whatever the rate,
//! learnt from the loss samples taken while the delay detector shows no queue, and has
//! shown none for `QUEUE_MEMORY`. Congestion fills a queue before it drops; loss
//! without one is not a reason to send less.

/// Samples before the mean is trusted: three loss windows, 60-300 packets (one to three
/// seconds of video): the playout delay (`playout.rs`) waits for it, and the freezes
/// before it engages count as much as any (lab, 5 % loss: with five windows, most of a
/// run's freeze time came in its first five seconds). Three windows of 100 packets at
/// 5 % loss read 5 % +- 1.3 %: enough to tell a lossy path from a clean one.
const MIN_SAMPLES: u32 = 3;
/// The mean weighs the last this many samples (an exponential average once full).
const MEMORY_SAMPLES: u32 = 20;
/// Tolerated above the inherent loss: a 100-packet window at 5 % loss reads above 7 %
/// about one time in eight; sampling noise is not congestion either.
const MARGIN: f64 = 0.02;
/// Never tolerated near a queue, however lossy the path was: GCC 6's decrease
/// threshold (10 %) is where loss is congestion's whatever the path.
const MAX_TOLERATED: f64 = 0.08;

/// The running mean of loss samples taken without a queue.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct InherentLoss {
    mean: f64,
    samples: u32,
}

impl InherentLoss {
    /// One loss sample (fraction lost) taken while the path showed no queue.
    pub(super) fn on_sample(&mut self, fraction: f64) {
        self.samples = self.samples.saturating_add(1);
        let weight = 1.0 / f64::from(self.samples.min(MEMORY_SAMPLES));
        self.mean += weight * (fraction.clamp(0.0, 1.0) - self.mean);
    }

    /// The path's own loss fraction, once enough samples say so.
    pub(super) fn fraction(&self) -> Option<f64> {
        (self.samples >= MIN_SAMPLES).then_some(self.mean)
    }

    /// The loss tolerated near a queue: `floor`, or the inherent loss plus a margin
    /// when that is higher (at most [`MAX_TOLERATED`]).
    pub(super) fn tolerated(&self, floor: f64) -> f64 {
        self.fraction()
            .map_or(floor, |p| (p + MARGIN).min(MAX_TOLERATED).max(floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_the_mean_after_enough_samples_and_caps_what_it_tolerates() {
        let mut l = InherentLoss::default();
        for _ in 0..MIN_SAMPLES - 1 {
            l.on_sample(0.05);
        }
        assert_eq!(l.fraction(), None);
        assert_eq!(l.tolerated(0.02), 0.02);
        l.on_sample(0.05);
        assert!((l.fraction().unwrap_or(0.0) - 0.05).abs() < 1e-9);
        assert!((l.tolerated(0.02) - 0.07).abs() < 1e-9);
        for _ in 0..100 {
            l.on_sample(0.3);
        }
        assert_eq!(l.tolerated(0.02), MAX_TOLERATED);
        for _ in 0..100 {
            l.on_sample(0.0);
        }
        assert!(
            l.tolerated(0.02) - 0.02 < 5e-3,
            "a clean path tolerates the floor"
        );
    }
}
