//! A token bucket of bytes with the time passed in: the retransmission budget
//! (`budget.rs`) and the pacer (`pacer.rs`) both meter bytes against a rate this way.

use std::time::{Duration, Instant};

/// Bytes earned at a rate, held up to a burst; may go negative (owed) when the owner
/// lets a packet through on credit.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct TokenBucket {
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// Adds what `rate` (bytes/s) earned since the last refill (the first refill earns
    /// `burst`'s worth), holding at most `burst` of the rate and never less than
    /// `min_bytes`.
    pub(super) fn refill(&mut self, now: Instant, rate: f64, burst: Duration, min_bytes: f64) {
        let cap = (rate * burst.as_secs_f64()).max(min_bytes);
        let elapsed = self
            .last
            .map_or(burst, |t| now.saturating_duration_since(t))
            .as_secs_f64();
        self.last = Some(now);
        self.tokens = (self.tokens + rate * elapsed).min(cap);
    }

    /// Bytes available now (negative: owed).
    pub(super) fn tokens(&self) -> f64 {
        self.tokens
    }

    /// When the bucket was last refilled.
    pub(super) fn last(&self) -> Option<Instant> {
        self.last
    }

    /// Takes `bytes` (into debt if there are fewer).
    pub(super) fn take(&mut self, bytes: f64) {
        self.tokens -= bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earns_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut b = TokenBucket::default();
        b.refill(t0, 1000.0, Duration::from_millis(100), 50.0);
        assert_eq!(b.tokens(), 100.0, "the first refill earns a burst");
        b.take(250.0);
        assert_eq!(b.tokens(), -150.0, "owed");
        b.refill(
            t0 + Duration::from_millis(100),
            1000.0,
            Duration::from_millis(100),
            50.0,
        );
        assert!((b.tokens() + 50.0).abs() < 1e-9, "{}", b.tokens());
        b.refill(
            t0 + Duration::from_secs(10),
            1000.0,
            Duration::from_millis(100),
            50.0,
        );
        assert_eq!(b.tokens(), 100.0, "held to the burst");
        b.refill(
            t0 + Duration::from_secs(20),
            100.0,
            Duration::from_millis(100),
            50.0,
        );
        assert_eq!(b.tokens(), 50.0, "and never less than the floor");
        assert_eq!(b.last(), Some(t0 + Duration::from_secs(20)));
    }
}
