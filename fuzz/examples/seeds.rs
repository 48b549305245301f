//! Writes the seed corpus: `cargo run --manifest-path fuzz/Cargo.toml --example seeds -- fuzz/corpus`.
//!
//! Real traffic comes from str0m (an independent WebRTC stack, as in tests/forwarding.rs):
//! a publisher and a subscriber peer talk to a `WorkerCore` in memory, in virtual time, and
//! everything they send is recorded: STUN checks, DTLS flights, and RTP/RTCP in plaintext
//! (the core decrypts in place, so after `handle_datagram` the buffer holds the plaintext).
//! Hand-made edge cases and the control requests of docs/PROTOCOL.md are added to that.
//! Seeds are then shaped to each target's input format (see src/fuzzing.rs).
//!
//! Browser captures (Chromium, Firefox) go to fuzz/corpus/<target>/browser-* and are not
//! written here: see FUZZING.md.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};
use sfu::channel::RequestFrame;
use sfu::demux::{classify, PacketClass};
use sfu::dtls::DtlsIdentity;
use sfu::fuzzing::{self as f, encode_ops, push_frame, Op};
use sfu::srtp::SrtpProfile;
use sfu::worker::core::{CoreConfig, WorkerCore};
use sfu::batch::SendBatch;
use str0m::config::{DtlsVersion, Fingerprint};
use str0m::format::Codec;
use str0m::ice::IceCreds;
use str0m::media::{KeyframeRequestKind, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::rtp::RtpWrite;
use str0m::{Candidate, Input, Output, Rtc};

const CORE: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40_000);

/// What one str0m peer sent, by kind; RTP and RTCP in plaintext.
#[derive(Default)]
struct Capture {
    stun: Vec<Vec<u8>>,
    dtls: Vec<Vec<u8>>,
    rtp: Vec<Vec<u8>>,
    rtcp: Vec<Vec<u8>>,
}

struct Peer {
    rtc: Rtc,
    addr: SocketAddr,
    capture: Capture,
    connected: bool,
}

impl Peer {
    fn new(addr: SocketAddr, now: Instant) -> Self {
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .enable_raw_packets(false)
            .set_dtls_version(DtlsVersion::Dtls12)
            .build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        Self {
            rtc,
            addr,
            capture: Capture::default(),
            connected: false,
        }
    }

    /// ICE as the controlling side and DTLS as the client, towards a created transport.
    fn connect(&mut self, transport: &Value) {
        let ice = &transport["iceParameters"];
        let fp = transport["dtlsParameters"]["fingerprints"][0]["value"]
            .as_str()
            .unwrap();
        let mut api = self.rtc.direct_api();
        api.set_ice_controlling(true);
        api.set_remote_ice_credentials(IceCreds {
            ufrag: ice["usernameFragment"].as_str().unwrap().into(),
            pass: ice["password"].as_str().unwrap().into(),
        });
        api.set_remote_fingerprint(format!("sha-256 {fp}").parse::<Fingerprint>().unwrap());
        api.start_dtls(true).unwrap();
        self.rtc
            .add_remote_candidate(Candidate::host(CORE, "udp").unwrap());
    }

    fn dtls_parameters(&mut self) -> Value {
        let fp = self.rtc.direct_api().local_dtls_fingerprint().to_string();
        let (alg, value) = fp.split_once(' ').unwrap();
        json!({ "dtlsParameters": { "role": "client", "fingerprints": [{ "algorithm": alg, "value": value }] } })
    }

    fn pt(&self, codec: Codec) -> u8 {
        *self
            .rtc
            .codec_config()
            .iter()
            .find(|p| p.spec().codec == codec)
            .unwrap()
            .pt()
    }
}

/// Sends everything `peer` has to send into the core, recording it.
fn pump(peer: &mut Peer, core: &mut WorkerCore, now: Instant, out: &mut SendBatch) {
    peer.rtc.handle_input(Input::Timeout(now)).unwrap();
    loop {
        match peer.rtc.poll_output().unwrap() {
            Output::Timeout(_) => return,
            Output::Event(e) => peer.connected |= matches!(e, str0m::Event::Connected),
            Output::Transmit(t) => {
                let mut d = t.contents.to_vec();
                let class = classify(&d);
                let drops = core.drops().total();
                let sent = d.clone();
                core.handle_datagram(now, peer.addr, &mut d, out);
                let decrypted = core.drops().total() == drops;
                let c = &mut peer.capture;
                match class {
                    PacketClass::Stun => c.stun.push(sent),
                    PacketClass::Dtls => c.dtls.push(sent),
                    // AES-GCM (what str0m and the core agree on): 16-byte tag, plus the
                    // 4-byte SRTCP index word for RTCP.
                    PacketClass::Rtp if decrypted => c.rtp.push(d[..d.len() - 16].to_vec()),
                    PacketClass::Rtcp if decrypted => c.rtcp.push(d[..d.len() - 20].to_vec()),
                    _ => {}
                }
            }
        }
    }
}

/// Delivers what the core sent to the peers.
fn deliver(out: &mut SendBatch, peers: &mut [&mut Peer], now: Instant, drop_one_video: &mut bool) {
    for (dest, d) in out.iter() {
        let Some(p) = peers.iter_mut().find(|p| p.addr == dest) else {
            continue;
        };
        // Lose one forwarded packet so the subscriber sends a NACK.
        if *drop_one_video && d.len() > 900 {
            *drop_one_video = false;
            continue;
        }
        let r = Receive::new(Protocol::Udp, CORE, p.addr, d).unwrap();
        let _ = p.rtc.handle_input(Input::Receive(now, r));
    }
    out.clear();
}

fn request(
    core: &mut WorkerCore,
    now: Instant,
    method: &str,
    target: Option<&str>,
    data: Value,
) -> Value {
    let req = RequestFrame {
        id: 1,
        method: method.into(),
        target: target.map(Into::into),
        data,
    };
    let resp = core.handle_request(now, 1, req);
    assert_eq!(resp.accepted, Some(true), "{method}: {:?}", resp.reason);
    resp.data.unwrap_or_default()
}

/// A publisher and a subscriber through a core: returns both captures and the SSRCs the
/// core picked for the subscriber's (video, audio) consumers.
fn record_call() -> (Capture, Capture, [u32; 2]) {
    let mut now = Instant::now();
    let identity = DtlsIdentity::generate().unwrap();
    let cfg = CoreConfig {
        index: 0,
        workers: 1,
        local: CORE,
        announced: CORE,
        also_announced: Vec::new(),
        tcp_port: None,
    };
    let mut core = WorkerCore::new(cfg, identity, f::core_rng(), now, SystemTime::now());
    let mut publisher = Peer::new("10.0.0.1:5000".parse().unwrap(), now);
    let mut subscriber = Peer::new("10.0.0.2:5000".parse().unwrap(), now);
    let router = request(&mut core, now, "router.create", None, Value::Null)["routerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut transports = Vec::new();
    for p in [&mut publisher, &mut subscriber] {
        let t = request(
            &mut core,
            now,
            "transport.create",
            Some(&router),
            Value::Null,
        );
        p.connect(&t);
        let id = t["transportId"].as_str().unwrap().to_owned();
        request(
            &mut core,
            now,
            "transport.connect",
            Some(&id),
            p.dtls_parameters(),
        );
        transports.push(id);
    }
    let (vp8, opus) = (publisher.pt(Codec::Vp8), publisher.pt(Codec::Opus));
    let mut producers = Vec::new();
    for (kind, mime, pt, rate, ssrc, mid) in [
        ("video", "video/VP8", vp8, 90000, f::VIDEO_SSRC, "v"),
        ("audio", "audio/opus", opus, 48000, f::AUDIO_SSRC, "a"),
    ] {
        let mut codec = json!({ "mimeType": mime, "payloadType": pt, "clockRate": rate,
            "rtcpFeedback": [{ "type": "nack", "parameter": "pli" }] });
        if kind == "audio" {
            codec["channels"] = json!(2);
        }
        let data = json!({ "kind": kind, "rtpParameters": { "mid": mid, "codecs": [codec],
            "encodings": [{ "ssrc": ssrc }], "rtcp": { "cname": "pub" } } });
        let p = request(
            &mut core,
            now,
            "transport.produce",
            Some(&transports[0]),
            data,
        );
        producers.push(p["producerId"].as_str().unwrap().to_owned());
        let mut api = publisher.rtc.direct_api();
        api.declare_media(
            mid.into(),
            if kind == "video" {
                MediaKind::Video
            } else {
                MediaKind::Audio
            },
        );
        api.declare_stream_tx(ssrc.into(), None, mid.into(), None);
    }
    let caps = json!({ "codecs": [
        { "kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": subscriber.pt(Codec::Opus), "clockRate": 48000, "channels": 2 },
        { "kind": "video", "mimeType": "video/VP8", "preferredPayloadType": subscriber.pt(Codec::Vp8), "clockRate": 90000,
          "rtcpFeedback": [{ "type": "nack", "parameter": "pli" }] }], "headerExtensions": [] });
    let mut consumer_ssrcs = [0; 2];
    for (i, (producer, mid, kind)) in [
        (&producers[0], "v", MediaKind::Video),
        (&producers[1], "a", MediaKind::Audio),
    ]
    .into_iter()
    .enumerate()
    {
        let data = json!({ "producerId": producer, "rtpCapabilities": caps });
        let c = request(
            &mut core,
            now,
            "transport.consume",
            Some(&transports[1]),
            data,
        );
        let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
        consumer_ssrcs[i] = ssrc;
        let mut api = subscriber.rtc.direct_api();
        api.declare_media(mid.into(), kind);
        api.expect_stream_rx(ssrc.into(), None, mid.into(), None);
    }

    let mut out = SendBatch::new();
    let mut drop_one = false;
    for step in 0u32..400 {
        now += Duration::from_millis(10);
        if publisher.connected && subscriber.connected && step % 2 == 0 && step < 300 {
            let i = step / 2;
            let mut api = publisher.rtc.direct_api();
            let mut video = vec![
                0x10,
                if i % 30 == 0 { 0x00 } else { 0x01 },
                0x00,
                0x00,
                0x9d,
                0x01,
                0x2a,
            ];
            video.extend(std::iter::repeat_n(i as u8, 1000));
            let tx = api.stream_tx(&f::VIDEO_SSRC.into()).unwrap();
            tx.write_rtp(RtpWrite::new(
                vp8.into(),
                u64::from(7000 + i).into(),
                i * 3000,
                now,
                video,
            ));
            let tx = api.stream_tx(&f::AUDIO_SSRC.into()).unwrap();
            tx.write_rtp(RtpWrite::new(
                opus.into(),
                u64::from(100 + i).into(),
                i * 960,
                now,
                vec![0xfc; 80],
            ));
            if i == 40 {
                drop_one = true;
            }
            if i == 60 {
                let mut api = subscriber.rtc.direct_api();
                api.stream_rx(&consumer_ssrcs[0].into())
                    .unwrap()
                    .request_keyframe(KeyframeRequestKind::Pli);
            }
        }
        pump(&mut publisher, &mut core, now, &mut out);
        pump(&mut subscriber, &mut core, now, &mut out);
        core.handle_timeout(now, &mut out);
        deliver(
            &mut out,
            &mut [&mut publisher, &mut subscriber],
            now,
            &mut drop_one,
        );
    }
    assert!(
        publisher.connected && subscriber.connected,
        "str0m peers connect to the core"
    );
    (publisher.capture, subscriber.capture, consumer_ssrcs)
}

struct Corpus {
    root: PathBuf,
}

impl Corpus {
    fn write(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
    }
}

fn with_prefix(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    [prefix, rest].concat()
}

/// Strips MESSAGE-INTEGRITY and FINGERPRINT and renames the USERNAME's local part to the
/// `stun` target's ufrag, so the target's fix-ups make the check pass.
fn for_stun_target(msg: &[u8]) -> Option<Vec<u8>> {
    let ufrag = f::stun_credentials().ufrag;
    let mut attrs = Vec::new();
    let mut pos = 20;
    while let Some(h) = msg.get(pos..pos + 4) {
        let typ = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let value = msg.get(pos + 4..pos + 4 + len)?;
        pos += 4 + len.next_multiple_of(4);
        match typ {
            0x0008 | 0x8028 => break,
            0x0006 => {
                let remote = value.split(|&b| b == b':').nth(1)?;
                let username = [ufrag.as_bytes(), b":", remote].concat();
                attrs.extend([0x00, 0x06]);
                attrs.extend((username.len() as u16).to_be_bytes());
                attrs.extend(&username);
                attrs.resize(attrs.len().next_multiple_of(4), 0);
            }
            _ => {
                attrs.extend(&h[..4]);
                attrs.extend(value);
                attrs.resize(attrs.len().next_multiple_of(4), 0);
            }
        }
    }
    let mut m = msg.get(..20)?.to_vec();
    m[2..4].copy_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend(attrs);
    Some(m)
}

fn replace_word(buf: &mut [u8], from: u32, to: u32) {
    let (from, to) = (from.to_be_bytes(), to.to_be_bytes());
    for i in 0..buf.len().saturating_sub(3) {
        if buf[i..i + 4] == from {
            buf[i..i + 4].copy_from_slice(&to);
        }
    }
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/corpus".into());
    let corpus = Corpus {
        root: Path::new(&root).to_path_buf(),
    };
    let (publisher, subscriber, consumer_ssrcs) = record_call();
    eprintln!(
        "recorded: publisher {} STUN, {} DTLS, {} RTP, {} RTCP; subscriber {} STUN, {} DTLS, {} RTCP",
        publisher.stun.len(),
        publisher.dtls.len(),
        publisher.rtp.len(),
        publisher.rtcp.len(),
        subscriber.stun.len(),
        subscriber.dtls.len(),
        subscriber.rtcp.len()
    );

    // stun: str0m's checks as they are (wrong credentials: parser and rejections), re-sealed
    // for the target's credentials, and hand-made edge cases.
    use f::stun_flags::{FINGERPRINT, INTEGRITY, IPV6, USERNAME};
    for (i, m) in publisher.stun.iter().take(3).enumerate() {
        corpus.write("stun", &format!("str0m-raw-{i}"), &with_prefix(&[0], m));
        if let Some(m) = for_stun_target(m) {
            corpus.write(
                "stun",
                &format!("str0m-sealed-{i}"),
                &with_prefix(&[INTEGRITY | FINGERPRINT], &m),
            );
            corpus.write(
                "stun",
                &format!("str0m-sealed6-{i}"),
                &with_prefix(&[INTEGRITY | FINGERPRINT | IPV6], &m),
            );
        }
    }
    let header = |typ: u16, len: u16| {
        let mut h = typ.to_be_bytes().to_vec();
        h.extend(len.to_be_bytes());
        h.extend([0x21, 0x12, 0xA4, 0x42]);
        h.extend(*b"fuzztxid0001");
        h
    };
    corpus.write(
        "stun",
        "19-bytes",
        &with_prefix(&[0], &header(0x0001, 0)[..19]),
    );
    corpus.write(
        "stun",
        "header-only",
        &with_prefix(&[USERNAME | INTEGRITY | FINGERPRINT], &header(0x0001, 0)),
    );
    corpus.write(
        "stun",
        "length-past-end",
        &with_prefix(&[0], &header(0x0001, 400)),
    );
    corpus.write(
        "stun",
        "indication",
        &with_prefix(&[USERNAME | INTEGRITY | FINGERPRINT], &header(0x0011, 0)),
    );
    let mut conflict = header(0x0001, 0);
    conflict.extend([
        0x80, 0x29, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x00, 0x25, 0x00, 0x00,
    ]);
    corpus.write(
        "stun",
        "role-conflict-use-candidate",
        &with_prefix(&[USERNAME | INTEGRITY | FINGERPRINT], &conflict),
    );
    let mut truncated_attr = header(0x0001, 8);
    truncated_attr.extend([0x00, 0x06, 0x00, 0x40, b'a', b':', b'b', 0]);
    corpus.write(
        "stun",
        "attribute-past-end",
        &with_prefix(&[0], &truncated_attr),
    );

    // dtls: str0m's flights (the later ones answer another server, which is fine: they
    // reach the record layer and the handshake parser).
    let mut flights = vec![0u8];
    let mut after_hello = vec![f::dtls_flags::CLIENT_HELLO];
    for d in &publisher.dtls {
        push_frame(&mut flights, d);
        push_frame(&mut after_hello, d);
    }
    corpus.write("dtls", "str0m-flights", &flights);
    corpus.write("dtls", "str0m-flights-after-client-hello", &after_hello);
    if let Some(hello) = publisher.dtls.first() {
        let mut one = vec![f::dtls_flags::TIMERS];
        push_frame(&mut one, hello);
        corpus.write("dtls", "str0m-client-hello-timers", &one);
        let mut cut = vec![0u8];
        push_frame(&mut cut, &hello[..hello.len().min(25)]);
        corpus.write("dtls", "truncated-client-hello", &cut);
    }
    let mut post = vec![f::dtls_flags::HANDSHAKE | f::dtls_flags::FINGERPRINT];
    push_frame(
        &mut post,
        &[21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 2, 2, 0],
    );
    corpus.write("dtls", "alert-after-handshake", &post);

    // rtp and rtcp: str0m's plaintext packets.
    for (i, p) in publisher
        .rtp
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 40 == 0)
    {
        corpus.write(
            "rtp",
            &format!("str0m-{i}"),
            &with_prefix(&[i as u8 % 4], p),
        );
    }
    let mut rtcp_all: Vec<&Vec<u8>> = publisher.rtcp.iter().chain(&subscriber.rtcp).collect();
    rtcp_all.sort_by_key(|p| (p.get(1).copied(), p.len()));
    rtcp_all.dedup_by_key(|p| (p.get(1).copied(), p.len()));
    for (i, p) in rtcp_all.iter().enumerate() {
        corpus.write("rtcp", &format!("str0m-{i}"), p);
    }
    let mut ext = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xBE, 0xDE, 0, 2];
    ext.extend([0x22, 1, 2, 3, 0x40, 9, 0xF0, 0]);
    ext.extend(b"payload");
    corpus.write("rtp", "one-byte-extensions", &with_prefix(&[1], &ext));
    let mut two = vec![
        0xB0, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x10, 0x00, 0, 1, 200, 2, 7, 7, 0x01,
    ];
    two.push(1);
    corpus.write(
        "rtp",
        "two-byte-extension-padding",
        &with_prefix(&[3], &two),
    );
    corpus.write(
        "rtp",
        "csrc-count-past-end",
        &with_prefix(&[0], &[0x8f, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2]),
    );
    corpus.write(
        "rtcp",
        "length-past-end",
        &[0x81, 201, 0x00, 0x10, 0, 0, 0, 1],
    );
    corpus.write(
        "rtcp",
        "fir-odd-fci",
        &[0x84, 206, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5],
    );

    // srtp: the same packets protected with the target's keys, one context per file.
    for (name, profile) in [
        ("gcm", SrtpProfile::AeadAes128Gcm),
        ("cm", SrtpProfile::Aes128CmHmacSha1_80),
    ] {
        let (mut tx, _) = f::srtp_contexts(profile);
        let mut input = vec![u8::from(profile == SrtpProfile::Aes128CmHmacSha1_80)];
        for (op, plain) in publisher
            .rtp
            .iter()
            .take(4)
            .map(|p| (0, p))
            .chain(rtcp_all.iter().take(3).map(|p| (1, *p)))
        {
            let mut buf = plain.clone();
            buf.resize(plain.len() + profile.rtcp_overhead(), 0);
            let n = if op == 0 {
                tx.protect_rtp(&mut buf, plain.len())
            } else {
                tx.protect_rtcp(&mut buf, plain.len())
            }
            .unwrap();
            input.push(op);
            push_frame(&mut input, &buf[..n]);
        }
        input.push(f::srtp_ops::ROUND_TRIP_RTP);
        push_frame(&mut input, &publisher.rtp[5]);
        input.push(f::srtp_ops::ROUND_TRIP_RTCP);
        push_frame(&mut input, rtcp_all[0]);
        corpus.write("srtp", &format!("str0m-{name}"), &input);
    }

    // control: the requests of docs/PROTOCOL.md, with $n for the ids handed out.
    let requests = [
        json!({"id": 1, "method": "worker.load"}),
        json!({"id": 2, "method": "worker.getStats"}),
        json!({"id": 3, "method": "worker.getLatency", "data": {"reset": true}}),
        json!({"id": 4, "method": "router.create", "data": {"appData": {"room": "standup"}}}),
        json!({"id": 5, "method": "router.getStats", "target": "$0"}),
        json!({"id": 6, "method": "transport.create", "target": "$0", "data": {"appData": {"peer": "ada"}}}),
        json!({"id": 7, "method": "transport.create", "target": "$0"}),
        json!({"id": 8, "method": "transport.connect", "target": "$1",
            "data": {"dtlsParameters": {"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": "1F:0A:C3"}]}}}),
        json!({"id": 9, "method": "transport.produce", "target": "$1", "data": {"kind": "video", "rtpParameters": {
            "mid": "0",
            "codecs": [
              {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000,
               "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}, {"type": "ccm", "parameter": "fir"}]},
              {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}}],
            "headerExtensions": [
              {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4},
              {"uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 2}],
            "encodings": [{"ssrc": 2848401125u32, "rtx": {"ssrc": 1312093114}}],
            "rtcp": {"cname": "ada-cam", "reducedSize": true}}, "appData": {"peer": "ada"}}}),
        json!({"id": 10, "method": "transport.consume", "target": "$2", "data": {"producerId": "$3", "rtpCapabilities": {
            "codecs": [
              {"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 111, "clockRate": 48000, "channels": 2},
              {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 100, "clockRate": 90000,
               "rtcpFeedback": [{"type": "nack", "parameter": "pli"}, {"type": "ccm", "parameter": "fir"}]}],
            "headerExtensions": [
              {"kind": "video", "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "preferredId": 3}]}}}),
        json!({"id": 11, "method": "transport.getStats", "target": "$1"}),
        json!({"id": 12, "method": "producer.pause", "target": "$3"}),
        json!({"id": 13, "method": "producer.getStats", "target": "$3"}),
        json!({"id": 14, "method": "consumer.resume", "target": "$4"}),
        json!({"id": 15, "method": "consumer.getStats", "target": "$4"}),
        json!({"id": 16, "method": "consumer.requestKeyFrame", "target": "$4"}),
        json!({"id": 17, "method": "producer.resume", "target": "$3"}),
        json!({"id": 18, "method": "consumer.pause", "target": "$4"}),
        json!({"id": 19, "method": "consumer.close", "target": "$4"}),
        json!({"id": 20, "method": "producer.close", "target": "$3"}),
        json!({"id": 21, "method": "transport.close", "target": "$1"}),
        json!({"id": 22, "method": "router.close", "target": "$0"}),
    ];
    let mut stream = Vec::new();
    for r in &requests {
        stream.extend(sfu::channel::framing::encode(
            &serde_json::to_vec(r).unwrap(),
        ));
    }
    corpus.write(
        "control",
        "protocol-md-whole",
        &with_prefix(&[255], &stream),
    );
    corpus.write(
        "control",
        "protocol-md-bytewise",
        &with_prefix(&[1], &stream),
    );
    let mut odd = Vec::new();
    for body in [
        &b"{\"id\": 7, \"method\": 3}"[..],
        b"\xff\x00garbage",
        b"",
        b"{\"id\":1,\"method\":\"router.explode\"}",
    ] {
        odd.extend(sfu::channel::framing::encode(body));
    }
    odd.extend((2u32 << 20).to_be_bytes());
    odd.extend(b"partial oversized body");
    corpus.write(
        "control",
        "malformed-and-oversized",
        &with_prefix(&[7], &odd),
    );

    // worker: op sequences. Plaintext from str0m is made to match the harness's streams
    // (payload types) and consumers (the SSRCs its seeded core picks).
    let as_harness_rtp = |p: &Vec<u8>| {
        let mut p = p.clone();
        let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
        let pt = if ssrc == f::VIDEO_SSRC {
            f::VP8_PT
        } else {
            f::OPUS_PT
        };
        p[1] = (p[1] & 0x80) | pt;
        p
    };
    let as_harness_rtcp = |p: &Vec<u8>| {
        let mut p = p.clone();
        for (recorded, harness) in consumer_ssrcs.into_iter().zip(f::consumer_ssrcs()) {
            replace_word(&mut p, recorded, harness);
        }
        p
    };
    let mut str0m_ops: Vec<Op> = publisher
        .rtp
        .iter()
        .take(24)
        .map(|p| Op::Srtp {
            peer: 0,
            rtcp: false,
            plain: as_harness_rtp(p),
        })
        .collect();
    str0m_ops.extend(publisher.rtcp.iter().take(2).map(|p| Op::Srtp {
        peer: 0,
        rtcp: true,
        plain: p.clone(),
    }));
    str0m_ops.extend(subscriber.rtcp.iter().take(6).map(|p| Op::Srtp {
        peer: 1,
        rtcp: true,
        plain: as_harness_rtcp(p),
    }));
    str0m_ops.push(Op::Advance { millis: 70 });
    corpus.write(
        "worker",
        "str0m-media-and-feedback",
        &encode_ops(&str0m_ops),
    );

    let media = |stream: u8, seq: u16, flags: u8| Op::Media {
        stream,
        seq,
        ts: u32::from(seq) * 3000,
        flags,
        payload: vec![0xAA; 40],
    };
    let call = vec![
        media(0, 10, 2),
        media(0, 11, 1),
        media(1, 500, 0),
        Op::Feedback { kind: 0, value: 0 },
        Op::Feedback { kind: 1, value: 1 },
        Op::Feedback {
            kind: 4,
            value: 0x1234_5678,
        },
        Op::Advance { millis: 70 },
        Op::Feedback {
            kind: 2,
            value: 0x0001_0000,
        },
        Op::Feedback {
            kind: 3,
            value: 0x4000_0041,
        },
        media(0, 13, 0x10 | 2),
        media(0, 12, 0),
        media(2, 1, 0),
        media(3, 1, 0),
        media(0, 14, 4),
        Op::Advance { millis: 2000 },
    ];
    corpus.write("worker", "harness-media-and-feedback", &encode_ops(&call));

    let mut control = vec![media(0, 1, 2)];
    for action in 0..16 {
        control.push(Op::Control { action });
        control.push(media(
            0,
            2 + u16::from(action),
            if action % 3 == 0 { 2 } else { 0 },
        ));
        control.push(media(1, 2 + u16::from(action), 0));
    }
    corpus.write("worker", "harness-control-actions", &encode_ops(&control));

    let ice = vec![
        Op::Stun {
            transport: 0,
            from: 2,
            flags: 0,
        },
        Op::Stun {
            transport: 0,
            from: 2,
            flags: 1,
        },
        media(0, 1, 2),
        Op::Stun {
            transport: 1,
            from: 3,
            flags: 1,
        },
        Op::Stun {
            transport: 1,
            from: 4,
            flags: 3,
        },
        Op::Advance { millis: 1000 },
        Op::Advance { millis: 1000 },
        media(0, 2, 2),
        Op::Stun {
            transport: 0,
            from: 0,
            flags: 1,
        },
        Op::Datagram {
            from: 3,
            bytes: publisher.stun[0].clone(),
        },
    ];
    corpus.write("worker", "harness-ice-moves-and-consent", &encode_ops(&ice));

    let mut garbage = vec![
        Op::Datagram {
            from: 0,
            bytes: vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 9, 0, 3, 1, 2, 3],
        },
        Op::Datagram {
            from: 0,
            bytes: vec![21, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 2, 1, 0],
        },
        Op::Datagram {
            from: 1,
            bytes: vec![0x80, 0x60, 0, 1],
        },
        Op::Datagram {
            from: 1,
            bytes: vec![0x81, 0xc9, 0, 1],
        },
        Op::Datagram {
            from: 3,
            bytes: vec![0x80; 40],
        },
        Op::Srtp {
            peer: 0,
            rtcp: false,
            plain: vec![0x80, 0x60, 0, 1, 0, 0, 0, 1],
        },
        Op::Srtp {
            peer: 1,
            rtcp: true,
            plain: vec![0x81, 0xce, 0, 2, 0, 0, 0, 1, 0xC0, 0xC0, 0, 1],
        },
    ];
    garbage.extend(publisher.dtls.iter().take(2).map(|d| Op::Datagram {
        from: 0,
        bytes: d.clone(),
    }));
    garbage.push(media(0, 9, 2));
    corpus.write("worker", "harness-garbage-and-dtls", &encode_ops(&garbage));

    let requests_ops: Vec<Op> = [
        r#"{"id": 1, "method": "transport.connect", "target": "$1", "data": {"dtlsParameters": {"role": "auto", "fingerprints": [{"algorithm": "sha-256", "value": "00"}]}}}"#,
        r#"{"id": 2, "method": "transport.consume", "target": "$2", "data": {"producerId": "$3", "paused": true, "rtpCapabilities": {"codecs": [{"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 101, "clockRate": 90000}]}}}"#,
        r#"{"id": 3, "method": "consumer.resume", "target": "$7"}"#,
        r#"{"id": 4, "method": "transport.produce", "target": "$2", "data": {"kind": "audio", "rtpParameters": {"codecs": [{"mimeType": "audio/opus", "payloadType": 100, "clockRate": 48000, "channels": 2}], "encodings": [{"ssrc": 77}]}}}"#,
        r#"{"id": 5, "method": "transport.consume", "target": "$1", "data": {"producerId": "$8", "rtpCapabilities": {"codecs": [{"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 109, "clockRate": 48000, "channels": 2}]}}}"#,
        r#"{"id": 6, "method": "router.close", "target": "$0"}"#,
    ]
    .iter()
    .map(|j| Op::Request { json: j.as_bytes().to_vec() })
    .chain([media(0, 1, 2), media(1, 1, 0)])
    .collect();
    corpus.write(
        "worker",
        "harness-json-requests",
        &encode_ops(&requests_ops),
    );
}
