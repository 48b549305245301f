//! Packets the daemon cannot protect are counted by class, never dropped silently
//! (issue 12): a subscriber with more open consumer streams than its outbound SRTP
//! context holds (`MAX_SSRCS`, 1,024) gets media on the first 1,024 and every copy for
//! the others counts as `srtpSsrcLimit`.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use str0m::Event;

/// The daemon's per-context SSRC cap (`sfu::srtp::MAX_SSRCS`).
const CAP: usize = 1024;
const OVER: usize = 76;

/// Makes room in the subscriber's socket for a whole fan-out burst (over a thousand
/// copies of one packet arrive within microseconds; the default buffer holds ~150 and
/// the kernel would drop the rest, hiding what the cap does). Returns the size granted.
fn widen_receive_buffer(peer: &Peer) -> usize {
    use std::os::fd::AsRawFd;
    let fd = peer.socket.as_raw_fd();
    let want: libc::c_int = 16 << 20;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid socket fd and a c_int option of the right size.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&want as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            break;
        }
    }
    let mut got: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: as above, with room for the c_int answer.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    usize::try_from(got).unwrap_or(0)
}

fn dropped(ctl: &mut Control) -> Value {
    ctl.ok("worker.getStats", None, json!(null))["dropped"].clone()
}

#[test]
fn copies_past_the_srtp_ssrc_cap_are_counted() {
    let daemon = Daemon::start(1);
    let mut call = Call::start(&daemon, false);
    let granted = widen_receive_buffer(&call.sub);
    assert!(
        granted >= 4 << 20,
        "needs a 4 MiB receive buffer (root or net.core.rmem_max): got {granted}"
    );
    // The long-lived consumer plus CAP - 1 + OVER more: OVER + ... past the cap.
    let caps = call.sub.rtp_capabilities();
    let mut ssrcs = vec![call.sub_audio];
    for _ in 0..CAP - 1 + OVER {
        let c = call.ctl.ok(
            "transport.consume",
            Some(&call.ts),
            json!({ "producerId": call.pa, "rtpCapabilities": caps }),
        );
        let ssrc = c["rtpParameters"]["encodings"][0]["ssrc"].as_u64().unwrap() as u32;
        call.sub
            .rtc
            .direct_api()
            .expect_stream_rx(ssrc.into(), None, "a".into(), None);
        ssrcs.push(ssrc);
    }
    let before = dropped(&mut call.ctl);
    let base = before["srtpSsrcLimit"]
        .as_u64()
        .expect("srtpSsrcLimit is a drop class");

    // Audio until the subscriber has media on the last SSRC within the cap (fan-out
    // serves consumers in creation order, so the first CAP fit).
    let (first, last_in) = (ssrcs[0], ssrcs[CAP - 1]);
    let beyond: Vec<u32> = ssrcs[CAP..].to_vec();
    let mut got = (false, false);
    let mut beyond_got = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seq = 0u64;
    while !(got.0 && got.1) && Instant::now() < deadline {
        seq += 1;
        send(
            &mut call.publisher,
            AUDIO_SSRC,
            call.opus,
            seq,
            (seq * 960) as u32,
            opus_payload(seq as u32),
        );
        call.publisher.pump(Duration::from_millis(2));
        call.sub.pump(Duration::from_millis(5));
        for e in call.sub.events.drain(..) {
            if let Event::RtpPacket(p) = e {
                let s = *p.header.ssrc;
                got.0 |= s == first;
                got.1 |= s == last_in;
                beyond_got += usize::from(beyond.contains(&s));
            }
        }
    }
    assert!(
        got.0 && got.1,
        "media within the cap reached the subscriber: {got:?}"
    );
    assert_eq!(beyond_got, 0, "nothing can be protected past the cap");

    let after = dropped(&mut call.ctl);
    let refused = after["srtpSsrcLimit"].as_u64().unwrap() - base;
    assert!(refused > 0, "refused copies are counted: {after}");
    assert_eq!(
        refused % OVER as u64,
        0,
        "each forwarded packet counts one refusal per consumer past the cap: {refused}"
    );
    // Nothing else was dropped.
    let total = |d: &Value| {
        d.as_object()
            .unwrap()
            .values()
            .filter_map(Value::as_u64)
            .sum::<u64>()
    };
    assert_eq!(
        total(&after) - total(&before),
        refused,
        "{before} -> {after}"
    );
    let t = call
        .ctl
        .ok("transport.getStats", Some(&call.ts), json!(null));
    assert!(t["packetsDropped"].as_u64().unwrap() >= refused, "{t}");
}
