//! Command line: `sfu-signaling [serve flags]` runs the server; `sfu-signaling token ...`
//! mints a join token.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Signaling server of the SFU: serves the web client, talks WebSocket to browsers and
/// the control channel to the media daemon.
#[derive(Debug, Parser)]
#[command(
    name = "sfu-signaling",
    version,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a token that lets `--name` join `--room` until it expires.
    Token(TokenArgs),
}

/// Flags of the server.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// HTTP and WebSocket address.
    #[arg(long, env = "SFU_SIGNALING_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Control directory of a running daemon (its `--control`). Without it, `sfu` (found
    /// beside this binary, or `--sfu`) is started with a private control directory.
    #[arg(long, env = "SFU_SIGNALING_DAEMON")]
    pub daemon: Option<PathBuf>,
    /// The daemon binary to start when `--daemon` is not given.
    #[arg(long, env = "SFU_BIN")]
    pub sfu: Option<PathBuf>,
    /// Workers of the started daemon (default: the daemon's, one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// IP address the started daemon's media sockets bind (default: the `--listen` IP).
    #[arg(long)]
    pub rtc_ip: Option<IpAddr>,
    /// UDP port of the started daemon's worker 0 (worker i uses port + i); 0 picks free ports.
    #[arg(long, default_value_t = 0)]
    pub rtc_port: u16,
    /// IP address the started daemon announces in ICE candidates (behind NAT, or when
    /// binding 0.0.0.0).
    #[arg(long)]
    pub announced_ip: Option<IpAddr>,
    /// HMAC secret: when set, joining needs a token minted with it (`sfu-signaling token`).
    #[arg(long, env = "SFU_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// Video codec publishers send when their browser offers it (otherwise VP8).
    #[arg(long, value_enum, default_value_t = VideoCodec::Vp8)]
    pub video_codec: VideoCodec,
    /// Largest WebSocket message handled, in bytes; larger ones are answered with an
    /// error. (Frames over 1 MiB close the connection.)
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_message: usize,
    /// Log filter, e.g. "info" or "sfu_signaling=debug".
    #[arg(long, env = "SFU_SIGNALING_LOG", default_value = "info")]
    pub log: String,
    /// Log filter of a started daemon (its `--log`). rtc_dtls warns about every TLS
    /// extension it skips in a browser's ClientHello: noise, hence error.
    #[arg(long, default_value = "warn,rtc_dtls=error")]
    pub daemon_log: String,
}

/// Video codecs a publisher may be asked to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
}

/// Flags of `token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The server's `--auth-secret`.
    #[arg(long, env = "SFU_AUTH_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Room the token is for.
    #[arg(long)]
    pub room: String,
    /// Display name the token is for.
    #[arg(long)]
    pub name: String,
    /// Validity in seconds from now.
    #[arg(long, default_value_t = 24 * 3600)]
    pub ttl: u64,
}
