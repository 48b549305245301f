//! Routers (one per room), producers (incoming tracks) and consumers (outgoing tracks).
//!
//! The router is maps plus handles: entities live in slabs owned by the worker core and
//! refer to each other by slab key; the string ids of the control channel map to keys in
//! the core. A producer owns its ingest (`producer`), a consumer its egress
//! (`consumer`); the forwarding policy per consumer is its kind (simple today: one
//! stream in, one out, sequence/timestamp rewriting by `rtp::munger`).

pub mod active_speaker;
pub mod consumer;
pub mod nack;
pub mod negotiate;
pub mod producer;
pub mod recv_stats;
pub mod rtx_buffer;
pub mod score;

pub use consumer::{
    Consumer, ConsumerKind, ConsumerParams, Egress, LayerClock, SourceMaps, Transmission,
    MAX_SPATIAL_LAYERS,
};
pub use producer::{Ingested, KeyframeNeed, Producer, ProducerParams, KEYFRAME_REQUEST_INTERVAL};

use serde_json::Value;

use crate::ids::RouterId;

/// Slab key of a transport.
pub type TransportKey = usize;
/// Slab key of a producer.
pub type ProducerKey = usize;
/// Slab key of a consumer.
pub type ConsumerKey = usize;
/// Slab key of an RTP observer.
pub type RtpObserverKey = usize;
/// Identifies one control connection (notifications go to the router's owner).
pub type ConnId = u64;

/// A room: the transports and producers that may see each other.
#[derive(Debug)]
pub struct Router {
    pub id: RouterId,
    pub owner: ConnId,
    pub transports: Vec<TransportKey>,
    pub app_data: Value,
    /// Its active-speaker observers (keys in the core's `RtpObservers`).
    pub observers: Vec<RtpObserverKey>,
    /// The dominant speaker its observers last chose (see [`Self::active_speaker`]).
    pub dominant_speaker: Option<ProducerKey>,
}

impl Router {
    /// A router owned by control connection `owner`.
    pub fn new(id: RouterId, owner: ConnId, app_data: Value) -> Self {
        Self {
            id,
            owner,
            transports: Vec::new(),
            app_data,
            observers: Vec::new(),
            dominant_speaker: None,
        }
    }

    /// The audio producer its active-speaker observers last named dominant, for
    /// whoever ranks the room's streams (bandwidth allocation); `None` before anyone
    /// spoke, without an observer, or once that producer closed.
    pub fn active_speaker(&self) -> Option<ProducerKey> {
        self.dominant_speaker
    }
}
