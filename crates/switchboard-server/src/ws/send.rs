//! `send`: checking a message, queueing its append at the writer, and what follows its
//! commit (routing a new conversation, fan-out, the ack).

use super::*;

pub(super) fn check_send(channel: Channel, author: Side, cid: &str, text: &str) -> ApiResult<()> {
    if cid.is_empty() || cid.len() > MAX_CLIENT_ID_BYTES {
        return Err(ApiError::new(
            ErrorCode::InvalidClientId,
            format!("cid must be 1 to {MAX_CLIENT_ID_BYTES} bytes (got {})", cid.len()),
        ));
    }
    check_text(channel, author, text).map_err(|error| match error {
        TextError::Empty => ApiError::code(ErrorCode::TextEmpty),
        TextError::TooLong { .. } => ApiError::new(ErrorCode::TextTooLong, error.to_string()),
    })
}

/// Who sends.
pub(super) enum Author<'a> {
    Consumer(&'a ConsumerPeer),
    Agent(&'a AgentPeer),
}

/// A queued `send`: its request id, when it was received, and the append's outcome.
pub(super) type SendOutcome = (Option<u64>, std::time::Instant, Result<Appended, ApiError>);

/// A `send` waiting for its commit.
pub(super) type InFlight = futures_util::future::BoxFuture<'static, SendOutcome>;

/// Checks a `send` and queues its append at the writer. The returned future waits for the
/// commit; appends are applied in the order queued.
pub(super) async fn submit_send(
    state: &AppState,
    author: Author<'_>,
    id: Option<u64>,
    cid: String,
    text: String,
    c: Option<ConversationId>,
    consumer: Option<i64>,
) -> ApiResult<InFlight> {
    let started = std::time::Instant::now();
    let brand_id = match &author {
        Author::Consumer(peer) => &peer.consumer.brand_id,
        Author::Agent(peer) => &peer.user.brand_id,
    };
    // What the brand hides from storage is masked before the append: never written in
    // clear, not even in the writer's queue. Masking keeps the length, so the check below
    // holds for the stored text.
    let masker = state.fanout.masker(brand_id).await?;
    let text =
        if masker.masks_for(Audience::Storage) { masker.mask(&text, Audience::Storage).into_owned() } else { text };
    let append = match author {
        Author::Consumer(peer) => {
            check_send(peer.channel, Side::Consumer, &cid, &text)?;
            Append::Consumer(ConsumerAppend {
                brand_id: peer.consumer.brand_id.clone(),
                consumer_id: peer.consumer.id,
                app_id: peer.app.id.clone(),
                channel: peer.app.channel.clone(),
                skill_id: peer.entry_skill,
                priority: i64::from(peer.app.default_priority.to_core().rank()),
                client_id: cid,
                text,
            })
        }
        Author::Agent(peer) => {
            // Apps are in-app or web, both limited to 2000 characters for agents too.
            check_send(Channel::InApp, Side::Agent, &cid, &text)?;
            let target = match (c, consumer) {
                (Some(c), None) => AgentTarget::Conversation(c),
                (None, Some(_)) if peer.is_token() => {
                    return Err(ApiError::new(
                        ErrorCode::Forbidden,
                        "an API token cannot start a conversation: it is no seat on the desk to hold one; write to an open conversation with c",
                    ));
                }
                (None, Some(consumer)) => AgentTarget::Consumer(consumer),
                _ => return Err(ApiError::bad_request("send needs exactly one of c (conversation) or consumer")),
            };
            Append::Agent(AgentAppend {
                brand_id: peer.user.brand_id.clone(),
                agent_id: peer.user.id,
                agent_name: peer.user.name.clone(),
                may_write_unassigned: peer.is_manager(),
                target,
                client_id: cid,
                text,
            })
        }
    };
    let pending = state.store.submit(append, now_ms()).await?;
    Ok(Box::pin(async move { (id, started, pending.committed().await.map_err(ApiError::from)) }))
}

/// After a consumer's message committed: route a new conversation (the engine announces the
/// assignment or the queue position before the message), tell the other devices and the
/// agent, and answer with the ack.
pub(super) async fn finish_consumer_send(
    state: &AppState,
    peer: &mut ConsumerPeer,
    origin: u64,
    id: Option<u64>,
    started: std::time::Instant,
    mut appended: Appended,
) -> ApiResult<Vec<ServerFrame>> {
    metrics::histogram!(crate::metrics::APPEND_SECONDS).record(started.elapsed().as_secs_f64());
    let brand_id = &peer.consumer.brand_id;
    peer.owned.insert(appended.message.conversation_id);
    if !appended.duplicate {
        metrics::counter!(crate::metrics::MESSAGES_STORED, "side" => "consumer").increment(1);
        if appended.opened
            && let Some(conversation) = state.store.conversation(brand_id, appended.message.conversation_id).await?
        {
            state.fanout.opened(&conversation, origin);
            let routed = state.engines.opened(brand_id, open_conversation_of(&conversation)).await;
            peer.routed = routed.map(|(agent, at)| (conversation.id, agent, at));
            appended.agent_id = routed.map(|(agent, _)| agent);
        }
        if appended.agent_id.is_none()
            && let Some((conversation, agent, assigned_at)) = peer.routed
            && conversation == appended.message.conversation_id
            && appended.message.created_at <= assigned_at
        {
            appended.agent_id = Some(agent);
        }
        state.fanout.message(brand_id, &appended, origin).await;
    }
    Ok(vec![ack(id, &appended.message)])
}

/// After an agent's message committed: tell the consumer and the agent's other sockets, and
/// answer with the ack.
pub(super) async fn finish_agent_send(
    state: &AppState,
    peer: &AgentPeer,
    origin: u64,
    id: Option<u64>,
    started: std::time::Instant,
    appended: Appended,
) -> ApiResult<Vec<ServerFrame>> {
    metrics::histogram!(crate::metrics::APPEND_SECONDS).record(started.elapsed().as_secs_f64());
    let brand_id = &peer.user.brand_id;
    if !appended.duplicate {
        metrics::counter!(crate::metrics::MESSAGES_STORED, "side" => "agent").increment(1);
        if appended.opened
            && let Some(conversation) = state.store.conversation(brand_id, appended.message.conversation_id).await?
        {
            state.engines.opened(brand_id, open_conversation_of(&conversation)).await;
            state.fanout.opened_by_agent(brand_id, &appended, &peer.user.name, origin);
        }
        state.fanout.message(brand_id, &appended, origin).await;
        state.engines.agent_wrote(brand_id, appended.message.conversation_id, appended.message.created_at);
    }
    Ok(vec![ack(id, &appended.message)])
}

/// The agent holding a conversation, as stored.
pub(super) async fn stored_agent(state: &AppState, brand_id: &str, c: ConversationId) -> ApiResult<Option<i64>> {
    Ok(state.store.conversation(brand_id, c).await?.and_then(|conversation| conversation.agent_id))
}

/// The answers to a finished `send`.
pub(super) async fn finish_send(
    state: &AppState,
    peer: &mut Peer,
    origin: u64,
    outcome: SendOutcome,
) -> Vec<ServerFrame> {
    let (id, started, result) = outcome;
    let finished = match (peer, result) {
        (_, Err(error)) => Err(error),
        (Peer::Consumer(peer), Ok(appended)) => finish_consumer_send(state, peer, origin, id, started, appended).await,
        (Peer::Agent(peer), Ok(appended)) => finish_agent_send(state, peer, origin, id, started, appended).await,
    };
    finished.unwrap_or_else(|error| vec![error_frame(id, error)])
}
