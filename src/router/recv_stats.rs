//! Receive statistics of one incoming RTP stream (RFC 3550 appendix A.1, A.3, A.8), the
//! source of the receiver reports we send to publishers and of loss/jitter in stats.

use std::time::Instant;

use crate::rtcp::ReportBlock;

/// RFC 3550 A.1: sequence numbers more than this apart are a restart, not loss.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

/// Per-stream receive state.
#[derive(Debug, Default, Clone)]
pub struct RecvStats {
    started: bool,
    max_seq: u16,
    /// Count of 16-bit wraps, already shifted (RFC 3550 A.1 `cycles`).
    cycles: u32,
    base_seq: u32,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    /// Interarrival jitter in RTP units, scaled by 16 (RFC 3550 A.8).
    jitter_q4: u32,
    last_transit: Option<i64>,
    /// Middle 32 bits of the NTP time of the last sender report, and when it came.
    last_sr: Option<(u32, Instant)>,
}

impl RecvStats {
    /// Records one packet. `arrival` is the arrival time in the stream's RTP clock units.
    pub fn on_packet(&mut self, seq: u16, rtp_ts: u32, arrival: u32) {
        if !self.started {
            self.started = true;
            self.max_seq = seq;
            self.base_seq = u32::from(seq);
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            } else if delta <= u16::MAX - MAX_MISORDER {
                // A jump: treat as a restart of the sequence (A.1 simplified: one packet
                // is enough, we never drop media because of it).
                self.max_seq = seq;
                self.base_seq = self.cycles | u32::from(seq);
                self.received = 0;
                self.expected_prior = 0;
                self.received_prior = 0;
            }
            // else: duplicate or reordered packet within the window; counted below.
        }
        self.received += 1;
        // A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si); J += (|D| - J) / 16.
        let transit = i64::from(arrival) - i64::from(rtp_ts);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs().min(u64::from(u32::MAX)) as u32;
            let j = self.jitter_q4;
            self.jitter_q4 = j.wrapping_add(d).wrapping_sub((j.wrapping_add(8)) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Remembers a sender report for LSR/DLSR.
    pub fn on_sender_report(&mut self, ntp: u64, now: Instant) {
        self.last_sr = Some(((ntp >> 16) as u32, now));
    }

    /// Extended highest sequence number received.
    pub fn extended_max(&self) -> u32 {
        self.cycles | u32::from(self.max_seq)
    }

    /// Packets expected so far.
    pub fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        u64::from(self.extended_max().wrapping_sub(self.base_seq)) + 1
    }

    /// Cumulative packets lost (never negative: duplicates do not make it go below 0).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// Packets received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Jitter in RTP units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Builds a report block and starts a new reporting interval (A.3).
    pub fn report_block(&mut self, ssrc: u32, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u8);
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                // DLSR in units of 1/65536 s.
                let d = now.saturating_duration_since(at);
                (
                    lsr,
                    (d.as_secs_f64() * 65536.0).min(f64::from(u32::MAX)) as u32,
                )
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            // 24-bit signed field on the wire; clamp.
            total_lost: self.lost().min(0x7f_ffff) as u32,
            highest_seq: self.extended_max(),
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_loss_across_wrap() {
        let mut s = RecvStats::default();
        let mut seq = 65530u16;
        for i in 0..20u32 {
            if i != 8 && i != 9 {
                s.on_packet(seq, i * 3000, i * 3000);
            }
            seq = seq.wrapping_add(1);
        }
        assert_eq!(s.expected(), 20);
        assert_eq!(s.received(), 18);
        assert_eq!(s.lost(), 2);
        assert_eq!(s.extended_max(), (1 << 16) | 13);
        let b = s.report_block(1, Instant::now());
        assert_eq!(b.total_lost, 2);
        assert_eq!(b.fraction_lost, (2 * 256 / 20) as u8);
        // A new interval with no loss reports 0.
        for i in 20..30u32 {
            s.on_packet(seq, i * 3000, i * 3000);
            seq = seq.wrapping_add(1);
        }
        assert_eq!(s.report_block(1, Instant::now()).fraction_lost, 0);
    }

    #[test]
    fn jitter_grows_with_irregular_arrival() {
        let mut s = RecvStats::default();
        for i in 0..100u32 {
            let wobble = if i % 2 == 0 { 0 } else { 900 };
            s.on_packet(i as u16, i * 3000, i * 3000 + wobble);
        }
        assert!(s.jitter() > 500, "jitter {}", s.jitter());
        let mut steady = RecvStats::default();
        for i in 0..100u32 {
            steady.on_packet(i as u16, i * 3000, i * 3000 + 77);
        }
        assert_eq!(steady.jitter(), 0);
    }
}
