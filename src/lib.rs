//! `sfu`: a thread-per-core WebRTC selective forwarding unit.
//!
//! Everything except `worker::shell` is sans-IO: plain types fed `(now, bytes)` that
//! return what to send and when to wake. See docs/ARCHITECTURE.md.

pub mod batch;
pub mod bwe;
pub mod channel;
pub mod config;
pub mod control_dir;
pub mod demux;
pub mod dtls;
#[doc(hidden)]
pub mod fuzzing;
pub mod ice;
pub mod ids;
pub mod router;
pub mod rtcp;
pub mod rtp;
pub mod srtp;
pub mod stats;
pub mod tcp;
pub mod transport;
pub mod worker;

#[cfg(test)]
mod sim;
