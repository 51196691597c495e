//! Routing skills: create, list, how each routes (assign or offer, starting priority), delete.

use super::*;

// ----- skills ----------------------------------------------------------------------------

/// A new skill.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSkillRequest {
    #[schema(max_length = 64)]
    pub name: String,
}

/// Creates a skill (admin).
#[utoipa::path(post, path = "/api/v1/skills", request_body = CreateSkillRequest, tag = "skills",
    responses((status = 201, body = Skill), (status = 409, body = ErrorBody)))]
pub(super) async fn create_skill(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<CreateSkillRequest>,
) -> ApiResult<(StatusCode, Json<Skill>)> {
    check_len("name", &request.name, 1, 64)?;
    let skill = state.store.create_skill(&caller.brand_id, &request.name, now_ms()).await?;
    let detail = json!({"name": skill.name});
    crate::audit::record(&state, &caller, "skill.create", Some(format!("skill {}", skill.id)), detail).await;
    Ok((StatusCode::CREATED, Json(skill.into())))
}

/// How a skill routes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillSettingsRequest {
    /// `assign` (straight to the least-loaded agent) or `offer` (ring one agent at a time).
    pub routing: Option<types::SkillRouting>,
    /// Seconds an agent has to accept an offer: 5 to 300 (default 30).
    pub offer_timeout_secs: Option<i64>,
    /// The priority the skill's new conversations start with (default normal).
    pub default_priority: Option<types::ConversationPriority>,
}

/// Changes how a skill routes (admin).
#[utoipa::path(patch, path = "/api/v1/skills/{skill_id}", tag = "skills", params(("skill_id" = i64, Path)),
    request_body = SkillSettingsRequest, responses((status = 200, body = Skill), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn patch_skill(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(skill_id): P<i64>,
    Body(request): Body<SkillSettingsRequest>,
) -> ApiResult<Json<Skill>> {
    if let Some(secs) = request.offer_timeout_secs
        && !(5..=300).contains(&secs)
    {
        return Err(ApiError::bad_request(format!("offer_timeout_secs must be 5 to 300 (got {secs})")));
    }
    let patch = switchboard_store::SkillPatch {
        routing: request.routing.map(Into::into),
        offer_timeout_secs: request.offer_timeout_secs,
        default_priority: request.default_priority.map(Into::into),
    };
    let skill = state.store.update_skill(&caller.brand_id, skill_id, &patch).await?;
    state.engines.skills_changed(&caller.brand_id);
    let detail = json!({"routing": patch.routing.map(switchboard_store::SkillRouting::as_str),
        "offer_timeout_secs": patch.offer_timeout_secs, "default_priority": request.default_priority});
    crate::audit::record(&state, &caller, "skill.update", Some(format!("skill {skill_id}")), without_nulls(detail))
        .await;
    Ok(Json(skill.into()))
}

/// The brand's skills.
#[utoipa::path(get, path = "/api/v1/skills", tag = "skills", responses((status = 200, body = Vec<Skill>)))]
pub(super) async fn list_skills(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
) -> ApiResult<Json<Vec<Skill>>> {
    Ok(Json(types::all(state.store.skills(&caller.brand_id).await?)))
}

/// Deletes a skill (admin).
///
/// Its own automatic messages and business hours go with it; agents, apps and the brand
/// that named it no longer do. Conversations keep its id.
#[utoipa::path(delete, path = "/api/v1/skills/{skill_id}", tag = "skills", params(("skill_id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_skill(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(skill_id): P<i64>,
) -> ApiResult<StatusCode> {
    state.store.delete_skill(&caller.brand_id, skill_id).await?;
    state.engines.skills_changed(&caller.brand_id);
    crate::audit::record(&state, &caller, "skill.delete", Some(format!("skill {skill_id}")), Value::Null).await;
    for user in state.store.users(&caller.brand_id).await? {
        state.engines.agent_changed(&user);
    }
    Ok(StatusCode::NO_CONTENT)
}
