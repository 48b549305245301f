//! The control channel client of the targets: sfu-control's blocking client, with typed
//! requests for the daemon and raw ones for the floor (which speaks the same framing
//! with methods of its own).

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use sfu_control::client::Client;
use sfu_control::{Request, Response};

pub(crate) struct Control {
    client: Client,
    next_id: u64,
}

impl Control {
    /// Connects and consumes the `ready` notification.
    pub(crate) fn connect(path: &Path) -> Result<Self, String> {
        let client =
            Client::connect(path).map_err(|e| format!("connect {}: {e}", path.display()))?;
        client
            .stream()
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let mut c = Self { client, next_id: 1 };
        let ready = c.read_frame()?;
        if ready["event"] != "ready" {
            return Err(format!("expected ready, got {ready}"));
        }
        Ok(c)
    }

    fn read_frame(&mut self) -> Result<Value, String> {
        let body = self
            .client
            .read_frame()
            .map_err(|e| format!("control read: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("control JSON: {e}"))
    }

    /// Sends a typed request to the daemon and returns its response; notifications in
    /// between are dropped (the generator learns session state from the wire, not from
    /// events).
    pub(crate) fn request<R: Request>(&mut self, request: &R) -> Result<R::Response, String> {
        let result = self.client.request(request).map_err(|e| e.to_string());
        drop(self.client.take_events());
        result
    }

    /// Sends a request by method name and returns its `data` (the floor's methods);
    /// notifications in between are skipped.
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
        self.client
            .send_frame(&body)
            .map_err(|e| format!("control write: {e}"))?;
        loop {
            let v = self.read_frame()?;
            if v.get("event").is_some() {
                continue;
            }
            let r: Response =
                serde_json::from_value(v.clone()).map_err(|e| format!("response {v}: {e}"))?;
            if r.id != Some(id) {
                return Err(format!("response to another request: {v}"));
            }
            return r.into_result().map_err(|e| format!("{method} failed: {e}"));
        }
    }
}

/// Waits for a JSON ready line on a child's stdout. Lines before it that are not JSON
/// are skipped: a wrapper such as heaptrack (`--bin-dir` pointing at a wrapper script,
/// see BENCHMARKS.md "Memory") prints its own.
pub(crate) fn read_ready_line(child: &mut std::process::Child) -> Result<Value, String> {
    use std::io::BufRead;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut reader = std::io::BufReader::new(out);
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("ready line: {e}"))?;
        if n == 0 {
            return Err("exited before its ready line".into());
        }
        if line.starts_with('{') {
            return serde_json::from_str(&line)
                .map_err(|e| format!("bad ready line {line:?}: {e}"));
        }
    }
}
