//! Typed identifiers. Wire-level values (SSRC, payload type, sequence number) and
//! control-plane entity ids are distinct types so they cannot be mixed up.

use serde::{Deserialize, Serialize};

/// RTP synchronisation source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Ssrc(pub u32);

/// RTP payload type (7 bits on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Pt(pub u8);

/// RTP sequence number (16 bits, wraps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SeqNo(pub u16);

// The control-plane entity ids are part of the control protocol.
pub use sfu_control::{ConsumerId, ProducerId, RouterId, TransportId};
