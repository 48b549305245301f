//! Scenario tests: a whole call through the core in virtual time.

use std::time::Duration;

use super::*;

/// Every media packet the publisher sent reached `peer` on `stream`, once, in order.
#[track_caller]
fn assert_all_in_order(sim: &Sim, peer: &str, stream: &str, sent: u32) {
    let got = sim.trace().received(peer, stream);
    let want: Vec<u32> = (0..sent).collect();
    assert_eq!(got, want, "{peer} {stream}");
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
}
