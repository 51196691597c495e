//! The consumer (`/v1/consumer`) and agent (`/v1/agent`) WebSocket endpoints.
//!
//! One task per socket runs [`run_socket`]: it waits for `hello`, authenticates, subscribes
//! to the peer's bus topic, then serves until the socket ends: frames from the client go to
//! the socket's command worker (a second task that handles them one at a time, so answers
//! keep the order of requests), and the socket task forwards the worker's answers, events
//! from the bus, and timer-driven frames (heartbeat, token expiry, shutdown). Group commit
//! batches appends across sockets.
//!
//! This module is the transport (endpoints, the socket loop, the worker, decoding); `hello`
//! authenticates, `send` runs the message path, `commands` everything else.

mod commands;
#[cfg(test)]
mod fuzz;
mod hello;
mod send;

use commands::*;
use hello::*;
use send::*;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use switchboard_bus::{Received, Subscription, Topic};
use switchboard_core::limits::{Channel, TextError, check_text};
use switchboard_core::masking::Audience;
use switchboard_protocol::{
    ClientFrame, CloseCode, ConversationId, ConversationStatus, ErrorCode, Hello, MAX_CLIENT_ID_BYTES, MAX_FRAME_BYTES,
    MAX_WIRE_FRAME_BYTES, Me, PROTOCOL_VERSION, ServerFrame, Side,
};
use switchboard_store::{
    AgentAppend, AgentTarget, App, Append, Appended, Consumer, ConsumerAppend, ConversationFilter, PageCursor, Role,
    User,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::engine::open_conversation_of;
use crate::error::{ApiError, ApiResult};
use crate::fanout::{agent_summary, consumer_summary, shown};
use crate::{AppState, auth, jwt, now_ms};

/// Read buffer per socket. tungstenite's default (128 KiB, allocated at open) would be 13×
/// our whole per-connection memory budget. Most frames fit in 512 bytes; larger ones are
/// read in several reads. Each step down (4 KiB → 1 KiB → 512 B) was measured in idle memory
/// per connection (docs/benchmarks.md).
const READ_BUFFER_BYTES: usize = 512;

/// How long a socket closed for an oversized frame is kept before it is dropped.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Longest CSAT comment, in characters.
const MAX_CSAT_COMMENT_CHARS: usize = 1000;

/// Most messages in one `msgs` answer.
const MAX_SYNC: u32 = 500;

/// Longest push token accepted (APNs tokens are 64 hex characters, FCM tokens ~160).
const MAX_PUSH_TOKEN_BYTES: usize = 4096;

/// Most conversations in one `history` answer.
const MAX_HISTORY: u32 = 100;

fn configure(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(MAX_WIRE_FRAME_BYTES)
        .max_frame_size(MAX_WIRE_FRAME_BYTES)
}

/// `GET /v1/consumer`: the consumer endpoint.
pub async fn consumer_endpoint(
    upgrade: WebSocketUpgrade,
    State(state): State<AppState>,
    crate::abuse::ClientAddress(address): crate::abuse::ClientAddress,
) -> Response {
    // A place among the sockets waiting for their hello, taken before the upgrade.
    let waiting = match state.abuse.unauthenticated_socket() {
        Ok(waiting) => waiting,
        Err(error) => return axum::response::IntoResponse::into_response(error),
    };
    let peer = Connection { address, waiting };
    configure(upgrade).on_upgrade(move |socket| run_socket(socket, state, Endpoint::Consumer, None, peer))
}

/// `GET /v1/agent`: the agent endpoint. Browsers authenticate with the session cookie sent
/// on the upgrade request; other clients put the session token in `hello`. An upgrade from
/// a browser page of another origin is refused before the upgrade (`origin_refused`, 403):
/// the cookie would otherwise let that page act as the agent.
pub async fn agent_endpoint(
    upgrade: WebSocketUpgrade,
    State(state): State<AppState>,
    headers: HeaderMap,
    tls: Option<axum::Extension<crate::serve::ServedOverTls>>,
    crate::abuse::ClientAddress(address): crate::abuse::ClientAddress,
) -> Response {
    let tls = tls.is_some_and(|axum::Extension(tls)| tls.0);
    if let Err(error) = crate::origin::check_if_present(&state.config, &headers, tls) {
        return axum::response::IntoResponse::into_response(error);
    }
    let waiting = match state.abuse.unauthenticated_socket() {
        Ok(waiting) => waiting,
        Err(error) => return axum::response::IntoResponse::into_response(error),
    };
    let cookie = auth::session_cookie(&headers);
    let peer = Connection { address, waiting };
    configure(upgrade).on_upgrade(move |socket| run_socket(socket, state, Endpoint::Agent, cookie, peer))
}

/// Where a socket comes from, and its place among the sockets that have not authenticated
/// (`max_unauthenticated_sockets`), given up once its hello is answered.
struct Connection {
    address: std::net::IpAddr,
    waiting: Option<tokio::sync::OwnedSemaphorePermit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Consumer,
    Agent,
}

impl Endpoint {
    fn label(self) -> &'static str {
        match self {
            Endpoint::Consumer => "consumer",
            Endpoint::Agent => "agent",
        }
    }
}

/// An authenticated consumer device.
struct ConsumerPeer {
    app: App,
    consumer: Consumer,
    channel: Channel,
    /// When the token expires (ms); the socket closes with 4001 then.
    expires_at_ms: Option<i64>,
    /// Conversations checked to belong to this consumer (ownership never changes).
    owned: HashSet<ConversationId>,
    /// The skill of a conversation this consumer opens: the app's default skill, else the
    /// brand's (read at hello).
    entry_skill: Option<i64>,
    /// The conversation this socket's message opened, the agent the engine gave it to and
    /// when: sends pipelined behind the opening one were stored before that assignment (the
    /// writer read no agent), and go to that agent too. Later messages carry the agent the
    /// store holds.
    routed: Option<(ConversationId, i64, i64)>,
}

/// An authenticated agent, manager or admin.
struct AgentPeer {
    /// The user; for an API token, the token as a principal of its own (`auth::token_principal`:
    /// its negated id, its name, its role capped by its creator's; no skills, no capacity).
    user: User,
    /// What the socket signed in with, checked again every heartbeat.
    credential: AgentCredential,
}

impl AgentPeer {
    /// Whether an API token (not a user) is on this socket.
    fn is_token(&self) -> bool {
        matches!(self.credential, AgentCredential::ApiToken { .. })
    }
}

/// The credential of an agent socket.
#[derive(Debug, Clone)]
enum AgentCredential {
    /// A login session, by the hash of its token: the socket closes when the session ends
    /// (logout, expiry, a reset password, a disabled account).
    Session(String),
    /// An API token, by the hash of its secret, with the role the socket opened with and when
    /// it expires: the socket closes when the token is revoked or expires, or its creator is
    /// disabled or demoted below that role.
    ApiToken { hash: String, role: Role, expires_at: Option<i64> },
}

/// Whether an agent socket's credential has ended since the last check: the error to send
/// and how to close. A storage error is not an ended credential.
async fn credential_ended(state: &AppState, credential: &AgentCredential) -> Option<(ApiError, Closing)> {
    match credential {
        AgentCredential::Session(hash) => {
            matches!(state.store.session_user(hash, now_ms()).await, Ok(None)).then(|| {
                (
                    ApiError::code(ErrorCode::SessionExpired),
                    Closing { code: CloseCode::Unauthorized, reason: "session ended" },
                )
            })
        }
        AgentCredential::ApiToken { hash, role, .. } => match auth::authenticate_api_token(state, hash, now_ms()).await
        {
            Ok(caller) if caller.role >= *role => None,
            Ok(caller) => Some((
                ApiError::new(
                    ErrorCode::Forbidden,
                    format!(
                        "this API token now acts as {} (its creator's role changed); it opened this socket as {}",
                        caller.role.as_str(),
                        role.as_str()
                    ),
                ),
                Closing { code: CloseCode::Unauthorized, reason: "token role lowered" },
            )),
            Err(error) if matches!(error.code, ErrorCode::Internal | ErrorCode::Unavailable) => None,
            Err(error) if error.code == ErrorCode::TokenExpired => {
                Some((error, Closing { code: CloseCode::TokenExpired, reason: "token expired" }))
            }
            Err(error) => Some((error, Closing { code: CloseCode::Unauthorized, reason: "token no longer valid" })),
        },
    }
}

#[allow(clippy::large_enum_variant)] // One per socket, built once; boxing would only add an allocation.
enum Peer {
    Consumer(ConsumerPeer),
    Agent(AgentPeer),
}

impl Peer {
    fn brand_id(&self) -> &str {
        match self {
            Peer::Consumer(peer) => &peer.consumer.brand_id,
            Peer::Agent(peer) => &peer.user.brand_id,
        }
    }
}

/// How a socket ended, for the close frame.
struct Closing {
    code: CloseCode,
    reason: &'static str,
}

type Sink = futures_util::stream::SplitSink<WebSocket, WsMessage>;

async fn send_frame(sink: &mut Sink, frame: &ServerFrame) -> bool {
    sink.send(WsMessage::Text(frame.to_json().into())).await.is_ok()
}

async fn close(sink: &mut Sink, closing: Closing) {
    let frame = CloseFrame { code: closing.code.code(), reason: closing.reason.into() };
    let _ = sink.send(WsMessage::Close(Some(frame))).await;
    let _ = sink.close().await;
}

struct ConnectionGauge(&'static str);

impl ConnectionGauge {
    fn open(endpoint: Endpoint) -> ConnectionGauge {
        metrics::gauge!(crate::metrics::CONNECTIONS, "endpoint" => endpoint.label()).increment(1.0);
        ConnectionGauge(endpoint.label())
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::CONNECTIONS, "endpoint" => self.0).decrement(1.0);
    }
}

async fn run_socket(socket: WebSocket, state: AppState, endpoint: Endpoint, cookie: Option<String>, from: Connection) {
    let _gauge = ConnectionGauge::open(endpoint);
    let connection_id = state.next_connection_id.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();

    // 1. hello, within the timeout.
    let hello = match tokio::time::timeout(state.config.hello_timeout, stream.next()).await {
        Ok(Some(Ok(WsMessage::Text(text)))) if crate::text::json_has_nul(&text) => {
            return refuse(&mut sink, nul_in_frame()).await;
        }
        Ok(Some(Ok(WsMessage::Text(text)))) => match serde_json::from_str::<ClientFrame>(&text) {
            Ok(ClientFrame::Hello(hello)) => hello,
            Ok(_) => return refuse(&mut sink, ApiError::code(ErrorCode::HelloRequired)).await,
            Err(error) => {
                let error = decode_error(&error);
                return refuse(&mut sink, ApiError::new(error.code, format!("bad hello: {}", error.message))).await;
            }
        },
        Ok(Some(Ok(WsMessage::Binary(_)))) => {
            let error =
                ApiError::new(ErrorCode::MalformedFrame, "binary frames are not supported; send a JSON text hello");
            return refuse(&mut sink, error).await;
        }
        Ok(Some(Err(error))) => return close_after_read_failure(&mut sink, error).await,
        Ok(_) => return,
        Err(_) => {
            return refuse(&mut sink, ApiError::new(ErrorCode::HelloRequired, "no hello within the timeout")).await;
        }
    };
    // Boxed, as is every await of the loop below that reads the store: a future awaited
    // inline is part of this task's state for the socket's whole life, and an idle socket's
    // memory is mostly that state (authenticate's store and identity-provider futures made it
    // 8 KiB per socket).
    let authenticated = Box::pin(authenticate(&state, endpoint, hello, cookie, connection_id, from.address)).await;
    drop(from.waiting);
    let (peer, mut subscription, welcome) = match authenticated {
        Ok(authenticated) => authenticated,
        Err(error) => return refuse(&mut sink, error).await,
    };
    if !send_frame(&mut sink, &welcome).await {
        return;
    }
    tracing::debug!(connection_id, endpoint = endpoint.label(), brand_id = peer.brand_id(), "socket authenticated");
    // An agent is connected while this guard lives: its drop (the socket ended, whatever
    // the reason) tells the brand's engine.
    // An API token is no seat on the desk: it is never present, and nothing is routed to it.
    let _presence = match &peer {
        Peer::Agent(agent) if !agent.is_token() => {
            Some(state.engines.agent_connected(&agent.user.brand_id, agent.user.id))
        }
        _ => None,
    };

    // 2. serve.
    let heartbeat = Duration::from_secs(u64::from(state.config.heartbeat_secs.max(1)));
    let silence_limit = heartbeat * 2 + Duration::from_secs(10);
    let mut ping_timer = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    let mut last_heard = Instant::now();
    let expires_at_ms = match &peer {
        Peer::Consumer(ConsumerPeer { expires_at_ms, .. }) => *expires_at_ms,
        Peer::Agent(AgentPeer { credential: AgentCredential::ApiToken { expires_at, .. }, .. }) => *expires_at,
        Peer::Agent(_) => None,
    };
    let token_expiry = match expires_at_ms {
        Some(at) => {
            let left = u64::try_from(at - now_ms()).unwrap_or(0);
            Instant::now() + Duration::from_millis(left)
        }
        None => Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600),
    };
    let expiry = tokio::time::sleep_until(token_expiry);
    tokio::pin!(expiry);
    let credential = match &peer {
        Peer::Agent(agent) => Some(agent.credential.clone()),
        Peer::Consumer(_) => None,
    };
    let mut shutdown = state.shutdown.clone();
    // Managers also follow the brand's floor (dashboards): hints that something changed.
    let mut floor = match &peer {
        Peer::Agent(agent) if agent.user.role >= Role::Manager => {
            Some(state.bus.subscribe(Topic::Brand { brand: agent.user.brand_id.as_str().into() }))
        }
        _ => None,
    };

    // Commands run in a worker task, one at a time and in the order received, so answers
    // keep the order of requests; the loop below keeps forwarding bus events meanwhile (an
    // agent waiting for its own append must not stop receiving its consumers' messages).
    // `work_tx` is owned by the loop: dropping it (the socket ended) lets the worker finish
    // the command in hand (an append in flight still commits) and end. The worker's answers
    // come back on `answers`; both channels are bounded, and the loop stops reading frames
    // while `work_tx` is full, which pushes back on a client that floods.
    // Both channels and the worker start with the first command: an idle socket (most
    // consumer sockets, most of the time) costs no second task and no queues.
    let mut idle_peer = Some(peer);
    let mut work_tx: Option<mpsc::Sender<Work>> = None;
    let mut answers: Option<mpsc::Receiver<Box<ServerFrame>>> = None;

    let closing = loop {
        tokio::select! {
            incoming = stream.next(), if work_tx.as_ref().is_none_or(|tx| tx.capacity() > 0) => {
                let message = match incoming {
                    Some(Ok(message)) => message,
                    Some(Err(error)) => return close_after_read_failure(&mut sink, error).await,
                    None => return,
                };
                last_heard = Instant::now();
                let work = match message {
                    WsMessage::Text(text) => decode(&text),
                    WsMessage::Binary(_) => Work::Refuse(
                        None,
                        ApiError::new(ErrorCode::MalformedFrame, "binary frames are not supported; send JSON text"),
                    ),
                    WsMessage::Close(_) => return,
                    WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                };
                // A heartbeat `ping` on a socket that never sent a command is answered here:
                // nothing can be ahead of it, and idle sockets stay without a worker.
                if idle_peer.is_some()
                    && let Work::Frame(frame) = &work
                    && let ClientFrame::Ping { id } = **frame
                {
                    if !send_frame(&mut sink, &ServerFrame::Pong { id }).await { return }
                    continue;
                }
                if let Some(peer) = idle_peer.take() {
                    let (tx, work_rx) = mpsc::channel::<Work>(WORK_QUEUE);
                    let (answer_tx, answer_rx) = mpsc::channel::<Box<ServerFrame>>(WORK_QUEUE);
                    tokio::spawn(run_worker(state.clone(), peer, connection_id, work_rx, answer_tx));
                    work_tx = Some(tx);
                    answers = Some(answer_rx);
                }
                // Cannot fail: capacity was checked and only this loop sends.
                if work_tx.as_ref().is_none_or(|tx| tx.try_send(work).is_err()) { return }
            }
            answer = next_answer(&mut answers) => {
                let Some(answer) = answer else { return };
                if !send_frame(&mut sink, &answer).await { return }
            }
            event = subscription.recv() => {
                let text = match event {
                    Received::Event(envelope) if envelope.origin == connection_id => continue,
                    Received::Event(envelope) => envelope.text.to_string(),
                    Received::Lagged => {
                        metrics::counter!(crate::metrics::LAGGED).increment(1);
                        ServerFrame::Resync.to_json()
                    }
                };
                if sink.send(WsMessage::Text(text.into())).await.is_err() { return }
            }
            // Delivered or lagged, a hint is a hint: the dashboard refreshes either way.
            _ = next_floor(&mut floor) => {
                if !send_frame(&mut sink, &ServerFrame::Floor).await { return }
            }
            _ = ping_timer.tick() => {
                if last_heard.elapsed() > silence_limit {
                    break Closing { code: CloseCode::HeartbeatTimeout, reason: "heartbeat timeout" };
                }
                if sink.send(WsMessage::Ping(Default::default())).await.is_err() { return }
                // An agent's session that ended (logout elsewhere, expiry), or an API token
                // revoked, or whose creator was disabled or demoted, ends its sockets within a
                // heartbeat.
                if let Some(credential) = &credential
                    && let Some((error, closing)) = Box::pin(credential_ended(&state, credential)).await
                {
                    let _ = send_frame(&mut sink, &error_frame(None, error)).await;
                    break closing;
                }
            }
            () = &mut expiry => {
                let _ = send_frame(&mut sink, &error_frame(None, ApiError::code(ErrorCode::TokenExpired))).await;
                break Closing { code: CloseCode::TokenExpired, reason: "token expired" };
            }
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => {
                break Closing { code: CloseCode::GoingAway, reason: "server shutting down" };
            }
        }
    };
    close(&mut sink, closing).await;
}

/// The command worker of one socket: runs its commands in order (see [`run_socket`]) until
/// the socket loop drops its end of `work_rx`, then finishes the sends it accepted.
async fn run_worker(
    state: AppState,
    mut peer: Peer,
    connection_id: u64,
    mut work_rx: mpsc::Receiver<Work>,
    answer_tx: mpsc::Sender<Box<ServerFrame>>,
) {
    // `send`s whose appends are queued at the writer, oldest first. Consecutive sends
    // pipeline (one socket is not limited to one commit per message); any other command
    // waits until they are all finished, so effects and answers keep the client's order.
    let mut in_flight: FuturesOrdered<InFlight> = FuturesOrdered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        let replies = tokio::select! {
            biased;
            Some(outcome) = in_flight.next(), if !in_flight.is_empty() => {
                finish_send(&state, &mut peer, connection_id, outcome).await
            }
            work = work_rx.recv(), if open && in_flight.len() < MAX_SENDS_IN_FLIGHT => match work {
                None => {
                    // The socket ended: finish what was accepted (the other side still
                    // gets its events), then stop.
                    open = false;
                    Vec::new()
                }
                Some(Work::Send(request)) => {
                    let SendRequest { id, cid, text, c, consumer } = *request;
                    let author = match &peer {
                        Peer::Consumer(peer) => Author::Consumer(peer),
                        Peer::Agent(peer) => Author::Agent(peer),
                    };
                    match submit_send(&state, author, id, cid, text, c, consumer).await {
                        Ok(pending) => in_flight.push_back(pending),
                        Err(error) => in_flight.push_back(Box::pin(std::future::ready((id, std::time::Instant::now(), Err(error))))),
                    }
                    Vec::new()
                }
                Some(work) => {
                    let mut replies = Vec::new();
                    while let Some(outcome) = in_flight.next().await {
                        replies.extend(finish_send(&state, &mut peer, connection_id, outcome).await);
                    }
                    replies.extend(match work {
                        Work::Send(_) => Vec::new(), // handled by the arm above
                        Work::Frame(frame) => {
                            let id = frame.request_id();
                            handle(&state, &mut peer, connection_id, *frame)
                                .await
                                .unwrap_or_else(|error| vec![error_frame(id, error)])
                        }
                        Work::Refuse(id, error) => vec![error_frame(id, error)],
                    });
                    replies
                }
            },
        };
        for reply in replies {
            // A closed socket drops answers, but the loop goes on finishing accepted work.
            let _ = answer_tx.send(Box::new(reply)).await;
        }
    }
}

/// The fields of a `send` frame.
struct SendRequest {
    id: Option<u64>,
    cid: String,
    text: String,
    c: Option<ConversationId>,
    consumer: Option<i64>,
}

/// The next answer of the socket's worker; never, while no worker runs.
async fn next_answer(answers: &mut Option<mpsc::Receiver<Box<ServerFrame>>>) -> Option<Box<ServerFrame>> {
    match answers {
        Some(answers) => answers.recv().await,
        None => std::future::pending().await,
    }
}

async fn next_floor(floor: &mut Option<Subscription>) -> Received {
    match floor {
        Some(subscription) => subscription.recv().await,
        None => std::future::pending().await,
    }
}

/// Commands queued per socket before the socket stops reading.
const WORK_QUEUE: usize = 32;

/// `send`s of one socket waiting for their commit at once.
const MAX_SENDS_IN_FLIGHT: usize = 64;

/// What the command worker of a socket does next.
enum Work {
    /// A decoded command.
    /// A `send`, pipelined. Boxed like `Frame`.
    Send(Box<SendRequest>),
    /// Any other command. Boxed: the queue's first block of 32 slots is allocated per
    /// socket, and boxing keeps it at 32 pointers instead of 32 frames.
    Frame(Box<ClientFrame>),
    /// A frame that could not be decoded: answered in order with the others.
    Refuse(Option<u64>, ApiError),
}

fn decode(text: &str) -> Work {
    if text.len() > MAX_FRAME_BYTES {
        let message = format!("frame is {} bytes; the limit is {MAX_FRAME_BYTES}", text.len());
        return Work::Refuse(request_id_of(text), ApiError::new(ErrorCode::FrameTooLarge, message));
    }
    if crate::text::json_has_nul(text) {
        return Work::Refuse(request_id_of(text), nul_in_frame());
    }
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Send { id, cid, text, c, consumer }) => {
            Work::Send(Box::new(SendRequest { id, cid, text, c, consumer }))
        }
        Ok(frame) => Work::Frame(Box::new(frame)),
        Err(error) => Work::Refuse(request_id_of(text), decode_error(&error)),
    }
}

/// A frame with NUL in a text field (see [`crate::text`]).
fn nul_in_frame() -> ApiError {
    ApiError::bad_request("a text field of the frame contains the NUL character (U+0000), which is not allowed in text")
}

/// What was wrong with a frame that did not decode: not JSON, or no known frame type, is
/// `malformed_frame`; a known frame with a field missing, of the wrong type or out of range
/// is `bad_request` (docs/errors.md).
fn decode_error(error: &serde_json::Error) -> ApiError {
    let detail = error.to_string();
    let unknown_shape =
        !error.is_data() || detail.starts_with("unknown variant") || detail.starts_with("missing field `t`");
    if unknown_shape {
        ApiError::new(ErrorCode::MalformedFrame, format!("cannot decode frame: {detail}"))
    } else {
        ApiError::new(ErrorCode::BadRequest, format!("bad frame: {detail}"))
    }
}

/// Finds `"id"` in a frame that failed to decode (or was too large to decode), so the error
/// can still name its request. Other fields are skipped without being kept.
fn request_id_of(text: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct IdOnly {
        id: Option<u64>,
    }
    serde_json::from_str::<IdOnly>(text).ok()?.id
}

/// How to end a socket whose read failed: a frame over the hard limit is closed with 1009,
/// as documented; anything else (the connection broke, a protocol violation) just ends it.
fn read_failure(error: axum::Error) -> Option<Closing> {
    match error.into_inner().downcast::<tungstenite::Error>() {
        Ok(error) if matches!(*error, tungstenite::Error::Capacity(_)) => {
            Some(Closing { code: CloseCode::TooBig, reason: "frame over the 1 MiB limit" })
        }
        _ => None,
    }
}

/// Closes a socket after a read failed (see [`read_failure`]). The client may still be
/// sending the rest of its oversized frame, which is never read: the socket is kept for a
/// moment after the close frame so that the client can read it before the unread data makes
/// the kernel reset the connection.
async fn close_after_read_failure(sink: &mut Sink, error: axum::Error) {
    if let Some(closing) = read_failure(error) {
        close(sink, closing).await;
        tokio::time::sleep(CLOSE_LINGER).await;
    }
}

/// The `err` frame for a failed request, counted in the metrics.
fn error_frame(id: Option<u64>, error: ApiError) -> ServerFrame {
    metrics::counter!(crate::metrics::FRAME_ERRORS, "code" => error.code.as_str()).increment(1);
    ServerFrame::error(id, error.code, error.message)
}

/// Answers a failed hello with the error and the matching close code.
async fn refuse(sink: &mut Sink, error: ApiError) {
    let code = match error.code {
        ErrorCode::TokenExpired => CloseCode::TokenExpired,
        ErrorCode::MalformedFrame
        | ErrorCode::HelloRequired
        | ErrorCode::UnsupportedVersion
        | ErrorCode::BadRequest => CloseCode::ProtocolError,
        // Busy or over a limit: the same hello may work later (reconnect with backoff).
        ErrorCode::Internal | ErrorCode::Unavailable | ErrorCode::TooManyRequests => CloseCode::GoingAway,
        _ => CloseCode::Unauthorized,
    };
    let _ = send_frame(sink, &error_frame(None, error)).await;
    close(sink, Closing { code, reason: "hello refused" }).await;
}
