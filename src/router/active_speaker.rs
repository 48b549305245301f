//! Active-speaker observer: which of a router's audio producers is the dominant speaker,
//! from the audio levels their publishers send (RFC 6464, `rtp::audio_level`). The
//! decision follows Volfin and Cohen, "Dominant Speaker Identification for Multipoint
//! Videoconferencing" (IEEE 2012), which mediasoup's ActiveSpeakerObserver and Jitsi
//! also implement: each speaker's recent levels are scored on three time scales, and
//! another speaker takes over only when it beats the current one on all three.
//!
//! - **Frames.** Every level received is one 20 ms frame of the speaker's history; a
//!   speaker that sends nothing (muted, Opus DTX in a pause, gone) gets silent frames
//!   for the time it was quiet.
//! - **Immediate** (the latest frame): its loudness quantised into 13 steps, with
//!   frames too close to the speaker's noise floor counted as silence.
//! - **Medium** (the last 100 ms): how many of the last 5 frames are active (a loudness
//!   step above the middle).
//! - **Long** (the last second): how many of its ten 100 ms blocks were active
//!   throughout.
//!
//! Each count becomes a speech activity score, the log-likelihood ratio of speech (a
//! binomial) against noise (an exponential), as in the paper. At each interval a
//! challenger replaces the dominant speaker when its scores exceed the dominant one's by
//! the paper's margins on every scale (immediate by e^3, medium by e^2, long at all).
//! That is the hysteresis: a click or a cough fills no 100 ms block, so it never wins
//! the long scale; someone who goes on talking keeps the floor against an interjection;
//! and in a silent room nobody beats anybody, so the last speaker stays.
//!
//! Sans-IO: fed `(now, producer, level)` and ticked by [`ActiveSpeakerObserver::poll_timeout`] /
//! [`ActiveSpeakerObserver::handle_timeout`]; a change of dominant speaker is taken with
//! [`ActiveSpeakerObserver::poll_event`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::ids::{RouterId, RtpObserverId};
use crate::router::ProducerKey;
use crate::rtp::audio_level::AudioLevel;

/// How often speakers are compared when the request does not say.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(300);
/// The shortest and longest intervals accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
pub const MAX_INTERVAL: Duration = Duration::from_secs(10);
/// Observers one router may have (each costs a tick and a score pass per interval).
pub const MAX_OBSERVERS_PER_ROUTER: usize = 4;
/// Producers one observer may observe (each keeps a second of levels).
pub const MAX_SPEAKERS: usize = 1024;

/// One audio frame: what a packet's level stands for (Opus and browsers use 20 ms).
const FRAME: Duration = Duration::from_millis(20);
/// A speaker silent this long gets silent frames for the time it sent nothing.
const LEVEL_IDLE: Duration = Duration::from_millis(40);
/// Frames in a medium block, and medium blocks in the long window.
const MEDIUM_FRAMES: usize = 5;
const LONG_BLOCKS: usize = 10;
/// The history kept per speaker: one long window (1 s).
const HISTORY: usize = MEDIUM_FRAMES * LONG_BLOCKS;
const HISTORY_SPAN: Duration = Duration::from_millis(20 * HISTORY as u64);
/// Loudness steps of an immediate (N1 in the paper) and the width of one.
const STEPS: u8 = 13;
const STEP_WIDTH: u8 = 10;
/// A frame is active when its step is above this (half the steps, minus one)...
const ACTIVE_STEP: u8 = STEPS / 2 - 1;
/// ...and a 100 ms block when all its frames are.
const ACTIVE_BLOCK_FRAMES: u8 = MEDIUM_FRAMES as u8 - 1;
/// The noise floor is the quietest frame of the last completed block of this many
/// frames (5 s)...
const FLOOR_BLOCK: u32 = 250;
/// ...and never above this loudness (-67 dBov): a speaker who talks without pause
/// for a whole block must not become its own noise floor.
const MAX_FLOOR: u8 = 60;
/// The exponential noise model's parameter per time scale (the paper's lambda).
const LAMBDA_IMMEDIATE: f64 = 0.78;
const LAMBDA_MEDIUM: f64 = 24.0;
const LAMBDA_LONG: f64 = 47.0;
/// The log-ratio margins a challenger must exceed on each scale (C1, C2, C3).
const MARGIN_IMMEDIATE: f64 = 3.0;
const MARGIN_MEDIUM: f64 = 2.0;
const MARGIN_LONG: f64 = 0.0;
/// Scores are compared as ratios, so they are kept positive.
const MIN_SCORE: f64 = 1e-10;

/// The speech activity score of `active` active sub-units out of `of`: the log
/// likelihood of speech (binomial, p = 1/2) over noise (exponential, `lambda`).
fn activity_score(active: u8, of: u8, lambda: f64) -> f64 {
    let (k, n) = (f64::from(active), f64::from(of));
    let ln_binomial = ln_factorial(of) - ln_factorial(active) - ln_factorial(of - active.min(of));
    let score = ln_binomial + n * 0.5f64.ln() - lambda.ln() + lambda * k;
    score.max(MIN_SCORE)
}

fn ln_factorial(n: u8) -> f64 {
    (2..=u32::from(n)).map(|i| f64::from(i).ln()).sum()
}

/// A speaker's three scores at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scores {
    immediate: f64,
    medium: f64,
    long: f64,
}

impl Scores {
    /// Someone who has said nothing.
    const SILENT: Self = Self {
        immediate: MIN_SCORE,
        medium: MIN_SCORE,
        long: MIN_SCORE,
    };
}

/// The quietest level a speaker's microphone picks up: frames not clearly above it are
/// background noise.
#[derive(Debug, Clone, Copy)]
struct NoiseFloor {
    /// The floor: from the last completed block (0 until one completed).
    floor: u8,
    block_min: u8,
    block_frames: u32,
}

impl NoiseFloor {
    fn new() -> Self {
        Self {
            floor: 0,
            block_min: u8::MAX,
            block_frames: 0,
        }
    }

    fn on_frame(&mut self, loudness: u8) {
        self.block_min = self.block_min.min(loudness);
        self.block_frames += 1;
        if self.block_frames >= FLOOR_BLOCK {
            self.floor = self.block_min.min(MAX_FLOOR);
            self.block_min = u8::MAX;
            self.block_frames = 0;
        }
    }
}

/// One observed producer: its last second of loudness, newest at `next - 1`.
#[derive(Debug, Clone)]
struct Speaker {
    /// Loudness per frame: 127 minus the level's attenuation (0 is silence).
    frames: [u8; HISTORY],
    next: usize,
    /// When the last frame was recorded (received, or filled in as silence).
    last_frame: Instant,
    noise: NoiseFloor,
}

impl Speaker {
    fn new(now: Instant) -> Self {
        Self {
            frames: [0; HISTORY],
            next: 0,
            last_frame: now,
            noise: NoiseFloor::new(),
        }
    }

    fn push(&mut self, loudness: u8) {
        if let Some(slot) = self.frames.get_mut(self.next) {
            *slot = loudness;
        }
        self.next = (self.next + 1) % HISTORY;
    }

    /// Records one packet's level; whether it is a sound (above the noise floor).
    fn on_level(&mut self, now: Instant, level: AudioLevel) -> bool {
        self.fill_silence(now);
        let loudness = 127 - level.attenuation.min(127);
        self.noise.on_frame(loudness);
        self.push(loudness);
        self.last_frame = now;
        self.step(0) > 0
    }

    /// Silent frames for the time nothing came (at most a history's worth).
    fn fill_silence(&mut self, now: Instant) {
        let quiet = now.saturating_duration_since(self.last_frame);
        if quiet < LEVEL_IDLE {
            return;
        }
        let frames = (quiet.as_millis() / FRAME.as_millis()).min(HISTORY as u128);
        for _ in 0..frames {
            self.push(0);
        }
        self.last_frame = now;
    }

    /// The frame `age` frames old (0 is the newest).
    fn frame(&self, age: usize) -> u8 {
        let i = (self.next + HISTORY - 1 - age % HISTORY) % HISTORY;
        self.frames.get(i).copied().unwrap_or(0)
    }

    /// A frame's loudness step, 0 when it is not clearly above the noise floor.
    fn step(&self, age: usize) -> u8 {
        let loudness = self.frame(age);
        if loudness < self.noise.floor.saturating_add(STEP_WIDTH) {
            0
        } else {
            (loudness / STEP_WIDTH).min(STEPS - 1)
        }
    }

    /// Active frames in the medium block `block` (0 is the newest).
    fn active_frames(&self, block: usize) -> u8 {
        let first = block * MEDIUM_FRAMES;
        (first..first + MEDIUM_FRAMES)
            .filter(|&age| self.step(age) > ACTIVE_STEP)
            .count() as u8
    }

    fn scores(&self) -> Scores {
        let long = (0..LONG_BLOCKS)
            .filter(|&b| self.active_frames(b) > ACTIVE_BLOCK_FRAMES)
            .count() as u8;
        Scores {
            immediate: activity_score(self.step(0), STEPS, LAMBDA_IMMEDIATE),
            medium: activity_score(self.active_frames(0), MEDIUM_FRAMES as u8, LAMBDA_MEDIUM),
            long: activity_score(long, LONG_BLOCKS as u8, LAMBDA_LONG),
        }
    }
}

/// An active-speaker observer of one router (`router.createActiveSpeakerObserver`).
#[derive(Debug)]
pub struct ActiveSpeakerObserver {
    id: RtpObserverId,
    router: RouterId,
    interval: Duration,
    paused: bool,
    speakers: HashMap<ProducerKey, Speaker>,
    dominant: Option<ProducerKey>,
    next_tick: Instant,
    /// Comparisons can change something until then: the last sound any speaker made is
    /// still in its history. After that the observer needs no timer (a silent room
    /// costs nothing) until the next sound.
    heard_until: Option<Instant>,
    /// A new dominant speaker not yet taken by `poll_event`.
    changed: bool,
}

impl ActiveSpeakerObserver {
    /// An observer comparing its speakers every `interval` from `now` on.
    pub fn new(id: RtpObserverId, router: RouterId, interval: Duration, now: Instant) -> Self {
        Self {
            id,
            router,
            interval,
            paused: false,
            speakers: HashMap::new(),
            dominant: None,
            next_tick: now + interval,
            heard_until: None,
            changed: false,
        }
    }

    pub fn id(&self) -> &RtpObserverId {
        &self.id
    }

    pub fn router(&self) -> &RouterId {
        &self.router
    }

    pub fn paused(&self) -> bool {
        self.paused
    }

    /// The dominant speaker: the last one chosen, kept through silence, until its
    /// producer is removed.
    pub fn dominant(&self) -> Option<ProducerKey> {
        self.dominant
    }

    /// Whether `pk` is observed.
    pub fn observes(&self, pk: ProducerKey) -> bool {
        self.speakers.contains_key(&pk)
    }

    /// Observes a producer; false when it already was or the observer is full.
    pub fn add_producer(&mut self, now: Instant, pk: ProducerKey) -> bool {
        if self.speakers.len() >= MAX_SPEAKERS || self.speakers.contains_key(&pk) {
            return false;
        }
        self.speakers.insert(pk, Speaker::new(now));
        true
    }

    /// Stops observing a producer (removed, or closed). When it was the dominant
    /// speaker there is none until someone speaks.
    pub fn remove_producer(&mut self, pk: ProducerKey) -> bool {
        if self.dominant == Some(pk) {
            self.dominant = None;
            self.changed = false;
        }
        self.speakers.remove(&pk).is_some()
    }

    /// Pauses (levels are ignored, nothing is decided) or resumes; returns whether that
    /// changed anything. A resumed observer starts from silence.
    pub fn set_paused(&mut self, now: Instant, paused: bool) -> bool {
        if self.paused == paused {
            return false;
        }
        self.paused = paused;
        if !paused {
            for s in self.speakers.values_mut() {
                *s = Speaker {
                    noise: s.noise,
                    ..Speaker::new(now)
                };
            }
            self.next_tick = now + self.interval;
        }
        true
    }

    /// One packet's level of producer `pk` (ignored when `pk` is not observed).
    /// Returns the next comparison's time when this sound wakes an observer that had
    /// none scheduled (the caller's timer must then be lowered to it).
    #[must_use]
    pub fn on_level(
        &mut self,
        now: Instant,
        pk: ProducerKey,
        level: AudioLevel,
    ) -> Option<Instant> {
        if self.paused {
            return None;
        }
        let sound = self
            .speakers
            .get_mut(&pk)
            .is_some_and(|s| s.on_level(now, level));
        if !sound {
            return None;
        }
        let before = self.poll_timeout();
        if before.is_none() && self.next_tick <= now {
            // Back from a quiet spell: the grid starts again from here.
            self.next_tick = now + self.interval;
        }
        self.heard_until = Some(now + HISTORY_SPAN + self.interval);
        let after = self.poll_timeout();
        (after != before).then_some(after).flatten()
    }

    /// When the next comparison is due; none while paused or while nothing was heard
    /// for longer than a comparison looks back.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let heard = self.heard_until.is_some_and(|t| self.next_tick <= t);
        (!self.paused && heard).then_some(self.next_tick)
    }

    /// Compares the speakers if the interval is over.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.paused || now < self.next_tick {
            return;
        }
        // On the interval's grid; a late timer does not make the next one late too.
        let behind = now.saturating_duration_since(self.next_tick).as_nanos();
        let intervals = behind / self.interval.as_nanos().max(1) + 1;
        self.next_tick += self.interval * u32::try_from(intervals).unwrap_or(u32::MAX);
        for s in self.speakers.values_mut() {
            s.fill_silence(now);
        }
        if let Some(winner) = self.challenger() {
            self.dominant = Some(winner);
            self.changed = true;
        }
    }

    /// The speaker that beats the dominant one on every scale (the one that beats it
    /// most on the medium scale when several do), if any.
    fn challenger(&self) -> Option<ProducerKey> {
        let current = self
            .dominant
            .and_then(|d| self.speakers.get(&d))
            .map_or(Scores::SILENT, Speaker::scores);
        let mut best: Option<(ProducerKey, f64)> = None;
        for (&pk, s) in &self.speakers {
            if Some(pk) == self.dominant {
                continue;
            }
            let scores = s.scores();
            let c1 = (scores.immediate / current.immediate).ln();
            let c2 = (scores.medium / current.medium).ln();
            let c3 = (scores.long / current.long).ln();
            let wins = c1 > MARGIN_IMMEDIATE && c2 > MARGIN_MEDIUM && c3 > MARGIN_LONG;
            // Ties between challengers go to the lower key, so runs replay exactly.
            let better = best.is_none_or(|(b, bc2)| c2 > bc2 || (c2 == bc2 && pk < b));
            if wins && better {
                best = Some((pk, c2));
            }
        }
        best.map(|(pk, _)| pk)
    }

    /// The new dominant speaker, once per change.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ProducerKey> {
        if !std::mem::take(&mut self.changed) {
            return None;
        }
        self.dominant
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOUD: AudioLevel = AudioLevel {
        voice: true,
        attenuation: 20,
    };
    const QUIET: AudioLevel = AudioLevel {
        voice: false,
        attenuation: 127,
    };

    /// Virtual time: speakers send one level per 20 ms frame, the observer ticks when due.
    struct Room {
        obs: ActiveSpeakerObserver,
        now: Instant,
        events: Vec<ProducerKey>,
    }

    impl Room {
        fn new(speakers: &[ProducerKey]) -> Self {
            let now = Instant::now();
            let mut obs =
                ActiveSpeakerObserver::new("obs".into(), "router".into(), DEFAULT_INTERVAL, now);
            for &pk in speakers {
                assert!(obs.add_producer(now, pk));
            }
            Self {
                obs,
                now,
                events: Vec::new(),
            }
        }

        /// `ms` of frames where each speaker sends the level `level_of` gives it (none:
        /// it sends nothing).
        fn run(&mut self, ms: u64, level_of: impl Fn(ProducerKey) -> Option<AudioLevel>) {
            let speakers: Vec<ProducerKey> = {
                let mut v: Vec<_> = self.obs.speakers.keys().copied().collect();
                v.sort_unstable();
                v
            };
            for _ in 0..ms / 20 {
                self.now += FRAME;
                for &pk in &speakers {
                    if let Some(level) = level_of(pk) {
                        // The loop asks poll_timeout every frame anyway.
                        let _wake = self.obs.on_level(self.now, pk, level);
                    }
                }
                if self.obs.poll_timeout().is_some_and(|at| at <= self.now) {
                    self.obs.handle_timeout(self.now);
                }
                while let Some(pk) = self.obs.poll_event() {
                    self.events.push(pk);
                }
            }
        }
    }

    fn talking(who: ProducerKey) -> impl Fn(ProducerKey) -> Option<AudioLevel> {
        move |pk| Some(if pk == who { LOUD } else { QUIET })
    }

    #[test]
    fn activity_scores_are_positive_and_favour_activity() {
        // Silence scores the minimum; from 4 loud steps on, a frame scores above it (the
        // binomial term makes the immediate score peak below the loudest step).
        assert_eq!(activity_score(0, STEPS, LAMBDA_IMMEDIATE), MIN_SCORE);
        for active in 4..STEPS {
            assert!(
                activity_score(active, STEPS, LAMBDA_IMMEDIATE) > MIN_SCORE,
                "{active}"
            );
        }
        // The medium and long scales grow with every active sub-unit.
        for (of, lambda) in [
            (MEDIUM_FRAMES as u8, LAMBDA_MEDIUM),
            (LONG_BLOCKS as u8, LAMBDA_LONG),
        ] {
            for active in 1..=of {
                let (a, b) = (
                    activity_score(active - 1, of, lambda),
                    activity_score(active, of, lambda),
                );
                assert!(b > a && b.is_finite(), "{active}/{of}: {b} after {a}");
            }
        }
    }

    #[test]
    fn the_speaker_who_talks_becomes_dominant_and_a_silent_room_keeps_it() {
        let mut room = Room::new(&[1, 2, 3]);
        room.run(2000, |_| Some(QUIET));
        assert!(room.events.is_empty(), "nobody spoke");
        room.run(1000, talking(2));
        assert_eq!(room.events, [2]);
        // Ten seconds of silence (levels still coming), then ten of nothing at all.
        room.run(10_000, |_| Some(QUIET));
        room.run(10_000, |_| None);
        assert_eq!(room.events, [2], "silence keeps the last speaker");
        assert_eq!(room.obs.dominant(), Some(2));
    }

    #[test]
    fn the_dominant_speaker_changes_after_sustained_speech_of_another() {
        let mut room = Room::new(&[1, 2]);
        room.run(2000, talking(1));
        assert_eq!(room.events, [1]);
        let before = room.events.len();
        // Speaker 2 answers: it takes over within a second, and only once.
        room.run(1000, talking(2));
        assert_eq!(room.events[before..], [2]);
        room.run(3000, talking(2));
        assert_eq!(room.events, [1, 2], "no flapping while 2 goes on");
    }

    #[test]
    fn a_short_click_does_not_take_the_floor() {
        let mut room = Room::new(&[1, 2]);
        room.run(2000, talking(1));
        // 1 pauses; 2 makes three loud frames (60 ms) every 400 ms, for 4 s.
        for _ in 0..10 {
            room.run(60, talking(2));
            room.run(340, |_| Some(QUIET));
        }
        assert_eq!(room.events, [1], "clicks are not speech");
        assert_eq!(room.obs.dominant(), Some(1));
    }

    #[test]
    fn an_interjection_does_not_interrupt_a_speaker_who_goes_on() {
        let mut room = Room::new(&[1, 2]);
        room.run(2000, talking(1));
        // Both talk for half a second; 1 goes on afterwards.
        room.run(500, |_| Some(LOUD));
        room.run(2000, talking(1));
        assert_eq!(room.events, [1]);
    }

    #[test]
    fn removing_the_dominant_speaker_lets_the_next_one_take_over() {
        let mut room = Room::new(&[1, 2]);
        room.run(2000, talking(1));
        assert!(room.obs.remove_producer(1));
        assert_eq!(room.obs.dominant(), None);
        assert!(!room.obs.remove_producer(1));
        room.run(1000, talking(2));
        assert_eq!(room.events, [1, 2]);
    }

    #[test]
    fn a_paused_observer_ignores_levels_and_decides_nothing() {
        let mut room = Room::new(&[1, 2]);
        room.run(2000, talking(1));
        assert!(room.obs.set_paused(room.now, true));
        assert!(!room.obs.set_paused(room.now, true));
        assert_eq!(room.obs.poll_timeout(), None);
        room.run(2000, talking(2));
        assert_eq!(room.events, [1]);
        // Resumed, it starts from silence: 2 must talk again to take over.
        assert!(room.obs.set_paused(room.now, false));
        room.run(1000, |_| Some(QUIET));
        assert_eq!(room.events, [1]);
        room.run(1000, talking(2));
        assert_eq!(room.events, [1, 2]);
    }

    #[test]
    fn steady_background_noise_is_not_speech() {
        // Speaker 2's microphone hears a steady -58 dBov hum: above the activity step,
        // but its noise floor learns it within a floor block.
        let hum = AudioLevel {
            voice: false,
            attenuation: 58,
        };
        let mut room = Room::new(&[1, 2]);
        room.run(6000, |pk| Some(if pk == 2 { hum } else { QUIET }));
        let events = room.events.len();
        room.run(2000, |pk| Some(if pk == 2 { hum } else { LOUD }));
        assert_eq!(room.events[events..], [1]);
        room.run(10_000, |pk| Some(if pk == 2 { hum } else { QUIET }));
        assert_eq!(room.obs.dominant(), Some(1), "the hum does not take over");
    }

    #[test]
    fn the_observer_ticks_on_its_interval_and_bounds_its_speakers() {
        let now = Instant::now();
        let mut obs = ActiveSpeakerObserver::new("o".into(), "r".into(), MIN_INTERVAL, now);
        assert!(obs.add_producer(now, 7));
        assert_eq!(obs.poll_timeout(), None, "nothing heard: no timer");
        // Silence does not wake it; a sound does, once.
        assert_eq!(obs.on_level(now, 7, QUIET), None);
        assert_eq!(obs.on_level(now, 7, LOUD), Some(now + MIN_INTERVAL));
        assert_eq!(obs.on_level(now, 7, LOUD), None, "already scheduled");
        // A late timer keeps the grid.
        obs.handle_timeout(now + MIN_INTERVAL * 3 + Duration::from_millis(5));
        assert_eq!(obs.poll_timeout(), Some(now + MIN_INTERVAL * 4));
        // Once the sound has left every history, the observer sleeps again.
        let mut at = now + MIN_INTERVAL * 4;
        while let Some(next) = obs.poll_timeout() {
            assert!(
                next <= now + Duration::from_secs(2),
                "still ticking at {next:?}"
            );
            obs.handle_timeout(next);
            at = next;
        }
        assert!(
            at >= now + HISTORY_SPAN,
            "ticked while the sound could matter"
        );
        let mut obs = ActiveSpeakerObserver::new("o".into(), "r".into(), MIN_INTERVAL, now);
        for pk in 0..MAX_SPEAKERS {
            assert!(obs.add_producer(now, pk));
        }
        assert!(!obs.add_producer(now, MAX_SPEAKERS), "full");
        assert!(!obs.add_producer(now, 0), "already observed");
        assert!(obs.observes(0));
    }
}
