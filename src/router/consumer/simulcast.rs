//! The simulcast consumer (mediasoup's `SimulcastConsumer`): a producer sends several
//! encodings of one picture (spatial layers, 0 the lowest), each possibly in temporal
//! layers; the consumer forwards one spatial and one temporal layer of them as a single
//! stream, and switches between them without the subscriber seeing a seam.
//!
//! # Policy
//!
//! * **Target.** The layers to forward are the preferred ones
//!   (`consumer.setPreferredLayers`), lowered to what the transport's bandwidth
//!   allocation grants ([`SimulcastConsumer::set_allocation`]).
//! * **Spatial switches** happen only at a keyframe of the new layer, the only picture
//!   a decoder can start a new resolution from: when the target changes the consumer
//!   asks for one on the target encoding ([`SimulcastConsumer::take_keyframe_request`])
//!   and goes on forwarding the current layer until it arrives, downwards too. Before
//!   the first layer (and after a pause) any keyframe at or below the target starts the
//!   stream, and a keyframe of a layer between the current one and the target is taken
//!   on the way.
//! * **Temporal layers** (VP8, RFC 7741 TID): packets above the current temporal layer
//!   are dropped; it goes up towards the target only at a layer-sync frame (Y=1: it
//!   depends on base-layer frames only) or a keyframe, and down at once, at the next
//!   frame start.
//! * **Continuity.** Sequence numbers continue across switches and close the gaps of
//!   dropped packets ([`CounterMap`]), so the subscriber NACKs only real loss; so do
//!   VP8 PictureIDs, and TL0PICIDX and KEYIDX continue across switches (no base-layer
//!   frame is ever dropped). Timestamps continue too: at a switch the new layer's
//!   timestamp is placed on the old layer's timeline through both encodings' sender
//!   reports (NTP/RTP mappings) when known, else by the arrival time elapsed, and never
//!   goes back.
//! * **Repair.** Each packet sent is remembered by its output sequence number, so a
//!   subscriber's NACK is answered from the right encoding's retransmission buffer with
//!   the numbers it was first sent with.
//!
//! H264 simulcast has no descriptor the consumer reads: it switches spatial layers only.

use crate::router::consumer::counter_map::CounterMap;
use crate::rtp::{PictureId, Vp8Descriptor};

/// Spatial layers whose sender-report clocks the consumer keeps (the producer's bound
/// on encodings).
pub const MAX_SPATIAL_LAYERS: usize = 4;

/// Packets remembered for answering NACKs: as many as a layer's retransmission buffer.
const SENT_HISTORY: usize = 512;

/// A timestamp placed through sender reports further than this from the one the
/// arrival times give is not trusted (a stale or bogus report), in seconds.
const REPORT_TRUST_SECS: u32 = 1;

/// A spatial and a temporal layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Layers {
    pub spatial: u8,
    pub temporal: u8,
}

/// An encoding's NTP/RTP mapping from its last sender report (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerClock {
    pub ntp: u64,
    pub rtp: u32,
}

/// The VP8 descriptor fields a packet goes out with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vp8Fields {
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
    pub key_idx: Option<u8>,
}

/// How one packet goes out: its numbers, and its VP8 descriptor rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    pub seq: u16,
    pub ts: u32,
    pub vp8: Option<(Vp8Descriptor, Vp8Fields)>,
}

/// What the consumer does with a producer packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Send(Planned),
    /// Not forwarded: another layer, a dropped temporal layer, waiting for a keyframe,
    /// or too late.
    Skip,
    /// A VP8 payload whose descriptor does not parse: dropped and counted.
    Malformed,
}

/// A packet sent, by its output sequence number.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    valid: bool,
    out_seq: u16,
    layer: u8,
    in_seq: u16,
    out_ts: u32,
    fields: Option<Vp8Fields>,
}

/// The newest packet forwarded: where a switch continues from.
#[derive(Debug, Clone, Copy)]
struct Newest {
    out_ts: u32,
    arrival: u32,
    tl0_pic_idx: Option<u8>,
    key_idx: Option<u8>,
}

/// What a simulcast consumer adds to the common consumer state.
#[derive(Debug)]
pub struct SimulcastConsumer {
    spatial_layers: u8,
    temporal_layers: u8,
    /// VP8: temporal layers and descriptor rewriting; else spatial switching only.
    vp8: bool,
    clock_rate: u32,
    preferred: Layers,
    /// The bandwidth allocation's cap, when it set one.
    allocation: Option<Layers>,
    target: Layers,
    /// The spatial layer forwarded; None before the first keyframe and after a pause.
    current: Option<u8>,
    current_temporal: u8,
    /// The layers last reported (`layerschange`).
    reported: Option<Layers>,
    keyframe_request: Option<u8>,
    seq: CounterMap,
    picture_id: CounterMap,
    /// Added to the current layer's timestamps, TL0PICIDX and KEYIDX.
    ts_offset: u32,
    tl0_offset: u8,
    key_idx_offset: u8,
    first_seq: u16,
    first_ts: u32,
    newest: Option<Newest>,
    sent: Box<[Sent]>,
    clocks: [Option<LayerClock>; MAX_SPATIAL_LAYERS],
    malformed: u64,
    /// Layer switches not yet taken into the worker's totals.
    switches: LayerSwitches,
}

/// Switches of the forwarded layers: spatial (a keyframe of another encoding) and
/// temporal alone. Starting to forward (first keyframe, after a pause) is neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayerSwitches {
    pub spatial: u64,
    pub temporal: u64,
}

impl SimulcastConsumer {
    /// A consumer of a producer with `spatial_layers` encodings of `temporal_layers`
    /// temporal layers each, starting at `preferred` (the highest when None); its first
    /// packet becomes (`first_seq`, `first_ts`) (random, RFC 3550 5.1).
    pub fn new(
        spatial_layers: u8,
        temporal_layers: u8,
        vp8: bool,
        clock_rate: u32,
        preferred: Option<(u8, Option<u8>)>,
        first_seq: u16,
        first_ts: u32,
    ) -> Self {
        let spatial_layers = spatial_layers.max(1);
        let temporal_layers = if vp8 { temporal_layers.max(1) } else { 1 };
        let mut c = Self {
            spatial_layers,
            temporal_layers,
            vp8,
            clock_rate: clock_rate.max(1),
            preferred: Layers {
                spatial: spatial_layers - 1,
                temporal: temporal_layers - 1,
            },
            allocation: None,
            target: Layers {
                spatial: 0,
                temporal: 0,
            },
            current: None,
            current_temporal: 0,
            reported: None,
            keyframe_request: None,
            seq: CounterMap::new(16),
            picture_id: CounterMap::new(15),
            ts_offset: 0,
            tl0_offset: 0,
            key_idx_offset: 0,
            first_seq,
            first_ts,
            newest: None,
            sent: vec![Sent::default(); SENT_HISTORY].into_boxed_slice(),
            clocks: [None; MAX_SPATIAL_LAYERS],
            malformed: 0,
            switches: LayerSwitches::default(),
        };
        let (s, t) = preferred.unwrap_or((u8::MAX, None));
        c.set_preferred(s, t);
        c
    }

    /// The layers the producer sends, as a scalability mode ("L3T3").
    pub fn scalability_mode(&self) -> String {
        format!("L{}T{}", self.spatial_layers, self.temporal_layers)
    }

    /// Sets the preferred layers, clamped to what the producer sends (the highest
    /// temporal layer when `temporal` is None); returns them as clamped.
    pub fn set_preferred(&mut self, spatial: u8, temporal: Option<u8>) -> Layers {
        self.preferred = self.clamp(spatial, temporal.unwrap_or(u8::MAX));
        self.retarget();
        self.preferred
    }

    /// The bandwidth allocation's cap on the layers (None: no cap). The target is the
    /// lower of it and the preferred layers, spatial and temporal each.
    pub fn set_allocation(&mut self, cap: Option<(u8, u8)>) {
        self.allocation = cap.map(|(s, t)| self.clamp(s, t));
        self.retarget();
    }

    fn clamp(&self, spatial: u8, temporal: u8) -> Layers {
        Layers {
            spatial: spatial.min(self.spatial_layers - 1),
            temporal: temporal.min(self.temporal_layers - 1),
        }
    }

    fn retarget(&mut self) {
        // Neither above what the subscriber asked for nor above what its path carries,
        // layer by layer (a low-frame-rate tile stays at its frame rate on a lower
        // spatial layer too).
        let p = self.preferred;
        let target = self.allocation.map_or(p, |cap| Layers {
            spatial: cap.spatial.min(p.spatial),
            temporal: cap.temporal.min(p.temporal),
        });
        // A keyframe of a new target layer, or of the target while nothing is forwarded;
        // not again for each unchanged target while a switch waits (the allocator sets
        // it often).
        let moved = target.spatial != self.target.spatial || self.current.is_none();
        if moved && self.current != Some(target.spatial) {
            self.keyframe_request = Some(target.spatial);
        }
        self.target = target;
    }

    pub fn preferred(&self) -> Layers {
        self.preferred
    }

    pub fn target(&self) -> Layers {
        self.target
    }

    /// The layers being forwarded; None while waiting for a first keyframe.
    pub fn current(&self) -> Option<Layers> {
        self.current.map(|spatial| Layers {
            spatial,
            temporal: self.current_temporal,
        })
    }

    /// The spatial layer the subscriber's keyframe requests are for: the one it gets,
    /// else the one it waits for.
    pub fn keyframe_layer(&self) -> u8 {
        self.current.unwrap_or(self.target.spatial)
    }

    /// The encoding a keyframe is wanted on, once: the core sends the request.
    pub fn take_keyframe_request(&mut self) -> Option<u8> {
        self.keyframe_request.take()
    }

    /// The forwarded layers when they changed since last asked (`layerschange`).
    pub fn take_layers_change(&mut self) -> Option<Option<Layers>> {
        let now = self.current();
        (now != self.reported).then(|| {
            self.reported = now;
            now
        })
    }

    /// The layer switches since last asked, for the worker's totals.
    pub fn take_switches(&mut self) -> LayerSwitches {
        std::mem::take(&mut self.switches)
    }

    /// VP8 packets dropped because their descriptor does not parse.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The encodings' sender-report clocks, lowest layer first.
    pub fn set_clocks(&mut self, clocks: &[Option<LayerClock>; MAX_SPATIAL_LAYERS]) {
        self.clocks = *clocks;
    }

    /// Stops forwarding (a pause): the stream continues from a keyframe afterwards.
    pub fn stop(&mut self) {
        self.current = None;
    }

    /// After a pause: continue from a keyframe of the target layer (requested).
    pub fn resume(&mut self) {
        self.current = None;
        self.keyframe_request = Some(self.target.spatial);
    }

    /// Whether a keyframe of `layer` is a switch the consumer takes: to the target, or
    /// closer to it than the current layer (any layer at or below the target when
    /// there is none).
    fn takes_switch_to(&self, layer: u8) -> bool {
        let t = self.target.spatial;
        if layer >= self.spatial_layers {
            return false;
        }
        match self.current {
            None => layer <= t,
            Some(c) if c == t => false,
            Some(c) if c < t => layer > c && layer <= t,
            Some(c) => layer < c && layer >= t,
        }
    }

    /// Decides about one packet of spatial layer `layer` (sequence number `seq`,
    /// timestamp `ts`, RTP payload `payload`, first packet of a keyframe or not,
    /// arrived at `arrival` in RTP clock units).
    pub fn forward(
        &mut self,
        layer: u8,
        seq: u16,
        ts: u32,
        payload: &[u8],
        keyframe: bool,
        arrival: u32,
    ) -> Verdict {
        let desc = if self.vp8 {
            let Some(d) = Vp8Descriptor::parse(payload) else {
                self.malformed += 1;
                return Verdict::Malformed;
            };
            Some(d)
        } else {
            None
        };
        if self.current != Some(layer) {
            if !(keyframe && self.takes_switch_to(layer)) {
                return Verdict::Skip;
            }
            if self.current.is_some() {
                self.switches.spatial += 1;
            }
            self.switch_to(layer, seq, ts, desc.as_ref(), arrival);
        } else if keyframe {
            // Every temporal layer can start at a keyframe.
            self.set_temporal(self.target.temporal);
        }
        let mut fields = None;
        if let Some(d) = &desc {
            let tid = d.tid.unwrap_or(0);
            if d.starts_frame() && !keyframe {
                let (cur, target) = (self.current_temporal, self.target.temporal);
                if target < cur {
                    self.set_temporal(target);
                } else if target > cur && d.layer_sync && tid > cur && tid <= target {
                    self.set_temporal(tid);
                }
            }
            if tid > self.current_temporal {
                self.seq.drop_value(seq);
                if let Some(p) = d.picture_id {
                    self.map_picture_width(p);
                    self.picture_id.drop_value(p.value);
                }
                return Verdict::Skip;
            }
            let picture_id = match d.picture_id {
                Some(p) => {
                    self.map_picture_width(p);
                    let Some(out) = self.picture_id.forward(p.value) else {
                        return Verdict::Skip;
                    };
                    Some(out)
                }
                None => None,
            };
            fields = Some(Vp8Fields {
                picture_id,
                tl0_pic_idx: d.tl0_pic_idx.map(|v| v.wrapping_add(self.tl0_offset)),
                key_idx: d
                    .key_idx
                    .map(|v| v.wrapping_add(self.key_idx_offset) & 0x1f),
            });
        }
        let Some(out_seq) = self.seq.forward(seq) else {
            return Verdict::Skip;
        };
        let out_ts = ts.wrapping_add(self.ts_offset);
        self.remember(out_seq, layer, seq, out_ts, fields, arrival);
        Verdict::Send(Planned {
            seq: out_seq,
            ts: out_ts,
            vp8: desc.zip(fields),
        })
    }

    /// Forwards temporal layers up to `tid` from now on (a switch when it differs).
    fn set_temporal(&mut self, tid: u8) {
        if tid != self.current_temporal {
            self.switches.temporal += 1;
            self.current_temporal = tid;
        }
    }

    /// A source whose PictureID width changed is mapped in the new width.
    fn map_picture_width(&mut self, p: PictureId) {
        if p.bits() != self.picture_id.bits() {
            self.picture_id.rewidth(p.bits(), p.value);
        }
    }

    /// Makes `layer` the forwarded one from this keyframe packet on, its numbers
    /// continuing the stream sent so far.
    fn switch_to(
        &mut self,
        layer: u8,
        seq: u16,
        ts: u32,
        desc: Option<&Vp8Descriptor>,
        arrival: u32,
    ) {
        let next_seq = self.seq.next_out(self.first_seq);
        self.seq.sync(seq, next_seq);
        let out_ts = match self.newest {
            None => self.first_ts,
            Some(newest) => self.continued_ts(layer, ts, arrival, newest),
        };
        self.ts_offset = out_ts.wrapping_sub(ts);
        if let Some(d) = desc {
            if let Some(p) = d.picture_id {
                self.picture_id.rewidth(p.bits(), p.value);
            }
            let newest = self.newest.as_ref();
            if let Some(v) = d.tl0_pic_idx {
                self.tl0_offset = newest
                    .and_then(|n| n.tl0_pic_idx)
                    .map_or(0, |last| last.wrapping_add(1).wrapping_sub(v));
            }
            if let Some(v) = d.key_idx {
                self.key_idx_offset = newest
                    .and_then(|n| n.key_idx)
                    .map_or(0, |last| last.wrapping_add(1).wrapping_sub(v) & 0x1f);
            }
        }
        self.current = Some(layer);
        self.current_temporal = self.target.temporal;
    }

    /// The output timestamp of the first packet of `layer` after a switch: the old
    /// layer's timeline at the same instant (through both sender reports, when known
    /// and plausible), else the newest output timestamp advanced by the arrival time
    /// elapsed; at least one tick after the newest, so the timeline never goes back.
    fn continued_ts(&self, layer: u8, ts: u32, arrival: u32, newest: Newest) -> u32 {
        let elapsed = arrival.wrapping_sub(newest.arrival);
        let elapsed = if (elapsed as i32) < 0 { 0 } else { elapsed };
        let by_arrival = newest.out_ts.wrapping_add(elapsed);
        let by_reports = self.current.and_then(|from| {
            let a = self.clocks.get(usize::from(from)).copied().flatten()?;
            let b = self.clocks.get(usize::from(layer)).copied().flatten()?;
            // `ts` on layer b is b.rtp + since_b; that instant on layer a's clock is
            // a.rtp + (b.ntp - a.ntp) in RTP units + since_b.
            let since_b = i64::from(ts.wrapping_sub(b.rtp) as i32);
            let ntp_gap = i128::from(b.ntp) - i128::from(a.ntp);
            let gap = (ntp_gap * i128::from(self.clock_rate)) >> 32;
            let on_a = i64::try_from(gap).ok()?.wrapping_add(since_b);
            Some(a.rtp.wrapping_add(on_a as u32).wrapping_add(self.ts_offset))
        });
        let trust = self.clock_rate.saturating_mul(REPORT_TRUST_SECS);
        let out = match by_reports {
            Some(t) if (t.wrapping_sub(by_arrival) as i32).unsigned_abs() < trust => t,
            _ => by_arrival,
        };
        if (out.wrapping_sub(newest.out_ts) as i32) <= 0 {
            newest.out_ts.wrapping_add(1)
        } else {
            out
        }
    }

    fn remember(
        &mut self,
        out_seq: u16,
        layer: u8,
        in_seq: u16,
        out_ts: u32,
        fields: Option<Vp8Fields>,
        arrival: u32,
    ) {
        if let Some(slot) = self.sent.get_mut(usize::from(out_seq) % SENT_HISTORY) {
            *slot = Sent {
                valid: true,
                out_seq,
                layer,
                in_seq,
                out_ts,
                fields,
            };
        }
        let newer = self
            .newest
            .is_none_or(|n| (out_ts.wrapping_sub(n.out_ts) as i32) >= 0);
        if newer {
            let keep = self.newest;
            self.newest = Some(Newest {
                out_ts,
                arrival,
                tl0_pic_idx: fields
                    .and_then(|f| f.tl0_pic_idx)
                    .or(keep.and_then(|n| n.tl0_pic_idx)),
                key_idx: fields
                    .and_then(|f| f.key_idx)
                    .or(keep.and_then(|n| n.key_idx)),
            });
        }
    }

    /// The encoding and producer sequence number behind output sequence number
    /// `out_seq` (a subscriber's NACK), if it was sent recently.
    pub fn original(&self, out_seq: u16) -> Option<(u8, u16)> {
        self.sent_entry(out_seq).map(|s| (s.layer, s.in_seq))
    }

    /// How a packet first sent as `out_seq` is sent again: its numbers and its VP8
    /// fields (`payload` is the buffered producer packet's payload).
    pub fn retransmission(&self, out_seq: u16, payload: &[u8]) -> Option<Planned> {
        let s = self.sent_entry(out_seq)?;
        let vp8 = match s.fields {
            Some(f) => Some((Vp8Descriptor::parse(payload)?, f)),
            None => None,
        };
        Some(Planned {
            seq: out_seq,
            ts: s.out_ts,
            vp8,
        })
    }

    fn sent_entry(&self, out_seq: u16) -> Option<Sent> {
        self.sent
            .get(usize::from(out_seq) % SENT_HISTORY)
            .copied()
            .filter(|s| s.valid && s.out_seq == out_seq)
    }
}

#[cfg(test)]
#[path = "simulcast_tests.rs"]
mod tests;
