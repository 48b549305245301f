//! Allocation of one subscriber transport's available bitrate (the send-side estimate)
//! across its video consumers: which spatial and temporal layer each forwards.
//!
//! [`BandwidthAllocator`] is fed `(now, estimate, audio bitrate, the video consumers'
//! demands)` and returns a target per consumer. The policy, as libwebrtc's and
//! LiveKit's stream allocators and mediasoup's `Transport::DistributeAvailableOutgoingBitrate`:
//!
//! 1. Audio is reserved first, whatever the estimate.
//! 2. Every active video consumer gets its lowest layer at its lowest temporal layer, even
//!    when that does not fit: a picture at a low frame rate beats none.
//! 3. The rest is handed out one layer step at a time, the active speaker's consumers
//!    first (up to what they prefer), then in rounds over all consumers by priority
//!    (a consumer of priority `p` takes up to `p` steps per round, so larger tiles get
//!    more), ties by key. A consumer's steps go up its temporal layers before the next
//!    spatial layer, so when the estimate narrows and the allocation walks back down
//!    the same ladder, temporal layers go before spatial ones. Going up, a higher
//!    spatial layer is entered at the temporal layer the consumer is at, in one step
//!    (L0T2 to L1T2, not L1T0): 640x480 at a quarter of the frame rate is a worse
//!    picture than 320x240 at the full rate, and a browser counts the longer gaps
//!    between frames as freezes (measured in the lab: 4 fps at 480 rows for 3 s, two
//!    freezes of 500-850 ms, when the start estimate fitted L1T0 but not L1T2).
//! 4. Hysteresis. Keeping a layer the consumer already forwards needs only its bitrate;
//!    going above it needs the new layer's bitrate plus [`UP_MARGIN`] of headroom, and
//!    not within [`UP_HOLD`] of having moved down. So a steady estimate near a threshold
//!    never flaps; a narrowing moves down at the next allocation (the estimator has
//!    already reacted to the overuse or loss). When an upward step does not fit, the
//!    allocator says what total rate would let it happen ([`BandwidthAllocator::probe_target`]):
//!    the probe controller (`probe.rs`) tests that rate before the estimate can claim it.
//!
//! A subscriber that cannot take its current layer (it keeps asking for keyframes:
//! [`STRUGGLE_REQUESTS`] within [`STRUGGLE_WINDOW`], counted from
//! [`VideoDemand::keyframe_requests`]) is capped below its current spatial layer for
//! [`STRUGGLE_HOLD`], rather than dragging every subscriber of the publisher through
//! keyframes.
//!
//! Sans-IO and allocation-free after the first call: buffers are reused.

use std::time::{Duration, Instant};

/// Most spatial layers (simulcast encodings) and temporal layers per encoding.
pub const MAX_SPATIAL: usize = 4;
pub const MAX_TEMPORAL: usize = 4;
/// The least a spatial layer is taken to cost, as a multiple of the active one below
/// it (simulcast encodings step by 2-4x in bitrate: each doubles the resolution).
pub const SPATIAL_STEP: u32 = 2;
/// Headroom an upward step needs, as a fraction of the new layer's bitrate.
pub const UP_MARGIN: f64 = 0.15;
/// No upward step for a consumer this long after it moved down.
pub const UP_HOLD: Duration = Duration::from_secs(3);
/// A subscriber asking for this many keyframes within [`STRUGGLE_WINDOW`] cannot take
/// its layer...
pub const STRUGGLE_REQUESTS: u64 = 3;
pub const STRUGGLE_WINDOW: Duration = Duration::from_secs(4);
/// ...and stays capped below the layer it struggled with this long.
pub const STRUGGLE_HOLD: Duration = Duration::from_secs(10);
/// Re-allocate at least this often, and whenever the estimate moved by more than
/// [`REALLOCATE_CHANGE`] since the last allocation or fell below what was allocated.
pub const REALLOCATE_INTERVAL: Duration = Duration::from_secs(1);
pub const REALLOCATE_CHANGE: f64 = 0.05;

/// Cumulative share of an encoding's bitrate taken by its temporal layers 0..n, for n
/// temporal layers, when only the whole encoding's rate is known (libwebrtc's
/// `kLayerRateAllocation`, simulcast_rate_allocator.cc).
const TEMPORAL_SHARES: [[f64; MAX_TEMPORAL]; MAX_TEMPORAL] = [
    [1.0, 1.0, 1.0, 1.0],
    [0.6, 1.0, 1.0, 1.0],
    [0.4, 0.6, 1.0, 1.0],
    [0.25, 0.4, 0.6, 1.0],
];

/// A spatial and temporal layer (0 = lowest of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Layers {
    pub spatial: u8,
    pub temporal: u8,
}

impl Layers {
    pub const fn new(spatial: u8, temporal: u8) -> Self {
        Self { spatial, temporal }
    }
}

/// What each layer of a producer costs, bits/s, cumulative over temporal layers (layer
/// (s, t) is what forwarding spatial layer `s` up to temporal layer `t` sends). A
/// spatial layer whose bitrate is 0 is not being received and is never chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerBitrates {
    bps: [[u32; MAX_TEMPORAL]; MAX_SPATIAL],
    spatial: u8,
    temporal: u8,
}

impl LayerBitrates {
    /// A table for `spatial` x `temporal` layers (each clamped to 1..=max), all
    /// inactive.
    pub fn new(spatial: u8, temporal: u8) -> Self {
        Self {
            bps: [[0; MAX_TEMPORAL]; MAX_SPATIAL],
            spatial: spatial.clamp(1, MAX_SPATIAL as u8),
            temporal: temporal.clamp(1, MAX_TEMPORAL as u8),
        }
    }

    /// One layer, `bps` (a simple consumer's stream, or a producer still unmeasured).
    pub fn single(bps: u32) -> Self {
        let mut t = Self::new(1, 1);
        t.set_encoding(0, bps);
        t
    }

    pub fn spatial_layers(&self) -> u8 {
        self.spatial
    }

    pub fn temporal_layers(&self) -> u8 {
        self.temporal
    }

    /// Sets spatial layer `spatial`'s whole bitrate (all temporal layers), and its
    /// temporal layers' by the usual shares. Out of range: ignored.
    pub fn set_encoding(&mut self, spatial: u8, bps: u32) {
        let shares = TEMPORAL_SHARES
            .get(usize::from(self.temporal) - 1)
            .copied()
            .unwrap_or([1.0; MAX_TEMPORAL]);
        if let Some(row) = self.bps.get_mut(usize::from(spatial)) {
            for (cell, share) in row.iter_mut().zip(shares) {
                *cell = (f64::from(bps) * share) as u32;
            }
        }
    }

    /// Sets each active spatial layer's whole bitrate from `measured` (lowest first;
    /// 0: not received), never less than [`SPATIAL_STEP`] times the active layer below
    /// it, split over temporal layers as [`Self::set_encoding`] does.
    ///
    /// An encoding's measured rate (over the last second) can be far below what it
    /// sends a moment later: one the publisher just resumed (dynacast), or whose
    /// encoder is still ramping up. Measured in the lab: a 400 kbit/s subscriber was
    /// given a 640x480 layer measured at a few hundred kbit/s, which then sent a
    /// megabit, and its picture froze for 4 s.
    pub fn set_encodings(&mut self, measured: impl IntoIterator<Item = u32>) {
        let mut below = 0u32;
        for (spatial, bps) in (0..self.spatial).zip(measured) {
            if bps == 0 {
                continue;
            }
            let bps = bps.max(below.saturating_mul(SPATIAL_STEP));
            self.set_encoding(spatial, bps);
            below = bps;
        }
    }

    /// Sets one layer's cumulative bitrate, when it is measured. Out of range: ignored.
    pub fn set(&mut self, layers: Layers, bps: u32) {
        if let Some(cell) = self
            .bps
            .get_mut(usize::from(layers.spatial))
            .and_then(|row| row.get_mut(usize::from(layers.temporal)))
        {
            *cell = bps;
        }
    }

    /// A layer's cumulative bitrate; None out of range.
    pub fn get(&self, layers: Layers) -> Option<u32> {
        if layers.spatial >= self.spatial || layers.temporal >= self.temporal {
            return None;
        }
        self.bps
            .get(usize::from(layers.spatial))?
            .get(usize::from(layers.temporal))
            .copied()
    }

    fn active(&self, spatial: u8) -> bool {
        self.get(Layers::new(spatial, 0)).is_some_and(|b| b > 0)
    }
}

/// One video consumer of the transport, as the allocator needs it.
#[derive(Debug, Clone, Copy)]
pub struct VideoDemand {
    /// The caller's key for the consumer (results come back with it).
    pub key: usize,
    /// 1..=255; higher is served first (pages give larger tiles more). 0 counts as 1.
    pub priority: u8,
    /// The consumer's producer is the router's active speaker.
    pub active_speaker: bool,
    /// The highest layers the subscriber wants (`consumer.setPreferredLayers`).
    pub preferred: Layers,
    pub bitrates: LayerBitrates,
    /// What it forwards now (None before its first packet).
    pub current: Option<Layers>,
    /// Paused (by the subscriber or its producer): nothing is allocated.
    pub paused: bool,
    /// Keyframe requests (PLI, FIR) the subscriber sent for this consumer so far: a
    /// burst of them means it cannot take its current layer (see the module docs).
    pub keyframe_requests: u64,
}

impl VideoDemand {
    /// What, when it changes, calls for a new allocation at once.
    fn shape(&self) -> Shape {
        Shape {
            key: self.key,
            paused: self.paused,
            preferred: self.preferred,
            priority: self.priority,
            active_speaker: self.active_speaker,
            layers: (self.bitrates.spatial, self.bitrates.temporal),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    key: usize,
    paused: bool,
    preferred: Layers,
    priority: u8,
    active_speaker: bool,
    layers: (u8, u8),
}

/// The allocator's answer for one consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocation {
    pub key: usize,
    /// The layers to forward; None when paused.
    pub target: Option<Layers>,
    /// What the target costs, bits/s.
    pub bps: u32,
}

/// What the allocator remembers of a consumer between allocations.
#[derive(Debug, Clone, Copy)]
struct History {
    key: usize,
    shape: Shape,
    /// Keyframe requests counted at the start of the current window, and when it began.
    requests: (u64, Instant),
    /// When it last moved down (starts [`UP_HOLD`]).
    moved_down: Option<Instant>,
    /// Capped below this spatial layer until then.
    capped: Option<(u8, Instant)>,
    /// The last target, to tell a move down when `current` lags behind.
    target: Option<Layers>,
}

/// A consumer's ladder and position during one allocation.
#[derive(Debug, Clone, Copy)]
struct Work {
    demand: usize,
    steps: [Layers; MAX_SPATIAL * MAX_TEMPORAL],
    len: usize,
    pos: usize,
    /// Steps at or below this index do not go above what the consumer forwards.
    kept: Option<usize>,
    hold: bool,
    /// Upward moves to a higher spatial layer wait (the transport's hold).
    spatial_hold: bool,
}

impl Work {
    /// Where an upward move to ladder step `next` lands: on `next`, unless `next` starts
    /// a higher spatial layer; then on that layer's step at the temporal layer the
    /// consumer is at (or that layer's highest below it), so going up in resolution
    /// never lowers the frame rate.
    fn entry(&self, next: usize) -> usize {
        let (Some(from), Some(to)) = (self.steps.get(self.pos), self.steps.get(next)) else {
            return next;
        };
        if to.spatial == from.spatial {
            return next;
        }
        let mut at = next;
        while at + 1 < self.len
            && self
                .steps
                .get(at + 1)
                .is_some_and(|l| l.spatial == to.spatial && l.temporal <= from.temporal)
        {
            at += 1;
        }
        at
    }

    fn bps(&self, bitrates: &LayerBitrates, pos: usize) -> u32 {
        self.steps
            .get(pos)
            .and_then(|l| bitrates.get(*l))
            .unwrap_or(0)
    }
}

/// Allocates a transport's estimate across its video consumers. See the module docs.
///
/// Driving contract: [`Self::due`] says when the allocation should run again (on a
/// changed estimate or the periodic tick; the caller also runs it when consumers
/// change); [`Self::allocate`] computes it.
#[derive(Debug, Default)]
pub struct BandwidthAllocator {
    history: Vec<History>,
    work: Vec<Work>,
    order: Vec<usize>,
    result: Vec<Allocation>,
    allocated_bps: u64,
    probe_target: Option<u64>,
    last: Option<(Instant, u64)>,
    /// No consumer moves up to a higher spatial layer (see
    /// [`Self::hold_spatial_moves_up`]); `hold_changed` makes the next allocation due.
    spatial_hold: bool,
    hold_changed: bool,
}

impl BandwidthAllocator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether an allocation is due at `now` for `estimate_bps` and `demands`: never
    /// ran, the tick came, the estimate moved by more than [`REALLOCATE_CHANGE`] or
    /// fell below what is allocated, or a consumer came, went, paused, resumed or
    /// changed its preferred layers or priority.
    pub fn due(&self, now: Instant, estimate_bps: u64, demands: &[VideoDemand]) -> bool {
        let Some((at, est)) = self.last else {
            return true;
        };
        let change = (estimate_bps as f64 - est as f64).abs() / (est.max(1) as f64);
        now >= at + REALLOCATE_INTERVAL
            || self.hold_changed
            || change > REALLOCATE_CHANGE
            || estimate_bps < self.allocated_bps
            || demands.len() != self.history.len()
            || demands
                .iter()
                .zip(&self.history)
                .any(|(d, h)| d.shape() != h.shape)
    }

    /// Holds (or releases) every upward move to a higher spatial layer: temporal layers
    /// still go up. The transport holds them while its path loses packets and a playout
    /// delay does not cover repairs yet (`bwe::playout`): a new layer starts with a
    /// keyframe, the largest frame there is.
    pub fn hold_spatial_moves_up(&mut self, hold: bool) {
        if hold != self.spatial_hold {
            self.spatial_hold = hold;
            self.hold_changed = true;
        }
    }

    /// When the periodic re-allocation is due (None before the first).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.last.map(|(at, _)| at + REALLOCATE_INTERVAL)
    }

    /// Total bitrate of the last allocation (audio included), bits/s.
    pub fn allocated_bps(&self) -> u64 {
        self.allocated_bps
    }

    /// The total rate (audio included) that would let the highest-priority upward step
    /// that did not fit in the last allocation happen: what to probe for. None when
    /// every consumer got what it prefers or is held.
    pub fn probe_target(&self) -> Option<u64> {
        self.probe_target
    }

    /// The last allocation.
    pub fn allocations(&self) -> &[Allocation] {
        &self.result
    }

    /// Allocates `estimate_bps` (the transport's available bitrate) among `demands`
    /// after `audio_bps`, and returns a target per demand, in the demands' order.
    pub fn allocate(
        &mut self,
        now: Instant,
        estimate_bps: u64,
        audio_bps: u64,
        demands: &[VideoDemand],
    ) -> &[Allocation] {
        self.last = Some((now, estimate_bps));
        self.hold_changed = false;
        self.history
            .retain(|h| demands.iter().any(|d| d.key == h.key));
        // In the demands' order, so `due` compares them pairwise.
        self.history.sort_by_key(|h| {
            demands
                .iter()
                .position(|d| d.key == h.key)
                .unwrap_or(usize::MAX)
        });
        self.work.clear();
        self.result.clear();
        self.probe_target = None;
        let mut budget = estimate_bps as i64 - audio_bps as i64;
        for (i, d) in demands.iter().enumerate() {
            self.result.push(Allocation {
                key: d.key,
                target: None,
                bps: 0,
            });
            let h = match self.history.iter().position(|h| h.key == d.key) {
                Some(p) => &mut self.history[p],
                None => {
                    // Every earlier demand is in place before it.
                    let at = i.min(self.history.len());
                    self.history.insert(
                        at,
                        History {
                            key: d.key,
                            shape: d.shape(),
                            requests: (d.keyframe_requests, now),
                            moved_down: None,
                            capped: None,
                            target: None,
                        },
                    );
                    &mut self.history[at]
                }
            };
            h.shape = d.shape();
            if d.paused {
                continue;
            }
            let (base, since) = h.requests;
            if d.keyframe_requests.saturating_sub(base) >= STRUGGLE_REQUESTS {
                if let Some(cur) = d.current.filter(|c| c.spatial > 0) {
                    h.capped = Some((cur.spatial, now + STRUGGLE_HOLD));
                }
                h.requests = (d.keyframe_requests, now);
            } else if now >= since + STRUGGLE_WINDOW {
                h.requests = (d.keyframe_requests, now);
            }
            if h.capped.is_some_and(|(_, until)| now >= until) {
                h.capped = None;
            }
            let hold = h.moved_down.is_some_and(|t| now < t + UP_HOLD);
            // What counts as keeping a layer rather than going up: the lower of what
            // it forwards and what it was last given (a switch down may be pending).
            let basis = match (d.current, h.target) {
                (Some(c), Some(t)) => Some(c.min(t)),
                (c, t) => c.or(t),
            };
            let mut w = ladder(i, d, h.capped.map(|(s, _)| s), hold, basis);
            w.spatial_hold = self.spatial_hold;
            budget -= i64::from(w.bps(&d.bitrates, 0));
            self.work.push(w);
        }

        // Service order: active speaker, then priority, then key.
        self.order.clear();
        self.order.extend(0..self.work.len());
        let (work, order) = (&self.work, &mut self.order);
        order.sort_by_key(|&w| {
            let d = &demands[work[w].demand];
            (
                std::cmp::Reverse(d.active_speaker),
                std::cmp::Reverse(d.priority),
                d.key,
            )
        });
        let mut blocked: Option<u64> = None;
        let mut note_blocked = |need: i64, budget: i64| {
            if blocked.is_none() {
                blocked = Some((estimate_bps as i64 + need - budget).max(0) as u64);
            }
        };
        // The active speaker's consumers first, as far as they want.
        for &wi in &self.order {
            let d = &demands[self.work[wi].demand];
            if !d.active_speaker {
                break;
            }
            while let Step::Taken = step(&mut self.work[wi], d, &mut budget, &mut note_blocked) {}
        }
        // Then fair rounds, weighted by priority.
        loop {
            let mut moved = false;
            for &wi in &self.order {
                let d = &demands[self.work[wi].demand];
                for _ in 0..d.priority.max(1) {
                    match step(&mut self.work[wi], d, &mut budget, &mut note_blocked) {
                        Step::Taken => moved = true,
                        Step::Blocked | Step::Top => break,
                    }
                }
            }
            if !moved {
                break;
            }
        }
        self.probe_target = blocked;

        let mut total = audio_bps;
        for w in &self.work {
            let d = &demands[w.demand];
            let target = w.steps.get(w.pos).copied();
            let bps = w.bps(&d.bitrates, w.pos);
            total += u64::from(bps);
            if let Some(r) = self.result.get_mut(w.demand) {
                r.target = target;
                r.bps = bps;
            }
            if let Some(h) = self.history.iter_mut().find(|h| h.key == d.key) {
                let was = h.target.or(d.current);
                if target.zip(was).is_some_and(|(t, c)| t < c) {
                    h.moved_down = Some(now);
                }
                h.target = target;
            }
        }
        self.allocated_bps = total;
        &self.result
    }
}

/// The outcome of one step attempt.
enum Step {
    Taken,
    /// The next step does not fit (or is held).
    Blocked,
    /// At the top of the ladder.
    Top,
}

/// Tries to move `w` one step up its ladder within `budget`.
fn step(
    w: &mut Work,
    d: &VideoDemand,
    budget: &mut i64,
    note_blocked: &mut impl FnMut(i64, i64),
) -> Step {
    let mut next = w.pos + 1;
    if next >= w.len {
        return Step::Top;
    }
    let up = w.kept.is_none_or(|k| next > k);
    if up && w.hold {
        return Step::Blocked;
    }
    if up {
        let entry = w.entry(next);
        let spatial = |i: usize| w.steps.get(i).map(|l| l.spatial);
        if w.spatial_hold && spatial(entry) != spatial(w.pos) {
            return Step::Blocked;
        }
        next = entry;
    }
    let cost = i64::from(w.bps(&d.bitrates, next)) - i64::from(w.bps(&d.bitrates, w.pos));
    let need = if up {
        cost + (f64::from(w.bps(&d.bitrates, next)) * UP_MARGIN) as i64
    } else {
        cost
    };
    if need > *budget {
        if up {
            note_blocked(need, *budget);
        }
        return Step::Blocked;
    }
    *budget -= cost;
    w.pos = next;
    Step::Taken
}

/// A consumer's ladder: its active spatial layers up to what it prefers (and below a
/// struggle cap), each with its temporal layers in order up to the preferred one (a
/// tile that asks for a low frame rate keeps it on every spatial layer, as the
/// simulcast consumer caps each dimension on its own).
fn ladder(
    demand: usize,
    d: &VideoDemand,
    cap: Option<u8>,
    hold: bool,
    basis: Option<Layers>,
) -> Work {
    let b = &d.bitrates;
    let mut w = Work {
        demand,
        steps: [Layers::default(); MAX_SPATIAL * MAX_TEMPORAL],
        len: 0,
        pos: 0,
        kept: None,
        hold,
        spatial_hold: false,
    };
    let top_spatial = d.preferred.spatial.min(b.spatial - 1);
    let mut lowest_active = None;
    for s in 0..=top_spatial {
        if !b.active(s) {
            continue;
        }
        if lowest_active.is_none() {
            lowest_active = Some(s);
        } else if cap.is_some_and(|c| s >= c) {
            break;
        }
        let top_temporal = d.preferred.temporal.min(b.temporal - 1);
        for t in 0..=top_temporal {
            if let Some(slot) = w.steps.get_mut(w.len) {
                *slot = Layers::new(s, t);
                w.len += 1;
            }
        }
    }
    if w.len == 0 {
        // Nothing measured yet: the lowest layer, whatever it costs.
        w.len = 1;
    }
    w.kept = basis.and_then(|c| w.steps.get(..w.len)?.iter().rposition(|l| *l <= c));
    w
}

#[cfg(test)]
mod tests;
