//! One engine per brand across a fleet of nodes (issue 14).
//!
//! A brand's engine runs on the node holding the brand's lease (`engine:<brand>`, a
//! PostgreSQL advisory lock on the node's lease connection: PostgreSQL referees, and a dead
//! node's connection, and with it its leases, ends with the node). Every other node forwards
//! the brand's inputs to it over NATS request/reply on `sbe.<brand>`; each node has one
//! forwarder task per brand, which sends its inputs in the order they were made, so one
//! node's inputs reach the engine in order.
//!
//! A request nobody answers ("no responders": no node leads the brand, say its leader just
//! died) is held, and the forwarder tries to take the lease itself: if it gets it, this node
//! starts the engine (which rebuilds the desk from the store) and hands it the held inputs;
//! if not, it sends them again a moment later. A request that got no answer within
//! [`ANSWER_TIMEOUT`] is given up: its caller gets an error (`unavailable`), and a lost
//! conversation opening is followed by a rebuild of the desk, which finds it in the store.
//!
//! Which agents are connected is not in the store: each node tells the engine how many
//! sockets each agent has on it (`Presence`, at once) and, every [`BEAT`], all of them
//! (`Beat`). An engine forgets the agents of a node it has not heard of for 5 s (their grace
//! periods start), and a new leader learns them from the first beats.
//!
//! Every [`BEAT`] the keeper task also checks the node's lease connection: a node that lost
//! it has lost its leases and stops its engines at once; and every [`CLAIM_EVERY`] beats it
//! takes the leases of brands with open conversations that no node leads, so that their
//! timers (grace periods, auto-close, business hours) run even when no input arrives.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use switchboard_bus::async_nats::{self, Client, StatusCode};
use switchboard_core::desk::{OpenConversation, Priority, Waiting};
use switchboard_core::ids::{AgentId, SkillId};
use switchboard_core::policy::Staff;
use switchboard_protocol::{AgentState, ConversationId, ErrorCode, Millis, Side};
use switchboard_store::{Brand, Conversation, Leases, Store, StoreError, User};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Command, EngineHandle, FloorSnapshot, Inner, TransferTarget, lock};
use crate::error::{ApiError, ApiResult};

/// How often a node tells the engines it does not run which agents are connected to it,
/// and checks its leases.
pub const BEAT: Duration = Duration::from_secs(1);

/// Every this many beats, a node takes the leases of busy brands nobody leads.
const CLAIM_EVERY: u32 = 5;

/// How long a request waits for the leading node's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a forwarder waits before trying again when no node leads the brand.
const LEADERLESS_RETRY: Duration = Duration::from_millis(200);

/// A node's part in the fleet's engines: its NATS connection and its leases.
#[derive(Debug)]
pub struct Link {
    client: Client,
    node: u64,
    leases: Leases,
    store: Store,
}

impl Link {
    /// The link of the node `node` (a random id, unique in the fleet).
    pub async fn new(client: Client, node: u64, store: &Store) -> Result<Link, StoreError> {
        Ok(Link { client, node, leases: store.lease_holder().await?, store: store.clone() })
    }

    /// This node's id.
    pub fn node(&self) -> u64 {
        self.node
    }

    /// Whether the node's NATS connection is up.
    pub(super) fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

fn lease(brand_id: &str) -> String {
    format!("engine:{brand_id}")
}

fn subject(brand_id: &str) -> String {
    format!("sbe.{}", switchboard_bus::nats::brand_token(brand_id))
}

/// An input for the engine of another node, as it travels.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Request {
    Presence { node: u64, agent: AgentId, sockets: u32 },
    Beat { node: u64, agents: Vec<(AgentId, u32)> },
    AgentWrote { conversation: ConversationId, at: Millis },
    Opened { open: OpenConversation },
    Close { conversation: ConversationId, by: Side, origin: u64 },
    Choose { agent: AgentId, state: AgentState },
    Answer { agent: AgentId, conversation: ConversationId, accept: bool },
    SkillsChanged,
    SetPriority { conversation: ConversationId, priority: Priority },
    Queue,
    AgentChanged { user: Box<User> },
    SettingsChanged { brand: Box<Brand> },
    TemplatesChanged,
    HoursChanged,
    Transfer { actor: Staff, conversation: ConversationId, target: TransferTarget },
    Rebuild,
    Floor { skills: Vec<SkillId> },
}

/// An error as it travels.
#[derive(Debug, Serialize, Deserialize)]
struct WireError {
    code: ErrorCode,
    message: String,
    retry_after: Option<u64>,
}

impl From<ApiError> for WireError {
    fn from(error: ApiError) -> Self {
        WireError { code: error.code, message: error.message, retry_after: error.retry_after }
    }
}

impl From<WireError> for ApiError {
    fn from(error: WireError) -> Self {
        ApiError { code: error.code, message: error.message, retry_after: error.retry_after }
    }
}

/// The leading node's answer to a request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
enum Reply {
    /// Taken (inputs nobody waits for).
    Done,
    /// The engine went away before answering (its lease was lost, or its node stops).
    Gone,
    Opened(Option<(AgentId, Millis)>),
    Closed(Result<Option<Box<Conversation>>, String>),
    Stored(Result<(), String>),
    Api(Result<(), WireError>),
    Queue(Vec<Waiting>),
    Transferred(Result<Box<Conversation>, WireError>),
    Floor(Box<FloorSnapshot>),
}

/// What travels back: the answer, and whether the brand auto-closes (so nodes report
/// agents' messages only while it does).
#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    auto_closing: bool,
    reply: Reply,
}

/// Where the answer to a forwarded command goes: the caller's channel.
enum Slot {
    None,
    Opened(oneshot::Sender<Option<(AgentId, Millis)>>),
    Closed(oneshot::Sender<Result<Option<Conversation>, StoreError>>),
    Stored(oneshot::Sender<Result<(), StoreError>>),
    Api(oneshot::Sender<ApiResult<()>>),
    Queue(oneshot::Sender<Vec<Waiting>>),
    Transferred(oneshot::Sender<ApiResult<Conversation>>),
    Rebuilt(oneshot::Sender<()>),
    Floor(oneshot::Sender<FloorSnapshot>),
}

impl Slot {
    /// Hands `reply` to the caller; an answer of another kind (or `Gone`) drops the
    /// caller's channel, which the caller reports as unavailable.
    fn deliver(self, reply: Reply) {
        let remote = |message: String| StoreError::Remote(message);
        match (self, reply) {
            (Slot::Opened(to), Reply::Opened(agent)) => drop(to.send(agent)),
            (Slot::Closed(to), Reply::Closed(closed)) => {
                drop(to.send(closed.map(|closed| closed.map(|conversation| *conversation)).map_err(remote)))
            }
            (Slot::Stored(to), Reply::Stored(stored)) => drop(to.send(stored.map_err(remote))),
            (Slot::Api(to), Reply::Api(done)) => drop(to.send(done.map_err(ApiError::from))),
            (Slot::Queue(to), Reply::Queue(waiting)) => drop(to.send(waiting)),
            (Slot::Transferred(to), Reply::Transferred(moved)) => {
                drop(to.send(moved.map(|conversation| *conversation).map_err(ApiError::from)))
            }
            (Slot::Rebuilt(to), Reply::Done) => drop(to.send(())),
            (Slot::Floor(to), Reply::Floor(floor)) => drop(to.send(*floor)),
            _ => {}
        }
    }
}

impl Command {
    /// The command as it travels, and where its answer goes.
    fn into_wire(self) -> (Request, Slot) {
        match self {
            Command::Presence { node, agent, sockets } => (Request::Presence { node, agent, sockets }, Slot::None),
            Command::Beat { node, agents } => (Request::Beat { node, agents }, Slot::None),
            Command::AgentWrote { conversation, at } => (Request::AgentWrote { conversation, at }, Slot::None),
            Command::Opened { open, reply } => (Request::Opened { open }, Slot::Opened(reply)),
            Command::Close { conversation, by, origin, reply } => {
                (Request::Close { conversation, by, origin }, Slot::Closed(reply))
            }
            Command::Choose { agent, state, reply } => (Request::Choose { agent, state }, Slot::Stored(reply)),
            Command::Answer { agent, conversation, accept, reply } => {
                (Request::Answer { agent, conversation, accept }, Slot::Api(reply))
            }
            Command::SkillsChanged => (Request::SkillsChanged, Slot::None),
            Command::SetPriority { conversation, priority, reply } => {
                (Request::SetPriority { conversation, priority }, Slot::Api(reply))
            }
            Command::Queue(reply) => (Request::Queue, Slot::Queue(reply)),
            Command::AgentChanged(user) => (Request::AgentChanged { user }, Slot::None),
            Command::SettingsChanged(brand) => (Request::SettingsChanged { brand }, Slot::None),
            Command::TemplatesChanged => (Request::TemplatesChanged, Slot::None),
            Command::HoursChanged => (Request::HoursChanged, Slot::None),
            Command::Transfer { actor, conversation, target, reply } => {
                (Request::Transfer { actor, conversation, target }, Slot::Transferred(reply))
            }
            Command::Rebuild(reply) => (Request::Rebuild, Slot::Rebuilt(reply)),
            Command::Floor { skills, reply } => (Request::Floor { skills }, Slot::Floor(reply)),
        }
    }
}

/// The leader's side of a request: the command for its engine, and the answer to wait for.
enum Pending {
    Done,
    Opened(oneshot::Receiver<Option<(AgentId, Millis)>>),
    Closed(oneshot::Receiver<Result<Option<Conversation>, StoreError>>),
    Stored(oneshot::Receiver<Result<(), StoreError>>),
    Api(oneshot::Receiver<ApiResult<()>>),
    Queue(oneshot::Receiver<Vec<Waiting>>),
    Transferred(oneshot::Receiver<ApiResult<Conversation>>),
    Rebuilt(oneshot::Receiver<()>),
    Floor(oneshot::Receiver<FloorSnapshot>),
}

impl Request {
    fn into_command(self) -> (Command, Pending) {
        fn with<T, R>(make: impl FnOnce(oneshot::Sender<T>) -> Command, pending: R) -> (Command, Pending)
        where
            R: FnOnce(oneshot::Receiver<T>) -> Pending,
        {
            let (reply, answer) = oneshot::channel();
            (make(reply), pending(answer))
        }
        match self {
            Request::Presence { node, agent, sockets } => (Command::Presence { node, agent, sockets }, Pending::Done),
            Request::Beat { node, agents } => (Command::Beat { node, agents }, Pending::Done),
            Request::AgentWrote { conversation, at } => (Command::AgentWrote { conversation, at }, Pending::Done),
            Request::Opened { open } => with(|reply| Command::Opened { open, reply }, Pending::Opened),
            Request::Close { conversation, by, origin } => {
                with(|reply| Command::Close { conversation, by, origin, reply }, Pending::Closed)
            }
            Request::Choose { agent, state } => with(|reply| Command::Choose { agent, state, reply }, Pending::Stored),
            Request::Answer { agent, conversation, accept } => {
                with(|reply| Command::Answer { agent, conversation, accept, reply }, Pending::Api)
            }
            Request::SkillsChanged => (Command::SkillsChanged, Pending::Done),
            Request::SetPriority { conversation, priority } => {
                with(|reply| Command::SetPriority { conversation, priority, reply }, Pending::Api)
            }
            Request::Queue => with(Command::Queue, Pending::Queue),
            Request::AgentChanged { user } => (Command::AgentChanged(user), Pending::Done),
            Request::SettingsChanged { brand } => (Command::SettingsChanged(brand), Pending::Done),
            Request::TemplatesChanged => (Command::TemplatesChanged, Pending::Done),
            Request::HoursChanged => (Command::HoursChanged, Pending::Done),
            Request::Transfer { actor, conversation, target } => {
                with(|reply| Command::Transfer { actor, conversation, target, reply }, Pending::Transferred)
            }
            Request::Rebuild => with(Command::Rebuild, Pending::Rebuilt),
            Request::Floor { skills } => with(|reply| Command::Floor { skills, reply }, Pending::Floor),
        }
    }
}

impl Pending {
    /// The engine's answer ([`Reply::Gone`] if it went away first).
    async fn reply(self) -> Reply {
        let answered = match self {
            Pending::Done => return Reply::Done,
            Pending::Opened(answer) => answer.await.map(Reply::Opened),
            Pending::Closed(answer) => {
                answer.await.map(|closed| Reply::Closed(closed.map(|c| c.map(Box::new)).map_err(|e| e.to_string())))
            }
            Pending::Stored(answer) => answer.await.map(|stored| Reply::Stored(stored.map_err(|e| e.to_string()))),
            Pending::Api(answer) => answer.await.map(|done| Reply::Api(done.map_err(WireError::from))),
            Pending::Queue(answer) => answer.await.map(Reply::Queue),
            Pending::Transferred(answer) => {
                answer.await.map(|moved| Reply::Transferred(moved.map(Box::new).map_err(WireError::from)))
            }
            Pending::Rebuilt(answer) => answer.await.map(|()| Reply::Done),
            Pending::Floor(answer) => answer.await.map(|floor| Reply::Floor(Box::new(floor))),
        };
        answered.unwrap_or(Reply::Gone)
    }

    /// Hands the engine's answer to `slot` (a held request given to the engine here).
    async fn settle(self, slot: Slot) {
        let reply = self.reply().await;
        slot.deliver(reply);
    }
}

/// The leading node's service for a brand: takes the other nodes' requests in the order
/// they arrive, hands them to the engine, and answers each once the engine has.
pub(super) fn serve(
    link: &Link,
    brand_id: &str,
    engine: mpsc::UnboundedSender<Command>,
    auto_closing: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let client = link.client.clone();
    let subject = subject(brand_id);
    let brand_id = brand_id.to_owned();
    tokio::spawn(async move {
        let mut requests = match client.subscribe(subject).await {
            Ok(requests) => requests,
            Err(error) => {
                tracing::error!(%error, %brand_id, "cannot take the brand's requests from NATS");
                return;
            }
        };
        while let Some(message) = requests.next().await {
            let Some(reply_to) = message.reply else { continue };
            let request: Request = match serde_json::from_slice(&message.payload) {
                Ok(request) => request,
                Err(error) => {
                    tracing::warn!(%error, %brand_id, "a request for the engine that does not decode was dropped");
                    continue;
                }
            };
            let (command, pending) = request.into_command();
            if engine.send(command).is_err() {
                break;
            }
            let client = client.clone();
            let auto_closing = auto_closing.clone();
            tokio::spawn(async move {
                let reply = pending.reply().await;
                let answer = Answer { auto_closing: auto_closing.load(Ordering::Relaxed), reply };
                match serde_json::to_vec(&answer) {
                    Ok(bytes) => {
                        let _ = client.publish(reply_to, bytes.into()).await;
                    }
                    Err(error) => tracing::error!(%error, "an engine's answer does not serialize"),
                }
            });
        }
    })
}

/// Takes the brand's lease if no node holds it, and starts its engine here; `true` when
/// this node leads the brand.
pub(super) async fn take_lead(inner: &Arc<Inner>, link: &Link, brand_id: &str) -> bool {
    if inner.local_sender(brand_id).is_some() {
        return true;
    }
    if *inner.shutdown.borrow() {
        // A node that is leaving gives leases back; it takes none.
        return false;
    }
    match link.leases.try_take(&lease(brand_id)).await {
        Ok(true) => {
            // The engine keeps the flag the brand's forwarder reads up to date.
            let auto_closing = inner.handle(brand_id).auto_closing;
            inner.start_local(brand_id, auto_closing);
            true
        }
        Ok(false) => false,
        Err(error) => {
            tracing::warn!(%error, brand_id, "could not ask for the brand's lease");
            false
        }
    }
}

/// Takes or keeps the lease `name` (not a brand's engine's); `false` on any error.
pub(super) async fn hold(link: &Link, name: &str) -> bool {
    link.leases.try_take(name).await.unwrap_or(false)
}

/// Checks that this node still holds its leases (its lease connection answers); if not,
/// every engine of the node stops at once and the error says so.
pub(super) async fn fence(inner: &Arc<Inner>) -> Result<(), StoreError> {
    let Some(link) = inner.fleet.as_ref() else { return Ok(()) };
    match link.leases.check().await {
        Ok(()) => Ok(()),
        Err(lost) => {
            tracing::error!(%lost, "this node lost its lease connection: its engines stop before writing");
            stop_engines(inner);
            Err(StoreError::Remote(format!("this node no longer holds the brand's lease: {}", lost.reason)))
        }
    }
}

/// Stops every engine of the node (it lost its leases).
fn stop_engines(inner: &Inner) {
    let stopped: HashMap<String, super::LocalEngine> = std::mem::take(&mut *lock(&inner.local));
    drop(stopped);
}

/// Gives the brand's lease back (its engine here has stopped).
pub(super) async fn give_back(link: &Link, brand_id: &str) {
    if let Err(error) = link.leases.give_back(&lease(brand_id)).await {
        tracing::warn!(%error, brand_id, "could not give the brand's lease back; it ends with this node's lease connection");
    }
}

/// A forwarded request waiting for a leader.
struct Held {
    request: Request,
    slot: Slot,
    since: tokio::time::Instant,
}

/// Starts the brand's forwarder on a fleet node: its handle is the brand's input channel.
pub(super) fn forwarder(inner: Weak<Inner>, link: &Link, brand_id: &str) -> EngineHandle {
    let (sender, commands) = mpsc::unbounded_channel();
    // Until the leader says otherwise, agents' messages are reported.
    let auto_closing = Arc::new(AtomicBool::new(true));
    tokio::spawn(forward(inner, link.client.clone(), brand_id.to_owned(), commands, auto_closing.clone()));
    EngineHandle { sender, auto_closing }
}

async fn forward(
    inner: Weak<Inner>,
    client: Client,
    brand_id: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    auto_closing: Arc<AtomicBool>,
) {
    let subject = subject(&brand_id);
    let (returned, mut returns) = mpsc::unbounded_channel::<(u64, Held)>();
    // Requests no leader took, in the order they were made.
    let mut held: BTreeMap<u64, Held> = BTreeMap::new();
    let given_up = |dropped: usize| {
        if dropped > 0 {
            metrics::counter!(crate::metrics::ENGINE_REQUESTS_FAILED).increment(dropped as u64);
        }
    };
    let mut next_id = 0u64;
    loop {
        tokio::select! {
            biased;
            Some((id, request)) = returns.recv() => {
                held.insert(id, request);
            }
            () = tokio::time::sleep(LEADERLESS_RETRY), if !held.is_empty() => {
                let Some(inner) = inner.upgrade() else { break };
                let Some(link) = inner.fleet.as_ref() else { break };
                let before = held.len();
                held.retain(|_, waiting| waiting.since.elapsed() < ANSWER_TIMEOUT);
                given_up(before - held.len());
                if take_lead(&inner, link, &brand_id).await {
                    hand_over(&inner, &brand_id, std::mem::take(&mut held));
                } else {
                    for (id, waiting) in std::mem::take(&mut held) {
                        send(&client, &subject, id, waiting, &returned, &auto_closing, &inner, &brand_id).await;
                    }
                }
            }
            command = commands.recv(), if held.is_empty() => {
                let Some(command) = command else { break };
                let Some(inner) = inner.upgrade() else { break };
                if let Some(engine) = inner.local_sender(&brand_id) {
                    let _ = engine.send(command);
                    continue;
                }
                next_id += 1;
                let (request, slot) = command.into_wire();
                let waiting = Held { request, slot, since: tokio::time::Instant::now() };
                send(&client, &subject, next_id, waiting, &returned, &auto_closing, &inner, &brand_id).await;
            }
        }
    }
}

/// This node took the lead: the held requests go to its engine, in order.
fn hand_over(inner: &Arc<Inner>, brand_id: &str, held: BTreeMap<u64, Held>) {
    let Some(engine) = inner.local_sender(brand_id) else { return };
    for (_, Held { request, slot, .. }) in held {
        let (command, pending) = request.into_command();
        if engine.send(command).is_ok() {
            tokio::spawn(pending.settle(slot));
        }
    }
}

/// Sends one request to the leading node and waits for its answer in a task of its own:
/// no responders (no leader) hands it back to the forwarder to hold.
#[allow(clippy::too_many_arguments)]
async fn send(
    client: &Client,
    subject: &str,
    id: u64,
    waiting: Held,
    returned: &mpsc::UnboundedSender<(u64, Held)>,
    auto_closing: &Arc<AtomicBool>,
    inner: &Arc<Inner>,
    brand_id: &str,
) {
    if client.connection_state() != async_nats::connection::State::Connected {
        // NATS is away: hold it until it is back (or the wait is over).
        let _ = returned.send((id, waiting));
        return;
    }
    let payload = match serde_json::to_vec(&waiting.request) {
        Ok(payload) => payload,
        Err(error) => {
            tracing::error!(%error, "a request for the engine does not serialize");
            return;
        }
    };
    let inbox = client.new_inbox();
    let subscribed = client.subscribe(inbox.clone()).await;
    let mut answers = match subscribed {
        Ok(answers) => answers,
        Err(_) => {
            let _ = returned.send((id, waiting));
            return;
        }
    };
    if client.publish_with_reply(subject.to_owned(), inbox, payload.into()).await.is_err() {
        let _ = returned.send((id, waiting));
        return;
    }
    let returned = returned.clone();
    let auto_closing = auto_closing.clone();
    let inner = Arc::downgrade(inner);
    let brand_id = brand_id.to_owned();
    tokio::spawn(async move {
        let left = ANSWER_TIMEOUT.saturating_sub(waiting.since.elapsed());
        match tokio::time::timeout(left, answers.next()).await {
            Ok(Some(message)) if message.status == Some(StatusCode::NO_RESPONDERS) => {
                let _ = returned.send((id, waiting));
            }
            Ok(Some(message)) => match serde_json::from_slice::<Answer>(&message.payload) {
                Ok(answer) => {
                    auto_closing.store(answer.auto_closing, Ordering::Relaxed);
                    waiting.slot.deliver(answer.reply);
                }
                Err(error) => tracing::warn!(%error, %brand_id, "an engine's answer does not decode"),
            },
            _ => {
                tracing::warn!(%brand_id, "the brand's engine did not answer in time");
                metrics::counter!(crate::metrics::ENGINE_REQUESTS_FAILED).increment(1);
                // An opening the engine may not have heard of: a rebuild finds it in the store.
                if matches!(waiting.request, Request::Opened { .. })
                    && let Some(inner) = inner.upgrade()
                {
                    let (reply, _) = oneshot::channel();
                    inner.send(&brand_id, Command::Rebuild(reply));
                }
            }
        }
    });
}

/// The fleet node's keeper: every [`BEAT`], tells the engines elsewhere which agents are
/// connected here and checks the node's leases; every [`CLAIM_EVERY`] beats, leads the busy
/// brands nobody leads. Ends with the engines.
pub(super) async fn keep(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(BEAT);
    let mut beats = 0u32;
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if *inner.shutdown.borrow() {
            return;
        }
        let Some(link) = inner.fleet.as_ref() else { return };
        let node = link.node;
        let presence: Vec<(String, Vec<(AgentId, u32)>)> = lock(&inner.presence)
            .iter()
            .map(|(brand, agents)| (brand.clone(), agents.iter().map(|(agent, n)| (*agent, *n)).collect()))
            .collect();
        for (brand_id, agents) in presence {
            inner.send(&brand_id, Command::Beat { node, agents });
        }
        lock(&inner.presence).retain(|_, agents| !agents.is_empty());
        if let Err(lost) = link.leases.check().await {
            tracing::error!(%lost, "this node lost its connection to the database and with it its leases: its engines stop");
            stop_engines(inner.as_ref());
            if let Err(error) = link.leases.reconnect(&link.store).await {
                tracing::warn!(%error, "no new lease connection yet");
            }
            continue;
        }
        beats += 1;
        if beats.is_multiple_of(CLAIM_EVERY)
            && let Err(error) = inner.start_busy_brands().await
        {
            tracing::warn!(%error, "could not list the brands with open conversations");
        }
    }
}
