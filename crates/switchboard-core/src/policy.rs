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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// conversation is held by `serving`: what they may act on, plus the consumer's past
    /// conversations while they serve that consumer (the workspace shows the whole history).
    pub fn may_read(self, holder: Option<AgentId>, serving: Option<AgentId>) -> bool {
        self.may_act(holder) || serving == Some(self.id)
    }
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
        // Reading: also the past conversations of a consumer the agent serves now.
        assert!(agent.may_read(None, Some(7)));
        assert!(agent.may_read(Some(1), Some(7)));
        assert!(!agent.may_read(Some(1), Some(2)));
        assert!(!agent.may_read(None, None));
    }

    #[test]
    fn the_survey_follows_an_agent_close_when_the_brand_wants_it() {
        assert!(survey_on_close(CloseBy::Agent, true));
        assert!(!survey_on_close(CloseBy::Agent, false));
        assert!(!survey_on_close(CloseBy::Consumer, true));
        assert!(!survey_on_close(CloseBy::System, true));
    }
}
