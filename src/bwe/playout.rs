//! The playout delay a subscriber transport asks its receiver for: the
//! `playout-delay` RTP header extension (webrtc.org experiments,
//! `http://www.webrtc.org/experiments/rtp-hdrext/playout-delay`), whose minimum makes a
//! browser hold each video frame that long after capture before it renders it.
//!
//! On a path that loses packets of its own (`inherent.rs`), a frame that lost one waits
//! for the retransmission, a round trip; when the repair is lost too, or the NACK, a
//! second round trip. A browser's jitter buffer plans for about one, so the second
//! freezes the picture: measured in the lab, behind 5 % loss and 50 ms of delay each way,
//! 8-13 % of the time frozen at 640x480, and under 3 % with the receiver's jitter buffer
//! held at 400 ms. So while the path's own loss is at least [`ENTER_LOSS`], the minimum
//! asked for is three round trips and a margin, within [`MIN_DELAY`]..=the configured
//! ceiling; when the loss falls under [`LEAVE_LOSS`] it goes back to zero (the browser's
//! own choice), which is announced for [`RESET_ANNOUNCE`] so that the receiver hears it
//! through loss, then the extension stops. The delay rises at once; it falls to a lower
//! minimum when the target has been lower for [`LOWER_AFTER`], so an RTT sample does not
//! make the picture speed up and slow down, and to zero as soon as the loss is under
//! [`LEAVE_LOSS`] (the path's loss estimate itself moves slowly).
//!
//! Sans-IO: fed `(now, inherent loss, RTT)`; the egress writes what [`Self::announce`]
//! says on every video packet while it says something.

use std::time::{Duration, Instant};

/// The path's own loss from which a minimum delay is asked for...
pub const ENTER_LOSS: f64 = 0.02;
/// ...and under which it is dropped again.
pub const LEAVE_LOSS: f64 = 0.01;
/// Round trips a frame may wait for: the first repair, a lost one's second, a margin.
const ROUND_TRIPS: f64 = 3.0;
/// Added to the round trips: the NACK's own wait (the receiver sends it on the next
/// packet, batched every 20 ms) and the retransmission's pacing.
const MARGIN: Duration = Duration::from_millis(40);
/// Never less than this when a delay is asked for at all.
pub const MIN_DELAY: Duration = Duration::from_millis(100);
/// The default ceiling: beyond this, conversation suffers more than a rare freeze.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(400);
/// RTT assumed until a receiver report gave one.
const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// How long a lower target must hold before the delay falls to it.
pub const LOWER_AFTER: Duration = Duration::from_secs(5);
/// How long a return to zero is announced before the extension stops.
pub const RESET_ANNOUNCE: Duration = Duration::from_secs(2);
/// The largest delay the extension can carry (12 bits of 10 ms).
const WIRE_MAX_MS: u16 = 4095 * 10;
/// The longest upward layer moves wait for the path's own loss to be known.
pub const UNDECIDED_HOLD: Duration = Duration::from_secs(5);
/// The maximum sent with a minimum: the browser's own ceiling (10 s), so its jitter
/// buffer still grows above the minimum when the path needs more.
const ANNOUNCED_MAX_MS: u16 = 10_000;

/// What the egress writes: minimum and maximum playout delay, in ms (multiples of 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlayoutDelayLimits {
    pub min_ms: u16,
    pub max_ms: u16,
}

impl PlayoutDelayLimits {
    /// The extension's 3 data bytes: 12 bits of minimum, 12 of maximum, in 10 ms units.
    pub fn to_bytes(self) -> [u8; 3] {
        let min = (self.min_ms.min(WIRE_MAX_MS) / 10) & 0x0fff;
        let max = (self.max_ms.min(WIRE_MAX_MS) / 10) & 0x0fff;
        [
            (min >> 4) as u8,
            (((min & 0x0f) << 4) | (max >> 8)) as u8,
            (max & 0xff) as u8,
        ]
    }
}

/// One subscriber transport's playout delay.
#[derive(Debug, Clone, Copy)]
pub struct PlayoutDelay {
    /// The ceiling; zero turns the whole mechanism off.
    max: Duration,
    /// The minimum asked for now (zero: none).
    current: Duration,
    /// Since when the target has been below `current`.
    lower_since: Option<Instant>,
    /// When `current` went back to zero (the reset is announced for a while).
    reset_at: Option<Instant>,
    /// Whether a minimum was ever asked for (nothing to reset before).
    engaged: bool,
    /// Since when the path has shown loss that is not yet known to be its own.
    undecided_since: Option<Instant>,
}

impl Default for PlayoutDelay {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_DELAY)
    }
}

impl PlayoutDelay {
    /// A controller asking for at most `max` (zero: never asks).
    pub fn new(max: Duration) -> Self {
        Self {
            max,
            current: Duration::ZERO,
            lower_since: None,
            reset_at: None,
            engaged: false,
            undecided_since: None,
        }
    }

    /// Whether upward layer moves wait at `now`: the last loss sample (`loss`) is at
    /// [`ENTER_LOSS`] or more, no delay is asked for yet and the path's own loss is not
    /// known, for at most [`UNDECIDED_HOLD`]. A higher layer starts with a keyframe, the
    /// largest frame there is; through loss with no delay to repair it in, it froze the
    /// picture for 300-600 ms in the lab, a second before the delay engaged.
    pub fn holds_upward_moves(
        &mut self,
        now: Instant,
        loss: Option<f64>,
        inherent_loss: Option<f64>,
    ) -> bool {
        let undecided = loss.is_some_and(|p| p >= ENTER_LOSS)
            && inherent_loss.is_none()
            && self.current.is_zero()
            && !self.max.is_zero();
        if !undecided {
            return false;
        }
        let since = *self.undecided_since.get_or_insert(now);
        now.saturating_duration_since(since) < UNDECIDED_HOLD
    }

    /// The minimum asked for now.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// Updates the delay at `now` from the path's own loss (`None`: not known yet) and
    /// the round trip to the subscriber.
    pub fn update(&mut self, now: Instant, inherent_loss: Option<f64>, rtt: Option<Duration>) {
        let loss = inherent_loss.unwrap_or(0.0);
        let lossy = if self.current.is_zero() {
            loss >= ENTER_LOSS
        } else {
            loss >= LEAVE_LOSS
        };
        let target = if lossy && !self.max.is_zero() {
            let rtt = rtt.unwrap_or(DEFAULT_RTT);
            round_up_10ms(rtt.mul_f64(ROUND_TRIPS) + MARGIN)
                .clamp(MIN_DELAY, self.max.max(MIN_DELAY))
        } else {
            Duration::ZERO
        };
        if target >= self.current {
            self.lower_since = None;
            if target > self.current {
                self.current = target;
                self.engaged = true;
                self.reset_at = None;
            }
            return;
        }
        let since = *self.lower_since.get_or_insert(now);
        if now.saturating_duration_since(since) >= LOWER_AFTER || target.is_zero() && !lossy {
            if target.is_zero() {
                self.reset_at = Some(now);
            }
            self.current = target;
            self.lower_since = None;
        }
    }

    /// What the egress writes on video packets at `now`, if anything: the minimum while
    /// one is asked for, and zero for [`RESET_ANNOUNCE`] after it went back to zero.
    pub fn announce(&self, now: Instant) -> Option<PlayoutDelayLimits> {
        if !self.engaged {
            return None;
        }
        if self.current.is_zero()
            && self
                .reset_at
                .is_none_or(|t| now.saturating_duration_since(t) >= RESET_ANNOUNCE)
        {
            return None;
        }
        let min_ms = u16::try_from(self.current.as_millis()).unwrap_or(WIRE_MAX_MS);
        Some(PlayoutDelayLimits {
            min_ms,
            max_ms: ANNOUNCED_MAX_MS.max(min_ms),
        })
    }
}

fn round_up_10ms(d: Duration) -> Duration {
    let ms = d.as_millis().div_ceil(10) * 10;
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn upward_moves_wait_while_loss_is_not_known_to_be_the_paths_own() {
        let t0 = Instant::now();
        let mut p = PlayoutDelay::default();
        assert!(!p.holds_upward_moves(t0, None, None), "no sample yet");
        assert!(!p.holds_upward_moves(t0, Some(0.01), None), "little loss");
        assert!(p.holds_upward_moves(t0, Some(0.06), None));
        assert!(p.holds_upward_moves(t0 + ms(4_900), Some(0.06), None));
        assert!(
            !p.holds_upward_moves(t0 + UNDECIDED_HOLD, Some(0.06), None),
            "not for ever"
        );
        let mut p = PlayoutDelay::default();
        assert!(p.holds_upward_moves(t0, Some(0.06), None));
        p.update(t0 + ms(1_000), Some(0.05), Some(ms(100)));
        assert!(
            !p.holds_upward_moves(t0 + ms(1_000), Some(0.06), Some(0.05)),
            "known and delayed for"
        );
        assert!(!PlayoutDelay::new(Duration::ZERO).holds_upward_moves(t0, Some(0.06), None));
    }

    #[test]
    fn a_clean_path_asks_for_nothing() {
        let t0 = Instant::now();
        let mut p = PlayoutDelay::default();
        p.update(t0, Some(0.005), Some(ms(100)));
        p.update(t0 + ms(10), None, None);
        assert_eq!(p.current(), Duration::ZERO);
        assert_eq!(p.announce(t0), None);
    }

    #[test]
    fn a_lossy_path_asks_for_three_round_trips_within_the_bounds() {
        let t0 = Instant::now();
        let mut p = PlayoutDelay::default();
        p.update(t0, Some(0.05), Some(ms(105)));
        // 3 x 105 + 40 = 355, rounded up to 10 ms.
        assert_eq!(p.current(), ms(360));
        assert_eq!(
            p.announce(t0),
            Some(PlayoutDelayLimits {
                min_ms: 360,
                max_ms: 10_000
            })
        );
        p.update(t0, Some(0.05), Some(ms(300)));
        assert_eq!(p.current(), DEFAULT_MAX_DELAY, "capped");
        let mut low = PlayoutDelay::default();
        low.update(t0, Some(0.05), Some(ms(10)));
        assert_eq!(low.current(), MIN_DELAY, "floored");
        let mut off = PlayoutDelay::new(Duration::ZERO);
        off.update(t0, Some(0.2), Some(ms(100)));
        assert_eq!(off.announce(t0), None, "turned off");
    }

    #[test]
    fn the_delay_rises_at_once_falls_late_and_its_reset_is_announced_then_stops() {
        let t0 = Instant::now();
        let mut p = PlayoutDelay::default();
        p.update(t0, Some(0.05), Some(ms(60)));
        assert_eq!(p.current(), ms(220));
        p.update(t0 + ms(100), Some(0.05), Some(ms(100)));
        assert_eq!(p.current(), ms(340), "up at once");
        p.update(t0 + ms(200), Some(0.05), Some(ms(60)));
        assert_eq!(p.current(), ms(340), "down only after a while");
        p.update(t0 + ms(200) + LOWER_AFTER, Some(0.05), Some(ms(60)));
        assert_eq!(p.current(), ms(220));
        // Hysteresis: 1.5 % keeps it, under 1 % drops it.
        let t1 = t0 + ms(300) + LOWER_AFTER;
        p.update(t1, Some(0.015), Some(ms(60)));
        assert_eq!(p.current(), ms(220));
        p.update(t1 + ms(10), Some(0.005), Some(ms(60)));
        assert_eq!(p.current(), Duration::ZERO);
        assert_eq!(
            p.announce(t1 + ms(20)),
            Some(PlayoutDelayLimits {
                min_ms: 0,
                max_ms: 10_000
            }),
            "the reset is announced"
        );
        assert_eq!(
            p.announce(t1 + ms(10) + RESET_ANNOUNCE),
            None,
            "then nothing"
        );
    }

    #[test]
    fn the_wire_form_packs_twelve_bits_each_in_10_ms_units() {
        let b = PlayoutDelayLimits {
            min_ms: 360,
            max_ms: 10_000,
        }
        .to_bytes();
        // 36 = 0x024, 1000 = 0x3E8.
        assert_eq!(b, [0x02, 0x43, 0xE8]);
    }
}
