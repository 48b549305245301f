//! `sfu`: the media daemon. Thin: configuration, logging, the per-core worker pool.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::Parser;
use sfu::config::{Config, Flags, LogFormat, EX_CONFIG};
use sfu::dtls::DtlsIdentity;
use sfu::worker::shell::{spawn_worker, Lifeline, WorkerSpec};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// sysexits.h EX_SOFTWARE: an internal error (a worker died).
const EX_SOFTWARE: u8 = 70;
/// sysexits.h EX_OSERR: the system refused something (socket, thread, memory lock).
const EX_OSERR: u8 = 71;

fn main() -> ExitCode {
    let flags = match Flags::try_parse() {
        Ok(flags) => flags,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                // A bad flag or SFU_* value is bad configuration too (clap's message
                // names the flag).
                _ => ExitCode::from(EX_CONFIG),
            };
        }
    };
    let cfg = match Config::load(&flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sfu: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    if flags.print_config {
        match toml::to_string(&cfg) {
            Ok(s) => print!("{s}"),
            Err(e) => eprintln!("sfu: {e}"),
        }
        return ExitCode::SUCCESS;
    }
    // Everything the daemon creates (control directory, sockets) starts owner-only; the
    // modes others get are set explicitly (control_dir, worker::shell).
    // SAFETY: umask only swaps the process's file mode mask; no other thread runs yet.
    unsafe { libc::umask(0o077) };
    if let Err(e) = sfu::control_dir::prepare(&cfg.control) {
        eprintln!("sfu: {e}");
        return ExitCode::from(EX_CONFIG);
    }
    init_tracing(&cfg);
    match run(&cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "sfu failed");
            ExitCode::from(EX_OSERR)
        }
    }
}

fn init_tracing(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&cfg.log);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_thread_names(true);
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        // journald adds its own timestamps; keep lines short and plain.
        LogFormat::Text => builder.with_ansi(false).init(),
    }
}

fn run(cfg: &Config) -> Result<(), String> {
    let identity = DtlsIdentity::generate().map_err(|e| e.to_string())?;
    tracing::info!(
        fingerprint = identity.fingerprint_sha256(),
        "DTLS certificate generated"
    );
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cfg.pin && cores.is_empty() {
        tracing::warn!("cannot list CPU cores: workers are not pinned");
    }
    // Signals are taken over before any worker starts, so an early SIGTERM is not lost
    // to the default handler.
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).map_err(|e| format!("signal handlers: {e}"))?;
    let epoch = Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut handles = Vec::new();
    let mut lifelines = Vec::new();
    for index in 0..cfg.workers {
        let port = if cfg.rtc_port == 0 {
            0
        } else {
            // Validated in Config: rtc_port + workers - 1 <= 65535.
            cfg.rtc_port.saturating_add(index as u16)
        };
        let cpu = if cfg.pin && !cores.is_empty() {
            cores.get(index % cores.len()).map(|c| c.id)
        } else {
            None
        };
        let spec = WorkerSpec {
            index,
            workers: cfg.workers,
            listen: SocketAddr::new(cfg.listen_ip, port),
            tcp_listen: cfg
                .tcp_port(index)
                .map(|p| SocketAddr::new(cfg.listen_ip, p)),
            announced_ips: cfg.announced_ip.clone(),
            control_dir: cfg.control.clone(),
            cpu,
            identity: identity.clone(),
            io_memory: cfg.io_memory,
            lifeline: Arc::new(Lifeline::default()),
            epoch,
        };
        lifelines.push(spec.lifeline.clone());
        let handle = spawn_worker(spec, tx.clone()).map_err(|e| format!("worker {index}: {e}"))?;
        handles.push(handle);
    }
    drop(tx);
    let mut workers = Vec::new();
    for _ in 0..cfg.workers {
        match rx.recv() {
            Ok(Ok(ready)) => {
                tracing::info!(
                    worker = ready.index,
                    media = %ready.media,
                    control = %ready.control.display(),
                    "worker ready"
                );
                workers.push(serde_json::json!({
                    "worker": ready.index,
                    "media": ready.media.to_string(),
                    "tcp": ready.tcp.map(|a| a.to_string()),
                    "control": ready.control,
                    "admin": ready.admin,
                }));
            }
            Ok(Err(e)) => return Err(format!("a worker failed to start: {e}")),
            Err(_) => return Err("a worker exited before it was ready".into()),
        }
    }
    tracing::info!(workers = cfg.workers, control = %cfg.control.display(), "sfu ready");
    // One machine-readable line on stdout once every worker listens: what a supervisor
    // (the signaling process, tests) waits for instead of polling for sockets.
    workers.sort_by_key(|w| w["worker"].as_u64());
    println!(
        "{}",
        serde_json::json!({ "event": "ready", "workers": workers })
    );
    let _ = sd_notify::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&format!("{} workers ready", cfg.workers)),
    ]);
    if let Some(interval) = sd_notify::watchdog_enabled() {
        spawn_watchdog(interval, epoch, lifelines.clone());
    }

    // A worker that ends on its own (a panic, a dead socket) leaves the daemon unable to
    // serve its rooms: exit non-zero so the supervisor restarts us.
    let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut done = Vec::new();
    for (index, h) in handles.into_iter().enumerate() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let stopping = stopping.clone();
        std::thread::spawn(move || {
            let clean = h.join().is_ok();
            if !stopping.load(std::sync::atomic::Ordering::SeqCst) {
                tracing::error!(worker = index, clean, "worker ended unexpectedly");
                std::process::exit(i32::from(EX_SOFTWARE));
            }
            let _ = done_tx.send(());
        });
        done.push(done_rx);
    }

    let signal = signals.forever().next();
    stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    tracing::info!(?signal, "stopping");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    for l in &lifelines {
        l.request_stop();
    }
    // Workers close their transports (with notifications) and drain control writers in
    // well under a second; never let a stuck one keep us past the deadline.
    let deadline = Instant::now() + STOP_DEADLINE;
    for done_rx in done {
        let left = deadline.saturating_duration_since(Instant::now());
        if done_rx.recv_timeout(left).is_err() {
            tracing::warn!("a worker did not stop in time");
        }
    }
    let _ = std::fs::remove_dir(&cfg.control);
    tracing::info!("sfu stopped");
    Ok(())
}

/// Stop within this time of SIGTERM (operators expect a stop in under 2 s).
const STOP_DEADLINE: Duration = Duration::from_millis(1500);

/// Feeds the systemd watchdog at half its interval, but only while every worker's
/// executor is ticking: a stuck core then gets the daemon restarted.
fn spawn_watchdog(interval: Duration, epoch: Instant, lifelines: Vec<Arc<Lifeline>>) {
    let period = interval / 2;
    // A worker ticks every 100 ms; allow scheduling slack, but less than the interval.
    let max_age = (interval / 2).max(Duration::from_millis(500));
    let spawned = std::thread::Builder::new()
        .name("sfu-watchdog".into())
        .spawn(move || loop {
            std::thread::sleep(period);
            if lifelines.iter().all(|l| l.alive(epoch, max_age)) {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            } else {
                tracing::error!("a worker stopped ticking: not feeding the watchdog");
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the watchdog thread");
    }
}
