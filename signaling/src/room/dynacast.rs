//! Dynacast: a publisher sends the upper encodings of a simulcast track only while some
//! subscriber needs them (LiveKit's name for it). The room works out, per producer, how
//! many encodings (counted from the lowest) its consumers need; this module decides when
//! the publisher's page is told to change which of its encodings are active: at once when
//! more are needed, after [`DEACTIVATE_AFTER`] of needing fewer (a tile resized back and
//! forth, or a participant reconnecting, does not make the publisher's encoder restart
//! layers each time). The lowest encoding always stays active: a new subscriber gets a
//! picture at once, and a subscriber whose path narrows always has a layer to fall back to.
//!
//! A consumer needs what its page prefers, not what the daemon forwards now: a subscriber
//! held on a lower layer by its bandwidth must find the upper encoding sent when its path
//! widens, or its allocator could never move up.
//!
//! Pure bookkeeping with the time passed in: the room feeds it and sends what it returns.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::protocol::EncodingActive;

/// How long an upper encoding nobody needs keeps being sent.
pub const DEACTIVATE_AFTER: Duration = Duration::from_secs(3);

/// A change to send to the publisher's page (`setEncodings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodingChange {
    /// The publishing participant.
    pub peer_id: String,
    pub producer_id: String,
    /// Every encoding, lowest first.
    pub encodings: Vec<EncodingActive>,
}

/// What a consumer needs of its producer's encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing (paused by its page, e.g. its tile is hidden).
    Nothing,
    /// Up to this spatial layer (0: the lowest encoding).
    UpTo(u8),
    /// Whatever there is: the page said nothing yet.
    All,
}

impl Need {
    /// Encodings needed, counted from the lowest, of `total`.
    fn encodings(self, total: usize) -> usize {
        match self {
            Self::Nothing => 0,
            Self::UpTo(layer) => (usize::from(layer) + 1).min(total),
            Self::All => total,
        }
    }
}

/// One simulcast producer.
#[derive(Debug)]
struct Publication {
    peer_id: String,
    /// Rids, lowest first.
    rids: Vec<String>,
    /// Encodings the page was last told to keep active (all at first: pages start so).
    active: usize,
    /// Since when fewer than `active` have been needed, and how many.
    fewer: Option<(Instant, usize)>,
}

impl Publication {
    fn change(&self, producer_id: &str) -> EncodingChange {
        EncodingChange {
            peer_id: self.peer_id.clone(),
            producer_id: producer_id.to_owned(),
            encodings: self
                .rids
                .iter()
                .enumerate()
                .map(|(i, rid)| EncodingActive {
                    rid: rid.clone(),
                    active: i < self.active,
                })
                .collect(),
        }
    }
}

/// The room's simulcast producers and what their pages send.
#[derive(Debug, Default)]
pub struct Dynacast {
    producers: HashMap<String, Publication>,
}

impl Dynacast {
    /// A new producer of `peer_id` with these encodings (rids, lowest first); a
    /// producer of fewer than two encodings has nothing to turn off and is not kept.
    pub fn add(&mut self, producer_id: &str, peer_id: &str, rids: Vec<String>) {
        if rids.len() < 2 {
            return;
        }
        self.producers.insert(
            producer_id.to_owned(),
            Publication {
                peer_id: peer_id.to_owned(),
                active: rids.len(),
                rids,
                fewer: None,
            },
        );
    }

    pub fn remove(&mut self, producer_id: &str) {
        self.producers.remove(producer_id);
    }

    /// Forgets everything (the media was lost: the producers are gone).
    pub fn clear(&mut self) {
        self.producers.clear();
    }

    /// The producers to ask [`Dynacast::update`] about.
    pub fn producer_ids(&self) -> impl Iterator<Item = &str> {
        self.producers.keys().map(String::as_str)
    }

    /// The consumers of `producer_id` now need `needs`: returns the change to send now,
    /// if any (more encodings needed than active).
    pub fn update(
        &mut self,
        now: Instant,
        producer_id: &str,
        needs: impl IntoIterator<Item = Need>,
    ) -> Option<EncodingChange> {
        let p = self.producers.get_mut(producer_id)?;
        let total = p.rids.len();
        let needed = needs
            .into_iter()
            .map(|n| n.encodings(total))
            .max()
            .unwrap_or(0)
            .max(1);
        if needed > p.active {
            p.active = needed;
            p.fewer = None;
            return Some(p.change(producer_id));
        }
        if needed == p.active {
            p.fewer = None;
        } else {
            // The deadline runs from the first moment fewer were needed; a later need
            // that is lower still does not restart it.
            let since = p.fewer.map_or(now, |(since, _)| since);
            p.fewer = Some((since, needed));
        }
        None
    }

    /// When [`Dynacast::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.producers
            .values()
            .filter_map(|p| p.fewer.map(|(since, _)| since + DEACTIVATE_AFTER))
            .min()
    }

    /// The deactivations due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<EncodingChange> {
        let mut out = Vec::new();
        for (id, p) in &mut self.producers {
            let Some((since, needed)) = p.fewer else {
                continue;
            };
            if now < since + DEACTIVATE_AFTER {
                continue;
            }
            p.fewer = None;
            p.active = needed;
            out.push(p.change(id));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dynacast() -> (Dynacast, Instant) {
        let mut d = Dynacast::default();
        d.add("p", "ada", vec!["q".into(), "h".into(), "f".into()]);
        (d, Instant::now())
    }

    fn active(c: &EncodingChange) -> Vec<bool> {
        c.encodings.iter().map(|e| e.active).collect()
    }

    #[test]
    fn an_unneeded_upper_layer_is_turned_off_after_the_delay_and_on_at_once() {
        let (mut d, t0) = dynacast();
        // Two small tiles: layer 1 at most.
        assert_eq!(d.update(t0, "p", [Need::UpTo(0), Need::UpTo(1)]), None);
        assert_eq!(d.poll_timeout(), Some(t0 + DEACTIVATE_AFTER));
        assert!(d.handle_timeout(t0 + DEACTIVATE_AFTER / 2).is_empty());
        // Still the same need a second later: the deadline does not move.
        assert_eq!(
            d.update(t0 + Duration::from_secs(1), "p", [Need::UpTo(1)]),
            None
        );
        let off = d.handle_timeout(t0 + DEACTIVATE_AFTER);
        assert_eq!(off.len(), 1);
        assert_eq!(off[0].peer_id, "ada");
        assert_eq!(active(&off[0]), [true, true, false]);
        assert_eq!(off[0].encodings[2].rid, "f");
        assert_eq!(d.poll_timeout(), None);
        // A tile grows: back on at once.
        let t1 = t0 + Duration::from_secs(10);
        let on = d.update(t1, "p", [Need::UpTo(1), Need::UpTo(2)]).unwrap();
        assert_eq!(active(&on), [true, true, true]);
        assert_eq!(d.update(t1, "p", [Need::UpTo(2)]), None);
    }

    #[test]
    fn a_need_that_comes_back_before_the_delay_cancels_it() {
        let (mut d, t0) = dynacast();
        assert_eq!(d.update(t0, "p", [Need::UpTo(0)]), None);
        assert_eq!(
            d.update(t0 + Duration::from_secs(1), "p", [Need::All]),
            None
        );
        assert_eq!(d.poll_timeout(), None);
        assert!(d.handle_timeout(t0 + DEACTIVATE_AFTER * 2).is_empty());
    }

    #[test]
    fn the_lowest_encoding_stays_when_nobody_needs_any() {
        let (mut d, t0) = dynacast();
        // Every tile hidden, or no consumer at all.
        assert_eq!(d.update(t0, "p", [Need::Nothing, Need::Nothing]), None);
        let off = d.handle_timeout(t0 + DEACTIVATE_AFTER);
        assert_eq!(active(&off[0]), [true, false, false]);
        assert_eq!(d.update(t0 + DEACTIVATE_AFTER * 2, "p", []), None);
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn layers_beyond_the_encodings_and_single_encoding_producers() {
        let (mut d, t0) = dynacast();
        assert_eq!(d.update(t0, "p", [Need::UpTo(7)]), None);
        assert_eq!(d.poll_timeout(), None);
        d.add("single", "bob", vec!["q".into()]);
        assert_eq!(d.update(t0, "single", [Need::Nothing]), None);
        assert_eq!(d.producer_ids().collect::<Vec<_>>(), ["p"]);
        d.remove("p");
        assert!(d.handle_timeout(t0 + DEACTIVATE_AFTER).is_empty());
        assert_eq!(d.update(t0, "unknown", [Need::All]), None);
    }
}
