//! The one place the harness touches [`WorkerCore`]: it is driven here exactly as
//! `worker::shell` drives it (a receive batch datagram by datagram, then `fan_out` in
//! steps of a limit, `handle_timeout` at `poll_timeout`, control requests as sfu-control's
//! typed requests framed and put through the same parse-and-dispatch the control socket
//! uses, notifications and control-caused datagrams drained after every unit of work).
//! Everything else in `sim` sees plain datagrams, typed requests and responses, and the
//! few read-only views below.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;
use sfu_control::{decode_response, request_frame, Refusal, Request};

use crate::batch::SendBatch;
use crate::channel::parse_request;
use crate::dtls::DtlsIdentity;
use crate::ids::TransportId;
use crate::worker::core::{CoreConfig, WorkerCore};
use crate::worker::ownership::ConnRole;

/// The control connection the harness speaks on (a confined one, like signaling's).
const CONN: u64 = 1;

/// The wall clock the core believes it started at: fixed, so NTP times in its reports
/// do not depend on when the test runs.
fn wall_epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

/// A DTLS identity per test thread: generating one costs milliseconds.
fn identity() -> DtlsIdentity {
    thread_local!(static IDENTITY: DtlsIdentity =
        DtlsIdentity::generate().expect("the harness generates a DTLS identity"));
    IDENTITY.with(Clone::clone)
}

/// One notification, as the control client would decode it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Notice {
    pub(crate) target: String,
    pub(crate) event: String,
    pub(crate) data: Value,
}

/// A [`WorkerCore`] and the receive batch it is working through.
pub(crate) struct SimCore {
    core: WorkerCore,
    /// The receive batch whose fan-out may be pending: slot `i` is datagram `i` as it was
    /// left by `receive` (plaintext to forward stays in place until `fan_out` is done).
    batch: Vec<(SocketAddr, Vec<u8>)>,
    fan_out_pending: bool,
    out: SendBatch,
    next_request: u64,
    /// The last time `handle_timeout` ran, and how often it ran then.
    last_timeout: Option<Instant>,
    timeouts_at_last: u32,
}

impl SimCore {
    /// A core at `addr` whose ids, ICE credentials, SSRCs and sequence offsets come from
    /// `seed`.
    pub(crate) fn new(now: Instant, addr: SocketAddr, seed: u64) -> Self {
        let cfg = CoreConfig {
            index: 0,
            workers: 1,
            local: addr,
            announced: addr,
            also_announced: Vec::new(),
            tcp_port: None,
        };
        let rng = StdRng::seed_from_u64(seed);
        let mut core = WorkerCore::new(cfg, identity(), rng, now, wall_epoch());
        core.open_connection(CONN, ConnRole::Confined);
        Self {
            core,
            batch: Vec::new(),
            fan_out_pending: false,
            out: SendBatch::new(),
            next_request: 1,
            last_timeout: None,
            timeouts_at_last: 0,
        }
    }

    /// The first pass over a receive batch (the shell's `receive` per datagram). The
    /// batch's fan-out is pending afterwards until [`Self::fan_out`] says it is done.
    pub(crate) fn receive(&mut self, now: Instant, batch: Vec<(SocketAddr, Vec<u8>)>) {
        debug_assert!(!self.fan_out_pending, "a batch's fan-out is still pending");
        self.batch = batch;
        for (slot, (from, buf)) in self.batch.iter_mut().enumerate() {
            self.core.receive(now, *from, buf, slot, &mut self.out);
        }
        self.fan_out_pending = true;
    }

    /// One `fan_out` call over the pending batch with `limit`; whether it is done.
    pub(crate) fn fan_out(&mut self, now: Instant, limit: usize) -> bool {
        if !self.fan_out_pending {
            return true;
        }
        let batch = &self.batch;
        let packet = |slot: usize| batch.get(slot).map(|(_, b)| b.as_slice());
        let done = self.core.fan_out(now, packet, &mut self.out, limit);
        if done {
            self.fan_out_pending = false;
            self.batch.clear();
        }
        done
    }

    pub(crate) fn fan_out_pending(&self) -> bool {
        self.fan_out_pending
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.last_timeout != Some(now) {
            self.timeouts_at_last = 0;
        }
        self.last_timeout = Some(now);
        self.timeouts_at_last += 1;
        self.core.handle_timeout(now, &mut self.out);
    }

    /// When the core wants [`Self::handle_timeout`] (`poll_timeout`, asked after every
    /// input). A deadline it leaves at a time it already ran at gets one more run, then
    /// counts as a millisecond later, so a core that does not move its deadline cannot
    /// stall virtual time (that would be a bug the scenario then shows as a stall).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let t = self.core.poll_timeout()?;
        Some(match self.last_timeout {
            Some(last) if t <= last && self.timeouts_at_last >= 2 => {
                last + Duration::from_millis(1)
            }
            Some(last) if t <= last => last,
            _ => t,
        })
    }

    /// Takes what the core queued to send: the packet path's batch, then datagrams
    /// caused by control requests (the shell's `flush`).
    pub(crate) fn take_transmits(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut sent: Vec<(SocketAddr, Vec<u8>)> =
            self.out.iter().map(|(d, b)| (d, b.to_vec())).collect();
        self.out.clear();
        let control = self.core.control_out();
        sent.extend(control.iter().map(|(d, b)| (d, b.to_vec())));
        control.clear();
        sent
    }

    /// Takes the notifications queued so far, decoded from the JSON the shell would
    /// write.
    pub(crate) fn take_notifications(&mut self) -> Vec<Notice> {
        self.core
            .drain_notifications()
            .filter_map(|(_, n)| serde_json::to_value(&n).ok())
            .map(|v| Notice {
                target: v["target"].as_str().unwrap_or_default().to_owned(),
                event: v["event"].as_str().unwrap_or_default().to_owned(),
                data: v.get("data").cloned().unwrap_or(Value::Null),
            })
            .collect()
    }

    /// Sends one typed control request as the control socket would receive it (its
    /// frame body through `parse_request` and the core's dispatch) and returns the
    /// response as the client would read it: the method's typed response when accepted,
    /// the refusal otherwise.
    pub(crate) fn request<R: Request>(
        &mut self,
        now: Instant,
        request: &R,
    ) -> Result<R::Response, Refusal> {
        let id = self.next_request;
        self.next_request += 1;
        let frame = request_frame(id, request).expect("a typed request serializes");
        let body = serde_json::to_vec(&frame).expect("a request frame serializes");
        let resp = match parse_request(&body) {
            Ok(req) => self.core.handle_request(now, CONN, req),
            Err((id, e)) => e.response(id),
        };
        assert_eq!(resp.id, Some(id), "response correlates: {resp:?}");
        let data = resp.into_result()?;
        Ok(decode_response::<R>(data.clone())
            .unwrap_or_else(|e| panic!("{} response {data}: {e}", R::METHOD)))
    }

    /// The SSRCs a transport's SRTP contexts keep state for: ((outbound RTP, RTCP),
    /// (inbound RTP, RTCP)), and how many consumers it maps by SSRC. Entity churn must
    /// not leave these growing.
    pub(crate) fn transport_state(&self, transport: &str) -> Option<TransportState> {
        let tk = self
            .core
            .transport_ids
            .get(&TransportId(transport.to_owned()))?;
        let t = self.core.transports.get(*tk)?;
        Some(TransportState {
            srtp_out: t.srtp_out.as_ref().map(|c| c.ssrc_counts()),
            srtp_in: t.srtp_in.as_ref().map(|c| c.ssrc_counts()),
            consumers_by_ssrc: t.consumers_by_ssrc.len(),
            consumers: t.consumers.len(),
        })
    }

    /// The producer a router's active-speaker observers last named (its id).
    pub(crate) fn active_speaker(&self, router: &str) -> Option<String> {
        let router = crate::ids::RouterId(router.to_owned());
        self.core.active_speaker(&router).map(|p| p.0.clone())
    }
}

/// What [`SimCore::transport_state`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransportState {
    pub(crate) srtp_out: Option<(usize, usize)>,
    pub(crate) srtp_in: Option<(usize, usize)>,
    pub(crate) consumers_by_ssrc: usize,
    pub(crate) consumers: usize,
}
