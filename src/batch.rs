//! Caller-owned datagram buffers: what the I/O shell receives into ([`RecvBatch`]) and
//! what the sans-IO core writes its outgoing datagrams into ([`SendBatch`]), plus what a
//! send did ([`SendReport`]).
//!
//! These are plain memory, no sockets: the core, the fuzz targets and the simulation
//! fill and drain them without I/O, and the shell (`worker::udp`) hands them to
//! `recvmmsg`/`sendmmsg` (it reads the crate-visible fields to build the iovecs without
//! copying). Steady-state use does not allocate.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Instant;

use crate::tcp::is_tcp_peer;

/// Size of each receive slot. WebRTC keeps datagrams under ~1,200-1,500 bytes; anything
/// that does not fit is truncated by the kernel and dropped (see [`RecvBatch`]).
pub const RECV_SLOT_SIZE: usize = 2048;

/// IPv4-mapped IPv6 addresses (what a dual-stack socket reports for IPv4 peers) become
/// plain IPv4, so one peer always has one key in the routing tables and in grouping.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, a.port())),
            None => addr,
        },
        v4 => v4,
    }
}

/// Preallocated receive buffers: `capacity()` slots of [`RECV_SLOT_SIZE`] bytes, with the
/// length and source address of what the shell's `MediaSocket::recv_batch` put in each.
///
/// Datagrams longer than a slot are dropped when the kernel reports the truncation (the
/// `recvmmsg` path); the one datagram received through glommio while the socket was idle
/// cannot be checked and arrives truncated to 2,048 bytes, which later parsing rejects.
pub struct RecvBatch {
    pub(crate) data: Box<[u8]>,
    pub(crate) lens: Box<[usize]>,
    pub(crate) addrs: Box<[SocketAddr]>,
    /// Kernel receive time of each datagram (SO_TIMESTAMPNS), when the kernel gave one.
    pub(crate) arrivals: Box<[Option<Instant>]>,
    pub(crate) filled: usize,
}

impl RecvBatch {
    /// `n` slots (e.g. 32). Panics if `n` is 0, which would make receiving into it useless.
    pub fn new(n: usize) -> Self {
        assert!(n > 0, "RecvBatch needs at least one slot");
        let unspecified = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
        Self {
            data: vec![0; n * RECV_SLOT_SIZE].into_boxed_slice(),
            lens: vec![0; n].into_boxed_slice(),
            addrs: vec![unspecified; n].into_boxed_slice(),
            arrivals: vec![None; n].into_boxed_slice(),
            filled: 0,
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Number of datagrams from the last `recv_batch`.
    pub fn len(&self) -> usize {
        self.filled
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// The `i`-th received datagram (exactly its bytes, mutable so it can be decrypted in
    /// place) and its source address.
    pub fn get_mut(&mut self, i: usize) -> Option<(&mut [u8], SocketAddr)> {
        if i >= self.filled {
            return None;
        }
        let start = i * RECV_SLOT_SIZE;
        Some((&mut self.data[start..start + self.lens[i]], self.addrs[i]))
    }

    /// When the kernel received the `i`-th datagram, if it said (the datagram that woke
    /// an idle socket comes through glommio, which does not report it). Transport-cc
    /// feedback needs this: a batch can hold packets that arrived milliseconds apart.
    pub fn arrival(&self, i: usize) -> Option<Instant> {
        self.arrivals.get(i).copied().flatten()
    }

    /// Forgets what was received (slots are overwritten by the next receive).
    pub fn clear(&mut self) {
        self.filled = 0;
    }

    /// Appends a copy of `data` from `from`, received at `arrival` (how the ICE-TCP
    /// shell puts a connection's frames through the packet path). False when the batch
    /// is full or `data` does not fit a slot; nothing is appended then.
    pub fn push(&mut self, from: SocketAddr, data: &[u8], arrival: Instant) -> bool {
        let i = self.filled;
        if i >= self.capacity() || data.len() > RECV_SLOT_SIZE {
            return false;
        }
        let start = i * RECV_SLOT_SIZE;
        let Some(slot) = self.data.get_mut(start..start + data.len()) else {
            return false;
        };
        slot.copy_from_slice(data);
        self.lens[i] = data.len();
        self.addrs[i] = from;
        self.arrivals[i] = Some(arrival);
        self.filled += 1;
        true
    }

    /// The `i`-th received datagram and its source address.
    pub fn get(&self, i: usize) -> Option<(&[u8], SocketAddr)> {
        if i >= self.filled {
            return None;
        }
        let start = i * RECV_SLOT_SIZE;
        Some((&self.data[start..start + self.lens[i]], self.addrs[i]))
    }
}

impl fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvBatch")
            .field("capacity", &self.capacity())
            .field("len", &self.filled)
            .finish()
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub(crate) dest: SocketAddr,
    pub(crate) off: usize,
    pub(crate) len: usize,
}

#[derive(Clone, Copy, Debug)]
struct Open {
    dest: SocketAddr,
    off: usize,
    max_len: usize,
}

/// An arena of outgoing datagrams. Storage grows to the largest flush seen and is then
/// reused, so steady-state forwarding does not allocate.
pub struct SendBatch {
    /// Datagram bytes. Its *length* is the high-water mark (bytes past `used` are stale
    /// leftovers), so reserving space in steady state neither allocates nor zeroes.
    pub(crate) arena: Vec<u8>,
    used: usize,
    pub(crate) entries: Vec<Entry>,
    open: Option<Open>,
    /// Whether a datagram went to an ICE-TCP connection's stand-in address since the
    /// last clear: only then does the shell look for them (`WorkerCore::route_tcp`).
    tcp: bool,
}

impl SendBatch {
    pub fn new() -> Self {
        Self {
            arena: Vec::new(),
            used: 0,
            entries: Vec::new(),
            open: None,
            tcp: false,
        }
    }

    /// Reserves `max_len` bytes for a datagram to `dest` and returns the buffer to fill
    /// (the caller copies, rewrites and encrypts in place). Its initial contents are
    /// unspecified. Finish with [`commit`](Self::commit); calling `start` again without
    /// committing abandons the previous reservation.
    pub fn start(&mut self, dest: SocketAddr, max_len: usize) -> &mut [u8] {
        let off = self.used;
        let end = off + max_len;
        if self.arena.len() < end {
            self.arena.resize(end, 0);
        }
        let dest = canonical(dest);
        self.tcp |= is_tcp_peer(&dest);
        self.open = Some(Open { dest, off, max_len });
        &mut self.arena[off..end]
    }

    /// Commits the first `len` bytes of the buffer returned by the last
    /// [`start`](Self::start) (`len <= max_len`), or abandons it with `len == 0`.
    ///
    /// # Panics
    /// Without a preceding `start`, or if `len > max_len`.
    pub fn commit(&mut self, len: usize) {
        let open = self.open.take().expect("SendBatch::commit without start");
        assert!(
            len <= open.max_len,
            "SendBatch::commit({len}) exceeds the reserved {}",
            open.max_len
        );
        if len == 0 {
            return;
        }
        self.entries.push(Entry {
            dest: open.dest,
            off: open.off,
            len,
        });
        self.used = open.off + len;
    }

    /// Queues a copy of `data` to `dest`. Empty datagrams are ignored.
    pub fn push(&mut self, dest: SocketAddr, data: &[u8]) {
        self.start(dest, data.len()).copy_from_slice(data);
        self.commit(data.len());
    }

    /// Number of committed datagrams.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets all datagrams, keeping the storage.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.used = 0;
        self.open = None;
        self.tcp = false;
    }

    /// Whether some datagram may be for an ICE-TCP connection (see `crate::tcp`).
    pub fn has_tcp(&self) -> bool {
        self.tcp
    }

    /// Keeps only the datagrams for UDP destinations (once the TCP ones were queued to
    /// their connections).
    pub fn retain_udp(&mut self) {
        self.entries.retain(|e| !is_tcp_peer(&e.dest));
        self.tcp = false;
    }

    /// Committed datagrams in push order.
    pub fn iter(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> + '_ {
        self.entries
            .iter()
            .map(|e| (e.dest, &self.arena[e.off..e.off + e.len]))
    }

    /// Allocated bytes of datagram storage (for tests and memory accounting).
    pub fn byte_capacity(&self) -> usize {
        self.arena.capacity()
    }

    /// Allocated datagram slots (for tests and memory accounting).
    pub fn datagram_capacity(&self) -> usize {
        self.entries.capacity()
    }

    pub(crate) fn data(&self, e: &Entry) -> &[u8] {
        &self.arena[e.off..e.off + e.len]
    }
}

impl Default for SendBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for SendBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendBatch")
            .field("len", &self.entries.len())
            .field("bytes", &self.used)
            .finish()
    }
}

/// What one send of a [`SendBatch`] did (the shell's `MediaSocket::send_batch` fills it;
/// the core counts it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    /// Datagrams the kernel accepted.
    pub datagrams: usize,
    /// Send syscalls made (`sendmmsg` calls plus glommio sends after EAGAIN).
    pub syscalls: usize,
    /// GSO super-datagrams the kernel accepted...
    pub gso_sends: usize,
    /// ...and the datagrams they carried.
    pub gso_datagrams: usize,
    /// Datagrams dropped because the kernel rejected them.
    pub errors: usize,
    /// Datagrams that met a full send buffer (EAGAIN) and waited for room (sent, or
    /// dropped and counted in `errors` after the socket's wait budget).
    pub blocked: usize,
}
