//! HTTP: the embedded web client, the WebSocket endpoint, two small JSON endpoints, the
//! Prometheus metrics, and the WHIP endpoints (`crate::whip`).

mod bearer;

use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::{self, Sources};
use crate::names::validate_room;
use crate::ws::{self, SessionConfig};

pub use bearer::BearerToken;

const INDEX_HTML: &str = include_str!("index.html");
const ROOM_HTML: &str = include_str!("room.html");
const HOME_JS: &str = include_str!("home.js");
/// The room page's ES modules (room/*.js), served under `/room/`: name and source.
const ROOM_MODULES: &[(&str, &str)] = &[
    ("main.js", include_str!("room/main.js")),
    ("config.js", include_str!("room/config.js")),
    ("state.js", include_str!("room/state.js")),
    ("store.js", include_str!("room/store.js")),
    ("signaling.js", include_str!("room/signaling.js")),
    ("media.js", include_str!("room/media.js")),
    ("view.js", include_str!("room/view.js")),
    ("layout.js", include_str!("room/layout.js")),
    ("quality.js", include_str!("room/quality.js")),
    ("encodings.js", include_str!("room/encodings.js")),
    ("names.js", include_str!("room/names.js")),
    ("backoff.js", include_str!("room/backoff.js")),
    ("testhook.js", include_str!("room/testhook.js")),
    ("devices.js", include_str!("room/devices.js")),
    ("levels.js", include_str!("room/levels.js")),
    ("prejoin.js", include_str!("room/prejoin.js")),
    ("chat.js", include_str!("room/chat.js")),
    ("keys.js", include_str!("room/keys.js")),
];
const STYLE_CSS: &str = include_str!("style.css");
const SECURE_CONTEXT_JS: &str = include_str!("secure-context.js");

/// The page may use only its own scripts, styles, WebSocket and media: whatever a
/// participant's name contains can never run as code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   media-src 'self' blob: mediastream:; connect-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

fn page(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            // Room links may carry a token: never leak them to other sites.
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One of the room page's modules, by file name (only those listed: no file system access).
async fn room_module(Path(file): Path<String>) -> Response {
    match ROOM_MODULES.iter().find(|(name, _)| *name == file) {
        Some((_, body)) => asset("text/javascript; charset=utf-8", body),
        None => (StatusCode::NOT_FOUND, "no such module").into_response(),
    }
}

async fn index() -> Response {
    page(StatusCode::OK, INDEX_HTML.to_owned())
}

async fn room_page(Path(room): Path<String>) -> Response {
    match validate_room(&room) {
        Ok(()) => page(StatusCode::OK, ROOM_HTML.to_owned()),
        Err(reason) => page(
            StatusCode::BAD_REQUEST,
            format!(
                "<!doctype html><meta charset=utf-8><title>Invalid room</title>\
                 <link rel=stylesheet href=/style.css><main class=home><h1>Invalid room name</h1>\
                 <p>{}: {}</p><p><a href=/>Create a new room</a></p></main>",
                escape_html(&room.chars().take(80).collect::<String>()),
                escape_html(&reason)
            ),
        ),
    }
}

/// The public listener's state: the sessions' configuration and the operator token.
#[derive(Clone)]
struct Web {
    session: SessionConfig,
    /// Opens `/metrics` and `/api/rooms/..` (`metrics_token`); never the `auth_secret`,
    /// which only signs join tokens.
    metrics_token: Option<Arc<BearerToken>>,
}

impl FromRef<Web> for SessionConfig {
    fn from_ref(web: &Web) -> Self {
        web.session.clone()
    }
}

/// Who may read an operator endpoint on the public listener.
enum Access {
    Granted,
    /// A token is configured and the request does not carry it.
    Unauthorized,
    /// No credential could open it: the endpoint is not served here.
    NotServed(&'static str),
}

impl Web {
    /// `/metrics`: only with the metrics token (otherwise it belongs on `metrics_listen`).
    fn metrics_access(&self, headers: &HeaderMap) -> Access {
        match &self.metrics_token {
            Some(t) if t.admits(headers) => Access::Granted,
            Some(_) => Access::Unauthorized,
            None => Access::NotServed(
                "/metrics is not served on this listener: set metrics_token, or metrics_listen",
            ),
        }
    }

    /// `/api/rooms/..`: with the metrics token when one is set; without one, open only on
    /// a server without access control (it shows nothing a joiner does not see).
    fn rooms_access(&self, headers: &HeaderMap) -> Access {
        match (&self.metrics_token, &self.session.auth_secret) {
            (Some(t), _) if t.admits(headers) => Access::Granted,
            (Some(_), _) => Access::Unauthorized,
            (None, None) => Access::Granted,
            (None, Some(_)) => {
                Access::NotServed("room stats on a server with auth_secret need metrics_token")
            }
        }
    }
}

impl Access {
    /// The refusal, if this is one.
    fn refusal(&self) -> Option<Response> {
        match self {
            Self::Granted => None,
            // RFC 6750 §3: a 401 names the scheme the client should use.
            Self::Unauthorized => Some(
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
                    "authorization required: Authorization: Bearer <metrics_token>",
                )
                    .into_response(),
            ),
            Self::NotServed(why) => Some((StatusCode::NOT_FOUND, *why).into_response()),
        }
    }
}

async fn room_stats(
    State(web): State<Web>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refusal) = web.rooms_access(&headers).refusal() {
        return refusal;
    }
    match web.session.rooms.stats(&room).await {
        Some(stats) => Json(stats).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "error": "no such room" })),
        )
            .into_response(),
    }
}

async fn exposition(src: &Sources) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(metrics::CONTENT_TYPE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        metrics::scrape(src).await,
    )
        .into_response()
}

/// `/metrics` on the public listener (unless `metrics_listen` moves it).
async fn public_metrics(State(web): State<Web>, headers: HeaderMap) -> Response {
    let Some(src) = &web.session.metrics else {
        return (
            StatusCode::NOT_FOUND,
            "/metrics is served on metrics_listen, not here",
        )
            .into_response();
    };
    if let Some(refusal) = web.metrics_access(&headers).refusal() {
        return refusal;
    }
    exposition(src).await
}

/// The routes of the separate metrics listener: `/metrics` only, without authorisation
/// (the address is meant to be private).
pub fn metrics_router(src: Sources) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(src): State<Sources>| async move { exposition(&src).await }),
        )
        .with_state(src)
}

/// All routes of the public listener. `metrics_token` opens its operator endpoints.
pub fn router(
    cfg: SessionConfig,
    metrics_token: Option<BearerToken>,
    whip: crate::whip::Endpoints,
) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/r/{room}", get(room_page))
        .route(
            "/home.js",
            get(|| async { asset("text/javascript; charset=utf-8", HOME_JS) }),
        )
        .route("/room/{file}", get(room_module))
        .route(
            "/secure-context.js",
            get(|| async { asset("text/javascript; charset=utf-8", SECURE_CONTEXT_JS) }),
        )
        .route(
            "/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/rooms/{room}", get(room_stats))
        .route("/metrics", get(public_metrics))
        .route("/ws", get(ws::upgrade))
        .with_state(Web {
            session: cfg,
            metrics_token: metrics_token.map(Arc::new),
        })
        .merge(crate::whip::routes(whip))
}

#[cfg(test)]
mod tests {
    use super::{escape_html, ROOM_MODULES};

    #[test]
    fn escaping() {
        assert_eq!(
            escape_html("<img src=x onerror='a()'>&\""),
            "&lt;img src=x onerror=&#39;a()&#39;&gt;&amp;&quot;"
        );
    }

    /// Every module another module imports is served: a file added to room/ but not to
    /// ROOM_MODULES would break the page only in a browser.
    #[test]
    fn every_imported_room_module_is_served() {
        for (name, body) in ROOM_MODULES {
            for line in body.lines().filter(|l| l.starts_with("import ")) {
                let Some(path) = line.split('\'').nth(1) else {
                    continue;
                };
                let file = path.trim_start_matches("./");
                assert!(
                    ROOM_MODULES.iter().any(|(n, _)| *n == file),
                    "{name} imports {path}, which is not in ROOM_MODULES"
                );
            }
        }
    }
}
