//! Retention over REST (admins): where the brand's horizon stands, what waits to be purged,
//! the latest purge runs with their counts, and starting a purge now. The brand's retention
//! itself is a brand setting (`PATCH /api/v1/brand`, `retention_days`).

use switchboard_protocol::Millis;

use super::*;

/// What one purge run deleted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionRunBody {
    pub id: i64,
    pub started_at: Millis,
    /// Conversations closed before this were purged.
    pub horizon: Millis,
    /// `null` while under way (or interrupted: the next purge continues it).
    pub finished_at: Option<Millis>,
    pub conversations: i64,
    pub messages: i64,
    pub events: i64,
    /// Pending pushes.
    pub outbox: i64,
    /// CSAT answers.
    pub csat: i64,
    /// Consumer profiles whose personal fields were cleared with their last conversation.
    pub profiles: i64,
}

impl From<switchboard_store::RetentionRun> for RetentionRunBody {
    fn from(run: switchboard_store::RetentionRun) -> RetentionRunBody {
        let c = run.counts;
        RetentionRunBody {
            id: run.id,
            started_at: run.started_at,
            horizon: run.horizon,
            finished_at: run.finished_at,
            conversations: c.conversations,
            messages: c.messages,
            events: c.events,
            outbox: c.outbox,
            csat: c.csat,
            profiles: c.profiles,
        }
    }
}

/// The brand's retention now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RetentionStatus {
    pub retention_days: i64,
    /// Conversations closed before this moment are past retention: no API returns them.
    pub horizon: Millis,
    /// Conversations past retention not deleted yet (the next purge deletes them).
    pub waiting: i64,
    /// A purge of the brand is under way on this node.
    pub running: bool,
    /// The latest runs, newest first (at most 10).
    pub runs: Vec<RetentionRunBody>,
}

async fn status(state: &AppState, brand_id: &str) -> ApiResult<RetentionStatus> {
    let brand = state.store.brand(brand_id).await?.ok_or_else(|| ApiError::code(ErrorCode::BrandNotFound))?;
    let horizon = switchboard_core::retention::horizon(brand.retention_days, now_ms());
    Ok(RetentionStatus {
        retention_days: brand.retention_days,
        horizon,
        waiting: state.store.count_past_retention(brand_id, horizon).await?,
        running: state.retention.is_running(brand_id),
        runs: types::all(state.store.retention_runs(brand_id, 10).await?),
    })
}

/// The brand's retention: its horizon, what waits to be purged, the latest purge runs and
/// what each deleted (admins). Purges run every hour by default (`retention_purge_secs`).
#[utoipa::path(get, path = "/api/v1/retention", tag = "privacy",
    responses((status = 200, body = RetentionStatus), (status = 403, body = ErrorBody)))]
pub(super) async fn get_retention(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
) -> ApiResult<Json<RetentionStatus>> {
    Ok(Json(status(&state, &caller.brand_id).await?))
}

/// Starts a purge of the brand's conversations past retention now, in the background
/// (admins); answers at once with the status (`running`). The run is recorded in the audit
/// log when it finishes.
#[utoipa::path(post, path = "/api/v1/retention/purge", tag = "privacy",
    responses((status = 202, body = RetentionStatus), (status = 403, body = ErrorBody)))]
pub(super) async fn start_purge(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
) -> ApiResult<(StatusCode, Json<RetentionStatus>)> {
    // Claimed here, so the status below already says `running`; the purge outlives the
    // request and frees the brand when it ends (the guard moves into the task).
    if let Some(guard) = state.retention.try_start(&caller.brand_id) {
        let brand_id = caller.brand_id.clone();
        let task_state = state.clone();
        tokio::spawn(async move {
            if let Err(error) = crate::retention::purge_claimed(&task_state, &brand_id, now_ms(), guard).await {
                tracing::warn!(%error, brand_id, "retention purge stopped; the next one continues it");
            }
        });
    }
    Ok((StatusCode::ACCEPTED, Json(status(&state, &caller.brand_id).await?)))
}
