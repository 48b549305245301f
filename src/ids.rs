//! Typed control-plane entity ids: a router's, a transport's, a producer's and a
//! consumer's ids are distinct types, so a request handler cannot look one up as
//! another. (Wire values such as SSRCs stay plain integers on the packet path, where the
//! parsers and maps already name them.)

use std::fmt;

use serde::{Deserialize, Serialize};

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
    /// A router (one room), chosen by the worker (random, `worker::requests`).
    RouterId
);
entity_id!(
    /// A WebRTC transport, chosen by the worker (random, `worker::requests`).
    TransportId
);
entity_id!(
    /// A producer (one incoming track), chosen by the worker (random, `worker::requests`).
    ProducerId
);
entity_id!(
    /// A consumer (one outgoing track for one subscriber), chosen by the worker (random, `worker::requests`).
    ConsumerId
);
