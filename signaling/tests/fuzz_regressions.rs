//! The signaling process's fuzz targets (FUZZING.md, `signaling_*`): inputs that once
//! crashed them and their committed corpus, replayed through the same entry points, so
//! that a change that breaks a harness or reintroduces a known crash fails `cargo test`,
//! not only a fuzzing campaign. (The media daemon's targets are replayed by the root
//! package's tests/fuzz_regressions.rs; that package does not depend on this one.)
//!
//! Crash inputs live in fuzz/regressions/<target>/<what-it-protects>.

use std::fs;
use std::path::{Path, PathBuf};

use sfu_signaling::fuzzing::{run_ws, signaling_sdp, signaling_whip, signaling_ws};

/// A target's entry point in `sfu_signaling::fuzzing`.
type Target = fn(&[u8]);

/// Every signaling target by the name of its fuzz/fuzz_targets file.
const TARGETS: [(&str, Target); 3] = [
    ("signaling_ws", signaling_ws),
    ("signaling_sdp", signaling_sdp),
    ("signaling_whip", signaling_whip),
];

fn fuzz_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(sub)
}

/// The files under `dir`, sorted (missing directory: none).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    files
}

/// Runs `target` on every file under `dir`; returns how many ran.
fn replay_dir(dir: &Path, target: Target) -> usize {
    let files = files(dir);
    for f in &files {
        // A panic names the file through the test's output.
        eprintln!("replaying {}", f.display());
        target(&fs::read(f).unwrap());
    }
    files.len()
}

#[test]
fn recorded_crash_inputs_no_longer_crash() {
    for (name, target) in TARGETS {
        replay_dir(&fuzz_dir("regressions").join(name), target);
    }
}

/// Both targets are cheap: the whole committed corpus replays in a debug build.
#[test]
fn committed_corpus_replays() {
    for (name, target) in TARGETS {
        let n = replay_dir(&fuzz_dir("corpus").join(name), target);
        assert!(n > 0, "fuzz/corpus/{name} is empty");
    }
}

/// The corpus still reaches the end of a call: some input joins, publishes (the send-side
/// translation succeeds) and gets at least two receive-side answers accepted, as the
/// seeded Chromium and Firefox calls do (`cmin` may replace them by smaller inputs that
/// do the same). A harness or translation change that stops every input short fails.
#[test]
fn corpus_reaches_accepted_answers() {
    let deep = files(&fuzz_dir("corpus/signaling_ws"))
        .iter()
        .map(|f| run_ws(&fs::read(f).unwrap()))
        .filter(|r| r.joins > 0 && r.published > 0 && r.answers >= 2)
        .count();
    assert!(
        deep > 0,
        "no input of fuzz/corpus/signaling_ws gets through a call"
    );
}
