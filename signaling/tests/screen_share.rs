//! Screen sharing against a real `sfu-signaling` and daemon: an `offer` with
//! `"source": "screen"` publishes one video track on a send transport of its own, which
//! the others are offered as a consumer marked `screen`; `stopScreen` takes it away again;
//! the camera stays throughout.

mod common;

use serde_json::{json, Value};

use common::{answer_for, fixture, Client, Signaling};

/// Chromium's send offer with its audio m-line taken out: what a screen share offers.
fn video_only_offer() -> String {
    let sdp = fixture("chromium-send-offer.sdp");
    let (session, media) = sdp.split_at(sdp.find("m=").unwrap());
    let sections: Vec<&str> = media.split("m=").filter(|s| !s.is_empty()).collect();
    let video = sections.iter().find(|s| s.starts_with("video")).unwrap();
    format!(
        "{}m={video}",
        session.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 1")
    )
}

/// The next error (other messages skipped), which must have `code`.
async fn next_error(c: &mut Client, code: &str) -> Value {
    loop {
        let v = c.next().await;
        if v["type"] == "error" {
            assert_eq!(v["code"], code, "{v}");
            return v;
        }
    }
}

/// The next receive-side offer, answered; its consumers as (kind, source) pairs.
async fn answer_next_offer(c: &mut Client) -> Vec<(String, String)> {
    let offer = c.until("offer").await;
    let sdp = offer["sdp"].as_str().unwrap();
    c.send(json!({"type": "answer", "offerId": offer["offerId"], "sdp": answer_for(sdp)}))
        .await;
    offer["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c: &Value| {
            (
                c["kind"].as_str().unwrap().to_owned(),
                c["source"].as_str().unwrap_or("camera").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_screen_share_is_a_second_producer_the_others_get_and_lose() {
    let srv = Signaling::start(&[]);
    let mut ada = Client::connect(&srv.ws_url()).await;
    ada.join("screens", "ada").await;
    ada.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    let camera = ada.until("answer").await;
    assert!(camera["producers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p.get("source").is_none()));
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("screens", "bob").await;
    let cam = |k: &str| (k.to_owned(), "camera".to_owned());
    assert_eq!(
        answer_next_offer(&mut bob).await,
        [cam("audio"), cam("video")]
    );

    // A screen share is one video m-line.
    ada.send(
        json!({"type": "offer", "source": "screen", "sdp": fixture("chromium-send-offer.sdp")}),
    )
    .await;
    let e = next_error(&mut ada, "BadMessage").await;
    assert!(
        e["message"].as_str().unwrap().contains("one video m-line"),
        "{e}"
    );
    ada.send(json!({"type": "offer", "source": "screen", "sdp": video_only_offer()}))
        .await;
    let screen = ada.until("answer").await;
    assert_eq!(screen["producers"].as_array().unwrap().len(), 1);
    assert_eq!(screen["producers"][0]["kind"], "video");
    assert_eq!(screen["producers"][0]["source"], "screen");
    assert!(screen["sdp"].as_str().unwrap().contains("a=group:BUNDLE 1"));
    // One at a time.
    ada.send(json!({"type": "offer", "source": "screen", "sdp": video_only_offer()}))
        .await;
    next_error(&mut ada, "OutOfOrder").await;

    // Bob is offered it beside Ada's camera.
    let with_screen = answer_next_offer(&mut bob).await;
    assert_eq!(
        with_screen,
        [
            cam("audio"),
            cam("video"),
            ("video".into(), "screen".into())
        ]
    );

    // Muting the camera does not touch the screen share (nor the other way round).
    ada.send(json!({"type": "mute", "kind": "video", "muted": true}))
        .await;
    assert_eq!(bob.until("muteChanged").await["muted"], true);

    // Ada stops sharing: Bob loses the screen consumer, keeps the camera.
    ada.send(json!({"type": "stopScreen"})).await;
    let removed = bob.until("producerRemoved").await;
    assert_eq!(removed["producerId"], screen["producers"][0]["producerId"]);
    let after = answer_next_offer(&mut bob).await;
    assert!(
        after.iter().all(|(_, source)| source == "camera"),
        "{after:?}"
    );
    // Stopping again is harmless, and sharing again works.
    ada.send(json!({"type": "stopScreen"})).await;
    ada.send(json!({"type": "offer", "source": "screen", "sdp": video_only_offer()}))
        .await;
    assert_eq!(
        ada.until("answer").await["producers"][0]["source"],
        "screen"
    );
}
