//! The WebSocket protocol against a real `sfu-signaling` with a real daemon: every class
//! of bad input gets an error to its sender only; the offer/answer flows; leaving closes
//! the daemon's transports within 2 s.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use common::{answer_for, fixture, Client, Daemon, Signaling};

/// Joins `bob` as a bystander, then `mallory`, who sends `bad`; checks each error code and
/// that bob saw nothing but what the end of the test causes (mallory's mute).
async fn bad_inputs(srv: &Signaling, room: &str, bad: Vec<(Message, &str)>) {
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join(room, "bob").await;
    let mut mallory = Client::connect(&srv.ws_url()).await;
    let joined = mallory.join(room, "mallory").await;
    assert_eq!(joined["peers"][0]["name"], "bob");
    assert_eq!(bob.expect("peerJoined").await["peer"]["name"], "mallory");
    for (msg, code) in bad {
        let shown = format!("{msg:?}").chars().take(80).collect::<String>();
        mallory.send_raw(msg).await.unwrap();
        let e = mallory.expect("error").await;
        assert_eq!(e["code"], code, "{shown} -> {e}");
    }
    // Mallory is still in the room and still served; Bob's next message is the one her
    // mute causes: nothing of her bad input reached him.
    mallory
        .send(json!({"type": "mute", "kind": "audio", "muted": true}))
        .await;
    let m = bob.expect("muteChanged").await;
    assert_eq!(
        (m["peerId"].clone(), m["muted"].clone()),
        (joined["peerId"].clone(), json!(true))
    );
}

#[tokio::test]
async fn malformed_unknown_and_wrongly_shaped_messages() {
    let srv = Signaling::start(&[]);
    let t = |s: &str| Message::text(s.to_owned());
    bad_inputs(
        &srv,
        "badinput",
        vec![
            (t("{\"type\": \"join\""), "BadJson"),
            (t("not json at all"), "BadJson"),
            (t("[1, 2, 3]"), "BadMessage"),
            (t("{\"room\": \"x\"}"), "BadMessage"),
            (t("{\"type\": 42}"), "BadMessage"),
            (t("{\"type\": \"teleport\"}"), "UnknownType"),
            (
                t("{\"type\": \"mute\", \"kind\": \"smell\", \"muted\": true}"),
                "BadMessage",
            ),
            (t("{\"type\": \"answer\", \"sdp\": \"v=0\"}"), "BadMessage"),
            (t("{\"type\": \"leave\", \"now\": true}"), "BadMessage"),
            (Message::binary(vec![1u8, 2, 3]), "BadMessage"),
        ],
    )
    .await;
}

#[tokio::test]
async fn oversized_messages() {
    // Over --max-message the server does not read on: it closes with 1009 (the limits
    // test shows it happens before the message is buffered).
    let srv = Signaling::start(&["--max-message", "16384"]);
    for (i, big) in [
        Message::text(format!(
            "{{\"type\": \"offer\", \"sdp\": \"{}\"}}",
            "x".repeat(20_000)
        )),
        Message::binary(vec![0u8; 20_000]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut c = Client::connect(&srv.ws_url()).await;
        c.join("oversized", &format!("huge{i}")).await;
        let _ = c.send_raw(big).await;
        assert_eq!(c.closed().await, Some(1009));
    }
}

#[tokio::test]
async fn out_of_order_messages() {
    let srv = Signaling::start(&[]);
    let mut early = Client::connect(&srv.ws_url()).await;
    for msg in [
        json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}),
        json!({"type": "answer", "offerId": 1, "sdp": "v=0"}),
        json!({"type": "mute", "kind": "video", "muted": true}),
        json!({"type": "leave"}),
    ] {
        early.send(msg).await;
        let e = early.expect_error("OutOfOrder").await;
        assert!(e["message"].as_str().unwrap().contains("join"), "{e}");
    }
    let t = |s: &str| Message::text(s.to_owned());
    bad_inputs(
        &srv,
        "order",
        vec![
            (
                t(r#"{"type": "join", "room": "order", "name": "again"}"#),
                "OutOfOrder",
            ),
            (
                t(r#"{"type": "answer", "offerId": 7, "sdp": "v=0"}"#),
                "OutOfOrder",
            ),
        ],
    )
    .await;
}

#[tokio::test]
async fn bad_sdp_and_no_common_codec() {
    let srv = Signaling::start(&[]);
    let chromium = fixture("chromium-send-offer.sdp");
    let mut only_av1 = chromium.clone();
    for c in ["VP8", "VP9", "H264"] {
        only_av1 = only_av1.replace(&format!(" {c}/90000"), " XX/90000");
    }
    let offer = |sdp: &str| Message::text(json!({"type": "offer", "sdp": sdp}).to_string());
    bad_inputs(
        &srv,
        "sdp",
        vec![
            (offer("this is not sdp"), "BadSdp"),
            (
                offer(&chromium.replace("a=group:BUNDLE 0 1\r\n", "")),
                "BadSdp",
            ),
            (offer(&only_av1), "NoCommonCodec"),
            (
                offer(&chromium.replace("a=setup:actpass", "a=setup:passive")),
                "Unsupported",
            ),
        ],
    )
    .await;
    // After all that, a good offer from the same participant still works.
    let mut c = Client::connect(&srv.ws_url()).await;
    c.join("sdp2", "carol").await;
    c.send(json!({"type": "offer", "sdp": "nonsense"})).await;
    c.expect_error("BadSdp").await;
    c.send(json!({"type": "offer", "sdp": chromium})).await;
    let a = c.until("answer").await;
    assert_eq!(a["producers"].as_array().unwrap().len(), 2);
    assert!(a["sdp"].as_str().unwrap().contains("a=ice-lite"));
}

#[tokio::test]
async fn invalid_names_and_rooms_and_taken_names() {
    let srv = Signaling::start(&[]);
    let mut c = Client::connect(&srv.ws_url()).await;
    for (room, name, code) in [
        ("a b", "ok", "InvalidRoom"),
        ("../etc", "ok", "InvalidRoom"),
        (&"r".repeat(65) as &str, "ok", "InvalidRoom"),
        ("fine", "<script>alert(1)</script>", "InvalidName"),
        ("fine", "", "InvalidName"),
        ("fine", " padded", "InvalidName"),
        ("fine", &"n".repeat(33), "InvalidName"),
        ("fine", "bidi\u{202e}", "InvalidName"),
    ] {
        c.send(json!({"type": "join", "room": room, "name": name}))
            .await;
        let e = c.expect_error(code).await;
        assert_eq!(e["inReplyTo"], "join");
    }
    c.join("fine", "Zoë").await;
    let mut twin = Client::connect(&srv.ws_url()).await;
    twin.send(json!({"type": "join", "room": "fine", "name": "zoë"}))
        .await;
    twin.expect_error("NameTaken").await;
    // The page escapes what it shows of a bad room name.
    let body = reqwest_like_get(&srv.addr, "/r/%3Cscript%3E").await;
    assert!(body.starts_with("HTTP/1.1 400"), "{body}");
    assert!(
        body.contains("&lt;script&gt;") && !body.contains("<script>"),
        "{body}"
    );
}

/// A minimal HTTP GET (no client library needed for one request).
async fn reqwest_like_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn pages_are_served() {
    let srv = Signaling::start(&[]);
    let home = reqwest_like_get(&srv.addr, "/").await;
    assert!(home.starts_with("HTTP/1.1 200"), "{home}");
    assert!(home.contains("content-security-policy"), "{home}");
    let room = reqwest_like_get(&srv.addr, "/r/standup?name=ada").await;
    assert!(
        room.starts_with("HTTP/1.1 200") && room.contains("/room/main.js"),
        "{room}"
    );
    let js = reqwest_like_get(&srv.addr, "/room/media.js").await;
    assert!(js.contains("text/javascript") && js.contains("RTCPeerConnection"));
    let missing = reqwest_like_get(&srv.addr, "/room/../mod.rs").await;
    assert!(!missing.starts_with("HTTP/1.1 200"), "{missing}");
    let stats = reqwest_like_get(&srv.addr, "/api/rooms/nobody-here").await;
    assert!(stats.starts_with("HTTP/1.1 404"), "{stats}");
}

fn ids(consumers: &Value) -> Vec<(String, String)> {
    consumers
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["mid"].as_str().unwrap().to_owned(),
                c["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Publisher and subscriber through the protocol (no media: SDP only), with the daemon
/// started by the test (`--daemon DIR`) so that its own view can be checked.
#[tokio::test]
async fn offer_answer_renegotiation_and_cleanup() {
    let daemon = Daemon::start();
    let dir = daemon.dir.path().to_str().unwrap().to_owned();
    let srv = Signaling::start(&["--daemon", &dir]);
    let mut control = daemon.control();

    let mut ada = Client::connect(&srv.ws_url()).await;
    let ada_id = ada.join("flow", "ada").await["peerId"]
        .as_str()
        .unwrap()
        .to_owned();
    ada.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    let answer = ada.until("answer").await;
    assert_eq!(answer["producers"][0]["kind"], "audio");
    assert_eq!(answer["producers"][1]["kind"], "video");

    // Bob joins with Firefox's receive capabilities and is offered Ada's two tracks.
    let caps: Value = serde_json::from_str(&fixture("firefox-recv-caps.json")).unwrap();
    let mut codecs = caps["audio"]["codecs"].as_array().unwrap().clone();
    codecs.extend(caps["video"]["codecs"].as_array().unwrap().iter().cloned());
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.send(json!({"type": "join", "room": "flow", "name": "bob",
                    "rtpCapabilities": {"codecs": codecs, "headerExtensions": []}}))
        .await;
    let joined = bob.expect("joined").await;
    assert_eq!(joined["peers"][0]["peerId"], ada_id.as_str());
    // (Each consumer's first `score` comes before the offer.)
    let offer = bob.until("offer").await;
    assert_eq!(
        ids(&offer["consumers"]),
        [("0".into(), "audio".into()), ("1".into(), "video".into())]
    );
    assert!(offer["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["peerId"] == ada_id.as_str()));
    let sdp = offer["sdp"].as_str().unwrap();
    assert!(
        sdp.contains("a=ice-lite")
            && sdp.contains("a=setup:actpass")
            && sdp.contains("a=group:BUNDLE 0 1")
    );
    assert!(sdp.contains(&format!("msid:{ada_id} ")), "{sdp}");
    assert!(
        !sdp.contains("urn:ietf:params:rtp-hdrext:ssrc-audio-level")
            && !sdp.contains("transport-wide-cc")
            && !sdp.contains("transport-cc"),
        "Bob announced no extensions: {sdp}"
    );
    // Firefox receives RTX: the daemon gave Bob's video consumer an RTX stream.
    assert!(
        sdp.contains("a=rtpmap:97 rtx/90000") && sdp.contains("a=ssrc-group:FID "),
        "{sdp}"
    );
    // A stale offer id is refused; the right one is taken.
    bob.send(json!({"type": "answer", "offerId": 99, "sdp": answer_for(sdp)}))
        .await;
    bob.expect_error("OutOfOrder").await;
    bob.send(json!({"type": "answer", "offerId": offer["offerId"], "sdp": answer_for(sdp)}))
        .await;
    let load = control.wait_load(Duration::from_secs(2), |l| l.consumers == 2);
    assert_eq!((load.routers, load.transports, load.producers), (1, 2, 2));

    // Bob publishes too: Ada is offered his tracks.
    bob.send(json!({"type": "offer", "sdp": fixture("firefox-send-offer.sdp")}))
        .await;
    bob.until("answer").await;
    let offer = ada.until("offer").await;
    assert_eq!(offer["consumers"].as_array().unwrap().len(), 2);
    let sdp = offer["sdp"].as_str().unwrap();
    ada.send(json!({"type": "answer", "offerId": offer["offerId"], "sdp": answer_for(sdp)}))
        .await;
    control.wait_load(Duration::from_secs(2), |l| {
        l.consumers == 4 && l.transports == 4
    });

    // Mute reaches the other side.
    ada.send(json!({"type": "mute", "kind": "video", "muted": true}))
        .await;
    let m = bob.until("muteChanged").await;
    assert_eq!(
        (m["kind"].clone(), m["muted"].clone()),
        (json!("video"), json!(true))
    );

    // Ada's WebSocket closes: Bob hears of it, is offered her m-lines closed, and the
    // daemon has closed her transports within 2 s.
    let gone = Instant::now();
    ada.close().await;
    let left = bob.until("peerLeft").await;
    assert_eq!(left["peerId"], ada_id.as_str());
    let offer = bob.until("offer").await;
    assert!(offer["consumers"].as_array().unwrap().is_empty());
    let sdp = offer["sdp"].as_str().unwrap();
    // m-line 0 (the BUNDLE tag) is kept inactive, m-line 1 closed.
    assert!(sdp.contains("a=group:BUNDLE 0\r\n"), "{sdp}");
    assert!(sdp.contains("m=video 0 "), "{sdp}");
    let load = control.wait_load(Duration::from_secs(2), |l| {
        l.transports == 2 && l.producers == 2
    });
    assert_eq!(load.consumers, 0);
    println!(
        "Ada's transports closed {:?} after her WebSocket closed",
        gone.elapsed()
    );
    bob.send(json!({"type": "answer", "offerId": offer["offerId"], "sdp": answer_for(sdp)}))
        .await;

    // Bob leaves explicitly: `left`, then the empty room's router is closed.
    bob.send(json!({"type": "leave"})).await;
    bob.until("left").await;
    control.wait_load(Duration::from_secs(2), |l| {
        l.routers == 0 && l.transports == 0
    });
    // The WebSocket stays usable: Bob can join again.
    bob.join("flow", "bob").await;
    control.wait_load(Duration::from_secs(2), |l| l.routers == 1);
}

/// `left` is the last message of a room visit: a `join` sent the moment it is read is
/// taken (regression: the session counted itself in the room until the room's channel
/// closed, so such a join was refused "already in a room" now and then under load).
#[tokio::test]
async fn a_join_sent_on_reading_left_is_taken() {
    let srv = Signaling::start(&[]);
    // Someone stays, so the room (and its actor) lives on between our visits.
    let mut resident = Client::connect(&srv.ws_url()).await;
    resident.join("again", "resident").await;
    let mut c = Client::connect(&srv.ws_url()).await;
    c.join("again", "visitor").await;
    for _ in 0..200 {
        c.send(json!({"type": "leave"})).await;
        c.until("left").await;
        c.join("again", "visitor").await;
    }
}
