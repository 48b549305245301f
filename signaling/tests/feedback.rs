//! Loss repair and bandwidth feedback negotiated through a real `sfu-signaling` and a
//! real daemon (SDP only, no media): the daemon accepts the publishers' RTX and
//! transport-wide-cc, its consumers come back with RTX and transport-cc, and the offers
//! show them; `--no-bandwidth-feedback` takes transport-cc and REMB away on both sides
//! and leaves NACK and RTX. Each received track's first `score` reaches its subscriber.

mod common;

use serde_json::{json, Value};

use common::{answer_for, fixture, Client, Signaling};

const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// `RTCRtpReceiver.getCapabilities()` of audio and video merged, as the page sends it.
fn capabilities(name: &str) -> Value {
    let caps: Value = serde_json::from_str(&fixture(name)).unwrap();
    let merged = |key: &str| -> Vec<Value> {
        ["audio", "video"]
            .iter()
            .flat_map(|k| caps[*k][key].as_array().unwrap().clone())
            .collect()
    };
    json!({"codecs": merged("codecs"), "headerExtensions": merged("headerExtensions")})
}

/// The `a=` lines of the m-line of `kind` in `sdp`.
fn section<'a>(sdp: &'a str, kind: &str) -> Vec<&'a str> {
    let start = sdp
        .find(&format!("m={kind} "))
        .unwrap_or_else(|| panic!("no {kind} m-line: {sdp}"));
    let rest = &sdp[start..];
    let end = rest[2..].find("\r\nm=").map_or(rest.len(), |i| i + 2);
    rest[..end].split("\r\n").collect()
}

/// Ada publishes Chromium's offer, Bob joins with `caps`; returns (Ada's answer SDP,
/// Bob's first offer, the scores Bob got before it).
async fn negotiate(srv: &Signaling, room: &str, caps: Value) -> (String, Value, Vec<Value>) {
    let mut ada = Client::connect(&srv.ws_url()).await;
    ada.join(room, "ada").await;
    ada.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    let answer = ada.until("answer").await;
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.send(json!({"type": "join", "room": room, "name": "bob", "rtpCapabilities": caps}))
        .await;
    bob.expect("joined").await;
    let offer = bob.until("offer").await;
    let scores: Vec<Value> = bob
        .log
        .iter()
        .filter(|m| m["type"] == "score")
        .cloned()
        .collect();
    // The daemon takes the answer (DTLS parameters, consumers resumed).
    let sdp = offer["sdp"].as_str().unwrap();
    bob.send(json!({"type": "answer", "offerId": offer["offerId"], "sdp": answer_for(sdp)}))
        .await;
    (answer["sdp"].as_str().unwrap().to_owned(), offer, scores)
}

#[tokio::test]
async fn feedback_and_rtx_both_ways_and_first_scores() {
    let srv = Signaling::start(&[]);
    let (answer, offer, scores) =
        negotiate(&srv, "fb-on", capabilities("chromium-recv-caps.json")).await;

    // Send side: the daemon accepted RTX and transport-wide-cc for Ada's tracks.
    let video = section(&answer, "video");
    assert!(
        video[0].ends_with(" UDP/TLS/RTP/SAVPF 96 97"),
        "{}",
        video[0]
    );
    for line in [
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=rtcp-fb:96 transport-cc",
        "a=rtcp-fb:96 goog-remb",
        "a=rtcp-fb:96 nack",
        &format!("a=extmap:3 {TWCC}"),
    ] {
        assert!(video.contains(&line), "{line} in {video:#?}");
    }
    assert!(section(&answer, "audio").contains(&"a=rtcp-fb:111 transport-cc"));

    // Receive side: Bob (Chromium) gets RTX in an FID group, transport-cc and the
    // transport-wide-cc extension with the table's id, for audio and video.
    let sdp = offer["sdp"].as_str().unwrap();
    let video = section(sdp, "video");
    assert!(video[0].ends_with(" 96 97"), "{}", video[0]);
    for line in [
        "a=rtpmap:97 rtx/90000",
        "a=fmtp:97 apt=96",
        "a=rtcp-fb:96 nack",
        "a=rtcp-fb:96 nack pli",
        "a=rtcp-fb:96 transport-cc",
        &format!("a=extmap:3 {TWCC}"),
    ] {
        assert!(video.contains(&line), "{line} in {video:#?}");
    }
    let fid: Vec<&str> = video
        .iter()
        .filter_map(|l| l.strip_prefix("a=ssrc-group:FID "))
        .collect();
    assert_eq!(fid.len(), 1, "{video:#?}");
    assert_eq!(fid[0].split(' ').count(), 2);
    let audio = section(sdp, "audio");
    assert!(audio.contains(&"a=rtcp-fb:111 transport-cc"), "{audio:#?}");
    assert!(audio.contains(&format!("a=extmap:3 {TWCC}").as_str()));

    // One first score per received track: the consumer's 10 and Ada's producer score
    // (0: no media was sent).
    let consumers = offer["consumers"].as_array().unwrap();
    assert_eq!(scores.len(), consumers.len(), "{scores:?}");
    for c in consumers {
        let s = scores
            .iter()
            .find(|s| s["consumerId"] == c["consumerId"])
            .unwrap_or_else(|| panic!("no score for {c}: {scores:?}"));
        assert_eq!(
            (
                &s["peerId"],
                &s["producerId"],
                &s["kind"],
                &s["score"],
                &s["producerScore"]
            ),
            (
                &c["peerId"],
                &c["producerId"],
                &c["kind"],
                &json!(10),
                &json!(0)
            ),
            "{s}"
        );
    }
}

#[tokio::test]
async fn no_bandwidth_feedback_keeps_nack_and_rtx_only() {
    let srv = Signaling::start(&["--no-bandwidth-feedback"]);
    let (answer, offer, _) =
        negotiate(&srv, "fb-off", capabilities("chromium-recv-caps.json")).await;
    let sdp = offer["sdp"].as_str().unwrap();
    for (what, text) in [("Ada's answer", answer.as_str()), ("Bob's offer", sdp)] {
        assert!(
            !text.contains("transport-cc") && !text.contains("goog-remb") && !text.contains(TWCC),
            "{what}: {text}"
        );
        assert!(
            text.contains("a=rtcp-fb:96 nack\r\n") && text.contains("a=rtpmap:97 rtx/90000\r\n"),
            "{what}: {text}"
        );
    }
}
