//! Where an open conversation stands, as the desk sees it. The store holds the same facts
//! (`conversations.agent_id`, `skill_id`, `status`); the desk never lets the two disagree,
//! because every change is persisted before the desk takes its next input.

use crate::ids::{AgentId, Millis, SkillId};

/// An open conversation's state: exactly one of these at any time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationState {
    /// Waiting in the queue of `skill` since `since` (its opening, kept across moves).
    Queued { skill: SkillId, since: Millis },
    /// Offered to `agent` until `until` (their seat is held; the store shows it waiting).
    Offered { agent: AgentId, until: Millis },
    /// Held by `agent` since `since`.
    Assigned { agent: AgentId, since: Millis },
}
