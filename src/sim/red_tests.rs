//! RED for Opus (RFC 2198) through the core: a publisher sending RED as Chromium does, a
//! str0m subscriber that did not negotiate RED receiving plain Opus.

use std::time::Duration;

use sfu_control::requests::{ConsumerGetStats, WorkerGetStats};
use sfu_control::responses::ConsumerStats;

use super::call::{AUDIO_SSRC, VIDEO_SSRC};
use super::net::Link;
use super::*;

/// Streams 2 s of a one-subscriber call; the subscriber's audio consumer's stats.
fn audio_call(red: bool) -> (Call, ConsumerStats) {
    let mut call = Call::new(
        7,
        CallConfig {
            subscribers: 1,
            red,
            ..CallConfig::default()
        },
    );
    call.stream(Duration::from_secs(2));
    call.idle(Duration::from_millis(200));
    let consumer = call.sub(0).audio.0.clone();
    let c = call.sim.ok(&ConsumerGetStats::new(consumer.as_str()));
    (call, c)
}

/// Issue 13: RED from a publisher reaches a subscriber without RED as its primary Opus
/// blocks, every frame once and in order (without the unwrap the consumer has no payload
/// type for RED and the subscriber would hear nothing), byte for byte the size of the
/// same call's plain Opus (the redundant blocks are gone).
#[test]
fn subscriber_without_red_receives_unwrapped_opus() {
    let (mut call, red) = audio_call(true);
    let got = call.sim.trace().received("sub1", "a");
    let sent: Vec<u32> = (0..call.audio_sent).collect();
    assert_eq!(got, sent, "every Opus frame once, in order");
    assert_eq!(red.packets_sent, u64::from(call.audio_sent));
    let w = call.sim.ok(&WorkerGetStats::default());
    assert_eq!(w.dropped.malformed, 0);
    assert_eq!(
        w.totals.red_packets_unwrapped, red.packets_sent,
        "the worker's metric counts each unwrapped packet"
    );

    let (mut plain_call, plain) = audio_call(false);
    assert_eq!(plain_call.audio_sent, call.audio_sent);
    let w = plain_call.sim.ok(&WorkerGetStats::default());
    assert_eq!(
        w.totals.red_packets_unwrapped, 0,
        "no RED, nothing unwrapped"
    );
    assert_eq!(red.bytes_sent, plain.bytes_sent, "{red:?}\n{plain:?}");
}

/// Issue 13: an audio publisher is told of its subscribers' loss in the receiver report
/// the worker sends it (the worst of its uplink's and theirs, smoothed, capped at 20 %),
/// so its Opus encoder turns on in-band FEC; not its video's, and the value decays once
/// the lossy subscriber stops reporting.
#[test]
fn audio_publisher_hears_its_subscribers_loss() {
    use crate::router::consumer::MAX_PASSED_ON;
    let mut call = Call::new(
        11,
        CallConfig {
            subscribers: 2,
            ..CallConfig::default()
        },
    );
    let lossy = call.sub(1).peer;
    call.sim.set_downlink(
        lossy,
        Link {
            loss: 0.3,
            ..Link::default()
        },
    );
    call.stream(Duration::from_secs(12));
    let audio = call.sim.trace().reported_loss("pub", AUDIO_SSRC);
    let video = call.sim.trace().reported_loss("pub", VIDEO_SSRC);
    assert!(audio.len() >= 8 && video.len() >= 8, "{audio:?} {video:?}");
    assert!(
        video.iter().all(|&l| l == 0),
        "video: uplink loss only {video:?}"
    );
    let last = audio[audio.len() - 3..].to_vec();
    assert!(
        last.iter().all(|&l| l > 13 && l <= MAX_PASSED_ON),
        "audio: the lossy subscriber's ~30 % (77/256), capped at {MAX_PASSED_ON}: {audio:?}"
    );
    assert_eq!(*audio.last().unwrap(), MAX_PASSED_ON, "{audio:?}");

    // The lossy subscriber's path goes away entirely: its reports stop, and what the
    // publisher hears decays to its own uplink's loss (none).
    call.sim.set_downlink(
        lossy,
        Link {
            loss: 1.0,
            ..Link::default()
        },
    );
    call.sim.set_uplink(
        lossy,
        Link {
            loss: 1.0,
            ..Link::default()
        },
    );
    let before = call.sim.trace().reported_loss("pub", AUDIO_SSRC).len();
    call.idle(Duration::from_secs(40));
    let after = call.sim.trace().reported_loss("pub", AUDIO_SSRC);
    let later = &after[before..];
    assert!(
        later.first().is_some_and(|&l| l > 0),
        "held at first: {later:?}"
    );
    assert_eq!(*later.last().unwrap(), 0, "decayed: {later:?}");
}
