//! Erasure of one consumer's data on request (admins): conversations, messages, event log,
//! CSAT, pending pushes, push tokens and the profile, everything the brand holds about them.
//! The CLI's `switchboard erase` does the same against the store directly.

use switchboard_protocol::Side;

use super::*;

/// Which consumer to erase.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// The brand's own id of the consumer (the JWT `sub`, or `anon:…`).
    #[schema(max_length = 256)]
    pub consumer: String,
}

/// What was erased.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Erasure {
    /// The consumer, as asked.
    pub consumer: String,
    pub conversations: i64,
    /// Of those, open ones (closed first: their agents were told).
    pub open_conversations: i64,
    pub messages: i64,
    pub events: i64,
    /// Pending pushes.
    pub outbox: i64,
    pub push_tokens: i64,
    /// The profile (name, email, phone, device, language) was deleted.
    pub profile: bool,
}

/// Erases everything the brand holds about one consumer (admins): their conversations (with
/// CSAT answers), every message and event of those, pending pushes, push tokens and profile,
/// in one transaction. An open conversation is closed first, so its agent is told. Answers
/// the counts; the erasure is recorded in the audit log (by the consumer's internal id, not
/// by the id you gave). A consumer who connects again later starts afresh.
#[utoipa::path(post, path = "/api/v1/consumers/erase", tag = "privacy", request_body = EraseRequest,
    responses((status = 200, body = Erasure), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn erase_consumer(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<EraseRequest>,
) -> ApiResult<Json<Erasure>> {
    check_len("consumer", &request.consumer, 1, 256)?;
    let brand_id = &caller.brand_id;
    let consumer = state.store.consumer_by_external_id(brand_id, &request.consumer).await?.ok_or_else(|| {
        ApiError::new(ErrorCode::NotFound, format!("the brand has no consumer {:?}", request.consumer))
    })?;
    let mut closed_first = 0;
    if let Some(open) = state.store.open_conversation(brand_id, consumer.id).await? {
        state.engines.close(brand_id, open.id, Side::System, 0).await?;
        closed_first = 1;
    }
    let counts = state.store.erase_consumer(brand_id, consumer.id).await?;
    // A conversation the consumer opened between the close and the erasure was open too:
    // the engine rebuilds from the store so it forgets it.
    if counts.open_conversations > 0 {
        state.engines.rebuild(brand_id).await;
    }
    tracing::info!(brand_id, consumer_id = consumer.id, conversations = counts.conversations, "consumer erased");
    let counts =
        switchboard_store::ErasureCounts { open_conversations: counts.open_conversations + closed_first, ..counts };
    let detail = serde_json::to_value(counts).unwrap_or(Value::Null);
    crate::audit::record(&state, &caller, "consumer.erase", Some(format!("consumer #{}", consumer.id)), detail).await;
    Ok(Json(Erasure {
        consumer: request.consumer,
        conversations: counts.conversations,
        open_conversations: counts.open_conversations,
        messages: counts.messages,
        events: counts.events,
        outbox: counts.outbox,
        push_tokens: counts.push_tokens,
        profile: counts.profiles > 0,
    }))
}
