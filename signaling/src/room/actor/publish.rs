//! The send side: a participant's offer becomes a send transport and one producer per
//! m-line, answered; the others then consume the new producers.

use std::collections::BTreeMap;

use serde_json::json;
use sfu_control::requests::{TransportClose, TransportConnect, TransportProduce};
use sfu_control::ErrorKind;

use super::{random_id, server_error, Entity, Produced, Room};
use crate::daemon::DaemonError;
use crate::protocol::{Direction, ErrorCode, ProducerInfo, ProtocolError, ServerMessage, Source};
use crate::sdp::answer::answer_send_offer;
use crate::sdp::parse::{parse, Description};
use crate::sdp::simulcast::EncodingHint;
use sfu_control::params::MediaKind;
use sfu_control::responses::TransportCreated;

impl Room {
    pub(super) async fn on_offer(
        &mut self,
        peer_id: &str,
        sdp: &str,
        epoch: u64,
        hints: &BTreeMap<String, Vec<EncodingHint>>,
        source: Source,
    ) -> Result<(), ProtocolError> {
        let Some(peer) = self.peer(peer_id) else {
            return Ok(());
        };
        if epoch > peer.epoch {
            return Err(ProtocolError::new(
                ErrorCode::OutOfOrder,
                format!("no restart with epoch {epoch} was sent"),
            ));
        }
        if epoch < peer.epoch || self.suspended.is_some() {
            // Made before the media server was lost: the `restart` sent (or about to be
            // sent) asks for a new one.
            tracing::debug!(peer = %peer_id, epoch, "offer from before a media restart: ignored");
            return Ok(());
        }
        let busy = match source {
            Source::Camera => peer.send.is_some(),
            Source::Screen => peer.screen.is_some(),
        };
        if busy {
            return Err(ProtocolError::new(
                ErrorCode::OutOfOrder,
                match source {
                    Source::Camera => {
                        "already publishing: the send side is negotiated once per join"
                    }
                    Source::Screen => "already sharing a screen: stopScreen first",
                },
            ));
        }
        let desc = parse(sdp)?;
        // Check the offer against a placeholder transport first, so that bad offers cost
        // no daemon transport.
        let checked = answer_send_offer(
            &desc,
            &placeholder_transport(),
            &self.settings.negotiation,
            0,
            hints,
        )?;
        if source == Source::Screen
            && !matches!(checked.producers.as_slice(), [p] if p.kind == MediaKind::Video)
        {
            return Err(ProtocolError::new(
                ErrorCode::BadMessage,
                "a screen share offer has exactly one video m-line",
            ));
        }
        let transport = self.create_transport(peer_id, Direction::Send).await?;
        let tid = transport.transport_id.clone();
        match self
            .publish(peer_id, &desc, &transport, hints, source)
            .await
        {
            Ok(()) => {
                if let Some(p) = self.peer_mut(peer_id) {
                    match source {
                        Source::Camera => p.send = Some(transport),
                        Source::Screen => p.screen = Some(transport),
                    }
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.request(&TransportClose::new(tid.clone())).await;
                self.untrack(&tid.0);
                let gone: Vec<String> = self
                    .producers
                    .iter()
                    .filter(|(_, p)| p.peer_id == peer_id && p.info.source == source)
                    .map(|(id, _)| id.clone())
                    .collect();
                for id in gone {
                    self.producers.remove(&id);
                    self.untrack(&id);
                }
                Err(e)
            }
        }
    }

    async fn publish(
        &mut self,
        peer_id: &str,
        desc: &Description,
        transport: &TransportCreated,
        hints: &BTreeMap<String, Vec<EncodingHint>>,
        source: Source,
    ) -> Result<(), ProtocolError> {
        let session_id = rand::random::<u32>().into();
        let answer = answer_send_offer(
            desc,
            transport,
            &self.settings.negotiation,
            session_id,
            hints,
        )?;
        let tid = &transport.transport_id;
        let connect = TransportConnect {
            transport_id: tid.clone(),
            dtls_parameters: answer.dtls,
        };
        self.request(&connect).await.map_err(|e| server_error(&e))?;
        let (audio_muted, video_muted) = self
            .peer(peer_id)
            .map_or((false, false), |p| (p.audio_muted, p.video_muted));
        let mut produced = Vec::new();
        for p in &answer.producers {
            // Mute is about the camera and microphone; a screen share stops instead.
            let paused = match (source, p.kind) {
                (Source::Screen, _) => false,
                (Source::Camera, MediaKind::Audio) => audio_muted,
                (Source::Camera, MediaKind::Video) => video_muted,
            };
            let produce = TransportProduce {
                transport_id: tid.clone(),
                kind: p.kind,
                rtp_parameters: p.rtp_parameters.clone(),
                paused,
                app_data: json!({ "peer": peer_id }),
            };
            let created = self.request(&produce).await.map_err(|e| match &e {
                DaemonError::Refused {
                    kind: ErrorKind::Unsupported | ErrorKind::InvalidData,
                    reason,
                    ..
                } => ProtocolError::new(ErrorCode::Unsupported, reason.clone()),
                _ => server_error(&e),
            })?;
            let producer_id = created.producer_id.0;
            if p.kind == MediaKind::Audio {
                self.observe_speaker(&producer_id).await;
            }
            let info = ProducerInfo {
                producer_id: producer_id.clone(),
                kind: p.kind,
                mid: p.rtp_parameters.mid.clone().unwrap_or_default(),
                source,
            };
            self.next_seq += 1;
            self.track(&producer_id, Entity::Producer);
            let rids = p
                .rtp_parameters
                .encodings
                .iter()
                .filter_map(|e| e.rid.clone())
                .collect();
            self.dynacast.add(&producer_id, peer_id, rids);
            self.producers.insert(
                producer_id,
                Produced {
                    peer_id: peer_id.to_owned(),
                    info: info.clone(),
                    seq: self.next_seq,
                    score: 0,
                },
            );
            produced.push(info);
        }
        tracing::info!(peer = %peer_id, tracks = produced.len(), ?source, "publishing");
        self.send_to(
            peer_id,
            ServerMessage::Answer {
                sdp: answer.sdp,
                producers: produced.clone(),
            },
        );
        for p in &produced {
            self.broadcast(
                peer_id,
                &ServerMessage::ProducerAdded {
                    peer_id: peer_id.to_owned(),
                    producer_id: p.producer_id.clone(),
                    kind: p.kind,
                },
            );
        }
        let others: Vec<String> = self
            .peers
            .iter()
            .filter(|p| p.id != peer_id)
            .map(|p| p.id.clone())
            .collect();
        for other in others {
            for p in &produced {
                self.consume(&other, &p.producer_id).await;
            }
        }
        // The first publisher is played by speaker players until someone speaks.
        self.players_follow().await;
        Ok(())
    }
}

impl Room {
    /// `stopScreen`: the screen share's producer goes (the others' consumers of it leave
    /// their next offers) and its send transport is closed.
    pub(super) async fn stop_screen(&mut self, peer_id: &str) {
        let Some(transport) = self.peer_mut(peer_id).and_then(|p| p.screen.take()) else {
            return;
        };
        let gone: Vec<(String, MediaKind)> = self
            .producers
            .iter()
            .filter(|(_, p)| p.peer_id == peer_id && p.info.source == Source::Screen)
            .map(|(id, p)| (id.clone(), p.info.kind))
            .collect();
        for (pid, kind) in gone {
            self.producers.remove(&pid);
            self.untrack(&pid);
            let mut closed = Vec::new();
            for other in &mut self.peers {
                closed.extend(
                    other
                        .recv
                        .remove_producer(&pid)
                        .into_iter()
                        .map(|c| c.consumer_id),
                );
            }
            for cid in closed {
                self.untrack(&cid);
            }
            self.broadcast(
                peer_id,
                &ServerMessage::ProducerRemoved {
                    peer_id: peer_id.to_owned(),
                    producer_id: pid,
                    kind,
                },
            );
        }
        let tid = transport.transport_id;
        self.untrack(&tid.0);
        if let Err(e) = self.request(&TransportClose::new(tid.clone())).await {
            tracing::warn!(transport = %tid.0, error = %e, "closing the screen share's transport failed");
        }
        tracing::info!(peer = %peer_id, "stopped sharing a screen");
    }
}

/// A transport with dummy values, to validate an offer before creating a real one.
pub(crate) fn placeholder_transport() -> TransportCreated {
    use sfu_control::params::{DtlsParameters, IceCandidate, IceParameters};
    TransportCreated {
        transport_id: random_id().into(),
        ice_role: sfu_control::responses::IceRole::Controlled,
        ice_state: sfu_control::params::IceState::New,
        dtls_state: sfu_control::params::DtlsState::New,
        ice_parameters: IceParameters {
            username_fragment: "placeholder".into(),
            password: "placeholderplaceholder".into(),
            ice_lite: true,
        },
        ice_candidates: vec![IceCandidate {
            foundation: "0".into(),
            priority: 1,
            ip: "127.0.0.1".into(),
            address: "127.0.0.1".into(),
            protocol: "udp".into(),
            port: 9,
            kind: "host".into(),
            tcp_type: None,
        }],
        dtls_parameters: DtlsParameters {
            role: sfu_control::params::DtlsRole::Auto,
            fingerprints: vec![],
        },
    }
}
