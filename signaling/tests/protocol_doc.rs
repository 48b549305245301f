//! Golden test of docs/PROTOCOL.md's WebSocket section, client side: every example of a
//! message a browser sends (a `type` the server accepts) is read by the server's own
//! parser as that message. (The control-channel examples are checked by sfu-control's
//! `protocol_doc` test.)

use serde_json::Value;
use sfu_signaling::protocol::{ClientMessage, CLIENT_TYPES};

/// The JSON values of every ```json block of the WebSocket section.
fn websocket_examples() -> Vec<Value> {
    let doc = include_str!("../../docs/PROTOCOL.md");
    let start = doc
        .find("## WebSocket protocol")
        .expect("PROTOCOL.md has a WebSocket section");
    let mut values = Vec::new();
    let mut rest = &doc[start..];
    while let Some(open) = rest.find("```json\n") {
        let body = &rest[open + 8..];
        let close = body.find("```").expect("unterminated json block");
        let block = &body[..close];
        for v in serde_json::Deserializer::from_str(block).into_iter::<Value>() {
            values.push(v.unwrap_or_else(|e| panic!("bad JSON in PROTOCOL.md: {e}\n{block}")));
        }
        rest = &body[close + 3..];
    }
    values
}

#[test]
fn every_client_message_example_is_read_by_the_server() {
    let mut seen = std::collections::BTreeSet::new();
    for v in websocket_examples() {
        let kind = v["type"]
            .as_str()
            .expect("every example has a type")
            .to_owned();
        // `offer` and `answer` are also server messages: a client one has an `sdp` and no
        // server-only field.
        let server_only = ["consumers", "producers"]
            .iter()
            .any(|f| v.get(*f).is_some());
        if !CLIENT_TYPES.contains(&kind.as_str()) || server_only {
            continue;
        }
        let m = ClientMessage::parse(&v.to_string())
            .unwrap_or_else(|e| panic!("the server refuses its own example {v}: {e:?}"));
        assert_eq!(m.kind(), kind);
        seen.insert(kind);
    }
    let all: std::collections::BTreeSet<String> =
        CLIENT_TYPES.iter().map(|t| (*t).to_owned()).collect();
    assert_eq!(seen, all, "every client message has an example");
}
