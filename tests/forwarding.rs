//! Media through the real daemon between independent WebRTC peers (str0m): ICE-lite,
//! DTLS-SRTP, forwarding to two subscribers, room isolation, producer close, pause and
//! resume, and a wrong fingerprint.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use str0m::format::Codec;
use str0m::media::MediaKind;

#[test]
fn publisher_reaches_two_subscribers_and_nobody_else() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let router = ctl.create_router();
    let other = ctl.create_router();
    let mut room = Room { ctl, router };

    let (mut publisher, mut s1, mut s2, mut outsider) =
        (Peer::new(), Peer::new(), Peer::new(), Peer::new());
    let tp = room.transport(&mut publisher);
    let t1 = room.transport(&mut s1);
    let t2 = room.transport(&mut s2);
    let mut lobby = Room {
        ctl: room.ctl,
        router: other,
    };
    let t3 = lobby.transport(&mut outsider);
    let mut ctl = lobby.ctl;

    let opus = publisher.pt(Codec::Opus);
    let vp8 = publisher.pt(Codec::Vp8);
    publisher.send_stream("a", MediaKind::Audio, AUDIO_SSRC);
    publisher.send_stream("v", MediaKind::Video, VIDEO_SSRC);
    let pa = produce(
        &mut ctl,
        &tp,
        "audio",
        "audio/opus",
        opus,
        48000,
        AUDIO_SSRC,
    );
    let pv = produce(&mut ctl, &tp, "video", "video/VP8", vp8, 90000, VIDEO_SSRC);

    let (c1a, s1a) = consume(&mut ctl, &t1, &pa, &mut s1, "a", MediaKind::Audio);
    let (c1v, s1v) = consume(&mut ctl, &t1, &pv, &mut s1, "v", MediaKind::Video);
    let (c2a, s2a) = consume(&mut ctl, &t2, &pa, &mut s2, "a", MediaKind::Audio);
    let (c2v, s2v) = consume(&mut ctl, &t2, &pv, &mut s2, "v", MediaKind::Video);
    // Another router's transport cannot consume this router's producers.
    let refused = ctl.call(
        "transport.consume",
        Some(&t3),
        json!({ "producerId": pa, "rtpCapabilities": outsider.rtp_capabilities() }),
    );
    assert_eq!(refused["error"], "NotFound", "{refused}");

    wait_connected(&mut [&mut publisher, &mut s1, &mut s2, &mut outsider]);
    for t in [&tp, &t1, &t2, &t3] {
        wait_dtls_connected(&mut ctl, t);
    }

    // 300 audio and 300 video packets, video keyframe every 30.
    const N: u32 = 300;
    let mut sent_audio = Vec::new();
    let mut sent_video = Vec::new();
    for i in 0..N {
        let a = opus_payload(i);
        let v = vp8_payload(i, i % 30 == 0);
        sent_audio.push(a.clone());
        sent_video.push(v.clone());
        send(
            &mut publisher,
            AUDIO_SSRC,
            opus,
            1000 + u64::from(i),
            i * 960,
            a,
        );
        send(
            &mut publisher,
            VIDEO_SSRC,
            vp8,
            5000 + u64::from(i),
            i * 3000,
            v,
        );
        for p in [&mut publisher, &mut s1, &mut s2, &mut outsider] {
            p.pump(Duration::from_millis(1));
        }
    }
    let want = (N as usize * 99).div_ceil(100);
    let all_there = |ps: &mut [&mut Peer]| {
        [(1, s1a), (1, s1v), (2, s2a), (2, s2v)]
            .iter()
            .all(|(i, ssrc)| received(ps[*i], *ssrc).len() >= N as usize)
    };
    drive_all(
        &mut [&mut publisher, &mut s1, &mut s2, &mut outsider],
        Instant::now() + Duration::from_secs(5),
        all_there,
    );

    for (peer, ssrc, sent, name) in [
        (&s1, s1a, &sent_audio, "s1 audio"),
        (&s1, s1v, &sent_video, "s1 video"),
        (&s2, s2a, &sent_audio, "s2 audio"),
        (&s2, s2v, &sent_video, "s2 video"),
    ] {
        let got = received(peer, ssrc);
        assert!(got.len() >= want, "{name}: {} of {N} packets", got.len());
        // Payload bytes arrive unchanged: each received payload is one that was sent.
        for (_, payload) in &got {
            assert!(sent.contains(payload), "{name}: a payload was altered");
        }
        // Sequence numbers are consecutive in the consumer's own numbering.
        let seqs: Vec<u16> = got.iter().map(|g| g.0).collect();
        let gaps = seqs
            .windows(2)
            .filter(|w| w[1] != w[0].wrapping_add(1))
            .count();
        assert!(gaps <= N as usize - want, "{name}: {gaps} sequence gaps");
    }
    assert!(
        outsider.rtp().is_empty(),
        "a peer in another room received media"
    );

    let stats = ctl.ok("consumer.getStats", Some(&c1v), json!(null));
    assert!(
        stats["packetsSent"].as_u64().unwrap() >= want as u64,
        "{stats}"
    );
    let pstats = ctl.ok("producer.getStats", Some(&pv), json!(null));
    assert!(
        pstats["packetsReceived"].as_u64().unwrap() >= want as u64,
        "{pstats}"
    );

    // Closing the video producer notifies each of its consumers, and only those.
    ctl.ok("producer.close", Some(&pv), json!(null));
    for c in [&c1v, &c2v] {
        ctl.wait_event(c, "producerclose");
    }
    assert!(
        !ctl.notifications
            .iter()
            .any(|n| n["target"] == c1a.as_str() || n["target"] == c2a.as_str()),
        "audio consumers were told their producer closed: {:?}",
        ctl.notifications
    );
    let gone = ctl.call("consumer.getStats", Some(&c1v), json!(null));
    assert_eq!(gone["error"], "NotFound");
}

#[test]
fn pause_and_resume_keep_sequence_numbers_continuous() {
    let daemon = Daemon::start(1);
    let Call {
        mut ctl,
        mut publisher,
        mut sub,
        opus,
        ca,
        sub_audio: ssrc,
        ..
    } = Call::start(&daemon, false);

    let mut seq = 7000u64;
    let mut burst =
        |publisher: &mut Peer, sub: &mut Peer, from: u32, n: u32, expect_total: usize| {
            for i in from..from + n {
                send(publisher, AUDIO_SSRC, opus, seq, i * 960, opus_payload(i));
                seq += 1;
                publisher.pump(Duration::from_millis(1));
                sub.pump(Duration::from_millis(1));
            }
            drive_all(
                &mut [publisher, sub],
                Instant::now() + Duration::from_secs(3),
                |ps| received(ps[1], ssrc).len() >= expect_total,
            );
        };
    burst(&mut publisher, &mut sub, 0, 50, 50);
    let before = received(&sub, ssrc).len();
    assert!(before >= 49, "only {before} packets before pause");

    ctl.ok("consumer.pause", Some(&ca), json!(null));
    burst(&mut publisher, &mut sub, 50, 50, usize::MAX);
    assert_eq!(
        received(&sub, ssrc).len(),
        before,
        "packets arrived while paused"
    );

    ctl.ok("consumer.resume", Some(&ca), json!(null));
    burst(&mut publisher, &mut sub, 100, 50, before + 50);
    let got = received(&sub, ssrc);
    assert!(
        got.len() >= before + 49,
        "only {} packets after resume",
        got.len() - before
    );
    let (last_before, first_after) = (got[before - 1].0, got[before].0);
    assert_eq!(
        first_after,
        last_before.wrapping_add(1),
        "sequence numbers must continue across pause/resume"
    );
    // And the payload after resume is the first one sent after resume.
    assert_eq!(got[before].1, opus_payload(100));
}

#[test]
fn wrong_fingerprint_fails_the_transport_and_accepts_no_media() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let router = ctl.create_router();
    let mut publisher = Peer::new();
    let t = ctl.create_transport(&router);
    publisher.connect_to(&t);
    let tid = t.transport_id.0;
    let bogus = "AB:".repeat(31) + "AB";
    ctl.ok(
        "transport.connect",
        Some(&tid),
        json!({ "dtlsParameters": { "role": "client", "fingerprints": [{ "algorithm": "sha-256", "value": bogus }] } }),
    );
    let opus = publisher.pt(Codec::Opus);
    publisher.send_stream("a", MediaKind::Audio, AUDIO_SSRC);
    produce(
        &mut ctl,
        &tid,
        "audio",
        "audio/opus",
        opus,
        48000,
        AUDIO_SSRC,
    );
    // The peer completes its side of the handshake (it trusts us), the daemon must not.
    let deadline = Instant::now() + Duration::from_secs(10);
    publisher.drive_until(deadline, |p| p.connected);
    let failed = ctl.wait_for("dtls failed", |n| {
        n["target"] == tid.as_str()
            && n["event"] == "dtlsstatechange"
            && n["data"]["dtlsState"] == "failed"
    });
    assert_eq!(failed["data"]["dtlsState"], "failed");
    for i in 0..20 {
        send(
            &mut publisher,
            AUDIO_SSRC,
            opus,
            100 + i,
            i as u32 * 960,
            opus_payload(i as u32),
        );
        publisher.pump(Duration::from_millis(2));
    }
    let stats: Value = ctl.ok("transport.getStats", Some(&tid), json!(null));
    assert_eq!(stats["dtlsState"], "failed");
    assert_eq!(stats["rtpPacketsReceived"], 0, "{stats}");
    let w = ctl.ok("worker.getStats", None, json!(null));
    assert_eq!(w["dtlsFailures"], 1, "{w}");
}
