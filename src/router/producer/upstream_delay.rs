//! The playout delay a publisher's lossy uplink calls for at its subscribers.
//!
//! A packet lost between the publisher and the worker reaches the subscribers only after
//! the worker's NACK and the publisher's retransmission: a round trip on the uplink
//! (the retransmission is forwarded like the original). A subscriber on a clean path has
//! a small jitter buffer and does not wait for it, so its picture of a lossy publisher
//! froze (lab, 5 % loss and 50 ms each way on the publisher's link: 11-16 % of the time
//! frozen at the unimpaired receiver, its jitter buffer's target 19 ms). So the producer
//! asks its subscribers for a playout delay as a lossy subscriber path does
//! (`bwe::playout`), from the uplink's loss before repair (what its NACK generators
//! found missing per receiver-report interval) and the measured repair round trip (NACK
//! sent to the retransmission's arrival). Each consumer writes the larger of this and its
//! own transport's.

use std::time::{Duration, Instant};

use crate::bwe::{PlayoutDelay, PlayoutDelayLimits};

/// Reports before the loss is trusted (one per receiver-report interval, about 1 s).
const MIN_REPORTS: u32 = 3;
/// A sample waits for this many packets (quiet intervals add up): fewer cannot tell 5 %
/// from noise.
const MIN_PACKETS: u64 = 20;
/// Weight of a new sample in the running loss.
const WEIGHT: f64 = 0.25;

/// A producer's uplink loss and the playout delay it calls for.
#[derive(Debug, Default)]
pub(super) struct UpstreamDelay {
    delay: PlayoutDelay,
    loss: f64,
    reports: u32,
    /// (missing, received) packet counts at the last report.
    last: (u64, u64),
}

impl UpstreamDelay {
    /// One receiver-report interval ended: `missing` packets found missing (repaired or
    /// given up) and `received` packets received so far, over all encodings;
    /// `repair_rtt` the measured uplink repair round trip.
    pub(super) fn on_report(
        &mut self,
        now: Instant,
        missing: u64,
        received: u64,
        repair_rtt: Option<Duration>,
    ) {
        let lost = missing.saturating_sub(self.last.0);
        let got = received.saturating_sub(self.last.1);
        if lost + got >= MIN_PACKETS {
            self.last = (missing, received);
            let sample = lost as f64 / (lost + got) as f64;
            self.loss = if self.reports == 0 {
                sample
            } else {
                self.loss + WEIGHT * (sample - self.loss)
            };
            self.reports = self.reports.saturating_add(1);
        }
        let loss = (self.reports >= MIN_REPORTS).then_some(self.loss);
        self.delay.update(now, loss, repair_rtt);
    }

    /// What the producer's consumers write on its packets now, if anything.
    pub(super) fn announce(&self, now: Instant) -> Option<PlayoutDelayLimits> {
        self.delay.announce(now)
    }

    /// The minimum asked for now.
    pub(super) fn current(&self) -> Duration {
        self.delay.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_lossy_uplink_asks_for_a_delay_after_a_few_reports_and_a_clean_one_never() {
        let t0 = Instant::now();
        let mut lossy = UpstreamDelay::default();
        let mut clean = UpstreamDelay::default();
        for i in 1..=5u64 {
            let now = t0 + Duration::from_secs(i);
            // 100 packets a second, 5 of them missing.
            lossy.on_report(now, 5 * i, 95 * i, Some(ms(110)));
            clean.on_report(now, 0, 100 * i, Some(ms(110)));
            if i < u64::from(MIN_REPORTS) {
                assert_eq!(lossy.current(), Duration::ZERO, "report {i}");
            }
        }
        // Three repair round trips and a margin: 3 x 110 + 40.
        assert_eq!(lossy.current(), ms(370));
        assert!(lossy.announce(t0 + ms(5_000)).is_some());
        assert_eq!(clean.current(), Duration::ZERO);
        assert_eq!(clean.announce(t0 + ms(5_000)), None);
    }

    #[test]
    fn quiet_intervals_add_up_to_a_sample() {
        let t0 = Instant::now();
        let mut u = UpstreamDelay::default();
        for i in 1..=10u64 {
            // 5 packets a second, one of them missing: a sample every 4 reports, so
            // two samples in 10 s, fewer than trusted.
            u.on_report(t0 + Duration::from_secs(i), i, 4 * i, None);
        }
        assert_eq!(u.reports, 2);
        assert_eq!(u.current(), Duration::ZERO);
    }
}
