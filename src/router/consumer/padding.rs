//! Probe padding through a consumer's egress: padding-only RTP on its RTX stream
//! (`rtp::padding`), numbered with the transport's transport-wide sequence and recorded
//! by its estimator like any packet, so the subscriber's feedback measures the probe
//! cluster (`bwe::probe`).

use std::time::Instant;

use super::{Consumer, Egress};
use crate::channel::params::MediaKind;
use crate::rtp::padding::{Padding, MAX_PADDING};
use crate::stats::Traffic;
use crate::worker::core::{drop_outgoing, protect_drop_reason};

impl Consumer {
    /// Whether the consumer can carry probe padding: active video with RTX and
    /// transport-wide sequence numbers negotiated, that has sent media (its RTX stream
    /// then has a timestamp to use).
    pub fn can_pad(&self) -> bool {
        self.media_kind == MediaKind::Video
            && self.active()
            && self.rtx.is_some()
            && self.twcc_id.is_some()
            && self.last_forwarded.is_some()
    }

    /// Sends about `bytes` (on the wire) of padding packets; returns the packets and
    /// bytes sent.
    pub fn send_padding(&mut self, now: Instant, egress: &mut Egress<'_>, bytes: usize) -> Traffic {
        let (Some((rtx_ssrc, rtx_pt)), Some(twcc_id)) = (self.rtx, self.twcc_id) else {
            return Traffic::default();
        };
        let timestamp = self.last_forwarded.map_or(0, |(_, ts, _, _)| ts);
        let Some((dest, srtp)) = egress.path.as_mut() else {
            return Traffic::default();
        };
        let (dest, srtp) = (*dest, &mut **srtp);
        let mut sent = Traffic::default();
        while (sent.bytes as usize) < bytes {
            let transport_seq = *egress.transport_seq;
            let p = Padding {
                ssrc: rtx_ssrc,
                payload_type: rtx_pt,
                sequence: self.rtx_seq,
                timestamp,
                transport_seq: Some((twcc_id, transport_seq)),
                len: MAX_PADDING,
            };
            let slot = egress
                .out
                .start(dest, p.packet_len() + srtp.profile().rtp_overhead());
            let Some(len) = p.write(slot) else {
                egress.out.commit(0);
                break;
            };
            *egress.transport_seq = transport_seq.wrapping_add(1);
            self.rtx_seq = self.rtx_seq.wrapping_add(1);
            match srtp.protect_rtp(slot, len) {
                Ok(n) => {
                    egress.out.commit(n);
                    if let Some(bwe) = egress.bwe.as_mut() {
                        bwe.on_packet_sent(now, transport_seq, n);
                    }
                    egress.transport_rtp_out.add(n);
                    egress.worker_rtp_out.add(n);
                    sent.add(n);
                }
                Err(e) => {
                    egress.out.commit(0);
                    drop_outgoing(
                        egress.transport_drops,
                        egress.worker_drops,
                        protect_drop_reason(e),
                    );
                    break;
                }
            }
        }
        sent
    }
}
