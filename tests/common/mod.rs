//! Test harness: the real `sfu` binary, a blocking control-channel client, and remote
//! peers built on str0m (an independent WebRTC implementation) talking real UDP.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
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

/// A blocking control-channel client.
pub struct Control {
    pub stream: UnixStream,
    next_id: u64,
    pub notifications: Vec<Value>,
}

impl Control {
    pub fn connect(path: &PathBuf) -> Self {
        let stream = UnixStream::connect(path).expect("connect control socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut c = Self {
            stream,
            next_id: 1,
            notifications: Vec::new(),
        };
        let ready = c.read_frame();
        assert_eq!(ready["event"], "ready", "first message is ready: {ready}");
        c
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn send_frame(&mut self, body: &[u8]) {
        let mut v = (body.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        self.send_raw(&v);
    }

    pub fn try_read_frame(&mut self) -> Option<Value> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).ok()?;
        serde_json::from_slice(&body).ok()
    }

    pub fn read_frame(&mut self) -> Value {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).expect("frame header");
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).expect("frame body");
        serde_json::from_slice(&body).expect("frame is JSON")
    }

    /// Reads until a response (a message with `id` or `error`) arrives; notifications
    /// seen meanwhile are kept.
    pub fn read_response(&mut self) -> Value {
        loop {
            let v = self.read_frame();
            if v.get("event").is_some() {
                self.notifications.push(v);
            } else {
                return v;
            }
        }
    }

    /// Sends a request and returns its whole response.
    pub fn call(&mut self, method: &str, target: Option<&str>, data: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = json!({ "id": id, "method": method, "data": data });
        if let Some(t) = target {
            req["target"] = json!(t);
        }
        self.send_frame(&serde_json::to_vec(&req).unwrap());
        let resp = self.read_response();
        assert_eq!(resp["id"], json!(id), "response id: {resp}");
        resp
    }

    /// Sends a request that must succeed and returns its data.
    pub fn ok(&mut self, method: &str, target: Option<&str>, data: Value) -> Value {
        let resp = self.call(method, target, data);
        assert_eq!(resp["accepted"], json!(true), "{method} failed: {resp}");
        resp.get("data").cloned().unwrap_or(Value::Null)
    }

    /// for a notification matching `pred` (already received ones count). Gives up
    /// (panics naming `what`) when nothing arrives for the socket's read timeout.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(pos) = self.notifications.iter().position(&pred) {
            return self.notifications.remove(pos);
        }
        loop {
            let v = self
                .try_read_frame()
                .unwrap_or_else(|| panic!("no {what}; seen {:?}", self.notifications));
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
}

impl Peer {
    pub fn new() -> Self {
        Self::with_config(|b| b)
    }

    /// A peer whose str0m configuration `f` adjusts (e.g. to emit stats events).
    pub fn with_config(f: impl Fn(str0m::RtcConfig) -> str0m::RtcConfig) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
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
        };
        p.rtc
            .add_local_candidate(Candidate::host(local, "udp").unwrap());
        p
    }

    /// Our certificate fingerprint in mediasoup's DtlsParameters shape.
    pub fn dtls_parameters(&mut self) -> Value {
        let fp = self.rtc.direct_api().local_dtls_fingerprint().to_string();
        let (alg, value) = fp.split_once(' ').unwrap();
        json!({ "role": "client", "fingerprints": [{ "algorithm": alg, "value": value }] })
    }

    /// Points the peer at a transport created by the daemon and starts ICE + DTLS.
    pub fn connect_to(&mut self, transport: &Value) {
        let ice = &transport["iceParameters"];
        let cand = &transport["iceCandidates"][0];
        let addr: SocketAddr = format!("{}:{}", cand["ip"].as_str().unwrap(), cand["port"])
            .parse()
            .unwrap();
        self.connect_with(
            ice,
            addr,
            transport["dtlsParameters"]["fingerprints"][0]["value"]
                .as_str()
                .unwrap(),
        );
    }

    pub fn connect_with(&mut self, ice: &Value, addr: SocketAddr, fingerprint: &str) {
        let mut api = self.rtc.direct_api();
        api.set_ice_controlling(true);
        api.set_remote_ice_credentials(IceCreds {
            ufrag: ice["usernameFragment"].as_str().unwrap().into(),
            pass: ice["password"].as_str().unwrap().into(),
        });
        let fp: Fingerprint = format!("sha-256 {fingerprint}").parse().unwrap();
        api.set_remote_fingerprint(fp);
        api.start_dtls(true).unwrap();
        self.rtc
            .add_remote_candidate(Candidate::host(addr, "udp").unwrap());
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
    pub fn rtp_capabilities(&self) -> Value {
        json!({
            "codecs": [
                { "kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": self.pt(Codec::Opus), "clockRate": 48000, "channels": 2 },
                { "kind": "video", "mimeType": "video/VP8", "preferredPayloadType": self.pt(Codec::Vp8), "clockRate": 90000,
                  "rtcpFeedback": [{ "type": "nack", "parameter": "pli" }, { "type": "ccm", "parameter": "fir" }] }
            ],
            "headerExtensions": []
        })
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
                    let _ = self.socket.send_to(c, t.destination);
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
            self.socket.set_read_timeout(Some(wait)).unwrap();
            let received = self.socket.recv_from(&mut buf);
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
                    Receive::new(Protocol::Udp, from, self.local, &buf[..n]).expect("receive"),
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
        self.transport_full(peer)["transportId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// [`Self::transport`], returning the whole `transport.create` response.
    pub fn transport_full(&mut self, peer: &mut Peer) -> Value {
        let t = self
            .ctl
            .ok("transport.create", Some(&self.router), json!({}));
        assert_eq!(t["iceParameters"]["iceLite"], true);
        assert_eq!(
            t["dtlsParameters"]["fingerprints"][0]["algorithm"],
            "sha-256"
        );
        peer.connect_to(&t);
        let id = t["transportId"].as_str().unwrap().to_owned();
        let dtls = peer.dtls_parameters();
        self.ctl.ok(
            "transport.connect",
            Some(&id),
            json!({ "dtlsParameters": dtls }),
        );
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
    let mut codec = json!({ "mimeType": mime, "payloadType": pt, "clockRate": rate,
        "rtcpFeedback": [{"type": "nack", "parameter": "pli"}] });
    if kind == "audio" {
        codec["channels"] = json!(2);
    }
    let data = ctl.ok(
        "transport.produce",
        Some(transport),
        json!({ "kind": kind, "rtpParameters": {
            "mid": kind, "codecs": [codec], "encodings": [{ "ssrc": ssrc }], "rtcp": { "cname": "pub" } } }),
    );
    data["producerId"].as_str().unwrap().to_owned()
}

pub fn consume(
    ctl: &mut Control,
    transport: &str,
    producer: &str,
    peer: &mut Peer,
    mid: &str,
    kind: MediaKind,
) -> (String, u32) {
    let caps = peer.rtp_capabilities();
    let c = ctl.ok(
        "transport.consume",
        Some(transport),
        json!({ "producerId": producer, "rtpCapabilities": caps }),
    );
    let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
    peer.recv_stream(mid, kind, ssrc);
    (c["consumerId"].as_str().unwrap().to_owned(), ssrc)
}

pub fn wait_connected(peers: &mut [&mut Peer]) {
    let ok = drive_all(peers, Instant::now() + Duration::from_secs(10), |ps| {
        ps.iter().all(|p| p.connected)
    });
    assert!(ok, "ICE + DTLS did not complete for every peer");
}

pub fn wait_dtls_connected(ctl: &mut Control, transport: &str) {
    let n = ctl.wait_event(transport, "dtlsstatechange");
    let state = n["data"]["dtlsState"].as_str().unwrap().to_owned();
    if state == "connecting" {
        wait_dtls_connected(ctl, transport);
    } else {
        assert_eq!(state, "connected", "{n}");
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
        let router = ctl.ok("router.create", None, json!({}))["routerId"]
            .as_str()
            .unwrap()
            .to_owned();
        let (mut publisher, mut sub) = (Peer::with_config(&config), Peer::with_config(&config));
        let mut room = Room {
            ctl,
            router: router.clone(),
        };
        let t = room.transport_full(&mut publisher);
        let tp = t["transportId"].as_str().unwrap().to_owned();
        let publisher_ufrag = t["iceParameters"]["usernameFragment"]
            .as_str()
            .unwrap()
            .to_owned();
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
