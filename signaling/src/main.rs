//! `sfu-signaling`: serve (default) or mint a join token.

use std::process::ExitCode;

use clap::Parser;
use sfu_signaling::config::{Cli, Command};
use sfu_signaling::{server, token};

/// sysexits.h EX_CONFIG.
const EX_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Token(t)) = cli.command {
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
        return ExitCode::SUCCESS;
    }
    let args = cli.serve;
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
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
    match runtime.block_on(server::serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("sfu-signaling: {e}");
            ExitCode::FAILURE
        }
    }
}
