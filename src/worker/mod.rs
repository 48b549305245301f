//! Workers: one per core. `core` is the sans-IO state and packet path, `requests` the
//! control methods on it, `shell` the glommio executor around it, `udp` its batched
//! socket.

pub mod core;
mod fanout;
mod feedback;
pub mod liveness;
mod repair;
mod reports;
pub mod requests;
pub mod shell;
pub mod udp;
