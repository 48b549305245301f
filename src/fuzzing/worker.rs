//! The `worker` target: a whole [`WorkerCore`] set up as a two-party call, driven by a
//! sequence of [`Op`]s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Result as ArbResult, Unstructured};
use bytes::BytesMut;
use rtc_dtls::config::HandshakeConfig;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_shared::TransportProtocol;
use serde_json::{json, Value};

use crate::batch::SendBatch;
use crate::channel::{parse_request, RequestFrame};
use crate::demux::{classify, PacketClass};
use crate::dtls::DtlsState;
use crate::ice::IceCredentials;
use crate::rtcp::{self, ReportBlock};
use crate::rtp::RtpHeader;
use crate::srtp::{contexts_from_keying_material, SrtpContext, SrtpError, SrtpProfile};
use crate::worker::core::WorkerCore;

use super::{
    call, core_config, core_rng, drain, epoch, frame, push_frame, substitute_ids, with_fixtures,
};

// ---------------------------------------------------------------------------------------
// worker: a whole WorkerCore with two connected peers
// ---------------------------------------------------------------------------------------

/// Publisher and subscriber addresses, a second address of the publisher (it may move),
/// and two strangers nobody authenticated.
pub(super) const PEER_A: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 5000);
const PEER_B: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 5000);
const PEER_A_MOVED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 6000);
const STRANGER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66)), 666);
const STRANGER6: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 66)),
    666,
);
const SOURCES: [SocketAddr; 5] = [PEER_A, PEER_B, PEER_A_MOVED, STRANGER, STRANGER6];

/// SSRCs and payload types of the publisher's streams (as in tests/forwarding.rs).
pub const VIDEO_SSRC: u32 = 0x2222_0002;
pub const VIDEO_RTX_SSRC: u32 = 0x2222_0003;
pub const AUDIO_SSRC: u32 = 0x1111_0001;
pub const VP8_PT: u8 = 96;
pub const RTX_PT: u8 = 97;
pub const OPUS_PT: u8 = 111;
/// Publisher extension ids (abs-send-time, mid); the subscriber negotiates other ids.
pub const ABS_SEND_TIME_ID: u8 = 2;
pub const MID_ID: u8 = 4;
/// The simulcast producer's RID and repaired RID extension ids.
const RID_ID: u8 = 10;
const REPAIRED_RID_ID: u8 = 11;
/// The audio producer's RFC 6464 audio level (its active-speaker observer hears it).
const AUDIO_LEVEL_ID: u8 = 1;

/// One step of the `worker` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Any datagram from `SOURCES[from % 5]`.
    Datagram { from: u8, bytes: Vec<u8> },
    /// Publisher media built by the harness and SRTP-protected by the publisher: `stream`
    /// picks video / audio / RTX / an unknown SSRC; `flags` bit 0 = marker, bit 1 = VP8
    /// keyframe, bit 2 = wrong payload type, bits 4-5 = extension words taken from the
    /// front of `payload`.
    Media {
        stream: u8,
        seq: u16,
        ts: u32,
        flags: u8,
        payload: Vec<u8>,
    },
    /// Plaintext RTP or RTCP protected with peer A's (even `peer`) or B's real SRTP
    /// context and sent from that peer's nominated address. It can name the consumers:
    /// their SSRCs are the same every run ([`consumer_ssrcs`]).
    Srtp {
        peer: u8,
        rtcp: bool,
        plain: Vec<u8>,
    },
    /// RTCP feedback from the subscriber for its video consumer, written by the harness:
    /// `kind` picks PLI, FIR, RR (with `value` as LSR), a NACK for up to 8 of the last
    /// 64 video packets the subscriber received (picked by `value`), or an SR from the
    /// publisher.
    Feedback { kind: u8, value: u32 },
    /// An authenticated Binding request for transport A/B from `SOURCES[from % 5]`;
    /// `flags` bit 0 = USE-CANDIDATE, bit 1 = ICE-CONTROLLED (role conflict).
    Stun { transport: u8, from: u8, flags: u8 },
    /// A JSON request from the fuzzer (`$n` replaced by the nth id).
    Request { json: Vec<u8> },
    /// A request built by the harness: `action` indexes [`ACTIONS`].
    Control { action: u8 },
    /// Time passes, then the timer runs.
    Advance { millis: u16 },
}

/// The structured control requests: (method, index of the target id, data).
const ACTIONS: [(&str, usize, &str); 24] = [
    ("producer.pause", ID_VIDEO_PRODUCER, "null"),
    ("producer.resume", ID_VIDEO_PRODUCER, "null"),
    ("consumer.pause", ID_VIDEO_CONSUMER, "null"),
    ("consumer.resume", ID_VIDEO_CONSUMER, "null"),
    ("consumer.requestKeyFrame", ID_VIDEO_CONSUMER, "null"),
    ("producer.close", ID_VIDEO_PRODUCER, "null"),
    ("consumer.close", ID_VIDEO_CONSUMER, "null"),
    ("producer.close", ID_AUDIO_PRODUCER, "null"),
    ("transport.close", ID_TRANSPORT_A, "null"),
    ("transport.close", ID_TRANSPORT_B, "null"),
    ("router.close", ID_ROUTER, "null"),
    ("transport.getStats", ID_TRANSPORT_B, "null"),
    ("producer.getStats", ID_VIDEO_PRODUCER, "null"),
    ("consumer.getStats", ID_VIDEO_CONSUMER, "null"),
    ("router.getStats", ID_ROUTER, "null"),
    ("worker.getLatency", usize::MAX, r#"{"reset": true}"#),
    // The simulcast consumer's layers: down, up beyond what the producer has, its
    // temporal layers, its stats; a priority on the simple one.
    (
        "consumer.setPreferredLayers",
        ID_SIMULCAST_CONSUMER,
        r#"{"spatialLayer": 0, "temporalLayer": 0}"#,
    ),
    (
        "consumer.setPreferredLayers",
        ID_SIMULCAST_CONSUMER,
        r#"{"spatialLayer": 9}"#,
    ),
    ("consumer.pause", ID_SIMULCAST_CONSUMER, "null"),
    ("consumer.resume", ID_SIMULCAST_CONSUMER, "null"),
    (
        "consumer.setPriority",
        ID_VIDEO_CONSUMER,
        r#"{"priority": 7}"#,
    ),
    ("rtpObserver.pause", ID_OBSERVER, "null"),
    ("rtpObserver.resume", ID_OBSERVER, "null"),
    ("rtpObserver.close", ID_OBSERVER, "null"),
];

/// Positions in [`Session::ids`] after setup.
const ID_ROUTER: usize = 0;
const ID_TRANSPORT_A: usize = 1;
const ID_TRANSPORT_B: usize = 2;
const ID_VIDEO_PRODUCER: usize = 3;
const ID_AUDIO_PRODUCER: usize = 4;
const ID_VIDEO_CONSUMER: usize = 5;
/// The consumer of the rid-only simulcast producer (after the audio consumer and it).
const ID_SIMULCAST_CONSUMER: usize = 8;
/// After the simulcast consumer: the active-speaker observer hearing the audio producer.
const ID_OBSERVER: usize = 9;

impl<'a> Arbitrary<'a> for Op {
    fn arbitrary(u: &mut Unstructured<'a>) -> ArbResult<Self> {
        Ok(match u8::arbitrary(u)? % 8 {
            0 => Self::Datagram {
                from: u.arbitrary()?,
                bytes: frame(u)?.to_vec(),
            },
            1 => Self::Media {
                stream: u.arbitrary()?,
                seq: u.arbitrary()?,
                ts: u.arbitrary()?,
                flags: u.arbitrary()?,
                payload: frame(u)?.to_vec(),
            },
            2 => Self::Srtp {
                peer: u.arbitrary()?,
                rtcp: u.arbitrary()?,
                plain: frame(u)?.to_vec(),
            },
            3 => Self::Feedback {
                kind: u.arbitrary()?,
                value: u.arbitrary()?,
            },
            4 => Self::Stun {
                transport: u.arbitrary()?,
                from: u.arbitrary()?,
                flags: u.arbitrary()?,
            },
            5 => Self::Request {
                json: frame(u)?.to_vec(),
            },
            6 => Self::Control {
                action: u.arbitrary()?,
            },
            _ => Self::Advance {
                millis: u.arbitrary()?,
            },
        })
    }
}

/// The bytes the `worker` target decodes to `ops` (for seeds and regression tests).
pub fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let mut b = Vec::new();
    for op in ops {
        match op {
            Op::Datagram { from, bytes } => {
                b.extend([0, *from]);
                push_frame(&mut b, bytes);
            }
            Op::Media {
                stream,
                seq,
                ts,
                flags,
                payload,
            } => {
                b.extend([1, *stream]);
                b.extend(seq.to_le_bytes());
                b.extend(ts.to_le_bytes());
                b.push(*flags);
                push_frame(&mut b, payload);
            }
            Op::Srtp { peer, rtcp, plain } => {
                b.extend([2, *peer, u8::from(*rtcp)]);
                push_frame(&mut b, plain);
            }
            Op::Feedback { kind, value } => {
                b.extend([3, *kind]);
                b.extend(value.to_le_bytes());
            }
            Op::Stun {
                transport,
                from,
                flags,
            } => b.extend([4, *transport, *from, *flags]),
            Op::Request { json } => {
                b.push(5);
                push_frame(&mut b, json);
            }
            Op::Control { action } => b.extend([6, *action]),
            Op::Advance { millis } => {
                b.push(7);
                b.extend(millis.to_le_bytes());
            }
        }
    }
    b
}

/// Decodes the `worker` target's input (what [`encode_ops`] wrote, or anything else).
pub fn decode_ops(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

/// The SSRCs of the subscriber's video and audio consumers in every `worker` session:
/// the core's RNG has a fixed seed ([`super::core_rng`]) and setup is always the same, so
/// inputs (and seeds) can name them in plaintext RTCP.
pub fn consumer_ssrcs() -> [u32; 2] {
    thread_local!(static SSRCS: [u32; 2] = Session::new().consumer_ssrcs);
    SSRCS.with(|s| *s)
}

/// `worker` target: a fresh core set up as a two-party call (see [`Session::new`]), then
/// the decoded ops, then the control connection closes (the full close cascade).
pub fn worker(data: &[u8]) {
    let mut s = Session::new();
    for op in decode_ops(data) {
        s.apply(op);
    }
    s.deliver(None);
    let now = s.now;
    s.core.close_connection(now, CONN);
    s.flush();
}

const CONN: u64 = 1;

/// The far end of one transport: what a browser would hold.
struct RemotePeer {
    addr: SocketAddr,
    ice: IceCredentials,
    /// Client-side SRTP: `tx` protects what the peer sends, `rx` checks what it receives.
    tx: SrtpContext,
    rx: SrtpContext,
}

/// A WorkerCore with a router, a publisher transport A (AES-GCM) with a VP8 video and an
/// Opus audio producer, and a subscriber transport B (AES-CM) consuming both; ICE
/// nominated and DTLS connected on both, all through the core's public entry points.
struct Session {
    core: WorkerCore,
    now: Instant,
    out: SendBatch,
    peers: [RemotePeer; 2],
    /// Every id handed out, in order (see the `ID_*` positions).
    ids: Vec<String>,
    consumer_ssrcs: [u32; 2],
    /// Newest sequence number of the video consumer's stream seen by the subscriber.
    newest_video_seq: Option<u16>,
    next_request: u64,
    scratch: Vec<u8>,
    /// Datagrams of Datagram, Media and Srtp ops, received as one batch (as the shell's
    /// `recvmmsg`) when another op comes.
    batch: Vec<(SocketAddr, Vec<u8>)>,
}

/// At most this many datagrams per simulated receive batch (the shell's `RECV_BATCH`).
const BATCH: usize = 32;

impl Session {
    /// Sets up the call. Every step is checked: a setup that silently failed would make
    /// the fuzzer explore nothing but error paths.
    fn new() -> Self {
        Self::setup(false)
    }

    /// The call, with the subscriber's checks not nominating a pair when
    /// `subscriber_unnominated` (as Chromium, which completes DTLS on a checked pair and
    /// nominates later): its transport has keys but no media path until an
    /// [`Op::Stun`] with USE-CANDIDATE.
    fn setup(subscriber_unnominated: bool) -> Self {
        let (now, wall) = epoch();
        let (mut core, client_fingerprint, configs) = with_fixtures(|f| {
            let core = WorkerCore::new(core_config(), f.server.clone(), core_rng(), now, wall);
            (
                core,
                f.client_fingerprint.clone(),
                [f.client_gcm.clone(), f.client_cm.clone()],
            )
        });
        let mut ids = Vec::new();
        let request = |core: &mut WorkerCore,
                       ids: &mut Vec<String>,
                       method: &str,
                       target: Option<usize>,
                       data: Value| {
            let target = target.map(|i| ids[i].clone());
            let req = RequestFrame {
                id: 0,
                method: method.into(),
                target,
                data,
            };
            let resp = core.handle_request(now, CONN, req);
            assert_eq!(
                resp.accepted,
                Some(true),
                "setup request {method} failed: {:?}",
                resp.reason
            );
            let data = resp.data.unwrap_or_default();
            for key in [
                "routerId",
                "transportId",
                "producerId",
                "consumerId",
                "rtpObserverId",
            ] {
                if let Some(id) = data.get(key).and_then(Value::as_str) {
                    // A consume response names its producer too: keep ids unique so the
                    // ID_* positions hold.
                    if !ids.iter().any(|known| known == id) {
                        // A consume response names its producer too: keep ids unique so the ID_*
                        // positions hold.
                        if !ids.iter().any(|known| known == id) {
                            ids.push(id.to_owned());
                        }
                    }
                }
            }
            data
        };
        request(&mut core, &mut ids, "router.create", None, Value::Null);
        let mut peers = Vec::new();
        for (addr, config) in [PEER_A, PEER_B].into_iter().zip(configs) {
            let t = request(
                &mut core,
                &mut ids,
                "transport.create",
                Some(ID_ROUTER),
                Value::Null,
            );
            let ice = IceCredentials {
                ufrag: t["iceParameters"]["usernameFragment"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
                pwd: t["iceParameters"]["password"]
                    .as_str()
                    .unwrap_or_default()
                    .into(),
            };
            let mut out = SendBatch::new();
            let nominate = !(subscriber_unnominated && addr == PEER_B);
            let mut check = binding_request(&ice, nominate, false);
            core.handle_datagram(now, addr, &mut check, &mut out);
            assert_eq!(out.len(), 1, "the STUN check is answered");
            let (tx, rx) = dtls_handshake(&mut core, now, addr, config);
            peers.push(RemotePeer { addr, ice, tx, rx });
        }
        for transport in [ID_TRANSPORT_A, ID_TRANSPORT_B] {
            let dtls = json!({ "dtlsParameters": { "role": "client",
                "fingerprints": [{ "algorithm": "sha-256", "value": client_fingerprint }] } });
            request(
                &mut core,
                &mut ids,
                "transport.connect",
                Some(transport),
                dtls,
            );
            let state = core.transport_dtls_state(&ids[transport]);
            assert_eq!(state, Some(DtlsState::Connected), "DTLS connects");
        }
        request(
            &mut core,
            &mut ids,
            "transport.produce",
            Some(ID_TRANSPORT_A),
            video_produce(),
        );
        request(
            &mut core,
            &mut ids,
            "transport.produce",
            Some(ID_TRANSPORT_A),
            audio_produce(),
        );
        let mut consumer_ssrcs = [0; 2];
        for (i, producer) in [ID_VIDEO_PRODUCER, ID_AUDIO_PRODUCER]
            .into_iter()
            .enumerate()
        {
            let data = json!({ "producerId": ids[producer], "rtpCapabilities": subscriber_capabilities() });
            let c = request(
                &mut core,
                &mut ids,
                "transport.consume",
                Some(ID_TRANSPORT_B),
                data,
            );
            consumer_ssrcs[i] = c["rtpParameters"]["encodings"][0]["ssrc"]
                .as_u64()
                .unwrap_or_default() as u32;
        }
        // A simulcast producer whose encodings are named by rid only: packets from SSRCs
        // nobody signalled (the unknown-SSRC stream of `Op::Media`, any `Op::Srtp`) reach
        // the MID/RID latching (`transport::latch`) with fuzzed extensions.
        request(
            &mut core,
            &mut ids,
            "transport.produce",
            Some(ID_TRANSPORT_A),
            simulcast_produce(),
        );
        // Its simulcast consumer, on the subscriber's transport: the latched encodings'
        // packets go through the layer selection and VP8 descriptor rewriting.
        let data = json!({ "producerId": ids[ID_SIMULCAST_CONSUMER - 1], "rtpCapabilities": subscriber_capabilities() });
        request(
            &mut core,
            &mut ids,
            "transport.consume",
            Some(ID_TRANSPORT_B),
            data,
        );
        assert_eq!(ids.len(), ID_SIMULCAST_CONSUMER + 1, "setup ids: {ids:?}");
        request(
            &mut core,
            &mut ids,
            "router.createActiveSpeakerObserver",
            Some(ID_ROUTER),
            json!({ "interval": 100 }),
        );
        let audio = json!({ "producerId": ids[ID_AUDIO_PRODUCER] });
        request(
            &mut core,
            &mut ids,
            "rtpObserver.addProducer",
            Some(ID_OBSERVER),
            audio,
        );
        let [a, b] =
            <[RemotePeer; 2]>::try_from(peers).unwrap_or_else(|_| unreachable!("two transports"));
        let mut s = Self {
            core,
            now,
            out: SendBatch::new(),
            peers: [a, b],
            ids,
            consumer_ssrcs,
            newest_video_seq: None,
            next_request: 1,
            scratch: Vec::with_capacity(2048),
            batch: Vec::new(),
        };
        s.flush();
        s
    }

    /// Applies one op, then checks and drops what the core sent.
    fn apply(&mut self, op: Op) {
        let now = self.now;
        if !matches!(op, Op::Datagram { .. } | Op::Media { .. } | Op::Srtp { .. }) {
            // A control request lands between two steps of the fan-out, as when the
            // shell's flush parks on a full socket.
            let between = match &op {
                Op::Control { .. } | Op::Request { .. } => Some(op.clone()),
                _ => None,
            };
            if self.deliver(between) {
                return self.flush();
            }
        }
        match op {
            Op::Datagram { from, bytes } => {
                let from = SOURCES[usize::from(from) % SOURCES.len()];
                self.queue(from, bytes);
            }
            Op::Media {
                stream,
                seq,
                ts,
                flags,
                payload,
            } => {
                let (ssrc, pt) = match stream % 4 {
                    0 => (VIDEO_SSRC, VP8_PT),
                    1 => (AUDIO_SSRC, OPUS_PT),
                    2 => (VIDEO_RTX_SSRC, RTX_PT),
                    _ => (0xdead_beef, VP8_PT),
                };
                let pt = if flags & 4 != 0 { pt ^ 0x40 } else { pt };
                let plain = media_packet(ssrc, pt, seq, ts, flags, &payload);
                let sealed = self.seal(0, false, plain);
                let from = self.peers[0].addr;
                self.queue(from, sealed);
            }
            Op::Srtp { peer, rtcp, plain } => {
                let peer = usize::from(peer & 1);
                let sealed = self.seal(peer, rtcp, plain);
                let from = self.peers[peer].addr;
                self.queue(from, sealed);
            }
            Op::Feedback { kind, value } => {
                let (sender, media) = (0x5eed_0001, self.consumer_ssrcs[0]);
                let mut plain = Vec::new();
                let peer = match kind % 5 {
                    0 => {
                        rtcp::write_pli(&mut plain, sender, media);
                        1
                    }
                    1 => {
                        rtcp::write_fir(&mut plain, sender, media, value as u8);
                        1
                    }
                    2 => {
                        let block = ReportBlock {
                            ssrc: media,
                            last_sr: value,
                            delay_since_last_sr: value >> 8,
                            ..Default::default()
                        };
                        rtcp::write_receiver_report(&mut plain, sender, &[block]);
                        1
                    }
                    3 => {
                        // Output sequence numbers are offset at random: name them
                        // relative to the newest one the subscriber saw.
                        let newest = self.newest_video_seq.unwrap_or_default();
                        let lost: Vec<u16> = (0..(value >> 29) + 1)
                            .map(|i| newest.wrapping_sub((value.rotate_right(i * 6) & 0x3f) as u16))
                            .collect();
                        rtcp::write_nack(&mut plain, sender, media, &lost);
                        1
                    }
                    _ => {
                        rtcp::write_sender_report(
                            &mut plain,
                            VIDEO_SSRC,
                            u64::from(value) << 20,
                            value,
                            1,
                            1000,
                        );
                        0
                    }
                };
                self.send_srtp(peer, true, plain);
            }
            Op::Stun {
                transport,
                from,
                flags,
            } => {
                let from = SOURCES[usize::from(from) % SOURCES.len()];
                let ice = &self.peers[usize::from(transport & 1)].ice;
                let mut check = binding_request(ice, flags & 1 != 0, flags & 2 != 0);
                self.core
                    .handle_datagram(now, from, &mut check, &mut self.out);
            }
            Op::Request { json } => self.request(json),
            Op::Control { action } => self.control(action),
            Op::Advance { millis } => {
                self.now += Duration::from_millis(u64::from(millis) * 16);
                let now = self.now;
                self.core.handle_timeout(now, &mut self.out);
            }
        }
        self.flush();
    }

    fn request(&mut self, json: Vec<u8>) {
        let now = self.now;
        let body = substitute_ids(&json, &self.ids);
        if let Ok(req) = parse_request(&body) {
            call(&mut self.core, now, CONN, req, &mut self.ids);
        }
    }

    fn control(&mut self, action: u8) {
        let now = self.now;
        let (method, target, data) = ACTIONS[usize::from(action) % ACTIONS.len()];
        let req = RequestFrame {
            id: self.next_request,
            method: method.into(),
            target: self.ids.get(target).cloned(),
            data: serde_json::from_str(data).unwrap_or_default(),
        };
        self.next_request += 1;
        call(&mut self.core, now, CONN, req, &mut self.ids);
    }

    /// Adds a datagram to the receive batch (receiving a full batch first).
    fn queue(&mut self, from: SocketAddr, bytes: Vec<u8>) {
        if self.batch.len() >= BATCH {
            self.deliver(None);
        }
        self.batch.push((from, bytes));
    }

    /// Receives the queued batch the way the shell does: every datagram, then the
    /// fan-out one consumer per step, with `between` (a Control or Request op) applied
    /// after the first step. Returns whether `between` was applied.
    fn deliver(&mut self, mut between: Option<Op>) -> bool {
        if self.batch.is_empty() {
            return false;
        }
        self.receive_batch();
        let applied = between.is_some();
        loop {
            let done = self.fan_out_step(1);
            match between.take() {
                Some(Op::Control { action }) => self.control(action),
                Some(Op::Request { json }) => self.request(json),
                _ if done => break,
                _ => {}
            }
        }
        self.batch.clear();
        applied
    }

    /// The first pass over the queued batch: every datagram through `receive`.
    fn receive_batch(&mut self) {
        let now = self.now;
        for (slot, (from, bytes)) in self.batch.iter_mut().enumerate() {
            self.core.receive(now, *from, bytes, slot, &mut self.out);
        }
    }

    /// One `fan_out` call over the queued batch; whether the fan-out is done.
    fn fan_out_step(&mut self, limit: usize) -> bool {
        let batch = &self.batch;
        let packet = |slot: usize| batch.get(slot).map(|(_, b)| b.as_slice());
        self.core.fan_out(self.now, packet, &mut self.out, limit)
    }

    /// Protects `plain` with a peer's real context and delivers it from the peer's
    /// address; unprotectable plaintext (not RTP/RTCP enough) is sent as it is.
    fn send_srtp(&mut self, peer: usize, rtcp: bool, plain: Vec<u8>) {
        let mut buf = self.seal(peer, rtcp, plain);
        let (now, from) = (self.now, self.peers[peer].addr);
        self.core
            .handle_datagram(now, from, &mut buf, &mut self.out);
    }

    /// `plain` protected with a peer's real context; unprotectable plaintext (not
    /// RTP/RTCP enough) as it is.
    fn seal(&mut self, peer: usize, rtcp: bool, plain: Vec<u8>) -> Vec<u8> {
        let p = &mut self.peers[peer];
        let len = plain.len();
        let mut buf = plain;
        buf.resize(len + p.tx.profile().rtcp_overhead(), 0);
        let sealed = if rtcp {
            p.tx.protect_rtcp(&mut buf, len)
        } else {
            p.tx.protect_rtp(&mut buf, len)
        };
        buf.truncate(sealed.unwrap_or(len));
        buf
    }

    /// What the shell does after each event (notifications, control datagrams, the send
    /// batch), plus the oracle: every SRTP/SRTCP datagram the core sends must authenticate
    /// with the receiving peer's keys, and decrypt to a packet that parses.
    fn flush(&mut self) {
        drain(&mut self.core);
        for (dest, d) in self.out.iter() {
            let class = classify(d);
            if !matches!(class, PacketClass::Rtp | PacketClass::Rtcp) {
                continue;
            }
            // Media goes to a nominated address; STUN from a stranger may nominate it
            // for either transport, so either peer's keys may be the right ones.
            let mut verdicts = Vec::new();
            for p in self.peers.iter_mut() {
                self.scratch.clear();
                self.scratch.extend_from_slice(d);
                let r = if class == PacketClass::Rtp {
                    p.rx.unprotect_rtp(&mut self.scratch).map(|n| {
                        let hdr = RtpHeader::parse(&self.scratch[..n]);
                        match &hdr {
                            Ok(h) if h.ssrc == self.consumer_ssrcs[0] => {
                                self.newest_video_seq = Some(h.sequence);
                            }
                            _ => {}
                        }
                        hdr.is_ok()
                    })
                } else {
                    p.rx.unprotect_rtcp(&mut self.scratch)
                        .map(|n| rtcp::parse_compound(&self.scratch[..n], &mut Vec::new()).is_ok())
                };
                verdicts.push(r);
            }
            // A forwarded packet may be older than the peer's replay window (the munger
            // accepts more reordering than that), or a duplicate: both are the peer's
            // business. Failing authentication or a garbled header is ours.
            let ok = verdicts
                .iter()
                .any(|v| matches!(v, Ok(true) | Err(SrtpError::Replayed | SrtpError::TooOld)));
            assert!(
                ok,
                "the core sent {class:?} to {dest} that no peer accepts: {verdicts:?}"
            );
        }
        self.out.clear();
    }
}

/// A browser-like Binding request (Chrome's attribute order) for `ice`'s transport.
fn binding_request(ice: &IceCredentials, use_candidate: bool, controlled: bool) -> Vec<u8> {
    use stun::agent::TransactionId;
    use stun::attributes::{
        ATTR_ICE_CONTROLLED, ATTR_ICE_CONTROLLING, ATTR_PRIORITY, ATTR_USERNAME, ATTR_USE_CANDIDATE,
    };
    use stun::message::{Message, Setter, BINDING_REQUEST};
    let mut m = Message::new();
    m.typ = BINDING_REQUEST;
    m.transaction_id = TransactionId::new();
    m.write_header();
    stun::textattrs::TextAttribute::new(ATTR_USERNAME, format!("{}:fuzz", ice.ufrag))
        .add_to(&mut m)
        .expect("USERNAME encodes");
    let role = if controlled {
        ATTR_ICE_CONTROLLED
    } else {
        ATTR_ICE_CONTROLLING
    };
    m.add(role, &0x1122_3344_5566_7788_u64.to_be_bytes());
    if use_candidate {
        m.add(ATTR_USE_CANDIDATE, &[]);
    }
    m.add(ATTR_PRIORITY, &0x6e7f_1eff_u32.to_be_bytes());
    stun::integrity::MessageIntegrity::new_short_term_integrity(ice.pwd.clone())
        .add_to(&mut m)
        .expect("MESSAGE-INTEGRITY encodes");
    stun::fingerprint::FINGERPRINT
        .add_to(&mut m)
        .expect("FINGERPRINT encodes");
    m.raw
}

/// Runs a real DTLS handshake between an rtc-dtls client at `peer` and the core (which
/// routes it to the transport that nominated `peer`), and returns the client's SRTP
/// contexts (outbound, inbound).
fn dtls_handshake(
    core: &mut WorkerCore,
    now: Instant,
    peer: SocketAddr,
    config: Arc<HandshakeConfig>,
) -> (SrtpContext, SrtpContext) {
    let server = core.config().announced;
    let mut client = Endpoint::new(peer, TransportProtocol::UDP, None);
    client
        .connect(now, server, config, None)
        .expect("client starts a handshake");
    let mut out = SendBatch::new();
    let mut done = false;
    // A DTLS 1.2 handshake with a cookie exchange takes three round trips.
    for _ in 0..8 {
        while let Some(t) = client.poll_transmit() {
            let mut d = t.message.to_vec();
            core.handle_datagram(now, peer, &mut d, &mut out);
        }
        for (dest, d) in out.iter() {
            assert_eq!(dest, peer, "handshake replies go to the client");
            let events = client
                .read(now, server, None, BytesMut::from(d))
                .expect("client accepts the server's flight");
            done |= events
                .iter()
                .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
        }
        out.clear();
        if done {
            break;
        }
    }
    assert!(done, "DTLS handshake completes");
    let state = client
        .get_connection_state(server)
        .expect("client association");
    let profile = match state.srtp_protection_profile() {
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => SrtpProfile::AeadAes128Gcm,
        _ => SrtpProfile::Aes128CmHmacSha1_80,
    };
    let km = state
        .export_keying_material("EXTRACTOR-dtls_srtp", &[], profile.keying_material_len())
        .expect("keying material");
    contexts_from_keying_material(profile, km.as_ref(), true).expect("client SRTP contexts")
}

fn video_produce() -> Value {
    json!({ "kind": "video", "rtpParameters": {
        "mid": "v",
        "codecs": [
            { "mimeType": "video/VP8", "payloadType": VP8_PT, "clockRate": 90000,
              "rtcpFeedback": [{ "type": "nack" }, { "type": "nack", "parameter": "pli" }, { "type": "ccm", "parameter": "fir" }] },
            { "mimeType": "video/rtx", "payloadType": RTX_PT, "clockRate": 90000, "parameters": { "apt": VP8_PT } }],
        "headerExtensions": [
            { "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": MID_ID },
            { "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": ABS_SEND_TIME_ID }],
        "encodings": [{ "ssrc": VIDEO_SSRC, "rtx": { "ssrc": VIDEO_RTX_SSRC } }],
        "rtcp": { "cname": "fuzz", "reducedSize": true } } })
}

fn simulcast_produce() -> Value {
    json!({ "kind": "video", "rtpParameters": {
        "mid": "s",
        "codecs": [
            { "mimeType": "video/VP8", "payloadType": VP8_PT, "clockRate": 90000,
              "rtcpFeedback": [{ "type": "nack" }, { "type": "nack", "parameter": "pli" }] },
            { "mimeType": "video/rtx", "payloadType": RTX_PT, "clockRate": 90000, "parameters": { "apt": VP8_PT } }],
        "headerExtensions": [
            { "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": MID_ID },
            { "uri": "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "id": RID_ID },
            { "uri": "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id", "id": REPAIRED_RID_ID }],
        "encodings": [{ "rid": "l", "maxBitrate": 100000 }, { "rid": "h", "maxBitrate": 900000 }],
        "rtcp": { "cname": "fuzz", "reducedSize": true } } })
}

fn audio_produce() -> Value {
    json!({ "kind": "audio", "rtpParameters": {
        "mid": "a",
        "codecs": [{ "mimeType": "audio/opus", "payloadType": OPUS_PT, "clockRate": 48000, "channels": 2 }],
        "headerExtensions": [{ "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": ABS_SEND_TIME_ID },
            { "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": AUDIO_LEVEL_ID }],
        "encodings": [{ "ssrc": AUDIO_SSRC }],
        "rtcp": { "cname": "fuzz" } } })
}

/// The subscriber's capabilities: other payload types and extension ids than the
/// publisher's, so forwarding has to remap both.
fn subscriber_capabilities() -> Value {
    json!({
        "codecs": [
            { "kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 109, "clockRate": 48000, "channels": 2 },
            { "kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 100, "clockRate": 90000,
              "rtcpFeedback": [{ "type": "nack" }, { "type": "nack", "parameter": "pli" }, { "type": "ccm", "parameter": "fir" }] },
            { "kind": "video", "mimeType": "video/rtx", "preferredPayloadType": 101, "clockRate": 90000,
              "parameters": { "apt": 100 } }],
        "headerExtensions": [
            { "kind": "video", "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "preferredId": 3 },
            { "kind": "audio", "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "preferredId": 3 }]
    })
}

/// Plaintext RTP for [`Op::Media`].
fn media_packet(ssrc: u32, pt: u8, seq: u16, ts: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let ext_words = usize::from((flags >> 4) & 3);
    let ext = payload.get(..ext_words * 4).unwrap_or_default();
    let body = payload.get(ext.len()..).unwrap_or_default();
    let mut p = vec![
        0x80 | if ext.is_empty() { 0 } else { 0x10 },
        (pt & 0x7f) | if flags & 1 != 0 { 0x80 } else { 0 },
    ];
    p.extend(seq.to_be_bytes());
    p.extend(ts.to_be_bytes());
    p.extend(ssrc.to_be_bytes());
    if !ext.is_empty() {
        // RFC 8285 one-byte form.
        p.extend([0xBE, 0xDE, 0, ext_words as u8]);
        p.extend_from_slice(ext);
    }
    if flags & 2 != 0 {
        // VP8 payload descriptor (S=1) and a keyframe tag with the start code (RFC 7741 4.2,
        // RFC 6386 9.1).
        p.extend([0x10, 0x00, 0x00, 0x00, 0x9d, 0x01, 0x2a]);
    }
    p.extend_from_slice(body);
    p
}

#[cfg(test)]
mod timer_tests;

#[cfg(test)]
mod seeded_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_encode_to_what_decodes_back() {
        let ops = vec![
            Op::Datagram {
                from: 3,
                bytes: vec![1, 2, 3],
            },
            Op::Media {
                stream: 1,
                seq: 0xfffe,
                ts: 7,
                flags: 0x12,
                payload: vec![9; 300],
            },
            Op::Srtp {
                peer: 1,
                rtcp: true,
                plain: vec![],
            },
            Op::Feedback {
                kind: 2,
                value: 0xdead_beef,
            },
            Op::Stun {
                transport: 1,
                from: 4,
                flags: 3,
            },
            Op::Request {
                json: b"{}".to_vec(),
            },
            Op::Control { action: 15 },
            Op::Advance { millis: 65535 },
        ];
        assert_eq!(decode_ops(&encode_ops(&ops)), ops);
    }

    /// The `worker` harness is only useful if its setup really reaches forwarding and
    /// feedback: a keyframe is forwarded to the subscriber, its PLI reaches the consumer,
    /// its NACK brings a retransmission.
    #[test]
    fn worker_session_forwards_media_and_takes_feedback() {
        let mut s = Session::new();
        s.apply(Op::Media {
            stream: 0,
            seq: 1,
            ts: 0,
            flags: 2,
            payload: vec![0; 100],
        });
        s.apply(Op::Media {
            stream: 1,
            seq: 1,
            ts: 0,
            flags: 0,
            payload: vec![0; 100],
        });
        assert_eq!(
            s.core.rtp_out.packets, 0,
            "media waits for the batch to end"
        );
        s.deliver(None);
        assert_eq!(
            s.core.rtp_out.packets, 2,
            "video keyframe and audio forwarded"
        );
        s.apply(Op::Feedback { kind: 0, value: 0 });
        let plis: u64 = s
            .core
            .consumers
            .iter()
            .map(|(_, c)| c.plis_received())
            .sum();
        assert_eq!(plis, 1);
        // NACK for the newest video packet: it is retransmitted (over RTX).
        s.apply(Op::Feedback { kind: 3, value: 0 });
        let nacks: u64 = s
            .core
            .consumers
            .iter()
            .map(|(_, c)| c.nacks_received())
            .sum();
        assert_eq!(nacks, 1);
        assert_eq!(s.core.rtp_out.packets, 3, "the NACKed packet is resent");
        assert_eq!(s.core.drops().total(), 0, "{}", s.core.drops().to_json());
    }

    /// Regression test (a WHEP player got audio but never video): a subscriber that
    /// finishes DTLS before it nominates a pair has no media path when its consumers are
    /// created or when DTLS connects, so the publisher's keyframe that arrives then is
    /// not forwarded; the nomination that completes the path asks the publisher for
    /// another, and that one starts the subscriber's video.
    #[test]
    fn a_subscriber_nominating_after_dtls_gets_a_keyframe_requested() {
        let mut s = Session::setup(true);
        let keyframe = |seq: u16| Op::Media {
            stream: 0,
            seq,
            ts: u32::from(seq) * 3000,
            flags: 2,
            payload: vec![0; 100],
        };
        s.apply(keyframe(1));
        s.deliver(None);
        assert_eq!(
            s.core.rtp_out.packets, 0,
            "no media path to the subscriber yet"
        );
        let asked = s.core.totals.key_frame_requests_sent;
        s.apply(Op::Stun {
            transport: 1,
            from: 1,
            flags: 1,
        });
        assert_eq!(
            s.core.totals.key_frame_requests_sent,
            asked + 1,
            "the completed path asks the publisher for a keyframe"
        );
        s.apply(keyframe(2));
        s.deliver(None);
        assert_eq!(s.core.rtp_out.packets, 1, "the new keyframe is forwarded");
    }
}
