//! The frames' bodies: requests, responses and notifications, and the conversions between
//! a typed [`Request`] and its frame.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ErrorKind, Refusal};
use crate::events::Notification;
use crate::requests::Request;

/// A request as a worker reads it: the method stays a string so that an unknown one can
/// be answered `UnknownMethod`, and `data` stays JSON until the method is known.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFrame {
    pub id: u64,
    pub method: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

impl RequestFrame {
    /// Parses one frame body; on failure, the request id when one could be read.
    pub fn parse(body: &[u8]) -> Result<Self, (Option<u64>, serde_json::Error)> {
        serde_json::from_slice(body).map_err(|e| {
            let id = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v.get("id").and_then(Value::as_u64));
            (id, e)
        })
    }
}

/// The frame of a typed request.
pub fn request_frame<R: Request>(id: u64, request: &R) -> Result<RequestFrame, serde_json::Error> {
    Ok(RequestFrame {
        id,
        method: R::METHOD.name().to_owned(),
        target: request.target().map(str::to_owned),
        data: if R::HAS_DATA {
            serde_json::to_value(request)?
        } else {
            Value::Null
        },
    })
}

/// The typed request of a frame whose method is `R`'s: its `data` (absent or null for a
/// method without parameters) and its target.
pub fn decode_request<R: Request>(
    target: Option<String>,
    data: Value,
) -> Result<R, serde_json::Error> {
    let data = if data.is_null() {
        Value::Object(serde_json::Map::new())
    } else {
        data
    };
    let mut request: R = serde_json::from_value(data)?;
    if let Some(target) = target {
        request.set_target(target);
    }
    Ok(request)
}

/// The answer to one request: `{id, accepted: true, data}` or `{id, error, reason}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id; None when the request was too broken to have one.
    pub id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Response {
    /// A successful response; null `data` is left out.
    pub fn accepted(id: u64, data: Value) -> Self {
        Self {
            id: Some(id),
            accepted: Some(true),
            data: (!data.is_null()).then_some(data),
            error: None,
            reason: None,
        }
    }

    /// A successful response with typed data.
    pub fn accepted_with<T: Serialize>(id: u64, data: &T) -> Result<Self, serde_json::Error> {
        Ok(Self::accepted(id, serde_json::to_value(data)?))
    }

    /// A failed response.
    pub fn refused(id: Option<u64>, kind: ErrorKind, reason: String) -> Self {
        Self {
            id,
            accepted: None,
            data: None,
            error: Some(kind),
            reason: Some(reason),
        }
    }

    /// The data of an accepted response (Null when absent), or why it was refused.
    pub fn into_result(self) -> Result<Value, Refusal> {
        match (self.accepted, self.error) {
            (Some(true), None) => Ok(self.data.unwrap_or(Value::Null)),
            (_, Some(kind)) => Err(Refusal {
                kind,
                reason: self.reason.unwrap_or_default(),
            }),
            // Neither accepted nor an error kind: not a response this protocol has.
            _ => Err(Refusal {
                kind: ErrorKind::Malformed,
                reason: "a response neither accepted nor refused".into(),
            }),
        }
    }
}

/// A typed response's data.
pub fn decode_response<R: Request>(data: Value) -> Result<R::Response, serde_json::Error> {
    serde_json::from_value(data)
}

/// Anything a worker sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Response(Response),
    Notification(Notification),
}

impl Message {
    /// Parses one frame body: a notification has an `event`, everything else is a
    /// response.
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        let v: Value = serde_json::from_slice(body)?;
        if v.get("event").is_some() {
            serde_json::from_value(v).map(Self::Notification)
        } else {
            serde_json::from_value(v).map(Self::Response)
        }
    }
}
