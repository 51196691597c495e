//! The desk of one brand: its router, the state of its open conversations, the presence of
//! its agents, and the timers that move them (grace periods, estimated-wait refreshes).
//!
//! The desk is a state machine without IO: [`Desk::handle`] takes one [`Input`] and the time,
//! changes the desk and returns [`Effect`]s in the order they must be carried out: persist
//! this change, emit this event, arm or disarm this timer. The server's engine (one task per
//! brand) persists each change before it emits what follows it and before it takes the next
//! input, so nobody is ever told of a decision the store does not hold.
//!
//! Presence: an agent is *connected* while at least one of their sockets is; routing sees an
//! agent as online only while connected and having chosen online. When the last socket drops,
//! or the agent chooses offline, a grace period starts; if it ends before they are back, the
//! conversations they hold return to the queue with their original waiting time. Away and
//! back-soon agents keep theirs and get nothing new. After a restart every agent starts
//! disconnected, with a grace period counted from the boot.
//!
//! Auto-close (a brand setting): a conversation whose agent wrote last and whose consumer has
//! not answered for the set time closes as auto-closed, with an optional warning message
//! before. The clock starts at the later of the agent's last message and the assignment; it
//! does not run while the conversation waits in a queue. Consumer messages do not pass
//! through the desk (they are the hot path): when a warning or the close falls due, the engine
//! checks the stored times first and answers [`Input::Activity`] if the consumer wrote.
//!
//! Business hours (per skill, else the brand's; none: always open): a consumer who opens a
//! conversation while its skill is closed gets the off-hours message and, by the brand's
//! choice, waits for the opening (the conversation is held out of the queue until then, its
//! estimate counting the closed time) or is closed at once ([`OffHours`]). When the hours
//! open, the held conversations join their queue in their original order.
//!
//! Automatic messages: the desk says when one is due ([`Change::Notify`]); the engine picks
//! the brand's template and stores it as a system message, unique per trigger and moment.
//!
//! Invariants (property tests below): every open conversation is queued xor assigned; no
//! routing decision puts an agent over capacity; every armed timer fires once or is disarmed;
//! an agent who is not connected and online is never given a conversation.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use switchboard_protocol::AgentState;

use crate::automation::Trigger;
use crate::conversation::ConversationState;
use crate::hours::Schedule;
use crate::ids::{AgentId, ConsumerId, ConversationId, Millis, SkillId};
use crate::routing::{AgentProfile, Assignment, QueueSummary, QueuedConversation, Router, TransferRefusal};
use crate::wait::{self, HandlingTimes};

/// Settings of a brand's desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeskSettings {
    /// How long a disconnected (or offline) agent keeps their conversations.
    pub grace_ms: Millis,
    /// How often queued consumers' estimates are recomputed (sent only when significant).
    pub wait_refresh_ms: Millis,
    /// Close conversations the consumer stopped answering; `None`: never.
    pub auto_close: Option<AutoClose>,
}

/// When an unanswered conversation closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoClose {
    /// No consumer answer for this long after the agent's last message.
    pub after_ms: Millis,
    /// Warn the consumer this long before (an automatic message); `None` or not shorter than
    /// `after_ms`: no warning.
    pub warn_before_ms: Option<Millis>,
}

/// Default grace period: 60 seconds.
pub const DEFAULT_GRACE_MS: Millis = 60_000;

/// Default estimate refresh: every 10 seconds.
pub const DEFAULT_WAIT_REFRESH_MS: Millis = 10_000;

impl Default for DeskSettings {
    fn default() -> Self {
        DeskSettings { grace_ms: DEFAULT_GRACE_MS, wait_refresh_ms: DEFAULT_WAIT_REFRESH_MS, auto_close: None }
    }
}

/// What happens to a conversation opened outside its skill's business hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OffHours {
    /// It waits and is served when the hours open (the default).
    #[default]
    Queue,
    /// It is closed after the off-hours message; the consumer may write again later.
    Close,
}

impl OffHours {
    /// Stable name (storage, APIs).
    pub fn as_str(self) -> &'static str {
        match self {
            OffHours::Queue => "queue",
            OffHours::Close => "close",
        }
    }

    /// Parses [`OffHours::as_str`].
    pub fn parse(text: &str) -> Option<OffHours> {
        match text {
            "queue" => Some(OffHours::Queue),
            "close" => Some(OffHours::Close),
            _ => None,
        }
    }
}

/// A brand's business hours as the desk uses them.
#[derive(Debug, Clone, Default)]
pub struct Hours {
    /// The brand's; `None`: always open.
    pub brand: Option<Schedule>,
    /// Skills with hours of their own.
    pub skills: HashMap<SkillId, Schedule>,
    /// What happens to a conversation opened while closed.
    pub off_hours: OffHours,
}

impl Hours {
    /// The schedule of `skill`: its own, else the brand's; `None`: always open.
    pub fn of(&self, skill: SkillId) -> Option<&Schedule> {
        self.skills.get(&skill).or(self.brand.as_ref())
    }

    /// When `skill` next opens, if it is closed at `now` (`Some(None)`: closed and never
    /// opening within the schedule's horizon).
    fn closed_until(&self, skill: SkillId, now: Millis) -> Option<Option<Millis>> {
        let schedule = self.of(skill)?;
        (!schedule.is_open(now)).then(|| schedule.next_open(now))
    }
}

/// An agent's settings as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// The agent.
    pub agent: AgentId,
    /// Capacity and skills.
    pub profile: AgentProfile,
    /// The availability they chose (stored).
    pub chosen: AgentState,
    /// Disabled users take nothing and keep nothing.
    pub disabled: bool,
}

/// An open conversation as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenConversation {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its consumer.
    pub consumer: ConsumerId,
    /// Its skill ([`ANY_SKILL`](crate::ids::ANY_SKILL): none).
    pub skill: SkillId,
    /// Higher is served first.
    pub priority: i32,
    /// When it started waiting: its opening, kept across transfers.
    pub waiting_since: Millis,
    /// The agent holding it, if any.
    pub agent: Option<AgentId>,
    /// Since when that agent holds it.
    pub assigned_at: Option<Millis>,
    /// When an agent last wrote in it.
    pub last_agent_at: Option<Millis>,
    /// When the consumer last wrote in it.
    pub last_consumer_at: Option<Millis>,
}

/// Where a transfer sends a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferTo {
    /// The queue of a skill ([`ANY_SKILL`](crate::ids::ANY_SKILL): the general queue); the agent who held it is not
    /// offered it again.
    Skill(SkillId),
    /// Back to the queue it is in; the agent who held it is not offered it again.
    Queue,
    /// A named agent, ahead of the queue.
    Agent(AgentId),
}

/// One thing that happened, for the desk to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An agent was created or their settings changed.
    Agent(AgentSettings),
    /// One of the agent's sockets authenticated.
    AgentConnected(AgentId),
    /// One of the agent's sockets ended.
    AgentDisconnected(AgentId),
    /// The agent chose an availability.
    AgentChose { agent: AgentId, state: AgentState },
    /// A message opened a conversation (already stored). With `agent`: an agent's proactive
    /// message, already assigned to them.
    Opened(OpenConversation),
    /// A conversation closed (already stored), or the store says it is not open any more.
    Closed(ConversationId),
    /// Move a conversation.
    Transfer { conversation: ConversationId, to: TransferTo },
    /// How each skill routes (skills absent here assign directly at normal priority).
    Skills(Vec<SkillRules>),
    /// A manager changed a conversation's priority.
    SetPriority { conversation: ConversationId, priority: Priority },
    /// An agent takes the conversation offered to them.
    Accept { conversation: ConversationId, agent: AgentId },
    /// An agent passes on the conversation offered to them.
    Decline { conversation: ConversationId, agent: AgentId },
    /// An agent's message was stored in the conversation (starts the auto-close clock).
    AgentWrote { conversation: ConversationId, at: Millis },
    /// What the store says of a conversation's messages when a warning or auto-close fell
    /// due: the consumer (or an agent) wrote after what the desk knew.
    Activity { conversation: ConversationId, agent_at: Option<Millis>, consumer_at: Option<Millis> },
    /// Time passed: fire the timers that are due.
    Tick,
}

/// How urgent a conversation is: the queue serves higher first, then older.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// The default.
    #[default]
    Normal,
    /// Ahead of normal.
    High,
    /// Ahead of everything.
    Urgent,
}

impl Priority {
    /// The stored (and queue-ordering) number: 0, 1, 2.
    pub fn rank(self) -> i32 {
        match self {
            Priority::Normal => 0,
            Priority::High => 1,
            Priority::Urgent => 2,
        }
    }

    /// From [`Priority::rank`]; out-of-range numbers are clamped.
    pub fn from_rank(rank: i64) -> Priority {
        match rank {
            i64::MIN..=0 => Priority::Normal,
            1 => Priority::High,
            _ => Priority::Urgent,
        }
    }

    /// Stable name in APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

/// How a skill routes: offer mode (with its timeout) or direct assignment, and the priority
/// its new conversations start with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkillRules {
    /// The skill.
    pub skill: SkillId,
    /// `Some`: ring one agent at a time for this long; `None`: assign directly.
    pub offer_timeout_ms: Option<Millis>,
    /// Priority of the skill's new conversations.
    pub priority: Priority,
}

/// A change to persist before anything that follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The conversation is now the agent's.
    Assign { conversation: ConversationId, agent: AgentId },
    /// The conversation waits in the queue of `skill` ([`ANY_SKILL`](crate::ids::ANY_SKILL): none), with no agent.
    Requeue { conversation: ConversationId, skill: SkillId },
    /// The agent's chosen availability.
    AgentState { agent: AgentId, state: AgentState },
    /// An entry in the conversation's event log that changes nothing else.
    Record { conversation: ConversationId, agent: AgentId, kind: RecordKind },
    /// The conversation's priority.
    Priority { conversation: ConversationId, priority: Priority },
    /// The conversation opened outside its skill's hours: recorded (reports count it) and,
    /// with `close`, closed (by the system) once the off-hours message is out.
    OffHours { conversation: ConversationId, close: bool },
    /// An automatic message is due: the brand's template for `trigger`, if it has one, as a
    /// system message keyed by `trigger.key(at)` (so it is stored once). `eta`: the wait it
    /// tells (queued, wait changed); `agent`: who took the conversation (assigned).
    Notify { conversation: ConversationId, trigger: Trigger, at: Millis, eta: Option<u32>, agent: Option<AgentId> },
    /// The consumer has not answered since the agent's message at `since`: close it as
    /// auto-closed — unless the store shows a consumer message after `since` (then the
    /// engine answers [`Input::Activity`] instead).
    AutoClose { conversation: ConversationId, since: Millis },
}

/// What a [`Change::Record`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// The agent declined an offer.
    OfferDeclined,
    /// The agent let an offer expire.
    OfferExpired,
}

impl RecordKind {
    /// Stable form used in the event log.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::OfferDeclined => "offer_declined",
            RecordKind::OfferExpired => "offer_expired",
        }
    }
}

/// Why an offer ended without being accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfferEnd {
    /// The agent declined.
    Declined,
    /// Nobody answered in time.
    Expired,
    /// The agent went away (disconnected, or left `online`).
    AgentUnavailable,
    /// The conversation closed or was moved.
    Moved,
}

/// Why a conversation went to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignReason {
    /// The router chose the agent.
    Routed,
    /// Transferred to this agent by name.
    Transferred,
}

/// Why a conversation waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "why", content = "skill")]
pub enum QueueReason {
    /// It just opened.
    New,
    /// Transferred to a skill's queue.
    Transferred(SkillId),
    /// Handed back to the queue by its agent (or a manager).
    BackToQueue,
    /// Its agent stayed disconnected (or offline) past the grace period, or was disabled.
    AgentUnavailable,
}

/// Version of the serialized form of [`DeskEvent`] (JSON, tagged by `event`): other nodes and
/// later readers of a stored event must keep reading what this version wrote. A change that
/// breaks the samples in this module's tests needs a new version.
pub const DESK_EVENT_VERSION: u32 = 1;

/// A domain event: what the desk decided, for fan-out to tell the people concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DeskEvent {
    /// A conversation went to an agent (`from`: the agent who had it before).
    Assigned {
        conversation: ConversationId,
        consumer: ConsumerId,
        agent: AgentId,
        from: Option<AgentId>,
        reason: AssignReason,
    },
    /// A conversation waits (`from`: the agent who had it before), with its estimate.
    Queued {
        conversation: ConversationId,
        consumer: ConsumerId,
        eta: Option<u32>,
        from: Option<AgentId>,
        reason: QueueReason,
    },
    /// A waiting conversation's estimate changed significantly.
    WaitChanged { conversation: ConversationId, consumer: ConsumerId, eta: Option<u32> },
    /// A conversation is offered to an agent until `until` (nothing is persisted: it stays
    /// queued in the store until accepted).
    Offered { conversation: ConversationId, consumer: ConsumerId, agent: AgentId, until: Millis },
    /// An offer ended without being accepted.
    OfferWithdrawn { conversation: ConversationId, agent: AgentId, why: OfferEnd },
    /// A conversation's priority changed.
    Reprioritized { conversation: ConversationId, priority: Priority },
    /// An agent's presence changed.
    Presence { agent: AgentId, presence: PresenceView },
}

/// A timer of the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// Recompute queued consumers' estimates.
    WaitRefresh,
    /// The agent's grace period ends.
    Grace(AgentId),
    /// The offer of a conversation expires.
    Offer(ConversationId),
    /// Warn the consumer that the conversation will close.
    InactiveWarning(ConversationId),
    /// Close the unanswered conversation.
    AutoClose(ConversationId),
    /// A skill with held conversations opens.
    Opens(SkillId),
}

/// What the engine does, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Write this to the store; what follows waits for it.
    Persist(Change),
    /// Tell the people concerned.
    Emit(DeskEvent),
    /// The timer fires at this time (replacing an earlier arming).
    Arm(Timer, Millis),
    /// The timer will not fire.
    Disarm(Timer),
}

/// Why the desk refused an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The desk has no such open conversation.
    #[error("the conversation is not open")]
    NotOpen,
    /// The router refused a transfer to an agent.
    #[error("transfer refused: {0:?}")]
    Transfer(TransferRefusal),
    /// No offer of this conversation to this agent is running.
    #[error("no such offer")]
    NoOffer,
}

/// An agent's presence as dashboards show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceView {
    /// Availability as routing uses it: the chosen one while connected, else offline.
    pub state: AgentState,
    /// The availability the agent chose.
    pub chosen: AgentState,
    /// At least one socket is connected.
    pub connected: bool,
    /// The end of the grace period running now, if any.
    pub grace_until: Option<Millis>,
}

/// An agent on the floor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentFloor {
    /// The agent.
    pub agent: AgentId,
    /// Presence.
    pub presence: PresenceView,
    /// Conversations held.
    pub load: u32,
    /// Capacity.
    pub max_concurrent: u32,
}

/// A conversation waiting for an agent (queued, or being offered), as a queue page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its skill ([`ANY_SKILL`](crate::ids::ANY_SKILL): none).
    pub skill: SkillId,
    /// Its priority.
    pub priority: Priority,
    /// Since when it waits.
    pub since: Millis,
    /// The agent it is being offered to, if any.
    pub offered_to: Option<AgentId>,
}

/// A skill on the floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillFloor {
    /// Waiting conversations.
    pub queue: QueueSummary,
    /// Estimated wait of a conversation arriving now.
    pub eta_new: Option<u32>,
}

#[derive(Debug, Clone)]
struct Presence {
    chosen: AgentState,
    sockets: u32,
    disabled: bool,
}

impl Presence {
    fn effective(&self) -> AgentState {
        if self.disabled || self.sockets == 0 { AgentState::Offline } else { self.chosen }
    }

    /// Whether the agent's conversations are on borrowed time.
    fn needs_grace(&self) -> bool {
        !self.disabled && (self.sockets == 0 || self.chosen == AgentState::Offline)
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    consumer: ConsumerId,
    skill: SkillId,
    priority: i32,
    waiting_since: Millis,
    assigned_at: Option<Millis>,
    /// The last estimate told to the consumer, and when.
    told: Option<(Option<u32>, Millis)>,
    last_agent_at: Option<Millis>,
    last_consumer_at: Option<Millis>,
}

/// A running auto-close clock: when it started (the agent's last message, or the assignment
/// if later), when the warning is due (if the brand warns) and when the close is.
#[derive(Debug, Clone, Copy)]
struct InactivityDeadlines {
    since: Millis,
    warn_at: Option<Millis>,
    close_at: Millis,
}

/// Timers by due time (the shape of mini-redis's expirations): a set ordered by
/// (due, timer) to find the next, and a map to replace or cancel one.
#[derive(Debug, Clone, Default)]
struct Timers {
    by_due: BTreeSet<(Millis, Timer)>,
    due_of: HashMap<Timer, Millis>,
}

impl Timers {
    fn arm(&mut self, timer: Timer, at: Millis, out: &mut Vec<Effect>) {
        if let Some(old) = self.due_of.insert(timer, at) {
            self.by_due.remove(&(old, timer));
        }
        self.by_due.insert((at, timer));
        out.push(Effect::Arm(timer, at));
    }

    fn disarm(&mut self, timer: Timer, out: &mut Vec<Effect>) {
        if let Some(old) = self.due_of.remove(&timer) {
            self.by_due.remove(&(old, timer));
            out.push(Effect::Disarm(timer));
        }
    }

    fn due(&self, timer: Timer) -> Option<Millis> {
        self.due_of.get(&timer).copied()
    }

    fn pop_due(&mut self, now: Millis) -> Option<Timer> {
        let (at, timer) = *self.by_due.first()?;
        if at > now {
            return None;
        }
        self.by_due.remove(&(at, timer));
        self.due_of.remove(&timer);
        Some(timer)
    }
}

/// A running offer: the router holds the agent's seat meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offer {
    agent: AgentId,
    until: Millis,
}

/// The desk of one brand.
#[derive(Debug, Clone)]
pub struct Desk {
    settings: DeskSettings,
    router: Router,
    /// How skills route (offer mode, starting priority); absent: assign, normal.
    skill_rules: HashMap<SkillId, SkillRules>,
    /// Running offers; the router counts each as an assignment (the seat is held).
    offers: HashMap<ConversationId, Offer>,
    presence: HashMap<AgentId, Presence>,
    open: HashMap<ConversationId, Tracked>,
    timers: Timers,
    handling: HandlingTimes,
    hours: Hours,
    /// The time of the latest input (estimates of held conversations count from it).
    now: Millis,
    /// Conversations waiting for their skill to open, per skill, oldest first; not in the
    /// router's queues until then.
    held: HashMap<SkillId, Vec<ConversationId>>,
}

/// Effects of one input, with the bookkeeping that makes their order right.
#[derive(Default)]
struct Batch {
    effects: Vec<Effect>,
    /// Conversations taken from an agent during this input: the agent who had each.
    moved_from: HashMap<ConversationId, AgentId>,
    /// Conversations put in a queue during this input, in order, with why.
    queued: Vec<(ConversationId, QueueReason)>,
}

impl Desk {
    /// An empty desk.
    pub fn new(settings: DeskSettings) -> Desk {
        Desk {
            settings,
            router: Router::new(),
            skill_rules: HashMap::new(),
            offers: HashMap::new(),
            presence: HashMap::new(),
            open: HashMap::new(),
            timers: Timers::default(),
            handling: HandlingTimes::default(),
            hours: Hours::default(),
            now: 0,
            held: HashMap::new(),
        }
    }

    /// Sets the brand's business hours. Conversations held for a skill that is open now join
    /// its queue; the next openings are armed. Returns the effects.
    pub fn set_hours(&mut self, hours: Hours, now: Millis) -> Vec<Effect> {
        self.hours = hours;
        self.now = now;
        let mut batch = Batch::default();
        let mut skills: Vec<SkillId> = self.held.keys().copied().collect();
        skills.sort_unstable();
        for skill in skills {
            self.release_or_rearm(skill, now, &mut batch);
        }
        self.finish(batch, now)
    }

    /// The brand's business hours in force.
    pub fn hours(&self) -> &Hours {
        &self.hours
    }

    /// Puts the held conversations of `skill` in its queue if it is open at `now`, else arms
    /// the timer of its next opening.
    fn release_or_rearm(&mut self, skill: SkillId, now: Millis, batch: &mut Batch) {
        match self.hours.closed_until(skill, now) {
            Some(opens) => match opens {
                Some(at) => self.timers.arm(Timer::Opens(skill), at, &mut batch.effects),
                None => self.timers.disarm(Timer::Opens(skill), &mut batch.effects),
            },
            None => {
                self.timers.disarm(Timer::Opens(skill), &mut batch.effects);
                for conversation in self.held.remove(&skill).unwrap_or_default() {
                    if self.open.contains_key(&conversation) {
                        let entry = self.entry_of(conversation, None);
                        let assignments = self.router.enqueue(entry, now);
                        self.assigned(assignments, now, batch);
                    }
                }
            }
        }
    }

    fn is_held(&self, conversation: ConversationId) -> bool {
        self.held.values().any(|held| held.contains(&conversation))
    }

    /// Rebuilds a desk from the store: agents (all disconnected, unless `sockets` says how
    /// many sockets each has, when a live desk is rebuilt) and open conversations. Agents who
    /// hold conversations and are not connected get a grace period ending at
    /// `grace_from + grace`. Returns the desk and the effects of putting it right: a
    /// conversation held by an unknown or disabled agent goes back to the queue.
    #[expect(clippy::too_many_arguments, reason = "the stored state of a desk, one argument per table it comes from")]
    pub fn restore(
        settings: DeskSettings,
        hours: Hours,
        skill_rules: Vec<SkillRules>,
        agents: Vec<AgentSettings>,
        conversations: Vec<OpenConversation>,
        sockets: &HashMap<AgentId, u32>,
        grace_from: Millis,
        now: Millis,
    ) -> (Desk, Vec<Effect>) {
        let mut desk = Desk::new(settings);
        desk.hours = hours;
        desk.now = now;
        desk.skill_rules = skill_rules.into_iter().map(|rules| (rules.skill, rules)).collect();
        let mut batch = Batch::default();
        for settings in agents {
            let agent = settings.agent;
            desk.presence.insert(
                agent,
                Presence {
                    chosen: settings.chosen,
                    sockets: sockets.get(&agent).copied().unwrap_or(0),
                    disabled: settings.disabled,
                },
            );
            if !settings.disabled {
                desk.router.upsert_agent(agent, settings.profile, now);
            }
        }
        let mut held: Vec<AgentId> = Vec::new();
        for open in conversations {
            desk.open.insert(open.conversation, Tracked::of(&open));
            match open.agent.filter(|agent| desk.router.knows_agent(*agent)) {
                Some(agent) => {
                    desk.router.restore_assignment(open.conversation, agent);
                    held.push(agent);
                }
                None => {
                    if open.agent.is_some() {
                        batch.effects.push(Effect::Persist(Change::Requeue {
                            conversation: open.conversation,
                            skill: open.skill,
                        }));
                        if let Some(tracked) = desk.open.get_mut(&open.conversation) {
                            tracked.assigned_at = None;
                        }
                    }
                    if desk.hours.closed_until(open.skill, now).is_some() {
                        // Waits for its skill to open, as before the restart.
                        desk.held.entry(open.skill).or_default().push(open.conversation);
                        continue;
                    }
                    let entry = desk.entry_of(open.conversation, None);
                    let assignments = desk.router.enqueue(entry, now);
                    desk.assigned(assignments, now, &mut batch);
                }
            }
        }
        let mut closed_skills: Vec<SkillId> = desk.held.keys().copied().collect();
        closed_skills.sort_unstable();
        for skill in closed_skills {
            desk.release_or_rearm(skill, now, &mut batch);
        }
        held.sort_unstable();
        held.dedup();
        for agent in held {
            if desk.presence.get(&agent).is_some_and(Presence::needs_grace) {
                let at = grace_from.saturating_add(settings.grace_ms);
                desk.timers.arm(Timer::Grace(agent), at, &mut batch.effects);
            }
        }
        let mut agents: Vec<AgentId> = desk.presence.keys().copied().collect();
        agents.sort_unstable();
        for agent in agents {
            let state = desk.presence[&agent].effective();
            let assignments = desk.router.set_agent_state(agent, state, now);
            desk.assigned(assignments, now, &mut batch);
        }
        // Auto-close clocks from the stored times: what fell due while the node was down
        // fires at the first tick.
        let mut open: Vec<ConversationId> = desk.open.keys().copied().collect();
        open.sort_unstable();
        for conversation in open {
            desk.inactivity(conversation, &mut batch.effects);
        }
        let effects = desk.finish(batch, now);
        (desk, effects)
    }

    /// The settings in force.
    pub fn settings(&self) -> DeskSettings {
        self.settings
    }

    /// Changes the settings (a brand setting changed). A running grace period keeps its end;
    /// auto-close timers follow the new setting at once. Returns the timer effects.
    pub fn set_settings(&mut self, settings: DeskSettings) -> Vec<Effect> {
        self.settings = settings;
        let mut effects = Vec::new();
        let mut open: Vec<ConversationId> = self.open.keys().copied().collect();
        open.sort_unstable();
        for conversation in open {
            self.inactivity(conversation, &mut effects);
        }
        effects
    }

    /// How many sockets each agent has (to carry presence into a rebuilt desk).
    pub fn sockets(&self) -> HashMap<AgentId, u32> {
        self.presence.iter().filter(|(_, p)| p.sockets > 0).map(|(agent, p)| (*agent, p.sockets)).collect()
    }

    /// When the next timer is due.
    pub fn next_due(&self) -> Option<Millis> {
        self.timers.by_due.first().map(|(at, _)| *at)
    }

    /// Where a conversation stands, if it is open.
    pub fn state_of(&self, conversation: ConversationId) -> Option<ConversationState> {
        let tracked = self.open.get(&conversation)?;
        if let Some(offer) = self.offers.get(&conversation) {
            return Some(ConversationState::Offered { agent: offer.agent, until: offer.until });
        }
        Some(match self.router.assignee(conversation) {
            Some(agent) => ConversationState::Assigned { agent, since: tracked.assigned_at.unwrap_or(0) },
            None => ConversationState::Queued { skill: tracked.skill, since: tracked.waiting_since },
        })
    }

    /// The agent holding a conversation (not one it is only offered to).
    pub fn assignee(&self, conversation: ConversationId) -> Option<AgentId> {
        if self.offers.contains_key(&conversation) {
            return None;
        }
        self.router.assignee(conversation)
    }

    /// An agent's presence, if known.
    pub fn presence(&self, agent: AgentId) -> Option<PresenceView> {
        let presence = self.presence.get(&agent)?;
        Some(PresenceView {
            state: presence.effective(),
            chosen: presence.chosen,
            connected: presence.sockets > 0,
            grace_until: self.timers.due(Timer::Grace(agent)),
        })
    }

    /// Every known agent with presence and load, by id.
    pub fn agents(&self) -> Vec<AgentFloor> {
        let mut agents: Vec<AgentFloor> = self
            .router
            .agents()
            .into_iter()
            .filter_map(|view| {
                Some(AgentFloor {
                    agent: view.agent,
                    presence: self.presence(view.agent)?,
                    load: view.load,
                    max_concurrent: view.profile.max_concurrent,
                })
            })
            .collect();
        agents.sort_by_key(|floor| floor.agent);
        agents
    }

    /// Queue and estimate of a new arrival for each of `skills`.
    pub fn skills(&self, skills: &[SkillId]) -> HashMap<SkillId, SkillFloor> {
        let summaries = self.router.queue_summaries();
        skills
            .iter()
            .map(|skill| {
                let queue = summaries.get(skill).copied().unwrap_or_default();
                let (capacity, free) = self.router.staffing(*skill);
                let eta_new = wait::estimate(queue.depth, capacity, free, self.handling.of(*skill));
                (*skill, SkillFloor { queue, eta_new })
            })
            .collect()
    }

    /// The current estimate of a waiting conversation.
    pub fn estimated_wait(&self, conversation: ConversationId) -> Option<u32> {
        if let Some((skill, held)) = self.held.iter().find(|(_, held)| held.contains(&conversation)) {
            return self.held_wait(*skill, held.iter().position(|c| *c == conversation)?);
        }
        let entry = self.router.queued_entry(conversation)?;
        let position = self.router.position(conversation)?;
        let (capacity, free) = self.router.staffing(entry.skill);
        wait::estimate(position, capacity, free, self.handling.of(entry.skill))
    }

    /// The estimate of the held conversation at `position` (0-based) of `skill`: the time
    /// until the skill opens, plus its wait from there (behind those already queued).
    fn held_wait(&self, skill: SkillId, position: usize) -> Option<u32> {
        let opens_in = self.timers.due(Timer::Opens(skill))?.saturating_sub(self.now);
        let queued = self.router.queue_summaries().get(&skill).map_or(0, |queue| queue.depth);
        let (capacity, free) = self.router.staffing(skill);
        let after = wait::estimate(queued + position, capacity, free, self.handling.of(skill)).unwrap_or(0);
        u32::try_from(opens_in / 1000).ok()?.checked_add(after)
    }

    /// Waiting conversations in serving order.
    pub fn queued(&self) -> Vec<QueuedConversation> {
        self.router.queued()
    }

    /// Everything waiting for an agent: the queue in serving order, and the conversations
    /// being offered (ringing first, by priority and age).
    pub fn waiting(&self) -> Vec<Waiting> {
        let mut offered: Vec<Waiting> = self
            .offers
            .iter()
            .filter_map(|(conversation, offer)| {
                let tracked = self.open.get(conversation)?;
                Some(Waiting {
                    conversation: *conversation,
                    skill: tracked.skill,
                    priority: Priority::from_rank(i64::from(tracked.priority)),
                    since: tracked.waiting_since,
                    offered_to: Some(offer.agent),
                })
            })
            .collect();
        offered.sort_by_key(|w| (std::cmp::Reverse(w.priority), w.since, w.conversation));
        let mut held: Vec<Waiting> = self
            .held
            .iter()
            .flat_map(|(skill, held)| held.iter().map(move |c| (*skill, *c)))
            .filter_map(|(skill, conversation)| {
                let tracked = self.open.get(&conversation)?;
                Some(Waiting {
                    conversation,
                    skill,
                    priority: Priority::from_rank(i64::from(tracked.priority)),
                    since: tracked.waiting_since,
                    offered_to: None,
                })
            })
            .collect();
        held.sort_by_key(|w| (std::cmp::Reverse(w.priority), w.since, w.conversation));
        offered.extend(self.router.queued().into_iter().map(|entry| Waiting {
            conversation: entry.conversation,
            skill: entry.skill,
            priority: Priority::from_rank(i64::from(entry.priority)),
            since: entry.enqueued_at,
            offered_to: None,
        }));
        // Those waiting for their skill to open come last: nobody serves them before.
        offered.extend(held);
        offered
    }

    /// Handles one input at `now`; returns what to do, in order.
    pub fn handle(&mut self, input: Input, now: Millis) -> Result<Vec<Effect>, Refusal> {
        self.now = self.now.max(now);
        let mut batch = Batch::default();
        match input {
            Input::Agent(settings) => self.agent_settings(settings, now, &mut batch),
            Input::AgentConnected(agent) => {
                self.change_presence(agent, now, &mut batch, |presence| presence.sockets += 1);
            }
            Input::AgentDisconnected(agent) => {
                self.change_presence(agent, now, &mut batch, |presence| {
                    presence.sockets = presence.sockets.saturating_sub(1);
                });
            }
            Input::AgentChose { agent, state } => {
                if self.presence.contains_key(&agent) {
                    batch.effects.push(Effect::Persist(Change::AgentState { agent, state }));
                    self.change_presence(agent, now, &mut batch, |presence| presence.chosen = state);
                }
            }
            Input::Opened(open) => self.opened(open, now, &mut batch),
            Input::Closed(conversation) => {
                self.withdraw(conversation, OfferEnd::Moved, &mut batch);
                self.timers.disarm(Timer::InactiveWarning(conversation), &mut batch.effects);
                self.timers.disarm(Timer::AutoClose(conversation), &mut batch.effects);
                for held in self.held.values_mut() {
                    held.retain(|c| *c != conversation);
                }
                if let Some(tracked) = self.open.remove(&conversation) {
                    let (held_by, assignments) = self.router.release(conversation, now);
                    if held_by.is_some()
                        && let Some(since) = tracked.assigned_at
                    {
                        self.handling.record(tracked.skill, now - since);
                    }
                    self.assigned(assignments, now, &mut batch);
                }
            }
            Input::Transfer { conversation, to } => {
                if !self.open.contains_key(&conversation) {
                    return Err(Refusal::NotOpen);
                }
                // Refuse before anything changes: the offer (if any) stands until the move.
                if let TransferTo::Agent(agent) = to {
                    self.router.check_transfer(conversation, agent).map_err(Refusal::Transfer)?;
                }
                self.withdraw(conversation, OfferEnd::Moved, &mut batch);
                self.transfer(conversation, to, now, &mut batch)?;
            }
            Input::Skills(skills) => self.skill_rules = skills.into_iter().map(|rules| (rules.skill, rules)).collect(),
            Input::SetPriority { conversation, priority } => {
                let tracked = self.open.get_mut(&conversation).ok_or(Refusal::NotOpen)?;
                tracked.priority = priority.rank();
                batch.effects.push(Effect::Persist(Change::Priority { conversation, priority }));
                batch.effects.push(Effect::Emit(DeskEvent::Reprioritized { conversation, priority }));
                // A waiting conversation takes its new place now (keeping its waiting time
                // and whom it avoids); an offered or assigned one keeps its agent.
                if let Some(entry) = self.router.queued_entry(conversation) {
                    let entry = QueuedConversation { priority: priority.rank(), ..entry };
                    let assignments = self.router.requeue(entry, now);
                    self.assigned(assignments, now, &mut batch);
                }
            }
            Input::Accept { conversation, agent } => {
                match self.offers.get(&conversation) {
                    Some(offer) if offer.agent == agent => {}
                    _ => return Err(Refusal::NoOffer),
                }
                self.offers.remove(&conversation);
                self.timers.disarm(Timer::Offer(conversation), &mut batch.effects);
                let from = batch.moved_from.get(&conversation).copied();
                if let Some(tracked) = self.open.get_mut(&conversation) {
                    tracked.assigned_at = Some(now);
                    tracked.told = None;
                    batch.effects.push(Effect::Persist(Change::Assign { conversation, agent }));
                    batch.effects.push(Effect::Emit(DeskEvent::Assigned {
                        conversation,
                        consumer: tracked.consumer,
                        agent,
                        from,
                        reason: AssignReason::Routed,
                    }));
                    batch.effects.push(notify_assigned(conversation, agent, now));
                }
            }
            Input::Decline { conversation, agent } => {
                match self.offers.get(&conversation) {
                    Some(offer) if offer.agent == agent => {}
                    _ => return Err(Refusal::NoOffer),
                }
                self.timers.disarm(Timer::Offer(conversation), &mut batch.effects);
                self.offer_ended(conversation, OfferEnd::Declined, now, &mut batch);
            }
            Input::AgentWrote { conversation, at } => {
                let tracked = self.open.get_mut(&conversation).ok_or(Refusal::NotOpen)?;
                tracked.last_agent_at = tracked.last_agent_at.max(Some(at));
                self.inactivity(conversation, &mut batch.effects);
            }
            Input::Activity { conversation, agent_at, consumer_at } => {
                let tracked = self.open.get_mut(&conversation).ok_or(Refusal::NotOpen)?;
                tracked.last_agent_at = tracked.last_agent_at.max(agent_at);
                tracked.last_consumer_at = tracked.last_consumer_at.max(consumer_at);
                self.inactivity(conversation, &mut batch.effects);
            }
            Input::Tick => {
                while let Some(timer) = self.timers.pop_due(now) {
                    match timer {
                        Timer::Grace(agent) => self.grace_ended(agent, now, &mut batch),
                        Timer::WaitRefresh => self.refresh_waits(now, &mut batch),
                        Timer::Offer(conversation) => {
                            self.offer_ended(conversation, OfferEnd::Expired, now, &mut batch)
                        }
                        // An inactivity timer fires only if its deadline still stands: an
                        // earlier timer of this tick may have moved the conversation (a grace
                        // period ended and another agent took it), which starts a new clock.
                        Timer::InactiveWarning(conversation) => match self.inactivity_deadlines(conversation) {
                            Some(deadlines) if deadlines.warn_at.is_some_and(|at| at <= now) => {
                                batch.effects.push(Effect::Persist(Change::Notify {
                                    conversation,
                                    trigger: Trigger::InactiveWarning,
                                    at: deadlines.since,
                                    eta: None,
                                    agent: None,
                                }));
                            }
                            _ => self.inactivity(conversation, &mut batch.effects),
                        },
                        Timer::Opens(skill) => self.release_or_rearm(skill, now, &mut batch),
                        Timer::AutoClose(conversation) => match self.inactivity_deadlines(conversation) {
                            // The engine closes it (and answers `Closed`) or, if the consumer
                            // wrote meanwhile, answers `Activity`.
                            Some(deadlines) if deadlines.close_at <= now => {
                                let since = deadlines.since;
                                batch.effects.push(Effect::Persist(Change::AutoClose { conversation, since }));
                            }
                            _ => self.inactivity(conversation, &mut batch.effects),
                        },
                    }
                }
            }
        }
        Ok(self.finish(batch, now))
    }

    fn agent_settings(&mut self, settings: AgentSettings, now: Millis, batch: &mut Batch) {
        let agent = settings.agent;
        self.presence.entry(agent).or_insert(Presence { chosen: settings.chosen, sockets: 0, disabled: false });
        let assignments = self.router.upsert_agent(agent, settings.profile, now);
        self.assigned(assignments, now, batch);
        self.change_presence(agent, now, batch, |presence| {
            presence.chosen = settings.chosen;
            presence.disabled = settings.disabled;
        });
        if settings.disabled {
            self.return_all(agent, now, batch);
        }
    }

    /// Changes an agent's presence, brings routing and the grace timer in line with it, and
    /// tells dashboards if what they show changed.
    fn change_presence(&mut self, agent: AgentId, now: Millis, batch: &mut Batch, change: impl FnOnce(&mut Presence)) {
        let before = self.presence(agent);
        let Some(presence) = self.presence.get_mut(&agent) else { return };
        change(presence);
        let (state, needs_grace) = (presence.effective(), presence.needs_grace());
        if state != AgentState::Online {
            let theirs: Vec<ConversationId> =
                self.offers.iter().filter(|(_, offer)| offer.agent == agent).map(|(c, _)| *c).collect();
            for conversation in theirs {
                self.timers.disarm(Timer::Offer(conversation), &mut batch.effects);
                self.offer_ended(conversation, OfferEnd::AgentUnavailable, now, batch);
            }
        }
        // Grace matters only to an agent who holds something.
        let needs_grace = needs_grace && self.router.load(agent) > 0;
        let assignments = self.router.set_agent_state(agent, state, now);
        self.assigned(assignments, now, batch);
        let grace = Timer::Grace(agent);
        match (needs_grace, self.timers.due(grace)) {
            (true, None) => self.timers.arm(grace, now.saturating_add(self.settings.grace_ms), &mut batch.effects),
            (false, Some(_)) => self.timers.disarm(grace, &mut batch.effects),
            _ => {}
        }
        let after = self.presence(agent);
        if let Some(presence) = after.filter(|after| Some(*after) != before) {
            batch.effects.push(Effect::Emit(DeskEvent::Presence { agent, presence }));
        }
    }

    fn grace_ended(&mut self, agent: AgentId, now: Millis, batch: &mut Batch) {
        self.return_all(agent, now, batch);
        if let Some(presence) = self.presence(agent) {
            batch.effects.push(Effect::Emit(DeskEvent::Presence { agent, presence }));
        }
    }

    /// Every conversation `agent` holds goes back to its queue, keeping its waiting time.
    fn return_all(&mut self, agent: AgentId, now: Millis, batch: &mut Batch) {
        for conversation in self.router.assigned_to(agent) {
            let Some(tracked) = self.open.get(&conversation) else { continue };
            let skill = tracked.skill;
            self.requeue(conversation, skill, None, QueueReason::AgentUnavailable, now, batch);
        }
    }

    fn opened(&mut self, open: OpenConversation, now: Millis, batch: &mut Batch) {
        if self.open.contains_key(&open.conversation) {
            return;
        }
        self.open.insert(open.conversation, Tracked::of(&open));
        // A new conversation starts at its skill's priority (an entry point routes to a skill).
        let start = self.skill_rules.get(&open.skill).map_or(Priority::Normal, |rules| rules.priority);
        if open.agent.is_none() && start.rank() > open.priority {
            if let Some(tracked) = self.open.get_mut(&open.conversation) {
                tracked.priority = start.rank();
            }
            batch.effects.push(Effect::Persist(Change::Priority { conversation: open.conversation, priority: start }));
        }
        match open.agent {
            Some(agent) => {
                self.router.restore_assignment(open.conversation, agent);
                if self.presence.get(&agent).is_some_and(Presence::needs_grace)
                    && self.timers.due(Timer::Grace(agent)).is_none()
                {
                    let at = now.saturating_add(self.settings.grace_ms);
                    self.timers.arm(Timer::Grace(agent), at, &mut batch.effects);
                }
            }
            None => {
                batch.effects.push(Effect::Persist(Change::Notify {
                    conversation: open.conversation,
                    trigger: Trigger::Welcome,
                    at: open.waiting_since,
                    eta: None,
                    agent: None,
                }));
                if self.hours.closed_until(open.skill, now).is_some() {
                    let close = self.hours.off_hours == OffHours::Close;
                    batch.effects.push(Effect::Persist(Change::Notify {
                        conversation: open.conversation,
                        trigger: Trigger::OffHours,
                        at: open.waiting_since,
                        eta: None,
                        agent: None,
                    }));
                    batch.effects.push(Effect::Persist(Change::OffHours { conversation: open.conversation, close }));
                    if close {
                        // The engine closes it and answers `Closed`.
                        return;
                    }
                    self.held.entry(open.skill).or_default().push(open.conversation);
                    self.release_or_rearm(open.skill, now, batch);
                    batch.queued.push((open.conversation, QueueReason::New));
                    return;
                }
                batch.queued.push((open.conversation, QueueReason::New));
                let entry = self.entry_of(open.conversation, None);
                let assignments = self.router.enqueue(entry, now);
                self.assigned(assignments, now, batch);
            }
        }
    }

    fn transfer(
        &mut self,
        conversation: ConversationId,
        to: TransferTo,
        now: Millis,
        batch: &mut Batch,
    ) -> Result<(), Refusal> {
        let tracked = self.open.get(&conversation).ok_or(Refusal::NotOpen)?;
        let previous = self.router.assignee(conversation);
        match to {
            TransferTo::Agent(agent) => {
                let assignments = self.router.transfer_to_agent(conversation, agent, now).map_err(Refusal::Transfer)?;
                batch.effects.push(Effect::Persist(Change::Assign { conversation, agent }));
                if let Some(tracked) = self.open.get_mut(&conversation) {
                    tracked.assigned_at = Some(now);
                    tracked.told = None;
                }
                batch.effects.push(Effect::Emit(DeskEvent::Assigned {
                    conversation,
                    consumer: self.open[&conversation].consumer,
                    agent,
                    from: previous,
                    reason: AssignReason::Transferred,
                }));
                batch.effects.push(Effect::Persist(Change::Notify {
                    conversation,
                    trigger: Trigger::Transferred,
                    at: now,
                    eta: None,
                    agent: Some(agent),
                }));
                self.assigned(assignments, now, batch);
            }
            TransferTo::Skill(skill) => {
                self.requeue(conversation, skill, previous, QueueReason::Transferred(skill), now, batch);
            }
            TransferTo::Queue => {
                let skill = tracked.skill;
                self.requeue(conversation, skill, previous, QueueReason::BackToQueue, now, batch);
            }
        }
        Ok(())
    }

    /// Puts a conversation in the queue of `skill` (persisted first), avoiding `avoid`.
    fn requeue(
        &mut self,
        conversation: ConversationId,
        skill: SkillId,
        avoid: Option<AgentId>,
        reason: QueueReason,
        now: Millis,
        batch: &mut Batch,
    ) {
        let Some(tracked) = self.open.get_mut(&conversation) else { return };
        tracked.skill = skill;
        tracked.assigned_at = None;
        if let Some(previous) = self.router.assignee(conversation) {
            batch.moved_from.insert(conversation, previous);
        }
        batch.effects.push(Effect::Persist(Change::Requeue { conversation, skill }));
        batch.queued.push((conversation, reason));
        let entry = self.entry_of(conversation, avoid);
        let assignments = self.router.requeue(entry, now);
        self.assigned(assignments, now, batch);
    }

    /// Persists and announces the router's decisions.
    fn assigned(&mut self, assignments: Vec<Assignment>, now: Millis, batch: &mut Batch) {
        for Assignment { conversation, agent } in assignments {
            let Some(tracked) = self.open.get_mut(&conversation) else { continue };
            if let Some(timeout) = self.skill_rules.get(&tracked.skill).and_then(|rules| rules.offer_timeout_ms) {
                // Ring the agent first: the seat is held, nothing is persisted yet.
                let until = now.saturating_add(timeout);
                let consumer = tracked.consumer;
                self.offers.insert(conversation, Offer { agent, until });
                self.timers.arm(Timer::Offer(conversation), until, &mut batch.effects);
                batch.effects.push(Effect::Emit(DeskEvent::Offered { conversation, consumer, agent, until }));
                continue;
            }
            tracked.assigned_at = Some(now);
            tracked.told = None;
            batch.effects.push(Effect::Persist(Change::Assign { conversation, agent }));
            batch.effects.push(Effect::Emit(DeskEvent::Assigned {
                conversation,
                consumer: tracked.consumer,
                agent,
                from: batch.moved_from.get(&conversation).copied(),
                reason: AssignReason::Routed,
            }));
            batch.effects.push(notify_assigned(conversation, agent, now));
        }
    }

    /// Tells the consumers whose conversations were queued during this input (and still
    /// wait) their estimate, and keeps the refresh timer armed while anyone waits.
    fn finish(&mut self, mut batch: Batch, now: Millis) -> Vec<Effect> {
        let mut moved: Vec<ConversationId> = batch
            .effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Persist(Change::Assign { conversation, .. } | Change::Requeue { conversation, .. }) => {
                    Some(*conversation)
                }
                _ => None,
            })
            .collect();
        moved.sort_unstable();
        moved.dedup();
        for conversation in moved {
            self.inactivity(conversation, &mut batch.effects);
        }
        let queued = std::mem::take(&mut batch.queued);
        for (conversation, reason) in queued {
            let offered = self.offers.contains_key(&conversation);
            if self.router.queued_entry(conversation).is_none() && !offered && !self.is_held(conversation) {
                continue;
            }
            // Ringing an agent: as good as served now, unless they pass.
            let eta = if offered { Some(0) } else { self.estimated_wait(conversation) };
            let Some(tracked) = self.open.get_mut(&conversation) else { continue };
            tracked.told = Some((eta, now));
            batch.effects.push(Effect::Emit(DeskEvent::Queued {
                conversation,
                consumer: tracked.consumer,
                eta,
                from: batch.moved_from.get(&conversation).copied(),
                reason,
            }));
            let trigger = match reason {
                QueueReason::New | QueueReason::AgentUnavailable => Trigger::Queued,
                QueueReason::Transferred(_) | QueueReason::BackToQueue => Trigger::Transferred,
            };
            batch.effects.push(Effect::Persist(Change::Notify { conversation, trigger, at: now, eta, agent: None }));
        }
        let waiting = self.router.queue_len() > 0 || self.held.values().any(|held| !held.is_empty());
        match (waiting, self.timers.due(Timer::WaitRefresh)) {
            (true, None) => self.timers.arm(
                Timer::WaitRefresh,
                now.saturating_add(self.settings.wait_refresh_ms),
                &mut batch.effects,
            ),
            (false, Some(_)) => self.timers.disarm(Timer::WaitRefresh, &mut batch.effects),
            _ => {}
        }
        batch.effects
    }

    /// When the auto-close clock of a conversation started: it is held by an agent (not
    /// offered, not queued) who wrote last. `None`: no clock runs.
    fn inactive_since(&self, conversation: ConversationId) -> Option<Millis> {
        let tracked = self.open.get(&conversation)?;
        self.assignee(conversation)?;
        let agent_at = tracked.last_agent_at?;
        // A consumer message at the same millisecond counts as an answer.
        if tracked.last_consumer_at.is_some_and(|consumer_at| consumer_at >= agent_at) {
            return None;
        }
        Some(agent_at.max(tracked.assigned_at.unwrap_or(agent_at)))
    }

    /// When a conversation's inactivity warning and auto-close fall due, if a clock runs
    /// (the brand auto-closes and an agent holding it wrote last).
    fn inactivity_deadlines(&self, conversation: ConversationId) -> Option<InactivityDeadlines> {
        let auto_close = self.settings.auto_close?;
        let since = self.inactive_since(conversation)?;
        let close_at = since.saturating_add(auto_close.after_ms.max(1));
        let warn_at = auto_close
            .warn_before_ms
            .filter(|warn| (1..auto_close.after_ms).contains(warn))
            .map(|warn| close_at - warn);
        Some(InactivityDeadlines { since, warn_at, close_at })
    }

    /// Arms (or disarms) a conversation's warning and auto-close timers to match the setting
    /// and where it stands.
    fn inactivity(&mut self, conversation: ConversationId, effects: &mut Vec<Effect>) {
        let (warning, close) = (Timer::InactiveWarning(conversation), Timer::AutoClose(conversation));
        let Some(deadlines) = self.inactivity_deadlines(conversation) else {
            self.timers.disarm(warning, effects);
            self.timers.disarm(close, effects);
            return;
        };
        if self.timers.due(close) != Some(deadlines.close_at) {
            self.timers.arm(close, deadlines.close_at, effects);
        }
        match deadlines.warn_at {
            Some(at) if self.timers.due(warning) != Some(at) => self.timers.arm(warning, at, effects),
            Some(_) => {}
            None => self.timers.disarm(warning, effects),
        }
    }

    /// Ends a running offer because the conversation closed or moved: the agent is told, the
    /// timer disarmed. The router still holds the seat; the caller moves the conversation.
    fn withdraw(&mut self, conversation: ConversationId, why: OfferEnd, batch: &mut Batch) {
        if let Some(offer) = self.offers.remove(&conversation) {
            self.timers.disarm(Timer::Offer(conversation), &mut batch.effects);
            batch.effects.push(Effect::Emit(DeskEvent::OfferWithdrawn { conversation, agent: offer.agent, why }));
        }
    }

    /// An offer ended unanswered or declined: counted, and the conversation is offered to
    /// the next agent (not straight back to this one).
    fn offer_ended(&mut self, conversation: ConversationId, why: OfferEnd, now: Millis, batch: &mut Batch) {
        let Some(offer) = self.offers.remove(&conversation) else { return };
        let kind = match why {
            OfferEnd::Declined => Some(RecordKind::OfferDeclined),
            OfferEnd::Expired => Some(RecordKind::OfferExpired),
            OfferEnd::AgentUnavailable | OfferEnd::Moved => None,
        };
        if let Some(kind) = kind {
            batch.effects.push(Effect::Persist(Change::Record { conversation, agent: offer.agent, kind }));
        }
        batch.effects.push(Effect::Emit(DeskEvent::OfferWithdrawn { conversation, agent: offer.agent, why }));
        let entry = self.entry_of(conversation, Some(offer.agent));
        let assignments = self.router.requeue(entry, now);
        self.assigned(assignments, now, batch);
    }

    /// Recomputes every waiting conversation's estimate; tells the significant changes.
    fn refresh_waits(&mut self, now: Millis, batch: &mut Batch) {
        let held: Vec<(ConversationId, Option<u32>)> = self
            .held
            .iter()
            .flat_map(|(skill, held)| held.iter().enumerate().map(move |(i, c)| (*skill, i, *c)))
            .map(|(skill, position, conversation)| (conversation, self.held_wait(skill, position)))
            .collect();
        for (conversation, eta) in held {
            self.tell_wait(conversation, eta, now, batch);
        }
        for skill in self.router.queued_skills() {
            let (capacity, free) = self.router.staffing(skill);
            let handle_ms = self.handling.of(skill);
            let waiting: Vec<(usize, ConversationId)> = self.router.queue_of(skill).collect();
            for (position, conversation) in waiting {
                let eta = wait::estimate(position, capacity, free, handle_ms);
                self.tell_wait(conversation, eta, now, batch);
            }
        }
    }

    /// Tells a waiting consumer their new estimate if it changed significantly since the
    /// last one told (an automatic message too, after the first).
    fn tell_wait(&mut self, conversation: ConversationId, eta: Option<u32>, now: Millis, batch: &mut Batch) {
        let Some(tracked) = self.open.get_mut(&conversation) else { return };
        let worth_telling = match tracked.told {
            Some((told, at)) => wait::significant(told, at, eta, now),
            None => true,
        };
        if !worth_telling {
            return;
        }
        let first = tracked.told.is_none();
        tracked.told = Some((eta, now));
        batch.effects.push(Effect::Emit(DeskEvent::WaitChanged { conversation, consumer: tracked.consumer, eta }));
        if !first {
            batch.effects.push(Effect::Persist(Change::Notify {
                conversation,
                trigger: Trigger::WaitChanged,
                at: now,
                eta,
                agent: None,
            }));
        }
    }

    fn entry_of(&self, conversation: ConversationId, avoid: Option<AgentId>) -> QueuedConversation {
        let tracked = &self.open[&conversation];
        QueuedConversation {
            conversation,
            skill: tracked.skill,
            priority: tracked.priority,
            enqueued_at: tracked.waiting_since,
            avoid,
        }
    }
}

fn notify_assigned(conversation: ConversationId, agent: AgentId, now: Millis) -> Effect {
    Effect::Persist(Change::Notify { conversation, trigger: Trigger::Assigned, at: now, eta: None, agent: Some(agent) })
}

impl Tracked {
    fn of(open: &OpenConversation) -> Tracked {
        Tracked {
            consumer: open.consumer,
            skill: open.skill,
            priority: open.priority,
            waiting_since: open.waiting_since,
            assigned_at: open.agent.and(open.assigned_at.or(Some(open.waiting_since))),
            told: None,
            last_agent_at: open.last_agent_at,
            last_consumer_at: open.last_consumer_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ids::ANY_SKILL;

    const GENERAL: SkillId = 1;
    const SETTINGS: DeskSettings = DeskSettings { grace_ms: 60_000, wait_refresh_ms: 10_000, auto_close: None };
    const AUTO_CLOSE: AutoClose = AutoClose { after_ms: 120_000, warn_before_ms: Some(30_000) };

    fn agent(agent: AgentId, max: u32) -> Input {
        Input::Agent(AgentSettings {
            agent,
            profile: AgentProfile { max_concurrent: max, skills: vec![GENERAL] },
            chosen: AgentState::Online,
            disabled: false,
        })
    }

    fn opened(conversation: ConversationId, at: Millis) -> Input {
        Input::Opened(OpenConversation {
            conversation,
            consumer: 100 + conversation,
            skill: GENERAL,
            priority: 0,
            waiting_since: at,
            agent: None,
            assigned_at: None,
            last_agent_at: None,
            last_consumer_at: Some(at),
        })
    }

    /// The routing changes persisted (automatic messages apart: see [`notified`]).
    fn persisted(effects: &[Effect]) -> Vec<Change> {
        all_persisted(effects).into_iter().filter(|change| !matches!(change, Change::Notify { .. })).collect()
    }

    fn all_persisted(effects: &[Effect]) -> Vec<Change> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Persist(change) => Some(*change),
                _ => None,
            })
            .collect()
    }

    /// The automatic messages due: (conversation, trigger).
    fn notified(effects: &[Effect]) -> Vec<(ConversationId, Trigger)> {
        all_persisted(effects)
            .into_iter()
            .filter_map(|change| match change {
                Change::Notify { conversation, trigger, .. } => Some((conversation, trigger)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn automatic_messages_are_due_on_opening_queueing_assignment_and_transfer() {
        let mut desk = Desk::new(SETTINGS);
        let effects = handle(&mut desk, opened(10, 0), 0);
        assert_eq!(notified(&effects), [(10, Trigger::Welcome), (10, Trigger::Queued)], "nobody to take it yet");
        handle(&mut desk, agent(1, 2), 1);
        let effects = handle(&mut desk, Input::AgentConnected(1), 2);
        assert_eq!(notified(&effects), [(10, Trigger::Assigned)]);
        let effects = handle(&mut desk, Input::Transfer { conversation: 10, to: TransferTo::Queue }, 3);
        assert_eq!(notified(&effects), [(10, Trigger::Transferred)]);
        // A proactive conversation (opened by an agent) gets no welcome.
        let proactive = OpenConversation { agent: Some(1), assigned_at: Some(4), ..open_of(11, 4) };
        assert!(notified(&handle(&mut desk, Input::Opened(proactive), 4)).is_empty());
    }

    /// A desk with auto-close after 120 s (warning 30 s before), one online agent holding
    /// conversation 10, whose consumer wrote at 0.
    fn auto_closing_desk() -> Desk {
        let mut desk = Desk::new(DeskSettings { auto_close: Some(AUTO_CLOSE), ..SETTINGS });
        handle(&mut desk, agent(1, 2), 0);
        handle(&mut desk, Input::AgentConnected(1), 0);
        handle(&mut desk, opened(10, 0), 0);
        assert_eq!(desk.assignee(10), Some(1));
        desk
    }

    #[test]
    fn an_unanswered_agent_message_warns_then_auto_closes_on_time() {
        let mut desk = auto_closing_desk();
        assert_eq!(desk.next_due(), None, "no clock before the agent writes");
        let effects = handle(&mut desk, Input::AgentWrote { conversation: 10, at: 5_000 }, 5_000);
        assert!(effects.contains(&Effect::Arm(Timer::InactiveWarning(10), 95_000)));
        assert!(effects.contains(&Effect::Arm(Timer::AutoClose(10), 125_000)));
        assert!(notified(&handle(&mut desk, Input::Tick, 94_999)).is_empty());
        let effects = handle(&mut desk, Input::Tick, 95_000);
        assert_eq!(notified(&effects), [(10, Trigger::InactiveWarning)]);
        let effects = handle(&mut desk, Input::Tick, 125_000);
        assert_eq!(persisted(&effects), [Change::AutoClose { conversation: 10, since: 5_000 }]);
        // The engine closed it: the seat is free, no timer is left.
        handle(&mut desk, Input::Closed(10), 125_001);
        assert_eq!(desk.next_due(), None);
    }

    #[test]
    fn a_consumer_answer_found_at_the_deadline_stops_the_clock_until_the_agent_writes_again() {
        let mut desk = auto_closing_desk();
        handle(&mut desk, Input::AgentWrote { conversation: 10, at: 5_000 }, 5_000);
        let effects = handle(&mut desk, Input::Tick, 95_000);
        assert_eq!(notified(&effects), [(10, Trigger::InactiveWarning)]);
        // The engine found a consumer message at 60 s: no warning is stored, the clock stops.
        let effects = handle(
            &mut desk,
            Input::Activity { conversation: 10, agent_at: Some(5_000), consumer_at: Some(60_000) },
            95_001,
        );
        assert!(effects.contains(&Effect::Disarm(Timer::AutoClose(10))));
        assert_eq!(desk.next_due(), None);
        let effects = handle(&mut desk, Input::AgentWrote { conversation: 10, at: 200_000 }, 200_000);
        assert!(effects.contains(&Effect::Arm(Timer::AutoClose(10), 320_000)));
    }

    #[test]
    fn queued_conversations_never_auto_close_and_a_new_agent_gets_a_fresh_clock() {
        let mut desk = auto_closing_desk();
        handle(&mut desk, Input::AgentWrote { conversation: 10, at: 5_000 }, 5_000);
        // The agent drops; after the grace the conversation waits in the queue: no clock.
        handle(&mut desk, Input::AgentDisconnected(1), 10_000);
        let effects = handle(&mut desk, Input::Tick, 70_000);
        assert!(effects.contains(&Effect::Disarm(Timer::AutoClose(10))), "{effects:?}");
        assert!(persisted(&handle(&mut desk, Input::Tick, 500_000)).is_empty(), "a queued conversation stays");
        // Another agent takes it: the clock counts from the assignment, not the old message.
        handle(&mut desk, agent(2, 2), 600_000);
        let effects = handle(&mut desk, Input::AgentConnected(2), 600_000);
        assert!(effects.contains(&Effect::Arm(Timer::AutoClose(10), 720_000)), "{effects:?}");
    }

    #[test]
    fn auto_close_timers_are_rebuilt_from_stored_times_after_a_restart() {
        let agents = vec![AgentSettings {
            agent: 1,
            profile: AgentProfile { max_concurrent: 2, skills: vec![GENERAL] },
            chosen: AgentState::Online,
            disabled: false,
        }];
        let waiting = OpenConversation {
            agent: Some(1),
            assigned_at: Some(1_000),
            last_agent_at: Some(2_000),
            last_consumer_at: Some(1_500),
            ..open_of(10, 0)
        };
        let answered = OpenConversation { conversation: 11, last_consumer_at: Some(3_000), ..waiting };
        let settings = DeskSettings { auto_close: Some(AUTO_CLOSE), ..SETTINGS };
        let (mut desk, effects) = Desk::restore(
            settings,
            Hours::default(),
            Vec::new(),
            agents,
            vec![waiting, answered],
            &HashMap::new(),
            100_000,
            100_000,
        );
        assert!(effects.contains(&Effect::Arm(Timer::AutoClose(10), 122_000)), "{effects:?}");
        assert!(!effects.contains(&Effect::Arm(Timer::AutoClose(11), 122_000)), "the consumer answered");
        // The warning was due during the downtime: it fires at once (its key keeps it single).
        let effects = handle(&mut desk, Input::Tick, 100_000);
        assert_eq!(notified(&effects), [(10, Trigger::InactiveWarning)]);
        // Turning the setting off disarms what is left.
        let effects = desk.set_settings(SETTINGS);
        assert!(effects.contains(&Effect::Disarm(Timer::AutoClose(10))));
    }

    /// Hours of the general skill: Monday–Friday 09:00–17:00 UTC.
    fn office_hours(off_hours: OffHours) -> Hours {
        let weekly: Vec<serde_json::Value> = ["monday", "tuesday", "wednesday", "thursday", "friday"]
            .map(|day| serde_json::json!({"day": day, "start": "09:00", "end": "17:00"}))
            .into();
        let hours: crate::hours::BusinessHours =
            serde_json::from_value(serde_json::json!({"time_zone": "UTC", "weekly": weekly})).unwrap();
        Hours { brand: None, skills: HashMap::from([(GENERAL, hours.validate().unwrap())]), off_hours }
    }

    /// Thursday 2026-12-03 20:00 UTC (closed; opens Friday 09:00, 13 hours later).
    const THURSDAY_EVENING: Millis = 1_764_792_000_000;
    const HOUR: Millis = 3_600_000;

    #[test]
    fn a_conversation_opened_after_hours_is_told_and_waits_for_the_opening() {
        let mut desk = Desk::new(SETTINGS);
        desk.set_hours(office_hours(OffHours::Queue), THURSDAY_EVENING);
        handle(&mut desk, agent(1, 2), THURSDAY_EVENING);
        handle(&mut desk, Input::AgentConnected(1), THURSDAY_EVENING);
        let effects = handle(&mut desk, opened(10, THURSDAY_EVENING), THURSDAY_EVENING);
        assert_eq!(notified(&effects), [(10, Trigger::Welcome), (10, Trigger::OffHours), (10, Trigger::Queued)]);
        assert!(persisted(&effects).contains(&Change::OffHours { conversation: 10, close: false }));
        assert_eq!(desk.assignee(10), None, "an online agent does not get it before the opening");
        let eta = emitted(&effects).iter().find_map(|e| match e {
            DeskEvent::Queued { eta, .. } => Some(*eta),
            _ => None,
        });
        assert!(eta.flatten().is_some_and(|eta| eta >= 13 * 3600), "the estimate counts the closed time: {eta:?}");
        assert!(effects.contains(&Effect::Arm(Timer::Opens(GENERAL), THURSDAY_EVENING + 13 * HOUR)));
        assert_eq!(desk.waiting().len(), 1, "the queue page shows it");
        // Friday 09:00: it joins the queue and is assigned.
        let effects = handle(&mut desk, Input::Tick, THURSDAY_EVENING + 13 * HOUR);
        assert_eq!(persisted(&effects), [Change::Assign { conversation: 10, agent: 1 }]);
    }

    #[test]
    fn after_hours_conversations_close_when_the_brand_says_so_and_restart_keeps_them_waiting() {
        let mut desk = Desk::new(SETTINGS);
        desk.set_hours(office_hours(OffHours::Close), THURSDAY_EVENING);
        let effects = handle(&mut desk, opened(10, THURSDAY_EVENING), THURSDAY_EVENING);
        assert_eq!(notified(&effects), [(10, Trigger::Welcome), (10, Trigger::OffHours)]);
        assert!(persisted(&effects).contains(&Change::OffHours { conversation: 10, close: true }));
        assert!(desk.waiting().is_empty());

        // Queued at night before a restart: still held after it, and opening on time.
        let open = open_of(11, THURSDAY_EVENING);
        let (desk, effects) = Desk::restore(
            SETTINGS,
            office_hours(OffHours::Queue),
            Vec::new(),
            Vec::new(),
            vec![open],
            &HashMap::new(),
            THURSDAY_EVENING + HOUR,
            THURSDAY_EVENING + HOUR,
        );
        assert!(effects.contains(&Effect::Arm(Timer::Opens(GENERAL), THURSDAY_EVENING + 13 * HOUR)));
        assert_eq!(desk.waiting().iter().map(|w| w.conversation).collect::<Vec<_>>(), [11]);
        assert!(desk.queued().is_empty(), "held out of the router's queue");
    }

    fn emitted(effects: &[Effect]) -> Vec<DeskEvent> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Emit(event) => Some(*event),
                _ => None,
            })
            .collect()
    }

    fn handle(desk: &mut Desk, input: Input, now: Millis) -> Vec<Effect> {
        desk.handle(input, now).expect("accepted")
    }

    #[test]
    fn an_agent_is_online_only_while_connected() {
        let mut desk = Desk::new(SETTINGS);
        handle(&mut desk, agent(1, 2), 0);
        // Chose online in an earlier session, but no socket: gets nothing.
        let effects = handle(&mut desk, opened(10, 1), 1);
        assert!(matches!(emitted(&effects)[..], [DeskEvent::Queued { conversation: 10, eta: None, .. }]));
        let effects = handle(&mut desk, Input::AgentConnected(1), 2);
        assert_eq!(persisted(&effects), vec![Change::Assign { conversation: 10, agent: 1 }]);
        assert_eq!(desk.state_of(10), Some(ConversationState::Assigned { agent: 1, since: 2 }));
    }

    #[test]
    fn a_dropped_agent_keeps_conversations_through_the_grace_then_they_move_on() {
        let mut desk = Desk::new(SETTINGS);
        handle(&mut desk, agent(1, 2), 0);
        handle(&mut desk, agent(2, 2), 0);
        handle(&mut desk, Input::AgentConnected(1), 0);
        handle(&mut desk, opened(10, 5), 5);
        assert_eq!(desk.assignee(10), Some(1));
        // Agent 1's only socket drops: a grace period starts, nothing moves yet.
        let effects = handle(&mut desk, Input::AgentDisconnected(1), 1_000);
        assert!(effects.contains(&Effect::Arm(Timer::Grace(1), 61_000)));
        assert!(persisted(&effects).is_empty());
        assert_eq!(desk.next_due(), Some(61_000));
        // Back within the grace: the timer is disarmed.
        let effects = handle(&mut desk, Input::AgentConnected(1), 30_000);
        assert!(effects.contains(&Effect::Disarm(Timer::Grace(1))));
        handle(&mut desk, Input::AgentDisconnected(1), 40_000);
        handle(&mut desk, Input::AgentConnected(2), 50_000);
        // Not back in time: the conversation returns to the queue with its waiting time and
        // goes to agent 2, and agent 1 is told it left them.
        assert!(persisted(&handle(&mut desk, Input::Tick, 99_999)).is_empty());
        let effects = handle(&mut desk, Input::Tick, 100_000);
        assert_eq!(
            persisted(&effects),
            vec![Change::Requeue { conversation: 10, skill: GENERAL }, Change::Assign { conversation: 10, agent: 2 }]
        );
        assert!(emitted(&effects).contains(&DeskEvent::Assigned {
            conversation: 10,
            consumer: 110,
            agent: 2,
            from: Some(1),
            reason: AssignReason::Routed,
        }));
    }

    #[test]
    fn choosing_offline_hands_conversations_back_after_the_grace_and_away_keeps_them() {
        let mut desk = Desk::new(SETTINGS);
        handle(&mut desk, agent(1, 2), 0);
        handle(&mut desk, Input::AgentConnected(1), 0);
        handle(&mut desk, opened(10, 0), 0);
        let effects = handle(&mut desk, Input::AgentChose { agent: 1, state: AgentState::Away }, 1);
        assert_eq!(persisted(&effects), vec![Change::AgentState { agent: 1, state: AgentState::Away }]);
        assert!(!effects.iter().any(|e| matches!(e, Effect::Arm(Timer::Grace(_), _))), "away keeps them");
        handle(&mut desk, Input::AgentChose { agent: 1, state: AgentState::Offline }, 2);
        let effects = handle(&mut desk, Input::Tick, 60_002);
        assert_eq!(persisted(&effects), vec![Change::Requeue { conversation: 10, skill: GENERAL }]);
        assert_eq!(desk.state_of(10), Some(ConversationState::Queued { skill: GENERAL, since: 0 }));
    }

    #[test]
    fn after_a_restart_agents_start_disconnected_with_grace_from_boot() {
        let agents = vec![AgentSettings {
            agent: 1,
            profile: AgentProfile { max_concurrent: 2, skills: vec![GENERAL] },
            chosen: AgentState::Online,
            disabled: false,
        }];
        let held = OpenConversation {
            conversation: 10,
            consumer: 110,
            skill: GENERAL,
            priority: 0,
            waiting_since: 0,
            agent: Some(1),
            assigned_at: Some(5),
            last_agent_at: None,
            last_consumer_at: Some(0),
        };
        let orphan = OpenConversation { conversation: 11, agent: Some(99), ..held };
        let (mut desk, effects) = Desk::restore(
            SETTINGS,
            Hours::default(),
            Vec::new(),
            agents,
            vec![held, orphan],
            &HashMap::new(),
            1_000,
            2_000,
        );
        // Held by an unknown (disabled) agent: back to the queue at once.
        assert_eq!(persisted(&effects), vec![Change::Requeue { conversation: 11, skill: GENERAL }]);
        assert!(effects.contains(&Effect::Arm(Timer::Grace(1), 61_000)));
        assert_eq!(desk.presence(1).map(|p| (p.state, p.connected)), Some((AgentState::Offline, false)));
        // Agent 1 comes back in time and also gets the orphan.
        let effects = handle(&mut desk, Input::AgentConnected(1), 3_000);
        assert!(effects.contains(&Effect::Disarm(Timer::Grace(1))));
        assert_eq!(persisted(&effects), vec![Change::Assign { conversation: 11, agent: 1 }]);
    }

    #[test]
    fn estimates_are_sent_on_entry_and_again_when_they_change_significantly() {
        let mut desk = Desk::new(SETTINGS);
        handle(&mut desk, agent(1, 1), 0);
        handle(&mut desk, Input::AgentConnected(1), 0);
        handle(&mut desk, opened(10, 0), 0);
        let effects = handle(&mut desk, opened(11, 1), 1);
        // One seat, busy; 5 minutes per conversation by default.
        assert!(emitted(&effects).contains(&DeskEvent::Queued {
            conversation: 11,
            consumer: 111,
            eta: Some(300),
            from: None,
            reason: QueueReason::New,
        }));
        assert!(effects.contains(&Effect::Arm(Timer::WaitRefresh, 10_001)));
        // Nothing changed but the clock: no new estimate, the timer is re-armed.
        let effects = handle(&mut desk, Input::Tick, 10_001);
        assert!(emitted(&effects).is_empty());
        assert!(effects.contains(&Effect::Arm(Timer::WaitRefresh, 20_001)));
        // A second agent takes conversation 11 and doubles the seats: 12's estimate (told 600 s
        // as second in line behind one seat) drops to 150 s and is told at the next refresh.
        handle(&mut desk, agent(2, 1), 12_000);
        handle(&mut desk, opened(12, 12_000), 12_000);
        handle(&mut desk, Input::AgentConnected(2), 13_000);
        let effects = handle(&mut desk, Input::Tick, 20_001);
        assert_eq!(emitted(&effects), vec![DeskEvent::WaitChanged { conversation: 12, consumer: 112, eta: Some(150) }]);
        // The queue empties: the refresh timer is disarmed.
        let effects = handle(&mut desk, Input::Closed(10), 30_000);
        assert!(effects.contains(&Effect::Disarm(Timer::WaitRefresh)));
        // Both seats busy again (agent 1 took 12): a new arrival waits for the first freed
        // seat, half of the 30 s that conversation 10 was just measured to take.
        assert_eq!(desk.skills(&[GENERAL])[&GENERAL].eta_new, Some(15));
    }

    #[test]
    fn transfers_keep_the_waiting_time_and_refusals_change_nothing() {
        let mut desk = Desk::new(SETTINGS);
        handle(&mut desk, agent(1, 1), 0);
        handle(&mut desk, agent(2, 1), 0);
        handle(&mut desk, Input::AgentConnected(1), 0);
        handle(&mut desk, opened(10, 7), 7);
        assert_eq!(
            desk.handle(Input::Transfer { conversation: 10, to: TransferTo::Agent(2) }, 8),
            Err(Refusal::Transfer(TransferRefusal::NotOnline(AgentState::Offline)))
        );
        assert_eq!(desk.handle(Input::Transfer { conversation: 99, to: TransferTo::Queue }, 8), Err(Refusal::NotOpen));
        assert_eq!(desk.assignee(10), Some(1));
        let effects = handle(&mut desk, Input::Transfer { conversation: 10, to: TransferTo::Skill(ANY_SKILL) }, 9);
        assert_eq!(persisted(&effects), vec![Change::Requeue { conversation: 10, skill: ANY_SKILL }]);
        assert_eq!(desk.state_of(10), Some(ConversationState::Queued { skill: ANY_SKILL, since: 7 }));
        assert!(emitted(&effects).iter().any(|e| matches!(e, DeskEvent::Queued { from: Some(1), .. })));
    }

    #[test]
    fn offers_ring_one_agent_move_on_when_declined_or_unanswered_and_count() {
        let mut desk = Desk::new(SETTINGS);
        handle(
            &mut desk,
            Input::Skills(vec![SkillRules {
                skill: GENERAL,
                offer_timeout_ms: Some(30_000),
                priority: Priority::Normal,
            }]),
            0,
        );
        for a in [1, 2] {
            handle(&mut desk, agent(a, 1), 0);
            handle(&mut desk, Input::AgentConnected(a), a);
        }
        // Agent 1 has been idle longest: rung first. Nothing is persisted; the consumer waits.
        let effects = handle(&mut desk, opened(10, 5), 5);
        assert!(persisted(&effects).is_empty());
        assert!(emitted(&effects).contains(&DeskEvent::Offered {
            conversation: 10,
            consumer: 110,
            agent: 1,
            until: 30_005
        }));
        assert!(matches!(emitted(&effects)[..], [_, DeskEvent::Queued { eta: Some(0), .. }]));
        assert_eq!(desk.state_of(10), Some(ConversationState::Offered { agent: 1, until: 30_005 }));
        assert_eq!(desk.handle(Input::Accept { conversation: 10, agent: 2 }, 6), Err(Refusal::NoOffer));
        // Agent 1 declines: counted, and agent 2 is rung.
        let effects = handle(&mut desk, Input::Decline { conversation: 10, agent: 1 }, 7);
        assert_eq!(
            persisted(&effects),
            vec![Change::Record { conversation: 10, agent: 1, kind: RecordKind::OfferDeclined }]
        );
        assert!(emitted(&effects).contains(&DeskEvent::Offered {
            conversation: 10,
            consumer: 110,
            agent: 2,
            until: 30_007
        }));
        // Agent 2 does not answer: counted as expired, back to agent 1.
        let effects = handle(&mut desk, Input::Tick, 30_007);
        assert_eq!(
            persisted(&effects),
            vec![Change::Record { conversation: 10, agent: 2, kind: RecordKind::OfferExpired }]
        );
        assert_eq!(desk.state_of(10).map(|s| matches!(s, ConversationState::Offered { agent: 1, .. })), Some(true));
        // Agent 1 accepts: now it is theirs, persisted.
        let effects = handle(&mut desk, Input::Accept { conversation: 10, agent: 1 }, 30_010);
        assert_eq!(persisted(&effects), vec![Change::Assign { conversation: 10, agent: 1 }]);
        assert_eq!(desk.assignee(10), Some(1));
        assert_eq!(desk.handle(Input::Decline { conversation: 10, agent: 1 }, 30_011), Err(Refusal::NoOffer));
        // An agent who goes away loses the offers they hold.
        handle(&mut desk, opened(11, 30_020), 30_020);
        assert_eq!(desk.state_of(11).map(|s| matches!(s, ConversationState::Offered { agent: 2, .. })), Some(true));
        let effects = handle(&mut desk, Input::AgentDisconnected(2), 30_030);
        assert!(emitted(&effects).contains(&DeskEvent::OfferWithdrawn {
            conversation: 11,
            agent: 2,
            why: OfferEnd::AgentUnavailable
        }));
        assert_eq!(desk.state_of(11), Some(ConversationState::Queued { skill: GENERAL, since: 30_020 }));
    }

    #[test]
    fn the_queue_serves_priority_then_age_and_a_manager_can_raise_one() {
        let mut desk = Desk::new(SETTINGS);
        let vip = 2;
        let rules = SkillRules { skill: vip, offer_timeout_ms: None, priority: Priority::High };
        handle(&mut desk, Input::Skills(vec![rules]), 0);
        handle(&mut desk, agent(1, 1), 0);
        handle(&mut desk, Input::AgentConnected(1), 0);
        handle(&mut desk, opened(10, 1), 1); // Agent 1 is now busy.
        handle(&mut desk, opened(11, 2), 2);
        handle(&mut desk, opened(12, 3), 3);
        // A conversation of the VIP skill starts high (persisted) and is served first...
        let effects = handle(&mut desk, Input::Opened(OpenConversation { skill: vip, ..open_of(13, 4) }), 4);
        assert_eq!(persisted(&effects), vec![Change::Priority { conversation: 13, priority: Priority::High }]);
        // ...until a manager makes 12 urgent: it jumps ahead, keeping its waiting time.
        let effects = handle(&mut desk, Input::SetPriority { conversation: 12, priority: Priority::Urgent }, 5);
        assert_eq!(persisted(&effects), vec![Change::Priority { conversation: 12, priority: Priority::Urgent }]);
        assert_eq!(desk.queued().iter().map(|q| q.conversation).collect::<Vec<_>>(), vec![12, 13, 11]);
        assert_eq!(desk.state_of(12), Some(ConversationState::Queued { skill: GENERAL, since: 3 }));
        assert_eq!(
            desk.handle(Input::SetPriority { conversation: 99, priority: Priority::High }, 6),
            Err(Refusal::NotOpen)
        );
        let effects = handle(&mut desk, Input::Closed(10), 7);
        assert!(persisted(&effects).contains(&Change::Assign { conversation: 12, agent: 1 }));
    }

    fn open_of(conversation: ConversationId, at: Millis) -> OpenConversation {
        match opened(conversation, at) {
            Input::Opened(open) => open,
            _ => unreachable!("opened builds an Opened input"),
        }
    }

    /// Samples of every event as version 1 wrote them: the current code reads each back to
    /// the same value and writes it the same way.
    #[test]
    fn desk_events_read_and_write_their_version_one_samples() {
        let presence = PresenceView {
            state: AgentState::Offline,
            chosen: AgentState::Online,
            connected: false,
            grace_until: Some(61_000),
        };
        let samples = [
            (
                r#"{"event":"assigned","conversation":10,"consumer":110,"agent":2,"from":1,"reason":"routed"}"#,
                DeskEvent::Assigned {
                    conversation: 10,
                    consumer: 110,
                    agent: 2,
                    from: Some(1),
                    reason: AssignReason::Routed,
                },
            ),
            (
                r#"{"event":"queued","conversation":10,"consumer":110,"eta":300,"from":null,"reason":{"why":"transferred","skill":3}}"#,
                DeskEvent::Queued {
                    conversation: 10,
                    consumer: 110,
                    eta: Some(300),
                    from: None,
                    reason: QueueReason::Transferred(3),
                },
            ),
            (
                r#"{"event":"queued","conversation":10,"consumer":110,"eta":null,"from":2,"reason":{"why":"agent_unavailable"}}"#,
                DeskEvent::Queued {
                    conversation: 10,
                    consumer: 110,
                    eta: None,
                    from: Some(2),
                    reason: QueueReason::AgentUnavailable,
                },
            ),
            (
                r#"{"event":"wait_changed","conversation":10,"consumer":110,"eta":150}"#,
                DeskEvent::WaitChanged { conversation: 10, consumer: 110, eta: Some(150) },
            ),
            (
                r#"{"event":"offered","conversation":10,"consumer":110,"agent":2,"until":30005}"#,
                DeskEvent::Offered { conversation: 10, consumer: 110, agent: 2, until: 30_005 },
            ),
            (
                r#"{"event":"offer_withdrawn","conversation":10,"agent":2,"why":"expired"}"#,
                DeskEvent::OfferWithdrawn { conversation: 10, agent: 2, why: OfferEnd::Expired },
            ),
            (
                r#"{"event":"reprioritized","conversation":10,"priority":"urgent"}"#,
                DeskEvent::Reprioritized { conversation: 10, priority: Priority::Urgent },
            ),
            (
                r#"{"event":"presence","agent":1,"presence":{"state":"offline","chosen":"online","connected":false,"grace_until":61000}}"#,
                DeskEvent::Presence { agent: 1, presence },
            ),
        ];
        assert_eq!(DESK_EVENT_VERSION, 1);
        for (json, event) in samples {
            assert_eq!(serde_json::from_str::<DeskEvent>(json).unwrap(), event, "{json}");
            assert_eq!(serde_json::to_string(&event).unwrap(), json);
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Open,
        Close(usize),
        Connect(AgentId),
        Disconnect(AgentId),
        Choose(AgentId, AgentState),
        Transfer(usize, Option<AgentId>),
        Answer(usize, bool),
        Prioritize(usize, bool),
        AgentWrite(usize),
        ConsumerWrite(usize),
        Wait(Millis),
        Restart,
    }

    fn op() -> impl Strategy<Value = Op> {
        let state = prop_oneof![
            Just(AgentState::Online),
            Just(AgentState::Away),
            Just(AgentState::BackSoon),
            Just(AgentState::Offline)
        ];
        prop_oneof![
            3 => Just(Op::Open),
            2 => (0..40usize).prop_map(Op::Close),
            2 => (1..=3i64).prop_map(Op::Connect),
            2 => (1..=3i64).prop_map(Op::Disconnect),
            1 => ((1..=3i64), state).prop_map(|(a, s)| Op::Choose(a, s)),
            1 => ((0..40usize), proptest::option::of(1..=3i64)).prop_map(|(i, a)| Op::Transfer(i, a)),
            2 => ((0..40usize), any::<bool>()).prop_map(|(i, yes)| Op::Answer(i, yes)),
            1 => ((0..40usize), any::<bool>()).prop_map(|(i, urgent)| Op::Prioritize(i, urgent)),
            2 => (0..40usize).prop_map(Op::AgentWrite),
            1 => (0..40usize).prop_map(Op::ConsumerWrite),
            2 => (1..90_000i64).prop_map(Op::Wait),
            1 => Just(Op::Restart),
        ]
    }

    /// What the store would hold, kept from the persisted changes only.
    #[derive(Default)]
    struct Stored {
        open: HashMap<ConversationId, OpenConversation>,
        chosen: HashMap<AgentId, AgentState>,
    }

    /// What the store answers to one change, as the engine's `persist` does.
    enum Persisted {
        Done,
        /// The store knew more than the desk: the desk hears this next.
        Then(Input),
        /// The conversation is not open any more: the change is refused, the desk hears
        /// `Closed`.
        NotOpen(ConversationId),
    }

    impl Stored {
        /// Carries out effects as the engine does (`Engine::try_carry_out`): each change in
        /// order; an input the store answers with is handled by the desk at once and its
        /// effects queued behind the rest. Returns every effect carried out.
        ///
        /// A change may name a conversation the store closed (an auto-close) only if the desk
        /// decided it before it heard of that close; anything later is a desk bug.
        fn carry_out(&mut self, desk: &mut Desk, effects: Vec<Effect>, now: Millis) -> Vec<Effect> {
            // Each effect with the number of the `handle` call that made it.
            let mut pending: std::collections::VecDeque<(usize, Effect)> =
                effects.into_iter().map(|e| (0, e)).collect();
            let mut calls = 0;
            // Conversations closed in the store, and the `handle` call after which the desk knew.
            let mut heard_closed: HashMap<ConversationId, usize> = HashMap::new();
            let mut done = Vec::new();
            while let Some((made_by, effect)) = pending.pop_front() {
                if let Effect::Persist(change) = effect {
                    let follow = match self.persist(change, now) {
                        Persisted::Done => None,
                        Persisted::Then(input) => Some(input),
                        Persisted::NotOpen(conversation) => {
                            let known = heard_closed.get(&conversation).is_some_and(|&call| made_by >= call);
                            assert!(!known, "{change:?} for conversation {conversation}, which the desk knew closed");
                            assert!(
                                heard_closed.contains_key(&conversation),
                                "{change:?} for conversation {conversation}, which was not open when this input began"
                            );
                            Some(Input::Closed(conversation))
                        }
                    };
                    if let Some(input) = follow {
                        calls += 1;
                        if let Input::Closed(conversation) = input {
                            heard_closed.entry(conversation).or_insert(calls);
                        }
                        pending.extend(desk.handle(input, now).unwrap_or_default().into_iter().map(|e| (calls, e)));
                    }
                }
                done.push(effect);
            }
            done
        }

        /// Applies one change as the store (and the engine) would.
        fn persist(&mut self, change: Change, now: Millis) -> Persisted {
            if let Change::AgentState { agent, state } = change {
                self.chosen.insert(agent, state);
                return Persisted::Done;
            }
            let conversation = match change {
                Change::Assign { conversation, .. }
                | Change::Requeue { conversation, .. }
                | Change::Record { conversation, .. }
                | Change::Priority { conversation, .. }
                | Change::Notify { conversation, .. }
                | Change::OffHours { conversation, .. }
                | Change::AutoClose { conversation, .. } => conversation,
                Change::AgentState { .. } => unreachable!("handled above"),
            };
            let Some(row) = self.open.get_mut(&conversation) else {
                return Persisted::NotOpen(conversation);
            };
            match change {
                Change::Assign { agent, .. } => {
                    row.agent = Some(agent);
                    row.assigned_at = Some(now);
                }
                Change::Requeue { skill, .. } => {
                    row.agent = None;
                    row.skill = skill;
                }
                Change::Priority { priority, .. } => row.priority = priority.rank(),
                Change::Notify { trigger: Trigger::InactiveWarning, at, .. }
                    if row.last_consumer_at.is_some_and(|consumer_at| consumer_at >= at) =>
                {
                    return Persisted::Then(Input::Activity {
                        conversation,
                        agent_at: row.last_agent_at,
                        consumer_at: row.last_consumer_at,
                    });
                }
                Change::Record { .. } | Change::Notify { .. } => {}
                Change::OffHours { close, .. } => {
                    if close {
                        self.open.remove(&conversation);
                        return Persisted::Then(Input::Closed(conversation));
                    }
                }
                Change::AutoClose { since, .. } => {
                    assert!(row.agent.is_some(), "auto-close of {conversation}, which waits for an agent");
                    assert!(row.last_agent_at.is_some_and(|at| at <= since), "auto-close before the agent wrote");
                    assert!(now >= since + AUTO_CLOSE.after_ms, "auto-close of {conversation} too early");
                    if row.last_consumer_at.is_some_and(|at| at >= since) {
                        return Persisted::Then(Input::Activity {
                            conversation,
                            agent_at: row.last_agent_at,
                            consumer_at: row.last_consumer_at,
                        });
                    }
                    self.open.remove(&conversation);
                    return Persisted::Then(Input::Closed(conversation));
                }
                Change::AgentState { .. } => unreachable!("handled above"),
            }
            Persisted::Done
        }
    }

    proptest! {
        #[test]
        fn desk_invariants_hold_and_the_store_never_disagrees(
            ops in proptest::collection::vec(op(), 1..150),
            offer in any::<bool>(),
            auto_close in any::<bool>(),
            office in any::<bool>(),
        ) {
            let settings = DeskSettings { auto_close: auto_close.then_some(AUTO_CLOSE), ..SETTINGS };
            let mut desk = Desk::new(settings);
            // With hours: Thursday 1970-01-01 08:55 UTC, five minutes before the opening.
            let hours = if office { office_hours(OffHours::Queue) } else { Hours::default() };
            let offer_skills: Vec<SkillRules> = if offer {
                vec![SkillRules { skill: GENERAL, offer_timeout_ms: Some(20_000), priority: Priority::Normal }]
            } else {
                Vec::new()
            };
            handle(&mut desk, Input::Skills(offer_skills.clone()), 0);
            let mut stored = Stored::default();
            let mut now: Millis = if office { 8 * HOUR + 55 * 60_000 } else { 0 };
            desk.set_hours(hours.clone(), now);
            let mut next_id = 0;
            let mut armed: HashMap<Timer, Millis> = HashMap::new();
            for a in 1..=3 {
                let effects = handle(&mut desk, agent(a, 2), now);
                stored.carry_out(&mut desk, effects, now);
            }
            for op in ops {
                let effects = match op {
                    Op::Open => {
                        next_id += 1;
                        let input = opened(next_id, now);
                        if let Input::Opened(open) = &input { stored.open.insert(next_id, *open); }
                        handle(&mut desk, input, now)
                    }
                    Op::Close(i) => {
                        let mut ids: Vec<ConversationId> = stored.open.keys().copied().collect();
                        ids.sort_unstable();
                        if ids.is_empty() { continue }
                        let id = ids[i % ids.len()];
                        stored.open.remove(&id);
                        handle(&mut desk, Input::Closed(id), now)
                    }
                    Op::Connect(a) => handle(&mut desk, Input::AgentConnected(a), now),
                    Op::Disconnect(a) => {
                        if desk.presence(a).is_some_and(|p| p.connected) {
                            handle(&mut desk, Input::AgentDisconnected(a), now)
                        } else { continue }
                    }
                    Op::Choose(a, state) => handle(&mut desk, Input::AgentChose { agent: a, state }, now),
                    Op::Transfer(i, to) => {
                        let mut ids: Vec<ConversationId> = stored.open.keys().copied().collect();
                        ids.sort_unstable();
                        if ids.is_empty() { continue }
                        let id = ids[i % ids.len()];
                        let to = to.map_or(TransferTo::Queue, TransferTo::Agent);
                        desk.handle(Input::Transfer { conversation: id, to }, now).unwrap_or_default()
                    }
                    Op::Answer(i, yes) => {
                        let mut offered: Vec<(ConversationId, AgentId)> = desk.offers.iter().map(|(c, o)| (*c, o.agent)).collect();
                        offered.sort_unstable();
                        if offered.is_empty() { continue }
                        let (conversation, agent) = offered[i % offered.len()];
                        prop_assert_eq!(desk.handle(Input::Accept { conversation, agent: agent + 1 }, now), Err(Refusal::NoOffer));
                        let input = if yes { Input::Accept { conversation, agent } } else { Input::Decline { conversation, agent } };
                        handle(&mut desk, input, now)
                    }
                    Op::Prioritize(i, urgent) => {
                        let mut ids: Vec<ConversationId> = stored.open.keys().copied().collect();
                        ids.sort_unstable();
                        if ids.is_empty() { continue }
                        let priority = if urgent { Priority::Urgent } else { Priority::Normal };
                        handle(&mut desk, Input::SetPriority { conversation: ids[i % ids.len()], priority }, now)
                    }
                    Op::AgentWrite(i) => {
                        let mut ids: Vec<ConversationId> = stored.open.keys().copied().collect();
                        ids.sort_unstable();
                        if ids.is_empty() { continue }
                        let id = ids[i % ids.len()];
                        stored.open.get_mut(&id).unwrap().last_agent_at = Some(now);
                        handle(&mut desk, Input::AgentWrote { conversation: id, at: now }, now)
                    }
                    Op::ConsumerWrite(i) => {
                        // The hot path: stored, never told to the desk.
                        let mut ids: Vec<ConversationId> = stored.open.keys().copied().collect();
                        ids.sort_unstable();
                        if ids.is_empty() { continue }
                        stored.open.get_mut(&ids[i % ids.len()]).unwrap().last_consumer_at = Some(now);
                        continue;
                    }
                    Op::Wait(ms) => {
                        now += ms;
                        handle(&mut desk, Input::Tick, now)
                    }
                    Op::Restart => {
                        let agents = (1..=3).map(|a| AgentSettings {
                            agent: a,
                            profile: AgentProfile { max_concurrent: 2, skills: vec![GENERAL] },
                            chosen: stored.chosen.get(&a).copied().unwrap_or(AgentState::Online),
                            disabled: false,
                        }).collect();
                        let mut open: Vec<OpenConversation> = stored.open.values().copied().collect();
                        open.sort_by_key(|o| o.conversation);
                        let (rebuilt, effects) = Desk::restore(settings, hours.clone(), offer_skills.clone(), agents, open, &HashMap::new(), now, now);
                        desk = rebuilt;
                        armed.clear();
                        effects
                    }
                };
                let effects = stored.carry_out(&mut desk, effects, now);
                // Timers: each Arm is followed by exactly one fire or disarm.
                for effect in effects {
                    match effect {
                        Effect::Arm(timer, at) => { armed.insert(timer, at); }
                        Effect::Disarm(timer) => { prop_assert!(armed.remove(&timer).is_some(), "disarm of unarmed {:?}", timer); }
                        _ => {}
                    }
                }
                armed.retain(|timer, at| desk.timers.due(*timer) == Some(*at));
                prop_assert_eq!(armed.len(), desk.timers.due_of.len());
                // The store and the desk agree on every open conversation, and each is queued
                // xor assigned.
                for (id, row) in &stored.open {
                    match desk.state_of(*id) {
                        Some(ConversationState::Assigned { agent, .. }) => prop_assert_eq!(row.agent, Some(agent)),
                        Some(ConversationState::Queued { skill, .. }) => {
                            prop_assert_eq!(row.agent, None);
                            prop_assert_eq!(row.skill, skill);
                        }
                        Some(ConversationState::Offered { until, .. }) => {
                            prop_assert_eq!(row.agent, None, "an offer is not persisted");
                            prop_assert!(until > now, "offer of {} past its time", id);
                        }
                        None => prop_assert!(false, "open conversation {} unknown to the desk", id),
                    }
                }
                prop_assert_eq!(desk.open.len(), stored.open.len());
                // Nobody is over capacity from routing, and only connected online agents
                // were given anything.
                for floor in desk.agents() {
                    prop_assert!(floor.load <= floor.max_concurrent, "agent {} holds {}", floor.agent, floor.load);
                    if !floor.presence.connected || floor.presence.chosen == AgentState::Offline {
                        let grace_running = floor.presence.grace_until.is_some();
                        prop_assert!(floor.load == 0 || grace_running, "agent {} holds {} without grace", floor.agent, floor.load);
                    }
                }
                // The queue is served by priority, then age, and each entry's priority is the
                // stored one.
                let queued = desk.queued();
                for pair in queued.windows(2) {
                    prop_assert!((-pair[0].priority, pair[0].enqueued_at) <= (-pair[1].priority, pair[1].enqueued_at), "queue order {:?}", queued);
                }
                for entry in &queued {
                    prop_assert_eq!(entry.priority, stored.open[&entry.conversation].priority);
                }
                // Nobody waits beside a connected online agent with room (other than the one
                // who handed it back).
                for entry in desk.queued() {
                    for floor in desk.agents() {
                        let free = floor.presence.connected
                            && floor.presence.chosen == AgentState::Online
                            && floor.load < floor.max_concurrent;
                        prop_assert!(!free || entry.avoid == Some(floor.agent), "{} waits beside agent {}", entry.conversation, floor.agent);
                    }
                }
            }
        }
    }
}
