//! IPv6: a daemon on a dual-stack socket (`::`) announcing an IPv4 and an IPv6 address
//! offers candidates for both, and str0m peers on IPv6 loopback publish and receive over
//! UDP and over ICE-TCP while an IPv4 peer in the same call uses the IPv4 candidate.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use str0m::format::Codec;
use str0m::media::MediaKind;

#[test]
fn a_dual_stack_daemon_offers_both_families_and_ipv6_peers_call() {
    let daemon = Daemon::start_with(1, &["--listen-ip", "::", "--announced-ip", "127.0.0.1,::1"]);
    let mut ctl = daemon.control(0);
    let router = ctl.create_router();
    let t = ctl.create_transport(&router);
    let summary: Vec<(String, String, Option<String>)> = t
        .ice_candidates
        .iter()
        .map(|c| (c.protocol.clone(), c.ip.clone(), c.tcp_type.clone()))
        .collect();
    let passive = Some("passive".to_owned());
    assert_eq!(
        summary,
        [
            ("udp".into(), "127.0.0.1".into(), None),
            ("udp".into(), "::1".into(), None),
            ("tcp".into(), "127.0.0.1".into(), passive.clone()),
            ("tcp".into(), "::1".into(), passive),
        ],
        "the preferred address first, every UDP candidate above every TCP one"
    );
    let priorities: Vec<u32> = t.ice_candidates.iter().map(|c| c.priority).collect();
    assert!(priorities.windows(2).all(|w| w[0] > w[1]), "{priorities:?}");

    let mut room = Room { ctl, router };
    let (mut publisher, mut s_v6_tcp, mut s_v4) =
        (Peer::on_ipv6("udp"), Peer::on_ipv6("tcp"), Peer::new());
    let tp = room.transport(&mut publisher);
    let t1 = room.transport(&mut s_v6_tcp);
    let t2 = room.transport(&mut s_v4);
    let mut ctl = room.ctl;
    let vp8 = publisher.pt(Codec::Vp8);
    publisher.send_stream("v", MediaKind::Video, VIDEO_SSRC);
    let pv = produce(&mut ctl, &tp, "video", "video/VP8", vp8, 90000, VIDEO_SSRC);
    let (_, s1) = consume(&mut ctl, &t1, &pv, &mut s_v6_tcp, "v", MediaKind::Video);
    let (_, s2) = consume(&mut ctl, &t2, &pv, &mut s_v4, "v", MediaKind::Video);
    wait_connected(&mut [&mut publisher, &mut s_v6_tcp, &mut s_v4]);

    const N: u32 = 100;
    for i in 0..N {
        let v = vp8_payload(i, i % 30 == 0);
        send(
            &mut publisher,
            VIDEO_SSRC,
            vp8,
            5000 + u64::from(i),
            i * 3000,
            v,
        );
        for p in [&mut publisher, &mut s_v6_tcp, &mut s_v4] {
            p.pump(Duration::from_millis(1));
        }
    }
    let all = drive_all(
        &mut [&mut publisher, &mut s_v6_tcp, &mut s_v4],
        Instant::now() + Duration::from_secs(5),
        |ps| received(ps[1], s1).len() >= N as usize && received(ps[2], s2).len() >= N as usize,
    );
    assert!(
        all,
        "IPv6 TCP subscriber got {}, IPv4 one {} of {N}",
        received(&s_v6_tcp, s1).len(),
        received(&s_v4, s2).len()
    );
    for (t, protocol, local, remote) in [
        (&tp, "udp", "::1", "::1"),
        (&t1, "tcp", "::1", "::1"),
        (&t2, "udp", "127.0.0.1", "127.0.0.1"),
    ] {
        let stats = ctl.ok("transport.getStats", Some(t), json!(null));
        let tuple = &stats["iceSelectedTuple"];
        assert_eq!(tuple["protocol"], protocol, "{stats}");
        assert_eq!(tuple["localIp"], local, "{stats}");
        assert_eq!(tuple["remoteIp"], remote, "{stats}");
    }
}
