//! Every other command of a socket, for consumers and for agents: receipts, typing, sync,
//! close, CSAT, history, state, push tokens, offers. Who may act on or read what, and the
//! staff's operations themselves, are `crate::desk_ops` (shared with REST).

use super::*;
use crate::desk_ops::{self, Actor, Closing};

pub(super) async fn handle(
    state: &AppState,
    peer: &mut Peer,
    origin: u64,
    frame: ClientFrame,
) -> ApiResult<Vec<ServerFrame>> {
    match peer {
        Peer::Consumer(consumer) => handle_consumer(state, consumer, origin, frame).await,
        Peer::Agent(agent) => handle_agent(state, agent, origin, frame).await,
    }
}

pub(super) fn ok(id: Option<u64>) -> Vec<ServerFrame> {
    id.map(|id| ServerFrame::Ok { id }).into_iter().collect()
}

pub(super) fn ack(id: Option<u64>, message: &switchboard_store::StoredMessage) -> ServerFrame {
    ServerFrame::Ack { id, c: message.conversation_id, seq: message.seq, ts: message.created_at }
}

impl ConsumerPeer {
    /// Checks `conversation` is this consumer's (once per socket).
    pub(super) async fn owns(&mut self, state: &AppState, conversation: ConversationId) -> ApiResult<()> {
        if self.owned.contains(&conversation) {
            return Ok(());
        }
        match state.store.conversation(&self.consumer.brand_id, conversation).await? {
            Some(found) if found.consumer_id == self.consumer.id && state.retained(&found).await? => {
                self.owned.insert(conversation);
                Ok(())
            }
            _ => Err(ApiError::code(ErrorCode::ConversationNotFound)),
        }
    }
}

pub(super) async fn handle_consumer(
    state: &AppState,
    peer: &mut ConsumerPeer,
    origin: u64,
    frame: ClientFrame,
) -> ApiResult<Vec<ServerFrame>> {
    let brand_id = peer.consumer.brand_id.clone();
    match frame {
        ClientFrame::Hello(_) => Err(ApiError::bad_request("the socket is already authenticated")),
        ClientFrame::Ping { id } => Ok(vec![ServerFrame::Pong { id }]),
        ClientFrame::Send { id, cid, text, c, consumer } => {
            let (id, started, result) =
                submit_send(state, Author::Consumer(peer), id, cid, text, c, consumer).await?.await;
            finish_consumer_send(state, peer, origin, id, started, result?).await
        }
        ClientFrame::Rcpt { id, c, seq, k } => {
            peer.owns(state, c).await?;
            if state.store.record_receipt(&brand_id, c, Side::Consumer, k, seq).await?
                && let Some(agent) = stored_agent(state, &brand_id, c).await?
            {
                state.fanout.to_agent(&brand_id, agent, origin, &ServerFrame::Rcpt { c, by: Side::Consumer, k, seq });
            }
            Ok(ok(id))
        }
        ClientFrame::Typing { c, on } => {
            peer.owns(state, c).await?;
            if let Some(agent) = stored_agent(state, &brand_id, c).await? {
                state.fanout.to_agent(
                    &brand_id,
                    agent,
                    origin,
                    &ServerFrame::Typing { c, by: Side::Consumer, on, name: None },
                );
            }
            Ok(Vec::new())
        }
        ClientFrame::Sync { id, c, after, limit } => {
            peer.owns(state, c).await?;
            Ok(vec![sync(state, &brand_id, Audience::OtherDevices, id, c, after, limit).await?])
        }
        ClientFrame::Close { id, c } => {
            peer.owns(state, c).await?;
            state.engines.close(&brand_id, c, Side::Consumer, origin).await?;
            Ok(ok(id))
        }
        ClientFrame::Csat { id, c, score, comment } => {
            if !(1..=5).contains(&score)
                || comment.as_ref().is_some_and(|text| text.chars().count() > MAX_CSAT_COMMENT_CHARS)
            {
                return Err(ApiError::new(
                    ErrorCode::InvalidScore,
                    format!(
                        "score must be 1 to 5 (got {score}) and the comment at most {MAX_CSAT_COMMENT_CHARS} characters"
                    ),
                ));
            }
            peer.owns(state, c).await?;
            state.store.answer_csat(&brand_id, c, peer.consumer.id, score, comment.as_deref()).await?;
            Ok(ok(id))
        }
        ClientFrame::History { id, from, to, status, cursor, limit } => {
            let after = match cursor.as_deref() {
                Some(text) => {
                    Some(PageCursor::decode(text).ok_or_else(|| ApiError::bad_request("cursor is not valid"))?)
                }
                None => None,
            };
            let limit = limit.unwrap_or(20);
            if limit == 0 || limit > MAX_HISTORY {
                return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_HISTORY} (got {limit})")));
            }
            let filter = ConversationFilter {
                status,
                consumer_id: Some(peer.consumer.id),
                opened_from: from,
                opened_to: to,
                retained_at: Some(now_ms()),
                ..ConversationFilter::default()
            };
            let page = state.store.conversations(&brand_id, &filter, after, limit).await?;
            Ok(vec![ServerFrame::History {
                id,
                convs: page.conversations.iter().map(consumer_summary).collect(),
                next: page.next.map(PageCursor::encode),
            }])
        }
        ClientFrame::State { .. } => Err(ApiError::new(ErrorCode::Forbidden, "consumers have no agent state")),
        ClientFrame::Accept { .. } | ClientFrame::Decline { .. } => {
            Err(ApiError::new(ErrorCode::Forbidden, "only agents answer offers"))
        }
        ClientFrame::Push { id, provider, token } => {
            if token.is_empty() || token.len() > MAX_PUSH_TOKEN_BYTES {
                return Err(ApiError::bad_request(format!(
                    "push token must be 1 to {MAX_PUSH_TOKEN_BYTES} bytes (got {})",
                    token.len()
                )));
            }
            state
                .store
                .register_push_token(&brand_id, &peer.app.id, peer.consumer.id, provider.as_str(), &token, now_ms())
                .await?;
            Ok(ok(id))
        }
        ClientFrame::Unpush { id, provider, token } => {
            if token.is_empty() || token.len() > MAX_PUSH_TOKEN_BYTES {
                return Err(ApiError::bad_request(format!(
                    "push token must be 1 to {MAX_PUSH_TOKEN_BYTES} bytes (got {})",
                    token.len()
                )));
            }
            // The device holding the token decides, as it does when it registers it: a
            // device that logged out removes its token whoever it was registered for in the
            // brand (a removal sent after another user registered the same device is followed
            // by that user's registration; the SDK sends them in this order).
            state.store.remove_push_token(&brand_id, provider.as_str(), &token).await?;
            Ok(ok(id))
        }
    }
}

/// The `msgs` answer to a `sync`, masked for `audience` (a consumer's history is masked as for
/// their other devices: the sending device keeps its own copy).
pub(super) async fn sync(
    state: &AppState,
    brand_id: &str,
    audience: Audience,
    id: Option<u64>,
    c: ConversationId,
    after: i64,
    limit: Option<u32>,
) -> ApiResult<ServerFrame> {
    let limit = limit.unwrap_or(MAX_SYNC);
    if limit == 0 || limit > MAX_SYNC {
        return Err(ApiError::bad_request(format!("limit must be 1 to {MAX_SYNC} (got {limit})")));
    }
    let mut messages = state.store.messages_after(brand_id, c, after, limit + 1).await?;
    let more = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    let masker = state.fanout.masker(brand_id).await?;
    Ok(ServerFrame::Msgs { id, c, msgs: messages.iter().map(|m| shown(m, &masker, audience)).collect(), more })
}

impl AgentPeer {
    pub(super) fn is_manager(&self) -> bool {
        self.user.staff().oversees_the_brand()
    }

    /// This socket's user as the actor of `desk_ops` (the access rules live there).
    fn actor(&self) -> Actor<'_> {
        Actor::user(&self.user)
    }
}

pub(super) async fn handle_agent(
    state: &AppState,
    peer: &mut AgentPeer,
    origin: u64,
    frame: ClientFrame,
) -> ApiResult<Vec<ServerFrame>> {
    let brand_id = peer.user.brand_id.clone();
    let agent_id = peer.user.id;
    match frame {
        ClientFrame::Hello(_) => Err(ApiError::bad_request("the socket is already authenticated")),
        ClientFrame::Ping { id } => Ok(vec![ServerFrame::Pong { id }]),
        ClientFrame::Send { id, cid, text, c, consumer } => {
            let (id, started, result) =
                submit_send(state, Author::Agent(peer), id, cid, text, c, consumer).await?.await;
            finish_agent_send(state, peer, origin, id, started, result?).await
        }
        ClientFrame::Rcpt { id, c, seq, k } => {
            let conversation = desk_ops::conversation_to_act_on(state, peer.actor(), c).await?;
            if state.store.record_receipt(&brand_id, c, Side::Agent, k, seq).await? {
                let frame = ServerFrame::Rcpt { c, by: Side::Agent, k, seq };
                state.fanout.to_consumer(&brand_id, conversation.consumer_id, origin, &frame);
            }
            Ok(ok(id))
        }
        ClientFrame::Typing { c, on } => {
            let conversation = desk_ops::conversation_to_act_on(state, peer.actor(), c).await?;
            if conversation.status == ConversationStatus::Open {
                state.fanout.to_consumer(
                    &brand_id,
                    conversation.consumer_id,
                    origin,
                    &ServerFrame::Typing { c, by: Side::Agent, on, name: Some(peer.user.name.clone()) },
                );
            }
            Ok(Vec::new())
        }
        ClientFrame::Sync { id, c, after, limit } => {
            desk_ops::conversation_to_read(state, peer.actor(), c).await?;
            Ok(vec![sync(state, &brand_id, Audience::Agents, id, c, after, limit).await?])
        }
        ClientFrame::Close { id, c } => {
            // Closing a closed conversation succeeds and does nothing (docs/protocol.md).
            match desk_ops::close(state, peer.actor(), c, origin).await? {
                Closing::Closed(_) | Closing::AlreadyClosed(_) => Ok(ok(id)),
            }
        }
        ClientFrame::State { .. } | ClientFrame::Accept { .. } | ClientFrame::Decline { .. } if peer.is_token() => {
            Err(ApiError::new(
                ErrorCode::Forbidden,
                "an API token is no seat on the desk: it has no availability and is offered no conversations",
            ))
        }
        ClientFrame::State { id, state: new_state } => {
            desk_ops::choose_state(state, peer.actor(), new_state).await?;
            peer.user.state = new_state;
            Ok(ok(id))
        }
        ClientFrame::Accept { id, c } => {
            state.engines.answer_offer(&brand_id, agent_id, c, true).await?;
            Ok(ok(id))
        }
        ClientFrame::Decline { id, c } => {
            state.engines.answer_offer(&brand_id, agent_id, c, false).await?;
            Ok(ok(id))
        }
        ClientFrame::Csat { .. } => Err(ApiError::new(ErrorCode::Forbidden, "only consumers answer surveys")),
        ClientFrame::Push { .. } | ClientFrame::Unpush { .. } => {
            Err(ApiError::new(ErrorCode::Forbidden, "only consumer devices register push tokens"))
        }
        ClientFrame::History { .. } => {
            Err(ApiError::new(ErrorCode::Forbidden, "agents list conversations with GET /api/v1/conversations"))
        }
    }
}
