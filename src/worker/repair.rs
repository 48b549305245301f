//! Loss repair on both sides of the worker (RFC 4585 generic NACK, RFC 4588 RTX):
//! NACKs toward publishers for gaps in their streams, and retransmissions from a
//! producer's buffer answering its subscribers' NACKs.

use std::time::{Duration, Instant};

use crate::batch::SendBatch;
use crate::router::rtx_buffer::retransmit_interval;
use crate::router::{ConsumerKey, ProducerKey};
use crate::rtcp;
use crate::rtp::extension::remap_extensions;
use crate::rtp::rtx::{wrap_rtx, OSN_LEN};
use crate::rtp::{rewrite, RtpHeader};
use crate::stats::DropReason;
use crate::worker::core::{drop_outgoing, protect_drop_reason, send_rtcp, WorkerCore};

/// Sequence numbers per NACK packet: keeps a NACK for a burst of scattered losses well
/// inside one datagram (each PID+BLP pair covers up to 17).
const MAX_NACKS_PER_PACKET: usize = 200;

impl WorkerCore {
    /// Sends the NACKs that are due for a producer's stream to its publisher, and asks
    /// for a keyframe when losses were given up on.
    pub(crate) fn send_nacks(&mut self, now: Instant, pk: ProducerKey, out: &mut SendBatch) {
        let mut lost = std::mem::take(&mut self.nack_scratch);
        lost.clear();
        let Some(p) = self.producers.get_mut(pk) else {
            return;
        };
        let Some(nack) = p.nack.as_mut() else { return };
        // The publisher's RTT is unknown (we only send it receiver reports); the
        // generator then retries at its default interval.
        nack.poll_nacks(now, None, &mut lost);
        let keyframe = nack.take_keyframe_request();
        let media_ssrc = p.ssrc;
        if let Some(t) = self.transports.get_mut(p.transport) {
            for chunk in lost.chunks(MAX_NACKS_PER_PACKET) {
                self.scratch.clear();
                rtcp::write_nack(&mut self.scratch, t.rtcp_ssrc, media_ssrc, chunk);
                send_rtcp(t, &mut self.scratch, out, &mut self.drops);
            }
        }
        self.nack_scratch = lost;
        if keyframe {
            self.request_keyframe(now, pk, out);
        }
    }

    /// Answers a subscriber's NACK for `lost` (sequence numbers in the consumer's own
    /// numbering) from the producer's retransmission buffer: RTX on the consumer's RTX
    /// stream when negotiated, else the packet as it was sent. Each packet is resent at
    /// most once per the consumer's RTT (duplicate and late NACKs).
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
            ..
        } = self;
        let Some(c) = consumers.get_mut(ck) else {
            return;
        };
        let Some(buffer) = producers
            .get(c.producer)
            .and_then(|p| p.rtx_buffer.as_ref())
        else {
            return;
        };
        let Some(t) = transports.get_mut(c.transport) else {
            return;
        };
        let (Some(dest), Some(srtp)) = (t.ice.selected(), t.srtp_out.as_mut()) else {
            return;
        };
        let interval = retransmit_interval(c.rtt_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0)));
        for &out_seq in lost {
            let Some(in_seq) = c.munger.original_seq(out_seq) else {
                continue;
            };
            let Some(pkt) = buffer.get(now, in_seq) else {
                continue;
            };
            let Ok(hdr) = RtpHeader::parse(pkt) else {
                continue;
            };
            let Some(ts) = c.munger.output_ts(hdr.timestamp) else {
                continue;
            };
            let out_pt = c
                .pt_map
                .get(usize::from(hdr.payload_type))
                .copied()
                .unwrap_or(0xff);
            if out_pt == 0xff || !c.limiter.allow(now, out_seq, interval) {
                continue;
            }
            let len = pkt.len();
            let slot = out.start(dest, len + OSN_LEN + srtp.profile().rtp_overhead());
            let Some(dst) = slot.get_mut(..len) else {
                out.commit(0);
                drop_outgoing(&mut t.drops, drops, DropReason::ProtectFailed);
                continue;
            };
            dst.copy_from_slice(pkt);
            if remap_extensions(slot, &hdr, &c.ext_map).is_err() {
                out.commit(0);
                drop_outgoing(&mut t.drops, drops, DropReason::ProtectFailed);
                continue;
            }
            rewrite(slot, c.ssrc, out_pt, out_seq, ts);
            let plain = match c.rtx {
                Some((rtx_ssrc, rtx_pt)) => {
                    let seq = c.rtx_seq;
                    c.rtx_seq = seq.wrapping_add(1);
                    wrap_rtx(slot, len, &hdr, rtx_ssrc, rtx_pt, seq)
                }
                None => Ok(len),
            };
            let protected = match plain {
                Ok(plain) => srtp.protect_rtp(slot, plain).map_err(protect_drop_reason),
                Err(_) => Err(DropReason::ProtectFailed),
            };
            match protected {
                Ok(n) => {
                    out.commit(n);
                    c.retransmissions += 1;
                    t.rtp_out.add(n);
                    rtp_out.add(n);
                }
                Err(reason) => {
                    out.commit(0);
                    drop_outgoing(&mut t.drops, drops, reason);
                }
            }
        }
    }
}
