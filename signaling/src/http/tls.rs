//! HTTPS and WSS on the public listener: rustls with the certificate chain and key of
//! `tls_cert` / `tls_key` (PEM). The pair is read again on SIGHUP and whenever either
//! file changes (checked every few seconds), so a certbot renewal needs no restart: new
//! handshakes use the new pair, open connections keep theirs. A pair that does not load
//! is reported and the previous one stays in use.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::ring::sign::any_supported_type;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// How often the files are checked for a change.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Why a certificate and key pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path}: the key is not usable by rustls: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("the key in {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
}

/// Where the pair is read from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Reads and checks the pair.
    pub fn load(&self) -> Result<CertifiedKey, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| TlsError::Read {
                path: path.to_owned(),
                reason: e.to_string(),
            })
        };
        let cert_pem = read(&self.cert)?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
            .filter_map(Result::ok)
            .collect();
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: self.cert.clone(),
            });
        }
        let key_error = |reason: String| TlsError::Key {
            path: self.key.clone(),
            reason,
        };
        let key = PrivateKeyDer::from_pem_slice(&read(&self.key)?)
            .map_err(|e| key_error(format!("no PEM private key ({e})")))?;
        let signer = any_supported_type(&key).map_err(|e| key_error(e.to_string()))?;
        let certified = CertifiedKey::new(chain, signer);
        // rustls compares the key's public half with the leaf certificate's.
        match certified.keys_match() {
            Ok(()) => Ok(certified),
            // Keys whose public half rustls cannot derive are taken as they are.
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                Ok(certified)
            }
            Err(_) => Err(TlsError::Mismatch {
                cert: self.cert.clone(),
                key: self.key.clone(),
            }),
        }
    }

    /// What tells a changed file: modification time and size of both (after symlinks,
    /// as certbot's `live/` links point into `archive/`).
    fn stamp(&self) -> Option<[(SystemTime, u64); 2]> {
        let one = |p: &Path| {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        };
        Some([one(&self.cert)?, one(&self.key)?])
    }
}

/// The pair new handshakes use; replaced on reload.
struct CurrentKey(RwLock<Arc<CertifiedKey>>);

impl fmt::Debug for CurrentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CurrentKey")
    }
}

impl ResolvesServerCert for CurrentKey {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Only whole-value swaps happen under the lock.
        Some(
            self.0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// The listener's TLS: the acceptor and the pair it serves.
#[derive(Clone)]
pub struct Tls {
    files: TlsFiles,
    current: Arc<CurrentKey>,
    acceptor: TlsAcceptor,
}

impl Tls {
    /// Loads the pair; an error is bad configuration.
    pub fn new(files: TlsFiles) -> Result<Self, TlsError> {
        let key = files.load()?;
        let current = Arc::new(CurrentKey(RwLock::new(Arc::new(key))));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        // Only the protocol versions and cipher suites rustls ships as safe defaults.
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Key {
                path: files.key.clone(),
                reason: e.to_string(),
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        // We serve HTTP/1.1 only (WebSocket upgrades included).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            files,
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the pair again; on failure the previous one stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = self.files.load()?;
        *self
            .current
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }

    /// Reloads on SIGHUP and when the files change, until the process ends.
    pub fn spawn_reloader(&self) -> Result<(), String> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup =
            signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
        let tls = self.clone();
        tokio::spawn(async move {
            let mut seen = tls.files.stamp();
            let mut tick = tokio::time::interval(WATCH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let why = tokio::select! {
                    Some(()) = hup.recv() => "SIGHUP",
                    _ = tick.tick() => {
                        let now = tls.files.stamp();
                        if now == seen {
                            continue;
                        }
                        seen = now;
                        "file changed"
                    }
                };
                match tls.reload() {
                    Ok(()) => {
                        tracing::info!(reason = why, cert = %tls.files.cert.display(), "TLS certificate reloaded")
                    }
                    Err(e) => {
                        tracing::warn!(reason = why, error = %e, "TLS certificate not reloaded: the previous one stays in use")
                    }
                }
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> TlsFiles {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn loads_a_pair_and_refuses_a_key_of_another_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a.test");
        let b = pair(dir.path(), "b.test");
        assert!(a.load().is_ok());
        let crossed = TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        assert!(matches!(crossed.load(), Err(TlsError::Mismatch { .. })));
        let not_pem = TlsFiles {
            cert: a.key.clone(),
            key: a.key.clone(),
        };
        assert!(matches!(
            not_pem.load(),
            Err(TlsError::NoCertificate { .. })
        ));
    }

    #[test]
    fn a_failed_reload_keeps_the_previous_pair() {
        let dir = tempfile::tempdir().unwrap();
        let files = pair(dir.path(), "a.test");
        let tls = Tls::new(files.clone()).unwrap();
        let before = tls.current.0.read().unwrap().cert.clone();
        std::fs::write(&files.cert, "garbage").unwrap();
        assert!(tls.reload().is_err());
        assert_eq!(tls.current.0.read().unwrap().cert, before);
        // A renewal (new pair written in place) is taken.
        let renewed = pair(dir.path(), "a.test");
        assert_eq!(renewed.cert, files.cert);
        tls.reload().unwrap();
        assert_ne!(tls.current.0.read().unwrap().cert, before);
    }
}
