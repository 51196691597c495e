//! The consumer (`/v1/consumer`) and agent (`/v1/agent`) WebSocket endpoints.
//!
//! One task per socket runs [`run_socket`]: it waits for `hello`, authenticates, subscribes
//! to the peer's bus topic, then serves until the socket ends: frames from the client go to
//! the socket's command worker (a second task that handles them one at a time, so answers
//! keep the order of requests), and the socket task forwards the worker's answers, events
//! from the bus, and timer-driven frames (heartbeat, token expiry, shutdown). Group commit
//! batches appends across sockets.

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
use crate::fanout::{agent_summary, consumer_summary};
use crate::{AppState, auth, jwt, now_ms};

/// Read buffer per socket. tungstenite's default (128 KiB, allocated at open) would be 13×
/// our whole per-connection memory budget. Most frames fit in 512 bytes; larger ones are
/// read in several reads. Each step down (4 KiB → 1 KiB → 512 B) was measured in idle memory
/// per connection (docs/benchmarks.md).
const READ_BUFFER_BYTES: usize = 512;

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
pub async fn consumer_endpoint(upgrade: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    configure(upgrade).on_upgrade(move |socket| run_socket(socket, state, Endpoint::Consumer, None))
}

/// `GET /v1/agent`: the agent endpoint. Browsers authenticate with the session cookie sent
/// on the upgrade request; other clients put the session token in `hello`.
pub async fn agent_endpoint(upgrade: WebSocketUpgrade, State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookie = auth::session_cookie(&headers);
    configure(upgrade).on_upgrade(move |socket| run_socket(socket, state, Endpoint::Agent, cookie))
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
    user: User,
    /// Hash of the session token the socket logged in with (`None` for API tokens): the
    /// socket closes when that session ends (logout, expiry).
    session_hash: Option<String>,
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

async fn run_socket(socket: WebSocket, state: AppState, endpoint: Endpoint, cookie: Option<String>) {
    let _gauge = ConnectionGauge::open(endpoint);
    let connection_id = state.next_connection_id.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();

    // 1. hello, within the timeout.
    let hello = match tokio::time::timeout(state.config.hello_timeout, stream.next()).await {
        Ok(Some(Ok(WsMessage::Text(text)))) => match serde_json::from_str::<ClientFrame>(&text) {
            Ok(ClientFrame::Hello(hello)) => hello,
            Ok(_) => return refuse(&mut sink, ApiError::code(ErrorCode::HelloRequired)).await,
            Err(error) => {
                return refuse(&mut sink, ApiError::new(ErrorCode::MalformedFrame, format!("bad hello: {error}")))
                    .await;
            }
        },
        Ok(_) => return,
        Err(_) => {
            return refuse(&mut sink, ApiError::new(ErrorCode::HelloRequired, "no hello within the timeout")).await;
        }
    };
    let (peer, mut subscription, welcome) = match authenticate(&state, endpoint, hello, cookie, connection_id).await {
        Ok(authenticated) => authenticated,
        Err(error) => return refuse(&mut sink, error).await,
    };
    if !send_frame(&mut sink, &welcome).await {
        return;
    }
    tracing::debug!(connection_id, endpoint = endpoint.label(), brand_id = peer.brand_id(), "socket authenticated");
    // An agent is connected while this guard lives: its drop (the socket ended, whatever
    // the reason) tells the brand's engine.
    let _presence = match &peer {
        Peer::Agent(agent) => Some(state.engines.agent_connected(&agent.user.brand_id, agent.user.id)),
        Peer::Consumer(_) => None,
    };

    // 2. serve.
    let heartbeat = Duration::from_secs(u64::from(state.config.heartbeat_secs.max(1)));
    let silence_limit = heartbeat * 2 + Duration::from_secs(10);
    let mut ping_timer = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    let mut last_heard = Instant::now();
    let token_expiry = match &peer {
        Peer::Consumer(ConsumerPeer { expires_at_ms: Some(at), .. }) => {
            let left = u64::try_from(at - now_ms()).unwrap_or(0);
            Instant::now() + Duration::from_millis(left)
        }
        _ => Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600),
    };
    let expiry = tokio::time::sleep_until(token_expiry);
    tokio::pin!(expiry);
    let session_hash = match &peer {
        Peer::Agent(agent) => agent.session_hash.clone(),
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
                let Some(Ok(message)) = incoming else { return };
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
                // An agent's session that ended (logout elsewhere, expiry) ends its sockets
                // within a heartbeat. A storage error is not an ended session.
                if let Some(hash) = &session_hash
                    && matches!(state.store.session_user(hash, now_ms()).await, Ok(None))
                {
                    let _ = send_frame(&mut sink, &error_frame(None, ApiError::code(ErrorCode::SessionExpired))).await;
                    break Closing { code: CloseCode::Unauthorized, reason: "session ended" };
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
        return Work::Refuse(None, ApiError::new(ErrorCode::FrameTooLarge, message));
    }
    match serde_json::from_str::<ClientFrame>(text) {
        Ok(ClientFrame::Send { id, cid, text, c, consumer }) => {
            Work::Send(Box::new(SendRequest { id, cid, text, c, consumer }))
        }
        Ok(frame) => Work::Frame(Box::new(frame)),
        Err(error) => Work::Refuse(
            request_id_of(text),
            ApiError::new(ErrorCode::MalformedFrame, format!("cannot decode frame: {error}")),
        ),
    }
}

/// Finds `"id"` in a frame that failed to decode, so the error can still name its request.
fn request_id_of(text: &str) -> Option<u64> {
    serde_json::from_str::<serde_json::Value>(text).ok()?.get("id")?.as_u64()
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
        ErrorCode::Internal | ErrorCode::Unavailable => CloseCode::GoingAway,
        _ => CloseCode::Unauthorized,
    };
    let _ = send_frame(sink, &error_frame(None, error)).await;
    close(sink, Closing { code, reason: "hello refused" }).await;
}

/// Authenticates the socket, subscribes it to its topic, and builds the welcome. The
/// subscription starts *before* the welcome's state is read, so an event committed in
/// between is delivered live (a client may see it twice, never zero times).
async fn authenticate(
    state: &AppState,
    endpoint: Endpoint,
    hello: Hello,
    cookie: Option<String>,
    origin: u64,
) -> ApiResult<(Peer, Subscription, ServerFrame)> {
    if hello.v != PROTOCOL_VERSION {
        return Err(ApiError::new(
            ErrorCode::UnsupportedVersion,
            format!("protocol version {} is not supported; this server speaks {PROTOCOL_VERSION}", hello.v),
        ));
    }
    match endpoint {
        Endpoint::Consumer => authenticate_consumer(state, hello, origin).await,
        Endpoint::Agent => authenticate_agent(state, hello, cookie, origin).await,
    }
}

/// Parsed keys of an app, cached.
fn app_keys_cached(state: &AppState, app_id: &str) -> Option<std::sync::Arc<Vec<jwt::VerifyingKey>>> {
    state.app_keys.lock().unwrap_or_else(|p| p.into_inner()).get(app_id).cloned()
}

async fn authenticate_consumer(
    state: &AppState,
    hello: Hello,
    origin: u64,
) -> ApiResult<(Peer, Subscription, ServerFrame)> {
    let brand_id = hello.brand.as_deref().ok_or_else(|| ApiError::bad_request("hello must name the brand"))?;
    let app_id = hello.app.as_deref().ok_or_else(|| ApiError::bad_request("hello must name the app"))?;
    let Some(app) = state.store.app(brand_id, app_id).await? else {
        return Err(match state.store.brand(brand_id).await? {
            None => ApiError::code(ErrorCode::BrandNotFound),
            Some(_) => ApiError::code(ErrorCode::AppNotFound),
        });
    };
    let now = now_ms();
    let mut new_secret = None;
    let (consumer, expires_at_ms) = match (&hello.token, &hello.anon) {
        (Some(token), _) => {
            if !app.allow_jwt {
                return Err(ApiError::new(ErrorCode::AuthModeDisabled, "this app does not accept JWT authentication"));
            }
            let keys = match app_keys_cached(state, &app.id) {
                Some(keys) => keys,
                None => {
                    let keys =
                        std::sync::Arc::new(jwt::parse_app_keys(&state.store.app_keys(brand_id, &app.id).await?));
                    state.app_keys.lock().unwrap_or_else(|p| p.into_inner()).insert(app.id.clone(), keys.clone());
                    keys
                }
            };
            let verified = jwt::verify_consumer_token(&app, &keys, token)?;
            let consumer = state.store.upsert_consumer(brand_id, &verified.subject, &verified.claims, now).await?;
            (consumer, Some(verified.expires_at_ms))
        }
        (None, Some(secret)) => {
            if !app.allow_anonymous {
                return Err(ApiError::new(
                    ErrorCode::AuthModeDisabled,
                    "this app does not allow unauthenticated consumers",
                ));
            }
            if secret.is_empty() {
                let secret = auth::new_secret("sba_");
                let external_id = format!("anon:{}", auth::hash_secret(&secret));
                let consumer = state.store.upsert_consumer(brand_id, &external_id, &Default::default(), now).await?;
                new_secret = Some(secret);
                (consumer, None)
            } else {
                let external_id = format!("anon:{}", auth::hash_secret(secret));
                let consumer = state
                    .store
                    .consumer_by_external_id(brand_id, &external_id)
                    .await?
                    .ok_or_else(|| ApiError::new(ErrorCode::TokenInvalid, "unknown device secret"))?;
                (consumer, None)
            }
        }
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "hello must carry a token (JWT) or anon (device secret)",
            ));
        }
    };
    if let Some(device) = &hello.device {
        state.store.set_consumer_device(brand_id, consumer.id, device).await?;
    }
    let subscription = state
        .bus
        .subscribe_as(Topic::Consumer { brand: consumer.brand_id.as_str().into(), consumer: consumer.id }, origin);
    let open = state.store.open_conversation(brand_id, consumer.id).await?;
    // A survey the consumer missed while away is offered again: the closed conversation
    // comes with `survey: true`.
    let pending_survey = state.store.pending_survey(brand_id, consumer.id).await?;
    let welcome = ServerFrame::Welcome {
        v: PROTOCOL_VERSION,
        me: Me { id: consumer.id, name: consumer.name.clone(), state: None },
        convs: open.iter().chain(pending_survey.iter()).map(consumer_summary).collect(),
        anon: new_secret,
        hb: state.config.heartbeat_secs,
    };
    let channel = Channel::parse(&app.channel).unwrap_or(Channel::InApp);
    let owned = open.iter().chain(pending_survey.iter()).map(|c| c.id).collect();
    // The entry point: a skill the device asks for (one the app allows), else the app's
    // default skill, else the brand's.
    let entry_skill = match (hello.skill, app.default_skill_id) {
        (Some(skill), default) if default == Some(skill) || app.entry_skill_ids.contains(&skill) => Some(skill),
        (Some(skill), _) => {
            return Err(ApiError::bad_request(format!(
                "skill {skill} is not an entry point of app {}: use its default skill or one of its entry_skill_ids",
                app.id
            )));
        }
        (None, Some(skill)) => Some(skill),
        (None, None) => state.store.brand(brand_id).await?.and_then(|brand| brand.default_skill_id),
    };
    Ok((
        Peer::Consumer(ConsumerPeer { app, consumer, channel, expires_at_ms, owned, entry_skill, routed: None }),
        subscription,
        welcome,
    ))
}

async fn authenticate_agent(
    state: &AppState,
    hello: Hello,
    cookie: Option<String>,
    origin: u64,
) -> ApiResult<(Peer, Subscription, ServerFrame)> {
    let token = hello
        .session
        .or(cookie)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "hello must carry a session token"))?;
    let caller = auth::authenticate_token(state, &token).await?;
    let user = state
        .store
        .user(&caller.brand_id, caller.user_id)
        .await?
        .ok_or_else(|| ApiError::code(ErrorCode::SessionExpired))?;
    let subscription =
        state.bus.subscribe_as(Topic::Agent { brand: user.brand_id.as_str().into(), agent: user.id }, origin);
    let mut convs = Vec::new();
    let skills = state.store.skills(&user.brand_id).await?;
    for conversation in state.store.agent_conversations(&user.brand_id, user.id).await? {
        let consumer = state.store.consumer(&user.brand_id, conversation.consumer_id).await?;
        convs.push(agent_summary(&conversation, consumer.as_ref(), &skills));
    }
    let welcome = ServerFrame::Welcome {
        v: PROTOCOL_VERSION,
        me: Me { id: user.id, name: Some(user.name.clone()), state: Some(user.state) },
        convs,
        anon: None,
        hb: state.config.heartbeat_secs,
    };
    let session_hash = caller.session_token.as_deref().map(auth::hash_secret);
    Ok((Peer::Agent(AgentPeer { user, session_hash }), subscription, welcome))
}

fn check_send(channel: Channel, author: Side, cid: &str, text: &str) -> ApiResult<()> {
    if cid.is_empty() || cid.len() > MAX_CLIENT_ID_BYTES {
        return Err(ApiError::new(
            ErrorCode::InvalidClientId,
            format!("cid must be 1 to {MAX_CLIENT_ID_BYTES} bytes (got {})", cid.len()),
        ));
    }
    check_text(channel, author, text).map_err(|error| match error {
        TextError::Empty => ApiError::code(ErrorCode::TextEmpty),
        TextError::TooLong { .. } => ApiError::new(ErrorCode::TextTooLong, error.to_string()),
    })
}

async fn handle(state: &AppState, peer: &mut Peer, origin: u64, frame: ClientFrame) -> ApiResult<Vec<ServerFrame>> {
    match peer {
        Peer::Consumer(consumer) => handle_consumer(state, consumer, origin, frame).await,
        Peer::Agent(agent) => handle_agent(state, agent, origin, frame).await,
    }
}

fn ok(id: Option<u64>) -> Vec<ServerFrame> {
    id.map(|id| ServerFrame::Ok { id }).into_iter().collect()
}

fn ack(id: Option<u64>, message: &switchboard_store::StoredMessage) -> ServerFrame {
    ServerFrame::Ack { id, c: message.conversation_id, seq: message.seq, ts: message.created_at }
}

impl ConsumerPeer {
    /// Checks `conversation` is this consumer's (once per socket).
    async fn owns(&mut self, state: &AppState, conversation: ConversationId) -> ApiResult<()> {
        if self.owned.contains(&conversation) {
            return Ok(());
        }
        match state.store.conversation(&self.consumer.brand_id, conversation).await? {
            Some(found) if found.consumer_id == self.consumer.id => {
                self.owned.insert(conversation);
                Ok(())
            }
            _ => Err(ApiError::code(ErrorCode::ConversationNotFound)),
        }
    }
}

async fn handle_consumer(
    state: &AppState,
    peer: &mut ConsumerPeer,
    origin: u64,
    frame: ClientFrame,
) -> ApiResult<Vec<ServerFrame>> {
    let brand_id = peer.consumer.brand_id.clone();
    match frame {
        ClientFrame::Hello(_) => Err(ApiError::bad_request("the socket is already authenticated")),
        ClientFrame::Ping { id } => Ok(vec![ServerFrame::Pong { id }]),
        ClientFrame::Send { id, cid, text, c, consumer } => {
            let (id, started, result) =
                submit_send(state, Author::Consumer(peer), id, cid, text, c, consumer).await?.await;
            finish_consumer_send(state, peer, origin, id, started, result?).await
        }
        ClientFrame::Rcpt { id, c, seq, k } => {
            peer.owns(state, c).await?;
            if state.store.record_receipt(&brand_id, c, Side::Consumer, k, seq).await?
                && let Some(agent) = stored_agent(state, &brand_id, c).await?
            {
                state.fanout.to_agent(&brand_id, agent, origin, &ServerFrame::Rcpt { c, by: Side::Consumer, k, seq });
            }
            Ok(ok(id))
        }
        ClientFrame::Typing { c, on } => {
            peer.owns(state, c).await?;
            if let Some(agent) = stored_agent(state, &brand_id, c).await? {
                state.fanout.to_agent(
                    &brand_id,
                    agent,
                    origin,
                    &ServerFrame::Typing { c, by: Side::Consumer, on, name: None },
                );
            }
            Ok(Vec::new())
        }
        ClientFrame::Sync { id, c, after, limit } => {
            peer.owns(state, c).await?;
            Ok(vec![sync(state, &brand_id, id, c, after, limit).await?])
        }
        ClientFrame::Close { id, c } => {
            peer.owns(state, c).await?;
            state.engines.close(&brand_id, c, Side::Consumer, origin).await?;
            Ok(ok(id))
        }
        ClientFrame::Csat { id, c, score, comment } => {
            if !(1..=5).contains(&score)
                || comment.as_ref().is_some_and(|text| text.chars().count() > MAX_CSAT_COMMENT_CHARS)
            {
                return Err(ApiError::new(
                    ErrorCode::InvalidScore,
                    format!(
                        "score must be 1 to 5 (got {score}) and the comment at most {MAX_CSAT_COMMENT_CHARS} characters"
                    ),
                ));
            }
            peer.owns(state, c).await?;
            state.store.answer_csat(&brand_id, c, peer.consumer.id, score, comment.as_deref()).await?;
            Ok(ok(id))
        }
        ClientFrame::History { id, from, to, status, cursor, limit } => {
            let brand = state.store.brand(&brand_id).await?.ok_or_else(|| ApiError::code(ErrorCode::BrandNotFound))?;
            let retention_start = now_ms() - brand.retention_days * 24 * 3600 * 1000;
            let after = match cursor.as_deref() {
                Some(text) => {
                    Some(PageCursor::decode(text).ok_or_else(|| ApiError::bad_request("cursor is not valid"))?)
                }
                None => None,
            };
            let limit = limit.unwrap_or(20);
            if limit == 0 || limit > MAX_HISTORY {
                return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_HISTORY} (got {limit})")));
            }
            let filter = ConversationFilter {
                status,
                consumer_id: Some(peer.consumer.id),
                opened_from: Some(from.map_or(retention_start, |from| from.max(retention_start))),
                opened_to: to,
                ..ConversationFilter::default()
            };
            let page = state.store.conversations(&brand_id, &filter, after, limit).await?;
            Ok(vec![ServerFrame::History {
                id,
                convs: page.conversations.iter().map(consumer_summary).collect(),
                next: page.next.map(PageCursor::encode),
            }])
        }
        ClientFrame::State { .. } => Err(ApiError::new(ErrorCode::Forbidden, "consumers have no agent state")),
        ClientFrame::Accept { .. } | ClientFrame::Decline { .. } => {
            Err(ApiError::new(ErrorCode::Forbidden, "only agents answer offers"))
        }
        ClientFrame::Push { id, provider, token } => {
            if token.is_empty() || token.len() > MAX_PUSH_TOKEN_BYTES {
                return Err(ApiError::bad_request(format!(
                    "push token must be 1 to {MAX_PUSH_TOKEN_BYTES} bytes (got {})",
                    token.len()
                )));
            }
            state
                .store
                .register_push_token(&brand_id, &peer.app.id, peer.consumer.id, provider.as_str(), &token, now_ms())
                .await?;
            Ok(ok(id))
        }
    }
}

/// Who sends.
enum Author<'a> {
    Consumer(&'a ConsumerPeer),
    Agent(&'a AgentPeer),
}

/// A queued `send`: its request id, when it was received, and the append's outcome.
type SendOutcome = (Option<u64>, std::time::Instant, Result<Appended, ApiError>);

/// A `send` waiting for its commit.
type InFlight = futures_util::future::BoxFuture<'static, SendOutcome>;

/// Checks a `send` and queues its append at the writer. The returned future waits for the
/// commit; appends are applied in the order queued.
async fn submit_send(
    state: &AppState,
    author: Author<'_>,
    id: Option<u64>,
    cid: String,
    text: String,
    c: Option<ConversationId>,
    consumer: Option<i64>,
) -> ApiResult<InFlight> {
    let started = std::time::Instant::now();
    let append = match author {
        Author::Consumer(peer) => {
            check_send(peer.channel, Side::Consumer, &cid, &text)?;
            Append::Consumer(ConsumerAppend {
                brand_id: peer.consumer.brand_id.clone(),
                consumer_id: peer.consumer.id,
                app_id: peer.app.id.clone(),
                channel: peer.app.channel.clone(),
                skill_id: peer.entry_skill,
                client_id: cid,
                text,
            })
        }
        Author::Agent(peer) => {
            // Apps are in-app or web, both limited to 2000 characters for agents too.
            check_send(Channel::InApp, Side::Agent, &cid, &text)?;
            let target = match (c, consumer) {
                (Some(c), None) => AgentTarget::Conversation(c),
                (None, Some(consumer)) => AgentTarget::Consumer(consumer),
                _ => return Err(ApiError::bad_request("send needs exactly one of c (conversation) or consumer")),
            };
            Append::Agent(AgentAppend {
                brand_id: peer.user.brand_id.clone(),
                agent_id: peer.user.id,
                agent_name: peer.user.name.clone(),
                may_write_unassigned: peer.is_manager(),
                target,
                client_id: cid,
                text,
            })
        }
    };
    let pending = state.store.submit(append, now_ms()).await?;
    Ok(Box::pin(async move { (id, started, pending.committed().await.map_err(ApiError::from)) }))
}

/// After a consumer's message committed: route a new conversation (the engine announces the
/// assignment or the queue position before the message), tell the other devices and the
/// agent, and answer with the ack.
async fn finish_consumer_send(
    state: &AppState,
    peer: &mut ConsumerPeer,
    origin: u64,
    id: Option<u64>,
    started: std::time::Instant,
    mut appended: Appended,
) -> ApiResult<Vec<ServerFrame>> {
    metrics::histogram!(crate::metrics::APPEND_SECONDS).record(started.elapsed().as_secs_f64());
    let brand_id = &peer.consumer.brand_id;
    peer.owned.insert(appended.message.conversation_id);
    if !appended.duplicate {
        metrics::counter!(crate::metrics::MESSAGES_STORED, "side" => "consumer").increment(1);
        if appended.opened
            && let Some(conversation) = state.store.conversation(brand_id, appended.message.conversation_id).await?
        {
            state.fanout.opened(&conversation, origin);
            let routed = state.engines.opened(brand_id, open_conversation_of(&conversation)).await;
            peer.routed = routed.map(|(agent, at)| (conversation.id, agent, at));
            appended.agent_id = routed.map(|(agent, _)| agent);
        }
        if appended.agent_id.is_none()
            && let Some((conversation, agent, assigned_at)) = peer.routed
            && conversation == appended.message.conversation_id
            && appended.message.created_at <= assigned_at
        {
            appended.agent_id = Some(agent);
        }
        state.fanout.message(brand_id, &appended, origin);
    }
    Ok(vec![ack(id, &appended.message)])
}

/// After an agent's message committed: tell the consumer and the agent's other sockets, and
/// answer with the ack.
async fn finish_agent_send(
    state: &AppState,
    peer: &AgentPeer,
    origin: u64,
    id: Option<u64>,
    started: std::time::Instant,
    appended: Appended,
) -> ApiResult<Vec<ServerFrame>> {
    metrics::histogram!(crate::metrics::APPEND_SECONDS).record(started.elapsed().as_secs_f64());
    let brand_id = &peer.user.brand_id;
    if !appended.duplicate {
        metrics::counter!(crate::metrics::MESSAGES_STORED, "side" => "agent").increment(1);
        if appended.opened
            && let Some(conversation) = state.store.conversation(brand_id, appended.message.conversation_id).await?
        {
            state.engines.opened(brand_id, open_conversation_of(&conversation)).await;
            state.fanout.opened_by_agent(brand_id, &appended, &peer.user.name, origin);
        }
        state.fanout.message(brand_id, &appended, origin);
    }
    Ok(vec![ack(id, &appended.message)])
}

/// The agent holding a conversation, as stored.
async fn stored_agent(state: &AppState, brand_id: &str, c: ConversationId) -> ApiResult<Option<i64>> {
    Ok(state.store.conversation(brand_id, c).await?.and_then(|conversation| conversation.agent_id))
}

/// The answers to a finished `send`.
async fn finish_send(state: &AppState, peer: &mut Peer, origin: u64, outcome: SendOutcome) -> Vec<ServerFrame> {
    let (id, started, result) = outcome;
    let finished = match (peer, result) {
        (_, Err(error)) => Err(error),
        (Peer::Consumer(peer), Ok(appended)) => finish_consumer_send(state, peer, origin, id, started, appended).await,
        (Peer::Agent(peer), Ok(appended)) => finish_agent_send(state, peer, origin, id, started, appended).await,
    };
    finished.unwrap_or_else(|error| vec![error_frame(id, error)])
}

async fn sync(
    state: &AppState,
    brand_id: &str,
    id: Option<u64>,
    c: ConversationId,
    after: i64,
    limit: Option<u32>,
) -> ApiResult<ServerFrame> {
    let limit = limit.unwrap_or(MAX_SYNC);
    if limit == 0 || limit > MAX_SYNC {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_SYNC} (got {limit})")));
    }
    let mut messages = state.store.messages_after(brand_id, c, after, limit + 1).await?;
    let more = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    Ok(ServerFrame::Msgs { id, c, msgs: messages.iter().map(|m| m.to_wire()).collect(), more })
}

impl AgentPeer {
    fn is_manager(&self) -> bool {
        self.user.role >= Role::Manager
    }

    /// The conversation, if this agent may act on it: assigned to them, or any conversation
    /// of the brand for managers.
    async fn may_act(&self, state: &AppState, c: ConversationId) -> ApiResult<switchboard_store::Conversation> {
        let conversation = state
            .store
            .conversation(&self.user.brand_id, c)
            .await?
            .ok_or_else(|| ApiError::code(ErrorCode::ConversationNotFound))?;
        if conversation.agent_id == Some(self.user.id) || self.is_manager() {
            Ok(conversation)
        } else {
            Err(ApiError::code(ErrorCode::NotAssigned))
        }
    }

    /// Read access: what `may_act` allows, plus the past conversations of a consumer whose
    /// open conversation this agent holds (the workspace shows the whole history).
    async fn may_read(&self, state: &AppState, c: ConversationId) -> ApiResult<()> {
        let conversation = state
            .store
            .conversation(&self.user.brand_id, c)
            .await?
            .ok_or_else(|| ApiError::code(ErrorCode::ConversationNotFound))?;
        if state.staff_may_read(self.user.id, self.user.role, &conversation).await? {
            Ok(())
        } else {
            Err(ApiError::code(ErrorCode::NotAssigned))
        }
    }
}

async fn handle_agent(
    state: &AppState,
    peer: &mut AgentPeer,
    origin: u64,
    frame: ClientFrame,
) -> ApiResult<Vec<ServerFrame>> {
    let brand_id = peer.user.brand_id.clone();
    let agent_id = peer.user.id;
    match frame {
        ClientFrame::Hello(_) => Err(ApiError::bad_request("the socket is already authenticated")),
        ClientFrame::Ping { id } => Ok(vec![ServerFrame::Pong { id }]),
        ClientFrame::Send { id, cid, text, c, consumer } => {
            let (id, started, result) =
                submit_send(state, Author::Agent(peer), id, cid, text, c, consumer).await?.await;
            finish_agent_send(state, peer, origin, id, started, result?).await
        }
        ClientFrame::Rcpt { id, c, seq, k } => {
            let conversation = peer.may_act(state, c).await?;
            if state.store.record_receipt(&brand_id, c, Side::Agent, k, seq).await? {
                let frame = ServerFrame::Rcpt { c, by: Side::Agent, k, seq };
                state.fanout.to_consumer(&brand_id, conversation.consumer_id, origin, &frame);
            }
            Ok(ok(id))
        }
        ClientFrame::Typing { c, on } => {
            let conversation = peer.may_act(state, c).await?;
            if conversation.status == ConversationStatus::Open {
                state.fanout.to_consumer(
                    &brand_id,
                    conversation.consumer_id,
                    origin,
                    &ServerFrame::Typing { c, by: Side::Agent, on, name: Some(peer.user.name.clone()) },
                );
            }
            Ok(Vec::new())
        }
        ClientFrame::Sync { id, c, after, limit } => {
            peer.may_read(state, c).await?;
            Ok(vec![sync(state, &brand_id, id, c, after, limit).await?])
        }
        ClientFrame::Close { id, c } => {
            peer.may_act(state, c).await?;
            state.engines.close(&brand_id, c, Side::Agent, origin).await?;
            Ok(ok(id))
        }
        ClientFrame::State { id, state: new_state } => {
            state.engines.choose_state(&brand_id, agent_id, new_state).await?;
            peer.user.state = new_state;
            Ok(ok(id))
        }
        ClientFrame::Accept { id, c } => {
            state.engines.answer_offer(&brand_id, agent_id, c, true).await?;
            Ok(ok(id))
        }
        ClientFrame::Decline { id, c } => {
            state.engines.answer_offer(&brand_id, agent_id, c, false).await?;
            Ok(ok(id))
        }
        ClientFrame::Csat { .. } => Err(ApiError::new(ErrorCode::Forbidden, "only consumers answer surveys")),
        ClientFrame::Push { .. } => {
            Err(ApiError::new(ErrorCode::Forbidden, "only consumer devices register push tokens"))
        }
        ClientFrame::History { .. } => {
            Err(ApiError::new(ErrorCode::Forbidden, "agents list conversations with GET /api/v1/conversations"))
        }
    }
}
