//! Notifications: what a worker reports on its own, `{target, event, data}`.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::ids::ProducerId;
use crate::params::{DtlsState, IceState, TransportTuple};
use crate::responses::ConsumerLayers;

/// Every event a worker notifies (docs/PROTOCOL.md, "Notifications").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", content = "data", rename_all = "lowercase")]
pub enum Event {
    /// First message on every connection (target `worker-<i>`).
    Ready {
        worker: usize,
        workers: usize,
        pid: u32,
        /// Whether the connection came in on the admin socket.
        admin: bool,
    },
    /// A transport's ICE state changed.
    IceStateChange {
        #[serde(rename = "iceState")]
        ice_state: IceState,
    },
    /// A transport's selected tuple was set or moved.
    IceSelectedTupleChange {
        #[serde(rename = "iceSelectedTuple")]
        ice_selected_tuple: TransportTuple,
    },
    /// A transport's DTLS state changed.
    DtlsStateChange {
        #[serde(rename = "dtlsState")]
        dtls_state: DtlsState,
    },
    /// A transport's router was closed.
    RouterClose,
    /// A producer's or consumer's transport was closed.
    TransportClose,
    /// A consumer's producer was closed; the consumer is closed too (a following
    /// consumer goes idle instead, see `transport.consume`'s `follow`).
    ProducerClose,
    /// A consumer's producer was paused.
    ProducerPause,
    /// A consumer's producer was resumed.
    ProducerResume,
    /// A producer's (`score` only) or consumer's stream quality changed, 0-10.
    Score {
        score: u8,
        #[serde(
            rename = "producerScore",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        producer_score: Option<u8>,
    },
    /// A simulcast consumer's forwarded layers changed; `null` when it forwards nothing.
    LayersChange(Option<ConsumerLayers>),
    /// A consumer now forwards the producer `consumer.setProducer` pointed it at.
    ProducerChange {
        #[serde(rename = "producerId")]
        producer_id: ProducerId,
    },
    /// The worker is stopping; everything in the router is closed.
    WorkerClose,
    /// An active-speaker observer's dominant speaker changed (target: the observer).
    DominantSpeaker {
        #[serde(rename = "producerId")]
        producer_id: ProducerId,
    },
}

impl Event {
    /// The wire name (`event`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Ready { .. } => "ready",
            Self::IceStateChange { .. } => "icestatechange",
            Self::IceSelectedTupleChange { .. } => "iceselectedtuplechange",
            Self::DtlsStateChange { .. } => "dtlsstatechange",
            Self::RouterClose => "routerclose",
            Self::TransportClose => "transportclose",
            Self::ProducerClose => "producerclose",
            Self::ProducerPause => "producerpause",
            Self::ProducerResume => "producerresume",
            Self::Score { .. } => "score",
            Self::LayersChange(_) => "layerschange",
            Self::ProducerChange { .. } => "producerchange",
            Self::WorkerClose => "workerclose",
            Self::DominantSpeaker { .. } => "dominantspeaker",
        }
    }
}

/// One notification: the entity it is about and what happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// The entity's id (`worker-<i>` for `ready`).
    pub target: String,
    pub event: Event,
}

impl Serialize for Notification {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut v = serde_json::to_value(&self.event).map_err(serde::ser::Error::custom)?;
        if let Value::Object(map) = &mut v {
            map.insert("target".into(), Value::String(self.target.clone()));
        }
        v.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Notification {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut v = Value::deserialize(d)?;
        let Some(Value::String(target)) = v.as_object_mut().and_then(|m| m.remove("target")) else {
            return Err(D::Error::custom("a notification needs a string target"));
        };
        let event = Event::deserialize(v).map_err(D::Error::custom)?;
        Ok(Self { target, event })
    }
}
