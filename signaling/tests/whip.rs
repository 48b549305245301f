//! WHIP (RFC 9725) over HTTP against the real binaries: a WHIP publisher is a participant
//! of the room as the pages see it; `DELETE` takes it out; bad requests get the status
//! that says why and disturb no other session; tokens and per-address caps apply.
//! Real media from independent WHIP clients (aiortc, GStreamer) is e2e/tests/whip.test.mjs.

mod common;

use serde_json::json;
use sfu_signaling::token::{mint, unix_now, Claims};

use common::{fixture, get_json, header, http_request, Client, Signaling};

const SDP: (&str, &str) = ("Content-Type", "application/sdp");
const SDPFRAG: (&str, &str) = ("Content-Type", "application/trickle-ice-sdpfrag");

/// The 201 of a WHIP POST: (Location, ETag, answer).
async fn publish(addr: &str, path: &str, headers: &[(&str, &str)]) -> (String, String, String) {
    let offer = fixture("chromium-send-offer.sdp");
    let (status, h, body) = http_request(addr, "POST", path, headers, offer.as_bytes()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(header(&h, "content-type"), Some("application/sdp"));
    assert_eq!(
        header(&h, "accept-patch"),
        Some("application/trickle-ice-sdpfrag")
    );
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    let location = header(&h, "location").expect("Location").to_owned();
    let etag = header(&h, "etag").expect("ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert!(
        body.contains("a=ice-lite") && body.contains("a=candidate"),
        "{body}"
    );
    assert!(
        body.contains("m=audio") && body.contains("m=video"),
        "{body}"
    );
    (location, etag, body)
}

#[tokio::test]
async fn a_whip_publisher_is_a_participant_until_delete() {
    let srv = Signaling::start(&[]);
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("stage", "bob").await;
    // Bob publishes too: the WHIP participant must not consume his tracks.
    bob.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    bob.until("answer").await;

    let (location, _, _) = publish(&srv.addr, "/whip/stage?name=obs", &[SDP]).await;
    assert!(location.starts_with("/whip/stage/session/"), "{location}");
    let joined = bob.until("peerJoined").await;
    assert_eq!(joined["peer"]["name"], "obs");
    let obs_id = joined["peer"]["peerId"].as_str().unwrap().to_owned();
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let added = bob.until("producerAdded").await;
        assert_eq!(added["peerId"], obs_id.as_str());
        kinds.push(added["kind"].as_str().unwrap().to_owned());
    }
    kinds.sort();
    assert_eq!(kinds, ["audio", "video"]);
    // Bob is offered its two tracks, as any publisher's.
    let offer = bob.until("offer").await;
    assert_eq!(offer["consumers"].as_array().unwrap().len(), 2, "{offer}");

    let stats = get_json(&srv.addr, "/api/rooms/stage").await;
    let obs = stats["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "obs")
        .unwrap()
        .clone();
    assert_eq!(obs["producers"], 2, "{stats}");
    assert_eq!(
        obs["consumers"], 0,
        "a WHIP publisher receives nothing: {stats}"
    );

    let (status, h, _) = http_request(&srv.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    let left = bob.until("peerLeft").await;
    assert_eq!(left["peerId"], obs_id.as_str());
    let (status, _, _) = http_request(&srv.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 404, "a session ends once");
}

/// An offer whose only codecs are ones the server does not forward.
fn codecless_offer() -> String {
    fixture("chromium-send-offer.sdp")
        .replace("opus/48000/2", "L16/48000/2")
        .replace("VP8/90000", "XV1/90000")
        .replace("H264/90000", "XV2/90000")
        .replace("VP9/90000", "XV3/90000")
        .replace("AV1/90000", "XV4/90000")
}

/// A refused request: the status wanted, the headers, the body, a word of the reason.
struct Refused {
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    reason: &'static str,
}

#[tokio::test]
async fn bad_requests_get_a_reason_and_disturb_no_other_session() {
    let srv = Signaling::start(&["--max-message", "32768"]);
    let (location, etag, _) = publish(&srv.addr, "/whip/calm?name=first", &[SDP]).await;
    let offer = fixture("chromium-send-offer.sdp");
    let post = |headers: Vec<(&'static str, &'static str)>, body: Vec<u8>| {
        let addr = srv.addr.clone();
        async move { http_request(&addr, "POST", "/whip/calm", &headers, &body).await }
    };

    let case = |status, headers, body: Vec<u8>, reason| Refused {
        status,
        headers,
        body,
        reason,
    };
    let cases = vec![
        case(
            415,
            vec![("Content-Type", "application/json")],
            offer.clone().into_bytes(),
            "application/json",
        ),
        case(415, vec![], offer.clone().into_bytes(), "Content-Type"),
        case(413, vec![SDP], vec![b'a'; 40_000], "larger than 32768"),
        case(
            400,
            vec![SDP],
            b"v=0\r\nthis is not sdp\r\n".to_vec(),
            "SDP",
        ),
        case(400, vec![SDP], vec![0xff, 0xfe, 0xfd], "UTF-8"),
        case(422, vec![SDP], codecless_offer().into_bytes(), "codec"),
    ];
    for Refused {
        status: want,
        headers,
        body,
        reason,
    } in cases
    {
        let (status, _, text) = post(headers, body).await;
        assert_eq!(status, want, "{text}");
        assert!(text.contains(reason), "{want}: {text:?} lacks {reason:?}");
    }
    let (status, _, _) = http_request(
        &srv.addr,
        "POST",
        "/whip/bad%20room",
        &[SDP],
        offer.as_bytes(),
    )
    .await;
    assert_eq!(status, 400);
    // The refused offers never entered the room.
    let stats = get_json(&srv.addr, "/api/rooms/calm").await;
    assert_eq!(stats["peers"].as_array().unwrap().len(), 1, "{stats}");

    // Unknown sessions.
    let unknown = "/whip/calm/session/00000000000000000000000000000000";
    for method in ["DELETE", "PATCH"] {
        let (status, _, _) = http_request(
            &srv.addr,
            method,
            unknown,
            &[SDPFRAG],
            b"a=end-of-candidates\r\n",
        )
        .await;
        assert_eq!(status, 404, "{method}");
    }
    let other_room = location.replace("/whip/calm/", "/whip/other/");
    let (status, _, _) = http_request(&srv.addr, "DELETE", &other_room, &[], b"").await;
    assert_eq!(status, 404, "a session is addressed under its own room");

    // PATCH: a wrong ETag is a failed precondition; trickle is taken; an ICE restart is
    // refused as RFC 9725 allows.
    let trickle = b"a=ice-ufrag:none\r\na=ice-pwd:none\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 10.0.0.9 5000 typ host\r\n";
    let (status, _, text) = http_request(
        &srv.addr,
        "PATCH",
        &location,
        &[SDPFRAG, ("If-Match", "\"nope\"")],
        trickle,
    )
    .await;
    assert_eq!(status, 412, "{text}");
    let (status, _, text) = http_request(
        &srv.addr,
        "PATCH",
        &location,
        &[("Content-Type", "text/plain"), ("If-Match", &etag)],
        trickle,
    )
    .await;
    assert_eq!(status, 415, "{text}");
    let ufrag = offer
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap();
    let pwd = offer
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-pwd:"))
        .unwrap();
    let same = format!("a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\na=candidate:1 1 udp 2130706431 10.0.0.9 5000 typ host\r\n");
    let (status, _, text) = http_request(
        &srv.addr,
        "PATCH",
        &location,
        &[SDPFRAG, ("If-Match", &etag)],
        same.as_bytes(),
    )
    .await;
    assert_eq!(status, 204, "{text}");
    let (status, _, text) = http_request(
        &srv.addr,
        "PATCH",
        &location,
        &[SDPFRAG, ("If-Match", "*")],
        trickle,
    )
    .await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("ICE restart"), "{text}");

    // OPTIONS on the endpoint and the session: what they allow, and CORS.
    let (status, h, _) = http_request(
        &srv.addr,
        "OPTIONS",
        "/whip/calm",
        &[
            ("Origin", "https://tool.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    )
    .await;
    assert_eq!(status, 204);
    assert!(header(&h, "allow").unwrap().contains("POST"));
    assert_eq!(header(&h, "accept-post"), Some("application/sdp"));
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    assert!(header(&h, "access-control-allow-headers")
        .unwrap()
        .contains("Authorization"));
    let (status, h, _) = http_request(&srv.addr, "OPTIONS", &location, &[], b"").await;
    assert_eq!(status, 204);
    assert!(header(&h, "allow").unwrap().contains("DELETE"));

    // The first session is untouched by all of this.
    let stats = get_json(&srv.addr, "/api/rooms/calm").await;
    assert_eq!(stats["peers"][0]["name"], "first", "{stats}");
    assert_eq!(stats["peers"][0]["producers"], 2, "{stats}");
    let (status, _, _) = http_request(&srv.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_join_token_is_the_bearer_token() {
    let secret = "whip secret";
    let srv = Signaling::start(&["--auth-secret", secret, "--metrics-token", "scrape"]);
    let token = |room: &str, name: &str, exp: u64| {
        mint(
            secret.as_bytes(),
            &Claims {
                room: room.into(),
                name: name.into(),
                exp,
            },
        )
    };
    let offer = fixture("chromium-send-offer.sdp");
    let later = unix_now() + 600;
    let refused = [
        None,
        Some("Bearer v1.garbage.garbage".to_owned()),
        Some(format!(
            "Bearer {}",
            mint(
                b"other secret",
                &Claims {
                    room: "vault".into(),
                    name: "obs".into(),
                    exp: later
                }
            )
        )),
        Some(format!("Bearer {}", token("elsewhere", "obs", later))),
        Some(format!("Bearer {}", token("vault", "obs", 1))),
    ];
    for auth in refused {
        let headers: Vec<(&str, &str)> = match &auth {
            Some(a) => vec![SDP, ("Authorization", a.as_str())],
            None => vec![SDP],
        };
        let (status, h, text) =
            http_request(&srv.addr, "POST", "/whip/vault", &headers, offer.as_bytes()).await;
        assert_eq!(status, 401, "{auth:?}: {text}");
        assert_eq!(header(&h, "www-authenticate"), Some("Bearer"));
        assert!(!text.is_empty());
    }
    // ?name= must be the token's name.
    let good = format!("Bearer {}", token("vault", "obs", later));
    let (status, _, _) = http_request(
        &srv.addr,
        "POST",
        "/whip/vault?name=eve",
        &[SDP, ("Authorization", &good)],
        offer.as_bytes(),
    )
    .await;
    assert_eq!(status, 401);
    // The token alone names the participant (OBS sends nothing else).
    let mut ada = Client::connect(&srv.ws_url()).await;
    ada.send(json!({"type": "join", "room": "vault", "name": "ada", "token": token("vault", "ada", later)}))
        .await;
    ada.expect("joined").await;
    let (location, _, _) =
        publish(&srv.addr, "/whip/vault", &[SDP, ("Authorization", &good)]).await;
    let joined = ada.until("peerJoined").await;
    assert_eq!(joined["peer"]["name"], "obs");
    let (status, _, _) = http_request(&srv.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 200);
    ada.until("peerLeft").await;
}

#[tokio::test]
async fn sessions_per_address_are_capped() {
    let srv = Signaling::start(&["--max-connections-per-ip", "2"]);
    let (first, _, _) = publish(&srv.addr, "/whip/many?name=one", &[SDP]).await;
    publish(&srv.addr, "/whip/many?name=two", &[SDP]).await;
    let offer = fixture("chromium-send-offer.sdp");
    let (status, _, text) = http_request(
        &srv.addr,
        "POST",
        "/whip/many?name=three",
        &[SDP],
        offer.as_bytes(),
    )
    .await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("maximum"), "{text}");
    // A place is free again once a session ends.
    let (status, _, _) = http_request(&srv.addr, "DELETE", &first, &[], b"").await;
    assert_eq!(status, 200);
    publish(&srv.addr, "/whip/many?name=three", &[SDP]).await;
}

/// Regression: OBS with x264 offers H264 alone; with the default `video_codec` (VP8) it
/// was refused for want of VP8.
#[tokio::test]
async fn an_h264_only_offer_is_published_as_h264() {
    let srv = Signaling::start(&[]);
    let offer = fixture("chromium-send-offer.sdp")
        .replace("VP8/90000", "XV1/90000")
        .replace("VP9/90000", "XV3/90000")
        .replace("AV1/90000", "XV4/90000");
    let (status, _, answer) = http_request(
        &srv.addr,
        "POST",
        "/whip/h264?name=obs",
        &[SDP],
        offer.as_bytes(),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let video = answer.split("m=video").nth(1).expect("a video m-line");
    assert!(video.contains("H264/90000"), "{answer}");
    assert!(!video.contains("XV1"), "{answer}");
}
