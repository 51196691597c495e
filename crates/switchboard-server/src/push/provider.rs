//! What the two providers share: the notification a push carries, how a provider answered
//! (sent, the device is gone, try again later, refused for good), `Retry-After`, the HTTP
//! clients (rustls on aws-lc-rs, the platform's roots plus any the operator added), and the
//! shape of the payload the SDK reads back (`switchboard`: conversation and seq).

use std::time::{Duration, SystemTime};

use serde_json::json;
use switchboard_protocol::ConversationId;

use super::PushConfig;

/// The body of every masked push (and of every push of a brand that masks pushes).
pub const MASKED_TEXT: &str = "You have a new message";

/// Longest notification body, in characters: a preview, not the message (providers cap a
/// payload at 4 KiB, and a lock screen shows a few lines).
pub const MAX_BODY_CHARS: usize = 200;

/// What one push says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub title: String,
    pub body: String,
    /// The conversation and message it announces (`None`: a test push).
    pub message: Option<(ConversationId, i64)>,
    /// The app icon's badge: the consumer's unread messages.
    pub badge: u32,
}

impl Notification {
    /// The body as shown: at most [`MAX_BODY_CHARS`] characters, with `…` when cut.
    pub fn preview(text: &str) -> String {
        let text = text.trim();
        if text.chars().count() <= MAX_BODY_CHARS {
            return text.to_owned();
        }
        let mut cut: String = text.chars().take(MAX_BODY_CHARS - 1).collect();
        cut.push('…');
        cut
    }

    /// The key notifications of one conversation collapse under (APNs `apns-collapse-id`,
    /// Android's `collapse_key` and `tag`): a newer push replaces the older on the device.
    pub fn collapse_key(&self) -> String {
        match self.message {
            Some((conversation, _)) => format!("c{conversation}"),
            None => "switchboard-test".to_owned(),
        }
    }

    /// The app-readable part (`switchboard` in the payload) that the SDK's
    /// `parse_push_payload` reads: `{"c": conversation, "seq": n, "badge": n}`, or
    /// `{"test": true}`.
    pub fn app_data(&self) -> serde_json::Value {
        match self.message {
            Some((conversation, seq)) => json!({"c": conversation, "seq": seq, "badge": self.badge}),
            None => json!({"test": true}),
        }
    }
}

/// What became of one push to one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The provider accepted it.
    Sent,
    /// The device token is invalid or no longer registered: unregister it.
    Unregistered,
    /// The provider is busy or failing (429, 5xx, no answer): try again, not before `after`
    /// when it said (`Retry-After`).
    Retry { after: Option<Duration> },
    /// Refused for good (bad credentials, a payload or setting the provider does not take).
    Failed(FailReason),
}

/// Why a push was refused for good (a metric label: a short, fixed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The app has no settings for the device's provider.
    NotConfigured,
    /// The provider refused the credentials (key, service account, team, topic).
    Credentials,
    /// The provider refused the request itself.
    Rejected,
    /// Retried as often as allowed.
    GaveUp,
}

impl FailReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            FailReason::NotConfigured => "not_configured",
            FailReason::Credentials => "credentials",
            FailReason::Rejected => "rejected",
            FailReason::GaveUp => "gave_up",
        }
    }
}

/// A provider's answer to one push, as the test-push action reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub outcome: Outcome,
    /// The HTTP status, if the provider answered at all.
    pub status: Option<u16>,
    /// The provider's reason (`UNREGISTERED`, `BadDeviceToken`, …) or what went wrong.
    pub reason: String,
}

impl Answer {
    pub(crate) fn sent(status: u16) -> Answer {
        Answer { outcome: Outcome::Sent, status: Some(status), reason: String::new() }
    }

    pub(crate) fn failed(reason: FailReason, status: Option<u16>, text: impl Into<String>) -> Answer {
        Answer { outcome: Outcome::Failed(reason), status, reason: text.into() }
    }

    /// No answer (connection refused, timeout, TLS failure): worth another try later.
    pub(crate) fn unreachable(error: &reqwest::Error) -> Answer {
        Answer { outcome: Outcome::Retry { after: None }, status: None, reason: describe_error(error) }
    }
}

/// A transport error in one line, with its causes (reqwest's `Display` stops at the top).
pub(crate) fn describe_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The most a `Retry-After` is taken at its word.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// `Retry-After` as seconds or an HTTP date, at most an hour; `None` if absent or unreadable.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let after = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value).ok()?.duration_since(now).unwrap_or(Duration::ZERO),
    };
    Some(after.min(MAX_RETRY_AFTER))
}

/// Whether an HTTP status means "try again later".
pub fn is_transient(status: u16) -> bool {
    status == 429 || status >= 500
}

/// The HTTP client for one provider: rustls on aws-lc-rs verifying against the platform's
/// roots plus the operator's extra CA certificates; APNs speaks HTTP/2 only (`http2_only`:
/// ALPN offers `h2` alone, and a cleartext loopback URL uses HTTP/2 without upgrade).
pub fn http_client(config: &PushConfig, http2_only: bool) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(config.request_timeout)
        .pool_idle_timeout(Duration::from_secs(300))
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")));
    if !config.extra_roots.is_empty() {
        builder = builder.tls_certs_merge(config.extra_roots.iter().cloned());
    }
    if http2_only {
        // Apple's push service closes idle connections after a while; a ping keeps a warm
        // connection usable and finds a dead one before a push waits on it.
        builder = builder
            .http2_prior_knowledge()
            .http2_keep_alive_interval(Duration::from_secs(60))
            .http2_keep_alive_while_idle(true);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_caps_them() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 UTC
        let check = |value: &str, expected: Option<Duration>| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::RETRY_AFTER, value.parse().unwrap());
            assert_eq!(retry_after(&headers, now), expected, "{value}");
        };
        check("7", Some(Duration::from_secs(7)));
        check("Wed, 21 Oct 2015 07:28:30 GMT", Some(Duration::from_secs(30)));
        check("Wed, 21 Oct 2015 07:27:00 GMT", Some(Duration::ZERO));
        check("86400", Some(MAX_RETRY_AFTER));
        check("soon", None);
        assert_eq!(retry_after(&reqwest::header::HeaderMap::new(), now), None);
    }

    #[test]
    fn previews_are_cut_at_a_character_boundary() {
        assert_eq!(Notification::preview("  hi  "), "hi");
        let long = "é".repeat(MAX_BODY_CHARS + 5);
        let preview = Notification::preview(&long);
        assert_eq!(preview.chars().count(), MAX_BODY_CHARS);
        assert!(preview.ends_with('…'));
    }
}
