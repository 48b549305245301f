//! The sans-IO heart of one worker core: every router, transport, producer and consumer
//! placed on the core, the demultiplexing tables, and the packet path. The glommio shell
//! (`worker::shell`) feeds it `(now, from, bytes)`, control requests and timer ticks, and
//! sends what it puts in the [`SendBatch`]. Nothing here reads a clock or does I/O.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use slab::Slab;

use crate::batch::{SendBatch, SendReport};
use crate::channel::params::MediaKind;
use crate::channel::{Event, Notification};
use crate::demux::{classify, PacketClass};
use crate::dtls::{check_records, DtlsIdentity, DtlsState, RecordCheck};
use crate::ice::{self, IceEvent};
use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::router::{
    ConnId, Consumer, ConsumerKey, Ingested, Producer, ProducerKey, Router, TransportKey,
};
use crate::rtcp::{self, Feedback};
use crate::rtp::extension::read_extension_u16;
use crate::rtp::RtpHeader;
use crate::srtp::SrtpError;
use crate::stats::{DropCounters, DropReason, LatencyHistogram, Traffic};
use crate::tcp::TcpConns;
use crate::transport::{ice_state_name, latch_ssrc, WebRtcTransport};
use crate::worker::fanout::{FanOut, Job};
use crate::worker::liveness::Liveness;
use crate::worker::ownership::AdminConns;
use crate::worker::rtp_observers::RtpObservers;
use crate::worker::timers::{TimerKey, Timers};

/// Worker-wide counters that outlive the entities they count (reported as they are by
/// `worker.getStats`).
pub use sfu_control::responses::WorkerTotals;

/// Interval of sender/receiver reports per transport (RFC 3550 6.2 allows this for a
/// few streams per session; browsers send about once a second too).
pub const RTCP_INTERVAL: Duration = Duration::from_secs(1);

/// Where this worker listens and what it announces.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub index: usize,
    pub workers: usize,
    /// The bound UDP address.
    pub local: SocketAddr,
    /// The address put into ICE candidates (the bound one unless `--announced-ip`).
    pub announced: SocketAddr,
    /// Further announced addresses (e.g. the IPv6 one of a dual-stack socket), each
    /// candidates of its own at lower priorities, on the same ports.
    pub also_announced: Vec<IpAddr>,
    /// The ICE-TCP listener's port, announced as a passive TCP candidate on the
    /// announced address; None without ICE-TCP.
    pub tcp_port: Option<u16>,
}

/// One core's state.
pub struct WorkerCore {
    pub(crate) cfg: CoreConfig,
    pub(crate) identity: DtlsIdentity,
    epoch: (Instant, SystemTime),
    pub(crate) routers: HashMap<RouterId, Router>,
    /// Boxed: a transport is ~6.5 KB, and a slab of them inline would hold up to as
    /// many again in spare capacity after doubling (and copy them all as it grows).
    pub(crate) transports: Slab<Box<WebRtcTransport>>,
    pub(crate) producers: Slab<Producer>,
    pub(crate) consumers: Slab<Consumer>,
    pub(crate) transport_ids: HashMap<TransportId, TransportKey>,
    pub(crate) producer_ids: HashMap<ProducerId, ProducerKey>,
    pub(crate) consumer_ids: HashMap<ConsumerId, ConsumerKey>,
    by_ufrag: HashMap<String, TransportKey>,
    pub(crate) by_addr: HashMap<SocketAddr, TransportKey>,
    /// ICE-TCP connections, known to the tables above by stand-in addresses
    /// (`worker::tcp_peers`).
    pub(crate) tcp: TcpConns,
    notifications: Vec<(ConnId, Notification)>,
    /// Control connections that may act on every router (`worker::ownership`).
    pub(crate) admins: AdminConns,
    /// Datagrams produced off the packet path (control requests), sent by the shell.
    pub(crate) control_out: SendBatch,
    pub(crate) drops: DropCounters,
    pub(crate) rtp_in: Traffic,
    pub(crate) rtp_out: Traffic,
    /// Forwarding latency over the worker's life (getStats, metrics: never reset)...
    pub(crate) latency: LatencyHistogram,
    /// ...and over a window the control client resets (worker.getLatency).
    pub(crate) latency_window: LatencyHistogram,
    /// Worker-wide totals for metrics (entities come and go; these only grow).
    pub(crate) totals: WorkerTotals,
    pub(crate) scratch: Vec<u8>,
    /// Reused list of sequence numbers for NACKs toward publishers.
    pub(crate) nack_scratch: Vec<u16>,
    pub(crate) feedback: Vec<Feedback>,
    /// Packets of the current receive batch waiting to be fanned out.
    pub(crate) fanout: FanOut,
    /// Bumped whenever a producer's consumer list changes (see `fanout`).
    pub(crate) topology: u64,
    /// Every transport's and producer's next deadline (`worker::timers`).
    pub(crate) timers: Timers,
    /// Every random choice of the core (ids, ICE credentials, SSRCs, initial sequence
    /// numbers): seeded from OS entropy by the shell, from a fixed seed in tests,
    /// fuzzing and simulation, so that a seed replays a run exactly.
    pub(crate) rng: StdRng,
    /// The shell's loops' liveness (fed by the shell, reported by `worker.getStats`).
    pub(crate) liveness: Liveness,
    /// Active-speaker observers (`worker::rtp_observers`).
    pub(crate) rtp_observers: RtpObservers,
}

impl CoreConfig {
    /// Every announced address, the preferred first.
    pub fn announced_ips(&self) -> impl Iterator<Item = IpAddr> + '_ {
        std::iter::once(self.announced.ip()).chain(self.also_announced.iter().copied())
    }

    /// The announced address a peer at `remote` reached: the first of its family (the
    /// local side of a selected tuple).
    pub fn announced_for(&self, remote: IpAddr) -> IpAddr {
        self.announced_ips()
            .find(|ip| ip.is_ipv4() == remote.is_ipv4())
            .unwrap_or(self.announced.ip())
    }
}

impl WorkerCore {
    /// A core with nothing placed on it yet. `rng` makes every random choice of the core;
    /// it must be a CSPRNG seeded from OS entropy in production (ICE passwords come from
    /// it: the shell seeds it with `StdRng::from_entropy`).
    pub fn new(
        cfg: CoreConfig,
        identity: DtlsIdentity,
        rng: StdRng,
        now: Instant,
        wall: SystemTime,
    ) -> Self {
        Self {
            cfg,
            identity,
            epoch: (now, wall),
            routers: HashMap::new(),
            transports: Slab::new(),
            producers: Slab::new(),
            consumers: Slab::new(),
            transport_ids: HashMap::new(),
            producer_ids: HashMap::new(),
            consumer_ids: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            tcp: TcpConns::default(),
            notifications: Vec::new(),
            admins: AdminConns::default(),
            control_out: SendBatch::new(),
            drops: DropCounters::default(),
            rtp_in: Traffic::default(),
            rtp_out: Traffic::default(),
            latency: LatencyHistogram::default(),
            latency_window: LatencyHistogram::default(),
            totals: WorkerTotals::default(),
            scratch: Vec::with_capacity(1500),
            nack_scratch: Vec::new(),
            feedback: Vec::new(),
            fanout: FanOut::default(),
            topology: 0,
            timers: Timers::default(),
            rng,
            liveness: Liveness::new(now),
            rtp_observers: RtpObservers::default(),
        }
    }

    /// The worker's configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// Drop counters by reason.
    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    /// Records forwarding latency measured by the shell (see [`LatencyHistogram`]).
    pub fn record_latency(&mut self, micros: u64, datagrams: u64) {
        self.latency.record(micros, datagrams);
        self.latency_window.record(micros, datagrams);
    }

    /// The packet and timer loops' liveness, which the shell updates.
    pub fn liveness_mut(&mut self) -> &mut Liveness {
        &mut self.liveness
    }

    /// Counts one receive batch of the shell.
    pub fn record_receive(&mut self, datagrams: usize) {
        self.totals.udp_receive_batches += 1;
        self.totals.udp_datagrams_received += datagrams as u64;
    }

    /// Counts what one send of the shell did.
    pub fn record_send(&mut self, report: &SendReport) {
        let t = &mut self.totals;
        t.udp_datagrams_sent += report.datagrams as u64;
        t.udp_send_calls += report.syscalls as u64;
        t.udp_gso_datagrams += report.gso_datagrams as u64;
        t.udp_send_errors += report.errors as u64;
        t.udp_send_blocked += report.blocked as u64;
        self.drops
            .count_n(DropReason::SendFailed, report.errors as u64);
    }

    /// Counts a send batch of `datagrams` lost whole to a socket error.
    pub fn record_send_failure(&mut self, datagrams: usize) {
        self.totals.udp_send_errors += datagrams as u64;
        self.drops.count_n(DropReason::SendFailed, datagrams as u64);
    }

    /// Counts a control connection the shell disconnected for not reading (it then
    /// closes it like any other, [`Self::close_connection`]).
    pub fn record_control_client_dropped(&mut self) {
        self.totals.control_clients_dropped += 1;
    }

    /// Takes the notifications produced so far, in order.
    pub fn drain_notifications(&mut self) -> std::vec::Drain<'_, (ConnId, Notification)> {
        self.notifications.drain(..)
    }

    /// Keeps only notifications for connections `keep` accepts.
    pub(crate) fn retain_notifications(&mut self, keep: impl Fn(ConnId) -> bool) {
        self.notifications.retain(|(c, _)| keep(*c));
    }

    /// Takes datagrams produced by control requests.
    pub fn control_out(&mut self) -> &mut SendBatch {
        &mut self.control_out
    }

    /// NTP time (RFC 5905 64-bit format) of `now`.
    pub(crate) fn ntp(&self, now: Instant) -> u64 {
        let wall = self.epoch.1 + now.saturating_duration_since(self.epoch.0);
        rtcp::system_time_to_ntp(wall)
    }

    /// Microseconds since the core started, for RTP arrival times.
    fn micros(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch.0).as_micros() as u64
    }

    pub(crate) fn notify(&mut self, router: &RouterId, target: &str, event: Event) {
        if let Some(r) = self.routers.get(router) {
            self.notifications.push((
                r.owner,
                Notification {
                    target: target.to_owned(),
                    event,
                },
            ));
        }
    }

    pub(crate) fn drop_packet(&mut self, reason: DropReason, transport: Option<TransportKey>) {
        self.drops.count(reason);
        if let Some(t) = transport.and_then(|k| self.transports.get_mut(k)) {
            t.drops += 1;
        }
        tracing::trace!(?reason, "datagram dropped");
    }

    /// Handles one received datagram completely, forwarding included. `buf` is the
    /// datagram and may be modified in place. For callers without a receive batch; must
    /// not be mixed with [`Self::receive`] calls whose fan-out is pending.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
        out: &mut SendBatch,
    ) {
        debug_assert!(!self.fanout.is_pending());
        self.receive(now, from, buf, 0, out);
        let buf: &[u8] = buf;
        self.fan_out(now, |_| Some(buf), out, usize::MAX);
    }

    /// The first pass over a receive batch: handles one received datagram, `slot` of the
    /// batch, except the forwarding of RTP. `buf` may be modified in place; a packet to
    /// forward is left in it as plaintext and must stay there until
    /// [`Self::fan_out`] returns true. Replies (STUN, DTLS, RTCP feedback) go to `out`.
    pub fn receive(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
        slot: usize,
        out: &mut SendBatch,
    ) {
        match classify(buf) {
            PacketClass::Stun => self.on_stun(now, from, buf, out),
            PacketClass::Unknown => self.drop_packet(DropReason::UnknownProtocol, None),
            class => {
                let Some(&tk) = self.by_addr.get(&from) else {
                    return self.drop_packet(DropReason::UnknownSource, None);
                };
                match class {
                    PacketClass::Dtls => self.on_dtls(now, tk, from, buf, out),
                    PacketClass::Rtp => self.on_rtp(now, tk, buf, slot, out),
                    _ => self.on_rtcp(now, tk, buf, out),
                }
            }
        }
    }

    fn on_stun(&mut self, now: Instant, from: SocketAddr, buf: &[u8], out: &mut SendBatch) {
        let Some(ufrag) = ice::local_ufrag_of(buf) else {
            return self.drop_packet(DropReason::StunInvalid, None);
        };
        let Some(&tk) = self.by_ufrag.get(ufrag) else {
            return self.drop_packet(DropReason::StunUnknownUfrag, None);
        };
        let Some(t) = self.transports.get_mut(tk) else {
            return self.drop_packet(DropReason::StunUnknownUfrag, None);
        };
        match t.ice.handle_stun(now, from, buf, &mut self.scratch) {
            // Only an answered request proved knowledge of our ice-pwd (MESSAGE-INTEGRITY):
            // only then may its source address carry DTLS and SRTP for this transport.
            // Indications and responses (Ok(false)) are unauthenticated.
            Ok(true) => {
                out.push(from, &self.scratch);
                if let Some(forgotten) = t.validate_addr(from) {
                    if self.by_addr.get(&forgotten) == Some(&tk) {
                        self.by_addr.remove(&forgotten);
                    }
                }
                self.by_addr.insert(from, tk);
                self.drain_ice_events(now, tk, out);
            }
            Ok(false) => self.drain_ice_events(now, tk, out),
            Err(e) => {
                tracing::debug!(error = %e, %from, "STUN rejected");
                self.drop_packet(DropReason::StunInvalid, Some(tk));
            }
        }
        // A first nomination starts the consent timer.
        self.reschedule_transport(now, tk);
    }

    /// Notifies the transport's ICE events; when a selected tuple completes its media
    /// path, starts the path ([`Self::on_media_path_ready`]).
    pub(crate) fn drain_ice_events(&mut self, now: Instant, tk: TransportKey, out: &mut SendBatch) {
        while let Some(t) = self.transports.get_mut(tk) {
            let Some(ev) = t.ice.poll_event() else { break };
            let (router, id) = (t.router.clone(), t.id.0.clone());
            match ev {
                IceEvent::StateChanged(s) => {
                    tracing::info!(transport = %id, state = ice_state_name(s), "ICE state");
                    self.notify(
                        &router,
                        &id,
                        Event::IceStateChange {
                            ice_state: crate::transport::ice_state(s),
                        },
                    );
                }
                IceEvent::SelectedTupleChanged(_) => {
                    if let Some(tuple) = self.selected_tuple(tk) {
                        self.notify(
                            &router,
                            &id,
                            Event::IceSelectedTupleChange {
                                ice_selected_tuple: tuple,
                            },
                        );
                    }
                }
            }
        }
        if self
            .transports
            .get_mut(tk)
            .is_some_and(|t| t.media_path_opened())
        {
            self.on_media_path_ready(now, tk, out);
        }
    }

    fn on_dtls(
        &mut self,
        now: Instant,
        tk: TransportKey,
        from: SocketAddr,
        buf: &[u8],
        out: &mut SendBatch,
    ) {
        match check_records(buf) {
            Ok(()) => {}
            Err(RecordCheck::Malformed) => {
                return self.drop_packet(DropReason::Malformed, Some(tk))
            }
            Err(RecordCheck::Unexpected) => {
                return self.drop_packet(DropReason::DtlsError, Some(tk))
            }
        }
        let Some(t) = self.transports.get_mut(tk) else {
            return self.drop_packet(DropReason::UnknownSource, None);
        };
        let before = t.dtls.state();
        let result = t.dtls.handle_datagram(now, buf);
        t.dtls_peer = Some(from);
        while let Some(d) = t.dtls.poll_transmit() {
            out.push(from, &d);
        }
        let (router, id) = (t.router.clone(), t.id.0.clone());
        let state = match result {
            Ok(Some(outcome)) => t.apply_dtls(outcome),
            Ok(None) => t.dtls.state(),
            Err(e) => {
                tracing::debug!(transport = %id, error = %e, "DTLS record rejected");
                let st = t.dtls.state();
                self.drop_packet(DropReason::DtlsError, Some(tk));
                st
            }
        };
        if state != before {
            self.on_dtls_state(now, tk, &router, &id, state, out);
        }
        // Handshake retransmissions, and RTCP reports once connected.
        self.reschedule_transport(now, tk);
    }

    pub(crate) fn on_dtls_state(
        &mut self,
        now: Instant,
        tk: TransportKey,
        router: &RouterId,
        id: &str,
        state: DtlsState,
        out: &mut SendBatch,
    ) {
        tracing::info!(transport = %id, state = state.name(), "DTLS state");
        if state == DtlsState::Failed {
            self.totals.dtls_failures += 1;
        }
        self.notify(router, id, Event::DtlsStateChange { dtls_state: state });
        if self
            .transports
            .get_mut(tk)
            .is_some_and(|t| t.media_path_opened())
        {
            self.on_media_path_ready(now, tk, out);
        }
    }

    /// The transport can send media from now on: SRTP keyed and ICE's tuple selected,
    /// whichever came last (Chromium often finishes DTLS before it nominates a pair).
    /// Subscribers can decrypt what it sends: get their video consumers a keyframe, early
    /// (they have no picture, and the requests made at their creation were held back for
    /// this; one answered before the path existed was not forwarded, and nobody else
    /// would ask again). A publisher can be asked from now on: its producers' consumers
    /// that connected first had their requests held back too (a publisher that starts
    /// without a keyframe would leave them waiting).
    fn on_media_path_ready(&mut self, now: Instant, tk: TransportKey, out: &mut SendBatch) {
        let starting: Vec<(ConsumerKey, u8)> = self
            .transports
            .get(tk)
            .map(|t| {
                let published = t
                    .producers
                    .iter()
                    .filter_map(|&pk| self.producers.get(pk))
                    .flat_map(|p| p.consumers().iter().copied());
                t.consumers
                    .iter()
                    .copied()
                    .chain(published)
                    .filter_map(|ck| self.consumers.get(ck).map(|c| (ck, c)))
                    .filter(|(_, c)| c.media_kind() == MediaKind::Video && c.active())
                    .map(|(ck, c)| (ck, c.keyframe_layer()))
                    .collect()
            })
            .unwrap_or_default();
        for (ck, layer) in starting {
            self.request_start_keyframe(now, ck, layer, out);
        }
    }

    /// The receiving half of the forwarding path: the transport unprotects once and
    /// finds the producer, the producer ingests ([`Producer::receive_rtp`]: RTX, NACK
    /// bookkeeping, buffering for retransmission), and the packet is noted for the
    /// fan-out (`worker::fanout`). No allocation.
    fn on_rtp(
        &mut self,
        now: Instant,
        tk: TransportKey,
        buf: &mut [u8],
        slot: usize,
        out: &mut SendBatch,
    ) {
        let ingested = self.ingest_rtp(now, tk, buf);
        self.send_transport_cc(now, tk, out);
        let Some((pk, packet)) = ingested else {
            return;
        };
        self.observe_audio_level(now, pk, buf, &packet);
        let Some(p) = self.producers.get(pk) else {
            return;
        };
        self.fanout.push(Job {
            slot,
            publisher: tk,
            video: p.kind() == MediaKind::Video,
            producer: pk,
            len: packet.len,
            hdr: packet.hdr,
            arrival: packet.arrival,
            keyframe: packet.keyframe,
            layer: packet.layer,
        });
        // NACKs due now go at once; a gap still inside the reordering delay (or a
        // retry) is the producer's timer.
        match p.nack_deadline() {
            Some(at) if at <= now => {
                self.send_nacks(now, pk, out);
                self.reschedule_producer(pk);
            }
            Some(at) => self.timers.lower(TimerKey::Producer(pk), at),
            None => {}
        }
    }

    /// The transport's part of the ingest: unprotects and parses a publisher's packet,
    /// records it for bandwidth feedback and finds its producer, which takes it from
    /// there. Returns the producer and the packet to forward, or None when there is
    /// nothing to forward (counted where it is a drop).
    fn ingest_rtp(
        &mut self,
        now: Instant,
        tk: TransportKey,
        buf: &mut [u8],
    ) -> Option<(ProducerKey, Ingested)> {
        let micros = self.micros(now);
        let Self {
            transports,
            producers,
            drops,
            rtp_in,
            ..
        } = self;
        let t = transports.get_mut(tk)?;
        let mut drop = |t: &mut WebRtcTransport, reason| {
            t.drops += 1;
            drops.count(reason);
            None
        };
        let Some(srtp) = t.srtp_in.as_mut() else {
            return drop(t, DropReason::NotReady);
        };
        let len = match srtp.unprotect_rtp(buf) {
            Ok(n) => n,
            Err(e) => return drop(t, srtp_drop_reason(e)),
        };
        let Some(Ok(hdr)) = buf.get(..len).map(RtpHeader::parse) else {
            return drop(t, DropReason::Malformed);
        };
        // Every authenticated packet counts for bandwidth feedback, whatever its SSRC:
        // Chrome probes with RTX and padding packets.
        if let Some((id, recorder)) = t.twcc_in.as_mut() {
            if let Some(seq) = buf
                .get(..len)
                .and_then(|pkt| read_extension_u16(pkt, &hdr, *id))
            {
                recorder.on_packet(seq, now);
            }
        }
        if let Some(remb) = t.remb.as_mut() {
            remb.on_packet(len);
        }
        let route = match t.producers_by_ssrc.get(&hdr.ssrc) {
            Some(&route) => route,
            None => {
                let pkt = buf.get(..len).unwrap_or_default();
                match latch_ssrc(&t.producers, producers, pkt, &hdr) {
                    Ok(route) => {
                        t.producers_by_ssrc.insert(hdr.ssrc, route);
                        route
                    }
                    Err(reason) => {
                        // Keep inbound SRTP state only for SSRCs a producer owns: a
                        // stream that goes on after its producer closed (or before one
                        // exists, or that names no encoding) must not hold one of the
                        // context's MAX_SSRCS places. Its packets are dropped anyway, so
                        // losing its replay window protects nothing.
                        if let Some(srtp) = t.srtp_in.as_mut() {
                            srtp.remove_ssrc(hdr.ssrc);
                        }
                        return drop(t, reason);
                    }
                }
            }
        };
        t.rtp_in.add(len);
        rtp_in.add(len);
        let pk = route.producer;
        let p = producers.get_mut(pk)?;
        match p.receive_rtp(now, micros, buf, len, hdr, route.stream()) {
            Ok(packet) => packet.map(|packet| (pk, packet)),
            Err(reason) => drop(t, reason),
        }
    }

    /// A transport's due work (`worker::timers` calls it when its deadline comes):
    /// ICE consent, DTLS retransmissions, RTCP reports, transport-cc feedback, REMB. Each
    /// part checks its own deadline, so running early does nothing.
    pub(crate) fn transport_timeout(
        &mut self,
        now: Instant,
        tk: TransportKey,
        out: &mut SendBatch,
    ) {
        let Some(t) = self.transports.get_mut(tk) else {
            return;
        };
        t.ice.handle_timeout(now);
        let before = t.dtls.state();
        t.dtls.handle_timeout(now);
        if let Some(peer) = t.dtls_peer {
            while let Some(d) = t.dtls.poll_transmit() {
                out.push(peer, &d);
            }
        }
        let after = t.dtls.state();
        let (router, id) = (t.router.clone(), t.id.0.clone());
        let rtcp_due = t.connected && now >= t.next_rtcp;
        if rtcp_due {
            t.next_rtcp = now + RTCP_INTERVAL;
        }
        self.drain_ice_events(now, tk, out);
        if after != before {
            self.on_dtls_state(now, tk, &router, &id, after, out);
        }
        if rtcp_due {
            self.send_reports(now, tk, out);
        }
        // Feedback also goes out from the packet path; the tick covers quiet periods.
        self.send_transport_cc(now, tk, out);
        self.send_remb(now, tk, out);
        self.congestion_control(now, tk, out);
    }

    /// Forgets a transport's demultiplexing entries.
    pub(crate) fn unmap_transport(&mut self, tk: TransportKey) {
        if let Some(t) = self.transports.get(tk) {
            self.by_ufrag.remove(&t.ice.local_credentials().ufrag);
            for a in &t.validated {
                if self.by_addr.get(a) == Some(&tk) {
                    self.by_addr.remove(a);
                }
            }
        }
    }

    /// Registers a new transport's ufrag for STUN demultiplexing.
    pub(crate) fn map_transport(&mut self, tk: TransportKey) {
        if let Some(t) = self.transports.get(tk) {
            self.by_ufrag
                .insert(t.ice.local_credentials().ufrag.clone(), tk);
        }
    }
}

/// Why a received packet failed to unprotect.
pub(crate) fn srtp_drop_reason(e: SrtpError) -> DropReason {
    match e {
        SrtpError::Replayed | SrtpError::TooOld => DropReason::SrtpReplay,
        SrtpError::TooShort | SrtpError::BadHeader => DropReason::Malformed,
        SrtpError::TooManySsrcs => DropReason::SrtpSsrcLimit,
        _ => DropReason::SrtpAuth,
    }
}

/// Why an outgoing packet failed to protect.
pub(crate) fn protect_drop_reason(e: SrtpError) -> DropReason {
    match e {
        SrtpError::TooManySsrcs => DropReason::SrtpSsrcLimit,
        _ => DropReason::ProtectFailed,
    }
}

/// Counts an outgoing packet that was not sent, for the worker and in its transport's
/// `drops` (`transport_drops`).
pub(crate) fn drop_outgoing(
    transport_drops: &mut u64,
    drops: &mut DropCounters,
    reason: DropReason,
) {
    *transport_drops += 1;
    drops.count(reason);
    tracing::trace!(?reason, "outgoing packet dropped");
}

/// Protects `plain` (a compound RTCP packet) with the transport's outbound context and
/// queues it to the selected tuple; nothing before SRTP is ready (there is nobody to
/// send to yet), a counted drop if protection fails.
pub(crate) fn send_rtcp(
    t: &mut WebRtcTransport,
    plain: &mut Vec<u8>,
    out: &mut SendBatch,
    drops: &mut DropCounters,
) {
    let (Some(dest), Some(srtp)) = (t.ice.selected(), t.srtp_out.as_mut()) else {
        return;
    };
    let len = plain.len();
    plain.resize(len + srtp.profile().rtcp_overhead(), 0);
    match srtp.protect_rtcp(plain, len) {
        Ok(n) => {
            out.push(dest, plain.get(..n).unwrap_or_default());
            t.rtcp_out.add(n);
        }
        Err(e) => drop_outgoing(&mut t.drops, drops, protect_drop_reason(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protects the memory per subscriber: a slot of the transports' slab is a
    /// pointer, so the spare capacity its doubling leaves costs pointers, not
    /// transports (each several KB).
    #[test]
    fn transport_slab_slots_are_pointers() {
        fn slot_size<T>(_: fn(&WorkerCore) -> &Slab<T>) -> usize {
            std::mem::size_of::<T>()
        }
        assert!(slot_size(|c| &c.transports) <= 16);
        assert!(std::mem::size_of::<WebRtcTransport>() > 1024);
    }
}
