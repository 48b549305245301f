//! The control directory: whoever can replace its entries can stand in for the daemon,
//! so the daemon refuses one it does not own, one its group or others may write, and a
//! symlink (exit 78 naming `control`); it creates a missing one itself (0750, sockets
//! 0770 and the admin socket 0600), and without configuration it lives in
//! `$XDG_RUNTIME_DIR/sfu`, never under /tmp.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

/// How a start of the daemon ended: its ready line, or its exit code and stderr.
enum Outcome {
    Ready(Value),
    Exited(Option<i32>, String),
}

fn start(control: Option<&Path>, runtime_dir: Option<&Path>) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sfu"));
    cmd.args(["--workers", "1", "--rtc-port", "0", "--pin", "false"])
        .args(["--log", "warn"])
        .env_remove("SFU_CONTROL")
        .env_remove("SFU_CONFIG")
        .env_remove("XDG_RUNTIME_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = control {
        cmd.arg("--control").arg(dir);
    }
    if let Some(dir) = runtime_dir {
        cmd.env("XDG_RUNTIME_DIR", dir);
    }
    let mut child = cmd.spawn().expect("start sfu");
    let mut line = String::new();
    // A ready line, or end of file once the daemon exited (a refusal).
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if !line.is_empty() {
        let _ = child.kill();
        let _ = child.wait();
        return Outcome::Ready(serde_json::from_str(&line).expect("ready line is JSON"));
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    Outcome::Exited(status.code(), stderr)
}

fn assert_refused(control: &Path, why: &str) {
    match start(Some(control), None) {
        Outcome::Ready(r) => panic!("{} ({why}) was accepted: {r}", control.display()),
        Outcome::Exited(code, stderr) => {
            assert_eq!(code, Some(78), "{stderr}");
            assert!(
                stderr.contains("`control`") && stderr.contains(why),
                "stderr does not say `control`, {why}: {stderr}"
            );
        }
    }
}

fn mkdir(path: &Path, mode: u32) {
    std::fs::create_dir(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn refuses_a_directory_its_group_or_others_may_write() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, mode) in [("group", 0o770), ("world", 0o777), ("sticky", 0o1777)] {
        let dir = tmp.path().join(name);
        mkdir(&dir, mode);
        assert_refused(&dir, "writable");
    }
}

#[test]
fn refuses_a_directory_owned_by_another_user() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("foreign");
    mkdir(&dir, 0o700);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // As root, hand it to nobody; otherwise a directory of root's is foreign.
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        assert_refused(&dir, "owned by uid 65534");
    } else {
        assert_refused(Path::new("/"), "owned by uid 0");
    }
}

#[test]
fn refuses_a_symlink_even_to_a_good_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good");
    mkdir(&good, 0o700);
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&good, &link).unwrap();
    assert_refused(&link, "symlink");
    // The directory itself is fine.
    assert!(matches!(start(Some(&good), None), Outcome::Ready(_)));
}

#[test]
fn creates_a_missing_directory_with_owner_only_admin_socket() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run/sfu");
    let Outcome::Ready(ready) = start(Some(&dir), None) else {
        panic!("a fresh directory was refused");
    };
    let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&dir), 0o750);
    let worker = &ready["workers"][0];
    let control = Path::new(worker["control"].as_str().unwrap()).to_owned();
    let admin = Path::new(worker["admin"].as_str().unwrap()).to_owned();
    assert_eq!(control, dir.join("worker-0.sock"));
    assert_eq!(admin, dir.join("worker-0.admin.sock"));
    // The daemon was killed, its sockets remain to be inspected.
    assert_eq!(mode(&control), 0o770);
    assert_eq!(mode(&admin), 0o600);
}

#[test]
fn defaults_to_the_runtime_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let Outcome::Ready(ready) = start(None, Some(tmp.path())) else {
        panic!("the default control directory was refused");
    };
    assert_eq!(
        ready["workers"][0]["control"].as_str(),
        tmp.path().join("sfu/worker-0.sock").to_str()
    );
}
