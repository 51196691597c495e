//! Who may read a conversation: the read rule shared by the WebSocket (`sync`) and REST
//! (messages, transcripts), answered from stored state.

use switchboard_core::policy::{Serving, Staff};
use switchboard_store::{Conversation, StoreError};

use crate::AppState;

impl AppState {
    /// Whether a staff member may read a conversation of their brand: managers and admins any;
    /// agents those assigned to them, and the past conversations of a consumer whose open
    /// conversation they hold (the workspace shows the whole history) — unless they hold it
    /// by their own proactive follow-up and the brand does not allow that
    /// (`Staff::may_read`).
    pub async fn staff_may_read(&self, staff: Staff, conversation: &Conversation) -> Result<bool, StoreError> {
        if staff.may_act(conversation.agent_id) {
            return Ok(true);
        }
        self.staff_may_read_history(staff, &conversation.brand_id, conversation.consumer_id).await
    }

    /// Whether a staff member may read every conversation of a consumer of their brand (see
    /// [`AppState::staff_may_read`]).
    pub async fn staff_may_read_history(
        &self,
        staff: Staff,
        brand_id: &str,
        consumer_id: i64,
    ) -> Result<bool, StoreError> {
        if staff.oversees_the_brand() {
            return Ok(true);
        }
        let Some(open) = self.store.open_conversation(brand_id, consumer_id).await? else { return Ok(false) };
        let serving = Serving { agent: open.agent_id, follow_up_by: open.follow_up_by };
        if staff.may_read_history_of(serving, false) {
            return Ok(true);
        }
        // Only a follow-up of theirs is left to decide: the brand's setting says.
        if serving.agent != Some(staff.id) {
            return Ok(false);
        }
        let allowed = self.store.brand(brand_id).await?.is_some_and(|brand| brand.follow_up_history);
        Ok(staff.may_read_history_of(serving, allowed))
    }
}
