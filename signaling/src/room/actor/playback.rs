//! Players (WHEP): a participant whose receive side is its own receive-only offer. It
//! plays one participant, named by the URL: the consumers of that participant's tracks
//! are made with the player's payload types and mids (the m-lines it offered) and the
//! answer goes back once they exist. A player cannot renegotiate, so its m-lines are
//! fixed: when the participant leaves, the m-lines fall silent; when a participant of
//! that name publishes (again, or for the first time), its tracks are placed in the
//! free m-lines of their kind without an offer (`Room::consume`).
//!
//! A speaker player (`POST /whep/<room>`, no participant named) plays the room's active
//! speaker, or before anyone spoke the first publisher. Its consumers follow
//! (`transport.consume` with `follow`): when the speaker changes, each is pointed at the
//! new speaker's track of its kind (`consumer.setProducer`; the daemon switches at a
//! keyframe for video), so the m-lines, SSRCs and payload types stay as answered. A
//! speaker without video leaves the video on the previous one; a played participant
//! that leaves leaves the consumers idle until the next one is played.

use sfu_control::params::MediaKind;
use sfu_control::requests::{ConsumerSetProducer, TransportConnect};

use super::{Produced, Room};
use crate::protocol::{Direction, ErrorCode, ProtocolError, ServerMessage};
use crate::room::recv::RecvSession;
use crate::sdp::parse::parse;
use crate::sdp::playback::{build_play_answer, read_play_offer, PlayLine, PlayOffer, Shown};

/// What a player plays.
#[derive(Debug, Clone)]
pub(super) struct Playback {
    /// The name of the participant played; None: the active speaker.
    source: Option<String>,
    /// A speaker player's participant played now (its id).
    followed: Option<String>,
    offer: PlayOffer,
}

impl Playback {
    /// Whether it follows the active speaker.
    pub(super) fn follows(&self) -> bool {
        self.source.is_none()
    }
}

impl Room {
    pub(super) async fn on_play(
        &mut self,
        peer_id: &str,
        source: Option<&str>,
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
                source: source.map(str::to_owned),
                followed: None,
                offer: offer.clone(),
            });
        }
        self.request(&connect)
            .await
            .map_err(|e| super::server_error(&e))?;
        let followed = source.is_none().then(|| self.speaker_to_play()).flatten();
        if let Some(p) = self.peer_mut(peer_id) {
            p.recv.connected = true;
            if let Some(pb) = p.playback.as_mut() {
                pb.followed = followed;
            }
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
        let source = source.unwrap_or("the active speaker");
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
        let Some(pb) = self.peer(peer_id).and_then(|p| p.playback.as_ref()) else {
            return false;
        };
        let Some(source) = pb.source.as_deref() else {
            return pb.followed.as_deref() == Some(producer.peer_id.as_str());
        };
        let owner = self.peer(&producer.peer_id).map(|p| p.name.as_str());
        owner.is_some_and(|o| source.eq_ignore_ascii_case(o))
    }

    /// Whether `peer_id` is a speaker player (its consumers follow).
    pub(super) fn follows_speaker(&self, peer_id: &str) -> bool {
        self.peer(peer_id)
            .and_then(|p| p.playback.as_ref())
            .is_some_and(Playback::follows)
    }

    /// Whom speaker players play: the active speaker while it publishes, else the
    /// participant whose track was published first.
    fn speaker_to_play(&self) -> Option<String> {
        let publishes = |id: &str| self.producers.values().any(|p| p.peer_id == id);
        if let Some(s) = self.active_speaker.clone().filter(|s| publishes(s)) {
            return Some(s);
        }
        self.producers
            .values()
            .min_by_key(|p| p.seq)
            .map(|p| p.peer_id.clone())
    }

    /// Points every speaker player at the participant to play now (see
    /// [`Self::speaker_to_play`]): its consumers of each kind that participant
    /// publishes are set on that track (`consumer.setProducer`), and a kind it has no
    /// consumer of yet is consumed into its free m-line.
    pub(super) async fn players_follow(&mut self) {
        let Some(target) = self.speaker_to_play() else {
            return;
        };
        let players: Vec<String> = self
            .peers
            .iter()
            .filter(|p| {
                p.playback
                    .as_ref()
                    .is_some_and(|pb| pb.follows() && pb.followed.as_deref() != Some(&target))
            })
            .map(|p| p.id.clone())
            .collect();
        let mut tracks: Vec<(u64, String, MediaKind)> = self
            .producers
            .iter()
            .filter(|(_, p)| p.peer_id == target)
            .map(|(id, p)| (p.seq, id.clone(), p.info.kind))
            .collect();
        tracks.sort_by_key(|(seq, _, _)| *seq);
        for player in players {
            if let Some(pb) = self.peer_mut(&player).and_then(|p| p.playback.as_mut()) {
                pb.followed = Some(target.clone());
            }
            for (_, producer_id, kind) in &tracks {
                let consumer = self.peer(&player).and_then(|p| {
                    p.recv
                        .consumers()
                        .find(|c| c.kind == *kind)
                        .map(|c| c.consumer_id.clone())
                });
                let Some(consumer_id) = consumer else {
                    self.consume(&player, producer_id).await;
                    continue;
                };
                let set = ConsumerSetProducer {
                    consumer_id: consumer_id.as_str().into(),
                    producer_id: producer_id.as_str().into(),
                };
                match self.request(&set).await {
                    Ok(()) => {
                        let slot = self
                            .peer_mut(&player)
                            .and_then(|p| p.recv.consumer_mut(&consumer_id));
                        if let Some(c) = slot {
                            c.producer_id = producer_id.clone();
                            c.peer_id = target.clone();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(peer = %player, consumer = %consumer_id, producer = %producer_id, error = %e, "player does not follow this track");
                    }
                }
            }
        }
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
