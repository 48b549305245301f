//! Our daemon: started with `--workers 1 --pin false` under `taskset` on the target core,
//! driven through its control channel exactly as the signaling process would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Stdio};

use serde_json::{json, Value};
use sfu_control::params::{
    DtlsFingerprint, DtlsParameters, DtlsRole, MediaKind, RtcpFeedback, RtcpParameters,
    RtpCapabilities, RtpCodecCapability, RtpCodecParameters, RtpEncodingParameters,
    RtpHeaderExtensionCapability, RtpParameters, RtxParameters,
};
use sfu_control::requests::{
    PreferredLayers, RouterCreate, TransportConnect, TransportConsume, TransportCreate,
    TransportProduce, WorkerGetLatency, WorkerGetStats,
};

use super::control::{read_ready_line, Control};
use super::{child_pid, kill_child, Env, PubSpec, Signalled, SubSpec, Target, TargetStats};
use crate::feedback::{RTX_PT, TWCC_ID, TWCC_URI};
use crate::media::{VideoShape, AUDIO_PT, SIMULCAST_LAYERS, VIDEO_PT};
use crate::webrtc::Remote;

pub(crate) struct Sfu {
    child: Child,
    ctl: Control,
    routers: HashMap<usize, String>,
    /// Producer ids (audio, video) per global publisher index: one video producer, or
    /// one per layer of a `VideoShape::Layers` publisher.
    producers: HashMap<usize, (String, Vec<String>, VideoShape)>,
}

impl Sfu {
    pub(crate) fn start(env: &Env) -> Result<Self, String> {
        let dir = env.work_dir.join("sfu-control");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let bin = env.bin_dir.join("sfu");
        let mut cmd = env.command(&bin.to_string_lossy());
        cmd.args([
            "--workers",
            "1",
            "--rtc-port",
            "0",
            "--pin",
            "false",
            "--log",
            "warn",
        ])
        .arg("--control")
        .arg(&dir)
        .args(["--listen-ip", &env.server_ip.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| format!("start sfu: {e}"))?;
        let ready = match read_ready_line(&mut child) {
            Ok(r) => r,
            Err(e) => {
                kill_child(&mut child);
                return Err(e);
            }
        };
        let path = ready["workers"][0]["control"]
            .as_str()
            .ok_or("no control path")?;
        let ctl = Control::connect(std::path::Path::new(path))?;
        Ok(Self {
            child,
            ctl,
            routers: HashMap::new(),
            producers: HashMap::new(),
        })
    }

    fn router(&mut self, room: usize) -> Result<String, String> {
        if let Some(r) = self.routers.get(&room) {
            return Ok(r.clone());
        }
        let id = self
            .ctl
            .request(&RouterCreate {
                app_data: json!({ "room": room }),
            })?
            .router_id
            .0;
        self.routers.insert(room, id.clone());
        Ok(id)
    }

    /// transport.create + transport.connect; returns (transport id, remote).
    fn transport(&mut self, room: usize, fingerprint: &str) -> Result<(String, Remote), String> {
        let router = self.router(room)?;
        let t = self.ctl.request(&TransportCreate {
            router_id: router.into(),
            app_data: Value::Null,
        })?;
        let cand = t.ice_candidates.first().ok_or("no ICE candidate")?;
        let addr: SocketAddr = format!("{}:{}", cand.ip, cand.port)
            .parse()
            .map_err(|e| format!("candidate: {e}"))?;
        let remote = Remote {
            addr,
            ufrag: t.ice_parameters.username_fragment,
            pwd: t.ice_parameters.password,
            dtls_client: true,
        };
        self.ctl.request(&TransportConnect {
            transport_id: t.transport_id.clone(),
            dtls_parameters: DtlsParameters {
                role: DtlsRole::Client,
                fingerprints: vec![DtlsFingerprint {
                    algorithm: "sha-256".into(),
                    value: fingerprint.into(),
                }],
            },
        })?;
        Ok((t.transport_id.0, remote))
    }
}

/// What a subscriber can receive (and a publisher sends): Opus and VP8 with PLI/FIR; with
/// `feedback`, also generic NACK and transport-cc.
fn codec(kind: MediaKind, feedback: bool) -> RtpCodecCapability {
    let mut c = media_codec(kind);
    if feedback {
        c.rtcp_feedback.push(RtcpFeedback::new("transport-cc", ""));
        if kind == MediaKind::Video {
            c.rtcp_feedback.push(RtcpFeedback::new("nack", ""));
        }
    }
    c
}

fn media_codec(kind: MediaKind) -> RtpCodecCapability {
    match kind {
        MediaKind::Audio => RtpCodecCapability {
            kind,
            mime_type: "audio/opus".into(),
            preferred_payload_type: AUDIO_PT,
            clock_rate: 48000,
            channels: Some(2),
            parameters: Default::default(),
            rtcp_feedback: vec![],
        },
        MediaKind::Video => RtpCodecCapability {
            kind,
            mime_type: "video/VP8".into(),
            preferred_payload_type: VIDEO_PT,
            clock_rate: 90000,
            channels: None,
            parameters: Default::default(),
            rtcp_feedback: vec![
                RtcpFeedback::new("nack", "pli"),
                RtcpFeedback::new("ccm", "fir"),
            ],
        },
    }
}

/// An encoding by SSRC only: a single-layer producer's.
fn encoding(ssrc: u32) -> RtpEncodingParameters {
    RtpEncodingParameters {
        ssrc: Some(ssrc),
        ..Default::default()
    }
}

/// The simulcast encodings of `ssrcs` (lowest layer first), as a browser signals them:
/// each with its bitrate and three temporal layers.
fn simulcast_encodings(ssrcs: &[u32]) -> Vec<RtpEncodingParameters> {
    ssrcs
        .iter()
        .zip(SIMULCAST_LAYERS)
        .map(|(&ssrc, layer)| RtpEncodingParameters {
            ssrc: Some(ssrc),
            max_bitrate: u32::try_from(layer.bps).ok(),
            scalability_mode: Some("L1T3".into()),
            ..Default::default()
        })
        .collect()
}

fn produce(
    transport: &str,
    kind: MediaKind,
    mid: usize,
    encodings: Vec<RtpEncodingParameters>,
    feedback: bool,
) -> TransportProduce {
    let c = codec(kind, feedback);
    let mut codecs = vec![RtpCodecParameters {
        mime_type: c.mime_type,
        payload_type: c.preferred_payload_type,
        clock_rate: c.clock_rate,
        channels: c.channels,
        parameters: c.parameters,
        rtcp_feedback: c.rtcp_feedback,
    }];
    // Publishers answer NACKs with RTX (RFC 4588) in the feedback scenarios.
    if feedback && kind == MediaKind::Video {
        codecs.push(RtpCodecParameters {
            mime_type: "video/rtx".into(),
            payload_type: RTX_PT,
            clock_rate: 90000,
            channels: None,
            parameters: [("apt".to_owned(), json!(VIDEO_PT))].into_iter().collect(),
            rtcp_feedback: vec![],
        });
    }
    TransportProduce {
        transport_id: transport.into(),
        kind,
        rtp_parameters: RtpParameters {
            mid: Some(mid.to_string()),
            codecs,
            header_extensions: vec![],
            encodings,
            rtcp: RtcpParameters {
                cname: Some("loadgen".into()),
                ..Default::default()
            },
        },
        paused: false,
        app_data: Value::Null,
    }
}

impl Target for Sfu {
    fn pid(&self) -> u32 {
        child_pid(&self.child)
    }

    fn add_publisher(&mut self, p: &PubSpec) -> Result<Signalled, String> {
        let (t, remote) = self.transport(p.room, &p.fingerprint)?;
        let a = self.ctl.request(&produce(
            &t,
            MediaKind::Audio,
            0,
            vec![encoding(p.audio_ssrc)],
            p.feedback,
        ))?;
        let single = if p.feedback {
            RtpEncodingParameters {
                rtx: Some(RtxParameters {
                    ssrc: p.video_rtx_ssrc,
                }),
                ..encoding(p.video_ssrc())
            }
        } else {
            encoding(p.video_ssrc())
        };
        let video: Vec<Vec<RtpEncodingParameters>> = match p.video {
            VideoShape::Single => vec![vec![single]],
            VideoShape::Simulcast => vec![simulcast_encodings(&p.video_ssrcs)],
            VideoShape::Layers => p.video_ssrcs.iter().map(|&s| vec![encoding(s)]).collect(),
        };
        let mut v = Vec::new();
        for (i, encodings) in video.into_iter().enumerate() {
            let created =
                self.ctl
                    .request(&produce(&t, MediaKind::Video, i + 1, encodings, p.feedback))?;
            v.push(created.producer_id.0);
        }
        self.producers
            .insert(p.index, (a.producer_id.0, v, p.video));
        Ok(Signalled::Ice(remote))
    }

    fn add_subscriber(&mut self, s: &SubSpec) -> Result<Signalled, String> {
        let (t, remote) = self.transport(s.room, &s.fingerprint)?;
        let caps = RtpCapabilities {
            codecs: vec![
                codec(MediaKind::Audio, s.feedback),
                codec(MediaKind::Video, s.feedback),
            ],
            // transport-cc on what it receives, in the feedback scenarios.
            header_extensions: if s.feedback {
                [MediaKind::Audio, MediaKind::Video]
                    .into_iter()
                    .map(|kind| RtpHeaderExtensionCapability {
                        kind: Some(kind),
                        uri: TWCC_URI.into(),
                        preferred_id: TWCC_ID,
                        preferred_encrypt: false,
                        direction: None,
                    })
                    .collect()
            } else {
                vec![]
            },
        };
        let mut mid = 0;
        for p in &s.publishers {
            let (a, v, shape) = self.producers.get(p).cloned().ok_or("unknown publisher")?;
            // A simulcast consumer starts on the subscriber's layer (every temporal
            // layer); with one producer per layer, the subscriber consumes its layer's.
            let (layer, preferred_layers) = match shape {
                VideoShape::Single => (0, None),
                VideoShape::Simulcast => (
                    0,
                    Some(PreferredLayers {
                        spatial_layer: s.layer,
                        temporal_layer: None,
                    }),
                ),
                VideoShape::Layers => (usize::from(s.layer), None),
            };
            let video = v.get(layer).cloned().ok_or("no such layer")?;
            for (producer, preferred_layers) in [(a, None), (video, preferred_layers)] {
                self.ctl.request(&TransportConsume {
                    transport_id: t.as_str().into(),
                    producer_id: producer.into(),
                    rtp_capabilities: caps.clone(),
                    paused: false,
                    mid: Some(mid.to_string()),
                    preferred_layers,
                    follow: false,
                    app_data: Value::Null,
                })?;
                mid += 1;
            }
        }
        Ok(Signalled::Ice(remote))
    }

    fn stats(&mut self, reset: bool) -> Result<TargetStats, String> {
        let latency = self.ctl.request(&WorkerGetLatency { reset })?;
        let latency = serde_json::to_value(latency).map_err(|e| e.to_string())?;
        let extra = if reset {
            Value::Null
        } else {
            let stats = self.ctl.request(&WorkerGetStats::default())?;
            serde_json::to_value(stats).map_err(|e| e.to_string())?
        };
        Ok(TargetStats {
            latency: Some(latency),
            extra,
        })
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}
