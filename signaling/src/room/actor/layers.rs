//! What each subscriber's page asks of its video consumers (the layers its tiles need,
//! pausing hidden tiles), and dynacast: the publishers' pages told which simulcast
//! encodings anyone needs (room/dynacast.rs decides when).

use std::time::Instant;

use sfu_control::requests::{ConsumerPause, ConsumerResume, ConsumerSetPreferredLayers};
use sfu_control::responses::ConsumerLayers;

use super::super::dynacast::Need;
use super::super::recv::ConsumerSlot;
use super::{server_error, Room};
use crate::daemon::DaemonError;
use crate::protocol::{ErrorCode, ProtocolError, ServerMessage};
use sfu_control::params::MediaKind;
use sfu_control::ErrorKind;

fn not_found(consumer_id: &str) -> ProtocolError {
    let shown: String = consumer_id.chars().take(32).collect();
    ProtocolError::new(
        ErrorCode::NotFound,
        format!("no consumer {shown:?} of yours (closed, or never yours)"),
    )
}

/// A daemon refusal about a consumer: `NotFound` when the daemon has closed it already
/// (its `producerclose` is on its way), else a server error.
fn consumer_error(e: &DaemonError, consumer_id: &str) -> ProtocolError {
    match e {
        DaemonError::Refused {
            kind: ErrorKind::NotFound,
            ..
        } => not_found(consumer_id),
        e => server_error(e),
    }
}

/// What `c` needs of its producer's encodings.
pub(super) fn need(c: &ConsumerSlot) -> Need {
    if c.hidden {
        return Need::Nothing;
    }
    c.preferred_spatial.map_or(Need::All, Need::UpTo)
}

impl Room {
    /// `preferredLayers`: kept for dynacast and, for a simulcast consumer, passed on to
    /// the daemon (a simple consumer has one layer to forward).
    pub(super) async fn on_preferred_layers(
        &mut self,
        peer_id: &str,
        consumer_id: &str,
        spatial: u8,
        temporal: Option<u8>,
    ) -> Result<(), ProtocolError> {
        let Some(peer) = self.peer_mut(peer_id) else {
            return Ok(());
        };
        let Some(c) = peer.recv.consumer_mut(consumer_id) else {
            return Err(not_found(consumer_id));
        };
        if c.kind != MediaKind::Video {
            return Err(ProtocolError::new(
                ErrorCode::BadMessage,
                "layers are for video consumers",
            ));
        }
        if c.preferred_spatial == Some(spatial) && c.preferred_temporal == temporal {
            return Ok(());
        }
        c.preferred_spatial = Some(spatial);
        c.preferred_temporal = temporal;
        if !c.simulcast {
            return Ok(());
        }
        let request = ConsumerSetPreferredLayers {
            consumer_id: consumer_id.into(),
            spatial_layer: spatial,
            temporal_layer: temporal,
        };
        self.request(&request)
            .await
            .map(|_| ())
            .map_err(|e| consumer_error(&e, consumer_id))
    }

    /// The daemon's `layerschange` of a consumer of `peer_id`: relayed to its page.
    pub(super) fn on_layers_change(
        &mut self,
        peer_id: &str,
        consumer_id: &str,
        layers: Option<ConsumerLayers>,
    ) {
        let Some(c) = self
            .peer(peer_id)
            .and_then(|p| p.recv.consumers().find(|c| c.consumer_id == consumer_id))
        else {
            return;
        };
        let msg = ServerMessage::LayersChanged {
            consumer_id: consumer_id.to_owned(),
            producer_id: c.producer_id.clone(),
            peer_id: c.peer_id.clone(),
            spatial_layer: layers.map(|l| l.spatial_layer),
            temporal_layer: layers.map(|l| l.temporal_layer),
        };
        self.send_to(peer_id, msg);
    }

    /// `pauseConsumer`: the page stops (or restarts) receiving one of its consumers. This
    /// is the subscriber's own pause, apart from the publisher's mute (which pauses the
    /// producer): the daemon forwards only when neither is paused. A consumer not yet
    /// resumed (its offer is unanswered) is only marked: the answer then leaves it paused.
    pub(super) async fn on_pause_consumer(
        &mut self,
        peer_id: &str,
        consumer_id: &str,
        paused: bool,
    ) -> Result<(), ProtocolError> {
        let Some(peer) = self.peer_mut(peer_id) else {
            return Ok(());
        };
        let Some(c) = peer.recv.consumer_mut(consumer_id) else {
            return Err(not_found(consumer_id));
        };
        if c.hidden == paused {
            return Ok(());
        }
        c.hidden = paused;
        if !c.resumed {
            return Ok(());
        }
        let result = if paused {
            self.request(&ConsumerPause::new(consumer_id)).await
        } else {
            self.request(&ConsumerResume::new(consumer_id)).await
        };
        if let Err(e) = result {
            // Leave the mark as the daemon has it.
            if let Some(c) = self
                .peer_mut(peer_id)
                .and_then(|p| p.recv.consumer_mut(consumer_id))
            {
                c.hidden = !paused;
            }
            return Err(consumer_error(&e, consumer_id));
        }
        Ok(())
    }

    /// Works out what every simulcast producer's consumers need and tells publishers'
    /// pages what changed (at once when more is needed, later when less).
    pub(super) fn update_dynacast(&mut self, now: Instant) {
        let ids: Vec<String> = self.dynacast.producer_ids().map(str::to_owned).collect();
        let mut changes = Vec::new();
        for id in ids {
            if !self.producers.contains_key(&id) {
                self.dynacast.remove(&id);
                continue;
            }
            let needs = self
                .peers
                .iter()
                .flat_map(|p| p.recv.consumers())
                .filter(|c| c.producer_id == id)
                .map(need);
            changes.extend(self.dynacast.update(now, &id, needs));
        }
        changes.extend(self.dynacast.handle_timeout(now));
        for c in changes {
            tracing::debug!(peer = %c.peer_id, producer = %c.producer_id, encodings = ?c.encodings, "dynacast");
            self.send_to(
                &c.peer_id,
                ServerMessage::SetEncodings {
                    producer_id: c.producer_id,
                    encodings: c.encodings,
                },
            );
        }
    }
}
