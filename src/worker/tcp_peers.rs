//! The core's side of ICE-TCP: admitting connections, the frames they bring, the
//! datagrams for them, and how a TCP path is described to the control client. A
//! connection is in the demultiplexing tables under its stand-in address
//! ([`TcpPeer::addr`]); everything else about it is `crate::tcp::TcpConns`.

use std::net::SocketAddr;
use std::time::Instant;

use sfu_control::params::TransportTuple;

use crate::batch::SendBatch;
use crate::router::TransportKey;
use crate::stats::DropReason;
use crate::tcp::{is_tcp_peer, FramingError, Queued, TcpPeer};
use crate::worker::core::WorkerCore;

/// Why the shell ends a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpClosed {
    /// The peer closed it, or the socket failed.
    Ended,
    /// Nothing came before [`WorkerCore::tcp_deadline`].
    TimedOut,
    /// A frame's length was bad.
    Framing(FramingError),
}

impl WorkerCore {
    /// Admits a connection accepted from `remote` at `now`: its stand-in address, or None
    /// when it is over the bounds (counted; the shell closes it).
    pub fn tcp_open(&mut self, now: Instant, remote: SocketAddr) -> Option<TcpPeer> {
        match self.tcp.open(now, remote) {
            Ok(peer) => {
                self.totals.tcp_connections_accepted += 1;
                tracing::debug!(%peer, %remote, "ICE-TCP connection accepted");
                Some(peer)
            }
            Err(refusal) => {
                self.totals.tcp_connections_refused += 1;
                tracing::debug!(?refusal, %remote, "ICE-TCP connection refused");
                None
            }
        }
    }

    /// Forgets a connection the shell ended, and any transport's use of it.
    pub fn tcp_close(&mut self, peer: TcpPeer, why: TcpClosed) {
        match why {
            TcpClosed::Ended => {}
            TcpClosed::TimedOut => self.totals.tcp_connections_timed_out += 1,
            TcpClosed::Framing(e) => {
                self.totals.tcp_framing_errors += 1;
                self.drops.count(DropReason::Malformed);
                tracing::debug!(%peer, error = %e, "ICE-TCP framing error: closed");
            }
        }
        self.tcp.close(peer);
        self.by_addr.remove(&peer.addr());
    }

    /// Notes `frames` frames received on the connection at `now`, after the core handled
    /// them: the first that made it a transport's address (a valid STUN binding request)
    /// authenticates it.
    pub fn tcp_received(&mut self, now: Instant, peer: TcpPeer, frames: usize) {
        self.totals.tcp_frames_received += frames as u64;
        let authenticated = self.by_addr.contains_key(&peer.addr());
        self.tcp.received(now, peer, authenticated);
    }

    /// When the shell closes the connection if nothing arrives; None once it is closed.
    pub fn tcp_deadline(&self, peer: TcpPeer) -> Option<Instant> {
        self.tcp.deadline(peer)
    }

    /// Moves the datagrams of `batch` addressed to TCP peers into their connections'
    /// queues, and notes in `wake` the connections whose writers must be woken. The rest
    /// of the batch is left for UDP. Called only for batches that hold such datagrams
    /// ([`SendBatch::has_tcp`]).
    pub fn route_tcp(&mut self, batch: &mut SendBatch, wake: &mut Vec<TcpPeer>) {
        let Self {
            tcp, totals, drops, ..
        } = self;
        for e in batch.entries.iter().filter(|e| is_tcp_peer(&e.dest)) {
            match tcp.queue(e.dest, batch.data(e)) {
                Queued::Wake(peer) => {
                    totals.tcp_frames_sent += 1;
                    wake.push(peer);
                }
                Queued::Behind => totals.tcp_frames_sent += 1,
                Queued::Dropped => {
                    totals.tcp_send_dropped += 1;
                    drops.count(DropReason::SendFailed);
                }
            }
        }
        batch.retain_udp();
    }

    /// Takes what is queued to the connection (see `TcpConns::take_out`).
    pub fn tcp_take_out(&mut self, peer: TcpPeer, buf: &mut Vec<u8>) {
        self.tcp.take_out(peer, buf);
    }

    /// The transport's selected tuple as the control client sees it: a TCP connection
    /// by its real remote address and the listener's port.
    pub(crate) fn selected_tuple(&self, tk: TransportKey) -> Option<TransportTuple> {
        let t = self.transports.get(tk)?;
        let remote = t.ice.selected()?;
        let Some(peer) = TcpPeer::from_addr(remote) else {
            let local = SocketAddr::new(
                self.cfg.announced_for(remote.ip()),
                self.cfg.announced.port(),
            );
            return t.tuple(local);
        };
        let real = self.tcp.remote(peer)?;
        Some(TransportTuple {
            local_ip: self.cfg.announced_for(real.ip()).to_string(),
            local_port: self.cfg.tcp_port.unwrap_or(0),
            remote_ip: real.ip().to_string(),
            remote_port: real.port(),
            protocol: "tcp".into(),
        })
    }
}
