//! Bandwidth feedback toward publishers: transport-cc feedback (draft-holmer-rmcat-
//! transport-wide-cc-extensions-01) when the publisher stamps transport-wide sequence
//! numbers, so its send-side estimator (Chrome's GCC) can work; REMB
//! (draft-alvestrand-rmcat-remb) for publishers that only accept that.

use std::time::Instant;

use crate::batch::SendBatch;
use crate::router::{Producer, TransportKey};
use crate::rtcp::remb::write_remb;
use crate::worker::core::{send_rtcp, WorkerCore};
use crate::worker::timers::TimerKey;

impl WorkerCore {
    /// Sends the transport-cc feedback that is due for a transport (one or more RTCP
    /// packets, each within one datagram).
    pub(crate) fn send_transport_cc(
        &mut self,
        now: Instant,
        tk: TransportKey,
        out: &mut SendBatch,
    ) {
        let Some(t) = self.transports.get_mut(tk) else {
            return;
        };
        let Some(at) = t.twcc_in.as_ref().and_then(|(_, r)| r.poll_timeout()) else {
            return;
        };
        if at > now {
            // Pending packets: feedback goes out at `at` even if no packet comes to
            // carry it there (about every 50 ms while packets arrive).
            self.timers.lower(TimerKey::Transport(tk), at);
            return;
        }
        let media_ssrc = t
            .producers
            .first()
            .and_then(|pk| self.producers.get(*pk))
            .map_or(0, Producer::ssrc);
        // Taken out for the loop: sending needs the transport mutably.
        let Some((id, mut recorder)) = t.twcc_in.take() else {
            return;
        };
        loop {
            self.scratch.clear();
            if !recorder.poll_feedback(now, t.rtcp_ssrc, media_ssrc, &mut self.scratch) {
                break;
            }
            send_rtcp(t, &mut self.scratch, out, &mut self.drops);
        }
        t.twcc_in = Some((id, recorder));
        // The next feedback is due one interval from now.
        self.reschedule_transport(now, tk);
    }

    /// Sends REMB toward a publisher without transport-cc when its estimate is due.
    pub(crate) fn send_remb(&mut self, now: Instant, tk: TransportKey, out: &mut SendBatch) {
        let Some(t) = self.transports.get_mut(tk) else {
            return;
        };
        let Some(remb) = t.remb.as_mut() else { return };
        let (mut expected, mut received) = (0, 0);
        let mut ssrcs = Vec::with_capacity(t.producers.len());
        for p in t.producers.iter().filter_map(|pk| self.producers.get(*pk)) {
            let (e, r) = p.expected_and_received();
            expected += e;
            received += r;
            ssrcs.extend(p.encodings().iter().filter_map(|e| e.ssrc()));
        }
        let Some(bps) = remb.poll_remb(now, expected, received) else {
            return;
        };
        self.scratch.clear();
        write_remb(&mut self.scratch, t.rtcp_ssrc, bps, &ssrcs);
        send_rtcp(t, &mut self.scratch, out, &mut self.drops);
    }
}
