//! Maps one source's wrapping counter (an RTP sequence number, a VP8 PictureID) onto a
//! simulcast consumer's own, which must stay continuous while the consumer drops some
//! of the source's values (a temporal layer it does not forward) and switches sources
//! (another spatial layer, with counters of its own). A receiver takes a gap in
//! sequence numbers for loss and NACKs it (RFC 4585), and a gap in PictureIDs for a
//! missing frame; a dropped value must therefore leave no gap.
//!
//! The map is `out = in + offset`, where the offset goes down by one for each value
//! dropped: packets after a dropped one move down to close the gap. A value that
//! arrives late (reordered behind newer ones) is mapped with the offset it would have
//! had in order, i.e. the current offset plus the drops since it, from a short history
//! of dropped values. A value dropped late cannot close its gap any more (the newer
//! values were sent already); it stays a gap, as in mediasoup's `SeqManager`.

/// How many dropped values are remembered for mapping late arrivals.
const DROP_HISTORY: usize = 128;

/// How far behind the newest value a late one may be and still be mapped.
const REORDER_WINDOW: u32 = 1024;

/// One source's counter mapped onto the consumer's.
#[derive(Debug, Clone)]
pub(super) struct CounterMap {
    /// Counter width in bits (16 for sequence numbers, 15 or 7 for PictureIDs).
    bits: u32,
    /// The mapping of the current source; None before the first value.
    state: Option<State>,
    /// The consumer's newest output value, across sources.
    last_out: Option<u16>,
}

#[derive(Debug, Clone)]
struct State {
    /// The newest input value (forwarded or dropped), unwrapped into a counter that
    /// does not wrap, and its offset.
    highest: u64,
    offset: u16,
    /// The unwrapped sync point: nothing older belongs to this mapping.
    synced: u64,
    /// Recently dropped input values, unwrapped, a ring; `dropped_len` of them valid.
    dropped: [u64; DROP_HISTORY],
    dropped_next: usize,
    dropped_len: usize,
    /// A value dropped so long ago that it left the ring: late arrivals at or before it
    /// cannot be mapped.
    forgotten: u64,
}

/// Where an unwrapped counter starts: far from 0 both ways.
const UNWRAPPED_START: u64 = 1 << 40;

impl CounterMap {
    /// A map for a counter of `bits` bits (1-16).
    pub(super) fn new(bits: u32) -> Self {
        Self {
            bits: bits.clamp(1, 16),
            state: None,
            last_out: None,
        }
    }

    /// The counter width in bits.
    pub(super) fn bits(&self) -> u32 {
        self.bits
    }

    fn mask(&self) -> u16 {
        ((1u32 << self.bits) - 1) as u16
    }

    /// The value the next output takes: right after the newest one, or `first` when
    /// nothing was output yet.
    pub(super) fn next_out(&self, first: u16) -> u16 {
        self.last_out.map_or(first, |o| o.wrapping_add(1)) & self.mask()
    }

    /// Starts mapping a new source whose value `input` becomes `out` (see
    /// [`Self::next_out`]). Values of the previous source are not mapped any more.
    pub(super) fn sync(&mut self, input: u16, out: u16) {
        let mask = self.mask();
        let input = input & mask;
        // The unwrapped counter keeps the input's residue, so that `highest & mask`
        // is the input value.
        let highest = UNWRAPPED_START | u64::from(input);
        self.state = Some(State {
            highest,
            offset: out.wrapping_sub(input) & mask,
            synced: highest,
            dropped: [0; DROP_HISTORY],
            dropped_next: 0,
            dropped_len: 0,
            forgotten: 0,
        });
        self.last_out = Some(out & mask);
    }

    /// Switches to `bits` wide values (a source whose PictureID has another width):
    /// starts over from the next output value in the new width.
    pub(super) fn rewidth(&mut self, bits: u32, input: u16) {
        let next = self.next_out(input);
        self.bits = bits.clamp(1, 16);
        self.sync(input, next);
    }

    /// `input` unwrapped next to the newest value, as the signed distance in the
    /// counter's width says.
    fn unwrap(&self, s: &State, input: u16) -> u64 {
        let d = diff_bits(self.bits, input, (s.highest as u16) & self.mask());
        s.highest.wrapping_add_signed(i64::from(d))
    }

    /// Maps a forwarded value: its output, or None when it cannot be mapped (before
    /// the sync point, too old, dropped before, or no source yet).
    pub(super) fn forward(&mut self, input: u16) -> Option<u16> {
        let mask = self.mask();
        let input = input & mask;
        let s = self.state.as_ref()?;
        let ext = self.unwrap(s, input);
        let s = self.state.as_mut()?;
        if ext >= s.highest {
            s.highest = ext;
            let out = input.wrapping_add(s.offset) & mask;
            self.last_out = Some(out);
            return Some(out);
        }
        if ext < s.synced || s.highest - ext >= u64::from(REORDER_WINDOW) || ext <= s.forgotten {
            return None;
        }
        let mut later_drops: u16 = 0;
        for &v in s.dropped.iter().take(s.dropped_len) {
            if v == ext {
                return None;
            }
            if v > ext {
                later_drops = later_drops.wrapping_add(1);
            }
        }
        Some(input.wrapping_add(s.offset).wrapping_add(later_drops) & mask)
    }

    /// Drops a value: newer values move down to close its gap. Dropping the newest
    /// value again (another packet of a dropped frame) changes nothing; a late value
    /// cannot close its gap any more.
    pub(super) fn drop_value(&mut self, input: u16) {
        let mask = self.mask();
        let Some(s) = self.state.as_ref() else {
            return;
        };
        let ext = self.unwrap(s, input & mask);
        let Some(s) = self.state.as_mut() else {
            return;
        };
        if ext <= s.highest {
            return;
        }
        s.highest = ext;
        s.offset = s.offset.wrapping_sub(1) & mask;
        if s.dropped_len == DROP_HISTORY {
            s.forgotten = s.dropped.get(s.dropped_next).copied().unwrap_or(0);
        } else {
            s.dropped_len += 1;
        }
        if let Some(slot) = s.dropped.get_mut(s.dropped_next) {
            *slot = ext;
        }
        s.dropped_next = (s.dropped_next + 1) % DROP_HISTORY;
    }
}

/// The signed distance from `b` to `a` in a `bits` wide counter.
fn diff_bits(bits: u32, a: u16, b: u16) -> i32 {
    let m = 1i32 << bits;
    let d = (i32::from(a) - i32::from(b)).rem_euclid(m);
    if d >= m / 2 {
        d - m
    } else {
        d
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn drops_leave_no_gap_and_late_values_keep_their_place() {
        let mut m = CounterMap::new(16);
        m.sync(100, 5000);
        assert_eq!(m.forward(101), Some(5001));
        m.drop_value(102);
        m.drop_value(102);
        assert_eq!(m.forward(103), Some(5002));
        // 105 before 104: 104 comes late and takes the place left for it.
        assert_eq!(m.forward(105), Some(5004));
        m.drop_value(106);
        assert_eq!(m.forward(104), Some(5003));
        assert_eq!(m.forward(107), Some(5005));
        // A dropped value arriving again is still dropped; one from before the sync
        // point is not mapped.
        assert_eq!(m.forward(102), None);
        assert_eq!(m.forward(99), None);
        assert_eq!(m.next_out(0), 5006);
    }

    #[test]
    fn a_new_source_continues_the_output() {
        let mut m = CounterMap::new(15);
        m.sync(0x7ffe, 10);
        assert_eq!(m.forward(0x7fff), Some(11));
        assert_eq!(m.forward(0), Some(12), "wraps in 15 bits");
        m.drop_value(1);
        let next = m.next_out(0);
        assert_eq!(next, 13);
        m.sync(900, next);
        assert_eq!(m.forward(901), Some(14));
        // The old source's values are not mapped any more.
        assert_eq!(m.forward(0x7fff), None);
        // Another width: the output goes on from where it was, in the new width.
        m.rewidth(7, 5);
        assert_eq!(m.forward(5), Some(15));
        assert_eq!(m.forward(6), Some(16));
    }

    /// Against a model that numbers the forwarded values of an in-order stream
    /// consecutively: with drops, a wrap, and reordering within the window.
    #[test]
    fn matches_a_consecutive_numbering_under_random_drops_and_reordering() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for bits in [16u32, 15, 7] {
            let modulus = 1u32 << bits;
            let mut m = CounterMap::new(bits);
            let start = (modulus - 40) as u16;
            m.sync(start, 0);
            // Each value is dropped or forwarded; its output in order is the count of
            // forwarded values before it.
            let n = 3000u32;
            let keep: Vec<bool> = (0..n).map(|i| i == 0 || rng.gen_ratio(2, 3)).collect();
            let mut expect = vec![None; n as usize];
            let mut k = 0u32;
            for i in 0..n as usize {
                if keep[i] {
                    expect[i] = Some((k % modulus) as u16);
                    k += 1;
                }
            }
            // Deliver in order, but swap neighbours now and then; a late value whose
            // drop comes after a newer one would leave a gap, so only forwarded
            // values are delayed.
            let mut order: Vec<usize> = (0..n as usize).collect();
            for i in 1..order.len() - 1 {
                if keep[order[i]] && rng.gen_ratio(1, 8) {
                    order.swap(i, i + 1);
                }
            }
            for &i in &order {
                let input = ((u32::from(start) + i as u32) % modulus) as u16;
                if keep[i] {
                    if i == 0 {
                        continue;
                    }
                    assert_eq!(m.forward(input), expect[i], "bits {bits} value {i}");
                } else {
                    m.drop_value(input);
                }
            }
        }
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut m = CounterMap::new(16);
        assert_eq!(m.forward(1), None, "no source yet");
        for _ in 0..100_000 {
            match rng.gen_range(0..10) {
                0 => m.sync(rng.gen(), rng.gen()),
                1 => m.rewidth(rng.gen_range(0..20), rng.gen()),
                2..=4 => m.drop_value(rng.gen()),
                _ => {
                    let _ = m.forward(rng.gen());
                }
            }
        }
    }
}
