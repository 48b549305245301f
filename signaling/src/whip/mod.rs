//! WHIP (RFC 9725) and WHEP (draft-ietf-wish-whep) over HTTP.
//!
//! WHIP: broadcast tools publish into a room. `POST /whip/<room>` with an SDP offer makes
//! the client a participant of the room (publishing only): the room answers its offer on
//! the same path a page's offer takes (`RoomCmd::Offer`, the send-side SDP code, the same
//! producers), so the pages see its tile, audio and video.
//!
//! WHEP: players play one participant. `POST /whep/<room>/<participant>` with a
//! receive-only offer makes the client a participant that consumes that participant's
//! tracks in the m-lines it offered (`RoomCmd::Play`, the room's consumers);
//! `POST /whep/<room>` plays the room's active speaker, following it.
//!
//! A session lives at `/whip/<room>/session/<id>` (`/whep/...`) until `DELETE`, until
//! its media stops, or until the server stops. docs/PROTOCOL.md lists every request and
//! status.
//!
//! - [`request`]: the HTTP inputs checked (media type, size, token, `If-Match`, trickle).
//! - [`session`]: the session registry (capped in total and per address) and the task
//!   holding a session's place in its room.

pub mod request;
pub mod session;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use serde::Deserialize;
use tokio::sync::{oneshot, watch};

use crate::http::ClientAddr;
use crate::names::{validate_name, validate_room};
use crate::protocol::{ErrorCode, ProtocolError, ServerMessage, Source};
use crate::room::{Entered, ParticipantKind, RoomCmd, Rooms};
use crate::token;
use request::{IfMatch, Patch, Refusal};
use session::{Registry, SessionLimits};

/// A room answers an offer in milliseconds; this bounds a stuck daemon.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// What the WHIP endpoints share.
#[derive(Clone)]
pub struct Endpoints {
    pub rooms: Rooms,
    pub auth_secret: Option<Arc<[u8]>>,
    pub registry: Arc<Registry>,
    pub limits: SessionLimits,
    /// Largest offer read, in bytes (the WebSocket path's `max_message`).
    pub max_offer: usize,
    /// Becomes true when the server stops: every session ends.
    pub shutdown: watch::Receiver<bool>,
}

/// The query of `POST /whip/<room>`.
#[derive(Debug, Default, Deserialize)]
pub struct NameQuery {
    name: Option<String>,
}

/// Which protocol a session speaks: the first segment of its paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Whip,
    Whep,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Self::Whip => "whip",
            Self::Whep => "whep",
        }
    }

    /// Where the sessions of `room` live (the registry's key: a WHIP session is not
    /// reachable under `/whep/` and the reverse).
    fn base(self, room: &str) -> String {
        format!("/{}/{room}", self.name())
    }
}

/// What a session does in its room.
#[derive(Debug, Clone)]
enum Role {
    Publish,
    /// Play the participant of this name, or (None) the room's active speaker.
    Play(Option<String>),
}

impl Role {
    fn protocol(&self) -> Protocol {
        match self {
            Self::Publish => Protocol::Whip,
            Self::Play(_) => Protocol::Whep,
        }
    }
}

/// The WHIP and WHEP routes.
pub fn routes(endpoints: Endpoints) -> Router {
    Router::new()
        .route("/whip/{room}", post(publish).options(options_endpoint))
        .route(
            "/whip/{room}/session/{id}",
            axum::routing::delete(|s, p| delete(s, p, Protocol::Whip))
                .patch(|s, p, h, b| patch(s, p, h, b, Protocol::Whip))
                .options(options_session),
        )
        .route("/whep/{room}", post(play_speaker).options(options_endpoint))
        .route(
            "/whep/{room}/{participant}",
            post(play).options(options_endpoint),
        )
        .route(
            "/whep/{room}/session/{id}",
            axum::routing::delete(|s, p| delete(s, p, Protocol::Whep))
                .patch(|s, p, h, b| patch(s, p, h, b, Protocol::Whep))
                .options(options_session),
        )
        .with_state(endpoints)
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            self.reason,
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 section 3: a 401 names the scheme to use.
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        with_cors(r)
    }
}

/// CORS for browser-based WHIP clients (RFC 9725 section 4.2): any origin may call, as
/// the credential is an explicit bearer token, never a cookie; the session's headers
/// are readable by the page.
fn with_cors(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Location, ETag, Accept-Patch, Link"),
    );
    r
}

/// An `OPTIONS` answer: what the resource allows, and the CORS preflight answer.
fn options(methods: &'static str, extra: Option<(HeaderName, &'static str)>) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(methods));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Authorization, Content-Type, If-Match"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    if let Some((k, v)) = extra {
        h.insert(k, HeaderValue::from_static(v));
    }
    with_cors(r)
}

async fn options_endpoint() -> Response {
    options(
        "OPTIONS, POST",
        Some((HeaderName::from_static("accept-post"), request::SDP)),
    )
}

async fn options_session() -> Response {
    options(
        "OPTIONS, PATCH, DELETE",
        Some((HeaderName::from_static("accept-patch"), request::SDPFRAG)),
    )
}

/// Reads a body of at most `max` bytes: 413 past it, before buffering more.
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Vec<u8>, Refusal> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(request::too_large(max));
    }
    axum::body::to_bytes(body, max)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| request::too_large(max))
}

/// Who the client is: the token's name (RFC 9725 section 4.5: the bearer token is the
/// credential), or `?name=`, or a generated name on a server without `auth_secret`.
fn participant_name(
    ep: &Endpoints,
    protocol: Protocol,
    room: &str,
    query: Option<String>,
    headers: &HeaderMap,
) -> Result<String, Refusal> {
    let name = match &ep.auth_secret {
        Some(secret) => {
            let claims =
                token::verify_room(secret, request::bearer(headers), room, token::unix_now())
                    .map_err(|e| match e {
                        token::TokenError::Missing => Refusal::new(
                            StatusCode::UNAUTHORIZED,
                            "this server requires Authorization: Bearer <join token for this room>",
                        ),
                        e => Refusal::new(StatusCode::UNAUTHORIZED, e.to_string()),
                    })?;
            if query.as_ref().is_some_and(|q| *q != claims.name) {
                return Err(Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "the token is for another name than ?name=",
                ));
            }
            claims.name
        }
        None => query.unwrap_or_else(|| {
            format!(
                "{} {:04x}",
                protocol.name().to_uppercase(),
                rand::random::<u16>()
            )
        }),
    };
    validate_name(&name).map_err(|m| Refusal::new(StatusCode::BAD_REQUEST, m))?;
    Ok(name)
}

/// `POST /whip/<room>`.
async fn publish(
    State(ep): State<Endpoints>,
    Path(room): Path<String>,
    Query(query): Query<NameQuery>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0 .0.ip());
    respond(start(&ep, Role::Publish, &room, query.name, ip, &headers, body).await)
}

/// `POST /whep/<room>/<participant>`.
async fn play(
    State(ep): State<Endpoints>,
    Path((room, participant)): Path<(String, String)>,
    Query(query): Query<NameQuery>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0 .0.ip());
    if let Err(m) = validate_name(&participant) {
        return Refusal::new(StatusCode::BAD_REQUEST, format!("participant: {m}")).into_response();
    }
    let role = Role::Play(Some(participant));
    respond(start(&ep, role, &room, query.name, ip, &headers, body).await)
}

/// `POST /whep/<room>`: plays the room's active speaker, following it.
async fn play_speaker(
    State(ep): State<Endpoints>,
    Path(room): Path<String>,
    Query(query): Query<NameQuery>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0 .0.ip());
    respond(start(&ep, Role::Play(None), &room, query.name, ip, &headers, body).await)
}

fn respond(result: Result<Response, Refusal>) -> Response {
    match result {
        Ok(r) => r,
        Err(refusal) => {
            tracing::debug!(status = %refusal.status, reason = %refusal.reason, "WHIP/WHEP offer refused");
            refusal.into_response()
        }
    }
}

async fn start(
    ep: &Endpoints,
    role: Role,
    room: &str,
    name: Option<String>,
    ip: IpAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let protocol = role.protocol();
    validate_room(room).map_err(|m| Refusal::new(StatusCode::BAD_REQUEST, m))?;
    request::check_content_type(headers, request::SDP)?;
    let name = participant_name(ep, protocol, room, name, headers)?;
    let body = read_body(headers, body, ep.max_offer).await?;
    let offer = request::body_text(&body, ep.max_offer)?;
    // Refused before the room hears of it: a bad offer costs no join and no transport.
    match &role {
        Role::Publish => ep.rooms.check_send_offer(offer)?,
        Role::Play(_) => ep.rooms.check_play_offer(offer)?,
    }
    let base = protocol.base(room);
    let id = ep.registry.reserve(&base, ip, ep.limits)?;
    let result = negotiate(ep, room, name, role, offer).await;
    let (entered, answer) = match result {
        Ok(x) => x,
        Err(e) => {
            ep.registry.release(&id);
            return Err(e);
        }
    };
    let etag = format!("\"{:016x}\"", rand::random::<u64>());
    let (end_tx, end_rx) = oneshot::channel();
    if !ep
        .registry
        .activate(&id, etag.clone(), request::ice_credentials(offer), end_tx)
    {
        leave(&entered).await;
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the session was ended while being set up",
        ));
    }
    let location = format!("{base}/session/{id}");
    tracing::info!(%room, session = %id, peer = %entered.peer_id, protocol = protocol.name(), "session started");
    tokio::spawn(session::run(
        id,
        entered,
        end_rx,
        ep.shutdown.clone(),
        ep.registry.clone(),
    ));
    let r = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, request::SDP.to_owned()),
            (header::LOCATION, location),
            (header::ETAG, etag),
            (
                HeaderName::from_static("accept-patch"),
                request::SDPFRAG.to_owned(),
            ),
        ],
        answer,
    )
        .into_response();
    Ok(with_cors(r))
}

/// Joins `room` (consuming nothing by itself) and has the room answer `offer` as `role`
/// says.
async fn negotiate(
    ep: &Endpoints,
    room: &str,
    name: String,
    role: Role,
    offer: &str,
) -> Result<(Entered, String), Refusal> {
    let kind = match role {
        Role::Publish => ParticipantKind::Publisher,
        Role::Play(_) => ParticipantKind::Player,
    };
    let mut entered = ep
        .rooms
        .enter(room, name, Default::default(), kind, Vec::new())
        .await?;
    let peer_id = entered.peer_id.clone();
    let sdp = offer.to_owned();
    let cmd = match role {
        Role::Publish => RoomCmd::Offer {
            peer_id,
            sdp,
            epoch: 0,
            encodings: BTreeMap::new(),
            source: Source::Camera,
        },
        Role::Play(source) => RoomCmd::Play {
            peer_id,
            source,
            sdp,
        },
    };
    let sent = entered.room.send(cmd).await;
    let answer = if sent {
        tokio::time::timeout(ANSWER_TIMEOUT, wait_answer(&mut entered))
            .await
            .unwrap_or_else(|_| {
                Err(ProtocolError::new(
                    ErrorCode::ServerError,
                    "the room took too long to answer",
                ))
            })
    } else {
        Err(ProtocolError::new(
            ErrorCode::ServerError,
            "the room closed; try again",
        ))
    };
    match answer {
        Ok(sdp) => Ok((entered, sdp)),
        Err(e) => {
            leave(&entered).await;
            Err(e.into())
        }
    }
}

/// The room's answer to the offer, or its error; other news is not for this client.
async fn wait_answer(entered: &mut Entered) -> Result<String, ProtocolError> {
    loop {
        match entered.out.recv().await {
            Some(ServerMessage::Answer { sdp, .. }) => return Ok(sdp),
            Some(ServerMessage::Error { code, message, .. }) => {
                return Err(ProtocolError::new(code, message))
            }
            Some(ServerMessage::Restart { .. }) | None => {
                return Err(ProtocolError::new(
                    ErrorCode::ServerError,
                    "the media server restarted; try again",
                ))
            }
            Some(_) => {}
        }
    }
}

async fn leave(entered: &Entered) {
    entered
        .room
        .send(RoomCmd::Leave {
            peer_id: entered.peer_id.clone(),
            explicit: false,
        })
        .await;
}

fn no_session() -> Refusal {
    Refusal::new(StatusCode::NOT_FOUND, "no such session")
}

/// `DELETE /whip/<room>/session/<id>` (or `/whep/`): the participant leaves the room.
async fn delete(
    State(ep): State<Endpoints>,
    Path((room, id)): Path<(String, String)>,
    protocol: Protocol,
) -> Response {
    if ep.registry.end(&protocol.base(&room), &id) {
        with_cors(StatusCode::OK.into_response())
    } else {
        no_session().into_response()
    }
}

/// `PATCH /whip/<room>/session/<id>`: trickle ICE is taken (and needs nothing: the
/// server is ICE-lite and learns the client's addresses from its checks); an ICE restart
/// is refused with 422 as RFC 9725 section 4.3.2 allows (the client makes a new session).
async fn patch(
    State(ep): State<Endpoints>,
    Path((room, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
    protocol: Protocol,
) -> Response {
    match patch_session(&ep, &protocol.base(&room), &id, &headers, body).await {
        Ok(r) => with_cors(r),
        Err(refusal) => refusal.into_response(),
    }
}

async fn patch_session(
    ep: &Endpoints,
    base: &str,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let view = ep.registry.view(base, id).ok_or_else(no_session)?;
    request::check_content_type(headers, request::SDPFRAG)?;
    let if_match = request::if_match(headers, &view.etag);
    if if_match == IfMatch::Mismatch {
        return Err(Refusal::new(
            StatusCode::PRECONDITION_FAILED,
            "If-Match does not match the session's ETag",
        ));
    }
    let body = read_body(headers, body, request::MAX_SDPFRAG).await?;
    let fragment = request::body_text(&body, request::MAX_SDPFRAG)?;
    match request::classify_patch(fragment, if_match, &view.offered) {
        Patch::Trickle => Ok(StatusCode::NO_CONTENT.into_response()),
        Patch::Restart => Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "ICE restarts are not supported: DELETE this session and POST a new offer",
        )),
    }
}
