//! Brands: creation by the operator, the caller's brand and its settings.

use super::*;

// ----- brands ----------------------------------------------------------------------------

/// A new brand with its first admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBrandRequest {
    /// Brand ID: 1–64 of a-z, 0-9, '-', '_'.
    #[schema(max_length = 64)]
    pub id: String,
    #[schema(max_length = 200)]
    pub name: String,
    #[schema(max_length = 254)]
    pub admin_email: String,
    #[schema(max_length = 200)]
    pub admin_name: String,
    #[schema(max_length = 1024)]
    pub admin_password: String,
}

/// The created brand and admin.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateBrandResponse {
    pub brand: Brand,
    pub admin: User,
}

/// Creates a brand (deployment operator only).
#[utoipa::path(post, path = "/api/v1/brands", request_body = CreateBrandRequest, tag = "brands",
    responses((status = 201, body = CreateBrandResponse), (status = 409, body = ErrorBody)))]
pub(super) async fn create_brand(
    State(state): State<AppState>,
    _operator: OperatorAuth,
    Body(request): Body<CreateBrandRequest>,
) -> ApiResult<(StatusCode, Json<CreateBrandResponse>)> {
    check_id("id", &request.id)?;
    check_len("name", &request.name, 1, 200)?;
    check_email(&request.admin_email)?;
    check_len("admin_name", &request.admin_name, 1, 200)?;
    auth::check_password_policy(&request.admin_password, &[&request.admin_email, &request.admin_name, &request.id])?;
    let now = now_ms();
    let brand = state.store.create_brand(&NewBrand { id: request.id.clone(), name: request.name }, now).await?;
    let admin = state
        .store
        .create_user(
            &NewUser {
                brand_id: brand.id.clone(),
                email: request.admin_email,
                name: request.admin_name,
                role: switchboard_store::Role::Admin,
                password_hash: state.abuse.hashing.hash(&request.admin_password).await?,
                max_concurrent: 0,
                skills: Vec::new(),
            },
            now,
        )
        .await?;
    state.engines.agent_changed(&admin);
    let detail = json!({"name": brand.name, "admin_email": admin.email});
    crate::audit::record_as(
        &state,
        &brand.id,
        &AuditActor::operator(),
        "brand.create",
        Some(format!("brand {}", brand.id)),
        detail,
    )
    .await;
    Ok((StatusCode::CREATED, Json(CreateBrandResponse { brand: brand.into(), admin: admin.into() })))
}

/// The caller's brand and its settings.
#[utoipa::path(get, path = "/api/v1/brand", tag = "brands", responses((status = 200, body = Brand)))]
pub(super) async fn get_brand(State(state): State<AppState>, AgentAuth(caller): AgentAuth) -> ApiResult<Json<Brand>> {
    let brand = state.store.brand(&caller.brand_id).await?.ok_or_else(|| ApiError::code(ErrorCode::BrandNotFound))?;
    Ok(Json(brand.into()))
}

/// Brand settings change; absent fields keep their value. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandSettingsRequest {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Ask consumers for CSAT after an agent resolves.
    pub csat_enabled: Option<bool>,
    /// 1–3650 days; default 396 (13 months).
    pub retention_days: Option<i64>,
    /// Seconds (0–3600, default 60) an agent whose sockets all dropped, or who chose
    /// offline, keeps their conversations before they return to the queue.
    pub agent_grace_secs: Option<i64>,
    /// The skill of new conversations whose app names none; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub default_skill_id: Option<Option<i64>>,
    /// Language (a BCP 47 tag; its primary subtag is kept, e.g. `de`) of automatic messages
    /// for consumers whose language has no template. Default `en`.
    #[schema(max_length = 35)]
    pub default_language: Option<String>,
    /// Close a conversation the consumer has not answered for this many seconds after the
    /// agent's last message: 60 (1 minute) to 7,776,000 (90 days); `null` turns it off
    /// (the default). Conversations waiting in the queue never auto-close.
    #[serde(default, deserialize_with = "nullable")]
    pub auto_close_secs: Option<Option<i64>>,
    /// Send the `inactive_warning` automatic message this many seconds before an auto-close
    /// (at least 60, less than `auto_close_secs`); `null`: no warning.
    #[serde(default, deserialize_with = "nullable")]
    pub auto_close_warn_secs: Option<Option<i64>>,
    /// Offer the CSAT survey when a conversation auto-closes (default false).
    pub auto_close_survey: Option<bool>,
    /// Let an agent who starts a conversation by writing to a consumer (a proactive
    /// follow-up) read the consumer's other conversations too (default false: only the
    /// conversations they hold or held).
    pub follow_up_history: Option<bool>,
    /// Pushes say only "You have a new message": no text, no author (default false).
    pub push_masked: Option<bool>,
}

/// Longest auto-close setting: 90 days.
const MAX_AUTO_CLOSE_SECS: i64 = 90 * 24 * 3600;

/// Changes brand settings (admin).
#[utoipa::path(patch, path = "/api/v1/brand", request_body = BrandSettingsRequest, tag = "brands",
    responses((status = 200, body = Brand), (status = 400, body = ErrorBody)))]
pub(super) async fn patch_brand(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<BrandSettingsRequest>,
) -> ApiResult<Json<Brand>> {
    if let Some(name) = &request.name {
        check_len("name", name, 1, 200)?;
    }
    if let Some(days) = request.retention_days
        && !(1..=3650).contains(&days)
    {
        return Err(ApiError::bad_request(format!("retention_days must be 1 to 3650 (got {days})")));
    }
    if let Some(secs) = request.agent_grace_secs
        && !(0..=3600).contains(&secs)
    {
        return Err(ApiError::bad_request(format!("agent_grace_secs must be 0 to 3600 (got {secs})")));
    }
    check_skill(&state, &caller.brand_id, request.default_skill_id.flatten()).await?;
    let default_language = match &request.default_language {
        Some(tag) => Some(switchboard_core::automation::language_of(tag).ok_or_else(|| {
            ApiError::bad_request(format!(
                "default_language must be a language tag such as \"en\" or \"de-AT\" (got {tag:?})"
            ))
        })?),
        None => None,
    };
    if let Some(Some(secs)) = request.auto_close_secs
        && !(60..=MAX_AUTO_CLOSE_SECS).contains(&secs)
    {
        return Err(ApiError::bad_request(format!(
            "auto_close_secs must be 60 (1 minute) to {MAX_AUTO_CLOSE_SECS} (90 days), or null (got {secs})"
        )));
    }
    if request.auto_close_warn_secs.is_some() || request.auto_close_secs.is_some() {
        let stored =
            state.store.brand(&caller.brand_id).await?.ok_or_else(|| ApiError::code(ErrorCode::BrandNotFound))?;
        let after = request.auto_close_secs.unwrap_or(stored.auto_close_secs);
        let warn = request.auto_close_warn_secs.unwrap_or(stored.auto_close_warn_secs);
        if let Some(warn) = warn {
            match after {
                _ if warn < 60 => {
                    return Err(ApiError::bad_request(format!(
                        "auto_close_warn_secs must be at least 60 (got {warn})"
                    )));
                }
                Some(after) if warn >= after => {
                    return Err(ApiError::bad_request(format!(
                        "auto_close_warn_secs ({warn}) must be less than auto_close_secs ({after})"
                    )));
                }
                _ => {}
            }
        }
    }
    let detail = without_nulls(json!({"name": request.name, "csat_enabled": request.csat_enabled,
        "retention_days": request.retention_days, "agent_grace_secs": request.agent_grace_secs,
        "default_skill_id": request.default_skill_id, "default_language": default_language,
        "auto_close_secs": request.auto_close_secs, "auto_close_warn_secs": request.auto_close_warn_secs,
        "auto_close_survey": request.auto_close_survey}));
    let patch = BrandPatch {
        name: request.name,
        csat_enabled: request.csat_enabled,
        retention_days: request.retention_days,
        agent_grace_secs: request.agent_grace_secs,
        default_skill_id: request.default_skill_id,
        default_language,
        auto_close_secs: request.auto_close_secs,
        auto_close_warn_secs: request.auto_close_warn_secs,
        auto_close_survey: request.auto_close_survey,
        follow_up_history: request.follow_up_history,
        push_masked: request.push_masked,
    };
    let brand = state.store.update_brand(&caller.brand_id, &patch).await?;
    state.engines.settings_changed(&brand);
    crate::fleet::changed(&state, crate::fleet::Changed::Brand { brand_id: brand.id.clone() });
    crate::audit::record(&state, &caller, "brand.update", Some(format!("brand {}", brand.id)), detail).await;
    Ok(Json(brand.into()))
}
