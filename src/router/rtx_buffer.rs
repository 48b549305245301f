//! Retransmission storage: the producer-side packet history that answers consumers'
//! NACKs (RFC 4585 6.2.1), and the per-consumer limiter that keeps repeated NACKs
//! for the same packet from turning into repeated retransmissions.
//!
//! One [`RetransmissionBuffer`] per producer stream holds the producer's plaintext
//! packets in the producer's numbering, shared by all its consumers: a consumer's
//! NACK is translated back with `rtp::munger::SeqTsMunger::original_seq`, and the
//! copy into the consumer's send buffer (which per-consumer rewriting and SRTP need
//! anyway) is the only one. One [`RetransmitLimiter`] per consumer.
//!
//! # Policy
//!
//! * Slots are indexed by `seq % slots` with a power-of-two slot count dividing
//!   2^16, so consecutive sequence numbers use consecutive slots straight across the
//!   16-bit wrap, and a lookup is one index plus an equality check, no search.
//! * A packet is retrievable while its slot still holds it and it is younger than
//!   `max_age` ([`DEFAULT_MAX_AGE`], 1 s: older retransmissions arrive after a
//!   real-time receiver's jitter buffer has moved on, and after the NACK generator
//!   on the other side has given up). [`DEFAULT_SLOTS`] (512) covers about a second
//!   of video at 4-5 Mbit/s; at higher rates overwriting evicts sooner than age.
//! * An insert never evicts a newer packet that is still fresh (a late or
//!   retransmitted old packet is not worth more than the one in its slot).
//! * Packets larger than [`MAX_PACKET_LEN`] are not stored (they would not fit a
//!   datagram after SRTP anyway).
//! * The limiter resends one packet to one consumer at most once per interval,
//!   about the consumer's RTT (see [`retransmit_interval`]): sooner, the previous
//!   retransmission cannot have arrived, so the NACK is a duplicate.
//!
//! Storage is allocated once, zeroed (so the pages are committed only as slots are
//! first used); inserting and looking up never allocate.

use std::time::{Duration, Instant};

/// Largest packet stored: an Ethernet MTU, which no RTP packet from a browser exceeds.
pub const MAX_PACKET_LEN: usize = 1500;
/// Default slot count of a video stream's buffer.
pub const DEFAULT_SLOTS: usize = 512;
/// Default age after which a stored packet is not retransmitted.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(1);
/// Floor of the limiter's interval: two NACKs for one packet closer together than
/// this are duplicates whatever the RTT estimate says.
pub const MIN_RETRANSMIT_INTERVAL: Duration = Duration::from_millis(20);
/// Interval used while the consumer's RTT is unknown.
pub const DEFAULT_RETRANSMIT_INTERVAL: Duration = Duration::from_millis(100);
/// Ceiling of the limiter's interval, so that an inflated RTT estimate cannot block
/// every repeat within the buffer's age.
pub const MAX_RETRANSMIT_INTERVAL: Duration = Duration::from_millis(500);
/// Slots of a [`RetransmitLimiter`]: sequence numbers this far apart share a slot.
/// One NACK names at most 17 packets and a real-time receiver asks again within an
/// RTT, so 128 recent numbers cover the repeats worth suppressing; a number that
/// shares a slot with a newer one is at worst resent once more.
const LIMITER_SLOTS: usize = 128;

#[derive(Debug, Clone, Copy)]
struct Meta {
    seq: u16,
    len: u16,
    /// Arrival time; `None` for an empty slot.
    at: Option<Instant>,
}

impl Meta {
    const EMPTY: Self = Self {
        seq: 0,
        len: 0,
        at: None,
    };
}

/// A fixed ring of the most recent packets of one stream, keyed by sequence number.
pub struct RetransmissionBuffer {
    /// `slots * MAX_PACKET_LEN` bytes; slot i is `data[i * MAX_PACKET_LEN..][..len]`.
    data: Box<[u8]>,
    meta: Box<[Meta]>,
    mask: u16,
    max_age: Duration,
}

impl std::fmt::Debug for RetransmissionBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the packet bytes.
        f.debug_struct("RetransmissionBuffer")
            .field("slots", &self.meta.len())
            .field(
                "stored",
                &self.meta.iter().filter(|m| m.at.is_some()).count(),
            )
            .field("max_age", &self.max_age)
            .finish()
    }
}

impl Default for RetransmissionBuffer {
    fn default() -> Self {
        Self::new(DEFAULT_SLOTS, DEFAULT_MAX_AGE)
    }
}

impl RetransmissionBuffer {
    /// A buffer of `slots` packets (rounded up to a power of two, within 16..=32768)
    /// kept for at most `max_age`.
    pub fn new(slots: usize, max_age: Duration) -> Self {
        let slots = slots.clamp(16, 1 << 15).next_power_of_two();
        Self {
            data: vec![0; slots * MAX_PACKET_LEN].into_boxed_slice(),
            meta: vec![Meta::EMPTY; slots].into_boxed_slice(),
            // slots <= 2^15, so slots - 1 fits.
            mask: (slots - 1) as u16,
            max_age,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.meta.len()
    }

    /// Stores `packet` (plaintext RTP, producer numbering) as sequence number `seq`,
    /// received at `now`. Returns whether it is stored: not when it is empty or
    /// larger than [`MAX_PACKET_LEN`], or when its slot holds a newer packet that is
    /// still fresh. A fresh copy of the same sequence number is kept as it is.
    pub fn insert(&mut self, now: Instant, seq: u16, packet: &[u8]) -> bool {
        let Ok(len) = u16::try_from(packet.len()) else {
            return false;
        };
        if packet.is_empty() || packet.len() > MAX_PACKET_LEN {
            return false;
        }
        let i = usize::from(seq & self.mask);
        let Some(meta) = self.meta.get_mut(i) else {
            return false;
        };
        if let Some(at) = meta.at {
            let fresh = now.saturating_duration_since(at) <= self.max_age;
            // RFC 3550 A.1 serial order: is the occupant ahead of `seq`?
            let occupant_newer = meta.seq.wrapping_sub(seq) as i16 > 0;
            if fresh && meta.seq == seq {
                return true;
            }
            if fresh && occupant_newer {
                return false;
            }
        }
        let start = i * MAX_PACKET_LEN;
        let Some(slot) = self.data.get_mut(start..start + packet.len()) else {
            return false;
        };
        slot.copy_from_slice(packet);
        *meta = Meta {
            seq,
            len,
            at: Some(now),
        };
        true
    }

    /// The stored packet with sequence number `seq`, if its slot still holds it and
    /// it arrived no more than `max_age` before `now`.
    pub fn get(&self, now: Instant, seq: u16) -> Option<&[u8]> {
        let i = usize::from(seq & self.mask);
        let meta = self.meta.get(i)?;
        let at = meta.at?;
        if meta.seq != seq || now.saturating_duration_since(at) > self.max_age {
            return None;
        }
        let start = i * MAX_PACKET_LEN;
        self.data.get(start..start + usize::from(meta.len))
    }

    /// Forgets every packet (e.g. when the producer's sequence numbers restart).
    pub fn clear(&mut self) {
        self.meta.fill(Meta::EMPTY);
    }
}

/// The limiter's interval for a consumer's RTT: the RTT (or
/// [`DEFAULT_RETRANSMIT_INTERVAL`] while unknown), clamped to
/// [`MIN_RETRANSMIT_INTERVAL`]..=[`MAX_RETRANSMIT_INTERVAL`].
pub fn retransmit_interval(rtt: Option<Duration>) -> Duration {
    rtt.unwrap_or(DEFAULT_RETRANSMIT_INTERVAL)
        .clamp(MIN_RETRANSMIT_INTERVAL, MAX_RETRANSMIT_INTERVAL)
}

/// Per consumer: when each recently requested packet was last retransmitted.
///
/// The table is allocated on the first retransmission, so a consumer that never
/// negotiated NACK, or whose subscriber never loses a packet, holds none (most
/// consumers: it was 12 KB each when allocated up front).
pub struct RetransmitLimiter {
    /// (sequence number, last retransmission) per `seq % LIMITER_SLOTS`; empty until
    /// the first [`Self::allow`].
    slots: Box<[(u16, Option<Instant>)]>,
}

impl std::fmt::Debug for RetransmitLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetransmitLimiter").finish_non_exhaustive()
    }
}

impl Default for RetransmitLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl RetransmitLimiter {
    /// A limiter that has allowed nothing yet.
    pub fn new() -> Self {
        Self {
            slots: Box::default(),
        }
    }

    /// Whether packet `seq` (in the consumer's numbering) may be retransmitted at
    /// `now`, recording it if so: not if it was retransmitted less than
    /// `min_interval` (at least [`MIN_RETRANSMIT_INTERVAL`]) ago.
    pub fn allow(&mut self, now: Instant, seq: u16, min_interval: Duration) -> bool {
        let interval = min_interval.max(MIN_RETRANSMIT_INTERVAL);
        if self.slots.is_empty() {
            self.slots = vec![(0, None); LIMITER_SLOTS].into_boxed_slice();
        }
        let i = usize::from(seq) % LIMITER_SLOTS;
        let Some(slot) = self.slots.get_mut(i) else {
            return false;
        };
        if let (s, Some(at)) = *slot {
            if s == seq && now.saturating_duration_since(at) < interval {
                return false;
            }
        }
        *slot = (seq, Some(now));
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::{Rng, SeedableRng};

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn packet(seq: u16, len: usize) -> Vec<u8> {
        let mut p = vec![seq as u8; len];
        p[0] = 0x80;
        if len > 3 {
            p[2..4].copy_from_slice(&seq.to_be_bytes());
        }
        p
    }

    #[test]
    fn stores_and_returns_across_the_wrap() {
        let t0 = Instant::now();
        let mut b = RetransmissionBuffer::new(64, DEFAULT_MAX_AGE);
        assert_eq!(b.capacity(), 64);
        for i in 0..40u16 {
            let seq = 65_520u16.wrapping_add(i);
            assert!(b.insert(t0, seq, &packet(seq, 100 + usize::from(i))));
        }
        for i in 0..40u16 {
            let seq = 65_520u16.wrapping_add(i);
            assert_eq!(b.get(t0, seq), Some(&packet(seq, 100 + usize::from(i))[..]));
        }
        assert_eq!(b.get(t0, 65_519), None);
        assert_eq!(b.get(t0, 24), None);
        assert_eq!(b.get(t0, 30_000), None);
    }

    #[test]
    fn eviction_by_overwrite() {
        let t0 = Instant::now();
        let mut b = RetransmissionBuffer::new(16, DEFAULT_MAX_AGE);
        for seq in 65_530u16..=65_535 {
            b.insert(t0, seq, &packet(seq, 50));
        }
        for seq in 0..=20u16 {
            b.insert(t0, seq, &packet(seq, 50));
        }
        // 16 slots: 5..=20 remain; 65_530.. and 0..=4 were overwritten.
        for seq in 65_530u16..=65_535 {
            assert_eq!(b.get(t0, seq), None, "{seq}");
        }
        for seq in 0..=4u16 {
            assert_eq!(b.get(t0, seq), None, "{seq}");
        }
        for seq in 5..=20u16 {
            assert_eq!(b.get(t0, seq), Some(&packet(seq, 50)[..]));
        }
    }

    #[test]
    fn eviction_by_age() {
        let t0 = Instant::now();
        let mut b = RetransmissionBuffer::default();
        b.insert(t0, 1, &packet(1, 10));
        b.insert(t0 + ms(500), 2, &packet(2, 10));
        assert!(b.get(t0 + ms(1000), 1).is_some());
        assert!(b.get(t0 + ms(1001), 1).is_none());
        assert!(b.get(t0 + ms(1001), 2).is_some());
        assert!(b.get(t0 + ms(1501), 2).is_none());
        // A stale slot is reused by anything, even an "older" number.
        assert!(b.insert(t0 + ms(1501), 2u16.wrapping_sub(512), &packet(7, 10)));
        assert_eq!(b.get(t0 + ms(1501), 2), None);
    }

    #[test]
    fn late_packet_does_not_evict_a_newer_fresh_one() {
        let t0 = Instant::now();
        let mut b = RetransmissionBuffer::new(16, DEFAULT_MAX_AGE);
        b.insert(t0, 100, &packet(100, 20));
        // 84 shares the slot and is older: not stored.
        assert!(!b.insert(t0, 84, &packet(84, 20)));
        assert_eq!(b.get(t0, 100), Some(&packet(100, 20)[..]));
        // Same across the wrap: 65_535 - 15 = 65_520 vs 0.
        b.insert(t0, 0, &packet(0, 20));
        assert!(!b.insert(t0, 65_520, &packet(1, 20)));
        assert!(b.get(t0, 0).is_some());
        // A duplicate keeps the first copy.
        assert!(b.insert(t0, 100, &packet(5, 20)));
        assert_eq!(b.get(t0, 100), Some(&packet(100, 20)[..]));
        // A newer one overwrites.
        assert!(b.insert(t0, 116, &packet(116, 20)));
        assert_eq!(b.get(t0, 100), None);
    }

    #[test]
    fn oversize_and_empty_packets_are_not_stored() {
        let t0 = Instant::now();
        let mut b = RetransmissionBuffer::new(16, DEFAULT_MAX_AGE);
        assert!(b.insert(t0, 3, &packet(3, MAX_PACKET_LEN)));
        assert_eq!(b.get(t0, 3).map(<[u8]>::len), Some(MAX_PACKET_LEN));
        assert!(!b.insert(t0, 4, &packet(4, MAX_PACKET_LEN + 1)));
        assert!(!b.insert(t0, 5, &vec![0; 70_000]));
        assert!(!b.insert(t0, 6, &[]));
        assert_eq!(b.get(t0, 4), None);
        assert_eq!(b.get(t0, 6), None);
        // The neighbour is untouched.
        assert_eq!(b.get(t0, 3), Some(&packet(3, MAX_PACKET_LEN)[..]));
        b.clear();
        assert_eq!(b.get(t0, 3), None);
    }

    #[test]
    fn slot_count_is_a_power_of_two_within_bounds() {
        assert_eq!(RetransmissionBuffer::new(0, DEFAULT_MAX_AGE).capacity(), 16);
        assert_eq!(
            RetransmissionBuffer::new(500, DEFAULT_MAX_AGE).capacity(),
            512
        );
        assert_eq!(
            RetransmissionBuffer::new(1 << 20, DEFAULT_MAX_AGE).capacity(),
            1 << 15
        );
    }

    fn digest(p: &[u8]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        p.hash(&mut h);
        h.finish()
    }

    /// Against a model remembering every accepted insert: whatever the buffer returns
    /// was inserted under that very number no more than max_age ago, and an accepted
    /// insert is immediately retrievable. Random numbers, reordering and the wrap.
    #[test]
    fn random_stream_matches_model() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(4588);
        let t0 = Instant::now();
        let max_age = ms(300);
        let mut b = RetransmissionBuffer::new(128, max_age);
        let mut model: HashMap<u16, Vec<(u64, Instant)>> = HashMap::new();
        let mut now = t0;
        let mut seq: u16 = 65_000;
        let mut hits = 0;
        let mut p = vec![0u8; 1600];
        for _ in 0..40_000 {
            now += Duration::from_micros(rng.gen_range(0..5000));
            let s = match rng.gen_range(0..20) {
                0 => seq.wrapping_sub(rng.gen_range(0..300)),
                1 => rng.gen(),
                _ => {
                    seq = seq.wrapping_add(1);
                    seq
                }
            };
            let len = rng.gen_range(0..1600);
            // Distinct contents: a counter in front of random bytes.
            p[..8].copy_from_slice(&now.duration_since(t0).as_nanos().to_le_bytes()[..8]);
            rng.fill(&mut p[8..16]);
            let p = &p[..len];
            if b.insert(now, s, p) {
                assert!(b.get(now, s).is_some());
                let e = model.entry(s).or_default();
                e.retain(|(_, at)| now.saturating_duration_since(*at) <= max_age);
                e.push((digest(p), now));
            }
            let q = seq.wrapping_sub(rng.gen_range(0..200));
            if let Some(got) = b.get(now, q) {
                hits += 1;
                let d = digest(got);
                let ok = model.get(&q).is_some_and(|v| {
                    v.iter()
                        .any(|(h, at)| *h == d && now.saturating_duration_since(*at) <= max_age)
                });
                assert!(
                    ok,
                    "returned {q} that was not stored recently under that number"
                );
            }
        }
        assert!(hits > 4_000, "{hits}");
    }

    #[test]
    fn limiter_allows_once_per_interval() {
        let t0 = Instant::now();
        let mut l = RetransmitLimiter::new();
        let rtt = retransmit_interval(Some(ms(60)));
        assert!(l.allow(t0, 65_535, rtt));
        assert!(!l.allow(t0, 65_535, rtt));
        assert!(!l.allow(t0 + ms(59), 65_535, rtt));
        assert!(l.allow(t0 + ms(60), 65_535, rtt));
        // Another packet is independent, across the wrap too.
        assert!(l.allow(t0, 0, rtt));
        // A number sharing the slot replaces the old record.
        assert!(l.allow(t0 + ms(61), 65_535 - LIMITER_SLOTS as u16, rtt));
        assert!(l.allow(t0 + ms(62), 65_535, rtt));
        // The floor applies whatever the caller passes.
        assert!(l.allow(t0, 7, Duration::ZERO));
        assert!(!l.allow(t0 + ms(19), 7, Duration::ZERO));
        assert!(l.allow(t0 + ms(20), 7, Duration::ZERO));
    }

    /// Protects the memory per subscriber: a consumer that never retransmits holds
    /// no limiter table, and the table is small once it does.
    #[test]
    fn limiter_allocates_on_first_retransmission_only() {
        let mut l = RetransmitLimiter::new();
        assert!(l.slots.is_empty());
        assert!(l.allow(Instant::now(), 1, ms(100)));
        let bytes = std::mem::size_of_val(&*l.slots);
        assert!(bytes > 0 && bytes <= 4096, "{bytes}");
    }

    #[test]
    fn retransmit_interval_is_clamped() {
        assert_eq!(retransmit_interval(None), ms(100));
        assert_eq!(retransmit_interval(Some(ms(2))), ms(20));
        assert_eq!(retransmit_interval(Some(ms(150))), ms(150));
        assert_eq!(retransmit_interval(Some(Duration::from_secs(5))), ms(500));
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let t0 = Instant::now();
        let mut b = RetransmissionBuffer::new(16, ms(50));
        let mut l = RetransmitLimiter::default();
        let buf = vec![0xAAu8; 2000];
        for _ in 0..100_000 {
            let now = t0 + Duration::from_micros(rng.gen_range(0..1_000_000));
            let seq = rng.gen();
            b.insert(now, seq, &buf[..rng.gen_range(0..buf.len())]);
            if let Some(p) = b.get(now, rng.gen()) {
                assert!(!p.is_empty() && p.len() <= MAX_PACKET_LEN);
            }
            l.allow(
                now,
                rng.gen(),
                Duration::from_micros(rng.gen_range(0..1_000_000)),
            );
        }
    }
}
