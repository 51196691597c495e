//! The router: who gets which waiting conversation. One per brand, inside the brand's
//! [`Desk`](crate::desk::Desk); a projection of the store, rebuilt from it at start.
//!
//! A new conversation waits in the queue of its skill; it goes to the least-loaded online
//! agent who has that skill and free capacity (ties: the one idle longest). When capacity
//! frees (a conversation closes, an agent comes online or gets more capacity) the queues are
//! served in (priority, age) order across skills.
//!
//! Every decision costs O(skills × log n), not O(queue × agents): each skill has its own
//! queue, and an index per skill holds the agents who could take one more conversation of it
//! right now, best first. With 10,000 agents and 100,000 waiting conversations a decision
//! touches a handful of tree nodes (measured: `switchboard-loadgen desk`, docs/benchmarks.md).
//!
//! Invariants (checked by property tests below): no assignment pushes an agent past their
//! capacity; a conversation is either queued or assigned, never both and never twice; the
//! queues are served in (priority, age) order; nobody waits while an eligible online agent
//! has room.

use std::collections::{BTreeSet, HashMap};

use switchboard_protocol::{AgentState, ConversationId, Millis};

pub use crate::ids::{ANY_SKILL, AgentId, SkillId};

/// Routing-relevant settings of an agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentProfile {
    /// Maximum concurrent open conversations.
    pub max_concurrent: u32,
    /// Skills the agent handles.
    pub skills: Vec<SkillId>,
}

impl AgentProfile {
    /// Whether the agent may be given a conversation of `skill`: every agent takes
    /// conversations of no particular skill.
    #[cfg(test)]
    fn handles(&self, skill: SkillId) -> bool {
        skill == ANY_SKILL || self.skills.contains(&skill)
    }

    /// The skill indexes the agent belongs to: theirs and [`ANY_SKILL`].
    fn index_keys(&self) -> impl Iterator<Item = SkillId> + '_ {
        std::iter::once(ANY_SKILL).chain(self.skills.iter().copied().filter(|skill| *skill != ANY_SKILL))
    }
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

impl AgentSlot {
    /// Whether the agent can take one more conversation now.
    fn available(&self) -> bool {
        self.state == AgentState::Online && self.load < self.profile.max_concurrent
    }

    fn avail_key(&self, agent: AgentId) -> AvailKey {
        AvailKey { load: self.load, idle_since: self.idle_since, agent }
    }
}

/// Order of available agents: least loaded, then idle longest, then lowest id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct AvailKey {
    load: u32,
    idle_since: Millis,
    agent: AgentId,
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
    /// When it started waiting (kept across transfers and returns to the queue).
    pub enqueued_at: Millis,
    /// An agent not to offer it to (the one who handed it back to the queue).
    pub avoid: Option<AgentId>,
}

/// Why a transfer to an agent was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferRefusal {
    /// The agent is not known to the router (disabled or of another brand).
    UnknownAgent,
    /// The agent is not online (or not connected).
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
    /// Availability as routing uses it.
    pub state: AgentState,
    /// Conversations held now.
    pub load: u32,
    /// Routing settings.
    pub profile: AgentProfile,
}

/// One skill's queue at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct QueueSummary {
    /// Conversations waiting.
    pub depth: usize,
    /// When the longest-waiting one started waiting.
    pub oldest: Option<Millis>,
}

/// Running totals of the online agents who handle a skill, for the estimated wait.
#[derive(Debug, Clone, Copy, Default)]
struct Staffing {
    /// Sum of `max_concurrent`.
    capacity: u64,
    /// Sum of free seats (`max_concurrent - load`, never negative).
    free: u64,
}

/// Per-brand routing state. All methods are synchronous and total: unknown ids are ignored
/// (the store is the source of truth; the router only ever holds a consistent projection).
#[derive(Debug, Clone, Default)]
pub struct Router {
    agents: HashMap<AgentId, AgentSlot>,
    /// Per skill ([`ANY_SKILL`] included), the agents who could take one more conversation
    /// of that skill now. An agent is in the sets of each of their skills and of
    /// [`ANY_SKILL`], or in none.
    available: HashMap<SkillId, BTreeSet<AvailKey>>,
    /// Per skill, the waiting conversations in serving order.
    queues: HashMap<SkillId, BTreeSet<QueueKey>>,
    queued: HashMap<ConversationId, QueuedConversation>,
    assigned: HashMap<ConversationId, AgentId>,
    /// Per skill, the online agents' capacity and free seats.
    staffing: HashMap<SkillId, Staffing>,
}

impl Router {
    /// An empty router.
    pub fn new() -> Router {
        Router::default()
    }

    /// Takes an agent out of the indexes before a change to its slot.
    fn unindex(&mut self, agent: AgentId) {
        let Some(slot) = self.agents.get(&agent) else { return };
        let key = slot.avail_key(agent);
        let online = slot.state == AgentState::Online;
        let (capacity, free) = seats(slot);
        for skill in slot.profile.index_keys() {
            if let Some(set) = self.available.get_mut(&skill) {
                set.remove(&key);
            }
            if online && let Some(staffing) = self.staffing.get_mut(&skill) {
                staffing.capacity -= capacity;
                staffing.free -= free;
            }
        }
    }

    /// Puts an agent back into the indexes after a change to its slot.
    fn reindex(&mut self, agent: AgentId) {
        let Some(slot) = self.agents.get(&agent) else { return };
        let key = slot.avail_key(agent);
        let available = slot.available();
        let online = slot.state == AgentState::Online;
        let (capacity, free) = seats(slot);
        for skill in slot.profile.index_keys() {
            if available {
                self.available.entry(skill).or_default().insert(key);
            }
            if online {
                let staffing = self.staffing.entry(skill).or_default();
                staffing.capacity += capacity;
                staffing.free += free;
            }
        }
    }

    /// Changes an agent's slot with the indexes kept right.
    fn update_agent(&mut self, agent: AgentId, change: impl FnOnce(&mut AgentSlot)) {
        self.unindex(agent);
        if let Some(slot) = self.agents.get_mut(&agent) {
            change(slot);
        }
        self.reindex(agent);
    }

    /// Adds or updates an agent's settings. More capacity may serve the queue.
    pub fn upsert_agent(&mut self, agent: AgentId, profile: AgentProfile, now: Millis) -> Vec<Assignment> {
        match self.agents.entry(agent) {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(AgentSlot { profile, state: AgentState::Offline, load: 0, idle_since: now });
                self.reindex(agent);
            }
            std::collections::hash_map::Entry::Occupied(_) => self.update_agent(agent, |slot| slot.profile = profile),
        }
        self.dispatch(now)
    }

    /// Changes an agent's availability. Going online may serve the queue. Conversations the
    /// agent holds stay with them whatever the state (the desk returns them to the queue
    /// after the grace period).
    pub fn set_agent_state(&mut self, agent: AgentId, state: AgentState, now: Millis) -> Vec<Assignment> {
        let Some(slot) = self.agents.get(&agent) else {
            return Vec::new();
        };
        if slot.state == state {
            return Vec::new();
        }
        let coming_online = state == AgentState::Online;
        self.update_agent(agent, |slot| {
            if coming_online {
                slot.idle_since = now;
            }
            slot.state = state;
        });
        self.dispatch(now)
    }

    /// The agent's current state, if known.
    pub fn agent_state(&self, agent: AgentId) -> Option<AgentState> {
        self.agents.get(&agent).map(|slot| slot.state)
    }

    /// Records an assignment that already exists in the store (rebuilding, or an agent's
    /// proactive message). It may put the agent over capacity: they chose to write.
    pub fn restore_assignment(&mut self, conversation: ConversationId, agent: AgentId) {
        if self.assigned.contains_key(&conversation) || !self.agents.contains_key(&agent) {
            return;
        }
        self.take_from_queue(conversation);
        self.update_agent(agent, |slot| slot.load += 1);
        self.assigned.insert(conversation, agent);
    }

    /// A conversation starts waiting. Returns assignments made now (possibly this one).
    pub fn enqueue(&mut self, entry: QueuedConversation, now: Millis) -> Vec<Assignment> {
        if self.assigned.contains_key(&entry.conversation) || self.queued.contains_key(&entry.conversation) {
            return Vec::new();
        }
        self.put_in_queue(entry);
        self.dispatch(now)
    }

    /// A conversation closed: it leaves the queue or frees its agent's capacity, which may
    /// serve the queue. Returns the agent who held it, and the assignments made now.
    pub fn release(&mut self, conversation: ConversationId, now: Millis) -> (Option<AgentId>, Vec<Assignment>) {
        let held_by = self.detach(conversation, now);
        (held_by, self.dispatch(now))
    }

    /// Moves a conversation (queued or assigned) to the queue of `entry.skill`, keeping its
    /// place (`enqueued_at`): a transfer to a skill, or "back to the queue". The agent in
    /// `entry.avoid` is not offered it again. Returns assignments made now.
    pub fn requeue(&mut self, entry: QueuedConversation, now: Millis) -> Vec<Assignment> {
        self.detach(entry.conversation, now);
        self.put_in_queue(entry);
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
        self.check_transfer(conversation, agent)?;
        self.detach(conversation, now);
        self.give(conversation, agent, now);
        Ok(self.dispatch(now))
    }

    /// Whether [`Router::transfer_to_agent`] would accept, without changing anything.
    pub fn check_transfer(&self, conversation: ConversationId, agent: AgentId) -> Result<(), TransferRefusal> {
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
        Ok(())
    }

    fn put_in_queue(&mut self, entry: QueuedConversation) {
        self.queues.entry(entry.skill).or_default().insert(key_of(&entry));
        self.queued.insert(entry.conversation, entry);
    }

    fn take_from_queue(&mut self, conversation: ConversationId) -> Option<QueuedConversation> {
        let entry = self.queued.remove(&conversation)?;
        if let Some(queue) = self.queues.get_mut(&entry.skill) {
            queue.remove(&key_of(&entry));
            if queue.is_empty() {
                self.queues.remove(&entry.skill);
            }
        }
        Some(entry)
    }

    /// Takes a conversation out of the queue or off its agent; returns that agent.
    fn detach(&mut self, conversation: ConversationId, now: Millis) -> Option<AgentId> {
        self.take_from_queue(conversation);
        let agent = self.assigned.remove(&conversation)?;
        self.update_agent(agent, |slot| {
            slot.load = slot.load.saturating_sub(1);
            slot.idle_since = now;
        });
        Some(agent)
    }

    fn give(&mut self, conversation: ConversationId, agent: AgentId, now: Millis) {
        self.update_agent(agent, |slot| {
            slot.load += 1;
            slot.idle_since = now;
        });
        self.assigned.insert(conversation, agent);
    }

    /// Waiting conversations in the order they will be served (all skills).
    pub fn queued(&self) -> Vec<QueuedConversation> {
        let mut keys: Vec<QueueKey> = self.queues.values().flat_map(|queue| queue.iter().copied()).collect();
        keys.sort_unstable();
        keys.iter().map(|key| self.queued[&key.conversation]).collect()
    }

    /// The waiting conversation, if it waits.
    pub fn queued_entry(&self, conversation: ConversationId) -> Option<QueuedConversation> {
        self.queued.get(&conversation).copied()
    }

    /// Depth and oldest wait of each skill's queue (skills with nobody waiting are absent).
    pub fn queue_summaries(&self) -> HashMap<SkillId, QueueSummary> {
        self.queues
            .iter()
            .map(|(skill, queue)| {
                let oldest = queue.iter().map(|key| key.enqueued_at).min();
                (*skill, QueueSummary { depth: queue.len(), oldest })
            })
            .collect()
    }

    /// The waiting conversations of `skill` in serving order, with their position (0: next).
    pub fn queue_of(&self, skill: SkillId) -> impl Iterator<Item = (usize, ConversationId)> + '_ {
        self.queues.get(&skill).into_iter().flat_map(|queue| queue.iter().map(|key| key.conversation)).enumerate()
    }

    /// Skills that have someone waiting.
    pub fn queued_skills(&self) -> Vec<SkillId> {
        let mut skills: Vec<SkillId> = self.queues.keys().copied().collect();
        skills.sort_unstable();
        skills
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

    /// Whether the router knows the agent.
    pub fn knows_agent(&self, agent: AgentId) -> bool {
        self.agents.contains_key(&agent)
    }

    /// The conversations `agent` holds, lowest id first.
    pub fn assigned_to(&self, agent: AgentId) -> Vec<ConversationId> {
        let mut held: Vec<ConversationId> =
            self.assigned.iter().filter(|(_, holder)| **holder == agent).map(|(c, _)| *c).collect();
        held.sort_unstable();
        held
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
        self.queued.len()
    }

    /// Online capacity and free seats of the agents handling `skill`.
    pub fn staffing(&self, skill: SkillId) -> (u64, u64) {
        self.staffing.get(&skill).map_or((0, 0), |staffing| (staffing.capacity, staffing.free))
    }

    /// Position of a waiting conversation in its skill's queue (0: served next).
    pub fn position(&self, conversation: ConversationId) -> Option<usize> {
        let entry = self.queued.get(&conversation)?;
        let queue = self.queues.get(&entry.skill)?;
        let key = key_of(entry);
        // New arrivals join at the back: answer that common case without a walk.
        if queue.last() == Some(&key) {
            return Some(queue.len() - 1);
        }
        Some(queue.range(..key).count())
    }

    /// Serves the queues in (priority, age) order while some eligible agent has capacity.
    fn dispatch(&mut self, now: Millis) -> Vec<Assignment> {
        let mut out = Vec::new();
        while let Some((key, agent)) = self.next_decision() {
            self.take_from_queue(key.conversation);
            self.give(key.conversation, agent, now);
            out.push(Assignment { conversation: key.conversation, agent });
        }
        out
    }

    /// The first waiting conversation, across skills, that an available agent may take, and
    /// the best such agent.
    fn next_decision(&self) -> Option<(QueueKey, AgentId)> {
        let mut best: Option<(QueueKey, AgentId)> = None;
        for (skill, queue) in &self.queues {
            let Some(agents) = self.available.get(skill).filter(|agents| !agents.is_empty()) else { continue };
            // Entries that avoid the only available agent are passed over, as the old
            // linear scan did; such entries are rare (one "back to queue" each).
            for key in queue {
                if best.is_some_and(|(best_key, _)| best_key < *key) {
                    break;
                }
                let avoid = self.queued[&key.conversation].avoid;
                if let Some(agent) = agents.iter().map(|avail| avail.agent).find(|agent| Some(*agent) != avoid) {
                    best = Some((*key, agent));
                    break;
                }
            }
        }
        best
    }
}

/// Seats an agent adds to the staffing totals while online: capacity and free seats.
fn seats(slot: &AgentSlot) -> (u64, u64) {
    (u64::from(slot.profile.max_concurrent), u64::from(slot.profile.max_concurrent.saturating_sub(slot.load)))
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
        assert_eq!(router.release(1, 10).1, vec![Assignment { conversation: 2, agent: 10 }]);
        assert_eq!(router.release(2, 11).1, vec![Assignment { conversation: 3, agent: 10 }]);
    }

    #[test]
    fn away_agents_get_nothing_new_and_skills_are_respected() {
        let mut router = Router::new();
        router.upsert_agent(10, agent(5, &[GENERAL]), 0);
        router.upsert_agent(11, agent(5, &[BILLING]), 0);
        router.set_agent_state(10, AgentState::Away, 0);
        router.set_agent_state(11, AgentState::Online, 0);
        assert!(router.enqueue(queued(1, GENERAL, 1), 1).is_empty());
        assert_eq!(router.staffing(GENERAL), (0, 0), "no online agent has the skill");
        assert_eq!(router.set_agent_state(10, AgentState::Online, 2), vec![Assignment { conversation: 1, agent: 10 }]);
    }

    #[test]
    fn positions_and_staffing_follow_the_queue() {
        let mut router = Router::new();
        router.upsert_agent(10, agent(1, &[GENERAL]), 0);
        router.set_agent_state(10, AgentState::Online, 0);
        router.enqueue(queued(1, GENERAL, 0), 0);
        router.enqueue(queued(3, GENERAL, 2), 2);
        router.enqueue(queued(2, GENERAL, 1), 1);
        assert_eq!(router.position(2), Some(0));
        assert_eq!(router.position(3), Some(1));
        assert_eq!(router.position(1), None, "assigned, not waiting");
        assert_eq!(router.staffing(GENERAL), (1, 0));
        assert_eq!(router.staffing(ANY_SKILL), (1, 0));
        assert_eq!(router.queue_summaries()[&GENERAL], QueueSummary { depth: 2, oldest: Some(1) });
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
                        router.release(conversation, now).1
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
                // The indexes agree with a recount from the slots.
                for (id, slot) in &router.agents {
                    for skill in [ANY_SKILL, GENERAL, BILLING] {
                        let indexed = router.available.get(&skill).is_some_and(|set| set.iter().any(|k| k.agent == *id));
                        prop_assert_eq!(indexed, slot.available() && slot.profile.handles(skill), "agent {} skill {}", id, skill);
                    }
                }
                for skill in [ANY_SKILL, GENERAL, BILLING] {
                    let online: Vec<&AgentSlot> = router.agents.values().filter(|s| s.state == AgentState::Online && s.profile.handles(skill)).collect();
                    let capacity: u64 = online.iter().map(|s| u64::from(s.profile.max_concurrent)).sum();
                    let free: u64 = online.iter().map(|s| u64::from(s.profile.max_concurrent.saturating_sub(s.load))).sum();
                    prop_assert_eq!(router.staffing(skill), (capacity, free));
                }
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
