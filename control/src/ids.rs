//! Entity ids: 16 lowercase hex characters chosen by the worker. Each kind is its own
//! type so a transport id cannot be passed where a producer is meant.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! entity_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

entity_id!(
    /// A router (one room).
    RouterId
);
entity_id!(
    /// A WebRTC transport.
    TransportId
);
entity_id!(
    /// A producer (one incoming track).
    ProducerId
);
entity_id!(
    /// A consumer (one outgoing track for one subscriber).
    ConsumerId
);
entity_id!(
    /// An RTP observer (an active-speaker observer of one router).
    RtpObserverId
);
