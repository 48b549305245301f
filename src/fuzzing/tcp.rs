//! `ice_tcp` target: a worker's ICE-TCP connections fed arbitrary byte streams and
//! arbitrary outgoing datagrams.
//!
//! Operations, one byte each followed by their data: bytes read on the current
//! connection (RFC 4571 frames go through the core's packet path under the connection's
//! stand-in address, a bad length closes it as the shell does); a send batch mixing
//! datagrams for UDP addresses and for open, closed and forged TCP peers, routed to the
//! connections' queues; time passing, with connections closed at their deadline; a new
//! connection; a close. Properties beyond "nothing panics": after routing, a batch holds
//! no TCP datagram, and what a connection's writer takes deframes to exactly the
//! datagrams routed to it (a full queue drops whole datagrams, never part of one).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use serde_json::json;

use super::{core_config, core_rng, epoch, frame, with_fixtures};
use crate::batch::SendBatch;
use crate::channel::RequestFrame;
use crate::tcp::{is_tcp_peer, Deframer, TcpPeer};
use crate::worker::core::WorkerCore;
use crate::worker::tcp_peers::TcpClosed;

/// At most this many connections per input (the table's bounds are unit-tested).
const MAX_PEERS: usize = 8;

pub fn ice_tcp(data: &[u8]) {
    let (start, wall) = epoch();
    let mut now = start;
    let mut core =
        with_fixtures(|f| WorkerCore::new(core_config(), f.server.clone(), core_rng(), now, wall));
    // A transport, so that STUN finds a ufrag to check against.
    let router = core.handle_request(
        now,
        1,
        RequestFrame {
            id: 1,
            method: "router.create".into(),
            target: None,
            data: json!({}),
        },
    );
    let router_id = router
        .data
        .and_then(|d| d["routerId"].as_str().map(str::to_owned));
    core.handle_request(
        now,
        1,
        RequestFrame {
            id: 2,
            method: "transport.create".into(),
            target: router_id,
            data: json!({}),
        },
    );
    let remote = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 50_000);
    let mut peers: Vec<(TcpPeer, Deframer)> = Vec::new();
    let mut closed: Vec<TcpPeer> = Vec::new();
    let mut out = SendBatch::new();
    let mut wake = Vec::new();
    let mut u = Unstructured::new(data);
    while !u.is_empty() {
        let Ok(op) = u8::arbitrary(&mut u) else { break };
        match op % 5 {
            0 => {
                let Ok(bytes) = frame(&mut u) else { break };
                let Some((peer, deframer)) = peers.last_mut() else {
                    continue;
                };
                let peer = *peer;
                let mut bad = None;
                for piece in bytes.chunks(1500) {
                    let spare = deframer.spare();
                    let n = piece.len().min(spare.len());
                    spare[..n].copy_from_slice(&piece[..n]);
                    deframer.filled(n);
                    let mut frames = 0;
                    loop {
                        match deframer.next_frame() {
                            Ok(Some(f)) => {
                                frames += 1;
                                core.handle_datagram(now, peer.addr(), f, &mut out);
                            }
                            Ok(None) => break,
                            Err(e) => {
                                bad = Some(e);
                                break;
                            }
                        }
                    }
                    core.tcp_received(now, peer, frames);
                    if bad.is_some() {
                        break;
                    }
                }
                if let Some(e) = bad {
                    core.tcp_close(peer, TcpClosed::Framing(e));
                    peers.pop();
                    closed.push(peer);
                }
                route(&mut core, &mut out, &mut wake);
            }
            1 => {
                // Datagrams for UDP, live, closed and forged TCP peers, then routed.
                let Ok(n) = u8::arbitrary(&mut u) else { break };
                let mut sent: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
                for _ in 0..n % 16 {
                    let (Ok(pick), Ok(d)) = (u8::arbitrary(&mut u), frame(&mut u)) else {
                        break;
                    };
                    let dest = match pick % 4 {
                        0 => remote,
                        1 => match peers.get(usize::from(pick / 4) % peers.len().max(1)) {
                            Some((p, _)) => p.addr(),
                            None => remote,
                        },
                        2 => match closed.last() {
                            Some(p) => p.addr(),
                            None => remote,
                        },
                        _ => format!("[100::{pick:x}]:0").parse().unwrap_or(remote),
                    };
                    out.push(dest, d);
                    sent.push((dest, d.to_vec()));
                }
                let mut taken = Vec::new();
                core.route_tcp(&mut out, &mut wake);
                assert!(!out.has_tcp());
                assert!(out.iter().all(|(dest, _)| !is_tcp_peer(&dest)));
                for (peer, _) in &peers {
                    core.tcp_take_out(*peer, &mut taken);
                    let mine: Vec<&[u8]> = sent
                        .iter()
                        .filter(|(d, _)| *d == peer.addr())
                        .map(|(_, d)| d.as_slice())
                        .collect();
                    check_queue(&taken, &mine);
                }
                out.clear();
                wake.clear();
            }
            2 => {
                let Ok(ms) = u16::arbitrary(&mut u) else {
                    break;
                };
                now += Duration::from_millis(u64::from(ms) * 16);
                let mut timer_out = SendBatch::new();
                core.handle_timeout(now, &mut timer_out);
                route(&mut core, &mut timer_out, &mut wake);
                peers.retain(|(peer, _)| match core.tcp_deadline(*peer) {
                    Some(at) if at <= now => {
                        core.tcp_close(*peer, TcpClosed::TimedOut);
                        closed.push(*peer);
                        false
                    }
                    Some(_) => true,
                    None => false,
                });
            }
            3 if peers.len() < MAX_PEERS => {
                if let Some(peer) = core.tcp_open(now, remote) {
                    peers.push((peer, Deframer::new()));
                }
            }
            _ => {
                if let Some((peer, _)) = peers.pop() {
                    core.tcp_close(peer, TcpClosed::Ended);
                    closed.push(peer);
                }
            }
        }
        for _ in core.drain_notifications() {}
        core.control_out().clear();
    }
}

/// Routes what the core produced, as the shell does, and drains the queues.
fn route(core: &mut WorkerCore, out: &mut SendBatch, wake: &mut Vec<TcpPeer>) {
    if out.has_tcp() {
        core.route_tcp(out, wake);
    }
    let mut taken = Vec::new();
    for peer in wake.drain(..) {
        core.tcp_take_out(peer, &mut taken);
        check_queue(&taken, &[]);
    }
    out.clear();
}

/// `queued` (a writer's bytes) deframes to a prefix of `expected` in order, or to
/// whole frames when `expected` is not known (empty).
fn check_queue(queued: &[u8], expected: &[&[u8]]) {
    let mut rest = queued;
    let mut i = 0;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        assert!(tail.len() >= len, "a partial frame was queued");
        let (frame, next) = tail.split_at(len);
        if !expected.is_empty() {
            // Dropped datagrams (a full queue) leave gaps, never reorder.
            while expected.get(i).is_some_and(|e| *e != frame) {
                i += 1;
            }
            assert!(i < expected.len(), "a frame nobody sent was queued");
            i += 1;
        }
        rest = next;
    }
    assert!(rest.is_empty(), "a partial length was queued");
}
