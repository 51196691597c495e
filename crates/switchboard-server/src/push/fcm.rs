//! Firebase Cloud Messaging, HTTP v1 API. An app's service account (the JSON key file from
//! the Google Cloud console) signs a JWT (RS256) that the OAuth2 token endpoint exchanges for
//! an access token; the token is kept until shortly before it expires and sent as a bearer
//! token with each `POST {base}/v1/projects/{project}/messages:send`. A 401 refreshes it once.
//!
//! Answers: `UNREGISTERED` (404) or an `INVALID_ARGUMENT` about the token unregister the
//! device; 429 and 5xx are retried (honouring `Retry-After`); other refusals fail the push.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::json;
use switchboard_store::FcmSettings;

use super::PushConfig;
use super::provider::{Answer, FailReason, Notification, Outcome, is_transient, retry_after};

/// The OAuth2 scope for sending messages.
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The grant type of a JWT-bearer token request (RFC 7523).
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// An access token is not used in its last minute.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);
/// Longest Firebase project id accepted.
const MAX_PROJECT_ID_CHARS: usize = 100;
/// Largest service account file accepted.
pub const MAX_SERVICE_ACCOUNT_BYTES: usize = 16 * 1024;

/// The fields of a service account key file this sender uses.
#[derive(Debug, Deserialize)]
struct ServiceAccountFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    project_id: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    client_email: Option<String>,
}

/// A checked service account: who signs, with which key.
pub struct ServiceAccount {
    /// The project the key file names (the default for the app's project id).
    pub project_id: Option<String>,
    pub client_email: String,
    private_key_id: Option<String>,
    key: EncodingKey,
}

impl ServiceAccount {
    /// Reads a key file; the error names what is wrong with it (never its secret).
    pub fn parse(json: &str) -> Result<ServiceAccount, String> {
        if json.len() > MAX_SERVICE_ACCOUNT_BYTES {
            return Err(format!(
                "service_account_json is {} bytes; the limit is {MAX_SERVICE_ACCOUNT_BYTES}",
                json.len()
            ));
        }
        let file: ServiceAccountFile = serde_json::from_str(json).map_err(|error| {
            // serde_json's message names a line and column, never the content.
            format!("service_account_json is not a service account key file (JSON): {error}")
        })?;
        match file.kind.as_deref() {
            Some("service_account") => {}
            other => {
                return Err(format!(
                    "service_account_json must be a key file of \"type\": \"service_account\" (got {other:?})"
                ));
            }
        }
        let client_email = file
            .client_email
            .filter(|email| !email.trim().is_empty())
            .ok_or("service_account_json has no \"client_email\"")?;
        let pem = file.private_key.ok_or("service_account_json has no \"private_key\"")?;
        let key = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|_| "service_account_json: \"private_key\" is not an RSA private key in PEM".to_owned())?;
        let account =
            ServiceAccount { project_id: file.project_id, client_email, private_key_id: file.private_key_id, key };
        // A key that parses may still not sign (a truncated or odd key): find out now.
        account
            .assertion("https://oauth2.googleapis.com/token", SystemTime::now())
            .map_err(|error| format!("service_account_json: \"private_key\" cannot sign ({error})"))?;
        Ok(account)
    }

    /// The signed JWT the token endpoint exchanges for an access token.
    fn assertion(&self, audience: &str, now: SystemTime) -> Result<String, jsonwebtoken::errors::Error> {
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = json!({"iss": self.client_email, "scope": SCOPE, "aud": audience, "iat": iat, "exp": iat + 3600});
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.private_key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key)
    }
}

/// Checks a Firebase project id (letters, digits, `-`, `.`, `:`; at most 100).
pub fn check_project_id(project_id: &str) -> Result<(), String> {
    let ok = !project_id.is_empty()
        && project_id.chars().count() <= MAX_PROJECT_ID_CHARS
        && project_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "project_id must be 1 to {MAX_PROJECT_ID_CHARS} letters, digits, '-', '.', ':' or '_' (got {project_id:?})"
        ))
    }
}

/// An OAuth2 access token and when to stop using it.
struct AccessToken {
    value: String,
    use_until: Instant,
}

/// One app's FCM sender: its project, its service account, its cached access token.
pub struct FcmApp {
    pub project_id: String,
    pub account: ServiceAccount,
    /// The current access token. A tokio `Mutex` held across the token request, so that
    /// concurrent pushes of the app wait for one refresh instead of each asking for a token;
    /// held only by [`FcmApp::access_token`].
    token: tokio::sync::Mutex<Option<AccessToken>>,
}

impl FcmApp {
    /// Checks the settings and builds the sender.
    pub fn new(settings: &FcmSettings) -> Result<FcmApp, String> {
        check_project_id(&settings.project_id)?;
        let account = ServiceAccount::parse(&settings.service_account_json)?;
        Ok(FcmApp { project_id: settings.project_id.clone(), account, token: tokio::sync::Mutex::new(None) })
    }

    /// An access token, from the cache or fresh from the token endpoint (`refresh`: the
    /// cached one was refused). An error is the answer to give for the push.
    async fn access_token(&self, http: &reqwest::Client, config: &PushConfig, refresh: bool) -> Result<String, Answer> {
        let mut cached = self.token.lock().await;
        if !refresh
            && let Some(token) = cached.as_ref()
            && Instant::now() < token.use_until
        {
            return Ok(token.value.clone());
        }
        let assertion = self
            .account
            .assertion(&config.fcm_token_url, SystemTime::now())
            .map_err(|error| Answer::failed(FailReason::Credentials, None, format!("cannot sign: {error}")))?;
        let response = http
            .post(&config.fcm_token_url)
            .form(&[("grant_type", GRANT_TYPE), ("assertion", assertion.as_str())])
            .send()
            .await
            .map_err(|error| Answer::unreachable(&error))?;
        let status = response.status().as_u16();
        let after = retry_after(response.headers(), SystemTime::now());
        let body = response.text().await.unwrap_or_default();
        if status != 200 {
            let reason = token_error(&body);
            return Err(if is_transient(status) {
                Answer { outcome: Outcome::Retry { after }, status: Some(status), reason }
            } else {
                Answer::failed(FailReason::Credentials, Some(status), format!("the token endpoint refused: {reason}"))
            });
        }
        #[derive(Deserialize)]
        struct TokenResponse {
            access_token: String,
            expires_in: Option<u64>,
        }
        let token: TokenResponse = serde_json::from_str(&body).map_err(|error| Answer {
            outcome: Outcome::Retry { after: None },
            status: Some(status),
            reason: format!("token answer: {error}"),
        })?;
        let lifetime = Duration::from_secs(token.expires_in.unwrap_or(3600));
        let use_until = Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN);
        *cached = Some(AccessToken { value: token.access_token.clone(), use_until });
        Ok(token.access_token)
    }

    /// Sends `notification` to the device `token`.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        config: &PushConfig,
        token: &str,
        notification: &Notification,
    ) -> Answer {
        let url = format!("{}/v1/projects/{}/messages:send", config.fcm_url.trim_end_matches('/'), self.project_id);
        let body = message(token, notification);
        let mut refreshed = false;
        loop {
            let access = match self.access_token(http, config, refreshed).await {
                Ok(access) => access,
                Err(answer) => return answer,
            };
            let response = match http.post(&url).bearer_auth(&access).json(&body).send().await {
                Ok(response) => response,
                Err(error) => return Answer::unreachable(&error),
            };
            let status = response.status().as_u16();
            if (200..300).contains(&status) {
                return Answer::sent(status);
            }
            let after = retry_after(response.headers(), SystemTime::now());
            let text = response.text().await.unwrap_or_default();
            // An access token revoked or expired early: one fresh token, one more try.
            if status == 401 && !refreshed {
                refreshed = true;
                continue;
            }
            return classify(status, after, &text);
        }
    }
}

/// The `messages:send` body: the notification for the system tray, the app's data, and each
/// platform's collapse settings (the device keeps the newest notification per conversation).
fn message(token: &str, notification: &Notification) -> serde_json::Value {
    let collapse = notification.collapse_key();
    json!({
        "message": {
            "token": token,
            "notification": {"title": notification.title, "body": notification.body},
            // Data values must be strings: the app's part is JSON in one string.
            "data": {"switchboard": notification.app_data().to_string()},
            "android": {
                "collapse_key": collapse,
                "priority": "HIGH",
                "notification": {"tag": collapse, "notification_count": notification.badge},
            },
            "apns": {
                "headers": {"apns-collapse-id": collapse, "apns-priority": "10", "apns-push-type": "alert"},
                "payload": {"aps": {"badge": notification.badge, "thread-id": collapse, "sound": "default"}},
            },
        }
    })
}

/// FCM's error body (`google.rpc.Status`).
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorStatus,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorStatus {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

/// What an error answer means for the push.
fn classify(status: u16, after: Option<Duration>, body: &str) -> Answer {
    let parsed: ErrorBody = serde_json::from_str(body).unwrap_or_default();
    let error = parsed.error;
    let error_code = error
        .details
        .iter()
        .find_map(|detail| detail.get("errorCode").and_then(|code| code.as_str()))
        .unwrap_or(&error.status)
        .to_owned();
    let about_token = error.details.iter().any(|detail| {
        detail.get("fieldViolations").and_then(|v| v.as_array()).is_some_and(|violations| {
            violations.iter().any(|v| v.get("field").and_then(|f| f.as_str()) == Some("message.token"))
        })
    }) || error.message.to_lowercase().contains("registration token");
    let reason = match (error_code.is_empty(), error.message.is_empty()) {
        (false, false) => format!("{error_code}: {}", error.message),
        (false, true) => error_code.clone(),
        (true, _) if !error.message.is_empty() => error.message.clone(),
        _ => format!("HTTP {status}"),
    };
    let outcome = match error_code.as_str() {
        "UNREGISTERED" => Outcome::Unregistered,
        "INVALID_ARGUMENT" if about_token => Outcome::Unregistered,
        _ if status == 404 => Outcome::Unregistered,
        "QUOTA_EXCEEDED" | "UNAVAILABLE" | "INTERNAL" => Outcome::Retry { after },
        _ if is_transient(status) => Outcome::Retry { after },
        "THIRD_PARTY_AUTH_ERROR" | "SENDER_ID_MISMATCH" | "PERMISSION_DENIED" | "UNAUTHENTICATED" => {
            Outcome::Failed(FailReason::Credentials)
        }
        _ if status == 401 || status == 403 => Outcome::Failed(FailReason::Credentials),
        _ => Outcome::Failed(FailReason::Rejected),
    };
    Answer { outcome, status: Some(status), reason }
}

/// The token endpoint's error in one line (`invalid_grant: Invalid JWT Signature.`).
fn token_error(body: &str) -> String {
    #[derive(Deserialize)]
    struct TokenError {
        error: Option<String>,
        error_description: Option<String>,
    }
    match serde_json::from_str::<TokenError>(body) {
        Ok(TokenError { error: Some(error), error_description: Some(description) }) => {
            format!("{error}: {description}")
        }
        Ok(TokenError { error: Some(error), .. }) => error,
        _ => body.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: u16, body: &str, expected: Outcome) {
        let answer = classify(status, None, body);
        assert_eq!(answer.outcome, expected, "{status} {body}");
        assert_eq!(answer.status, Some(status));
    }

    #[test]
    fn error_answers_are_classified_by_fcm_error_code() {
        let fcm_error = |status: &str, code: &str| {
            format!(
                r#"{{"error":{{"code":400,"message":"m","status":"{status}","details":[{{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"{code}"}}]}}}}"#
            )
        };
        check(404, &fcm_error("NOT_FOUND", "UNREGISTERED"), Outcome::Unregistered);
        let bad_token = r#"{"error":{"code":400,"message":"The registration token is not a valid FCM registration token","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"INVALID_ARGUMENT"}]}}"#;
        check(400, bad_token, Outcome::Unregistered);
        let violation = r#"{"error":{"code":400,"message":"Request contains an invalid argument.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}]}}"#;
        check(400, violation, Outcome::Unregistered);
        check(400, &fcm_error("INVALID_ARGUMENT", "INVALID_ARGUMENT"), Outcome::Failed(FailReason::Rejected));
        check(429, &fcm_error("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), Outcome::Retry { after: None });
        check(503, "", Outcome::Retry { after: None });
        check(500, "<html>oops</html>", Outcome::Retry { after: None });
        check(403, &fcm_error("PERMISSION_DENIED", "SENDER_ID_MISMATCH"), Outcome::Failed(FailReason::Credentials));
        check(401, "", Outcome::Failed(FailReason::Credentials));
    }

    #[test]
    fn service_account_files_are_checked_without_echoing_secrets() {
        let refused = |json: &str, says: &str| {
            let error = ServiceAccount::parse(json).err().expect("refused");
            assert!(error.contains(says), "{error:?} should say {says:?}");
            assert!(!error.contains("SECRET"), "{error}");
        };
        refused("not json", "not a service account key file");
        refused(r#"{"type":"authorized_user","private_key":"SECRET"}"#, "\"type\": \"service_account\"");
        refused(r#"{"type":"service_account","private_key":"SECRET"}"#, "no \"client_email\"");
        refused(r#"{"type":"service_account","client_email":"a@b"}"#, "no \"private_key\"");
        refused(r#"{"type":"service_account","client_email":"a@b","private_key":"SECRET"}"#, "not an RSA private key");
        assert!(check_project_id("acme-prod-1234").is_ok());
        assert!(check_project_id("").is_err());
        assert!(check_project_id("acme/../x").is_err());
    }
}
