//! SSRCs for a transport's consumers that are never used twice.
//!
//! A closed consumer's SRTP state is freed (so churn never reaches the context's SSRC
//! cap), and an outbound SSRC whose state was freed must never be sent again under the
//! same keys: its packet index would restart and reuse AES keystream (RFC 3711 9.1,
//! RFC 7714 8.1). Drawing SSRCs at random and only checking the live ones would, after
//! some ten thousand consumers on one transport, reuse one with odds approaching one
//! (birthday bound over 2^32). Instead each transport walks a counter through a
//! randomly keyed bijection of the 32-bit space: the SSRCs look random (RFC 3550 8.1
//! wants that for collision avoidance between sources) and none repeats before 2^32
//! draws.

use rand::Rng;

/// Hands out the consumer (and consumer RTX) SSRCs of one transport.
#[derive(Debug, Clone)]
pub struct SsrcAllocator {
    key: (u32, u32),
    /// Draws made so far: the next input of the bijection.
    drawn: u64,
}

impl SsrcAllocator {
    /// An allocator keyed from `rng`.
    pub fn new<R: Rng + ?Sized>(rng: &mut R) -> Self {
        Self::with_key(rng.gen(), rng.gen())
    }

    /// An allocator with a fixed key (tests).
    pub fn with_key(a: u32, b: u32) -> Self {
        Self {
            key: (a, b),
            drawn: 0,
        }
    }

    /// The next SSRC that is not 0 and for which `taken` is false (the transport's
    /// producer SSRCs, chosen by the peer); None once the 2^32 values are used up.
    pub fn next(&mut self, taken: impl Fn(u32) -> bool) -> Option<u32> {
        while self.drawn <= u64::from(u32::MAX) {
            let ssrc = permute(self.drawn as u32, self.key);
            self.drawn += 1;
            if ssrc != 0 && !taken(ssrc) {
                return Some(ssrc);
            }
        }
        None
    }
}

/// A bijection of u32 keyed by `(a, b)`: adding and xoring constants and murmur3's
/// finaliser (xor-shifts and odd multipliers, each invertible mod 2^32) all permute.
fn permute(x: u32, (a, b): (u32, u32)) -> u32 {
    let mut h = x.wrapping_add(a);
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h ^ b
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn never_repeats_and_skips_zero_and_taken() {
        let mut a = SsrcAllocator::with_key(0x1234_5678, 0x9abc_def0);
        let taken: HashSet<u32> = (0..200).map(|i| permute(i * 3, a.key)).collect();
        let mut seen = HashSet::new();
        for _ in 0..200_000 {
            let s = a.next(|s| taken.contains(&s)).unwrap();
            assert_ne!(s, 0);
            assert!(!taken.contains(&s));
            assert!(seen.insert(s), "{s:#x} handed out twice");
        }
    }

    #[test]
    fn zero_is_skipped() {
        // The key that maps the first draw to 0.
        let b = permute(0, (7, 0));
        let mut a = SsrcAllocator::with_key(7, b);
        assert_eq!(permute(0, a.key), 0);
        assert_ne!(a.next(|_| false), Some(0));
        assert_eq!(a.drawn, 2);
    }

    #[test]
    fn keys_differ_per_transport() {
        let mut rng = StdRng::seed_from_u64(5);
        let (mut a, mut b) = (SsrcAllocator::new(&mut rng), SsrcAllocator::new(&mut rng));
        let xs: Vec<u32> = (0..8).filter_map(|_| a.next(|_| false)).collect();
        let ys: Vec<u32> = (0..8).filter_map(|_| b.next(|_| false)).collect();
        assert_ne!(xs, ys);
    }

    #[test]
    fn gives_up_after_the_whole_space() {
        let mut a = SsrcAllocator::with_key(1, 2);
        a.drawn = u64::from(u32::MAX) + 1;
        assert_eq!(a.next(|_| false), None);
    }
}
