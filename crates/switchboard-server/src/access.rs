//! Who may read a conversation: the read rule shared by the WebSocket (`sync`) and REST
//! (messages, transcripts), answered from stored state.

use switchboard_store::{Conversation, Role, StoreError};

use crate::AppState;

impl AppState {
    /// Whether a staff member may read a conversation of their brand: managers and admins any;
    /// agents those assigned to them, and the past conversations of a consumer whose open
    /// conversation they hold (the workspace shows the whole history).
    pub async fn staff_may_read(
        &self,
        user_id: i64,
        role: Role,
        conversation: &Conversation,
    ) -> Result<bool, StoreError> {
        if role >= Role::Manager || conversation.agent_id == Some(user_id) {
            return Ok(true);
        }
        let serving = self.store.open_conversation(&conversation.brand_id, conversation.consumer_id).await?;
        Ok(serving.is_some_and(|open| open.agent_id == Some(user_id)))
    }
}
