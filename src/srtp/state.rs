//! Per-SSRC cryptographic state (RFC 3711 3.2.3: one context per SSRC, keyed
//! by `<SSRC, destination address, destination port>`; here one map per
//! transport direction).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use ring::digest;

use super::replay::{ReplayWindow, RocState};

/// Upper bound on SSRCs per map. Entries are only created for authenticated
/// packets (or our own outbound ones), so only a keyed peer could fill it; the
/// cap still bounds memory and worst-case probe length if one misbehaves.
pub const MAX_SSRCS: usize = 1024;

/// Room for a typical WebRTC transport (audio, video simulcast layers, RTX,
/// FEC) without rehashing after the first few packets.
const INITIAL_CAPACITY: usize = 16;

#[derive(Clone, Copy, Debug)]
pub(crate) struct RtpState {
    pub(crate) roc: RocState,
    pub(crate) replay: ReplayWindow,
}

impl RtpState {
    pub(crate) fn new(index: u64) -> Self {
        Self {
            roc: RocState::new(index),
            replay: ReplayWindow::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RtcpState {
    /// Last SRTCP index sent (outbound contexts only); 0 before the first.
    pub(crate) sent: u32,
    pub(crate) replay: ReplayWindow,
}

pub(crate) type SsrcMap<T> = HashMap<u32, T, SsrcHashBuilder>;

/// The RTP states of one context: the first SSRC inline, the others in a map. An
/// outbound context of a subscriber protects mostly one stream at a time, thousands of
/// contexts per packet at large fan-out: probing a map per copy (its control bytes and
/// buckets in another allocation) was a cache miss each, 5-7 % of the worker's time.
#[derive(Clone, Debug)]
pub(crate) struct RtpStates {
    first: Option<(u32, RtpState)>,
    rest: SsrcMap<RtpState>,
}

impl RtpStates {
    pub(crate) fn new(hasher: SsrcHashBuilder) -> Self {
        Self {
            first: None,
            // Most contexts never need it: allocated on the second SSRC.
            rest: HashMap::with_hasher(hasher),
        }
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub(crate) fn get_mut(&mut self, ssrc: u32) -> Option<&mut RtpState> {
        match &mut self.first {
            Some((s, state)) if *s == ssrc => Some(state),
            _ => self.rest.get_mut(&ssrc),
        }
    }

    /// Adds a state for an SSRC not yet present.
    pub(crate) fn insert(&mut self, ssrc: u32, state: RtpState) {
        if self.first.is_none() {
            self.first = Some((ssrc, state));
        } else {
            self.rest.insert(ssrc, state);
        }
    }

    /// Forgets an SSRC's state; returns whether it was there. Removing the inline one
    /// promotes one from `rest` (any: after a close the survivors are equally likely to
    /// carry the next packet), so `first` is empty only when `rest` is too and
    /// [`Self::insert`] stays correct.
    pub(crate) fn remove(&mut self, ssrc: u32) -> bool {
        let removed = match self.first {
            Some((s, _)) if s == ssrc => {
                let promoted = self.rest.keys().next().copied();
                self.first = promoted.and_then(|k| self.rest.remove(&k).map(|st| (k, st)));
                true
            }
            _ => self.rest.remove(&ssrc).is_some(),
        };
        shrink_if_sparse(&mut self.rest);
        removed
    }
}

/// Gives memory back once a map that grew (a subscriber with many consumers) has
/// mostly emptied; never on the packet path, only when an SSRC is removed.
pub(crate) fn shrink_if_sparse<T>(map: &mut SsrcMap<T>) {
    if map.capacity() > 4 * INITIAL_CAPACITY && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

pub(crate) fn new_map<T>(hasher: SsrcHashBuilder) -> SsrcMap<T> {
    HashMap::with_capacity_and_hasher(INITIAL_CAPACITY, hasher)
}

/// SipHash costs more than the rest of an SSRC lookup; keys are 32-bit values
/// chosen by a peer that already holds the SRTP key, so a seeded multiply-mix
/// (per-context secret seed, high bits folded into low) is enough.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SsrcHashBuilder {
    seed: u64,
}

impl SsrcHashBuilder {
    /// A seed the peer cannot predict, derived from the context's master key and salt
    /// (secret, fresh per DTLS handshake) rather than drawn from OS entropy: the SRTP
    /// code stays deterministic for a given key, as the sans-IO core requires. The
    /// label keeps the digest unrelated to any key RFC 3711 4.3 derives.
    pub(crate) fn from_master(master_key: &[u8], master_salt: &[u8]) -> Self {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"sfu srtp ssrc-map hash seed");
        ctx.update(master_key);
        ctx.update(master_salt);
        let d = ctx.finish();
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&d.as_ref()[..8]);
        Self {
            seed: u64::from_le_bytes(seed),
        }
    }
}

impl BuildHasher for SsrcHashBuilder {
    type Hasher = SsrcHasher;

    fn build_hasher(&self) -> SsrcHasher {
        SsrcHasher(self.seed)
    }
}

pub(crate) struct SsrcHasher(u64);

/// 2^64 / golden ratio, the usual Fibonacci-hashing multiplier.
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for SsrcHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(MIX);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(MIX);
    }

    fn finish(&self) -> u64 {
        // The multiply pushes entropy up; hashbrown picks buckets from the low bits.
        self.0 ^ (self.0 >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(index: u64) -> RtpState {
        RtpState::new(index)
    }

    /// The index the state of `ssrc` gives a packet with sequence number `seq`: the
    /// states keep their own ROC/highest index through a promotion.
    fn index_of(states: &mut RtpStates, ssrc: u32, seq: u16) -> Option<u64> {
        states.get_mut(ssrc).and_then(|s| s.roc.estimate(seq).ok())
    }

    #[test]
    fn removing_the_inline_ssrc_promotes_one_from_rest() {
        let mut s = RtpStates::new(SsrcHashBuilder::from_master(b"key", b"salt"));
        s.insert(1, state(10));
        s.insert(2, state(0x2_0014));
        s.insert(3, state(0x3_001e));
        assert!(s.remove(1));
        assert_eq!(s.len(), 2);
        assert!(s.get_mut(1).is_none());
        // The promoted one is inline now, the other still in rest: both reachable.
        let promoted = s.first.map(|(k, _)| k);
        assert!(matches!(promoted, Some(2 | 3)), "{promoted:?}");
        assert_eq!(s.rest.len(), 1);
        assert_eq!(index_of(&mut s, 2, 21), Some(0x2_0015));
        assert_eq!(index_of(&mut s, 3, 31), Some(0x3_001f));
        // A new SSRC goes to rest (first is taken), and removing everything leaves it
        // empty and reusable inline.
        s.insert(4, state(40));
        assert!(s.rest.contains_key(&4));
        for k in [2, 3, 4] {
            assert!(s.remove(k));
        }
        assert_eq!(s.len(), 0);
        assert!(s.first.is_none());
        s.insert(5, state(50));
        assert_eq!(s.first.map(|(k, _)| k), Some(5));
    }

    #[test]
    fn removing_the_last_inline_ssrc_leaves_it_empty() {
        let mut s = RtpStates::new(SsrcHashBuilder::from_master(b"key", b"salt"));
        s.insert(7, state(1));
        assert!(s.remove(7));
        assert!(s.first.is_none());
        assert_eq!(s.len(), 0);
        assert!(!s.remove(7), "already gone");
        s.insert(8, state(2));
        assert_eq!(s.first.map(|(k, _)| k), Some(8));
        assert!(s.rest.is_empty());
    }

    #[test]
    fn removing_from_rest_keeps_the_inline_one() {
        let mut s = RtpStates::new(SsrcHashBuilder::from_master(b"key", b"salt"));
        s.insert(1, state(1));
        s.insert(2, state(2));
        assert!(s.remove(2));
        assert!(!s.remove(9));
        assert_eq!(s.first.map(|(k, _)| k), Some(1));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_drained_map_gives_its_memory_back() {
        let mut s = RtpStates::new(SsrcHashBuilder::from_master(b"key", b"salt"));
        for k in 0..1000 {
            s.insert(k, state(0));
        }
        let grown = s.rest.capacity();
        for k in 0..999 {
            assert!(s.remove(k));
        }
        assert_eq!(s.len(), 1);
        assert!(
            s.rest.capacity() < grown / 8,
            "{} of {grown}",
            s.rest.capacity()
        );
    }
}
