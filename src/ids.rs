//! Typed control-plane entity ids: a router's, a transport's, a producer's and a
//! consumer's ids are distinct types, so a request handler cannot look one up as
//! another. (Wire values such as SSRCs stay plain integers on the packet path, where the
//! parsers and maps already name them.) The ids are part of the control protocol, so
//! they are defined once, in `sfu-control`.

pub use sfu_control::{ConsumerId, ProducerId, RouterId, RtpObserverId, TransportId};
