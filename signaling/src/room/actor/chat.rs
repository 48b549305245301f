//! Text chat: a participant's message goes to everyone in the room (its sender
//! included, which confirms it) and into the room's history, which a participant who
//! joins later gets after `joined`.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::Room;
use crate::protocol::{ChatEntry, ErrorCode, ProtocolError, ServerMessage};

impl Room {
    /// A checked chat text from `peer_id`, received at `now`.
    pub(super) fn on_chat(
        &mut self,
        peer_id: &str,
        text: String,
        now: Instant,
    ) -> Result<(), ProtocolError> {
        let Some(peer) = self.peers.iter_mut().find(|p| p.id == peer_id) else {
            return Ok(());
        };
        if !peer.chat_rate.admit(now) {
            return Err(ProtocolError::new(
                ErrorCode::RateLimited,
                "too many chat messages: wait a moment",
            ));
        }
        // Wall-clock time for people to read; a clock before 1970 shows as 0.
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let entry = ChatEntry {
            peer_id: peer_id.to_owned(),
            name: peer.name.clone(),
            text,
            at,
        };
        self.chat.push(entry.clone());
        // An empty `except` excludes nobody: the sender gets its own message back.
        self.broadcast("", &ServerMessage::ChatMessage { entry });
        Ok(())
    }

    /// A newcomer gets the recent chat, if there is any.
    pub(super) fn chat_history_for_newcomer(&mut self, peer_id: &str) {
        if self.chat.is_empty() {
            return;
        }
        let messages = self.chat.to_vec();
        self.send_to(peer_id, ServerMessage::ChatHistory { messages });
    }
}
