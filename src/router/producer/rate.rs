//! A receive-rate meter over the last second, in ten buckets of 100 ms: counting a
//! packet is an add into the current bucket, reading sums ten numbers, and nothing
//! allocates. Buckets carry their own period number, so a stale bucket (a pause in the
//! stream) reads as empty without anything having to clear it.

use std::time::{Duration, Instant};

const BUCKETS: usize = 10;
const BUCKET: Duration = Duration::from_millis(100);
const BUCKET_MS: u64 = 100;

/// Bytes received per 100 ms over the last second.
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    /// The first packet's time: bucket periods count from it.
    origin: Option<Instant>,
    bytes: [u64; BUCKETS],
    /// The period (100 ms since `origin`) each bucket counts.
    period: [u64; BUCKETS],
}

impl RateMeter {
    fn period_of(origin: Instant, now: Instant) -> u64 {
        (now.saturating_duration_since(origin).as_millis() / BUCKET.as_millis()) as u64
    }

    /// Counts `len` bytes received at `now`.
    pub fn add(&mut self, now: Instant, len: usize) {
        let origin = *self.origin.get_or_insert(now);
        let period = Self::period_of(origin, now);
        let slot = (period % BUCKETS as u64) as usize;
        if let (Some(b), Some(p)) = (self.bytes.get_mut(slot), self.period.get_mut(slot)) {
            if *p != period {
                *p = period;
                *b = 0;
            }
            *b += len as u64;
        }
    }

    /// Bits per second over the last second (see [`Self::per_second`]).
    pub fn bitrate(&self, now: Instant) -> u32 {
        self.per_second(now).saturating_mul(8)
    }

    /// What was counted per second over the last second (bytes, or frames for a frame
    /// counter): the nine whole buckets before the current one and the current one so far.
    pub fn per_second(&self, now: Instant) -> u32 {
        let Some(origin) = self.origin else {
            return 0;
        };
        let period = Self::period_of(origin, now);
        let oldest = period.saturating_sub(BUCKETS as u64 - 1);
        let bytes: u64 = self
            .bytes
            .iter()
            .zip(&self.period)
            .filter(|(_, p)| (oldest..=period).contains(*p))
            .map(|(b, _)| *b)
            .sum();
        let into_current = now.saturating_duration_since(origin).as_millis() as u64 % BUCKET_MS;
        // Before a whole second has passed, the window is as long as the meter's life.
        let window_ms = (period.min(BUCKETS as u64 - 1) * BUCKET_MS + into_current).max(1);
        (bytes.saturating_mul(1_000) / window_ms).min(u64::from(u32::MAX)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_reads_its_rate_and_a_stopped_one_decays_to_zero() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        assert_eq!(m.bitrate(t0), 0);
        // 1,000 bytes every 10 ms: 800 kbit/s.
        for i in 0..300 {
            m.add(t0 + Duration::from_millis(i * 10), 1000);
        }
        let now = t0 + Duration::from_millis(2995);
        let bps = m.bitrate(now);
        assert!((760_000..=840_000).contains(&bps), "{bps}");
        assert_eq!(m.bitrate(now + Duration::from_millis(1200)), 0);
    }

    #[test]
    fn counts_per_second_for_frames_too() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        // 20 frames a second for 2 s, then 5 a second.
        for i in 0..40 {
            m.add(t0 + Duration::from_millis(i * 50), 1);
        }
        assert_eq!(m.per_second(t0 + Duration::from_millis(1999)), 20);
        for i in 0..10 {
            m.add(t0 + Duration::from_millis(2000 + i * 200), 1);
        }
        assert_eq!(m.per_second(t0 + Duration::from_millis(3999)), 5);
    }

    #[test]
    fn a_young_stream_is_measured_over_its_life() {
        let t0 = Instant::now();
        let mut m = RateMeter::default();
        for i in 0..30 {
            m.add(t0 + Duration::from_millis(i * 10), 1000);
        }
        let bps = m.bitrate(t0 + Duration::from_millis(300));
        assert!((700_000..=900_000).contains(&bps), "{bps}");
    }
}
