//! The room's active speaker: one active-speaker observer on the room's router (created
//! with the router, so again after the media server restarts), every audio producer
//! added to it, and its `dominantspeaker` notifications relayed to the pages as
//! `activeSpeaker`. Without an observer (the daemon refused one) the room works on,
//! without highlights.

use sfu_control::requests::{RouterCreateActiveSpeakerObserver, RtpObserverAddProducer};

use super::{Entity, Room};
use crate::protocol::ServerMessage;

impl Room {
    /// Creates the observer of the router just created.
    pub(super) async fn create_speaker_observer(&mut self) {
        let Some(router) = self.router_id.clone() else {
            return;
        };
        let create = RouterCreateActiveSpeakerObserver {
            router_id: router.into(),
            rtp_observer_id: None,
            interval: None,
        };
        match self.request(&create).await {
            Ok(created) => {
                let id = created.rtp_observer_id.0;
                self.track(&id, Entity::SpeakerObserver);
                self.speaker_observer = Some(id);
            }
            Err(e) => tracing::warn!(error = %e, "no active-speaker observer: no highlights"),
        }
    }

    /// Has the observer listen to a new audio producer.
    pub(super) async fn observe_speaker(&mut self, producer_id: &str) {
        let Some(observer) = self.speaker_observer.clone() else {
            return;
        };
        let add = RtpObserverAddProducer {
            rtp_observer_id: observer.into(),
            producer_id: producer_id.into(),
        };
        if let Err(e) = self.request(&add).await {
            tracing::warn!(producer = producer_id, error = %e, "producer not observed for the active speaker");
        }
    }

    /// `dominantspeaker`: tells every participant whose tile to highlight.
    pub(super) fn on_dominant_speaker(&mut self, producer_id: &str) {
        let Some(peer_id) = self.producers.get(producer_id).map(|p| p.peer_id.clone()) else {
            return;
        };
        if self.active_speaker.as_deref() == Some(peer_id.as_str()) {
            return;
        }
        tracing::debug!(peer = %peer_id, "active speaker");
        self.active_speaker = Some(peer_id.clone());
        self.broadcast("", &ServerMessage::ActiveSpeaker { peer_id });
    }

    /// What a participant who just joined is told about the active speaker.
    pub(super) fn active_speaker_for_newcomer(&mut self, newcomer: &str) {
        if let Some(peer_id) = self.active_speaker.clone() {
            self.send_to(newcomer, ServerMessage::ActiveSpeaker { peer_id });
        }
    }

    /// The media is gone: so are the observer and what it decided.
    pub(super) fn forget_speaker_observer(&mut self) {
        self.speaker_observer = None;
        self.active_speaker = None;
    }

    /// A participant left: it is nobody's active speaker any more.
    pub(super) fn speaker_left(&mut self, peer_id: &str) {
        if self.active_speaker.as_deref() == Some(peer_id) {
            self.active_speaker = None;
        }
    }
}
