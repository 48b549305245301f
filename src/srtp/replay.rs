//! Packet index estimation (RFC 3711 3.3.1, Appendix A) and the replay list
//! (RFC 3711 3.3.2), both allocation-free and `Copy`.

use super::SrtpError;

/// Half the 16-bit sequence space: the reordering horizon of Appendix A.
const HALF_SEQ: u16 = 1 << 15;

/// Highest SRTP packet index `ROC * 2^16 + s_l` seen on one SSRC.
///
/// RFC 3711 3.3.1 keeps ROC and `s_l` (highest sequence number) separately; the
/// 48-bit index holds both and makes "newer" a plain integer comparison.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RocState {
    highest: u64,
}

impl RocState {
    /// First packet of an SSRC: RFC 3711 3.3.1 initialises ROC to 0 and `s_l`
    /// to the first sequence number, so the first index is `seq` itself.
    pub(crate) fn first_index(seq: u16) -> u64 {
        u64::from(seq)
    }

    pub(crate) fn new(index: u64) -> Self {
        Self { highest: index }
    }

    /// Guesses the packet index of `seq` (RFC 3711 Appendix A): the ROC value
    /// `v` in {ROC-1, ROC, ROC+1} that puts the index closest to `s_l`.
    ///
    /// A guess of ROC-1 while ROC is 0 would be a packet from before the stream
    /// started: there is no such index, so it is `TooOld`. A guess of ROC+1
    /// past 2^32-1 would reuse keystream; RFC 3711 9.2 requires a rekey first.
    pub(crate) fn estimate(self, seq: u16) -> Result<u64, SrtpError> {
        let roc = i64::from(self.roc());
        let s_l = self.highest as u16;
        let v = if s_l < HALF_SEQ {
            if seq > s_l && seq - s_l > HALF_SEQ {
                roc - 1
            } else {
                roc
            }
        } else if s_l - HALF_SEQ > seq {
            roc + 1
        } else {
            roc
        };
        match u32::try_from(v) {
            Ok(v) => Ok(u64::from(v) << 16 | u64::from(seq)),
            Err(_) if v < 0 => Err(SrtpError::TooOld),
            Err(_) => Err(SrtpError::IndexExhausted),
        }
    }

    /// Records an (authenticated, when receiving) index: RFC 3711 3.3.1 only
    /// moves ROC / `s_l` forward.
    pub(crate) fn update(&mut self, index: u64) {
        self.highest = self.highest.max(index);
    }

    pub(crate) fn roc(self) -> u32 {
        (self.highest >> 16) as u32
    }
}

/// Replay list width. RFC 3711 3.3.2 requires at least 64; 128 tolerates the
/// deeper reordering seen with simulcast over lossy links at no extra cost.
pub const REPLAY_WINDOW: u64 = 128;

/// Sliding-window replay list (RFC 3711 3.3.2) over SRTP packet indices or
/// SRTCP indices. Bit `d` of `seen` means index `top - d` was accepted.
///
/// The empty window (`top = 0`, nothing seen) accepts any index, so the same
/// type serves fresh SSRCs without an "uninitialised" state.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ReplayWindow {
    top: u64,
    seen: u128,
}

impl ReplayWindow {
    /// Checks `index` without recording it: the packet is not yet authenticated.
    pub(crate) fn check(&self, index: u64) -> Result<(), SrtpError> {
        let Some(delta) = self.top.checked_sub(index) else {
            return Ok(());
        };
        if delta >= REPLAY_WINDOW {
            Err(SrtpError::TooOld)
        } else if (self.seen >> delta) & 1 == 1 {
            Err(SrtpError::Replayed)
        } else {
            Ok(())
        }
    }

    /// Records `index`; receivers call it only after the packet authenticated
    /// (RFC 3711 3.3 step 8), so forged packets cannot advance the window.
    pub(crate) fn accept(&mut self, index: u64) {
        match index.checked_sub(self.top) {
            Some(0) => self.seen |= 1,
            Some(shift) => {
                self.seen = if shift >= REPLAY_WINDOW {
                    0
                } else {
                    self.seen << shift
                };
                self.seen |= 1;
                self.top = index;
            }
            None => {
                let delta = self.top - index;
                if delta < REPLAY_WINDOW {
                    self.seen |= 1u128 << delta;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_follows_appendix_a() {
        let s = RocState::new(RocState::first_index(65_530));
        assert_eq!(s.estimate(65_531), Ok(65_531));
        // Wrap forward: ROC + 1.
        assert_eq!(s.estimate(3), Ok((1 << 16) | 3));
        // A late packet before the first one stays in ROC 0.
        assert_eq!(s.estimate(65_000), Ok(65_000));

        let mut s = RocState::new((1 << 16) | 2);
        assert_eq!(s.roc(), 1);
        // A late packet from before the wrap: ROC - 1.
        assert_eq!(s.estimate(65_535), Ok(65_535));
        assert_eq!(s.estimate(10), Ok((1 << 16) | 10));
        s.update(65_535);
        assert_eq!(s.roc(), 1, "old indices never move the state back");
        s.update((1 << 16) | 40_000);
        assert_eq!(s.estimate(100), Ok((2 << 16) | 100));
    }

    #[test]
    fn estimate_edges() {
        // ROC 0 and a sequence number more than half the space ahead of s_l: it
        // can only be a packet from before the stream started.
        let s = RocState::new(5);
        assert_eq!(s.estimate(40_000), Err(SrtpError::TooOld));
        assert_eq!(s.estimate(32_773), Ok(32_773));

        let s = RocState::new((u64::from(u32::MAX) << 16) | 60_000);
        assert_eq!(s.estimate(1), Err(SrtpError::IndexExhausted));
        assert_eq!(s.estimate(60_001), Ok((u64::from(u32::MAX) << 16) | 60_001));
    }

    #[test]
    fn window_accepts_reorder_and_rejects_replay() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check(1000), Ok(()));
        w.accept(1000);
        assert_eq!(w.check(1000), Err(SrtpError::Replayed));
        assert_eq!(w.check(999), Ok(()));
        w.accept(999);
        assert_eq!(w.check(999), Err(SrtpError::Replayed));
        assert_eq!(w.check(1000 - REPLAY_WINDOW + 1), Ok(()));
        assert_eq!(w.check(1000 - REPLAY_WINDOW), Err(SrtpError::TooOld));
        w.accept(1100);
        assert_eq!(w.check(1000), Err(SrtpError::Replayed));
        assert_eq!(w.check(999), Err(SrtpError::Replayed));
        assert_eq!(w.check(998), Ok(()));
        w.accept(1100 + REPLAY_WINDOW);
        assert_eq!(w.check(1100), Err(SrtpError::TooOld));
        assert_eq!(w.check(1101), Ok(()));
        w.accept(u64::MAX);
        assert_eq!(w.check(u64::MAX), Err(SrtpError::Replayed));
        // Accepting something far below the window is a no-op, not a panic.
        w.accept(0);
        assert_eq!(w.check(0), Err(SrtpError::TooOld));
    }

    #[test]
    fn fresh_window_accepts_index_zero_once() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check(0), Ok(()));
        w.accept(0);
        assert_eq!(w.check(0), Err(SrtpError::Replayed));
        assert_eq!(w.check(1), Ok(()));
    }
}
