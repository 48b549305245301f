//! One peer's WebRTC transport: ICE-lite + DTLS server + SRTP contexts, plus the maps
//! that tie its SSRCs to producers and consumers. Sans-IO: the worker core feeds it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use rand::Rng;
use serde_json::Value;

use crate::bwe::{CongestionControl, ProbeState, SendSideEstimator};
use sfu_control::responses::{ProbeStatus, StatsType, TransportStats};

use crate::channel::params::{DtlsFingerprint, TransportTuple};
use crate::dtls::{DtlsIdentity, DtlsOutcome, DtlsServer, DtlsState};
use crate::ice::{IceCredentials, IceLite, IceState};
use crate::ids::{RouterId, TransportId};
use crate::router::{ConsumerKey, ProducerKey};
use crate::rtcp::remb::RembEstimator;
use crate::rtcp::twcc::TwccRecorder;
use crate::srtp::{contexts_from_keying_material, SrtpContext};
use crate::stats::Traffic;

mod latch;
mod ssrc;
pub use latch::{latch_ssrc, SsrcRoute};
pub use ssrc::SsrcAllocator;

/// At most this many addresses may be validated by STUN for one transport (a browser
/// has a handful of candidates); older ones are forgotten first.
pub const MAX_VALIDATED_ADDRS: usize = 8;

/// One WebRTC transport of a peer.
#[derive(Debug)]
pub struct WebRtcTransport {
    pub id: TransportId,
    pub router: RouterId,
    pub ice: IceLite,
    pub dtls: DtlsServer,
    /// SRTP to the peer / from the peer; present once DTLS connected and the
    /// fingerprint was verified.
    pub srtp_out: Option<SrtpContext>,
    pub srtp_in: Option<SrtpContext>,
    /// Addresses that passed a STUN check, newest last; DTLS/SRTP from them is ours.
    pub validated: Vec<SocketAddr>,
    /// Where the last DTLS record came from: handshake retransmissions go there.
    pub dtls_peer: Option<SocketAddr>,
    /// Our SSRC as the sender of RTCP (RR, PLI, FIR) on this transport.
    pub rtcp_ssrc: u32,
    pub connected: bool,
    /// Whether [`Self::media_dest`] was known at the last [`Self::media_path_opened`].
    media_path: bool,
    /// `transport.connect` may be called once.
    pub dtls_connect_called: bool,
    /// Every producer SSRC, signalled or learnt from a RID (`latch`), with its
    /// producer, spatial layer and whether it is RTX.
    pub producers_by_ssrc: HashMap<u32, SsrcRoute>,
    pub consumers_by_ssrc: HashMap<u32, ConsumerKey>,
    /// Where consumer SSRCs come from: never one this transport used before.
    pub consumer_ssrcs: SsrcAllocator,
    pub producers: Vec<ProducerKey>,
    pub consumers: Vec<ConsumerKey>,
    pub next_rtcp: Instant,
    pub rtp_in: Traffic,
    pub rtp_out: Traffic,
    pub rtcp_in: Traffic,
    pub rtcp_out: Traffic,
    pub drops: u64,
    pub app_data: Value,
    /// Ingress bandwidth feedback: the publisher's transport-wide sequence extension id
    /// and the arrivals recorded for transport-cc feedback...
    pub twcc_in: Option<(u8, TwccRecorder)>,
    /// ...or, for publishers without transport-cc that accept it, REMB.
    pub remb: Option<RembEstimator>,
    /// Egress: our transport-wide sequence numbers and the estimate built from the
    /// subscriber's transport-cc feedback (created with the first consumer that
    /// negotiated the extension).
    pub twcc_out_seq: u16,
    pub bwe: Option<SendSideEstimator>,
    /// What is done with the estimate: layer allocation, probing, the retransmission
    /// budget (used while `bwe` is present).
    pub cc: CongestionControl,
}

impl std::fmt::Debug for DtlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsServer")
            .field("state", &self.state())
            .finish()
    }
}

impl WebRtcTransport {
    /// A new transport with fresh ICE credentials, RTCP SSRC and consumer SSRC key, all
    /// drawn from `rng`.
    pub fn new<R: Rng + ?Sized>(
        id: TransportId,
        router: RouterId,
        identity: &DtlsIdentity,
        now: Instant,
        app_data: Value,
        rng: &mut R,
    ) -> Self {
        Self {
            id,
            router,
            ice: IceLite::new(IceCredentials::generate(rng)),
            dtls: DtlsServer::new(identity),
            srtp_out: None,
            srtp_in: None,
            validated: Vec::new(),
            dtls_peer: None,
            rtcp_ssrc: rng.gen::<u32>() | 1,
            connected: false,
            media_path: false,
            dtls_connect_called: false,
            producers_by_ssrc: HashMap::new(),
            consumers_by_ssrc: HashMap::new(),
            consumer_ssrcs: SsrcAllocator::new(rng),
            producers: Vec::new(),
            consumers: Vec::new(),
            next_rtcp: now,
            rtp_in: Traffic::default(),
            rtp_out: Traffic::default(),
            rtcp_in: Traffic::default(),
            rtcp_out: Traffic::default(),
            drops: 0,
            app_data,
            twcc_in: None,
            remb: None,
            twcc_out_seq: 0,
            bwe: None,
            cc: CongestionControl::default(),
        }
    }

    /// Remembers an address that passed STUN. Returns an address that was forgotten to
    /// make room, so the caller can unmap it.
    pub fn validate_addr(&mut self, addr: SocketAddr) -> Option<SocketAddr> {
        if let Some(pos) = self.validated.iter().position(|a| *a == addr) {
            self.validated.remove(pos);
            self.validated.push(addr);
            return None;
        }
        self.validated.push(addr);
        if self.validated.len() > MAX_VALIDATED_ADDRS {
            // Never forget the selected tuple.
            let selected = self.ice.selected();
            let pos = self.validated.iter().position(|a| Some(*a) != selected)?;
            return Some(self.validated.remove(pos));
        }
        None
    }

    /// Where media goes: ICE's selected tuple, once SRTP is ready.
    pub fn media_dest(&self) -> Option<SocketAddr> {
        if self.srtp_out.is_some() {
            self.ice.selected()
        } else {
            None
        }
    }

    /// Whether the media path opened since the last call: SRTP keyed and a tuple
    /// selected, whichever came last (and again after the tuple was lost).
    pub fn media_path_opened(&mut self) -> bool {
        let open = self.media_dest().is_some();
        let opened = open && !self.media_path;
        self.media_path = open;
        opened
    }

    /// Applies a DTLS outcome: keys SRTP on success. Returns the DTLS state to notify.
    pub fn apply_dtls(&mut self, outcome: DtlsOutcome) -> DtlsState {
        match outcome {
            DtlsOutcome::Connected {
                profile,
                keying_material,
            } => match contexts_from_keying_material(profile, &keying_material, false) {
                Ok((out, inb)) => {
                    self.srtp_out = Some(out);
                    self.srtp_in = Some(inb);
                    self.connected = true;
                    DtlsState::Connected
                }
                Err(e) => {
                    tracing::warn!(transport = %self.id, error = %e, "SRTP keying failed");
                    self.fail_media();
                    DtlsState::Failed
                }
            },
            DtlsOutcome::Failed(reason) => {
                tracing::warn!(transport = %self.id, %reason, "DTLS failed");
                self.fail_media();
                DtlsState::Failed
            }
            DtlsOutcome::Closed => {
                self.fail_media();
                DtlsState::Closed
            }
        }
    }

    fn fail_media(&mut self) {
        self.srtp_in = None;
        self.srtp_out = None;
        self.connected = false;
    }

    /// Sets the remote fingerprints (`transport.connect`).
    pub fn connect(&mut self, fingerprints: Vec<DtlsFingerprint>) -> Option<DtlsState> {
        self.dtls
            .set_remote_fingerprints(fingerprints)
            .map(|o| self.apply_dtls(o))
    }

    /// The selected 5-tuple, once ICE selected one.
    pub fn tuple(&self, local: SocketAddr) -> Option<TransportTuple> {
        self.ice.selected().map(|remote| TransportTuple {
            local_ip: local.ip().to_string(),
            local_port: local.port(),
            remote_ip: remote.ip().to_string(),
            remote_port: remote.port(),
            protocol: "udp".into(),
        })
    }

    /// Stats for `transport.getStats`.
    pub fn stats(&self, local: SocketAddr) -> TransportStats {
        // Congestion control acts only with an estimate.
        let cc = self.bwe.as_ref().map(|_| &self.cc);
        TransportStats {
            kind: StatsType::WebrtcTransport,
            id: self.id.clone(),
            ice_state: ice_state(self.ice.state()),
            dtls_state: self.dtls.state(),
            ice_selected_tuple: self.tuple(local),
            srtp_profile: self.srtp_out.as_ref().map(|c| format!("{:?}", c.profile())),
            rtp_packets_received: self.rtp_in.packets,
            rtp_bytes_received: self.rtp_in.bytes,
            rtp_packets_sent: self.rtp_out.packets,
            rtp_bytes_sent: self.rtp_out.bytes,
            rtcp_packets_received: self.rtcp_in.packets,
            rtcp_packets_sent: self.rtcp_out.packets,
            packets_dropped: self.drops,
            producers: self.producers.len(),
            consumers: self.consumers.len(),
            available_outgoing_bitrate: self.bwe.as_ref().map(SendSideEstimator::estimate_bps),
            transport_cc_feedback_received: self.bwe.as_ref().map(|b| b.stats().feedback),
            transport_cc_packets_sent: self.bwe.as_ref().map(|b| b.stats().packets_sent),
            available_incoming_bitrate: self.remb.as_ref().map(RembEstimator::estimate_bps),
            transport_cc_feedback_sent: self.twcc_in.as_ref().map(|(_, r)| r.stats().feedback_sent),
            allocated_bitrate: cc.map(|cc| cc.allocator.allocated_bps()),
            probing: cc.map(|cc| probe_status(cc.probe.state())),
            probe_clusters: cc.map(|cc| cc.probe.stats().clusters),
            probe_clusters_succeeded: cc.map(|cc| cc.probe.stats().succeeded),
            probe_bitrate: cc.and_then(|cc| cc.probe.stats().last_result_bps),
            retransmissions_over_budget: cc.map(|cc| cc.rtx_budget.denied()),
            inherent_loss: self.bwe.as_ref().and_then(SendSideEstimator::inherent_loss),
            playout_delay: cc
                .map(|cc| u64::try_from(cc.playout.current().as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// A prober's state as the control protocol has it.
fn probe_status(s: ProbeState) -> ProbeStatus {
    match s {
        ProbeState::Idle => ProbeStatus::Idle,
        ProbeState::Probing { .. } => ProbeStatus::Probing,
        ProbeState::Measuring { .. } => ProbeStatus::Measuring,
        ProbeState::Backoff { .. } => ProbeStatus::Backoff,
    }
}

/// An ICE state as the control protocol has it.
pub fn ice_state(s: IceState) -> sfu_control::params::IceState {
    match s {
        IceState::New => sfu_control::params::IceState::New,
        IceState::Connected => sfu_control::params::IceState::Connected,
        IceState::Disconnected => sfu_control::params::IceState::Disconnected,
    }
}

/// The wire name of an ICE state.
pub fn ice_state_name(s: IceState) -> &'static str {
    ice_state(s).name()
}
