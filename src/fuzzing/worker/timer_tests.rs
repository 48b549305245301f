//! The core's timers in virtual time, driven the way the shell drives them: wake at
//! `poll_timeout`, run `handle_timeout`, repeat. A NACK retry toward a publisher goes out
//! at its own deadline (its first request plus the retry interval), which
//! `poll_timeout` reports, rather than at the next multiple of a fixed tick.

use super::*;
use crate::router::nack::retry_interval;
use crate::rtcp::Feedback;

/// NACKs for `VIDEO_SSRC` the core queued toward the publisher (peer A), decrypted with
/// the publisher's keys; the send batch is emptied.
fn nacks_to_publisher(s: &mut Session) -> Vec<Vec<u16>> {
    drain(&mut s.core);
    let mut nacks = Vec::new();
    let publisher = &mut s.peers[0];
    for (dest, d) in s.out.iter() {
        if dest != publisher.addr || classify(d) != PacketClass::Rtcp {
            continue;
        }
        let mut buf = d.to_vec();
        let Ok(n) = publisher.rx.unprotect_rtcp(&mut buf) else {
            continue;
        };
        let mut feedback = Vec::new();
        rtcp::parse_compound(&buf[..n], &mut feedback).expect("the core's RTCP parses");
        for f in feedback {
            if let Feedback::Nack {
                media_ssrc, lost, ..
            } = f
            {
                if media_ssrc == VIDEO_SSRC {
                    nacks.push(lost);
                }
            }
        }
    }
    s.out.clear();
    nacks
}

/// Runs the core's timers as the shell does, up to `until`: every wake-up is at the
/// instant `poll_timeout` reported. Returns the instants at which NACKs went out.
fn run_timers_until(s: &mut Session, until: Instant) -> Vec<(Instant, Vec<u16>)> {
    let mut sent = Vec::new();
    while let Some(at) = s.core.poll_timeout() {
        if at > until {
            break;
        }
        assert!(at >= s.now, "a deadline in the past was left behind");
        s.now = at;
        let now = s.now;
        s.core.handle_timeout(now, &mut s.out);
        sent.extend(nacks_to_publisher(s).into_iter().map(|l| (now, l)));
    }
    s.now = until;
    sent
}

fn video(s: &mut Session, seq: u16) {
    s.apply(Op::Media {
        stream: 0,
        seq,
        ts: u32::from(seq) * 3000,
        flags: if seq == 1 { 2 } else { 0 },
        payload: vec![0; 100],
    });
}

#[test]
fn a_nack_retry_fires_at_its_own_deadline_which_poll_timeout_reports() {
    let mut s = Session::new();
    let start = s.now;
    // Settle the setup's timers (its requests asked for a rescan).
    run_timers_until(&mut s, start + Duration::from_millis(3));
    // Packet 2 is lost, at an instant on no 100 ms grid.
    s.now = start + Duration::from_millis(37);
    video(&mut s, 1);
    video(&mut s, 3);
    s.out.clear();
    s.deliver(None);
    let gap = s.now;
    assert_eq!(
        nacks_to_publisher(&mut s),
        [vec![2]],
        "the first NACK goes out from the packet path"
    );
    let retry = gap + retry_interval(None);
    assert!(
        s.core.poll_timeout().is_some_and(|at| at <= retry),
        "poll_timeout reports the retry (or something earlier)"
    );
    let sent = run_timers_until(
        &mut s,
        gap + 2 * retry_interval(None) + Duration::from_millis(10),
    );
    let times: Vec<Duration> = sent.iter().map(|(t, _)| *t - gap).collect();
    assert_eq!(
        times,
        [retry_interval(None), 2 * retry_interval(None)],
        "retries exactly one retry interval apart from the first NACK"
    );
    assert!(sent.iter().all(|(_, lost)| *lost == [2]));
}

#[test]
fn nothing_runs_before_a_deadline() {
    let mut s = Session::new();
    let start = s.now;
    run_timers_until(&mut s, start + Duration::from_millis(3));
    video(&mut s, 1);
    video(&mut s, 3);
    s.deliver(None);
    let gap = s.now;
    assert_eq!(nacks_to_publisher(&mut s).len(), 1);
    let retry = gap + retry_interval(None);
    // Just before the retry, a timeout finds nothing of the producer's due.
    let early = retry - Duration::from_micros(1);
    s.core.handle_timeout(early, &mut s.out);
    assert!(nacks_to_publisher(&mut s).is_empty(), "not due yet");
    s.core.handle_timeout(retry, &mut s.out);
    assert_eq!(nacks_to_publisher(&mut s), [vec![2]], "due now");
}

#[test]
fn an_idle_call_sleeps_until_its_next_report_not_a_tick() {
    let mut s = Session::new();
    let start = s.now;
    run_timers_until(&mut s, start + Duration::from_millis(3));
    let next = s
        .core
        .poll_timeout()
        .expect("reports and consent are scheduled");
    assert!(
        next - s.now > Duration::from_millis(100),
        "no media, no losses: the next deadline is the RTCP report, {:?} away",
        next - s.now
    );
}
