//! The SDK's public data types: owned, plain structs and enums (no generics, no lifetimes),
//! so that foreign-language bindings can mirror them one to one.

use switchboard_protocol::{ConversationStatus, Side};

/// Where a message stands, from the app's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// Written on this device, not yet acknowledged by the server (offline or in flight).
    Pending,
    /// Durably stored by the server (it has a `seq`).
    Sent,
    /// The other side's device received it.
    Delivered,
    /// The other side read it.
    Read,
    /// The server refused it for good (e.g. too long); it will not be retried.
    Failed,
}

/// A message in the local cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Conversation id; `None` while a pending message has no conversation yet.
    pub conversation: Option<i64>,
    /// Server sequence number; `None` while pending.
    pub seq: Option<i64>,
    /// The idempotency id (ours for messages written here).
    pub client_id: Option<String>,
    pub from: Side,
    /// Display name of the author (agents).
    pub author: Option<String>,
    pub text: String,
    /// Server time (ms since epoch) once sent; local time while pending.
    pub timestamp_ms: i64,
    pub state: MessageState,
    /// Why a `Failed` message was refused.
    pub error: Option<String>,
}

/// A message waiting in the outbox, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Local order (increasing).
    pub local_id: i64,
    /// Idempotency id sent as `cid`.
    pub client_id: String,
    pub text: String,
    /// When the app wrote it (ms since epoch).
    pub created_ms: i64,
}

/// A conversation in the local cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationInfo {
    pub id: i64,
    pub status: ConversationStatus,
    pub opened_ms: i64,
    pub closed_ms: Option<i64>,
    /// Highest `seq` the server says exists.
    pub last_seq: i64,
    /// Display name of the assigned agent, if any.
    pub agent: Option<String>,
    /// The CSAT score given.
    pub csat: Option<u8>,
    /// A CSAT survey waits for an answer.
    pub survey_open: bool,
}

/// The last estimated wait the server gave for the consumer's queued conversation, kept in
/// the encrypted local cache so that an app restarted offline can still show it. Cleared
/// when an agent takes the conversation or it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEstimate {
    pub conversation: i64,
    /// The estimated wait when it was received, in seconds.
    pub eta_secs: u32,
    /// When this device received it (ms since epoch, device clock).
    pub received_ms: i64,
}

impl QueueEstimate {
    /// Seconds still to wait at `now_ms` (ms since epoch), counting down from when the
    /// estimate was received; 0 once it has run out (the wait may still go on).
    pub fn remaining_secs(&self, now_ms: i64) -> u32 {
        let elapsed_ms = now_ms.saturating_sub(self.received_ms).max(0);
        let left_ms = (i64::from(self.eta_secs) * 1000).saturating_sub(elapsed_ms).max(0);
        u32::try_from((left_ms + 999) / 1000).unwrap_or(u32::MAX)
    }
}

/// What a Switchboard push notification tells the app: the message it announces. From
/// [`parse_push_payload`](crate::parse_push_payload); hand it to
/// [`Client::open_push`](crate::Client::open_push) when the user opens the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushPayload {
    /// The conversation the message is in.
    pub conversation: i64,
    /// The message's sequence number in it.
    pub seq: i64,
    /// The consumer's unread messages when the push was sent (the app icon's badge).
    pub badge: Option<u32>,
}
