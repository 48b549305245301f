//! Janus 1.1 (Debian's `janus`) with the videoroom plugin as a peer SFU: ICE-lite, pinned
//! to the target core with one event loop, HTTP API on the server namespace's 127.0.0.1
//! (reached through `connect_in_netns`). Publishers `joinandconfigure` with our SDP offer;
//! subscribers `join` (multistream: one handle receives every feed of the room) and
//! `start` with our SDP answer.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::sdp::{self, Local};
use super::{child_pid, kill_child, Env, PubSpec, Signalled, SubSpec, Target, TargetStats};
use crate::sys::connect_in_netns;
use crate::webrtc::Remote;

const HTTP_PORT: u16 = 8088;

pub(crate) struct Janus {
    child: Child,
    http: Http,
    session: u64,
    /// Handle used for room management.
    admin: u64,
    rooms: HashMap<usize, u64>,
    /// Publisher handles by global index (their feed id is index + 1).
    publishers: HashMap<usize, u64>,
    /// Events read while waiting for something else.
    backlog: Vec<Value>,
    next_tx: u64,
}

/// Writes Janus's configuration folder: only the videoroom plugin and the HTTP transport.
fn write_config(env: &Env, iface: &str) -> Result<std::path::PathBuf, String> {
    let dir = env.work_dir.join("janus-conf");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let lib = "/usr/lib/x86_64-linux-gnu/janus";
    let plugins: Vec<String> = std::fs::read_dir(format!("{lib}/plugins"))
        .map_err(|e| format!("janus plugins: {e} (is the janus package installed?)"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".so") && !n.contains("videoroom"))
        .collect();
    let transports: Vec<String> = std::fs::read_dir(format!("{lib}/transports"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".so") && !n.contains("http"))
        .collect();
    let main = format!(
        r#"general: {{
	configs_folder = "{dir}"
	plugins_folder = "{lib}/plugins"
	transports_folder = "{lib}/transports"
	events_folder = "{lib}/events"
	loggers_folder = "{lib}/loggers"
	debug_level = 3
	session_timeout = 0
	# One media event loop for all handles: the process is pinned to one core, where one
	# loop beats hundreds of threads switching.
	event_loops = 1
}}
certificates: {{
}}
media: {{
	rtp_port_range = "20000-29999"
	no_media_timer = 0
}}
nat: {{
	nice_debug = false
	ice_lite = true
	ice_enforce_list = "{iface}"
	ignore_mdns = true
}}
plugins: {{
	disable = "{plugins}"
}}
transports: {{
	disable = "{transports}"
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
events: {{
	broadcast = false
}}
"#,
        dir = dir.display(),
        plugins = plugins.join(","),
        transports = transports.join(","),
    );
    std::fs::write(dir.join("janus.jcfg"), main).map_err(|e| e.to_string())?;
    let http = format!(
        "general: {{\n\tjson = \"plain\"\n\tbase_path = \"/janus\"\n\thttp = true\n\tport = {HTTP_PORT}\n\tip = \"127.0.0.1\"\n\thttps = false\n}}\nadmin: {{\n\tadmin_http = false\n}}\ncors: {{\n}}\n"
    );
    std::fs::write(dir.join("janus.transport.http.jcfg"), http).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("janus.plugin.videoroom.jcfg"), "general: {\n}\n")
        .map_err(|e| e.to_string())?;
    Ok(dir)
}

impl Janus {
    pub(crate) fn start(env: &Env, iface: &str) -> Result<Self, String> {
        let conf = write_config(env, iface)?;
        let log = env.work_dir.join("janus.log");
        let mut cmd = env.command("janus");
        cmd.arg("-F")
            .arg(&conf)
            .arg("-C")
            .arg(conf.join("janus.jcfg"))
            .arg("-L")
            .arg(&log)
            .arg("-N")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| format!("start janus: {e}"))?;
        let addr: SocketAddr = ([127, 0, 0, 1], HTTP_PORT).into();
        let deadline = Instant::now() + Duration::from_secs(15);
        let stream = loop {
            let r = match env.netns_path() {
                Some(ns) => connect_in_netns(&ns, addr),
                None => TcpStream::connect(addr),
            };
            match r {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    kill_child(&mut child);
                    return Err(format!(
                        "janus HTTP API never came up ({e}); see {}",
                        log.display()
                    ));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let mut j = Self {
            child,
            http: Http::new(stream)?,
            session: 0,
            admin: 0,
            rooms: HashMap::new(),
            publishers: HashMap::new(),
            backlog: Vec::new(),
            next_tx: 1,
        };
        let r = j.post("/janus", json!({ "janus": "create" }))?;
        j.session = r["data"]["id"]
            .as_u64()
            .ok_or_else(|| format!("create: {r}"))?;
        j.admin = j.attach()?;
        Ok(j)
    }

    fn tx(&mut self) -> String {
        self.next_tx += 1;
        format!("t{}", self.next_tx)
    }

    fn post(&mut self, path: &str, mut body: Value) -> Result<Value, String> {
        body["transaction"] = json!(self.tx());
        let r = self.http.request("POST", path, Some(&body))?;
        if r["janus"] == "error" {
            return Err(format!("janus error: {r}"));
        }
        Ok(r)
    }

    fn attach(&mut self) -> Result<u64, String> {
        let path = format!("/janus/{}", self.session);
        let r = self.post(
            &path,
            json!({ "janus": "attach", "plugin": "janus.plugin.videoroom" }),
        )?;
        r["data"]["id"]
            .as_u64()
            .ok_or_else(|| format!("attach: {r}"))
    }

    /// Sends a plugin message; returns the synchronous response (`success` or `ack`).
    fn message(
        &mut self,
        handle: u64,
        body: Value,
        jsep: Option<Value>,
    ) -> Result<(Value, String), String> {
        let tx = self.tx();
        let mut m = json!({ "janus": "message", "body": body, "transaction": tx });
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        let path = format!("/janus/{}/{handle}", self.session);
        let r = self.http.request("POST", &path, Some(&m))?;
        if r["janus"] == "error" {
            return Err(format!("janus error: {r}"));
        }
        Ok((r, tx))
    }

    /// Long-polls events until one matches `pred`; others are kept.
    fn wait_event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value, String> {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return Ok(self.backlog.remove(i));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let path = format!("/janus/{}?maxev=50", self.session);
            let r = self.http.request("GET", &path, None)?;
            let events = match r {
                Value::Array(a) => a,
                v => vec![v],
            };
            let mut found = None;
            for e in events {
                if e["janus"] == "keepalive" {
                    continue;
                }
                if found.is_none() && pred(&e) {
                    found = Some(e);
                } else if e["janus"] != "media" && e["janus"] != "slowlink" {
                    self.backlog.push(e);
                }
            }
            if let Some(e) = found {
                return Ok(e);
            }
        }
        Err(format!("janus: no {what} within 30 s"))
    }

    fn room(&mut self, room: usize) -> Result<u64, String> {
        if let Some(r) = self.rooms.get(&room) {
            return Ok(*r);
        }
        let id = 1000 + room as u64;
        let (r, _) = self.message(
            self.admin,
            json!({ "request": "create", "room": id, "publishers": 16, "bitrate": 2_000_000,
                    "audiocodec": "opus", "videocodec": "vp8", "notify_joining": false }),
            None,
        )?;
        let data = &r["plugindata"]["data"];
        if data["videoroom"] != "created" {
            return Err(format!("room create: {r}"));
        }
        self.rooms.insert(room, id);
        Ok(id)
    }

    fn remote_from(answer: &sdp::Parsed, dtls_client: bool) -> Result<Remote, String> {
        Ok(Remote {
            addr: answer.candidate.ok_or("janus SDP has no host candidate")?,
            ufrag: answer.ufrag.clone(),
            pwd: answer.pwd.clone(),
            dtls_client,
        })
    }
}

impl Target for Janus {
    fn pid(&self) -> u32 {
        child_pid(&self.child)
    }

    fn add_publisher(&mut self, p: &PubSpec) -> Result<Signalled, String> {
        let room = self.room(p.room)?;
        let handle = self.attach()?;
        let local = Local {
            addr: p.local,
            ufrag: &p.ufrag,
            pwd: &p.pwd,
            fingerprint: &p.fingerprint,
        };
        let offer = sdp::publisher_offer(&local, p.audio_ssrc, p.video_ssrc());
        let (_, tx) = self.message(
            handle,
            json!({ "request": "joinandconfigure", "ptype": "publisher", "room": room, "id": p.index + 1,
                    "audio": true, "video": true }),
            Some(json!({ "type": "offer", "sdp": offer })),
        )?;
        let ev = self.wait_event("publisher answer", |e| {
            e["transaction"] == tx.as_str() && e["janus"] == "event"
        })?;
        let sdp = ev["jsep"]["sdp"]
            .as_str()
            .ok_or_else(|| format!("no answer: {ev}"))?;
        let answer = sdp::parse(sdp);
        self.publishers.insert(p.index, handle);
        // Janus answering `active` makes it the DTLS client.
        let we_client = answer.setup != "active";
        Ok(Signalled::Ice(Self::remote_from(&answer, we_client)?))
    }

    fn publishers_ready(&mut self) -> Result<(), String> {
        let handles: Vec<u64> = self.publishers.values().copied().collect();
        for h in handles {
            self.wait_event("publisher webrtcup", |e| {
                e["janus"] == "webrtcup" && e["sender"] == h
            })?;
        }
        Ok(())
    }

    fn add_subscriber(&mut self, s: &SubSpec) -> Result<Signalled, String> {
        let room = self.room(s.room)?;
        let handle = self.attach()?;
        let streams: Vec<Value> = s
            .publishers
            .iter()
            .map(|p| json!({ "feed": p + 1 }))
            .collect();
        let (_, tx) = self.message(
            handle,
            json!({ "request": "join", "ptype": "subscriber", "room": room, "streams": streams }),
            None,
        )?;
        let ev = self.wait_event("subscriber offer", |e| {
            e["transaction"] == tx.as_str() && e["janus"] == "event"
        })?;
        let sdp = ev["jsep"]["sdp"]
            .as_str()
            .ok_or_else(|| format!("no offer: {ev}"))?;
        let offer = sdp::parse(sdp);
        let local = Local {
            addr: s.local,
            ufrag: &s.ufrag,
            pwd: &s.pwd,
            fingerprint: &s.fingerprint,
        };
        let answer = sdp::subscriber_answer(&local, &offer);
        self.message(
            handle,
            json!({ "request": "start" }),
            Some(json!({ "type": "answer", "sdp": answer })),
        )?;
        Ok(Signalled::Ice(Self::remote_from(&offer, true)?))
    }

    fn stats(&mut self, _reset: bool) -> Result<TargetStats, String> {
        // Janus exposes no forwarding-latency histogram.
        Ok(TargetStats::default())
    }

    fn keepalive(&mut self) {
        let path = format!("/janus/{}", self.session);
        let _ = self.post(&path, json!({ "janus": "keepalive" }));
    }
}

impl Drop for Janus {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

/// A minimal HTTP/1.1 keep-alive client for Janus's JSON API.
struct Http {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Http {
    fn new(stream: TcpStream) -> Result<Self, String> {
        stream
            .set_read_timeout(Some(Duration::from_secs(40)))
            .map_err(|e| e.to_string())?;
        let writer = stream.try_clone().map_err(|e| e.to_string())?;
        Ok(Self {
            reader: BufReader::new(stream),
            writer,
        })
    }

    fn request(&mut self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.writer
            .write_all(req.as_bytes())
            .map_err(|e| format!("janus http write: {e}"))?;
        let mut status = String::new();
        self.reader
            .read_line(&mut status)
            .map_err(|e| format!("janus http read: {e}"))?;
        if !status.contains(" 200") {
            return Err(format!("janus http status: {}", status.trim()));
        }
        let mut len = None;
        let mut chunked = false;
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).map_err(|e| e.to_string())?;
            let h = h.trim();
            if h.is_empty() {
                break;
            }
            let lower = h.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse::<usize>().ok();
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut data = Vec::new();
        if chunked {
            loop {
                let mut size = String::new();
                self.reader
                    .read_line(&mut size)
                    .map_err(|e| e.to_string())?;
                let n = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
                let mut chunk = vec![0u8; n + 2];
                self.reader
                    .read_exact(&mut chunk)
                    .map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                data.extend_from_slice(&chunk[..n]);
            }
        } else {
            let n = len.ok_or("janus http: no content-length")?;
            data.resize(n, 0);
            self.reader
                .read_exact(&mut data)
                .map_err(|e| e.to_string())?;
        }
        serde_json::from_slice(&data).map_err(|e| format!("janus JSON: {e}"))
    }
}
