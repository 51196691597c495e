//! The identifiers the domain speaks in. They are plain integers (the store's row ids) with
//! names, so a signature says which id it wants; tenancy is carried beside them by whoever
//! holds a brand's [`Desk`](crate::desk::Desk) (one desk per brand, never shared).

pub use switchboard_protocol::{ConversationId, Millis};

/// Agent id (a user id of the brand).
pub type AgentId = i64;

/// Skill id.
pub type SkillId = i64;

/// Consumer id (a consumer row of the brand).
pub type ConsumerId = i64;

/// The skill of conversations routed to no particular skill: every agent may take them.
pub const ANY_SKILL: SkillId = 0;
