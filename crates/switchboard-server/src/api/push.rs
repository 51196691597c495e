//! Each app's push settings (FCM and APNs credentials) and the test push. Admins only. The
//! secrets (the service account file, the .p8 key) are stored and never returned: responses
//! say whether they are set, with the non-secret identifiers, and carry
//! `Cache-Control: no-store`. Settings are checked (the key parses and signs) before they are
//! saved, and apply to the next push on this node (within seconds on others).

use switchboard_store::{ApnsSettings, FcmSettings};

use super::types::{ApnsEnvironment, PushSettings, TestPushResult};
use super::*;
use crate::push::provider::Outcome;
use crate::push::{apns::ApnsApp, fcm::FcmApp};

/// Longest device token a test push takes (as the `push` frame).
const MAX_DEVICE_TOKEN_BYTES: usize = 4096;

/// A response no cache keeps.
type NoStore<T> = ([(header::HeaderName, HeaderValue); 1], Json<T>);

fn no_store<T>(body: T) -> NoStore<T> {
    ([(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(body))
}

async fn app_exists(state: &AppState, brand_id: &str, app_id: &str) -> ApiResult<()> {
    state.store.app(brand_id, app_id).await?.ok_or_else(|| ApiError::code(ErrorCode::AppNotFound))?;
    Ok(())
}

/// The app's push settings (admin): what is set, never a secret.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}/push", tag = "push", params(("app_id" = String, Path)),
    responses((status = 200, body = PushSettings), (status = 404, body = ErrorBody)))]
pub(super) async fn get_push_settings(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
) -> ApiResult<NoStore<PushSettings>> {
    app_exists(&state, &caller.brand_id, &app_id).await?;
    let stored = state.store.push_settings(&caller.brand_id, &app_id).await?;
    Ok(no_store(PushSettings::of(&app_id, stored.as_ref())))
}

/// FCM settings. The key file is needed the first time; leave it out to keep the stored one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FcmSettingsRequest {
    /// The Firebase project; the key file's `project_id` when absent.
    #[schema(max_length = 100)]
    pub project_id: Option<String>,
    /// The service account's key file (JSON, at most 16 KiB), as downloaded from the Google
    /// Cloud console.
    #[schema(max_length = 16384)]
    pub service_account_json: Option<String>,
}

/// Sets the app's FCM settings (admin).
#[utoipa::path(put, path = "/api/v1/apps/{app_id}/push/fcm", tag = "push", params(("app_id" = String, Path)),
    request_body = FcmSettingsRequest,
    responses((status = 200, body = PushSettings), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn put_fcm_settings(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
    Body(request): Body<FcmSettingsRequest>,
) -> ApiResult<NoStore<PushSettings>> {
    app_exists(&state, &caller.brand_id, &app_id).await?;
    let stored = state.store.push_settings(&caller.brand_id, &app_id).await?.and_then(|s| s.fcm);
    let service_account_json = match (request.service_account_json, &stored) {
        (Some(json), _) => json,
        (None, Some(stored)) => stored.service_account_json.clone(),
        (None, None) => return Err(ApiError::bad_request("service_account_json is required to set up FCM")),
    };
    let account = crate::push::fcm::ServiceAccount::parse(&service_account_json).map_err(ApiError::bad_request)?;
    let project_id = request
        .project_id
        .map(|id| id.trim().to_owned())
        .or_else(|| account.project_id.clone())
        .or_else(|| stored.map(|s| s.project_id))
        .ok_or_else(|| ApiError::bad_request("project_id is required (the key file names none)"))?;
    let settings = FcmSettings { project_id, service_account_json };
    FcmApp::new(&settings).map_err(ApiError::bad_request)?;
    let saved = state.store.set_fcm_settings(&caller.brand_id, &app_id, Some(&settings), now_ms()).await?;
    tracing::info!(brand_id = %caller.brand_id, app_id, project_id = %settings.project_id, "FCM settings saved");
    Ok(settings_changed(&state, &caller.brand_id, app_id, &saved))
}

/// Removes the app's FCM settings (admin): its Android devices get no pushes.
#[utoipa::path(delete, path = "/api/v1/apps/{app_id}/push/fcm", tag = "push", params(("app_id" = String, Path)),
    responses((status = 200, body = PushSettings), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_fcm_settings(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
) -> ApiResult<NoStore<PushSettings>> {
    app_exists(&state, &caller.brand_id, &app_id).await?;
    let saved = state.store.set_fcm_settings(&caller.brand_id, &app_id, None, now_ms()).await?;
    Ok(settings_changed(&state, &caller.brand_id, app_id, &saved))
}

/// APNs token-authentication settings. The .p8 key is needed the first time; leave it out to
/// keep the stored one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApnsSettingsRequest {
    /// The key's id (10 characters).
    #[schema(max_length = 10)]
    pub key_id: String,
    /// The developer team id (10 characters).
    #[schema(max_length = 10)]
    pub team_id: String,
    /// The iOS app's bundle id.
    #[schema(max_length = 155)]
    pub bundle_id: String,
    /// Default `production`.
    pub environment: Option<ApnsEnvironment>,
    /// The .p8 file's text (a P-256 private key in PEM).
    #[schema(max_length = 4096)]
    pub private_key: Option<String>,
}

/// Sets the app's APNs settings (admin).
#[utoipa::path(put, path = "/api/v1/apps/{app_id}/push/apns", tag = "push", params(("app_id" = String, Path)),
    request_body = ApnsSettingsRequest,
    responses((status = 200, body = PushSettings), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn put_apns_settings(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
    Body(request): Body<ApnsSettingsRequest>,
) -> ApiResult<NoStore<PushSettings>> {
    app_exists(&state, &caller.brand_id, &app_id).await?;
    let stored = state.store.push_settings(&caller.brand_id, &app_id).await?.and_then(|s| s.apns);
    let private_key = match (request.private_key, stored) {
        (Some(key), _) => key,
        (None, Some(stored)) => stored.private_key,
        (None, None) => return Err(ApiError::bad_request("private_key (the .p8 file) is required to set up APNs")),
    };
    let settings = ApnsSettings {
        key_id: request.key_id.trim().to_owned(),
        team_id: request.team_id.trim().to_owned(),
        bundle_id: request.bundle_id.trim().to_owned(),
        private_key,
        environment: request.environment.unwrap_or_default().into(),
    };
    ApnsApp::new(&settings).map_err(ApiError::bad_request)?;
    let saved = state.store.set_apns_settings(&caller.brand_id, &app_id, Some(&settings), now_ms()).await?;
    tracing::info!(brand_id = %caller.brand_id, app_id, key_id = %settings.key_id, "APNs settings saved");
    Ok(settings_changed(&state, &caller.brand_id, app_id, &saved))
}

/// Removes the app's APNs settings (admin): its iOS devices get no pushes.
#[utoipa::path(delete, path = "/api/v1/apps/{app_id}/push/apns", tag = "push", params(("app_id" = String, Path)),
    responses((status = 200, body = PushSettings), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_apns_settings(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
) -> ApiResult<NoStore<PushSettings>> {
    app_exists(&state, &caller.brand_id, &app_id).await?;
    let saved = state.store.set_apns_settings(&caller.brand_id, &app_id, None, now_ms()).await?;
    Ok(settings_changed(&state, &caller.brand_id, app_id, &saved))
}

/// Tells the fleet that an app's push settings changed (every node's senders are rebuilt) and
/// answers with what is stored now.
fn settings_changed(
    state: &AppState,
    brand_id: &str,
    app_id: String,
    saved: &switchboard_store::PushSettings,
) -> NoStore<PushSettings> {
    let answer = PushSettings::of(&app_id, Some(saved));
    crate::fleet::changed(state, crate::fleet::Changed::PushSettings { brand_id: brand_id.to_owned(), app_id });
    no_store(answer)
}

/// A test push to one device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestPushRequest {
    /// `fcm` or `apns`.
    #[schema(max_length = 8)]
    pub provider: String,
    /// The device's push token (the app logs it, or the SDK's `register_push_token` got it).
    #[schema(max_length = 4096)]
    pub token: String,
}

/// Sends a test notification to one device through the app's current settings and reports
/// the provider's answer (admin). The token is not registered, and not removed whatever the
/// answer.
#[utoipa::path(post, path = "/api/v1/apps/{app_id}/push/test", tag = "push", params(("app_id" = String, Path)),
    request_body = TestPushRequest,
    responses((status = 200, body = TestPushResult), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn test_push(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
    Body(request): Body<TestPushRequest>,
) -> ApiResult<NoStore<TestPushResult>> {
    app_exists(&state, &caller.brand_id, &app_id).await?;
    if !matches!(request.provider.as_str(), "fcm" | "apns") {
        return Err(ApiError::bad_request(format!(
            "provider must be \"fcm\" or \"apns\" (got {:?})",
            request.provider
        )));
    }
    let token = request.token.trim();
    if token.is_empty() || token.len() > MAX_DEVICE_TOKEN_BYTES {
        return Err(ApiError::bad_request(format!(
            "token must be 1 to {MAX_DEVICE_TOKEN_BYTES} bytes (got {})",
            token.len()
        )));
    }
    let stored = state.store.push_settings(&caller.brand_id, &app_id).await?;
    let configured = match request.provider.as_str() {
        "fcm" => stored.as_ref().is_some_and(|s| s.fcm.is_some()),
        _ => stored.as_ref().is_some_and(|s| s.apns.is_some()),
    };
    if !configured {
        return Err(ApiError::bad_request(format!(
            "the app has no {} settings: set them up first",
            if request.provider == "fcm" { "FCM" } else { "APNs" }
        )));
    }
    let answer = state.push.send_test(&caller.brand_id, &app_id, &request.provider, token).await?;
    let outcome = match answer.outcome {
        Outcome::Sent => "sent",
        Outcome::Unregistered => "unregistered",
        Outcome::Retry { .. } => "retry",
        Outcome::Failed(_) => "failed",
    };
    Ok(no_store(TestPushResult {
        provider: request.provider,
        sent: answer.outcome == Outcome::Sent,
        outcome: outcome.to_owned(),
        status: answer.status,
        reason: answer.reason,
    }))
}
