//! The fan-out (`worker::fanout`) as the shell drives it: a receive batch fanned out in
//! steps of a limit, with control requests landing between steps while a flush is out.

use std::time::Duration;

use sfu_control::requests::{ConsumerClose, ConsumerGetStats, WorkerGetStats};
use str0m::media::KeyframeRequestKind;

use super::*;

/// A call with one subscriber, past its first keyframe.
fn call_with_one_subscriber(seed: u64) -> Call {
    let mut call = Call::new(
        seed,
        CallConfig {
            subscribers: 1,
            ..CallConfig::default()
        },
    );
    call.stream(Duration::from_millis(300));
    call
}

fn packets_sent(call: &mut Call, consumer: &str) -> u64 {
    call.sim.ok(&ConsumerGetStats::new(consumer)).packets_sent
}

/// A subscriber's copies of one publisher's producers are queued together, video first
/// (so audio can end a video GSO run), each once, whatever the arrival order.
#[test]
fn fan_out_queues_a_subscribers_video_then_audio_together() {
    let mut call = call_with_one_subscriber(81);
    let (ca, cv) = (call.sub(0).audio.0.clone(), call.sub(0).video.0.clone());
    let before = (packets_sent(&mut call, &ca), packets_sent(&mut call, &cv));
    call.sim.park_next_fan_out(1);
    call.send_audio();
    for _ in 0..3 {
        call.send_video();
    }
    assert!(
        call.sim.run_for(Duration::from_millis(50)),
        "the fan-out parked"
    );
    // One step served the video consumer and, with it, the same transport's audio
    // consumer; the audio group then has nobody left.
    let sizes: Vec<usize> = call.sim.last_step().into_iter().map(|(_, n)| n).collect();
    assert_eq!(sizes.len(), 4, "{sizes:?}");
    assert!(
        sizes[..3].iter().all(|n| *n > 600) && sizes[3] < 200,
        "{sizes:?}"
    );
    assert!(call.sim.fan_out_pending(), "the step stopped at the limit");
    while !call.sim.fan_out_step(1) {
        assert_eq!(call.sim.last_step(), [], "nothing is sent twice");
    }
    assert_eq!(call.sim.last_step(), [], "nothing is sent twice");
    let after = (packets_sent(&mut call, &ca), packets_sent(&mut call, &cv));
    assert_eq!((after.0 - before.0, after.1 - before.1), (1, 3));
}

/// The fan-out is resumable across flushes: consumers closed or moved in the list while
/// a flush was out neither lose copies nor get them twice, and each consumer's copies of
/// the batch are queued back to back.
#[test]
fn fan_out_resumes_after_consumers_change_mid_way() {
    let mut call = call_with_one_subscriber(82);
    let sub = call.sub(0).clone();
    let producer = call.video_producer.clone();
    let second = call.consume(sub.peer, &sub.transport, &producer, "v2", "v2");
    let third = call.consume(sub.peer, &sub.transport, &producer, "v3", "v3");
    // The new consumers start on the keyframe they asked for.
    call.stream(Duration::from_millis(300));
    let before = [
        packets_sent(&mut call, &second.0),
        packets_sent(&mut call, &third.0),
    ];
    call.sim.park_next_fan_out(1);
    for _ in 0..3 {
        call.send_video();
    }
    assert!(
        call.sim.run_for(Duration::from_millis(50)),
        "the fan-out parked"
    );
    // One consumer per step: its three copies, back to back.
    for step in 0..2 {
        let dests: Vec<String> = call.sim.last_step().into_iter().map(|(d, _)| d).collect();
        assert_eq!(dests, ["sub1"; 3], "step {step}");
        if step == 0 {
            assert!(!call.sim.fan_out_step(1));
        }
    }
    // The first consumer closes while the second flush is out: the third consumer moves
    // to where the fan-out stopped.
    call.sim.ok(&ConsumerClose::new(sub.video.0.as_str()));
    call.sim.peer(sub.peer).forget_stream("v", sub.video.1);
    let mut queued = 0;
    loop {
        let done = call.sim.fan_out_step(1);
        queued += call.sim.last_step().len();
        if done {
            break;
        }
    }
    assert_eq!(queued, 3, "only the third consumer's copies remained");
    let after = [
        packets_sent(&mut call, &second.0),
        packets_sent(&mut call, &third.0),
    ];
    assert_eq!(
        [after[0] - before[0], after[1] - before[1]],
        [3, 3],
        "each remaining consumer got the batch once"
    );
}

/// A subscriber's feedback reaches its consumer and, through it, the publisher: a PLI
/// becomes a keyframe request, a NACK for a lost packet a retransmission over RTX.
#[test]
fn subscriber_feedback_reaches_the_consumer_and_the_publisher() {
    let mut call = call_with_one_subscriber(83);
    let sub = call.sub(0).clone();
    let requests = call.publisher_keyframe_requests();
    call.sim
        .peer(sub.peer)
        .request_keyframe(sub.video.1, KeyframeRequestKind::Pli);
    // The core asks a publisher at most every KEYFRAME_REQUEST_INTERVAL.
    call.stream(crate::router::KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(100));
    let c = call.sim.ok(&ConsumerGetStats::new(sub.video.0.as_str()));
    assert_eq!(c.pli_count, 1, "{c:?}");
    assert!(call.publisher_keyframe_requests() > requests);

    // The next video copy toward the subscriber is lost.
    let link = call.sim.downlink(sub.peer);
    call.sim.set_downlink(sub.peer, Link { loss: 1.0, ..link });
    let lost = call.send_video();
    call.sim.run_for(link.delay + Duration::from_millis(1));
    call.sim.set_downlink(sub.peer, link);
    assert_eq!(call.sim.trace().dropped("sfu", "sub1"), 1);
    call.stream(Duration::from_millis(300));
    call.idle(Duration::from_millis(100));
    let got = call.sim.trace().received("sub1", "v");
    assert!(got.contains(&lost), "packet {lost} was not repaired");
    assert_eq!(call.sim.trace().retransmissions("sub1", "v"), 1);
    let c = call.sim.ok(&ConsumerGetStats::new(sub.video.0.as_str()));
    assert_eq!(c.nack_count, 1, "{c:?}");
    assert_eq!(c.retransmitted_packets_sent, 1, "{c:?}");
    let stats = call.sim.ok(&WorkerGetStats::default());
    assert_eq!(stats.dropped_total, 0, "{stats:?}");
}
