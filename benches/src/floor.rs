//! The floor: the least work a forwarder of this traffic can do on this machine, as a
//! baseline for the SFU. No ICE, no DTLS, no RTCP, no routing logic: SRTP keys come
//! pre-shared over a control socket. Per received batch it does
//! `recvmmsg -> SRTP unprotect -> for each subscriber: for each packet: header rewrite ->
//! SRTP protect -> sendmmsg`, with UDP GSO folding each subscriber's packets of the batch
//! into one super-datagram. It uses the daemon's own socket layer
//! (`sfu::worker::udp::MediaSocket`, glommio) and SRTP (`sfu::srtp`), so the difference
//! between the two is exactly the SFU's logic and its batching order.
//!
//! Control (same framing as the daemon: 4-byte length + JSON; a `ready` event first):
//! - `floor.publisher {ssrcs, profile, material}`: an incoming publisher (we are the DTLS
//!   server of the pre-shared keying material).
//! - `floor.subscriber {addr, ssrcs: [[in, out], ...], profile, material}`.
//! - `worker.getLatency {reset}`: receive completion to send submission, as the daemon.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{UnixListener, UnixStream};
use glommio::{LocalExecutorBuilder, Placement};
use serde_json::{json, Value};
use sfu::batch::{RecvBatch, SendBatch};
use sfu::srtp::{contexts_from_keying_material, SrtpContext, SrtpProfile};
use sfu::stats::LatencyHistogram;
use sfu::worker::udp::MediaSocket;
use sfu_control::framing::{encode, Frame, FrameDecoder};

/// Datagrams per receive (as the daemon).
const RECV_BATCH: usize = 32;
/// Flush the send batch beyond this many datagrams, checked between subscribers (bounds
/// memory at large fan-out while keeping a subscriber's packets of one receive batch
/// together for GSO). The daemon's value (`worker::shell`): in-daemon latency is measured
/// to the submission of the flush carrying a datagram, so with a larger flush here the
/// kernel's send time of a whole fan-out would fall outside the floor's figure and inside
/// the daemon's. Throughput does not depend on it (`sendmmsg` takes 64 messages a call
/// either way).
const SEND_FLUSH: usize = 1024;
/// Constant added to forwarded sequence numbers: a real forwarder rewrites them, and the
/// generator learns the offset from decrypted packets either way.
const SEQ_OFFSET: u16 = 1000;

struct Publisher {
    ctx: SrtpContext,
    subscribers: Vec<usize>,
}

struct Subscriber {
    addr: SocketAddr,
    ctx: SrtpContext,
    /// (incoming SSRC, outgoing SSRC).
    ssrcs: Vec<(u32, u32)>,
}

#[derive(Default)]
struct Floor {
    publishers: Vec<Publisher>,
    by_ssrc: HashMap<u32, usize>,
    subscribers: Vec<Subscriber>,
    latency: LatencyHistogram,
    received: u64,
    sent: u64,
    dropped: u64,
    /// As the daemon's `udpSendCalls` / `udpGsoDatagrams`.
    send_calls: u64,
    gso_datagrams: u64,
    /// As the daemon's `udpReceiveBatches`.
    receive_batches: u64,
}

fn parse_keys(data: &Value) -> Result<(SrtpProfile, Vec<u8>), String> {
    let profile = match data["profile"].as_str() {
        Some("gcm") => SrtpProfile::AeadAes128Gcm,
        Some("cm") => SrtpProfile::Aes128CmHmacSha1_80,
        _ => return Err("profile must be gcm or cm".into()),
    };
    let hex = data["material"].as_str().ok_or("no material")?;
    let material = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((profile, material))
}

impl Floor {
    fn request(&mut self, method: &str, data: &Value) -> Result<Value, String> {
        match method {
            "floor.publisher" => {
                let (profile, material) = parse_keys(data)?;
                let (_, ctx) = contexts_from_keying_material(profile, &material, false)
                    .map_err(|e| e.to_string())?;
                let idx = self.publishers.len();
                for s in data["ssrcs"].as_array().ok_or("no ssrcs")? {
                    self.by_ssrc
                        .insert(s.as_u64().ok_or("bad ssrc")? as u32, idx);
                }
                self.publishers.push(Publisher {
                    ctx,
                    subscribers: Vec::new(),
                });
                Ok(json!({ "publisher": idx }))
            }
            "floor.subscriber" => {
                let (profile, material) = parse_keys(data)?;
                let (ctx, _) = contexts_from_keying_material(profile, &material, false)
                    .map_err(|e| e.to_string())?;
                let addr: SocketAddr = data["addr"]
                    .as_str()
                    .ok_or("no addr")?
                    .parse()
                    .map_err(|e| format!("addr: {e}"))?;
                let mut ssrcs = Vec::new();
                for pair in data["ssrcs"].as_array().ok_or("no ssrcs")? {
                    let i = pair[0].as_u64().ok_or("bad ssrc")? as u32;
                    let o = pair[1].as_u64().ok_or("bad ssrc")? as u32;
                    ssrcs.push((i, o));
                }
                let idx = self.subscribers.len();
                let mut pubs: Vec<usize> = ssrcs
                    .iter()
                    .filter_map(|(i, _)| self.by_ssrc.get(i).copied())
                    .collect();
                pubs.sort_unstable();
                pubs.dedup();
                for p in pubs {
                    self.publishers[p].subscribers.push(idx);
                }
                self.subscribers.push(Subscriber { addr, ctx, ssrcs });
                Ok(json!({ "subscriber": idx }))
            }
            "worker.getLatency" => {
                let mut v = self.latency.to_json();
                v["received"] = json!(self.received);
                v["sent"] = json!(self.sent);
                v["dropped"] = json!(self.dropped);
                v["udpSendCalls"] = json!(self.send_calls);
                v["udpGsoDatagrams"] = json!(self.gso_datagrams);
                v["udpReceiveBatches"] = json!(self.receive_batches);
                if data["reset"].as_bool() == Some(true) {
                    self.latency.reset();
                }
                Ok(v)
            }
            other => Err(format!("unknown method {other}")),
        }
    }

    /// Unprotects every datagram of the batch in place and returns, sorted by publisher,
    /// (publisher, slot, plaintext length).
    fn unprotect(&mut self, rb: &mut RecvBatch, items: &mut Vec<(usize, usize, usize)>) {
        items.clear();
        for i in 0..rb.len() {
            let Some((buf, _)) = rb.get_mut(i) else {
                continue;
            };
            self.received += 1;
            let Some(ssrc) = buf
                .get(8..12)
                .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            else {
                self.dropped += 1;
                continue;
            };
            // RTCP (RFC 5761 payload types) is not forwarded.
            if buf.len() < 12 || (64..96).contains(&(buf[1] & 0x7f)) {
                continue;
            }
            let Some(&p) = self.by_ssrc.get(&ssrc) else {
                self.dropped += 1;
                continue;
            };
            match self.publishers[p].ctx.unprotect_rtp(buf) {
                Ok(len) => items.push((p, i, len)),
                Err(_) => self.dropped += 1,
            }
        }
        items.sort_by_key(|&(p, i, _)| (p, i));
    }

    /// Queues one subscriber's copies of `group` (packets of one publisher).
    fn fan_out(
        &mut self,
        s: usize,
        group: &[(usize, usize, usize)],
        rb: &RecvBatch,
        sb: &mut SendBatch,
    ) {
        let sub = &mut self.subscribers[s];
        let overhead = sub.ctx.profile().rtp_overhead();
        for &(_, i, len) in group {
            let Some((pkt, _)) = rb.get(i) else { continue };
            let Some(pkt) = pkt.get(..len) else { continue };
            let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
            let Some(&(_, out_ssrc)) = sub.ssrcs.iter().find(|(i, _)| *i == ssrc) else {
                continue;
            };
            let slot = sb.start(sub.addr, len + overhead);
            slot[..len].copy_from_slice(pkt);
            let seq = u16::from_be_bytes([pkt[2], pkt[3]]).wrapping_add(SEQ_OFFSET);
            slot[2..4].copy_from_slice(&seq.to_be_bytes());
            slot[8..12].copy_from_slice(&out_ssrc.to_be_bytes());
            match sub.ctx.protect_rtp(slot, len) {
                Ok(n) => {
                    sb.commit(n);
                    self.sent += 1;
                }
                Err(_) => sb.commit(0),
            }
        }
    }
}

/// `sfu-loadgen floor`: binds, prints a ready line like the daemon's, and forwards.
pub(crate) fn run(listen: SocketAddr, control: PathBuf) -> Result<(), String> {
    let handle = LocalExecutorBuilder::new(Placement::Unbound)
        .name("floor")
        .io_memory(1 << 20)
        .spawn(move || async move { serve(listen, control).await })
        .map_err(|e| e.to_string())?;
    handle.join().map_err(|e| format!("{e:?}"))?
}

async fn serve(listen: SocketAddr, control: PathBuf) -> Result<(), String> {
    let socket = MediaSocket::bind(listen).map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&control);
    let listener = UnixListener::bind(&control).map_err(|e| e.to_string())?;
    println!(
        "{}",
        json!({ "event": "ready", "workers": [{ "worker": 0, "media": local.to_string(), "control": control }] })
    );
    let floor = Rc::new(RefCell::new(Floor::default()));
    let f = floor.clone();
    glommio::spawn_local(async move {
        while let Ok(stream) = listener.accept().await {
            glommio::spawn_local(serve_control(stream, f.clone())).detach();
        }
    })
    .detach();

    let mut rb = RecvBatch::new(RECV_BATCH);
    let mut sb = SendBatch::new();
    let mut items = Vec::with_capacity(RECV_BATCH);
    loop {
        socket
            .recv_batch(&mut rb)
            .await
            .map_err(|e| e.to_string())?;
        let received = Instant::now();
        floor.borrow_mut().receive_batches += 1;
        floor.borrow_mut().unprotect(&mut rb, &mut items);
        let mut start = 0;
        while start < items.len() {
            let p = items[start].0;
            let end = start + items[start..].iter().take_while(|x| x.0 == p).count();
            let subs = floor.borrow().publishers[p].subscribers.len();
            for k in 0..subs {
                {
                    let mut fl = floor.borrow_mut();
                    let s = fl.publishers[p].subscribers[k];
                    fl.fan_out(s, &items[start..end], &rb, &mut sb);
                }
                if sb.len() >= SEND_FLUSH {
                    flush(&socket, &floor, &mut sb, received).await;
                }
            }
            start = end;
        }
        flush(&socket, &floor, &mut sb, received).await;
    }
}

async fn flush(
    socket: &MediaSocket,
    floor: &Rc<RefCell<Floor>>,
    sb: &mut SendBatch,
    received: Instant,
) {
    if sb.is_empty() {
        return;
    }
    let micros = received.elapsed().as_micros() as u64;
    floor.borrow_mut().latency.record(micros, sb.len() as u64);
    match socket.send_batch(sb).await {
        Ok(report) => {
            let mut f = floor.borrow_mut();
            f.send_calls += report.syscalls as u64;
            f.gso_datagrams += report.gso_datagrams as u64;
        }
        Err(_) => sb.clear(),
    }
}

async fn serve_control(stream: UnixStream, floor: Rc<RefCell<Floor>>) {
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let frame = |v: &Value| encode(&serde_json::to_vec(v).unwrap_or_default());
    if writer
        .write_all(&frame(&json!({ "event": "ready", "target": "floor" })))
        .await
        .is_err()
    {
        return;
    }
    let mut decoder = FrameDecoder::default();
    let (mut frames, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        decoder.push(buf.get(..n).unwrap_or_default(), &mut frames);
        for f in frames.drain(..) {
            let Frame::Body(body) = f else {
                return;
            };
            let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let id = req["id"].clone();
            let method = req["method"].as_str().unwrap_or_default();
            let resp = match floor.borrow_mut().request(method, &req["data"]) {
                Ok(data) => json!({ "id": id, "accepted": true, "data": data }),
                Err(e) => json!({ "id": id, "error": "InvalidData", "reason": e }),
            };
            if writer.write_all(&frame(&resp)).await.is_err() {
                return;
            }
        }
    }
}
