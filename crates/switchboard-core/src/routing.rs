//! Minimal routing engine: one per brand, in memory, rebuilt from the store at start.
//!
//! A new conversation waits in the queue of its skill; it goes to the least-loaded online
//! agent who has that skill and free capacity (ties: the one idle longest). When capacity
//! frees (a conversation closes, an agent comes online or gets more capacity) the queue is
//! served oldest first, higher priority before lower.
//!
//! Invariants (checked by property tests below): no agent holds more conversations than its
//! capacity; a conversation is either queued or assigned, never both and never twice; the
//! queue is served in (priority, age) order.

use std::collections::{BTreeSet, HashMap};

use switchboard_protocol::{AgentState, ConversationId, Millis};

/// Agent id (a user id of the brand).
pub type AgentId = i64;
/// Skill id.
pub type SkillId = i64;

/// The skill of conversations routed to no particular skill: every agent may take them.
pub const ANY_SKILL: SkillId = 0;

fn handles(profile: &AgentProfile, skill: SkillId) -> bool {
    skill == ANY_SKILL || profile.skills.contains(&skill)
}

/// Routing-relevant settings of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentProfile {
    /// Maximum concurrent open conversations.
    pub max_concurrent: u32,
    /// Skills the agent handles.
    pub skills: Vec<SkillId>,
}

#[derive(Debug, Clone)]
struct AgentSlot {
    profile: AgentProfile,
    state: AgentState,
    /// Conversations currently assigned.
    load: u32,
    /// When the agent last got a conversation or came online; older = idle longer.
    idle_since: Millis,
}

/// Queue order: higher priority first, then older first, then lower id (stable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct QueueKey {
    neg_priority: i32,
    enqueued_at: Millis,
    conversation: ConversationId,
}

/// A decision: give `conversation` to `agent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    /// The conversation.
    pub conversation: ConversationId,
    /// The agent it goes to.
    pub agent: AgentId,
}

/// A conversation waiting for an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedConversation {
    /// The conversation.
    pub conversation: ConversationId,
    /// Its skill.
    pub skill: SkillId,
    /// Higher is served first; 0 is normal.
    pub priority: i32,
    /// When it started waiting.
    pub enqueued_at: Millis,
    /// An agent not to offer it to (the one who handed it back to the queue).
    pub avoid: Option<AgentId>,
}

/// Why a transfer to an agent was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferRefusal {
    /// The agent is not known to the router (disabled or of another brand).
    UnknownAgent,
    /// The agent is not online.
    NotOnline(AgentState),
    /// The agent already holds `max` conversations.
    AtCapacity { load: u32, max: u32 },
    /// The conversation is already theirs.
    AlreadyAssigned,
}

/// An agent as the router sees it (dashboards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    /// The agent.
    pub agent: AgentId,
    /// Availability.
    pub state: AgentState,
    /// Conversations held now.
    pub load: u32,
    /// Routing settings.
    pub profile: AgentProfile,
}

/// Per-brand routing state. All methods are synchronous and total: unknown ids are ignored
/// (the store is the source of truth; the router only ever holds a consistent projection).
#[derive(Debug, Clone)]
pub struct Router {
    agents: HashMap<AgentId, AgentSlot>,
    queue: BTreeSet<QueueKey>,
    queued: HashMap<ConversationId, QueuedConversation>,
    assigned: HashMap<ConversationId, AgentId>,
    /// Average time an agent needs per conversation, used for the estimated wait.
    avg_handle_ms: Millis,
}

/// Default average handling time before any conversation has closed: 5 minutes.
pub const DEFAULT_AVG_HANDLE_MS: Millis = 5 * 60 * 1000;

impl Default for Router {
    fn default() -> Self {
        Router::new()
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Router {
        Router {
            agents: HashMap::new(),
            queue: BTreeSet::new(),
            queued: HashMap::new(),
            assigned: HashMap::new(),
            avg_handle_ms: DEFAULT_AVG_HANDLE_MS,
        }
    }

    /// Adds or updates an agent's settings. More capacity may serve the queue.
    pub fn upsert_agent(&mut self, agent: AgentId, profile: AgentProfile, now: Millis) -> Vec<Assignment> {
        match self.agents.get_mut(&agent) {
            Some(slot) => slot.profile = profile,
            None => {
                self.agents.insert(agent, AgentSlot { profile, state: AgentState::Offline, load: 0, idle_since: now });
            }
        }
        self.dispatch(now)
    }

    /// Changes an agent's availability. Going online may serve the queue. Conversations the
    /// agent holds stay with them whatever the state (the grace period before they return to
    /// the queue is the routing engine's job, later).
    pub fn set_agent_state(&mut self, agent: AgentId, state: AgentState, now: Millis) -> Vec<Assignment> {
        let Some(slot) = self.agents.get_mut(&agent) else {
            return Vec::new();
        };
        if slot.state != AgentState::Online && state == AgentState::Online {
            slot.idle_since = now;
        }
        slot.state = state;
        self.dispatch(now)
    }

    /// The agent's current state, if known.
    pub fn agent_state(&self, agent: AgentId) -> Option<AgentState> {
        self.agents.get(&agent).map(|slot| slot.state)
    }

    /// Records an assignment that already exists in the store (used while rebuilding).
    pub fn restore_assignment(&mut self, conversation: ConversationId, agent: AgentId) {
        if self.assigned.contains_key(&conversation) {
            return;
        }
        if let Some(slot) = self.agents.get_mut(&agent) {
            slot.load += 1;
            self.assigned.insert(conversation, agent);
        }
    }

    /// A conversation starts waiting. Returns assignments made now (possibly this one).
    pub fn enqueue(&mut self, entry: QueuedConversation, now: Millis) -> Vec<Assignment> {
        if self.assigned.contains_key(&entry.conversation) || self.queued.contains_key(&entry.conversation) {
            return Vec::new();
        }
        self.queue.insert(key_of(&entry));
        self.queued.insert(entry.conversation, entry);
        self.dispatch(now)
    }

    /// A conversation closed: it leaves the queue or frees its agent's capacity, which may
    /// serve the queue. `handled_ms` (open → close) feeds the estimated wait.
    pub fn release(
        &mut self,
        conversation: ConversationId,
        handled_ms: Option<Millis>,
        now: Millis,
    ) -> Vec<Assignment> {
        if let Some(entry) = self.queued.remove(&conversation) {
            self.queue.remove(&key_of(&entry));
        }
        if let Some(agent) = self.assigned.remove(&conversation) {
            if let Some(slot) = self.agents.get_mut(&agent) {
                slot.load = slot.load.saturating_sub(1);
                slot.idle_since = now;
            }
            if let Some(ms) = handled_ms {
                // Exponentially weighted average, 1/8 weight for the newest sample.
                self.avg_handle_ms = (self.avg_handle_ms * 7 + ms.max(0)) / 8;
            }
        }
        self.dispatch(now)
    }

    /// Moves a conversation (queued or assigned) to the queue of `entry.skill`, keeping its
    /// place (`enqueued_at`): a transfer to a skill, or "back to the queue". The agent in
    /// `entry.avoid` is not offered it again. Returns assignments made now.
    pub fn requeue(&mut self, entry: QueuedConversation, now: Millis) -> Vec<Assignment> {
        self.detach(entry.conversation, now);
        self.queue.insert(key_of(&entry));
        self.queued.insert(entry.conversation, entry);
        self.dispatch(now)
    }

    /// Hands a conversation straight to `agent` (a transfer), ahead of the queue. The agent
    /// must be online with free capacity. On success returns the assignments the freed
    /// capacity of the previous agent made (the transfer itself is not among them).
    pub fn transfer_to_agent(
        &mut self,
        conversation: ConversationId,
        agent: AgentId,
        now: Millis,
    ) -> Result<Vec<Assignment>, TransferRefusal> {
        let slot = self.agents.get(&agent).ok_or(TransferRefusal::UnknownAgent)?;
        if self.assigned.get(&conversation) == Some(&agent) {
            return Err(TransferRefusal::AlreadyAssigned);
        }
        if slot.state != AgentState::Online {
            return Err(TransferRefusal::NotOnline(slot.state));
        }
        if slot.load >= slot.profile.max_concurrent {
            return Err(TransferRefusal::AtCapacity { load: slot.load, max: slot.profile.max_concurrent });
        }
        self.detach(conversation, now);
        let slot = self.agents.get_mut(&agent).expect("checked above");
        slot.load += 1;
        slot.idle_since = now;
        self.assigned.insert(conversation, agent);
        Ok(self.dispatch(now))
    }

    /// Takes a conversation out of the queue or off its agent, without a handling-time sample.
    fn detach(&mut self, conversation: ConversationId, now: Millis) {
        if let Some(entry) = self.queued.remove(&conversation) {
            self.queue.remove(&key_of(&entry));
        }
        if let Some(agent) = self.assigned.remove(&conversation)
            && let Some(slot) = self.agents.get_mut(&agent)
        {
            slot.load = slot.load.saturating_sub(1);
            slot.idle_since = now;
        }
    }

    /// Waiting conversations in the order they will be served.
    pub fn queued(&self) -> Vec<QueuedConversation> {
        self.queue.iter().map(|key| self.queued[&key.conversation]).collect()
    }

    /// Every known agent, by id.
    pub fn agents(&self) -> Vec<AgentView> {
        let mut agents: Vec<AgentView> = self
            .agents
            .iter()
            .map(|(id, slot)| AgentView {
                agent: *id,
                state: slot.state,
                load: slot.load,
                profile: slot.profile.clone(),
            })
            .collect();
        agents.sort_by_key(|view| view.agent);
        agents
    }

    /// Estimated seconds a conversation arriving now for `skill` would wait: `None` when no
    /// online agent has the skill.
    pub fn estimated_wait_for_new(&self, skill: SkillId) -> Option<u32> {
        let waiting = self.queued.values().filter(|entry| entry.skill == skill).count() as i64;
        self.wait_estimate(waiting, skill)
    }

    /// The agent holding `conversation`, if assigned.
    pub fn assignee(&self, conversation: ConversationId) -> Option<AgentId> {
        self.assigned.get(&conversation).copied()
    }

    /// Conversations assigned to `agent` right now.
    pub fn load(&self, agent: AgentId) -> u32 {
        self.agents.get(&agent).map_or(0, |slot| slot.load)
    }

    /// Number of conversations waiting.
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Estimated seconds until `conversation` gets an agent: its position among waiting
    /// conversations of its skill, times the average handling time, divided by the capacity
    /// of online agents with that skill. `None` when it is not queued or no such agent is
    /// online.
    pub fn estimated_wait_secs(&self, conversation: ConversationId) -> Option<u32> {
        let entry = self.queued.get(&conversation)?;
        let ahead = self
            .queue
            .iter()
            .take_while(|key| key.conversation != conversation)
            .filter(|key| self.queued.get(&key.conversation).is_some_and(|e| e.skill == entry.skill))
            .count() as i64;
        self.wait_estimate(ahead, entry.skill)
    }

    /// `ahead` conversations of `skill` are served first: their handling time spread over
    /// the capacity of online agents with the skill.
    fn wait_estimate(&self, ahead: i64, skill: SkillId) -> Option<u32> {
        let capacity: i64 = self
            .agents
            .values()
            .filter(|slot| slot.state == AgentState::Online && handles(&slot.profile, skill))
            .map(|slot| i64::from(slot.profile.max_concurrent))
            .sum();
        if capacity == 0 {
            return None;
        }
        let ms = (ahead + 1) * self.avg_handle_ms / capacity;
        Some(u32::try_from(ms / 1000).unwrap_or(u32::MAX).max(1))
    }

    /// Serves the queue in order while some eligible agent has capacity.
    fn dispatch(&mut self, now: Millis) -> Vec<Assignment> {
        let mut out = Vec::new();
        let waiting: Vec<QueueKey> = self.queue.iter().copied().collect();
        for key in waiting {
            let QueuedConversation { skill, avoid, .. } = self.queued[&key.conversation];
            let best = self
                .agents
                .iter()
                .filter(|(id, slot)| {
                    avoid != Some(**id)
                        && slot.state == AgentState::Online
                        && slot.load < slot.profile.max_concurrent
                        && handles(&slot.profile, skill)
                })
                .min_by_key(|(id, slot)| (slot.load, slot.idle_since, **id))
                .map(|(id, _)| *id);
            let Some(agent) = best else { continue };
            self.queue.remove(&key);
            self.queued.remove(&key.conversation);
            self.assigned.insert(key.conversation, agent);
            let slot = self.agents.get_mut(&agent).expect("agent chosen from the map");
            slot.load += 1;
            slot.idle_since = now;
            out.push(Assignment { conversation: key.conversation, agent });
        }
        out
    }
}

fn key_of(entry: &QueuedConversation) -> QueueKey {
    QueueKey { neg_priority: -entry.priority, enqueued_at: entry.enqueued_at, conversation: entry.conversation }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const GENERAL: SkillId = 1;
    const BILLING: SkillId = 2;

    fn agent(max: u32, skills: &[SkillId]) -> AgentProfile {
        AgentProfile { max_concurrent: max, skills: skills.to_vec() }
    }

    fn queued(conversation: ConversationId, skill: SkillId, at: Millis) -> QueuedConversation {
        QueuedConversation { conversation, skill, priority: 0, enqueued_at: at, avoid: None }
    }

    #[test]
    fn new_conversation_goes_to_least_loaded_online_agent() {
        let mut router = Router::new();
        router.upsert_agent(10, agent(2, &[GENERAL]), 0);
        router.upsert_agent(11, agent(2, &[GENERAL]), 0);
        router.set_agent_state(10, AgentState::Online, 1);
        router.set_agent_state(11, AgentState::Online, 2);
        let first = router.enqueue(queued(1, GENERAL, 5), 5);
        // Both idle with load 0: agent 10 has been idle longer.
        assert_eq!(first, vec![Assignment { conversation: 1, agent: 10 }]);
        let second = router.enqueue(queued(2, GENERAL, 6), 6);
        assert_eq!(second, vec![Assignment { conversation: 2, agent: 11 }]);
    }

    #[test]
    fn waits_without_capacity_then_served_oldest_first() {
        let mut router = Router::new();
        router.upsert_agent(10, agent(1, &[GENERAL]), 0);
        router.set_agent_state(10, AgentState::Online, 0);
        assert_eq!(router.enqueue(queued(1, GENERAL, 1), 1).len(), 1);
        assert!(router.enqueue(queued(3, GENERAL, 3), 3).is_empty());
        assert!(router.enqueue(queued(2, GENERAL, 2), 4).is_empty());
        assert_eq!(router.queue_len(), 2);
        // Conversation 2 waits since t=2, conversation 3 since t=3.
        assert_eq!(router.release(1, Some(1000), 10), vec![Assignment { conversation: 2, agent: 10 }]);
        assert_eq!(router.release(2, None, 11), vec![Assignment { conversation: 3, agent: 10 }]);
    }

    #[test]
    fn away_agents_get_nothing_new_and_skills_are_respected() {
        let mut router = Router::new();
        router.upsert_agent(10, agent(5, &[GENERAL]), 0);
        router.upsert_agent(11, agent(5, &[BILLING]), 0);
        router.set_agent_state(10, AgentState::Away, 0);
        router.set_agent_state(11, AgentState::Online, 0);
        assert!(router.enqueue(queued(1, GENERAL, 1), 1).is_empty());
        assert_eq!(router.estimated_wait_secs(1), None, "no online agent has the skill");
        assert_eq!(router.set_agent_state(10, AgentState::Online, 2), vec![Assignment { conversation: 1, agent: 10 }]);
    }

    #[test]
    fn estimated_wait_grows_with_position() {
        let mut router = Router::new();
        router.upsert_agent(10, agent(1, &[GENERAL]), 0);
        router.set_agent_state(10, AgentState::Online, 0);
        router.enqueue(queued(1, GENERAL, 0), 0);
        router.enqueue(queued(2, GENERAL, 1), 1);
        router.enqueue(queued(3, GENERAL, 2), 2);
        let second = router.estimated_wait_secs(2).unwrap();
        let third = router.estimated_wait_secs(3).unwrap();
        assert_eq!(second, 300);
        assert_eq!(third, 600);
    }

    #[test]
    fn back_to_queue_goes_to_another_agent_and_keeps_its_place() {
        let mut router = Router::new();
        router.upsert_agent(10, agent(1, &[GENERAL]), 0);
        router.set_agent_state(10, AgentState::Online, 0);
        assert_eq!(router.enqueue(queued(1, GENERAL, 1), 1).len(), 1);
        assert!(router.enqueue(queued(2, GENERAL, 2), 2).is_empty());
        // Agent 10 hands conversation 1 back: it is not offered to them again, so their
        // freed seat serves conversation 2, and 1 waits ahead of anything newer.
        let entry = QueuedConversation { avoid: Some(10), ..queued(1, GENERAL, 1) };
        assert_eq!(router.requeue(entry, 3), vec![Assignment { conversation: 2, agent: 10 }]);
        assert_eq!(router.queued().iter().map(|e| e.conversation).collect::<Vec<_>>(), vec![1]);
        router.upsert_agent(11, agent(1, &[GENERAL]), 4);
        assert_eq!(router.set_agent_state(11, AgentState::Online, 4), vec![Assignment { conversation: 1, agent: 11 }]);
    }

    #[test]
    fn transfer_to_agent_needs_an_online_agent_with_room() {
        let mut router = Router::new();
        router.upsert_agent(10, agent(1, &[GENERAL]), 0);
        router.upsert_agent(11, agent(1, &[BILLING]), 0);
        router.set_agent_state(10, AgentState::Online, 0);
        router.enqueue(queued(1, GENERAL, 1), 1);
        assert_eq!(router.transfer_to_agent(1, 11, 2), Err(TransferRefusal::NotOnline(AgentState::Offline)));
        assert_eq!(router.transfer_to_agent(1, 10, 2), Err(TransferRefusal::AlreadyAssigned));
        assert_eq!(router.transfer_to_agent(1, 99, 2), Err(TransferRefusal::UnknownAgent));
        router.set_agent_state(11, AgentState::Online, 2);
        // Skills do not restrict a transfer to a named agent; capacity does.
        router.enqueue(queued(2, GENERAL, 3), 3);
        assert_eq!(router.transfer_to_agent(1, 11, 4), Ok(vec![Assignment { conversation: 2, agent: 10 }]));
        assert_eq!(router.assignee(1), Some(11));
        assert_eq!(router.transfer_to_agent(2, 11, 5), Err(TransferRefusal::AtCapacity { load: 1, max: 1 }));
        assert_eq!(router.estimated_wait_for_new(GENERAL), Some(300));
        assert_eq!(router.agents().iter().map(|a| (a.agent, a.load)).collect::<Vec<_>>(), vec![(10, 1), (11, 1)]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Enqueue { skill: SkillId, priority: i32 },
        Release(usize),
        State(AgentId, bool),
        Capacity(AgentId, u32),
        Requeue(usize, SkillId),
        Transfer(usize, AgentId),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1..=2i64, 0..=1i32).prop_map(|(skill, priority)| Op::Enqueue { skill, priority }),
            (0..50usize).prop_map(Op::Release),
            (0..4i64, any::<bool>()).prop_map(|(a, on)| Op::State(a, on)),
            (0..4i64, 0..4u32).prop_map(|(a, c)| Op::Capacity(a, c)),
            (0..50usize, 1..=2i64).prop_map(|(i, skill)| Op::Requeue(i, skill)),
            (0..50usize, 0..4i64).prop_map(|(i, a)| Op::Transfer(i, a)),
        ]
    }

    proptest! {
        #[test]
        fn invariants_hold_under_any_sequence(ops in proptest::collection::vec(op(), 1..200)) {
            let mut router = Router::new();
            for a in 0..4 {
                router.upsert_agent(a, agent(2, if a % 2 == 0 { &[GENERAL] } else { &[GENERAL, BILLING] }), 0);
            }
            let mut next_id = 0;
            let mut open: Vec<ConversationId> = Vec::new();
            for (now, op) in ops.into_iter().enumerate() {
                let now = now as Millis;
                let assignments = match op {
                    Op::Enqueue { skill, priority } => {
                        next_id += 1;
                        open.push(next_id);
                        router.enqueue(QueuedConversation { conversation: next_id, skill, priority, enqueued_at: now, avoid: None }, now)
                    }
                    Op::Release(i) if !open.is_empty() => {
                        let conversation = open.remove(i % open.len());
                        router.release(conversation, Some(1000), now)
                    }
                    Op::Release(_) => Vec::new(),
                    Op::State(a, on) => router.set_agent_state(a, if on { AgentState::Online } else { AgentState::Away }, now),
                    Op::Capacity(a, c) => {
                        let skills = router.agents[&a].profile.skills.clone();
                        router.upsert_agent(a, agent(c, &skills), now)
                    }
                    Op::Requeue(i, skill) if !open.is_empty() => {
                        let conversation = open[i % open.len()];
                        let avoid = router.assignee(conversation);
                        router.requeue(QueuedConversation { conversation, skill, priority: 0, enqueued_at: now, avoid }, now)
                    }
                    Op::Transfer(i, a) if !open.is_empty() => {
                        let conversation = open[i % open.len()];
                        let before = router.agents[&a].load;
                        match router.transfer_to_agent(conversation, a, now) {
                            Ok(assignments) => {
                                prop_assert_eq!(router.assignee(conversation), Some(a));
                                prop_assert_eq!(router.agents[&a].load, before + 1);
                                assignments
                            }
                            Err(_) => Vec::new(),
                        }
                    }
                    Op::Requeue(..) | Op::Transfer(..) => Vec::new(),
                };
                for assignment in &assignments {
                    let slot = &router.agents[&assignment.agent];
                    prop_assert_eq!(slot.state, AgentState::Online);
                    prop_assert!(slot.load <= slot.profile.max_concurrent);
                }
                // Capacity may shrink below load (the agent keeps what they have) but an
                // assignment never pushes past it; load always equals the assigned count.
                for (id, slot) in &router.agents {
                    let held = router.assigned.values().filter(|a| *a == id).count() as u32;
                    prop_assert_eq!(slot.load, held);
                }
                for conversation in &open {
                    let is_queued = router.queued.contains_key(conversation);
                    let is_assigned = router.assigned.contains_key(conversation);
                    prop_assert!(is_queued != is_assigned, "conversation {} queued={} assigned={}", conversation, is_queued, is_assigned);
                }
                prop_assert_eq!(router.queued.len() + router.assigned.len(), open.len());
                // Nobody waits while an eligible online agent has room (other than the one
                // who handed it back).
                for entry in router.queued.values() {
                    let free = router.agents.iter().any(|(id, slot)| entry.avoid != Some(*id)
                        && slot.state == AgentState::Online
                        && slot.load < slot.profile.max_concurrent
                        && slot.profile.skills.contains(&entry.skill));
                    prop_assert!(!free, "conversation {} waits beside a free agent", entry.conversation);
                }
            }
        }
    }
}
