//! A blocking client for the daemon's control channel (docs/PROTOCOL.md: 4-byte
//! big-endian length + JSON per frame), also spoken by the floor.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

pub(crate) struct Control {
    stream: UnixStream,
    next_id: u64,
}

impl Control {
    /// Connects and consumes the `ready` notification.
    pub(crate) fn connect(path: &Path) -> Result<Self, String> {
        let stream =
            UnixStream::connect(path).map_err(|e| format!("connect {}: {e}", path.display()))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut c = Self { stream, next_id: 1 };
        let ready = c.read_frame()?;
        if ready["event"] != "ready" {
            return Err(format!("expected ready, got {ready}"));
        }
        Ok(c)
    }

    fn read_frame(&mut self) -> Result<Value, String> {
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .map_err(|e| format!("control read: {e}"))?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream
            .read_exact(&mut body)
            .map_err(|e| format!("control read: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("control JSON: {e}"))
    }

    /// Sends a request and returns its `data`; notifications in between are skipped (the
    /// generator learns session state from the wire, not from events).
    pub(crate) fn call(
        &mut self,
        method: &str,
        target: Option<&str>,
        data: Value,
    ) -> Result<Value, String> {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = json!({ "id": id, "method": method, "data": data });
        if let Some(t) = target {
            req["target"] = json!(t);
        }
        let body = serde_json::to_vec(&req).map_err(|e| e.to_string())?;
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .map_err(|e| format!("control write: {e}"))?;
        loop {
            let v = self.read_frame()?;
            if v.get("event").is_some() {
                continue;
            }
            if v["id"] != json!(id) {
                return Err(format!("response to another request: {v}"));
            }
            if v["accepted"] != json!(true) {
                return Err(format!("{method} failed: {v}"));
            }
            return Ok(v.get("data").cloned().unwrap_or(Value::Null));
        }
    }
}

/// Waits for a JSON ready line on a child's stdout.
pub(crate) fn read_ready_line(child: &mut std::process::Child) -> Result<Value, String> {
    use std::io::BufRead;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| format!("ready line: {e}"))?;
    serde_json::from_str(&line).map_err(|e| format!("bad ready line {line:?}: {e}"))
}
