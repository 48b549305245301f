//! The usual call, set up through the control protocol the way signaling sets one up: a
//! publisher with Opus audio (`a`) and VP8 video (`v`, with RTX if asked) and
//! subscribers that each consume both, all connected; and the publisher's media clock.

use std::time::{Duration, Instant};

use serde_json::Value;
use sfu_control::params::{
    self, CodecParameters, RtcpFeedback, RtcpParameters, RtpCapabilities, RtpCodecCapability,
    RtpCodecParameters, RtpEncodingParameters, RtpHeaderExtensionCapability,
    RtpHeaderExtensionParameters, RtpParameters, RtxParameters,
};
use sfu_control::requests::{
    RouterCreateActiveSpeakerObserver, RtpObserverAddProducer, TransportConsume, TransportProduce,
};
use str0m::bwe::Bitrate;
use str0m::format::Codec;
use str0m::media::MediaKind;

use super::{indexed, FeedbackKind, PeerId, Record, Sim};
use crate::rtp::audio_level::AUDIO_LEVEL_URI;

pub(crate) const AUDIO_SSRC: u32 = 0x1111_0001;
pub(crate) const VIDEO_SSRC: u32 = 0x2222_0002;
pub(crate) const VIDEO_RTX_SSRC: u32 = 0x2222_0003;
pub(crate) const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
/// str0m's standard extension map has transport-wide-cc at id 3.
pub(crate) const TWCC_ID: u8 = 3;
/// The playout-delay extension's id toward subscribers (`bwe::playout`).
pub(crate) const PLAYOUT_DELAY_ID: u8 = 6;
pub(crate) const PLAYOUT_DELAY_URI: &str =
    "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay";
/// str0m's standard extension map sends the audio level with id 1, as Chrome does.
const AUDIO_LEVEL_ID: u8 = 1;
/// One video packet per this interval, one audio packet per two.
pub(crate) const PACKET_INTERVAL: Duration = Duration::from_millis(10);
/// Video payload size (so ~480 kbit/s of video at 100 packets/s).
const VIDEO_BYTES: usize = 600;
/// Video packets between two keyframes when nobody asks for one.
const KEYFRAME_INTERVAL: u32 = 100;

/// What the call negotiates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallConfig {
    pub(crate) subscribers: usize,
    /// NACK (and RTX for video) on the publisher's producers and subscribers' consumers.
    pub(crate) nack: bool,
    /// transport-cc both ways; the publisher's str0m runs its send-side estimator from
    /// this start.
    pub(crate) twcc: Option<u64>,
    /// The publisher sends its audio as RED (RFC 2198, as Chromium does: each packet
    /// carries the previous frame too), produced with `audio/red` first.
    pub(crate) red: bool,
}

impl Default for CallConfig {
    fn default() -> Self {
        Self {
            subscribers: 2,
            nack: true,
            twcc: None,
            red: false,
        }
    }
}

/// str0m's RED payload type for Opus (`enable_opus(true, true)`), as Chromium's.
pub(crate) const RED_PT: u8 = 63;

/// One subscriber: its peer, transport and consumers.
#[derive(Debug, Clone)]
pub(crate) struct Subscriber {
    pub(crate) peer: PeerId,
    pub(crate) transport: String,
    /// Audio and video consumer ids and SSRCs.
    pub(crate) audio: (String, u32),
    pub(crate) video: (String, u32),
}

/// A call in a [`Sim`].
pub(crate) struct Call {
    pub(crate) sim: Sim,
    pub(crate) config: CallConfig,
    pub(crate) router: String,
    pub(crate) publisher: PeerId,
    pub(crate) publisher_transport: String,
    pub(crate) audio_producer: String,
    pub(crate) video_producer: String,
    pub(crate) subs: Vec<Subscriber>,
    /// Payload types the publisher sends with.
    pub(crate) opus: u8,
    pub(crate) vp8: u8,
    /// Video and audio packets written so far.
    pub(crate) video_sent: u32,
    pub(crate) audio_sent: u32,
    /// Indexes of the video packets that were keyframes.
    pub(crate) keyframes: Vec<u32>,
    /// Keyframe requests the publisher has answered.
    keyframe_requests_seen: usize,
    /// When the next media packet is due.
    next_packet: Instant,
}

impl Call {
    /// Sets up and connects the call in a fresh simulation drawing from `seed`.
    pub(crate) fn new(seed: u64, config: CallConfig) -> Self {
        let mut sim = Sim::new(seed);
        let router = sim.create_router();
        let publisher = sim.add_peer("pub", |b| {
            let b = b.enable_opus(true, config.red);
            match config.twcc {
                Some(start) => b.enable_bwe(Some(Bitrate::bps(start))),
                None => b,
            }
        });
        let publisher_transport = sim.connect(publisher, &router);
        let (opus, _) = sim.peer(publisher).pt(Codec::Opus);
        let (vp8, vp8_rtx) = sim.peer(publisher).pt(Codec::Vp8);
        let rtx = if config.nack { vp8_rtx } else { None };
        let p = sim.peer(publisher);
        p.send_stream("a", MediaKind::Audio, AUDIO_SSRC, None);
        p.send_stream(
            "v",
            MediaKind::Video,
            VIDEO_SSRC,
            rtx.map(|_| VIDEO_RTX_SSRC),
        );
        let audio_producer = produce(
            &mut sim,
            &publisher_transport,
            params::MediaKind::Audio,
            opus,
            None,
            config,
        );
        sim.label(&audio_producer, "audio-producer");
        let video_producer = produce(
            &mut sim,
            &publisher_transport,
            params::MediaKind::Video,
            vp8,
            rtx,
            config,
        );
        sim.label(&video_producer, "video-producer");
        let mut call = Self {
            next_packet: sim.now(),
            sim,
            config,
            router,
            publisher,
            publisher_transport,
            audio_producer,
            video_producer,
            subs: Vec::new(),
            opus,
            vp8,
            video_sent: 0,
            audio_sent: 0,
            keyframes: Vec::new(),
            keyframe_requests_seen: 0,
        };
        for i in 0..config.subscribers {
            call.add_subscriber(&format!("sub{}", i + 1));
        }
        let mut peers = vec![call.publisher];
        peers.extend(call.subs.iter().map(|s| s.peer));
        call.sim.run_until_connected(&peers, Duration::from_secs(5));
        call.next_packet = call.sim.now();
        call
    }

    /// A subscriber named `name` consuming audio and video, connected.
    pub(crate) fn add_subscriber(&mut self, name: &str) -> usize {
        let twcc = self.config.twcc.is_some();
        let peer = self.sim.add_peer(name, |b| b);
        let transport = self.sim.connect(peer, &self.router);
        if twcc {
            self.sim.peer(peer).rtc.direct_api().enable_twcc_feedback();
        }
        let audio_producer = self.audio_producer.clone();
        let video_producer = self.video_producer.clone();
        let audio = self.consume(peer, &transport, &audio_producer, "a", "a");
        let video = self.consume(peer, &transport, &video_producer, "v", "v");
        self.subs.push(Subscriber {
            peer,
            transport,
            audio,
            video,
        });
        self.subs.len() - 1
    }

    /// A consumer of `producer` on `transport` for `peer`, received by the peer in media
    /// `mid` and traced as stream `stream`: (consumer id, SSRC).
    pub(crate) fn consume(
        &mut self,
        peer: PeerId,
        transport: &str,
        producer: &str,
        mid: &str,
        stream: &str,
    ) -> (String, u32) {
        let rtp_capabilities = self.capabilities(peer);
        let c = self.sim.ok(&TransportConsume {
            transport_id: transport.into(),
            producer_id: producer.into(),
            rtp_capabilities,
            paused: false,
            mid: None,
            preferred_layers: None,
            follow: false,
            app_data: Value::Null,
        });
        let enc = c.rtp_parameters.encodings.first();
        let ssrc = enc.and_then(|e| e.ssrc).unwrap_or_default();
        let rtx = enc.and_then(|e| e.rtx).map(|r| r.ssrc);
        let kind = match c.kind {
            params::MediaKind::Audio => MediaKind::Audio,
            params::MediaKind::Video => MediaKind::Video,
        };
        let name = self.sim.peer(peer).name.clone();
        let id = c.consumer_id.0;
        self.sim.label(&id, &format!("{name}-{stream}-consumer"));
        self.sim
            .peer(peer)
            .recv_stream(stream, mid, kind, ssrc, rtx);
        (id, ssrc)
    }

    /// mediasoup RtpCapabilities for what `peer` receives, with the call's feedback.
    pub(crate) fn capabilities(&mut self, peer: PeerId) -> RtpCapabilities {
        let p = self.sim.peer(peer);
        let (opus, _) = p.pt(Codec::Opus);
        let (vp8, vp8_rtx) = p.pt(Codec::Vp8);
        let mut codecs = vec![
            RtpCodecCapability {
                kind: params::MediaKind::Audio,
                mime_type: "audio/opus".into(),
                preferred_payload_type: opus,
                clock_rate: 48000,
                channels: Some(2),
                parameters: Default::default(),
                rtcp_feedback: vec![],
            },
            RtpCodecCapability {
                kind: params::MediaKind::Video,
                mime_type: "video/VP8".into(),
                preferred_payload_type: vp8,
                clock_rate: 90000,
                channels: None,
                parameters: Default::default(),
                rtcp_feedback: feedback(self.config),
            },
        ];
        if let (true, Some(rtx)) = (self.config.nack, vp8_rtx) {
            codecs.push(RtpCodecCapability {
                kind: params::MediaKind::Video,
                mime_type: "video/rtx".into(),
                preferred_payload_type: rtx,
                clock_rate: 90000,
                channels: None,
                parameters: apt(vp8),
                rtcp_feedback: vec![],
            });
        }
        // With transport-cc, the playout delay too (as Chromium lists both).
        let header_extensions = if self.config.twcc.is_some() {
            vec![
                RtpHeaderExtensionCapability {
                    kind: Some(params::MediaKind::Video),
                    uri: TWCC_URI.into(),
                    preferred_id: TWCC_ID,
                    preferred_encrypt: false,
                    direction: None,
                },
                RtpHeaderExtensionCapability {
                    kind: Some(params::MediaKind::Video),
                    uri: PLAYOUT_DELAY_URI.into(),
                    preferred_id: PLAYOUT_DELAY_ID,
                    preferred_encrypt: false,
                    direction: None,
                },
            ]
        } else {
            vec![]
        };
        RtpCapabilities {
            codecs,
            header_extensions,
        }
    }

    pub(crate) fn sub(&self, i: usize) -> &Subscriber {
        &self.subs[i]
    }

    /// Writes the next video packet now (a keyframe when due or asked for).
    pub(crate) fn send_video(&mut self) -> u32 {
        let i = self.video_sent;
        let requests = self
            .sim
            .trace()
            .records()
            .filter(|r| matches!(r, Record::KeyframeRequest { peer, .. } if peer == "pub"))
            .count();
        let keyframe = i % KEYFRAME_INTERVAL == 0 || requests > self.keyframe_requests_seen;
        self.keyframe_requests_seen = requests;
        if keyframe {
            self.keyframes.push(i);
        }
        let now = self.sim.now();
        let (vp8, publisher) = (self.vp8, self.publisher);
        self.sim.peer(publisher).write(
            now,
            VIDEO_SSRC,
            vp8,
            1000 + u64::from(i),
            i * 900,
            indexed(vp8_payload(i, keyframe, VIDEO_BYTES), i),
        );
        self.video_sent += 1;
        i
    }

    /// Writes the next audio packet now.
    pub(crate) fn send_audio(&mut self) -> u32 {
        let i = self.audio_sent;
        let now = self.sim.now();
        let (opus, publisher) = (self.opus, self.publisher);
        let frame = |i: u32| {
            let mut payload = vec![0xfc];
            payload.extend(std::iter::repeat_n((i % 13) as u8, 80));
            indexed(payload, i)
        };
        let (pt, payload) = if self.config.red {
            (
                RED_PT,
                red_payload(opus, i.checked_sub(1).map(frame), frame(i)),
            )
        } else {
            (opus, frame(i))
        };
        self.sim
            .peer(publisher)
            .write(now, AUDIO_SSRC, pt, 500 + u64::from(i), i * 960, payload);
        self.audio_sent += 1;
        i
    }

    /// Streams media for `d`: a video packet every [`PACKET_INTERVAL`], an audio packet
    /// every other one, half an interval later, the network and every party running in
    /// between. Two streams are never written at the same instant: str0m picks among
    /// streams due together in its hash maps' (random) order.
    pub(crate) fn stream(&mut self, d: Duration) {
        let end = self.sim.now() + d;
        while self.next_packet < end {
            let at = self.next_packet;
            self.sim.run_until(at);
            let i = self.send_video();
            if i % 2 == 0 {
                self.sim.run_until(at + PACKET_INTERVAL / 2);
                self.send_audio();
            }
            self.next_packet = at + PACKET_INTERVAL;
        }
        self.sim.run_until(end);
    }

    /// Lets everything in flight settle for `d` without new media.
    pub(crate) fn idle(&mut self, d: Duration) {
        self.sim.run_for(d);
        self.next_packet = self.next_packet.max(self.sim.now());
    }

    /// How many keyframe requests (PLI or FIR) the publisher got.
    pub(crate) fn publisher_keyframe_requests(&self) -> usize {
        let t = self.sim.trace();
        t.feedback("pub", false, FeedbackKind::Pli) + t.feedback("pub", false, FeedbackKind::Fir)
    }
}

/// A RED payload (RFC 2198) of Opus `pt` as Chromium sends it: the previous frame as the
/// redundant block (960 ticks, 20 ms, earlier), then the primary frame.
fn red_payload(pt: u8, previous: Option<Vec<u8>>, primary: Vec<u8>) -> Vec<u8> {
    let mut p = Vec::new();
    if let Some(prev) = &previous {
        let len = prev.len() as u32 & 0x3ff;
        let word = (960u32 << 10) | len;
        p.push(0x80 | pt);
        p.extend(&word.to_be_bytes()[1..]);
    }
    p.push(pt);
    p.extend(previous.unwrap_or_default());
    p.extend(primary);
    p
}

/// The rtcpFeedback of the call's video codec.
fn feedback(config: CallConfig) -> Vec<RtcpFeedback> {
    let mut fb = vec![
        RtcpFeedback::new("nack", "pli"),
        RtcpFeedback::new("ccm", "fir"),
    ];
    if config.nack {
        fb.push(RtcpFeedback::new("nack", ""));
    }
    if config.twcc.is_some() {
        fb.push(RtcpFeedback::new("transport-cc", ""));
    }
    fb
}

/// The codec parameters of an RTX codec repairing payload type `pt`.
fn apt(pt: u8) -> CodecParameters {
    CodecParameters::from([("apt".to_owned(), Value::from(pt))])
}

/// Produces `kind` on the publisher's transport: its codec with `pt` (and RTX `rtx`).
pub(crate) fn produce(
    sim: &mut Sim,
    transport: &str,
    kind: params::MediaKind,
    pt: u8,
    rtx: Option<u8>,
    config: CallConfig,
) -> String {
    let audio = kind == params::MediaKind::Audio;
    let (mime, rate, ssrc, mid) = if audio {
        ("audio/opus", 48000, AUDIO_SSRC, "a")
    } else {
        ("video/VP8", 90000, VIDEO_SSRC, "v")
    };
    let mut codecs: Vec<RtpCodecParameters> = (audio && config.red)
        .then(|| RtpCodecParameters {
            mime_type: "audio/red".into(),
            payload_type: RED_PT,
            clock_rate: 48000,
            channels: Some(2),
            parameters: Default::default(),
            rtcp_feedback: vec![],
        })
        .into_iter()
        .collect();
    codecs.push(RtpCodecParameters {
        mime_type: mime.into(),
        payload_type: pt,
        clock_rate: rate,
        channels: audio.then_some(2),
        parameters: Default::default(),
        rtcp_feedback: if audio { vec![] } else { feedback(config) },
    });
    let mut encoding = RtpEncodingParameters {
        ssrc: Some(ssrc),
        ..Default::default()
    };
    if let (false, Some(rtx)) = (audio, rtx) {
        codecs.push(RtpCodecParameters {
            mime_type: "video/rtx".into(),
            payload_type: rtx,
            clock_rate: 90000,
            channels: None,
            parameters: apt(pt),
            rtcp_feedback: vec![],
        });
        encoding.rtx = Some(RtxParameters {
            ssrc: VIDEO_RTX_SSRC,
        });
    }
    let header_extensions = if config.twcc.is_some() {
        vec![RtpHeaderExtensionParameters {
            uri: TWCC_URI.into(),
            id: TWCC_ID,
            encrypt: false,
            parameters: Default::default(),
        }]
    } else {
        vec![]
    };
    let p = sim.ok(&TransportProduce {
        transport_id: transport.into(),
        kind,
        rtp_parameters: RtpParameters {
            mid: Some(mid.into()),
            codecs,
            header_extensions,
            encodings: vec![encoding],
            rtcp: RtcpParameters {
                cname: Some("pub".into()),
                ..Default::default()
            },
        },
        paused: false,
        app_data: Value::Null,
    });
    p.producer_id.0
}

/// An Opus producer whose parameters list the audio level extension, as signaling's
/// answer negotiates it.
pub(crate) fn produce_leveled_opus(
    sim: &mut Sim,
    transport: &str,
    opus: u8,
    ssrc: u32,
    cname: &str,
) -> String {
    let p = sim.ok(&TransportProduce {
        transport_id: transport.into(),
        kind: params::MediaKind::Audio,
        rtp_parameters: RtpParameters {
            mid: Some("a".into()),
            codecs: vec![RtpCodecParameters {
                mime_type: "audio/opus".into(),
                payload_type: opus,
                clock_rate: 48000,
                channels: Some(2),
                parameters: Default::default(),
                rtcp_feedback: vec![],
            }],
            header_extensions: vec![RtpHeaderExtensionParameters {
                uri: AUDIO_LEVEL_URI.into(),
                id: AUDIO_LEVEL_ID,
                encrypt: false,
                parameters: Default::default(),
            }],
            encodings: vec![RtpEncodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            }],
            rtcp: RtcpParameters {
                cname: Some(cname.into()),
                ..Default::default()
            },
        },
        paused: false,
        app_data: Value::Null,
    });
    p.producer_id.0
}

/// An active-speaker observer of `router` (labelled "observer") with `producers` added:
/// its id.
pub(crate) fn observe_speakers(sim: &mut Sim, router: &str, producers: &[String]) -> String {
    let observer = sim
        .ok(&RouterCreateActiveSpeakerObserver {
            router_id: router.into(),
            rtp_observer_id: None,
            interval: None,
        })
        .rtp_observer_id
        .0;
    sim.label(&observer, "observer");
    for producer in producers {
        sim.ok(&RtpObserverAddProducer {
            rtp_observer_id: observer.as_str().into(),
            producer_id: producer.as_str().into(),
        });
    }
    observer
}

/// A VP8 payload of `len` bytes after the header: descriptor with S=1 PID=0, then a
/// frame tag; keyframes carry the start code (RFC 6386 9.1), others have the P bit set.
pub(crate) fn vp8_payload(i: u32, keyframe: bool, len: usize) -> Vec<u8> {
    let mut p = vec![
        0x10,
        if keyframe { 0x00 } else { 0x01 },
        0x00,
        0x00,
        0x9d,
        0x01,
        0x2a,
    ];
    p.extend(std::iter::repeat_n((i % 251) as u8, len));
    p
}
