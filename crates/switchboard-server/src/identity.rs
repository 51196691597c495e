//! Consumer identity from the brand's identity provider, beside the keys uploaded to an app:
//!
//! - **JWKS by URL**: the provider's signing keys are fetched from the app's `jwks_url` and
//!   cached for as long as the answer's `Cache-Control: max-age` says (kept within
//!   [`MIN_FRESH`] and [`MAX_FRESH`]; [`DEFAULT_FRESH`] without one). A token whose `kid` the
//!   cached keys do not have makes one refetch (a rotated key is found at once), and such
//!   refetches happen at most once per [`REFETCH_EVERY`] per URL (a flood of forged `kid`s
//!   cannot turn into a flood of fetches). When a fetch fails, the keys
//!   fetched last keep serving for up to [`STALE_FOR`] past their freshness: a provider's
//!   outage does not lock every consumer out at once.
//! - **The OAuth2 authorization code flow**: the app hands over an authorization code (with
//!   the `redirect_uri` and PKCE verifier it used); the server exchanges it at the provider's
//!   token endpoint as the app's client (the `oauth2` crate builds the request and reads the
//!   answer; our reqwest client sends it) and verifies the returned `id_token` with the same
//!   rules as any consumer JWT (`jwt::verify_consumer_token`, audience = the client id).
//!
//! Provider URLs are `https://` (or `http://` to a loopback address, for tests).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet, ExtraTokenFields,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, StandardRevocableToken, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use switchboard_protocol::ErrorCode;
use switchboard_store::CodeFlowSettings;

use crate::error::ApiError;
use crate::jwt::{self, VerifyingKey};

/// Freshness of fetched keys without a `max-age`.
pub const DEFAULT_FRESH: Duration = Duration::from_secs(300);
/// Shortest freshness, whatever the provider says (keys are not fetched more often).
pub const MIN_FRESH: Duration = Duration::from_secs(60);
/// Longest freshness, whatever the provider says (a rotated key is seen within a day).
pub const MAX_FRESH: Duration = Duration::from_secs(24 * 3600);
/// A `kid` the cached keys lack makes at most one refetch per URL this often.
pub const REFETCH_EVERY: Duration = Duration::from_secs(30);
/// How long past their freshness fetched keys keep serving while the provider cannot be
/// reached.
pub const STALE_FOR: Duration = Duration::from_secs(6 * 3600);
/// Largest JWKS document or token answer read.
const MAX_ANSWER_BYTES: usize = 256 * 1024;
/// Longest wait for a provider.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The node's link to identity providers: one HTTP client and the fetched keys per URL.
pub struct Identity {
    http: reqwest::Client,
    /// Fetched keys per JWKS URL. A std `Mutex`: held for a lookup or an update, never across
    /// a fetch (two hellos may then fetch the same URL at once, which is harmless).
    keys: Mutex<HashMap<String, FetchedKeys>>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity").finish_non_exhaustive()
    }
}

#[derive(Clone)]
struct FetchedKeys {
    keys: Arc<Vec<VerifyingKey>>,
    fresh_until: Instant,
    /// The last fetch attempt, successful or not (a failed one is not retried at once).
    tried_at: Instant,
    /// The last refetch made for a `kid` the fresh keys lacked (at most one per
    /// [`REFETCH_EVERY`]).
    kid_refetch_at: Option<Instant>,
}

impl Identity {
    /// A client trusting the platform's roots plus `extra_roots`.
    pub fn new(extra_roots: &[reqwest::Certificate]) -> anyhow::Result<Identity> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(REQUEST_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // A provider's answer is read whole and small: no redirect is followed (a token
            // endpoint that redirects a POST is misconfigured, and says so).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")));
        if !extra_roots.is_empty() {
            builder = builder.tls_certs_merge(extra_roots.iter().cloned());
        }
        Ok(Identity { http: builder.build()?, keys: Mutex::new(HashMap::new()) })
    }

    /// The keys published at `url`, fetched or cached (see the module's rules); `kid` is the
    /// key id of the token about to be checked, if it names one.
    pub async fn keys(&self, url: &str, kid: Option<&str>) -> Result<Arc<Vec<VerifyingKey>>, ApiError> {
        let now = Instant::now();
        let cached = self.keys.lock().unwrap_or_else(|p| p.into_inner()).get(url).cloned();
        if let Some(cached) = &cached {
            let fresh = now < cached.fresh_until;
            let knows_kid = kid.is_none_or(|kid| cached.keys.iter().any(|key| key.kid() == Some(kid)));
            let kid_refetch_allowed = cached.kid_refetch_at.is_none_or(|at| now.duration_since(at) >= REFETCH_EVERY);
            if fresh && (knows_kid || !kid_refetch_allowed) {
                return Ok(cached.keys.clone());
            }
            let failed_a_moment_ago = now.duration_since(cached.tried_at) < REFETCH_EVERY;
            if !fresh && failed_a_moment_ago && now < cached.fresh_until + STALE_FOR {
                return Ok(cached.keys.clone());
            }
        }
        // Fresh keys refetched only because the token names a key they lack.
        let for_kid = cached.as_ref().is_some_and(|cached| now < cached.fresh_until);
        let kid_refetch_at = if for_kid { Some(now) } else { cached.as_ref().and_then(|cached| cached.kid_refetch_at) };
        match self.fetch_keys(url).await {
            Ok((keys, fresh_for)) => {
                let keys = Arc::new(keys);
                let fetched =
                    FetchedKeys { keys: keys.clone(), fresh_until: now + fresh_for, tried_at: now, kid_refetch_at };
                self.keys.lock().unwrap_or_else(|p| p.into_inner()).insert(url.to_owned(), fetched);
                Ok(keys)
            }
            Err(why) => {
                tracing::warn!(url, error = %why, "could not fetch the identity provider's keys");
                metrics::counter!(crate::metrics::JWKS_FETCH_FAILURES).increment(1);
                let mut map = self.keys.lock().unwrap_or_else(|p| p.into_inner());
                match map.get_mut(url) {
                    Some(stale) if now < stale.fresh_until + STALE_FOR => {
                        stale.tried_at = now;
                        stale.kid_refetch_at = kid_refetch_at;
                        Ok(stale.keys.clone())
                    }
                    _ => Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "the brand's identity provider could not be reached to check the token; retry",
                    )),
                }
            }
        }
    }

    async fn fetch_keys(&self, url: &str) -> Result<(Vec<VerifyingKey>, Duration), String> {
        let response = self.http.get(url).send().await.map_err(|error| format!("request failed: {error}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("answered {status}"));
        }
        let fresh_for = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|value| value.to_str().ok())
            .and_then(max_age)
            .unwrap_or(DEFAULT_FRESH)
            .clamp(MIN_FRESH, MAX_FRESH);
        let body = read_bounded(response).await?;
        let text = std::str::from_utf8(&body).map_err(|_| "the JWKS document is not UTF-8".to_owned())?;
        let keys = jwt::parse_key("jwks", text).map_err(|error| error.message)?;
        Ok((keys, fresh_for))
    }

    /// Exchanges an authorization code at the app's token endpoint and returns the `id_token`
    /// the provider answered with (not verified yet: the caller verifies it).
    pub async fn exchange_code(&self, flow: &CodeFlowSettings, code: &CodeGrant) -> Result<String, ApiError> {
        let refused = |why: String| ApiError::new(ErrorCode::TokenInvalid, why);
        let token_url = TokenUrl::new(flow.token_url.clone())
            .map_err(|_| ApiError::internal(format!("stored token_url {:?} is not a URL", flow.token_url)))?;
        let redirect =
            match code.redirect_uri.clone().or_else(|| flow.redirect_uri.clone()) {
                Some(redirect) => Some(RedirectUrl::new(redirect).map_err(|_| {
                    ApiError::bad_request("redirect_uri is not a URL (it must be the one the app used)")
                })?),
                None => None,
            };
        let (client_id, client_secret) = (flow.client_id.clone(), flow.client_secret.clone());
        let (authorization_code, verifier) = (code.code.clone(), code.code_verifier.clone());
        let http = self.http.clone();
        // The exchange runs as a task of its own: oauth2's request future is generic over a
        // higher-ranked client lifetime, which the socket task's future cannot carry (it
        // would not be provably `Send`); a task's handle is plain.
        let exchange = tokio::spawn(async move {
            let client: CodeFlowClient = oauth2::Client::new(ClientId::new(client_id))
                .set_client_secret(ClientSecret::new(client_secret))
                .set_auth_type(AuthType::RequestBody)
                .set_token_uri(token_url);
            let mut request = client.exchange_code(AuthorizationCode::new(authorization_code));
            if let Some(redirect) = redirect {
                request = request.set_redirect_uri(std::borrow::Cow::Owned(redirect));
            }
            if let Some(verifier) = verifier {
                request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier));
            }
            let send = |request: oauth2::HttpRequest| send(http.clone(), request);
            request.request_async(&send).await
        });
        let answer = exchange.await.map_err(|error| ApiError::internal(format!("code exchange task: {error}")))?;
        match answer {
            Ok(answer) => answer.extra_fields().id_token.clone().ok_or_else(|| {
                refused(
                    "the identity provider exchanged the code but sent no id_token (is the openid scope asked for?)"
                        .into(),
                )
            }),
            Err(RequestTokenError::ServerResponse(error)) => {
                let detail = error.error_description().map(|d| format!(": {d}")).unwrap_or_default();
                Err(refused(format!("the identity provider refused the code ({}{detail})", error.error())))
            }
            Err(RequestTokenError::Request(error)) => {
                tracing::warn!(token_url = %flow.token_url, error = %error, "code exchange failed");
                Err(ApiError::new(
                    ErrorCode::Unavailable,
                    "the brand's identity provider could not be reached to exchange the code; retry",
                ))
            }
            Err(RequestTokenError::Parse(error, _)) => Err(refused(format!(
                "the identity provider's answer to the code exchange is not a token answer ({error})"
            ))),
            Err(RequestTokenError::Other(why)) => Err(refused(format!("the code exchange failed: {why}"))),
        }
    }
}

/// Sends one of oauth2's requests with our client, reading a bounded answer.
async fn send(http: reqwest::Client, request: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, SendError> {
    let request = reqwest::Request::try_from(request).map_err(|error| SendError(error.to_string()))?;
    let response = http.execute(request).await.map_err(|error| SendError(error.to_string()))?;
    let mut builder = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = read_bounded(response).await.map_err(SendError)?;
    builder.body(body).map_err(|error| SendError(error.to_string()))
}

/// What a device hands over in the code flow.
#[derive(Debug, Clone)]
pub struct CodeGrant {
    pub code: String,
    /// The `redirect_uri` of the authorization request, if the device sends it (else the
    /// app's configured one, if any).
    pub redirect_uri: Option<String>,
    /// The PKCE verifier of the authorization request, if it used PKCE.
    pub code_verifier: Option<String>,
}

/// The one extra field of a token answer we read: OpenID Connect's `id_token`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type CodeFlowClient = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenField, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Why a request to a provider failed (for oauth2's error type).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendError(String);

/// Reads an answer's body, refusing one over [`MAX_ANSWER_BYTES`].
async fn read_bounded(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| format!("reading the answer failed: {error}"))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `max-age` of a `Cache-Control` value (`no-store`/`no-cache` count as 0).
fn max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            age = seconds.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys fetched earlier serve while the provider is down, for [`STALE_FOR`] past their
    /// freshness, then the check fails with `unavailable` rather than passing unchecked.
    #[tokio::test]
    async fn stale_keys_serve_through_an_outage_within_the_bound() {
        // Nothing listens on port 9 of loopback: every fetch fails at once.
        let url = "http://127.0.0.1:9/jwks";
        let identity = Identity::new(&[]).unwrap();
        let now = Instant::now();
        let keys = Arc::new(jwt::parse_key("pem", EC_PUBLIC).unwrap());
        let entry = |fresh_until: Instant| FetchedKeys {
            keys: keys.clone(),
            fresh_until,
            tried_at: now.checked_sub(REFETCH_EVERY * 2).unwrap(),
            kid_refetch_at: None,
        };
        let set = |fetched: FetchedKeys| {
            identity.keys.lock().unwrap().insert(url.to_owned(), fetched);
        };
        set(entry(now.checked_sub(Duration::from_secs(3600)).unwrap()));
        assert_eq!(identity.keys(url, None).await.unwrap().len(), 1, "an hour past freshness: stale keys serve");
        set(entry(now.checked_sub(STALE_FOR + Duration::from_secs(1)).unwrap()));
        let error = identity.keys(url, None).await.unwrap_err();
        assert_eq!(error.code, ErrorCode::Unavailable);
        identity.keys.lock().unwrap().clear();
        assert_eq!(identity.keys(url, None).await.unwrap_err().code, ErrorCode::Unavailable, "never fetched");
    }

    const EC_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9
q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==
-----END PUBLIC KEY-----";

    #[test]
    fn cache_control_gives_the_freshness() {
        assert_eq!(max_age("public, max-age=3600"), Some(Duration::from_secs(3600)));
        assert_eq!(max_age("max-age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }
}
