//! The consumer layer and priority controls (issue 13): `consumer.setPriority` on any
//! consumer, `consumer.setPreferredLayers` refused where there is no layer to choose.

use sfu_control::requests::{ConsumerGetStats, ConsumerSetPreferredLayers, ConsumerSetPriority};
use sfu_control::ErrorKind;

use super::*;

#[test]
fn priority_is_stored_on_every_consumer_and_zero_is_refused() {
    let mut call = Call::new(71, CallConfig::default());
    let (audio, video) = (call.sub(0).audio.0.clone(), call.sub(0).video.0.clone());
    let stats = call.sim.ok(&ConsumerGetStats::new(video.as_str()));
    assert_eq!(stats.priority, Some(1), "the default weight");
    for (id, priority) in [(&video, 3), (&audio, 255)] {
        let set = ConsumerSetPriority {
            consumer_id: id.as_str().into(),
            priority,
        };
        assert_eq!(call.sim.ok(&set).priority, priority);
        let stats = call.sim.ok(&ConsumerGetStats::new(id.as_str()));
        assert_eq!(stats.priority, Some(priority));
    }
    let zero = ConsumerSetPriority {
        consumer_id: video.as_str().into(),
        priority: 0,
    };
    let refusal = call.sim.request(&zero).expect_err("0 is no weight");
    assert_eq!(refusal.kind, ErrorKind::InvalidData);
    let stats = call.sim.ok(&ConsumerGetStats::new(video.as_str()));
    assert_eq!(stats.priority, Some(3), "a refused request changes nothing");
}

#[test]
fn a_simple_consumer_refuses_preferred_layers() {
    let mut call = Call::new(72, CallConfig::default());
    let video = call.sub(0).video.0.clone();
    let set = ConsumerSetPreferredLayers {
        consumer_id: video.as_str().into(),
        spatial_layer: 0,
        temporal_layer: None,
    };
    let refusal = call.sim.request(&set).expect_err("a simple consumer");
    assert_eq!(refusal.kind, ErrorKind::InvalidState);
    assert!(
        refusal.reason.contains("simple consumer"),
        "{}",
        refusal.reason
    );
    let stats = call.sim.ok(&ConsumerGetStats::new(video.as_str()));
    assert_eq!(stats.preferred_layers, None);
    assert_eq!(stats.current_layers, None);
}
