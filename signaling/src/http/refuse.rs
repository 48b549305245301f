//! Connections over a cap are answered, not left to stall: their request is read (within
//! a short timeout) and answered `503 Service Unavailable` with `Retry-After`, then the
//! connection is closed. At most [`REFUSING`] are being answered at once; beyond that a
//! connection is closed at once, unread.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;

/// Refused connections answered at the same time; each holds a descriptor for at most
/// [`ANSWER_TIMEOUT`].
pub const REFUSING: usize = 64;
/// How long a refused client gets to send its request and read the answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// What a refused client is told to wait before trying again.
const RETRY_AFTER_SECS: &str = "5";

fn unavailable() -> Response<Body> {
    let mut r = Response::new(Body::from("server busy: too many connections\n"));
    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let h = r.headers_mut();
    h.insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Answers one refused connection with 503 and closes it.
pub async fn answer(stream: TcpStream) {
    let svc = hyper::service::service_fn(|_req: Request<Incoming>| async {
        Ok::<_, Infallible>(unavailable())
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(ANSWER_TIMEOUT)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), svc);
    // A client that sends its request but never reads the answer is cut as well.
    let _ = tokio::time::timeout(ANSWER_TIMEOUT * 2, conn).await;
}
