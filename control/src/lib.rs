//! `sfu-control`: the control protocol between a control client (the signaling process,
//! tests, benchmarks) and the daemon's workers, defined once. docs/PROTOCOL.md,
//! "Control channel", describes it; `tests/protocol_doc.rs` round-trips every example
//! there through these types.
//!
//! - [`Method`]: the one list of methods; [`Request`]: one type per method in
//!   [`requests`], each naming its response type in [`responses`];
//! - [`Event`] / [`Notification`]: what workers report on their own;
//! - [`ErrorKind`]: why a request was refused;
//! - [`framing`]: the 4-byte length-prefixed codec, sans-IO;
//! - [`client`]: a blocking client over std's `UnixStream` and, with the `tokio` feature,
//!   an async one.

pub mod client;
mod error;
mod events;
pub mod framing;
mod ids;
mod message;
mod method;
pub mod params;
pub mod requests;
pub mod responses;

pub use error::{ClientError, ErrorKind, Refusal};
pub use events::{Event, Notification};
pub use ids::{ConsumerId, ProducerId, RouterId, RtpObserverId, TransportId};
pub use message::{
    decode_request, decode_response, request_frame, Message, RequestFrame, Response,
};
pub use method::Method;
pub use requests::Request;
