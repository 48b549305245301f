//! `sfu-loadgen`: the SFU's latency and capacity benchmark (see BENCHMARKS.md).
//!
//! - `bench`: every scenario against our SFU, the floor and Janus (and mediasoup when
//!   named), then the report.
//!   Expects the network namespaces scripts/bench.sh creates; run it through that script.
//! - `trial`: one scenario against one target (for profiling and experiments).
//! - `floor`: the minimal forwarder baseline (started by `bench` in the server namespace).
//! - `report`: table, plot and completeness check from a results directory.

mod bench;
mod feedback;
mod floor;
mod gen;
mod media;
mod report;
mod sys;
mod targets;
mod webrtc;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::{json, Value};

use bench::{Kind, Layout, Options, Timing};
use media::{MediaSpec, VideoShape};
use targets::Env;

#[derive(Parser)]
#[command(
    name = "sfu-loadgen",
    about = "WebRTC load generator and benchmark for the sfu daemon"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the whole benchmark and writes results, table and plot.
    Bench(BenchArgs),
    /// Runs one scenario against one target and prints its result.
    Trial {
        #[command(flatten)]
        common: Common,
        /// sfu, floor, janus or mediasoup.
        #[arg(long, default_value = "sfu")]
        target: String,
        #[arg(long, default_value_t = 1)]
        rooms: usize,
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        #[arg(long, default_value_t = 10)]
        subscribers: usize,
        /// Every publisher also subscribes to the others of its room.
        #[arg(long)]
        mesh: bool,
        /// single (one 1 Mbit/s stream), simulcast (three layers, subscribers spread over
        /// them) or layers (the same three streams as three single-layer producers).
        #[arg(long, default_value = "single")]
        video: String,
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        #[arg(long, default_value_t = 5.0)]
        measure: f64,
        /// RTCP feedback with this simulated loss (e.g. 0.01): receiver reports, NACKs,
        /// transport-cc, RTX answers.
        #[arg(long)]
        feedback_loss: Option<f64>,
    },
    /// The floor forwarder (pre-shared keys, no SFU logic).
    Floor {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        control: PathBuf,
    },
    /// Table, plot and checks from existing results.
    Report(ReportArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Network namespace of the targets.
    #[arg(long)]
    netns: Option<String>,
    /// The targets' address (server end of the veth pair).
    #[arg(long, default_value = "10.99.0.1")]
    server_ip: Ipv4Addr,
    /// Our sessions' address (generator end of the veth pair).
    #[arg(long, default_value = "10.99.0.2")]
    gen_ip: Ipv4Addr,
    /// Server-side interface name (Janus's ICE enforce list).
    #[arg(long, default_value = "sfub0")]
    iface: String,
    /// Core the targets are pinned to.
    #[arg(long)]
    server_cpu: Option<usize>,
    /// Core the generator pins itself to.
    #[arg(long)]
    gen_cpu: Option<usize>,
    /// Directory with the release `sfu` binary.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    /// Scratch directory (control sockets, Janus configuration and log).
    #[arg(long, default_value = "/tmp/sfu-bench")]
    work_dir: PathBuf,
    /// Decrypt one received packet in this many for latency (plus the first of each SSRC).
    #[arg(long, default_value_t = 8)]
    decrypt_every: u32,
    /// Video bit rate per publisher.
    #[arg(long, default_value_t = 1_000_000)]
    video_bps: u64,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    common: Common,
    /// Where the JSON files go.
    #[arg(long, default_value = "benches/results")]
    out: PathBuf,
    /// Targets to run, comma-separated: sfu, floor, janus, mediasoup. mediasoup is not in
    /// the default set yet: the worker built here (scripts/install-mediasoup.sh) crashes
    /// in its first DTLS handshake (see BENCHMARKS.md).
    #[arg(long, default_value = "sfu,floor,janus")]
    targets: String,
    /// The CI smoke run: tiny scenarios, short windows, completeness check.
    #[arg(long)]
    smoke: bool,
    /// Markdown file whose table section is replaced with the new table.
    #[arg(long)]
    benchmarks_md: Option<PathBuf>,
    /// Only these scenarios, comma-separated (layout names such as `fanout-1-915`, and
    /// `capacity`, `capacity-simulcast`, `capacity-layers`); all of them (but
    /// `capacity-layers`) when absent. For before/after comparisons of one change.
    #[arg(long)]
    scenarios: Option<String>,
}

#[derive(Args)]
struct ReportArgs {
    #[arg(long, default_value = "benches/results")]
    results: PathBuf,
    #[arg(long)]
    benchmarks_md: Option<PathBuf>,
    /// Fail unless every result is complete.
    #[arg(long)]
    check: bool,
}

fn options(c: &Common, timing: Timing) -> Result<Options, String> {
    if let Some(cpu) = c.gen_cpu {
        sys::pin_to_cpu(cpu).map_err(|e| format!("pin to CPU {cpu}: {e}"))?;
    }
    std::fs::create_dir_all(&c.work_dir).map_err(|e| e.to_string())?;
    let bin_dir = std::fs::canonicalize(&c.bin_dir).unwrap_or_else(|_| c.bin_dir.clone());
    Ok(Options {
        env: Env {
            netns: c.netns.clone(),
            server_ip: c.server_ip,
            cpu: c.server_cpu,
            bin_dir,
            work_dir: c.work_dir.clone(),
        },
        iface: c.iface.clone(),
        gen_ip: c.gen_ip,
        spec: MediaSpec {
            video_bps: c.video_bps,
            ..MediaSpec::default()
        },
        decrypt_every: c.decrypt_every,
        timing,
        wave: 200,
    })
}

fn write(out: &std::path::Path, name: &str, v: &Value) -> Result<(), String> {
    let p = out.join(format!("{name}.json"));
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    std::fs::write(&p, s + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    eprintln!("wrote {}", p.display());
    Ok(())
}

fn bench(a: BenchArgs) -> Result<(), String> {
    let timing = if a.smoke {
        Timing {
            warmup: Duration::from_millis(700),
            measure: Duration::from_millis(1500),
            drain: Duration::from_millis(200),
        }
    } else {
        Timing {
            warmup: Duration::from_secs(2),
            measure: Duration::from_secs(5),
            drain: Duration::from_millis(300),
        }
    };
    let o = options(&a.common, timing)?;
    let kinds: Vec<Kind> = a
        .targets
        .split(',')
        .map(|t| Kind::parse(t.trim()).ok_or(format!("unknown target {t}")))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|&k| {
            // CI does not build mediasoup (9 CPU-minutes): a smoke run that names it covers
            // it when a build is cached, and says so when not.
            let skip = a.smoke && k == Kind::Mediasoup && !targets::mediasoup::available();
            if skip {
                eprintln!(
                    "== mediasoup skipped: no cached build in {} (scripts/install-mediasoup.sh builds it, ~8 minutes)",
                    targets::mediasoup::cache_dir().display()
                );
            }
            !skip
        })
        .collect();
    std::fs::create_dir_all(&a.out).map_err(|e| e.to_string())?;
    // Old results of a previous layout would otherwise end up in the table.
    for entry in std::fs::read_dir(&a.out)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if entry.path().extension().is_some_and(|x| x == "json") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let mesh = |rooms: usize, size: usize| Layout {
        name: format!("rooms-{rooms}x{size}"),
        rooms,
        publishers: size,
        subscribers: 0,
        mesh: true,
        video: VideoShape::Single,
        feedback_loss: None,
    };
    // Simulcast against its baseline: the same three streams in and the same packets
    // out, through simulcast consumers of one producer or simple consumers of three.
    let simulcast = |subs: usize| {
        [
            Layout::layered(subs, VideoShape::Simulcast),
            Layout::layered(subs, VideoShape::Layers),
        ]
    };
    let layouts: Vec<Layout> = if a.smoke {
        let mut l = vec![
            Layout::fanout(1),
            Layout::fanout(10),
            Layout::feedback(10, 0.01),
            mesh(2, 3),
        ];
        l.extend(simulcast(6));
        l
    } else {
        // 915 subscribers ~ 150,000 packets/s out: half the capacity target, where the
        // in-daemon latency targets apply.
        vec![
            Layout::fanout(1),
            Layout::fanout(10),
            Layout::fanout(100),
            Layout::fanout(500),
            // The feedback paths' cost: fanout-1-500 with 1 % loss, NACKs, RTX,
            // receiver reports and transport-cc.
            Layout::feedback(500, 0.01),
            Layout::fanout(915),
            // The same ~150,000 packets/s out as many small rooms: the in-daemon latency
            // targets at half load, without one packet's 915 copies queueing behind
            // each other.
            Layout {
                name: "rooms-100x1-9".into(),
                rooms: 100,
                publishers: 1,
                subscribers: 9,
                mesh: false,
                video: VideoShape::Single,
                feedback_loss: None,
            },
            mesh(10, 5),
        ]
        .into_iter()
        .chain(simulcast(600))
        .chain(simulcast(1500))
        .collect()
    };
    let wanted: Option<Vec<&str>> = a
        .scenarios
        .as_deref()
        .map(|s| s.split(',').map(str::trim).collect());
    let wants = |name: &str| wanted.as_ref().is_none_or(|w| w.contains(&name));
    if let Some(w) = &wanted {
        if let Some(unknown) = w
            .iter()
            .find(|n| !CAPACITY.contains(n) && !layouts.iter().any(|l| l.name == **n))
        {
            return Err(format!("unknown scenario {unknown}"));
        }
    }
    let mut failures = 0;
    for l in layouts.iter().filter(|l| wants(&l.name)) {
        for &k in kinds.iter().filter(|k| l.runs_on(**k)) {
            eprintln!("== {} on {}", l.name, k.name());
            let v = bench::run_trial(k, l, &o).unwrap_or_else(|e| {
                failures += 1;
                eprintln!("!! {} on {}: {e}", l.name, k.name());
                json!({ "scenario": l.name, "target": k.name(), "error": e })
            });
            write(&a.out, &format!("{}-{}", l.name, k.name()), &v)?;
        }
    }
    for &k in kinds.iter().filter(|_| wants("capacity")) {
        let (start, max, trials) = match (a.smoke, k) {
            (true, _) => (20, 40, (2, 1)),
            (false, Kind::Janus) => (200, 3000, (6, 4)),
            (false, Kind::Mediasoup) => (200, 3000, (6, 4)),
            (false, Kind::Floor) => (1000, 4000, (6, 4)),
            (false, Kind::Sfu) => (500, 4000, (6, 4)),
        };
        eprintln!("== capacity on {}", k.name());
        let v = bench::capacity(k, &o, "capacity", Layout::fanout, start, max, 0.1, trials);
        write(&a.out, &format!("capacity-{}", k.name()), &v)?;
    }
    // The same search with the simulcast publisher (subscribers spread over its layers),
    // and with its baseline (the same streams as single-layer producers); the baseline's
    // only when named, not in the full or smoke run.
    let layered = [
        ("capacity-simulcast", VideoShape::Simulcast),
        ("capacity-layers", VideoShape::Layers),
    ];
    for (name, shape) in layered {
        let named = wanted.as_ref().is_some_and(|w| w.contains(&name));
        if !kinds.contains(&Kind::Sfu)
            || !(named || (shape == VideoShape::Simulcast && wants(name)))
        {
            continue;
        }
        let (start, max, trials) = if a.smoke {
            (6, 12, (1, 0))
        } else {
            (500, 5000, (6, 4))
        };
        eprintln!("== {name} on sfu");
        let layout = |n| Layout::layered(n, shape);
        let v = bench::capacity(Kind::Sfu, &o, name, layout, start, max, 0.1, trials);
        write(&a.out, &format!("{name}-sfu"), &v)?;
    }
    let ok = report_cmd(ReportArgs {
        results: a.out.clone(),
        benchmarks_md: a.benchmarks_md,
        check: a.smoke,
    });
    if failures > 0 {
        eprintln!("{failures} trials failed (see the error fields)");
    }
    ok
}

/// The capacity searches `--scenarios` may name.
const CAPACITY: [&str; 3] = ["capacity", "capacity-simulcast", "capacity-layers"];

fn report_cmd(a: ReportArgs) -> Result<(), String> {
    let results = report::load(&a.results)?;
    let mut table = report::table(&results);
    let simulcast = report::simulcast_table(&results);
    if !simulcast.is_empty() {
        table += "\nSimulcast against its baseline (see \"Simulcast\"):\n\n";
        table += &simulcast;
    }
    let plot = a.results.join("plot.svg");
    report::plot(&results, &plot)?;
    std::fs::write(a.results.join("table.md"), &table).map_err(|e| e.to_string())?;
    println!("{table}");
    if let Some(md) = &a.benchmarks_md {
        report::splice(md, &table)?;
    }
    let mut bad = 0;
    for (name, r) in &results {
        let problems = report::check(r);
        if !problems.is_empty() {
            bad += 1;
            eprintln!("{name}: {}", problems.join("; "));
        }
    }
    eprintln!(
        "{} result files, {} complete, plot {}",
        results.len(),
        results.len() - bad,
        plot.display()
    );
    if a.check && (bad > 0 || results.is_empty()) {
        return Err(format!(
            "{bad} of {} result files incomplete",
            results.len()
        ));
    }
    Ok(())
}

fn run() -> Result<(), String> {
    match Cli::parse().cmd {
        Cmd::Bench(a) => bench(a),
        Cmd::Trial {
            common,
            target,
            rooms,
            publishers,
            subscribers,
            mesh,
            video,
            warmup,
            measure,
            feedback_loss,
        } => {
            let video = match video.as_str() {
                "single" => VideoShape::Single,
                "simulcast" => VideoShape::Simulcast,
                "layers" => VideoShape::Layers,
                other => return Err(format!("unknown video shape {other}")),
            };
            let timing = Timing {
                warmup: Duration::from_secs_f64(warmup),
                measure: Duration::from_secs_f64(measure),
                drain: Duration::from_millis(300),
            };
            let o = options(&common, timing)?;
            let k = Kind::parse(&target).ok_or("unknown target")?;
            let l = Layout {
                name: format!("trial-{rooms}x{publishers}-{subscribers}"),
                rooms,
                publishers,
                subscribers,
                mesh,
                video,
                feedback_loss,
            };
            let v = bench::run_trial(k, &l, &o)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Cmd::Floor { listen, control } => floor::run(listen, control),
        Cmd::Report(a) => report_cmd(a),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sfu-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
