//! Events the SDK reports to the app: as an async `Stream` ([`EventStream`]) or through a
//! callback ([`EventListener`], the form foreign-language bindings use).

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use futures_util::stream::BoxStream;
use switchboard_protocol::Side;
use tokio::sync::broadcast;

use crate::model::{ChatMessage, MessageState};

/// The link to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Not connected and not trying (before `connect`, after `shutdown`).
    Disconnected,
    /// Opening the socket and authenticating.
    Connecting,
    /// Connected; messages flow live.
    Connected,
    /// The connection was lost or refused; the next attempt starts in `retry_in_ms`.
    WaitingToReconnect { retry_in_ms: u64 },
}

/// Something the app may want to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The connection changed state.
    Connection(ConnectionState),
    /// A new message arrived (from an agent, the system, or this consumer's other device).
    MessageReceived(ChatMessage),
    /// One of our messages changed state (sent, delivered, read, failed). `client_id` is the
    /// id `send_text` returned; `error` says why a `Failed` message was refused.
    MessageStateChanged {
        client_id: String,
        conversation: Option<i64>,
        seq: Option<i64>,
        state: MessageState,
        error: Option<String>,
    },
    /// The other side delivered/read our messages up to `seq` (cumulative).
    Receipt { conversation: i64, by: Side, read: bool, seq: i64 },
    /// The agent started or stopped typing; `name` is the agent's display name when the
    /// server sends it (servers before the typing name send none).
    Typing { conversation: i64, on: bool, name: Option<String> },
    /// A new conversation waits for an agent; `eta_secs` is the estimated wait (`None` when
    /// no agent who could take it is online). The estimate is also kept in the local cache:
    /// see [`crate::Client::queue_estimate`].
    Queued { conversation: i64, eta_secs: Option<u32> },
    /// An agent took the conversation.
    Assigned { conversation: i64, agent: Option<String> },
    /// The conversation was closed by the agent, the consumer or the system.
    Closed { conversation: i64, by: Option<Side> },
    /// Please ask the consumer for a 1–5 rating (answer with `answer_survey`).
    SurveyRequested { conversation: i64 },
    /// Something failed; `transient` errors are retried by the SDK itself.
    Error { message: String, code: Option<String>, transient: bool },
}

/// Callback form of the event stream, for bindings.
pub trait EventListener: Send + Sync + 'static {
    /// Called on the SDK's task for every event; return quickly.
    fn on_event(&self, event: Event);
}

/// The event stream of a client. Events emitted while the stream lagged far behind are
/// skipped (the local cache always has the truth).
pub struct EventStream {
    inner: BoxStream<'static, Event>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    pub(crate) fn new(receiver: broadcast::Receiver<Event>) -> EventStream {
        let inner = futures_util::stream::unfold(receiver, |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => return Some((event, receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        EventStream { inner: Box::pin(inner) }
    }
}

impl Stream for EventStream {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.inner.as_mut().poll_next(cx)
    }
}
