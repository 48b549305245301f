//! Every class of bad datagram is dropped and counted by class, never disturbing another
//! transport; every bad control message gets an error naming the problem, and the same
//! connection goes on serving.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use stun::agent::TransactionId;
use stun::attributes::{ATTR_USERNAME, ATTR_USE_CANDIDATE};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{
    Message, MessageType, Setter, BINDING_REQUEST, CLASS_INDICATION, METHOD_BINDING,
};
use stun::textattrs::TextAttribute;

fn stun_request(username: &str, pwd: &str) -> Vec<u8> {
    let mut m = Message::new();
    m.typ = BINDING_REQUEST;
    m.transaction_id = TransactionId::new();
    m.write_header();
    TextAttribute::new(ATTR_USERNAME, username.to_owned())
        .add_to(&mut m)
        .unwrap();
    m.add(ATTR_USE_CANDIDATE, &[]);
    MessageIntegrity::new_short_term_integrity(pwd.to_owned())
        .add_to(&mut m)
        .unwrap();
    FINGERPRINT.add_to(&mut m).unwrap();
    m.raw
}

fn dropped(ctl: &mut Control) -> Value {
    ctl.ok("worker.getStats", None, json!(null))["dropped"].clone()
}

/// Sends `n` packets on `call` and checks that at least 99% arrive: the call is
/// undisturbed.
fn flows(call: &mut Call, seq: &mut u64, n: u32) {
    let before = received(&call.sub, call.sub_audio).len();
    for i in 0..n {
        send(
            &mut call.publisher,
            AUDIO_SSRC,
            call.opus,
            *seq,
            (*seq as u32) * 960,
            opus_payload(i),
        );
        *seq += 1;
        call.publisher.pump(Duration::from_millis(1));
        call.sub.pump(Duration::from_millis(1));
    }
    let want = before + (n as usize * 99).div_ceil(100);
    let (ssrc, deadline) = (call.sub_audio, Instant::now() + Duration::from_secs(3));
    drive_all(&mut [&mut call.publisher, &mut call.sub], deadline, |ps| {
        received(ps[1], ssrc).len() >= want
    });
    let got = received(&call.sub, call.sub_audio).len() - before;
    assert!(
        got * 100 >= n as usize * 99,
        "only {got} of {n} packets arrived"
    );
}

#[test]
fn bad_datagrams_are_dropped_by_class_and_the_call_goes_on() {
    let daemon = Daemon::start(1);
    let mut call = Call::start(&daemon, false);
    let media = daemon.workers[0].0;
    let mut seq = 100;
    flows(&mut call, &mut seq, 50);
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let base = dropped(&mut call.ctl);

    // Each class: what to send, from where, and the counter that must move.
    let unknown_ufrag = stun_request("nosuchufrag:abcd", "whatever");
    let wrong_integrity = stun_request(
        &format!("{}:abcd", call.publisher_ufrag),
        "not-the-password",
    );
    let fake_srtp = {
        let mut p = vec![0x80, call.opus, 0x12, 0x34, 0, 0, 0, 1];
        p.extend_from_slice(&AUDIO_SSRC.to_be_bytes());
        p.extend(std::iter::repeat_n(0xab, 60));
        p
    };
    let replayed = call
        .publisher
        .sent_srtp
        .first()
        .cloned()
        .expect("publisher sent SRTP");
    let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        ("empty", vec![], false, "unknownProtocol"),
        (
            "unknown first byte",
            vec![0x40, 1, 2, 3],
            false,
            "unknownProtocol",
        ),
        ("truncated RTP", vec![0x80], false, "unknownProtocol"),
        (
            "STUN with unknown ufrag",
            unknown_ufrag,
            false,
            "stunUnknownUfrag",
        ),
        (
            "STUN with wrong integrity",
            wrong_integrity,
            true,
            "stunInvalid",
        ),
        (
            "19-byte STUN",
            vec![
                0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
            ],
            false,
            "stunInvalid",
        ),
        (
            "DTLS from a stranger",
            vec![22, 0xfe, 0xfd, 0, 0, 0, 0],
            false,
            "unknownSource",
        ),
        (
            "SRTP from a stranger",
            fake_srtp.clone(),
            false,
            "unknownSource",
        ),
        ("SRTP failing authentication", fake_srtp, true, "srtpAuth"),
        (
            "SRTP too short for its tag",
            vec![0x80, call.opus, 0, 1, 0, 0, 0, 1, 0x11, 0x11, 0, 1],
            true,
            "malformed",
        ),
        ("replayed SRTP", replayed, true, "srtpReplay"),
        (
            "DTLS application data",
            vec![23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 3, 1, 2, 3],
            true,
            "dtlsError",
        ),
        (
            "truncated DTLS record",
            vec![22, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 30, 1, 2, 3],
            true,
            "malformed",
        ),
    ];
    let mut expected = base.clone();
    for (name, bytes, from_publisher, class) in &cases {
        let sock = if *from_publisher {
            &call.publisher.socket
        } else {
            &stranger
        };
        for _ in 0..3 {
            sock.send_to(bytes, media).unwrap();
        }
        expected[*class] = json!(expected[*class].as_u64().unwrap() + 3);
        // The legitimate call keeps flowing meanwhile.
        flows(&mut call, &mut seq, 10);
        let now = dropped(&mut call.ctl);
        assert_eq!(
            now[*class], expected[*class],
            "{name}: counter {class} did not count 3 drops; {now}"
        );
    }
    let now = dropped(&mut call.ctl);
    assert_eq!(now, expected, "no other drop counter moved");

    // Regression: an unauthenticated Binding indication naming the transport's ufrag must
    // not make the stranger's address acceptable for SRTP.
    let mut ind = Message::new();
    ind.typ = MessageType::new(METHOD_BINDING, CLASS_INDICATION);
    ind.transaction_id = TransactionId::new();
    ind.write_header();
    TextAttribute::new(ATTR_USERNAME, format!("{}:abcd", call.publisher_ufrag))
        .add_to(&mut ind)
        .unwrap();
    FINGERPRINT.add_to(&mut ind).unwrap();
    stranger.send_to(&ind.raw, media).unwrap();
    stranger.send_to(&cases[7].1, media).unwrap();
    flows(&mut call, &mut seq, 10);
    let after = dropped(&mut call.ctl);
    assert_eq!(
        after["unknownSource"].as_u64().unwrap(),
        expected["unknownSource"].as_u64().unwrap() + 1,
        "SRTP from an address only announced by an indication was not refused: {after}"
    );
    flows(&mut call, &mut seq, 100);
}

#[test]
fn bad_control_messages_get_errors_and_the_connection_goes_on() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let expect_error = |ctl: &mut Control, frame: &[u8], kind: &str, mention: &str| {
        ctl.send_frame(frame);
        let r = ctl.read_response();
        assert_eq!(r["error"], kind, "{r}");
        assert!(
            r["reason"].as_str().unwrap().contains(mention),
            "reason should mention {mention:?}: {r}"
        );
        // The same connection still serves a valid request.
        let load = ctl.call("worker.load", None, json!(null));
        assert_eq!(load["accepted"], true, "{load}");
    };
    expect_error(&mut ctl, b"\x00\xffgarbage\x01", "Malformed", "");
    expect_error(&mut ctl, b"{\"id\": 5, \"method\": ", "Malformed", "EOF");
    expect_error(
        &mut ctl,
        br#"{"id": 6, "method": "router.explode"}"#,
        "UnknownMethod",
        "router.explode",
    );
    expect_error(
        &mut ctl,
        br#"{"id": 7, "method": "transport.create"}"#,
        "MissingTarget",
        "transport.create",
    );
    expect_error(
        &mut ctl,
        br#"{"id": 8, "method": "transport.create", "target": "nope"}"#,
        "NotFound",
        "nope",
    );
    expect_error(&mut ctl, br#"{"method": "worker.load"}"#, "Malformed", "id");
    expect_error(
        &mut ctl,
        br#"{"id": 9, "method": "worker.load", "surprise": 1}"#,
        "Malformed",
        "surprise",
    );
    let router = ctl.create_router();
    let t = ctl.create_transport(&router).transport_id.0;
    let bad_produce = json!({ "id": 10, "method": "transport.produce", "target": t,
        "data": { "kind": "video", "rtpParameters": { "codecs": [], "encodings": [] } } });
    expect_error(
        &mut ctl,
        bad_produce.to_string().as_bytes(),
        "InvalidData",
        "codec",
    );
    let wrong_type = json!({ "id": 11, "method": "transport.connect", "target": t, "data": { "dtlsParameters": 42 } });
    expect_error(
        &mut ctl,
        wrong_type.to_string().as_bytes(),
        "InvalidData",
        "dtlsParameters",
    );
    let consume_missing = json!({ "id": 12, "method": "transport.consume", "target": t,
        "data": { "producerId": "0000000000000000", "rtpCapabilities": {} } });
    expect_error(
        &mut ctl,
        consume_missing.to_string().as_bytes(),
        "NotFound",
        "0000000000000000",
    );

    // An oversized frame: announced length over the 1 MiB maximum, body streamed in full.
    let big = sfu_control::framing::MAX_FRAME + 1;
    let mut frame = (big as u32).to_be_bytes().to_vec();
    frame.extend(std::iter::repeat_n(b' ', big));
    ctl.send_raw(&frame);
    let r = ctl.read_response();
    assert_eq!(r["error"], "Oversized", "{r}");
    assert_eq!(r["id"], Value::Null);
    let load = ctl.call("worker.load", None, json!(null));
    assert_eq!(load["accepted"], true);
    assert_eq!(load["data"]["transports"], 1);

    // A second client on the same worker was never disturbed.
    let mut other = daemon.control(0);
    assert_eq!(
        other.call("worker.load", None, json!(null))["accepted"],
        true
    );
}

/// Liveness, not speed: a worker kept busy by a flood of datagrams still answers control
/// requests (control runs in its own latency-sensitive task queue). The bound is generous
/// for debug builds on a loaded machine; before the fix, answers took seconds.
#[test]
fn control_requests_are_answered_during_a_datagram_flood() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let media = daemon.workers[0].0;
    // STUN for a real transport with a wrong password: each one costs the worker an
    // integrity check, so two senders keep it busy without pause.
    let router = ctl.create_router();
    let ufrag = ctl
        .create_transport(&router)
        .ice_parameters
        .username_fragment;
    let junk = stun_request(&format!("{ufrag}:flood"), "wrong password");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let (stop, junk) = (stop.clone(), junk.clone());
            std::thread::spawn(move || {
                let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                let mut sent = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = sock.send_to(&junk, media);
                    sent += 1;
                }
                sent
            })
        })
        .collect();
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        let t = Instant::now();
        let r = ctl.call("worker.getStats", None, json!(null));
        assert_eq!(r["accepted"], true);
        worst = worst.max(t.elapsed());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent: u64 = flooders.into_iter().map(|f| f.join().unwrap()).sum();
    let dropped = dropped(&mut ctl)["stunInvalid"].as_u64().unwrap();
    assert!(
        dropped > 1000,
        "the flood did not reach the worker ({dropped} of {sent})"
    );
    assert!(
        worst < Duration::from_secs(1),
        "a control request took {worst:?} during the flood"
    );
}
