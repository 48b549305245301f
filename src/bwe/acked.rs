//! Acknowledged (delivered) bitrate: bytes the receiver reported received, over a
//! sliding window of *receive* time. GCC uses it as R_hat (draft-ietf-rmcat-gcc-02
//! 5.5) to set the rate after overuse and to cap increases while application-limited.
//! libwebrtc smooths this with a Bayesian filter; a fixed window of time buckets is
//! enough here and costs O(1) per packet with no allocation.

/// Bucket width and count: a 500 ms window in 50 ms steps.
const BUCKET_US: i64 = 50_000;
const BUCKETS: usize = 10;
/// No rate until the reported packets span this much receive time.
const MIN_SPAN_US: i64 = 150_000;

#[derive(Debug, Clone)]
pub(super) struct AckedRate {
    /// (bucket index = arrival / BUCKET_US, bytes), slot = index mod BUCKETS.
    buckets: [(i64, u64); BUCKETS],
    first_us: Option<i64>,
    latest_us: Option<i64>,
}

impl AckedRate {
    pub(super) fn new() -> Self {
        Self {
            buckets: [(i64::MIN, 0); BUCKETS],
            first_us: None,
            latest_us: None,
        }
    }

    /// A packet of `size` bytes received at `arrival_us` (receiver's clock).
    pub(super) fn add(&mut self, arrival_us: i64, size: u64) {
        let latest = *self.latest_us.get_or_insert(arrival_us);
        self.first_us.get_or_insert(arrival_us);
        let id = arrival_us.div_euclid(BUCKET_US);
        if id <= latest.div_euclid(BUCKET_US) - BUCKETS as i64 {
            return;
        }
        let slot = id.rem_euclid(BUCKETS as i64) as usize;
        if let Some(b) = self.buckets.get_mut(slot) {
            if b.0 != id {
                *b = (id, 0);
            }
            b.1 = b.1.saturating_add(size);
        }
        self.latest_us = Some(latest.max(arrival_us));
    }

    /// Delivered rate in bits/s over the window ending at the latest arrival.
    pub(super) fn rate_bps(&self) -> Option<f64> {
        let latest = self.latest_us?;
        let latest_id = latest.div_euclid(BUCKET_US);
        let oldest_id = latest_id - BUCKETS as i64 + 1;
        let start = (oldest_id * BUCKET_US).max(self.first_us?);
        let span = latest - start;
        if span < MIN_SPAN_US {
            return None;
        }
        let bytes: u64 = self
            .buckets
            .iter()
            .filter(|b| (oldest_id..=latest_id).contains(&b.0))
            .map(|b| b.1)
            .sum();
        Some(bytes as f64 * 8.0 * 1e6 / span as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_over_the_window() {
        let mut a = AckedRate::new();
        // 1000 bytes every 4 ms = 2 Mbps.
        for i in 0..100 {
            a.add(1_000_000 + i * 4_000, 1000);
            if i * 4_000 < MIN_SPAN_US {
                assert_eq!(a.rate_bps(), None);
            }
        }
        let r = a.rate_bps().unwrap();
        assert!((r - 2e6).abs() < 0.03 * 2e6, "{r}");
        for i in 100..1000 {
            a.add(1_000_000 + i * 4_000, 1000);
        }
        let r = a.rate_bps().unwrap();
        assert!((r - 2e6).abs() < 0.03 * 2e6, "{r}");
        // Half the rate from now on: the window forgets the old rate.
        for i in 0..200 {
            a.add(5_000_000 + i * 8_000, 1000);
        }
        let r = a.rate_bps().unwrap();
        assert!((r - 1e6).abs() < 0.03 * 1e6, "{r}");
        // Too old to count; a gap empties the window.
        a.add(0, 1_000_000);
        let before = a.rate_bps();
        assert_eq!(a.rate_bps(), before);
        a.add(60_000_000, 1000);
        assert!(a.rate_bps().unwrap() < 100_000.0);
    }
}
