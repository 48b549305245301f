//! RED for Opus (RFC 2198) through the core: a publisher sending RED as Chromium does, a
//! str0m subscriber that did not negotiate RED receiving plain Opus.

use std::time::Duration;

use sfu_control::requests::{ConsumerGetStats, WorkerGetStats};
use sfu_control::responses::ConsumerStats;

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

    let (plain_call, plain) = audio_call(false);
    assert_eq!(plain_call.audio_sent, call.audio_sent);
    assert_eq!(red.bytes_sent, plain.bytes_sent, "{red:?}\n{plain:?}");
}
