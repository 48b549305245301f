//! Keeps the library sans-IO: only the I/O shell (and the process around it) may touch
//! sockets, executors, the clock or the operating system's entropy. Everything else is
//! fed `(now, bytes)` and a seeded RNG (docs/ARCHITECTURE.md), which is what lets the
//! fuzz targets and the simulation drive a `WorkerCore` deterministically.
//!
//! A source scan rather than a lint: clippy's `disallowed-*` lists cannot be scoped to
//! some modules, and the shell legitimately uses all of these.

use std::fs;
use std::path::{Path, PathBuf};

/// The I/O side: the process entry point and its configuration and directories, the
/// glommio shell with its socket and control-connection queues.
const IO_FILES: &[&str] = &[
    "src/main.rs",
    "src/config.rs",
    "src/control_dir.rs",
    "src/worker/mod.rs",
    "src/worker/shell.rs",
    "src/worker/udp.rs",
    "src/worker/tcp.rs",
    "src/worker/udp_tests.rs",
    "src/worker/writer_queue.rs",
];

/// Drivers that stand in for the shell: they may read the clock once for an epoch.
const DRIVERS: &[&str] = &["src/fuzzing.rs", "src/fuzzing/", "src/sim/"];

/// What a sans-IO module must never name.
const FORBIDDEN: &[(&str, &str)] = &[
    (
        "worker::udp",
        "the I/O shell's socket (batch types are in crate::batch)",
    ),
    ("worker::shell", "the I/O shell"),
    ("glommio", "the executor"),
    ("UdpSocket", "a socket"),
    (
        "thread_rng",
        "OS-seeded randomness (take an RNG from the caller)",
    ),
    (
        "rand::random",
        "OS-seeded randomness (take an RNG from the caller)",
    ),
    (
        "OsRng",
        "OS-seeded randomness (take an RNG from the caller)",
    ),
    (
        "from_entropy",
        "OS-seeded randomness (take an RNG from the caller)",
    ),
];

/// Reading the clock, allowed in drivers and tests only.
const CLOCK: &[&str] = &["Instant::now()", "SystemTime::now()"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a module file that is not test code, without line comments (prose may
/// name the shell): a `#[cfg(test)]` item that is a block ends the scan (tests come
/// last), a one-line one (`mod tests;`, an import) is skipped.
fn production_lines(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        if line.trim() == "#[cfg(test)]" {
            match lines.next() {
                Some((_, item)) if item.trim_end().ends_with('{') => break,
                _ => continue,
            }
        }
        out.push((i + 1, line.split("//").next().unwrap_or_default()));
    }
    out
}

fn is_test_file(rel: &str) -> bool {
    rel.ends_with("/tests.rs") || rel.ends_with("_tests.rs") || rel.contains("/tests/")
}

#[test]
fn sans_io_modules_name_no_io_clock_or_os_entropy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    assert!(files.len() > 50, "the scan found the sources");
    let mut violations = Vec::new();
    for path in files {
        let rel = path
            .strip_prefix(root)
            .expect("under the manifest dir")
            .to_string_lossy()
            .replace('\\', "/");
        if IO_FILES.contains(&rel.as_str()) || is_test_file(&rel) {
            continue;
        }
        let driver = DRIVERS.iter().any(|d| rel.starts_with(d));
        let text = fs::read_to_string(&path).expect("read source");
        for (line, code) in production_lines(&text) {
            for (needle, what) in FORBIDDEN {
                if code.contains(needle) {
                    violations.push(format!("{rel}:{line}: names {what}: {}", code.trim()));
                }
            }
            if !driver && CLOCK.iter().any(|c| code.contains(c)) {
                violations.push(format!("{rel}:{line}: reads the clock: {}", code.trim()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "sans-IO modules reach for I/O:\n{}",
        violations.join("\n")
    );
}
