//! HTTPS and WSS served by `sfu-signaling` itself (`tls_cert`/`tls_key`), and the reload
//! of a renewed certificate without a restart.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use common::{Signaling, DEADLINE};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;

/// A self-signed certificate for 127.0.0.1 written as PEM files: its DER.
fn write_pair(dir: &Path) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    // Written beside and renamed, as certbot's links switch at once.
    std::fs::write(dir.join("new.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("new.key"), key.serialize_pem()).unwrap();
    std::fs::rename(dir.join("new.key"), dir.join("tls.key")).unwrap();
    std::fs::rename(dir.join("new.crt"), dir.join("tls.crt")).unwrap();
    cert.der().clone()
}

/// A TLS connection that trusts `cert` only.
async fn try_connect(
    addr: &str,
    cert: &CertificateDer<'static>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    tokio::time::timeout(
        DEADLINE,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .expect("handshake in time")
}

async fn connect(addr: &str, cert: &CertificateDer<'static>) -> TlsStream<TcpStream> {
    try_connect(addr, cert)
        .await
        .expect("the server's certificate is the one trusted")
}

async fn get_healthz(addr: &str, cert: &CertificateDer<'static>) -> String {
    let mut s = connect(addr, cert).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(DEADLINE, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

#[tokio::test]
async fn https_and_wss_with_a_certificate_reloaded_on_sighup_and_on_change() {
    let dir = tempfile::tempdir().unwrap();
    let first = write_pair(dir.path());
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    let server = Signaling::start(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    let answer = get_healthz(&server.addr, &first).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // WSS: the signaling protocol over the TLS stream.
    let tls = connect(&server.addr, &first).await;
    let url = format!("wss://{}/ws", server.addr);
    let (mut ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
    ws.send(Message::text(
        r#"{"type":"join","room":"secure","name":"ada"}"#,
    ))
    .await
    .unwrap();
    let joined = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(joined.to_text().unwrap().contains("\"joined\""), "{joined}");

    // A plain HTTP request to the TLS port gets no page.
    let (mut plain, mut out) = (TcpStream::connect(&server.addr).await.unwrap(), Vec::new());
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::time::timeout(DEADLINE, plain.read_to_end(&mut out)).await;
    assert!(!String::from_utf8_lossy(&out).contains("200 OK"));

    // Renewed in place and SIGHUP: new handshakes are shown the new certificate (a
    // client trusting only the new one connects), the open WSS session stays.
    let second = write_pair(dir.path());
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(server.pid() as libc::pid_t, libc::SIGHUP) };
    let renewed = wait_for_certificate(&server.addr, &second).await;
    assert!(renewed.starts_with("HTTP/1.1 200"), "{renewed}");
    ws.send(Message::text(r#"{"type":"leave"}"#)).await.unwrap();
    let left = tokio::time::timeout(DEADLINE, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(left.to_text().unwrap().contains("\"left\""), "{left}");

    // Renewed again without a signal: the file watcher takes it.
    let third = write_pair(dir.path());
    let watched = wait_for_certificate(&server.addr, &third).await;
    assert!(watched.starts_with("HTTP/1.1 200"), "{watched}");
}

/// Connects, trusting only `cert`, until the server shows it (the reload is
/// asynchronous: a SIGHUP is handled in milliseconds, a file change within seconds).
async fn wait_for_certificate(addr: &str, cert: &CertificateDer<'static>) -> String {
    let start = Instant::now();
    loop {
        if try_connect(addr, cert).await.is_ok() {
            return get_healthz(addr, cert).await;
        }
        assert!(
            start.elapsed() < 2 * DEADLINE,
            "the renewed certificate was not taken"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
