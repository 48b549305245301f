//! What a subscriber's page asks of its consumers (`preferredLayers`, `pauseConsumer`) and
//! the simulcast description in `offer`, against a real `sfu-signaling` and daemon: the
//! subscriber's own pause reaches the daemon, survives the answer that shows the consumer
//! and stays apart from the publisher's mute; ids that are not one's own, wrong kinds and
//! out-of-range values are answered with an error to the sender only.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

use common::{answer_for, fixture, Client, Daemon, Signaling};

/// The consumer id of `kind` in a receive-side offer.
fn consumer(offer: &Value, kind: &str) -> String {
    offer["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .and_then(|c| c["consumerId"].as_str())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_hidden_tile_pauses_its_consumer_apart_from_the_publishers_mute() {
    let daemon = Daemon::start();
    let dir = daemon.dir.path().to_str().unwrap().to_owned();
    let srv = Signaling::start(&["--daemon", &dir]);
    let mut control = daemon.admin();

    let mut ada = Client::connect(&srv.ws_url()).await;
    ada.join("tiles", "ada").await;
    ada.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    ada.until("answer").await;
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("tiles", "bob").await;
    let offer = bob.until("offer").await;
    let video = consumer(&offer, "video");
    let audio = consumer(&offer, "audio");

    // The tile is off-screen before the answer: the answer resumes the audio only.
    bob.send(json!({"type": "pauseConsumer", "consumerId": video, "paused": true}))
        .await;
    bob.send(json!({"type": "preferredLayers", "consumerId": video, "spatialLayer": 1, "temporalLayer": 2}))
        .await;
    let sdp = offer["sdp"].as_str().unwrap();
    bob.send(json!({"type": "answer", "offerId": offer["offerId"], "sdp": answer_for(sdp)}))
        .await;
    // The room handles one message at a time: once a later one is answered, the answer
    // has been handled.
    bob.send(json!({"type": "pauseConsumer", "consumerId": "nobody", "paused": true}))
        .await;
    bob.expect_error("NotFound").await;
    assert!(
        !control.consumer_stats(&audio).paused,
        "audio never resumed"
    );
    assert!(
        control.consumer_stats(&video).paused,
        "the hidden tile's video was resumed"
    );

    // Ada turns her camera off and on: her producer pauses, Bob's own pause stays.
    ada.send(json!({"type": "mute", "kind": "video", "muted": true}))
        .await;
    bob.until("muteChanged").await;
    ada.send(json!({"type": "mute", "kind": "video", "muted": false}))
        .await;
    bob.until("muteChanged").await;
    assert!(control.consumer_stats(&video).paused);

    // The tile comes back on screen: resumed (Ada's camera is on).
    bob.send(json!({"type": "pauseConsumer", "consumerId": video, "paused": false}))
        .await;
    // (Ordered as above.)
    bob.send(json!({"type": "pauseConsumer", "consumerId": "nobody", "paused": false}))
        .await;
    bob.expect_error("NotFound").await;
    let stats = control.consumer_stats(&video);
    assert!(!stats.paused && !stats.producer_paused, "{stats:?}");
    // Hidden again, while Ada's camera is off: both pauses hold, each on its own.
    ada.send(json!({"type": "mute", "kind": "video", "muted": true}))
        .await;
    bob.until("muteChanged").await;
    bob.send(json!({"type": "pauseConsumer", "consumerId": video, "paused": true}))
        .await;
    bob.send(json!({"type": "pauseConsumer", "consumerId": "nobody", "paused": true}))
        .await;
    bob.expect_error("NotFound").await;
    let stats = control.consumer_stats(&video);
    assert!(stats.paused && stats.producer_paused, "{stats:?}");
}

#[tokio::test]
async fn layer_and_pause_requests_are_checked() {
    let srv = Signaling::start(&[]);
    let mut ada = Client::connect(&srv.ws_url()).await;
    ada.join("checks", "ada").await;
    ada.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    ada.until("answer").await;
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("checks", "bob").await;
    let offer = bob.until("offer").await;
    let video = consumer(&offer, "video");
    let audio = consumer(&offer, "audio");
    for (msg, code) in [
        // Not Ada's to steer: Bob's consumers are Bob's.
        (
            json!({"type": "preferredLayers", "consumerId": "0123456789abcdef", "spatialLayer": 0}),
            "NotFound",
        ),
        (
            json!({"type": "pauseConsumer", "consumerId": "x".repeat(5000), "paused": true}),
            "NotFound",
        ),
        (
            json!({"type": "preferredLayers", "consumerId": audio, "spatialLayer": 0}),
            "BadMessage",
        ),
        (
            json!({"type": "preferredLayers", "consumerId": video, "spatialLayer": 4}),
            "BadMessage",
        ),
        (
            json!({"type": "preferredLayers", "consumerId": video, "spatialLayer": 1, "temporalLayer": 300}),
            "BadMessage",
        ),
        (
            json!({"type": "preferredLayers", "consumerId": video, "spatialLayer": -1}),
            "BadMessage",
        ),
        (
            json!({"type": "preferredLayers", "consumerId": video}),
            "BadMessage",
        ),
        (
            json!({"type": "pauseConsumer", "consumerId": video, "paused": "yes"}),
            "BadMessage",
        ),
        (
            json!({"type": "pauseConsumer", "consumerId": video, "paused": true, "extra": 1}),
            "BadMessage",
        ),
    ] {
        bob.send(msg.clone()).await;
        bob.expect_error(code).await;
    }
    // Ada cannot steer Bob's consumers either.
    ada.send(json!({"type": "pauseConsumer", "consumerId": video, "paused": true}))
        .await;
    assert_eq!(ada.until("error").await["code"], "NotFound");
    // Good requests get no reply: the next thing Bob hears is what Ada's mute causes.
    bob.send(json!({"type": "preferredLayers", "consumerId": video, "spatialLayer": 0}))
        .await;
    bob.send(json!({"type": "pauseConsumer", "consumerId": video, "paused": true}))
        .await;
    ada.send(json!({"type": "mute", "kind": "audio", "muted": true}))
        .await;
    let next = bob.next().await;
    assert_eq!(next["type"], "muteChanged", "{next}");
}

#[tokio::test]
async fn simulcast_descriptions_in_offer_are_checked() {
    let srv = Signaling::start(&[]);
    let mut ada = Client::connect(&srv.ws_url()).await;
    ada.join("encodings", "ada").await;
    let sdp = fixture("chromium-simulcast-offer.sdp");
    let enc = |list: Value| json!({"type": "offer", "sdp": sdp, "encodings": {"1": list}});
    for (msg, code) in [
        (enc(json!([{"rid": "q!"}])), "BadMessage"),
        (
            enc(json!([{"rid": "q", "scaleResolutionDownBy": 0.5}])),
            "BadMessage",
        ),
        (enc(json!([{"rid": "q", "maxBitrate": 0}])), "BadMessage"),
        (enc(json!([{"rid": "q", "maxBitrate": 1e12}])), "BadMessage"),
        (
            enc(json!([{"rid": "q", "scalabilityMode": "L9T9"}])),
            "BadMessage",
        ),
        (enc(json!([{"rid": "q", "priority": "high"}])), "BadMessage"),
        (
            enc(json!([{"rid": "a"}, {"rid": "b"}, {"rid": "c"}, {"rid": "d"}, {"rid": "e"}])),
            "BadMessage",
        ),
        (enc(json!([])), "BadMessage"),
        // Well-formed, but about a rid the offer does not send.
        (enc(json!([{"rid": "z"}])), "BadSdp"),
        // About the audio m-line.
        (
            json!({"type": "offer", "sdp": sdp, "encodings": {"0": [{"rid": "q"}]}}),
            "BadSdp",
        ),
    ] {
        ada.send(msg.clone()).await;
        let e = ada.expect_error(code).await;
        assert!(!e["message"].as_str().unwrap().is_empty(), "{e}");
    }
}

/// The web client's camera encodings for `offer`'s `encodings`, by mid.
fn page_encodings() -> Value {
    json!({"1": [
        {"rid": "q", "scaleResolutionDownBy": 4, "maxBitrate": 150000, "scalabilityMode": "L1T3"},
        {"rid": "h", "scaleResolutionDownBy": 2, "maxBitrate": 500000, "scalabilityMode": "L1T3"},
        {"rid": "f", "scaleResolutionDownBy": 1, "maxBitrate": 1500000, "scalabilityMode": "L1T3"}]})
}

fn active(m: &Value) -> Vec<(String, bool)> {
    m["encodings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["rid"].as_str().unwrap().to_owned(),
                e["active"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// A Chromium simulcast publisher through the real daemon: its subscribers' preferred
/// layers reach their simulcast consumers, and dynacast turns the publisher's upper
/// encodings off when no tile needs them (after the delay) and on at once when one does.
#[tokio::test]
async fn simulcast_preferred_layers_and_dynacast() {
    let daemon = Daemon::start();
    let dir = daemon.dir.path().to_str().unwrap().to_owned();
    let srv = Signaling::start(&["--daemon", &dir]);
    let mut control = daemon.admin();

    let mut ada = Client::connect(&srv.ws_url()).await;
    ada.join("simulcast", "ada").await;
    ada.send(
        json!({"type": "offer", "sdp": fixture("chromium-simulcast-offer.sdp"),
                    "encodings": page_encodings()}),
    )
    .await;
    let answer = ada.until("answer").await;
    let sdp = answer["sdp"].as_str().unwrap();
    assert!(sdp.contains("a=simulcast:recv q;h;f\r\n"), "{sdp}");
    let video_producer = answer["producers"][1]["producerId"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("simulcast", "bob").await;
    let offer = bob.until("offer").await;
    let video = consumer(&offer, "video");
    let sdp = offer["sdp"].as_str().unwrap();
    bob.send(json!({"type": "answer", "offerId": offer["offerId"], "sdp": answer_for(sdp)}))
        .await;
    let started = std::time::Instant::now();
    // Bob's tile is small: layer 0 (the daemon has it as his preference).
    bob.send(json!({"type": "preferredLayers", "consumerId": video, "spatialLayer": 0}))
        .await;
    bob.send(json!({"type": "pauseConsumer", "consumerId": "nobody", "paused": true}))
        .await;
    bob.expect_error("NotFound").await;
    let stats = control.consumer_stats(&video);
    assert_eq!(
        stats.preferred_layers.map(|l| l.spatial_layer),
        Some(0),
        "{stats:?}"
    );
    // Nobody needs h and f: Ada is told to stop them, not before the delay.
    let off = ada.until("setEncodings").await;
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(off["producerId"], video_producer.as_str());
    assert_eq!(
        active(&off),
        [("q".into(), true), ("h".into(), false), ("f".into(), false)]
    );
    // Bob's tile grows: f is needed again, at once.
    bob.send(json!({"type": "preferredLayers", "consumerId": video, "spatialLayer": 2}))
        .await;
    let on = ada.until("setEncodings").await;
    assert_eq!(
        active(&on),
        [("q".into(), true), ("h".into(), true), ("f".into(), true)]
    );
    // His tile goes off-screen: a paused consumer needs nothing, but q stays.
    bob.send(json!({"type": "pauseConsumer", "consumerId": video, "paused": true}))
        .await;
    let off = ada.until("setEncodings").await;
    assert_eq!(
        active(&off),
        [("q".into(), true), ("h".into(), false), ("f".into(), false)]
    );
}
