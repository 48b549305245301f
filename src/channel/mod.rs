//! The control channel: length-prefixed JSON between a control client (the signaling
//! process) and one worker. See docs/PROTOCOL.md for every message with an example.
//!
//! One place lists every method ([`Method`]); each method's request data is a typed
//! struct below, and its response data is built by `worker::core`.

pub mod framing;
pub mod params;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::channel::params::{DtlsParameters, MediaKind, RtpCapabilities, RtpParameters};
use crate::ids::ProducerId;

/// A request from the control client.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    pub id: u64,
    pub method: String,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub data: Value,
}

/// The answer to one request: `{id, accepted: true, data}` or `{id, error, reason}`.
#[derive(Debug, Clone, Serialize)]
pub struct Response {
    /// The request's id; null when the request was too broken to have one.
    pub id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Response {
    /// A successful response.
    pub fn accepted(id: u64, data: Value) -> Self {
        Self {
            id: Some(id),
            accepted: Some(true),
            data: (!data.is_null()).then_some(data),
            error: None,
            reason: None,
        }
    }

    /// A failed response.
    pub fn error(id: Option<u64>, err: &ControlError) -> Self {
        Self {
            id,
            accepted: None,
            data: None,
            error: Some(err.kind()),
            reason: Some(err.to_string()),
        }
    }
}

/// An event the worker reports on its own: `{target, event, data}`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Notification {
    pub target: String,
    pub event: &'static str,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

/// Everything a request can fail with. The `kind` is a stable machine-readable name;
/// the message says what was wrong.
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
    /// The machine-readable name sent as `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Oversized(_) => "Oversized",
            Self::Malformed(_) => "Malformed",
            Self::UnknownMethod(_) => "UnknownMethod",
            Self::MissingTarget(_) => "MissingTarget",
            Self::NotFound { .. } => "NotFound",
            Self::InvalidData { .. } => "InvalidData",
            Self::InvalidState(_) => "InvalidState",
            Self::Unsupported(_) => "Unsupported",
        }
    }
}

/// Every control method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    WorkerLoad,
    WorkerGetStats,
    WorkerGetLatency,
    RouterCreate,
    RouterClose,
    RouterGetStats,
    TransportCreate,
    TransportConnect,
    TransportProduce,
    TransportConsume,
    TransportClose,
    TransportGetStats,
    ProducerPause,
    ProducerResume,
    ProducerClose,
    ProducerGetStats,
    ConsumerPause,
    ConsumerResume,
    ConsumerClose,
    ConsumerGetStats,
    ConsumerRequestKeyFrame,
}

impl Method {
    /// Every method with its wire name.
    pub const ALL: [(&'static str, Self); 21] = [
        ("worker.load", Self::WorkerLoad),
        ("worker.getStats", Self::WorkerGetStats),
        ("worker.getLatency", Self::WorkerGetLatency),
        ("router.create", Self::RouterCreate),
        ("router.close", Self::RouterClose),
        ("router.getStats", Self::RouterGetStats),
        ("transport.create", Self::TransportCreate),
        ("transport.connect", Self::TransportConnect),
        ("transport.produce", Self::TransportProduce),
        ("transport.consume", Self::TransportConsume),
        ("transport.close", Self::TransportClose),
        ("transport.getStats", Self::TransportGetStats),
        ("producer.pause", Self::ProducerPause),
        ("producer.resume", Self::ProducerResume),
        ("producer.close", Self::ProducerClose),
        ("producer.getStats", Self::ProducerGetStats),
        ("consumer.pause", Self::ConsumerPause),
        ("consumer.resume", Self::ConsumerResume),
        ("consumer.close", Self::ConsumerClose),
        ("consumer.getStats", Self::ConsumerGetStats),
        ("consumer.requestKeyFrame", Self::ConsumerRequestKeyFrame),
    ];

    /// Parses a wire name.
    pub fn parse(name: &str) -> Result<Self, ControlError> {
        Self::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
            .ok_or_else(|| ControlError::UnknownMethod(name.chars().take(64).collect()))
    }

    /// The wire name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, m)| *m == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }

    /// Whether the method acts on an entity named by `target`.
    pub fn needs_target(self) -> bool {
        !matches!(
            self,
            Self::WorkerLoad | Self::WorkerGetStats | Self::WorkerGetLatency | Self::RouterCreate
        )
    }
}

/// Data of `transport.connect`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectData {
    pub dtls_parameters: DtlsParameters,
}

/// Data of `transport.produce`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProduceData {
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
    #[serde(default)]
    pub paused: bool,
    /// Opaque to the daemon; echoed in stats (e.g. the peer's name).
    #[serde(default)]
    pub app_data: Value,
}

/// Data of `transport.consume`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsumeData {
    pub producer_id: ProducerId,
    pub rtp_capabilities: RtpCapabilities,
    #[serde(default)]
    pub paused: bool,
    /// The MID the consumer's m-line uses, if the client wants it in rtpParameters.
    #[serde(default)]
    pub mid: Option<String>,
    #[serde(default)]
    pub app_data: Value,
}

/// Data of `worker.getLatency`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyData {
    /// Start a new measurement window after reading.
    #[serde(default)]
    pub reset: bool,
}

/// Data of `router.create` and `transport.create` (both optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateData {
    #[serde(default)]
    pub app_data: Value,
}

/// Parses a method's data into its typed struct, naming the method in the error.
pub fn parse_data<T: serde::de::DeserializeOwned>(
    method: Method,
    data: Value,
) -> Result<T, ControlError> {
    let data = if data.is_null() {
        Value::Object(Default::default())
    } else {
        data
    };
    // The path names the offending field, e.g. "dtlsParameters.fingerprints[0].value".
    serde_path_to_error::deserialize(data).map_err(|e| ControlError::InvalidData {
        method: method.name(),
        reason: match e.path().to_string().as_str() {
            "." => e.inner().to_string(),
            path => format!("{path}: {}", e.inner()),
        },
    })
}

/// Parses one frame body into a request, or the error to answer it with (with the
/// request id when one could be read).
pub fn parse_request(body: &[u8]) -> Result<Request, (Option<u64>, ControlError)> {
    serde_json::from_slice::<Request>(body).map_err(|e| {
        let id = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("id").and_then(Value::as_u64));
        (id, ControlError::Malformed(e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for (name, m) in Method::ALL {
            assert_eq!(Method::parse(name), Ok(m));
            assert_eq!(m.name(), name);
        }
        assert!(matches!(
            Method::parse("router.explode"),
            Err(ControlError::UnknownMethod(_))
        ));
    }

    #[test]
    fn malformed_requests_keep_their_id_when_possible() {
        let (id, e) = parse_request(br#"{"id": 7, "method": 3}"#).unwrap_err();
        assert_eq!(id, Some(7));
        assert_eq!(e.kind(), "Malformed");
        let (id, _) = parse_request(b"\xff\x00garbage").unwrap_err();
        assert_eq!(id, None);
    }

    #[test]
    fn responses_serialize_in_the_documented_shape() {
        let ok = serde_json::to_value(Response::accepted(3, serde_json::json!({"a": 1}))).unwrap();
        assert_eq!(
            ok,
            serde_json::json!({"id": 3, "accepted": true, "data": {"a": 1}})
        );
        let err = serde_json::to_value(Response::error(
            Some(4),
            &ControlError::NotFound {
                kind: "router",
                id: "x".into(),
            },
        ))
        .unwrap();
        assert_eq!(
            err,
            serde_json::json!({"id": 4, "error": "NotFound", "reason": "no router with id \"x\""})
        );
    }
}
