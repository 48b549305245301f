//! Deterministic simulation of a worker core with real remote peers, in virtual time (in
//! the style of quinn-proto's test `Pair` and str0m's `TestRtc`).
//!
//! A [`Sim`] holds one [`WorkerCore`](crate::worker::core::WorkerCore) (through the
//! adapter in `core`, driven exactly as the glommio shell drives it), any number of str0m
//! peers (`peer`: independent sans-IO WebRTC implementations acting as publishers and
//! subscribers), and the in-memory network between them (`net`: per-link delay, jitter,
//! loss, reordering and bandwidth cap from one seeded RNG). Nothing reads a clock: the
//! loop always moves virtual time to the earliest deadline of any party or datagram in
//! flight, so seconds of a call run in milliseconds and a seed replays the same run.
//!
//! Every datagram's fate and every media event lands in a [`Trace`]; `scenarios` checks
//! that two runs of one seed give equal traces. `call` sets up the usual publisher and
//! subscribers through the control protocol, as signaling would.

mod call;
mod core;
mod net;
mod peer;
mod trace;

mod allocation_tests;
mod churn_tests;
mod fanout_tests;
mod follow_tests;
mod handshake_tests;
mod keyframe_tests;
mod layers_tests;
mod red_tests;
mod repair_tests;
mod scenarios;
mod simulcast;
mod simulcast_consumer_tests;
mod simulcast_tests;
mod speaker_tests;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use serde_json::Value;
use sfu_control::requests::{RouterCreate, TransportConnect, TransportCreate};
use sfu_control::{Refusal, Request};

use crate::demux::{classify, PacketClass};

pub(crate) use self::call::{Call, CallConfig};
use self::core::SimCore;
pub(crate) use self::net::Link;
use self::net::{Datagram, Fate, Net};
pub(crate) use self::peer::{indexed, SimPeer};
use self::trace::Dropped;
pub(crate) use self::trace::{FeedbackKind, Record, Trace};

/// Datagrams the core takes per receive batch (the shell's `RECV_BATCH`).
const RECV_BATCH: usize = 32;
/// The fan-out limit between sends when no test asks for another (the shell's
/// `SEND_FLUSH`).
const SEND_FLUSH: usize = 1024;

/// Where the core listens.
const CORE_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100)), 40_000);

/// A peer of the simulation (its index, in the order peers were added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PeerId(usize);

/// One simulated worker core, its peers and the network between them.
pub(crate) struct Sim {
    start: Instant,
    now: Instant,
    net: Net,
    core: SimCore,
    peers: Vec<SimPeer>,
    trace: Trace,
    /// Trace names of addresses.
    names: HashMap<SocketAddr, String>,
    /// Trace names of the ids the core handed out.
    labels: HashMap<String, String>,
    /// The next fan-out stops after one step of this limit and hands control back.
    park: Option<usize>,
    /// (destination, length) of what the last fan-out step queued.
    last_step: Vec<(SocketAddr, usize)>,
}

impl Sim {
    /// An empty simulation whose network and core draw from `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        let start = Instant::now();
        let mut names = HashMap::new();
        names.insert(CORE_ADDR, "sfu".to_owned());
        Self {
            start,
            now: start,
            net: Net::new(seed),
            core: SimCore::new(start, CORE_ADDR, seed),
            peers: Vec::new(),
            trace: Trace::default(),
            names,
            labels: HashMap::new(),
            park: None,
            last_step: Vec::new(),
        }
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    /// Virtual time since the start (the trace's clock).
    pub(crate) fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    pub(crate) fn trace(&self) -> &Trace {
        &self.trace
    }

    pub(crate) fn peer(&mut self, id: PeerId) -> &mut SimPeer {
        &mut self.peers[id.0]
    }

    /// Adds a str0m peer named `name` (`configure` adjusts its configuration).
    pub(crate) fn add_peer(
        &mut self,
        name: &str,
        configure: impl FnOnce(str0m::RtcConfig) -> str0m::RtcConfig,
    ) -> PeerId {
        let id = PeerId(self.peers.len());
        let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 1, id.0 as u8 + 1)), 5000);
        self.peers
            .push(SimPeer::new(name, addr, self.now, configure));
        self.names.insert(addr, name.to_owned());
        id
    }

    /// The link from the core to peer `id` (its downlink).
    pub(crate) fn set_downlink(&mut self, id: PeerId, link: Link) {
        let addr = self.peers[id.0].addr;
        self.net.set_link(CORE_ADDR, addr, link);
    }

    /// The link from peer `id` to the core (its uplink).
    pub(crate) fn set_uplink(&mut self, id: PeerId, link: Link) {
        let addr = self.peers[id.0].addr;
        self.net.set_link(addr, CORE_ADDR, link);
    }

    /// Loses the core's DTLS datagrams to peer `id` whose index (from 0) is in `which`.
    pub(crate) fn lose_dtls_down(&mut self, id: PeerId, which: std::ops::Range<u32>) {
        let addr = self.peers[id.0].addr;
        self.net.lose_dtls(CORE_ADDR, addr, which);
    }

    pub(crate) fn downlink(&self, id: PeerId) -> Link {
        self.net.link(CORE_ADDR, self.peers[id.0].addr)
    }

    /// Names the entity `id` in the trace (notifications and requests name it so).
    pub(crate) fn label(&mut self, id: &str, label: &str) {
        self.labels.insert(id.to_owned(), label.to_owned());
    }

    fn label_of(&self, id: &str) -> String {
        self.labels
            .get(id)
            .cloned()
            .unwrap_or_else(|| "unnamed".to_owned())
    }

    // ---- control ----------------------------------------------------------------------

    /// A control request at the current time: its typed response, or the refusal.
    pub(crate) fn request<R: Request>(&mut self, request: &R) -> Result<R::Response, Refusal> {
        let target = request
            .target()
            .map_or_else(String::new, |t| self.label_of(t));
        let result = self.core.request(self.now, request);
        let record = Record::Request {
            method: R::METHOD.name().to_owned(),
            target,
            accepted: result.is_ok(),
        };
        self.record(record);
        self.flush_core();
        result
    }

    /// A control request that must succeed.
    #[track_caller]
    pub(crate) fn ok<R: Request>(&mut self, request: &R) -> R::Response {
        self.request(request)
            .unwrap_or_else(|e| panic!("{} refused: {e}", R::METHOD))
    }

    pub(crate) fn create_router(&mut self) -> String {
        let id = self.ok(&RouterCreate::default()).router_id.0;
        self.label(&id, "router");
        id
    }

    /// Creates a transport for peer `id` on `router`, points the peer at it and connects
    /// it with the peer's fingerprint (as signaling does); returns the transport id.
    pub(crate) fn connect(&mut self, id: PeerId, router: &str) -> String {
        let t = self.ok(&TransportCreate {
            router_id: router.into(),
            app_data: Value::Null,
        });
        let label = format!("{}-transport", self.peers[id.0].name);
        let tid = t.transport_id.0.clone();
        self.label(&tid, &label);
        self.peers[id.0].connect_to(&t, CORE_ADDR);
        let dtls_parameters = self.peers[id.0].dtls_parameters();
        self.ok(&TransportConnect {
            transport_id: t.transport_id,
            dtls_parameters,
        });
        tid
    }

    /// Runs until every peer in `ids` is connected (ICE and DTLS), at most `limit`.
    #[track_caller]
    pub(crate) fn run_until_connected(&mut self, ids: &[PeerId], limit: Duration) {
        let deadline = self.now + limit;
        while !ids.iter().all(|i| self.peers[i.0].connected) {
            assert!(
                self.now < deadline,
                "peers did not connect within {limit:?}"
            );
            let step = (self.now + Duration::from_millis(5)).min(deadline);
            self.run_until(step);
        }
    }

    // ---- the loop ---------------------------------------------------------------------

    /// The earliest deadline of any party or datagram in flight, if any.
    fn next_event(&self) -> Option<Instant> {
        let peers = self.peers.iter().map(SimPeer::deadline);
        let next = [self.core.deadline(), self.net.next_arrival()]
            .into_iter()
            .flatten()
            .chain(peers)
            .min();
        next.map(|n| n.max(self.now))
    }

    /// Runs every event up to and including `until`, then sets the clock to `until`.
    /// Returns early, true, when a fan-out parks (see [`Self::park_next_fan_out`]).
    pub(crate) fn run_until(&mut self, until: Instant) -> bool {
        // A test may have written media since: its datagrams leave now.
        self.poll_peers();
        if self.core.fan_out_pending() {
            // The shell's packet loop finishes a batch before it receives again.
            while !self.fan_out_step(SEND_FLUSH) {}
        }
        loop {
            // With nothing scheduled, time simply runs to the caller's target.
            let next = match self.next_event() {
                Some(next) if next <= until => next,
                _ => {
                    self.now = self.now.max(until);
                    return false;
                }
            };
            self.now = next;
            if self.step() {
                return true;
            }
        }
    }

    /// Runs for `d` of virtual time.
    pub(crate) fn run_for(&mut self, d: Duration) -> bool {
        let until = self.now + d;
        self.run_until(until)
    }

    /// Everything due at `self.now`: arrivals (the core's in receive batches), then
    /// timers, then every peer's output. True when a fan-out parked.
    fn step(&mut self) -> bool {
        let now = self.now;
        let mut core_batch = Vec::new();
        while let Some((_, d)) = self.net.pop_due(now) {
            self.record_datagram(&d, None);
            if d.to == CORE_ADDR {
                core_batch.push((d.from, d.bytes));
                if core_batch.len() == RECV_BATCH
                    && self.core_batch(std::mem::take(&mut core_batch))
                {
                    return true;
                }
            } else if let Some(p) = self.peers.iter_mut().find(|p| p.addr == d.to) {
                p.receive(now, d.from, &d.bytes);
                self.poll_peers();
            }
        }
        if !core_batch.is_empty() && self.core_batch(core_batch) {
            return true;
        }
        if self.core.deadline().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
            self.flush_core();
        }
        for p in &mut self.peers {
            if p.deadline() <= now {
                p.handle_timeout(now);
            }
        }
        self.poll_peers();
        false
    }

    /// One receive batch through the core as the shell's packet loop does it: every
    /// datagram, the replies sent, then the fan-out in steps. True when it parked.
    fn core_batch(&mut self, batch: Vec<(SocketAddr, Vec<u8>)>) -> bool {
        self.core.receive(self.now, batch);
        self.send_core_output();
        if let Some(limit) = self.park.take() {
            self.fan_out_step(limit);
            return true;
        }
        while !self.fan_out_step(SEND_FLUSH) {}
        false
    }

    /// Makes the next receive batch's fan-out stop after one step of `limit` and
    /// [`Self::run_until`] return, so a test can act while it is pending (as control
    /// requests and timers do while the shell's flush waits for the socket).
    pub(crate) fn park_next_fan_out(&mut self, limit: usize) {
        self.park = Some(limit);
    }

    /// Whether a receive batch's fan-out is pending.
    pub(crate) fn fan_out_pending(&self) -> bool {
        self.core.fan_out_pending()
    }

    /// One `fan_out` step of `limit` over the pending batch, its datagrams sent;
    /// whether the batch is done. What it queued is in [`Self::last_step`].
    pub(crate) fn fan_out_step(&mut self, limit: usize) -> bool {
        let done = self.core.fan_out(self.now, limit);
        self.last_step.clear();
        self.flush_core_recording_step();
        done
    }

    /// (destination peer, length) of each datagram the last fan-out step queued.
    pub(crate) fn last_step(&self) -> Vec<(String, usize)> {
        self.last_step
            .iter()
            .map(|(d, n)| (self.names.get(d).cloned().unwrap_or_default(), *n))
            .collect()
    }

    fn flush_core_recording_step(&mut self) {
        let sent = self.core.take_transmits();
        self.last_step
            .extend(sent.iter().map(|(d, b)| (*d, b.len())));
        self.send_from_core(sent);
        self.take_notifications();
    }

    /// What the shell does after each unit of work: datagrams out, notifications to
    /// their connection.
    fn flush_core(&mut self) {
        self.send_core_output();
        self.take_notifications();
    }

    fn send_core_output(&mut self) {
        let sent = self.core.take_transmits();
        self.send_from_core(sent);
    }

    fn send_from_core(&mut self, sent: Vec<(SocketAddr, Vec<u8>)>) {
        for (to, bytes) in sent {
            self.send(Datagram {
                from: CORE_ADDR,
                to,
                bytes,
            });
        }
    }

    fn take_notifications(&mut self) {
        for n in self.core.take_notifications() {
            let target = self.label_of(&n.target);
            // A notification about a producer (`dominantspeaker`) names it too.
            let event = match n.data.get("producerId").and_then(Value::as_str) {
                Some(producer) => format!("{} {}", n.event, self.label_of(producer)),
                None => n.event,
            };
            self.record(Record::Notification { target, event });
        }
    }

    /// Drains every peer's output into the network and the trace.
    fn poll_peers(&mut self) {
        let mut transmits = Vec::new();
        let mut records = Vec::new();
        for p in &mut self.peers {
            p.poll(&mut transmits, &mut records);
        }
        for r in records {
            self.record(r);
        }
        for (from, to, bytes) in transmits {
            self.send(Datagram { from, to, bytes });
        }
    }

    fn send(&mut self, d: Datagram) {
        match self.net.send(self.now, d.clone()) {
            Fate::InFlight(_) => {}
            Fate::Lost => self.record_datagram(&d, Some(Dropped::Lost)),
            Fate::QueueFull => self.record_datagram(&d, Some(Dropped::QueueFull)),
        }
    }

    fn record_datagram(&mut self, d: &Datagram, fate: Option<Dropped>) {
        let class = classify(&d.bytes);
        let name = |a: &SocketAddr| {
            self.names
                .get(a)
                .cloned()
                .unwrap_or_else(|| "nobody".to_owned())
        };
        let record = Record::Datagram {
            from: name(&d.from),
            to: name(&d.to),
            class,
            len: (class != PacketClass::Dtls).then_some(d.bytes.len()),
            fate,
        };
        self.record(record);
    }

    fn record(&mut self, r: Record) {
        self.trace.push(self.now - self.start, r);
    }

    /// The core's view of a transport (SRTP state, consumers), for churn checks.
    pub(crate) fn transport_state(&self, transport: &str) -> core::TransportState {
        self.core
            .transport_state(transport)
            .expect("the transport exists")
    }
}
