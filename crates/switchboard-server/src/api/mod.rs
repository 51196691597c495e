//! The REST API (`/api/v1`), health and metrics endpoints, and the OpenAPI document served
//! at `/openapi.json` with Swagger UI at `/docs`. Every handler takes a role extractor from
//! `auth` and scopes every store call to the caller's brand.
//!
//! This module holds what every handler shares (body, query and path extractors that answer
//! `{code, message}`, validation helpers), the operations endpoints, the OpenAPI document and
//! the router; the handlers live by resource: `session`, `brands`, `apps`, `skills`, `staff`,
//! `conversations`, `history` (the reporting API's search), `export` (transcripts), `audit` (the audit log), `consumers` (erasure), `identity` (each app's identity provider: JWKS URL, OAuth2 code flow), `push` (each app's push settings, the test push), `retention` (status and purge now) (and `crate::floor` for running
//! the floor), and `types`: the response types
//! (converted from store rows) that the OpenAPI document describes.

mod apps;
mod audit;
mod automation;
mod brands;
mod consumers;
mod conversations;
mod export;
pub(crate) mod history;
mod hours;
mod identity;
pub mod limits;
mod masking;
mod push;
mod retention;
mod session;
mod skills;
mod staff;
pub mod types;

use apps::*;
use audit::*;
use automation::*;
use brands::*;
use consumers::*;
use conversations::*;
use export::*;
use history::*;
use hours::*;
use identity::*;
use masking::*;
use push::*;
use retention::*;
use session::*;
use skills::*;
use staff::*;

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
use serde_json::{Value, json};
use switchboard_protocol::{ConversationStatus, ErrorCode, Message};
use switchboard_store::{AppPatch, BrandPatch, ConversationFilter, NewApp, NewBrand, NewUser, PageCursor, UserPatch};
use types::{ApiToken, App, AppKey, Brand, Consumer, Conversation, Role, Skill, User};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::abuse::ClientAddress;
use crate::audit::AuditActor;
use crate::auth::{self, AdminAuth, AgentAuth, ManagerAuth, OperatorAuth};
use crate::desk_ops::{self, Actor};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::{AppState, jwt, now_ms, ws};

/// Largest REST request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// JSON body extractor whose rejection is an [`ApiError`]: `body_too_large` over
/// [`MAX_BODY_BYTES`], else `bad_request` naming the problem — including a string or list
/// over the limit its schema documents (see [`limits`]), checked before the body is decoded.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + ToSchema + 'static, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<serde_json::Value>::from_request(req, state).await.map_err(json_rejection)?;
        crate::text::json_nul_free(&value)?;
        limits::limits_of::<T>().check(&value)?;
        serde_json::from_value(value).map(Body).map_err(|error| ApiError::bad_request(error.to_string()))
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
        );
    }
    ApiError::bad_request(rejection.body_text())
}

/// Query-string extractor with [`ApiError`] rejections.
#[derive(Debug)]
pub struct Q<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        encoded_nul_free("query string", parts.uri.query().unwrap_or(""))?;
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
        encoded_nul_free("path", parts.uri.path())?;
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| P(value))
            .map_err(|rejection: PathRejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Refuses a URL part holding an encoded NUL (`%00`): see [`crate::text`].
fn encoded_nul_free(part: &str, raw: &str) -> ApiResult<()> {
    if raw.contains("%00") {
        return Err(ApiError::bad_request(format!(
            "the {part} contains an encoded NUL character (%00), which is not allowed in text"
        )));
    }
    Ok(())
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

/// A JSON object without its `null` members: the fields a change request did not touch,
/// left out of its audit entry.
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

fn random_id(prefix: &str) -> String {
    let secret = auth::new_secret("");
    let tail: String =
        secret.chars().filter(|c| c.is_ascii_alphanumeric()).map(|c| c.to_ascii_lowercase()).take(12).collect();
    format!("{prefix}{tail}")
}

// ----- operations ------------------------------------------------------------------------

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, body = String)))]
async fn healthz() -> &'static str {
    "ok"
}

/// How long readiness waits for the store.
const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Readiness: the store answers (within 2 s).
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()), responses((status = 200, body = String), (status = 503, body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    if *state.shutdown.borrow() {
        return Err(ApiError::new(ErrorCode::Unavailable, "shutting down"));
    }
    // A load balancer's health check times out after a few seconds: answer within 2 s (the
    // pool alone would wait 10 s for a connection while the database is down).
    match tokio::time::timeout(READY_WAIT, state.store.ping()).await {
        Ok(Ok(())) => Ok("ready"),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check failed");
            Err(ApiError::new(ErrorCode::Unavailable, "storage is not answering"))
        }
        Err(_) => {
            tracing::warn!("readiness check failed: the store did not answer within 2 s");
            Err(ApiError::new(ErrorCode::Unavailable, "storage did not answer within 2 s"))
        }
    }
}

/// Prometheus metrics. With `metrics_token` configured, only for `Authorization: Bearer <token>`.
#[utoipa::path(get, path = "/metrics", tag = "operations", security((), ("bearer" = [])), responses((status = 200, body = String), (status = 401, body = ErrorBody)))]
async fn metrics_text(State(state): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(expected) = &state.config.metrics_token {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim);
        if !presented.is_some_and(|presented| auth::same_secret(presented, expected)) {
            return ApiError::new(ErrorCode::Unauthenticated, "/metrics needs Authorization: Bearer <metrics_token>")
                .into_response();
        }
    }
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

/// Every error answer is `{code, message}`: the ones axum writes itself with an empty body
/// (405 for a method a route does not take, 413, …) get the body of their code.
async fn json_error_bodies(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if status.as_u16() < 400 || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // What axum or a layer said in plain text, if anything (bounded: these are one line).
    let said = axum::body::to_bytes(body, 1024)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .filter(|text| !text.trim().is_empty());
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("this endpoint does not take {method}; the Allow header lists the methods it takes"),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
        ),
        StatusCode::NOT_FOUND => ApiError::new(ErrorCode::NotFound, "no such endpoint"),
        StatusCode::SERVICE_UNAVAILABLE => ApiError::new(ErrorCode::Unavailable, said.unwrap_or_default()),
        status if status.is_server_error() => ApiError::code(ErrorCode::Internal),
        _ => ApiError::new(
            ErrorCode::BadRequest,
            said.unwrap_or_else(|| status.canonical_reason().unwrap_or("bad request").to_owned()),
        ),
    };
    let mut fresh = error.into_response();
    // Keep what the status needs (Allow on a 405), not the empty body's length or type.
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    for (name, value) in parts.headers.iter() {
        fresh.headers_mut().insert(name.clone(), value.clone());
    }
    *fresh.status_mut() = status;
    fresh
}

/// The OpenAPI document of the REST API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard API", description = "REST API of Switchboard. Every error is {code, message}; codes in docs/errors.md. Request bodies are JSON, at most 1 MiB (413 body_too_large beyond); every string and list in a request body has its limit in its schema (maxLength in characters, maxItems), refused beyond with bad_request naming the field. WebSocket protocol: docs/protocol.md."),
    paths(
        login, logout, me, change_password, create_brand, get_brand, patch_brand, create_app, list_apps, get_app, patch_app, add_key,
        list_keys, delete_key, create_skill, list_skills, patch_skill, delete_skill, create_user, list_users, get_user, patch_user,
        create_token, list_tokens, delete_token, list_automatic_messages, put_automatic_message,
        delete_automatic_message, preview_automatic_message, get_brand_hours, put_brand_hours, get_skill_hours,
        put_skill_hours, hours_status, get_masking, put_masking, get_push_settings, put_fcm_settings, get_identity, put_identity,
        delete_fcm_settings, put_apns_settings, delete_apns_settings, test_push, list_conversations, get_conversation, crate::floor::inbox,
        crate::floor::roster, crate::floor::transfer, crate::floor::close_conversation, crate::floor::set_priority, crate::floor::queue,
        crate::floor::dashboard, crate::floor::report,
        crate::floor::report_csv, search_history, export_conversations, conversation_transcript, audit_log, erase_consumer, get_retention, start_purge, healthz, readyz, metrics_text
    ),
    components(schemas(ErrorBody, ConversationStatus)),
    modifiers(&BearerAuth, &CommonErrors),
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

/// Documents the error answers every operation of a kind can give, beside those it lists
/// itself: `401` and `403` for those that need a bearer token (no valid credentials; the
/// role, or a cookie request from a foreign origin), `400` for those that take parameters or a
/// body, `404` for those with an id in the path, `413` for those that take a body. Each is
/// `{code, message}`. So a client (and schemathesis' `status_code_conformance`) can rely on
/// the document listing every status an operation answers with.
struct CommonErrors;

impl utoipa::Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for operation in operations.into_iter().flatten() {
                let has_body = operation.request_body.is_some();
                let has_parameters = operation.parameters.as_ref().is_some_and(|parameters| !parameters.is_empty());
                let mut add = |status: &str, description: &str| {
                    operation.responses.responses.entry(status.to_owned()).or_insert_with(|| error(description).into());
                };
                // `None`: the document's own requirement, a bearer token.
                if operation.security.is_none() {
                    add("401", "No valid credentials (`unauthenticated`), or the session ended (`session_expired`).");
                    add(
                        "403",
                        "The caller's role does not allow this (`forbidden`), or a cookie request came from a \
                         foreign origin (`origin_refused`).",
                    );
                }
                if has_body || has_parameters || path.contains('{') {
                    add("400", "A parameter or the body is not valid (`bad_request` naming what and the limit).");
                }
                if path.contains('{') {
                    add("404", "No such resource in the caller's brand.");
                }
                if has_body {
                    add("413", "The body is larger than 1 MiB (`body_too_large`).");
                }
            }
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/me/password", axum::routing::put(change_password))
        .route("/api/v1/brands", post(create_brand))
        .route("/api/v1/brand", get(get_brand).patch(patch_brand))
        .route("/api/v1/apps", get(list_apps).post(create_app))
        .route("/api/v1/apps/{app_id}", get(get_app).patch(patch_app))
        .route("/api/v1/apps/{app_id}/keys", get(list_keys).post(add_key))
        .route("/api/v1/apps/{app_id}/keys/{key_id}", axum::routing::delete(delete_key))
        .route("/api/v1/apps/{app_id}/identity", get(get_identity).put(put_identity))
        .route("/api/v1/apps/{app_id}/push", get(get_push_settings))
        .route("/api/v1/apps/{app_id}/push/fcm", axum::routing::put(put_fcm_settings).delete(delete_fcm_settings))
        .route("/api/v1/apps/{app_id}/push/apns", axum::routing::put(put_apns_settings).delete(delete_apns_settings))
        .route("/api/v1/apps/{app_id}/push/test", post(test_push))
        .route("/api/v1/skills", get(list_skills).post(create_skill))
        .route("/api/v1/skills/{skill_id}", axum::routing::delete(delete_skill).patch(patch_skill))
        .route("/api/v1/users", get(list_users).post(create_user))
        .route("/api/v1/users/{user_id}", get(get_user).patch(patch_user))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{token_id}", axum::routing::delete(delete_token))
        .route("/api/v1/automatic-messages", get(list_automatic_messages).put(put_automatic_message))
        .route("/api/v1/brand/hours", get(get_brand_hours).put(put_brand_hours))
        .route("/api/v1/brand/masking", get(get_masking).put(put_masking))
        .route("/api/v1/skills/{skill_id}/hours", get(get_skill_hours).put(put_skill_hours))
        .route("/api/v1/hours/status", get(hours_status))
        .route("/api/v1/automatic-messages/preview", post(preview_automatic_message))
        .route("/api/v1/automatic-messages/{message_id}", axum::routing::delete(delete_automatic_message))
        .route("/api/v1/conversations", get(list_conversations))
        .route("/api/v1/conversations/{conversation_id}", get(get_conversation))
        .route("/api/v1/reports/conversations", get(search_history))
        .route("/api/v1/exports/conversations", get(export_conversations))
        .route("/api/v1/audit", get(audit_log))
        .route("/api/v1/consumers/erase", post(erase_consumer))
        .route("/api/v1/retention", get(get_retention))
        .route("/api/v1/retention/purge", post(start_purge))
        .route("/api/v1/conversations/{conversation_id}/transcript", get(conversation_transcript))
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
        .with_state(state.clone());
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Every body, on every route: in full within `body_read_timeout`, within the limit.
        .layer(middleware::from_fn_with_state(state.clone(), crate::abuse::body_deadline))
        .layer(middleware::from_fn(json_error_bodies))
        // Outermost: every answer, whoever made it, gets the security headers.
        .layer(middleware::from_fn_with_state(state, crate::headers::add))
}
