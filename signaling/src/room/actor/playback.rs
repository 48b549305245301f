//! Players (WHEP): a participant whose receive side is its own receive-only offer. It
//! plays one participant, named by the URL: the consumers of that participant's tracks
//! are made with the player's payload types and mids (the m-lines it offered) and the
//! answer goes back once they exist. A player cannot renegotiate, so its m-lines are
//! fixed: when the participant leaves, the m-lines fall silent; when a participant of
//! that name publishes (again, or for the first time), its tracks are placed in the
//! free m-lines of their kind without an offer (`Room::consume`).

use sfu_control::requests::TransportConnect;

use super::{Produced, Room};
use crate::protocol::{Direction, ErrorCode, ProtocolError, ServerMessage};
use crate::room::recv::RecvSession;
use crate::sdp::parse::parse;
use crate::sdp::playback::{build_play_answer, read_play_offer, PlayLine, PlayOffer, Shown};

/// What a player plays.
#[derive(Debug, Clone)]
pub(super) struct Playback {
    /// The name of the participant played.
    source: String,
    offer: PlayOffer,
}

impl Room {
    pub(super) async fn on_play(
        &mut self,
        peer_id: &str,
        source: &str,
        sdp: &str,
    ) -> Result<(), ProtocolError> {
        let Some(peer) = self.peer(peer_id) else {
            return Ok(());
        };
        if peer.playback.is_some() || peer.send.is_some() {
            return Err(ProtocolError::new(
                ErrorCode::OutOfOrder,
                "this participant already has media",
            ));
        }
        if self.suspended.is_some() {
            return Err(ProtocolError::new(
                ErrorCode::ServerError,
                "the media server is away; try again",
            ));
        }
        let desc = parse(sdp)?;
        let offer = read_play_offer(&desc, &self.settings.negotiation)?;
        let transport = self.create_transport(peer_id, Direction::Recv).await?;
        let connect = TransportConnect {
            transport_id: transport.transport_id.clone(),
            dtls_parameters: offer.dtls.clone(),
        };
        if let Some(p) = self.peer_mut(peer_id) {
            // From here the transport is the participant's: its removal closes it.
            p.recv = RecvSession::client_offered(rand::random::<u32>().into());
            p.recv.transport = Some(transport.clone());
            p.receives = true;
            p.playback = Some(Playback {
                source: source.to_owned(),
                offer: offer.clone(),
            });
        }
        self.request(&connect)
            .await
            .map_err(|e| super::server_error(&e))?;
        if let Some(p) = self.peer_mut(peer_id) {
            p.recv.connected = true;
        }
        let mut existing: Vec<(u64, String)> = self
            .producers
            .iter()
            .filter(|(_, p)| self.is_played_by(peer_id, p))
            .map(|(id, p)| (p.seq, id.clone()))
            .collect();
        existing.sort();
        for (_, producer_id) in existing {
            self.consume(peer_id, &producer_id).await;
        }
        let Some(peer) = self.peer(peer_id) else {
            return Ok(());
        };
        let shown: Vec<Shown<'_>> = peer
            .recv
            .shown()
            .map(|(mid, c)| Shown {
                mid,
                rtp: &c.rtp,
                stream_id: &c.peer_id,
                track_id: &c.consumer_id,
            })
            .collect();
        let sdp = build_play_answer(
            &desc,
            &offer,
            &transport,
            rand::random::<u32>().into(),
            &shown,
        );
        tracing::info!(peer = %peer_id, source, tracks = shown.len(), "playing");
        self.send_to(
            peer_id,
            ServerMessage::Answer {
                sdp,
                producers: Vec::new(),
            },
        );
        Ok(())
    }

    /// Whether player `peer_id` plays the participant that published `producer`.
    fn is_played_by(&self, peer_id: &str, producer: &Produced) -> bool {
        let source = self
            .peer(peer_id)
            .and_then(|p| p.playback.as_ref())
            .map(|pb| pb.source.as_str());
        let owner = self.peer(&producer.peer_id).map(|p| p.name.as_str());
        matches!((source, owner), (Some(s), Some(o)) if s.eq_ignore_ascii_case(o))
    }

    /// For a player: the m-line in which to show `producer`, if it plays that producer's
    /// participant and an m-line of its kind is free. None for everybody else.
    pub(super) fn play_line(&self, peer_id: &str, producer: &Produced) -> Option<PlayLine> {
        let peer = self.peer(peer_id)?;
        let playback = peer.playback.as_ref()?;
        if !self.is_played_by(peer_id, producer) {
            return None;
        }
        playback
            .offer
            .lines
            .iter()
            .find(|l| l.kind == producer.info.kind && peer.recv.consumer_at(&l.mid).is_none())
            .cloned()
    }
}
