//! The per-core media socket: batched UDP receive and send on top of glommio.
//!
//! glommio's `UdpSocket` does one `recvmsg`/`sendmsg` per datagram. An SFU forwards every
//! packet to many subscribers, so the syscall count dominates: this module drains the
//! receive queue with `recvmmsg`, and flushes outgoing datagrams with `sendmmsg`, folding
//! runs of equal-size datagrams to one destination into a single UDP GSO super-datagram
//! (`UDP_SEGMENT`). glommio is still used whenever we have to wait, so an idle or
//! send-blocked core parks on io_uring instead of spinning.
//!
//! The buffers themselves ([`RecvBatch`], [`SendBatch`]) are sans-IO and live in
//! `crate::batch`. Everything here is single-threaded (one socket per executor): scratch state lives in
//! `Cell`s, there are no locks or atomics, and steady-state operation does not allocate.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::ptr;
use std::time::{Duration, Instant, SystemTime};

use glommio::net::UdpSocket;

use crate::batch::{canonical, RecvBatch, SendBatch, SendReport, RECV_SLOT_SIZE};

/// At most this many `mmsghdr`s per `sendmmsg` call.
const MAX_MSGS_PER_CALL: usize = 64;
/// At most this many segments per GSO super-datagram (the kernel's historical
/// `UDP_MAX_SEGMENTS`; newer kernels allow 128, older ones reject more than 64).
const MAX_GSO_SEGMENTS: usize = 64;
/// At most this many payload bytes per GSO super-datagram: it must stay below the 64 KiB
/// IP length limit once UDP/IP headers are added.
const MAX_GSO_BYTES: usize = 65_000;

/// Socket buffer size we ask for: bursts of forwarded video easily exceed the default
/// ~200 KiB and the kernel silently drops what does not fit.
const SOCKET_BUFFER_BYTES: libc::c_int = 8 << 20;

/// How long a datagram that met a full send buffer waits for room before it is dropped
/// and counted: a buffer of megabytes that does not drain in this time means the path
/// ahead is stuck, and the rest of the core's traffic must not wait on it.
const BLOCKED_SEND_WAIT: Duration = Duration::from_millis(100);
/// First and longest pause between attempts while waiting for room.
const BLOCKED_SEND_FIRST_PAUSE: Duration = Duration::from_micros(250);
const BLOCKED_SEND_MAX_PAUSE: Duration = Duration::from_millis(10);

const SOL_UDP: libc::c_int = 17;
const UDP_SEGMENT: libc::c_int = 103;

/// Control buffer space for one `UDP_SEGMENT` cmsg carrying a `u16`.
// SAFETY: CMSG_SPACE is pure arithmetic on its argument; it dereferences nothing.
const GSO_CMSG_SPACE: usize = unsafe { libc::CMSG_SPACE(mem::size_of::<u16>() as u32) } as usize;
// SAFETY: as above, pure arithmetic.
const GSO_CMSG_LEN: usize = unsafe { libc::CMSG_LEN(mem::size_of::<u16>() as u32) } as usize;

/// A control buffer aligned for `cmsghdr` (which contains a `size_t`).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct CmsgBuf([u8; 32]);

const _: () = assert!(GSO_CMSG_SPACE <= mem::size_of::<CmsgBuf>());

/// Raw socket address big enough for IPv4 and IPv6, as the kernel reads and writes it.
#[repr(C)]
#[derive(Clone, Copy)]
union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl RawAddr {
    fn zeroed() -> Self {
        // Initialising through the larger member makes every byte of the union defined.
        Self {
            v6: libc::sockaddr_in6 {
                sin6_family: 0,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: [0; 16] },
                sin6_scope_id: 0,
            },
        }
    }

    fn from_socket_addr(addr: SocketAddr) -> (Self, libc::socklen_t) {
        let mut raw = Self::zeroed();
        let len = match addr {
            SocketAddr::V4(a) => {
                raw.v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                mem::size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                // Same field conventions as std's own conversion (flowinfo/scope as-is).
                raw.v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                mem::size_of::<libc::sockaddr_in6>()
            }
        };
        (raw, len as libc::socklen_t)
    }

    fn socket_addr(&self, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = len as usize;
        if len < mem::size_of::<libc::sa_family_t>() {
            return None;
        }
        // SAFETY: every byte of the union is initialised (`zeroed` writes the larger member,
        // the kernel overwrites a prefix), and the family field sits at offset 0 in both
        // members, so reading it through either is reading initialised plain integers.
        let family = unsafe { self.v4.sin_family } as libc::c_int;
        match family {
            libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: all bytes initialised (see above); sockaddr_in is plain data.
                let a = unsafe { self.v4 };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(a.sin_addr.s_addr.to_ne_bytes()),
                    u16::from_be(a.sin_port),
                )))
            }
            libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: all bytes initialised (see above); sockaddr_in6 is plain data.
                let a = unsafe { self.v6 };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(a.sin6_addr.s6_addr),
                    u16::from_be(a.sin6_port),
                    a.sin6_flowinfo,
                    a.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }
}

/// A zeroed `msghdr`, the starting point the kernel API expects.
fn zeroed_msghdr() -> libc::msghdr {
    // SAFETY: msghdr is a C struct of integers and raw pointers (plus, on some libcs,
    // private padding); all-zero is a valid value for every field (null pointers, 0 lengths).
    unsafe { mem::zeroed() }
}

/// How a failed socket call should be handled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ErrClass {
    /// EINTR: just retry.
    Interrupted,
    /// EAGAIN: wait for readiness through glommio.
    WouldBlock,
    /// An ICMP-reported error parked on the socket (`sk_err`). The kernel hands it to
    /// whatever call comes next and clears it, so the datagram that received it may be
    /// innocent: retry once.
    Icmp,
    /// The socket itself is unusable: give up.
    Fatal,
    /// Anything else concerns this datagram or destination only: count it and move on.
    Datagram,
}

fn classify(err: &io::Error) -> ErrClass {
    match err.raw_os_error() {
        Some(libc::EINTR) => ErrClass::Interrupted,
        Some(libc::EAGAIN) => ErrClass::WouldBlock,
        Some(
            libc::ECONNREFUSED
            | libc::ECONNRESET
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH
            | libc::EHOSTDOWN
            | libc::ENETDOWN
            | libc::EPROTO,
        ) => ErrClass::Icmp,
        Some(libc::EBADF | libc::ENOTSOCK | libc::EFAULT) => ErrClass::Fatal,
        Some(_) => ErrClass::Datagram,
        // glommio may hand back errors without an errno; fall back to the kind.
        None => match err.kind() {
            io::ErrorKind::Interrupted => ErrClass::Interrupted,
            io::ErrorKind::WouldBlock => ErrClass::WouldBlock,
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown => ErrClass::Icmp,
            io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected => ErrClass::Fatal,
            _ => ErrClass::Datagram,
        },
    }
}

/// Errors with which a GSO super-datagram may fail although its segments would go out
/// singly (no checksum offload, segment larger than the path MTU, buffer accounting...).
fn gso_may_be_at_fault(errno: Option<i32>) -> bool {
    matches!(
        errno,
        Some(
            libc::EIO
                | libc::EINVAL
                | libc::EOPNOTSUPP
                | libc::ENOPROTOOPT
                | libc::EMSGSIZE
                | libc::ENOBUFS
        )
    )
}

/// The errors the kernel uses to say "this socket/device cannot do UDP GSO at all".
fn gso_refusal(errno: Option<i32>) -> bool {
    matches!(
        errno,
        Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

// ---------------------------------------------------------------------------------------
// Receive side
// ---------------------------------------------------------------------------------------

/// `recvmmsg` descriptors, rebuilt on every call (they point into the caller's batch).
#[derive(Default)]
struct RecvScratch {
    msgs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    names: Vec<RawAddr>,
    /// Control-message space per datagram for its SCM_TIMESTAMPNS (8-byte aligned, as
    /// cmsghdr requires; 64 bytes hold CMSG_SPACE(sizeof(timespec)) = 32).
    controls: Vec<[u64; 8]>,
}

// ---------------------------------------------------------------------------------------
// Send side
// ---------------------------------------------------------------------------------------

/// Clears the batch however `send_batch` ends, including when its future is dropped
/// mid-way: re-sending a partly sent batch would duplicate packets.
struct ClearOnDrop<'a>(&'a mut SendBatch);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

/// One message of a `sendmmsg` window: `count` datagrams starting at `start` in the
/// grouped order, sent as one GSO super-datagram of `seg`-byte segments when `count > 1`.
#[derive(Clone, Copy, Debug)]
struct WinMsg {
    start: usize,
    count: usize,
    seg: usize,
    namelen: libc::socklen_t,
}

/// Per-flush working memory, kept across flushes so they do not allocate.
#[derive(Default)]
struct SendScratch {
    /// Batch indices in send order (push order; kept as an indirection so a different
    /// order can be chosen without touching the window builder).
    order: Vec<u32>,
    win: Vec<WinMsg>,
    iovs: Vec<libc::iovec>,
    names: Vec<RawAddr>,
    cmsgs: Vec<CmsgBuf>,
    msgs: Vec<libc::mmsghdr>,
}

impl SendScratch {
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.order.capacity()
            + self.win.capacity()
            + self.iovs.capacity()
            + self.names.capacity()
            + self.cmsgs.capacity()
            + self.msgs.capacity()
    }
}

/// Takes scratch out of its `Cell` and puts it back when dropped. Not holding a borrow
/// across `.await` means two tasks using one socket concurrently cannot panic; the
/// second just gets fresh (allocating) scratch that time.
struct Borrowed<'a, T: Default> {
    cell: &'a Cell<T>,
    value: T,
}

impl<'a, T: Default> Borrowed<'a, T> {
    fn new(cell: &'a Cell<T>) -> Self {
        Self {
            cell,
            value: cell.take(),
        }
    }
}

impl<T: Default> Drop for Borrowed<'_, T> {
    fn drop(&mut self) {
        self.cell.set(mem::take(&mut self.value));
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gso {
    /// Not tried yet: the first refusal disables it.
    Untested,
    Works,
    Disabled,
}

// ---------------------------------------------------------------------------------------
// The socket
// ---------------------------------------------------------------------------------------

/// The UDP socket a worker core uses for all its transports.
pub struct MediaSocket {
    socket: UdpSocket,
    /// Raw fd of `socket`, for the batched syscalls glommio does not offer.
    fd: RawFd,
    /// IPv6 sockets need IPv4 destinations as v4-mapped addresses.
    ipv6: bool,
    gso: Cell<Gso>,
    send_scratch: Cell<SendScratch>,
    recv_scratch: Cell<RecvScratch>,
}

impl fmt::Debug for MediaSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaSocket")
            .field("fd", &self.fd)
            .field("local_addr", &self.socket.local_addr().ok())
            .field("gso", &self.gso.get())
            .finish()
    }
}

impl AsRawFd for MediaSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> bool {
    // SAFETY: `value` is a live c_int and we pass its exact size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            ptr::addr_of!(value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

fn getsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live locals; `len` tells the kernel how much it may write.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            ptr::addr_of_mut!(value).cast(),
            ptr::addr_of_mut!(len),
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The SCM_TIMESTAMPNS control message of a received datagram, if present.
fn kernel_timestamp(hdr: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: `hdr` was filled by recvmmsg with msg_control pointing at a live, 8-byte
    // aligned buffer of msg_controllen bytes; CMSG_FIRSTHDR/CMSG_NXTHDR stay within it
    // and return null at its end; CMSG_DATA of a SCM_TIMESTAMPNS message holds a timespec.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let secs = u64::try_from(ts.tv_sec).ok()?;
                let nanos = u32::try_from(ts.tv_nsec).ok()?;
                return SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}

impl MediaSocket {
    /// Binds a UDP socket. Must be called inside a glommio executor.
    ///
    /// The socket is bound by std, not glommio: glommio sets `SO_REUSEPORT`, with which
    /// a second daemon (or a second worker by mistake) binding the same port would
    /// silently receive half of the flows instead of failing with "address in use".
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let std_socket = std::net::UdpSocket::bind(addr)?;
        // SAFETY: into_raw_fd hands over ownership of a valid, open UDP socket, which the
        // glommio socket now owns and closes.
        let socket = unsafe { UdpSocket::from_raw_fd(std_socket.into_raw_fd()) };
        let fd = socket.as_raw_fd();

        // The privileged variant ignores net.core.{r,w}mem_max; fall back to the plain one,
        // which the kernel clamps silently. A small buffer only costs drops under bursts.
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if !setsockopt_int(fd, libc::SOL_SOCKET, force, SOCKET_BUFFER_BYTES) {
                let _ = setsockopt_int(fd, libc::SOL_SOCKET, plain, SOCKET_BUFFER_BYTES);
            }
        }

        // glommio passes MSG_DONTWAIT itself and so do we; O_NONBLOCK additionally keeps any
        // other plain syscall on this fd from stalling the whole core. glommio's io_uring
        // receives and sends still park on a non-blocking socket (checked on Linux 6.18).
        // SAFETY: fcntl on an fd we own with integer arguments only.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }

        // Per-datagram kernel receive timestamps, for transport-cc feedback (arrival times
        // within a batch). Without them (old kernels) the batch's time is used.
        let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1);

        // Kernels without UDP GSO do not know the option; kernels with it will still refuse
        // at send time if the device cannot do it, which `send_batch` handles.
        let gso = match getsockopt_int(fd, SOL_UDP, UDP_SEGMENT) {
            Ok(_) => Gso::Untested,
            Err(_) => Gso::Disabled,
        };

        let local = socket.local_addr()?;
        let this = Self {
            socket,
            fd,
            ipv6: local.is_ipv6(),
            gso: Cell::new(gso),
            send_scratch: Cell::new(SendScratch::default()),
            recv_scratch: Cell::new(RecvScratch::default()),
        };
        if let Ok((rcv, snd)) = this.buffer_sizes() {
            tracing::debug!(%local, rcvbuf = rcv, sndbuf = snd, gso = ?gso, "media socket bound");
        }
        Ok(this)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    /// The kernel's actual (receive, send) buffer sizes.
    pub fn buffer_sizes(&self) -> io::Result<(usize, usize)> {
        let rcv = getsockopt_int(self.fd, libc::SOL_SOCKET, libc::SO_RCVBUF)?;
        let snd = getsockopt_int(self.fd, libc::SOL_SOCKET, libc::SO_SNDBUF)?;
        Ok((rcv as usize, snd as usize))
    }

    /// Whether `send_batch` may still use UDP GSO on this socket.
    pub fn gso_enabled(&self) -> bool {
        self.gso.get() != Gso::Disabled
    }

    /// The underlying glommio socket, for anything not covered here.
    pub fn inner(&self) -> &UdpSocket {
        &self.socket
    }

    /// How a destination has to be spelled for this socket's family.
    fn os_dest(&self, dest: SocketAddr) -> SocketAddr {
        match dest {
            SocketAddr::V4(a) if self.ipv6 => {
                SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
            }
            other => other,
        }
    }

    /// Waits for at least one datagram, then drains what else is queued, up to the batch
    /// capacity. Returns how many datagrams are in `batch`.
    ///
    /// Under load the queue is rarely empty, so a non-blocking `recvmmsg` goes first and
    /// usually is the only syscall. Only when it finds nothing do we wait in glommio's
    /// `peek_from` (parking the executor on io_uring) and then drain everything with
    /// `recvmmsg`, so that every datagram carries its kernel receive timestamp.
    pub async fn recv_batch(&self, batch: &mut RecvBatch) -> io::Result<usize> {
        batch.filled = 0;
        self.drain(batch)?;
        if batch.filled > 0 {
            return Ok(batch.filled);
        }
        loop {
            // Park until a datagram is queued, without taking it: a 1-byte MSG_PEEK.
            // Taking it through glommio would lose its kernel receive timestamp, which
            // transport-cc feedback needs even (especially) when the socket was idle and
            // the wake-up was late.
            let mut probe = [0u8; 1];
            match self.socket.peek_from(&mut probe).await {
                Ok(_) => {
                    self.drain(batch)?;
                    if batch.filled > 0 {
                        return Ok(batch.filled);
                    }
                    // The datagram was dropped by drain (truncated) or vanished: wait on.
                }
                Err(e) => {
                    let e = io::Error::from(e);
                    match classify(&e) {
                        // A pending ICMP error was consumed by this call; nothing was lost.
                        ErrClass::Interrupted | ErrClass::WouldBlock | ErrClass::Icmp => {}
                        _ => return Err(e),
                    }
                }
            }
        }
    }

    /// One non-blocking `recvmmsg` into the free slots of `batch` (from `batch.filled` on).
    fn drain(&self, batch: &mut RecvBatch) -> io::Result<()> {
        let first = batch.filled;
        let want = batch.capacity() - first;
        if want == 0 {
            return Ok(());
        }
        let mut guard = Borrowed::new(&self.recv_scratch);
        let s = &mut guard.value;

        s.names.clear();
        s.names.resize(want, RawAddr::zeroed());
        // All pointers derive from one base pointer per buffer, taken after the vectors
        // stopped growing, so none is invalidated by a later borrow.
        let slots = batch.data.as_mut_ptr();
        s.iovs.clear();
        for i in 0..want {
            s.iovs.push(libc::iovec {
                iov_base: slots.wrapping_add((first + i) * RECV_SLOT_SIZE).cast(),
                iov_len: RECV_SLOT_SIZE,
            });
        }
        s.controls.clear();
        s.controls.resize(want, [0; 8]);
        let names = s.names.as_mut_ptr();
        let iovs = s.iovs.as_mut_ptr();
        let controls = s.controls.as_mut_ptr();
        s.msgs.clear();
        for i in 0..want {
            let mut hdr = zeroed_msghdr();
            hdr.msg_name = names.wrapping_add(i).cast();
            hdr.msg_namelen = mem::size_of::<RawAddr>() as libc::socklen_t;
            hdr.msg_iov = iovs.wrapping_add(i);
            hdr.msg_iovlen = 1;
            hdr.msg_control = controls.wrapping_add(i).cast();
            hdr.msg_controllen = mem::size_of::<[u64; 8]>() as _;
            s.msgs.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
        }

        let got = loop {
            // SAFETY: `msgs` holds `want` initialised mmsghdrs whose name/iov pointers point
            // into `names`, `iovs` (not resized since) and the batch's slots, each iovec
            // covering exactly one RECV_SLOT_SIZE slot inside `batch.data`, which we borrow
            // mutably for this whole function. MSG_DONTWAIT makes the call non-blocking and
            // a null timeout is allowed.
            let ret = unsafe {
                libc::recvmmsg(
                    self.fd,
                    s.msgs.as_mut_ptr(),
                    want as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    ptr::null_mut(),
                )
            };
            if ret >= 0 {
                break ret as usize;
            }
            let e = io::Error::last_os_error();
            match classify(&e) {
                ErrClass::WouldBlock => return Ok(()),
                ErrClass::Interrupted | ErrClass::Icmp => continue,
                _ => return Err(e),
            }
        };

        // Kernel timestamps are CLOCK_REALTIME; map them onto the monotonic clock via "now"
        // on both clocks (read a few hundred ns apart; feedback resolution is 250 us).
        let (mono_now, real_now) = (Instant::now(), SystemTime::now());
        // Keep the good datagrams contiguous from `first`; truncated ones and unknown address
        // families are dropped (rare, so the copy is rarely needed).
        let mut w = first;
        for i in 0..got {
            let m = &s.msgs[i];
            let from = first + i;
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                tracing::trace!("dropping a datagram longer than {RECV_SLOT_SIZE} bytes");
                continue;
            }
            let Some(addr) = s.names[i].socket_addr(m.msg_hdr.msg_namelen) else {
                continue;
            };
            let len = m.msg_len as usize;
            if w != from {
                batch.data.copy_within(
                    from * RECV_SLOT_SIZE..from * RECV_SLOT_SIZE + len,
                    w * RECV_SLOT_SIZE,
                );
            }
            batch.lens[w] = len;
            batch.addrs[w] = canonical(addr);
            batch.arrivals[w] = kernel_timestamp(&m.msg_hdr).and_then(|t| {
                let age = real_now.duration_since(t).ok()?;
                // A clock step or a stale stamp: better no timestamp than a wrong one.
                if age < Duration::from_secs(1) {
                    mono_now.checked_sub(age)
                } else {
                    None
                }
            });
            w += 1;
        }
        batch.filled = w;
        Ok(())
    }

    /// Sends one datagram now (e.g. a STUN response), waiting a little if the socket is
    /// full (as [`send_batch`](Self::send_batch); not through glommio's `send_to`, which
    /// truncates the datagram to 1 byte when it has to wait). Returns the bytes sent, 0 if
    /// the kernel refused the datagram.
    pub async fn send_to(&self, data: &[u8], dest: SocketAddr) -> io::Result<usize> {
        let mut batch = SendBatch::new();
        batch.push(dest, data);
        let report = self.send_batch(&mut batch).await?;
        Ok(if report.datagrams > 0 { data.len() } else { 0 })
    }

    /// Sends everything in the batch and clears it (also on error or cancellation).
    ///
    /// Datagrams go out in push order. Runs of equal-size datagrams to one destination
    /// pushed back to back (the last may be shorter) go out as one GSO send, so a caller
    /// that wants GSO queues a destination's datagrams together, as the fan-out does
    /// (`worker::fanout`); all messages go through `sendmmsg`, 64 at a time. On EAGAIN
    /// the blocked datagram waits for room (at most [`BLOCKED_SEND_WAIT`], in pauses that
    /// leave the core to its other tasks), then the rest of the batch goes on.
    /// Datagrams the kernel rejects for reasons of their own are counted in
    /// [`SendReport::errors`] and skipped. Only a broken socket returns `Err`.
    pub async fn send_batch(&self, batch: &mut SendBatch) -> io::Result<SendReport> {
        let batch = ClearOnDrop(batch);
        let mut scratch = Borrowed::new(&self.send_scratch);
        self.flush(batch.0, &mut scratch.value).await
    }

    async fn flush(&self, batch: &SendBatch, s: &mut SendScratch) -> io::Result<SendReport> {
        let mut report = SendReport::default();
        let n = batch.entries.len();
        if n == 0 {
            return Ok(report);
        }
        s.order.clear();
        s.order.extend(0..n as u32);
        let entries = &batch.entries;
        // No grouping by destination here: sorting a flush of interleaved destinations
        // cost about 1 % of a worker at large fan-out, and the fan-out already queues
        // each consumer's copies together.

        let mut pos = 0;
        // Datagrams before this position are sent singly: their GSO message failed.
        let mut singles_until = 0;
        // Start of a GSO message refused while GSO was untested. If its first segment then
        // goes out alone, GSO itself was the problem and is disabled for the socket; if it
        // fails alone too, the destination was (e.g. port 0), and GSO stays on.
        let mut suspect: Option<usize> = None;
        // Position already retried after an ICMP error.
        let mut retried: Option<usize> = None;
        // What this flush may still spend waiting for room in a full send buffer.
        let mut wait_budget = BLOCKED_SEND_WAIT;

        while pos < n {
            self.build_window(s, batch, pos, singles_until);
            // SAFETY: `msgs` holds `win.len()` (1..=64) initialised mmsghdrs built by
            // `build_window` just now. Their name, iovec and control pointers point into
            // `names`, `iovs` and `cmsgs`, which are not modified until the call returns,
            // and the iovecs point into `batch.arena`, borrowed immutably for this whole
            // function. The kernel only reads the buffers (and writes `msg_len`).
            let ret = unsafe {
                libc::sendmmsg(
                    self.fd,
                    s.msgs.as_mut_ptr(),
                    s.msgs.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            report.syscalls += 1;

            if ret > 0 {
                let sent = &s.win[..ret as usize];
                for m in sent {
                    report.datagrams += m.count;
                    if m.count > 1 {
                        report.gso_sends += 1;
                        report.gso_datagrams += m.count;
                        if self.gso.get() == Gso::Untested {
                            self.gso.set(Gso::Works);
                        }
                    }
                }
                if suspect == Some(pos) {
                    suspect = None;
                    if self.gso.get() == Gso::Untested {
                        tracing::warn!(
                            fd = self.fd,
                            "UDP GSO refused by the kernel; sending datagrams singly"
                        );
                        self.gso.set(Gso::Disabled);
                    }
                }
                let last = sent[sent.len() - 1];
                pos = last.start + last.count;
                retried = None;
                continue;
            }

            // sendmmsg reports an error only when its first message failed (after that it
            // returns the count sent), so the error belongs to `win[0]`. 0 cannot happen for
            // a non-empty vector; treat it like EAGAIN so we always make progress.
            let err = if ret == 0 {
                io::Error::from_raw_os_error(libc::EAGAIN)
            } else {
                io::Error::last_os_error()
            };
            let head = s.win[0];
            let class = classify(&err);
            if head.count > 1 && class != ErrClass::Fatal && gso_may_be_at_fault(err.raw_os_error())
            {
                singles_until = head.start + head.count;
                if self.gso.get() == Gso::Untested && gso_refusal(err.raw_os_error()) {
                    suspect = Some(head.start);
                }
                continue;
            }
            match class {
                ErrClass::Interrupted => {}
                ErrClass::WouldBlock => {
                    let idx = s.order[pos] as usize;
                    self.send_blocked(batch, idx, &mut wait_budget, &mut report)
                        .await?;
                    pos += 1;
                    retried = None;
                }
                ErrClass::Icmp if retried != Some(pos) => retried = Some(pos),
                ErrClass::Fatal => return Err(err),
                ErrClass::Icmp | ErrClass::Datagram => {
                    tracing::trace!(
                        dest = %entries[s.order[pos] as usize].dest,
                        error = %err,
                        datagrams = head.count,
                        "datagram rejected"
                    );
                    report.errors += head.count;
                    if suspect == Some(head.start) {
                        suspect = None;
                    }
                    pos = head.start + head.count;
                    retried = None;
                }
            }
        }
        Ok(report)
    }

    /// Sends the datagram that hit EAGAIN once the socket has room, waiting at most what is
    /// left of `budget` (one [`BLOCKED_SEND_WAIT`] per flush, so a buffer that never drains
    /// costs a flush that much, not that much per datagram), in growing pauses that leave
    /// the core to its other tasks; after that it is dropped and counted in
    /// [`SendReport::errors`].
    ///
    /// Not through glommio's `send_to`: when its non-blocking attempt meets EAGAIN, its
    /// io_uring fallback (glommio 0.9 `rushed_sendmsg`) describes the buffer with an iovec
    /// of length 1, so the peer got a 1-byte datagram instead of the packet. Not parking on
    /// writability either: a socket whose buffer never drains (datagrams held further down
    /// the path) would park the packet loop forever while control still answers.
    async fn send_blocked(
        &self,
        batch: &SendBatch,
        idx: usize,
        budget: &mut Duration,
        report: &mut SendReport,
    ) -> io::Result<()> {
        let e = &batch.entries[idx];
        let data = batch.data(e);
        let (name, namelen) = RawAddr::from_socket_addr(self.os_dest(e.dest));
        report.blocked += 1;
        let mut icmp_retried = false;
        let mut pause = BLOCKED_SEND_FIRST_PAUSE;
        loop {
            report.syscalls += 1;
            // SAFETY: `data` and `name` are live for the call and their lengths are passed
            // with them; the kernel only reads them. MSG_DONTWAIT: never block the core.
            let ret = unsafe {
                libc::sendto(
                    self.fd,
                    data.as_ptr().cast(),
                    data.len(),
                    libc::MSG_DONTWAIT,
                    ptr::addr_of!(name).cast(),
                    namelen,
                )
            };
            if ret >= 0 {
                report.datagrams += 1;
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match classify(&err) {
                ErrClass::Interrupted => {}
                ErrClass::WouldBlock if !budget.is_zero() => {
                    let p = pause.min(*budget);
                    glommio::timer::sleep(p).await;
                    *budget = budget.saturating_sub(p);
                    pause = (pause * 2).min(BLOCKED_SEND_MAX_PAUSE);
                }
                ErrClass::Icmp if !icmp_retried => icmp_retried = true,
                ErrClass::Fatal => return Err(err),
                _ => {
                    tracing::trace!(dest = %e.dest, error = %err, "datagram rejected");
                    report.errors += 1;
                    return Ok(());
                }
            }
        }
    }

    /// Fills `s.win`/`s.msgs` with up to 64 messages covering `s.order[pos..]`.
    fn build_window(
        &self,
        s: &mut SendScratch,
        batch: &SendBatch,
        pos: usize,
        singles_until: usize,
    ) {
        let gso = self.gso.get() != Gso::Disabled;
        let entries = &batch.entries;
        let n = s.order.len();
        s.win.clear();
        s.iovs.clear();
        s.names.clear();
        s.cmsgs.clear();
        s.msgs.clear();

        let mut p = pos;
        while s.win.len() < MAX_MSGS_PER_CALL && p < n {
            let first = &entries[s.order[p] as usize];
            let seg = first.len;
            let mut count = 1;
            let mut total = seg;
            if gso && p >= singles_until {
                while count < MAX_GSO_SEGMENTS && p + count < n {
                    let e = &entries[s.order[p + count] as usize];
                    if e.dest != first.dest || e.len > seg || total + e.len > MAX_GSO_BYTES {
                        break;
                    }
                    count += 1;
                    total += e.len;
                    // Only the last segment may be shorter than gso_size.
                    if e.len < seg {
                        break;
                    }
                }
            }
            for k in 0..count {
                let e = &entries[s.order[p + k] as usize];
                s.iovs.push(libc::iovec {
                    // sendmsg only reads through iov_base; the mut cast is the C API's.
                    iov_base: batch.data(e).as_ptr().cast_mut().cast(),
                    iov_len: e.len,
                });
            }
            let (name, namelen) = RawAddr::from_socket_addr(self.os_dest(first.dest));
            s.names.push(name);
            s.cmsgs.push(CmsgBuf([0; 32]));
            s.win.push(WinMsg {
                start: p,
                count,
                seg,
                namelen,
            });
            p += count;
        }

        // Second pass: the vectors above are complete, so pointers into them stay valid.
        // Each derives from one base pointer per vector, so none invalidates another.
        let names = s.names.as_mut_ptr();
        let iovs = s.iovs.as_mut_ptr();
        let cmsgs = s.cmsgs.as_mut_ptr();
        let mut iov_at = 0;
        for (i, m) in s.win.iter().enumerate() {
            let mut hdr = zeroed_msghdr();
            hdr.msg_name = names.wrapping_add(i).cast();
            hdr.msg_namelen = m.namelen;
            hdr.msg_iov = iovs.wrapping_add(iov_at);
            hdr.msg_iovlen = m.count as _;
            if m.count > 1 {
                hdr.msg_control = cmsgs.wrapping_add(i).cast();
                hdr.msg_controllen = GSO_CMSG_SPACE as _;
                // SAFETY: msg_control points to a live, 8-aligned, zeroed buffer of at least
                // GSO_CMSG_SPACE bytes (checked at compile time), so CMSG_FIRSTHDR returns a
                // non-null pointer to a cmsghdr inside it and CMSG_DATA points at 2 writable
                // bytes within CMSG_LEN(2) of it. The u16 write is unaligned-safe.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(&hdr);
                    debug_assert!(!c.is_null());
                    (*c).cmsg_level = SOL_UDP;
                    (*c).cmsg_type = UDP_SEGMENT;
                    (*c).cmsg_len = GSO_CMSG_LEN as _;
                    ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), m.seg as u16);
                }
            }
            s.msgs.push(libc::mmsghdr {
                msg_hdr: hdr,
                msg_len: 0,
            });
            iov_at += m.count;
        }
    }

    /// Capacity of the reusable scratch vectors (for the no-growth test).
    #[cfg(test)]
    fn scratch_capacity(&self) -> usize {
        let s = self.send_scratch.take();
        let cap = s.capacity();
        self.send_scratch.set(s);
        cap
    }
}

#[cfg(test)]
#[path = "udp_tests.rs"]
mod tests;
