//! One worker's ICE-TCP connections (RFC 6544 passive candidates): who is connected, what
//! is queued to them, and the bounds an unauthenticated peer meets.
//!
//! The core's demultiplexing tables and ICE are keyed by a peer's `SocketAddr`. A TCP
//! connection takes part under a stand-in address, its [`TcpPeer`], from the
//! discard-only prefix `100::/64` (RFC 6666), which no UDP peer can have (the shell
//! drops UDP datagrams from it): the first STUN binding request with valid
//! MESSAGE-INTEGRITY maps it to its transport exactly as it maps a UDP source address,
//! and a transport whose selected tuple is a `TcpPeer` has its datagrams queued here,
//! framed, instead of sent by UDP. The slot and a generation are in the address, so
//! finding the connection is an index, not a hash, and a closed connection's address is
//! never reused by a new one.
//!
//! Bounds (slowloris): at most [`MAX_UNAUTHENTICATED`] connections per worker that have
//! not yet sent a valid STUN request, each closed [`UNAUTHENTICATED_TIMEOUT`] after it
//! opened; at most [`MAX_CONNECTIONS`] in all, each closed after [`IDLE_TIMEOUT`] without
//! a frame (ICE consent checks come every few seconds, RFC 7675); at most
//! [`MAX_QUEUED_BYTES`] queued to one connection, frames beyond dropped and counted.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::tcp::framing::push_frame;

/// Connections per worker that have not sent a valid STUN binding request yet.
pub const MAX_UNAUTHENTICATED: usize = 64;
/// Connections per worker in all.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long a connection may stay unauthenticated.
pub const UNAUTHENTICATED_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an authenticated connection may send nothing (consent expires after 30 s
/// without a check, RFC 7675 section 5.1).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes queued to one connection that its writer has not taken yet: about 1.5 s of a
/// 2.5 Mbit/s subscription. A peer that reads slower loses frames, like a full UDP path.
pub const MAX_QUEUED_BYTES: usize = 512 * 1024;

/// First four 16-bit groups of every stand-in address: `100::/64`, RFC 6666.
const PREFIX: [u16; 4] = [0x0100, 0, 0, 0];

/// A TCP connection's stand-in address in the core's tables (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpPeer {
    slot: u32,
    generation: u32,
}

impl TcpPeer {
    /// The address the core knows this connection by.
    pub fn addr(self) -> SocketAddr {
        let [s0, s1] = split(self.slot);
        let [g0, g1] = split(self.generation);
        let ip = Ipv6Addr::new(PREFIX[0], PREFIX[1], PREFIX[2], PREFIX[3], g0, g1, s0, s1);
        SocketAddr::V6(SocketAddrV6::new(ip, 0, 0, 0))
    }

    /// The connection behind a stand-in address; None for any other address.
    pub fn from_addr(addr: SocketAddr) -> Option<Self> {
        let SocketAddr::V6(a) = addr else {
            return None;
        };
        let s = a.ip().segments();
        if s[..4] != PREFIX {
            return None;
        }
        Some(Self {
            generation: join(s[4], s[5]),
            slot: join(s[6], s[7]),
        })
    }

    /// The connection's index in the table (the shell keeps its writer's waker there).
    pub fn slot(self) -> usize {
        self.slot as usize
    }
}

impl fmt::Display for TcpPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcp#{}.{}", self.slot, self.generation)
    }
}

/// Whether `addr` is a TCP connection's stand-in (cheap: a comparison of 8 bytes).
pub fn is_tcp_peer(addr: &SocketAddr) -> bool {
    matches!(addr, SocketAddr::V6(a) if a.ip().segments()[..4] == PREFIX)
}

fn split(v: u32) -> [u16; 2] {
    [(v >> 16) as u16, v as u16]
}

fn join(hi: u16, lo: u16) -> u32 {
    (u32::from(hi) << 16) | u32::from(lo)
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// [`MAX_UNAUTHENTICATED`] connections wait for their first STUN request already.
    TooManyUnauthenticated,
    /// [`MAX_CONNECTIONS`] are open.
    TooMany,
}

/// What became of a datagram for a TCP peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// Queued; the connection's writer must be woken (its queue was empty).
    Wake(TcpPeer),
    /// Queued behind data its writer already knows of.
    Behind,
    /// Dropped: the connection is gone, or its queue is full.
    Dropped,
}

struct Conn {
    generation: u32,
    remote: SocketAddr,
    opened: Instant,
    last_frame: Instant,
    authenticated: bool,
    /// Framed bytes for the writer, which swaps the buffer out (capacity is kept on both
    /// sides: steady state does not allocate).
    out: Vec<u8>,
}

/// Every ICE-TCP connection of one worker.
#[derive(Default)]
pub struct TcpConns {
    conns: Slab<Conn>,
    next_generation: u32,
    unauthenticated: usize,
}

impl TcpConns {
    /// Admits a connection from `remote` accepted at `now`.
    pub fn open(&mut self, now: Instant, remote: SocketAddr) -> Result<TcpPeer, Refusal> {
        if self.conns.len() >= MAX_CONNECTIONS {
            return Err(Refusal::TooMany);
        }
        if self.unauthenticated >= MAX_UNAUTHENTICATED {
            return Err(Refusal::TooManyUnauthenticated);
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let slot = self.conns.insert(Conn {
            generation,
            remote,
            opened: now,
            last_frame: now,
            authenticated: false,
            out: Vec::new(),
        });
        self.unauthenticated += 1;
        Ok(TcpPeer {
            // MAX_CONNECTIONS keeps slots far below u32::MAX.
            slot: slot as u32,
            generation,
        })
    }

    fn get(&self, peer: TcpPeer) -> Option<&Conn> {
        self.conns
            .get(peer.slot())
            .filter(|c| c.generation == peer.generation)
    }

    fn get_mut(&mut self, peer: TcpPeer) -> Option<&mut Conn> {
        self.conns
            .get_mut(peer.slot())
            .filter(|c| c.generation == peer.generation)
    }

    /// Forgets a connection; false if it was already gone.
    pub fn close(&mut self, peer: TcpPeer) -> bool {
        if self.get(peer).is_none() {
            return false;
        }
        let c = self.conns.remove(peer.slot());
        if !c.authenticated {
            self.unauthenticated -= 1;
        }
        true
    }

    /// Notes frames received at `now`; `authenticated` once the core mapped the peer to
    /// a transport (a valid STUN request).
    pub fn received(&mut self, now: Instant, peer: TcpPeer, authenticated: bool) {
        let Some(c) = self.get_mut(peer) else { return };
        c.last_frame = now;
        if authenticated && !c.authenticated {
            c.authenticated = true;
            self.unauthenticated -= 1;
        }
    }

    /// When the connection is to be closed if nothing comes: None once it is gone.
    pub fn deadline(&self, peer: TcpPeer) -> Option<Instant> {
        self.get(peer).map(|c| {
            if c.authenticated {
                c.last_frame + IDLE_TIMEOUT
            } else {
                c.opened + UNAUTHENTICATED_TIMEOUT
            }
        })
    }

    /// The peer's real address.
    pub fn remote(&self, peer: TcpPeer) -> Option<SocketAddr> {
        self.get(peer).map(|c| c.remote)
    }

    /// Queues one datagram, framed, to the connection behind `dest`.
    pub fn queue(&mut self, dest: SocketAddr, datagram: &[u8]) -> Queued {
        let Some(peer) = TcpPeer::from_addr(dest) else {
            return Queued::Dropped;
        };
        let Some(c) = self.get_mut(peer) else {
            return Queued::Dropped;
        };
        if c.out.len() + 2 + datagram.len() > MAX_QUEUED_BYTES {
            return Queued::Dropped;
        }
        let was_empty = c.out.is_empty();
        if !push_frame(&mut c.out, datagram) {
            return Queued::Dropped;
        }
        if was_empty {
            Queued::Wake(peer)
        } else {
            Queued::Behind
        }
    }

    /// Hands the connection's queued bytes to its writer: `buf` (cleared) takes their
    /// place, so both buffers keep their capacity.
    pub fn take_out(&mut self, peer: TcpPeer, buf: &mut Vec<u8>) {
        buf.clear();
        if let Some(c) = self.get_mut(peer) {
            std::mem::swap(&mut c.out, buf);
        }
    }

    /// Open connections, and those of them not yet authenticated.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn unauthenticated(&self) -> usize {
        self.unauthenticated
    }
}

impl fmt::Debug for TcpConns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpConns")
            .field("open", &self.conns.len())
            .field("unauthenticated", &self.unauthenticated)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn stand_in_addresses_round_trip_and_are_never_reused() {
        let now = Instant::now();
        let mut t = TcpConns::default();
        let a = t.open(now, remote(1)).unwrap();
        assert!(is_tcp_peer(&a.addr()));
        assert_eq!(TcpPeer::from_addr(a.addr()), Some(a));
        assert!(!is_tcp_peer(&remote(1)));
        assert!(!is_tcp_peer(&"[2001:db8::1]:5".parse().unwrap()));
        assert!(t.close(a));
        let b = t.open(now, remote(2)).unwrap();
        assert_eq!(a.slot(), b.slot(), "the slot is reused");
        assert_ne!(a.addr(), b.addr(), "the address is not");
        assert_eq!(t.queue(a.addr(), b"x"), Queued::Dropped);
        assert_eq!(t.remote(a), None);
        assert_eq!(t.remote(b), Some(remote(2)));
    }

    #[test]
    fn unauthenticated_connections_are_bounded_and_time_out() {
        let now = Instant::now();
        let mut t = TcpConns::default();
        let peers: Vec<_> = (0..MAX_UNAUTHENTICATED)
            .map(|i| t.open(now, remote(i as u16)).unwrap())
            .collect();
        assert_eq!(
            t.open(now, remote(9999)),
            Err(Refusal::TooManyUnauthenticated)
        );
        assert_eq!(t.deadline(peers[0]), Some(now + UNAUTHENTICATED_TIMEOUT));
        // Frames without authentication do not extend the deadline.
        t.received(now + Duration::from_secs(5), peers[0], false);
        assert_eq!(t.deadline(peers[0]), Some(now + UNAUTHENTICATED_TIMEOUT));
        // An authenticated one makes room and lives as long as it sends.
        let later = now + Duration::from_secs(8);
        t.received(later, peers[0], true);
        assert_eq!(t.unauthenticated(), MAX_UNAUTHENTICATED - 1);
        assert_eq!(t.deadline(peers[0]), Some(later + IDLE_TIMEOUT));
        assert!(t.open(now, remote(9999)).is_ok());
        assert!(t.close(peers[1]));
        assert!(!t.close(peers[1]));
        assert_eq!(t.unauthenticated(), MAX_UNAUTHENTICATED - 1);
    }

    #[test]
    fn a_queue_is_bounded_and_its_writer_woken_once() {
        let now = Instant::now();
        let mut t = TcpConns::default();
        let p = t.open(now, remote(1)).unwrap();
        let d = [7u8; 1000];
        assert_eq!(t.queue(p.addr(), &d), Queued::Wake(p));
        let mut queued = 1;
        loop {
            match t.queue(p.addr(), &d) {
                Queued::Behind => queued += 1,
                Queued::Dropped => break,
                Queued::Wake(_) => panic!("woken twice"),
            }
        }
        assert_eq!(queued, MAX_QUEUED_BYTES / 1002);
        let mut buf = Vec::new();
        t.take_out(p, &mut buf);
        assert_eq!(buf.len(), queued * 1002);
        assert_eq!(&buf[..2], &1000u16.to_be_bytes());
        assert_eq!(t.queue(p.addr(), &d), Queued::Wake(p));
    }
}
