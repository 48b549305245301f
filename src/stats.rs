//! Counters, drop reasons and latency histograms. Plain integers owned by one core:
//! nothing here is shared across threads.

use serde::Serialize;

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
    /// RTCP that did not parse.
    RtcpMalformed,
}

impl DropReason {
    /// Every reason, for reporting all counters (including zeros).
    pub const ALL: [Self; 11] = [
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
        Self::RtcpMalformed,
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
            Self::RtcpMalformed => "rtcpMalformed",
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
        let map: serde_json::Map<String, serde_json::Value> = DropReason::ALL
            .iter()
            .map(|r| (r.name().to_owned(), self.get(*r).into()))
            .collect();
        serde_json::Value::Object(map)
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
