//! Typed identifiers. Wire-level values (SSRC, payload type, sequence number) and
//! control-plane entity ids are distinct types so they cannot be mixed up.

use std::fmt;

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

macro_rules! entity_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }
    };
}

entity_id!(
    /// A router (one room), chosen by the control client.
    RouterId
);
entity_id!(
    /// A WebRTC transport, chosen by the control client.
    TransportId
);
entity_id!(
    /// A producer (one incoming track), chosen by the control client.
    ProducerId
);
entity_id!(
    /// A consumer (one outgoing track for one subscriber), chosen by the control client.
    ConsumerId
);
