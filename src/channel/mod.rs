//! The control channel, daemon side: the protocol itself (messages, parameter objects,
//! framing) is `sfu-control`'s and is re-exported here; what is the daemon's own is the
//! error a request fails with and the parsing glue that names the offending field.
//! See docs/PROTOCOL.md for every message with an example.

pub mod framing;
pub mod params;

use serde_json::Value;

pub use sfu_control::requests;
pub use sfu_control::{ErrorKind, Event, Method, Notification, Request, RequestFrame, Response};

/// Everything a request can fail with. The [`ErrorKind`] is the stable machine-readable
/// name; the message says what was wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("frame of {0} bytes exceeds the maximum of {max} bytes", max = framing::MAX_FRAME)]
    Oversized(usize),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    #[error("method {0} needs a target id")]
    MissingTarget(&'static str),
    #[error("no {kind} with id {id:?}")]
    NotFound { kind: &'static str, id: String },
    #[error("invalid data for {method}: {reason}")]
    InvalidData {
        method: &'static str,
        reason: String,
    },
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    Unsupported(String),
}

impl ControlError {
    /// The machine-readable kind sent as `error`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Oversized(_) => ErrorKind::Oversized,
            Self::Malformed(_) => ErrorKind::Malformed,
            Self::UnknownMethod(_) => ErrorKind::UnknownMethod,
            Self::MissingTarget(_) => ErrorKind::MissingTarget,
            Self::NotFound { .. } => ErrorKind::NotFound,
            Self::InvalidData { .. } => ErrorKind::InvalidData,
            Self::InvalidState(_) => ErrorKind::InvalidState,
            Self::Unsupported(_) => ErrorKind::Unsupported,
        }
    }

    /// The response refusing request `id` with this error.
    pub fn response(&self, id: Option<u64>) -> Response {
        Response::refused(id, self.kind(), self.to_string())
    }
}

/// Parses a wire method name.
pub fn parse_method(name: &str) -> Result<Method, ControlError> {
    Method::parse(name).ok_or_else(|| ControlError::UnknownMethod(name.chars().take(64).collect()))
}

/// Parses a request's data into its typed request, naming the offending field in the
/// error. (The target travels beside the data; the dispatch resolves it itself.)
pub fn parse_data<R: Request>(data: Value) -> Result<R, ControlError> {
    let data = if data.is_null() {
        Value::Object(Default::default())
    } else {
        data
    };
    // The path names the offending field, e.g. "dtlsParameters.fingerprints[0].value".
    serde_path_to_error::deserialize(data).map_err(|e| ControlError::InvalidData {
        method: R::METHOD.name(),
        reason: match e.path().to_string().as_str() {
            "." => e.inner().to_string(),
            path => format!("{path}: {}", e.inner()),
        },
    })
}

/// Parses one frame body into a request, or the error to answer it with (with the
/// request id when one could be read).
pub fn parse_request(body: &[u8]) -> Result<RequestFrame, (Option<u64>, ControlError)> {
    RequestFrame::parse(body).map_err(|(id, e)| (id, ControlError::Malformed(e.to_string())))
}

/// A typed response's `data` as JSON.
pub fn response_data<T: serde::Serialize>(data: &T) -> Value {
    // The response types serialize infallibly: plain structs with string keys.
    serde_json::to_value(data).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_are_refused_by_name() {
        assert_eq!(parse_method("router.create"), Ok(Method::RouterCreate));
        assert!(matches!(
            parse_method("router.explode"),
            Err(ControlError::UnknownMethod(_))
        ));
    }

    #[test]
    fn malformed_requests_keep_their_id_when_possible() {
        let (id, e) = parse_request(br#"{"id": 7, "method": 3}"#).unwrap_err();
        assert_eq!(id, Some(7));
        assert_eq!(e.kind(), ErrorKind::Malformed);
        let (id, _) = parse_request(b"\xff\x00garbage").unwrap_err();
        assert_eq!(id, None);
    }

    #[test]
    fn invalid_data_names_the_field() {
        let e = parse_data::<requests::TransportConnect>(serde_json::json!({
            "dtlsParameters": {"role": "client", "fingerprints": [{"algorithm": "sha-256"}]}
        }))
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData);
        assert!(
            e.to_string().contains("dtlsParameters.fingerprints[0]"),
            "{e}"
        );
    }

    #[test]
    fn responses_serialize_in_the_documented_shape() {
        let ok = serde_json::to_value(Response::accepted(3, serde_json::json!({"a": 1}))).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"id": 3, "accepted": true, "data": {"a": 1}})
        );
        let err = serde_json::to_value(
            ControlError::NotFound {
                kind: "router",
                id: "x".into(),
            }
            .response(Some(4)),
        )
        .unwrap();
        assert_eq!(
            err,
            serde_json::json!({"id": 4, "error": "NotFound", "reason": "no router with id \"x\""})
        );
    }
}
