//! Scenario tests: whole calls through the core in virtual time, against str0m peers.

use std::collections::BTreeSet;
use std::time::Duration;

use sfu_control::requests::{
    ConsumerClose, ConsumerGetStats, ConsumerPause, ConsumerResume, ProducerClose,
    ProducerGetStats, TransportGetStats, WorkerGetStats,
};
use sfu_control::responses::TransportStats;

use super::*;

/// Every media packet the publisher sent reached `peer` on `stream`, once, in order.
#[track_caller]
fn assert_all_in_order(sim: &Sim, peer: &str, stream: &str, sent: u32) {
    let got = sim.trace().received(peer, stream);
    let want: Vec<u32> = (0..sent).collect();
    assert_eq!(got, want, "{peer} {stream}");
}

/// The distinct payload indexes `peer` got on `stream`.
fn distinct(sim: &Sim, peer: &str, stream: &str) -> BTreeSet<u32> {
    sim.trace().received(peer, stream).into_iter().collect()
}

#[test]
fn forwarding_delivers_audio_and_video_to_every_subscriber_in_order() {
    let mut call = Call::new(1, CallConfig::default());
    call.stream(Duration::from_secs(2));
    call.idle(Duration::from_millis(200));
    assert_eq!(call.video_sent, 200);
    for sub in ["sub1", "sub2"] {
        assert_all_in_order(&call.sim, sub, "v", call.video_sent);
        assert_all_in_order(&call.sim, sub, "a", call.audio_sent);
    }
    let drops = call.sim.ok(&WorkerGetStats::default()).dropped_total;
    assert_eq!(drops, 0);
}

/// A call over an impaired network: jitter, reordering and loss on the publisher's
/// uplink, loss on one subscriber's downlink, a bandwidth cap on the other's.
fn impaired_call(seed: u64) -> Trace {
    let mut call = Call::new(
        seed,
        CallConfig {
            twcc: Some(500_000),
            ..CallConfig::default()
        },
    );
    let (publisher, sub1, sub2) = (call.publisher, call.sub(0).peer, call.sub(1).peer);
    let uplink = Link {
        jitter: Duration::from_millis(8),
        reorder: 0.05,
        loss: 0.03,
        ..Link::default()
    };
    call.sim.set_uplink(publisher, uplink);
    call.sim.set_downlink(
        sub1,
        Link {
            loss: 0.05,
            ..Link::default()
        },
    );
    call.sim.set_downlink(
        sub2,
        Link {
            bandwidth_bps: Some(400_000),
            ..Link::default()
        },
    );
    call.stream(Duration::from_secs(2));
    call.idle(Duration::from_millis(500));
    call.sim.trace().clone()
}

/// The harness is deterministic: one seed gives the same trace of datagrams and media
/// events, whatever the randomness of the core's ids, SSRCs and keys and of str0m's; and
/// the seed is what decides (another seed gives another run).
#[test]
fn one_seed_gives_one_trace() {
    let a = impaired_call(11);
    let b = impaired_call(11);
    assert!(a.len() > 2000, "a short trace proves little: {}", a.len());
    assert_eq!(a.first_difference(&b), None);
    // Printed so that runs in separate processes can be compared too.
    eprintln!("trace of {} records, digest {:016x}", a.len(), a.digest());
    let c = impaired_call(12);
    assert!(
        a.first_difference(&c).is_some(),
        "the seed makes no difference"
    );
}

/// 5 % loss on the publisher's uplink and on the subscriber's downlink, over 3 s of
/// video: the subscriber gets every packet with NACK/RTX both ways, and visibly fewer
/// without. (The call goes on a little over clean links afterwards: a lost last packet
/// is only noticed when a later one arrives.)
#[test]
fn nack_and_rtx_repair_five_percent_loss_each_way() {
    let run = |nack: bool| {
        let mut call = Call::new(
            21,
            CallConfig {
                subscribers: 1,
                nack,
                twcc: None,
                red: false,
            },
        );
        let (publisher, sub) = (call.publisher, call.sub(0).peer);
        let lossy = Link {
            loss: 0.05,
            ..Link::default()
        };
        call.sim.set_uplink(publisher, lossy);
        call.sim.set_downlink(sub, lossy);
        call.stream(Duration::from_secs(3));
        call.sim.set_uplink(publisher, Link::default());
        call.sim.set_downlink(sub, Link::default());
        call.stream(Duration::from_millis(200));
        call.idle(Duration::from_secs(1));
        call
    };
    let mut call = run(true);
    let sent = call.video_sent;
    let got = distinct(&call.sim, "sub1", "v");
    let missing: Vec<u32> = (0..sent).filter(|i| !got.contains(i)).collect();
    assert_eq!(missing, [0u32; 0], "not recovered");
    let trace = call.sim.trace();
    assert!(trace.dropped("pub", "sfu") > 0 && trace.dropped("sfu", "sub1") > 0);
    assert!(
        trace.nacked("pub", false) > 0,
        "the core NACKs the publisher"
    );
    assert!(
        trace.nacked("sub1", true) > 0,
        "the subscriber NACKs the core"
    );
    assert!(trace.retransmissions("sub1", "v") > 0);
    let vp = call.video_producer.clone();
    let p = call.sim.ok(&ProducerGetStats::new(vp.as_str()));
    assert!(p.rtx_packets_received > 0, "{p:?}");
    assert!(p.packets_recovered > 0, "{p:?}");
    let cv = call.sub(0).video.0.clone();
    let c = call.sim.ok(&ConsumerGetStats::new(cv.as_str()));
    assert!(c.nack_count > 0, "{c:?}");
    assert!(c.retransmitted_packets_sent > 0, "{c:?}");

    let without = run(false);
    let got_without = distinct(&without.sim, "sub1", "v").len();
    eprintln!(
        "of {sent}: {} with NACK/RTX, {got_without} without",
        got.len()
    );
    assert!(
        got_without < got.len() * 97 / 100,
        "without NACK {got_without} of {sent}, with {}",
        got.len()
    );
}

/// transport-cc both ways: the core's feedback drives the publisher's estimate up from
/// where it started, and the core's own estimate of a subscriber behind a 250 kbit/s
/// bottleneck falls below that of an unconstrained one.
#[test]
fn transport_cc_moves_both_estimates() {
    const START_BPS: u64 = 300_000;
    let mut call = Call::new(
        31,
        CallConfig {
            subscribers: 2,
            nack: true,
            twcc: Some(START_BPS),
            red: false,
        },
    );
    let capped = call.sub(0).peer;
    call.sim.set_downlink(
        capped,
        Link {
            bandwidth_bps: Some(250_000),
            queue_limit: Duration::from_millis(150),
            ..Link::default()
        },
    );
    call.stream(Duration::from_secs(6));
    let estimates = call.sim.trace().estimates("pub");
    let last = estimates.last().copied().unwrap_or_default();
    assert!(last > START_BPS, "publisher estimate {estimates:?}");
    let tp = call.publisher_transport.clone();
    let t = call.sim.ok(&TransportGetStats::new(tp.as_str()));
    assert!(t.transport_cc_feedback_sent > Some(20), "{t:?}");
    let capped_transport = call.sub(0).transport.clone();
    let free_transport = call.sub(1).transport.clone();
    let capped = call
        .sim
        .ok(&TransportGetStats::new(capped_transport.as_str()));
    let free = call
        .sim
        .ok(&TransportGetStats::new(free_transport.as_str()));
    let estimate = |s: &TransportStats| s.available_outgoing_bitrate.unwrap_or_default();
    assert!(
        capped.transport_cc_feedback_received > Some(10),
        "{capped:?}"
    );
    assert!(
        estimate(&capped) < 250_000 && estimate(&capped) < estimate(&free),
        "capped {capped:?}\nfree {free:?}"
    );
    assert!(
        call.sim.trace().dropped("sfu", "sub1") > 0,
        "the bottleneck never filled"
    );
    eprintln!(
        "publisher estimates {estimates:?}; the core's: capped {}, free {}",
        estimate(&capped),
        estimate(&free)
    );
}

/// A paused video consumer gets nothing while its neighbour keeps receiving; resumed, it
/// asks the publisher for a keyframe and starts again on it.
#[test]
fn a_paused_consumer_resumes_on_a_keyframe() {
    let mut call = Call::new(41, CallConfig::default());
    call.stream(Duration::from_secs(1));
    let consumer = call.sub(0).video.0.clone();
    call.sim.ok(&ConsumerPause::new(consumer.as_str()));
    let paused_at = call.video_sent;
    call.stream(Duration::from_millis(1500));
    let requests_before = call.publisher_keyframe_requests();
    call.sim.ok(&ConsumerResume::new(consumer.as_str()));
    let resumed_at = call.video_sent;
    call.stream(Duration::from_secs(1));
    call.idle(Duration::from_millis(200));

    let got = call.sim.trace().received("sub1", "v");
    // Packets written before the pause may still have been on their way to the core.
    let before: Vec<u32> = got.iter().copied().filter(|i| *i <= paused_at).collect();
    let after: Vec<u32> = got.iter().copied().filter(|i| *i > paused_at).collect();
    assert!(before.len() as u32 >= paused_at, "{before:?}");
    let first = *after.first().expect("video again after the resume");
    assert!(first >= resumed_at, "{first} arrived while paused");
    assert!(
        call.keyframes.contains(&first),
        "resumed on {first}, not a keyframe"
    );
    assert_eq!(after, (first..call.video_sent).collect::<Vec<_>>());
    assert!(call.publisher_keyframe_requests() > requests_before);
    assert!(
        first < resumed_at + 10,
        "the keyframe came late: {first}, resumed at {resumed_at}"
    );
    let (video, audio) = (call.video_sent, call.audio_sent);
    assert_all_in_order(&call.sim, "sub1", "a", audio);
    assert_all_in_order(&call.sim, "sub2", "v", video);
}

/// A producer closed while a batch carrying its packet is half fanned out (the shell's
/// flush parked on the socket): no panic, no copy of it sent after the close, its
/// consumers told why, and the other producer still forwarded.
#[test]
fn a_producer_closed_mid_fan_out_sends_nothing_after() {
    let mut call = Call::new(51, CallConfig::default());
    call.stream(Duration::from_millis(500));
    call.sim.park_next_fan_out(1);
    call.send_video();
    assert!(
        call.sim.run_for(Duration::from_millis(50)),
        "the fan-out parked"
    );
    assert!(call.sim.fan_out_pending());
    let first = call.sim.last_step();
    assert_eq!(first.len(), 1, "one subscriber's copy per step: {first:?}");
    let vp = call.video_producer.clone();
    call.sim.ok(&ProducerClose::new(vp.as_str()));
    let mut after = Vec::new();
    loop {
        let done = call.sim.fan_out_step(1);
        after.extend(call.sim.last_step());
        if done {
            break;
        }
    }
    assert_eq!(after, [], "copies of the closed producer's packet");
    let video_before = (
        call.sim.trace().received("sub1", "v").len(),
        call.sim.trace().received("sub2", "v").len(),
    );
    call.stream(Duration::from_millis(500));
    call.idle(Duration::from_millis(100));
    let trace = call.sim.trace();
    let video_after = (
        trace.received("sub1", "v").len(),
        trace.received("sub2", "v").len(),
    );
    // The copy the first step sent was already on its way.
    assert_eq!(
        video_after.0 + video_after.1,
        video_before.0 + video_before.1 + 1
    );
    let closed: Vec<&str> = trace
        .records()
        .filter_map(|r| match r {
            Record::Notification { target, event } if event == "producerclose" => {
                Some(target.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(closed, ["sub1-v-consumer", "sub2-v-consumer"]);
    let audio = call.audio_sent;
    assert_all_in_order(&call.sim, "sub1", "a", audio);
    assert_all_in_order(&call.sim, "sub2", "a", audio);
}

/// Many consumers created and closed on one subscriber transport while media flows:
/// each gets media while it lives, the transport ends with the state it started with,
/// and the long-lived consumers never miss a packet.
#[test]
fn consumer_churn_leaves_the_transport_as_it_was() {
    let mut call = Call::new(
        61,
        CallConfig {
            subscribers: 1,
            ..CallConfig::default()
        },
    );
    call.stream(Duration::from_millis(300));
    let sub = call.sub(0).clone();
    let baseline = call.sim.transport_state(&sub.transport);
    let audio_producer = call.audio_producer.clone();
    for round in 0..15 {
        let live: Vec<(String, String, u32)> = (0..4)
            .map(|k| {
                let mid = format!("c{round}-{k}");
                let (id, ssrc) =
                    call.consume(sub.peer, &sub.transport, &audio_producer, &mid, &mid);
                (mid, id, ssrc)
            })
            .collect();
        call.stream(Duration::from_millis(40));
        for (mid, id, ssrc) in live {
            call.sim.ok(&ConsumerClose::new(id.as_str()));
            call.sim.peer(sub.peer).forget_stream(&mid, ssrc);
            let got = call.sim.trace().received("sub1", &mid);
            assert!(!got.is_empty(), "consumer {mid} got nothing");
        }
    }
    call.stream(Duration::from_millis(300));
    call.idle(Duration::from_millis(100));
    let end = call.sim.transport_state(&sub.transport);
    assert_eq!(end.consumers, baseline.consumers);
    assert_eq!(end.consumers_by_ssrc, baseline.consumers_by_ssrc);
    assert_eq!(end.srtp_out.map(|c| c.0), baseline.srtp_out.map(|c| c.0));
    let (video, audio) = (call.video_sent, call.audio_sent);
    assert_all_in_order(&call.sim, "sub1", "v", video);
    assert_all_in_order(&call.sim, "sub1", "a", audio);
}

/// A subscriber behind 5 % random loss (50 ms each way) is asked to hold its video for
/// repairs: its transport learns the path's own loss and asks a playout delay of three
/// round trips and a margin (bwe::playout); the unconstrained subscriber's asks none.
#[test]
fn a_lossy_subscriber_is_asked_for_a_playout_delay_and_a_clean_one_is_not() {
    let mut call = Call::new(
        41,
        CallConfig {
            subscribers: 2,
            nack: true,
            twcc: Some(1_000_000),
            red: false,
        },
    );
    let lossy = Link {
        delay: Duration::from_millis(50),
        loss: 0.05,
        ..Link::default()
    };
    let peer = call.sub(0).peer;
    call.sim.set_downlink(peer, lossy);
    call.sim.set_uplink(peer, lossy);
    call.stream(Duration::from_secs(15));
    let stats = |call: &mut Call, i: usize| {
        let t = call.sub(i).transport.clone();
        call.sim.ok(&TransportGetStats::new(t.as_str()))
    };
    let lossy = stats(&mut call, 0);
    let clean = stats(&mut call, 1);
    assert!(
        lossy
            .inherent_loss
            .is_some_and(|p| (0.02..0.1).contains(&p)),
        "{lossy:?}"
    );
    // RTT about 100 ms: 3 x RTT + 40 ms, within 100..=400 ms.
    assert!(
        lossy
            .playout_delay
            .is_some_and(|ms| (300..=400).contains(&ms)),
        "{lossy:?}"
    );
    assert_eq!(clean.playout_delay, Some(0), "{clean:?}");
}

/// A publisher behind 5 % random loss (50 ms each way): its producer learns the uplink's
/// loss before repair and the repair round trip, and asks its subscribers for a playout
/// delay covering three repairs; a publisher on a clean path asks none.
#[test]
fn a_lossy_publisher_asks_its_subscribers_for_a_playout_delay_and_a_clean_one_does_not() {
    let run = |lossy_uplink: bool| {
        let mut call = Call::new(
            43,
            CallConfig {
                subscribers: 1,
                nack: true,
                twcc: None,
                red: false,
            },
        );
        if lossy_uplink {
            let lossy = Link {
                delay: Duration::from_millis(50),
                loss: 0.05,
                ..Link::default()
            };
            let publisher = call.publisher;
            call.sim.set_uplink(publisher, lossy);
            call.sim.set_downlink(publisher, lossy);
        }
        call.stream(Duration::from_secs(10));
        let producer = call.video_producer.clone();
        call.sim.ok(&ProducerGetStats::new(producer.as_str()))
    };
    let lossy = run(true);
    // Repair round trip about 100 ms plus the NACK's wait: 3 x that + 40 ms, at most 400.
    assert!(
        lossy
            .playout_delay
            .is_some_and(|ms| (300..=400).contains(&ms)),
        "{lossy:?}"
    );
    let clean = run(false);
    assert_eq!(clean.playout_delay, Some(0), "{clean:?}");
}
