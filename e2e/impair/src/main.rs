//! `sfu-impair`: an Ethernet relay between two interfaces that delays and drops frames.
//!
//! The browser tests put each participant behind its own link (e2e/lib/netlab.mjs). Rate
//! is shaped by the kernel (`tbf`), but this kernel has no `netem` qdisc, so delay and
//! random loss are done here: two `AF_PACKET` sockets, one on each interface of the
//! link's namespace, and every frame read on one is written to the other after `delay`,
//! unless the seeded Bernoulli draw drops it. Frames go out through the interface's
//! qdisc, so a `tbf` on it still shapes them.
//!
//! A test tool, not part of the SFU: it runs as root inside a namespace the test made.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Frames waiting in one direction at most (about 1 s of a 100 Mbit/s link): a relay that
/// cannot keep up drops rather than grows.
const MAX_QUEUED: usize = 8192;
/// Larger than any frame with the interfaces' GSO off (netlab sets `gso_max_segs 1`).
const MAX_FRAME: usize = 65_536;

#[derive(Parser, Debug)]
#[command(about = "Relay Ethernet frames between two interfaces with delay and loss")]
struct Args {
    /// One interface (e.g. the veth toward the client).
    #[arg(long)]
    a: String,
    /// The other interface (e.g. the veth toward the switch).
    #[arg(long)]
    b: String,
    /// One-way delay added to every frame, both directions, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Share of frames dropped in each direction, in percent (Bernoulli).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Seed of the loss draws (a run is repeatable given the same frames).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// A raw packet socket bound to one interface, seeing only frames that arrive on it.
struct Port {
    fd: OwnedFd,
    ifindex: i32,
}

impl Port {
    fn open(name: &str) -> io::Result<Self> {
        let cname = CString::new(name).map_err(|_| io::Error::other("interface name has a NUL"))?;
        // SAFETY: a valid C string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::other(format!("no interface {name}")));
        }
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket(2).
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let ifindex = i32::try_from(ifindex).map_err(|_| io::Error::other("ifindex"))?;
        // Our own transmissions on this interface must not come back as input.
        set_option(&fd, libc::PACKET_IGNORE_OUTGOING)?;
        // Every frame comes with its virtio-net header and goes out with it unchanged: a
        // veth hands over TCP and UDP with the checksum left to "hardware" (partial), and
        // without the header that duty would be lost on the way (the receiver drops the
        // segment for its bad checksum).
        set_option(&fd, PACKET_VNET_HDR)?;
        // SAFETY: zeroed sockaddr_ll is valid; we fill the fields bind needs.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        // SAFETY: sll is a valid sockaddr_ll of the given size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, ifindex })
    }

    /// One frame (after its virtio-net header) into `buf`, or None when nothing is queued.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                self.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        Ok(Some(n as usize))
    }

    /// Sends one frame (after its virtio-net header) out of this interface; a refused frame
    /// is counted by the caller.
    fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: zeroed sockaddr_ll is valid; the interface index addresses the frame.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        // SAFETY: frame and sll are valid for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                libc::MSG_DONTWAIT,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        n >= 0
    }
}

/// `PACKET_VNET_HDR` (linux/if_packet.h), which the libc crate does not name.
const PACKET_VNET_HDR: libc::c_int = 15;

/// Sets a boolean `SOL_PACKET` option.
fn set_option(fd: &OwnedFd, option: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: option value is a c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            option,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Frames of one direction waiting for their time, in arrival order (the delay is the
/// same for all, so the queue is ordered by due time too).
#[derive(Default)]
struct Direction {
    queue: VecDeque<(Instant, Vec<u8>)>,
    relayed: u64,
    dropped_loss: u64,
    dropped_full: u64,
    send_failed: u64,
}

struct Relay {
    delay: Duration,
    loss: f64,
    rng: StdRng,
}

impl Relay {
    /// Takes every frame queued on `from` into `dir`, drawing losses.
    fn read(
        &mut self,
        from: &Port,
        dir: &mut Direction,
        buf: &mut [u8],
        now: Instant,
    ) -> io::Result<()> {
        while let Some(n) = from.recv(buf)? {
            let Some(frame) = buf.get(..n) else {
                // Truncated (larger than MAX_FRAME): cannot be relayed whole.
                dir.dropped_full += 1;
                continue;
            };
            if self.loss > 0.0 && self.rng.gen::<f64>() * 100.0 < self.loss {
                dir.dropped_loss += 1;
                continue;
            }
            if dir.queue.len() >= MAX_QUEUED {
                dir.dropped_full += 1;
                continue;
            }
            dir.queue.push_back((now + self.delay, frame.to_vec()));
        }
        Ok(())
    }
}

/// Sends the frames of `dir` that are due out of `to`.
fn flush(to: &Port, dir: &mut Direction, now: Instant) {
    while dir.queue.front().is_some_and(|(due, _)| *due <= now) {
        if let Some((_, frame)) = dir.queue.pop_front() {
            if to.send(&frame) {
                dir.relayed += 1;
            } else {
                dir.send_failed += 1;
            }
        }
    }
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    if !(0.0..=100.0).contains(&args.loss) {
        return Err(io::Error::other("--loss is a percentage, 0 to 100"));
    }
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only stores to an atomic.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
    let a = Port::open(&args.a)?;
    let b = Port::open(&args.b)?;
    let mut relay = Relay {
        delay: Duration::from_millis(args.delay_ms),
        loss: args.loss,
        rng: StdRng::seed_from_u64(args.seed),
    };
    let (mut a_to_b, mut b_to_a) = (Direction::default(), Direction::default());
    let mut buf = vec![0u8; MAX_FRAME];
    eprintln!(
        "sfu-impair: {} <-> {}, delay {} ms, loss {} %",
        args.a, args.b, args.delay_ms, args.loss
    );
    while !STOP.load(Ordering::Relaxed) {
        let now = Instant::now();
        flush(&b, &mut a_to_b, now);
        flush(&a, &mut b_to_a, now);
        let next_due = [a_to_b.queue.front(), b_to_a.queue.front()]
            .into_iter()
            .flatten()
            .map(|(due, _)| *due)
            .min();
        // Wake for the next due frame, else at least every 100 ms to see a signal.
        let wait = next_due.map_or(Duration::from_millis(100), |d| {
            d.saturating_duration_since(now)
        });
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(wait.subsec_nanos() as i32),
        };
        let mut fds = [
            libc::pollfd {
                fd: a.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: b.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: fds and ts are valid for the call; no signal mask change.
        let rc = unsafe { libc::ppoll(fds.as_mut_ptr(), 2, &ts, std::ptr::null()) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let now = Instant::now();
        if fds[0].revents & libc::POLLIN != 0 {
            relay.read(&a, &mut a_to_b, &mut buf, now)?;
        }
        if fds[1].revents & libc::POLLIN != 0 {
            relay.read(&b, &mut b_to_a, &mut buf, now)?;
        }
    }
    for (name, d) in [("a->b", &a_to_b), ("b->a", &b_to_a)] {
        eprintln!(
            "sfu-impair: {name}: relayed {}, lost {}, queue-full {}, send-failed {}",
            d.relayed, d.dropped_loss, d.dropped_full, d.send_failed
        );
    }
    Ok(())
}
