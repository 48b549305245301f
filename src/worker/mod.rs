//! Workers: one per core. `core` is the sans-IO state and packet path, `requests` the
//! control methods on it, `ownership` who may call them on what, `rtp_observers` the
//! active-speaker observers' methods, levels and timers, `shell` the glommio
//! executor around it (`writer_queue` bounds what it holds for each control connection),
//! `udp` its batched socket, `tcp` its ICE-TCP listener and connections (`tcp_peers`
//! the core's side of them).

mod congestion;
pub mod core;
mod fanout;
mod feedback;
pub mod liveness;
pub mod ownership;
mod repair;
mod reports;
pub mod requests;
mod rtp_observers;
pub mod shell;
pub mod tcp;
pub mod tcp_peers;
mod timers;
pub mod udp;
mod writer_queue;
