//! Receiver Estimated Maximum Bitrate (draft-alvestrand-rmcat-remb-03) toward
//! publishers that did not negotiate transport-cc.
//!
//! Without transport-cc, Chrome's sender runs only its loss-based controller (on the
//! loss in our receiver reports) and caps it with the last REMB it received. So the
//! value we send is mostly a ceiling: it starts at a configurable cap high enough for
//! Chrome to ramp up to (2.5 Mbps by default), comes down when loss says the path is
//! congested, and grows back while it is clean. We have no delay information for
//! these publishers (that is what transport-cc would give), so [`RembEstimator`] is
//! a loss-based AIMD in the spirit of draft-ietf-rmcat-gcc-02 section 6.

use std::time::{Duration, Instant};

use super::{put_header, put_u32, FMT_AFB, PT_PSFB};

/// REMB's unique identifier (draft-alvestrand-rmcat-remb-03 2.2).
const REMB_ID: &[u8; 4] = b"REMB";
/// The mantissa is 18 bits (draft 2.2).
const MANTISSA_BITS: u32 = 18;
/// Num SSRC is 8 bits (draft 2.2).
const MAX_SSRCS: usize = 255;

/// Appends a REMB (draft-alvestrand-rmcat-remb-03 2.2): PSFB FMT=15 with media
/// source 0, "REMB", the SSRC count, the bitrate as a 6-bit exponent and an 18-bit
/// mantissa (`bitrate = mantissa << exp`, rounded down like libwebrtc), then the
/// SSRCs it applies to. More than 255 SSRCs are truncated to the first 255.
pub fn write_remb(out: &mut Vec<u8>, sender_ssrc: u32, bitrate_bps: u64, ssrcs: &[u32]) {
    let ssrcs = ssrcs.get(..MAX_SSRCS).unwrap_or(ssrcs);
    // At most 255, so both fit.
    let count = ssrcs.len() as u8;
    put_header(out, FMT_AFB, PT_PSFB, 4 + u16::from(count));
    put_u32(out, sender_ssrc);
    put_u32(out, 0);
    out.extend_from_slice(REMB_ID);
    // The smallest exponent that makes the mantissa fit; at most 64 - 18 = 46, well
    // inside 6 bits.
    let exp = (u64::BITS - bitrate_bps.leading_zeros()).saturating_sub(MANTISSA_BITS);
    let mantissa = (bitrate_bps >> exp) as u32;
    out.push(count);
    out.push(((exp as u8) << 2) | ((mantissa >> 16) as u8 & 0x03));
    out.push((mantissa >> 8) as u8);
    out.push(mantissa as u8);
    for &ssrc in ssrcs {
        put_u32(out, ssrc);
    }
}

/// How often loss and the incoming rate are evaluated.
pub const EVAL_INTERVAL: Duration = Duration::from_millis(500);
/// How often the REMB is repeated when it does not drop (libwebrtc's receive side
/// sends about once a second too).
pub const REMB_INTERVAL: Duration = Duration::from_secs(1);
/// A drop below this fraction of the last value sent is sent at once
/// (libwebrtc's REMB throttle uses 97%).
const SEND_AT_ONCE_BELOW: f64 = 0.97;
/// Loss above this is congestion: decrease (draft-ietf-rmcat-gcc-02 6).
const LOSS_DECREASE: f64 = 0.10;
/// Loss below this lets the estimate grow (draft-ietf-rmcat-gcc-02 6).
const LOSS_INCREASE: f64 = 0.02;
/// Multiplicative increase per second while loss is low (GCC's 8%/s).
const INCREASE_PER_SECOND: f64 = 1.08;
/// Decrease target relative to the measured incoming rate (GCC's beta).
const BETA: f64 = 0.85;
/// Fewer packets than this in an evaluation interval give no loss sample.
const MIN_LOSS_PACKETS: u64 = 10;

/// Bounds of a [`RembEstimator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RembConfig {
    /// The cap, and the start: Chrome's loss-based controller ramps up to it.
    pub max_bps: u64,
    /// Never ask for less.
    pub min_bps: u64,
}

impl Default for RembConfig {
    fn default() -> Self {
        Self {
            max_bps: 2_500_000,
            min_bps: 30_000,
        }
    }
}

/// Loss-based receive-side estimate for one publisher transport without
/// transport-cc, sent to it as REMB.
///
/// Driving contract: [`Self::on_packet`] for every media packet received on the
/// transport (its size in bytes); [`Self::poll_remb`] periodically (every tick is
/// fine), with the cumulative packets expected and received over the transport's
/// incoming streams (RFC 3550 A.3, summed; counters that go backwards, e.g. a
/// stream restart, are resynchronised). When it returns a bitrate, write it with
/// [`write_remb`] for the publisher's SSRCs.
///
/// Policy, every [`EVAL_INTERVAL`]: loss = 1 - received / expected over the interval.
/// Above 10%: decrease to `min(estimate * (1 - loss / 2), 0.85 * incoming rate)`
/// (GCC 6's loss rule, and GCC 5.5's beta applied to what actually arrived). Below 2%,
/// or no sample: grow 8% per second. In between: hold. Always within
/// `[min_bps, max_bps]`. Sent every [`REMB_INTERVAL`], and at once when it drops by
/// more than 3%.
#[derive(Debug, Clone)]
pub struct RembEstimator {
    cfg: RembConfig,
    estimate: f64,
    bytes: u64,
    last_eval: Option<Instant>,
    prev_totals: (u64, u64),
    last_sent: Option<(Instant, f64)>,
    incoming_bps: Option<u64>,
    loss: Option<f64>,
}

impl RembEstimator {
    /// Starts at `config.max_bps`.
    pub fn new(config: RembConfig) -> Self {
        let max = config.max_bps.max(config.min_bps);
        let cfg = RembConfig {
            max_bps: max,
            min_bps: config.min_bps,
        };
        Self {
            cfg,
            estimate: max as f64,
            bytes: 0,
            last_eval: None,
            prev_totals: (0, 0),
            last_sent: None,
            incoming_bps: None,
            loss: None,
        }
    }

    /// Counts one received media packet of `size` bytes.
    pub fn on_packet(&mut self, size: usize) {
        self.bytes = self.bytes.saturating_add(size as u64);
    }

    /// The current estimate in bits/s.
    pub fn estimate_bps(&self) -> u64 {
        self.estimate as u64
    }

    /// Incoming media rate over the last evaluation interval, bits/s.
    pub fn incoming_bps(&self) -> Option<u64> {
        self.incoming_bps
    }

    /// Loss fraction over the last evaluation interval that had enough packets.
    pub fn loss_fraction(&self) -> Option<f64> {
        self.loss
    }

    /// When [`Self::poll_remb`] next has work: the next evaluation or repetition.
    /// `None` before the first call.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let eval = self.last_eval? + EVAL_INTERVAL;
        Some(match self.last_sent {
            Some((t, _)) => eval.min(t + REMB_INTERVAL),
            None => eval,
        })
    }

    /// Updates the estimate when an evaluation is due and returns the bitrate to send
    /// as REMB now, if one is due. The first call returns the start value at once.
    /// `expected` and `received` are cumulative packet counts (see the type's docs).
    #[must_use]
    pub fn poll_remb(&mut self, now: Instant, expected: u64, received: u64) -> Option<u64> {
        match self.last_eval {
            None => {
                self.last_eval = Some(now);
                self.prev_totals = (expected, received);
                self.bytes = 0;
            }
            Some(last) if now >= last + EVAL_INTERVAL => {
                self.evaluate(now.duration_since(last), expected, received);
                self.last_eval = Some(now);
            }
            Some(_) => {}
        }
        let due = match self.last_sent {
            None => true,
            Some((t, sent)) => {
                now >= t + REMB_INTERVAL || self.estimate < sent * SEND_AT_ONCE_BELOW
            }
        };
        if !due {
            return None;
        }
        self.last_sent = Some((now, self.estimate));
        Some(self.estimate_bps())
    }

    fn evaluate(&mut self, elapsed: Duration, expected: u64, received: u64) {
        let secs = elapsed.as_secs_f64();
        let incoming = self.bytes as f64 * 8.0 / secs.max(1e-3);
        self.incoming_bps = Some(incoming as u64);
        self.bytes = 0;
        let (prev_expected, prev_received) = self.prev_totals;
        self.prev_totals = (expected, received);
        let loss = match (
            expected.checked_sub(prev_expected),
            received.checked_sub(prev_received),
        ) {
            (Some(e), Some(r)) if e >= MIN_LOSS_PACKETS => {
                // More received than expected (duplicates) is no loss.
                Some(e.saturating_sub(r) as f64 / e as f64)
            }
            _ => None,
        };
        if loss.is_some() {
            self.loss = loss;
        }
        match loss {
            Some(p) if p > LOSS_DECREASE => {
                let mut target = self.estimate * (1.0 - 0.5 * p);
                if incoming > 0.0 {
                    target = target.min(BETA * incoming);
                }
                self.estimate = target;
            }
            Some(p) if p >= LOSS_INCREASE => {}
            _ => {
                // Capped at one second of growth so a long gap between polls does not
                // jump straight to the cap.
                self.estimate *= INCREASE_PER_SECOND.powf(secs.min(1.0));
            }
        }
        self.estimate = self
            .estimate
            .clamp(self.cfg.min_bps as f64, self.cfg.max_bps as f64);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rtcp::packet::Packet;
    use rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;

    use super::*;
    use crate::rtcp::{parse_compound, Feedback};

    fn crate_parse(buf: &[u8]) -> ReceiverEstimatedMaximumBitrate {
        let packets = rtcp::packet::unmarshal(&mut Bytes::copy_from_slice(buf)).expect("parse");
        assert_eq!(packets.len(), 1);
        packets[0]
            .as_any()
            .downcast_ref::<ReceiverEstimatedMaximumBitrate>()
            .expect("REMB")
            .clone()
    }

    #[test]
    fn writer_parsed_by_crate() {
        // 0 is exponent 0, mantissa 0 (the crate's parser turns that into 2^23, so
        // it is checked by hand).
        let mut out = Vec::new();
        write_remb(&mut out, 1, 0, &[]);
        assert_eq!(out[16..20], [0, 0, 0, 0]);
        for bps in [
            1u64,
            262_143,
            262_144,
            262_145,
            1_500_000,
            2_500_000,
            123_456_789,
            100_000_000_000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_remb(&mut out, 0x1234, bps, &[0xAAAA, 0xBBBB]);
            assert_eq!(out.len(), 28);
            let remb = crate_parse(&out);
            assert_eq!(remb.sender_ssrc, 0x1234);
            assert_eq!(remb.ssrcs, [0xAAAA, 0xBBBB]);
            // Rounded down to 18 significant bits, exactly representable in f32.
            let exp = (64 - bps.leading_zeros()).saturating_sub(18);
            let want = ((bps >> exp) as f64 * 2f64.powi(exp as i32)) as f32;
            assert_eq!(remb.bitrate, want, "{bps}");
            assert!(f64::from(remb.bitrate) <= bps as f64);
            assert!(f64::from(remb.bitrate) >= bps as f64 * (1.0 - 1.0 / 131_072.0));
        }
        // Byte-identical to the crate's writer where the value is exact.
        let mut out = Vec::new();
        write_remb(&mut out, 1, 1_500_000, &[0xAAAA]);
        let theirs = ReceiverEstimatedMaximumBitrate {
            sender_ssrc: 1,
            bitrate: 1_500_000.0,
            ssrcs: vec![0xAAAA],
        };
        assert_eq!(
            out,
            rtcp::packet::marshal(&[Box::new(theirs) as Box<dyn Packet + Send + Sync>])
                .unwrap()
                .to_vec()
        );
        // Our own parse path sees it as REMB.
        let mut fb = Vec::new();
        parse_compound(&out, &mut fb).unwrap();
        assert_eq!(
            fb,
            [Feedback::Remb {
                bitrate: 1_500_000.0,
                ssrcs: vec![0xAAAA]
            }]
        );
    }

    #[test]
    fn writer_ssrc_counts() {
        let mut out = Vec::new();
        write_remb(&mut out, 1, 300_000, &[]);
        assert_eq!(crate_parse(&out).ssrcs, Vec::<u32>::new());
        let many: Vec<u32> = (0..300).collect();
        out.clear();
        write_remb(&mut out, 1, 300_000, &many);
        assert_eq!(crate_parse(&out).ssrcs, many[..255]);
    }

    /// Drives the estimator for `secs` seconds at 100 ms ticks, receiving
    /// `rate_bps` in 1000-byte packets with `loss` of them lost; returns the REMBs
    /// sent with their times.
    fn run(
        est: &mut RembEstimator,
        t: &mut Instant,
        totals: &mut (u64, u64),
        secs: u32,
        rate_bps: f64,
        loss: f64,
    ) -> Vec<(Instant, u64)> {
        let mut sent = Vec::new();
        let mut carry = 0.0;
        for _ in 0..secs * 10 {
            *t += Duration::from_millis(100);
            carry += rate_bps / 8.0 / 1000.0 / 10.0;
            while carry >= 1.0 {
                carry -= 1.0;
                totals.0 += 1;
                // Deterministic loss pattern at the given fraction.
                if (totals.0 as f64 * loss).floor() == ((totals.0 - 1) as f64 * loss).floor() {
                    totals.1 += 1;
                    est.on_packet(1000);
                }
            }
            if let Some(bps) = est.poll_remb(*t, totals.0, totals.1) {
                sent.push((*t, bps));
            }
        }
        sent
    }

    #[test]
    fn starts_at_the_cap_and_repeats_every_second() {
        let t0 = Instant::now();
        let mut est = RembEstimator::new(RembConfig::default());
        assert_eq!(est.poll_timeout(), None);
        assert_eq!(est.poll_remb(t0, 0, 0), Some(2_500_000));
        assert_eq!(est.poll_timeout(), Some(t0 + EVAL_INTERVAL));
        let (mut t, mut totals) = (t0, (0, 0));
        let sent = run(&mut est, &mut t, &mut totals, 10, 2_000_000.0, 0.0);
        assert_eq!(sent.len(), 10);
        assert!(sent.iter().all(|&(_, bps)| bps == 2_500_000));
        assert!(sent.windows(2).all(|w| w[1].0 - w[0].0 == REMB_INTERVAL));
        assert_eq!(est.incoming_bps(), Some(2_000_000));
        assert_eq!(est.loss_fraction(), Some(0.0));
    }

    #[test]
    fn heavy_loss_backs_off_at_once_then_recovers() {
        let t0 = Instant::now();
        let mut est = RembEstimator::new(RembConfig::default());
        let _ = est.poll_remb(t0, 0, 0);
        let (mut t, mut totals) = (t0, (0, 0));
        run(&mut est, &mut t, &mut totals, 2, 2_000_000.0, 0.0);
        // 20% loss: down to 0.85 x the 1.6 Mbps that arrives, sent without waiting
        // for the 1 s repetition.
        let sent = run(&mut est, &mut t, &mut totals, 1, 2_000_000.0, 0.2);
        let (at, first) = sent[0];
        assert!(at - (t - Duration::from_secs(1)) <= EVAL_INTERVAL);
        assert!((1_300_000..=1_400_000).contains(&first), "{first}");
        let sent = run(&mut est, &mut t, &mut totals, 3, 1_000_000.0, 0.2);
        assert!(sent.windows(2).all(|w| w[1].1 < w[0].1), "{sent:?}");
        let low = est.estimate_bps();
        assert!(low < 800_000, "{low}");
        // Moderate loss holds.
        run(&mut est, &mut t, &mut totals, 3, 500_000.0, 0.05);
        assert_eq!(est.estimate_bps(), low);
        // Clean again: +8%/s back up to the cap.
        run(&mut est, &mut t, &mut totals, 5, 500_000.0, 0.0);
        let grown = est.estimate_bps() as f64 / low as f64;
        assert!((1.40..1.52).contains(&grown), "{grown}");
        run(&mut est, &mut t, &mut totals, 30, 500_000.0, 0.0);
        assert_eq!(est.estimate_bps(), 2_500_000);
    }

    #[test]
    fn bounds_and_counter_resets() {
        let t0 = Instant::now();
        let cfg = RembConfig {
            max_bps: 1_000_000,
            min_bps: 100_000,
        };
        let mut est = RembEstimator::new(cfg);
        assert_eq!(est.poll_remb(t0, 1000, 1000), Some(1_000_000));
        // Everything lost for a long time: stops at the floor.
        let mut t = t0;
        for i in 1..100u64 {
            t += Duration::from_millis(500);
            let _ = est.poll_remb(t, 1000 + 100 * i, 1000);
        }
        assert_eq!(est.estimate_bps(), 100_000);
        // Counters going backwards (a stream restarted) are no loss sample.
        t += Duration::from_millis(500);
        let _ = est.poll_remb(t, 5, 5);
        assert_eq!(est.estimate_bps(), (100_000.0 * 1.08f64.sqrt()) as u64);
        // A long silence grows by at most one second's worth.
        t += Duration::from_secs(60);
        let _ = est.poll_remb(t, 5, 5);
        assert_eq!(
            est.estimate_bps(),
            (100_000.0 * 1.08f64.sqrt() * 1.08) as u64
        );
    }
}
