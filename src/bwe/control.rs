//! A subscriber transport's congestion control around its estimator: the allocation
//! of the estimate to its video consumers, the prober that tests rates above the
//! estimate before the allocation may use them, the retransmission budget, the
//! pacer and the playout delay. The
//! worker core feeds it (`worker/congestion.rs`); this type only keeps the pieces and
//! their deadlines together.

use std::time::Instant;

use super::allocation::{BandwidthAllocator, VideoDemand};
use super::budget::RetransmitBudget;
use super::pacer::Pacer;
use super::playout::{PlayoutDelay, PlayoutDelayLimits};
use super::probe::ProbeController;

/// Congestion control state of one subscriber transport.
#[derive(Debug, Default)]
pub struct CongestionControl {
    pub allocator: BandwidthAllocator,
    pub probe: ProbeController,
    pub rtx_budget: RetransmitBudget,
    pub pacer: Pacer,
    /// The playout delay asked of the subscriber on a lossy path...
    pub playout: PlayoutDelay,
    /// ...and what its video packets carry until the next update.
    pub playout_announced: Option<PlayoutDelayLimits>,
    /// The consumers' demands, rebuilt for each allocation (kept to reuse the buffer).
    pub demands: Vec<VideoDemand>,
}

impl CongestionControl {
    /// The earliest of the periodic re-allocation, the prober's next step and the
    /// pacer's next packet, at the transport's pacing rate `pacing_bps`.
    pub fn poll_timeout(&self, pacing_bps: u64) -> Option<Instant> {
        [
            self.allocator.poll_timeout(),
            self.probe.poll_timeout(),
            self.pacer.poll_timeout(pacing_bps),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}
