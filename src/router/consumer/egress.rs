//! The sending side a consumer's packets go through: the subscriber transport's
//! selected tuple, outbound SRTP context, transport-wide sequence numbering and
//! send-side estimator, and the worker's send batch and counters. Borrowed from the
//! transport and the worker for one consumer's copies of a batch (or one NACK's
//! retransmissions), so each copy costs no lookup.

use crate::batch::SendBatch;
use crate::bwe::{Pacer, PlayoutDelayLimits, RetransmitBudget, SendSideEstimator};
use crate::srtp::SrtpContext;
use crate::stats::{DropCounters, Traffic};
use crate::transport::WebRtcTransport;
use std::net::SocketAddr;

/// One subscriber transport's egress state, with the worker's send batch.
#[derive(Debug)]
pub struct Egress<'a> {
    /// Where media goes and how it is protected: None until ICE selected a tuple and
    /// DTLS keyed SRTP.
    pub(super) path: Option<(SocketAddr, &'a mut SrtpContext)>,
    /// The transport's next transport-wide sequence number (shared by all its
    /// consumers' packets, forwarded and retransmitted alike).
    pub(super) transport_seq: &'a mut u16,
    /// Present once a consumer of the transport negotiated transport-wide-cc.
    pub(super) bwe: Option<&'a mut SendSideEstimator>,
    /// Caps retransmissions to a share of the estimate (`bwe::budget`).
    pub(super) rtx_budget: &'a mut RetransmitBudget,
    /// Holds back what exceeds the estimate's pacing rate (`bwe::pacer`).
    pub(super) pacer: &'a mut Pacer,
    /// The playout delay the transport asks its subscriber for now, if any
    /// (`bwe::playout`): written on its video packets.
    pub(super) playout_delay: Option<PlayoutDelayLimits>,
    pub(super) transport_rtp_out: &'a mut Traffic,
    pub(super) transport_drops: &'a mut u64,
    pub(super) worker_rtp_out: &'a mut Traffic,
    pub(super) worker_drops: &'a mut DropCounters,
    pub(super) out: &'a mut SendBatch,
}

impl<'a> Egress<'a> {
    /// The egress of transport `t` into the worker's batch `out` and counters.
    #[inline]
    pub fn new(
        t: &'a mut WebRtcTransport,
        out: &'a mut SendBatch,
        worker_rtp_out: &'a mut Traffic,
        worker_drops: &'a mut DropCounters,
    ) -> Self {
        let WebRtcTransport {
            ice,
            srtp_out,
            twcc_out_seq,
            bwe,
            cc,
            rtp_out,
            drops,
            ..
        } = t;
        Self {
            path: ice.selected().zip(srtp_out.as_mut()),
            transport_seq: twcc_out_seq,
            bwe: bwe.as_mut(),
            rtx_budget: &mut cc.rtx_budget,
            pacer: &mut cc.pacer,
            playout_delay: cc.playout_announced,
            transport_rtp_out: rtp_out,
            transport_drops: drops,
            worker_rtp_out,
            worker_drops,
            out,
        }
    }
}
