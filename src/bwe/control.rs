//! A subscriber transport's congestion control around its estimator: the allocation
//! of the estimate to its video consumers, the prober that tests rates above the
//! estimate before the allocation may use them, and the retransmission budget. The
//! worker core feeds it (`worker/congestion.rs`); this type only keeps the pieces and
//! their deadlines together.

use std::time::Instant;

use super::allocation::{BandwidthAllocator, VideoDemand};
use super::budget::RetransmitBudget;
use super::probe::ProbeController;

/// Congestion control state of one subscriber transport.
#[derive(Debug, Default)]
pub struct CongestionControl {
    pub allocator: BandwidthAllocator,
    pub probe: ProbeController,
    pub rtx_budget: RetransmitBudget,
    /// The consumers' demands, rebuilt for each allocation (kept to reuse the buffer).
    pub demands: Vec<VideoDemand>,
}

impl CongestionControl {
    /// The earliest of the periodic re-allocation and the prober's next step.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.allocator.poll_timeout(), self.probe.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }
}
