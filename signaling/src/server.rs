//! `sfu-signaling` serving: start or reach the daemon, bind, serve until a signal.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::ServeArgs;
use crate::daemon::{sfu_beside_current_exe, Daemon, SpawnOptions, SpawnedDaemon};
use crate::room::{RoomSettings, Rooms};
use crate::web;
use crate::ws::SessionConfig;

/// Most participants in one room (about 8 publish+subscribe pairs fill 2 cores).
const MAX_PEERS: usize = 16;

/// The URL to show: an unspecified listen address is reachable on loopback.
pub fn url_for(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/", SocketAddr::new(ip, addr.port()))
}

/// SIGINT and SIGTERM, registered before anything else so that a signal arriving right
/// after the ready line is handled, not fatal.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Result<Self, String> {
        use tokio::signal::unix::{signal, SignalKind};
        let int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
        let term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
        Ok(Self { int, term })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

/// Runs the server until SIGINT/SIGTERM (Ok) or until the daemon is gone (Err).
pub async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut signals = Signals::register()?;
    if args.auth_secret.is_none() {
        tracing::warn!("no --auth-secret: anyone who can reach this server can join any room");
    }
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;

    let mut spawned = match &args.daemon {
        Some(_) => None,
        None => {
            let rtc_ip = args.rtc_ip.unwrap_or(args.listen.ip());
            if rtc_ip.is_unspecified() && args.announced_ip.is_none() {
                return Err(format!(
                    "media would bind {rtc_ip}: give --announced-ip (the address browsers reach) or --rtc-ip"
                ));
            }
            let binary = match &args.sfu {
                Some(p) => p.clone(),
                None => sfu_beside_current_exe()?,
            };
            let opts = SpawnOptions {
                binary,
                workers: args.workers,
                listen_ip: rtc_ip,
                rtc_port: args.rtc_port,
                announced_ip: args.announced_ip,
                log: args.daemon_log.clone(),
            };
            Some(SpawnedDaemon::start(&opts).await?)
        }
    };
    let dir = match (&args.daemon, &spawned) {
        (Some(d), _) => d.clone(),
        (None, Some(s)) => s.control_dir().to_path_buf(),
        (None, None) => return Err("no daemon".into()),
    };
    let (daemon, mut lost) = Daemon::connect(&dir).await.map_err(|e| e.to_string())?;
    let rooms = Rooms::new(
        daemon,
        RoomSettings {
            video_codec: args.video_codec,
            max_peers: MAX_PEERS,
        },
    );
    let cfg = SessionConfig {
        rooms,
        auth_secret: args.auth_secret.as_ref().map(|s| Arc::from(s.as_bytes())),
        max_message: args.max_message,
    };
    let app = web::router(cfg);
    let url = url_for(local);
    tracing::info!(%url, "serving");
    // The one line on stdout: what a person opens, and what scripts wait for.
    println!("sfu-signaling ready: open {url}");

    let daemon_exit = async {
        match &mut spawned {
            Some(s) => s.exited().await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        r = axum::serve(listener, app) => r.map_err(|e| format!("HTTP server failed: {e}")),
        _ = signals.recv() => {
            tracing::info!("stopping");
            Ok(())
        }
        msg = daemon_exit => Err(msg),
        _ = lost.all_lost() => Err("lost the connection to every worker of the media daemon".into()),
    };
    if let Some(s) = spawned {
        s.stop().await;
    }
    result
}
