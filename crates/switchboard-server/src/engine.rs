//! One engine task per brand: the only writer of the brand's routing and lifecycle state.
//!
//! The engine owns the brand's [`Desk`] (`switchboard-core`). It takes inputs one at a time
//! from its channel (a conversation opened or closed, an agent's socket came or went, an
//! agent chose a state, a transfer), asks the desk what to do, and carries the effects out in
//! order: each change is persisted before the events that follow it are published and before
//! the next input is taken, so nobody is told of a decision the store does not hold. It owns
//! the desk's timers (grace periods, estimate refreshes) and sleeps until the next is due.
//!
//! An engine starts when its brand is first needed (the first socket, message or REST call
//! that concerns it); at boot, the brands with open conversations start theirs, so that
//! grace periods run from the boot. It rebuilds its desk from the store when it starts, and
//! again if a write fails (carrying over which agents are connected), so the store and the
//! desk never disagree for longer than one failed write.
//!
//! The message hot path does not pass through here: appends are group-committed by the
//! store's writer and fanned out by the socket that sent them. Only a message that opens a
//! conversation asks the engine (to route it) before its ack.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_core::automation::{self, Configured, Template, Trigger, Values};
use switchboard_core::desk::{
    AgentFloor, AgentSettings, AutoClose, Change, Desk, DeskSettings, Effect, Hours, Input, OffHours, OpenConversation,
    Priority, Refusal, SkillFloor, SkillRules, TransferTo, Waiting,
};
use switchboard_core::ids::{ANY_SKILL, AgentId, SkillId};
use switchboard_core::limits::Channel;
use switchboard_core::policy::{CloseBy, Staff, survey_on_close};
use switchboard_core::routing::{AgentProfile, TransferRefusal};
use switchboard_protocol::{AgentState, ConversationId, ConversationStatus, ErrorCode, Millis, Side};
use switchboard_store::{
    Append, AutoCloseOutcome, Brand, Conversation, ConversationPriority, SkillRouting, Store, StoreError, SystemAppend,
    User,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{ApiError, ApiResult};
use crate::fanout::Fanout;

/// The time as the engines see it: epoch milliseconds that advance with tokio's clock, so
/// tests with paused time (`tokio::time::pause`) drive every timer deterministically.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base_ms: Millis,
    base: tokio::time::Instant,
}

impl Clock {
    /// A clock reading the system time once, now.
    pub fn start() -> Clock {
        Clock { base_ms: crate::now_ms(), base: tokio::time::Instant::now() }
    }

    /// Epoch milliseconds now.
    pub fn now(&self) -> Millis {
        self.base_ms.saturating_add(i64::try_from(self.base.elapsed().as_millis()).unwrap_or(i64::MAX))
    }

    /// The tokio instant of epoch time `at` (never before the clock started).
    fn instant_of(&self, at: Millis) -> tokio::time::Instant {
        let after = u64::try_from(at.saturating_sub(self.base_ms)).unwrap_or(0);
        self.base + Duration::from_millis(after)
    }
}

/// Where a transfer sends a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TransferTarget {
    /// The queue of a skill (`None`: no particular skill).
    Skill(Option<i64>),
    /// Back to the queue it came from.
    Queue,
    /// A named agent, ahead of the queue.
    Agent(i64),
}

/// The routing picture of one brand at a moment (dashboards, the transfer picker).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FloorSnapshot {
    /// Agents with presence and load.
    pub agents: Vec<AgentFloor>,
    /// Queue and estimate per requested skill ([`ANY_SKILL`]: no particular skill).
    pub skills: HashMap<SkillId, SkillFloor>,
}

/// What a socket or handler asks of an engine.
enum Command {
    /// How many sockets `agent` has on the node `node` now (0: none left there).
    Presence { node: u64, agent: AgentId, sockets: u32 },
    /// Every agent with sockets on the node `node` (a fleet node's heartbeat): the engine
    /// forgets the agents of a node it stops hearing from.
    Beat { node: u64, agents: Vec<(AgentId, u32)> },
    /// An agent's message was stored (the auto-close clock).
    AgentWrote { conversation: ConversationId, at: Millis },
    /// A message opened a conversation; answers with its agent once routed.
    Opened { open: OpenConversation, reply: oneshot::Sender<Option<(AgentId, Millis)>> },
    /// Close a conversation (persisted here, then the desk frees its seat).
    Close {
        conversation: ConversationId,
        by: Side,
        origin: u64,
        reply: oneshot::Sender<Result<Option<Conversation>, StoreError>>,
    },
    /// An agent chose a state; answers once persisted.
    Choose { agent: AgentId, state: AgentState, reply: oneshot::Sender<Result<(), StoreError>> },
    /// Answer to an offer: `accept` or `decline`.
    Answer { agent: AgentId, conversation: ConversationId, accept: bool, reply: oneshot::Sender<ApiResult<()>> },
    /// A skill was created, changed or deleted (routing modes).
    SkillsChanged,
    /// A manager sets a conversation's priority.
    SetPriority { conversation: ConversationId, priority: Priority, reply: oneshot::Sender<ApiResult<()>> },
    /// The waiting conversations in serving order, with the agent each is offered to.
    Queue(oneshot::Sender<Vec<Waiting>>),
    /// A user was created or changed.
    AgentChanged(Box<User>),
    /// Brand settings changed.
    SettingsChanged(Box<Brand>),
    /// The brand's automatic-message templates changed.
    TemplatesChanged,
    /// The brand's or a skill's business hours changed.
    HoursChanged,
    /// Move a conversation.
    Transfer {
        actor: Staff,
        conversation: ConversationId,
        target: TransferTarget,
        reply: oneshot::Sender<ApiResult<Conversation>>,
    },
    /// Rebuild the desk from the store (after writes made behind the engine's back).
    Rebuild(oneshot::Sender<()>),
    /// The floor now.
    Floor { skills: Vec<SkillId>, reply: oneshot::Sender<FloorSnapshot> },
}

/// What the engines of a node are built from.
#[derive(Debug)]
pub struct EngineConfig {
    /// The store (source of truth).
    pub store: Store,
    /// The node's fan-out (the bus events go out on, the brands' masking rules).
    pub fanout: Fanout,
    /// The time.
    pub clock: Clock,
    /// How often queued consumers' estimates are recomputed.
    pub wait_refresh: Duration,
    /// The fleet this node belongs to: a brand's engine then runs on the one node holding
    /// the brand's lease, and the other nodes forward their inputs to it ([`remote`]).
    /// `None`: every engine runs on this node.
    pub fleet: Option<remote::Link>,
}

/// The engines of this node, by brand id.
pub struct Engines {
    inner: Arc<Inner>,
}

/// What [`Engines`] shares with its background tasks (forwarders, the lease keeper).
struct Inner {
    store: Store,
    fanout: Fanout,
    clock: Clock,
    wait_refresh_ms: Millis,
    /// When this node booted: grace periods of a restored desk run from here.
    boot_ms: Millis,
    shutdown: watch::Receiver<bool>,
    /// Each brand's input channel: the running engine's, or on a fleet node the brand's
    /// forwarder, which hands each input to the engine here while this node leads the brand
    /// and to the leading node otherwise. A std `Mutex`, held only to look up or insert a
    /// sender. The channels are unbounded: inputs are lifecycle events (a handful per
    /// conversation, one per socket open and close), and a socket's `Drop` must be able to
    /// send its disconnect without waiting.
    senders: Mutex<HashMap<String, EngineHandle>>,
    /// The engines running on this node (on a fleet node: the brands it holds the lease of).
    /// Locked after `senders` when both are.
    local: Mutex<HashMap<String, LocalEngine>>,
    /// This node's agent sockets, per brand and agent. Locked before `senders`.
    presence: Mutex<HashMap<String, HashMap<AgentId, u32>>>,
    fleet: Option<remote::Link>,
}

/// An engine running on this node.
struct LocalEngine {
    sender: mpsc::UnboundedSender<Command>,
    auto_closing: Arc<AtomicBool>,
    /// Stops the engine (its lease was lost).
    stop: watch::Sender<bool>,
    /// On a fleet node, the task answering the other nodes' requests for this brand.
    service: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for LocalEngine {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::ENGINES_LED).decrement(1.0);
        let _ = self.stop.send(true);
        if let Some(service) = &self.service {
            service.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl std::fmt::Debug for Engines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engines").field("boot_ms", &self.inner.boot_ms).finish_non_exhaustive()
    }
}

impl Engines {
    /// The engines of a node (none running yet). On a fleet node this starts the task that
    /// keeps the node's leases and tells the leading nodes which agents are connected here.
    pub fn new(config: EngineConfig, shutdown: watch::Receiver<bool>) -> Engines {
        let EngineConfig { store, fanout, clock, wait_refresh, fleet } = config;
        let inner = Arc::new(Inner {
            fanout,
            store,
            boot_ms: clock.now(),
            clock,
            wait_refresh_ms: i64::try_from(wait_refresh.as_millis()).unwrap_or(i64::MAX).max(1),
            shutdown,
            senders: Mutex::new(HashMap::new()),
            local: Mutex::new(HashMap::new()),
            presence: Mutex::new(HashMap::new()),
            fleet,
        });
        if inner.fleet.is_some() {
            tokio::spawn(remote::keep(Arc::downgrade(&inner)));
        }
        Engines { inner }
    }

    /// Starts the engines of brands that have open conversations (their grace periods and
    /// estimates must run from the boot); the others start when first needed. On a fleet
    /// node, only those whose lease no other node holds.
    pub async fn start_busy_brands(&self) -> Result<(), StoreError> {
        self.inner.start_busy_brands().await
    }

    /// The node stops: its engines stop, and on a fleet node their leases go back at once,
    /// so another node takes the brands over without waiting for this process to end.
    pub async fn leave(&self) {
        let stopped: Vec<String> = {
            let mut local = lock(&self.inner.local);
            local.drain().map(|(brand_id, _)| brand_id).collect()
        };
        if let Some(link) = &self.inner.fleet {
            for brand_id in stopped {
                remote::give_back(link, &brand_id).await;
            }
        }
    }

    /// Takes (or keeps) the fleet-wide lease `name` for work one node does at a time (the
    /// retention purge): `true` when this node holds it. Alone, always `true`.
    pub async fn hold_lease(&self, name: &str) -> bool {
        match &self.inner.fleet {
            None => true,
            Some(link) => remote::hold(link, name).await,
        }
    }

    /// Whether this node runs the engine of `brand_id` now.
    pub fn leads(&self, brand_id: &str) -> bool {
        lock(&self.inner.local).contains_key(brand_id)
    }

    fn send(&self, brand_id: &str, command: Command) {
        self.inner.send(brand_id, command);
    }

    /// One of the agent's sockets authenticated. The returned guard tells the engine when
    /// the socket ends (on drop).
    pub fn agent_connected(&self, brand_id: &str, agent: AgentId) -> PresenceGuard {
        self.inner.presence_changed(brand_id, agent, true);
        PresenceGuard { inner: Arc::downgrade(&self.inner), brand_id: brand_id.to_owned(), agent }
    }

    /// A message opened a conversation: routes it and answers with its agent, if any, and
    /// when it was assigned.
    pub async fn opened(&self, brand_id: &str, open: OpenConversation) -> Option<(AgentId, Millis)> {
        let (reply, answer) = oneshot::channel();
        self.send(brand_id, Command::Opened { open, reply });
        answer.await.ok().flatten()
    }

    /// Closes a conversation; `None` if it was not open. Both sides hear of it.
    pub async fn close(
        &self,
        brand_id: &str,
        conversation: ConversationId,
        by: Side,
        origin: u64,
    ) -> Result<Option<Conversation>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(brand_id, Command::Close { conversation, by, origin, reply });
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// An agent chose an availability; returns once it is stored.
    pub async fn choose_state(&self, brand_id: &str, agent: AgentId, state: AgentState) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(brand_id, Command::Choose { agent, state, reply });
        answer.await.map_err(|_| StoreError::ShuttingDown)?
    }

    /// An agent accepts (or declines) a conversation offered to them.
    pub async fn answer_offer(
        &self,
        brand_id: &str,
        agent: AgentId,
        conversation: ConversationId,
        accept: bool,
    ) -> ApiResult<()> {
        let (reply, answer) = oneshot::channel();
        self.send(brand_id, Command::Answer { agent, conversation, accept, reply });
        answer.await.map_err(|_| ApiError::code(ErrorCode::Unavailable))?
    }

    /// A manager sets a conversation's priority; `conversation_not_found` unless it is open.
    pub async fn set_priority(
        &self,
        brand_id: &str,
        conversation: ConversationId,
        priority: Priority,
    ) -> ApiResult<()> {
        let (reply, answer) = oneshot::channel();
        self.send(brand_id, Command::SetPriority { conversation, priority, reply });
        answer.await.map_err(|_| ApiError::code(ErrorCode::Unavailable))?
    }

    /// The brand's waiting conversations in serving order (offered ones included).
    pub async fn queue(&self, brand_id: &str) -> Vec<Waiting> {
        let (reply, answer) = oneshot::channel();
        self.send(brand_id, Command::Queue(reply));
        answer.await.unwrap_or_default()
    }

    /// The brand's skills changed (how they route).
    pub fn skills_changed(&self, brand_id: &str) {
        self.send(brand_id, Command::SkillsChanged);
    }

    /// A user was created or changed (capacity, skills, disabled).
    pub fn agent_changed(&self, user: &User) {
        self.send(&user.brand_id, Command::AgentChanged(Box::new(user.clone())));
    }

    /// The brand's settings changed.
    pub fn settings_changed(&self, brand: &Brand) {
        self.send(&brand.id, Command::SettingsChanged(Box::new(brand.clone())));
    }

    /// The brand's automatic-message templates changed.
    pub fn templates_changed(&self, brand_id: &str) {
        self.send(brand_id, Command::TemplatesChanged);
    }

    /// The brand's or a skill's business hours changed.
    pub fn hours_changed(&self, brand_id: &str) {
        self.send(brand_id, Command::HoursChanged);
    }

    /// An agent's message was stored in a conversation (the auto-close clock starts).
    /// Sent only while the brand auto-closes: the message path pays nothing otherwise (a
    /// brand turning auto-close on rebuilds its desk from the stored times).
    pub fn agent_wrote(&self, brand_id: &str, conversation: ConversationId, at: Millis) {
        let handle = self.inner.handle(brand_id);
        if handle.auto_closing.load(Ordering::Relaxed) {
            let _ = handle.sender.send(Command::AgentWrote { conversation, at });
        }
    }

    /// Moves a conversation of `brand_id` (see [`TransferTarget`]) for `actor`, who must be
    /// allowed to act on it when the engine takes the transfer.
    pub async fn transfer(
        &self,
        brand_id: &str,
        actor: Staff,
        conversation: ConversationId,
        target: TransferTarget,
    ) -> ApiResult<Conversation> {
        let (reply, answer) = oneshot::channel();
        self.send(brand_id, Command::Transfer { actor, conversation, target, reply });
        answer.await.map_err(|_| ApiError::code(ErrorCode::Unavailable))?
    }

    /// Rebuilds the brand's desk from the store, as at a restart but keeping who is
    /// connected (for tools and tests that write to the store directly).
    pub async fn rebuild(&self, brand_id: &str) {
        let (reply, answer) = oneshot::channel();
        self.send(brand_id, Command::Rebuild(reply));
        let _ = answer.await;
    }

    /// The brand's floor now, with queue and estimate for each of `skills`.
    pub async fn floor(&self, brand_id: &str, skills: Vec<SkillId>) -> FloorSnapshot {
        let (reply, answer) = oneshot::channel();
        self.send(brand_id, Command::Floor { skills, reply });
        answer.await.unwrap_or_default()
    }
}

impl Inner {
    /// This node's id in the fleet (0 alone).
    fn node(&self) -> u64 {
        self.fleet.as_ref().map_or(0, remote::Link::node)
    }

    fn send(self: &Arc<Self>, brand_id: &str, command: Command) {
        if *self.shutdown.borrow() {
            // Stopping (sockets closing say their agents left): inputs go to what still runs,
            // and nothing new is started for them.
            if let Some(handle) = lock(&self.senders).get(brand_id) {
                let _ = handle.sender.send(command);
            }
            return;
        }
        // A closed channel means the node is shutting down: the input no longer matters.
        let _ = self.handle(brand_id).sender.send(command);
    }

    /// The brand's input channel, its engine (alone) or forwarder (fleet) started if needed.
    fn handle(self: &Arc<Self>, brand_id: &str) -> EngineHandle {
        let mut senders = lock(&self.senders);
        if let Some(handle) = senders.get(brand_id).filter(|handle| !handle.sender.is_closed()) {
            return handle.clone();
        }
        let handle = match &self.fleet {
            Some(link) => remote::forwarder(Arc::downgrade(self), link, brand_id),
            None => self.start_local(brand_id, Arc::new(AtomicBool::new(false))),
        };
        senders.insert(brand_id.to_owned(), handle.clone());
        handle
    }

    /// The engine of `brand_id` on this node, started if it is not running (the caller
    /// holds the brand's lease on a fleet node). It keeps `auto_closing` up to date: the
    /// brand's handle reads it (on a fleet node, the forwarder's, which replies from other
    /// leaders update too).
    fn start_local(self: &Arc<Self>, brand_id: &str, auto_closing: Arc<AtomicBool>) -> EngineHandle {
        let mut local = lock(&self.local);
        if let Some(running) = local.get(brand_id).filter(|running| !running.sender.is_closed()) {
            return EngineHandle { sender: running.sender.clone(), auto_closing: running.auto_closing.clone() };
        }
        let (sender, commands) = mpsc::unbounded_channel();
        let (stop, stopped) = watch::channel(false);
        // Alone, grace periods of the restored desk run from the node's boot; a fleet node
        // taking a brand over runs them from the takeover.
        let boot_ms = if self.fleet.is_some() { self.clock.now() } else { self.boot_ms };
        let engine = Engine {
            brand_id: brand_id.to_owned(),
            store: self.store.clone(),
            fanout: self.fanout.clone(),
            clock: self.clock,
            boot_ms,
            wait_refresh_ms: self.wait_refresh_ms,
            desk: Desk::new(DeskSettings::default()),
            automation: Automation::default(),
            auto_closing: auto_closing.clone(),
            stopping: self.shutdown.clone(),
            node: self.node(),
            nodes: HashMap::new(),
            stopped,
            fleet: self.fleet.as_ref().map(|_| Arc::downgrade(self)),
        };
        tokio::spawn(engine.run(commands, self.shutdown.clone()));
        let service =
            self.fleet.as_ref().map(|link| remote::serve(link, brand_id, sender.clone(), auto_closing.clone()));
        if self.fleet.is_some() {
            tracing::info!(brand_id, "this node runs the brand's engine now");
        }
        metrics::gauge!(crate::metrics::ENGINES_LED).increment(1.0);
        local.insert(
            brand_id.to_owned(),
            LocalEngine { sender: sender.clone(), auto_closing: auto_closing.clone(), stop, service },
        );
        EngineHandle { sender, auto_closing }
    }

    /// The engine of `brand_id` running here, if any.
    fn local_sender(&self, brand_id: &str) -> Option<mpsc::UnboundedSender<Command>> {
        lock(&self.local).get(brand_id).map(|running| running.sender.clone()).filter(|sender| !sender.is_closed())
    }

    async fn start_busy_brands(self: &Arc<Self>) -> Result<(), StoreError> {
        for brand_id in self.store.brands_with_open_conversations().await? {
            match &self.fleet {
                None => {
                    self.handle(&brand_id);
                }
                Some(link) => {
                    remote::take_lead(self, link, &brand_id).await;
                }
            }
        }
        Ok(())
    }

    /// One of this node's agent sockets came (`connected`) or went: the engine hears how
    /// many the agent has on this node now. Sent under the presence lock, so the counts
    /// reach the engine in the order they were reached.
    fn presence_changed(self: &Arc<Self>, brand_id: &str, agent: AgentId, connected: bool) {
        let mut presence = lock(&self.presence);
        let agents = presence.entry(brand_id.to_owned()).or_default();
        let count = agents.entry(agent).or_default();
        *count = if connected { count.saturating_add(1) } else { count.saturating_sub(1) };
        let sockets = *count;
        if sockets == 0 {
            agents.remove(&agent);
        }
        self.send(brand_id, Command::Presence { node: self.node(), agent, sockets });
    }
}

/// A brand's input channel, and whether agents' messages must be reported to it.
#[derive(Debug, Clone)]
struct EngineHandle {
    sender: mpsc::UnboundedSender<Command>,
    auto_closing: Arc<AtomicBool>,
}

/// Held by an agent's socket; dropping it tells the engine the socket ended.
#[derive(Debug)]
pub struct PresenceGuard {
    inner: std::sync::Weak<Inner>,
    brand_id: String,
    agent: AgentId,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.presence_changed(&self.brand_id, self.agent, false);
        }
    }
}

fn settings_of(brand: &Brand, wait_refresh_ms: Millis) -> DeskSettings {
    let auto_close = brand.auto_close_secs.filter(|secs| *secs > 0).map(|secs| AutoClose {
        after_ms: secs.saturating_mul(1000),
        warn_before_ms: brand.auto_close_warn_secs.filter(|warn| *warn > 0).map(|warn| warn.saturating_mul(1000)),
    });
    DeskSettings { grace_ms: brand.agent_grace_secs.max(0).saturating_mul(1000), wait_refresh_ms, auto_close }
}

fn agent_settings_of(user: &User) -> AgentSettings {
    AgentSettings {
        agent: user.id,
        profile: AgentProfile {
            max_concurrent: u32::try_from(user.max_concurrent.max(0)).unwrap_or(u32::MAX),
            skills: user.skills.clone(),
        },
        chosen: user.state,
        disabled: user.disabled,
    }
}

/// The desk's view of a stored open conversation.
pub fn open_conversation_of(conversation: &Conversation) -> OpenConversation {
    OpenConversation {
        conversation: conversation.id,
        consumer: conversation.consumer_id,
        skill: conversation.skill_id.unwrap_or(ANY_SKILL),
        priority: i32::try_from(conversation.priority).unwrap_or(0),
        waiting_since: conversation.opened_at,
        agent: conversation.agent_id,
        assigned_at: conversation.assigned_at,
        last_agent_at: conversation.last_agent_at,
        last_consumer_at: conversation.last_consumer_at,
    }
}

fn skill_column(skill: SkillId) -> Option<i64> {
    (skill != ANY_SKILL).then_some(skill)
}

/// One brand's engine task.
struct Engine {
    brand_id: String,
    store: Store,
    fanout: Fanout,
    clock: Clock,
    boot_ms: Millis,
    wait_refresh_ms: Millis,
    desk: Desk,
    /// What automatic messages need: the brand's templates, name and default language.
    automation: Automation,
    /// Whether the brand auto-closes (shared with [`Engines::agent_wrote`]).
    auto_closing: Arc<AtomicBool>,
    /// Shutdown: a rebuild stops retrying once the node is stopping (its store is closing).
    stopping: watch::Receiver<bool>,
    /// This node's id in the fleet (0 alone): its agents' sockets are never forgotten.
    node: u64,
    /// The agents' sockets per node, and when each other node was last heard of.
    nodes: HashMap<u64, NodeSockets>,
    /// Set when the engine must stop (its node lost the brand's lease).
    stopped: watch::Receiver<bool>,
    /// On a fleet node, the node's engines: every routing write first checks that the node
    /// still holds its leases ([`remote::fence`]), and while its NATS connection is down no
    /// other node can be heard, so none is taken for dead.
    fleet: Option<std::sync::Weak<Inner>>,
}

/// One node's agent sockets as a brand's engine knows them.
#[derive(Debug)]
struct NodeSockets {
    agents: HashMap<AgentId, u32>,
    heard: tokio::time::Instant,
}

/// A node not heard of for this long is taken for dead: its agents' sockets are gone (their
/// grace periods start). Nodes beat every [`remote::BEAT`].
const NODE_SILENCE: Duration = Duration::from_secs(5);

/// The brand's automatic messages as the engine holds them (reloaded when they change).
#[derive(Debug, Default)]
struct Automation {
    templates: Vec<Configured>,
    brand_name: String,
    default_language: String,
    /// Offer the survey on an auto-close.
    survey_on_auto_close: bool,
}

impl Automation {
    fn of(brand: &Brand, templates: Vec<switchboard_store::AutomaticMessage>) -> Automation {
        Automation {
            templates: templates
                .into_iter()
                .filter_map(|t| {
                    Some(Configured {
                        trigger: Trigger::parse(&t.trigger)?,
                        skill: t.skill_id,
                        language: t.language,
                        enabled: t.enabled,
                        text: t.text,
                    })
                })
                .collect(),
            brand_name: brand.name.clone(),
            default_language: brand.default_language.clone(),
            survey_on_auto_close: brand.auto_close_survey,
        }
    }

    fn refresh(&mut self, brand: &Brand) {
        self.brand_name = brand.name.clone();
        self.default_language = brand.default_language.clone();
        self.survey_on_auto_close = brand.auto_close_survey;
    }

    /// Whether any template for `trigger` is switched on (a cheap check before any read).
    fn has(&self, trigger: Trigger) -> bool {
        self.templates.iter().any(|t| t.trigger == trigger && t.enabled)
    }
}

/// What persisting a change came to.
enum Persisted {
    Done,
    /// The conversation is not open (closed meanwhile): nobody hears of the change.
    NotOpen,
    /// The store knew more than the desk: this input follows (what it found, or the close
    /// it carried out).
    Then(Input),
}

impl Engine {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>, mut shutdown: watch::Receiver<bool>) {
        let mut stopped = self.stopped.clone();
        self.rebuild().await;
        // Only other nodes fall silent; alone there is nothing to check.
        let mut silence = tokio::time::interval(if self.node == 0 { Duration::from_secs(3600) } else { remote::BEAT });
        loop {
            let due = self.desk.next_due().map(|at| self.clock.instant_of(at));
            tokio::select! {
                command = commands.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => break,
                },
                () = sleep_until(due) => self.unanswered(Input::Tick).await,
                _ = silence.tick() => self.forget_silent_nodes().await,
                _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => break,
                _ = async { stopped.wait_for(|stop| *stop).await.is_ok() } => {
                    tracing::warn!(brand_id = %self.brand_id, "this node lost the brand's lease: its engine stops");
                    break;
                }
            }
        }
    }

    /// `node` has `sockets` sockets of `agent` now: the desk hears the difference.
    async fn set_sockets(&mut self, node: u64, agent: AgentId, sockets: u32) {
        let seen = self
            .nodes
            .entry(node)
            .or_insert_with(|| NodeSockets { agents: HashMap::new(), heard: tokio::time::Instant::now() });
        seen.heard = tokio::time::Instant::now();
        let before = if sockets == 0 { seen.agents.remove(&agent) } else { seen.agents.insert(agent, sockets) };
        let before = before.unwrap_or(0);
        for _ in sockets..before {
            self.unanswered(Input::AgentDisconnected(agent)).await;
        }
        for _ in before..sockets {
            self.unanswered(Input::AgentConnected(agent)).await;
        }
    }

    /// A node's heartbeat: every agent with sockets there.
    async fn beat(&mut self, node: u64, agents: Vec<(AgentId, u32)>) {
        let now: HashMap<AgentId, u32> = agents.into_iter().collect();
        let known: Vec<AgentId> =
            self.nodes.get(&node).map(|seen| seen.agents.keys().copied().collect()).unwrap_or_default();
        for agent in known {
            if !now.contains_key(&agent) {
                self.set_sockets(node, agent, 0).await;
            }
        }
        for (agent, sockets) in now {
            self.set_sockets(node, agent, sockets).await;
        }
        if let Some(seen) = self.nodes.get_mut(&node) {
            seen.heard = tokio::time::Instant::now();
        }
    }

    /// The other nodes not heard of for [`NODE_SILENCE`]: their agents' sockets are gone.
    async fn forget_silent_nodes(&mut self) {
        if let Some(inner) = self.fleet.as_ref().and_then(std::sync::Weak::upgrade)
            && inner.fleet.as_ref().is_some_and(|link| !link.connected())
        {
            // Deaf, not alone: the silence starts again once NATS is back.
            for seen in self.nodes.values_mut() {
                seen.heard = tokio::time::Instant::now();
            }
            return;
        }
        let silent: Vec<u64> = self
            .nodes
            .iter()
            .filter(|(node, seen)| **node != self.node && seen.heard.elapsed() >= NODE_SILENCE)
            .map(|(node, _)| *node)
            .collect();
        for node in silent {
            tracing::warn!(brand_id = %self.brand_id, node = format_args!("{node:016x}"), "a node fell silent: its agents' sockets count as gone");
            self.beat(node, Vec::new()).await;
            self.nodes.remove(&node);
        }
    }

    /// Builds the desk from the store, keeping which agents are connected.
    async fn rebuild(&mut self) {
        loop {
            match self.load().await {
                Ok(()) => return,
                Err(_) if *self.stopping.borrow() || *self.stopped.borrow() => return,
                Err(error) => {
                    // The store is down: routing waits for it (nothing can be persisted
                    // anyway). Sockets keep working on the hot path meanwhile.
                    tracing::error!(%error, brand_id = %self.brand_id, "could not rebuild the desk; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn load(&mut self) -> Result<(), StoreError> {
        let brand = self.store.brand(&self.brand_id).await?;
        let settings = brand.as_ref().map_or_else(
            || DeskSettings { wait_refresh_ms: self.wait_refresh_ms, ..DeskSettings::default() },
            |brand| settings_of(brand, self.wait_refresh_ms),
        );
        let users = self.store.users(&self.brand_id).await?;
        let skill_rules = self.skill_rules().await?;
        let open = self.store.open_conversations(&self.brand_id).await?;
        let sockets = self.desk.sockets();
        let agents = users.iter().map(agent_settings_of).collect();
        let conversations = open.iter().map(open_conversation_of).collect();
        let now = self.clock.now();
        if let Some(brand) = &brand {
            self.automation = Automation::of(brand, self.store.automatic_messages(&self.brand_id).await?);
        }
        let hours = self.hours().await?;
        self.auto_closing.store(settings.auto_close.is_some(), Ordering::Relaxed);
        let (desk, effects) =
            Desk::restore(settings, hours, skill_rules, agents, conversations, &sockets, self.boot_ms, now);
        self.desk = desk;
        tracing::debug!(brand_id = %self.brand_id, open = open.len(), "desk rebuilt");
        self.try_carry_out(effects, 0).await
    }

    /// The brand's business hours, validated (stored hours that no longer validate, say a
    /// time zone gone from the database, count as always open, with a warning).
    async fn hours(&self) -> Result<Hours, StoreError> {
        let stored = match self.store.business_hours(&self.brand_id).await {
            Ok(stored) => stored,
            Err(StoreError::NotFound) => return Ok(Hours::default()),
            Err(error) => return Err(error),
        };
        let compile = |hours: &switchboard_core::hours::BusinessHours| match hours.validate() {
            Ok(schedule) => Some(schedule),
            Err(error) => {
                tracing::warn!(%error, brand_id = %self.brand_id, "stored business hours do not validate; always open");
                None
            }
        };
        Ok(Hours {
            brand: stored.brand.as_ref().and_then(compile),
            skills: stored.skills.iter().filter_map(|(skill, hours)| Some((*skill, compile(hours)?))).collect(),
            off_hours: OffHours::parse(&stored.off_hours).unwrap_or_default(),
        })
    }

    /// How the brand's skills route: offer mode and timeout, starting priority.
    async fn skill_rules(&self) -> Result<Vec<SkillRules>, StoreError> {
        Ok(self
            .store
            .skills(&self.brand_id)
            .await?
            .into_iter()
            .map(|skill| SkillRules {
                skill: skill.id,
                offer_timeout_ms: (skill.routing == SkillRouting::Offer)
                    .then(|| skill.offer_timeout_secs.max(1).saturating_mul(1000)),
                priority: skill.default_priority.to_core(),
            })
            .collect())
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Answer { agent, conversation, accept, reply } => {
                let input =
                    if accept { Input::Accept { conversation, agent } } else { Input::Decline { conversation, agent } };
                let answered = match self.desk.handle(input, self.clock.now()) {
                    Ok(effects) => self.carry_out(effects, 0).await.map_err(ApiError::from),
                    Err(_) => Err(ApiError::code(ErrorCode::OfferGone)),
                };
                let _ = reply.send(answered);
            }
            Command::SetPriority { conversation, priority, reply } => {
                let set = match self.desk.handle(Input::SetPriority { conversation, priority }, self.clock.now()) {
                    Ok(effects) => self.carry_out(effects, 0).await.map_err(ApiError::from),
                    Err(_) => Err(ApiError::new(ErrorCode::ConversationNotFound, "no open conversation has this id")),
                };
                let _ = reply.send(set);
            }
            Command::Queue(reply) => {
                let _ = reply.send(self.desk.waiting());
            }
            Command::SkillsChanged => match self.skill_rules().await {
                Ok(skills) => self.unanswered(Input::Skills(skills)).await,
                Err(error) => tracing::error!(%error, brand_id = %self.brand_id, "could not read skills"),
            },
            Command::Presence { node, agent, sockets } => self.set_sockets(node, agent, sockets).await,
            Command::Beat { node, agents } => self.beat(node, agents).await,
            Command::AgentWrote { conversation, at } => self.unanswered(Input::AgentWrote { conversation, at }).await,
            Command::Opened { open, reply } => {
                let conversation = open.conversation;
                // A routing write that failed rebuilt the desk from the store: what it says
                // now about the conversation is what the store holds.
                let _ = self.input(Input::Opened(open), 0).await;
                let now = self.clock.now();
                // A stopped engine's desk may hold what it could not write: tell nothing.
                let assignee = if *self.stopped.borrow() { None } else { self.desk.assignee(conversation) };
                let _ = reply.send(assignee.map(|agent| (agent, now)));
            }
            Command::Close { conversation, by, origin, reply } => {
                let _ = reply.send(self.close(conversation, by, origin).await);
            }
            Command::Choose { agent, state, reply } => {
                // The agent is told only once their choice is stored: a failed write answers
                // with the error (and the desk is rebuilt from what the store holds).
                let _ = reply.send(self.input(Input::AgentChose { agent, state }, 0).await);
            }
            Command::AgentChanged(user) => self.unanswered(Input::Agent(agent_settings_of(&user))).await,
            Command::SettingsChanged(brand) => {
                self.automation.refresh(&brand);
                let settings = settings_of(&brand, self.wait_refresh_ms);
                // Set before the rebuild reads the stored times, so no agent message falls
                // between the two.
                self.auto_closing.store(settings.auto_close.is_some(), Ordering::Relaxed);
                if settings.auto_close.is_some() && self.desk.settings().auto_close.is_none() {
                    // Agents' messages were not reported while auto-close was off: take their
                    // times from the store.
                    self.rebuild().await;
                } else {
                    let effects = self.desk.set_settings(settings);
                    let _ = self.carry_out(effects, 0).await;
                }
            }
            Command::HoursChanged => match self.hours().await {
                Ok(hours) => {
                    let effects = self.desk.set_hours(hours, self.clock.now());
                    let _ = self.carry_out(effects, 0).await;
                }
                Err(error) => tracing::error!(%error, brand_id = %self.brand_id, "could not read business hours"),
            },
            Command::TemplatesChanged => match self.store.automatic_messages(&self.brand_id).await {
                Ok(templates) => {
                    let brand = self.store.brand(&self.brand_id).await.ok().flatten();
                    if let Some(brand) = brand {
                        self.automation = Automation::of(&brand, templates);
                    }
                }
                Err(error) => tracing::error!(%error, brand_id = %self.brand_id, "could not read automatic messages"),
            },
            Command::Transfer { actor, conversation, target, reply } => {
                let _ = reply.send(self.transfer(actor, conversation, target).await);
            }
            Command::Rebuild(reply) => {
                self.rebuild().await;
                let _ = reply.send(());
            }
            Command::Floor { skills, reply } => {
                let _ = reply.send(FloorSnapshot { agents: self.desk.agents(), skills: self.desk.skills(&skills) });
            }
        }
    }

    /// An input nobody waits for (a timer, a socket's presence): a failed write was logged
    /// and the desk rebuilt, which is all there is to do.
    async fn unanswered(&mut self, input: Input) {
        let _ = self.input(input, 0).await;
    }

    /// Hands an input to the desk and carries out its effects; `Err` if one was not stored.
    async fn input(&mut self, input: Input, origin: u64) -> Result<(), StoreError> {
        match self.desk.handle(input, self.clock.now()) {
            Ok(effects) => self.carry_out(effects, origin).await,
            Err(refusal) => {
                tracing::debug!(?refusal, "desk refused an input");
                Ok(())
            }
        }
    }

    /// Carries out effects (see [`Engine::try_carry_out`]); a write that fails rebuilds the
    /// desk from the store, which retries until the store answers, and is returned.
    async fn carry_out(&mut self, effects: Vec<Effect>, origin: u64) -> Result<(), StoreError> {
        let result = self.try_carry_out(effects, origin).await;
        if let Err(error) = &result {
            tracing::error!(%error, brand_id = %self.brand_id, "could not persist a routing decision; rebuilding from the store");
            self.rebuild().await;
        }
        result
    }

    /// Carries out effects in order: a change is persisted before what follows it. A
    /// change the store refuses (the conversation closed meanwhile) is fed back to the desk.
    /// A write that fails stops here: the desk no longer matches the store.
    async fn try_carry_out(&mut self, effects: Vec<Effect>, origin: u64) -> Result<(), StoreError> {
        let mut pending = std::collections::VecDeque::from(effects);
        let mut skipping: Option<ConversationId> = None;
        let mut told = false;
        while let Some(effect) = pending.pop_front() {
            match effect {
                Effect::Persist(change) => {
                    skipping = None;
                    self.fenced().await?;
                    match self.persist(change).await {
                        Ok(Persisted::Done) => {}
                        Ok(Persisted::Then(input)) => {
                            if let Ok(more) = self.desk.handle(input, self.clock.now()) {
                                pending.extend(more);
                            }
                        }
                        Ok(Persisted::NotOpen) => {
                            // Not open any more: nobody hears of this change, and the desk
                            // lets the conversation go (which may free a seat).
                            let conversation = changed_conversation(change);
                            skipping = conversation;
                            if let Some(conversation) = conversation
                                && let Ok(more) = self.desk.handle(Input::Closed(conversation), self.clock.now())
                            {
                                pending.extend(more);
                            }
                        }
                        Err(error) => {
                            tracing::error!(%error, brand_id = %self.brand_id, ?change, "a routing decision was not persisted");
                            return Err(error);
                        }
                    }
                }
                Effect::Emit(event) => {
                    if skipping.is_some() && skipping == event_conversation(&event) {
                        continue;
                    }
                    self.fanout.desk_event(&self.brand_id, &event, origin).await;
                    told = true;
                }
                Effect::Arm(..) | Effect::Disarm(..) => {}
            }
        }
        if told {
            self.fanout.floor_changed(&self.brand_id);
        }
        Ok(())
    }

    /// Writes one change.
    /// On a fleet node, before a routing write: the node must still hold its leases (its
    /// lease connection answers), or its engines stop and nothing is written. This narrows
    /// the time two engines of a brand could both write to one round trip.
    async fn fenced(&self) -> Result<(), StoreError> {
        match self.fleet.as_ref().and_then(std::sync::Weak::upgrade) {
            Some(inner) => remote::fence(&inner).await,
            None => Ok(()),
        }
    }

    async fn persist(&mut self, change: Change) -> Result<Persisted, StoreError> {
        let now = self.clock.now();
        let done = |stored: bool| if stored { Persisted::Done } else { Persisted::NotOpen };
        match change {
            Change::Assign { conversation, agent } => {
                let assigned = self.store.assign(&self.brand_id, conversation, agent, now).await?;
                if assigned {
                    metrics::counter!(crate::metrics::ASSIGNMENTS).increment(1);
                }
                Ok(done(assigned))
            }
            Change::Requeue { conversation, skill } => {
                let before = self.store.conversation(&self.brand_id, conversation).await?;
                let updated = self.store.requeue(&self.brand_id, conversation, skill_column(skill), now).await?;
                // A conversation taken from an agent who is not there gets a notice; moves
                // asked for by people post their own (see `transfer`).
                if let (Some(before), Some(updated)) = (&before, &updated)
                    && let Some(agent) = before.agent_id
                    && self.desk.presence(agent).is_some_and(|p| !p.connected || p.chosen == AgentState::Offline)
                {
                    let name = self
                        .store
                        .user(&self.brand_id, agent)
                        .await?
                        .map_or_else(|| "The agent".to_owned(), |u| u.name);
                    self.post_notice(updated, format!("Returned to the queue: {name} is unavailable")).await;
                }
                Ok(done(updated.is_some()))
            }
            Change::AgentState { agent, state } => {
                self.store.set_user_state(&self.brand_id, agent, state).await?;
                Ok(Persisted::Done)
            }
            Change::Priority { conversation, priority } => Ok(done(
                self.store.set_priority(&self.brand_id, conversation, ConversationPriority::of(priority), now).await?,
            )),
            Change::Record { conversation, agent, kind } => {
                metrics::counter!(crate::metrics::OFFERS_UNANSWERED, "outcome" => kind.as_str()).increment(1);
                Ok(done(
                    self.store
                        .record_conversation_event(&self.brand_id, conversation, kind.as_str(), Some(agent), now)
                        .await?,
                ))
            }
            Change::Notify { conversation, trigger, at, eta, agent } => {
                if !self.automation.has(trigger) {
                    return Ok(Persisted::Done);
                }
                let Some(stored) = self.store.conversation(&self.brand_id, conversation).await? else {
                    return Ok(Persisted::NotOpen);
                };
                if trigger == Trigger::InactiveWarning
                    && let Some(activity) = answered_since(&stored, at)
                {
                    return Ok(Persisted::Then(activity));
                }
                self.notify(&stored, trigger, at, eta, agent).await?;
                Ok(Persisted::Done)
            }
            Change::OffHours { conversation, close } => {
                metrics::counter!(crate::metrics::OFF_HOURS_ARRIVALS).increment(1);
                if !self.store.record_conversation_event(&self.brand_id, conversation, "off_hours", None, now).await? {
                    return Ok(Persisted::NotOpen);
                }
                if !close {
                    return Ok(Persisted::Done);
                }
                if let Some(closed) =
                    self.store.close_conversation(&self.brand_id, conversation, Side::System, false, now).await?
                {
                    self.fanout.closed(&closed, 0);
                }
                Ok(Persisted::Then(Input::Closed(conversation)))
            }
            Change::AutoClose { conversation, since } => {
                let survey = self.automation.survey_on_auto_close;
                match self.store.auto_close_conversation(&self.brand_id, conversation, since, survey, now).await? {
                    AutoCloseOutcome::Closed(closed) => {
                        metrics::counter!(crate::metrics::AUTO_CLOSED).increment(1);
                        self.fanout.closed(&closed, 0);
                        if self.automation.has(Trigger::AutoClosed) {
                            self.notify(&closed, Trigger::AutoClosed, now, None, None).await?;
                        }
                        Ok(Persisted::Then(Input::Closed(conversation)))
                    }
                    AutoCloseOutcome::NotOpen => Ok(Persisted::NotOpen),
                    AutoCloseOutcome::Answered { agent_at, consumer_at } => {
                        Ok(Persisted::Then(Input::Activity { conversation, agent_at, consumer_at }))
                    }
                }
            }
        }
    }

    /// Stores the brand's automatic message for `trigger` in a conversation, if it has one
    /// that applies (skill and language), unique by the trigger's key, and shows it.
    async fn notify(
        &self,
        conversation: &Conversation,
        trigger: Trigger,
        at: Millis,
        eta: Option<u32>,
        agent: Option<AgentId>,
    ) -> Result<(), StoreError> {
        let consumer = self.store.consumer(&self.brand_id, conversation.consumer_id).await?;
        let language = consumer.as_ref().and_then(|c| c.language.clone());
        let Some(configured) = automation::choose(
            &self.automation.templates,
            trigger,
            conversation.skill_id,
            language.as_deref(),
            &self.automation.default_language,
        ) else {
            return Ok(());
        };
        let limit = Channel::parse(&conversation.channel).unwrap_or(Channel::InApp).max_chars(Side::System);
        let template = match Template::parse(&configured.text, limit) {
            Ok(template) => template,
            Err(error) => {
                // Checked at save; a channel with a shorter limit can still refuse it.
                tracing::warn!(%error, trigger = trigger.as_str(), "an automatic message does not fit; not sent");
                return Ok(());
            }
        };
        let agent_name = match agent.or(conversation.agent_id) {
            Some(agent) => self.store.user(&self.brand_id, agent).await?.map(|user| user.name),
            None => None,
        };
        let skill_name = match conversation.skill_id {
            Some(skill) => self.store.skills(&self.brand_id).await?.into_iter().find(|s| s.id == skill).map(|s| s.name),
            None => None,
        };
        let values = Values {
            consumer_name: consumer.as_ref().and_then(|c| c.name.as_deref()),
            agent_name: agent_name.as_deref(),
            wait_secs: eta,
            skill: skill_name.as_deref(),
            brand_name: Some(&self.automation.brand_name),
        };
        let text = template.render(&values, &configured.language, limit);
        let append = Append::System(SystemAppend {
            brand_id: self.brand_id.clone(),
            conversation_id: conversation.id,
            text,
            key: Some(trigger.key(at)),
        });
        match self.store.append(append, self.clock.now()).await {
            Ok(appended) if !appended.duplicate => {
                metrics::counter!(crate::metrics::AUTOMATIC_MESSAGES, "trigger" => trigger.as_str()).increment(1);
                self.fanout.message(&self.brand_id, &appended, 0).await;
            }
            Ok(_) => {}
            Err(switchboard_store::AppendError::Store(error)) => return Err(error),
            Err(error) => tracing::debug!(%error, "automatic message not stored"),
        }
        Ok(())
    }

    async fn close(
        &mut self,
        conversation: ConversationId,
        by: Side,
        origin: u64,
    ) -> Result<Option<Conversation>, StoreError> {
        let closed_by = match by {
            Side::Consumer => CloseBy::Consumer,
            Side::Agent => CloseBy::Agent,
            Side::System => CloseBy::System,
        };
        let asks = closed_by == CloseBy::Agent
            && self.store.brand(&self.brand_id).await?.is_some_and(|brand| brand.csat_enabled);
        let survey = survey_on_close(closed_by, asks);
        let closed = self.store.close_conversation(&self.brand_id, conversation, by, survey, self.clock.now()).await?;
        if let Some(closed) = &closed {
            self.fanout.closed(closed, origin);
            if closed_by == CloseBy::Agent && self.automation.has(Trigger::Resolved) {
                let now = self.clock.now();
                if let Err(error) = self.notify(closed, Trigger::Resolved, now, None, None).await {
                    tracing::error!(%error, conversation, "could not store the resolved message");
                }
            }
        }
        // The close is stored; a seat handed on that was not is rebuilt from the store.
        let _ = self.input(Input::Closed(conversation), 0).await;
        Ok(closed)
    }

    async fn transfer(
        &mut self,
        actor: Staff,
        conversation_id: ConversationId,
        target: TransferTarget,
    ) -> ApiResult<Conversation> {
        let brand_id = self.brand_id.clone();
        self.fenced().await?;
        let conversation = self
            .store
            .conversation(&brand_id, conversation_id)
            .await?
            .ok_or_else(|| ApiError::code(ErrorCode::ConversationNotFound))?;
        if !actor.may_act(conversation.agent_id) {
            return Err(ApiError::code(ErrorCode::NotAssigned));
        }
        if conversation.status != ConversationStatus::Open {
            return Err(ApiError::code(ErrorCode::ConversationClosed));
        }
        let (to, notice, target_agent) = match target {
            TransferTarget::Agent(agent_id) => {
                let agent =
                    self.store.user(&brand_id, agent_id).await?.filter(|user| !user.disabled).ok_or_else(|| {
                        ApiError::new(ErrorCode::TransferRefused, format!("no active agent has id {agent_id}"))
                    })?;
                let notice = format!("Transferred to {}", agent.name);
                (TransferTo::Agent(agent_id), notice, Some(agent))
            }
            TransferTarget::Skill(Some(skill_id)) => {
                let skill = self
                    .store
                    .skills(&brand_id)
                    .await?
                    .into_iter()
                    .find(|skill| skill.id == skill_id)
                    .ok_or_else(|| ApiError::bad_request(format!("no skill has id {skill_id}")))?;
                (TransferTo::Skill(skill_id), format!("Transferred to {}", skill.name), None)
            }
            TransferTarget::Skill(None) => {
                (TransferTo::Skill(ANY_SKILL), "Transferred to the general queue".to_owned(), None)
            }
            TransferTarget::Queue => (TransferTo::Queue, "Returned to the queue".to_owned(), None),
        };
        let effects = match self.desk.handle(Input::Transfer { conversation: conversation_id, to }, self.clock.now()) {
            Ok(effects) => effects,
            Err(Refusal::NotOpen | Refusal::NoOffer) => return Err(ApiError::code(ErrorCode::ConversationClosed)),
            Err(Refusal::Transfer(refusal)) => {
                let agent = target_agent.as_ref().map_or("the agent", |agent| agent.name.as_str());
                return Err(refused(agent, refusal));
            }
        };
        // A transfer that was not stored is not reported as done (no notice, no count).
        self.carry_out(effects, 0).await?;
        metrics::counter!(crate::metrics::TRANSFERS).increment(1);
        let updated = self.store.conversation(&brand_id, conversation_id).await?.unwrap_or(conversation);
        if updated.status != ConversationStatus::Open {
            return Err(ApiError::code(ErrorCode::ConversationClosed));
        }
        self.post_notice(&updated, notice).await;
        Ok(updated)
    }

    /// Stores a system notice in a conversation and shows it to the consumer and the agent
    /// holding it. A failure is logged: the move it describes already happened.
    async fn post_notice(&self, conversation: &Conversation, text: String) {
        let append = Append::System(SystemAppend {
            brand_id: conversation.brand_id.clone(),
            conversation_id: conversation.id,
            text,
            key: None,
        });
        match self.store.append(append, self.clock.now()).await {
            Ok(appended) => self.fanout.message(&conversation.brand_id, &appended, 0).await,
            Err(error) => tracing::error!(%error, conversation = conversation.id, "could not store a system notice"),
        }
    }
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The activity that stops an inactivity warning about the agent's message at `since`: a
/// consumer message at or after it, or a later agent message (stored times).
fn answered_since(conversation: &Conversation, since: Millis) -> Option<Input> {
    let answered = conversation.last_consumer_at.is_some_and(|at| at >= since)
        || conversation.last_agent_at.is_some_and(|at| at > since);
    answered.then_some(Input::Activity {
        conversation: conversation.id,
        agent_at: conversation.last_agent_at,
        consumer_at: conversation.last_consumer_at,
    })
}

fn changed_conversation(change: Change) -> Option<ConversationId> {
    match change {
        Change::Assign { conversation, .. } | Change::Requeue { conversation, .. } => Some(conversation),
        Change::Record { conversation, .. } | Change::Priority { conversation, .. } => Some(conversation),
        Change::Notify { conversation, .. }
        | Change::AutoClose { conversation, .. }
        | Change::OffHours { conversation, .. } => Some(conversation),
        Change::AgentState { .. } => None,
    }
}

fn event_conversation(event: &switchboard_core::desk::DeskEvent) -> Option<ConversationId> {
    use switchboard_core::desk::DeskEvent;
    match event {
        DeskEvent::Assigned { conversation, .. }
        | DeskEvent::Queued { conversation, .. }
        | DeskEvent::WaitChanged { conversation, .. }
        | DeskEvent::Offered { conversation, .. }
        | DeskEvent::OfferWithdrawn { conversation, .. }
        | DeskEvent::Reprioritized { conversation, .. } => Some(*conversation),
        DeskEvent::Presence { .. } => None,
    }
}

fn refused(name: &str, refusal: TransferRefusal) -> ApiError {
    let message = match refusal {
        TransferRefusal::UnknownAgent => format!("{name} cannot take conversations"),
        TransferRefusal::NotOnline(state) => {
            format!("{name} is {} (only connected, online agents take transfers)", state.as_str())
        }
        TransferRefusal::AtCapacity { load, max } => {
            format!("{name} has no free capacity ({load} of {max} conversations)")
        }
        TransferRefusal::AlreadyAssigned => format!("the conversation is already with {name}"),
    };
    ApiError::new(ErrorCode::TransferRefused, message)
}

pub mod remote;

#[cfg(test)]
mod tests;
