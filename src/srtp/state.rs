//! Per-SSRC cryptographic state (RFC 3711 3.2.3: one context per SSRC, keyed
//! by `<SSRC, destination address, destination port>`; here one map per
//! transport direction).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

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
    pub(crate) fn new() -> Self {
        Self {
            first: None,
            // Most contexts never need it: allocated on the second SSRC.
            rest: HashMap::with_hasher(SsrcHashBuilder::new()),
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
}

pub(crate) fn new_map<T>() -> SsrcMap<T> {
    HashMap::with_capacity_and_hasher(INITIAL_CAPACITY, SsrcHashBuilder::new())
}

/// SipHash costs more than the rest of an SSRC lookup; keys are 32-bit values
/// chosen by a peer that already holds the SRTP key, so a seeded multiply-mix
/// (per-context random seed, high bits folded into low) is enough.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SsrcHashBuilder {
    seed: u64,
}

impl SsrcHashBuilder {
    fn new() -> Self {
        Self {
            seed: rand::random(),
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
