//! The client: public API plus the connection task that keeps a session with the server.
//!
//! One task per client owns the socket. It connects, authenticates, resumes every
//! conversation from the last `seq` the cache holds, sends the outbox in order, then serves
//! live frames until the connection is lost, and starts again after an exponential backoff
//! with jitter. The app talks to that task through a command channel; whatever it writes goes
//! to the encrypted outbox first, so nothing depends on being online.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_protocol::{
    AuthCode, ClientFrame, CloseCode, ConversationEventKind, ConversationStatus, ConversationSummary, DeviceInfo,
    ErrorCode, Hello, PROTOCOL_VERSION, PushProvider, ReceiptKind, ServerFrame, Side,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::SdkError;
use crate::event::{ConnectionState, Event, EventListener, EventStream};
use crate::model::{ChatMessage, ConversationInfo, MessageState, PushPayload, QueueEstimate};
use crate::store::LocalStore;

/// Longest message text on in-app and web, in Unicode scalar values (the server refuses more).
pub const MAX_TEXT_CHARS: usize = 2000;

/// Supplies consumer JWTs signed by the brand's backend. Called before every connection
/// attempt, so an expired token is replaced by asking again.
pub trait TokenProvider: Send + Sync + 'static {
    /// A fresh token, or a description of why none could be had (retried with backoff).
    fn fetch_token(&self) -> Result<String, String>;
}

/// Supplies OAuth2 authorization codes (the code flow): the app runs the authorization
/// request with the brand's identity provider and hands over the code it got. Called before
/// every connection attempt: a code is good for one exchange.
pub trait CodeProvider: Send + Sync + 'static {
    /// A fresh code, or a description of why none could be had (retried with backoff).
    fn fetch_code(&self) -> Result<AuthorizationCode, String>;
}

/// An authorization code and what the authorization request that got it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub code: String,
    /// The request's `redirect_uri` (else the one the brand configured for the app).
    pub redirect_uri: Option<String>,
    /// The PKCE `code_verifier`, if the request used PKCE (recommended for apps).
    pub verifier: Option<String>,
}

/// How the consumer authenticates.
#[derive(Clone)]
pub enum Auth {
    /// The brand's JWT (implicit flow).
    Jwt(Arc<dyn TokenProvider>),
    /// An OAuth2 authorization code, exchanged by the server at the brand's identity
    /// provider (the code flow; the app must have it set up).
    Code(Arc<dyn CodeProvider>),
    /// No login: the server issues an anonymous identity bound to a device secret, which
    /// the SDK keeps (encrypted) in its data directory. The app must allow it.
    Anonymous,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Jwt(_) => f.write_str("Auth::Jwt"),
            Auth::Code(_) => f.write_str("Auth::Code"),
            Auth::Anonymous => f.write_str("Auth::Anonymous"),
        }
    }
}

/// Reconnection timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay after a lost connection.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(500), max: Duration::from_secs(30) }
    }
}

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    server_url: String,
    fallback_urls: Vec<String>,
    brand_id: String,
    app_id: String,
    auth: Option<Auth>,
    data_dir: Option<PathBuf>,
    key: Option<[u8; 32]>,
    device: DeviceInfo,
    entry_skill: Option<i64>,
    language: Option<String>,
    mask_card_numbers: bool,
    upgrade_anonymous: bool,
    backoff: Backoff,
    extra_roots: Vec<String>,
}

impl ClientBuilder {
    /// More addresses of the same service, tried in turn when the current one cannot be
    /// reached: the nodes of a fleet, or several load balancers. The client starts with the
    /// builder's `server_url`; a connection that fails before `welcome` moves it to the next
    /// address at once, and only after every address failed does it wait (the backoff). A
    /// session that was connected and is lost is retried on the same address first. Each
    /// address follows the rules of `server_url` (`https`/`wss` or `http`/`ws`).
    pub fn fallback_servers<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fallback_urls.extend(urls.into_iter().map(Into::into));
        self
    }

    /// How the consumer authenticates (required).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Directory for the local cache (required; created if missing).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The 32-byte AES-256-GCM key of the local cache (required). Keep it in the platform's
    /// keychain/keystore; the same key must be supplied every time.
    pub fn encryption_key(mut self, key: [u8; 32]) -> Self {
        self.key = Some(key);
        self
    }

    /// Device information agents see (OS, app version, device type).
    pub fn device(mut self, device: DeviceInfo) -> Self {
        self.device = device;
        self
    }

    /// The entry point: the skill (id) this device's new conversations start in, one the app
    /// allows (its default skill or one of its entry skills). Without it, the app's default
    /// skill, else the brand's. A skill the app does not allow is refused at connect (a
    /// permanent error naming the skill).
    pub fn entry_skill(mut self, skill: i64) -> Self {
        self.entry_skill = Some(skill);
        self
    }

    /// The language the app speaks, a BCP 47 tag such as `de-AT`: the brand's automatic
    /// messages come in it when the brand has them in that language.
    pub fn language(mut self, tag: impl Into<String>) -> Self {
        self.language = Some(tag.into());
        self
    }

    /// Client-side masking: card numbers (13 to 19 digits in groups, passing the Luhn check)
    /// are masked to their last four digits on the device, before the message is written to
    /// the outbox, so the number never leaves the device. For apps without authentication,
    /// or that must not trust the network path; the brand's masking rules still apply on the
    /// server. Off by default.
    pub fn mask_card_numbers(mut self, on: bool) -> Self {
        self.mask_card_numbers = on;
        self
    }

    /// The anonymous → authenticated upgrade: with [`Auth::Jwt`] or [`Auth::Code`], if this data directory
    /// holds an anonymous identity (the app ran with [`Auth::Anonymous`] before the consumer
    /// logged in), its conversations move to the logged-in consumer at the next connection
    /// and the anonymous identity is retired (docs/protocol.md, "Anonymous to
    /// authenticated"). Off by default: the app decides whether what was written on this
    /// device before the login belongs to the person who logged in.
    pub fn upgrade_anonymous(mut self, on: bool) -> Self {
        self.upgrade_anonymous = on;
        self
    }

    /// Trusts a certificate authority besides the public ones (the webpki roots) for
    /// `https://`/`wss://` servers: the PEM text of one or more certificates, e.g. a
    /// company's private CA or the `ca.pem` of `switchboard serve --tls-self-signed`. May be
    /// called more than once. A PEM without a certificate fails `build` with `InvalidInput`.
    pub fn extra_root_certificate_pem(mut self, pem: impl Into<String>) -> Self {
        self.extra_roots.push(pem.into());
        self
    }

    /// Reconnection timing.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Opens the local cache and returns the client, not yet connected (see
    /// [`Client::connect`]). Fails with `WrongKey` if the key does not open the cache.
    pub fn build(self) -> Result<Client, SdkError> {
        let auth = self.auth.ok_or_else(|| SdkError::InvalidInput("auth is required".into()))?;
        let data_dir = self.data_dir.ok_or_else(|| SdkError::InvalidInput("data_dir is required".into()))?;
        let key = self.key.ok_or_else(|| SdkError::InvalidInput("encryption_key is required".into()))?;
        // Checked even for a plain server, so a bad PEM is found in development.
        let tls = crate::tls::client_config(&self.extra_roots)?;
        let servers = std::iter::once(&self.server_url)
            .chain(&self.fallback_urls)
            .map(|url| {
                let socket_url = socket_url(url)?;
                let tls = socket_url.starts_with("wss://").then(|| Arc::clone(&tls));
                Ok(Server { socket_url, tls })
            })
            .collect::<Result<Vec<_>, SdkError>>()?;
        let store = LocalStore::open(&data_dir, &key)?;
        let (events, _) = broadcast::channel(1024);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            servers,
            current: AtomicUsize::new(0),
            brand_id: self.brand_id,
            app_id: self.app_id,
            auth,
            device: self.device,
            entry_skill: self.entry_skill,
            language: self.language,
            mask_card_numbers: self.mask_card_numbers,
            upgrade_anonymous: self.upgrade_anonymous,
            backoff: self.backoff,
            store,
            events,
            listener: Mutex::new(None),
            state: Mutex::new(ConnectionState::Disconnected),
            commands,
            shutdown,
        });
        let task = TaskGuard { command_rx: Mutex::new(Some(command_rx)), handle: Mutex::new(None) };
        Ok(Client { shared, task: Arc::new(task) })
    }
}

/// `https://host:port` or `wss://host:port` → `wss://host:port/v1/consumer`;
/// `http://host:port` or `ws://host:port` → `ws://host:port/v1/consumer`.
fn socket_url(server_url: &str) -> Result<String, SdkError> {
    let trimmed = server_url.trim_end_matches('/');
    let (scheme, rest) = if let Some(rest) = trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("wss://"))
    {
        ("wss", rest)
    } else if let Some(rest) = trimmed.strip_prefix("http://").or_else(|| trimmed.strip_prefix("ws://")) {
        ("ws", rest)
    } else {
        return Err(SdkError::InvalidInput(format!(
            "server_url must start with https://, wss://, http:// or ws:// (got {server_url:?})"
        )));
    };
    if rest.is_empty() {
        return Err(SdkError::InvalidInput("server_url has no host".into()));
    }
    Ok(format!("{scheme}://{rest}/v1/consumer"))
}

/// What the app asks the connection task to do.
enum Command {
    /// The outbox has new entries.
    Flush,
    /// A frame whose loss offline is acceptable (typing, receipts).
    Fire(ClientFrame),
    /// A request that needs its answer; refused with `Offline` when not connected.
    Request { frame: ClientFrame, reply: oneshot::Sender<Result<ServerFrame, SdkError>> },
    /// A push token waits to be unregistered (kept on disk until sent).
    Unpush,
}

/// One address of the service.
struct Server {
    socket_url: String,
    /// TLS settings for a `wss://` server; `None` for `ws://`.
    tls: Option<Arc<rustls::ClientConfig>>,
}

struct Shared {
    /// The service's addresses: the builder's first, then its fallbacks.
    servers: Vec<Server>,
    /// The index in `servers` of the address in use (or tried next).
    current: AtomicUsize,
    brand_id: String,
    app_id: String,
    auth: Auth,
    device: DeviceInfo,
    entry_skill: Option<i64>,
    language: Option<String>,
    /// Card numbers are masked before a message reaches the outbox.
    mask_card_numbers: bool,
    /// With a JWT, the device secret of an anonymous identity kept here goes with `hello`.
    upgrade_anonymous: bool,
    backoff: Backoff,
    store: LocalStore,
    /// Fan-out of events to every `EventStream`; sending never blocks (slow streams lag).
    events: broadcast::Sender<Event>,
    listener: Mutex<Option<Arc<dyn EventListener>>>,
    state: Mutex<ConnectionState>,
    /// To the connection task. Unbounded: commands are few and small, and the app's calls
    /// must never block on the network.
    commands: mpsc::UnboundedSender<Command>,
    /// Set to `true` by `shutdown`; the connection task closes the socket and ends.
    shutdown: watch::Sender<bool>,
}

impl Shared {
    fn emit(&self, event: Event) {
        let listener = self.listener.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(listener) = listener {
            listener.on_event(event.clone());
        }
        let _ = self.events.send(event);
    }

    fn set_state(&self, state: ConnectionState) {
        let changed = {
            let mut current = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let changed = *current != state;
            *current = state;
            changed
        };
        if changed {
            self.emit(Event::Connection(state));
        }
    }

    fn emit_error(&self, error: &SdkError) {
        let code = match error {
            SdkError::Server { code, .. } => Some(code.clone()),
            SdkError::Certificate(_) => Some("certificate_refused".to_owned()),
            _ => None,
        };
        self.emit(Event::Error { message: error.to_string(), code, transient: error.is_transient() });
    }
}

/// A consumer's connection to Switchboard. Cheap to clone; clones share one connection.
/// Dropping the last clone stops the connection task at once, like the app being killed:
/// nothing is lost, the outbox is on disk.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    task: Arc<TaskGuard>,
}

/// Owns the connection task: holds the command receiver until `connect` starts the task,
/// then the task's handle, which is aborted when the last `Client` goes away.
struct TaskGuard {
    command_rx: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
    handle: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take() {
            handle.abort();
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("brand_id", &self.shared.brand_id).field("app_id", &self.shared.app_id).finish()
    }
}

/// Filters of [`Client::history`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Opened at or after (ms since epoch).
    pub from_ms: Option<i64>,
    /// Opened before (ms since epoch).
    pub to_ms: Option<i64>,
    pub status: Option<ConversationStatus>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<u32>,
}

/// One page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub conversations: Vec<ConversationInfo>,
    pub next_cursor: Option<String>,
}

impl Client {
    /// Starts building a client for one brand's app.
    pub fn builder(
        server_url: impl Into<String>,
        brand_id: impl Into<String>,
        app_id: impl Into<String>,
    ) -> ClientBuilder {
        ClientBuilder {
            server_url: server_url.into(),
            fallback_urls: Vec::new(),
            brand_id: brand_id.into(),
            app_id: app_id.into(),
            auth: None,
            data_dir: None,
            key: None,
            device: DeviceInfo::default(),
            entry_skill: None,
            language: None,
            mask_card_numbers: false,
            upgrade_anonymous: false,
            backoff: Backoff::default(),
            extra_roots: Vec::new(),
        }
    }

    /// Starts the connection task (on the current tokio runtime). It keeps reconnecting until
    /// [`Client::shutdown`]. Calling it again does nothing.
    pub fn connect(&self) {
        let Some(commands) = self.task.command_rx.lock().unwrap_or_else(|p| p.into_inner()).take() else { return };
        let shared = Arc::clone(&self.shared);
        *self.task.handle.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::spawn(run(shared, commands)));
    }

    /// Closes the connection and stops reconnecting. Messages still in the outbox stay there
    /// for the next start.
    pub async fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
        let mut events = self.shared.events.subscribe();
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        while self.connection_state() != ConnectionState::Disconnected {
            tokio::select! {
                _ = events.recv() => {}
                () = &mut deadline => break,
            }
        }
    }

    /// Writes a message: it is stored in the encrypted outbox at once (shown as pending) and
    /// sent when connected, exactly once, in order.
    pub fn send_text(&self, text: &str) -> Result<ChatMessage, SdkError> {
        let chars = text.chars().count();
        if text.trim().is_empty() {
            return Err(SdkError::InvalidInput("message text is empty".into()));
        }
        if chars > MAX_TEXT_CHARS {
            return Err(SdkError::InvalidInput(format!(
                "message is {chars} characters; the limit is {MAX_TEXT_CHARS}"
            )));
        }
        let text = if self.shared.mask_card_numbers {
            switchboard_protocol::cards::mask_cards(text)
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        let client_id = new_client_id();
        let entry = self.shared.store.enqueue(&client_id, &text, now_ms())?;
        let _ = self.shared.commands.send(Command::Flush);
        Ok(ChatMessage {
            conversation: None,
            seq: None,
            client_id: Some(entry.client_id),
            from: Side::Consumer,
            author: None,
            text: entry.text,
            timestamp_ms: entry.created_ms,
            state: MessageState::Pending,
            error: None,
        })
    }

    /// Tells the agent the consumer has read everything up to `seq` (best effort: skipped
    /// when offline; the next read mark covers it).
    pub fn mark_read(&self, conversation: i64, seq: i64) {
        let frame = ClientFrame::Rcpt { id: None, c: conversation, seq, k: ReceiptKind::Read };
        let _ = self.shared.commands.send(Command::Fire(frame));
    }

    /// Typing indicator for the open conversation (best effort, never stored).
    pub fn set_typing(&self, on: bool) -> Result<(), SdkError> {
        if let Some(open) = self.shared.store.open_conversation()? {
            let _ = self.shared.commands.send(Command::Fire(ClientFrame::Typing { c: open.id, on }));
        }
        Ok(())
    }

    async fn request(&self, frame: ClientFrame) -> Result<ServerFrame, SdkError> {
        if self.connection_state() != ConnectionState::Connected {
            return Err(SdkError::Offline);
        }
        let (reply, answer) = oneshot::channel();
        self.shared.commands.send(Command::Request { frame, reply }).map_err(|_| SdkError::Closed)?;
        answer.await.map_err(|_| SdkError::Closed)?
    }

    /// Closes the consumer's open conversation (needs a connection).
    pub async fn close_conversation(&self) -> Result<(), SdkError> {
        let Some(open) = self.shared.store.open_conversation()? else { return Ok(()) };
        self.request(ClientFrame::Close { id: None, c: open.id }).await?;
        // The server tells this consumer's other devices; this one learns it from the answer.
        self.shared.store.set_conversation_status(open.id, ConversationStatus::Closed, Some(now_ms()))?;
        forget_queue_estimate(&self.shared.store, open.id)?;
        self.shared.emit(Event::Closed { conversation: open.id, by: Some(Side::Consumer) });
        Ok(())
    }

    /// Answers the CSAT survey of a conversation: `score` 1–5, optional comment.
    pub async fn answer_survey(&self, conversation: i64, score: u8, comment: Option<String>) -> Result<(), SdkError> {
        if !(1..=5).contains(&score) {
            return Err(SdkError::InvalidInput(format!("score must be 1 to 5 (got {score})")));
        }
        self.request(ClientFrame::Csat { id: None, c: conversation, score, comment }).await?;
        self.shared.store.set_csat(conversation, score)?;
        Ok(())
    }

    /// The consumer's conversations from the server, newest first (needs a connection).
    pub async fn history(&self, query: HistoryQuery) -> Result<HistoryPage, SdkError> {
        let frame = ClientFrame::History {
            id: None,
            from: query.from_ms,
            to: query.to_ms,
            status: query.status,
            cursor: query.cursor,
            limit: query.limit,
        };
        match self.request(frame).await? {
            ServerFrame::History { convs, next, .. } => {
                for summary in &convs {
                    self.shared.store.upsert_conversation(summary)?;
                }
                Ok(HistoryPage { conversations: convs.iter().map(info_of).collect(), next_cursor: next })
            }
            other => Err(SdkError::Storage(format!("unexpected answer to history: {other:?}"))),
        }
    }

    /// Registers the device's push token (APNs or FCM). Kept and sent again at every
    /// connection, so it reaches the server even if registered offline.
    pub fn register_push_token(&self, provider: PushProvider, token: &str) -> Result<(), SdkError> {
        if token.is_empty() || token.len() > 4096 {
            return Err(SdkError::InvalidInput(format!("push token must be 1 to 4096 bytes (got {})", token.len())));
        }
        let registration = format!("{}:{token}", provider.as_str());
        self.shared.store.meta_set(PUSH_META, &registration)?;
        // Registering the token again undoes a removal not yet sent.
        if self.shared.store.meta_get(UNPUSH_META)?.as_deref() == Some(registration.as_str()) {
            self.shared.store.meta_delete(UNPUSH_META)?;
        }
        let frame = ClientFrame::Push { id: None, provider, token: token.to_owned() };
        let _ = self.shared.commands.send(Command::Fire(frame));
        Ok(())
    }

    /// Unregisters this device's push token: call it when the user logs out, so no push about
    /// their conversations reaches the device any more. Forgotten here at once; sent to the
    /// server now if connected, otherwise at the next connection (before a new registration),
    /// so keep the same data directory for the next user or call it while online.
    pub fn unregister_push_token(&self) -> Result<(), SdkError> {
        let Some(current) = self.shared.store.meta_get(PUSH_META)? else { return Ok(()) };
        self.shared.store.meta_set(UNPUSH_META, &current)?;
        self.shared.store.meta_delete(PUSH_META)?;
        let _ = self.shared.commands.send(Command::Unpush);
        Ok(())
    }

    /// The user opened a push notification ([`parse_push_payload`](crate::parse_push_payload)
    /// read it): brings its conversation up to the announced message and returns the
    /// conversation's messages from the cache, by seq, for the app to show at `push.seq`.
    /// Waits up to 15 s for the connection if it is being made (call `connect` first); without
    /// one it fails with `Offline` (transient) unless the cache already holds the message.
    pub async fn open_push(&self, push: &PushPayload) -> Result<Vec<ChatMessage>, SdkError> {
        let c = push.conversation;
        let holds = |messages: &[ChatMessage]| messages.iter().any(|m| m.seq.is_some_and(|seq| seq >= push.seq));
        let messages = self.shared.store.messages(c)?;
        if holds(&messages) {
            return Ok(messages);
        }
        self.wait_connected(OPEN_PUSH_WAIT).await?;
        // One page at a time until the message is here or the server has nothing more.
        loop {
            let held = self.shared.store.last_seq(c)?;
            let answer = self.request(ClientFrame::Sync { id: None, c, after: held, limit: None }).await?;
            let messages = self.shared.store.messages(c)?;
            match answer {
                ServerFrame::Msgs { msgs, more, .. } if !holds(&messages) && more && !msgs.is_empty() => continue,
                ServerFrame::Msgs { .. } => return Ok(messages),
                other => return Err(SdkError::Storage(format!("unexpected answer to sync: {other:?}"))),
            }
        }
    }

    /// Waits until connected, at most `limit`.
    async fn wait_connected(&self, limit: Duration) -> Result<(), SdkError> {
        let deadline = Instant::now() + limit;
        while self.connection_state() != ConnectionState::Connected {
            if Instant::now() >= deadline {
                return Err(SdkError::Offline);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Messages of a conversation in the local cache, by seq.
    pub fn messages(&self, conversation: i64) -> Result<Vec<ChatMessage>, SdkError> {
        Ok(self.shared.store.messages(conversation)?)
    }

    /// Messages written here and not yet acknowledged (or refused), in order.
    pub fn pending_messages(&self) -> Result<Vec<ChatMessage>, SdkError> {
        Ok(self.shared.store.pending_messages()?)
    }

    /// Conversations in the local cache, newest first.
    pub fn conversations(&self) -> Result<Vec<ConversationInfo>, SdkError> {
        Ok(self.shared.store.conversations()?)
    }

    /// The last estimated wait the server gave for the consumer's conversation while it waits
    /// for an agent, read from the local cache: available offline and after an app restart,
    /// before (or without) connecting. Count it down with [`QueueEstimate::remaining_secs`].
    /// `None` when no estimate is kept: never queued, queued while no agent was online, or
    /// the conversation was since assigned or closed.
    pub fn queue_estimate(&self) -> Result<Option<QueueEstimate>, SdkError> {
        let Some(estimate) = self.shared.store.queue_estimate()? else { return Ok(None) };
        let closed = self
            .shared
            .store
            .conversations()?
            .iter()
            .any(|c| c.id == estimate.conversation && c.status == ConversationStatus::Closed);
        Ok(if closed { None } else { Some(estimate) })
    }

    /// Events from now on, as an async stream.
    pub fn events(&self) -> EventStream {
        EventStream::new(self.shared.events.subscribe())
    }

    /// Events through a callback (replaces a previous listener).
    pub fn set_listener(&self, listener: Arc<dyn EventListener>) {
        *self.shared.listener.lock().unwrap_or_else(|p| p.into_inner()) = Some(listener);
    }

    /// The current state of the link.
    pub fn connection_state(&self) -> ConnectionState {
        *self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

const DEVICE_SECRET_META: &str = "device_secret";
const PUSH_META: &str = "push_token";
/// A push token unregistered here and not yet at the server (`provider:token`).
const UNPUSH_META: &str = "push_token_removed";
/// How long `open_push` waits for the connection.
const OPEN_PUSH_WAIT: Duration = Duration::from_secs(15);

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// 16 random bytes, base64url: unique without coordination, 22 bytes on the wire.
fn new_client_id() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 16];
    // The system random source failing is not recoverable; fall back to time + counter so a
    // send is never refused for it (uniqueness per device is what matters).
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&now_ms().to_le_bytes());
        bytes[8..].copy_from_slice(&n.to_le_bytes());
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn info_of(summary: &ConversationSummary) -> ConversationInfo {
    ConversationInfo {
        id: summary.c,
        status: summary.status,
        opened_ms: summary.opened,
        closed_ms: summary.closed,
        last_seq: summary.last_seq,
        agent: None,
        csat: summary.csat,
        survey_open: summary.survey,
    }
}

/// Delay before attempt `n` (0-based): exponential, capped, with jitter in [½, 1] of it so
/// a fleet of clients does not reconnect in lockstep after a server restart.
fn backoff_delay(backoff: Backoff, attempt: u32) -> Duration {
    let exponential = backoff.initial.saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX));
    let capped = exponential.min(backoff.max);
    let mut random = [0u8; 2];
    let _ = getrandom::fill(&mut random);
    let fraction = 0.5 + f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX) / 2.0;
    capped.mul_f64(fraction)
}

/// How a session ended.
enum SessionEnd {
    /// `shutdown` was called.
    Shutdown,
    /// Lost or refused; `connected` says whether it got as far as `welcome`.
    Lost { connected: bool, error: Option<SdkError> },
}

async fn run(shared: Arc<Shared>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut attempt = 0u32;
    // Addresses that failed in a row since one last connected: the backoff applies once
    // each of them has been tried.
    let mut failed_in_a_row = 0usize;
    loop {
        if *shutdown.borrow() {
            break;
        }
        shared.set_state(ConnectionState::Connecting);
        match session(&shared, &mut commands, &mut shutdown).await {
            SessionEnd::Shutdown => break,
            SessionEnd::Lost { connected, error } => {
                if connected {
                    attempt = 0;
                    failed_in_a_row = 0;
                } else {
                    failed_in_a_row += 1;
                    let next = (shared.current.load(Ordering::Relaxed) + 1) % shared.servers.len();
                    shared.current.store(next, Ordering::Relaxed);
                }
                if let Some(error) = error {
                    tracing::debug!(%error, "session ended");
                    shared.emit_error(&error);
                }
                if !connected && !failed_in_a_row.is_multiple_of(shared.servers.len()) {
                    // Another address has not been tried in this round: at once.
                    continue;
                }
            }
        }
        let delay = backoff_delay(shared.backoff, attempt);
        attempt = attempt.saturating_add(1);
        let retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        shared.set_state(ConnectionState::WaitingToReconnect { retry_in_ms });
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => break,
                _ = shutdown.changed() => break,
                command = commands.recv() => match command {
                    Some(command) => refuse_offline(command),
                    None => return,
                },
            }
        }
    }
    shared.set_state(ConnectionState::Disconnected);
}

fn refuse_offline(command: Command) {
    if let Command::Request { reply, .. } = command {
        let _ = reply.send(Err(SdkError::Offline));
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Per-connection state.
struct Session<'a> {
    shared: &'a Shared,
    next_id: u64,
    /// Request id of each `send` in flight → its client id.
    sends: HashMap<u64, String>,
    /// Client ids sent on this connection (not sent twice per connection).
    sent: HashSet<String>,
    /// Request id → who waits for the answer.
    requests: HashMap<u64, oneshot::Sender<Result<ServerFrame, SdkError>>>,
    /// Delivery receipts not sent yet: conversation → highest agent seq received. They wait
    /// [`DELIVERED_DELAY`] so that a read receipt sent meanwhile (read implies delivered)
    /// replaces them: one frame instead of two per message.
    undelivered: HashMap<i64, i64>,
    /// When the waiting delivery receipts go out.
    delivered_due: Option<Instant>,
}

/// How long a delivery receipt waits for a read receipt that would make it unnecessary.
const DELIVERED_DELAY: Duration = Duration::from_millis(300);

impl Session<'_> {
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn note_delivered(&mut self, conversation: i64, seq: i64) {
        let held = self.undelivered.entry(conversation).or_insert(seq);
        *held = (*held).max(seq);
        self.delivered_due.get_or_insert_with(|| Instant::now() + DELIVERED_DELAY);
    }

    fn note_read(&mut self, conversation: i64, seq: i64) {
        if self.undelivered.get(&conversation).is_some_and(|held| *held <= seq) {
            self.undelivered.remove(&conversation);
        }
        if self.undelivered.is_empty() {
            self.delivered_due = None;
        }
    }
}

async fn send(socket: &mut Socket, frame: &ClientFrame) -> Result<(), SdkError> {
    let text = serde_json::to_string(frame).map_err(|e| SdkError::InvalidInput(e.to_string()))?;
    socket.send(WsMessage::Text(text.into())).await.map_err(|_| SdkError::Offline)
}

async fn hello_frame(shared: &Shared) -> Result<ClientFrame, SdkError> {
    // An anonymous identity kept here moves to the logged-in consumer, if asked.
    let upgrade = || -> Result<Option<String>, SdkError> {
        Ok(match shared.upgrade_anonymous {
            true => shared.store.meta_get(DEVICE_SECRET_META)?.filter(|secret| !secret.is_empty()),
            false => None,
        })
    };
    let (token, code, anon) = match &shared.auth {
        Auth::Jwt(provider) => {
            let provider = Arc::clone(provider);
            let token = tokio::task::spawn_blocking(move || provider.fetch_token())
                .await
                .map_err(|e| SdkError::Auth(format!("token provider panicked: {e}")))?
                .map_err(SdkError::Auth)?;
            (Some(token), None, upgrade()?)
        }
        Auth::Code(provider) => {
            let provider = Arc::clone(provider);
            let code = tokio::task::spawn_blocking(move || provider.fetch_code())
                .await
                .map_err(|e| SdkError::Auth(format!("code provider panicked: {e}")))?
                .map_err(SdkError::Auth)?;
            let code = Box::new(AuthCode { code: code.code, redirect_uri: code.redirect_uri, verifier: code.verifier });
            (None, Some(code), upgrade()?)
        }
        Auth::Anonymous => (None, None, Some(shared.store.meta_get(DEVICE_SECRET_META)?.unwrap_or_default())),
    };
    let device = (shared.device != DeviceInfo::default()).then(|| shared.device.clone());
    Ok(ClientFrame::Hello(Hello {
        v: PROTOCOL_VERSION,
        brand: Some(shared.brand_id.clone()),
        app: Some(shared.app_id.clone()),
        token,
        anon,
        code,
        session: None,
        device,
        skill: shared.entry_skill,
        lang: shared.language.clone(),
    }))
}

async fn session(
    shared: &Shared,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    shutdown: &mut watch::Receiver<bool>,
) -> SessionEnd {
    let lost = |error: SdkError| SessionEnd::Lost { connected: false, error: Some(error) };
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024).write_buffer_size(0);
    let server = &shared.servers[shared.current.load(Ordering::Relaxed) % shared.servers.len()];
    let connector = server.tls.clone().map(tokio_tungstenite::Connector::Rustls);
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(server.socket_url.as_str(), Some(config), true, connector);
    let mut socket = match tokio::time::timeout(Duration::from_secs(15), connecting).await {
        Ok(Ok((socket, _))) => socket,
        // A refused certificate says so; anything else is "offline" (and retried).
        Ok(Err(error)) => return lost(crate::tls::certificate_error(&error).unwrap_or(SdkError::Offline)),
        Err(_) => return lost(SdkError::Offline),
    };
    let hello = match hello_frame(shared).await {
        Ok(hello) => hello,
        Err(error) => return lost(error),
    };
    if let Err(error) = send(&mut socket, &hello).await {
        return lost(error);
    }
    let welcome = match tokio::time::timeout(Duration::from_secs(15), next_frame(&mut socket)).await {
        Ok(Some(frame)) => frame,
        _ => return lost(SdkError::Offline),
    };
    let (convs, anon, merged, hb) = match welcome {
        ServerFrame::Welcome { convs, anon, merged, hb, .. } => (convs, anon, merged, hb),
        ServerFrame::Err { code, msg, .. } => {
            let error = match code {
                ErrorCode::TokenExpired | ErrorCode::TokenInvalid | ErrorCode::Unauthenticated => {
                    SdkError::Auth(format!("{code}: {msg}"))
                }
                _ => SdkError::Server { code: code.as_str().to_owned(), message: msg },
            };
            return lost(error);
        }
        _ => return lost(SdkError::Server { code: "malformed_frame".into(), message: "expected welcome".into() }),
    };
    if let Some(secret) = anon
        && let Err(error) = shared.store.meta_set(DEVICE_SECRET_META, &secret)
    {
        return lost(error.into());
    }
    // The anonymous identity was upgraded (or was already): its secret is retired.
    if merged.is_some()
        && let Err(error) = shared.store.meta_delete(DEVICE_SECRET_META)
    {
        return lost(error.into());
    }
    shared.set_state(ConnectionState::Connected);
    let mut session = Session {
        shared,
        next_id: 0,
        sends: HashMap::new(),
        sent: HashSet::new(),
        requests: HashMap::new(),
        undelivered: HashMap::new(),
        delivered_due: None,
    };
    let end = serve(&mut session, &mut socket, commands, shutdown, convs, hb).await;
    for (_, reply) in session.requests.drain() {
        let _ = reply.send(Err(SdkError::Offline));
    }
    if matches!(end, SessionEnd::Shutdown) {
        let _ = socket.close(None).await;
    }
    end
}

async fn next_frame(socket: &mut Socket) -> Option<ServerFrame> {
    loop {
        match socket.next().await? {
            Ok(WsMessage::Text(text)) => match serde_json::from_str::<ServerFrame>(&text) {
                Ok(frame) => return Some(frame),
                // A frame type from a newer server: skip it.
                Err(_) => continue,
            },
            Ok(WsMessage::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// Catches up, flushes the outbox, then serves frames and commands until the link ends.
async fn serve(
    session: &mut Session<'_>,
    socket: &mut Socket,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    shutdown: &mut watch::Receiver<bool>,
    convs: Vec<ConversationSummary>,
    hb: u32,
) -> SessionEnd {
    let shared = session.shared;
    let lost = |error: Option<SdkError>| SessionEnd::Lost { connected: true, error };
    // 1. A conversation the cache holds as open that the server no longer names as open was
    // closed while this device was away.
    let still_open: HashSet<i64> =
        convs.iter().filter(|summary| summary.status == ConversationStatus::Open).map(|summary| summary.c).collect();
    match shared.store.open_conversation() {
        Ok(Some(open)) if !still_open.contains(&open.id) => {
            if let Err(error) = shared.store.set_conversation_status(open.id, ConversationStatus::Closed, None) {
                return lost(Some(error.into()));
            }
            if let Err(error) = forget_queue_estimate(&shared.store, open.id) {
                return lost(Some(error));
            }
            shared.emit(Event::Closed { conversation: open.id, by: None });
        }
        Ok(_) => {}
        Err(error) => return lost(Some(error.into())),
    }
    // 2. Catch up on every conversation the server names, from the last seq held here.
    for summary in &convs {
        if let Err(error) = shared.store.upsert_conversation(summary) {
            return lost(Some(error.into()));
        }
        if summary.survey {
            shared.emit(Event::SurveyRequested { conversation: summary.c });
        }
        if let Err(error) = sync_conversation(session, socket, summary.c, summary.last_seq).await {
            return lost(Some(error));
        }
    }
    // 3. The outbox, in order.
    if let Err(error) = flush(session, socket).await {
        return lost(Some(error));
    }
    // A token unregistered offline goes first: a registration of the same device follows.
    if let Err(error) = send_unpush(shared, socket).await {
        return lost(Some(error));
    }
    if let Ok(Some(push)) = shared.store.meta_get(PUSH_META)
        && let Some((provider, token)) = push.split_once(':')
    {
        let provider = if provider == "apns" { PushProvider::Apns } else { PushProvider::Fcm };
        if send(socket, &ClientFrame::Push { id: None, provider, token: token.to_owned() }).await.is_err() {
            return lost(None);
        }
    }
    // 4. Live.
    let heartbeat = Duration::from_secs(u64::from(hb.max(1)));
    let silence_limit = heartbeat * 2 + Duration::from_secs(5);
    let mut ping = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            message = socket.next() => {
                let text = match message {
                    Some(Ok(WsMessage::Text(text))) => text,
                    Some(Ok(WsMessage::Close(frame))) => {
                        let code = frame.map(|f| u16::from(f.code)).unwrap_or(0);
                        let error = if code == CloseCode::TokenExpired.code() {
                            SdkError::Auth("token expired; fetching a fresh one".into())
                        } else if code == CloseCode::GoingAway.code() {
                            SdkError::Offline
                        } else {
                            SdkError::Server { code: format!("close_{code}"), message: "the server closed the connection".into() }
                        };
                        return lost(Some(error));
                    }
                    Some(Ok(_)) => { last_heard = Instant::now(); continue }
                    Some(Err(_)) | None => return lost(Some(SdkError::Offline)),
                };
                last_heard = Instant::now();
                let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) else { continue };
                if let Err(error) = on_frame(session, socket, frame).await {
                    return lost(Some(error));
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { return SessionEnd::Shutdown };
                let result = match command {
                    Command::Flush => flush(session, socket).await,
                    Command::Unpush => send_unpush(shared, socket).await,
                    Command::Fire(frame) => {
                        if let ClientFrame::Rcpt { c, seq, k: ReceiptKind::Read, .. } = frame {
                            session.note_read(c, seq);
                        }
                        send(socket, &frame).await
                    }
                    Command::Request { frame, reply } => {
                        let id = session.id();
                        match send(socket, &with_id(frame, id)).await {
                            Ok(()) => { session.requests.insert(id, reply); Ok(()) }
                            Err(error) => { let _ = reply.send(Err(SdkError::Offline)); Err(error) }
                        }
                    }
                };
                if let Err(error) = result {
                    return lost(Some(error));
                }
            }
            () = sleep_until_due(session.delivered_due) => {
                session.delivered_due = None;
                for (c, seq) in std::mem::take(&mut session.undelivered) {
                    if send(socket, &ClientFrame::Rcpt { id: None, c, seq, k: ReceiptKind::Delivered }).await.is_err() {
                        return lost(Some(SdkError::Offline));
                    }
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > silence_limit {
                    return lost(Some(SdkError::Offline));
                }
                if send(socket, &ClientFrame::Ping { id: None }).await.is_err() {
                    return lost(Some(SdkError::Offline));
                }
            }
            _ = shutdown.changed() => return SessionEnd::Shutdown,
        }
    }
}

/// Sleeps until `due`, or forever when nothing is due.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

fn with_id(frame: ClientFrame, request_id: u64) -> ClientFrame {
    let id = Some(request_id);
    match frame {
        ClientFrame::Close { c, .. } => ClientFrame::Close { id, c },
        ClientFrame::Csat { c, score, comment, .. } => ClientFrame::Csat { id, c, score, comment },
        ClientFrame::History { from, to, status, cursor, limit, .. } => {
            ClientFrame::History { id, from, to, status, cursor, limit }
        }
        ClientFrame::Push { provider, token, .. } => ClientFrame::Push { id, provider, token },
        ClientFrame::Unpush { provider, token, .. } => ClientFrame::Unpush { id, provider, token },
        ClientFrame::Sync { c, after, limit, .. } => ClientFrame::Sync { id, c, after, limit },
        other => other,
    }
}

/// Sends the pending removal of a push token, if any, and forgets it once sent.
async fn send_unpush(shared: &Shared, socket: &mut Socket) -> Result<(), SdkError> {
    let Some(pending) = shared.store.meta_get(UNPUSH_META)? else { return Ok(()) };
    if let Some((provider, token)) = pending.split_once(':') {
        let provider = if provider == "apns" { PushProvider::Apns } else { PushProvider::Fcm };
        send(socket, &ClientFrame::Unpush { id: None, provider, token: token.to_owned() }).await?;
    }
    if shared.store.meta_get(UNPUSH_META)?.as_deref() == Some(pending.as_str()) {
        shared.store.meta_delete(UNPUSH_META)?;
    }
    Ok(())
}

/// Asks for everything in `conversation` after what the cache holds, if the server has more.
async fn sync_conversation(
    session: &mut Session<'_>,
    socket: &mut Socket,
    conversation: i64,
    server_last_seq: i64,
) -> Result<(), SdkError> {
    let held = session.shared.store.last_seq(conversation)?;
    if server_last_seq > held {
        send(socket, &ClientFrame::Sync { id: None, c: conversation, after: held, limit: None }).await?;
    }
    Ok(())
}

/// Sends every outbox entry not yet sent on this connection, in order.
async fn flush(session: &mut Session<'_>, socket: &mut Socket) -> Result<(), SdkError> {
    for entry in session.shared.store.pending()? {
        if session.sent.contains(&entry.client_id) {
            continue;
        }
        let id = session.id();
        let frame =
            ClientFrame::Send { id: Some(id), cid: entry.client_id.clone(), text: entry.text, c: None, consumer: None };
        send(socket, &frame).await?;
        session.sends.insert(id, entry.client_id.clone());
        session.sent.insert(entry.client_id);
    }
    Ok(())
}

/// Error codes after which a message will never be accepted: it leaves the outbox as failed.
/// Refusals that sending again cannot fix. A code this version does not know (a newer
/// server's) counts as one: the message is marked failed with the server's text rather than
/// resent on every connection forever; the user can send it again.
fn is_permanent_refusal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::TextTooLong
            | ErrorCode::TextEmpty
            | ErrorCode::InvalidClientId
            | ErrorCode::MalformedFrame
            | ErrorCode::Unknown
    )
}

async fn on_frame(session: &mut Session<'_>, socket: &mut Socket, frame: ServerFrame) -> Result<(), SdkError> {
    let shared = session.shared;
    let store = &shared.store;
    match frame {
        ServerFrame::Ack { id, c, seq, ts } => {
            let Some(client_id) = id.and_then(|id| session.sends.remove(&id)) else { return Ok(()) };
            if store.open_conversation()?.is_none_or(|open| open.id != c) {
                // First message of a new conversation: the cache learns of it here.
                store.upsert_conversation(&ConversationSummary {
                    c,
                    status: ConversationStatus::Open,
                    opened: ts,
                    closed: None,
                    last_seq: seq,
                    csat: None,
                    survey: false,
                    consumer: None,
                    skill: None,
                })?;
            }
            store.mark_sent(&client_id, c, seq, ts)?;
            shared.emit(Event::MessageStateChanged {
                client_id,
                conversation: Some(c),
                seq: Some(seq),
                state: MessageState::Sent,
                error: None,
            });
        }
        ServerFrame::Err { id: Some(id), code, msg } => {
            if let Some(client_id) = session.sends.remove(&id) {
                if is_permanent_refusal(code) {
                    store.mark_failed(&client_id, &msg)?;
                    shared.emit(Event::MessageStateChanged {
                        client_id,
                        conversation: None,
                        seq: None,
                        state: MessageState::Failed,
                        error: Some(msg),
                    });
                } else {
                    // Stays in the outbox; sent again on the next connection.
                    session.sent.remove(&client_id);
                    shared.emit_error(&SdkError::Server { code: code.as_str().to_owned(), message: msg });
                }
            } else if let Some(reply) = session.requests.remove(&id) {
                let _ = reply.send(Err(SdkError::Server { code: code.as_str().to_owned(), message: msg }));
            }
        }
        ServerFrame::Err { id: None, code, msg } => {
            shared.emit_error(&SdkError::Server { code: code.as_str().to_owned(), message: msg });
        }
        ServerFrame::Ok { id } => {
            if let Some(reply) = session.requests.remove(&id) {
                let _ = reply.send(Ok(ServerFrame::Ok { id }));
            }
        }
        ServerFrame::History { id: Some(id), convs, next } => {
            if let Some(reply) = session.requests.remove(&id) {
                let _ = reply.send(Ok(ServerFrame::History { id: Some(id), convs, next }));
            }
        }
        ServerFrame::Msg(message) => {
            let (c, seq, from) = (message.c, message.seq, message.from);
            let held = store.last_seq(c)?;
            receive_messages(session, std::slice::from_ref(&message))?;
            if seq > held + 1 {
                // A gap: something between what we hold and this message never reached us
                // live. Fetch it; what we already have is skipped by the cache.
                send(socket, &ClientFrame::Sync { id: None, c, after: held, limit: None }).await?;
            }
            if from != Side::Consumer {
                session.note_delivered(c, seq);
            }
        }
        ServerFrame::Msgs { id, c, msgs, more } => {
            let newest_other = msgs.iter().filter(|m| m.from != Side::Consumer).map(|m| m.seq).max();
            let last = msgs.last().map(|m| m.seq);
            receive_messages(session, &msgs)?;
            if let Some(seq) = newest_other {
                session.note_delivered(c, seq);
            }
            // The answer to a request (`open_push`): it pages on itself.
            if let Some(reply) = id.and_then(|id| session.requests.remove(&id)) {
                let _ = reply.send(Ok(ServerFrame::Msgs { id, c, msgs, more }));
            } else if more && let Some(after) = last {
                send(socket, &ClientFrame::Sync { id: None, c, after, limit: None }).await?;
            }
        }
        ServerFrame::Rcpt { c, by, k, seq } => {
            store.set_receipt(c, by, k, seq)?;
            shared.emit(Event::Receipt { conversation: c, by, read: k == ReceiptKind::Read, seq });
        }
        ServerFrame::Typing { c, on, name, .. } => shared.emit(Event::Typing { conversation: c, on, name }),
        ServerFrame::Conv { c, ev, agent, eta, by, conv, .. } => match ev {
            ConversationEventKind::Opened => {
                if let Some(summary) = conv {
                    store.upsert_conversation(&summary)?;
                }
            }
            ConversationEventKind::Queued => {
                // Kept so that an app restarted offline can still show the wait; an update
                // without an estimate (no agent online) replaces the old one with nothing.
                let estimate = eta.map(|eta_secs| QueueEstimate { conversation: c, eta_secs, received_ms: now_ms() });
                store.set_queue_estimate(estimate.as_ref())?;
                shared.emit(Event::Queued { conversation: c, eta_secs: eta });
            }
            ConversationEventKind::Assigned => {
                store.set_agent(c, agent.as_deref())?;
                forget_queue_estimate(store, c)?;
                shared.emit(Event::Assigned { conversation: c, agent });
            }
            ConversationEventKind::Closed => {
                store.set_conversation_status(c, ConversationStatus::Closed, Some(now_ms()))?;
                forget_queue_estimate(store, c)?;
                shared.emit(Event::Closed { conversation: c, by });
            }
            // Sent to agents only (a conversation left them, or offers); nothing for a consumer.
            ConversationEventKind::Transferred | ConversationEventKind::Offered | ConversationEventKind::Withdrawn => {}
        },
        ServerFrame::Survey { c } => {
            store.set_survey_open(c, true)?;
            shared.emit(Event::SurveyRequested { conversation: c });
        }
        ServerFrame::Resync => {
            for conversation in store.conversations()?.into_iter().filter(|c| c.status == ConversationStatus::Open) {
                let held = store.last_seq(conversation.id)?;
                send(socket, &ClientFrame::Sync { id: None, c: conversation.id, after: held, limit: None }).await?;
            }
        }
        // `floor` is for managers' dashboards; consumers never get it.
        ServerFrame::Welcome { .. }
        | ServerFrame::Pong { .. }
        | ServerFrame::History { id: None, .. }
        | ServerFrame::Floor => {}
    }
    Ok(())
}

/// Drops the kept queue estimate if it is `conversation`'s.
fn forget_queue_estimate(store: &LocalStore, conversation: i64) -> Result<(), SdkError> {
    if store.queue_estimate()?.is_some_and(|estimate| estimate.conversation == conversation) {
        store.set_queue_estimate(None)?;
    }
    Ok(())
}

/// Stores messages from the server and announces the new ones.
fn receive_messages(session: &mut Session<'_>, messages: &[switchboard_protocol::Message]) -> Result<(), SdkError> {
    let shared = session.shared;
    let mut fresh = Vec::new();
    for message in messages {
        if shared.store.upsert_messages(std::slice::from_ref(message))? > 0 {
            fresh.push(message);
        }
    }
    // An agent writing means an agent has the conversation (the `assigned` event may have
    // been sent while this device was away): the queue estimate no longer applies.
    if let Some(agent_message) = fresh.iter().find(|m| m.from == Side::Agent) {
        forget_queue_estimate(&shared.store, agent_message.c)?;
    }
    for message in fresh {
        shared.emit(Event::MessageReceived(ChatMessage {
            conversation: Some(message.c),
            seq: Some(message.seq),
            client_id: message.cid.clone(),
            from: message.from,
            author: message.name.clone(),
            text: message.text.clone(),
            timestamp_ms: message.ts,
            state: MessageState::Sent,
            error: None,
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_urls_are_derived_from_the_server_url() {
        assert_eq!(socket_url("http://127.0.0.1:8080").unwrap(), "ws://127.0.0.1:8080/v1/consumer");
        assert_eq!(socket_url("ws://chat.example:9/").unwrap(), "ws://chat.example:9/v1/consumer");
        assert_eq!(socket_url("https://chat.example.com").unwrap(), "wss://chat.example.com/v1/consumer");
        assert_eq!(socket_url("wss://chat.example.com:8443/").unwrap(), "wss://chat.example.com:8443/v1/consumer");
        assert!(socket_url("ftp://x").unwrap_err().to_string().contains("https://"));
        assert!(socket_url("https://").is_err());
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_a_cap() {
        let backoff = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(2) };
        for attempt in 0..20 {
            let delay = backoff_delay(backoff, attempt);
            let full = Duration::from_millis(100).saturating_mul(1 << attempt.min(16)).min(Duration::from_secs(2));
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?} outside [{:?}, {full:?}]",
                full / 2
            );
        }
    }

    #[test]
    fn client_ids_are_short_and_unique() {
        let ids: HashSet<String> = (0..1000).map(|_| new_client_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids.iter().all(|id| id.len() == 22));
    }
}
