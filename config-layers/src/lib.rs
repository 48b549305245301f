//! How the daemon (`sfu`) and signaling (`sfu-signaling`) build their configuration, in
//! one place: defaults, then a TOML file, then the flags that were given (clap reads each
//! flag from the command line or, failing that, its environment variable, so env and flags
//! are one layer here). figment layers them and extracts the effective configuration,
//! refusing unknown keys and mistyped values by name. Whatever is wrong is a
//! [`ConfigError`] naming the key, and the binaries exit with [`EX_CONFIG`].

use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::Figment;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The exit status for bad configuration (sysexits.h `EX_CONFIG`): systemd units use it
/// to tell a configuration mistake from a crash (`RestartPreventExitStatus=78`).
pub const EX_CONFIG: u8 = 78;

/// A configuration problem, naming the key (or the file).
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

impl ConfigError {
    /// A value of `key` that parsed but is not acceptable.
    pub fn invalid(key: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key,
            reason: reason.into(),
        }
    }
}

/// The effective configuration: `defaults`, overridden by the TOML `file` when there is
/// one, overridden by `given` (the flags and environment variables that were set; a flag
/// struct whose unset fields serialize to nothing). The file must be right on its own,
/// also where `given` overrides one of its keys: a typo in a file is found the day it is
/// written, not the day the overriding flag goes away.
pub fn layered<T>(
    defaults: &T,
    file: Option<&Path>,
    given: &impl Serialize,
) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned,
{
    let mut layers = Figment::from(Serialized::defaults(defaults));
    let parse_error = |e: figment::Error| ConfigError::Parse {
        path: file.map(Path::to_owned).unwrap_or_default(),
        message: describe(&e),
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        layers = layers.merge(Toml::string(&text));
        layers.extract::<T>().map_err(parse_error)?;
    }
    layers
        .merge(Serialized::defaults(given))
        .extract()
        .map_err(parse_error)
}

/// A figment error as "`key`: what is wrong" (its own text names the provider, which for
/// the file is only "TOML source string": the path is in [`ConfigError::Parse`]).
fn describe(e: &figment::Error) -> String {
    if e.path.is_empty() {
        e.kind.to_string()
    } else {
        format!("`{}`: {}", e.path.join("."), e.kind)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Conf {
        port: u16,
        name: String,
        verbose: bool,
    }

    #[derive(Default, Serialize)]
    struct Given {
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    }

    fn defaults() -> Conf {
        Conf {
            port: 1,
            name: "d".into(),
            verbose: false,
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn given_flags_override_the_file_which_overrides_defaults() {
        let f = file("port = 2\nname = \"file\"\n");
        let given = Given {
            port: Some(3),
            name: None,
        };
        let c = layered(&defaults(), Some(f.path()), &given).unwrap();
        assert_eq!(
            c,
            Conf {
                port: 3,
                name: "file".into(),
                verbose: false
            }
        );
        let c = layered(&defaults(), None, &Given::default()).unwrap();
        assert_eq!(c, defaults());
    }

    #[test]
    fn errors_name_the_key_and_the_file() {
        let f = file("prot = 2\n");
        let e = layered(&defaults(), Some(f.path()), &Given::default()).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Parse { path, message }
                if path == f.path() && message.contains("prot")),
            "{e}"
        );
        // Mistyped in the file, though a flag overrides it: still refused.
        let f = file("port = \"many\"\n");
        let given = Given {
            port: Some(3),
            name: None,
        };
        let e = layered(&defaults(), Some(f.path()), &given).unwrap_err();
        assert!(e.to_string().contains("`port`"), "{e}");
        let e = layered(&defaults(), Some(Path::new("/nonexistent/x.toml")), &given).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    }
}
