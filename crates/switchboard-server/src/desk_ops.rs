//! What staff do to conversations, once for both edges: the agent WebSocket
//! (`ws/commands.rs`) and REST (`floor.rs`, `api/conversations.rs`) call these and keep no
//! access rules of their own. Each operation takes the acting staff member ([`Actor`]: their
//! brand and `switchboard_core::policy::Staff`), loads the conversation within that brand,
//! asks the core policy, and hands decisions to the brand's engine. Errors are the one
//! table's (`ApiError`): a conversation the actor may not even read is
//! `conversation_not_found` (its existence is not revealed), one they may read but not act on
//! is `not_assigned`.

use switchboard_core::desk::Priority;
use switchboard_core::policy::Staff;
use switchboard_protocol::{AgentState, ConversationId, ConversationStatus, ErrorCode, Side};
use switchboard_store::{Conversation, User};

use crate::AppState;
use crate::auth::Caller;
use crate::engine::TransferTarget;
use crate::error::{ApiError, ApiResult};

/// The staff member doing something, in their brand.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Their brand: every read is scoped to it.
    pub brand_id: &'a str,
    /// Who they are to the policy.
    pub staff: Staff,
}

impl<'a> Actor<'a> {
    /// A signed-in user (an agent's socket).
    pub fn user(user: &'a User) -> Actor<'a> {
        Actor { brand_id: &user.brand_id, staff: user.staff() }
    }

    /// A REST caller, as their credential: a user, or an API token under its own principal
    /// id with its role capped by its creator's (see `auth::authenticate_api_token`).
    pub fn caller(caller: &'a Caller) -> Actor<'a> {
        Actor { brand_id: &caller.brand_id, staff: Staff { id: caller.staff_id, role: caller.role.to_core() } }
    }
}

/// The conversation in the actor's brand, unless it is past the brand's retention.
async fn load(state: &AppState, actor: Actor<'_>, conversation_id: ConversationId) -> ApiResult<Conversation> {
    match state.store.conversation(actor.brand_id, conversation_id).await? {
        Some(conversation) if state.retained(&conversation).await? => Ok(conversation),
        _ => Err(ApiError::code(ErrorCode::ConversationNotFound)),
    }
}

/// The conversation, if the actor may read it (see `Staff::may_read`); else
/// `conversation_not_found`.
pub async fn conversation_to_read(
    state: &AppState,
    actor: Actor<'_>,
    conversation_id: ConversationId,
) -> ApiResult<Conversation> {
    let conversation = load(state, actor, conversation_id).await?;
    if state.staff_may_read(actor.staff, &conversation).await? {
        Ok(conversation)
    } else {
        Err(ApiError::code(ErrorCode::ConversationNotFound))
    }
}

/// The conversation, if the actor may act on it (theirs, or any for managers); `not_assigned`
/// if they may only read it, `conversation_not_found` if not even that.
pub async fn conversation_to_act_on(
    state: &AppState,
    actor: Actor<'_>,
    conversation_id: ConversationId,
) -> ApiResult<Conversation> {
    let conversation = load(state, actor, conversation_id).await?;
    if actor.staff.may_act(conversation.agent_id) {
        return Ok(conversation);
    }
    // Only the refusal pays for the read rule's extra lookup.
    if state.staff_may_read(actor.staff, &conversation).await? {
        Err(ApiError::code(ErrorCode::NotAssigned))
    } else {
        Err(ApiError::code(ErrorCode::ConversationNotFound))
    }
}

/// What a close did.
#[derive(Debug)]
pub enum Closing {
    /// The conversation was open and is closed now; both sides were told.
    Closed(Conversation),
    /// It was closed already: nothing changed. (The WebSocket answers `ok`, REST
    /// `conversation_closed`.)
    AlreadyClosed(Conversation),
}

/// Closes a conversation the actor may act on. `origin` is the connection that asked (its
/// own socket is not sent the event), 0 for REST.
pub async fn close(
    state: &AppState,
    actor: Actor<'_>,
    conversation_id: ConversationId,
    origin: u64,
) -> ApiResult<Closing> {
    let conversation = conversation_to_act_on(state, actor, conversation_id).await?;
    if conversation.status != ConversationStatus::Open {
        return Ok(Closing::AlreadyClosed(conversation));
    }
    match state.engines.close(actor.brand_id, conversation_id, Side::Agent, origin).await? {
        Some(closed) => Ok(Closing::Closed(closed)),
        // Someone else closed it between the read and the engine's turn.
        None => Ok(Closing::AlreadyClosed(load(state, actor, conversation_id).await?)),
    }
}

/// Transfers an open conversation the actor may act on. The engine checks again when it
/// takes the transfer, since the conversation may have moved or closed in between.
pub async fn transfer(
    state: &AppState,
    actor: Actor<'_>,
    conversation_id: ConversationId,
    target: TransferTarget,
) -> ApiResult<Conversation> {
    conversation_to_act_on(state, actor, conversation_id).await?;
    state.engines.transfer(actor.brand_id, actor.staff, conversation_id, target).await
}

/// Sets an open conversation's priority (managers and admins only).
pub async fn set_priority(
    state: &AppState,
    actor: Actor<'_>,
    conversation_id: ConversationId,
    priority: Priority,
) -> ApiResult<Conversation> {
    if !actor.staff.oversees_the_brand() {
        return Err(ApiError::new(ErrorCode::Forbidden, "only managers set priorities"));
    }
    state.engines.set_priority(actor.brand_id, conversation_id, priority).await?;
    load(state, actor, conversation_id).await
}

/// The actor chooses their availability; returns once it is stored.
pub async fn choose_state(state: &AppState, actor: Actor<'_>, new_state: AgentState) -> ApiResult<()> {
    state.engines.choose_state(actor.brand_id, actor.staff.id, new_state).await?;
    Ok(())
}
