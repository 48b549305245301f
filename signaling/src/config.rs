//! Configuration of `sfu-signaling`: command-line flags, then `SFU_SIGNALING_*`
//! environment variables, then a TOML file (`--config`), then defaults. Bad configuration
//! is reported naming the key (the process then exits 78, EX_CONFIG). Layered as the
//! daemon's `src/config.rs`: clap reads each flag or, failing that, its variable; figment
//! layers the defaults, the file and the given flags and extracts the effective
//! [`Config`], refusing unknown keys and mistyped values by name.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize, Serializer};

use crate::http::tls::{TlsError, TlsFiles};
use crate::turn::IceServerConfig;

/// Largest `max_message` accepted: signaling messages are SDP of a few KiB, and each
/// WebSocket may buffer a whole message.
const MAX_MESSAGE_LIMIT: usize = 1 << 20;

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
    pub serve: Flags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a token that lets `--name` join `--room` until it expires.
    Token(TokenArgs),
}

/// Flags of the server; every one can also come from the environment or the file. As a
/// figment layer only the given ones count (the others are skipped when serialized).
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct Flags {
    /// TOML configuration file (keys as the flags, in snake_case).
    #[arg(long, env = "SFU_SIGNALING_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// HTTP and WebSocket address. Default: 127.0.0.1:8080.
    #[arg(long, env = "SFU_SIGNALING_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Control directory of a running daemon (its `--control`). Without it, `sfu` (found
    /// beside this binary, or `--sfu`) is started with a private control directory.
    #[arg(long, env = "SFU_SIGNALING_DAEMON")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<PathBuf>,
    /// The daemon binary to start when `--daemon` is not given.
    #[arg(long, env = "SFU_SIGNALING_SFU")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sfu: Option<PathBuf>,
    /// Workers of the started daemon (default: the daemon's, one per core).
    #[arg(long, env = "SFU_SIGNALING_WORKERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// IP address the started daemon's media sockets bind (default: the `listen` IP).
    #[arg(long, env = "SFU_SIGNALING_RTC_IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtc_ip: Option<IpAddr>,
    /// UDP port of the started daemon's worker 0 (worker i uses port + i); 0 picks free
    /// ports. Default: 0.
    #[arg(long, env = "SFU_SIGNALING_RTC_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtc_port: Option<u16>,
    /// IP address the started daemon announces in ICE candidates (behind NAT, or when
    /// binding 0.0.0.0).
    #[arg(long, env = "SFU_SIGNALING_ANNOUNCED_IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announced_ip: Option<IpAddr>,
    /// HMAC secret: when set, joining needs a token minted with it (`sfu-signaling token`).
    #[arg(long, env = "SFU_SIGNALING_AUTH_SECRET", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_secret: Option<String>,
    /// Bearer token that opens /metrics and the room API on `listen`. Without it /metrics
    /// is served only on `metrics_listen`. Must differ from `auth_secret`.
    #[arg(long, env = "SFU_SIGNALING_METRICS_TOKEN", hide_env_values = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_token: Option<String>,
    /// Video codec publishers send when their browser offers it (otherwise VP8).
    #[arg(long, env = "SFU_SIGNALING_VIDEO_CODEC", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_codec: Option<VideoCodec>,
    /// Negotiate bandwidth feedback (transport-cc, goog-remb) with browsers, so that
    /// publishers raise their bitrate to what the path carries. Default: true.
    #[arg(long, env = "SFU_SIGNALING_BANDWIDTH_FEEDBACK", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth_feedback: Option<bool>,
    /// Shorthand for `--bandwidth-feedback false` (diagnosis, tests): publishers then
    /// get no transport-cc or REMB and stay near their start bitrate.
    #[arg(long, conflicts_with = "bandwidth_feedback")]
    #[serde(skip)]
    pub no_bandwidth_feedback: bool,
    /// Largest WebSocket frame and message read, in bytes (at most 1 MiB); a larger one
    /// closes the connection with 1009 before it is buffered. Default: 65536.
    #[arg(long, env = "SFU_SIGNALING_MAX_MESSAGE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message: Option<usize>,
    /// Most participants in one room. Default: 16.
    #[arg(long, env = "SFU_SIGNALING_MAX_PEERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_peers: Option<usize>,
    /// Seconds within which a connection's HTTP request headers (a WebSocket upgrade
    /// included) must arrive, from the accept or from the end of the previous request.
    /// Default: 10.
    #[arg(long, env = "SFU_SIGNALING_HANDSHAKE_TIMEOUT", value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshake_timeout: Option<f64>,
    /// Seconds a keep-alive HTTP connection may wait for its next request (at most
    /// `handshake_timeout` takes effect). Default: 5.
    #[arg(long, env = "SFU_SIGNALING_HTTP_IDLE_TIMEOUT", value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_idle_timeout: Option<f64>,
    /// Seconds a WebSocket may stay open without being in a room (from its opening or its
    /// `leave`). Default: 10.
    #[arg(long, env = "SFU_SIGNALING_WS_JOIN_TIMEOUT", value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_join_timeout: Option<f64>,
    /// Seconds between the server's WebSocket pings (browsers answer them on their own).
    /// Default: 20.
    #[arg(long, env = "SFU_SIGNALING_WS_PING_INTERVAL", value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_ping_interval: Option<f64>,
    /// Seconds without any frame from the client (pongs included) after which a
    /// WebSocket is closed; more than `ws_ping_interval`. Default: 60.
    #[arg(long, env = "SFU_SIGNALING_WS_IDLE_TIMEOUT", value_name = "SECS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_idle_timeout: Option<f64>,
    /// Most open HTTP and WebSocket connections in total (lowered to fit the open-file
    /// limit). Default: 4096.
    #[arg(long, env = "SFU_SIGNALING_MAX_CONNECTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Most open HTTP and WebSocket connections from one IP address. Default: 64.
    #[arg(long, env = "SFU_SIGNALING_MAX_CONNECTIONS_PER_IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<usize>,
    /// Log filter: a level, or per-module levels such as
    /// "info,sfu_signaling::room=debug". Default: info.
    #[arg(long, env = "SFU_SIGNALING_LOG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Log format on stderr: "text" or "json". Default: text.
    #[arg(long, env = "SFU_SIGNALING_LOG_FORMAT", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Log filter of a started daemon (its `--log`). Default: "warn,rtc_dtls=error"
    /// (rtc_dtls warns about every TLS extension it skips in a browser's ClientHello).
    #[arg(long, env = "SFU_SIGNALING_DAEMON_LOG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon_log: Option<String>,
    /// Serve /metrics on this address only (e.g. 127.0.0.1:9300) instead of on `listen`.
    #[arg(long, env = "SFU_SIGNALING_METRICS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain: with `tls_key`, `listen` serves HTTPS and WSS. Both files
    /// are read again on SIGHUP and when they change (certbot renewals).
    #[arg(long, env = "SFU_SIGNALING_TLS_CERT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "SFU_SIGNALING_TLS_KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
}

/// Video codecs a publisher may be asked to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VideoCodec {
    Vp8,
    Vp9,
    H264,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Flags of `token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The server's `auth_secret`.
    #[arg(long, env = "SFU_SIGNALING_AUTH_SECRET", hide_env_values = true)]
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

/// The effective configuration; its keys are the file's (snake_case, as the flags).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sfu: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtc_ip: Option<IpAddr>,
    pub rtc_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announced_ip: Option<IpAddr>,
    /// Printed as "<hidden>": `--print-config` output may end up in tickets.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "hide_secret"
    )]
    pub auth_secret: Option<String>,
    /// Hidden like `auth_secret`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "hide_secret"
    )]
    pub metrics_token: Option<String>,
    pub video_codec: VideoCodec,
    pub bandwidth_feedback: bool,
    pub max_message: usize,
    pub max_peers: usize,
    /// Connection limits and timeouts (seconds).
    pub handshake_timeout: f64,
    pub http_idle_timeout: f64,
    pub ws_join_timeout: f64,
    pub ws_ping_interval: f64,
    pub ws_idle_timeout: f64,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub log: String,
    pub log_format: LogFormat,
    pub daemon_log: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// STUN/TURN servers for the pages (`[[ice_servers]]` tables; file only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ice_servers: Vec<IceServerConfig>,
}

fn hide_secret<S: Serializer>(_: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str("<hidden>")
}

pub use sfu_config_layers::{ConfigError, EX_CONFIG};

/// Most participants in one room that the setting accepts (about 8 publish+subscribe
/// pairs fill 2 cores; far more is a typo).
const MAX_PEERS_LIMIT: usize = 1000;

/// Range of the timeout settings, in seconds: below 0.1 s a real client cannot keep up,
/// above an hour nothing is bounded any more.
const TIMEOUT_MIN_SECS: f64 = 0.1;
const TIMEOUT_MAX_SECS: f64 = 3600.0;
/// Most connections the settings accept (each holds a file descriptor).
const MAX_CONNECTIONS_LIMIT: usize = 1 << 20;

impl Config {
    /// The configuration when nothing is set.
    fn defaults() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            daemon: None,
            sfu: None,
            workers: None,
            rtc_ip: None,
            rtc_port: 0,
            announced_ip: None,
            auth_secret: None,
            metrics_token: None,
            video_codec: VideoCodec::Vp8,
            bandwidth_feedback: true,
            max_message: 64 * 1024,
            max_peers: 16,
            handshake_timeout: 10.0,
            http_idle_timeout: 5.0,
            ws_join_timeout: 10.0,
            ws_ping_interval: 20.0,
            ws_idle_timeout: 60.0,
            max_connections: 4096,
            max_connections_per_ip: 64,
            log: "info".into(),
            log_format: LogFormat::Text,
            daemon_log: "warn,rtc_dtls=error".into(),
            metrics_listen: None,
            tls_cert: None,
            tls_key: None,
            ice_servers: Vec::new(),
        }
    }

    /// Merges flags (with environment) over the file over defaults, and validates.
    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        let mut given = flags.clone();
        if given.no_bandwidth_feedback {
            given.bandwidth_feedback = Some(false);
        }
        let cfg = sfu_config_layers::layered(&Self::defaults(), flags.config.as_deref(), &given)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The IP the started daemon's media sockets bind.
    pub fn media_ip(&self) -> IpAddr {
        self.rtc_ip.unwrap_or(self.listen.ip())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(n) = self.workers {
            if n == 0 || n > 1024 {
                return Err(ConfigError::invalid(
                    "workers",
                    format!("{n} is not in 1..=1024"),
                ));
            }
            if self.rtc_port != 0 && usize::from(self.rtc_port) + n - 1 > 65535 {
                return Err(ConfigError::invalid(
                    "rtc_port",
                    format!("{} + {n} workers exceeds 65535", self.rtc_port),
                ));
            }
        }
        if self.announced_ip.is_some_and(|ip| ip.is_unspecified()) {
            return Err(ConfigError::invalid(
                "announced_ip",
                "must be an address browsers can reach, not unspecified",
            ));
        }
        if self.daemon.is_none() && self.media_ip().is_unspecified() && self.announced_ip.is_none()
        {
            return Err(ConfigError::invalid(
                "announced_ip",
                format!(
                    "required when the started daemon's media would bind {} (or set rtc_ip)",
                    self.media_ip()
                ),
            ));
        }
        crate::turn::check_all(&self.ice_servers)
            .map_err(|e| ConfigError::invalid("ice_servers", e))?;
        if self.auth_secret.as_deref() == Some("") {
            return Err(ConfigError::invalid("auth_secret", "must not be empty"));
        }
        if let Some(token) = &self.metrics_token {
            validate_metrics_token(token, self.auth_secret.as_deref())?;
        }
        if self.max_message == 0 || self.max_message > MAX_MESSAGE_LIMIT {
            return Err(ConfigError::invalid(
                "max_message",
                format!("{} is not in 1..={MAX_MESSAGE_LIMIT}", self.max_message),
            ));
        }
        if self.max_peers == 0 || self.max_peers > MAX_PEERS_LIMIT {
            return Err(ConfigError::invalid(
                "max_peers",
                format!("{} is not in 1..={MAX_PEERS_LIMIT}", self.max_peers),
            ));
        }
        self.validate_connection_limits()?;
        for (key, filter) in [("log", &self.log), ("daemon_log", &self.daemon_log)] {
            if let Err(e) = tracing_subscriber::EnvFilter::try_new(filter) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{filter:?} is not a valid filter: {e}"),
                ));
            }
        }
        if let Some(m) = self.metrics_listen {
            if m == self.listen && m.port() != 0 {
                return Err(ConfigError::invalid(
                    "metrics_listen",
                    format!("{m} is also `listen`: leave it unset to serve /metrics there"),
                ));
            }
        }
        self.validate_tls()?;
        Ok(())
    }

    /// The certificate and key files, when both are set.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        }
    }

    /// Both TLS files or neither, and a pair that loads: a typo must not start a plain
    /// HTTP server where HTTPS was meant.
    fn validate_tls(&self) -> Result<(), ConfigError> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(()),
            (Some(_), None) => Err(ConfigError::invalid("tls_key", "required with tls_cert")),
            (None, Some(_)) => Err(ConfigError::invalid("tls_cert", "required with tls_key")),
            (Some(_), Some(_)) => match self.tls_files().map(|f| f.load()) {
                Some(Err(e @ TlsError::Key { .. })) => {
                    Err(ConfigError::invalid("tls_key", e.to_string()))
                }
                Some(Err(e)) => Err(ConfigError::invalid("tls_cert", e.to_string())),
                _ => Ok(()),
            },
        }
    }

    /// The connection limits and timeouts (see `crate::http`).
    fn validate_connection_limits(&self) -> Result<(), ConfigError> {
        for (key, secs) in [
            ("handshake_timeout", self.handshake_timeout),
            ("http_idle_timeout", self.http_idle_timeout),
            ("ws_join_timeout", self.ws_join_timeout),
            ("ws_ping_interval", self.ws_ping_interval),
            ("ws_idle_timeout", self.ws_idle_timeout),
        ] {
            if !(TIMEOUT_MIN_SECS..=TIMEOUT_MAX_SECS).contains(&secs) {
                return Err(ConfigError::invalid(
                    key,
                    format!("{secs} s is not in {TIMEOUT_MIN_SECS}..={TIMEOUT_MAX_SECS}"),
                ));
            }
        }
        // A page answers pings but sends nothing else for minutes: between two pings it
        // must not count as idle.
        if self.ws_idle_timeout <= self.ws_ping_interval {
            return Err(ConfigError::invalid(
                "ws_idle_timeout",
                format!(
                    "{} s must be more than ws_ping_interval ({} s)",
                    self.ws_idle_timeout, self.ws_ping_interval
                ),
            ));
        }
        for (key, n) in [
            ("max_connections", self.max_connections),
            ("max_connections_per_ip", self.max_connections_per_ip),
        ] {
            if n == 0 || n > MAX_CONNECTIONS_LIMIT {
                return Err(ConfigError::invalid(
                    key,
                    format!("{n} is not in 1..={MAX_CONNECTIONS_LIMIT}"),
                ));
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML (`--print-config`).
    pub fn to_toml(&self) -> String {
        // Every field is a string, number or boolean: serialisation cannot fail.
        toml::to_string(self).unwrap_or_default()
    }
}

/// `metrics_token` travels as `Authorization: Bearer <token>`: it must be a header-safe
/// RFC 6750 b64token, and it must not be `auth_secret`, or whoever may scrape could mint
/// join tokens.
fn validate_metrics_token(token: &str, auth_secret: Option<&str>) -> Result<(), ConfigError> {
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() {
        return Err(ConfigError::invalid("metrics_token", "must not be empty"));
    }
    if !token.chars().all(b64token) {
        return Err(ConfigError::invalid(
            "metrics_token",
            "may contain only letters, digits and -._~+/= (it is sent as a bearer token)",
        ));
    }
    if auth_secret == Some(token) {
        return Err(ConfigError::invalid(
            "metrics_token",
            "must differ from auth_secret: whoever scrapes metrics could mint join tokens",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(file: &str, flags: Flags) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signaling.toml");
        std::fs::write(&path, file).unwrap();
        Config::load(&Flags {
            config: Some(path),
            ..flags
        })
    }

    fn err(file: &str) -> String {
        load_with(file, Flags::default()).unwrap_err().to_string()
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let cfg = load_with(
            "listen = \"127.0.0.1:9000\"\nmax_peers = 4\nlog_format = \"json\"\n",
            Flags {
                max_peers: Some(8),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(cfg.max_peers, 8);
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(cfg.max_message, 64 * 1024);
        assert_eq!(cfg.video_codec, VideoCodec::Vp8);
        assert_eq!(
            (
                cfg.handshake_timeout,
                cfg.ws_idle_timeout,
                cfg.max_connections
            ),
            (10.0, 60.0, 4096)
        );
        // Whole seconds in the file are fine for the fractional settings.
        let cfg = load_with("ws_join_timeout = 3\n", Flags::default()).unwrap();
        assert_eq!(cfg.ws_join_timeout, 3.0);
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        assert!(err("wrokers = 3\n").contains("wrokers"));
        assert!(err("rtc_port = 70000\n").contains("rtc_port"));
        assert!(err("video_codec = \"av2\"\n").contains("video_codec"));
        assert!(err("workers = 0\n").contains("`workers`"));
        assert!(err("workers = 2\nrtc_port = 65535\n").contains("`rtc_port`"));
        assert!(err("max_message = 2000000\n").contains("`max_message`"));
        assert!(err("max_peers = 0\n").contains("`max_peers`"));
        assert!(err("handshake_timeout = 0\n").contains("`handshake_timeout`"));
        assert!(err("http_idle_timeout = 7200\n").contains("`http_idle_timeout`"));
        assert!(err("ws_join_timeout = nan\n").contains("`ws_join_timeout`"));
        assert!(err("ws_ping_interval = 90\n").contains("`ws_idle_timeout`"));
        assert!(err("max_connections = 0\n").contains("`max_connections`"));
        assert!(err("max_connections_per_ip = 0\n").contains("`max_connections_per_ip`"));
        assert!(err("log = \"info,=\"\n").contains("`log`"));
        assert!(err("daemon_log = \"[\"\n").contains("`daemon_log`"));
        assert!(err("auth_secret = \"\"\n").contains("`auth_secret`"));
        assert!(err("listen = \"0.0.0.0:80\"\n").contains("`announced_ip`"));
        assert!(err("announced_ip = \"0.0.0.0\"\n").contains("`announced_ip`"));
        assert!(
            err("listen = \"127.0.0.1:80\"\nmetrics_listen = \"127.0.0.1:80\"\n")
                .contains("`metrics_listen`")
        );
        assert!(err("tls_cert = \"/nonexistent.crt\"\n").contains("`tls_key`"));
        assert!(err("tls_key = \"/nonexistent.key\"\n").contains("`tls_cert`"));
        let e = err("tls_cert = \"/nonexistent.crt\"\ntls_key = \"/nonexistent.key\"\n");
        assert!(
            e.contains("`tls_cert`") && e.contains("/nonexistent.crt"),
            "{e}"
        );
        // A wildcard bind is fine with an external daemon: it owns the media addresses.
        load_with(
            "listen = \"0.0.0.0:80\"\ndaemon = \"/run/sfu\"\n",
            Flags::default(),
        )
        .unwrap();
    }

    #[test]
    fn bandwidth_feedback_is_on_unless_turned_off() {
        assert!(load_with("", Flags::default()).unwrap().bandwidth_feedback);
        assert!(
            !load_with("bandwidth_feedback = false\n", Flags::default())
                .unwrap()
                .bandwidth_feedback
        );
        let off = Flags {
            no_bandwidth_feedback: true,
            ..Default::default()
        };
        assert!(
            !load_with("bandwidth_feedback = true\n", off)
                .unwrap()
                .bandwidth_feedback
        );
        let on = Flags {
            bandwidth_feedback: Some(true),
            ..Default::default()
        };
        assert!(
            load_with("bandwidth_feedback = false\n", on)
                .unwrap()
                .bandwidth_feedback
        );
        // Both flags at once is a contradiction clap refuses.
        assert!(Cli::try_parse_from([
            "sfu-signaling",
            "--no-bandwidth-feedback",
            "--bandwidth-feedback",
            "true"
        ])
        .is_err());
        let cli = Cli::try_parse_from(["sfu-signaling", "--no-bandwidth-feedback"]).unwrap();
        assert!(cli.serve.no_bandwidth_feedback);
    }

    #[test]
    fn printed_configuration_reads_back_and_hides_the_secret() {
        let cfg = load_with(
            "auth_secret = \"s3cret\"\nmetrics_token = \"scr4pe\"\ndaemon = \"/run/sfu\"\nmetrics_listen = \"127.0.0.1:9300\"\n",
            Flags::default(),
        )
        .unwrap();
        let text = cfg.to_toml();
        assert!(
            !text.contains("s3cret") && !text.contains("scr4pe"),
            "{text}"
        );
        assert!(text.contains("auth_secret = \"<hidden>\""), "{text}");
        assert!(text.contains("metrics_token = \"<hidden>\""), "{text}");
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.daemon, Some(PathBuf::from("/run/sfu")));
        assert_eq!(back.metrics_listen, cfg.metrics_listen);
        assert_eq!(back.listen, cfg.listen);
    }

    #[test]
    fn the_metrics_token_is_a_bearer_token_other_than_the_auth_secret() {
        let cfg = load_with("metrics_token = \"scrape-me_1\"\n", Flags::default()).unwrap();
        assert_eq!(cfg.metrics_token.as_deref(), Some("scrape-me_1"));
        let flag = Flags {
            metrics_token: Some("from-flag".into()),
            ..Default::default()
        };
        let cfg = load_with("metrics_token = \"from-file\"\n", flag).unwrap();
        assert_eq!(cfg.metrics_token.as_deref(), Some("from-flag"));
        for bad in ["\"\"", "\"two words\"", "\"caf\u{e9}\"", "\"line\\nbreak\""] {
            let e = err(&format!("metrics_token = {bad}\n"));
            assert!(e.contains("`metrics_token`"), "{bad}: {e}");
        }
        // One secret for both would let every scraper mint join tokens: refused, naming
        // the key, whichever source each value comes from.
        let e = err("auth_secret = \"same\"\nmetrics_token = \"same\"\n");
        assert!(
            e.contains("`metrics_token`") && e.contains("auth_secret"),
            "{e}"
        );
        let flag = Flags {
            metrics_token: Some("same".into()),
            ..Default::default()
        };
        let e = load_with("auth_secret = \"same\"\n", flag)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`metrics_token`"), "{e}");
    }
}
