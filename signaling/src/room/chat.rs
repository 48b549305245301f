//! A room's text chat: the recent history a late joiner gets (bounded, in memory for the
//! room's lifetime) and each participant's rate limit. Plain data; the room actor owns it
//! and passes the time in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::protocol::ChatEntry;

/// Messages a room keeps for late joiners; older ones are dropped.
pub const HISTORY_LEN: usize = 100;
/// Messages a participant may send at once after a quiet spell.
pub const BURST: u32 = 5;
/// One more message is allowed per this long (a sustained 30 a minute).
pub const REFILL: Duration = Duration::from_secs(2);

/// The last [`HISTORY_LEN`] messages of a room, oldest first. With the length limit on
/// each text (protocol.rs `CHAT_MAX_CHARS`) a room holds at most about 400 KB of chat.
#[derive(Debug, Default)]
pub struct ChatHistory {
    entries: VecDeque<ChatEntry>,
}

impl ChatHistory {
    pub fn push(&mut self, entry: ChatEntry) {
        if self.entries.len() == HISTORY_LEN {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The kept messages, oldest first.
    pub fn to_vec(&self) -> Vec<ChatEntry> {
        self.entries.iter().cloned().collect()
    }
}

/// A token bucket per participant: [`BURST`] messages, one more per [`REFILL`].
#[derive(Debug, Clone)]
pub struct ChatRate {
    tokens: u32,
    /// When the bucket last gained a token (or was full).
    refilled_at: Instant,
}

impl ChatRate {
    pub fn new(now: Instant) -> Self {
        Self {
            tokens: BURST,
            refilled_at: now,
        }
    }

    /// Whether a message sent at `now` is allowed (and, if so, takes its token).
    pub fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at);
        let gained = elapsed.as_millis() / REFILL.as_millis();
        if gained > 0 {
            let gained = u32::try_from(gained).unwrap_or(u32::MAX);
            self.tokens = self.tokens.saturating_add(gained).min(BURST);
            // Keep the fraction of a token already earned, unless the bucket is full.
            self.refilled_at = if self.tokens == BURST {
                now
            } else {
                self.refilled_at + REFILL * gained
            };
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> ChatEntry {
        ChatEntry {
            peer_id: "p".into(),
            name: "Ada".into(),
            text: format!("message {i}"),
            at: 1_700_000_000_000,
        }
    }

    /// Protects the room's memory: the history never grows past HISTORY_LEN.
    #[test]
    fn history_keeps_the_latest_messages_only() {
        let mut h = ChatHistory::default();
        assert!(h.is_empty());
        for i in 0..HISTORY_LEN + 7 {
            h.push(entry(i));
        }
        let kept = h.to_vec();
        assert_eq!(kept.len(), HISTORY_LEN);
        assert_eq!(kept[0].text, "message 7");
        assert_eq!(
            kept[HISTORY_LEN - 1].text,
            format!("message {}", HISTORY_LEN + 6)
        );
    }

    /// Protects the others from a flood: a burst, then one message per REFILL.
    #[test]
    fn rate_allows_a_burst_then_one_per_refill() {
        let t0 = Instant::now();
        let mut r = ChatRate::new(t0);
        for _ in 0..BURST {
            assert!(r.admit(t0));
        }
        assert!(!r.admit(t0));
        assert!(!r.admit(t0 + REFILL / 2));
        assert!(r.admit(t0 + REFILL));
        assert!(!r.admit(t0 + REFILL));
        // Earned fractions carry over: 1.5 REFILL later plus half a REFILL is one more.
        assert!(!r.admit(t0 + REFILL + REFILL / 2));
        assert!(r.admit(t0 + REFILL * 2));
        // A long quiet spell refills to the burst, no more.
        let later = t0 + REFILL * 1000;
        for _ in 0..BURST {
            assert!(r.admit(later));
        }
        assert!(!r.admit(later));
        // A clock that went backwards gives nothing and takes nothing away.
        assert!(!r.admit(t0));
    }
}
