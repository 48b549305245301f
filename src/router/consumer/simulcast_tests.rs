//! The simulcast policy against synthetic three-layer VP8 streams (L3T3 as Chrome sends
//! it: PictureID, TL0PICIDX, TID/Y) and an H264 one.

use super::*;

/// RTP clock ticks per frame (30 fps at 90 kHz).
const FRAME: u32 = 3000;
/// Packets per frame.
const PACKETS: usize = 2;

/// One layer of a synthetic publisher: its own random-looking numbering.
struct Layer {
    index: u8,
    seq: u16,
    ts: u32,
    picture_id: u16,
    tl0: u8,
    /// Frames since the last keyframe.
    frames: u32,
    started: bool,
}

/// A packet of a synthetic stream.
#[derive(Debug, Clone)]
struct Packet {
    layer: u8,
    seq: u16,
    ts: u32,
    payload: Vec<u8>,
    keyframe: bool,
    arrival: u32,
}

/// Temporal layer of frame `n` in the L1T3 pattern 0, 2, 1, 2.
fn tid_of(n: u32) -> u8 {
    [0, 2, 1, 2][(n % 4) as usize]
}

impl Layer {
    fn new(index: u8) -> Self {
        let i = u32::from(index);
        Self {
            index,
            seq: 65_500u16.wrapping_add(7_000 * index as u16),
            ts: 4_000_000_000u32.wrapping_add(i * 123_456_789),
            picture_id: 0x7ff0u16.wrapping_add(1_000 * index as u16) & 0x7fff,
            tl0: 250u8.wrapping_add(60 * index),
            frames: 0,
            started: false,
        }
    }

    /// The next frame, a keyframe or not (a keyframe restarts the temporal pattern, as
    /// an encoder does), arriving at `arrival`.
    fn frame(&mut self, keyframe: bool, arrival: u32) -> Vec<Packet> {
        if keyframe {
            self.frames = 0;
        }
        let n = self.frames;
        let tid = if keyframe { 0 } else { tid_of(n) };
        if self.started {
            self.picture_id = self.picture_id.wrapping_add(1) & 0x7fff;
            if tid == 0 {
                self.tl0 = self.tl0.wrapping_add(1);
            }
        }
        self.started = true;
        // Layer sync: the first TL1 and TL2 frames after a TL0 frame depend on it only.
        let sync = matches!(n % 4, 1 | 2);
        let mut out = Vec::new();
        for i in 0..PACKETS {
            let start = i == 0;
            let [hi, lo] = self.picture_id.to_be_bytes();
            let mut p = vec![
                if start { 0x90 } else { 0x80 },
                0xe0,
                0x80 | hi,
                lo,
                self.tl0,
                (tid << 6) | (u8::from(sync) << 5),
            ];
            if start && keyframe {
                p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02]);
            } else {
                p.extend_from_slice(&[0x31, 0x02, 0x00, 0x11, 0x22, 0x33, self.index, 0]);
            }
            out.push(Packet {
                layer: self.index,
                seq: self.seq,
                ts: self.ts,
                payload: p,
                keyframe: start && keyframe,
                arrival,
            });
            self.seq = self.seq.wrapping_add(1);
        }
        self.ts = self.ts.wrapping_add(FRAME);
        self.frames += 1;
        out
    }
}

/// What the subscriber received of one packet.
#[derive(Debug, Clone, Copy)]
struct Received {
    layer: u8,
    seq: u16,
    ts: u32,
    picture_id: u16,
    tl0: u8,
    tid: u8,
    sync: bool,
    starts_frame: bool,
    keyframe: bool,
}

/// Three layers sent together, frame by frame, into one consumer.
struct Call {
    layers: Vec<Layer>,
    consumer: SimulcastConsumer,
    frames: u32,
    received: Vec<Received>,
    /// Every packet sent, in order.
    sent: Vec<Packet>,
}

impl Call {
    fn new(preferred: (u8, Option<u8>)) -> Self {
        Self {
            layers: (0..3).map(Layer::new).collect(),
            consumer: SimulcastConsumer::new(3, 3, true, 90_000, Some(preferred), 40_000, 77),
            frames: 0,
            received: Vec::new(),
            sent: Vec::new(),
        }
    }

    /// One frame on every layer, keyframes on the layers in `keyframes`.
    fn frame(&mut self, keyframes: &[u8]) {
        self.frame_of(keyframes, &[0, 1, 2], 0);
    }

    /// One frame on every layer of which only those of `delivered` arrive, `delay`
    /// ticks late.
    fn frame_of(&mut self, keyframes: &[u8], delivered: &[u8], delay: u32) {
        let arrival = self.frames * FRAME + delay;
        self.frames += 1;
        let mut packets = Vec::new();
        for l in &mut self.layers {
            packets.extend(l.frame(keyframes.contains(&l.index), arrival));
        }
        for p in packets.iter().filter(|p| delivered.contains(&p.layer)) {
            self.deliver(p);
        }
    }

    fn frames(&mut self, n: u32) {
        for _ in 0..n {
            self.frame(&[]);
        }
    }

    fn deliver(&mut self, p: &Packet) {
        self.sent.push(p.clone());
        let verdict = self
            .consumer
            .forward(p.layer, p.seq, p.ts, &p.payload, p.keyframe, p.arrival);
        let Verdict::Send(planned) = verdict else {
            return;
        };
        self.received.push(receive(&planned, p));
    }

    fn layers_received(&self) -> Vec<u8> {
        let mut v: Vec<u8> = self.received.iter().map(|r| r.layer).collect();
        v.dedup();
        v
    }
}

/// The packet as the subscriber gets it: rewritten and parsed again.
fn receive(planned: &Planned, p: &Packet) -> Received {
    let mut payload = p.payload.clone();
    let (desc, f) = planned.vp8.expect("VP8 fields");
    assert!(desc.rewrite(&mut payload, f.picture_id, f.tl0_pic_idx, f.key_idx));
    let d = Vp8Descriptor::parse(&payload).expect("still a descriptor");
    Received {
        layer: p.layer,
        seq: planned.seq,
        ts: planned.ts,
        picture_id: d.picture_id.expect("picture id").value,
        tl0: d.tl0_pic_idx.expect("tl0picidx"),
        tid: d.tid.expect("tid"),
        sync: d.layer_sync,
        starts_frame: d.starts_frame(),
        keyframe: p.keyframe,
    }
}

/// The subscriber's stream is one unbroken stream: consecutive sequence numbers, frames
/// with rising timestamps and consecutive PictureIDs, TL0PICIDX stepping by one per
/// base-layer frame; and it changes layer only at a keyframe.
#[track_caller]
fn assert_continuous(received: &[Received]) {
    for w in received.windows(2) {
        let (a, b) = (w[0], w[1]);
        assert_eq!(b.seq, a.seq.wrapping_add(1), "sequence gap: {a:?} -> {b:?}");
        if b.starts_frame {
            assert!((b.ts.wrapping_sub(a.ts) as i32) > 0, "ts: {a:?} -> {b:?}");
            assert_eq!(b.picture_id, (a.picture_id + 1) & 0x7fff, "{a:?} -> {b:?}");
            let tl0_step = u8::from(b.tid == 0);
            assert_eq!(b.tl0, a.tl0.wrapping_add(tl0_step), "{a:?} -> {b:?}");
        } else {
            assert_eq!((b.ts, b.picture_id, b.tl0), (a.ts, a.picture_id, a.tl0));
        }
        if b.layer != a.layer {
            assert!(b.keyframe, "switched to layer {} off a keyframe", b.layer);
        }
    }
}

#[test]
fn starts_at_a_keyframe_and_switches_only_at_keyframes_of_the_target() {
    let mut call = Call::new((2, None));
    assert_eq!(call.consumer.take_keyframe_request(), Some(2));
    call.frames(5);
    assert!(call.received.is_empty(), "nothing before a keyframe");
    assert_eq!(call.consumer.current(), None);
    // A keyframe below the target starts the stream; one of a layer nearer the target
    // is taken on the way; the target's own ends the switch.
    call.frame(&[0]);
    assert_eq!(call.consumer.current().map(|l| l.spatial), Some(0));
    call.frames(5);
    call.frame(&[1]);
    call.frames(5);
    call.frame(&[2]);
    call.frames(8);
    assert_eq!(call.layers_received(), [0, 1, 2]);
    assert_eq!(
        call.consumer.current(),
        Some(Layers {
            spatial: 2,
            temporal: 2
        })
    );
    assert_eq!(call.consumer.take_keyframe_request(), None);

    // Down: requested at once, but the current layer goes on until layer 0's keyframe;
    // another keyframe of the current layer meanwhile changes nothing.
    assert_eq!(call.consumer.set_preferred(0, None).spatial, 0);
    assert_eq!(call.consumer.take_keyframe_request(), Some(0));
    call.frames(4);
    assert_eq!(call.received.last().map(|r| r.layer), Some(2));
    call.frame(&[2]);
    assert_eq!(call.consumer.current().map(|l| l.spatial), Some(2));
    call.frames(3);
    call.frame(&[0]);
    call.frames(6);
    assert_eq!(call.layers_received(), [0, 1, 2, 0]);
    // Up again.
    call.consumer.set_preferred(1, None);
    assert_eq!(call.consumer.take_keyframe_request(), Some(1));
    call.frames(3);
    call.frame(&[0, 1, 2]);
    call.frames(6);
    assert_eq!(call.layers_received(), [0, 1, 2, 0, 1]);
    assert_continuous(&call.received);
}

#[test]
fn layer_changes_are_reported_once_each() {
    let mut call = Call::new((1, None));
    assert_eq!(call.consumer.take_layers_change(), None);
    call.frame(&[1]);
    let now = Some(Layers {
        spatial: 1,
        temporal: 2,
    });
    assert_eq!(call.consumer.take_layers_change(), Some(now));
    call.frames(3);
    assert_eq!(call.consumer.take_layers_change(), None);
    call.consumer.stop();
    assert_eq!(call.consumer.take_layers_change(), Some(None));
    call.frames(2);
    assert_eq!(
        call.received.len(),
        8,
        "a stopped consumer forwards nothing"
    );
    call.consumer.resume();
    assert_eq!(call.consumer.take_keyframe_request(), Some(1));
    call.frames(2);
    call.frame(&[1]);
    assert_eq!(call.consumer.take_layers_change(), Some(now));
    call.frames(2);
    // Across the pause the stream goes on where it stopped.
    assert_continuous(&call.received);
}

#[test]
fn temporal_layers_drop_without_gaps_and_rise_only_at_layer_sync() {
    let mut call = Call::new((0, Some(0)));
    assert_eq!(call.consumer.take_keyframe_request(), Some(0));
    call.frame(&[0]);
    call.frames(11);
    // Only base-layer frames: one in four.
    let frames: Vec<&Received> = call.received.iter().filter(|r| r.starts_frame).collect();
    assert_eq!(frames.len(), 3);
    assert!(call.received.iter().all(|r| r.tid == 0));
    assert_continuous(&call.received);

    // Up to TL2: only at a frame with Y set (or a keyframe).
    call.consumer.set_preferred(0, Some(2));
    assert_eq!(
        call.consumer.take_keyframe_request(),
        None,
        "no keyframe needed to go up a temporal layer"
    );
    let before = call.received.len();
    call.frames(8);
    let raised: Vec<&Received> = call.received[before..]
        .iter()
        .filter(|r| r.starts_frame && r.tid > 0)
        .collect();
    assert!(!raised.is_empty());
    assert!(
        raised[0].sync,
        "first higher-layer frame is a layer-sync frame"
    );
    assert_eq!(call.consumer.current().map(|l| l.temporal), Some(2));

    // Down to TL1: at the next frame.
    call.consumer.set_preferred(0, Some(1));
    let before = call.received.len();
    call.frames(8);
    assert!(call.received[before..].iter().all(|r| r.tid <= 1));
    assert!(call.received[before..].iter().any(|r| r.tid == 1));
    assert_continuous(&call.received);
}

#[test]
fn retransmissions_map_back_to_the_layer_and_numbers_first_sent() {
    let mut call = Call::new((0, None));
    call.frame(&[0]);
    call.frames(3);
    call.consumer.set_preferred(2, None);
    call.frame(&[2]);
    call.frames(3);
    for r in call.received.clone() {
        let (layer, in_seq) = call.consumer.original(r.seq).expect("sent recently");
        assert_eq!(layer, r.layer);
        let p = call
            .sent
            .iter()
            .find(|p| p.layer == layer && p.seq == in_seq)
            .expect("a packet of that layer")
            .clone();
        let planned = call
            .consumer
            .retransmission(r.seq, &p.payload)
            .expect("resendable");
        let again = receive(&planned, &p);
        assert_eq!(
            (again.seq, again.ts, again.picture_id, again.tl0),
            (r.seq, r.ts, r.picture_id, r.tl0)
        );
    }
    // A number never sent (a dropped temporal layer's, or ahead) maps to nothing.
    let newest = call.received.last().map(|r| r.seq).unwrap_or(0);
    assert_eq!(call.consumer.original(newest.wrapping_add(1)), None);
}

#[test]
fn timestamps_continue_through_sender_reports_else_by_arrival() {
    // Layer 1's RTP clock is layer 0's plus an offset, and the reports say so.
    let mut call = Call::new((0, None));
    call.frame(&[0]);
    call.frames(3);
    let offset = call.layers[1].ts.wrapping_sub(call.layers[0].ts);
    let mut clocks = [None; MAX_SPATIAL_LAYERS];
    let rtp = call.layers[0].ts;
    clocks[0] = Some(LayerClock { ntp: 1 << 40, rtp });
    clocks[1] = Some(LayerClock {
        ntp: 1 << 40,
        rtp: rtp.wrapping_add(offset),
    });
    call.consumer.set_clocks(&clocks);
    call.consumer.set_preferred(1, None);
    // Layer 0's next frame is lost, layer 1's keyframe comes 20 ms late: its timestamp
    // is one frame after the last one sent, as captured, not as arrived.
    call.frame_of(&[1], &[1, 2], 1800);
    call.frames(2);
    let a = call.received.iter().rev().find(|r| r.layer == 0).copied();
    let b = call.received.iter().find(|r| r.layer == 1).copied();
    let (a, b) = (a.expect("layer 0"), b.expect("layer 1"));
    assert_eq!(b.ts.wrapping_sub(a.ts), FRAME, "placed by the reports");
    assert_continuous(&call.received);

    // Without trustworthy reports (these put layer 0 far off): by the arrival time.
    let mut clocks = [None; MAX_SPATIAL_LAYERS];
    clocks[0] = Some(LayerClock {
        ntp: 1 << 40,
        rtp: call.layers[0].ts.wrapping_add(90_000 * 5),
    });
    clocks[1] = Some(LayerClock {
        ntp: 1 << 40,
        rtp: call.layers[1].ts,
    });
    call.consumer.set_clocks(&clocks);
    call.consumer.set_preferred(0, None);
    let n = call.received.len();
    call.frame_of(&[0], &[0, 2], 1800);
    let (a, b) = (call.received[n - 1], call.received[n]);
    assert_eq!((a.layer, b.layer), (1, 0));
    assert_eq!(b.ts.wrapping_sub(a.ts), FRAME + 1800, "placed by arrival");

    // The same picture on the new layer as the last one sent: one tick later, never
    // the same timestamp or an earlier one.
    call.consumer.set_clocks(&[None; MAX_SPATIAL_LAYERS]);
    call.consumer.set_preferred(2, None);
    let n = call.received.len();
    call.frame(&[2]);
    let (a, b) = (call.received[n + PACKETS - 1], call.received[n + PACKETS]);
    assert_eq!((a.layer, b.layer), (0, 2));
    assert_eq!(b.ts.wrapping_sub(a.ts), 1);
    assert_continuous(&call.received);
}

#[test]
fn malformed_vp8_is_dropped_and_counted() {
    let mut call = Call::new((0, None));
    call.frame(&[0]);
    let n = call.received.len();
    for payload in [vec![], vec![0x90], vec![0x90, 0x80], vec![0x90, 0xe0, 0x81]] {
        let v = call.consumer.forward(0, 1, 2, &payload, false, 3);
        assert_eq!(v, Verdict::Malformed);
    }
    assert_eq!(call.consumer.malformed(), 4);
    call.frames(2);
    assert_eq!(call.received.len(), n + 2 * PACKETS, "the stream goes on");
    assert_continuous(&call.received);
}

#[test]
fn h264_switches_spatial_layers_only() {
    let mut c = SimulcastConsumer::new(2, 3, false, 90_000, None, 100, 0);
    assert_eq!(c.scalability_mode(), "L2T1");
    assert_eq!(c.take_keyframe_request(), Some(1));
    let payload = [0x65, 0x88, 0x80];
    let mut out = Vec::new();
    // Layer 0 keyframe starts it, layer 1 keyframe switches; every packet of the
    // current layer goes out.
    let mut seqs = [1000u16, 5000];
    for (i, key) in [(0u8, true), (1, false), (0, false), (1, true), (1, false)] {
        let seq = &mut seqs[usize::from(i)];
        *seq += 1;
        if let Verdict::Send(p) = c.forward(i, *seq, 0, &payload, key, 0) {
            assert_eq!(p.vp8, None);
            out.push((i, p.seq));
        }
    }
    assert_eq!(out, [(0, 100), (0, 101), (1, 102), (1, 103)]);
}

/// Any packets and control in any order: never a panic, and every packet sent can be
/// mapped back (the publisher's bytes are untrusted; descriptors, numbers and layers
/// arbitrary).
#[test]
fn random_input_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let mut c = SimulcastConsumer::new(3, 3, true, 90_000, None, 1, 2);
    for _ in 0..50_000 {
        match rng.gen_range(0..40) {
            0 => {
                c.set_preferred(rng.gen(), rng.gen::<bool>().then(|| rng.gen()));
            }
            1 => c.set_allocation(rng.gen::<bool>().then(|| (rng.gen(), rng.gen()))),
            2 => c.stop(),
            3 => c.resume(),
            4 => {
                let mut clocks = [None; MAX_SPATIAL_LAYERS];
                for clock in &mut clocks {
                    *clock = rng.gen::<bool>().then(|| LayerClock {
                        ntp: rng.gen(),
                        rtp: rng.gen(),
                    });
                }
                c.set_clocks(&clocks);
            }
            _ => {
                let n = rng.gen_range(0..12);
                let mut payload: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
                if rng.gen_ratio(3, 4) {
                    // Mostly well-formed descriptors, to get past the parse.
                    let mut d = vec![0x90, 0xf0, rng.gen(), rng.gen(), rng.gen(), rng.gen()];
                    d.append(&mut payload);
                    payload = d;
                }
                let layer = rng.gen_range(0..5);
                let v = c.forward(layer, rng.gen(), rng.gen(), &payload, rng.gen(), rng.gen());
                if let Verdict::Send(p) = v {
                    assert_eq!(c.original(p.seq).map(|(l, _)| l), Some(layer));
                    assert!(c.retransmission(p.seq, &payload).is_some());
                }
            }
        }
        let _ = c.take_keyframe_request();
        let _ = c.take_layers_change();
    }
}

#[test]
fn the_target_is_the_lower_of_preference_and_allocation_layer_by_layer() {
    let mut c = SimulcastConsumer::new(3, 3, true, 90_000, Some((2, Some(0))), 0, 0);
    let l = |spatial, temporal| Layers { spatial, temporal };
    assert_eq!(c.target(), l(2, 0));
    c.set_allocation(Some((1, 2)));
    assert_eq!(
        c.target(),
        l(1, 0),
        "the tile's frame rate kept on a lower layer"
    );
    c.set_allocation(Some((9, 9)));
    assert_eq!(c.target(), l(2, 0), "never above the preference");
    c.set_preferred(2, None);
    c.set_allocation(Some((0, 1)));
    assert_eq!(c.target(), l(0, 1));
    c.set_allocation(None);
    assert_eq!(c.target(), l(2, 2));
    assert_eq!(c.preferred(), l(2, 2));
}
