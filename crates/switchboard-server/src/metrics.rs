//! Metric names of the server, in one place, and the Prometheus recorder. Labels have bounded
//! cardinality: never a brand, user or conversation id.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Gauge: open WebSocket connections, label `endpoint` = consumer | agent.
pub const CONNECTIONS: &str = "switchboard_ws_connections";
/// Counter: messages stored, label `side` = consumer | agent.
pub const MESSAGES_STORED: &str = "switchboard_messages_stored_total";
/// Counter: frames answered with an error, label `code`.
pub const FRAME_ERRORS: &str = "switchboard_ws_errors_total";
/// Histogram: seconds from receiving a `send` frame to its durable ack.
pub const APPEND_SECONDS: &str = "switchboard_append_seconds";
/// Counter: live events dropped because a socket lagged (it was told to resync).
pub const LAGGED: &str = "switchboard_ws_lagged_total";
/// Counter: conversations opened.
pub const CONVERSATIONS_OPENED: &str = "switchboard_conversations_opened_total";
/// Counter: conversations assigned to an agent.
pub const ASSIGNMENTS: &str = "switchboard_assignments_total";
/// Counter: conversations transferred (to a skill, an agent, or back to the queue).
pub const TRANSFERS: &str = "switchboard_transfers_total";
/// Counter: offers that ended unanswered, label `outcome` = offer_declined | offer_expired.
pub const OFFERS_UNANSWERED: &str = "switchboard_offers_unanswered_total";
/// Counter: conversations closed because the consumer stopped answering.
pub const AUTO_CLOSED: &str = "switchboard_conversations_auto_closed_total";
/// Counter: conversations opened outside their skill's business hours.
pub const OFF_HOURS_ARRIVALS: &str = "switchboard_off_hours_arrivals_total";
/// Counter: automatic messages stored, label `trigger`.
pub const AUTOMATIC_MESSAGES: &str = "switchboard_automatic_messages_total";
/// Counter: HTTP requests, label `status` class (1xx, 2xx, 3xx, 4xx, 5xx). WebSocket
/// upgrades are `1xx` (101 Switching Protocols); their sockets are counted by [`CONNECTIONS`].
pub const HTTP_REQUESTS: &str = "switchboard_http_requests_total";
/// Counter: audit log entries that could not be written (the change they record was made).
pub const AUDIT_WRITE_FAILURES: &str = "switchboard_audit_write_failures_total";
/// Counter: rows the retention purge deleted, label `kind` = conversations | messages |
/// events | outbox.
pub const RETENTION_PURGED: &str = "switchboard_retention_purged_total";

/// Counter: requests and connections refused by a limit against abuse, label `limit` = login |
/// anonymous | password_hashing | body_timeout | unauthenticated_sockets |
/// connections_per_address.
pub const ABUSE_REFUSED: &str = "switchboard_abuse_refused_total";

/// Counter: fetches of a brand's JWKS URL that failed (cached keys may have served).
pub const JWKS_FETCH_FAILURES: &str = "switchboard_jwks_fetch_failures_total";
/// Counter: pushes a provider accepted, label `provider` = fcm | apns.
pub const PUSH_SENT: &str = "switchboard_push_sent_total";
/// Counter: pushes refused for good, labels `provider` and `reason` = not_configured |
/// credentials | rejected | gave_up (retried as often as allowed).
pub const PUSH_FAILED: &str = "switchboard_push_failed_total";
/// Counter: pushes a provider asked to try again (429, 5xx, no answer), label `provider`.
pub const PUSH_RETRIED: &str = "switchboard_push_retried_total";
/// Counter: device tokens unregistered because the provider said they are invalid or gone,
/// label `provider`.
pub const PUSH_TOKENS_REMOVED: &str = "switchboard_push_tokens_removed_total";
/// Counter: pending pushes not sent, label `reason` = connected (a device is connected to this
/// node) | delivered (a device confirmed the message) | no_device (every device was told
/// already) | gone (the message or conversation no longer exists).
pub const PUSH_SKIPPED: &str = "switchboard_push_skipped_total";
/// Counter: pending pushes covered by a newer message's push to the same consumer.
pub const PUSH_COALESCED: &str = "switchboard_push_coalesced_total";
/// Histogram: seconds from a message being stored to its push being accepted.
pub const PUSH_DELAY_SECONDS: &str = "switchboard_push_delay_seconds";
/// Counter: certificate reloads after the TLS files changed, label `outcome` = ok | failed.
pub const TLS_RELOADS: &str = "switchboard_tls_reloads_total";
/// Counter: connections that ended before serving a request, label `reason` =
/// tls_handshake (failed or timed out) | plain_http (plain HTTP on a TLS port: redirected or
/// refused).
pub const CONNECTIONS_REFUSED: &str = "switchboard_connections_refused_total";

/// Gauge: brands whose engine runs on this node (in a fleet: whose lease it holds).
pub const ENGINES_LED: &str = "switchboard_engines_led";
/// Counter: routing inputs a fleet node gave up after no node answered them in 15 s.
pub const ENGINE_REQUESTS_FAILED: &str = "switchboard_engine_requests_failed_total";

/// Counter: cookie requests and agent upgrades refused for their `Origin`.
pub const ORIGIN_REFUSED: &str = "switchboard_origin_refused_total";

/// Installs the global Prometheus recorder once per process; later calls get the same
/// handle. `None` if another recorder was installed by someone else.
pub fn install() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new().install_recorder().ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    metrics::describe_gauge!(CONNECTIONS, "open WebSocket connections");
    metrics::describe_gauge!(ENGINES_LED, "brands whose routing engine runs on this node");
    metrics::describe_counter!(ENGINE_REQUESTS_FAILED, "routing inputs no node answered in time (fleet)");
    metrics::describe_counter!(MESSAGES_STORED, "messages durably stored");
    metrics::describe_counter!(FRAME_ERRORS, "WebSocket frames answered with an error");
    metrics::describe_histogram!(APPEND_SECONDS, "seconds from a send frame to its durable ack");
    metrics::describe_counter!(LAGGED, "times a socket fell behind the bus and was told to resync");
    metrics::describe_counter!(CONVERSATIONS_OPENED, "conversations opened");
    metrics::describe_counter!(ASSIGNMENTS, "conversations assigned to agents");
    metrics::describe_counter!(TRANSFERS, "conversations transferred to a skill, an agent or back to the queue");
    metrics::describe_counter!(OFFERS_UNANSWERED, "offers of a conversation that an agent declined or let expire");
    metrics::describe_counter!(AUTO_CLOSED, "conversations auto-closed after the consumer stopped answering");
    metrics::describe_counter!(OFF_HOURS_ARRIVALS, "conversations opened outside their skill's business hours");
    metrics::describe_counter!(AUTOMATIC_MESSAGES, "automatic messages stored, by trigger");
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by status class (WebSocket upgrades are 1xx)");
    metrics::describe_counter!(TLS_RELOADS, "TLS certificate reloads after its files changed, by outcome");
    metrics::describe_counter!(CONNECTIONS_REFUSED, "connections ended before a request, by reason");
    metrics::describe_counter!(ABUSE_REFUSED, "requests and connections refused by a limit against abuse, by limit");
    metrics::describe_counter!(ORIGIN_REFUSED, "browser requests refused for a foreign Origin");
    metrics::describe_counter!(AUDIT_WRITE_FAILURES, "audit log entries that could not be written");
    metrics::describe_counter!(RETENTION_PURGED, "rows deleted by the retention purge, by kind");
    metrics::describe_counter!(JWKS_FETCH_FAILURES, "fetches of a brand's JWKS URL that failed");
    metrics::describe_counter!(PUSH_SENT, "pushes a provider accepted, by provider");
    metrics::describe_counter!(PUSH_FAILED, "pushes refused for good, by provider and reason");
    metrics::describe_counter!(PUSH_RETRIED, "pushes a provider asked to retry later, by provider");
    metrics::describe_counter!(PUSH_TOKENS_REMOVED, "device tokens unregistered on the provider's word, by provider");
    metrics::describe_counter!(PUSH_SKIPPED, "pending pushes not sent, by reason");
    metrics::describe_counter!(PUSH_COALESCED, "pending pushes covered by a newer push to the same consumer");
    metrics::describe_histogram!(PUSH_DELAY_SECONDS, "seconds from a message being stored to its push being accepted");
    switchboard_store::describe_metrics();
}
