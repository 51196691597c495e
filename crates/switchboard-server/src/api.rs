//! The REST API (`/api/v1`), health and metrics endpoints, and the OpenAPI document served
//! at `/openapi.json` with Swagger UI at `/docs`. Every handler takes a role extractor from
//! `auth` and scopes every store call to the caller's brand.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use switchboard_protocol::{ConversationStatus, ErrorCode, Message};
use switchboard_store::{
    ApiToken, App, AppKey, AppPatch, Brand, BrandPatch, Consumer, Conversation, ConversationFilter, NewApp, NewBrand,
    NewUser, PageCursor, Role, Skill, User, UserPatch,
};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::{self, AdminAuth, AgentAuth, ManagerAuth, OperatorAuth};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::{AppState, jwt, now_ms, ws};

/// JSON body extractor whose rejection is an [`ApiError`] (`bad_request` naming the problem).
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(ApiError::bad_request(rejection_text(&rejection))),
        }
    }
}

fn rejection_text(rejection: &JsonRejection) -> String {
    rejection.body_text()
}

/// Query-string extractor with [`ApiError`] rejections.
#[derive(Debug)]
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Q(value))
            .map_err(|rejection: QueryRejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Path extractor with [`ApiError`] rejections.
#[derive(Debug)]
pub struct P<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for P<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| P(value))
            .map_err(|rejection: PathRejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// `Some(None)` for an explicit JSON `null`, `None` for a missing field.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

// ----- validation helpers --------------------------------------------------------------

fn check_len(field: &str, value: &str, min: usize, max: usize) -> ApiResult<()> {
    let chars = value.chars().count();
    if chars < min || chars > max {
        return Err(ApiError::bad_request(format!("{field} must be {min} to {max} characters (got {chars})")));
    }
    Ok(())
}

fn check_id(field: &str, value: &str) -> ApiResult<()> {
    check_len(field, value, 1, 64)?;
    if !value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        return Err(ApiError::bad_request(format!("{field} may contain only a-z, 0-9, '-' and '_' (got {value:?})")));
    }
    Ok(())
}

fn check_email(email: &str) -> ApiResult<()> {
    check_len("email", email, 3, 254)?;
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && domain.contains('.') && !email.contains(char::is_whitespace) => {
            Ok(())
        }
        _ => Err(ApiError::bad_request(format!("email {email:?} is not an email address"))),
    }
}

const MAX_CONCURRENT_LIMIT: i64 = 100_000;

fn check_capacity(max_concurrent: i64) -> ApiResult<()> {
    if !(0..=MAX_CONCURRENT_LIMIT).contains(&max_concurrent) {
        return Err(ApiError::bad_request(format!(
            "max_concurrent must be 0 to {MAX_CONCURRENT_LIMIT} (got {max_concurrent})"
        )));
    }
    Ok(())
}

fn random_id(prefix: &str) -> String {
    let secret = auth::new_secret("");
    let tail: String =
        secret.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).take(12).collect();
    format!("{prefix}{tail}")
}

// ----- auth ------------------------------------------------------------------------------

/// Login with email and password.
#[derive(Debug, Deserialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
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
async fn login(State(state): State<AppState>, Body(request): Body<LoginRequest>) -> ApiResult<Response> {
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
        "{}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        auth::SESSION_COOKIE,
        state.config.session_ttl.as_secs()
    );
    let mut response = Json(LoginResponse { token, expires_at, user }).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// An argon2 hash of a random password, used to spend equal time on unknown emails.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$o4ZyZzHRcIjV3oLOWIHV6R5fjD0+NAXhxQsxh2uVbPM";

/// Ends the caller's session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204)))]
async fn logout(State(state): State<AppState>, AgentAuth(caller): AgentAuth) -> ApiResult<Response> {
    if let Some(token) = caller.session_token {
        state.store.delete_session(&auth::hash_secret(&token)).await?;
    }
    let clear = format!("{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0", auth::SESSION_COOKIE);
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// The logged-in user.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
async fn me(State(state): State<AppState>, AgentAuth(caller): AgentAuth) -> ApiResult<Json<User>> {
    let user =
        state.store.user(&caller.brand_id, caller.user_id).await?.ok_or_else(|| ApiError::code(ErrorCode::NotFound))?;
    Ok(Json(user))
}

// ----- brands ----------------------------------------------------------------------------

/// A new brand with its first admin.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateBrandRequest {
    /// Brand ID: 1–64 of a-z, 0-9, '-', '_'.
    pub id: String,
    pub name: String,
    pub admin_email: String,
    pub admin_name: String,
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
async fn create_brand(
    State(state): State<AppState>,
    _operator: OperatorAuth,
    Body(request): Body<CreateBrandRequest>,
) -> ApiResult<(StatusCode, Json<CreateBrandResponse>)> {
    check_id("id", &request.id)?;
    check_len("name", &request.name, 1, 200)?;
    check_email(&request.admin_email)?;
    check_len("admin_name", &request.admin_name, 1, 200)?;
    auth::check_password_policy(&request.admin_password)?;
    let now = now_ms();
    let brand = state.store.create_brand(&NewBrand { id: request.id.clone(), name: request.name }, now).await?;
    let admin = state
        .store
        .create_user(
            &NewUser {
                brand_id: brand.id.clone(),
                email: request.admin_email,
                name: request.admin_name,
                role: Role::Admin,
                password_hash: auth::hash_password(&request.admin_password)?,
                max_concurrent: 0,
                skills: Vec::new(),
            },
            now,
        )
        .await?;
    state.engines.agent_changed(&admin);
    Ok((StatusCode::CREATED, Json(CreateBrandResponse { brand, admin })))
}

/// The caller's brand and its settings.
#[utoipa::path(get, path = "/api/v1/brand", tag = "brands", responses((status = 200, body = Brand)))]
async fn get_brand(State(state): State<AppState>, AgentAuth(caller): AgentAuth) -> ApiResult<Json<Brand>> {
    Ok(Json(state.store.brand(&caller.brand_id).await?.ok_or_else(|| ApiError::code(ErrorCode::BrandNotFound))?))
}

/// Brand settings change; absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BrandSettingsRequest {
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
}

/// Changes brand settings (admin).
#[utoipa::path(patch, path = "/api/v1/brand", request_body = BrandSettingsRequest, tag = "brands",
    responses((status = 200, body = Brand), (status = 400, body = ErrorBody)))]
async fn patch_brand(
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
    let patch = BrandPatch {
        name: request.name,
        csat_enabled: request.csat_enabled,
        retention_days: request.retention_days,
        agent_grace_secs: request.agent_grace_secs,
        default_skill_id: request.default_skill_id,
    };
    let brand = state.store.update_brand(&caller.brand_id, &patch).await?;
    state.engines.settings_changed(&brand);
    Ok(Json(brand))
}

// ----- apps and keys ---------------------------------------------------------------------

/// A new app.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateAppRequest {
    /// App ID; generated when absent.
    pub id: Option<String>,
    pub name: String,
    /// `in_app` (SDK) or `web` (widget).
    pub channel: String,
    /// Default true.
    pub allow_jwt: Option<bool>,
    /// Default false.
    pub allow_anonymous: Option<bool>,
    /// Required `iss` of consumer JWTs (needed when allow_jwt).
    pub jwt_issuer: Option<String>,
    /// Required `aud`; the app id when absent.
    pub jwt_audience: Option<String>,
    pub default_skill_id: Option<i64>,
}

async fn check_skill(state: &AppState, brand_id: &str, skill_id: Option<i64>) -> ApiResult<()> {
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
async fn create_app(
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
        brand_id: caller.brand_id,
        name: request.name,
        channel: request.channel,
        allow_jwt: request.allow_jwt.unwrap_or(true),
        allow_anonymous: request.allow_anonymous.unwrap_or(false),
        jwt_issuer: request.jwt_issuer,
        jwt_audience: request.jwt_audience,
        default_skill_id: request.default_skill_id,
    };
    Ok((StatusCode::CREATED, Json(state.store.create_app(&new, now_ms()).await?)))
}

/// The brand's apps.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", responses((status = 200, body = Vec<App>)))]
async fn list_apps(State(state): State<AppState>, AdminAuth(caller): AdminAuth) -> ApiResult<Json<Vec<App>>> {
    Ok(Json(state.store.apps(&caller.brand_id).await?))
}

/// One app.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}", tag = "apps", params(("app_id" = String, Path)),
    responses((status = 200, body = App), (status = 404, body = ErrorBody)))]
async fn get_app(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
) -> ApiResult<Json<App>> {
    Ok(Json(state.store.app(&caller.brand_id, &app_id).await?.ok_or_else(|| ApiError::code(ErrorCode::AppNotFound))?))
}

/// App change; absent fields keep their value, `null` clears optional ones.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AppPatchRequest {
    pub name: Option<String>,
    pub allow_jwt: Option<bool>,
    pub allow_anonymous: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    pub jwt_issuer: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub jwt_audience: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    pub default_skill_id: Option<Option<i64>>,
    /// Further skills a device of the app may ask to start in (`hello.skill`); replaces the
    /// list. At most 100.
    pub entry_skill_ids: Option<Vec<i64>>,
}

/// Changes an app (admin).
#[utoipa::path(patch, path = "/api/v1/apps/{app_id}", tag = "apps", params(("app_id" = String, Path)),
    request_body = AppPatchRequest, responses((status = 200, body = App), (status = 404, body = ErrorBody)))]
async fn patch_app(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
    Body(request): Body<AppPatchRequest>,
) -> ApiResult<Json<App>> {
    if let Some(name) = &request.name {
        check_len("name", name, 1, 200)?;
    }
    check_skill(&state, &caller.brand_id, request.default_skill_id.flatten()).await?;
    let patch = AppPatch {
        name: request.name,
        allow_jwt: request.allow_jwt,
        allow_anonymous: request.allow_anonymous,
        jwt_issuer: request.jwt_issuer,
        jwt_audience: request.jwt_audience,
        default_skill_id: request.default_skill_id,
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
    Ok(Json(app))
}

/// A public key for consumer JWTs.
#[derive(Debug, Deserialize, ToSchema)]
pub struct AddKeyRequest {
    /// `pem` (an RSA or P-256 public key) or `jwks` (a JWKS JSON document).
    pub format: String,
    pub material: String,
}

fn forget_app_keys(state: &AppState, app_id: &str) {
    state.app_keys.lock().unwrap_or_else(|p| p.into_inner()).remove(app_id);
}

/// Adds a public key to an app (admin). Bad keys are refused with `invalid_key`.
#[utoipa::path(post, path = "/api/v1/apps/{app_id}/keys", tag = "apps", params(("app_id" = String, Path)),
    request_body = AddKeyRequest, responses((status = 201, body = AppKey), (status = 400, body = ErrorBody)))]
async fn add_key(
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
    Ok((StatusCode::CREATED, Json(key)))
}

/// An app's keys.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}/keys", tag = "apps", params(("app_id" = String, Path)),
    responses((status = 200, body = Vec<AppKey>)))]
async fn list_keys(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
) -> ApiResult<Json<Vec<AppKey>>> {
    state.store.app(&caller.brand_id, &app_id).await?.ok_or_else(|| ApiError::code(ErrorCode::AppNotFound))?;
    Ok(Json(state.store.app_keys(&caller.brand_id, &app_id).await?))
}

/// Removes a key (admin).
#[utoipa::path(delete, path = "/api/v1/apps/{app_id}/keys/{key_id}", tag = "apps",
    params(("app_id" = String, Path), ("key_id" = i64, Path)), responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_key(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P((app_id, key_id)): P<(String, i64)>,
) -> ApiResult<StatusCode> {
    state.store.delete_app_key(&caller.brand_id, &app_id, key_id).await?;
    forget_app_keys(&state, &app_id);
    Ok(StatusCode::NO_CONTENT)
}

// ----- skills ----------------------------------------------------------------------------

/// A new skill.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateSkillRequest {
    pub name: String,
}

/// Creates a skill (admin).
#[utoipa::path(post, path = "/api/v1/skills", request_body = CreateSkillRequest, tag = "skills",
    responses((status = 201, body = Skill), (status = 409, body = ErrorBody)))]
async fn create_skill(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<CreateSkillRequest>,
) -> ApiResult<(StatusCode, Json<Skill>)> {
    check_len("name", &request.name, 1, 64)?;
    Ok((StatusCode::CREATED, Json(state.store.create_skill(&caller.brand_id, &request.name, now_ms()).await?)))
}

/// How a skill routes.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkillSettingsRequest {
    /// `assign` (straight to the least-loaded agent) or `offer` (ring one agent at a time).
    pub routing: Option<switchboard_store::SkillRouting>,
    /// Seconds an agent has to accept an offer: 5 to 300 (default 30).
    pub offer_timeout_secs: Option<i64>,
    /// The priority the skill's new conversations start with (default normal).
    pub default_priority: Option<switchboard_store::ConversationPriority>,
}

/// Changes how a skill routes (admin).
#[utoipa::path(patch, path = "/api/v1/skills/{skill_id}", tag = "skills", params(("skill_id" = i64, Path)),
    request_body = SkillSettingsRequest, responses((status = 200, body = Skill), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn patch_skill(
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
        routing: request.routing,
        offer_timeout_secs: request.offer_timeout_secs,
        default_priority: request.default_priority,
    };
    let skill = state.store.update_skill(&caller.brand_id, skill_id, &patch).await?;
    state.engines.skills_changed(&caller.brand_id);
    Ok(Json(skill))
}

/// The brand's skills.
#[utoipa::path(get, path = "/api/v1/skills", tag = "skills", responses((status = 200, body = Vec<Skill>)))]
async fn list_skills(State(state): State<AppState>, AgentAuth(caller): AgentAuth) -> ApiResult<Json<Vec<Skill>>> {
    Ok(Json(state.store.skills(&caller.brand_id).await?))
}

/// Deletes a skill (admin).
#[utoipa::path(delete, path = "/api/v1/skills/{skill_id}", tag = "skills", params(("skill_id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_skill(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(skill_id): P<i64>,
) -> ApiResult<StatusCode> {
    state.store.delete_skill(&caller.brand_id, skill_id).await?;
    state.engines.skills_changed(&caller.brand_id);
    for user in state.store.users(&caller.brand_id).await? {
        state.engines.agent_changed(&user);
    }
    Ok(StatusCode::NO_CONTENT)
}

// ----- users -----------------------------------------------------------------------------

/// A new agent, manager or admin.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateUserRequest {
    pub email: String,
    pub name: String,
    pub role: Role,
    /// At least 10 characters.
    pub password: String,
    /// Maximum concurrent conversations; default 3.
    pub max_concurrent: Option<i64>,
    /// Skill ids.
    #[serde(default)]
    pub skills: Vec<i64>,
}

/// Creates a user (admin).
#[utoipa::path(post, path = "/api/v1/users", request_body = CreateUserRequest, tag = "users",
    responses((status = 201, body = User), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<CreateUserRequest>,
) -> ApiResult<(StatusCode, Json<User>)> {
    check_email(&request.email)?;
    check_len("name", &request.name, 1, 200)?;
    auth::check_password_policy(&request.password)?;
    let max_concurrent = request.max_concurrent.unwrap_or(3);
    check_capacity(max_concurrent)?;
    let new = NewUser {
        brand_id: caller.brand_id,
        email: request.email,
        name: request.name,
        role: request.role,
        password_hash: auth::hash_password(&request.password)?,
        max_concurrent,
        skills: request.skills,
    };
    let user = state.store.create_user(&new, now_ms()).await.map_err(|error| match error {
        switchboard_store::StoreError::NotFound => ApiError::bad_request("a skill id does not exist in this brand"),
        switchboard_store::StoreError::Conflict(_) => {
            ApiError::new(ErrorCode::Conflict, "a user with this email exists")
        }
        other => other.into(),
    })?;
    state.engines.agent_changed(&user);
    Ok((StatusCode::CREATED, Json(user)))
}

/// The brand's users (manager).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", responses((status = 200, body = Vec<User>)))]
async fn list_users(State(state): State<AppState>, ManagerAuth(caller): ManagerAuth) -> ApiResult<Json<Vec<User>>> {
    Ok(Json(state.store.users(&caller.brand_id).await?))
}

/// One user (manager).
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users", params(("user_id" = i64, Path)),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(state): State<AppState>,
    ManagerAuth(caller): ManagerAuth,
    P(user_id): P<i64>,
) -> ApiResult<Json<User>> {
    Ok(Json(state.store.user(&caller.brand_id, user_id).await?.ok_or_else(|| ApiError::code(ErrorCode::NotFound))?))
}

/// User change; absent fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserPatchRequest {
    pub name: Option<String>,
    pub role: Option<Role>,
    pub password: Option<String>,
    pub max_concurrent: Option<i64>,
    pub skills: Option<Vec<i64>>,
    /// Disabled users cannot log in; their sessions end.
    pub disabled: Option<bool>,
}

/// Changes a user (admin).
#[utoipa::path(patch, path = "/api/v1/users/{user_id}", tag = "users", params(("user_id" = i64, Path)),
    request_body = UserPatchRequest, responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
async fn patch_user(
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
            auth::check_password_policy(password)?;
            Some(auth::hash_password(password)?)
        }
        None => None,
    };
    let patch = UserPatch {
        name: request.name,
        role: request.role,
        password_hash,
        max_concurrent: request.max_concurrent,
        skills: request.skills,
        disabled: request.disabled,
    };
    let changes_login = patch.password_hash.is_some() || patch.disabled == Some(true);
    let user = state.store.update_user(&caller.brand_id, user_id, &patch).await?;
    // The demo's credentials file must not keep showing a password that no longer works.
    if let Some(path) = &state.config.demo_credentials
        && changes_login
        && user.brand_id == crate::seed::DEMO_BRAND
        && let Err(error) = crate::seed::forget_demo_password(path, &user.email)
    {
        tracing::warn!(%error, "could not update the demo credentials file");
    }
    state.engines.agent_changed(&user);
    Ok(Json(user))
}

// ----- API tokens ------------------------------------------------------------------------

/// A new API token.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateTokenRequest {
    pub name: String,
    /// Role the token acts with; default admin.
    pub role: Option<Role>,
}

/// The created token; the secret is shown only here.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreateTokenResponse {
    /// Send as `Authorization: Bearer …`.
    pub token: String,
    pub info: ApiToken,
}

/// Creates an API token (admin).
#[utoipa::path(post, path = "/api/v1/tokens", request_body = CreateTokenRequest, tag = "tokens",
    responses((status = 201, body = CreateTokenResponse)))]
async fn create_token(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    Body(request): Body<CreateTokenRequest>,
) -> ApiResult<(StatusCode, Json<CreateTokenResponse>)> {
    check_len("name", &request.name, 1, 200)?;
    let role = request.role.unwrap_or(Role::Admin);
    let token = auth::new_secret(auth::API_TOKEN_PREFIX);
    let info = state
        .store
        .create_api_token(&caller.brand_id, &request.name, role, &auth::hash_secret(&token), caller.user_id, now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(CreateTokenResponse { token, info })))
}

/// The brand's API tokens (admin).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", responses((status = 200, body = Vec<ApiToken>)))]
async fn list_tokens(State(state): State<AppState>, AdminAuth(caller): AdminAuth) -> ApiResult<Json<Vec<ApiToken>>> {
    Ok(Json(state.store.api_tokens(&caller.brand_id).await?))
}

/// Revokes an API token (admin).
#[utoipa::path(delete, path = "/api/v1/tokens/{token_id}", tag = "tokens", params(("token_id" = i64, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_token(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(token_id): P<i64>,
) -> ApiResult<StatusCode> {
    state.store.delete_api_token(&caller.brand_id, token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----- conversations ---------------------------------------------------------------------

/// Filters of the conversation list.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ConversationQuery {
    /// `open` or `closed`.
    pub status: Option<String>,
    /// Only this agent's (agents always see only their own).
    pub agent_id: Option<i64>,
    pub skill_id: Option<i64>,
    pub consumer_id: Option<i64>,
    /// Opened at or after (ms since epoch).
    pub from: Option<i64>,
    /// Opened before (ms since epoch).
    pub to: Option<i64>,
    /// `next` of the previous page.
    pub cursor: Option<String>,
    /// 1–500, default 50.
    pub limit: Option<u32>,
}

/// One page of conversations, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConversationList {
    pub conversations: Vec<Conversation>,
    /// Cursor of the next page; absent on the last.
    pub next: Option<String>,
}

/// Lists conversations: managers see the brand's; agents their own, and (with `consumer_id`) the
/// whole history of a consumer whose open conversation they hold.
#[utoipa::path(get, path = "/api/v1/conversations", tag = "conversations", params(ConversationQuery),
    responses((status = 200, body = ConversationList), (status = 400, body = ErrorBody)))]
async fn list_conversations(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    Q(query): Q<ConversationQuery>,
) -> ApiResult<Json<ConversationList>> {
    let status =
        match query.status.as_deref() {
            Some(text) => Some(ConversationStatus::parse(text).ok_or_else(|| {
                ApiError::bad_request(format!("status must be \"open\" or \"closed\" (got {text:?})"))
            })?),
            None => None,
        };
    let limit = query.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1 to 500 (got {limit})")));
    }
    let after = match query.cursor.as_deref() {
        Some(text) => Some(PageCursor::decode(text).ok_or_else(|| ApiError::bad_request("cursor is not valid"))?),
        None => None,
    };
    // Agents list their own conversations, and the whole history of a consumer whose open
    // conversation they hold (what the workspace shows beside it).
    let serving = match query.consumer_id {
        Some(consumer_id) if caller.role < Role::Manager => state
            .store
            .open_conversation(&caller.brand_id, consumer_id)
            .await?
            .is_some_and(|open| open.agent_id == Some(caller.user_id)),
        _ => false,
    };
    let agent_id = if caller.role >= Role::Manager || serving { query.agent_id } else { Some(caller.user_id) };
    let filter = ConversationFilter {
        status,
        consumer_id: query.consumer_id,
        agent_id,
        skill_id: query.skill_id,
        opened_from: query.from,
        opened_to: query.to,
    };
    let page = state.store.conversations(&caller.brand_id, &filter, after, limit).await?;
    Ok(Json(ConversationList { conversations: page.conversations, next: page.next.map(PageCursor::encode) }))
}

/// Message paging of one conversation.
#[derive(Debug, Deserialize, IntoParams)]
pub struct MessagesQuery {
    /// Messages after this seq (default 0: from the start).
    pub after: Option<i64>,
    /// Instead of `after`: the last `limit` messages before this seq (paging backwards from
    /// the newest, for long histories: start with `last_seq + 1`).
    pub before: Option<i64>,
    /// 1–1000, default 200.
    pub limit: Option<u32>,
}

/// A conversation with its consumer and messages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConversationDetail {
    pub conversation: Conversation,
    pub consumer: Option<Consumer>,
    pub messages: Vec<Message>,
    /// More messages follow: ask again with `after` = the last seq (or, when paging with
    /// `before`, earlier messages exist: ask with `before` = the first seq).
    pub more: bool,
}

/// One conversation with its messages. Agents may read conversations assigned to them and the
/// past conversations of consumers they are serving; managers any of the brand.
#[utoipa::path(get, path = "/api/v1/conversations/{conversation_id}", tag = "conversations",
    params(("conversation_id" = i64, Path), MessagesQuery),
    responses((status = 200, body = ConversationDetail), (status = 404, body = ErrorBody)))]
async fn get_conversation(
    State(state): State<AppState>,
    AgentAuth(caller): AgentAuth,
    P(conversation_id): P<i64>,
    Q(query): Q<MessagesQuery>,
) -> ApiResult<Json<ConversationDetail>> {
    let limit = query.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(format!("limit must be 1 to 1000 (got {limit})")));
    }
    let conversation = state
        .store
        .conversation(&caller.brand_id, conversation_id)
        .await?
        .ok_or_else(|| ApiError::code(ErrorCode::ConversationNotFound))?;
    // Not revealing whether a conversation the caller may not read exists.
    if !state.staff_may_read(caller.user_id, caller.role, &conversation).await? {
        return Err(ApiError::code(ErrorCode::ConversationNotFound));
    }
    let consumer = state.store.consumer(&caller.brand_id, conversation.consumer_id).await?;
    let (messages, more) = match (query.after, query.before) {
        (Some(_), Some(_)) => return Err(ApiError::bad_request("give either after or before, not both")),
        (None, Some(before)) => state.store.messages_before(&caller.brand_id, conversation_id, before, limit).await?,
        (after, None) => {
            let mut messages =
                state.store.messages_after(&caller.brand_id, conversation_id, after.unwrap_or(0), limit + 1).await?;
            let more = messages.len() > limit as usize;
            messages.truncate(limit as usize);
            (messages, more)
        }
    };
    Ok(Json(ConversationDetail {
        conversation,
        consumer,
        messages: messages.iter().map(|m| m.to_wire()).collect(),
        more,
    }))
}

// ----- operations ------------------------------------------------------------------------

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: the store answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, body = String), (status = 503, body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    if *state.shutdown.borrow() {
        return Err(ApiError::new(ErrorCode::Unavailable, "shutting down"));
    }
    state.store.ping().await.map_err(|error| {
        tracing::warn!(%error, "readiness check failed");
        ApiError::new(ErrorCode::Unavailable, "storage is not answering")
    })?;
    Ok("ready")
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, body = String)))]
async fn metrics_text(State(state): State<AppState>) -> Response {
    match &state.metrics {
        Some(handle) => {
            handle.run_upkeep();
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()).into_response()
        }
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics recorder not installed").into_response(),
    }
}

async fn count_requests(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    metrics::counter!(crate::metrics::HTTP_REQUESTS, "status" => status_class(response.status())).increment(1);
    response
}

/// The `status` label of a response: its class. A WebSocket upgrade answers
/// `101 Switching Protocols`, which is `1xx`: normal traffic, never an error.
fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

/// The OpenAPI document of the REST API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard API", description = "REST API of Switchboard. Errors are {code, message}; codes in docs/errors.md. WebSocket protocol: docs/protocol.md."),
    paths(
        login, logout, me, create_brand, get_brand, patch_brand, create_app, list_apps, get_app, patch_app, add_key,
        list_keys, delete_key, create_skill, list_skills, patch_skill, delete_skill, create_user, list_users, get_user, patch_user,
        create_token, list_tokens, delete_token, list_conversations, get_conversation, crate::floor::inbox,
        crate::floor::roster, crate::floor::transfer, crate::floor::set_priority, crate::floor::queue,
        crate::floor::dashboard, crate::floor::report,
        crate::floor::report_csv, healthz, readyz, metrics_text
    ),
    components(schemas(ErrorBody, ConversationStatus)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/brands", post(create_brand))
        .route("/api/v1/brand", get(get_brand).patch(patch_brand))
        .route("/api/v1/apps", get(list_apps).post(create_app))
        .route("/api/v1/apps/{app_id}", get(get_app).patch(patch_app))
        .route("/api/v1/apps/{app_id}/keys", get(list_keys).post(add_key))
        .route("/api/v1/apps/{app_id}/keys/{key_id}", axum::routing::delete(delete_key))
        .route("/api/v1/skills", get(list_skills).post(create_skill))
        .route("/api/v1/skills/{skill_id}", axum::routing::delete(delete_skill).patch(patch_skill))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{user_id}", get(get_user).patch(patch_user))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{token_id}", axum::routing::delete(delete_token))
        .route("/api/v1/conversations", get(list_conversations))
        .route("/api/v1/conversations/{conversation_id}", get(get_conversation))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/v1/consumer", get(ws::consumer_endpoint))
        .route("/v1/agent", get(ws::agent_endpoint))
        .merge(crate::floor::routes())
        .route("/", get(crate::web::index))
        .route("/assets/{*path}", get(crate::web::asset))
        .fallback(not_found)
        .layer(middleware::from_fn(count_requests))
        .with_state(state);
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
