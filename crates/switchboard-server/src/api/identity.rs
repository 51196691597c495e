//! Each app's link to the brand's identity provider (admins): the JWKS URL its consumer
//! tokens' keys are fetched from, and the OAuth2 authorization code flow (token endpoint,
//! client id and secret, redirect URI). The client secret is stored and never returned: the
//! answer says whether one is set. A change applies to the next `hello` on this node.

use switchboard_store::{CodeFlowSettings, IdentitySettings};

use super::*;

/// The app's identity-provider settings, as the API shows them (never the secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IdentityProvider {
    pub app_id: String,
    /// Where the provider publishes its signing keys (a JWKS document); `null`: only the keys
    /// uploaded to the app verify tokens.
    pub jwks_url: Option<String>,
    /// The code flow, when set up.
    pub code_flow: Option<CodeFlow>,
}

/// The OAuth2 code flow of an app, as the API shows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CodeFlow {
    pub token_url: String,
    pub client_id: String,
    /// A client secret is stored (it is never shown).
    pub client_secret_set: bool,
    pub redirect_uri: Option<String>,
}

impl IdentityProvider {
    fn of(app_id: &str, settings: &IdentitySettings) -> IdentityProvider {
        IdentityProvider {
            app_id: app_id.to_owned(),
            jwks_url: settings.jwks_url.clone(),
            code_flow: settings.code_flow.as_ref().map(|flow| CodeFlow {
                token_url: flow.token_url.clone(),
                client_id: flow.client_id.clone(),
                client_secret_set: !flow.client_secret.is_empty(),
                redirect_uri: flow.redirect_uri.clone(),
            }),
        }
    }
}

/// New identity-provider settings: the whole of them (a field left out is removed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityRequest {
    /// `https://` (or `http://` to a loopback address); `null` or absent: none.
    #[schema(max_length = 2048)]
    pub jwks_url: Option<String>,
    /// `null` or absent: no code flow.
    pub code_flow: Option<CodeFlowRequest>,
}

/// The code flow's settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeFlowRequest {
    /// The provider's token endpoint: `https://` (or `http://` to a loopback address).
    #[schema(max_length = 2048)]
    pub token_url: String,
    /// The app's OAuth2 client id at the provider; id tokens are issued to it (their `aud`).
    #[schema(max_length = 256)]
    pub client_id: String,
    /// The client secret; absent keeps the stored one (required the first time).
    #[schema(max_length = 1024)]
    pub client_secret: Option<String>,
    /// The redirect URI the app's authorization requests use, if the provider wants it at
    /// the exchange and devices do not send their own.
    #[schema(max_length = 2048)]
    pub redirect_uri: Option<String>,
}

/// The app's identity-provider settings (admin), never the client secret.
#[utoipa::path(get, path = "/api/v1/apps/{app_id}/identity", tag = "apps", params(("app_id" = String, Path)),
    responses((status = 200, body = IdentityProvider), (status = 404, body = ErrorBody)))]
pub(super) async fn get_identity(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
) -> ApiResult<Json<IdentityProvider>> {
    state.store.app(&caller.brand_id, &app_id).await?.ok_or_else(|| ApiError::code(ErrorCode::AppNotFound))?;
    let settings = state.store.identity_settings(&caller.brand_id, &app_id).await?;
    Ok(Json(IdentityProvider::of(&app_id, &settings)))
}

/// Sets the app's identity-provider settings (admin): the JWKS URL and the OAuth2 code
/// flow. Consumers of the app then authenticate with tokens signed by the provider's keys,
/// or hand over an authorization code (docs/protocol.md).
#[utoipa::path(put, path = "/api/v1/apps/{app_id}/identity", tag = "apps", params(("app_id" = String, Path)),
    request_body = IdentityRequest,
    responses((status = 200, body = IdentityProvider), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn put_identity(
    State(state): State<AppState>,
    AdminAuth(caller): AdminAuth,
    P(app_id): P<String>,
    Body(request): Body<IdentityRequest>,
) -> ApiResult<Json<IdentityProvider>> {
    state.store.app(&caller.brand_id, &app_id).await?.ok_or_else(|| ApiError::code(ErrorCode::AppNotFound))?;
    let provider_url = |field: &str, url: &str| {
        crate::push::check_provider_url(url).map_err(|why| ApiError::bad_request(format!("{field}: {why}")))
    };
    let jwks_url = request.jwks_url.as_deref().map(|url| provider_url("jwks_url", url)).transpose()?;
    let code_flow = match request.code_flow {
        None => None,
        Some(flow) => {
            let token_url = provider_url("code_flow.token_url", &flow.token_url)?;
            check_len("code_flow.client_id", &flow.client_id, 1, 256)?;
            let client_secret = match flow.client_secret {
                Some(secret) => {
                    check_len("code_flow.client_secret", &secret, 1, 1024)?;
                    secret
                }
                None => state
                    .store
                    .identity_settings(&caller.brand_id, &app_id)
                    .await?
                    .code_flow
                    .map(|stored| stored.client_secret)
                    .ok_or_else(|| {
                        ApiError::bad_request("code_flow.client_secret is required to set up the code flow")
                    })?,
            };
            if let Some(redirect) = &flow.redirect_uri {
                reqwest::Url::parse(redirect).map_err(|error| {
                    ApiError::bad_request(format!("code_flow.redirect_uri {redirect:?} is not a URL ({error})"))
                })?;
            }
            Some(CodeFlowSettings {
                token_url,
                client_id: flow.client_id,
                client_secret,
                redirect_uri: flow.redirect_uri,
            })
        }
    };
    let settings = IdentitySettings { jwks_url, code_flow };
    let saved = state.store.set_identity_settings(&caller.brand_id, &app_id, &settings, now_ms()).await?;
    crate::fleet::changed(&state, crate::fleet::Changed::AppIdentity { app_id: app_id.clone() });
    let shown = IdentityProvider::of(&app_id, &saved);
    let detail = serde_json::json!({
        "jwks_url": shown.jwks_url,
        "code_flow": shown.code_flow.as_ref().map(|flow| serde_json::json!({
            "token_url": flow.token_url, "client_id": flow.client_id, "redirect_uri": flow.redirect_uri,
        })),
    });
    crate::audit::record(&state, &caller, "app.identity_update", Some(format!("app {app_id}")), detail).await;
    Ok(Json(shown))
}
