//! The daemon as a service: graceful SIGTERM during a call, and configuration errors that
//! name the key.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn sigterm_closes_everything_with_notifications_and_exits_zero_within_2s() {
    let daemon = Daemon::start(2);
    let Call {
        mut ctl,
        router,
        mut publisher,
        tp,
        ts,
        pa,
        ca,
        ..
    } = Call::start(&daemon, false);
    let sockets: Vec<_> = daemon.workers.iter().map(|w| w.1.clone()).collect();

    let (status, took) = daemon
        .terminate(Duration::from_secs(5))
        .expect("sfu exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");

    // Every entity was closed with a notification before the connection ended.
    for (target, event) in [
        (router.as_str(), "workerclose"),
        (tp.as_str(), "routerclose"),
        (ts.as_str(), "routerclose"),
        (pa.as_str(), "transportclose"),
        (ca.as_str(), "producerclose"),
    ] {
        ctl.wait_event(target, event);
    }
    for s in sockets {
        assert!(!s.exists(), "control socket {} left behind", s.display());
    }
    // The peers were told too (DTLS close_notify): str0m reports the peer closing.
    let mut closed = false;
    publisher.drive_until(std::time::Instant::now() + Duration::from_secs(2), |p| {
        closed = p.events.iter().any(|e| {
            matches!(
                e,
                str0m::Event::IceConnectionStateChange(str0m::IceConnectionState::Disconnected)
            )
        }) || !p.rtc.is_alive();
        closed
    });
    assert!(closed, "the publisher was not told the transport closed");
}

fn sfu() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sfu"))
}

#[test]
fn bad_configuration_fails_at_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sfu.toml");
    for (text, key) in [
        ("wrokers = 2\n", "wrokers"),
        ("workers = 0\n", "workers"),
        ("listen_ip = \"not an ip\"\n", "listen_ip"),
        ("listen_ip = \"0.0.0.0\"\n", "announced_ip"),
        ("io_memory = 10\n", "io_memory"),
    ] {
        std::fs::write(&file, text).unwrap();
        let out = sfu().arg("--config").arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(78), "{text}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(key),
            "{text}: stderr does not name {key}: {err}"
        );
    }
    let out = sfu().args(["--workers", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let out = sfu().env("SFU_RTC_PORT", "forty").output().unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--rtc-port"));
}

#[test]
fn flags_override_environment_override_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sfu.toml");
    std::fs::write(&file, "workers = 3\nrtc_port = 5000\nlog = \"debug\"\n").unwrap();
    let out = sfu()
        .arg("--config")
        .arg(&file)
        .args(["--print-config", "--workers", "1"])
        .env("SFU_RTC_PORT", "6000")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let printed: toml::Value = toml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    assert_eq!(printed["workers"].as_integer(), Some(1));
    assert_eq!(printed["rtc_port"].as_integer(), Some(6000));
    assert_eq!(printed["log"].as_str(), Some("debug"));
}
