//! Apple Push Notification service over HTTP/2 with token authentication: each app's .p8 key
//! (P-256) signs a provider token, an ES256 JWT with the key id in its header and the team
//! id and issue time in its claims, made again every 40 minutes (Apple refuses one older than
//! an hour and throttles one made more often than every 20). Each push is
//! `POST {base}/3/device/{token}` with `apns-topic` (the bundle id), `apns-push-type: alert`,
//! `apns-priority: 10`, `apns-expiration` and `apns-collapse-id` (one notification per
//! conversation on the device).
//!
//! Answers: 410 (`Unregistered`, `ExpiredToken`) and 400 `BadDeviceToken` unregister the
//! device; 429 and 5xx are retried (honouring `Retry-After` if sent); a 403
//! `ExpiredProviderToken` makes a new provider token once; other refusals fail the push.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::json;
use switchboard_store::{ApnsEnvironment, ApnsSettings};

use super::PushConfig;
use super::provider::{Answer, FailReason, Notification, Outcome, is_transient, retry_after};

/// How long a provider token is used (Apple: at most 60 minutes, at least 20).
const PROVIDER_TOKEN_LIFETIME: Duration = Duration::from_secs(40 * 60);
/// How long APNs keeps trying to deliver a push to a device that is off.
const EXPIRATION: Duration = Duration::from_secs(24 * 3600);
/// Largest .p8 key file accepted.
pub const MAX_PRIVATE_KEY_BYTES: usize = 4096;
/// Longest device token accepted (hex; Apple's are 64 characters today).
const MAX_DEVICE_TOKEN_CHARS: usize = 200;

/// One app's APNs sender: the app's identifiers, its signing key and current provider token.
pub struct ApnsApp {
    pub key_id: String,
    pub team_id: String,
    pub bundle_id: String,
    pub environment: ApnsEnvironment,
    key: EncodingKey,
    /// The current provider token and when it was made. A std `Mutex`: held only to read or
    /// replace it (signing takes microseconds), never across an `.await`.
    provider_token: Mutex<Option<(String, Instant)>>,
}

/// Checks a 10-character Apple identifier (key id, team id).
fn check_apple_id(field: &str, value: &str) -> Result<(), String> {
    if value.len() == 10 && value.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(format!("{field} must be the 10 letters and digits Apple shows (got {value:?})"))
    }
}

/// Checks a bundle id (`com.acme.app`: letters, digits, `-` and `.`, at most 155).
fn check_bundle_id(value: &str) -> Result<(), String> {
    let ok = !value.is_empty()
        && value.len() <= 155
        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        && !value.starts_with('.')
        && !value.ends_with('.');
    if ok { Ok(()) } else { Err(format!("bundle_id must look like com.example.app (got {value:?})")) }
}

impl ApnsApp {
    /// Checks the settings (identifiers, that the key is a P-256 key that signs) and builds
    /// the sender. The error names the field (never the key).
    pub fn new(settings: &ApnsSettings) -> Result<ApnsApp, String> {
        check_apple_id("key_id", &settings.key_id)?;
        check_apple_id("team_id", &settings.team_id)?;
        check_bundle_id(&settings.bundle_id)?;
        if settings.private_key.len() > MAX_PRIVATE_KEY_BYTES {
            return Err(format!(
                "private_key is {} bytes; a .p8 key is about 250 (the limit is {MAX_PRIVATE_KEY_BYTES})",
                settings.private_key.len()
            ));
        }
        let key = EncodingKey::from_ec_pem(settings.private_key.as_bytes())
            .map_err(|_| "private_key must be the text of the .p8 file: a P-256 private key in PEM".to_owned())?;
        let app = ApnsApp {
            key_id: settings.key_id.clone(),
            team_id: settings.team_id.clone(),
            bundle_id: settings.bundle_id.clone(),
            environment: settings.environment,
            key,
            provider_token: Mutex::new(None),
        };
        app.sign(SystemTime::now()).map_err(|_| "private_key cannot sign ES256: is it a P-256 key?".to_owned())?;
        Ok(app)
    }

    fn sign(&self, now: SystemTime) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        header.typ = None;
        let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        jsonwebtoken::encode(&header, &json!({"iss": self.team_id, "iat": iat}), &self.key)
    }

    /// The provider token: the current one, or a new one when it is 40 minutes old or
    /// `refresh` (Apple said it expired).
    fn provider_token(&self, refresh: bool) -> Result<String, Answer> {
        let mut current = self.provider_token.lock().unwrap_or_else(|poison| poison.into_inner());
        if !refresh
            && let Some((token, made)) = current.as_ref()
            && made.elapsed() < PROVIDER_TOKEN_LIFETIME
        {
            return Ok(token.clone());
        }
        let token = self
            .sign(SystemTime::now())
            .map_err(|error| Answer::failed(FailReason::Credentials, None, format!("cannot sign: {error}")))?;
        *current = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    /// The service this app's pushes go to.
    fn base_url<'a>(&self, config: &'a PushConfig) -> &'a str {
        match self.environment {
            ApnsEnvironment::Production => &config.apns_url,
            ApnsEnvironment::Sandbox => &config.apns_sandbox_url,
        }
    }

    /// Sends `notification` to the device `token`.
    pub async fn send(
        &self,
        http: &reqwest::Client,
        config: &PushConfig,
        token: &str,
        notification: &Notification,
    ) -> Answer {
        if token.is_empty() || token.len() > MAX_DEVICE_TOKEN_CHARS || !token.chars().all(|c| c.is_ascii_hexdigit()) {
            // Not a device token APNs could know: what it would answer, without asking.
            return Answer { outcome: Outcome::Unregistered, status: None, reason: "BadDeviceToken".into() };
        }
        let url = format!("{}/3/device/{token}", self.base_url(config).trim_end_matches('/'));
        let collapse = notification.collapse_key();
        let body = json!({
            "aps": {
                "alert": {"title": notification.title, "body": notification.body},
                "badge": notification.badge,
                "sound": "default",
                "thread-id": collapse,
            },
            "switchboard": notification.app_data(),
        });
        let expiration = (SystemTime::now() + EXPIRATION).duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut refreshed = false;
        loop {
            let provider_token = match self.provider_token(refreshed) {
                Ok(provider_token) => provider_token,
                Err(answer) => return answer,
            };
            let request = http
                .post(&url)
                .header("authorization", format!("bearer {provider_token}"))
                .header("apns-topic", &self.bundle_id)
                .header("apns-push-type", "alert")
                .header("apns-priority", "10")
                .header("apns-expiration", expiration.to_string())
                .header("apns-collapse-id", &collapse)
                .json(&body);
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => return Answer::unreachable(&error),
            };
            let status = response.status().as_u16();
            if status == 200 {
                return Answer::sent(status);
            }
            let after = retry_after(response.headers(), SystemTime::now());
            #[derive(Default, Deserialize)]
            struct Refusal {
                #[serde(default)]
                reason: String,
            }
            let refusal: Refusal = response.json().await.unwrap_or_default();
            if status == 403 && refusal.reason == "ExpiredProviderToken" && !refreshed {
                refreshed = true;
                continue;
            }
            return classify(status, after, refusal.reason);
        }
    }
}

/// What an error answer means for the push.
fn classify(status: u16, after: Option<Duration>, reason: String) -> Answer {
    let outcome = match (status, reason.as_str()) {
        (410, _) | (_, "BadDeviceToken" | "Unregistered" | "ExpiredToken") => Outcome::Unregistered,
        (_, "TooManyProviderTokenUpdates") => Outcome::Retry { after },
        _ if is_transient(status) => Outcome::Retry { after },
        (
            _,
            "InvalidProviderToken"
            | "MissingProviderToken"
            | "ExpiredProviderToken"
            | "BadCertificate"
            | "BadCertificateEnvironment"
            | "Forbidden"
            | "DeviceTokenNotForTopic"
            | "TopicDisallowed"
            | "BadTopic"
            | "MissingTopic",
        ) => Outcome::Failed(FailReason::Credentials),
        (403, _) => Outcome::Failed(FailReason::Credentials),
        _ => Outcome::Failed(FailReason::Rejected),
    };
    let reason = if reason.is_empty() { format!("HTTP {status}") } else { reason };
    Answer { outcome, status: Some(status), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_are_classified_by_reason() {
        let check = |status: u16, reason: &str, expected: Outcome| {
            assert_eq!(classify(status, None, reason.into()).outcome, expected, "{status} {reason}");
        };
        check(410, "Unregistered", Outcome::Unregistered);
        check(410, "ExpiredToken", Outcome::Unregistered);
        check(400, "BadDeviceToken", Outcome::Unregistered);
        check(400, "DeviceTokenNotForTopic", Outcome::Failed(FailReason::Credentials));
        check(400, "PayloadTooLarge", Outcome::Failed(FailReason::Rejected));
        check(403, "InvalidProviderToken", Outcome::Failed(FailReason::Credentials));
        check(429, "TooManyRequests", Outcome::Retry { after: None });
        check(500, "InternalServerError", Outcome::Retry { after: None });
        check(503, "ServiceUnavailable", Outcome::Retry { after: None });
    }

    #[test]
    fn settings_are_checked_by_field() {
        let settings = ApnsSettings {
            key_id: "ABC123DEFG".into(),
            team_id: "TEAM123456".into(),
            bundle_id: "com.acme.app".into(),
            private_key: "-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n".into(),
            environment: ApnsEnvironment::Production,
        };
        let refused = |settings: ApnsSettings, says: &str| {
            let error = ApnsApp::new(&settings).err().expect("refused");
            assert!(error.contains(says), "{error:?} should say {says:?}");
            assert!(!error.contains("SECRET"), "{error}");
        };
        refused(ApnsSettings { key_id: "short".into(), ..settings.clone() }, "key_id");
        refused(ApnsSettings { team_id: "TEAM-12345".into(), ..settings.clone() }, "team_id");
        refused(ApnsSettings { bundle_id: "com acme".into(), ..settings.clone() }, "bundle_id");
        refused(settings, "private_key must be the text of the .p8 file");
    }
}
