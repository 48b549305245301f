//! Our daemon: started with `--workers 1 --pin false` under `taskset` on the target core,
//! driven through its control channel exactly as the signaling process would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Stdio};

use serde_json::{json, Value};

use super::control::{read_ready_line, Control};
use super::{child_pid, kill_child, Env, PubSpec, Signalled, SubSpec, Target, TargetStats};
use crate::media::{AUDIO_PT, VIDEO_PT};
use crate::webrtc::Remote;

pub(crate) struct Sfu {
    child: Child,
    ctl: Control,
    routers: HashMap<usize, String>,
    /// Producer ids (audio, video) per global publisher index.
    producers: HashMap<usize, (String, String)>,
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
        let r = self.ctl.call(
            "router.create",
            None,
            json!({ "appData": { "room": room } }),
        )?;
        let id = r["routerId"].as_str().ok_or("no routerId")?.to_owned();
        self.routers.insert(room, id.clone());
        Ok(id)
    }

    /// transport.create + transport.connect; returns (transport id, remote).
    fn transport(&mut self, room: usize, fingerprint: &str) -> Result<(String, Remote), String> {
        let router = self.router(room)?;
        let t = self
            .ctl
            .call("transport.create", Some(&router), json!({}))?;
        let id = t["transportId"]
            .as_str()
            .ok_or("no transportId")?
            .to_owned();
        let cand = &t["iceCandidates"][0];
        let addr: SocketAddr = format!(
            "{}:{}",
            cand["ip"].as_str().unwrap_or_default(),
            cand["port"]
        )
        .parse()
        .map_err(|e| format!("candidate: {e}"))?;
        let remote = Remote {
            addr,
            ufrag: t["iceParameters"]["usernameFragment"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            pwd: t["iceParameters"]["password"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            dtls_client: true,
        };
        let dtls = json!({ "role": "client", "fingerprints": [{ "algorithm": "sha-256", "value": fingerprint }] });
        self.ctl.call(
            "transport.connect",
            Some(&id),
            json!({ "dtlsParameters": dtls }),
        )?;
        Ok((id, remote))
    }
}

fn produce_params(kind: &str, ssrc: u32) -> Value {
    let codec = if kind == "audio" {
        json!({ "mimeType": "audio/opus", "payloadType": AUDIO_PT, "clockRate": 48000, "channels": 2 })
    } else {
        json!({ "mimeType": "video/VP8", "payloadType": VIDEO_PT, "clockRate": 90000,
                "rtcpFeedback": [{ "type": "nack", "parameter": "pli" }, { "type": "ccm", "parameter": "fir" }] })
    };
    json!({ "kind": kind, "rtpParameters": {
        "mid": if kind == "audio" { "0" } else { "1" },
        "codecs": [codec], "encodings": [{ "ssrc": ssrc }], "rtcp": { "cname": "loadgen", "reducedSize": true } } })
}

impl Target for Sfu {
    fn pid(&self) -> u32 {
        child_pid(&self.child)
    }

    fn add_publisher(&mut self, p: &PubSpec) -> Result<Signalled, String> {
        let (t, remote) = self.transport(p.room, &p.fingerprint)?;
        let a = self.ctl.call(
            "transport.produce",
            Some(&t),
            produce_params("audio", p.audio_ssrc),
        )?;
        let v = self.ctl.call(
            "transport.produce",
            Some(&t),
            produce_params("video", p.video_ssrc),
        )?;
        let id = |x: &Value| x["producerId"].as_str().unwrap_or_default().to_owned();
        self.producers.insert(p.index, (id(&a), id(&v)));
        Ok(Signalled::Ice(remote))
    }

    fn add_subscriber(&mut self, s: &SubSpec) -> Result<Signalled, String> {
        let (t, remote) = self.transport(s.room, &s.fingerprint)?;
        let caps = json!({
            "codecs": [
                { "kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": AUDIO_PT, "clockRate": 48000, "channels": 2 },
                { "kind": "video", "mimeType": "video/VP8", "preferredPayloadType": VIDEO_PT, "clockRate": 90000,
                  "rtcpFeedback": [{ "type": "nack", "parameter": "pli" }, { "type": "ccm", "parameter": "fir" }] }],
            "headerExtensions": [] });
        let mut mid = 0;
        for p in &s.publishers {
            let (a, v) = self.producers.get(p).cloned().ok_or("unknown publisher")?;
            for producer in [a, v] {
                self.ctl.call(
                    "transport.consume",
                    Some(&t),
                    json!({ "producerId": producer, "mid": mid.to_string(), "rtpCapabilities": caps }),
                )?;
                mid += 1;
            }
        }
        Ok(Signalled::Ice(remote))
    }

    fn stats(&mut self, reset: bool) -> Result<TargetStats, String> {
        let latency = self
            .ctl
            .call("worker.getLatency", None, json!({ "reset": reset }))?;
        let extra = if reset {
            Value::Null
        } else {
            self.ctl.call("worker.getStats", None, Value::Null)?
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
