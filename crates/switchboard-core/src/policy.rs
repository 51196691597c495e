//! Who may do what with a conversation, in one place: the rules the WebSocket commands, the
//! REST handlers, the engine's transfers and the message writer apply. Roles include the ones
//! below them; every check is also scoped to the caller's brand by whoever asks.

use serde::{Deserialize, Serialize};

use crate::ids::AgentId;

/// A staff member's role, as the domain sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StaffRole {
    /// Answers the conversations assigned to them.
    Agent,
    /// Sees and acts on every conversation of the brand.
    Manager,
    /// A manager who also administers the brand.
    Admin,
}

/// Someone of the brand's staff.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staff {
    /// Their user id.
    pub id: AgentId,
    /// Their role.
    pub role: StaffRole,
}

impl Staff {
    /// Whether they see and act on the whole brand (managers and admins).
    pub fn oversees_the_brand(self) -> bool {
        self.role >= StaffRole::Manager
    }

    /// Whether they may act on (write to, close, receipt, type in, transfer) a conversation
    /// held by `holder`: their own, or any for managers.
    pub fn may_act(self, holder: Option<AgentId>) -> bool {
        holder == Some(self.id) || self.oversees_the_brand()
    }

    /// Whether they may read a conversation held by `holder` whose consumer's open
    /// conversation is `serving`: what they may act on, plus the consumer's past
    /// conversations while they serve that consumer (the workspace shows the whole history)
    /// — unless they serve the consumer only because they wrote to them first (a proactive
    /// follow-up), which grants the history only if the brand allows it: otherwise writing
    /// to any consumer would open anyone's history.
    pub fn may_read(self, holder: Option<AgentId>, serving: Option<Serving>, follow_up_history: bool) -> bool {
        self.may_act(holder) || serving.is_some_and(|serving| self.may_read_history_of(serving, follow_up_history))
    }

    /// Whether serving the consumer's open conversation `serving` lets them read the
    /// consumer's other conversations (see [`Staff::may_read`]).
    pub fn may_read_history_of(self, serving: Serving, follow_up_history: bool) -> bool {
        serving.agent == Some(self.id) && (follow_up_history || serving.follow_up_by != Some(self.id))
    }
}

/// A consumer's open conversation, as the read rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Serving {
    /// The agent holding it.
    pub agent: Option<AgentId>,
    /// The agent who started it by writing to the consumer, if one did.
    pub follow_up_by: Option<AgentId>,
}

/// Whether closing a conversation offers the consumer the CSAT survey: only when an agent
/// resolved it and the brand asks for scores.
pub fn survey_on_close(closed_by: CloseBy, brand_asks_for_csat: bool) -> bool {
    closed_by == CloseBy::Agent && brand_asks_for_csat
}

/// Who closed a conversation, for [`survey_on_close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseBy {
    /// The consumer.
    Consumer,
    /// An agent (or manager).
    Agent,
    /// The system (auto-close).
    System,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_act_on_their_own_and_managers_on_all() {
        let agent = Staff { id: 7, role: StaffRole::Agent };
        let manager = Staff { id: 8, role: StaffRole::Manager };
        let admin = Staff { id: 9, role: StaffRole::Admin };
        for (staff, holder, expect) in [
            (agent, Some(7), true),
            (agent, Some(1), false),
            (agent, None, false),
            (manager, Some(1), true),
            (manager, None, true),
            (admin, Some(1), true),
        ] {
            assert_eq!(staff.may_act(holder), expect, "{staff:?} on {holder:?}");
        }
        // Reading: also the past conversations of a consumer the agent serves now...
        let serves = |agent| Some(Serving { agent: Some(agent), follow_up_by: None });
        assert!(agent.may_read(None, serves(7), false));
        assert!(agent.may_read(Some(1), serves(7), false));
        assert!(!agent.may_read(Some(1), serves(2), false));
        assert!(!agent.may_read(None, None, false));
        // ...but not because they wrote to the consumer first, unless the brand allows it.
        let followed_up = Some(Serving { agent: Some(7), follow_up_by: Some(7) });
        assert!(!agent.may_read(Some(1), followed_up, false));
        assert!(agent.may_read(Some(7), followed_up, false), "their own conversations stay theirs");
        assert!(agent.may_read(Some(1), followed_up, true));
        // Someone else's follow-up handed to them is served like any other.
        let handed = Some(Serving { agent: Some(7), follow_up_by: Some(2) });
        assert!(agent.may_read(Some(1), handed, false));
    }

    #[test]
    fn the_survey_follows_an_agent_close_when_the_brand_wants_it() {
        assert!(survey_on_close(CloseBy::Agent, true));
        assert!(!survey_on_close(CloseBy::Agent, false));
        assert!(!survey_on_close(CloseBy::Consumer, true));
        assert!(!survey_on_close(CloseBy::System, true));
    }
}
