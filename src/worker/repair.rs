//! Loss repair on both sides of the worker (RFC 4585 generic NACK, RFC 4588 RTX):
//! NACKs toward publishers for gaps in their streams, and retransmissions from a
//! producer's buffer answering its subscribers' NACKs.

use std::time::Instant;

use crate::batch::SendBatch;
use crate::router::{ConsumerKey, Egress, KeyframeNeed, Producer, ProducerKey};
use crate::rtcp;
use crate::worker::congestion::wake_pacer;
use crate::worker::core::{send_rtcp, WorkerCore};

/// Sequence numbers per NACK packet: keeps a NACK for a burst of scattered losses well
/// inside one datagram (each PID+BLP pair covers up to 17).
const MAX_NACKS_PER_PACKET: usize = 200;

impl WorkerCore {
    /// Sends the NACKs that are due for a producer's streams to its publisher, each
    /// encoding's for its own SSRC, and asks for a keyframe of an encoding whose losses
    /// were given up on.
    pub(crate) fn send_nacks(&mut self, now: Instant, pk: ProducerKey, out: &mut SendBatch) {
        let layers = self.producers.get(pk).map_or(0, Producer::spatial_layers);
        for layer in 0..layers {
            if self
                .producers
                .get(pk)
                .is_some_and(|p| p.nack_due(layer, now))
            {
                self.send_layer_nacks(now, pk, layer, out);
            }
        }
    }

    fn send_layer_nacks(&mut self, now: Instant, pk: ProducerKey, layer: u8, out: &mut SendBatch) {
        let mut lost = std::mem::take(&mut self.nack_scratch);
        lost.clear();
        let Some(p) = self.producers.get_mut(pk) else {
            return;
        };
        let keyframe = p.poll_nacks(layer, now, &mut lost);
        let media_ssrc = p.layer_ssrc(layer);
        if let (Some(t), Some(media_ssrc)) = (self.transports.get_mut(p.transport()), media_ssrc) {
            for chunk in lost.chunks(MAX_NACKS_PER_PACKET) {
                self.scratch.clear();
                rtcp::write_nack(&mut self.scratch, t.rtcp_ssrc, media_ssrc, chunk);
                send_rtcp(t, &mut self.scratch, out, &mut self.drops);
            }
        }
        self.nack_scratch = lost;
        if keyframe {
            self.request_keyframe(now, pk, layer, KeyframeNeed::Repair, out);
        }
    }

    /// Answers a subscriber's NACK for `lost` (sequence numbers in the consumer's own
    /// numbering) from the producer's retransmission buffer, through the consumer's
    /// egress ([`crate::router::Consumer::retransmit`]).
    pub(crate) fn retransmit(
        &mut self,
        now: Instant,
        ck: ConsumerKey,
        lost: &[u16],
        out: &mut SendBatch,
    ) {
        let Self {
            transports,
            producers,
            consumers,
            rtp_out,
            drops,
            timers,
            ..
        } = self;
        let Some(c) = consumers.get_mut(ck) else {
            return;
        };
        let Some(p) = c.producer().and_then(|k| producers.get(k)) else {
            return;
        };
        let tk = c.transport();
        let Some(t) = transports.get_mut(tk) else {
            return;
        };
        let buffer = |layer| p.retransmission_buffer(layer);
        c.retransmit(now, buffer, lost, &mut Egress::new(t, out, rtp_out, drops));
        wake_pacer(now, timers, tk, t);
    }
}
