//! Who may read a conversation: the read rule shared by the WebSocket (`sync`) and REST
//! (messages, transcripts), answered from stored state; and whether it is still within the
//! brand's retention (past it, a conversation is not found by anyone, even before the purge
//! deletes it).

use switchboard_core::policy::Staff;
use switchboard_store::{Conversation, StoreError};

use crate::AppState;

impl AppState {
    /// Whether a conversation is within its brand's retention now: open ones always; closed
    /// ones until the horizon passes their close (`switchboard_core::retention`).
    pub async fn retained(&self, conversation: &Conversation) -> Result<bool, StoreError> {
        match conversation.closed_at {
            None => Ok(true),
            Some(closed_at) => {
                let horizon = self.store.retention_horizon(&conversation.brand_id, crate::now_ms()).await?;
                Ok(switchboard_core::retention::is_retained(Some(closed_at), horizon))
            }
        }
    }

    /// Whether a staff member may read a conversation of their brand: managers and admins any;
    /// agents those assigned to them, and the past conversations of a consumer whose open
    /// conversation they hold (the workspace shows the whole history).
    pub async fn staff_may_read(&self, staff: Staff, conversation: &Conversation) -> Result<bool, StoreError> {
        if staff.may_act(conversation.agent_id) {
            return Ok(true);
        }
        let serving = self.store.open_conversation(&conversation.brand_id, conversation.consumer_id).await?;
        Ok(staff.may_read(conversation.agent_id, serving.and_then(|open| open.agent_id)))
    }
}
