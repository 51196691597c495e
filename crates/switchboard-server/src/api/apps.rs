//! Apps (data sources of a brand), their entry skills, and the public keys their consumers'
//! JWTs are signed with.

use super::*;

// ----- apps and keys ---------------------------------------------------------------------

/// A new app.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppRequest {
    /// App ID; generated when absent.
    #[schema(max_length = 64)]
    pub id: Option<String>,
    #[schema(max_length = 200)]
    pub name: String,
    /// `in_app` (SDK) or `web` (widget).
    #[schema(max_length = 16)]
    pub channel: String,
    /// Default true.
    pub allow_jwt: Option<bool>,
    /// Default false.
    pub allow_anonymous: Option<bool>,
    /// Required `iss` of consumer JWTs (needed when allow_jwt).
    #[schema(max_length = 1024)]
    pub jwt_issuer: Option<String>,
    /// Required `aud`; the app id when absent.
    #[schema(max_length = 1024)]
    pub jwt_audience: Option<String>,
    pub default_skill_id: Option<i64>,
    /// Priority the app's new conversations start at (default `normal`).
    pub default_priority: Option<super::types::ConversationPriority>,
}

pub(super) async fn check_skill(state: &AppState, brand_id: &str, skill_id: Option<i64>) -> ApiResult<()> {
    if let Some(skill_id) = skill_id
        && !state.store.skills(brand_id).await?.iter().any(|skill| skill.id == skill_id)
    {
        return Err(ApiError::bad_request(format!("skill {skill_id} does not exist in this brand")));
    }
    Ok(())
}

/// Creates an app (admin).
#[utoipa::path(post, path = "/api/v1/apps", request_body = CreateAppRequest, tag = "apps",
    responses((status = 201, body = App), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_app(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<CreateAppRequest>,
) -> ApiResult<(StatusCode, Json<App>)> {
    let id = request.id.unwrap_or_else(|| random_id("app-"));
    check_id("id", &id)?;
    check_len("name", &request.name, 1, 200)?;
    if !matches!(request.channel.as_str(), "in_app" | "web") {
        return Err(ApiError::bad_request(format!(
            "channel must be \"in_app\" or \"web\" (got {:?})",
            request.channel
        )));
    }
    check_skill(&state, &caller.brand_id, request.default_skill_id).await?;
    let new = NewApp {
        id,
        brand_id: caller.brand_id.clone(),
        name: request.name,
        channel: request.channel,
        allow_jwt: request.allow_jwt.unwrap_or(true),
        allow_anonymous: request.allow_anonymous.unwrap_or(false),
        jwt_issuer: request.jwt_issuer,
        jwt_audience: request.jwt_audience,
        default_skill_id: request.default_skill_id,
        default_priority: request.default_priority.map(Into::into).unwrap_or_default(),
    };
    let app = state.store.create_app(&new, now_ms()).await?;
    let detail = json!({"name": app.name, "channel": app.channel, "allow_jwt": app.allow_jwt,
        "allow_anonymous": app.allow_anonymous, "default_skill_id": app.default_skill_id});
    crate::audit::record(&state, &caller, "app.create", Some(format!("app {}", app.id)), detail).await;
    Ok((StatusCode::CREATED, Json(app.into())))
}

/// The brand's apps.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", responses((status = 200, body = Vec<App>)))]
pub(super) async fn list_apps(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
) -> ApiResult<Json<Vec<App>>> {
    Ok(Json(types::all(state.store.apps(&caller.brand_id).await?)))
}

/// One app.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}", tag = "apps", params(("app_id" = String, Path)),
    responses((status = 200, body = App), (status = 404, body = ErrorBody)))]
pub(super) async fn get_app(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
) -> ApiResult<Json<App>> {
    let app =
        state.store.app(&caller.brand_id, &app_id).await?.ok_or_else(|| ApiError::code(ErrorCode::AppNotFound))?;
    Ok(Json(app.into()))
}

/// App change; absent fields keep their value, `null` clears optional ones.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppPatchRequest {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    pub allow_jwt: Option<bool>,
    pub allow_anonymous: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 1024)]
    pub jwt_issuer: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(max_length = 1024)]
    pub jwt_audience: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub default_skill_id: Option<Option<i64>>,
    /// Priority the app's new conversations start at.
    pub default_priority: Option<super::types::ConversationPriority>,
    /// Further skills a device of the app may ask to start in (`hello.skill`); replaces the
    /// list. At most 100.
    #[schema(max_items = 100)]
    pub entry_skill_ids: Option<Vec<i64>>,
}

/// Changes an app (admin).
#[utoipa::path(patch, path = "/api/v1/apps/{app_id}", tag = "apps", params(("app_id" = String, Path)),
    request_body = AppPatchRequest, responses((status = 200, body = App), (status = 404, body = ErrorBody)))]
pub(super) async fn patch_app(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
    Body(request): Body<AppPatchRequest>,
) -> ApiResult<Json<App>> {
    if let Some(name) = &request.name {
        check_len("name", name, 1, 200)?;
    }
    check_skill(&state, &caller.brand_id, request.default_skill_id.flatten()).await?;
    let detail = without_nulls(json!({"name": request.name, "allow_jwt": request.allow_jwt,
        "allow_anonymous": request.allow_anonymous, "jwt_issuer": request.jwt_issuer, "jwt_audience": request.jwt_audience,
        "default_skill_id": request.default_skill_id, "default_priority": request.default_priority,
        "entry_skill_ids": request.entry_skill_ids}));
    let patch = AppPatch {
        name: request.name,
        allow_jwt: request.allow_jwt,
        allow_anonymous: request.allow_anonymous,
        jwt_issuer: request.jwt_issuer,
        jwt_audience: request.jwt_audience,
        default_skill_id: request.default_skill_id,
        default_priority: request.default_priority.map(Into::into),
    };
    let mut app = state.store.update_app(&caller.brand_id, &app_id, &patch).await.map_err(|error| match error {
        switchboard_store::StoreError::NotFound => ApiError::code(ErrorCode::AppNotFound),
        other => other.into(),
    })?;
    if let Some(skills) = request.entry_skill_ids {
        if skills.len() > 100 {
            return Err(ApiError::bad_request(format!(
                "entry_skill_ids holds at most 100 skills (got {})",
                skills.len()
            )));
        }
        state.store.set_entry_skills(&caller.brand_id, &app_id, &skills).await.map_err(|error| match error {
            switchboard_store::StoreError::NotFound => {
                ApiError::bad_request("a skill of entry_skill_ids does not exist in this brand")
            }
            other => other.into(),
        })?;
        app.entry_skill_ids =
            state.store.app(&caller.brand_id, &app_id).await?.map(|a| a.entry_skill_ids).unwrap_or_default();
    }
    crate::audit::record(&state, &caller, "app.update", Some(format!("app {app_id}")), detail).await;
    Ok(Json(app.into()))
}

/// A public key for consumer JWTs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKeyRequest {
    /// `pem` (an RSA or P-256 public key) or `jwks` (a JWKS JSON document).
    #[schema(max_length = 16)]
    pub format: String,
    #[schema(max_length = 65536)]
    pub material: String,
}

pub(super) fn forget_app_keys(state: &AppState, app_id: &str) {
    crate::fleet::changed(state, crate::fleet::Changed::AppKeys { app_id: app_id.to_owned() });
}

/// Adds a public key to an app (admin). Bad keys are refused with `invalid_key`.
#[utoipa::path(post, path = "/api/v1/apps/{app_id}/keys", tag = "apps", params(("app_id" = String, Path)),
    request_body = AddKeyRequest, responses((status = 201, body = AppKey), (status = 400, body = ErrorBody)))]
pub(super) async fn add_key(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
    Body(request): Body<AddKeyRequest>,
) -> ApiResult<(StatusCode, Json<AppKey>)> {
    check_len("material", &request.material, 1, 64 * 1024)?;
    jwt::parse_key(&request.format, &request.material)?;
    let key = state
        .store
        .add_app_key(&caller.brand_id, &app_id, &request.format, &request.material, now_ms())
        .await
        .map_err(|error| match error {
            switchboard_store::StoreError::NotFound => ApiError::code(ErrorCode::AppNotFound),
            other => other.into(),
        })?;
    forget_app_keys(&state, &app_id);
    let detail = json!({"key_id": key.id, "format": key.format});
    crate::audit::record(&state, &caller, "app.key_add", Some(format!("app {app_id}")), detail).await;
    Ok((StatusCode::CREATED, Json(key.into())))
}

/// An app's keys.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}/keys", tag = "apps", params(("app_id" = String, Path)),
    responses((status = 200, body = Vec<AppKey>)))]
pub(super) async fn list_keys(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
) -> ApiResult<Json<Vec<AppKey>>> {
    state.store.app(&caller.brand_id, &app_id).await?.ok_or_else(|| ApiError::code(ErrorCode::AppNotFound))?;
    Ok(Json(types::all(state.store.app_keys(&caller.brand_id, &app_id).await?)))
}

/// Removes a key (admin).
#[utoipa::path(delete, path = "/api/v1/apps/{app_id}/keys/{key_id}", tag = "apps",
    params(("app_id" = String, Path), ("key_id" = i64, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_key(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P((app_id, key_id)): P<(String, i64)>,
) -> ApiResult<StatusCode> {
    state.store.delete_app_key(&caller.brand_id, &app_id, key_id).await?;
    forget_app_keys(&state, &app_id);
    crate::audit::record(&state, &caller, "app.key_delete", Some(format!("app {app_id}")), json!({"key_id": key_id}))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
