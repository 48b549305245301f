//! The length-prefixed framing is `sfu-control`'s sans-IO codec.

pub use sfu_control::framing::*;
