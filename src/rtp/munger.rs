//! Per-consumer sequence number / timestamp munging.
//!
//! A consumer sees one outgoing RTP stream (one SSRC) whose sequence numbers must
//! be continuous (RFC 3550 A.1: receivers count a gap as loss and NACK it, and a big
//! jump makes them reset their statistics) and whose timestamps must keep advancing
//! with wall-clock time (RFC 3550 5.1; jitter buffers and A/V sync rely on it), even
//! though what the SFU forwards into it pauses, resumes and switches between
//! sources (e.g. simulcast layers), each with its own random initial sequence number
//! and timestamp (RFC 3550 5.1).
//!
//! # Policy
//!
//! The munger maps input to output with two offsets,
//! `out_seq = in_seq + seq_offset` and `out_ts = in_ts + ts_offset` (both wrapping),
//! that only change at a *sync point*: the first packet ever, and the first packet
//! after [`SeqTsMunger::mark_resync`].
//!
//! * At a sync point the packet (the caller makes it a keyframe) is mapped to the
//!   sequence number right after the highest one sent so far, and to the timestamp
//!   of that packet advanced by the wall-clock time elapsed since it was forwarded,
//!   in RTP units, as derived from the caller's `now_rtp_ts_hint`; at least +1, so
//!   two frames never share a timestamp across the switch.
//! * Afterwards, newer packets (ahead of the highest input sequence number, taken as
//!   a signed 16-bit distance so wrap-around is handled, RFC 3550 A.1) are mapped
//!   with the same offsets; gaps are kept, so loss upstream is visible downstream
//!   and the consumer's NACKs name sequence numbers we can translate back.
//! * Older packets (reordered, or retransmitted upstream) are mapped with the same
//!   offsets, so a packet always gets the same output number, as long as they are
//!   not older than the sync point (they belong to the previous mapping, whose
//!   numbers we may already have reused) and within [`REORDER_WINDOW`] of the highest
//!   one (beyond that they are useless to a real-time receiver and more likely a
//!   source restart).
//! * Duplicates of a packet already forwarded within that window are dropped: the
//!   consumer already has it.
//!
//! The munger does not see SSRCs: the caller must only feed it packets of the
//! currently selected source, and call `mark_resync` whenever that changes.

use rand::Rng;

/// How far behind the highest forwarded input sequence number a packet may be and
/// still be forwarded; also the span of the duplicate-detection history.
pub const REORDER_WINDOW: u16 = 1024;

const HISTORY_WORDS: usize = REORDER_WINDOW as usize / 64;

/// Keeps one consumer's outgoing sequence numbers and timestamps continuous.
#[derive(Debug, Clone)]
pub struct SeqTsMunger {
    out_ssrc: u32,
    /// Output values used at the very first sync point.
    first_seq: u16,
    first_ts: u32,
    /// `None` until the first packet.
    state: Option<State>,
    resync_pending: bool,
}

#[derive(Debug, Clone)]
struct State {
    seq_offset: u16,
    ts_offset: u32,
    /// Highest input sequence number forwarded under the current mapping.
    highest_in: u16,
    /// Output timestamp of that packet (the newest frame sent).
    highest_out_ts: u32,
    /// Caller's clock (RTP units) when that packet was forwarded, if it gave one.
    highest_hint: Option<u32>,
    /// How far `highest_in` is past the sync point; packets further back than this
    /// predate the current mapping. Saturates: only comparisons against
    /// `REORDER_WINDOW` matter.
    since_sync: u32,
    /// Bit `d` set = input `highest_in - d` was forwarded (d < REORDER_WINDOW).
    history: [u64; HISTORY_WORDS],
}

impl State {
    fn seen(&self, back: u16) -> bool {
        let (word, bit) = (usize::from(back / 64), back % 64);
        self.history
            .get(word)
            .is_some_and(|w| w & (1u64 << bit) != 0)
    }

    fn mark(&mut self, back: u16) {
        let (word, bit) = (usize::from(back / 64), back % 64);
        if let Some(w) = self.history.get_mut(word) {
            *w |= 1u64 << bit;
        }
    }

    /// Ages the history by `n` sequence numbers: bit d moves to d + n.
    fn shift(&mut self, n: u16) {
        if n >= REORDER_WINDOW {
            self.history = [0; HISTORY_WORDS];
            return;
        }
        let words = usize::from(n / 64);
        let bits = u32::from(n % 64);
        for i in (0..HISTORY_WORDS).rev() {
            let src = i.checked_sub(words);
            let hi = src.and_then(|s| self.history.get(s)).copied().unwrap_or(0);
            let lo = src
                .and_then(|s| s.checked_sub(1))
                .and_then(|s| self.history.get(s))
                .copied()
                .unwrap_or(0);
            let v = if bits == 0 {
                hi
            } else {
                (hi << bits) | (lo >> (64 - bits))
            };
            if let Some(w) = self.history.get_mut(i) {
                *w = v;
            }
        }
    }
}

impl SeqTsMunger {
    /// A munger whose first forwarded packet becomes (`first_seq`, `first_ts`).
    /// RFC 3550 5.1 asks for random initial values; see [`Self::new_random`].
    pub fn new(out_ssrc: u32, first_seq: u16, first_ts: u32) -> Self {
        Self {
            out_ssrc,
            first_seq,
            first_ts,
            state: None,
            resync_pending: false,
        }
    }

    /// [`Self::new`] with initial sequence number and timestamp drawn from `rng`.
    pub fn new_random<R: Rng + ?Sized>(out_ssrc: u32, rng: &mut R) -> Self {
        Self::new(out_ssrc, rng.gen(), rng.gen())
    }

    /// The SSRC the consumer sees.
    pub fn out_ssrc(&self) -> u32 {
        self.out_ssrc
    }

    /// Output sequence number and timestamp of the newest packet forwarded, if any
    /// (e.g. for building a sender report).
    pub fn last_out(&self) -> Option<(u16, u32)> {
        self.state
            .as_ref()
            .map(|s| (s.highest_in.wrapping_add(s.seq_offset), s.highest_out_ts))
    }

    /// Maps the next input packet from the *new* source onto the old output stream
    /// (call on resume and on source switch; the next packet passed in should be a
    /// keyframe). Packets older than that next packet are dropped afterwards.
    pub fn mark_resync(&mut self) {
        self.resync_pending = true;
    }

    /// Maps an input packet to its output (sequence number, timestamp), or `None` to
    /// drop it (older than the sync point, too old, or a duplicate).
    ///
    /// `now_rtp_ts_hint` is the caller's current time on a monotonic clock expressed
    /// in this stream's RTP clock units (wrapping u32); pass it with every packet so
    /// that at a resync the output timestamp can be advanced by the real elapsed
    /// time. Without it the timestamp advances by 1.
    pub fn process(
        &mut self,
        in_seq: u16,
        in_ts: u32,
        now_rtp_ts_hint: Option<u32>,
    ) -> Option<(u16, u32)> {
        let state = match self.state.as_mut() {
            Some(s) if !self.resync_pending => s,
            _ => return Some(self.sync(in_seq, in_ts, now_rtp_ts_hint)),
        };

        // Signed distance from the highest packet so far (RFC 3550 A.1 style):
        // forward jumps below 2^15 are newer, everything else is older.
        let delta = in_seq.wrapping_sub(state.highest_in) as i16;
        if delta > 0 {
            let ahead = delta.unsigned_abs();
            state.shift(ahead);
            state.mark(0);
            state.highest_in = in_seq;
            state.highest_out_ts = in_ts.wrapping_add(state.ts_offset);
            state.highest_hint = now_rtp_ts_hint;
            state.since_sync = state.since_sync.saturating_add(u32::from(ahead));
            return Some((in_seq.wrapping_add(state.seq_offset), state.highest_out_ts));
        }

        let back = delta.unsigned_abs();
        if u32::from(back) > state.since_sync || back >= REORDER_WINDOW || state.seen(back) {
            return None;
        }
        state.mark(back);
        Some((
            in_seq.wrapping_add(state.seq_offset),
            in_ts.wrapping_add(state.ts_offset),
        ))
    }

    /// The input sequence number that was forwarded as `out_seq`, to answer a
    /// consumer's NACK (which names the consumer's numbering) from the producer's
    /// retransmission buffer (keyed by the producer's numbering).
    ///
    /// `Some` only for a packet actually forwarded under the current mapping (since
    /// the last sync point) and within [`REORDER_WINDOW`] of the newest one: a number
    /// in a gap (lost upstream, or dropped before reaching the munger) or from before
    /// a resume or source switch was never sent under this number, and retransmitting
    /// whatever the producer has under the computed input number would be wrong.
    /// A resync that is pending but not yet applied does not change the answer.
    pub fn original_seq(&self, out_seq: u16) -> Option<u16> {
        let state = self.state.as_ref()?;
        let in_seq = out_seq.wrapping_sub(state.seq_offset);
        // Same signed-distance rule as `process`: ahead of the newest is unknown.
        let delta = in_seq.wrapping_sub(state.highest_in) as i16;
        if delta > 0 {
            return None;
        }
        let back = delta.unsigned_abs();
        let forwarded =
            u32::from(back) <= state.since_sync && back < REORDER_WINDOW && state.seen(back);
        forwarded.then_some(in_seq)
    }

    /// The output timestamp for an input timestamp under the current mapping (a
    /// retransmitted packet gets the timestamp it had when first forwarded). `None`
    /// before the first packet. Pair it with [`Self::original_seq`], which tells
    /// whether the packet belongs to the current mapping at all.
    pub fn output_ts(&self, in_ts: u32) -> Option<u32> {
        self.state.as_ref().map(|s| in_ts.wrapping_add(s.ts_offset))
    }

    /// Starts a new mapping with this packet as the sync point.
    fn sync(&mut self, in_seq: u16, in_ts: u32, hint: Option<u32>) -> (u16, u32) {
        let (out_seq, out_ts) = match &self.state {
            None => (self.first_seq, self.first_ts),
            Some(prev) => {
                // Continue right after the last packet sent, advanced by the
                // wall-clock gap. A gap of 0 or "negative" (>= 2^31 as a wrapping
                // difference: the caller's clock went backwards) becomes 1.
                let gap = match (hint, prev.highest_hint) {
                    (Some(now), Some(then)) => now.wrapping_sub(then),
                    _ => 1,
                };
                let gap = if gap == 0 || gap > i32::MAX as u32 {
                    1
                } else {
                    gap
                };
                (
                    prev.highest_in
                        .wrapping_add(prev.seq_offset)
                        .wrapping_add(1),
                    prev.highest_out_ts.wrapping_add(gap),
                )
            }
        };
        let mut state = State {
            seq_offset: out_seq.wrapping_sub(in_seq),
            ts_offset: out_ts.wrapping_sub(in_ts),
            highest_in: in_seq,
            highest_out_ts: out_ts,
            highest_hint: hint,
            since_sync: 0,
            history: [0; HISTORY_WORDS],
        };
        state.mark(0);
        self.state = Some(state);
        self.resync_pending = false;
        (out_seq, out_ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn first_packet_and_continuity_across_wrap() {
        let mut m = SeqTsMunger::new(0xABCD, 65534, 0xFFFF_FF00);
        assert_eq!(m.out_ssrc(), 0xABCD);
        assert_eq!(m.last_out(), None);
        assert_eq!(m.process(100, 1000, None), Some((65534, 0xFFFF_FF00)));
        assert_eq!(m.process(101, 1000, None), Some((65535, 0xFFFF_FF00)));
        assert_eq!(m.process(102, 4000, None), Some((0, 2744)));
        assert_eq!(m.last_out(), Some((0, 2744)));
        // Input wraps too.
        let mut m = SeqTsMunger::new(1, 10, 0);
        assert_eq!(m.process(65535, 0, None), Some((10, 0)));
        assert_eq!(m.process(0, 90, None), Some((11, 90)));
        assert_eq!(m.process(1, 180, None), Some((12, 180)));
    }

    #[test]
    fn gaps_are_preserved() {
        let mut m = SeqTsMunger::new(1, 500, 0);
        m.process(10, 0, None);
        assert_eq!(m.process(13, 90, None), Some((503, 90)));
        // The lost ones arriving late (e.g. upstream retransmission) fill the gap.
        assert_eq!(m.process(11, 0, None), Some((501, 0)));
        assert_eq!(m.process(12, 0, None), Some((502, 0)));
    }

    #[test]
    fn pause_resume_continues_after_last_sent() {
        let mut m = SeqTsMunger::new(1, 1000, 50_000);
        // Hint: caller's clock in 90 kHz units.
        assert_eq!(m.process(7, 9_000, Some(1_000_000)), Some((1000, 50_000)));
        assert_eq!(m.process(8, 12_000, Some(1_003_000)), Some((1001, 53_000)));
        // Paused for 2 s (180_000 ticks); the producer kept sending meanwhile.
        m.mark_resync();
        let keyframe = m.process(70, 400_000, Some(1_183_000));
        assert_eq!(keyframe, Some((1002, 53_000 + 180_000)));
        assert_eq!(
            m.process(71, 403_000, Some(1_186_000)),
            Some((1003, 236_000))
        );
        // A packet from before the resume point is not forwarded.
        assert_eq!(m.process(69, 397_000, Some(1_186_000)), None);
        assert_eq!(m.process(9, 15_000, Some(1_186_000)), None);
    }

    #[test]
    fn resync_without_hint_or_with_backwards_clock_advances_by_one() {
        let mut m = SeqTsMunger::new(1, 0, 100);
        m.process(5, 0, None);
        m.mark_resync();
        assert_eq!(m.process(9000, 77, None), Some((1, 101)));
        m.process(9001, 80, Some(500));
        m.mark_resync();
        assert_eq!(m.process(3, 3, Some(400)), Some((3, 105)));
        // Same instant: still strictly increasing.
        m.mark_resync();
        assert_eq!(m.process(40_000, 3, Some(400)), Some((4, 106)));
    }

    #[test]
    fn source_switch_across_input_wrap() {
        let mut m = SeqTsMunger::new(1, 200, 0);
        for i in 0..5u16 {
            assert_eq!(
                m.process(65533u16.wrapping_add(i), 0, None),
                Some((200 + i, 0))
            );
        }
        // New source whose numbers are "behind" the old ones.
        m.mark_resync();
        assert_eq!(m.process(30_000, 0, None), Some((205, 1)));
        assert_eq!(m.process(30_001, 10, None), Some((206, 11)));
        // Late packet of the new source from before its keyframe: dropped.
        assert_eq!(m.process(29_999, 0, None), None);
    }

    #[test]
    fn reordering_is_mapped_consistently_and_duplicates_dropped() {
        let mut m = SeqTsMunger::new(1, 1000, 0);
        assert_eq!(m.process(100, 0, None), Some((1000, 0)));
        assert_eq!(m.process(103, 0, None), Some((1003, 0)));
        assert_eq!(m.process(102, 0, None), Some((1002, 0)));
        assert_eq!(m.process(101, 0, None), Some((1001, 0)));
        assert_eq!(m.process(102, 0, None), None);
        assert_eq!(m.process(103, 0, None), None);
        assert_eq!(m.process(100, 0, None), None);
        assert_eq!(m.process(104, 0, None), Some((1004, 0)));
        assert_eq!(m.process(104, 0, None), None);
        // Out of the reorder window: dropped.
        assert_eq!(
            m.process(104 + REORDER_WINDOW + 10, 0, None),
            Some((2038, 0))
        );
        assert_eq!(m.process(105, 0, None), None);
        // Exactly REORDER_WINDOW behind: dropped; one less: still forwarded.
        assert_eq!(m.process(104 + 10, 0, None), None);
        assert_eq!(m.process(104 + 11, 0, None), Some((1015, 0)));
    }

    #[test]
    fn history_shift_matches_naive_model() {
        // Compare against a HashSet model over a seeded random walk with jumps,
        // reordering and duplicates, crossing the 16-bit wrap several times.
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut m = SeqTsMunger::new(1, 0, 0);
        let mut sent = std::collections::HashMap::<u64, u16>::new();
        let mut highest: u64 = 1 << 20;
        m.process(highest as u16, 0, None);
        sent.insert(highest, 0);
        for _ in 0..200_000 {
            let ext = match rng.gen_range(0..10) {
                0..=5 => highest + rng.gen_range(1..3),
                6 => highest + rng.gen_range(1..2000),
                _ => highest - rng.gen_range(0..1100).min(highest - (1 << 20)),
            };
            let got = m.process(ext as u16, 0, None);
            let expect = if ext > highest {
                highest = ext;
                Some(((ext - (1 << 20)) as u16, 0))
            } else if highest - ext >= u64::from(REORDER_WINDOW) || sent.contains_key(&ext) {
                None
            } else {
                Some(((ext - (1 << 20)) as u16, 0))
            };
            assert_eq!(got, expect, "ext {ext} highest {highest}");
            if let Some((s, _)) = got {
                sent.insert(ext, s);
            }
        }
    }

    #[test]
    fn original_seq_inverts_forwarded_packets_only() {
        let mut m = SeqTsMunger::new(1, 65534, 1000);
        assert_eq!(m.original_seq(65534), None);
        assert_eq!(m.output_ts(5), None);
        // Input 100..=103 with 102 lost upstream; output crosses the 16-bit wrap.
        for (seq, ts) in [(100u16, 0u32), (101, 0), (103, 3000)] {
            m.process(seq, ts, None);
        }
        assert_eq!(m.original_seq(65534), Some(100));
        assert_eq!(m.original_seq(65535), Some(101));
        // The gap was never forwarded: nothing to retransmit under that number.
        assert_eq!(m.original_seq(0), None);
        assert_eq!(m.original_seq(1), Some(103));
        // Ahead of the newest, and far behind: unknown.
        assert_eq!(m.original_seq(2), None);
        assert_eq!(m.original_seq(30_000), None);
        assert_eq!(m.output_ts(3000), Some(4000));
        assert_eq!(m.output_ts(u32::MAX), Some(999));
        // Recovered upstream and forwarded late: now answerable.
        assert_eq!(m.process(102, 2000, None), Some((0, 3000)));
        assert_eq!(m.original_seq(0), Some(102));
    }

    #[test]
    fn original_seq_forgets_the_previous_mapping_at_a_resync() {
        let mut m = SeqTsMunger::new(1, 500, 0);
        m.process(10, 0, None);
        m.process(11, 90, None);
        m.mark_resync();
        // Pending resync: the old packets are still the consumer's 500 and 501.
        assert_eq!(m.original_seq(501), Some(11));
        assert_eq!(m.process(7000, 0, None), Some((502, 91)));
        assert_eq!(m.original_seq(502), Some(7000));
        assert_eq!(m.output_ts(0), Some(91));
        // 500 and 501 were sent under the old mapping: not translatable any more.
        assert_eq!(m.original_seq(500), None);
        assert_eq!(m.original_seq(501), None);
    }

    #[test]
    fn original_seq_matches_process_over_random_walk() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let mut m = SeqTsMunger::new(1, 40_000, 0);
        let mut sent = std::collections::HashMap::<u16, u16>::new();
        let mut seq: u16 = 65_000;
        for i in 0..50_000u32 {
            if rng.gen_ratio(1, 2000) {
                m.mark_resync();
                sent.clear();
                seq = rng.gen();
            }
            let s = seq.wrapping_add(rng.gen_range(0..8)).wrapping_sub(3);
            seq = seq.wrapping_add(1);
            if let Some((out, _)) = m.process(s, i, None) {
                // A resync may reuse output numbers of the old mapping.
                sent.retain(|o, _| *o != out);
                sent.insert(out, s);
                assert_eq!(m.original_seq(out), Some(s));
            }
            let probe: u16 = m
                .last_out()
                .map_or(0, |(o, _)| o)
                .wrapping_sub(rng.gen_range(0..1100));
            if let Some(orig) = m.original_seq(probe) {
                assert_eq!(sent.get(&probe), Some(&orig), "out {probe}");
            }
        }
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut m = SeqTsMunger::new_random(9, &mut rng);
        for _ in 0..100_000 {
            if rng.gen_ratio(1, 500) {
                m.mark_resync();
            }
            let hint = rng.gen::<bool>().then(|| rng.gen());
            let _ = m.process(rng.gen(), rng.gen(), hint);
        }
    }
}
