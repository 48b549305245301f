//! Daemon configuration: command-line flags, then `SFU_*` environment variables, then a
//! TOML file (`--config`), then defaults. Bad configuration is reported naming the key.
//!
//! clap reads each flag or, failing that, its `SFU_*` variable (so `--help` lists both,
//! and a bad value is refused naming the flag); figment layers the defaults, the file and
//! the flags that were given, and extracts the effective [`Config`], refusing unknown
//! keys and mistyped values by name.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::{Deserialize, Serialize};

/// Command-line flags; every one can also come from the environment or the file. As a
/// figment layer only the given ones count (the others are skipped when serialized).
#[derive(Debug, Parser, Default, Serialize)]
#[command(
    name = "sfu",
    version,
    about = "Thread-per-core WebRTC SFU media daemon"
)]
pub struct Flags {
    /// TOML configuration file.
    #[arg(long, env = "SFU_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Number of workers (one glommio executor pinned per core). Default: available cores.
    #[arg(long, env = "SFU_WORKERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// IP address the media sockets bind.
    #[arg(long, env = "SFU_LISTEN_IP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen_ip: Option<IpAddr>,
    /// UDP port of worker 0; worker i uses port + i. 0 picks free ports.
    #[arg(long, env = "SFU_RTC_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtc_port: Option<u16>,
    /// Accept ICE over TCP (RFC 6544 passive candidates, offered below UDP) for clients
    /// whose networks block UDP.
    #[arg(long, env = "SFU_ICE_TCP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ice_tcp: Option<bool>,
    /// ICE-TCP port of worker 0; worker i uses port + i. Default: rtc-port (TCP and
    /// UDP ports are separate, so the same numbers serve both). 0 picks free ports.
    #[arg(long, env = "SFU_RTC_TCP_PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtc_tcp_port: Option<u16>,
    /// IP addresses announced in ICE candidates (for NAT, or an IPv4 and an IPv6 address
    /// of a dual-stack listen IP), comma-separated, the first preferred; default: the
    /// listen IP.
    #[arg(long, env = "SFU_ANNOUNCED_IP", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announced_ip: Option<Vec<IpAddr>>,
    /// Directory of the control sockets: worker i listens on DIR/worker-i.sock.
    #[arg(long, env = "SFU_CONTROL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<PathBuf>,
    /// Pin each worker to its own core.
    #[arg(long, env = "SFU_PIN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<bool>,
    /// io_uring registered memory per ring in bytes (glommio locks three rings' worth).
    #[arg(long, env = "SFU_IO_MEMORY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub io_memory: Option<usize>,
    /// Log filter, e.g. "info" or "sfu=debug,sfu::worker=trace".
    #[arg(long, env = "SFU_LOG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// Log format: "text" or "json".
    #[arg(long, env = "SFU_LOG_FORMAT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    #[serde(skip)]
    pub print_config: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The effective configuration; its keys are the file's (snake_case, as the flags).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub workers: usize,
    pub listen_ip: IpAddr,
    pub rtc_port: u16,
    pub ice_tcp: bool,
    /// None: the same as `rtc_port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtc_tcp_port: Option<u16>,
    /// One address or a list; empty: the listen IP.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub announced_ip: Vec<IpAddr>,
    pub control: PathBuf,
    pub pin: bool,
    pub io_memory: usize,
    pub log: String,
    pub log_format: LogFormat,
}

pub use sfu_config_layers::{ConfigError, EX_CONFIG};

/// The control directory when none is configured: the user's runtime directory (a
/// per-user tmpfs only they may write, set by systemd-logind) when there is one, else
/// `/run/sfu` (what `RuntimeDirectory=sfu` makes for the service). Never a directory
/// under /tmp, which any local user may pre-create.
fn default_control_dir(xdg_runtime_dir: Option<std::ffi::OsString>) -> PathBuf {
    match xdg_runtime_dir.map(PathBuf::from) {
        // The XDG spec: a relative path is invalid and must be ignored.
        Some(dir) if dir.is_absolute() => dir.join("sfu"),
        _ => PathBuf::from("/run/sfu"),
    }
}

/// Announced addresses: each is a UDP and a TCP candidate of every transport.
const MAX_ANNOUNCED: usize = 8;

/// `announced_ip` as one address (the historical form) or a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(IpAddr),
        Many(Vec<IpAddr>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(ip) => vec![ip],
        OneOrMany::Many(ips) => ips,
    })
}

/// glommio refuses to start an executor below this memlock limit; its rings need
/// at least this much registered memory to be worth registering.
const MIN_IO_MEMORY: usize = 64 * 1024;

impl Config {
    /// The configuration when nothing is set.
    fn defaults() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            listen_ip: IpAddr::from([127, 0, 0, 1]),
            rtc_port: 40000,
            ice_tcp: true,
            rtc_tcp_port: None,
            announced_ip: Vec::new(),
            control: default_control_dir(std::env::var_os("XDG_RUNTIME_DIR")),
            pin: true,
            io_memory: 1 << 20,
            log: "info".into(),
            log_format: LogFormat::Text,
        }
    }

    /// Merges flags (with environment) over the file over defaults, and validates.
    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        let cfg = sfu_config_layers::layered(&Self::defaults(), flags.config.as_deref(), flags)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Worker `index`'s ICE-TCP port (0: a free one), or None without ICE-TCP.
    pub fn tcp_port(&self, index: usize) -> Option<u16> {
        if !self.ice_tcp {
            return None;
        }
        match self.rtc_tcp_port.unwrap_or(self.rtc_port) {
            0 => Some(0),
            // Validated: the base port + workers - 1 <= 65535.
            base => Some(base.saturating_add(index as u16)),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 || self.workers > 1024 {
            return Err(ConfigError::invalid(
                "workers",
                format!("{} is not in 1..=1024", self.workers),
            ));
        }
        if self.rtc_port != 0 && usize::from(self.rtc_port) + self.workers - 1 > 65535 {
            return Err(ConfigError::invalid(
                "rtc_port",
                format!("{} + {} workers exceeds 65535", self.rtc_port, self.workers),
            ));
        }
        if let Some(port) = self.rtc_tcp_port {
            if port != 0 && usize::from(port) + self.workers - 1 > 65535 {
                return Err(ConfigError::invalid(
                    "rtc_tcp_port",
                    format!("{port} + {} workers exceeds 65535", self.workers),
                ));
            }
        }
        if self.io_memory < MIN_IO_MEMORY {
            return Err(ConfigError::invalid(
                "io_memory",
                format!(
                    "{} is below the minimum of {MIN_IO_MEMORY} bytes",
                    self.io_memory
                ),
            ));
        }
        if self.announced_ip.iter().any(IpAddr::is_unspecified) {
            return Err(ConfigError::invalid(
                "announced_ip",
                "must be addresses clients can reach, not unspecified",
            ));
        }
        if self.announced_ip.len() > MAX_ANNOUNCED {
            return Err(ConfigError::invalid(
                "announced_ip",
                format!("at most {MAX_ANNOUNCED} addresses"),
            ));
        }
        // Only "::" is dual-stack (IPV6_V6ONLY off, Linux's default); any other socket
        // receives one family.
        let reachable = |ip: &&IpAddr| match self.listen_ip {
            IpAddr::V6(l) if l.is_unspecified() => true,
            l => l.is_ipv4() == ip.is_ipv4(),
        };
        if let Some(ip) = self.announced_ip.iter().find(|ip| !reachable(ip)) {
            return Err(ConfigError::invalid(
                "announced_ip",
                format!(
                    "{ip} cannot reach a socket on listen_ip {} (IPv4 and IPv6 together need \"::\")",
                    self.listen_ip
                ),
            ));
        }
        if self.listen_ip.is_unspecified() && self.announced_ip.is_empty() {
            return Err(ConfigError::invalid(
                "announced_ip",
                "required when listen_ip is unspecified (0.0.0.0 or ::)",
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return Err(ConfigError::invalid(
                "log",
                format!("{:?} is not a valid filter", self.log),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_control_dir_is_the_runtime_dir_never_tmp() {
        assert_eq!(
            default_control_dir(Some("/run/user/1000".into())),
            PathBuf::from("/run/user/1000/sfu")
        );
        assert_eq!(default_control_dir(None), PathBuf::from("/run/sfu"));
        assert_eq!(
            default_control_dir(Some("relative".into())),
            PathBuf::from("/run/sfu")
        );
    }

    #[test]
    fn flags_override_file_and_unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sfu.toml");
        std::fs::write(&path, "workers = 3\nrtc_port = 5000\n").unwrap();
        let flags = Flags {
            config: Some(path.clone()),
            workers: Some(1),
            ..Default::default()
        };
        let cfg = Config::load(&flags).unwrap();
        assert_eq!(cfg.workers, 1);
        assert_eq!(cfg.rtc_port, 5000);

        std::fs::write(&path, "wrokers = 3\n").unwrap();
        let err = Config::load(&flags).unwrap_err().to_string();
        assert!(err.contains("wrokers"), "{err}");

        std::fs::write(&path, "rtc_port = 65535\nworkers = 2\n").unwrap();
        let flags = Flags {
            config: Some(path.clone()),
            ..Default::default()
        };
        let err = Config::load(&flags).unwrap_err().to_string();
        assert!(err.contains("rtc_port"), "{err}");

        // A mistyped file value is refused even where a flag overrides it.
        std::fs::write(&path, "rtc_port = 70000\n").unwrap();
        let flags = Flags {
            config: Some(path),
            rtc_port: Some(5000),
            ..Default::default()
        };
        let err = Config::load(&flags).unwrap_err().to_string();
        assert!(err.contains("`rtc_port`"), "{err}");
    }

    #[test]
    fn unset_keys_take_the_defaults() {
        let cfg = Config::load(&Flags::default()).unwrap();
        assert_eq!(
            (cfg.listen_ip, cfg.rtc_port, cfg.pin, cfg.io_memory),
            (IpAddr::from([127, 0, 0, 1]), 40000, true, 1 << 20)
        );
        assert_eq!(
            (cfg.log.as_str(), cfg.log_format),
            ("info", LogFormat::Text)
        );
        assert!(cfg.announced_ip.is_empty());
    }

    #[test]
    fn announced_ip_is_one_address_or_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sfu.toml");
        let load = |toml: &str| {
            std::fs::write(&path, toml).unwrap();
            Config::load(&Flags {
                config: Some(path.clone()),
                ..Default::default()
            })
        };
        let cfg = load("listen_ip = \"::\"\nannounced_ip = \"203.0.113.10\"\n").unwrap();
        assert_eq!(cfg.announced_ip, vec![IpAddr::from([203, 0, 113, 10])]);
        let cfg = load("listen_ip = \"::\"\nannounced_ip = [\"203.0.113.10\", \"2001:db8::10\"]\n")
            .unwrap();
        assert_eq!(cfg.announced_ip.len(), 2);
        let err = load("announced_ip = [\"2001:db8::10\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot reach"), "{err}");
        let err = load("listen_ip = \"::\"\nannounced_ip = []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("announced_ip"), "{err}");
        let flags =
            Flags::try_parse_from(["sfu", "--announced-ip", "192.0.2.1,2001:db8::1"]).unwrap();
        assert_eq!(flags.announced_ip.map(|v| v.len()), Some(2));
    }
}
