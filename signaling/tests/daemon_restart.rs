//! The media daemon dies during calls: the signaling process notices at once (control
//! socket EOF), reconnects when the daemon is back (an external one restarted as systemd
//! would, or our own, restarted by us), re-creates the rooms and tells every participant
//! to `restart`; answers and offers made before the restart are ignored, not errors.

mod common;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::{
    answer_for, children, fixture, sample, Client, Daemon, Signaling, DEADLINE, METRICS_TOKEN,
};

async fn metric(srv: &Signaling, name: &str) -> f64 {
    sample(&common::scrape(&srv.addr).await, name, &[]).unwrap_or_else(|| panic!("no {name}"))
}

/// Publishes (the send side's offer with `epoch`) and waits for the answer.
async fn publish(c: &mut Client, epoch: u64) -> Value {
    c.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp"), "epoch": epoch}))
        .await;
    c.until("answer").await
}

/// Answers the next receive-side offer; returns it.
async fn answer_next_offer(c: &mut Client) -> Value {
    let offer = c.until("offer").await;
    let sdp = answer_for(offer["sdp"].as_str().unwrap());
    c.send(json!({"type": "answer", "offerId": offer["offerId"], "sdp": sdp}))
        .await;
    offer
}

/// Two participants in a call: each publishes and receives the other.
async fn call(srv: &Signaling, room: &str) -> (Client, Client, u64) {
    let mut ada = Client::connect(&srv.ws_url()).await;
    ada.join(room, "ada").await;
    publish(&mut ada, 0).await;
    let mut bob = Client::connect(&srv.ws_url()).await;
    bob.join(room, "bob").await;
    answer_next_offer(&mut bob).await;
    publish(&mut bob, 0).await;
    let offer = answer_next_offer(&mut ada).await;
    (ada, bob, offer["offerId"].as_u64().unwrap())
}

#[tokio::test]
async fn an_external_daemon_killed_and_restarted_gets_the_rooms_back() {
    let mut daemon = Daemon::start();
    let dir = daemon.dir.path().to_str().unwrap().to_owned();
    let srv = Signaling::start(&["--daemon", &dir, "--metrics-token", METRICS_TOKEN]);
    let (mut ada, mut bob, ada_offer) = call(&srv, "phoenix").await;
    daemon
        .control()
        .wait_load(DEADLINE, |l| l.producers == 4 && l.consumers == 4);

    let killed = Instant::now();
    daemon.kill();
    while metric(&srv, "sfu_signaling_daemon_up").await != 0.0 {
        assert!(
            killed.elapsed() < Duration::from_secs(1),
            "loss not noticed within 1 s"
        );
        tokio::task::yield_now().await;
    }
    let noticed = killed.elapsed();

    daemon.restart();
    let restarted = Instant::now();
    for c in [&mut ada, &mut bob] {
        let r = until_restart(c).await;
        assert_eq!(r["epoch"], 1, "{r}");
    }
    let told = restarted.elapsed();

    // What ada sent before she processed the restart is ignored: her answer to an offer
    // of the lost transports and her offer of the old epoch. The next thing she hears is
    // the error for this garbage, nothing about those.
    ada.send(json!({"type": "answer", "offerId": ada_offer, "sdp": "v=0"}))
        .await;
    ada.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp"), "epoch": 0}))
        .await;
    ada.send_text("garbage").await;
    ada.expect_error("BadJson").await;
    ada.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp"), "epoch": 9}))
        .await;
    ada.expect_error("OutOfOrder").await;

    // Both publish again on new transports; each is offered the other's new tracks.
    publish(&mut ada, 1).await;
    answer_next_offer(&mut bob).await;
    publish(&mut bob, 1).await;
    answer_next_offer(&mut ada).await;
    let mut control = daemon.control();
    control.wait_load(DEADLINE, |l| {
        l.routers == 1 && l.producers == 4 && l.consumers == 4 && l.transports == 4
    });
    let back = restarted.elapsed();
    println!(
        "# external daemon SIGKILLed: loss noticed after {noticed:?}; after its restart, restart sent within {told:?}, room re-created within {back:?}"
    );
    assert_eq!(metric(&srv, "sfu_signaling_daemon_up").await, 1.0);
    assert_eq!(
        metric(&srv, "sfu_signaling_daemon_reconnects_total").await,
        1.0
    );
    assert_eq!(
        metric(&srv, "sfu_signaling_media_restarts_total").await,
        2.0
    );
    let stats = common::get_json(&srv.addr, "/api/rooms/phoenix").await;
    assert_eq!(stats["restarting"], false, "{stats}");
}

#[tokio::test]
async fn our_own_daemon_is_restarted_when_it_dies() {
    let srv = Signaling::start(&["--metrics-token", METRICS_TOKEN]);
    let first = children(srv.pid());
    assert_eq!(first.len(), 1, "{first:?}");
    let (mut ada, mut bob, _) = call(&srv, "lazarus").await;
    let killed = Instant::now();
    // SAFETY: kill(2) on a pid we just read; no memory is involved.
    unsafe { libc::kill(first[0] as libc::pid_t, libc::SIGKILL) };
    for c in [&mut ada, &mut bob] {
        assert_eq!(until_restart(c).await["epoch"], 1);
    }
    let told = killed.elapsed();
    let now = children(srv.pid());
    assert!(
        now.len() == 1 && now != first,
        "a new daemon: {first:?} -> {now:?}"
    );
    publish(&mut ada, 1).await;
    answer_next_offer(&mut bob).await;
    println!("# private daemon SIGKILLed: restarted and participants told after {told:?}");
    assert_eq!(
        metric(&srv, "sfu_signaling_daemon_restarts_total").await,
        1.0
    );
}

#[tokio::test]
async fn joining_while_the_daemon_is_away_waits_for_it() {
    let mut daemon = Daemon::start();
    let dir = daemon.dir.path().to_str().unwrap().to_owned();
    let srv = Signaling::start(&["--daemon", &dir, "--metrics-token", METRICS_TOKEN]);
    daemon.kill();
    let t = Instant::now();
    while metric(&srv, "sfu_signaling_daemon_up").await != 0.0 {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "loss not noticed within 1 s"
        );
        tokio::task::yield_now().await;
    }
    // Let in, and its offer is not refused: it is superseded by the restart to come.
    let mut cy = Client::connect(&srv.ws_url()).await;
    cy.join("limbo", "cy").await;
    cy.send(json!({"type": "offer", "sdp": fixture("chromium-send-offer.sdp")}))
        .await;
    let stats = common::get_json(&srv.addr, "/api/rooms/limbo").await;
    assert_eq!(stats["restarting"], true, "{stats}");
    daemon.restart();
    assert_eq!(cy.until("restart").await["epoch"], 1);
    publish(&mut cy, 1).await;
    daemon
        .control()
        .wait_load(DEADLINE, |l| l.routers == 1 && l.producers == 2);
}

#[tokio::test]
async fn a_graceful_daemon_restart_is_one_restart_for_the_participants() {
    let mut daemon = Daemon::start();
    let dir = daemon.dir.path().to_str().unwrap().to_owned();
    let srv = Signaling::start(&["--daemon", &dir, "--metrics-token", METRICS_TOKEN]);
    let (mut ada, mut bob, _) = call(&srv, "systemctl").await;
    // `systemctl restart sfu`: workerclose and the other notifications, then EOF.
    daemon.terminate();
    daemon.restart();
    for c in [&mut ada, &mut bob] {
        assert_eq!(until_restart(c).await["epoch"], 1);
    }
    publish(&mut ada, 1).await;
    answer_next_offer(&mut bob).await;
    publish(&mut bob, 1).await;
    answer_next_offer(&mut ada).await;
    daemon
        .control()
        .wait_load(DEADLINE, |l| l.producers == 4 && l.consumers == 4);
    // Exactly one restart each: nothing more arrives before this error reply.
    for c in [&mut ada, &mut bob] {
        c.send_text("{").await;
        loop {
            let m = c.next().await;
            assert_ne!(m["type"], "restart", "a second restart: {m}");
            if m["type"] == "error" {
                assert_eq!(m["code"], "BadJson");
                break;
            }
        }
    }
    assert_eq!(
        metric(&srv, "sfu_signaling_media_restarts_total").await,
        2.0
    );
}

/// Reads until `restart`. The daemon was killed while the call may still have been
/// settling (a page's answer resumes its consumers, a request the room may have had in
/// flight): such a request is answered `ServerError`, which is right and allowed here;
/// any other error is not.
async fn until_restart(c: &mut Client) -> Value {
    loop {
        let v = c.next().await;
        match v["type"].as_str() {
            Some("restart") => return v,
            Some("error") => assert_eq!(v["code"], "ServerError", "{v}"),
            _ => {}
        }
    }
}
