//! Daemon configuration: command-line flags, then `SFU_*` environment variables, then a
//! TOML file (`--config`), then defaults. Bad configuration is reported naming the key.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::{Deserialize, Serialize};

/// Command-line flags; every one can also come from the environment or the file.
#[derive(Debug, Parser, Default)]
#[command(
    name = "sfu",
    version,
    about = "Thread-per-core WebRTC SFU media daemon"
)]
pub struct Flags {
    /// TOML configuration file.
    #[arg(long, env = "SFU_CONFIG")]
    pub config: Option<PathBuf>,
    /// Number of workers (one glommio executor pinned per core). Default: available cores.
    #[arg(long, env = "SFU_WORKERS")]
    pub workers: Option<usize>,
    /// IP address the media sockets bind.
    #[arg(long, env = "SFU_LISTEN_IP")]
    pub listen_ip: Option<IpAddr>,
    /// UDP port of worker 0; worker i uses port + i. 0 picks free ports.
    #[arg(long, env = "SFU_RTC_PORT")]
    pub rtc_port: Option<u16>,
    /// IP address announced in ICE candidates (for NAT); default: the listen IP.
    #[arg(long, env = "SFU_ANNOUNCED_IP")]
    pub announced_ip: Option<IpAddr>,
    /// Directory of the control sockets: worker i listens on DIR/worker-i.sock.
    #[arg(long, env = "SFU_CONTROL")]
    pub control: Option<PathBuf>,
    /// Pin each worker to its own core.
    #[arg(long, env = "SFU_PIN")]
    pub pin: Option<bool>,
    /// io_uring registered memory per ring in bytes (glommio locks three rings' worth).
    #[arg(long, env = "SFU_IO_MEMORY")]
    pub io_memory: Option<usize>,
    /// Log filter, e.g. "info" or "sfu=debug,sfu::worker=trace".
    #[arg(long, env = "SFU_LOG")]
    pub log: Option<String>,
    /// Log format: "text" or "json".
    #[arg(long, env = "SFU_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The file's shape: the same keys as the flags, in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    workers: Option<usize>,
    listen_ip: Option<IpAddr>,
    rtc_port: Option<u16>,
    announced_ip: Option<IpAddr>,
    control: Option<PathBuf>,
    pin: Option<bool>,
    io_memory: Option<usize>,
    log: Option<String>,
    log_format: Option<LogFormat>,
}

/// The effective configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub workers: usize,
    pub listen_ip: IpAddr,
    pub rtc_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announced_ip: Option<IpAddr>,
    pub control: PathBuf,
    pub pin: bool,
    pub io_memory: usize,
    pub log: String,
    pub log_format: LogFormat,
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

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

/// glommio refuses to start an executor below this memlock limit; its rings need
/// at least this much registered memory to be worth registering.
const MIN_IO_MEMORY: usize = 64 * 1024;

impl Config {
    /// Merges flags (with environment) over the file over defaults, and validates.
    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|e| ConfigError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                })?
            }
            None => FileConfig::default(),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cfg = Self {
            workers: flags.workers.or(file.workers).unwrap_or(cores),
            listen_ip: flags
                .listen_ip
                .or(file.listen_ip)
                .unwrap_or(IpAddr::from([127, 0, 0, 1])),
            rtc_port: flags.rtc_port.or(file.rtc_port).unwrap_or(40000),
            announced_ip: flags.announced_ip.or(file.announced_ip),
            control: flags
                .control
                .clone()
                .or(file.control)
                .unwrap_or_else(|| default_control_dir(std::env::var_os("XDG_RUNTIME_DIR"))),
            pin: flags.pin.or(file.pin).unwrap_or(true),
            io_memory: flags.io_memory.or(file.io_memory).unwrap_or(1 << 20),
            log: flags
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| "info".into()),
            log_format: flags
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 || self.workers > 1024 {
            return Err(ConfigError::Invalid {
                key: "workers",
                reason: format!("{} is not in 1..=1024", self.workers),
            });
        }
        if self.rtc_port != 0 && usize::from(self.rtc_port) + self.workers - 1 > 65535 {
            return Err(ConfigError::Invalid {
                key: "rtc_port",
                reason: format!("{} + {} workers exceeds 65535", self.rtc_port, self.workers),
            });
        }
        if self.io_memory < MIN_IO_MEMORY {
            return Err(ConfigError::Invalid {
                key: "io_memory",
                reason: format!(
                    "{} is below the minimum of {MIN_IO_MEMORY} bytes",
                    self.io_memory
                ),
            });
        }
        if let Some(ip) = self.announced_ip {
            if ip.is_unspecified() {
                return Err(ConfigError::Invalid {
                    key: "announced_ip",
                    reason: "must be an address clients can reach, not unspecified".into(),
                });
            }
        }
        if self.listen_ip.is_unspecified() && self.announced_ip.is_none() {
            return Err(ConfigError::Invalid {
                key: "announced_ip",
                reason: "required when listen_ip is unspecified (0.0.0.0 or ::)".into(),
            });
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log).is_err() {
            return Err(ConfigError::Invalid {
                key: "log",
                reason: format!("{:?} is not a valid filter", self.log),
            });
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
            config: Some(path),
            ..Default::default()
        };
        let err = Config::load(&flags).unwrap_err().to_string();
        assert!(err.contains("rtc_port"), "{err}");
    }
}
