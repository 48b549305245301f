//! Counters, drop reasons and latency histograms. Plain integers owned by one core:
//! nothing here is shared across threads.

use serde::Serialize;
use sfu_control::responses::{DropCounts, LatencyBucket, LatencyReport};

/// Why a datagram was dropped on the data plane. Every drop is counted by its reason;
/// nothing is ever reported as an error up the forwarding path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DropReason {
    /// First byte matches no protocol on this port (RFC 7983).
    UnknownProtocol,
    /// Too short or with lengths that do not add up.
    Malformed,
    /// STUN whose USERNAME names no transport of this worker.
    StunUnknownUfrag,
    /// STUN that failed MESSAGE-INTEGRITY or FINGERPRINT, or is not a Binding request.
    StunInvalid,
    /// DTLS, SRTP or SRTCP from an address no transport has validated with STUN.
    UnknownSource,
    /// DTLS record the handshake rejected.
    DtlsError,
    /// SRTP/SRTCP before keys exist (DTLS not done, or fingerprint not verified).
    NotReady,
    /// SRTP/SRTCP authentication failed.
    SrtpAuth,
    /// SRTP/SRTCP replayed or too old for the replay window.
    SrtpReplay,
    /// RTP whose SSRC or payload type belongs to no producer of the transport.
    UnknownSsrc,
    /// RTP from an SSRC nobody signalled whose MID and RID (RFC 8852) name no encoding
    /// still to learn its SSRC: unknown MID or RID, none at all, or an encoding that
    /// already learnt another SSRC (`transport::latch`).
    UnknownRid,
    /// RTCP that did not parse.
    RtcpMalformed,
    /// An SRTP/SRTCP context at its SSRC cap ([`crate::srtp::MAX_SSRCS`]) refused a new
    /// SSRC: from a peer sending that many streams, or toward a subscriber with that many
    /// open consumer streams.
    SrtpSsrcLimit,
    /// An outgoing packet (forwarded, retransmitted or RTCP) that could not be rewritten
    /// for its consumer or protected (SRTP index space exhausted, malformed extensions).
    ProtectFailed,
    /// Outgoing datagrams the kernel refused, or a send batch lost to a socket error.
    SendFailed,
}

impl DropReason {
    /// Every reason, for reporting all counters (including zeros).
    pub const ALL: [Self; 15] = [
        Self::UnknownProtocol,
        Self::Malformed,
        Self::StunUnknownUfrag,
        Self::StunInvalid,
        Self::UnknownSource,
        Self::DtlsError,
        Self::NotReady,
        Self::SrtpAuth,
        Self::SrtpReplay,
        Self::UnknownSsrc,
        Self::UnknownRid,
        Self::RtcpMalformed,
        Self::SrtpSsrcLimit,
        Self::ProtectFailed,
        Self::SendFailed,
    ];

    /// The camelCase name used in stats.
    pub fn name(self) -> &'static str {
        match self {
            Self::UnknownProtocol => "unknownProtocol",
            Self::Malformed => "malformed",
            Self::StunUnknownUfrag => "stunUnknownUfrag",
            Self::StunInvalid => "stunInvalid",
            Self::UnknownSource => "unknownSource",
            Self::DtlsError => "dtlsError",
            Self::NotReady => "notReady",
            Self::SrtpAuth => "srtpAuth",
            Self::SrtpReplay => "srtpReplay",
            Self::UnknownSsrc => "unknownSsrc",
            Self::UnknownRid => "unknownRid",
            Self::RtcpMalformed => "rtcpMalformed",
            Self::SrtpSsrcLimit => "srtpSsrcLimit",
            Self::ProtectFailed => "protectFailed",
            Self::SendFailed => "sendFailed",
        }
    }
}

/// Drop counters by reason; an array indexed by the enum so counting is one add.
#[derive(Debug, Default, Clone)]
pub struct DropCounters([u64; DropReason::ALL.len()]);

impl DropCounters {
    /// Counts one drop.
    pub fn count(&mut self, reason: DropReason) {
        // `as usize` of a fieldless enum is its declaration index, always < ALL.len().
        if let Some(c) = self.0.get_mut(reason as usize) {
            *c += 1;
        }
    }

    /// Counts `n` drops at once (a failed send batch).
    pub fn count_n(&mut self, reason: DropReason, n: u64) {
        if let Some(c) = self.0.get_mut(reason as usize) {
            *c = c.saturating_add(n);
        }
    }

    /// Drops counted for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(reason as usize).copied().unwrap_or(0)
    }

    /// Sum over all reasons.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// As a JSON object `{reason: count}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.counts()).unwrap_or_default()
    }

    /// The counters as `worker.getStats` reports them (`dropped`).
    pub fn counts(&self) -> DropCounts {
        let mut c = DropCounts::default();
        for r in DropReason::ALL {
            // Exhaustive: a new reason does not compile until the protocol reports it.
            let field = match r {
                DropReason::UnknownProtocol => &mut c.unknown_protocol,
                DropReason::Malformed => &mut c.malformed,
                DropReason::StunUnknownUfrag => &mut c.stun_unknown_ufrag,
                DropReason::StunInvalid => &mut c.stun_invalid,
                DropReason::UnknownSource => &mut c.unknown_source,
                DropReason::DtlsError => &mut c.dtls_error,
                DropReason::NotReady => &mut c.not_ready,
                DropReason::SrtpAuth => &mut c.srtp_auth,
                DropReason::SrtpReplay => &mut c.srtp_replay,
                DropReason::UnknownSsrc => &mut c.unknown_ssrc,
                DropReason::UnknownRid => &mut c.unknown_rid,
                DropReason::RtcpMalformed => &mut c.rtcp_malformed,
                DropReason::SrtpSsrcLimit => &mut c.srtp_ssrc_limit,
                DropReason::ProtectFailed => &mut c.protect_failed,
                DropReason::SendFailed => &mut c.send_failed,
            };
            *field = self.get(r);
        }
        c
    }
}

/// Packet and byte counters for one direction of one entity.
#[derive(Debug, Default, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    pub packets: u64,
    pub bytes: u64,
}

impl Traffic {
    /// Counts one packet of `len` bytes.
    pub fn add(&mut self, len: usize) {
        self.packets += 1;
        self.bytes += len as u64;
    }
}

/// Upper bounds (microseconds) of the cumulative buckets reported with the latency
/// histogram, for Prometheus-style consumers.
pub const LATENCY_BUCKETS_US: [u64; 12] =
    [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000];

/// Forwarding latency of one worker: receive completion to send submission, per
/// forwarded datagram, in microseconds. Recorded once per send flush with the number
/// of datagrams in it, so its cost does not grow with fan-out.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    hist: hdrhistogram::Histogram<u64>,
    /// Exact sum of recorded microseconds (the histogram only keeps buckets).
    sum: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        // 1 us .. 60 s at 3 significant digits: ~30 KiB, allocated once per worker.
        let hist = hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
            .unwrap_or_else(|_| hdrhistogram::Histogram::new(3).unwrap_or_else(|_| unreachable!()));
        Self { hist, sum: 0 }
    }
}

impl LatencyHistogram {
    /// Records `count` datagrams that waited `micros`.
    pub fn record(&mut self, micros: u64, count: u64) {
        // Values beyond the upper bound are clamped rather than lost.
        let micros = micros.clamp(1, 60_000_000);
        let _ = self.hist.record_n(micros, count);
        self.sum = self.sum.saturating_add(micros.saturating_mul(count));
    }

    /// Number of datagrams recorded.
    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Forgets everything recorded.
    pub fn reset(&mut self) {
        self.hist.reset();
        self.sum = 0;
    }

    /// Percentiles, max and cumulative buckets as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.report()).unwrap_or_default()
    }

    /// Percentiles, max and cumulative buckets (`worker.getLatency`).
    pub fn report(&self) -> LatencyReport {
        let h = &self.hist;
        let q = |p: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(p)
            }
        };
        // count_between walks the histogram's slots up to `le`: skipped when nothing was
        // recorded, so an idle worker's stats stay cheap to ask for.
        let buckets = LATENCY_BUCKETS_US
            .iter()
            .map(|&le| LatencyBucket {
                le,
                count: if h.is_empty() {
                    0
                } else {
                    h.count_between(0, le)
                },
            })
            .collect();
        LatencyReport {
            unit: "us".into(),
            count: h.len(),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
            max: if h.is_empty() { 0 } else { h.max() },
            mean: if h.is_empty() { 0.0 } else { h.mean() },
            sum: self.sum,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_and_buckets() {
        let mut l = LatencyHistogram::default();
        l.record(3, 90);
        l.record(40, 9);
        l.record(2000, 1);
        let j = l.to_json();
        assert_eq!(j["count"], 100);
        assert_eq!(j["p50"], 3);
        assert_eq!(j["p99"], 40);
        assert!(j["max"].as_u64().unwrap() >= 2000);
        assert_eq!(j["buckets"][0]["count"], 90);
        assert_eq!(j["buckets"][3]["count"], 99);
        l.reset();
        assert_eq!(l.count(), 0);
    }

    #[test]
    fn drop_counters_count_by_reason() {
        let mut d = DropCounters::default();
        d.count(DropReason::SrtpAuth);
        d.count(DropReason::SrtpAuth);
        d.count(DropReason::RtcpMalformed);
        assert_eq!(d.get(DropReason::SrtpAuth), 2);
        assert_eq!(d.get(DropReason::RtcpMalformed), 1);
        assert_eq!(d.total(), 3);
        assert_eq!(d.to_json()["srtpAuth"], 2);
        d.count_n(DropReason::SendFailed, 5);
        assert_eq!(d.to_json()["sendFailed"], 5);
        assert_eq!(d.total(), 8);
    }

    #[test]
    fn every_reason_has_its_own_name_and_slot() {
        let names: std::collections::HashSet<_> =
            DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(names.len(), DropReason::ALL.len());
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{r:?} out of declaration order in ALL");
        }
    }
}
