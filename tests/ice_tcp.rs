//! ICE over TCP (RFC 6544 passive candidates, RFC 4571 framing) through the real daemon:
//! str0m peers whose only candidates are TCP publish to and receive from peers on UDP
//! and on TCP; bad framing and too many unauthenticated connections are closed and
//! counted without disturbing a call.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use str0m::format::Codec;
use str0m::media::MediaKind;

fn worker_stats(ctl: &mut Control) -> Value {
    ctl.ok("worker.getStats", None, json!(null))
}

fn tcp_candidate(t: &sfu_control::responses::TransportCreated) -> SocketAddr {
    let c = t
        .ice_candidates
        .iter()
        .find(|c| c.protocol == "tcp")
        .expect("a TCP candidate");
    SocketAddr::new(c.ip.parse().unwrap(), c.port)
}

/// Whether the daemon closed `stream` (a read meets end of file or a reset) within
/// `limit`.
fn closed_by_peer(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn transports_offer_a_passive_tcp_candidate_below_udp() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let router = ctl.create_router();
    let t = ctl.create_transport(&router);
    let udp = t
        .ice_candidates
        .iter()
        .find(|c| c.protocol == "udp")
        .unwrap();
    let tcp = t
        .ice_candidates
        .iter()
        .find(|c| c.protocol == "tcp")
        .unwrap();
    assert_eq!(tcp.tcp_type.as_deref(), Some("passive"));
    assert_eq!(udp.tcp_type, None);
    assert!(
        tcp.priority < udp.priority,
        "{} !< {}",
        tcp.priority,
        udp.priority
    );
    assert_eq!(tcp.ip, udp.ip);
    // The listener really listens there.
    TcpStream::connect(tcp_candidate(&t)).expect("the TCP candidate accepts");

    let without = Daemon::start_with(1, &["--ice-tcp", "false"]);
    let mut ctl = without.control(0);
    let router = ctl.create_router();
    let t = ctl.create_transport(&router);
    assert!(t.ice_candidates.iter().all(|c| c.protocol == "udp"));
}

#[test]
fn a_tcp_publisher_reaches_a_tcp_and_a_udp_subscriber() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let router = ctl.create_router();
    let mut room = Room { ctl, router };
    let (mut publisher, mut s_tcp, mut s_udp) = (Peer::over_tcp(), Peer::over_tcp(), Peer::new());
    let tp = room.transport(&mut publisher);
    let t1 = room.transport(&mut s_tcp);
    let t2 = room.transport(&mut s_udp);
    let mut ctl = room.ctl;

    let (opus, vp8) = (publisher.pt(Codec::Opus), publisher.pt(Codec::Vp8));
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
    let (_, s1a) = consume(&mut ctl, &t1, &pa, &mut s_tcp, "a", MediaKind::Audio);
    let (_, s1v) = consume(&mut ctl, &t1, &pv, &mut s_tcp, "v", MediaKind::Video);
    let (_, s2a) = consume(&mut ctl, &t2, &pa, &mut s_udp, "a", MediaKind::Audio);
    let (_, s2v) = consume(&mut ctl, &t2, &pv, &mut s_udp, "v", MediaKind::Video);

    wait_connected(&mut [&mut publisher, &mut s_tcp, &mut s_udp]);
    for t in [&tp, &t1, &t2] {
        wait_dtls_connected(&mut ctl, t);
    }

    const N: u32 = 200;
    let mut sent_video = Vec::new();
    for i in 0..N {
        let v = vp8_payload(i, i % 30 == 0);
        sent_video.push(v.clone());
        send(
            &mut publisher,
            AUDIO_SSRC,
            opus,
            1000 + u64::from(i),
            i * 960,
            opus_payload(i),
        );
        send(
            &mut publisher,
            VIDEO_SSRC,
            vp8,
            5000 + u64::from(i),
            i * 3000,
            v,
        );
        for p in [&mut publisher, &mut s_tcp, &mut s_udp] {
            p.pump(Duration::from_millis(1));
        }
    }
    let all_there = |ps: &mut [&mut Peer]| {
        [(1, s1a), (1, s1v), (2, s2a), (2, s2v)]
            .iter()
            .all(|(i, ssrc)| received(ps[*i], *ssrc).len() >= N as usize)
    };
    let all = drive_all(
        &mut [&mut publisher, &mut s_tcp, &mut s_udp],
        Instant::now() + Duration::from_secs(5),
        all_there,
    );
    // TCP does not lose packets: every one arrives, in order, unchanged.
    for (peer, ssrc, name) in [(&s_tcp, s1v, "tcp video"), (&s_udp, s2v, "udp video")] {
        let got = received(peer, ssrc);
        assert_eq!(
            got.len(),
            N as usize,
            "{name}: {} of {N} packets",
            got.len()
        );
        for (k, (_, payload)) in got.iter().enumerate() {
            assert_eq!(
                payload, &sent_video[k],
                "{name}: packet {k} altered or reordered"
            );
        }
    }
    assert!(all, "every stream complete");
    assert_eq!(received(&s_tcp, s1a).len(), N as usize);

    // The daemon reports the TCP path with the peer's real address.
    for t in [&tp, &t1] {
        let stats = ctl.ok("transport.getStats", Some(t), json!(null));
        let tuple = &stats["iceSelectedTuple"];
        assert_eq!(tuple["protocol"], "tcp", "{stats}");
        assert_eq!(tuple["remoteIp"], "127.0.0.1", "{stats}");
        assert_ne!(tuple["remotePort"], 0, "{stats}");
    }
    let stats = ctl.ok("transport.getStats", Some(&t2), json!(null));
    assert_eq!(stats["iceSelectedTuple"]["protocol"], "udp");
    let w = worker_stats(&mut ctl);
    assert_eq!(w["tcpConnectionsAccepted"], 2, "{w}");
    assert!(
        w["tcpFramesReceived"].as_u64().unwrap() >= u64::from(2 * N),
        "{w}"
    );
    assert!(
        w["tcpFramesSent"].as_u64().unwrap() >= u64::from(2 * N),
        "{w}"
    );
    assert_eq!(w["tcpFramingErrors"], 0, "{w}");
    let link = s_tcp.tcp.as_ref().unwrap();
    assert!(link.received >= 2 * N as usize);
}

#[test]
fn bad_frame_lengths_close_only_that_connection_and_are_counted() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let router = ctl.create_router();
    let mut room = Room { ctl, router };
    let (mut publisher, mut sub) = (Peer::over_tcp(), Peer::over_tcp());
    let t = room.transport_full(&mut publisher);
    let ts = room.transport(&mut sub);
    let addr = tcp_candidate(&t);
    let mut ctl = room.ctl;
    let opus = publisher.pt(Codec::Opus);
    publisher.send_stream("a", MediaKind::Audio, AUDIO_SSRC);
    let pa = produce(
        &mut ctl,
        &t.transport_id.0,
        "audio",
        "audio/opus",
        opus,
        48000,
        AUDIO_SSRC,
    );
    let (_, ssrc) = consume(&mut ctl, &ts, &pa, &mut sub, "a", MediaKind::Audio);
    wait_connected(&mut [&mut publisher, &mut sub]);

    // A length above any frame we speak, an empty frame, and garbage after a partial
    // frame then a close: each connection ends, the call goes on.
    let mut oversized = TcpStream::connect(addr).unwrap();
    oversized.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
    assert!(closed_by_peer(&mut oversized, Duration::from_secs(5)));
    let mut empty = TcpStream::connect(addr).unwrap();
    empty.write_all(&[0, 0]).unwrap();
    assert!(closed_by_peer(&mut empty, Duration::from_secs(5)));
    let mut partial = TcpStream::connect(addr).unwrap();
    partial.write_all(&[0, 200, 1, 2, 3]).unwrap();
    drop(partial);

    for i in 0..50u32 {
        send(
            &mut publisher,
            AUDIO_SSRC,
            opus,
            1000 + u64::from(i),
            i * 960,
            opus_payload(i),
        );
        publisher.pump(Duration::from_millis(1));
        sub.pump(Duration::from_millis(1));
    }
    let got = drive_all(
        &mut [&mut publisher, &mut sub],
        Instant::now() + Duration::from_secs(5),
        |ps| received(ps[1], ssrc).len() >= 50,
    );
    assert!(got, "the call goes on after bad connections");
    let w = worker_stats(&mut ctl);
    assert_eq!(w["tcpFramingErrors"], 2, "{w}");
    assert_eq!(w["tcpConnectionsAccepted"], 5, "{w}");
}

#[test]
fn unauthenticated_connections_are_bounded_per_worker() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let router = ctl.create_router();
    let t = ctl.create_transport(&router);
    let addr = tcp_candidate(&t);
    // sfu::tcp::conns::MAX_UNAUTHENTICATED connections that never send a STUN request.
    let idle: Vec<TcpStream> = (0..64).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Accepts are asynchronous: wait until the daemon counted all of them.
    let deadline = Instant::now() + Duration::from_secs(5);
    while worker_stats(&mut ctl)["tcpConnectionsAccepted"] != 64 {
        assert!(Instant::now() < deadline, "64 connections accepted");
    }
    let mut over = TcpStream::connect(addr).unwrap();
    assert!(
        closed_by_peer(&mut over, Duration::from_secs(5)),
        "the 65th unauthenticated connection is closed at once"
    );
    let w = worker_stats(&mut ctl);
    assert_eq!(w["tcpConnectionsRefused"], 1, "{w}");
    // Closing them makes room again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = TcpStream::connect(addr).unwrap();
        if !closed_by_peer(&mut again, Duration::from_millis(200)) {
            break;
        }
        assert!(Instant::now() < deadline, "room again once they closed");
    }
}
