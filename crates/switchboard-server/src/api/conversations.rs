//! Conversations: the listing with filters and cursor pages, and one conversation with its
//! messages.

use switchboard_core::masking::Audience;

use super::*;

// ----- conversations ---------------------------------------------------------------------

/// Filters of the conversation list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    /// `open` or `closed`.
    pub status: Option<String>,
    /// Only this agent's (agents always see only their own).
    pub agent_id: Option<i64>,
    pub skill_id: Option<i64>,
    pub consumer_id: Option<i64>,
    /// Opened at or after (ms since epoch).
    pub from: Option<i64>,
    /// Opened before (ms since epoch).
    pub to: Option<i64>,
    /// `next` of the previous page.
    pub cursor: Option<String>,
    /// 1–500, default 50.
    pub limit: Option<u32>,
}

/// One page of conversations, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<Conversation>,
    /// Cursor of the next page; absent on the last.
    pub next: Option<String>,
}

/// Lists conversations: managers see the brand's; agents their own, and (with `consumer_id`) the
/// whole history of a consumer whose open conversation they hold.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", params(ConversationQuery),
    responses((status = 200, body = ConversationList), (status = 400, body = ErrorBody)))]
pub(super) async fn list_conversations(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    Q(query): Q<ConversationQuery>,
) -> ApiResult<Json<ConversationList>> {
    let status =
        match query.status.as_deref() {
            Some(text) => Some(ConversationStatus::parse(text).ok_or_else(|| {
                ApiError::bad_request(format!("status must be \"open\" or \"closed\" (got {text:?})"))
            })?),
            None => None,
        };
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1 to 500 (got {limit})")));
    }
    let after = match query.cursor.as_deref() {
        Some(text) => Some(PageCursor::decode(text).ok_or_else(|| ApiError::bad_request("cursor is not valid"))?),
        None => None,
    };
    // Agents list their own conversations, and the whole history of a consumer whose open
    // conversation they hold (what the workspace shows beside it; see `staff_may_read`).
    let serving = match query.consumer_id {
        Some(consumer_id) if caller.role < switchboard_store::Role::Manager => {
            state
                .staff_may_read_history(crate::desk_ops::Actor::caller(&caller).staff, &caller.brand_id, consumer_id)
                .await?
        }
        _ => false,
    };
    let agent_id =
        if caller.role >= switchboard_store::Role::Manager || serving { query.agent_id } else { Some(caller.staff_id) };
    let filter = ConversationFilter {
        status,
        consumer_id: query.consumer_id,
        agent_id,
        skill_id: query.skill_id,
        opened_from: query.from,
        opened_to: query.to,
        retained_at: Some(now_ms()),
    };
    let page = state.store.conversations(&caller.brand_id, &filter, after, limit).await?;
    Ok(Json(ConversationList {
        conversations: types::all(page.conversations),
        next: page.next.map(PageCursor::encode),
    }))
}

/// Message paging of one conversation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessagesQuery {
    /// Messages after this seq (default 0: from the start).
    pub after: Option<i64>,
    /// Instead of `after`: the last `limit` messages before this seq (paging backwards from
    /// the newest, for long histories: start with `last_seq + 1`).
    pub before: Option<i64>,
    /// 1–1000, default 200.
    pub limit: Option<u32>,
}

/// A conversation with its consumer and messages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConversationDetail {
    pub conversation: Conversation,
    pub consumer: Option<Consumer>,
    pub messages: Vec<Message>,
    /// More messages follow: ask again with `after` = the last seq (or, when paging with
    /// `before`, earlier messages exist: ask with `before` = the first seq).
    pub more: bool,
}

/// One conversation with its messages. Agents may read conversations assigned to them and the
/// past conversations of consumers they are serving; managers any of the brand.
#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}", tag = "conversations",
    params(("conversation_id" = i64, Path), MessagesQuery),
    responses((status = 200, body = ConversationDetail), (status = 404, body = ErrorBody)))]
pub(super) async fn get_conversation(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    P(conversation_id): P<i64>,
    Q(query): Q<MessagesQuery>,
) -> ApiResult<Json<ConversationDetail>> {
    let limit = query.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1 to 1000 (got {limit})")));
    }
    // Not revealing whether a conversation the caller may not read exists.
    let conversation = desk_ops::conversation_to_read(&state, Actor::caller(&caller), conversation_id).await?;
    let consumer = state.store.consumer(&caller.brand_id, conversation.consumer_id).await?;
    let (messages, more) = match (query.after, query.before) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give either after or before, not both")),
        (None, Some(before)) => state.store.messages_before(&caller.brand_id, conversation_id, before, limit).await?,
        (after, None) => {
            let mut messages =
                state.store.messages_after(&caller.brand_id, conversation_id, after.unwrap_or(0), limit + 1).await?;
            let more = messages.len() > limit as usize;
            messages.truncate(limit as usize);
            (messages, more)
        }
    };
    let masker = state.fanout.masker(&caller.brand_id).await?;
    Ok(Json(ConversationDetail {
        conversation: conversation.into(),
        consumer: consumer.map(Consumer::from),
        messages: messages.iter().map(|m| crate::fanout::shown(m, &masker, Audience::Agents)).collect(),
        more,
    }))
}
