//! Control requests against the worker core: one arm per [`Method`], each parsing its
//! typed data and answering with its response data. Close cascades are here too, with
//! the rule that every entity closed as a consequence (not the one the request named)
//! gets a notification saying why.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::Rng;
use serde_json::Value;

use crate::batch::SendBatch;
use crate::bwe::{BweConfig, SendSideEstimator};
use crate::channel::params::{
    DtlsFingerprint, DtlsParameters, DtlsRole, IceCandidate, IceParameters, MediaKind,
};
use crate::channel::requests::{
    ConsumerSetPreferredLayers, ConsumerSetPriority, ConsumerSetProducer, RouterCreate,
    TransportConnect, TransportConsume, TransportCreate, TransportProduce, WorkerGetLatency,
};
use crate::channel::{
    parse_data, parse_method, response_data, ControlError, Event, Method, RequestFrame, Response,
};
use crate::dtls::DtlsState;
use crate::ids::{ConsumerId, ProducerId, RouterId, TransportId};
use crate::router::negotiate::{consumer_stream, remap_stream, validate_producer};
use crate::router::{
    ConnId, Consumer, ConsumerKey, ConsumerKind, ConsumerParams, KeyframeNeed, Producer,
    ProducerKey, ProducerParams, Router, SourceMaps, TransportKey,
};
use crate::rtcp::remb::{RembConfig, RembEstimator};
use crate::rtcp::twcc::TwccRecorder;
use crate::transport::{SsrcRoute, WebRtcTransport};
use crate::worker::core::WorkerCore;
use crate::worker::fanout::count_layer_switches;
use sfu_control::responses::{
    ConsumerCreated, ConsumerPriority, IceRole, Load, ProducerCreated, RouterCreated, RouterStats,
    StatsType, TransportCreated, TransportStats, WorkerStats, WorkerTotals,
};

type Result<T> = std::result::Result<T, ControlError>;

/// RFC 6544 section 4.2 local preference of a passive host TCP candidate:
/// 2^13 * direction-pref (4, passive) + other-pref (8191).
const TCP_PASSIVE_LOCAL_PREFERENCE: u32 = (1 << 13) * 4 + 8191;

fn not_found(kind: &'static str, id: &str) -> ControlError {
    ControlError::NotFound {
        kind,
        id: id.chars().take(128).collect(),
    }
}

/// A fresh random id (from the worker's RNG) not used by any entity of this worker.
fn new_id(rng: &mut StdRng, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let id = format!("{:016x}", rng.gen::<u64>());
        if !taken(&id) {
            return id;
        }
    }
}

impl WorkerCore {
    /// Handles one request from control connection `conn`. Notifications it causes are
    /// queued after it (see [`WorkerCore::drain_notifications`]) and datagrams it causes
    /// go to [`WorkerCore::control_out`].
    pub fn handle_request(&mut self, now: Instant, conn: ConnId, req: RequestFrame) -> Response {
        // A request can start or stop any entity's timers (a connect completing DTLS, a
        // producer with REMB, a keyframe request): recompute them at the next timeout.
        self.timers.request_rescan(now);
        let id = req.id;
        match self.dispatch(now, conn, req) {
            Ok(data) => Response::accepted(id, data),
            Err(e) => {
                tracing::debug!(request = id, error = %e, "request refused");
                e.response(Some(id))
            }
        }
    }

    fn dispatch(&mut self, now: Instant, conn: ConnId, req: RequestFrame) -> Result<Value> {
        let method = parse_method(&req.method)?;
        let target = match (&req.target, method.needs_target()) {
            (Some(t), _) => t.clone(),
            (None, false) => String::new(),
            (None, true) => return Err(ControlError::MissingTarget(method.name())),
        };
        self.authorize(conn, method, &target)?;
        let mut out = std::mem::take(&mut self.control_out);
        let result = self.dispatch_method(now, conn, method, &target, req.data, &mut out);
        self.control_out = out;
        result
    }

    fn dispatch_method(
        &mut self,
        now: Instant,
        conn: ConnId,
        method: Method,
        target: &str,
        data: Value,
        out: &mut SendBatch,
    ) -> Result<Value> {
        match method {
            Method::WorkerLoad => Ok(response_data(&self.load())),
            Method::WorkerGetStats => Ok(response_data(&self.worker_stats(now))),
            Method::WorkerGetLatency => {
                let d: WorkerGetLatency = parse_data(data)?;
                let report = self.latency_window.report();
                if d.reset {
                    self.latency_window.reset();
                }
                Ok(response_data(&report))
            }
            Method::RouterCreate => {
                let d: RouterCreate = parse_data(data)?;
                let id = RouterId(new_id(&mut self.rng, |s| {
                    self.routers.contains_key(&RouterId(s.to_owned()))
                }));
                tracing::info!(router = %id, conn, "router created");
                self.routers
                    .insert(id.clone(), Router::new(id.clone(), conn, d.app_data));
                Ok(response_data(&RouterCreated { router_id: id }))
            }
            Method::RouterClose => {
                let rid = self.router_id(target)?;
                self.close_router(now, &rid, out);
                Ok(Value::Null)
            }
            Method::RouterGetStats => {
                let rid = self.router_id(target)?;
                let r = self
                    .routers
                    .get(&rid)
                    .ok_or_else(|| not_found("router", target))?;
                let transports = r
                    .transports
                    .iter()
                    .filter_map(|&k| self.transport_stats(k))
                    .collect();
                Ok(response_data(&RouterStats {
                    kind: StatsType::Router,
                    id: rid,
                    app_data: r.app_data.clone(),
                    transports,
                }))
            }
            Method::TransportCreate => {
                let d: TransportCreate = parse_data(data)?;
                let rid = self.router_id(target)?;
                self.create_transport(now, rid, d.app_data)
            }
            Method::TransportConnect => {
                let tk = self.transport_key(target)?;
                let d: TransportConnect = parse_data(data)?;
                self.connect_transport(now, tk, d.dtls_parameters, out)
            }
            Method::TransportProduce => {
                let tk = self.transport_key(target)?;
                let d: TransportProduce = parse_data(data)?;
                self.produce(tk, d)
            }
            Method::TransportConsume => {
                let tk = self.transport_key(target)?;
                let d: TransportConsume = parse_data(data)?;
                self.consume(now, tk, d, out)
            }
            Method::TransportClose => {
                let tk = self.transport_key(target)?;
                self.close_transport(now, tk, None, out);
                Ok(Value::Null)
            }
            Method::TransportGetStats => {
                let tk = self.transport_key(target)?;
                let stats = self
                    .transport_stats(tk)
                    .ok_or_else(|| not_found("transport", target))?;
                Ok(response_data(&stats))
            }
            Method::ProducerPause | Method::ProducerResume => {
                let pk = self.producer_key(target)?;
                self.set_producer_paused(now, pk, method == Method::ProducerPause, out);
                Ok(Value::Null)
            }
            Method::ProducerClose => {
                let pk = self.producer_key(target)?;
                self.close_producer(pk, None);
                Ok(Value::Null)
            }
            Method::ProducerGetStats => {
                let pk = self.producer_key(target)?;
                let p = self
                    .producers
                    .get(pk)
                    .ok_or_else(|| not_found("producer", target))?;
                Ok(response_data(&p.stats(now)))
            }
            Method::ConsumerPause | Method::ConsumerResume => {
                let ck = self.consumer_key(target)?;
                self.set_consumer_paused(now, ck, method == Method::ConsumerPause, out);
                Ok(Value::Null)
            }
            Method::ConsumerClose => {
                let ck = self.consumer_key(target)?;
                self.close_consumer(ck, None);
                Ok(Value::Null)
            }
            Method::ConsumerGetStats => {
                let ck = self.consumer_key(target)?;
                let c = self
                    .consumers
                    .get(ck)
                    .ok_or_else(|| not_found("consumer", target))?;
                Ok(response_data(&c.stats()))
            }
            Method::ConsumerRequestKeyFrame => {
                let ck = self.consumer_key(target)?;
                if let Some(c) = self.consumers.get(ck) {
                    let (pk, layer) = (c.producer(), c.keyframe_layer());
                    if let Some(pk) = pk {
                        self.request_keyframe(now, pk, layer, KeyframeNeed::Repair, out);
                    }
                }
                Ok(Value::Null)
            }
            Method::ConsumerSetPreferredLayers => {
                let ck = self.consumer_key(target)?;
                let d: ConsumerSetPreferredLayers = parse_data(data)?;
                let c = self
                    .consumers
                    .get_mut(ck)
                    .ok_or_else(|| not_found("consumer", target))?;
                let Some(layers) = c.set_preferred_layers(d.spatial_layer, d.temporal_layer) else {
                    return Err(ControlError::InvalidState(
                        "a simple consumer has one layer: consumer.setPreferredLayers applies to simulcast consumers".into(),
                    ));
                };
                self.follow_consumer(now, ck, out);
                Ok(response_data(&layers))
            }
            Method::ConsumerSetPriority => {
                let ck = self.consumer_key(target)?;
                let d: ConsumerSetPriority = parse_data(data)?;
                if d.priority == 0 {
                    return Err(ControlError::InvalidData {
                        method: "consumer.setPriority",
                        reason: "priority must be 1-255".into(),
                    });
                }
                let c = self
                    .consumers
                    .get_mut(ck)
                    .ok_or_else(|| not_found("consumer", target))?;
                c.set_priority(d.priority);
                Ok(response_data(&ConsumerPriority {
                    priority: c.priority(),
                }))
            }
            Method::ConsumerSetProducer => {
                let ck = self.consumer_key(target)?;
                let d: ConsumerSetProducer = parse_data(data)?;
                self.set_consumer_producer(now, ck, &d.producer_id, out)?;
                Ok(Value::Null)
            }
            Method::RouterCreateActiveSpeakerObserver
            | Method::RtpObserverAddProducer
            | Method::RtpObserverRemoveProducer
            | Method::RtpObserverPause
            | Method::RtpObserverResume
            | Method::RtpObserverClose => self.rtp_observer_request(now, method, target, data),
        }
    }

    fn router_id(&self, target: &str) -> Result<RouterId> {
        let id = RouterId(target.to_owned());
        if self.routers.contains_key(&id) {
            Ok(id)
        } else {
            Err(not_found("router", target))
        }
    }

    fn transport_key(&self, target: &str) -> Result<TransportKey> {
        self.transport_ids
            .get(&TransportId(target.to_owned()))
            .copied()
            .ok_or_else(|| not_found("transport", target))
    }

    fn producer_key(&self, target: &str) -> Result<ProducerKey> {
        self.producer_ids
            .get(&ProducerId(target.to_owned()))
            .copied()
            .ok_or_else(|| not_found("producer", target))
    }

    fn consumer_key(&self, target: &str) -> Result<ConsumerKey> {
        self.consumer_ids
            .get(&ConsumerId(target.to_owned()))
            .copied()
            .ok_or_else(|| not_found("consumer", target))
    }

    /// `worker.load`: what placement needs to pick the least-loaded worker.
    pub fn load(&self) -> Load {
        Load {
            worker: self.cfg.index,
            workers: self.cfg.workers,
            routers: self.routers.len(),
            transports: self.transports.len(),
            producers: self.producers.len(),
            consumers: self.consumers.len(),
            // Forwarded streams dominate the cost of a core: one per consumer, plus
            // the decryption of each producer's stream.
            load: (self.consumers.len() + self.producers.len()) as u64,
        }
    }

    /// `worker.getStats` as answered at `now`.
    pub fn worker_stats(&self, now: Instant) -> WorkerStats {
        WorkerStats {
            kind: StatsType::Worker,
            worker: self.cfg.index,
            listen: self.cfg.local.to_string(),
            rtp_packets_received: self.rtp_in.packets,
            rtp_bytes_received: self.rtp_in.bytes,
            rtp_packets_sent: self.rtp_out.packets,
            rtp_bytes_sent: self.rtp_out.bytes,
            dropped: self.drops.counts(),
            dropped_total: self.drops.total(),
            load: self.load(),
            forwarding_latency: self.latency.report(),
            totals: WorkerTotals {
                retransmissions_over_budget: self.totals.retransmissions_over_budget
                    + self
                        .transports
                        .iter()
                        .map(|(_, t)| t.cc.rtx_budget.denied())
                        .sum::<u64>(),
                red_packets_unwrapped: self.totals.red_packets_unwrapped
                    + self
                        .consumers
                        .iter()
                        .map(|(_, c)| c.red_unwrapped())
                        .sum::<u64>(),
                consumers_limited_by_bandwidth: self
                    .consumers
                    .iter()
                    .filter(|(_, c)| c.limited_by_bandwidth())
                    .count() as u64,
                ..self.totals
            },
            // Loss as the publishers' streams show it now (current producers only).
            packets_lost: self.producers.iter().map(|(_, p)| p.packets_lost()).sum(),
            packet_loop: self.liveness.report(now),
        }
    }

    /// The candidates of every transport of this worker: per announced address (the
    /// first preferred, RFC 8445 5.1.2.1 local preferences counting down), the UDP
    /// socket and, with ICE-TCP, the TCP listener as a passive candidate below every UDP
    /// one (RFC 6544 4.2), so a peer that reaches UDP uses it.
    fn candidates(&self) -> Vec<IceCandidate> {
        let udp_port = self.cfg.announced.port();
        let mut candidates = Vec::new();
        for (i, ip) in self.cfg.announced_ips().enumerate() {
            // At most 8 addresses (config): the subtraction cannot underflow.
            let step = i as u32;
            let suffix = if i == 0 { String::new() } else { i.to_string() };
            candidates.push(IceCandidate {
                foundation: format!("udpcandidate{suffix}"),
                // Type preference 126 (host), local preference 65535 for the first.
                priority: (126 << 24) | ((65535 - step) << 8) | 255,
                ip: ip.to_string(),
                address: ip.to_string(),
                protocol: "udp".into(),
                port: udp_port,
                kind: "host".into(),
                tcp_type: None,
            });
            if let Some(port) = self.cfg.tcp_port {
                candidates.push(IceCandidate {
                    foundation: format!("tcpcandidate{suffix}"),
                    priority: (126 << 24) | ((TCP_PASSIVE_LOCAL_PREFERENCE - step) << 8) | 255,
                    ip: ip.to_string(),
                    address: ip.to_string(),
                    protocol: "tcp".into(),
                    port,
                    kind: "host".into(),
                    tcp_type: Some("passive".into()),
                });
            }
        }
        // UDP first: signaling puts the first candidate's address and port on m-lines.
        candidates.sort_by_key(|c| std::cmp::Reverse(c.priority));
        candidates
    }

    /// A transport's `transport.getStats`, its selected tuple as `selected_tuple` tells.
    fn transport_stats(&self, tk: TransportKey) -> Option<TransportStats> {
        let mut stats = self.transports.get(tk)?.stats(self.cfg.announced);
        stats.ice_selected_tuple = self.selected_tuple(tk);
        Some(stats)
    }

    fn create_transport(&mut self, now: Instant, rid: RouterId, app_data: Value) -> Result<Value> {
        let id = TransportId(new_id(&mut self.rng, |s| {
            self.transport_ids.contains_key(&TransportId(s.to_owned()))
        }));
        let t = WebRtcTransport::new(
            id.clone(),
            rid.clone(),
            &self.identity,
            now,
            app_data,
            &mut self.rng,
        );
        let creds = t.ice.local_credentials().clone();
        let tk = self.transports.insert(Box::new(t));
        self.totals.transports_created += 1;
        self.transport_ids.insert(id.clone(), tk);
        self.map_transport(tk);
        if let Some(r) = self.routers.get_mut(&rid) {
            r.transports.push(tk);
        }
        let candidates = self.candidates();
        tracing::info!(transport = %id, router = %rid, "transport created");
        Ok(response_data(&TransportCreated {
            transport_id: id,
            ice_role: IceRole::Controlled,
            ice_parameters: IceParameters {
                username_fragment: creds.ufrag,
                password: creds.pwd,
                ice_lite: true,
            },
            ice_candidates: candidates,
            ice_state: sfu_control::params::IceState::New,
            dtls_parameters: DtlsParameters {
                role: DtlsRole::Auto,
                fingerprints: vec![DtlsFingerprint {
                    algorithm: "sha-256".into(),
                    value: self.identity.fingerprint_sha256().to_owned(),
                }],
            },
            dtls_state: DtlsState::New,
        }))
    }

    fn connect_transport(
        &mut self,
        now: Instant,
        tk: TransportKey,
        params: DtlsParameters,
        out: &mut SendBatch,
    ) -> Result<Value> {
        if params.role == DtlsRole::Server {
            return Err(ControlError::Unsupported(
                "the daemon is ICE-lite and always the DTLS server: the remote role must be client or auto".into(),
            ));
        }
        if params.fingerprints.is_empty() {
            return Err(ControlError::InvalidData {
                method: "transport.connect",
                reason: "dtlsParameters.fingerprints is empty".into(),
            });
        }
        let t = self
            .transports
            .get_mut(tk)
            .ok_or_else(|| not_found("transport", ""))?;
        if t.dtls_connect_called {
            return Err(ControlError::InvalidState(
                "transport.connect was already called".into(),
            ));
        }
        t.dtls_connect_called = true;
        let (router, id) = (t.router.clone(), t.id.0.clone());
        if let Some(state) = t.connect(params.fingerprints) {
            self.on_dtls_state(now, tk, &router, &id, state, out);
        }
        Ok(Value::Null)
    }

    fn produce(&mut self, tk: TransportKey, d: TransportProduce) -> Result<Value> {
        let stream = validate_producer(d.kind, &d.rtp_parameters)?;
        let t = self
            .transports
            .get(tk)
            .ok_or_else(|| not_found("transport", ""))?;
        for ssrc in stream.signalled_ssrcs() {
            if t.producers_by_ssrc.contains_key(&ssrc) {
                return Err(ControlError::InvalidData {
                    method: "transport.produce",
                    reason: format!("ssrc {ssrc} is already used by a producer of this transport"),
                });
            }
        }
        let router = t.router.clone();
        let id = ProducerId(new_id(&mut self.rng, |s| {
            self.producer_ids.contains_key(&ProducerId(s.to_owned()))
        }));
        let twcc_id = stream.twcc_id;
        let remb = stream.remb;
        let routes: Vec<(u32, u8, bool)> = stream
            .encodings
            .iter()
            .enumerate()
            .flat_map(|(layer, e)| {
                let layer = layer as u8;
                let media = e.ssrc.map(|s| (s, layer, false));
                media
                    .into_iter()
                    .chain(e.rtx_ssrc.map(|s| (s, layer, true)))
            })
            .collect();
        let (layers, mid) = (stream.encodings.len(), d.rtp_parameters.mid.clone());
        let pk = self.producers.insert(Producer::new(ProducerParams {
            id: id.clone(),
            router: router.clone(),
            transport: tk,
            kind: d.kind,
            rtp_parameters: d.rtp_parameters,
            stream,
            paused: d.paused,
            app_data: d.app_data,
        }));
        self.producer_ids.insert(id.clone(), pk);
        if let Some(t) = self.transports.get_mut(tk) {
            // Bandwidth feedback toward the publisher: transport-cc when it sends
            // transport-wide sequence numbers, else REMB when it accepts that.
            match (twcc_id, &t.twcc_in) {
                (Some(id), None) => t.twcc_in = Some((id, TwccRecorder::new())),
                (None, None) if remb && t.remb.is_none() => {
                    t.remb = Some(RembEstimator::new(RembConfig::default()));
                }
                _ => {}
            }
            t.producers.push(pk);
            for (ssrc, layer, rtx) in routes {
                let route = SsrcRoute {
                    producer: pk,
                    layer,
                    rtx,
                };
                t.producers_by_ssrc.insert(ssrc, route);
            }
        }
        tracing::info!(producer = %id, router = %router, kind = ?d.kind, layers, ?mid, "producer created");
        Ok(response_data(&ProducerCreated { producer_id: id }))
    }

    fn consume(
        &mut self,
        now: Instant,
        tk: TransportKey,
        d: TransportConsume,
        out: &mut SendBatch,
    ) -> Result<Value> {
        let t = self
            .transports
            .get_mut(tk)
            .ok_or_else(|| not_found("transport", ""))?;
        let pk = *self
            .producer_ids
            .get(&d.producer_id)
            .ok_or_else(|| not_found("producer", &d.producer_id.0))?;
        let p = self
            .producers
            .get(pk)
            .ok_or_else(|| not_found("producer", &d.producer_id.0))?;
        if *p.router() != t.router {
            // A transport consumes only producers of its own router (room isolation).
            return Err(not_found("producer", &d.producer_id.0));
        }
        // Never an SSRC this transport sent before: a closed consumer's SRTP state is
        // gone, and reusing its SSRC under the same keys would reuse keystream.
        let WebRtcTransport {
            consumer_ssrcs,
            producers_by_ssrc,
            ..
        } = &mut **t;
        let taken = |s| producers_by_ssrc.contains_key(&s);
        let (Some(ssrc), Some(rtx_ssrc)) = (consumer_ssrcs.next(taken), consumer_ssrcs.next(taken))
        else {
            return Err(ControlError::InvalidState(
                "this transport has used up its consumer SSRCs".into(),
            ));
        };
        let stream = consumer_stream(
            p.kind(),
            p.rtp_parameters(),
            &d.rtp_capabilities,
            ssrc,
            rtx_ssrc,
            d.mid,
        )?;
        let id = ConsumerId(new_id(&mut self.rng, |s| {
            self.consumer_ids.contains_key(&ConsumerId(s.to_owned()))
        }));
        let (kind, producer_paused) = (p.kind(), p.paused());
        let twcc = stream.twcc_id.is_some();
        let consumer = Consumer::new(
            ConsumerParams {
                id: id.clone(),
                producer: pk,
                transport: tk,
                media_kind: kind,
                ssrc,
                rtx_ssrc,
                stream,
                paused: d.paused,
                producer_paused,
                producer_vp8: p.keyframes_detectable(),
                spatial_layers: p.spatial_layers(),
                temporal_layers: p.temporal_layers(),
                preferred_layers: d
                    .preferred_layers
                    .map(|l| (l.spatial_layer, l.temporal_layer)),
                follow: d.follow,
                app_data: d.app_data,
            },
            &mut self.rng,
        );
        let consumer_type = consumer.kind().wire();
        // As the consumer made them (a simulcast consumer's scalabilityMode).
        let rtp_parameters = consumer.rtp_parameters().clone();
        let ck = self.consumers.insert(consumer);
        self.consumer_ids.insert(id.clone(), ck);
        if let Some(p) = self.producers.get_mut(pk) {
            p.add_consumer(ck);
            self.topology = self.topology.wrapping_add(1);
        }
        if let Some(t) = self.transports.get_mut(tk) {
            t.consumers.push(ck);
            t.consumers_by_ssrc.insert(ssrc, ck);
            if twcc && t.bwe.is_none() {
                t.bwe = Some(SendSideEstimator::new(BweConfig::default()));
            }
        }
        // Its layers from the transport's allocation at once, so the first keyframe
        // asked for is of the layer it will get.
        self.allocate_for_new_consumer(now, tk, ck, out);
        if !d.paused && !producer_paused && kind == MediaKind::Video {
            // A new subscriber needs a keyframe to start decoding (of the layer it
            // starts with, for a simulcast consumer).
            let layer = self.consumers.get_mut(ck).map_or(0, |c| {
                c.take_keyframe_request()
                    .unwrap_or_else(|| c.keyframe_layer())
            });
            self.request_start_keyframe(now, ck, layer, out);
        }
        tracing::info!(consumer = %id, producer = %d.producer_id, ssrc, "consumer created");
        Ok(response_data(&ConsumerCreated {
            consumer_id: id,
            producer_id: d.producer_id,
            kind,
            consumer_type,
            producer_paused,
            rtp_parameters,
        }))
    }

    /// `consumer.setProducer`: registers the consumer on `producer_id` as the source it
    /// switches to (see [`Consumer::point_at`]) and asks that producer for a keyframe at
    /// once, so a video switch waits no longer than the publisher takes to send one.
    fn set_consumer_producer(
        &mut self,
        now: Instant,
        ck: ConsumerKey,
        producer_id: &ProducerId,
        out: &mut SendBatch,
    ) -> Result<()> {
        let pk = *self
            .producer_ids
            .get(producer_id)
            .ok_or_else(|| not_found("producer", &producer_id.0))?;
        let (Some(c), Some(p)) = (self.consumers.get(ck), self.producers.get(pk)) else {
            return Err(not_found("producer", &producer_id.0));
        };
        let router = self.transports.get(c.transport()).map(|t| &t.router);
        if router != Some(p.router()) {
            // Room isolation, as in transport.consume.
            return Err(not_found("producer", &producer_id.0));
        }
        if p.kind() != c.media_kind() {
            return Err(ControlError::InvalidState(
                "consumer.setProducer needs a producer of the consumer's kind".into(),
            ));
        }
        if c.is_simulcast() || p.spatial_layers() > 1 {
            return Err(ControlError::Unsupported(
                "consumer.setProducer switches simple consumers between single-stream producers"
                    .into(),
            ));
        }
        if c.producer() == Some(pk) {
            // The producer it forwards: a switch under way is called off.
            let cancelled = self
                .consumers
                .get_mut(ck)
                .and_then(Consumer::cancel_pending);
            if let Some(p) = cancelled.and_then(|k| self.producers.get_mut(k)) {
                p.remove_consumer(ck);
                self.topology = self.topology.wrapping_add(1);
            }
            return Ok(());
        }
        let stream = remap_stream(p.kind(), p.rtp_parameters(), c.rtp_parameters())?;
        let maps = SourceMaps {
            producer: pk,
            pt_map: stream.pt_map,
            ext_map: stream.ext_map,
            red_unwrap: stream.red_unwrap,
            keyframe_gated: c.media_kind() == MediaKind::Video && p.keyframes_detectable(),
        };
        let video = c.media_kind() == MediaKind::Video;
        let Some(c) = self.consumers.get_mut(ck) else {
            return Err(not_found("consumer", ""));
        };
        let current = c.producer();
        let before = c.point_at(maps);
        if let Some(old) = before.filter(|b| *b != pk && Some(*b) != current) {
            if let Some(p) = self.producers.get_mut(old) {
                p.remove_consumer(ck);
            }
        }
        if current != Some(pk) && before != Some(pk) {
            if let Some(p) = self.producers.get_mut(pk) {
                p.add_consumer(ck);
            }
        }
        self.topology = self.topology.wrapping_add(1);
        if video {
            self.request_keyframe(now, pk, 0, KeyframeNeed::Start, out);
        }
        Ok(())
    }

    /// Finishes switches consumers made in their egress: drops each one's registration
    /// on the producer it left and notifies `producerchange`.
    pub(crate) fn finish_producer_switches(&mut self, switched: &mut Vec<ConsumerKey>) {
        for ck in switched.drain(..) {
            let Some(c) = self.consumers.get_mut(ck) else {
                continue;
            };
            let Some(left) = c.take_switch() else {
                continue;
            };
            let (now_from, tk, id) = (c.producer(), c.transport(), c.id().0.clone());
            if let Some(p) = left.and_then(|k| self.producers.get_mut(k)) {
                p.remove_consumer(ck);
            }
            self.topology = self.topology.wrapping_add(1);
            let producer_id = now_from
                .and_then(|k| self.producers.get(k))
                .map(|p| p.id().clone());
            let router = self.transports.get(tk).map(|t| t.router.clone());
            if let (Some(producer_id), Some(router)) = (producer_id, router) {
                self.notify(&router, &id, Event::ProducerChange { producer_id });
            }
        }
    }

    fn set_producer_paused(
        &mut self,
        now: Instant,
        pk: ProducerKey,
        paused: bool,
        out: &mut SendBatch,
    ) {
        let Some(p) = self.producers.get_mut(pk) else {
            return;
        };
        if !p.set_paused(paused) {
            return;
        }
        let (router, consumers) = (p.router().clone(), p.consumers().to_vec());
        let event = if paused {
            Event::ProducerPause
        } else {
            Event::ProducerResume
        };
        let mut wanted = 0u8;
        for ck in consumers {
            // Not one only waiting to switch to this producer.
            let Some(c) = self
                .consumers
                .get_mut(ck)
                .filter(|c| c.producer() == Some(pk))
            else {
                continue;
            };
            c.set_producer_paused(paused);
            let id = c.id().0.clone();
            self.notify(&router, &id, event.clone());
            // A simulcast consumer waits for its own layer's keyframe on resume.
            // (Producers have at most 4 encodings: the mask holds them.)
            if let Some(layer) = self.consumer_changed(ck).filter(|l| *l < 8) {
                wanted |= 1 << layer;
            }
        }
        if !paused {
            // The lowest encoding's, and each one a consumer waits for: each once (a
            // second request inside the throttle would be deferred and answered again).
            wanted |= 1;
            for layer in 0..8u8 {
                if wanted & (1 << layer) != 0 {
                    self.request_keyframe(now, pk, layer, KeyframeNeed::Start, out);
                }
            }
        }
    }

    fn set_consumer_paused(
        &mut self,
        now: Instant,
        ck: ConsumerKey,
        paused: bool,
        out: &mut SendBatch,
    ) {
        let Some(c) = self.consumers.get_mut(ck) else {
            return;
        };
        if !c.set_paused(paused) {
            return;
        }
        if c.is_simulcast() {
            // Its keyframe request (resumed) and `layerschange` (paused: null).
            self.follow_consumer(now, ck, out);
            return;
        }
        // Resumed (from a keyframe, see `Consumer::set_paused`): get the subscriber one.
        if !paused && c.media_kind() == MediaKind::Video && !c.producer_paused() {
            self.request_start_keyframe(now, ck, 0, out);
        }
    }

    /// Does what a change to a simulcast consumer (its preferred or allocated layers,
    /// a pause or resume) asks of the core: a keyframe of the encoding it now waits for,
    /// while it forwards, and a `layerschange` notification when its forwarded layers
    /// changed.
    pub(crate) fn follow_consumer(&mut self, now: Instant, ck: ConsumerKey, out: &mut SendBatch) {
        let Some(c) = self.consumers.get(ck) else {
            return;
        };
        // One that forwards nothing yet starts (early); one that forwards switches.
        let (Some(pk), starts) = (c.producer(), forwards_nothing(c)) else {
            return;
        };
        match self.consumer_changed(ck) {
            Some(layer) if starts => self.request_start_keyframe(now, ck, layer, out),
            Some(layer) => self.request_keyframe(now, pk, layer, KeyframeNeed::Repair, out),
            None => {}
        }
    }

    /// Notifies a consumer's `layerschange` if its forwarded layers changed, and returns
    /// the encoding it wants a keyframe of (while it forwards), for the caller to ask.
    fn consumer_changed(&mut self, ck: ConsumerKey) -> Option<u8> {
        let c = self.consumers.get_mut(ck)?;
        let keyframe = c.take_keyframe_request().filter(|_| c.active());
        if let Some(layers) = c.take_layers_change() {
            count_layer_switches(&mut self.totals, c);
            let (id, tk) = (c.id().0.clone(), c.transport());
            if let Some(router) = self.transports.get(tk).map(|t| t.router.clone()) {
                self.notify(&router, &id, Event::LayersChange(layers));
            }
        }
        keyframe
    }

    /// Closes a consumer; `reason` is the event notified for it when the close was not
    /// requested for this consumer itself.
    pub(crate) fn close_consumer(&mut self, ck: ConsumerKey, reason: Option<Event>) {
        if !self.consumers.contains(ck) {
            return;
        }
        let c = self.consumers.remove(ck);
        // Its unwrapped RED packets stay in the worker's total (live consumers' are
        // added when the stats are asked for).
        self.totals.red_packets_unwrapped += c.red_unwrapped();
        self.consumer_ids.remove(c.id());
        let mut router = None;
        for pk in c.producer().into_iter().chain(c.pending_producer()) {
            if let Some(p) = self.producers.get_mut(pk) {
                p.remove_consumer(ck);
                self.topology = self.topology.wrapping_add(1);
                router = Some(p.router().clone());
            }
        }
        if let Some(t) = self.transports.get_mut(c.transport()) {
            t.consumers.retain(|k| *k != ck);
            t.consumers_by_ssrc.remove(&c.ssrc());
            // Its streams' SRTP/SRTCP state: kept, it would fill the context's SSRC cap
            // and silence the transport after MAX_SSRCS consumers.
            if let Some(srtp) = t.srtp_out.as_mut() {
                for ssrc in c.ssrcs() {
                    srtp.remove_ssrc(ssrc);
                }
            }
            router = Some(t.router.clone());
        }
        if let (Some(event), Some(router)) = (reason, router) {
            self.notify(&router, &c.id().0, event);
        }
        tracing::info!(consumer = %c.id(), "consumer closed");
    }

    /// Closes a producer and, with a `producerclose` notification each, its consumers.
    pub(crate) fn close_producer(&mut self, pk: ProducerKey, reason: Option<Event>) {
        if !self.producers.contains(pk) {
            return;
        }
        let p = self.producers.remove(pk);
        self.producer_ids.remove(p.id());
        self.unobserve_producer(pk, p.router());
        for ck in p.consumers() {
            // A following consumer (or one only waiting to switch to it) outlives it.
            if let Some(c) = self.consumers.get_mut(*ck) {
                if c.on_producer_closed(pk) {
                    self.topology = self.topology.wrapping_add(1);
                    continue;
                }
            }
            self.close_consumer(*ck, Some(Event::ProducerClose));
        }
        if let Some(t) = self.transports.get_mut(p.transport()) {
            t.producers.retain(|k| *k != pk);
            t.producers_by_ssrc.retain(|_, r| r.producer != pk);
            // Likewise the inbound state of its streams (signalled or learnt), so that a
            // publisher that republishes again and again never fills the inbound
            // context's cap.
            if let Some(srtp) = t.srtp_in.as_mut() {
                for ssrc in p.ssrcs() {
                    srtp.remove_ssrc(ssrc);
                }
            }
        }
        if let Some(event) = reason {
            self.notify(p.router(), &p.id().0, event);
        }
        tracing::info!(producer = %p.id(), "producer closed");
    }

    /// Closes a transport with its producers and consumers (each notified with
    /// `transportclose`); the transport itself is notified with `reason` if given.
    pub(crate) fn close_transport(
        &mut self,
        now: Instant,
        tk: TransportKey,
        reason: Option<Event>,
        out: &mut SendBatch,
    ) {
        let Some(t) = self.transports.get(tk) else {
            return;
        };
        let (producers, consumers) = (t.producers.clone(), t.consumers.clone());
        for ck in consumers {
            self.close_consumer(ck, Some(Event::TransportClose));
        }
        for pk in producers {
            self.close_producer(pk, Some(Event::TransportClose));
        }
        self.unmap_transport(tk);
        let mut t = self.transports.remove(tk);
        // Its refused retransmissions stay in the worker's total (live transports' are
        // added when the stats are asked for).
        self.totals.retransmissions_over_budget += t.cc.rtx_budget.denied();
        self.transport_ids.remove(&t.id);
        if let Some(dest) = t.ice.selected() {
            // Tell the peer (close_notify) so it does not wait for consent to fail.
            t.dtls.close(now);
            while let Some(d) = t.dtls.poll_transmit() {
                out.push(dest, &d);
            }
        }
        if let Some(r) = self.routers.get_mut(&t.router) {
            r.transports.retain(|k| *k != tk);
        }
        if let Some(event) = reason {
            self.notify(&t.router, &t.id.0, event);
        }
        tracing::info!(transport = %t.id, "transport closed");
    }

    /// Closes a router and everything in it (transports notified with `routerclose`).
    pub(crate) fn close_router(&mut self, now: Instant, rid: &RouterId, out: &mut SendBatch) {
        let Some(r) = self.routers.get(rid) else {
            return;
        };
        for tk in r.transports.clone() {
            self.close_transport(now, tk, Some(Event::RouterClose), out);
        }
        self.close_router_observers(rid);
        self.routers.remove(rid);
        tracing::info!(router = %rid, "router closed");
    }

    /// A control connection went away: close the routers it owned, since nobody can
    /// manage them any more (mediasoup closes a worker whose channel dies likewise).
    pub fn close_connection(&mut self, now: Instant, conn: ConnId) {
        let owned: Vec<RouterId> = self
            .routers
            .values()
            .filter(|r| r.owner == conn)
            .map(|r| r.id.clone())
            .collect();
        let mut out = std::mem::take(&mut self.control_out);
        for rid in owned {
            self.close_router(now, &rid, &mut out);
        }
        self.control_out = out;
        self.retain_notifications(|c| c != conn);
        self.forget_connection(conn);
    }

    /// Graceful stop: closes every router, telling its owner (`workerclose`) and cascading
    /// to transports, producers and consumers with their notifications, and sending DTLS
    /// close_notify to every connected peer (into [`WorkerCore::control_out`]).
    pub fn shutdown(&mut self, now: Instant) {
        let routers: Vec<RouterId> = self.routers.keys().cloned().collect();
        let mut out = std::mem::take(&mut self.control_out);
        for rid in routers {
            self.notify(&rid, &rid.0, Event::WorkerClose);
            self.close_router(now, &rid, &mut out);
        }
        self.control_out = out;
    }

    /// Whether DTLS is up for a transport (tests and stats).
    pub fn transport_dtls_state(&self, id: &str) -> Option<DtlsState> {
        let tk = self.transport_ids.get(&TransportId(id.to_owned()))?;
        self.transports.get(*tk).map(|t| t.dtls.state())
    }
}

/// Whether a consumer forwards nothing yet (a simulcast consumer before its first
/// keyframe or after a pause; a simple one is asked only when it starts).
fn forwards_nothing(c: &Consumer) -> bool {
    match c.kind() {
        ConsumerKind::Simple(_) => true,
        ConsumerKind::Simulcast(s) => s.current().is_none(),
    }
}
