//! Tests for the media socket. Everything runs on loopback (127.0.0.1 / ::1) with
//! ephemeral ports; synchronisation is blocking receives with timeouts, never sleeps.

use super::*;

use std::future::Future;
use std::net::UdpSocket as StdUdpSocket;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let ex = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(1 << 20)
        .make()
        .expect("executor (RLIMIT_MEMLOCK >= 512 KiB?)");
    ex.run(f());
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A std socket whose receives fail after a generous timeout instead of hanging the test.
fn receiver(ip: &str) -> (StdUdpSocket, SocketAddr) {
    let s = StdUdpSocket::bind(format!("{ip}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let addr = s.local_addr().unwrap();
    (s, addr)
}

/// Deterministic, self-describing payload: tag, sequence number, then a pattern.
fn payload(tag: u8, seq: u16, len: usize) -> Vec<u8> {
    assert!(len >= 3);
    let mut v = vec![tag, (seq >> 8) as u8, seq as u8];
    v.extend((3..len).map(|i| (i as u8) ^ (seq as u8) ^ tag));
    v
}

/// Receives exactly `expected.len()` datagrams and checks them, in order, byte for byte.
fn expect_datagrams(sock: &StdUdpSocket, expected: &[Vec<u8>], from: SocketAddr) {
    let mut buf = vec![0u8; 70_000];
    for (i, want) in expected.iter().enumerate() {
        let (n, src) = sock
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("datagram {i} of {} missing: {e}", expected.len()));
        assert_eq!(src, from);
        assert_eq!(n, want.len(), "datagram {i}: length");
        assert!(buf[..n] == want[..], "datagram {i}: content");
    }
}

/// Nothing further is queued (non-blocking check, not a timing assumption: every datagram
/// was sent synchronously before this is called).
fn expect_nothing_more(sock: &StdUdpSocket) {
    sock.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    let r = sock.recv_from(&mut buf);
    sock.set_nonblocking(false).unwrap();
    assert!(
        matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
        "unexpected extra datagram: {r:?}"
    );
}

fn set_int_opt(sock: &MediaSocket, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    assert!(setsockopt_int(sock.as_raw_fd(), level, name, value));
}

#[test]
fn send_batch_builder_semantics() {
    let mut b = SendBatch::new();
    let a = v4(1000);
    b.push(a, b"one");
    // Abandoned with len 0.
    b.start(a, 100);
    b.commit(0);
    // Abandoned by starting again.
    b.start(a, 100)[..3].copy_from_slice(b"xxx");
    let buf = b.start(a, 100);
    buf[..3].copy_from_slice(b"two");
    b.commit(3);
    b.push(a, b"");
    // IPv4-mapped destinations are canonicalised so they group with plain IPv4.
    let mapped = SocketAddr::V6(SocketAddrV6::new(
        Ipv4Addr::new(127, 0, 0, 1).to_ipv6_mapped(),
        1000,
        0,
        0,
    ));
    b.push(mapped, b"three");
    let got: Vec<_> = b.iter().map(|(d, p)| (d, p.to_vec())).collect();
    assert_eq!(
        got,
        vec![
            (a, b"one".to_vec()),
            (a, b"two".to_vec()),
            (a, b"three".to_vec())
        ]
    );
    assert_eq!(b.len(), 3);
    b.clear();
    assert!(b.is_empty());
}

#[test]
#[should_panic(expected = "exceeds")]
fn commit_longer_than_reserved_panics() {
    let mut b = SendBatch::new();
    b.start(v4(1000), 10);
    b.commit(11);
}

#[test]
fn mixed_destinations_arrive_complete_and_in_order() {
    run(|| async {
        let sock = MediaSocket::bind(v4(0)).unwrap();
        let me = sock.local_addr().unwrap();
        let (a, a_addr) = receiver("127.0.0.1");
        let (b, b_addr) = receiver("127.0.0.1");

        // Equal-size runs (GSO candidates, some ending with a shorter packet) mixed with
        // size changes that must split them.
        let sizes_a = [
            1200, 1200, 1200, 700, 1200, 1200, 300, 300, 300, 300, 900, 1200, 50, 50, 1400, 64,
        ];
        let sizes_b = [
            500, 500, 500, 500, 500, 500, 1300, 200, 1300, 1300, 1300, 1299, 10, 1100,
        ];
        let want_a: Vec<_> = (0..)
            .zip(sizes_a)
            .map(|(i, n)| payload(b'a', i, n))
            .collect();
        let want_b: Vec<_> = (0..)
            .zip(sizes_b)
            .map(|(i, n)| payload(b'b', i, n))
            .collect();

        // In runs per destination, as the fan-out produces them (a run of 5 of one,
        // then of the other); half go through start/commit with a larger reservation
        // than used.
        let mut batch = SendBatch::new();
        for i in (0..want_a.len().max(want_b.len())).step_by(5) {
            for p in want_a.iter().skip(i).take(5) {
                batch.push(a_addr, p);
            }
            for p in want_b.iter().skip(i).take(5) {
                let buf = batch.start(b_addr, 1500);
                buf[..p.len()].copy_from_slice(p);
                batch.commit(p.len());
            }
        }
        let total = want_a.len() + want_b.len();
        assert_eq!(batch.len(), total);

        let report = sock.send_batch(&mut batch).await.unwrap();
        assert!(batch.is_empty());
        assert_eq!(report.datagrams, total);
        assert_eq!(report.errors, 0);
        assert!(report.gso_sends > 0, "{report:?}");
        assert!(report.syscalls < total, "{report:?}");

        expect_datagrams(&a, &want_a, me);
        expect_datagrams(&b, &want_b, me);
        expect_nothing_more(&a);
        expect_nothing_more(&b);
    });
}

#[test]
fn gso_sends_equal_packets_as_separate_datagrams() {
    run(|| async {
        let sock = MediaSocket::bind(v4(0)).unwrap();
        let me = sock.local_addr().unwrap();
        let (a, a_addr) = receiver("127.0.0.1");
        let want: Vec<_> = (0..20).map(|i| payload(7, i, 1200)).collect();
        let mut batch = SendBatch::new();
        for p in &want {
            batch.push(a_addr, p);
        }
        let report = sock.send_batch(&mut batch).await.unwrap();
        assert_eq!(
            report,
            SendReport {
                datagrams: 20,
                syscalls: 1,
                gso_sends: 1,
                gso_datagrams: 20,
                errors: 0,
                blocked: 0,
            }
        );
        assert!(sock.gso_enabled());
        expect_datagrams(&a, &want, me);
        expect_nothing_more(&a);
    });
}

#[test]
fn gso_refusal_disables_gso_and_sends_singly() {
    run(|| async {
        let sock = MediaSocket::bind(v4(0)).unwrap();
        let me = sock.local_addr().unwrap();
        // Linux refuses UDP GSO (EINVAL) on sockets that skip the UDP checksum: a portable
        // way to make loopback behave like a device without GSO support.
        set_int_opt(&sock, libc::SOL_SOCKET, libc::SO_NO_CHECK, 1);
        let (a, a_addr) = receiver("127.0.0.1");

        for round in 0..2u16 {
            let want: Vec<_> = (0..20).map(|i| payload(9, round * 100 + i, 1000)).collect();
            let mut batch = SendBatch::new();
            for p in &want {
                batch.push(a_addr, p);
            }
            let report = sock.send_batch(&mut batch).await.unwrap();
            assert_eq!(report.datagrams, 20, "{report:?}");
            assert_eq!(report.errors, 0, "{report:?}");
            assert_eq!(report.gso_sends, 0, "{report:?}");
            // First round: refused GSO attempt + the singles; then straight to singles.
            assert_eq!(
                report.syscalls,
                if round == 0 { 2 } else { 1 },
                "{report:?}"
            );
            assert!(!sock.gso_enabled());
            expect_datagrams(&a, &want, me);
        }
        expect_nothing_more(&a);
    });
}

#[test]
fn recv_batch_drains_queued_datagrams_in_one_call() {
    run(|| async {
        let sock = MediaSocket::bind(v4(0)).unwrap();
        let addr = sock.local_addr().unwrap();
        let tx = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let tx_addr = tx.local_addr().unwrap();

        // Loopback delivers during the send syscall, so all of these are queued before
        // recv_batch runs. The oversized one must be dropped, not handed up truncated.
        let want: Vec<_> = (0..10)
            .map(|i| payload(3, i, 100 + usize::from(i)))
            .collect();
        for (i, p) in want.iter().enumerate() {
            tx.send_to(p, addr).unwrap();
            if i == 4 {
                tx.send_to(&vec![0xee; 3000], addr).unwrap();
            }
        }

        let mut batch = RecvBatch::new(32);
        let mut got = Vec::new();
        let mut largest = 0;
        while got.len() < want.len() {
            let n = sock.recv_batch(&mut batch).await.unwrap();
            assert_eq!(n, batch.len());
            largest = largest.max(n);
            for i in 0..n {
                let (data, from) = batch.get_mut(i).unwrap();
                assert_eq!(from, tx_addr);
                data[0] ^= 0; // writable in place
                got.push(data.to_vec());
            }
            assert!(batch.get_mut(n).is_none());
        }
        assert!(largest > 1, "expected several datagrams per call");
        assert_eq!(got, want);
    });
}

#[test]
fn recv_batch_parks_when_idle_then_drains() {
    run(|| async {
        let sock = MediaSocket::bind(v4(0)).unwrap();
        let addr = sock.local_addr().unwrap();
        let tx = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let tx_addr = tx.local_addr().unwrap();
        let want: Vec<_> = (0..3).map(|i| payload(4, i, 200)).collect();
        let to_send = want.clone();
        // Runs only once recv_batch has found the queue empty and parked on glommio.
        let sender = glommio::spawn_local(async move {
            for p in &to_send {
                tx.send_to(p, addr).unwrap();
            }
        });

        let mut batch = RecvBatch::new(8);
        let mut got = Vec::new();
        while got.len() < want.len() {
            let n = sock.recv_batch(&mut batch).await.unwrap();
            assert!(n > 0);
            for i in 0..n {
                let (data, from) = batch.get(i).unwrap();
                assert_eq!(from, tx_addr);
                got.push(data.to_vec());
            }
        }
        sender.await;
        assert_eq!(got, want);
    });
}

#[test]
fn rejected_destinations_do_not_fail_the_batch() {
    run(|| async {
        let sock = MediaSocket::bind(v4(0)).unwrap();
        let me = sock.local_addr().unwrap();
        // Make ICMP port-unreachable reach the socket as a pending ECONNREFUSED, which the
        // kernel then reports on whichever send or receive comes next.
        set_int_opt(&sock, libc::SOL_IP, libc::IP_RECVERR, 1);
        let (a, a_addr) = receiver("127.0.0.1");
        let closed = {
            let s = StdUdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        // Port 0 is rejected synchronously with EINVAL, the same errno as a GSO refusal:
        // it must neither disable GSO nor stop the batch.
        let port0 = v4(0);

        let mut want = Vec::new();
        let mut batch = SendBatch::new();
        // In runs per destination, so that each run is a GSO candidate.
        for i in 0..6u16 {
            batch.push(port0, &payload(0, i, 1000));
        }
        for i in 0..6u16 {
            let p = payload(b'a', i, 1000);
            batch.push(a_addr, &p);
            want.push(p);
        }
        for i in 0..6u16 {
            batch.push(closed, &payload(1, i, 1000));
        }
        // Too big for UDP at all: EMSGSIZE, for this datagram only.
        batch.push(a_addr, &vec![1; 65_600]);
        for i in 6..10u16 {
            let p = payload(b'a', i, 1000);
            batch.push(a_addr, &p);
            want.push(p);
        }

        let report = sock.send_batch(&mut batch).await.unwrap();
        assert_eq!(report.errors, 6 + 1, "{report:?}");
        assert_eq!(report.datagrams, 10 + 6, "{report:?}");
        assert!(sock.gso_enabled());
        expect_datagrams(&a, &want, me);
        expect_nothing_more(&a);

        // Later flushes are unaffected, whatever ICMP errors are now pending.
        for round in 0..3u16 {
            let want: Vec<_> = (0..8).map(|i| payload(2, round * 10 + i, 600)).collect();
            for p in &want {
                batch.push(closed, p);
            }
            for p in &want {
                batch.push(a_addr, p);
            }
            let report = sock.send_batch(&mut batch).await.unwrap();
            assert_eq!(report.datagrams, 16, "{report:?}");
            assert!(report.gso_sends > 0, "{report:?}");
            expect_datagrams(&a, &want, me);
        }

        // Receiving works too: a pending error is consumed, not returned.
        a.send_to(b"ping", me).unwrap();
        let mut rb = RecvBatch::new(4);
        let n = sock.recv_batch(&mut rb).await.unwrap();
        assert_eq!(n, 1);
        assert_eq!(rb.get(0).unwrap(), (&b"ping"[..], a_addr));
    });
}

#[test]
fn steady_state_reuse_does_not_grow() {
    run(|| async {
        let sock = MediaSocket::bind(v4(0)).unwrap();
        let me = sock.local_addr().unwrap();
        let (a, a_addr) = receiver("127.0.0.1");
        let (b, b_addr) = receiver("127.0.0.1");
        let mut batch = SendBatch::new();
        let mut first_round = None;
        for round in 0..5u16 {
            let mut want_a = Vec::new();
            let mut want_b = Vec::new();
            for i in 0..20u16 {
                let seq = round * 100 + i;
                for (dest, want, tag) in [(a_addr, &mut want_a, b'a'), (b_addr, &mut want_b, b'b')]
                {
                    let p = payload(tag, seq, if i % 5 == 4 { 400 } else { 1100 });
                    let buf = batch.start(dest, 1500);
                    buf[..p.len()].copy_from_slice(&p);
                    batch.commit(p.len());
                    want.push(p);
                }
            }
            let report = sock.send_batch(&mut batch).await.unwrap();
            assert_eq!(report.datagrams, 40);
            expect_datagrams(&a, &want_a, me);
            expect_datagrams(&b, &want_b, me);

            let caps = (
                batch.byte_capacity(),
                batch.datagram_capacity(),
                sock.scratch_capacity(),
            );
            match first_round {
                None => first_round = Some(caps),
                Some(first) => assert_eq!(caps, first, "round {round} grew"),
            }
        }
    });
}

#[test]
fn ipv6_loopback_with_gso() {
    run(|| async {
        let Ok(sock) = MediaSocket::bind("[::1]:0".parse().unwrap()) else {
            eprintln!("no IPv6 loopback; skipping");
            return;
        };
        let me = sock.local_addr().unwrap();
        let (a, a_addr) = receiver("[::1]");
        let mut want: Vec<_> = (0..12).map(|i| payload(6, i, 1200)).collect();
        want.push(payload(6, 12, 345));
        let mut batch = SendBatch::new();
        for p in &want {
            batch.push(a_addr, p);
        }
        let report = sock.send_batch(&mut batch).await.unwrap();
        assert_eq!(report.datagrams, 13);
        assert_eq!(report.gso_sends, 1);
        expect_datagrams(&a, &want, me);

        a.send_to(b"back", me).unwrap();
        let mut rb = RecvBatch::new(4);
        assert_eq!(sock.recv_batch(&mut rb).await.unwrap(), 1);
        assert_eq!(rb.get(0).unwrap(), (&b"back"[..], a_addr));
    });
}

#[test]
fn dual_stack_socket_speaks_plain_ipv4_addresses() {
    run(|| async {
        let Ok(sock) = MediaSocket::bind("[::]:0".parse().unwrap()) else {
            eprintln!("no IPv6; skipping");
            return;
        };
        let port = sock.local_addr().unwrap().port();
        let (a, a_addr) = receiver("127.0.0.1");
        let want: Vec<_> = (0..5).map(|i| payload(8, i, 800)).collect();
        let mut batch = SendBatch::new();
        for p in &want {
            batch.push(a_addr, p);
        }
        let report = sock.send_batch(&mut batch).await.unwrap();
        assert_eq!(report.datagrams, 5);
        assert_eq!(report.errors, 0);
        expect_datagrams(&a, &want, v4(port));

        // The peer shows up as 127.0.0.1, not ::ffff:127.0.0.1.
        a.send_to(b"hi", v4(port)).unwrap();
        let mut rb = RecvBatch::new(4);
        assert_eq!(sock.recv_batch(&mut rb).await.unwrap(), 1);
        assert_eq!(rb.get(0).unwrap(), (&b"hi"[..], a_addr));
    });
}

/// Rough send throughput of the different paths; prints, asserts nothing about time.
/// `cargo test --release --lib worker::udp::tests::send_throughput -- --ignored --nocapture`
#[test]
#[ignore = "measurement, not a test"]
fn send_throughput() {
    run(|| async {
        let sock = MediaSocket::bind(v4(0)).unwrap();
        // Sinks that never read: the kernel drops at their queues, which is fine here.
        let sinks: Vec<_> = (0..32).map(|_| receiver("127.0.0.1")).collect();
        let data = vec![0x5a; 1200];
        const PACKETS: usize = 200_000;

        let start = std::time::Instant::now();
        for _ in 0..PACKETS {
            sock.send_to(&data, sinks[0].1).await.unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        eprintln!(
            "send_to x1:            {:>9.0} pkt/s",
            PACKETS as f64 / secs
        );

        let mut batch = SendBatch::new();
        for (name, dests, per_dest) in [
            ("batch 32 -> 1 dest", 1, 32),
            ("batch 4 x 8 dests", 8, 4),
            ("batch 1 x 32 dests", 32, 1),
        ] {
            let mut total = SendReport::default();
            let start = std::time::Instant::now();
            for _ in 0..PACKETS / 32 {
                // Interleaved like a forwarding loop: packet-major, destination-minor.
                for _ in 0..per_dest {
                    for (_, dest) in &sinks[..dests] {
                        batch.push(*dest, &data);
                    }
                }
                let r = sock.send_batch(&mut batch).await.unwrap();
                total.datagrams += r.datagrams;
                total.syscalls += r.syscalls;
                total.gso_sends += r.gso_sends;
                total.errors += r.errors;
            }
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "{name:<22} {:>9.0} pkt/s, {:.2} datagrams/syscall, {total:?}",
                total.datagrams as f64 / secs,
                total.datagrams as f64 / total.syscalls as f64
            );
        }
    });
}

/// Rough receive throughput with a blasting sender thread; prints, asserts nothing about time.
#[test]
#[ignore = "measurement, not a test"]
fn recv_throughput() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    run(|| async {
        let sock = MediaSocket::bind(v4(0)).unwrap();
        let addr = sock.local_addr().unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        // Sends until told to stop; the receiver counts what it got, drops included.
        let sender = std::thread::spawn(move || {
            let tx = StdUdpSocket::bind("127.0.0.1:0").unwrap();
            let data = vec![0x5a; 1200];
            let mut sent = 0u64;
            while !stop.load(Ordering::Relaxed) {
                tx.send_to(&data, addr).unwrap();
                sent += 1;
            }
            sent
        });
        let mut batch = RecvBatch::new(32);
        let (mut got, mut calls) = (0usize, 0usize);
        let start = std::time::Instant::now();
        while got < 300_000 {
            got += sock.recv_batch(&mut batch).await.unwrap();
            calls += 1;
        }
        let secs = start.elapsed().as_secs_f64();
        done.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        eprintln!(
            "recv_batch(32): {:>9.0} pkt/s, {:.1} datagrams/call (sender sent {sent})",
            got as f64 / secs,
            got as f64 / calls as f64
        );
    });
}

/// Regression: glommio's own bind sets SO_REUSEPORT, which let a second socket bind the
/// same port and silently take half the flows. Ours must refuse.
#[test]
fn binding_a_taken_port_fails() {
    run(|| async {
        let first = MediaSocket::bind(v4(0)).unwrap();
        let taken = first.local_addr().unwrap();
        let err = MediaSocket::bind(taken).expect_err("second bind must fail");
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    });
}

/// Datagrams read in one batch keep their own kernel receive times (transport-cc
/// feedback reports arrival times; one time per batch squeezed Chromium's probe
/// clusters and made it reject them).
#[test]
fn batched_datagrams_keep_their_kernel_receive_times() {
    run(|| async {
        let sock = MediaSocket::bind(v4(0)).unwrap();
        let dest = sock.local_addr().unwrap();
        let sender = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let spin = |d: Duration| {
            let t = std::time::Instant::now();
            while t.elapsed() < d {
                std::hint::spin_loop();
            }
        };
        // Linux turns receive timestamping on lazily (a deferred static key) after the
        // first socket asks; until then datagrams are stamped when read. Warm up until a
        // stamp predates its read, as it always does on a long-lived daemon socket.
        let mut batch = RecvBatch::new(8);
        let mut active = false;
        for _ in 0..100 {
            sender.send_to(b"warm-up", dest).unwrap();
            spin(Duration::from_millis(3));
            sock.recv_batch(&mut batch).await.unwrap();
            let read = std::time::Instant::now();
            if batch
                .arrival(0)
                .is_some_and(|a| read.duration_since(a) >= Duration::from_millis(2))
            {
                active = true;
                break;
            }
        }
        assert!(active, "the kernel never stamped a datagram on arrival");
        sender.send_to(b"first", dest).unwrap();
        // The gap to measure (a condition to create, not a synchronisation).
        spin(Duration::from_millis(20));
        sender.send_to(b"second", dest).unwrap();
        let n = sock.recv_batch(&mut batch).await.unwrap();
        assert_eq!(n, 2, "both datagrams were queued before the call");
        let (a, b) = (
            batch.arrival(0).expect("timestamp"),
            batch.arrival(1).expect("timestamp"),
        );
        let apart = b.duration_since(a);
        assert!(
            apart >= Duration::from_millis(15) && apart < Duration::from_secs(1),
            "arrivals {apart:?} apart, sent 20 ms apart"
        );
    });
}

/// Runs `f` on a new thread inside a private network namespace whose loopback is up and
/// sends through a `tbf` queue of `rate`, so that queued datagrams stay charged to the sending
/// socket and a small send buffer fills up (EAGAIN), as a stalled path would make it.
/// Needs root (CAP_NET_ADMIN); `unshare(CLONE_NEWNET)` affects only the calling thread.
fn in_slow_loopback_namespace(rate: &'static str, f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        // SAFETY: unshare with a namespace flag only changes this thread's namespace.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "unshare(CLONE_NEWNET) (needs root): {}",
            io::Error::last_os_error()
        );
        for args in [
            &["ip", "link", "set", "lo", "up"][..],
            &[
                "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", rate, "burst", "4kb",
                "limit", "1mb",
            ][..],
        ] {
            let status = std::process::Command::new(args[0])
                .args(&args[1..])
                .status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "{args:?}: {status:?}"
            );
        }
        f();
    })
    .join()
    .expect("test thread");
}

#[test]
fn datagrams_that_hit_a_full_send_buffer_go_out_whole() {
    // Regression: the datagram that met EAGAIN was handed to glommio's `send_to`, whose
    // io_uring path (glommio 0.9 `rushed_sendmsg`) builds an iovec of length 1, so the
    // peer got a 1-byte datagram instead of the packet.
    // 20 Mbit/s drains the 40 datagrams in ~16 ms, well inside a flush's wait budget
    // (BLOCKED_SEND_WAIT) even on a loaded machine, while the 8 KiB send buffer still fills.
    in_slow_loopback_namespace("20mbit", || {
        run(|| async {
            let sock = MediaSocket::bind(v4(0)).unwrap();
            let me = sock.local_addr().unwrap();
            // The smallest send buffer the kernel allows (it doubles and floors the value).
            set_int_opt(&sock, libc::SOL_SOCKET, libc::SO_SNDBUF, 4096);
            let (a, a_addr) = receiver("127.0.0.1");
            a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut batch = SendBatch::new();
            // Distinct lengths: no GSO, one datagram per message.
            let want: Vec<_> = (0..40u16)
                .map(|i| payload(b'e', i, 1000 + usize::from(i)))
                .collect();
            for p in &want {
                batch.push(a_addr, p);
            }
            let report = sock.send_batch(&mut batch).await.unwrap();
            assert_eq!(report.errors, 0, "{report:?}");
            assert_eq!(report.datagrams, want.len(), "{report:?}");
            expect_datagrams(&a, &want, me);
            // The case under test happened (else this test proves nothing).
            assert!(report.blocked > 0, "no send met a full buffer: {report:?}");
        });
    });
}

#[test]
fn a_send_buffer_that_never_drains_costs_a_flush_a_bounded_wait() {
    // Regression: the datagram that met EAGAIN waited (in glommio's io_uring send) until
    // the socket had room, however long that took, and the whole packet loop with it,
    // while control went on answering. Here the path drains 1 KB a second.
    in_slow_loopback_namespace("8kbit", || {
        run(|| async {
            let sock = MediaSocket::bind(v4(0)).unwrap();
            set_int_opt(&sock, libc::SOL_SOCKET, libc::SO_SNDBUF, 4096);
            let (_a, a_addr) = receiver("127.0.0.1");
            let mut batch = SendBatch::new();
            for i in 0..40u16 {
                batch.push(a_addr, &payload(b'w', i, 1000 + usize::from(i)));
            }
            let started = Instant::now();
            let report = sock.send_batch(&mut batch).await.unwrap();
            let took = started.elapsed();
            assert!(report.blocked > 0, "{report:?}");
            assert!(report.errors > 0, "{report:?}");
            assert_eq!(report.datagrams + report.errors, 40, "{report:?}");
            assert!(
                took < BLOCKED_SEND_WAIT + Duration::from_millis(400),
                "the flush took {took:?}: {report:?}"
            );
        });
    });
}
