//! The `data` of each method's response.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{ConsumerId, ProducerId, RouterId, RtpObserverId, TransportId};
use crate::params::{
    DtlsParameters, DtlsState, IceCandidate, IceParameters, IceState, MediaKind, RtpParameters,
    TransportTuple,
};

/// The `type` of a stats object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StatsType {
    Worker,
    Router,
    WebrtcTransport,
    InboundRtp,
    OutboundRtp,
}

/// `worker.load`: what placement compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Load {
    pub worker: usize,
    pub workers: usize,
    pub routers: usize,
    pub transports: usize,
    pub producers: usize,
    pub consumers: usize,
    /// Forwarded streams: what the least-loaded choice compares.
    pub load: u64,
}

/// Datagrams the worker discarded, by class (docs/PROTOCOL.md, `worker.getStats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DropCounts {
    pub unknown_protocol: u64,
    pub malformed: u64,
    pub stun_unknown_ufrag: u64,
    pub stun_invalid: u64,
    pub unknown_source: u64,
    pub dtls_error: u64,
    pub not_ready: u64,
    pub srtp_auth: u64,
    pub srtp_replay: u64,
    pub unknown_ssrc: u64,
    #[serde(default)]
    pub unknown_rid: u64,
    pub rtcp_malformed: u64,
    pub srtp_ssrc_limit: u64,
    pub protect_failed: u64,
    pub send_failed: u64,
}

/// One cumulative latency bucket: datagrams at or below `le` microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyBucket {
    pub le: u64,
    pub count: u64,
}

/// `worker.getLatency`, and `forwardingLatency` in `worker.getStats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyReport {
    /// Always "us".
    pub unit: String,
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
    /// The exact sum of microseconds.
    pub sum: u64,
    pub buckets: Vec<LatencyBucket>,
}

/// What the packet loop is doing or awaiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LoopPhase {
    Receive,
    Send,
    Flush,
    Yield,
}

/// `packetLoop` in `worker.getStats`: tells a stuck loop from a silent network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PacketLoop {
    pub iterations: u64,
    pub phase: LoopPhase,
    pub phase_ms: u64,
    /// None before the first receive batch.
    pub last_receive_ms_ago: Option<u64>,
    pub timer_ticks: u64,
    pub last_tick_ms_ago: Option<u64>,
}

/// Worker-wide counters that only grow (entities come and go; these outlive them), and
/// one gauge (`consumers_limited_by_bandwidth`, taken when asked). The daemon counts
/// into this very struct; `worker.getStats` carries it flattened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerTotals {
    pub transports_created: u64,
    pub dtls_failures: u64,
    pub pli_received: u64,
    pub fir_received: u64,
    pub nack_received: u64,
    pub key_frame_requests_sent: u64,
    /// UDP datagrams the kernel accepted, the send calls that took them, how many went
    /// in UDP GSO super-datagrams (fan-out efficiency), and datagrams it refused.
    pub udp_datagrams_sent: u64,
    pub udp_send_calls: u64,
    pub udp_gso_datagrams: u64,
    pub udp_send_errors: u64,
    /// Datagrams that met a full send buffer and waited for room.
    pub udp_send_blocked: u64,
    /// Receive batches (`recvmmsg` calls that returned datagrams) and their datagrams.
    pub udp_receive_batches: u64,
    pub udp_datagrams_received: u64,
    /// Control connections disconnected because they did not read what was queued for
    /// them (the daemon's writer-queue bound).
    pub control_clients_dropped: u64,
    /// Adaptive quality. Simulcast consumers' switches of the forwarded spatial layer
    /// (at a keyframe of the new encoding) and of the temporal layer alone; a start or
    /// a resume is not a switch.
    pub spatial_layer_switches: u64,
    pub temporal_layer_switches: u64,
    /// Bandwidth probe clusters started, those whose measured rate confirmed their
    /// target, and those ended early because the path congested under them; the
    /// padding packets and bytes sent for them.
    pub probe_clusters_started: u64,
    pub probe_clusters_succeeded: u64,
    pub probe_clusters_aborted: u64,
    pub probe_padding_packets: u64,
    pub probe_padding_bytes: u64,
    /// Retransmissions refused by the subscribers' retransmission budgets (the sum of
    /// every transport's `retransmissionsOverBudget`, closed ones included).
    pub retransmissions_over_budget: u64,
    /// Keyframe requests sent again because no keyframe answered the last one (also
    /// counted in `keyFrameRequestsSent`).
    pub key_frame_requests_repeated: u64,
    /// Changes of a router's dominant speaker (`dominantspeaker` notifications).
    pub dominant_speaker_changes: u64,
    /// RED (RFC 2198) audio packets sent as their primary block to subscribers that did
    /// not negotiate RED (closed consumers included).
    pub red_packets_unwrapped: u64,
    /// A gauge: active simulcast consumers whose bandwidth allocation holds them below
    /// their preferred layers now.
    pub consumers_limited_by_bandwidth: u64,
    /// ICE-TCP: connections accepted and refused (over the per-worker bounds), closed
    /// for silence (unauthenticated too long, or idle) and for a bad RFC 4571 length;
    /// frames received and sent, and frames dropped because the connection's queue was
    /// full or the connection gone.
    pub tcp_connections_accepted: u64,
    pub tcp_connections_refused: u64,
    pub tcp_connections_timed_out: u64,
    pub tcp_framing_errors: u64,
    pub tcp_frames_received: u64,
    pub tcp_frames_sent: u64,
    pub tcp_send_dropped: u64,
}

/// `worker.getStats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStats {
    #[serde(rename = "type")]
    pub kind: StatsType,
    pub worker: usize,
    pub listen: String,
    pub rtp_packets_received: u64,
    pub rtp_bytes_received: u64,
    pub rtp_packets_sent: u64,
    pub rtp_bytes_sent: u64,
    pub dropped: DropCounts,
    pub dropped_total: u64,
    pub load: Load,
    pub forwarding_latency: LatencyReport,
    #[serde(flatten)]
    pub totals: WorkerTotals,
    /// The current producers' loss (RFC 3550 cumulative lost).
    pub packets_lost: u64,
    pub packet_loop: PacketLoop,
}

/// `router.create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterCreated {
    pub router_id: RouterId,
}

/// `router.createActiveSpeakerObserver`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RtpObserverCreated {
    pub rtp_observer_id: RtpObserverId,
}

/// `router.getStats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouterStats {
    #[serde(rename = "type")]
    pub kind: StatsType,
    pub id: RouterId,
    pub app_data: Value,
    pub transports: Vec<TransportStats>,
}

/// The ICE role of the daemon's transports: always controlled (ICE-lite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IceRole {
    Controlled,
}

/// `transport.create`: everything SDP needs about the server side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportCreated {
    pub transport_id: TransportId,
    pub ice_role: IceRole,
    pub ice_parameters: IceParameters,
    pub ice_candidates: Vec<IceCandidate>,
    pub ice_state: IceState,
    pub dtls_parameters: DtlsParameters,
    pub dtls_state: DtlsState,
}

/// `transport.getStats` (and each of `router.getStats`' transports).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransportStats {
    #[serde(rename = "type")]
    pub kind: StatsType,
    pub id: TransportId,
    pub ice_state: IceState,
    pub dtls_state: DtlsState,
    /// None until ICE selected a tuple.
    pub ice_selected_tuple: Option<TransportTuple>,
    /// The SRTP protection profile once DTLS connected.
    pub srtp_profile: Option<String>,
    pub rtp_packets_received: u64,
    pub rtp_bytes_received: u64,
    pub rtp_packets_sent: u64,
    pub rtp_bytes_sent: u64,
    pub rtcp_packets_received: u64,
    pub rtcp_packets_sent: u64,
    pub packets_dropped: u64,
    pub producers: usize,
    pub consumers: usize,
    /// Bits/s, once a consumer negotiated transport-wide-cc.
    pub available_outgoing_bitrate: Option<u64>,
    pub transport_cc_feedback_received: Option<u64>,
    /// RTP packets (forwarded and retransmitted) the outgoing estimate has a record of.
    pub transport_cc_packets_sent: Option<u64>,
    /// The REMB value sent to a publisher without transport-cc.
    pub available_incoming_bitrate: Option<u64>,
    pub transport_cc_feedback_sent: Option<u64>,
    /// Bits/s the last allocation of `available_outgoing_bitrate` gave the consumers
    /// (audio and the video layers chosen); with the estimate.
    pub allocated_bitrate: Option<u64>,
    /// What the transport's prober is doing; with the estimate.
    pub probing: Option<ProbeStatus>,
    /// Probe clusters sent, those that confirmed their rate, and the last one's
    /// measured rate (bits/s).
    pub probe_clusters: Option<u64>,
    pub probe_clusters_succeeded: Option<u64>,
    pub probe_bitrate: Option<u64>,
    /// NACKed packets not resent because retransmissions had used their share of the
    /// estimate.
    pub retransmissions_over_budget: Option<u64>,
    /// The path's own loss fraction (loss seen with no queue on the path), once learnt;
    /// with the estimate.
    pub inherent_loss: Option<f64>,
    /// The minimum playout delay (ms) the transport asks its subscriber's browser for
    /// (0: none); with the estimate.
    pub playout_delay: Option<u64>,
}

/// A subscriber transport's bandwidth prober (`transport.getStats` `probing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    /// Not probing: the estimate covers what the consumers want.
    Idle,
    /// Sending a probe cluster (media topped up with padding).
    Probing,
    /// The cluster was sent; waiting for the subscriber's feedback about it.
    Measuring,
    /// The last probe did not confirm its rate; the next waits.
    Backoff,
}

/// `transport.produce`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerCreated {
    pub producer_id: ProducerId,
}

/// The kind of consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsumerType {
    /// One encoding in, the same one out.
    Simple,
    /// A producer with several encodings in; one spatial and temporal layer of them out.
    Simulcast,
}

/// A simulcast consumer's spatial layer (encoding, 0 = lowest) and temporal layer:
/// `consumer.setPreferredLayers`, the `layerschange` notification and stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerLayers {
    pub spatial_layer: u8,
    pub temporal_layer: u8,
}

/// `consumer.setPriority`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerPriority {
    pub priority: u8,
}

/// `transport.consume`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerCreated {
    pub consumer_id: ConsumerId,
    pub producer_id: ProducerId,
    pub kind: MediaKind,
    #[serde(rename = "type")]
    pub consumer_type: ConsumerType,
    pub producer_paused: bool,
    pub rtp_parameters: RtpParameters,
}

/// `producer.getStats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProducerStats {
    #[serde(rename = "type")]
    pub kind: StatsType,
    pub id: ProducerId,
    #[serde(rename = "kind")]
    pub media_kind: MediaKind,
    pub ssrc: u32,
    pub paused: bool,
    pub packets_received: u64,
    pub bytes_received: u64,
    /// RFC 3550 cumulative number of packets lost.
    pub packets_lost: u64,
    pub jitter: u32,
    pub key_frame_requests_sent: u64,
    pub rtx_packets_received: u64,
    pub duplicate_packets_received: u64,
    pub nack_count: u64,
    pub packets_recovered: u64,
    pub packets_given_up: u64,
    pub score: u8,
    pub consumers: usize,
    /// Per encoding (simulcast layer), lowest spatial layer first; one entry for a
    /// producer with one encoding. The fields above sum them (counters) or are the
    /// lowest layer's (`ssrc`, `jitter`) or the best of them (`score`).
    #[serde(default)]
    pub encodings: Vec<EncodingStats>,
    /// The last audio level the publisher sent (RFC 6464 ssrc-audio-level), in dBov
    /// (-127 to 0): audio producers whose packets carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_level: Option<i8>,
    /// The minimum playout delay (ms) the publisher's lossy uplink asks its subscribers'
    /// browsers for, so that they wait for the worker's repair (0: none); video only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playout_delay: Option<u64>,
}

/// One encoding of a producer in `producer.getStats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncodingStats {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    /// The media SSRC, once signalled or learnt from the first packet with the rid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssrc: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtx_ssrc: Option<u32>,
    /// 0 = the lowest.
    pub spatial_layer: u8,
    pub temporal_layers: u8,
    pub packets_received: u64,
    pub bytes_received: u64,
    /// Bits per second received over about the last second.
    pub bitrate: u32,
    pub packets_lost: u64,
    pub jitter: u32,
    pub score: u8,
    pub nack_count: u64,
    pub rtx_packets_received: u64,
    pub key_frame_requests_sent: u64,
    pub keyframes_received: u64,
}

/// `consumer.getStats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerStats {
    #[serde(rename = "type")]
    pub kind: StatsType,
    pub id: ConsumerId,
    #[serde(rename = "kind")]
    pub media_kind: MediaKind,
    pub ssrc: u32,
    pub paused: bool,
    pub producer_paused: bool,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub pli_count: u64,
    pub fir_count: u64,
    pub nack_count: u64,
    /// Milliseconds, from the subscriber's receiver reports; None before the first.
    pub round_trip_time: Option<f64>,
    /// The last receiver report's fraction lost (0-255, RFC 3550 6.4.1).
    pub fraction_lost: u8,
    pub packets_lost: u32,
    pub rtx_ssrc: Option<u32>,
    pub retransmitted_packets_sent: u64,
    pub score: u8,
    /// A simulcast consumer's layers: asked for (`consumer.setPreferredLayers`), being
    /// forwarded (absent while it forwards nothing), and being switched to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_layers: Option<ConsumerLayers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_layers: Option<ConsumerLayers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_layers: Option<ConsumerLayers>,
    /// The consumer's weight in its transport's bandwidth allocation (1-255).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}
