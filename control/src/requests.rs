//! One type per control method, each naming its response type.
//!
//! A request's fields other than its target are its `data`; the target (the entity acted
//! on) travels beside it in the request frame, so it is skipped by serde and set by
//! [`crate::decode_request`].

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ConsumerId, ProducerId, RouterId, RtpObserverId, TransportId};
use crate::method::Method;
use crate::params::{DtlsParameters, MediaKind, RtpCapabilities, RtpParameters};
use crate::responses::RtpObserverCreated;
use crate::responses::{
    ConsumerCreated, ConsumerLayers, ConsumerPriority, ConsumerStats, LatencyReport, Load,
    ProducerCreated, ProducerStats, RouterCreated, RouterStats, TransportCreated, TransportStats,
    WorkerStats,
};

/// A control request: its method, its response type and its target.
pub trait Request: Serialize + DeserializeOwned + fmt::Debug {
    /// The method this type is the request of.
    const METHOD: Method;
    /// Whether the request has a `data` object. Methods without parameters leave it out.
    const HAS_DATA: bool = true;
    /// The response's `data` (`()` when the method answers without data).
    type Response: Serialize + DeserializeOwned + fmt::Debug;
    /// The id of the entity acted on (none for `worker.*` and `router.create`).
    fn target(&self) -> Option<&str>;
    /// Sets the target read from the request frame (ignored by methods without one).
    fn set_target(&mut self, target: String);
}

macro_rules! request {
    ($ty:ident, $method:ident, $resp:ty) => {
        impl Request for $ty {
            const METHOD: Method = Method::$method;
            type Response = $resp;
            fn target(&self) -> Option<&str> {
                None
            }
            fn set_target(&mut self, _: String) {}
        }
    };
    ($ty:ident, $method:ident, $resp:ty, target $field:ident) => {
        impl Request for $ty {
            const METHOD: Method = Method::$method;
            type Response = $resp;
            fn target(&self) -> Option<&str> {
                Some(&self.$field.0)
            }
            fn set_target(&mut self, target: String) {
                self.$field.0 = target;
            }
        }
    };
}

/// Requests without parameters: a target at most.
macro_rules! dataless_request {
    ($(#[$doc:meta])* $ty:ident, $method:ident, $resp:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $ty {}

        impl Request for $ty {
            const METHOD: Method = Method::$method;
            const HAS_DATA: bool = false;
            type Response = $resp;
            fn target(&self) -> Option<&str> {
                None
            }
            fn set_target(&mut self, _: String) {}
        }
    };
    ($(#[$doc:meta])* $ty:ident, $method:ident, $resp:ty, target $field:ident: $id:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $ty {
            #[serde(skip)]
            pub $field: $id,
        }

        impl $ty {
            /// The request acting on `id`.
            pub fn new(id: impl Into<$id>) -> Self {
                Self { $field: id.into() }
            }
        }

        impl Request for $ty {
            const METHOD: Method = Method::$method;
            const HAS_DATA: bool = false;
            type Response = $resp;
            fn target(&self) -> Option<&str> {
                Some(&self.$field.0)
            }
            fn set_target(&mut self, target: String) {
                self.$field.0 = target;
            }
        }
    };
}

dataless_request!(
    /// `worker.load`: counts for placement.
    WorkerLoad, WorkerLoad, Load
);
dataless_request!(
    /// `worker.getStats`.
    WorkerGetStats, WorkerGetStats, WorkerStats
);

/// `worker.getLatency`: the forwarding latency since the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkerGetLatency {
    /// Start a new measurement window after reading.
    #[serde(default)]
    pub reset: bool,
}
request!(WorkerGetLatency, WorkerGetLatency, LatencyReport);

/// `router.create`: a router (one room) owned by this connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterCreate {
    /// Opaque to the daemon; echoed in `router.getStats`.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub app_data: Value,
}
request!(RouterCreate, RouterCreate, RouterCreated);

dataless_request!(
    /// `router.close`: closes the router and everything in it.
    RouterClose, RouterClose, (), target router_id: RouterId
);
dataless_request!(
    /// `router.getStats`.
    RouterGetStats, RouterGetStats, RouterStats, target router_id: RouterId
);

/// `transport.create`: a WebRTC transport in the target router.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportCreate {
    #[serde(skip)]
    pub router_id: RouterId,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub app_data: Value,
}
request!(TransportCreate, TransportCreate, TransportCreated, target router_id);

/// `transport.connect`: the remote side's DTLS parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportConnect {
    #[serde(skip)]
    pub transport_id: TransportId,
    pub dtls_parameters: DtlsParameters,
}
request!(TransportConnect, TransportConnect, (), target transport_id);

/// `transport.produce`: one incoming track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportProduce {
    #[serde(skip)]
    pub transport_id: TransportId,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
    #[serde(default)]
    pub paused: bool,
    /// Opaque to the daemon (e.g. the peer's name).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub app_data: Value,
}
request!(TransportProduce, TransportProduce, ProducerCreated, target transport_id);

/// `transport.consume`: one outgoing track of a producer of the same router.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportConsume {
    #[serde(skip)]
    pub transport_id: TransportId,
    pub producer_id: ProducerId,
    pub rtp_capabilities: RtpCapabilities,
    #[serde(default)]
    pub paused: bool,
    /// The MID the consumer's m-line uses, copied into the returned rtpParameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mid: Option<String>,
    /// A simulcast consumer's layers to start with (the highest when absent); ignored
    /// for a simple consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_layers: Option<PreferredLayers>,
    /// A following consumer (`consumer.setProducer`) outlives its producer: when the
    /// producer closes it goes idle until pointed at another one, instead of closing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow: bool,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub app_data: Value,
}
request!(TransportConsume, TransportConsume, ConsumerCreated, target transport_id);

/// The layers a simulcast consumer should forward when the path allows: a spatial layer
/// (encoding, 0 = lowest) and a temporal layer (the highest when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreferredLayers {
    pub spatial_layer: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_layer: Option<u8>,
}

dataless_request!(
    /// `transport.close`.
    TransportClose, TransportClose, (), target transport_id: TransportId
);
dataless_request!(
    /// `transport.getStats`.
    TransportGetStats, TransportGetStats, TransportStats, target transport_id: TransportId
);
dataless_request!(
    /// `producer.pause`: stops forwarding to all its consumers.
    ProducerPause, ProducerPause, (), target producer_id: ProducerId
);
dataless_request!(
    /// `producer.resume`.
    ProducerResume, ProducerResume, (), target producer_id: ProducerId
);
dataless_request!(
    /// `producer.close`.
    ProducerClose, ProducerClose, (), target producer_id: ProducerId
);
dataless_request!(
    /// `producer.getStats`.
    ProducerGetStats, ProducerGetStats, ProducerStats, target producer_id: ProducerId
);
dataless_request!(
    /// `consumer.pause`.
    ConsumerPause, ConsumerPause, (), target consumer_id: ConsumerId
);
dataless_request!(
    /// `consumer.resume`.
    ConsumerResume, ConsumerResume, (), target consumer_id: ConsumerId
);
dataless_request!(
    /// `consumer.close`.
    ConsumerClose, ConsumerClose, (), target consumer_id: ConsumerId
);
dataless_request!(
    /// `consumer.getStats`.
    ConsumerGetStats, ConsumerGetStats, ConsumerStats, target consumer_id: ConsumerId
);
dataless_request!(
    /// `consumer.requestKeyFrame`: a PLI (or FIR) to the publisher.
    ConsumerRequestKeyFrame, ConsumerRequestKeyFrame, (), target consumer_id: ConsumerId
);

/// `consumer.setPreferredLayers`: the layers a simulcast consumer forwards when the
/// path allows (clamped to what the producer sends).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerSetPreferredLayers {
    #[serde(skip)]
    pub consumer_id: ConsumerId,
    pub spatial_layer: u8,
    /// The highest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_layer: Option<u8>,
}
request!(ConsumerSetPreferredLayers, ConsumerSetPreferredLayers, ConsumerLayers, target consumer_id);

/// `consumer.setPriority`: the consumer's weight when its transport's bandwidth is
/// shared among its consumers (1-255, default 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerSetPriority {
    #[serde(skip)]
    pub consumer_id: ConsumerId,
    pub priority: u8,
}
request!(ConsumerSetPriority, ConsumerSetPriority, ConsumerPriority, target consumer_id);

/// `consumer.setProducer`: points the consumer at another producer of the same kind in
/// the same router. The consumer keeps its SSRC, MID and payload types; it switches at
/// the new producer's first keyframe (video) or next packet (audio) and then notifies
/// `producerchange`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumerSetProducer {
    #[serde(skip)]
    pub consumer_id: ConsumerId,
    pub producer_id: ProducerId,
}
request!(ConsumerSetProducer, ConsumerSetProducer, (), target consumer_id);
/// `router.createActiveSpeakerObserver`: an observer of the router's audio producers
/// that notifies `dominantspeaker` when the dominant speaker changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouterCreateActiveSpeakerObserver {
    #[serde(skip)]
    pub router_id: RouterId,
    /// The observer's id; the worker chooses one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtp_observer_id: Option<RtpObserverId>,
    /// How often, in milliseconds, the speakers are compared (default 300, 100-10000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u32>,
}
request!(
    RouterCreateActiveSpeakerObserver,
    RouterCreateActiveSpeakerObserver,
    RtpObserverCreated,
    target router_id
);

/// `rtpObserver.addProducer`: an audio producer of the observer's router to observe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RtpObserverAddProducer {
    #[serde(skip)]
    pub rtp_observer_id: RtpObserverId,
    pub producer_id: ProducerId,
}
request!(RtpObserverAddProducer, RtpObserverAddProducer, (), target rtp_observer_id);

/// `rtpObserver.removeProducer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RtpObserverRemoveProducer {
    #[serde(skip)]
    pub rtp_observer_id: RtpObserverId,
    pub producer_id: ProducerId,
}
request!(RtpObserverRemoveProducer, RtpObserverRemoveProducer, (), target rtp_observer_id);

dataless_request!(
    /// `rtpObserver.pause`: stops observing (levels are ignored, nothing is notified).
    RtpObserverPause, RtpObserverPause, (), target rtp_observer_id: RtpObserverId
);
dataless_request!(
    /// `rtpObserver.resume`.
    RtpObserverResume, RtpObserverResume, (), target rtp_observer_id: RtpObserverId
);
dataless_request!(
    /// `rtpObserver.close`.
    RtpObserverClose, RtpObserverClose, (), target rtp_observer_id: RtpObserverId
);

/// Something done with the request type of a method known only at run time, e.g. checking
/// a message of any method against its types.
pub trait MethodVisitor {
    type Output;
    /// Called with `R`, the request type of the method visited.
    fn visit<R: Request>(self) -> Self::Output;
}

impl Method {
    /// Calls `visitor` with this method's request type.
    pub fn visit<V: MethodVisitor>(self, visitor: V) -> V::Output {
        match self {
            Self::WorkerLoad => visitor.visit::<WorkerLoad>(),
            Self::WorkerGetStats => visitor.visit::<WorkerGetStats>(),
            Self::WorkerGetLatency => visitor.visit::<WorkerGetLatency>(),
            Self::RouterCreate => visitor.visit::<RouterCreate>(),
            Self::RouterClose => visitor.visit::<RouterClose>(),
            Self::RouterGetStats => visitor.visit::<RouterGetStats>(),
            Self::TransportCreate => visitor.visit::<TransportCreate>(),
            Self::TransportConnect => visitor.visit::<TransportConnect>(),
            Self::TransportProduce => visitor.visit::<TransportProduce>(),
            Self::TransportConsume => visitor.visit::<TransportConsume>(),
            Self::TransportClose => visitor.visit::<TransportClose>(),
            Self::TransportGetStats => visitor.visit::<TransportGetStats>(),
            Self::ProducerPause => visitor.visit::<ProducerPause>(),
            Self::ProducerResume => visitor.visit::<ProducerResume>(),
            Self::ProducerClose => visitor.visit::<ProducerClose>(),
            Self::ProducerGetStats => visitor.visit::<ProducerGetStats>(),
            Self::ConsumerPause => visitor.visit::<ConsumerPause>(),
            Self::ConsumerResume => visitor.visit::<ConsumerResume>(),
            Self::ConsumerClose => visitor.visit::<ConsumerClose>(),
            Self::ConsumerGetStats => visitor.visit::<ConsumerGetStats>(),
            Self::ConsumerRequestKeyFrame => visitor.visit::<ConsumerRequestKeyFrame>(),
            Self::ConsumerSetPreferredLayers => visitor.visit::<ConsumerSetPreferredLayers>(),
            Self::ConsumerSetPriority => visitor.visit::<ConsumerSetPriority>(),
            Self::ConsumerSetProducer => visitor.visit::<ConsumerSetProducer>(),
            Self::RouterCreateActiveSpeakerObserver => {
                visitor.visit::<RouterCreateActiveSpeakerObserver>()
            }
            Self::RtpObserverAddProducer => visitor.visit::<RtpObserverAddProducer>(),
            Self::RtpObserverRemoveProducer => visitor.visit::<RtpObserverRemoveProducer>(),
            Self::RtpObserverPause => visitor.visit::<RtpObserverPause>(),
            Self::RtpObserverResume => visitor.visit::<RtpObserverResume>(),
            Self::RtpObserverClose => visitor.visit::<RtpObserverClose>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Name;

    impl MethodVisitor for Name {
        type Output = &'static str;
        fn visit<R: Request>(self) -> &'static str {
            R::METHOD.name()
        }
    }

    #[test]
    fn every_method_visits_its_own_request_type() {
        for (name, m) in Method::ALL {
            assert_eq!(m.visit(Name), name);
        }
    }
}
