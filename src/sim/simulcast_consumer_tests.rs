//! The simulcast consumer against real peers: a str0m publisher sends three VP8
//! encodings by RID, each in three temporal layers with a full payload descriptor
//! (PictureID, TL0PICIDX, TID/Y) as Chrome does, and a str0m subscriber receives one
//! stream whose layers `consumer.setPreferredLayers` moves down and up.

use std::time::Duration;

use serde_json::Value;
use sfu_control::requests::{
    ConsumerGetStats, ConsumerSetPreferredLayers, TransportConsume, WorkerGetStats,
};
use sfu_control::responses::{ConsumerLayers, ConsumerType};
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaKind};

use super::simulcast::{
    declare_layers, layers, produce_simulcast, vp8_capabilities, vp8_l1t3, Encoding, Layer,
};
use super::trace::Vp8Seen;
use super::*;

/// The publisher's encodings, lowest first.
const LAYERS: [Layer; 3] = layers(0x6);
const ENCODINGS: [Encoding; 3] = [
    ("q", 150_000, None),
    ("h", 500_000, None),
    ("f", 1_500_000, None),
];
/// Frames between a layer's keyframes (the publisher ignores keyframe requests).
const KEYFRAME_EVERY: u32 = 24;

/// The payload of frame `frame` of `layer`, one packet: the L1T3 descriptor and VP8
/// header ([`vp8_l1t3`]), and an index naming layer and frame.
fn vp8_frame(layer: u8, frame: u32, picture_id: u16, tl0: u8, keyframe: bool) -> Vec<u8> {
    let mut p = vp8_l1t3(frame % KEYFRAME_EVERY, picture_id, tl0, keyframe, true);
    p.extend(std::iter::repeat_n(layer, 150 * (usize::from(layer) + 1)));
    indexed(p, (u32::from(layer) << 24) | frame)
}

/// A layer's numbering, as its encoder keeps it.
struct Encoder {
    picture_id: u16,
    tl0: u8,
}

/// A publisher of three simulcast encodings and a subscriber of one consumer of them.
struct SimulcastCall {
    sim: Sim,
    publisher: PeerId,
    subscriber: PeerId,
    vp8: u8,
    consumer: String,
    encoders: [Encoder; 3],
    frames: u32,
}

impl SimulcastCall {
    fn new(seed: u64) -> Self {
        let mut sim = Sim::new(seed);
        let router = sim.create_router();
        let publisher = sim.add_peer("pub", |b| b);
        let transport = sim.connect(publisher, &router);
        let (vp8, rtx) = declare_layers(&mut sim, publisher, &LAYERS);
        let producer = produce_simulcast(&mut sim, &transport, vp8, rtx, &ENCODINGS);
        let subscriber = sim.add_peer("sub", |b| b);
        let sub_transport = sim.connect(subscriber, &router);
        let (sub_vp8, sub_rtx) = sim.peer(subscriber).pt(Codec::Vp8);
        let caps = vp8_capabilities(sub_vp8, sub_rtx.expect("str0m pairs VP8 with RTX"), false);
        let c = sim.ok(&TransportConsume {
            transport_id: sub_transport.as_str().into(),
            producer_id: producer.as_str().into(),
            rtp_capabilities: caps,
            paused: false,
            mid: None,
            preferred_layers: None,
            follow: false,
            app_data: Value::Null,
        });
        assert_eq!(c.consumer_type, ConsumerType::Simulcast);
        let enc = c.rtp_parameters.encodings.first().expect("one encoding");
        assert_eq!(enc.scalability_mode.as_deref(), Some("L3T3"));
        let (ssrc, rtx) = (enc.ssrc.expect("ssrc"), enc.rtx.map(|r| r.ssrc));
        sim.label(&c.consumer_id.0, "sub-v-consumer");
        sim.peer(subscriber)
            .recv_stream("v", "v", MediaKind::Video, ssrc, rtx);
        sim.run_until_connected(&[publisher, subscriber], Duration::from_secs(5));
        Self {
            sim,
            publisher,
            subscriber,
            vp8,
            consumer: c.consumer_id.0,
            encoders: [0u16, 10_000, 20_000].map(|p| Encoder {
                picture_id: 0x7ff0 - p,
                tl0: 200,
            }),
            frames: 0,
        }
    }

    /// `n` frames at 30 fps on every layer; layer `l` has a keyframe every
    /// [`KEYFRAME_EVERY`] frames, the layers' keyframes staggered.
    fn frames(&mut self, n: u32) {
        for _ in 0..n {
            let frame = self.frames;
            self.frames += 1;
            for (layer, (_, ssrc, _)) in LAYERS.iter().enumerate() {
                let keyframe = (frame + 8 * layer as u32) % KEYFRAME_EVERY == 0;
                let e = &mut self.encoders[layer];
                if frame > 0 {
                    e.picture_id = e.picture_id.wrapping_add(1) & 0x7fff;
                    let n = frame % KEYFRAME_EVERY;
                    if keyframe || n % 4 == 0 {
                        e.tl0 = e.tl0.wrapping_add(1);
                    }
                }
                let payload = vp8_frame(layer as u8, frame, e.picture_id, e.tl0, keyframe);
                let seq = u64::from(frame) + 1000 * (layer as u64 + 1);
                let ts = frame * 3000 + 1_000_000 * layer as u32;
                let now = self.sim.now();
                self.sim
                    .peer(self.publisher)
                    .write(now, *ssrc, self.vp8, seq, ts, payload);
                // One stream per instant (str0m picks among streams due together in a
                // random order).
                self.sim.run_for(Duration::from_millis(3));
            }
            self.sim.run_for(Duration::from_millis(24));
        }
    }

    fn prefer(&mut self, spatial: u8, temporal: Option<u8>) -> ConsumerLayers {
        self.sim.ok(&ConsumerSetPreferredLayers {
            consumer_id: self.consumer.as_str().into(),
            spatial_layer: spatial,
            temporal_layer: temporal,
        })
    }

    /// What the subscriber received, in sequence order.
    fn received(&self) -> Vec<Vp8Seen> {
        let mut got = self.sim.trace().vp8("sub", "v");
        // Records of one drain are sorted by text, not arrival: order by sequence
        // number, from well before the first one recorded.
        let base = got.first().map_or(0, |g| g.seq.wrapping_sub(1000));
        got.sort_by_key(|g| g.seq.wrapping_sub(base));
        got
    }
}

fn layer_of(p: &Vp8Seen) -> u32 {
    p.index >> 24
}

/// The stream is one unbroken stream: consecutive sequence numbers and PictureIDs (one
/// packet per frame), TL0PICIDX stepping once per base-layer frame, and a new layer only
/// from a keyframe of it.
#[track_caller]
fn assert_continuous(got: &[Vp8Seen]) {
    for w in got.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert_eq!(b.seq, a.seq.wrapping_add(1), "sequence gap {a:?} -> {b:?}");
        assert_eq!(
            b.picture_id,
            (a.picture_id + 1) & 0x7fff,
            "PictureID {a:?} -> {b:?}"
        );
        let step = u8::from(b.tid == Some(0));
        assert_eq!(
            b.tl0_pic_idx,
            a.tl0_pic_idx.map(|t| t.wrapping_add(step)),
            "{a:?} -> {b:?}"
        );
        if layer_of(&b) != layer_of(&a) {
            assert!(b.keyframe, "switched layers off a keyframe: {a:?} -> {b:?}");
        }
    }
}

/// Regression test for issue 13: a subscriber moved down and up the layers of a
/// simulcast publisher receives one continuous stream (sequence numbers, PictureIDs,
/// TL0PICIDX), switching only at keyframes, with only the temporal layers asked for.
#[test]
fn preferred_layers_move_the_subscriber_down_and_up_in_one_continuous_stream() {
    let mut call = SimulcastCall::new(151);
    call.frames(60);
    let got = call.received();
    assert!(!got.is_empty(), "the subscriber gets video");
    assert_eq!(
        got.last().map(layer_of),
        Some(2),
        "the highest layer by default"
    );
    let stats = call.sim.ok(&ConsumerGetStats::new(call.consumer.as_str()));
    let top = ConsumerLayers {
        spatial_layer: 2,
        temporal_layer: 2,
    };
    assert_eq!(stats.current_layers, Some(top));

    // Down to the lowest layer at its base frame rate, clamped answers.
    let asked = call.prefer(0, Some(0));
    assert_eq!(
        asked,
        ConsumerLayers {
            spatial_layer: 0,
            temporal_layer: 0
        }
    );
    let before = got.len();
    call.frames(60);
    let got = call.received();
    let low: Vec<&Vp8Seen> = got[before..].iter().filter(|p| layer_of(p) == 0).collect();
    assert!(
        low.len() >= 8,
        "layer 0 within a keyframe interval: {got:?}"
    );
    assert!(low.iter().all(|p| p.tid == Some(0)), "base layer only");

    // Back up, asking beyond what the producer has.
    assert_eq!(call.prefer(7, None), top);
    let before = got.len();
    call.frames(60);
    let got = call.received();
    let tids: Vec<u8> = got[before..]
        .iter()
        .filter(|p| layer_of(p) == 2)
        .filter_map(|p| p.tid)
        .collect();
    assert!(tids.contains(&2), "every temporal layer again: {tids:?}");
    assert_eq!(got.last().map(layer_of), Some(2));

    let mut layers: Vec<u32> = got.iter().map(layer_of).collect();
    layers.dedup();
    // From the top layer straight down to 0 (through a layer whose keyframe comes first
    // on the way), then straight up to the top again.
    let top_at = layers.iter().position(|&l| l == 2).expect("the top layer");
    let rest = &layers[top_at..];
    let low_at = rest.iter().position(|&l| l == 0).expect("down to 0");
    assert!(
        rest[..=low_at].windows(2).all(|w| w[1] < w[0])
            && rest[low_at..].windows(2).all(|w| w[1] > w[0])
            && rest.last() == Some(&2),
        "down and up: {layers:?}"
    );
    assert_continuous(&got);
    let changes = call
        .sim
        .trace()
        .records()
        .filter(|r| {
            matches!(r, Record::Notification { target, event }
                if target == "sub-v-consumer" && event == "layerschange")
        })
        .count();
    assert!(changes >= 3, "layerschange on every switch: {changes}");
    // The worker's metrics: every change of encoding in what arrived (no loss here) is
    // one spatial switch; the frame rate fell on the top layer while its switch down
    // waited for a keyframe of the lowest, and rose again at a layer sync.
    let totals = call.sim.ok(&WorkerGetStats::default()).totals;
    assert_eq!(
        totals.spatial_layer_switches,
        layers.len() as u64 - 1,
        "{layers:?} {totals:?}"
    );
    assert!(totals.temporal_layer_switches >= 1, "{totals:?}");
    assert_eq!(
        totals.consumers_limited_by_bandwidth, 0,
        "no allocation here"
    );
}

/// A lossy downlink across switches: every packet the subscriber lost is NACKed in the
/// consumer's numbering and repaired over RTX from the encoding it came from, so in the
/// end the subscriber holds every sequence number, with the PictureID it first had.
#[test]
fn losses_across_switches_are_repaired_from_the_right_encoding() {
    let mut call = SimulcastCall::new(152);
    let subscriber = call.subscriber;
    call.frames(30);
    call.sim.set_downlink(
        subscriber,
        Link {
            loss: 0.05,
            delay: Duration::from_millis(20),
            ..Link::default()
        },
    );
    call.prefer(0, None);
    call.frames(50);
    call.prefer(1, None);
    call.frames(50);
    call.sim.set_downlink(subscriber, Link::default());
    call.frames(10);
    call.sim.run_for(Duration::from_secs(1));

    assert!(
        call.sim.trace().dropped("sfu", "sub") > 0,
        "the link lost packets"
    );
    assert!(
        call.sim.trace().retransmissions("sub", "v") > 0,
        "repaired over RTX"
    );
    let mut got = call.received();
    got.dedup_by_key(|p| p.seq);
    let layers: Vec<u32> = got.iter().map(layer_of).collect();
    assert!(
        layers.contains(&0) && layers.last() == Some(&1),
        "{layers:?}"
    );
    assert_continuous(&got);
}

/// A subscriber's PLI asks the publisher for a keyframe of the encoding it receives
/// only (issue 13: a weak subscriber's PLIs must not cost every layer a keyframe): of
/// the top layer while it gets that one, of the lowest once moved down to it.
#[test]
fn a_subscribers_pli_asks_only_for_the_encoding_it_receives() {
    let mut call = SimulcastCall::new(153);
    call.frames(60);
    let requests = |sim: &Sim| sim.trace().keyframe_request_rids("pub");
    let pli = |call: &mut SimulcastCall| {
        let ssrc = call
            .sim
            .ok(&ConsumerGetStats::new(call.consumer.as_str()))
            .ssrc;
        call.sim
            .peer(call.subscriber)
            .request_keyframe(ssrc, KeyframeRequestKind::Pli);
    };
    assert_eq!(call.received().last().map(layer_of), Some(2));
    let before = requests(&call.sim).len();
    pli(&mut call);
    call.frames(3);
    assert_eq!(requests(&call.sim)[before..], [Some("f".to_owned())]);

    call.prefer(0, None);
    call.frames(30);
    assert_eq!(call.received().last().map(layer_of), Some(0));
    let before = requests(&call.sim).len();
    pli(&mut call);
    call.frames(3);
    assert_eq!(requests(&call.sim)[before..], [Some("q".to_owned())]);
}
