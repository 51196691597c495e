//! Staff users (agents, managers, admins) and API tokens.

use super::*;

// ----- users -----------------------------------------------------------------------------

/// A new agent, manager or admin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 200)]
    pub name: String,
    pub role: Role,
    /// At least 10 characters.
    #[schema(max_length = 1024)]
    pub password: String,
    /// Maximum concurrent conversations; default 3.
    pub max_concurrent: Option<i64>,
    /// Skill ids.
    #[serde(default)]
    #[schema(max_items = 1000)]
    pub skills: Vec<i64>,
}

/// Creates a user (admin).
#[utoipa::path(post, path = "/api/v1/users", request_body = CreateUserRequest, tag = "users",
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_user(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    check_email(&request.email)?;
    check_len("name", &request.name, 1, 200)?;
    auth::check_password_policy(&request.password, &[&request.email, &request.name, &caller.brand_id])?;
    let max_concurrent = request.max_concurrent.unwrap_or(3);
    check_capacity(max_concurrent)?;
    let new = NewUser {
        brand_id: caller.brand_id.clone(),
        email: request.email,
        name: request.name,
        role: request.role.into(),
        password_hash: state.abuse.hashing.hash(&request.password).await?,
        max_concurrent,
        skills: request.skills,
    };
    let user = state.store.create_user(&new, now_ms()).await.map_err(|error| match error {
        switchboard_store::StoreError::NotFound => ApiError::bad_request("a skill id does not exist in this brand"),
        switchboard_store::StoreError::Conflict(_) => {
            ApiError::new(ErrorCode::Conflict, "this brand has a user with this email")
        }
        other => other.into(),
    })?;
    state.engines.agent_changed(&user);
    let detail = json!({"email": user.email, "name": user.name, "role": user.role.as_str(),
        "max_concurrent": user.max_concurrent, "skills": user.skills});
    crate::audit::record(&state, &caller, "user.create", Some(format!("user {}", user.id)), detail).await;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// The brand's users (manager).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = Vec<User>)))]
pub(super) async fn list_users(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(types::all(state.store.users(&caller.brand_id).await?)))
}

/// One user (manager).
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users", params(("user_id" = i64, Path)),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub(super) async fn get_user(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
    P(user_id): P<i64>,
) -> ApiResult<Json<User>> {
    let user = state.store.user(&caller.brand_id, user_id).await?.ok_or_else(|| ApiError::code(ErrorCode::NotFound))?;
    Ok(Json(user.into()))
}

/// User change; absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchRequest {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    pub role: Option<Role>,
    #[schema(max_length = 1024)]
    pub password: Option<String>,
    pub max_concurrent: Option<i64>,
    #[schema(max_items = 1000)]
    pub skills: Option<Vec<i64>>,
    /// Disabled users cannot log in; their sessions end, and the API tokens they created
    /// stop working until they are enabled again.
    pub disabled: Option<bool>,
}

/// Changes a user (admin).
#[utoipa::path(patch, path = "/api/v1/users/{user_id}", tag = "users", params(("user_id" = i64, Path)),
    request_body = UserPatchRequest, responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub(super) async fn patch_user(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(user_id): P<i64>,
    Body(request): Body<UserPatchRequest>,
) -> ApiResult<Json<User>> {
    if let Some(name) = &request.name {
        check_len("name", name, 1, 200)?;
    }
    if let Some(max_concurrent) = request.max_concurrent {
        check_capacity(max_concurrent)?;
    }
    let password_hash = match &request.password {
        Some(password) => {
            let target = state
                .store
                .user(&caller.brand_id, user_id)
                .await?
                .ok_or_else(|| ApiError::code(ErrorCode::NotFound))?;
            let name = request.name.as_deref().unwrap_or(&target.name);
            auth::check_password_policy(password, &[&target.email, name, &caller.brand_id])?;
            Some(state.abuse.hashing.hash(password).await?)
        }
        None => None,
    };
    let patch = UserPatch {
        name: request.name,
        role: request.role.map(Into::into),
        password_hash,
        max_concurrent: request.max_concurrent,
        skills: request.skills,
        disabled: request.disabled,
    };
    let changes_login = patch.password_hash.is_some() || patch.disabled == Some(true);
    // What changed, without the password itself.
    let detail = json!({"name": patch.name, "role": patch.role.map(switchboard_store::Role::as_str),
        "password_changed": patch.password_hash.is_some(), "max_concurrent": patch.max_concurrent,
        "skills": patch.skills, "disabled": patch.disabled});
    let user = state.store.update_user(&caller.brand_id, user_id, &patch).await?;
    if changes_login {
        crate::demo_password_changed(&state, &user);
    }
    state.engines.agent_changed(&user);
    crate::audit::record(&state, &caller, "user.update", Some(format!("user {user_id}")), without_nulls(detail)).await;
    Ok(Json(user.into()))
}

// ----- API tokens ------------------------------------------------------------------------

/// A new API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    #[schema(max_length = 200)]
    pub name: String,
    /// The most the token may do; default: the creator's role. It never does more than
    /// its creator's current role.
    pub role: Option<Role>,
    /// Days until it stops working (1 to 3650); absent: until revoked.
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
}

/// Longest lifetime of an expiring API token, in days (ten years).
const MAX_TOKEN_DAYS: i64 = 3650;

/// The created token; the secret is shown only here.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateTokenResponse {
    /// Send as `Authorization: Bearer …`.
    pub token: String,
    pub info: ApiToken,
}

/// Creates an API token (admin, signed in).
///
/// A token cannot create tokens. The token is a principal of its own: it acts under its name
/// and its own id (`-id` on the desk and in messages), with the lower of its role and its
/// creator's current role, and stops working when its creator is disabled, when it expires,
/// or when it is revoked (docs/security.md, "API tokens").
#[utoipa::path(post, path = "/api/v1/tokens", request_body = CreateTokenRequest, tag = "tokens",
    responses((status = 201, body = CreateTokenResponse)))]
pub(super) async fn create_token(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreateTokenResponse>)> {
    if caller.api_token_id.is_some() {
        // A token minting tokens would outlive its own revocation.
        return Err(ApiError::new(ErrorCode::Forbidden, "an API token cannot create API tokens; sign in as an admin"));
    }
    check_len("name", &request.name, 1, 200)?;
    let role = request.role.map_or(caller.role, Into::into);
    if role > caller.role {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "a token cannot do more than its creator: you are {}, the token asks for {}",
                caller.role.as_str(),
                role.as_str()
            ),
        ));
    }
    let now = now_ms();
    let expires_at = match request.expires_in_days {
        None => None,
        Some(days) if (1..=MAX_TOKEN_DAYS).contains(&days) => Some(now + days * 86_400_000),
        Some(days) => {
            return Err(ApiError::bad_request(format!("expires_in_days must be 1 to {MAX_TOKEN_DAYS} (got {days})")));
        }
    };
    let token = auth::new_secret(auth::API_TOKEN_PREFIX);
    let token_hash = auth::hash_secret(&token);
    let new = switchboard_store::NewApiToken {
        brand_id: &caller.brand_id,
        name: &request.name,
        role,
        token_hash: &token_hash,
        created_by: caller.staff_id,
        expires_at,
    };
    let info = state.store.create_api_token(&new, now).await?;
    let creator = switchboard_store::TokenCreator { role: caller.role, disabled: false };
    let detail = json!({"name": info.name, "role": info.role.as_str(), "expires_at": info.expires_at});
    crate::audit::record(&state, &caller, "token.create", Some(format!("token {}", info.id)), detail).await;
    Ok((StatusCode::CREATED, Json(CreateTokenResponse { token, info: ApiToken::at(info, Some(creator), now) })))
}

/// The brand's API tokens (admin).
///
/// With when each expires and was last used, whether it works now and with what role.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = Vec<ApiToken>)))]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
) -> ApiResult<Json<Vec<ApiToken>>> {
    let creators: std::collections::HashMap<i64, switchboard_store::TokenCreator> = state
        .store
        .users(&caller.brand_id)
        .await?
        .into_iter()
        .map(|user| (user.id, switchboard_store::TokenCreator { role: user.role, disabled: user.disabled }))
        .collect();
    let now = now_ms();
    let tokens = state.store.api_tokens(&caller.brand_id).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|token| {
                let creator = creators.get(&token.created_by).copied();
                ApiToken::at(token, creator, now)
            })
            .collect(),
    ))
}

/// Revokes an API token (admin).
///
/// Its requests are refused at once and its sockets close within a heartbeat.
#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "tokens", params(("token_id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_token(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(token_id): P<i64>,
) -> ApiResult<StatusCode> {
    state.store.delete_api_token(&caller.brand_id, token_id).await?;
    crate::audit::record(&state, &caller, "token.delete", Some(format!("token {token_id}")), Value::Null).await;
    Ok(StatusCode::NO_CONTENT)
}
