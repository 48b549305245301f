//! Inputs that once crashed a fuzz target (see FUZZING.md), replayed through the same
//! entry points as the targets, plus the committed corpus of the cheap targets so that a
//! change that breaks a harness or reintroduces a known crash fails `cargo test`, not
//! only a fuzzing campaign.
//!
//! Crash inputs live in fuzz/regressions/<target>/<what-it-protects>; each fix is also
//! described in FUZZING.md ("Crashes found").

use std::fs;
use std::path::Path;

/// A target's entry point in `sfu::fuzzing`.
type Target = fn(&[u8]);

/// Every target by the name of its fuzz/fuzz_targets file.
const TARGETS: [(&str, Target); 7] = [
    ("stun", sfu::fuzzing::stun),
    ("rtp", sfu::fuzzing::rtp),
    ("rtcp", sfu::fuzzing::rtcp),
    ("srtp", sfu::fuzzing::srtp),
    ("control", sfu::fuzzing::control),
    ("dtls", sfu::fuzzing::dtls),
    ("worker", sfu::fuzzing::worker),
];

/// Runs `target` on every file under `dir` (missing directory: nothing to do); returns how
/// many files ran.
fn replay_dir(dir: &Path, target: Target, limit: usize) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    for f in files.iter().take(limit) {
        let data = fs::read(f).unwrap();
        // A panic names the file through the test's output.
        eprintln!("replaying {}", f.display());
        target(&data);
    }
    files.len().min(limit)
}

#[test]
fn recorded_crash_inputs_no_longer_crash() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for (name, target) in TARGETS {
        replay_dir(&root.join(name), target, usize::MAX);
    }
}

/// The parser targets are cheap even in a debug build: replay their whole committed
/// corpus. (`worker` and `dtls` run real DTLS handshakes per input; their corpus is
/// replayed by scripts/fuzz.sh.)
#[test]
fn committed_corpus_of_parser_targets_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in TARGETS {
        let limit = if matches!(name, "worker" | "dtls") {
            8
        } else {
            usize::MAX
        };
        let n = replay_dir(&root.join(name), target, limit);
        assert!(n > 0, "fuzz/corpus/{name} is empty");
    }
}
