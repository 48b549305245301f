//! The control plane against an abusive or foreign local client: a client that never
//! reads is cut off (its routers closed, the daemon's memory bounded, others still
//! answered), and a connection acts only on the routers it created unless it came in on
//! the admin socket.

mod common;
#[path = "support/control_flood.rs"]
mod control_flood;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use control_flood::*;
use serde_json::{json, Value};
use str0m::media::MediaKind;

fn admin_path(daemon: &Daemon) -> PathBuf {
    daemon.dir.path().join("worker-0.admin.sock")
}

/// The `ready` notification a fresh connection to `path` gets.
fn ready_of(path: &PathBuf) -> Value {
    let mut c = sfu_control::client::Client::connect(path).expect("connect");
    c.stream()
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    serde_json::from_slice(&c.read_frame().unwrap()).unwrap()
}

#[test]
fn a_client_that_never_reads_is_disconnected_its_routers_closed_and_others_answered() {
    let daemon = Daemon::start(1);
    let pid = daemon.pid();
    let mut observer = daemon.control(0);
    let mut flooder = daemon.control(0);
    let router = flooder.create_router();
    flooder.ok("transport.create", Some(&router), json!({}));
    assert_eq!(observer.ok("worker.load", None, json!(null))["routers"], 1);
    let (rss_before, fds_before) = (rss_kib(pid), fds(pid));

    let mut stream = flooder.stream().try_clone().unwrap();
    let flood = std::thread::spawn(move || flood_unread(&mut stream, 100_000));
    // The observer is answered all along, and sees the flooder counted once cut off.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = 0;
    loop {
        let stats = observer.ok("worker.getStats", None, json!(null));
        answered += 1;
        if stats["controlClientsDropped"] == 1 {
            break;
        }
        assert!(
            !flood.is_finished() || Instant::now() < deadline,
            "the non-reading client was not disconnected: {stats}"
        );
        if flood.is_finished() {
            // All 100,000 went in: give the daemon a last moment to cut it off.
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(Instant::now() < deadline, "no disconnection within 60 s");
    }
    let flood = flood.join().unwrap();
    assert!(flood.disconnected, "flooder still connected: {flood:?}");
    assert!(flood.sent < 100_000, "{flood:?}");

    // Its router and transport are closed like those of any closed connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let load = observer.ok("worker.load", None, json!(null));
        if load["routers"] == 0 && load["transports"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "flooder's router not closed: {load}"
        );
    }
    let (rss_after, fds_after) = (rss_kib(pid), fds(pid));
    eprintln!(
        "flood: {flood:?}, observer answered {answered}, rss {rss_before} -> {rss_after} KiB, fds {fds_before} -> {fds_after}"
    );
    // The queue bound is 16 MiB; before it, 100,000 unread answers held some 90 MB.
    assert!(
        rss_after < rss_before + 40 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert!(fds_after < fds_before, "fds {fds_before} -> {fds_after}");
    // The counter is a worker.getStats field, and the worker goes on serving.
    let stats = observer.ok("worker.getStats", None, json!(null));
    assert_eq!(stats["controlClientsDropped"], 1);
    let mut again = daemon.control(0);
    again.ok("router.create", None, json!({}));
}

fn error_of(ctl: &mut Control, method: &str, target: &str, data: Value) -> String {
    let resp = ctl.call(method, Some(target), data);
    assert_ne!(resp["accepted"], true, "{method} on {target} was accepted");
    resp["error"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_connection_acts_only_on_its_own_routers_unless_admin() {
    let daemon = Daemon::start(1);

    // Connection A: a router with a publisher and a subscriber transport, a producer and
    // its consumer.
    let mut a = daemon.control(0);
    let router = a.create_router();
    let tp = a.create_transport(&router).transport_id.0;
    let ts = a.create_transport(&router).transport_id.0;
    let producer = produce(&mut a, &tp, "audio", "audio/opus", 111, 48000, AUDIO_SSRC);
    let mut sub = Peer::new();
    let (consumer, _) = consume(&mut a, &ts, &producer, &mut sub, "a", MediaKind::Audio);
    let caps = sub.rtp_capabilities();
    let observer = a.ok(
        "router.createActiveSpeakerObserver",
        Some(&router),
        json!({}),
    )["rtpObserverId"]
        .as_str()
        .unwrap()
        .to_owned();
    a.ok(
        "rtpObserver.addProducer",
        Some(&observer),
        json!({ "producerId": producer }),
    );

    // Connection B, on the same (group) socket, sees none of it: the same NotFound a
    // missing id gets.
    let mut b = daemon.control(0);
    let attempts: Vec<(&str, &str, Value)> = vec![
        ("router.close", &router, json!(null)),
        ("router.getStats", &router, json!(null)),
        ("transport.create", &router, json!({})),
        (
            "transport.connect",
            &tp,
            json!({ "dtlsParameters": { "role": "client", "fingerprints": [] } }),
        ),
        ("transport.produce", &tp, json!({})),
        (
            "transport.consume",
            &ts,
            json!({ "producerId": producer, "rtpCapabilities": caps }),
        ),
        ("transport.getStats", &tp, json!(null)),
        ("transport.close", &tp, json!(null)),
        ("producer.pause", &producer, json!(null)),
        ("producer.getStats", &producer, json!(null)),
        ("producer.close", &producer, json!(null)),
        ("consumer.pause", &consumer, json!(null)),
        ("consumer.requestKeyFrame", &consumer, json!(null)),
        ("consumer.getStats", &consumer, json!(null)),
        ("consumer.close", &consumer, json!(null)),
        ("router.createActiveSpeakerObserver", &router, json!({})),
        (
            "rtpObserver.removeProducer",
            &observer,
            json!({ "producerId": producer }),
        ),
        ("rtpObserver.pause", &observer, json!(null)),
        ("rtpObserver.close", &observer, json!(null)),
    ];
    for (method, target, data) in &attempts {
        assert_eq!(
            error_of(&mut b, method, target, data.clone()),
            "NotFound",
            "{method} by another connection"
        );
    }
    assert_eq!(
        error_of(&mut b, "router.close", "0000000000000000", json!(null)),
        "NotFound"
    );
    // Worker-level methods stay open, and B's own router works; A's producer is not
    // consumable from it (routers are rooms).
    b.ok("worker.load", None, json!(null));
    b.ok("worker.getStats", None, json!(null));
    b.ok("worker.getLatency", None, json!({}));
    let own = b.create_router();
    let tb = b.create_transport(&own).transport_id.0;
    assert_eq!(
        error_of(
            &mut b,
            "transport.consume",
            &tb,
            json!({ "producerId": producer, "rtpCapabilities": sub.rtp_capabilities() })
        ),
        "NotFound"
    );
    let own_observer = b.ok("router.createActiveSpeakerObserver", Some(&own), json!({}))
        ["rtpObserverId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        error_of(
            &mut b,
            "rtpObserver.addProducer",
            &own_observer,
            json!({ "producerId": producer })
        ),
        "NotFound",
        "an observer hears only producers of its own router"
    );

    // Nothing of A's was touched.
    let stats = a.ok("router.getStats", Some(&router), json!(null));
    assert_eq!(stats["transports"].as_array().unwrap().len(), 2);
    assert_eq!(
        a.ok("producer.getStats", Some(&producer), json!(null))["paused"],
        false
    );
    assert_eq!(
        a.ok("consumer.getStats", Some(&consumer), json!(null))["paused"],
        false
    );

    // The admin connection acts on A's router; A, its owner, gets the notifications.
    assert_eq!(ready_of(&daemon.workers[0].1)["data"]["admin"], false);
    assert_eq!(ready_of(&admin_path(&daemon))["data"]["admin"], true);
    let mut admin = Control::connect(&admin_path(&daemon));
    admin.ok("worker.load", None, json!(null));
    admin.ok("worker.getStats", None, json!(null));
    admin.ok("router.getStats", Some(&router), json!(null));
    admin.ok("transport.getStats", Some(&tp), json!(null));
    admin.ok("producer.pause", Some(&producer), json!(null));
    a.wait_event(&consumer, "producerpause");
    admin.ok("consumer.pause", Some(&consumer), json!(null));
    assert_eq!(
        a.ok("consumer.getStats", Some(&consumer), json!(null))["paused"],
        true
    );
    admin.ok("router.close", Some(&router), json!(null));
    a.wait_event(&tp, "routerclose");
    a.wait_event(&observer, "routerclose");
    assert_eq!(
        error_of(&mut a, "router.getStats", &router, json!(null)),
        "NotFound"
    );
    // B's router is B's: closing the admin connection leaves it alone.
    drop(admin);
    b.ok("router.getStats", Some(&own), json!(null));
}
