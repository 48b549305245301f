//! What tells a stuck packet loop from a quiet network, for `worker.getStats`: how many
//! times the loop went round, what it is waiting for now and since when, when it last
//! received, and the timer loop's ticks. The control queue answers while the packet loop
//! is parked, so these say whether the loop itself stopped (phase stays `send` or
//! `receive` with traffic arriving) or nothing reaches it (`receive` and an old
//! `lastReceiveMsAgo`). The shell feeds it; time is passed in.

use std::time::Instant;

use serde_json::Value;
use sfu_control::responses::PacketLoop;

/// What the packet loop is doing (or awaiting) now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopPhase {
    /// Waiting for datagrams (or draining the socket).
    Receive,
    /// Handling a batch and sending its replies and copies (may wait for the send lock
    /// or for room in the socket's send buffer).
    Send,
    /// Handing notifications to control writers and sending control datagrams.
    Flush,
    /// Yielded to the control queue.
    Yield,
}

impl LoopPhase {
    fn wire(self) -> sfu_control::responses::LoopPhase {
        use sfu_control::responses::LoopPhase as Wire;
        match self {
            Self::Receive => Wire::Receive,
            Self::Send => Wire::Send,
            Self::Flush => Wire::Flush,
            Self::Yield => Wire::Yield,
        }
    }
}

/// The packet and timer loops' liveness.
#[derive(Debug, Clone)]
pub struct Liveness {
    iterations: u64,
    phase: LoopPhase,
    phase_since: Instant,
    last_receive: Option<Instant>,
    timer_ticks: u64,
    last_tick: Option<Instant>,
}

impl Liveness {
    pub fn new(now: Instant) -> Self {
        Self {
            iterations: 0,
            phase: LoopPhase::Receive,
            phase_since: now,
            last_receive: None,
            timer_ticks: 0,
            last_tick: None,
        }
    }

    /// The packet loop enters `phase` at `now`.
    pub fn enter(&mut self, phase: LoopPhase, now: Instant) {
        if phase == LoopPhase::Receive {
            self.iterations += 1;
        }
        self.phase = phase;
        self.phase_since = now;
    }

    /// A receive batch completed at `now`.
    pub fn received(&mut self, now: Instant) {
        self.last_receive = Some(now);
    }

    /// The timer loop ticked at `now`.
    pub fn ticked(&mut self, now: Instant) {
        self.timer_ticks += 1;
        self.last_tick = Some(now);
    }

    pub fn to_json(&self, now: Instant) -> Value {
        serde_json::to_value(self.report(now)).unwrap_or_default()
    }

    /// `packetLoop` of `worker.getStats` as seen at `now`.
    pub fn report(&self, now: Instant) -> PacketLoop {
        let ago = |t: Instant| now.saturating_duration_since(t).as_millis() as u64;
        PacketLoop {
            iterations: self.iterations,
            phase: self.phase.wire(),
            phase_ms: ago(self.phase_since),
            last_receive_ms_ago: self.last_receive.map(ago),
            timer_ticks: self.timer_ticks,
            last_tick_ms_ago: self.last_tick.map(ago),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reports_phase_age_and_last_receive() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0);
        l.enter(LoopPhase::Receive, t0);
        l.received(t0 + Duration::from_millis(5));
        l.enter(LoopPhase::Send, t0 + Duration::from_millis(5));
        l.ticked(t0 + Duration::from_millis(100));
        let j = l.to_json(t0 + Duration::from_millis(2005));
        assert_eq!(j["iterations"], 1);
        assert_eq!(j["phase"], "send");
        assert_eq!(j["phaseMs"], 2000);
        assert_eq!(j["lastReceiveMsAgo"], 2000);
        assert_eq!(j["timerTicks"], 1);
        assert_eq!(j["lastTickMsAgo"], 1905);
    }
}
