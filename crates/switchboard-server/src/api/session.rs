//! Staff login and logout (session cookie or bearer token) and `me`.

use super::*;

// ----- auth ------------------------------------------------------------------------------

/// Login with email and password. Staff emails are unique per brand: a person may have
/// accounts in several brands under one email. Without `brand`, the password is checked
/// against each of them; if it opens exactly one, that is the login; if it opens more than
/// one, the answer is `brand_required` naming them, and the login is sent again with `brand`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(max_length = 254)]
    pub email: String,
    #[schema(max_length = 1024)]
    pub password: String,
    /// The brand id, when the email has accounts in several brands with this password.
    #[schema(max_length = 64)]
    pub brand: Option<String>,
}

/// The most accounts one login email is checked against (one argon2 each): a person in
/// more brands than this must name the brand.
const MAX_ACCOUNTS_PER_LOGIN: i64 = 8;

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
///
/// Failed logins are limited per account and per client address
/// (`login_attempts_per_account`, `login_attempts_per_address` within `login_window_secs`):
/// beyond, every login — the right password too — is answered `too_many_requests` (429) with
/// `Retry-After` until the wait is over. A right password clears its account's count.
#[utoipa::path(post, path = "/api/v1/auth/login", request_body = LoginRequest, tag = "auth", security(()),
    responses((status = 200, body = LoginResponse), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub(super) async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    tls: Option<axum::Extension<crate::serve::ServedOverTls>>,
    ClientAddress(address): ClientAddress,
    Body(request): Body<LoginRequest>,
) -> ApiResult<Response> {
    // A foreign page must not log the browser into an account of its choosing.
    crate::origin::check_if_present(&state.config, &headers, tls.is_some_and(|axum::Extension(tls)| tls.0))?;
    let abuse = &state.abuse;
    let now = std::time::Instant::now();
    // The limits are checked before any password is: a limited attempt costs no hashing,
    // and the right password is refused too until the wait is over.
    let address = crate::abuse::address_key(address);
    abuse
        .login_addresses
        .check(&address, now)
        .map_err(|wait| abuse.login_refused("from this address", abuse.config.login_attempts_per_address, wait))?;
    let candidates: Vec<switchboard_store::User> = match &request.brand {
        Some(brand) => state.store.user_by_email(brand, &request.email).await?.into_iter().collect(),
        None => state.store.logins_by_email(&request.email, MAX_ACCOUNTS_PER_LOGIN).await?,
    };
    let email = request.email.to_lowercase();
    // Unknown emails are limited like known ones (the answer does not tell them apart).
    let accounts: Vec<crate::abuse::AccountKey> = if candidates.is_empty() {
        vec![(request.brand.clone().unwrap_or_default(), email)]
    } else {
        candidates.iter().map(|user| (user.brand_id.clone(), email.clone())).collect()
    };
    for account in &accounts {
        abuse
            .login_accounts
            .check(account, now)
            .map_err(|wait| abuse.login_refused("for this account", abuse.config.login_attempts_per_account, wait))?;
    }
    // Counted as failed until the password is proved.
    let _ = abuse.login_addresses.take(&address, now);
    for account in &accounts {
        let _ = abuse.login_accounts.take(account, now);
    }
    // Verify against a fixed hash when no account has this email, so the answer takes as long
    // whether or not the email is known.
    let hashes: Vec<String> = if candidates.is_empty() {
        vec![DUMMY_HASH.to_owned()]
    } else {
        candidates.iter().map(|user| user.password_hash.clone()).collect()
    };
    let matched = abuse.hashing.verify(&request.password, hashes).await?;
    if candidates.is_empty() {
        return Err(ApiError::code(ErrorCode::InvalidCredentials));
    }
    let mut opened: Vec<switchboard_store::User> = Vec::new();
    for (candidate, matched) in candidates.into_iter().zip(matched) {
        if matched && !candidate.disabled {
            opened.push(candidate);
        }
    }
    if !opened.is_empty() {
        // The password was right: the attempt does not count against the address, and the
        // accounts it opened start afresh.
        abuse.login_addresses.give_back(&address, now);
        for user in &opened {
            abuse.login_accounts.forget(&(user.brand_id.clone(), request.email.to_lowercase()));
        }
    }
    if opened.len() > 1 {
        // The caller proved the password of each, so naming their brands tells them nothing
        // they could not learn by logging in to each.
        let brands: Vec<&str> = opened.iter().map(|user| user.brand_id.as_str()).collect();
        return Err(ApiError::new(
            ErrorCode::BrandRequired,
            format!(
                "this email and password open accounts in {} brands ({}): name the brand",
                brands.len(),
                brands.join(", ")
            ),
        ));
    }
    let Some(user) = opened.pop() else { return Err(ApiError::code(ErrorCode::InvalidCredentials)) };
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
    if let Some(token_id) = caller.api_token_id {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!(
                "an API token is not a user account: this is token {token_id} ({:?}); GET /api/v1/tokens lists tokens",
                caller.name
            ),
        ));
    }
    let user = state
        .store
        .user(&caller.brand_id, caller.staff_id)
        .await?
        .ok_or_else(|| ApiError::code(ErrorCode::NotFound))?;
    Ok(Json(user.into()))
}

/// A user's own password change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    #[schema(max_length = 1024)]
    pub current_password: String,
    /// Checked against the password policy (10 to 256 characters, zxcvbn strength ≥ 3 of 4).
    #[schema(max_length = 1024)]
    pub new_password: String,
}

/// Changes the caller's own password. Every other session of theirs ends (their sockets
/// close within a heartbeat); the one this request came from stays signed in.
#[utoipa::path(put, path = "/api/v1/me/password", request_body = PasswordChangeRequest, tag = "auth",
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn change_password(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    Body(request): Body<PasswordChangeRequest>,
) -> ApiResult<StatusCode> {
    if caller.api_token_id.is_some() {
        return Err(ApiError::new(ErrorCode::Forbidden, "an API token has no password to change"));
    }
    let user = state
        .store
        .user(&caller.brand_id, caller.staff_id)
        .await?
        .ok_or_else(|| ApiError::code(ErrorCode::NotFound))?;
    let matched = state.abuse.hashing.verify(&request.current_password, vec![user.password_hash.clone()]).await?;
    if !matched.first().copied().unwrap_or(false) {
        return Err(ApiError::new(ErrorCode::InvalidCredentials, "the current password is wrong"));
    }
    auth::check_password_policy(&request.new_password, &[&user.email, &user.name, &user.brand_id])?;
    let hash = state.abuse.hashing.hash(&request.new_password).await?;
    let keep = caller.session_token.as_deref().map(auth::hash_secret);
    state.store.change_password(&caller.brand_id, caller.staff_id, &hash, keep.as_deref()).await?;
    crate::demo_password_changed(&state, &user);
    crate::audit::record(&state, &caller, "user.password_change", Some(format!("user {}", user.id)), json!({})).await;
    Ok(StatusCode::NO_CONTENT)
}
