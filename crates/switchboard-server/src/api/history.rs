//! The reporting/history API: search a brand's conversations by time, skill, agent, status,
//! CSAT, channel and consumer, newest first in keyset pages, each conversation with its
//! consumer (the brand's own id, name and contact details), its messages as agents see them
//! (masked), its event log, its transfers and its score. Transcript exports (`api::export`)
//! take the same filters ([`SearchFields`]).
//!
//! Conversations past the brand's retention are never found (the store leaves them out).

use std::collections::HashMap;

use switchboard_core::limits::Channel;
use switchboard_core::masking::Audience;
use switchboard_core::report::{LoggedEvent, TransferTo};
use switchboard_protocol::Millis;
use switchboard_store::{ConversationEvent, ConversationSearch, StoredMessage};

use super::*;

/// Most conversations on one page.
pub const MAX_HISTORY_PAGE: u32 = 100;
/// Most messages per conversation on a page.
pub const MAX_HISTORY_MESSAGES: u32 = 500;

/// The filters of a conversation search as the query string gives them, before they are
/// checked ([`SearchFields::check`]).
#[derive(Debug, Default)]
pub(crate) struct SearchFields<'a> {
    pub from: Option<Millis>,
    pub to: Option<Millis>,
    pub skill_id: Option<i64>,
    pub agent_id: Option<i64>,
    pub status: Option<&'a str>,
    pub csat_min: Option<i64>,
    pub csat_max: Option<i64>,
    pub channel: Option<&'a str>,
    pub consumer: Option<&'a str>,
}

impl SearchFields<'_> {
    /// The store's search, with every value checked (errors name the field and the limit).
    /// `None`: the search can find nothing (a consumer id the brand does not know).
    pub(crate) async fn check(&self, state: &AppState, brand_id: &str) -> ApiResult<Option<ConversationSearch>> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && to <= from
        {
            return Err(ApiError::bad_request(format!("to must be after from (got from={from}, to={to})")));
        }
        let status = match self.status {
            Some(text) => Some(ConversationStatus::parse(text).ok_or_else(|| {
                ApiError::bad_request(format!("status must be \"open\" or \"closed\" (got {text:?})"))
            })?),
            None => None,
        };
        for (field, score) in [("csat_min", self.csat_min), ("csat_max", self.csat_max)] {
            if let Some(score) = score
                && !(1..=5).contains(&score)
            {
                return Err(ApiError::bad_request(format!("{field} must be 1 to 5 (got {score})")));
            }
        }
        if let (Some(min), Some(max)) = (self.csat_min, self.csat_max)
            && max < min
        {
            return Err(ApiError::bad_request(format!("csat_max must be at least csat_min (got {min} to {max})")));
        }
        let channel = match self.channel {
            Some(text) => Some(
                Channel::parse(text)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "channel must be one of in_app, web, sms, messenger (got {text:?})"
                        ))
                    })?
                    .as_str()
                    .to_owned(),
            ),
            None => None,
        };
        let consumer_id = match self.consumer {
            Some(external_id) => {
                check_len("consumer", external_id, 1, 256)?;
                match state.store.consumer_by_external_id(brand_id, external_id).await? {
                    Some(consumer) => Some(consumer.id),
                    None => return Ok(None),
                }
            }
            None => None,
        };
        Ok(Some(ConversationSearch {
            opened_from: self.from,
            opened_to: self.to,
            skill_id: self.skill_id,
            agent_id: self.agent_id,
            status,
            csat_min: self.csat_min,
            csat_max: self.csat_max,
            channel,
            consumer_id,
        }))
    }
}

/// A search of the brand's conversations.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Opened at or after (ms since the epoch).
    pub from: Option<Millis>,
    /// Opened before (ms since the epoch).
    pub to: Option<Millis>,
    /// Routed to this skill.
    pub skill_id: Option<i64>,
    /// Held by this agent (now, or last, if closed).
    pub agent_id: Option<i64>,
    /// `open` or `closed`.
    pub status: Option<String>,
    /// CSAT score at least this (1–5); only scored conversations match.
    pub csat_min: Option<i64>,
    /// CSAT score at most this (1–5); only scored conversations match.
    pub csat_max: Option<i64>,
    /// `in_app`, `web`, `sms` or `messenger`.
    pub channel: Option<String>,
    /// The brand's own id of the consumer (the JWT `sub`, or `anon:…`).
    pub consumer: Option<String>,
    /// `next` of the previous page.
    pub cursor: Option<String>,
    /// Conversations per page, 1–100 (default 20).
    pub limit: Option<u32>,
    /// Messages per conversation, 0–500 (default 50): the first ones, oldest first;
    /// `more_messages` says when there are more (page on with
    /// `GET /api/v1/conversations/{id}?after=…`).
    pub messages: Option<u32>,
}

impl HistoryQuery {
    pub(crate) fn fields(&self) -> SearchFields<'_> {
        SearchFields {
            from: self.from,
            to: self.to,
            skill_id: self.skill_id,
            agent_id: self.agent_id,
            status: self.status.as_deref(),
            csat_min: self.csat_min,
            csat_max: self.csat_max,
            channel: self.channel.as_deref(),
            consumer: self.consumer.as_deref(),
        }
    }
}

/// One entry of a conversation's event log.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryEvent {
    /// `opened`, `assigned`, `queued`, `closed`, `auto_closed`, `offer_declined`,
    /// `offer_expired`, `priority`, `off_hours`.
    pub kind: String,
    pub agent_id: Option<i64>,
    pub skill_id: Option<i64>,
    pub at: Millis,
}

/// A move of the conversation away from the agent holding it (derived from the event log):
/// to a colleague (`to_agent_id`), or back to a queue (`to_skill_id`, `null` for no
/// particular skill) by a transfer, a "back to queue" or the agent's grace period ending.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TransferRecord {
    pub at: Millis,
    pub from_agent_id: i64,
    pub from_agent: Option<String>,
    pub to_agent_id: Option<i64>,
    pub to_agent: Option<String>,
    pub to_skill_id: Option<i64>,
    pub to_skill: Option<String>,
}

/// The consumer's answer to the satisfaction survey.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CsatRecord {
    /// 1 to 5.
    pub score: i64,
    pub comment: Option<String>,
}

/// One conversation as the reporting API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversationRecord {
    pub conversation: Conversation,
    /// `external_id` is the brand's own id of the consumer.
    pub consumer: Option<Consumer>,
    pub skill: Option<String>,
    /// The agent holding it, or the last one who did.
    pub agent: Option<String>,
    /// The first messages, oldest first, masked as agents see them.
    pub messages: Vec<Message>,
    /// The conversation has more messages than listed.
    pub more_messages: bool,
    pub events: Vec<HistoryEvent>,
    pub transfers: Vec<TransferRecord>,
    pub csat: Option<CsatRecord>,
}

/// A page of the search, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConversationHistory {
    pub conversations: Vec<ConversationRecord>,
    /// Cursor of the next page; absent on the last.
    pub next: Option<String>,
}

/// Names of the brand's agents and skills, for records.
pub(crate) struct Names {
    pub agents: HashMap<i64, String>,
    pub skills: HashMap<i64, String>,
}

impl Names {
    pub(crate) async fn of(state: &AppState, brand_id: &str) -> ApiResult<Names> {
        let agents = state.store.users(brand_id).await?.into_iter().map(|user| (user.id, user.name)).collect();
        let skills = state.store.skills(brand_id).await?.into_iter().map(|skill| (skill.id, skill.name)).collect();
        Ok(Names { agents, skills })
    }

    pub(crate) fn agent(&self, id: Option<i64>) -> Option<String> {
        id.and_then(|id| self.agents.get(&id).cloned())
    }

    pub(crate) fn skill(&self, id: Option<i64>) -> Option<String> {
        id.and_then(|id| self.skills.get(&id).cloned())
    }

    /// The transfers in an event log, with names.
    pub(crate) fn transfers(&self, events: &[ConversationEvent]) -> Vec<TransferRecord> {
        let logged = events.iter().map(|event| LoggedEvent {
            kind: &event.kind,
            agent_id: event.agent_id,
            skill_id: event.skill_id,
            at: event.at,
        });
        switchboard_core::report::transfers(logged)
            .into_iter()
            .map(|transfer| {
                let (to_agent_id, to_skill_id) = match transfer.to {
                    TransferTo::Agent(agent) => (Some(agent), None),
                    TransferTo::Queue(skill) => (None, skill),
                };
                TransferRecord {
                    at: transfer.at,
                    from_agent_id: transfer.from_agent,
                    from_agent: self.agent(Some(transfer.from_agent)),
                    to_agent_id,
                    to_agent: self.agent(to_agent_id),
                    to_skill_id,
                    to_skill: self.skill(to_skill_id),
                }
            })
            .collect()
    }
}

/// What a page of conversations needs besides their rows, read in one batch per kind.
pub(crate) struct Batch {
    pub consumers: HashMap<i64, switchboard_store::Consumer>,
    pub events: HashMap<i64, Vec<ConversationEvent>>,
}

impl Batch {
    pub(crate) async fn read(
        state: &AppState,
        brand_id: &str,
        conversations: &[switchboard_store::Conversation],
    ) -> ApiResult<Batch> {
        let mut consumer_ids: Vec<i64> = conversations.iter().map(|c| c.consumer_id).collect();
        consumer_ids.sort_unstable();
        consumer_ids.dedup();
        let consumers =
            state.store.consumers_by_ids(brand_id, &consumer_ids).await?.into_iter().map(|c| (c.id, c)).collect();
        let ids: Vec<i64> = conversations.iter().map(|c| c.id).collect();
        let mut events: HashMap<i64, Vec<ConversationEvent>> = HashMap::new();
        for (conversation_id, event) in state.store.events_of(brand_id, &ids).await? {
            events.entry(conversation_id).or_default().push(event);
        }
        Ok(Batch { consumers, events })
    }
}

/// The agent holding the conversation, or the last one who did (from its event log).
pub(crate) fn last_agent(conversation: &switchboard_store::Conversation, events: &[ConversationEvent]) -> Option<i64> {
    conversation
        .agent_id
        .or_else(|| events.iter().rev().find(|event| event.kind == "assigned").and_then(|event| event.agent_id))
}

/// Searches the brand's conversations (managers and admins): every filter given must match;
/// newest first (by opening time), in pages that follow `next` (keyset pagination: a page
/// costs the same however deep). Each conversation comes with its consumer — the brand's own
/// id (`external_id`), name, email, phone, device —, its first messages masked as agents see
/// them, its event log, its transfers and its CSAT answer. Conversations past the brand's
/// retention are never returned.
#[utoipa::path(get, path = "/api/v1/reports/conversations", tag = "reports", params(HistoryQuery),
    responses((status = 200, body = ConversationHistory), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn search_history(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
    Q(query): Q<HistoryQuery>,
) -> ApiResult<Json<ConversationHistory>> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=MAX_HISTORY_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_HISTORY_PAGE} (got {limit})")));
    }
    let per_conversation = query.messages.unwrap_or(50);
    if per_conversation > MAX_HISTORY_MESSAGES {
        return Err(ApiError::bad_request(format!(
            "messages must be 0 to {MAX_HISTORY_MESSAGES} (got {per_conversation})"
        )));
    }
    let after = match query.cursor.as_deref() {
        Some(text) => Some(PageCursor::decode(text).ok_or_else(|| ApiError::bad_request("cursor is not valid"))?),
        None => None,
    };
    let brand_id = &caller.brand_id;
    let Some(search) = query.fields().check(&state, brand_id).await? else {
        return Ok(Json(ConversationHistory { conversations: Vec::new(), next: None }));
    };
    let page = state.store.search_conversations(brand_id, &search, after, limit, now_ms()).await?;
    let names = Names::of(&state, brand_id).await?;
    let batch = Batch::read(&state, brand_id, &page.conversations).await?;
    let ids: Vec<i64> = page.conversations.iter().map(|c| c.id).collect();
    let mut messages: HashMap<i64, Vec<StoredMessage>> = HashMap::new();
    for message in state.store.first_messages(brand_id, &ids, per_conversation).await? {
        messages.entry(message.conversation_id).or_default().push(message);
    }
    let masker = state.fanout.masker(brand_id).await?;
    let mut batch = batch;
    let conversations = page
        .conversations
        .into_iter()
        .map(|conversation| {
            let events = batch.events.remove(&conversation.id).unwrap_or_default();
            let listed = messages.remove(&conversation.id).unwrap_or_default();
            ConversationRecord {
                consumer: batch.consumers.get(&conversation.consumer_id).cloned().map(Consumer::from),
                skill: names.skill(conversation.skill_id),
                agent: names.agent(last_agent(&conversation, &events)),
                more_messages: conversation.last_seq > i64::from(per_conversation),
                messages: listed.iter().map(|m| crate::fanout::shown(m, &masker, Audience::Agents)).collect(),
                transfers: names.transfers(&events),
                events: events
                    .into_iter()
                    .map(|e| HistoryEvent { kind: e.kind, agent_id: e.agent_id, skill_id: e.skill_id, at: e.at })
                    .collect(),
                csat: conversation
                    .csat_score
                    .map(|score| CsatRecord { score, comment: conversation.csat_comment.clone() }),
                conversation: conversation.into(),
            }
        })
        .collect();
    Ok(Json(ConversationHistory { conversations, next: page.next.map(PageCursor::encode) }))
}
