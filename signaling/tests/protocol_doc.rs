//! Golden test of docs/PROTOCOL.md's WebSocket section: every example of a message a
//! browser sends (a `type` the server accepts) is read by the server's own parser as that
//! message, and every example of a message the server sends round-trips through
//! `ServerMessage` unchanged. (The control-channel examples are checked by sfu-control's
//! `protocol_doc` test.)

#[path = "../../control/tests/support/doc_examples.rs"]
mod doc_examples;

use doc_examples::json_examples;
use serde_json::Value;
use sfu_signaling::protocol::{ClientMessage, ServerMessage, CLIENT_TYPES};

/// Whether an example is a message the client sends: `offer` and `answer` are also server
/// messages, and a client one has an `sdp` and none of the server's fields.
fn from_client(v: &Value) -> bool {
    let server_only = ["consumers", "producers"]
        .iter()
        .any(|f| v.get(*f).is_some());
    v["type"]
        .as_str()
        .is_some_and(|t| CLIENT_TYPES.contains(&t))
        && !server_only
}

#[test]
fn every_client_message_example_is_read_by_the_server() {
    let mut seen = std::collections::BTreeSet::new();
    for v in json_examples("## WebSocket protocol", None) {
        let kind = v["type"]
            .as_str()
            .expect("every example has a type")
            .to_owned();
        if !from_client(&v) {
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

#[test]
fn every_server_message_example_round_trips_through_server_message() {
    let mut seen = std::collections::BTreeSet::new();
    for v in json_examples("## WebSocket protocol", None) {
        if from_client(&v) {
            continue;
        }
        let m: ServerMessage = serde_json::from_value(v.clone())
            .unwrap_or_else(|e| panic!("no ServerMessage reads the example {v}: {e}"));
        let back = serde_json::to_value(&m).expect("a server message serialises");
        assert_eq!(back, v, "the example is not what the server would send");
        seen.insert(v["type"].as_str().unwrap_or_default().to_owned());
    }
    // Every kind of server message has an example (the names as PROTOCOL.md has them).
    for kind in [
        "joined",
        "answer",
        "offer",
        "peerJoined",
        "peerLeft",
        "producerAdded",
        "producerRemoved",
        "muteChanged",
        "transportState",
        "score",
        "layersChanged",
        "setEncodings",
        "activeSpeaker",
        "chatMessage",
        "chatHistory",
        "restart",
        "left",
        "error",
    ] {
        assert!(seen.contains(kind), "no example of `{kind}` in PROTOCOL.md");
    }
}
