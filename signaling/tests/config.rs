//! Configuration of the binary: a TOML file, SFU_SIGNALING_* variables and flags, in
//! that order of strength; `--print-config`; bad configuration exits 78 naming the key
//! before anything starts; JSON logs on request.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::sfu_bin;

const EX_CONFIG: i32 = 78;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sfu-signaling"));
    // The caller's environment must not leak settings into these checks.
    for (k, _) in std::env::vars() {
        if k.starts_with("SFU_SIGNALING_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args).envs(env.iter().copied()).output().unwrap()
}

fn write_config(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("signaling.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

fn config_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_configuration_exits_78_naming_the_key() {
    let (_d, bad_key) = write_config("listen = \"127.0.0.1:0\"\nmax_peer = 4\n");
    let started = Instant::now();
    let err = config_error(&run(&["--config", &bad_key], &[]));
    assert!(err.contains("max_peer"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "fails at start, before any daemon"
    );

    let (_d, bad_value) = write_config("video_codec = \"theora\"\n");
    let err = config_error(&run(&["--config", &bad_value], &[]));
    assert!(err.contains("video_codec"), "{err}");

    let (_d, range) = write_config("max_message = 0\n");
    let err = config_error(&run(&["--config", &range], &[]));
    assert!(err.contains("`max_message`"), "{err}");

    let err = config_error(&run(
        &[],
        &[("SFU_SIGNALING_LOG", "info,sfu_signaling=loud")],
    ));
    assert!(err.contains("`log`"), "{err}");

    let err = config_error(&run(&[], &[("SFU_SIGNALING_RTC_PORT", "forty")]));
    assert!(err.contains("--rtc-port"), "{err}");

    let err = config_error(&run(&["--sfu", "/nonexistent/sfu"], &[]));
    assert!(err.contains("`sfu`"), "{err}");

    let err = config_error(&run(&["--config", "/nonexistent/signaling.toml"], &[]));
    assert!(err.contains("/nonexistent/signaling.toml"), "{err}");
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let (_d, path) = write_config(
        "max_peers = 4\nmax_message = 1000\nlog = \"debug\"\nlog_format = \"json\"\ndaemon = \"/run/sfu\"\n",
    );
    let out = run(
        &["--config", &path, "--print-config", "--max-peers", "8"],
        &[
            ("SFU_SIGNALING_MAX_PEERS", "6"),
            ("SFU_SIGNALING_MAX_MESSAGE", "2000"),
            ("SFU_SIGNALING_AUTH_SECRET", "not-printed"),
            ("SFU_SIGNALING_METRICS_TOKEN", "not-printed-either"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let v: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(
        v["max_peers"].as_integer(),
        Some(8),
        "flag over env: {text}"
    );
    assert_eq!(v["max_message"].as_integer(), Some(2000), "env over file");
    assert_eq!(v["log"].as_str(), Some("debug"), "file over default");
    assert_eq!(v["log_format"].as_str(), Some("json"));
    assert_eq!(v["daemon"].as_str(), Some("/run/sfu"));
    assert_eq!(v["listen"].as_str(), Some("127.0.0.1:8080"), "default");
    assert_eq!(v["auth_secret"].as_str(), Some("<hidden>"));
    assert_eq!(v["metrics_token"].as_str(), Some("<hidden>"));
    assert!(!text.contains("not-printed"));
}

#[test]
fn json_logs_on_request() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sfu-signaling"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--log-format",
            "json",
        ])
        .args(["--log", "warn"])
        .arg("--sfu")
        .arg(sfu_bin())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    // The first line is the warning about running without a secret.
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["level"], "WARN", "{v}");
    assert!(
        v["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("auth_secret"),
        "{v}"
    );
}
