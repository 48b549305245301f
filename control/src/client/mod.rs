//! Clients that number requests, match responses to them by id and hand out
//! notifications.

mod blocking;
#[cfg(feature = "tokio")]
mod nonblocking;

pub use blocking::Client;
#[cfg(feature = "tokio")]
pub use nonblocking::{AsyncClient, Events};
