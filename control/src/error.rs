//! Errors: the kinds a worker refuses a request with, and the client's own errors.

use serde::{Deserialize, Serialize};

use crate::method::Method;

/// The machine-readable `error` of a refused request (docs/PROTOCOL.md, "Messages").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The frame is not a JSON request object.
    Malformed,
    /// The frame exceeded the 1 MiB maximum.
    Oversized,
    /// `method` names no method.
    UnknownMethod,
    /// The method needs `target`.
    MissingTarget,
    /// `target` (or a referenced id) names no entity this connection may act on.
    NotFound,
    /// `data` does not fit the method.
    InvalidData,
    /// The entity cannot do that now.
    InvalidState,
    /// Valid but not supported.
    Unsupported,
}

impl ErrorKind {
    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "Malformed",
            Self::Oversized => "Oversized",
            Self::UnknownMethod => "UnknownMethod",
            Self::MissingTarget => "MissingTarget",
            Self::NotFound => "NotFound",
            Self::InvalidData => "InvalidData",
            Self::InvalidState => "InvalidState",
            Self::Unsupported => "Unsupported",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a worker refused a request: `{error, reason}` of a failed response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {reason}")]
pub struct Refusal {
    pub kind: ErrorKind,
    pub reason: String,
}

/// What a client call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket failed.
    #[error("control connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The connection is closed (by the worker, or by [`crate::client::AsyncClient::close`]).
    #[error("the control connection is closed")]
    Closed,
    /// The worker refused the request.
    #[error("the worker refused {method}: {refusal}")]
    Refused { method: Method, refusal: Refusal },
    /// The worker sent something that is not the protocol.
    #[error("unexpected message from the worker: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The refusal's kind, when the worker refused.
    pub fn refusal_kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Refused { refusal, .. } => Some(refusal.kind),
            _ => None,
        }
    }
}
