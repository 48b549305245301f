//! `sfu-signaling`: serve (default) or mint a join token.

use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::Parser;
use sfu_signaling::config::{Cli, Command, Config, ConfigError, TokenArgs, EX_CONFIG};
use sfu_signaling::daemon::sfu_beside_current_exe;
use sfu_signaling::{logging, server, token};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => ExitCode::SUCCESS,
                // A bad flag or SFU_SIGNALING_* value is bad configuration too (clap's
                // message names the flag).
                _ => ExitCode::from(EX_CONFIG),
            };
        }
    };
    if let Some(Command::Token(t)) = cli.command {
        return mint(t);
    }
    let cfg = match Config::load(&cli.serve) {
        Ok(c) => c,
        Err(e) => return config_error(&e),
    };
    if cli.serve.print_config {
        print!("{}", cfg.to_toml());
        return ExitCode::SUCCESS;
    }
    let sfu = match daemon_binary(&cfg) {
        Ok(p) => p,
        Err(e) => return config_error(&e),
    };
    logging::init(&cfg.log, cfg.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sfu-signaling: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(server::serve(cfg, sfu));
    // Nothing of ours blocks; do not let a stray blocking task delay the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("sfu-signaling: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config_error(e: &ConfigError) -> ExitCode {
    eprintln!("sfu-signaling: {e}");
    ExitCode::from(EX_CONFIG)
}

/// The daemon binary to start when no external `daemon` is configured: `sfu`, or `sfu`
/// beside this executable. Checked at start so that a wrong path is a configuration error.
fn daemon_binary(cfg: &Config) -> Result<std::path::PathBuf, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid { key: "sfu", reason };
    let path = match &cfg.sfu {
        Some(p) => p.clone(),
        None => sfu_beside_current_exe().map_err(invalid)?,
    };
    if cfg.daemon.is_none() && !path.is_file() {
        return Err(invalid(format!(
            "no media daemon at {} (build it with `cargo build -p sfu`, or set sfu, or daemon to a running daemon's control directory)",
            path.display()
        )));
    }
    Ok(path)
}

fn mint(t: TokenArgs) -> ExitCode {
    if t.secret.is_empty() {
        eprintln!("sfu-signaling token: --secret must not be empty");
        return ExitCode::from(EX_CONFIG);
    }
    for (what, check) in [
        ("room", sfu_signaling::names::validate_room(&t.room)),
        ("name", sfu_signaling::names::validate_name(&t.name)),
    ] {
        if let Err(e) = check {
            eprintln!("sfu-signaling token: invalid {what}: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    }
    let claims = token::Claims {
        room: t.room,
        name: t.name,
        exp: token::unix_now().saturating_add(t.ttl),
    };
    println!("{}", token::mint(t.secret.as_bytes(), &claims));
    ExitCode::SUCCESS
}
