//! `sfu-signaling` serving: reach (or start) the daemon, bind, serve until a signal, then
//! stop within 2 s: stop accepting, close every WebSocket with 1001 (pages reconnect),
//! let the rooms close their routers, stop our own daemon.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::Config;
use crate::daemon::{DaemonSource, SpawnOptions, Supervisor};
use crate::http::limits::ConnectionLimits;
use crate::http::tls::Tls;
use crate::http::{self, nofile, refuse, ConnectionCounters, HttpSettings, HttpStats};
use crate::metrics::Sources;
use crate::room::{RoomSettings, Rooms};
use crate::sdp::capabilities::Negotiation;
use crate::web;
use crate::whip::{self, session::SessionLimits};
use crate::ws::{SessionConfig, SessionTimeouts};

/// Everything after SIGTERM happens within this (operators and systemd expect < 2 s).
const STOP_BUDGET: Duration = Duration::from_millis(1800);
/// Of which the rooms get this much to close their routers (they need milliseconds).
const ROOMS_GRACE: Duration = Duration::from_millis(500);
/// Connections the private metrics listener takes at once (Prometheus needs one or two).
const METRICS_MAX_CONNECTIONS: usize = 16;

/// The URL to show: an unspecified listen address is reachable on loopback.
pub fn url_for(addr: SocketAddr, tls: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}/", SocketAddr::new(ip, addr.port()))
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

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    Ok((listener, local))
}

/// Where the daemon comes from: `daemon` (external), else `sfu` started by us.
fn daemon_source(cfg: &Config, sfu: PathBuf) -> DaemonSource {
    match &cfg.daemon {
        Some(dir) => DaemonSource::External(dir.clone()),
        None => DaemonSource::Spawned(SpawnOptions {
            binary: sfu,
            workers: cfg.workers,
            listen_ip: cfg.media_ip(),
            rtc_port: cfg.rtc_port,
            announced_ip: cfg.announced_ip,
            log: cfg.daemon_log.clone(),
        }),
    }
}

/// Serves an axum router until `stop` becomes true; then stops accepting.
fn spawn_http(
    listener: TcpListener,
    app: axum::Router,
    settings: HttpSettings,
    stats: HttpStats,
    tls: Option<Tls>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    tokio::spawn(http::serve(listener, app, settings, stats, tls, stop))
}

/// The public listener's TLS, if configured, reloading itself; without it on an address
/// other than loopback, says why remote pages will not open the camera.
fn public_tls(cfg: &Config) -> Result<Option<Tls>, String> {
    let Some(files) = cfg.tls_files() else {
        if !cfg.listen.ip().is_loopback() {
            tracing::warn!(
                listen = %cfg.listen,
                "no tls_cert/tls_key: pages opened from other machines over plain http cannot use the camera or microphone \
                 (browsers allow them only on https or localhost); set tls_cert and tls_key, or put an HTTPS reverse proxy in front"
            );
        }
        return Ok(None);
    };
    let tls = Tls::new(files).map_err(|e| e.to_string())?;
    tls.spawn_reloader()?;
    Ok(Some(tls))
}

/// Raises the open-file limit and sizes the public listener's connection cap below it.
fn connection_limits(cfg: &Config) -> Result<ConnectionLimits, String> {
    let nofile = nofile::raise_to_hard_limit()
        .map_err(|e| format!("cannot read or raise the open-file limit: {e}"))?;
    let refusing = refuse::REFUSING + METRICS_MAX_CONNECTIONS;
    let max = nofile::fit_connections(cfg.max_connections, nofile, refusing).ok_or_else(|| {
        format!(
            "the open-file limit ({nofile}) leaves no room for connections: raise it (LimitNOFILE=)"
        )
    })?;
    if max < cfg.max_connections {
        tracing::warn!(
            nofile,
            max_connections = max,
            configured = cfg.max_connections,
            "max_connections lowered to fit the open-file limit"
        );
    } else {
        tracing::debug!(nofile, max_connections = max, "connection cap");
    }
    Ok(ConnectionLimits::new(max, cfg.max_connections_per_ip))
}

/// Runs the server until SIGINT/SIGTERM (Ok) or a fatal error (Err). `sfu` is the daemon
/// binary to start when `cfg.daemon` is not set.
pub async fn serve(cfg: Config, sfu: PathBuf) -> Result<(), String> {
    let mut signals = Signals::register()?;
    if !cfg.bandwidth_feedback {
        // A diagnosis setting left on would cap every call near 300 kbit/s: say so.
        tracing::warn!("bandwidth feedback is off: publishers get no transport-cc or REMB and stay near their start bitrate");
    }
    if cfg.auth_secret.is_none() {
        tracing::warn!("no auth_secret: anyone who can reach this server can join any room");
    }
    let limits = connection_limits(&cfg)?;
    let tls = public_tls(&cfg)?;
    let (listener, local) = bind(cfg.listen).await?;
    let metrics_listener = match cfg.metrics_listen {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let (daemon, mut supervisor) = Supervisor::start(daemon_source(&cfg, sfu)).await?;
    let rooms = Rooms::new(
        daemon.clone(),
        RoomSettings {
            negotiation: Negotiation {
                video_codec: cfg.video_codec,
                bandwidth_feedback: cfg.bandwidth_feedback,
            },
            max_peers: cfg.max_peers,
        },
    );
    let (shutdown, shutdown_rx) = watch::channel(false);
    let http_stats = HttpStats {
        limits,
        counters: Arc::new(ConnectionCounters::default()),
    };
    let sources = Sources {
        rooms: rooms.clone(),
        daemon,
        sessions: Arc::new(AtomicU64::new(0)),
        http: http_stats.clone(),
    };
    let secs = Duration::from_secs_f64;
    let http_settings = HttpSettings {
        handshake_timeout: secs(cfg.handshake_timeout),
        http_idle_timeout: secs(cfg.http_idle_timeout),
    };
    let session_cfg = SessionConfig {
        rooms: rooms.clone(),
        auth_secret: cfg.auth_secret.as_ref().map(|s| Arc::from(s.as_bytes())),
        max_message: cfg.max_message,
        bandwidth_feedback: cfg.bandwidth_feedback,
        shutdown: shutdown_rx.clone(),
        sessions: sources.sessions.clone(),
        metrics: metrics_listener.is_none().then(|| sources.clone()),
        timeouts: SessionTimeouts {
            join: secs(cfg.ws_join_timeout),
            ping: secs(cfg.ws_ping_interval),
            idle: secs(cfg.ws_idle_timeout),
        },
        counters: http_stats.counters.clone(),
        ice_servers: cfg.ice_servers.clone().into(),
    };
    let metrics_token = cfg.metrics_token.as_deref().map(web::BearerToken::new);
    if metrics_token.is_none() && metrics_listener.is_none() {
        tracing::info!("no metrics_token or metrics_listen: /metrics is not served");
    }
    let whip = whip::Endpoints {
        rooms: rooms.clone(),
        auth_secret: session_cfg.auth_secret.clone(),
        registry: Arc::default(),
        limits: SessionLimits {
            total: cfg.max_connections,
            per_ip: cfg.max_connections_per_ip,
        },
        max_offer: cfg.max_message,
        shutdown: shutdown_rx.clone(),
    };
    let mut http = spawn_http(
        listener,
        web::router(session_cfg, metrics_token, whip),
        http_settings,
        http_stats.clone(),
        tls.clone(),
        shutdown_rx.clone(),
    );
    let metrics_http = metrics_listener.map(|(l, addr)| {
        tracing::info!(url = %format!("{}metrics", url_for(addr, false)), "serving metrics");
        // Its own small cap: scrapes must not take the public listener's places.
        let stats = HttpStats {
            limits: ConnectionLimits::new(METRICS_MAX_CONNECTIONS, METRICS_MAX_CONNECTIONS),
            counters: http_stats.counters.clone(),
        };
        spawn_http(
            l,
            web::metrics_router(sources),
            http_settings,
            stats,
            None,
            shutdown_rx.clone(),
        )
    });
    let url = url_for(local, tls.is_some());
    tracing::info!(%url, "serving");
    // The one line on stdout: what a person opens, and what scripts wait for.
    println!("sfu-signaling ready: open {url}");

    let mut http_done = false;
    let result = tokio::select! {
        r = &mut http => {
            http_done = true;
            Err(match r {
                Ok(Ok(())) => "the HTTP server stopped".to_owned(),
                Ok(Err(e)) => format!("HTTP server failed: {e}"),
                Err(e) => format!("HTTP server task failed: {e}"),
            })
        }
        _ = signals.recv() => Ok(()),
        msg = supervisor.fatal() => Err(msg),
    };

    let deadline = Instant::now() + STOP_BUDGET;
    tracing::info!("stopping");
    // Stop accepting; every session closes its WebSocket (1001) and leaves its room.
    let _ = shutdown.send(true);
    if !rooms
        .wait_closed((Instant::now() + ROOMS_GRACE).min(deadline))
        .await
    {
        tracing::warn!(rooms = rooms.len(), "rooms still open at shutdown");
    }
    supervisor.stop(deadline).await;
    let http = (!http_done).then_some(http);
    for h in http.into_iter().chain(metrics_http) {
        if tokio::time::timeout_at(deadline.into(), h).await.is_err() {
            tracing::warn!("HTTP connections still open at shutdown");
        }
    }
    tracing::info!("stopped");
    result
}
