//! Simulcast ingest against a real publisher: str0m sends three VP8 encodings named only
//! by RID (no SSRC signalled), with the MID/RID header extensions until our receiver
//! reports acknowledge them and RTX tagged with the repaired RID, as browsers do.

use std::time::Duration;

use sfu_control::requests::{ProducerGetStats, ProducerPause, ProducerResume, WorkerGetStats};

use super::call::vp8_payload;
use super::simulcast::{declare_layers, layers, produce_simulcast, Encoding, Layer};
use super::*;
use crate::srtp::MAX_SSRCS;

/// The publisher's encodings, lowest first.
const LAYERS: [Layer; 3] = layers(0x5);
/// The encodings as a page gives them, highest first (`maxBitrate` orders them).
const ENCODINGS: [Encoding; 3] = [
    ("f", 1_200_000, None),
    ("h", 400_000, Some(2.0)),
    ("q", 120_000, Some(4.0)),
];

/// A VP8 payload carrying `i`; keyframes have the start code.
fn vp8(i: u32, keyframe: bool, len: usize) -> Vec<u8> {
    indexed(vp8_payload(i, keyframe, len), i)
}

/// A connected publisher "pub" with the [`LAYERS`] declared, and its rid-only
/// producer: the simulation, the publisher, its transport and producer ids, and the VP8
/// payload type.
fn simulcast_publisher(seed: u64) -> (Sim, PeerId, String, String, u8) {
    let mut sim = Sim::new(seed);
    let router = sim.create_router();
    let publisher = sim.add_peer("pub", |b| b);
    let transport = sim.connect(publisher, &router);
    let (vp8_pt, rtx_pt) = declare_layers(&mut sim, publisher, &LAYERS);
    let producer = produce_simulcast(&mut sim, &transport, vp8_pt, rtx_pt, &ENCODINGS);
    sim.run_until_connected(&[publisher], Duration::from_secs(5));
    (sim, publisher, transport, producer, vp8_pt)
}

/// Regression test for issue 13 (a simulcast publisher could not publish at all): every
/// encoding's SSRC and RTX SSRC is learnt from its first packets, loss on the
/// publisher's uplink is NACKed per encoding and repaired from that encoding's RTX, and
/// `producer.getStats` counts each encoding on its own.
#[test]
fn rid_only_simulcast_is_latched_and_repaired_per_encoding() {
    let (mut sim, publisher, _, producer, vp8_pt) = simulcast_publisher(131);

    // 3 s of three encodings with 5 % loss on the uplink, then clean for a while (a lost
    // last packet is only noticed when a later one arrives).
    sim.set_uplink(
        publisher,
        Link {
            loss: 0.05,
            ..Link::default()
        },
    );
    let mut sent = [0u32; 3];
    let step = |sim: &mut Sim, sent: &mut [u32; 3]| {
        for (layer, (_, ssrc, _)) in LAYERS.iter().enumerate() {
            let i = sent[layer];
            let now = sim.now();
            // Larger packets on higher layers; one stream per instant (str0m picks among
            // streams due together in a random order).
            let payload = vp8(i, i % 100 == 0, 200 * (layer + 1));
            let (seq, ts) = (u64::from(i) + 100, i * 900);
            sim.peer(publisher)
                .write(now, *ssrc, vp8_pt, seq, ts, payload);
            sent[layer] += 1;
            sim.run_for(Duration::from_millis(3));
        }
        sim.run_for(Duration::from_millis(1));
    };
    for _ in 0..300 {
        step(&mut sim, &mut sent);
    }
    sim.set_uplink(publisher, Link::default());
    for _ in 0..20 {
        step(&mut sim, &mut sent);
    }
    sim.run_for(Duration::from_secs(1));

    let stats = sim.ok(&ProducerGetStats::new(producer.as_str()));
    assert_eq!(stats.encodings.len(), 3, "{stats:?}");
    for (layer, (rid, ssrc, rtx)) in LAYERS.iter().enumerate() {
        let e = &stats.encodings[layer];
        assert_eq!(e.spatial_layer as usize, layer);
        assert_eq!(e.rid.as_deref(), Some(*rid), "ordered by maxBitrate: {e:?}");
        assert_eq!(e.ssrc, Some(*ssrc), "media SSRC learnt from the RID");
        assert_eq!(
            e.rtx_ssrc,
            Some(*rtx),
            "RTX SSRC learnt from the repaired RID"
        );
        assert_eq!(e.temporal_layers, 3);
        assert_eq!(
            e.packets_received,
            u64::from(sent[layer]),
            "every packet of layer {layer} arrived or was repaired: {e:?}"
        );
        assert!(e.nack_count > 0, "layer {layer} NACKed: {e:?}");
        assert!(e.rtx_packets_received > 0, "layer {layer} repaired: {e:?}");
        assert!(e.keyframes_received >= 4, "{e:?}");
    }
    // Larger packets, more bits: the layers' byte counts are ordered.
    let bytes: Vec<u64> = stats.encodings.iter().map(|e| e.bytes_received).collect();
    assert!(bytes[0] < bytes[1] && bytes[1] < bytes[2], "{bytes:?}");
    assert_eq!(
        stats.packets_received,
        u64::from(sent.iter().sum::<u32>()),
        "the totals sum the encodings"
    );
    assert_eq!(
        stats.ssrc, LAYERS[0].1,
        "the top-level SSRC is the lowest layer's"
    );
    let dropped = sim.ok(&WorkerGetStats::default()).dropped;
    assert_eq!(
        (dropped.unknown_ssrc, dropped.unknown_rid),
        (0, 0),
        "{dropped:?}"
    );
    let trace = sim.trace();
    assert!(trace.dropped("pub", "sfu") > 0);
    assert!(
        trace.nacked("pub", false) > 0,
        "the core NACKs the publisher"
    );

    // A resumed producer asks for a keyframe of its lowest layer: the PLI carries the SSRC
    // learnt for rid "q", which str0m maps back to that rid.
    let requests = |sim: &Sim| sim.trace().keyframe_request_rids("pub");
    let before = requests(&sim).len();
    sim.ok(&ProducerPause::new(producer.as_str()));
    sim.ok(&ProducerResume::new(producer.as_str()));
    sim.run_for(Duration::from_millis(100));
    assert_eq!(requests(&sim)[before..], [Some("q".to_owned())]);
}

/// What a publisher can make us hold by naming encodings is bounded: streams from new
/// SSRCs that claim an encoding which already learnt its SSRC are dropped as
/// `unknownRid`, far more of them than the inbound SRTP context has room for, and keep
/// no SRTP state, while the producer still waits for its other encodings (so every one
/// of them goes through the MID/RID lookup); the real stream is heard before and after.
/// (str0m sends one stream per mid and rid, so the real one is set aside meanwhile.)
#[test]
fn streams_claiming_a_learnt_rid_hold_nothing() {
    let (mut sim, publisher, transport, producer, vp8_pt) = simulcast_publisher(132);
    let (q_rid, q_ssrc, q_rtx) = LAYERS[0];
    let send_q = |sim: &mut Sim, i: u32| {
        let now = sim.now();
        let payload = vp8(i, i == 0, 100);
        sim.peer(publisher)
            .write(now, q_ssrc, vp8_pt, u64::from(i), i * 900, payload);
        sim.run_for(Duration::from_millis(10));
    };
    for i in 0..10 {
        send_q(&mut sim, i);
    }
    sim.peer(publisher).forget_send_stream_ssrc(q_ssrc);
    let n = MAX_SSRCS as u32 + 50;
    for i in 0..n {
        let (ssrc, rtx) = (0x7000_0000 + 2 * i, 0x7000_0001 + 2 * i);
        sim.peer(publisher).send_rid_stream("v", ssrc, rtx, q_rid);
        let now = sim.now();
        let payload = vp8(i, false, 100);
        sim.peer(publisher).write(now, ssrc, vp8_pt, 1, 0, payload);
        sim.run_for(Duration::from_millis(1));
        sim.peer(publisher).forget_send_stream_ssrc(ssrc);
        sim.run_for(Duration::from_millis(1));
    }
    sim.peer(publisher)
        .send_rid_stream("v", q_ssrc, q_rtx, q_rid);
    for i in 10..20 {
        send_q(&mut sim, i);
    }
    sim.run_for(Duration::from_millis(100));

    let dropped = sim.ok(&WorkerGetStats::default()).dropped;
    assert_eq!(dropped.unknown_rid, u64::from(n), "{dropped:?}");
    assert_eq!(dropped.unknown_ssrc, 0, "{dropped:?}");
    let state = sim.transport_state(&transport);
    assert_eq!(
        state.srtp_in.map(|c| c.0),
        Some(1),
        "only the learnt SSRC keeps inbound state"
    );
    let stats = sim.ok(&ProducerGetStats::new(producer.as_str()));
    let q = &stats.encodings[0];
    assert_eq!((q.ssrc, q.packets_received), (Some(q_ssrc), 20), "{q:?}");
    assert!(stats.encodings[1..].iter().all(|e| e.ssrc.is_none()));
}
