//! Text chat over the room's WebSocket against a real `sfu-signaling`: a message reaches
//! everyone in the room (its sender included) with sender and time, a late joiner gets
//! the room's recent history after `joined`, and the server refuses what breaks the
//! length and rate limits (to the sender only).

mod common;

use serde_json::{json, Value};

use common::{Client, Signaling};

fn texts(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn chat_reaches_everyone_and_late_joiners_get_the_history() {
    let srv = Signaling::start(&[]);
    let mut ada = Client::connect(&srv.ws_url()).await;
    let ada_id = ada.join("chatroom", "Ada").await["peerId"].clone();
    for text in ["hello", "  is anyone <b>here</b>?  "] {
        ada.send(json!({"type": "chat", "text": text})).await;
        let m = ada.until("chatMessage").await;
        assert_eq!(m["peerId"], ada_id);
        assert_eq!(m["name"], "Ada");
        assert!(
            m["at"].as_u64().is_some_and(|at| at > 1_600_000_000_000),
            "{m}"
        );
    }

    // Bob joins later: the history follows `joined`, trimmed, as sent (text, not markup).
    let mut bob = Client::connect(&srv.ws_url()).await;
    let bob_id = bob.join("chatroom", "Bob").await["peerId"].clone();
    let history = bob.until("chatHistory").await;
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(texts(messages), ["hello", "is anyone <b>here</b>?"]);
    assert!(messages.iter().all(|m| m["name"] == "Ada"));

    // Bob answers: both get it.
    bob.send(json!({"type": "chat", "text": "hi Ada"})).await;
    for c in [&mut ada, &mut bob] {
        let m = c.until("chatMessage").await;
        assert_eq!(
            (m["peerId"].clone(), m["text"].clone()),
            (bob_id.clone(), json!("hi Ada"))
        );
    }

    // Someone in another room sees none of it.
    let mut eve = Client::connect(&srv.ws_url()).await;
    eve.join("otherroom", "Eve").await;
    eve.send(json!({"type": "chat", "text": "anyone?"})).await;
    let own = eve.until("chatMessage").await;
    assert_eq!(own["text"], "anyone?");
    assert!(!eve.log.iter().any(|m| m["type"] == "chatHistory"));
}

#[tokio::test]
async fn chat_limits_are_enforced_for_the_sender_only() {
    let srv = Signaling::start(&[]);
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("chatlimits", "Bob").await;
    let mut mallory = Client::connect(&srv.ws_url()).await;
    mallory.join("chatlimits", "Mallory").await;
    bob.until("peerJoined").await;

    for bad in [
        json!({"type": "chat", "text": ""}),
        json!({"type": "chat", "text": "   \n "}),
        json!({"type": "chat", "text": "x".repeat(1001)}),
        json!({"type": "chat", "text": "bell\u{7}"}),
        json!({"type": "chat", "text": "hi", "html": "<img>"}),
        json!({"type": "chat"}),
    ] {
        mallory.send(bad).await;
        mallory.expect_error("BadMessage").await;
    }
    // A flood: the first few pass (a burst of 5), the rest are refused until time passes.
    for i in 0..12 {
        mallory
            .send(json!({"type": "chat", "text": format!("spam {i}")}))
            .await;
    }
    let mut passed = 0;
    let mut refused = 0;
    while passed + refused < 12 {
        let m = mallory.next().await;
        match m["type"].as_str() {
            Some("chatMessage") => passed += 1,
            Some("error") => {
                assert_eq!(m["code"], "RateLimited", "{m}");
                assert_eq!(m["inReplyTo"], "chat", "{m}");
                refused += 1;
            }
            _ => {}
        }
    }
    assert!((5..=7).contains(&passed), "{passed} of 12 passed");
    // Bob got exactly the messages that passed, and no error.
    let mut got = 0;
    while got < passed {
        let m = bob.next().await;
        assert_ne!(m["type"], "error", "{m}");
        if m["type"] == "chatMessage" {
            assert!(m["text"].as_str().unwrap().starts_with("spam "));
            got += 1;
        }
    }
    // A max-length message in multi-byte characters passes.
    let long = "é".repeat(1000);
    bob.send(json!({"type": "chat", "text": long})).await;
    assert_eq!(bob.until("chatMessage").await["text"], json!(long));
}
