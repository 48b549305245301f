//! WHEP (draft-ietf-wish-whep) over HTTP against the real binaries: a player of one
//! participant gets the participant's tracks in the m-lines it offered, under its own
//! payload types; it waits for a participant that has not published yet and keeps its
//! m-lines when the participant leaves; `DELETE` ends it; bad requests get the status
//! that says why and disturb no other session. Real media to an independent player
//! (aiortc) is e2e/tests/whep.test.mjs.

mod common;

use serde_json::{json, Value};
use sfu_signaling::token::{mint, unix_now, Claims};

use common::{fixture, get_json, header, http_request, Client, Signaling};

const SDP: (&str, &str) = ("Content-Type", "application/sdp");
const SDPFRAG: (&str, &str) = ("Content-Type", "application/trickle-ice-sdpfrag");

/// A player's receive-only offer (Firefox's numbers: Opus 109, VP8 120, RTX 124).
fn player_offer() -> String {
    fixture("whep-firefox-recv-offer.sdp")
}

/// The 201 of a WHEP POST: (Location, ETag, answer).
async fn play(addr: &str, path: &str, headers: &[(&str, &str)]) -> (String, String, String) {
    let (status, h, body) =
        http_request(addr, "POST", path, headers, player_offer().as_bytes()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(header(&h, "content-type"), Some("application/sdp"));
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    let location = header(&h, "location").expect("Location").to_owned();
    let etag = header(&h, "etag").expect("ETag").to_owned();
    assert!(location.contains("/session/"), "{location}");
    (location, etag, body)
}

/// The m-line of `kind` in an answer.
fn section<'a>(answer: &'a str, kind: &str) -> &'a str {
    let start = answer
        .find(&format!("m={kind}"))
        .unwrap_or_else(|| panic!("no m={kind}: {answer}"));
    let rest = &answer[start..];
    let end = rest[1..].find("\r\nm=").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

/// The participant named `name` in the room's stats.
async fn peer_stats(addr: &str, room: &str, name: &str) -> Value {
    let stats = get_json(addr, &format!("/api/rooms/{room}")).await;
    stats["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no {name}: {stats}"))
        .clone()
}

async fn publish_page(client: &mut Client) {
    client
        .send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    client.until("answer").await;
}

#[tokio::test]
async fn a_player_gets_the_participants_tracks_under_its_own_payload_types() {
    let srv = Signaling::start(&[]);
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("stage", "bob").await;
    publish_page(&mut bob).await;

    let (location, _, answer) = play(&srv.addr, "/whep/stage/bob?name=viewer", &[SDP]).await;
    assert!(location.starts_with("/whep/stage/session/"), "{location}");
    assert!(answer.contains("a=setup:passive"), "{answer}");
    let audio = section(&answer, "audio");
    let video = section(&answer, "video");
    for m in [audio, video] {
        assert!(m.contains("a=sendonly"), "{m}");
        assert!(m.contains("a=ssrc:"), "the consumer's SSRC is shown: {m}");
    }
    assert!(audio.contains("a=rtpmap:109 opus/48000/2"), "{audio}");
    assert!(video.contains("a=rtpmap:120 VP8/90000"), "{video}");
    assert!(video.contains("a=fmtp:124 apt=120"), "{video}");
    // The daemon gives a consumer RTX only for an rtx codec whose apt is the consumer's
    // own first payload type: the FID group shows its VP8 is 120, the player's number.
    assert!(video.contains("a=ssrc-group:FID "), "{video}");
    assert!(
        !answer.contains("AV1") && !answer.contains("ulpfec"),
        "only what is forwarded: {answer}"
    );
    let viewer = peer_stats(&srv.addr, "stage", "viewer").await;
    assert_eq!(viewer["consumers"], 2, "{viewer}");
    assert_eq!(viewer["producers"], 0, "{viewer}");
    // A player is no tile: the first participant Bob hears of is the page after it.
    let mut carol = Client::connect(&srv.ws_url()).await;
    let joined = carol.join("stage", "carol").await;
    let names: Vec<&str> = joined["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["bob"], "{joined}");
    assert_eq!(bob.until("peerJoined").await["peer"]["name"], "carol");

    let (status, _, _) = http_request(&srv.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 200);
    let stats = get_json(&srv.addr, "/api/rooms/stage").await;
    assert_eq!(stats["peers"].as_array().unwrap().len(), 2, "{stats}");
    let (status, _, _) = http_request(&srv.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 404, "a session ends once");
}

#[tokio::test]
async fn a_player_waits_for_its_participant_and_outlives_its_leaving() {
    let srv = Signaling::start(&[]);
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("later", "bob").await;
    // Bob is there but has not published: the session is made, its m-lines silent.
    let (location, _, answer) = play(&srv.addr, "/whep/later/bob?name=viewer", &[SDP]).await;
    assert!(section(&answer, "video").contains("a=sendonly"), "{answer}");
    assert!(!answer.contains("a=ssrc:"), "no consumer yet: {answer}");
    // The room handles commands in order: the stats come after Bob's publishing.
    publish_page(&mut bob).await;
    let viewer = peer_stats(&srv.addr, "later", "viewer").await;
    assert_eq!(viewer["consumers"], 2, "Bob's tracks came: {viewer}");

    bob.send(json!({"type": "leave"})).await;
    bob.until("left").await;
    let viewer = peer_stats(&srv.addr, "later", "viewer").await;
    assert_eq!(viewer["consumers"], 0, "{viewer}");

    // Someone called Bob publishes again: played in the same m-lines.
    let mut bob2 = Client::connect(&srv.ws_url()).await;
    bob2.join("later", "Bob").await;
    publish_page(&mut bob2).await;
    let viewer = peer_stats(&srv.addr, "later", "viewer").await;
    assert_eq!(viewer["consumers"], 2, "{viewer}");
    // Others' tracks are not the player's.
    let mut eve = Client::connect(&srv.ws_url()).await;
    eve.join("later", "eve").await;
    publish_page(&mut eve).await;
    let viewer = peer_stats(&srv.addr, "later", "viewer").await;
    assert_eq!(viewer["consumers"], 2, "{viewer}");
    let (status, _, _) = http_request(&srv.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 200);
}

/// Regression test for issue 14: `POST /whep/<room>` plays the room's speaker (the first
/// publisher before anyone spoke) with following consumers: when the played participant
/// leaves, the player keeps its two consumers (moved to the next publisher, or idle when
/// none is left) and a later publisher is set on them rather than given new ones.
#[tokio::test]
async fn a_speaker_player_keeps_its_consumers_as_publishers_come_and_go() {
    let srv = Signaling::start(&[]);
    let (location, _, answer) = play(&srv.addr, "/whep/hall?name=viewer", &[SDP]).await;
    assert!(location.starts_with("/whep/hall/session/"), "{location}");
    assert!(
        !answer.contains("a=ssrc:"),
        "nobody publishes yet: {answer}"
    );
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("hall", "bob").await;
    publish_page(&mut bob).await;
    let viewer = peer_stats(&srv.addr, "hall", "viewer").await;
    assert_eq!(
        viewer["consumers"], 2,
        "the first publisher is played: {viewer}"
    );
    let mut eve = Client::connect(&srv.ws_url()).await;
    eve.join("hall", "eve").await;
    publish_page(&mut eve).await;
    let viewer = peer_stats(&srv.addr, "hall", "viewer").await;
    assert_eq!(
        viewer["consumers"], 2,
        "one participant at a time: {viewer}"
    );

    for (client, who) in [(&mut bob, "bob"), (&mut eve, "eve")] {
        client.send(json!({"type": "leave"})).await;
        client.until("left").await;
        let viewer = peer_stats(&srv.addr, "hall", "viewer").await;
        assert_eq!(
            viewer["consumers"], 2,
            "{who} left, the consumers stay: {viewer}"
        );
    }
    let mut carol = Client::connect(&srv.ws_url()).await;
    carol.join("hall", "carol").await;
    publish_page(&mut carol).await;
    let viewer = peer_stats(&srv.addr, "hall", "viewer").await;
    assert_eq!(
        viewer["consumers"], 2,
        "set on the same consumers: {viewer}"
    );
    let (status, _, _) = http_request(&srv.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 200);
}

/// A refused request: the path, the status wanted, the headers, the body, a word of the
/// reason.
struct Refused {
    path: &'static str,
    status: u16,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    reason: &'static str,
}

#[tokio::test]
async fn bad_requests_get_a_reason_and_disturb_no_other_session() {
    let srv = Signaling::start(&["--max-message", "32768"]);
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join("calm", "bob").await;
    publish_page(&mut bob).await;
    let (location, etag, _) = play(&srv.addr, "/whep/calm/bob?name=first", &[SDP]).await;
    let offer = player_offer();
    let case = |path, status, headers, body: Vec<u8>, reason| Refused {
        path,
        status,
        headers,
        body,
        reason,
    };
    let cases = vec![
        case(
            "/whep/calm/bob",
            415,
            vec![("Content-Type", "application/json")],
            offer.clone().into_bytes(),
            "application/json",
        ),
        case(
            "/whep/calm/bob",
            413,
            vec![SDP],
            vec![b'a'; 40_000],
            "larger than 32768",
        ),
        case(
            "/whep/calm/bob",
            400,
            vec![SDP],
            b"v=0\r\nthis is not sdp\r\n".to_vec(),
            "SDP",
        ),
        case(
            "/whep/calm/bob",
            422,
            vec![SDP],
            offer
                .replace("opus/48000/2", "L16/48000/2")
                .replace("VP8/90000", "XV1/90000")
                .replace("VP9/90000", "XV3/90000")
                .into_bytes(),
            "codec",
        ),
        case(
            "/whep/calm/bob",
            422,
            vec![SDP],
            offer.replace("a=recvonly", "a=sendonly").into_bytes(),
            "WHIP",
        ),
        case(
            "/whep/calm/%20bob",
            400,
            vec![SDP],
            offer.clone().into_bytes(),
            "participant",
        ),
        case(
            "/whep/bad%20room/bob",
            400,
            vec![SDP],
            offer.clone().into_bytes(),
            "room",
        ),
    ];
    for Refused {
        path,
        status: want,
        headers,
        body,
        reason,
    } in cases
    {
        let (status, _, text) = http_request(&srv.addr, "POST", path, &headers, &body).await;
        assert_eq!(status, want, "{path}: {text}");
        assert!(text.contains(reason), "{want}: {text:?} lacks {reason:?}");
    }
    let stats = get_json(&srv.addr, "/api/rooms/calm").await;
    assert_eq!(
        stats["peers"].as_array().unwrap().len(),
        2,
        "refused offers never entered the room: {stats}"
    );

    // Sessions are addressed under their own protocol and room.
    for other in [
        location.replace("/whep/", "/whip/"),
        location.replace("/whep/calm/", "/whep/other/"),
        "/whep/calm/session/00000000000000000000000000000000".to_owned(),
    ] {
        let (status, _, _) = http_request(&srv.addr, "DELETE", &other, &[], b"").await;
        assert_eq!(status, 404, "{other}");
    }
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

    let (status, h, _) = http_request(
        &srv.addr,
        "OPTIONS",
        "/whep/calm/bob",
        &[
            ("Origin", "https://player.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    )
    .await;
    assert_eq!(status, 204);
    assert!(header(&h, "allow").unwrap().contains("POST"));
    assert_eq!(header(&h, "accept-post"), Some("application/sdp"));
    assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
    let (status, h, _) = http_request(&srv.addr, "OPTIONS", &location, &[], b"").await;
    assert_eq!(status, 204);
    assert!(header(&h, "allow").unwrap().contains("DELETE"));

    // The first session is untouched by all of this.
    let first = peer_stats(&srv.addr, "calm", "first").await;
    assert_eq!(first["consumers"], 2, "{first}");
    let (status, _, _) = http_request(&srv.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_join_token_is_the_bearer_token() {
    let secret = "whep secret";
    let srv = Signaling::start(&["--auth-secret", secret]);
    let token = |room: &str, name: &str| {
        mint(
            secret.as_bytes(),
            &Claims {
                room: room.into(),
                name: name.into(),
                exp: unix_now() + 600,
            },
        )
    };
    let offer = player_offer();
    for auth in [
        None,
        Some(format!("Bearer {}", token("elsewhere", "viewer"))),
    ] {
        let headers: Vec<(&str, &str)> = match &auth {
            Some(a) => vec![SDP, ("Authorization", a.as_str())],
            None => vec![SDP],
        };
        let (status, h, text) = http_request(
            &srv.addr,
            "POST",
            "/whep/vault/bob",
            &headers,
            offer.as_bytes(),
        )
        .await;
        assert_eq!(status, 401, "{auth:?}: {text}");
        assert_eq!(header(&h, "www-authenticate"), Some("Bearer"));
    }
    let good = format!("Bearer {}", token("vault", "viewer"));
    let (location, _, _) = play(
        &srv.addr,
        "/whep/vault/bob",
        &[SDP, ("Authorization", &good)],
    )
    .await;
    let (status, _, _) = http_request(&srv.addr, "DELETE", &location, &[], b"").await;
    assert_eq!(status, 200);
}
