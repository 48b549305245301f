//! `sfu`: the media daemon. Thin: configuration, logging, the per-core worker pool.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use sfu::config::{Config, Flags, LogFormat};
use sfu::dtls::DtlsIdentity;
use sfu::worker::shell::{spawn_worker, WorkerSpec};

/// sysexits.h EX_CONFIG: the configuration is wrong.
const EX_CONFIG: u8 = 78;
/// sysexits.h EX_OSERR: the system refused something (socket, thread, memory lock).
const EX_OSERR: u8 = 71;

fn main() -> ExitCode {
    let flags = Flags::parse();
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
    std::fs::create_dir_all(&cfg.control).map_err(|e| {
        format!(
            "cannot create control directory {}: {e}",
            cfg.control.display()
        )
    })?;
    let identity = DtlsIdentity::generate().map_err(|e| e.to_string())?;
    tracing::info!(
        fingerprint = identity.fingerprint_sha256(),
        "DTLS certificate generated"
    );
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    if cfg.pin && cores.is_empty() {
        tracing::warn!("cannot list CPU cores: workers are not pinned");
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let mut handles = Vec::new();
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
            announced_ip: cfg.announced_ip,
            control_dir: cfg.control.clone(),
            cpu,
            identity: identity.clone(),
            io_memory: cfg.io_memory,
        };
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
                    "control": ready.control,
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
    for h in handles {
        let _ = h.join();
    }
    Err("all workers stopped".into())
}
