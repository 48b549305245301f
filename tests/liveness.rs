//! `worker.getStats` says whether the packet loop is alive (it goes round, it is parked
//! on receive, it saw the last datagram) and whether the timer loop ticks: what tells a
//! stuck packet loop from a network that delivers nothing, while control still answers.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn packet_loop(ctl: &mut Control) -> Value {
    ctl.ok("worker.getStats", None, json!(null))["packetLoop"].clone()
}

#[test]
fn worker_stats_show_the_packet_loop_going_round_and_the_timer_ticking() {
    let daemon = Daemon::start(1);
    let mut ctl = daemon.control(0);
    let media = daemon.workers[0].0;
    let before = packet_loop(&mut ctl);
    assert_eq!(before["phase"], "receive", "{before}");
    let iterations = before["iterations"].as_u64().expect("iterations");

    // Datagrams the worker drops (unknown protocol) still make the loop go round.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..5 {
        sock.send_to(&[0xff; 40], media).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let now = packet_loop(&mut ctl);
        if now["iterations"].as_u64() > Some(iterations)
            && now["timerTicks"].as_u64() > before["timerTicks"].as_u64()
        {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the loops did not move: {before} -> {now}"
        );
        std::thread::sleep(Duration::from_millis(20)); // poll interval, not synchronisation
    };
    assert!(after["lastReceiveMsAgo"].as_u64().is_some(), "{after}");
    assert!(after["lastTickMsAgo"].as_u64() < Some(1000), "{after}");
    // Idle again, the loop is parked on receive and says since when.
    assert_eq!(after["phase"], "receive", "{after}");
    assert!(after["phaseMs"].is_u64(), "{after}");
}
