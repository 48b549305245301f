//! Golden test of docs/PROTOCOL.md's WebSocket section, client side: every example of a
//! message a browser sends (a `type` the server accepts) is read by the server's own
//! parser as that message. (The control-channel examples are checked by sfu-control's
//! `protocol_doc` test.)

#[path = "../../control/tests/support/doc_examples.rs"]
mod doc_examples;

use doc_examples::json_examples;
use sfu_signaling::protocol::{ClientMessage, CLIENT_TYPES};

#[test]
fn every_client_message_example_is_read_by_the_server() {
    let mut seen = std::collections::BTreeSet::new();
    for v in json_examples("## WebSocket protocol", None) {
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
