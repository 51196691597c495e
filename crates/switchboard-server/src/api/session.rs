//! Staff login and logout (session cookie or bearer token) and `me`.

use super::*;

// ----- auth ------------------------------------------------------------------------------

/// Login with email and password.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 1024)]
    pub password: String,
}

/// A new session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoginResponse {
    /// Session token: send as `Authorization: Bearer …`, or rely on the `sb_session` cookie.
    pub token: String,
    /// Milliseconds since the epoch.
    pub expires_at: i64,
    pub user: User,
}

/// Logs a staff user in.
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginRequest, tag = "auth",
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody)))]
pub(super) async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    tls: Option<axum::Extension<crate::serve::ServedOverTls>>,
    Body(request): Body<LoginRequest>,
) -> ApiResult<Response> {
    // A foreign page must not log the browser into an account of its choosing.
    crate::origin::check_if_present(&state.config, &headers, tls.is_some_and(|axum::Extension(tls)| tls.0))?;
    let user = state.store.user_by_email(&request.email).await?;
    // Verify against a fixed hash when the user does not exist, so the answer takes as long
    // whether or not the email is known.
    let stored_hash = user.as_ref().map_or(DUMMY_HASH, |user| user.password_hash.as_str());
    let verified = auth::verify_password(&request.password, stored_hash);
    let user = match user {
        Some(user) if verified && !user.disabled => user,
        _ => return Err(ApiError::code(ErrorCode::InvalidCredentials)),
    };
    let token = auth::new_secret(auth::SESSION_PREFIX);
    let now = now_ms();
    let ttl_ms = i64::try_from(state.config.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(ttl_ms);
    state.store.create_session(&auth::hash_secret(&token), &user, now, expires_at).await?;
    let cookie = format!(
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        auth::SESSION_COOKIE,
        state.config.session_ttl.as_secs(),
        secure_attribute(&state)
    );
    let mut response = Json(LoginResponse { token, expires_at, user: user.into() }).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `; Secure` when browsers reach the server over https (served here or by a trusted
/// proxy): the cookie is then never sent over plain HTTP.
fn secure_attribute(state: &AppState) -> &'static str {
    if state.config.public_https() { "; Secure" } else { "" }
}

/// An argon2 hash of a random password, used to spend equal time on unknown emails.
pub(super) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$o4ZyZzHRcIjV3oLOWIHV6R5fjD0+NAXhxQsxh2uVbPM";

/// Ends the caller's session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
pub(super) async fn logout(State(state): State<AppState>, AgentAuth(caller): AgentAuth) -> ApiResult<Response> {
    if let Some(token) = caller.session_token {
        state.store.delete_session(&auth::hash_secret(&token)).await?;
    }
    let clear =
        format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", auth::SESSION_COOKIE, secure_attribute(&state));
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// The logged-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
pub(super) async fn me(State(state): State<AppState>, AgentAuth(caller): AgentAuth) -> ApiResult<Json<User>> {
    let user =
        state.store.user(&caller.brand_id, caller.user_id).await?.ok_or_else(|| ApiError::code(ErrorCode::NotFound))?;
    Ok(Json(user.into()))
}
