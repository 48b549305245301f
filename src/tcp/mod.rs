//! ICE over TCP (RFC 6544), sans-IO: the RFC 4571 framing of a connection's byte stream
//! ([`framing`]) and the table of a worker's connections ([`conns`]) that lets the core
//! treat a connection like a UDP peer. The sockets are the shell's (`worker::tcp`).

pub mod conns;
pub mod framing;

pub use conns::{is_tcp_peer, Queued, Refusal, TcpConns, TcpPeer};
pub use framing::{Deframer, FramingError, MAX_FRAME_LEN};
