//! The parameter objects (mediasoup's JSON shapes) are defined by `sfu-control`.

pub use sfu_control::params::*;
