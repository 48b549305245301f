//! `sfu-signaling`: the signaling process of the SFU. Browsers talk WebSocket (JSON, SDP)
//! to it; it talks to the media daemon over the daemon's control sockets, translating SDP
//! into transport, producer and consumer parameters. See docs/PROTOCOL.md.

pub mod config;
pub mod daemon;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod names;
pub mod protocol;
pub mod room;
pub mod sdp;
pub mod server;
pub mod token;
pub mod turn;
pub mod web;
pub mod whip;
pub mod ws;
