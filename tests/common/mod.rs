//! Test harness: the real `sfu` binary, a blocking control-channel client, and remote
//! peers built on str0m (an independent WebRTC implementation) talking real UDP.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sfu_control::params::{
    self, DtlsFingerprint, DtlsParameters, DtlsRole, DtlsState, IceParameters, RtcpFeedback,
    RtcpParameters, RtpCapabilities, RtpCodecCapability, RtpCodecParameters, RtpEncodingParameters,
    RtpParameters,
};
use sfu_control::requests::{
    MethodVisitor, RouterCreate, TransportConnect, TransportConsume, TransportCreate,
    TransportProduce,
};
use sfu_control::responses::TransportCreated;
use sfu_control::{
    decode_response, request_frame, Method, Notification, Refusal, Request, Response,
};
use str0m::config::{DtlsVersion, Fingerprint};
use str0m::format::Codec;
use str0m::ice::IceCreds;
use str0m::media::MediaKind;
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Event, Input, Output, Rtc};

/// A running daemon, killed on drop.
pub struct Daemon {
    child: Child,
    pub dir: tempfile::TempDir,
    pub workers: Vec<(SocketAddr, PathBuf)>,
}

impl Daemon {
    /// Starts `sfu` with `workers` workers on ephemeral ports and waits for its ready line.
    pub fn start(workers: usize) -> Self {
        Self::start_with(workers, &[])
    }

    pub fn start_with(workers: usize, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sfu"))
            .args([
                "--workers",
                &workers.to_string(),
                "--rtc-port",
                "0",
                "--pin",
                "false",
            ])
            .arg("--control")
            .arg(dir.path())
            // The daemon's stderr is not captured by the test harness: keep it quiet
            // unless asked (SFU_TEST_LOG=sfu=debug).
            .args([
                "--log",
                &std::env::var("SFU_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sfu");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("ready line");
        let ready: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad ready line {line:?}: {e}"));
        assert_eq!(ready["event"], "ready");
        let workers = ready["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                (
                    w["media"].as_str().unwrap().parse().unwrap(),
                    PathBuf::from(w["control"].as_str().unwrap()),
                )
            })
            .collect();
        Self {
            child,
            dir,
            workers,
        }
    }

    pub fn control(&self, worker: usize) -> Control {
        Control::connect(&self.workers[worker].1)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit: its status and how
    /// long it took, or None if it was still running.
    pub fn terminate(mut self, limit: Duration) -> Option<(std::process::ExitStatus, Duration)> {
        let start = Instant::now();
        // SAFETY: kill with a pid we own and a valid signal number.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = rx.recv_timeout(limit).ok()?.ok()?;
        Some((status, start.elapsed()))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking control-channel client: sfu-control's framing, typed requests
/// ([`Control::request`]) and, for tests of what the worker does with any JSON, raw ones
/// ([`Control::call`]). Notifications read while waiting for a response are kept.
pub struct Control {
    client: sfu_control::client::Client,
    next_id: u64,
    pub notifications: Vec<Value>,
}

impl Control {
    pub fn connect(path: &PathBuf) -> Self {
        let client = sfu_control::client::Client::connect(path).expect("connect control socket");
        client
            .stream()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c = Self {
            client,
            next_id: 1,
            notifications: Vec::new(),
        };
        let ready = c.read_frame();
        assert_eq!(ready["event"], "ready", "first message is ready: {ready}");
        c
    }

    /// The socket (e.g. for its read timeout).
    pub fn stream(&self) -> &UnixStream {
        self.client.stream()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.client.send_raw(bytes).unwrap();
    }

    pub fn send_frame(&mut self, body: &[u8]) {
        self.client.send_frame(body).unwrap();
    }

    pub fn try_read_frame(&mut self) -> Option<Value> {
        let body = self.client.read_frame().ok()?;
        serde_json::from_slice(&body).ok()
    }

    pub fn read_frame(&mut self) -> Value {
        let body = self.client.read_frame().expect("a frame");
        serde_json::from_slice(&body).expect("frame is JSON")
    }

    /// Reads until a response (a message with `id` or `error`) arrives; notifications
    /// seen meanwhile are kept.
    pub fn read_response(&mut self) -> Value {
        loop {
            let v = self.read_frame();
            if v.get("event").is_some() {
                check_notification(&v);
                self.notifications.push(v);
            } else {
                return v;
            }
        }
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a typed request; the worker's answer, refusals included.
    pub fn try_request<R: Request>(&mut self, request: &R) -> Result<R::Response, Refusal> {
        let id = self.next_id();
        let frame = request_frame(id, request).unwrap();
        self.send_frame(&serde_json::to_vec(&frame).unwrap());
        let resp = self.read_response();
        assert_eq!(resp["id"], json!(id), "response id: {resp}");
        let resp: Response = serde_json::from_value(resp).expect("a response");
        let data = resp.into_result()?;
        check_response(R::METHOD, &data);
        Ok(decode_response::<R>(data.clone())
            .unwrap_or_else(|e| panic!("{} answered {data}: {e}", R::METHOD)))
    }

    /// Sends a typed request that must succeed.
    pub fn request<R: Request>(&mut self, request: &R) -> R::Response {
        self.try_request(request)
            .unwrap_or_else(|e| panic!("{} failed: {e}", R::METHOD))
    }

    /// Creates a router; its id.
    pub fn create_router(&mut self) -> String {
        self.request(&RouterCreate::default()).router_id.0
    }

    /// Creates a transport in `router` (not connected).
    pub fn create_transport(&mut self, router: &str) -> TransportCreated {
        self.request(&TransportCreate {
            router_id: router.into(),
            app_data: Value::Null,
        })
    }

    /// Sends a typed request that must be refused; the refusal.
    pub fn refused<R: Request>(&mut self, request: &R) -> Refusal {
        match self.try_request(request) {
            Ok(r) => panic!("{} was accepted: {r:?}", R::METHOD),
            Err(e) => e,
        }
    }

    /// Sends any JSON as a request and returns the whole response (for tests of what the
    /// worker does with data no typed request would carry).
    pub fn call(&mut self, method: &str, target: Option<&str>, data: Value) -> Value {
        let id = self.next_id();
        let mut req = json!({ "id": id, "method": method, "data": data });
        if let Some(t) = target {
            req["target"] = json!(t);
        }
        self.send_frame(&serde_json::to_vec(&req).unwrap());
        let resp = self.read_response();
        assert_eq!(resp["id"], json!(id), "response id: {resp}");
        resp
    }

    /// [`Self::call`] that must succeed; its data, checked to be exactly what the
    /// method's sfu-control response type describes (every test that reads a response
    /// this way also guards the daemon's answers against drifting from the contract).
    pub fn ok(&mut self, method: &str, target: Option<&str>, data: Value) -> Value {
        let resp = self.call(method, target, data);
        assert_eq!(resp["accepted"], json!(true), "{method} failed: {resp}");
        let data = resp.get("data").cloned().unwrap_or(Value::Null);
        if let Some(m) = Method::parse(method) {
            check_response(m, &data);
        }
        data
    }

    /// Waits for a notification matching `pred` (already received ones count). Gives up
    /// (panics naming `what`) when nothing arrives for the socket's read timeout.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(pos) = self.notifications.iter().position(&pred) {
            return self.notifications.remove(pos);
        }
        loop {
            let v = self
                .try_read_frame()
                .unwrap_or_else(|| panic!("no {what}; seen {:?}", self.notifications));
            check_notification(&v);
            if pred(&v) {
                return v;
            }
            self.notifications.push(v);
        }
    }

    pub fn wait_event(&mut self, target: &str, event: &str) -> Value {
        let (t, e) = (target.to_owned(), event.to_owned());
        self.wait_for(event, move |v| {
            v["target"] == t.as_str() && v["event"] == e.as_str()
        })
    }
}

/// Asserts that a notification is exactly what sfu-control's `Notification` describes.
fn check_notification(v: &Value) {
    let n: Notification =
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("notification {v}: {e}"));
    assert_eq!(
        &serde_json::to_value(&n).unwrap(),
        v,
        "notification drifted from sfu-control"
    );
}

/// Asserts that an accepted response's data is exactly what the method's sfu-control
/// response type describes: no field missing, none extra, every value of its type.
struct CheckResponse<'a>(&'a Value);

impl MethodVisitor for CheckResponse<'_> {
    type Output = ();
    fn visit<R: Request>(self) {
        let data = self.0;
        let r = decode_response::<R>(data.clone())
            .unwrap_or_else(|e| panic!("{} answered {data}: {e}", R::METHOD));
        assert_eq!(
            &serde_json::to_value(&r).unwrap(),
            data,
            "{} answer drifted from sfu-control",
            R::METHOD
        );
    }
}

fn check_response(method: Method, data: &Value) {
    method.visit(CheckResponse(data));
}

/// A remote WebRTC peer: str0m in RTP mode over a real UDP socket.
pub struct Peer {
    pub rtc: Rtc,
    pub socket: UdpSocket,
    pub local: SocketAddr,
    pub events: Vec<Event>,
    pub connected: bool,
    /// Copies of the first SRTP packets this peer sent (for replay tests).
    pub sent_srtp: Vec<Vec<u8>>,
    /// When set, copies of every SRTP (not SRTCP) datagram that reached this peer's
    /// socket, before the impairment shim: their RTP headers are plaintext.
    pub record_srtp_in: bool,
    pub received_srtp: Vec<Vec<u8>>,
    /// Impairment shim: fractions of outgoing and incoming SRTP/SRTCP datagrams dropped
    /// at random (setup traffic is never dropped).
    pub loss_out: f64,
    pub loss_in: f64,
    rng: rand::rngs::StdRng,
    /// Set for a peer that speaks ICE over TCP instead of UDP ([`Peer::over_tcp`]).
    pub tcp: Option<TcpLink>,
}

/// A peer's ICE-TCP connection (an active candidate, RFC 6544), framed per RFC 4571 by
/// hand: the daemon's framing is checked against this independent reading of the RFC.
pub struct TcpLink {
    stream: Option<TcpStream>,
    /// Bytes read and not yet taken as frames.
    pending: Vec<u8>,
    /// Frames the peer sent and received.
    pub sent: usize,
    pub received: usize,
}

impl TcpLink {
    fn send(&mut self, to: SocketAddr, datagram: &[u8]) {
        if self.stream.is_none() {
            let stream = TcpStream::connect(to).expect("connect to the ICE-TCP port");
            stream.set_nodelay(true).unwrap();
            self.stream = Some(stream);
        }
        let mut framed = (datagram.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(datagram);
        if let Some(s) = self.stream.as_mut() {
            s.write_all(&framed).expect("ICE-TCP write");
            self.sent += 1;
        }
    }

    /// The next whole frame, reading for at most `wait`.
    fn recv(&mut self, wait: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let stream = self.stream.as_mut()?;
        let from = stream.peer_addr().ok()?;
        if let Some(frame) = take_frame(&mut self.pending) {
            self.received += 1;
            return Some((frame, from));
        }
        stream.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(n) if n > 0 => self.pending.extend_from_slice(&buf[..n]),
            _ => return None,
        }
        let frame = take_frame(&mut self.pending)?;
        self.received += 1;
        Some((frame, from))
    }
}

/// RFC 4571: a 2-byte big-endian length, then the frame.
fn take_frame(pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    let len = usize::from(u16::from_be_bytes([*pending.first()?, *pending.get(1)?]));
    if pending.len() < 2 + len {
        return None;
    }
    let frame = pending[2..2 + len].to_vec();
    pending.drain(..2 + len);
    Some(frame)
}

impl Peer {
    pub fn new() -> Self {
        Self::with_config(|b| b)
    }

    /// A peer whose str0m configuration `f` adjusts (e.g. to emit stats events).
    pub fn with_config(f: impl Fn(str0m::RtcConfig) -> str0m::RtcConfig) -> Self {
        Self::build(f, "udp", "127.0.0.1:0")
    }

    fn build(f: impl Fn(str0m::RtcConfig) -> str0m::RtcConfig, protocol: &str, bind: &str) -> Self {
        let socket = UdpSocket::bind(bind).unwrap();
        let local = socket.local_addr().unwrap();
        let builder = Rtc::builder()
            .set_rtp_mode(true)
            .enable_raw_packets(false)
            // rtc-dtls speaks DTLS 1.2 only, as do browsers today.
            .set_dtls_version(DtlsVersion::Dtls12);
        let rtc = f(builder).build(Instant::now());
        let mut p = Self {
            rtc,
            socket,
            local,
            events: Vec::new(),
            connected: false,
            sent_srtp: Vec::new(),
            record_srtp_in: false,
            received_srtp: Vec::new(),
            loss_out: 0.0,
            loss_in: 0.0,
            rng: rand::SeedableRng::seed_from_u64(u64::from(local.port())),
            tcp: (protocol == "tcp").then(|| TcpLink {
                stream: None,
                pending: Vec::new(),
                sent: 0,
                received: 0,
            }),
        };
        // A TCP peer's local address only names its candidate (the connection's real
        // port is the kernel's choice): frames are delivered to it as sent there.
        p.rtc
            .add_local_candidate(Candidate::host(local, protocol).unwrap());
        p
    }

    /// A peer that reaches the daemon only over ICE-TCP: its one local candidate is TCP,
    /// and [`Self::connect_to`] takes the transport's TCP candidate.
    pub fn over_tcp() -> Self {
        Self::build(|b| b, "tcp", "127.0.0.1:0")
    }

    /// A peer on IPv6 loopback (`::1`), over UDP or (`"tcp"`) ICE-TCP: it takes the
    /// transport's IPv6 candidate.
    pub fn on_ipv6(protocol: &str) -> Self {
        Self::build(|b| b, protocol, "[::1]:0")
    }

    /// Our certificate fingerprint in mediasoup's DtlsParameters shape.
    pub fn dtls_parameters(&mut self) -> DtlsParameters {
        let fp = self.rtc.direct_api().local_dtls_fingerprint().to_string();
        let (alg, value) = fp.split_once(' ').unwrap();
        DtlsParameters {
            role: DtlsRole::Client,
            fingerprints: vec![DtlsFingerprint {
                algorithm: alg.into(),
                value: value.into(),
            }],
        }
    }

    /// Points the peer at a transport created by the daemon and starts ICE + DTLS.
    pub fn connect_to(&mut self, transport: &TransportCreated) {
        let protocol = if self.tcp.is_some() { "tcp" } else { "udp" };
        let ipv6 = self.local.is_ipv6();
        let cand = transport
            .ice_candidates
            .iter()
            .find(|c| c.protocol == protocol && c.ip.contains(':') == ipv6)
            .unwrap_or_else(|| panic!("no {protocol} candidate of our family"));
        let ip: std::net::IpAddr = cand.ip.parse().unwrap();
        let addr = SocketAddr::new(ip, cand.port);
        self.connect_with(
            &transport.ice_parameters,
            addr,
            &transport.dtls_parameters.fingerprints[0].value,
        );
    }

    pub fn connect_with(&mut self, ice: &IceParameters, addr: SocketAddr, fingerprint: &str) {
        let mut api = self.rtc.direct_api();
        api.set_ice_controlling(true);
        api.set_remote_ice_credentials(IceCreds {
            ufrag: ice.username_fragment.clone(),
            pass: ice.password.clone(),
        });
        let fp: Fingerprint = format!("sha-256 {fingerprint}").parse().unwrap();
        api.set_remote_fingerprint(fp);
        api.start_dtls(true).unwrap();
        let protocol = if self.tcp.is_some() { "tcp" } else { "udp" };
        self.rtc
            .add_remote_candidate(Candidate::host(addr, protocol).unwrap());
    }

    pub fn pt(&self, codec: Codec) -> u8 {
        let pt = self
            .rtc
            .codec_config()
            .iter()
            .find(|p| p.spec().codec == codec)
            .unwrap()
            .pt();
        *pt
    }

    /// mediasoup-style RtpCapabilities for what this peer can receive.
    pub fn rtp_capabilities(&self) -> RtpCapabilities {
        RtpCapabilities {
            codecs: vec![
                RtpCodecCapability {
                    kind: params::MediaKind::Audio,
                    mime_type: "audio/opus".into(),
                    preferred_payload_type: self.pt(Codec::Opus),
                    clock_rate: 48000,
                    channels: Some(2),
                    parameters: Default::default(),
                    rtcp_feedback: vec![],
                },
                RtpCodecCapability {
                    kind: params::MediaKind::Video,
                    mime_type: "video/VP8".into(),
                    preferred_payload_type: self.pt(Codec::Vp8),
                    clock_rate: 90000,
                    channels: None,
                    parameters: Default::default(),
                    rtcp_feedback: vec![
                        RtcpFeedback::new("nack", "pli"),
                        RtcpFeedback::new("ccm", "fir"),
                    ],
                },
            ],
            header_extensions: vec![],
        }
    }

    /// Drives the peer until `deadline` or until `done` holds.
    pub fn drive_until(
        &mut self,
        deadline: Instant,
        mut done: impl FnMut(&mut Self) -> bool,
    ) -> bool {
        let mut buf = vec![0u8; 2000];
        loop {
            if done(self) {
                return true;
            }
            let timeout = match self.rtc.poll_output().expect("poll_output") {
                Output::Timeout(t) => t,
                Output::Transmit(t) => {
                    let c: &[u8] = &t.contents;
                    if is_srtp_rtp(c) && self.sent_srtp.len() < 64 {
                        self.sent_srtp.push(c.to_vec());
                    }
                    if is_srtp(c) && rand::Rng::gen_bool(&mut self.rng, self.loss_out) {
                        continue;
                    }
                    match (&mut self.tcp, t.proto) {
                        (Some(link), Protocol::Tcp) => link.send(t.destination, c),
                        _ => {
                            let _ = self.socket.send_to(c, t.destination);
                        }
                    }
                    continue;
                }
                Output::Event(e) => {
                    if matches!(e, Event::Connected) {
                        self.connected = true;
                    }
                    self.events.push(e);
                    continue;
                }
            };
            let now = Instant::now();
            if now >= deadline {
                return done(self);
            }
            let wait = timeout
                .min(deadline)
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            let protocol = if self.tcp.is_some() {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            let received = match self.tcp.as_mut() {
                Some(link) => match link.recv(wait) {
                    Some((frame, from)) => {
                        buf[..frame.len()].copy_from_slice(&frame);
                        Ok((frame.len(), from))
                    }
                    None => {
                        // Not connected yet, or nothing arrived in time.
                        std::thread::sleep(wait.min(Duration::from_millis(1)));
                        Err(std::io::Error::from(std::io::ErrorKind::WouldBlock))
                    }
                },
                None => {
                    self.socket.set_read_timeout(Some(wait)).unwrap();
                    self.socket.recv_from(&mut buf)
                }
            };
            if let Ok((n, _)) = received {
                if self.record_srtp_in && is_srtp_rtp(&buf[..n]) {
                    self.received_srtp.push(buf[..n].to_vec());
                }
            }
            let input = match received {
                Ok((n, _))
                    if is_srtp(&buf[..n]) && rand::Rng::gen_bool(&mut self.rng, self.loss_in) =>
                {
                    continue;
                }
                Ok((n, from)) => Input::Receive(
                    Instant::now(),
                    Receive::new(protocol, from, self.local, &buf[..n]).expect("receive"),
                ),
                Err(_) => Input::Timeout(Instant::now()),
            };
            self.rtc.handle_input(input).expect("handle_input");
        }
    }

    /// Handles whatever arrived and is due, without blocking past `max`.
    pub fn pump(&mut self, max: Duration) {
        let deadline = Instant::now() + max;
        self.drive_until(deadline, |_| false);
    }

    /// Declares an outgoing stream.
    pub fn send_stream(&mut self, mid: &str, kind: MediaKind, ssrc: u32) {
        let mut api = self.rtc.direct_api();
        api.declare_media(mid.into(), kind);
        api.declare_stream_tx(ssrc.into(), None, mid.into(), None);
    }

    /// Declares an incoming stream.
    pub fn recv_stream(&mut self, mid: &str, kind: MediaKind, ssrc: u32) {
        let mut api = self.rtc.direct_api();
        api.declare_media(mid.into(), kind);
        api.expect_stream_rx(ssrc.into(), None, mid.into(), None);
    }

    /// RTP packets received so far: (ssrc, seq, payload type, payload).
    pub fn rtp(&self) -> Vec<(u32, u16, u8, Vec<u8>)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::RtpPacket(p) => Some((
                    *p.header.ssrc,
                    p.header.sequence_number,
                    *p.header.payload_type,
                    p.payload.to_vec(),
                )),
                _ => None,
            })
            .collect()
    }
}

/// SRTP rather than SRTCP (RFC 5761 4: RTCP packet types 192..=223 in the second byte).
fn is_srtp_rtp(datagram: &[u8]) -> bool {
    matches!(datagram, [128..=191, b, ..] if !(192..=223).contains(b))
}

/// SRTP or SRTCP (RFC 7983 first byte 128..=191): media, never setup traffic.
fn is_srtp(datagram: &[u8]) -> bool {
    matches!(datagram.first(), Some(128..=191))
}

/// Drives several peers round-robin until `deadline` or `done`.
pub fn drive_all(
    peers: &mut [&mut Peer],
    deadline: Instant,
    mut done: impl FnMut(&mut [&mut Peer]) -> bool,
) -> bool {
    loop {
        if done(peers) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        for p in peers.iter_mut() {
            p.pump(Duration::from_millis(2));
        }
    }
}

// ---- A call: rooms, producers, consumers, payloads ----

pub const AUDIO_SSRC: u32 = 0x1111_0001;
pub const VIDEO_SSRC: u32 = 0x2222_0002;

/// A VP8 payload: descriptor with S=1 PID=0, then a frame tag; keyframes carry the start
/// code (RFC 6386 9.1), others have the P bit set. `i` makes every payload unique.
pub fn vp8_payload(i: u32, keyframe: bool) -> Vec<u8> {
    let mut p = vec![
        0x10,
        if keyframe { 0x00 } else { 0x01 },
        0x00,
        0x00,
        0x9d,
        0x01,
        0x2a,
    ];
    p.extend_from_slice(&i.to_be_bytes());
    p.extend(std::iter::repeat_n((i % 251) as u8, 1000));
    p
}

pub fn opus_payload(i: u32) -> Vec<u8> {
    let mut p = vec![0xfc];
    p.extend_from_slice(&i.to_be_bytes());
    p.extend(std::iter::repeat_n((i % 13) as u8, 100));
    p
}

pub fn send(peer: &mut Peer, ssrc: u32, pt: u8, seq: u64, ts: u32, payload: Vec<u8>) {
    let now = Instant::now();
    let mut api = peer.rtc.direct_api();
    let stream = api.stream_tx(&ssrc.into()).expect("declared stream");
    stream.write_rtp(RtpWrite::new(pt.into(), seq.into(), ts, now, payload));
}

pub struct Room {
    pub ctl: Control,
    pub router: String,
}

impl Room {
    /// Creates a transport for `peer`, points the peer at it and connects it; returns
    /// the transport id.
    pub fn transport(&mut self, peer: &mut Peer) -> String {
        self.transport_full(peer).transport_id.0
    }

    /// [`Self::transport`], returning the whole `transport.create` response.
    pub fn transport_full(&mut self, peer: &mut Peer) -> TransportCreated {
        let t = self.ctl.request(&TransportCreate {
            router_id: self.router.as_str().into(),
            app_data: Value::Null,
        });
        assert!(t.ice_parameters.ice_lite);
        assert_eq!(t.dtls_parameters.fingerprints[0].algorithm, "sha-256");
        peer.connect_to(&t);
        self.ctl.request(&TransportConnect {
            transport_id: t.transport_id.clone(),
            dtls_parameters: peer.dtls_parameters(),
        });
        t
    }
}

pub fn produce(
    ctl: &mut Control,
    transport: &str,
    kind: &str,
    mime: &str,
    pt: u8,
    rate: u32,
    ssrc: u32,
) -> String {
    let kind: params::MediaKind = serde_json::from_value(json!(kind)).expect("audio or video");
    let codec = RtpCodecParameters {
        mime_type: mime.into(),
        payload_type: pt,
        clock_rate: rate,
        channels: (kind == params::MediaKind::Audio).then_some(2),
        parameters: Default::default(),
        rtcp_feedback: vec![RtcpFeedback::new("nack", "pli")],
    };
    let created = ctl.request(&TransportProduce {
        transport_id: transport.into(),
        kind,
        rtp_parameters: RtpParameters {
            mid: Some(kind.as_str().into()),
            codecs: vec![codec],
            header_extensions: vec![],
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            }],
            rtcp: RtcpParameters {
                cname: Some("pub".into()),
                ..Default::default()
            },
        },
        paused: false,
        app_data: Value::Null,
    });
    created.producer_id.0
}

pub fn consume(
    ctl: &mut Control,
    transport: &str,
    producer: &str,
    peer: &mut Peer,
    mid: &str,
    kind: MediaKind,
) -> (String, u32) {
    let c = ctl.request(&TransportConsume {
        transport_id: transport.into(),
        producer_id: producer.into(),
        rtp_capabilities: peer.rtp_capabilities(),
        paused: false,
        mid: None,
        preferred_layers: None,
        follow: false,
        app_data: Value::Null,
    });
    let ssrc = c.rtp_parameters.encodings[0].ssrc.unwrap();
    peer.recv_stream(mid, kind, ssrc);
    (c.consumer_id.0, ssrc)
}

pub fn wait_connected(peers: &mut [&mut Peer]) {
    let ok = drive_all(peers, Instant::now() + Duration::from_secs(10), |ps| {
        ps.iter().all(|p| p.connected)
    });
    assert!(ok, "ICE + DTLS did not complete for every peer");
}

pub fn wait_dtls_connected(ctl: &mut Control, transport: &str) {
    let n = ctl.wait_event(transport, "dtlsstatechange");
    let n: Notification = serde_json::from_value(n).unwrap();
    match n.event {
        sfu_control::Event::DtlsStateChange {
            dtls_state: DtlsState::Connecting,
        } => wait_dtls_connected(ctl, transport),
        sfu_control::Event::DtlsStateChange {
            dtls_state: DtlsState::Connected,
        } => {}
        other => panic!("DTLS did not connect: {other:?}"),
    }
}

/// Payloads received by `peer` for `ssrc`, in arrival order, with their sequence numbers.
pub fn received(peer: &Peer, ssrc: u32) -> Vec<(u16, Vec<u8>)> {
    peer.rtp()
        .into_iter()
        .filter(|p| p.0 == ssrc)
        .map(|p| (p.1, p.3))
        .collect()
}

/// A call set up and connected: one publisher (audio, and video if asked) consumed by
/// one subscriber in one router, both DTLS-connected.
pub struct Call {
    pub ctl: Control,
    pub router: String,
    pub publisher: Peer,
    pub sub: Peer,
    /// Publisher and subscriber transport ids.
    pub tp: String,
    pub ts: String,
    pub publisher_ufrag: String,
    pub opus: u8,
    pub vp8: u8,
    /// Audio producer, its consumer and the consumer's SSRC.
    pub pa: String,
    pub ca: String,
    pub sub_audio: u32,
    /// Video producer, consumer and SSRC when the call has video.
    pub video: Option<(String, String, u32)>,
}

impl Call {
    pub fn start(daemon: &Daemon, with_video: bool) -> Self {
        Self::start_with(daemon, with_video, |b| b)
    }

    pub fn start_with(
        daemon: &Daemon,
        with_video: bool,
        config: impl Fn(str0m::RtcConfig) -> str0m::RtcConfig,
    ) -> Self {
        let mut ctl = daemon.control(0);
        let router = ctl.request(&RouterCreate::default()).router_id.0;
        let (mut publisher, mut sub) = (Peer::with_config(&config), Peer::with_config(&config));
        let mut room = Room {
            ctl,
            router: router.clone(),
        };
        let t = room.transport_full(&mut publisher);
        let tp = t.transport_id.0;
        let publisher_ufrag = t.ice_parameters.username_fragment;
        let ts = room.transport(&mut sub);
        let mut ctl = room.ctl;
        let (opus, vp8) = (publisher.pt(Codec::Opus), publisher.pt(Codec::Vp8));
        publisher.send_stream("a", MediaKind::Audio, AUDIO_SSRC);
        let pa = produce(
            &mut ctl,
            &tp,
            "audio",
            "audio/opus",
            opus,
            48000,
            AUDIO_SSRC,
        );
        let (ca, sub_audio) = consume(&mut ctl, &ts, &pa, &mut sub, "a", MediaKind::Audio);
        let video = with_video.then(|| {
            publisher.send_stream("v", MediaKind::Video, VIDEO_SSRC);
            let pv = produce(&mut ctl, &tp, "video", "video/VP8", vp8, 90000, VIDEO_SSRC);
            let (cv, sub_video) = consume(&mut ctl, &ts, &pv, &mut sub, "v", MediaKind::Video);
            (pv, cv, sub_video)
        });
        wait_connected(&mut [&mut publisher, &mut sub]);
        wait_dtls_connected(&mut ctl, &tp);
        wait_dtls_connected(&mut ctl, &ts);
        Self {
            ctl,
            router,
            publisher,
            sub,
            tp,
            ts,
            publisher_ufrag,
            opus,
            vp8,
            pa,
            ca,
            sub_audio,
            video,
        }
    }
}
