//! The cap on retransmissions toward a subscriber: a token bucket per transport,
//! filled at [`RTX_SHARE`] of the send-side estimate, holding at most [`BURST`] of it.
//! A NACK answered beyond it is not resent (and counted): on a path that is already
//! losing packets to congestion, unbounded retransmissions only add to the queue that
//! lost them (measured: 6.85 Mbit/s of retransmissions into a 400 kbit/s link).
//! Without an estimate (the subscriber did not negotiate transport-cc) there is nothing
//! to cap against and retransmissions are limited only per packet, by RTT.

use std::time::{Duration, Instant};

use super::bucket::TokenBucket;

/// Share of the estimate retransmissions may take. Half: the pacer (`pacer.rs`) keeps
/// the total within the path, so repairs here only delay media, while a repair refused
/// leaves the subscriber asking again every round trip for seconds, then for a
/// keyframe (measured behind a 400 kbit/s link: with a quarter, and 250 ms of burst, a
/// loss burst took 4 s to recover from).
pub const RTX_SHARE: f64 = 0.5;
/// The bucket holds this much time's worth of the allowed rate (one loss burst)...
pub const BURST: Duration = Duration::from_secs(1);
/// ...and never less than this many bytes (a few full-size packets).
pub const MIN_BURST_BYTES: f64 = 4_500.0;

/// A transport's retransmission allowance.
#[derive(Debug, Clone, Default)]
pub struct RetransmitBudget {
    bucket: TokenBucket,
    denied: u64,
}

impl RetransmitBudget {
    /// Whether a retransmission of `size` bytes fits at `now`, with the transport's
    /// estimate `estimate_bps`; takes its bytes if so, counts it if not.
    pub fn allow(&mut self, now: Instant, estimate_bps: u64, size: usize) -> bool {
        let rate = estimate_bps as f64 * RTX_SHARE / 8.0;
        self.bucket.refill(now, rate, BURST, MIN_BURST_BYTES);
        if self.bucket.tokens() >= size as f64 {
            self.bucket.take(size as f64);
            true
        } else {
            self.denied += 1;
            false
        }
    }

    /// Retransmissions not sent for lack of budget.
    pub fn denied(&self) -> u64 {
        self.denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_are_held_to_a_share_of_the_estimate() {
        let t0 = Instant::now();
        let mut b = RetransmitBudget::default();
        // 400 kbps: 200 kbps of retransmissions, 25 KB/s. A NACK storm asking for
        // 1,200-byte packets every millisecond for 10 s gets ~21 a second, and the
        // bucket's first second: 27.5 KB/s over the 10 s.
        let mut sent = 0u64;
        for ms in 0..10_000u64 {
            if b.allow(t0 + Duration::from_millis(ms), 400_000, 1200) {
                sent += 1;
            }
        }
        let bytes_per_s = sent as f64 * 1200.0 / 10.0;
        assert!((26_000.0..28_500.0).contains(&bytes_per_s), "{bytes_per_s}");
        assert_eq!(b.denied(), 10_000 - sent);
    }

    #[test]
    fn a_burst_after_quiet_is_bounded() {
        let t0 = Instant::now();
        let mut b = RetransmitBudget::default();
        let _ = b.allow(t0, 4_000_000, 0);
        // After a minute of quiet, 4 Mbps allows a 1 s burst at 2 Mbps: 250 KB.
        let later = t0 + Duration::from_secs(60);
        let burst = (0..1000)
            .take_while(|_| b.allow(later, 4_000_000, 1000))
            .count();
        assert_eq!(burst, 250);
    }
}
