//! Routers (one per room), producers (incoming tracks) and consumers (outgoing tracks).
//!
//! The router is maps plus handles: entities live in slabs owned by the worker core and
//! refer to each other by slab key; the string ids of the control channel map to keys in
//! the core. Forwarding policy per consumer is "simple" (one stream in, one out); the
//! sequence/timestamp rewriting lives in `rtp::munger`.

pub mod nack;
pub mod negotiate;
pub mod recv_stats;
pub mod rtx_buffer;
pub mod score;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::channel::params::{MediaKind, RtpParameters};
use crate::ids::{ConsumerId, ProducerId, RouterId};
use crate::router::nack::NackGenerator;
use crate::router::recv_stats::RecvStats;
use crate::router::rtx_buffer::{RetransmissionBuffer, RetransmitLimiter};
use crate::router::score::ScoreTracker;
use crate::rtp::extension::ExtensionMap;
use crate::rtp::munger::SeqTsMunger;
use crate::stats::Traffic;

/// Slab key of a transport.
pub type TransportKey = usize;
/// Slab key of a producer.
pub type ProducerKey = usize;
/// Slab key of a consumer.
pub type ConsumerKey = usize;
/// Identifies one control connection (notifications go to the router's owner).
pub type ConnId = u64;

/// PLI/FIR toward a publisher at most this often (keyframes are expensive).
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// A room: the transports and producers that may see each other.
#[derive(Debug)]
pub struct Router {
    pub id: RouterId,
    pub owner: ConnId,
    pub transports: Vec<TransportKey>,
    pub app_data: Value,
}

/// One incoming track.
#[derive(Debug)]
pub struct Producer {
    pub id: ProducerId,
    pub kind: MediaKind,
    pub router: RouterId,
    pub transport: TransportKey,
    pub rtp_parameters: RtpParameters,
    pub ssrc: u32,
    pub rtx_ssrc: Option<u32>,
    /// Payload type -> clock rate of each media codec.
    pub media_pts: Vec<(u8, u32)>,
    pub vp8: bool,
    pub paused: bool,
    pub consumers: Vec<ConsumerKey>,
    pub app_data: Value,
    pub recv: RecvStats,
    pub traffic: Traffic,
    /// Last PLI/FIR sent, and whether one is waiting for the throttle to open.
    pub last_keyframe_request: Option<Instant>,
    pub keyframe_pending: bool,
    pub keyframe_requests_sent: u64,
    /// NTP time (64-bit) and RTP time of the last sender report, and when it came:
    /// lets consumer sender reports keep the publisher's NTP/RTP mapping (lip-sync).
    pub last_sr: Option<(u64, u32, Instant)>,
    pub rtx_packets: u64,
    /// RTX payload type -> repaired media payload type.
    pub rtx_pts: Vec<(u8, u8)>,
    /// Gap detection and NACKs toward the publisher, when it accepts generic NACK.
    pub nack: Option<NackGenerator>,
    /// Recent packets for answering consumers' NACKs (video only), shared by all
    /// consumers of this producer.
    pub rtx_buffer: Option<RetransmissionBuffer>,
    pub duplicates: u64,
    pub score: ScoreTracker,
}

impl Producer {
    /// Clock rate of a media payload type.
    pub fn clock_rate(&self, pt: u8) -> Option<u32> {
        self.media_pts
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, r)| *r)
    }

    /// Whether NACKs toward the publisher are due (newly missing packets, or retries).
    pub fn nack_due(&self, now: Instant) -> bool {
        self.nack
            .as_ref()
            .and_then(NackGenerator::poll_timeout)
            .is_some_and(|at| at <= now)
    }

    /// Records that a keyframe is wanted. Returns true when a PLI should go out now;
    /// otherwise it is sent by the timer when the throttle opens.
    pub fn want_keyframe(&mut self, now: Instant) -> bool {
        let open = self
            .last_keyframe_request
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_REQUEST_INTERVAL);
        if open {
            self.last_keyframe_request = Some(now);
            self.keyframe_pending = false;
            self.keyframe_requests_sent += 1;
        } else {
            self.keyframe_pending = true;
        }
        open
    }

    /// Stats as JSON for `producer.getStats`.
    pub fn stats_json(&self) -> Value {
        json!({
            "type": "inbound-rtp",
            "id": self.id,
            "kind": self.kind,
            "ssrc": self.ssrc,
            "paused": self.paused,
            "packetsReceived": self.traffic.packets,
            "bytesReceived": self.traffic.bytes,
            "packetsLost": self.recv.lost(),
            "jitter": self.recv.jitter(),
            "keyFrameRequestsSent": self.keyframe_requests_sent,
            "rtxPacketsReceived": self.rtx_packets,
            "duplicatePacketsReceived": self.duplicates,
            "nackCount": self.nack.as_ref().map_or(0, |n| n.stats().requested),
            "packetsRecovered": self.nack.as_ref().map_or(0, |n| n.stats().recovered),
            "packetsGivenUp": self.nack.as_ref().map_or(0, |n| n.stats().given_up),
            "score": self.score.current(),
            "consumers": self.consumers.len(),
        })
    }
}

/// One outgoing track for one subscriber.
#[derive(Debug)]
pub struct Consumer {
    pub id: ConsumerId,
    pub kind: MediaKind,
    pub producer: ProducerKey,
    pub transport: TransportKey,
    pub ssrc: u32,
    pub rtp_parameters: RtpParameters,
    /// Producer payload type -> ours; 0xff = not negotiated (dropped).
    pub pt_map: [u8; 128],
    pub ext_map: ExtensionMap,
    pub clock_rate: u32,
    pub munger: SeqTsMunger,
    pub paused: bool,
    pub producer_paused: bool,
    /// Video consumers start (and resume) on a keyframe when we can detect one (VP8).
    pub wait_keyframe: bool,
    pub app_data: Value,
    pub traffic: Traffic,
    /// Last forwarded packet: (input RTP ts, output RTP ts, when). Maps the producer's
    /// timeline to ours for sender reports.
    pub last_forwarded: Option<(u32, u32, Instant)>,
    pub plis_received: u64,
    pub firs_received: u64,
    pub nacks_received: u64,
    pub rtt_ms: Option<f64>,
    pub fraction_lost: u8,
    pub packets_lost_reported: u32,
    /// RTX (SSRC, payload type) when the subscriber negotiated it (RFC 4588).
    pub rtx: Option<(u32, u8)>,
    pub rtx_seq: u16,
    /// Rate limit for resending one packet (duplicate and late NACKs).
    pub limiter: RetransmitLimiter,
    pub retransmissions: u64,
    pub score: ScoreTracker,
    /// The consumer's transport-wide sequence extension id (we stamp our own numbers).
    pub twcc_id: Option<u8>,
    /// The last fan-out pass that served this consumer (`worker::fanout`).
    pub fanout_pass: u64,
}

impl Consumer {
    /// Whether packets flow to the subscriber now.
    pub fn active(&self) -> bool {
        !self.paused && !self.producer_paused
    }

    /// Stats as JSON for `consumer.getStats`.
    pub fn stats_json(&self) -> Value {
        json!({
            "type": "outbound-rtp",
            "id": self.id,
            "kind": self.kind,
            "ssrc": self.ssrc,
            "paused": self.paused,
            "producerPaused": self.producer_paused,
            "packetsSent": self.traffic.packets,
            "bytesSent": self.traffic.bytes,
            "pliCount": self.plis_received,
            "firCount": self.firs_received,
            "nackCount": self.nacks_received,
            "roundTripTime": self.rtt_ms,
            "fractionLost": self.fraction_lost,
            "packetsLost": self.packets_lost_reported,
            "rtxSsrc": self.rtx.map(|(ssrc, _)| ssrc),
            "retransmittedPacketsSent": self.retransmissions,
            "score": self.score.current(),
        })
    }
}

/// Builds the payload type table of a consumer.
pub fn pt_table(pt_map: &[(u8, u8)]) -> [u8; 128] {
    let mut t = [0xff; 128];
    for (from, to) in pt_map {
        if let Some(slot) = t.get_mut(usize::from(*from)) {
            *slot = *to;
        }
    }
    t
}
