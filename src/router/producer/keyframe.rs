//! The keyframe requests of one encoding toward its publisher (PLI, RFC 4585 6.3.1, or
//! FIR, RFC 5104 4.3.1): aggregated, throttled, sent early for a receiver that has no
//! picture yet, and repeated until a keyframe arrives.
//!
//! - **Aggregated.** While a request is unanswered (sent, and no keyframe of the
//!   encoding arrived since), another need is served by the keyframe on its way: however
//!   many subscribers ask, one request goes upstream.
//! - **Throttled.** At most one request per [`KEYFRAME_REQUEST_INTERVAL`]; a need inside
//!   the interval is deferred to its end, and dropped if a keyframe arrives first (any
//!   keyframe arriving after a need serves it).
//! - **Early for a start.** A receiver with no picture at all (a new or resumed consumer,
//!   a subscriber that just connected) would otherwise wait up to an interval for a
//!   keyframe: its request goes out at once when none is unanswered, in a second slot of
//!   one early request per interval beside the throttled one. A storm of joins costs the
//!   publisher at most two keyframes per interval (four a second) per encoding, and
//!   joins up to that pace all start at once.
//! - **Repeated.** A request can be lost (RTCP toward a lossy publisher) or answered by
//!   a keyframe that is lost: with no keyframe [`KEYFRAME_REPEAT_FIRST`] after the
//!   request, it is sent again, then at doubling intervals up to [`KEYFRAME_REPEAT_MAX`]
//!   (a new need restarts the backoff), as long as someone waits (the producer's timer asks, `Producer::poll_keyframe_request`).
//!   Each repeat is a new request (a new FIR sequence number): a publisher that got the
//!   last one and whose keyframe was lost ignores a repeated number (libwebrtc's
//!   `RTCPReceiver::HandleFir`). While the publisher sends nothing of the encoding, the
//!   repeats wait rather than go out.
//!
//! Plain state fed the time, no I/O: the core sends what it says.

use std::time::{Duration, Instant};

/// A keyframe request toward a publisher at most this often per encoding, but for one
/// early start per interval (keyframes are expensive: a subscriber asking for them
/// repeatedly must not degrade everyone's picture).
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// With no keyframe this long after a request, it is repeated. Above the time a
/// publisher takes to answer (one RTT, the next frame, its first packet) on the paths
/// this serves (the publisher's RTT is not measured: it sends us no reports of ours),
/// and not below the interval, so a repeat, which takes the throttled slot, never
/// makes it two requests in one interval.
pub const KEYFRAME_REPEAT_FIRST: Duration = KEYFRAME_REQUEST_INTERVAL;

/// The longest wait between repeats (the backoff doubles up to it).
pub const KEYFRAME_REPEAT_MAX: Duration = Duration::from_secs(2);

/// Why a keyframe is wanted: how urgently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyframeNeed {
    /// A receiver with no picture at all: a new or resumed consumer, a subscriber whose
    /// transport just connected, the consumers of a resumed producer.
    Start,
    /// A receiver whose picture broke or that changes layer: a subscriber's PLI or FIR,
    /// losses given up on, a layer switch, `consumer.requestKeyFrame`.
    Repair,
}

/// A request sent and not answered by a keyframe yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unanswered {
    /// Repeats so far (sent, or put off while the stream was idle).
    repeats: u32,
    /// When it (or its last repeat) went out.
    sent_at: Instant,
    /// When to repeat it.
    next: Instant,
}

/// One encoding's keyframe request state.
#[derive(Debug)]
pub struct KeyframeRequests {
    /// Whether keyframes of the stream are detectable (VP8, H264): only then is a request
    /// known to be answered, and so aggregated and repeated.
    detectable: bool,
    /// The last request sent in the throttled slot (first, deferred or repeat).
    last_regular: Option<Instant>,
    /// The last early request (a start inside the throttled slot's interval).
    last_early: Option<Instant>,
    unanswered: Option<Unanswered>,
    /// A need waits for the interval to end.
    deferred: bool,
    sent: u64,
}

impl KeyframeRequests {
    /// The state of a stream whose keyframes are `detectable` or not.
    pub fn new(detectable: bool) -> Self {
        Self {
            detectable,
            last_regular: None,
            last_early: None,
            unanswered: None,
            deferred: false,
            sent: 0,
        }
    }

    /// Records that a keyframe is wanted for `need`. Returns true when a request goes
    /// out now (counted as sent); otherwise it is served by the unanswered request or
    /// deferred to [`Self::poll_timeout`].
    pub fn want(&mut self, now: Instant, need: KeyframeNeed) -> bool {
        if slot_open(self.last_regular, now) {
            self.last_regular = Some(now);
            self.send(now, false);
            return true;
        }
        if let Some(u) = self.unanswered.as_mut() {
            // The keyframe on its way serves this need. Should none come, a new need
            // restarts the backoff: the repeat is due a first repeat's time after the
            // last send, not seconds later.
            u.repeats = 0;
            u.next = u.next.min(u.sent_at + KEYFRAME_REPEAT_FIRST);
            return false;
        }
        if need == KeyframeNeed::Start && slot_open(self.last_early, now) {
            self.last_early = Some(now);
            self.send(now, false);
            return true;
        }
        self.deferred = true;
        false
    }

    /// A keyframe of the stream arrived: it answers the request and every need so far.
    pub fn on_keyframe(&mut self) {
        self.unanswered = None;
        self.deferred = false;
    }

    /// When [`Self::poll`] next has something to do: the end of the interval for a
    /// deferred need, the next repeat of an unanswered request.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deferred = self
            .deferred
            .then_some(self.last_regular)
            .flatten()
            .map(|t| t + KEYFRAME_REQUEST_INTERVAL);
        let repeat = self.unanswered.map(|u| u.next);
        deferred.into_iter().chain(repeat).min()
    }

    /// At the timer: whether a deferred or repeated request goes out now (counted as
    /// sent). `waiting`: whether someone still waits for a keyframe of the stream (else
    /// everything is forgotten); `active`: whether the publisher sends the stream (else a
    /// repeat waits for the next one, and a deferred need with it).
    pub fn poll(&mut self, now: Instant, waiting: bool, active: bool) -> bool {
        if !waiting {
            self.unanswered = None;
            self.deferred = false;
            return false;
        }
        let deferred_due = self.deferred && slot_open(self.last_regular, now);
        let repeat_due = self.unanswered.is_some_and(|u| now >= u.next);
        if !deferred_due && !repeat_due {
            return false;
        }
        if !active {
            if let Some(u) = self.unanswered.as_mut() {
                // Backing off as if sent: an idle stream costs a timer every few
                // seconds at most.
                u.repeats += 1;
                u.next = now + backoff(u.repeats);
                self.deferred = false;
                return false;
            }
            // Nothing was asked of the publisher yet: ask, as a first request would.
        }
        // A repeat takes the throttled slot too: should the request have arrived and
        // its keyframe been lost, it costs another keyframe.
        self.last_regular = Some(now);
        self.send(now, self.unanswered.is_some());
        true
    }

    fn send(&mut self, now: Instant, repeat: bool) {
        self.deferred = false;
        self.sent += 1;
        if !self.detectable {
            return;
        }
        let repeats = match self.unanswered {
            Some(u) if repeat => u.repeats + 1,
            Some(u) => u.repeats,
            None => 0,
        };
        self.unanswered = Some(Unanswered {
            repeats,
            sent_at: now,
            next: now + backoff(repeats),
        });
    }

    /// Whether a need waits for the interval to end.
    pub fn deferred(&self) -> bool {
        self.deferred
    }

    /// Whether a request was sent and no keyframe arrived since.
    pub fn unanswered(&self) -> bool {
        self.unanswered.is_some()
    }

    /// Requests sent (first ones and repeats alike: the FIR command sequence number,
    /// RFC 5104 4.3.1.1, is its low byte).
    pub fn sent(&self) -> u64 {
        self.sent
    }
}

/// Whether a slot last used at `last` is free again at `now`.
fn slot_open(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_REQUEST_INTERVAL)
}

/// The wait before repeat `repeats + 1`: [`KEYFRAME_REPEAT_FIRST`] doubling, at most
/// [`KEYFRAME_REPEAT_MAX`].
fn backoff(repeats: u32) -> Duration {
    KEYFRAME_REPEAT_FIRST
        .saturating_mul(1 << repeats.min(8))
        .min(KEYFRAME_REPEAT_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn requests() -> (KeyframeRequests, Instant) {
        (KeyframeRequests::new(true), Instant::now())
    }

    /// Regression test for issue 13 (a lost keyframe request never repeated, so nobody
    /// saw the publisher): an unanswered request is repeated at doubling intervals up to
    /// the cap, until a keyframe arrives.
    #[test]
    fn an_unanswered_request_is_repeated_with_backoff_until_a_keyframe() {
        let (mut k, t0) = requests();
        assert!(k.want(t0, KeyframeNeed::Start));
        let mut at = t0;
        let mut gaps = Vec::new();
        for _ in 0..5 {
            let next = k.poll_timeout().expect("a repeat is scheduled");
            assert!(!k.poll(next - MS, true, true), "not before its time");
            assert!(k.poll(next, true, true));
            gaps.push((next - at).as_millis());
            at = next;
        }
        assert_eq!(gaps, [500, 1000, 2000, 2000, 2000]);
        assert_eq!(k.sent(), 6);
        // A new need restarts the backoff: the next repeat a first repeat's time after
        // the last send, not the capped wait.
        assert!(!k.want(at + 100 * MS, KeyframeNeed::Repair));
        assert_eq!(k.poll_timeout(), Some(at + KEYFRAME_REPEAT_FIRST));
        k.on_keyframe();
        assert_eq!(k.poll_timeout(), None, "answered: nothing more");
        assert!(!k.unanswered());
    }

    /// Many needs while a request is unanswered are one request: the keyframe on its way
    /// serves them all.
    #[test]
    fn needs_while_a_request_is_unanswered_are_aggregated() {
        let (mut k, t0) = requests();
        assert!(k.want(t0, KeyframeNeed::Repair));
        for i in 1..50 {
            let need = if i % 2 == 0 {
                KeyframeNeed::Repair
            } else {
                KeyframeNeed::Start
            };
            assert!(!k.want(t0 + i * 5 * MS, need), "need {i} aggregated");
        }
        k.on_keyframe();
        assert_eq!(k.sent(), 1);
        assert_eq!(k.poll_timeout(), None, "the keyframe served every need");
    }

    /// After a keyframe, a repair inside the interval waits for its end (and is dropped
    /// when another keyframe comes first); a start goes out at once, once per interval.
    #[test]
    fn a_start_goes_out_early_once_per_interval_and_a_repair_waits() {
        let (mut k, t0) = requests();
        assert!(k.want(t0, KeyframeNeed::Repair));
        k.on_keyframe();
        assert!(!k.want(t0 + 100 * MS, KeyframeNeed::Repair));
        assert_eq!(k.poll_timeout(), Some(t0 + KEYFRAME_REQUEST_INTERVAL));
        assert!(!k.poll(t0 + 499 * MS, true, true));
        // A keyframe (the publisher's own) came first: the deferred need is served.
        k.on_keyframe();
        assert_eq!(k.poll_timeout(), None);

        assert!(
            k.want(t0 + 150 * MS, KeyframeNeed::Start),
            "a start need not wait"
        );
        k.on_keyframe();
        assert!(
            !k.want(t0 + 250 * MS, KeyframeNeed::Start),
            "one early request per interval"
        );
        assert_eq!(
            k.poll_timeout(),
            Some(t0 + KEYFRAME_REQUEST_INTERVAL),
            "the throttled slot's next"
        );
        assert!(k.poll(t0 + KEYFRAME_REQUEST_INTERVAL, true, true));
        assert_eq!(k.sent(), 3);
    }

    /// A storm of new consumers, one every 10 ms for 10 s, each keyframe answered 30 ms
    /// after its request (or, every third, never, so that repeats mix in): at most two
    /// requests per interval go to the publisher.
    #[test]
    fn a_storm_of_starts_is_bounded_per_interval() {
        let (mut k, t0) = requests();
        let mut sent = Vec::new();
        let mut answer_at = None;
        for i in 0..1000u32 {
            let now = t0 + i * 10 * MS;
            if answer_at.is_some_and(|a| a <= now) {
                k.on_keyframe();
                answer_at = None;
            }
            let timer = k.poll_timeout().is_some_and(|at| at <= now) && k.poll(now, true, true);
            if k.want(now, KeyframeNeed::Start) || timer {
                sent.push(now);
                answer_at = (sent.len() % 3 != 0).then_some(now + 30 * MS);
            }
        }
        for (i, at) in sent.iter().enumerate() {
            let in_interval = sent[i..]
                .iter()
                .take_while(|t| **t < *at + KEYFRAME_REQUEST_INTERVAL)
                .count();
            assert!(in_interval <= 2, "{in_interval} requests from {at:?}");
        }
        assert!(sent.len() >= 20, "joins are still served: {}", sent.len());
    }

    /// Nobody waits any more (consumers closed or paused, the producer paused): the
    /// request is forgotten. A publisher sending nothing of the stream gets no repeats
    /// until it does again.
    #[test]
    fn repeats_stop_when_nobody_waits_and_wait_while_the_stream_is_idle() {
        let (mut k, t0) = requests();
        assert!(k.want(t0, KeyframeNeed::Start));
        let first = k.poll_timeout().expect("repeat");
        assert!(!k.poll(first, true, false), "idle: not sent");
        let later = k.poll_timeout().expect("still repeating");
        assert_eq!(later, first + 2 * KEYFRAME_REPEAT_FIRST);
        assert!(k.poll(later, true, true), "sent once the stream is back");
        assert!(!k.poll(later + KEYFRAME_REPEAT_MAX, false, true));
        assert_eq!(k.poll_timeout(), None, "forgotten");
        assert_eq!(k.sent(), 2);
    }

    /// Without detectable keyframes nothing is known to be answered: requests are only
    /// throttled, never repeated.
    #[test]
    fn undetectable_keyframes_are_throttled_not_repeated() {
        let mut k = KeyframeRequests::new(false);
        let t0 = Instant::now();
        assert!(k.want(t0, KeyframeNeed::Start));
        assert_eq!(k.poll_timeout(), None);
        assert!(!k.want(t0 + 100 * MS, KeyframeNeed::Repair));
        assert!(k.deferred());
        assert!(k.poll(t0 + KEYFRAME_REQUEST_INTERVAL, true, true));
        assert_eq!(k.poll_timeout(), None);
    }
}
