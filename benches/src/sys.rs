//! Thin libc plumbing the generator needs and std lacks: non-blocking UDP sockets with
//! kernel receive timestamps and drop counters, `recvmmsg`/`sendmmsg`, epoll, network
//! namespaces, and per-process / per-core CPU accounting from /proc.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::ptr;

/// Receive slot size: every datagram in this benchmark is under 1,300 bytes, but with
/// UDP GRO the kernel may hand over up to 64 KiB of coalesced segments at once.
pub(crate) const SLOT: usize = 65_536;
/// `UDP_GRO` from linux/udp.h (the libc crate lacks it).
const UDP_GRO: i32 = 104;
/// Datagrams per `recvmmsg` call.
pub(crate) const RECV_BATCH: usize = 64;
/// Control buffer per message: a `timespec` (SO_TIMESTAMPNS), a `u32` (SO_RXQ_OVFL) and
/// an `int` (UDP_GRO segment size).
const CMSG_BUF: usize = 96;

/// A UDP socket bound to `ip:0`, non-blocking, with large buffers, kernel receive
/// timestamps (so end-to-end latency does not include our own polling delay) and the
/// socket's drop counter reported with every datagram (so losses in our own receive queue
/// are told apart from the target's).
pub(crate) fn udp_socket(ip: Ipv4Addr, buffer: usize) -> io::Result<UdpSocket> {
    let s = UdpSocket::bind(SocketAddrV4::new(ip, 0))?;
    s.set_nonblocking(true)?;
    let fd = s.as_raw_fd();
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, buffer as i32)
        .or_else(|_| setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, buffer as i32))?;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, buffer as i32)
        .or_else(|_| setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, buffer as i32))?;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)?;
    setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)?;
    // A subscriber would be on another machine; here the kernel delivers into our
    // sockets on the target's core (veth runs the receive path inline). With UDP GRO a
    // target's GSO super-datagram is queued here as one unit rather than segmented and
    // queued per packet, which is as close to "elsewhere" as one host gets. Best effort:
    // without it every datagram arrives singly, as before.
    let _ = setsockopt_int(fd, libc::SOL_UDP, UDP_GRO, 1);
    Ok(s)
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live i32 and its exact size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One received datagram, as returned by [`RecvBuf::recv`].
pub(crate) struct Datagram<'a> {
    pub(crate) data: &'a mut [u8],
    pub(crate) from: SocketAddr,
    /// Kernel receive time, CLOCK_REALTIME nanoseconds (0 if the kernel gave none).
    pub(crate) rx_ns: u64,
}

/// Reusable `recvmmsg` state for [`RECV_BATCH`] datagrams.
pub(crate) struct RecvBuf {
    data: Vec<u8>,
    names: Vec<libc::sockaddr_in>,
    iovs: Vec<libc::iovec>,
    cmsgs: Vec<[u64; CMSG_BUF / 8]>,
    msgs: Vec<libc::mmsghdr>,
    got: usize,
    /// Datagrams of the last call as (message, offset, length): a GRO message holds
    /// several.
    segs: Vec<(usize, usize, usize)>,
    /// Latest SO_RXQ_OVFL value seen per call (the socket's cumulative drop count).
    pub(crate) last_drops: Option<u32>,
}

impl Default for RecvBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvBuf {
    pub(crate) fn new() -> Self {
        Self {
            data: vec![0; SLOT * RECV_BATCH],
            // SAFETY: sockaddr_in is plain integers; all-zero is valid.
            names: vec![unsafe { mem::zeroed() }; RECV_BATCH],
            iovs: Vec::with_capacity(RECV_BATCH),
            cmsgs: vec![[0; CMSG_BUF / 8]; RECV_BATCH],
            msgs: Vec::with_capacity(RECV_BATCH),
            got: 0,
            segs: Vec::with_capacity(RECV_BATCH),
            last_drops: None,
        }
    }

    /// One non-blocking `recvmmsg`. Returns how many datagrams arrived (0 on EAGAIN),
    /// GRO-coalesced ones counted singly.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        self.segs.clear();
        self.iovs.clear();
        self.msgs.clear();
        let base = self.data.as_mut_ptr();
        for i in 0..RECV_BATCH {
            self.iovs.push(libc::iovec {
                iov_base: base.wrapping_add(i * SLOT).cast(),
                iov_len: SLOT,
            });
        }
        for i in 0..RECV_BATCH {
            // SAFETY: msghdr is plain data; all-zero is valid.
            let mut h: libc::msghdr = unsafe { mem::zeroed() };
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_in).cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = self.iovs.as_mut_ptr().wrapping_add(i);
            h.msg_iovlen = 1;
            h.msg_control = self.cmsgs[i].as_mut_ptr().cast();
            h.msg_controllen = CMSG_BUF as _;
            self.msgs.push(libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            });
        }
        // SAFETY: every mmsghdr points into buffers owned by self that outlive the call and
        // are not moved during it; MSG_DONTWAIT makes it non-blocking.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                RECV_BATCH as u32,
                libc::MSG_DONTWAIT,
                ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            self.got = 0;
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(0),
                // ICMP errors parked on the socket (e.g. a target that just exited).
                Some(libc::ECONNREFUSED) => Ok(0),
                _ => Err(e),
            };
        }
        self.got = r as usize;
        for i in 0..self.got {
            if let Some(d) = self.cmsg_drops(i) {
                self.last_drops = Some(d);
            }
            let len = (self.msgs[i].msg_len as usize).min(SLOT);
            let seg = self
                .cmsg_gro_size(i)
                .filter(|&g| g > 0)
                .unwrap_or(len.max(1));
            let mut off = 0;
            while off < len {
                let n = seg.min(len - off);
                self.segs.push((i, off, n));
                off += n;
            }
            if len == 0 {
                self.segs.push((i, 0, 0));
            }
        }
        Ok(self.segs.len())
    }

    /// Whether the last call filled every message slot (more may be queued).
    pub(crate) fn was_full(&self) -> bool {
        self.got == RECV_BATCH
    }

    fn cmsg_gro_size(&self, i: usize) -> Option<usize> {
        let mut out = None;
        self.each_cmsg(i, |level, typ, data| {
            if level == libc::SOL_UDP && typ == UDP_GRO && data.len() >= 4 {
                out = Some(i32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize);
            }
        });
        out
    }

    fn cmsg_drops(&self, i: usize) -> Option<u32> {
        let mut out = None;
        self.each_cmsg(i, |level, typ, data| {
            if level == libc::SOL_SOCKET && typ == libc::SO_RXQ_OVFL && data.len() >= 4 {
                out = Some(u32::from_ne_bytes([data[0], data[1], data[2], data[3]]));
            }
        });
        out
    }

    fn cmsg_time(&self, i: usize) -> u64 {
        let mut out = 0;
        self.each_cmsg(i, |level, typ, data| {
            if level == libc::SOL_SOCKET && typ == libc::SO_TIMESTAMPNS && data.len() >= 16 {
                let sec = i64::from_ne_bytes(data[..8].try_into().unwrap_or_default());
                let nsec = i64::from_ne_bytes(data[8..16].try_into().unwrap_or_default());
                out = (sec as u64)
                    .wrapping_mul(1_000_000_000)
                    .wrapping_add(nsec as u64);
            }
        });
        out
    }

    fn each_cmsg(&self, i: usize, mut f: impl FnMut(i32, i32, &[u8])) {
        let h = &self.msgs[i].msg_hdr;
        // SAFETY: the kernel filled msg_control up to msg_controllen; CMSG_* walk only
        // within it and return null at the end.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                let len = (*c).cmsg_len as usize;
                let hdr = libc::CMSG_LEN(0) as usize;
                if len < hdr {
                    break;
                }
                let data = std::slice::from_raw_parts(libc::CMSG_DATA(c), len - hdr);
                f((*c).cmsg_level, (*c).cmsg_type, data);
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
    }

    /// The `i`-th datagram of the last call (segments of a GRO message share its source
    /// and receive time).
    pub(crate) fn get(&mut self, i: usize) -> Option<Datagram<'_>> {
        let (m, off, len) = *self.segs.get(i)?;
        let n = &self.names[m];
        let from = SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(n.sin_addr.s_addr)),
            u16::from_be(n.sin_port),
        ));
        let rx_ns = self.cmsg_time(m);
        let start = m * SLOT + off;
        let data = &mut self.data[start..start + len];
        Some(Datagram { data, from, rx_ns })
    }
}

/// Sends `packets` (all to `dest`) with one `sendmmsg`; returns how many the kernel took.
/// Publishers send little (one frame at a time), so no GSO is needed here.
pub(crate) fn send_many(fd: RawFd, dest: SocketAddr, packets: &[&[u8]]) -> io::Result<usize> {
    let SocketAddr::V4(d) = dest else {
        return Err(io::Error::other("IPv4 only"));
    };
    let name = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: d.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*d.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let mut iovs: Vec<libc::iovec> = packets
        .iter()
        .map(|p| libc::iovec {
            iov_base: p.as_ptr().cast_mut().cast(),
            iov_len: p.len(),
        })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = (0..packets.len())
        .map(|i| {
            // SAFETY: msghdr is plain data; all-zero is valid.
            let mut h: libc::msghdr = unsafe { mem::zeroed() };
            h.msg_name = (&name as *const libc::sockaddr_in).cast_mut().cast();
            h.msg_namelen = mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            h.msg_iov = iovs.as_mut_ptr().wrapping_add(i);
            h.msg_iovlen = 1;
            libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            }
        })
        .collect();
    let mut sent = 0;
    while sent < msgs.len() {
        // SAFETY: the headers point at `name`, `iovs` and the caller's packets, all alive
        // and unmoved for the duration of the call; the kernel only reads them.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                msgs.as_mut_ptr().wrapping_add(sent),
                (msgs.len() - sent) as u32,
                libc::MSG_DONTWAIT,
            )
        };
        if r <= 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if sent == 0 && r < 0 && e.raw_os_error() != Some(libc::EAGAIN) {
                return Err(e);
            }
            break;
        }
        sent += r as usize;
    }
    Ok(sent)
}

/// A level-triggered epoll set whose events carry a caller-chosen `u64`.
pub(crate) struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
        })
    }

    pub(crate) fn add(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: `ev` is a valid epoll_event for the duration of the call.
        let r = unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` and returns the tokens of ready sockets.
    pub(crate) fn wait(&mut self, timeout_ms: i32, out: &mut Vec<u64>) -> io::Result<()> {
        out.clear();
        // SAFETY: `events` has room for its length; the kernel writes at most that many.
        let n = unsafe {
            libc::epoll_wait(
                self.fd,
                self.events.as_mut_ptr(),
                self.events.len() as i32,
                timeout_ms,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::EINTR) {
                Ok(())
            } else {
                Err(e)
            };
        }
        out.extend(self.events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: we own the fd.
        unsafe { libc::close(self.fd) };
    }
}

/// CLOCK_REALTIME in nanoseconds: the clock SO_TIMESTAMPNS uses.
pub(crate) fn realtime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes into a live timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Connects a TCP stream from inside another network namespace (e.g. to Janus's HTTP API
/// on that namespace's 127.0.0.1). A socket keeps the namespace it was created in, so a
/// short-lived thread enters the namespace, connects and hands the stream back.
pub(crate) fn connect_in_netns(netns: &Path, addr: SocketAddr) -> io::Result<TcpStream> {
    let netns = netns.to_owned();
    std::thread::spawn(move || -> io::Result<TcpStream> {
        let f = std::fs::File::open(&netns)?;
        // SAFETY: setns on this thread only, with a namespace fd we just opened.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        TcpStream::connect(addr)
    })
    .join()
    .map_err(|_| io::Error::other("netns thread panicked"))?
}

/// Pins the calling thread to one CPU.
pub(crate) fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is a plain bitmask; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Clock ticks per second for /proc times.
fn clk_tck() -> f64 {
    // SAFETY: plain libc call.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds (user + system) a process and all its threads have used.
pub(crate) fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// Resident set size of a process in bytes.
pub(crate) fn process_rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Seconds one CPU spent (busy, in softirq + irq, in total) from /proc/stat. Busy is
/// everything but idle and iowait. Softirq time is charged to no process (IRQ time
/// accounting), yet on veth most of it is delivering the target's own datagrams.
pub(crate) fn cpu_times(cpu: usize) -> Option<(f64, f64, f64)> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let tag = format!("cpu{cpu} ");
    let line = s.lines().find(|l| l.starts_with(&tag))?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4)?;
    let irq = v.get(5)? + v.get(6)?;
    let t = clk_tck();
    Some(((total - idle) / t, irq / t, total / t))
}

/// Own CPU seconds (user + system) from getrusage.
pub(crate) fn self_cpu_seconds() -> f64 {
    // SAFETY: writes into a live rusage.
    let mut ru: libc::rusage = unsafe { mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// UDP counters (`Udp:` line of /proc/PID/net/snmp) of the namespace a process lives in.
pub(crate) fn udp_snmp(pid: u32) -> Option<std::collections::HashMap<String, u64>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).ok()?;
    let mut lines = s.lines().filter(|l| l.starts_with("Udp:"));
    let names = lines.next()?;
    let values = lines.next()?;
    Some(
        names
            .split_whitespace()
            .skip(1)
            .zip(values.split_whitespace().skip(1))
            .filter_map(|(n, v)| Some((n.to_owned(), v.parse().ok()?)))
            .collect(),
    )
}
