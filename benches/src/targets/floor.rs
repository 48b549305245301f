//! The floor as a target: `sfu-loadgen floor` started like the daemon, sessions
//! registered with pre-shared SRTP keying material instead of ICE and DTLS.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Stdio};

use ::sfu::srtp::SrtpProfile;
use rand::Rng;
use serde_json::{json, Value};

use super::control::{read_ready_line, Control};
use super::{child_pid, kill_child, Env, PubSpec, Signalled, SubSpec, Target, TargetStats};

pub(crate) struct Floor {
    child: Child,
    ctl: Control,
    media: SocketAddr,
    /// (audio, video) SSRCs per global publisher index.
    ssrcs: HashMap<usize, (u32, u32)>,
}

impl Floor {
    pub(crate) fn start(env: &Env) -> Result<Self, String> {
        let sock = env.work_dir.join("floor.sock");
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut cmd = env.command(&exe.to_string_lossy());
        cmd.args(["floor", "--listen", &format!("{}:0", env.server_ip)])
            .arg("--control")
            .arg(&sock)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().map_err(|e| format!("start floor: {e}"))?;
        let ready = match read_ready_line(&mut child) {
            Ok(r) => r,
            Err(e) => {
                kill_child(&mut child);
                return Err(e);
            }
        };
        let media = ready["workers"][0]["media"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or("no media address")?;
        let ctl = Control::connect(&sock)?;
        Ok(Self {
            child,
            ctl,
            media,
            ssrcs: HashMap::new(),
        })
    }

    fn keys() -> (SrtpProfile, Vec<u8>, String) {
        let profile = SrtpProfile::AeadAes128Gcm;
        let mut material = vec![0u8; profile.keying_material_len()];
        rand::thread_rng().fill(&mut material[..]);
        let hex = material.iter().map(|b| format!("{b:02x}")).collect();
        (profile, material, hex)
    }
}

impl Target for Floor {
    fn pid(&self) -> u32 {
        child_pid(&self.child)
    }

    fn add_publisher(&mut self, p: &PubSpec) -> Result<Signalled, String> {
        let (profile, material, hex) = Self::keys();
        self.ctl.call(
            "floor.publisher",
            None,
            json!({ "ssrcs": [p.audio_ssrc, p.video_ssrc()], "profile": "gcm", "material": hex }),
        )?;
        self.ssrcs.insert(p.index, (p.audio_ssrc, p.video_ssrc()));
        Ok(Signalled::Preshared {
            addr: self.media,
            profile,
            material,
        })
    }

    fn add_subscriber(&mut self, s: &SubSpec) -> Result<Signalled, String> {
        let (profile, material, hex) = Self::keys();
        let mut pairs = Vec::new();
        for p in &s.publishers {
            let (a, v) = self.ssrcs.get(p).copied().ok_or("unknown publisher")?;
            // Outgoing SSRCs: any value unique per subscriber stream.
            let mut rng = rand::thread_rng();
            pairs.push(json!([a, rng.gen::<u32>()]));
            pairs.push(json!([v, rng.gen::<u32>()]));
        }
        self.ctl.call(
            "floor.subscriber",
            None,
            json!({ "addr": s.local.to_string(), "ssrcs": pairs, "profile": "gcm", "material": hex }),
        )?;
        Ok(Signalled::Preshared {
            addr: self.media,
            profile,
            material,
        })
    }

    fn stats(&mut self, reset: bool) -> Result<TargetStats, String> {
        let latency = self
            .ctl
            .call("worker.getLatency", None, json!({ "reset": reset }))?;
        // Its counters (received, sent, send calls, GSO datagrams) at the window's end.
        let extra = if reset { Value::Null } else { latency.clone() };
        Ok(TargetStats {
            latency: Some(latency),
            extra,
        })
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}
