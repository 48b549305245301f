//! The loss a subscriber reports about an audio consumer, kept for its publisher: the
//! receiver report the worker sends an audio producer's publisher says the worst of its
//! own uplink loss and this (`WorkerCore::send_reports`), so that the publisher's Opus
//! encoder turns on in-band FEC (libwebrtc sets the encoder's expected packet loss from
//! the fraction lost of the RR blocks about its stream), as mediasoup does with its
//! consumers' "worst remote fraction lost".

use std::time::{Duration, Instant};

/// The most loss passed on (20 %, in RFC 3550's 1/256 units). Opus's in-band FEC is on
/// well below it; beyond it the publisher's encoder would only spend more of every
/// subscriber's audio bitrate on redundancy for one subscriber whose path stays as
/// lossy. Only the fraction lost is raised, never the cumulative count or the extended
/// sequence number, from which libwebrtc's loss-based bandwidth estimate counts lost
/// packets: the publisher's send rate is not cut for a subscriber's loss.
pub const MAX_PASSED_ON: u8 = 51;

/// How long a report counts in full: two of libwebrtc's 5 s audio RTCP intervals, so
/// one lost receiver report changes nothing.
const HOLD: Duration = Duration::from_secs(10);

/// After [`HOLD`], the value halves every this long: a subscriber that stopped
/// reporting (left, paused, its path gone) stops raising the publisher's FEC.
const HALF_LIFE: Duration = Duration::from_secs(5);

/// A subscriber's smoothed fraction lost and when it last reported.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoteLoss {
    /// Exponentially smoothed fraction lost (weight 1/2 per report), 1/256 units.
    smoothed: u8,
    at: Option<Instant>,
}

impl RemoteLoss {
    /// Takes a report block's fraction lost (RFC 3550 6.4.1, 1/256 units).
    pub fn on_report(&mut self, now: Instant, fraction_lost: u8) {
        self.smoothed = match self.at {
            None => fraction_lost,
            Some(_) => ((u16::from(self.smoothed) + u16::from(fraction_lost)) / 2) as u8,
        };
        self.at = Some(now);
    }

    /// The loss to pass on to the publisher now: the smoothed value, capped at
    /// [`MAX_PASSED_ON`], decaying once reports stop.
    pub fn passed_on(&self, now: Instant) -> u8 {
        let Some(at) = self.at else {
            return 0;
        };
        let age = now.saturating_duration_since(at);
        let halvings = age.saturating_sub(HOLD).as_secs() / HALF_LIFE.as_secs();
        let value = self.smoothed.min(MAX_PASSED_ON);
        value.checked_shr(halvings.min(8) as u32).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothed_capped_and_decaying() {
        let t0 = Instant::now();
        let mut l = RemoteLoss::default();
        assert_eq!(l.passed_on(t0), 0, "nothing reported, nothing passed on");
        l.on_report(t0, 26);
        assert_eq!(l.passed_on(t0), 26);
        l.on_report(t0 + Duration::from_secs(5), 0);
        assert_eq!(l.passed_on(t0 + Duration::from_secs(5)), 13, "smoothed");
        // A subscriber losing 90 %: at most 20 % reaches the publisher.
        l.on_report(t0, 230);
        l.on_report(t0, 230);
        assert_eq!(l.passed_on(t0), MAX_PASSED_ON);
        // Reports stop: held for 10 s, then halved every 5 s, down to nothing.
        assert_eq!(l.passed_on(t0 + Duration::from_secs(10)), MAX_PASSED_ON);
        assert_eq!(l.passed_on(t0 + Duration::from_secs(15)), MAX_PASSED_ON / 2);
        assert_eq!(l.passed_on(t0 + Duration::from_secs(20)), MAX_PASSED_ON / 4);
        assert_eq!(l.passed_on(t0 + Duration::from_secs(60)), 0);
        assert_eq!(l.passed_on(t0 + Duration::from_secs(100_000)), 0);
    }
}
