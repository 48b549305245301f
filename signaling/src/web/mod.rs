//! HTTP: the embedded web client, the WebSocket endpoint, two small JSON endpoints and
//! the Prometheus metrics.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::{self, Sources};
use crate::names::validate_room;
use crate::ws::{self, SessionConfig};

const INDEX_HTML: &str = include_str!("index.html");
const ROOM_HTML: &str = include_str!("room.html");
const HOME_JS: &str = include_str!("home.js");
const ROOM_JS: &str = include_str!("room.js");
const STYLE_CSS: &str = include_str!("style.css");

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

/// With access control on, only holders of the secret may look into rooms and metrics
/// on the public listener.
fn authorized(cfg: &SessionConfig, headers: &HeaderMap) -> bool {
    let Some(secret) = &cfg.auth_secret else {
        return true;
    };
    let expected = format!("Bearer {}", String::from_utf8_lossy(secret));
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    given == Some(expected.as_str())
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, "authorization required").into_response()
}

async fn room_stats(
    State(cfg): State<SessionConfig>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&cfg, &headers) {
        return unauthorized();
    }
    match cfg.rooms.stats(&room).await {
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
async fn public_metrics(State(cfg): State<SessionConfig>, headers: HeaderMap) -> Response {
    let Some(src) = &cfg.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !authorized(&cfg, &headers) {
        return unauthorized();
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

/// All routes.
pub fn router(cfg: SessionConfig) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/r/{room}", get(room_page))
        .route(
            "/home.js",
            get(|| async { asset("text/javascript; charset=utf-8", HOME_JS) }),
        )
        .route(
            "/room.js",
            get(|| async { asset("text/javascript; charset=utf-8", ROOM_JS) }),
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
        .with_state(cfg)
}

#[cfg(test)]
mod tests {
    use super::escape_html;

    #[test]
    fn escaping() {
        assert_eq!(
            escape_html("<img src=x onerror='a()'>&\""),
            "&lt;img src=x onerror=&#39;a()&#39;&gt;&amp;&quot;"
        );
    }
}
