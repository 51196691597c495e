//! The message write path: one writer owns one connection and appends messages in batches,
//! one transaction (and so one fsync) per batch: group commit. Callers get their result
//! only after the batch committed, so an `Ok` means the message is durable.
//!
//! The rules of an append (idempotency, which conversation, who may write, a close under
//! the append) are `switchboard_core::append`'s, a pure plan; [`apply`] drives it here
//! against [`WriteTx`], the handful of statements an append needs, one append after another:
//! the `sqlite` writer (rusqlite on a dedicated thread, prepared statements, no async hops per
//! statement: the hot path of a single node). The `pg` writer (sqlx, for PostgreSQL fleets)
//! drives the same plans with [`batch`], a batch at a time, set-based: there every statement
//! is a network round trip.
//!
//! Sequence numbers come from `conversations.last_seq`, bumped in the same transaction as
//! the insert, so they are gap-free per conversation. Idempotency: an author's `client_id`
//! is unique (a partial unique index), looked up before anything is written.

pub(crate) mod batch;
pub(crate) mod pg;
pub(crate) mod sqlite;

use switchboard_core::append::{Answer, AppendPlan, AppendRequest, OriginOf, Refusal, Step};
use switchboard_protocol::{ConversationId, Millis, Side};
use tokio::sync::oneshot;

use crate::StoreError;
use crate::model::StoredMessage;

/// Most appends committed in one transaction.
pub(crate) const MAX_BATCH: usize = 512;

/// A consumer writes: into their open conversation, or a new one.
#[derive(Debug, Clone)]
pub struct ConsumerAppend {
    pub brand_id: String,
    pub consumer_id: i64,
    /// App and channel of a conversation this message opens.
    pub app_id: String,
    pub channel: String,
    pub skill_id: Option<i64>,
    /// Priority rank (0 normal, 1 high, 2 urgent) of a conversation this message opens: the
    /// entry point's.
    pub priority: i64,
    pub client_id: String,
    pub text: String,
}

/// Where an agent writes (the rules are `switchboard_core::append`'s).
pub use switchboard_core::append::AgentTarget;

/// An agent (or manager) writes.
#[derive(Debug, Clone)]
pub struct AgentAppend {
    pub brand_id: String,
    pub agent_id: i64,
    pub agent_name: String,
    /// Managers may write into conversations assigned to someone else.
    pub may_write_unassigned: bool,
    pub target: AgentTarget,
    pub client_id: String,
    pub text: String,
}

/// A system notice in a conversation.
#[derive(Debug, Clone)]
pub struct SystemAppend {
    pub brand_id: String,
    pub conversation_id: ConversationId,
    pub text: String,
    /// Unique in the conversation (an automatic message: `switchboard_core::automation::Trigger::key`):
    /// a notice whose key was stored before is not stored again. `None`: always stored.
    pub key: Option<String>,
}

/// One append request.
#[derive(Debug, Clone)]
pub enum Append {
    Consumer(ConsumerAppend),
    Agent(AgentAppend),
    System(SystemAppend),
}

/// A successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub message: StoredMessage,
    /// The consumer of the conversation written to.
    pub consumer_id: i64,
    /// The agent holding the conversation as the append read it (fan-out sends the message
    /// there); `None` while it waits for one. Not known for duplicates.
    pub agent_id: Option<i64>,
    /// The message opened a new conversation.
    pub opened: bool,
    /// The idempotency id was seen before: `message` is the one stored then.
    pub duplicate: bool,
}

/// Why an append was refused (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("conversation not found")]
    ConversationNotFound,
    #[error("the conversation is closed")]
    ConversationClosed,
    #[error("the consumer never wrote")]
    ConsumerNeverWrote,
    #[error("the conversation is not assigned to this agent")]
    NotAssigned,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) struct Job {
    pub(crate) append: Append,
    pub(crate) now: Millis,
    pub(crate) reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// Which conversations a message may be appended to: only an open one (consumer and agent
/// messages: the status is checked by the same statement that takes the seq, so a close
/// committed by another connection in between — PostgreSQL runs these transactions at READ
/// COMMITTED — is seen, never overrun), or any (system notices).
pub(crate) use switchboard_core::append::Into as AppendTo;

/// A new conversation row.
pub(crate) struct NewConversation<'a> {
    pub(crate) brand_id: &'a str,
    pub(crate) consumer_id: i64,
    pub(crate) app_id: &'a str,
    pub(crate) channel: &'a str,
    pub(crate) skill_id: Option<i64>,
    pub(crate) agent_id: Option<i64>,
    pub(crate) priority: i64,
}

/// A message row to append.
pub(crate) struct NewMessage<'a> {
    pub(crate) into: AppendTo,
    pub(crate) brand_id: &'a str,
    pub(crate) conversation_id: ConversationId,
    pub(crate) side: Side,
    pub(crate) author_id: Option<i64>,
    pub(crate) author_name: Option<&'a str>,
    pub(crate) text: &'a str,
    pub(crate) client_id: Option<&'a str>,
}

impl<'a> NewMessage<'a> {
    /// The message `append` adds to `conversation_id`.
    pub(crate) fn of(append: &'a Append, brand_id: &'a str, conversation_id: ConversationId, into: AppendTo) -> Self {
        let (side, author_id, author_name, text, client_id) = match append {
            Append::Consumer(a) => (Side::Consumer, Some(a.consumer_id), None, &a.text, Some(a.client_id.as_str())),
            Append::Agent(a) => {
                (Side::Agent, Some(a.agent_id), Some(a.agent_name.as_str()), &a.text, Some(a.client_id.as_str()))
            }
            Append::System(a) => (Side::System, None, None, &a.text, a.key.as_deref()),
        };
        NewMessage { into, brand_id, conversation_id, side, author_id, author_name, text, client_id }
    }

    /// The stored form once `seq` is taken.
    pub(crate) fn stored(&self, seq: i64, now: Millis) -> StoredMessage {
        StoredMessage {
            conversation_id: self.conversation_id,
            seq,
            side: self.side,
            author_id: self.author_id,
            author_name: self.author_name.map(str::to_owned),
            text: self.text.to_owned(),
            client_id: self.client_id.map(str::to_owned),
            created_at: now,
        }
    }
}

/// What an append needs from a conversation row: consumer, open or not, agent.
pub(crate) use switchboard_core::append::Head as ConversationHead;

/// Where a consumer's latest conversation came from (a follow-up reuses it).
pub(crate) struct Origin {
    pub(crate) app_id: String,
    pub(crate) channel: String,
    pub(crate) skill_id: Option<i64>,
}

/// The statements of an append, inside the writer's open transaction. Implementations run
/// the same SQL; they differ only in the driver.
pub(crate) trait WriteTx {
    /// The message this author already stored under `client_id`, if any.
    async fn find_duplicate(
        &mut self,
        brand_id: &str,
        side: Side,
        author_id: i64,
        client_id: &str,
    ) -> Result<Option<StoredMessage>, StoreError>;
    /// The keyed system notice stored under `key` in the conversation, if any.
    async fn find_keyed_notice(
        &mut self,
        conversation_id: ConversationId,
        key: &str,
    ) -> Result<Option<StoredMessage>, StoreError>;
    /// The consumer's open conversation and its agent.
    async fn open_conversation_of(
        &mut self,
        brand_id: &str,
        consumer_id: i64,
    ) -> Result<Option<(ConversationId, Option<i64>)>, StoreError>;
    /// Consumer, status and agent of a conversation of the brand.
    async fn conversation_head(
        &mut self,
        brand_id: &str,
        conversation_id: ConversationId,
    ) -> Result<Option<ConversationHead>, StoreError>;
    /// App, channel and skill of the consumer's latest conversation.
    async fn latest_origin(&mut self, brand_id: &str, consumer_id: i64) -> Result<Option<Origin>, StoreError>;
    /// Inserts an open conversation; returns its id.
    async fn insert_conversation(
        &mut self,
        new: &NewConversation<'_>,
        now: Millis,
    ) -> Result<ConversationId, StoreError>;
    /// Takes the next seq and inserts the message; `None` if `into` is `Open` and the
    /// conversation is not.
    async fn insert_message(&mut self, new: &NewMessage<'_>, now: Millis) -> Result<Option<StoredMessage>, StoreError>;
    /// Queues a push announcing `message` to the consumer's devices, if they registered any
    /// (an outbox row of kind `push`, in the append's transaction).
    async fn announce(
        &mut self,
        brand_id: &str,
        message: &StoredMessage,
        consumer_id: i64,
        now: Millis,
    ) -> Result<(), StoreError>;
    /// Records the first agent response time once.
    async fn set_first_response(&mut self, conversation_id: ConversationId, now: Millis) -> Result<(), StoreError>;
}

/// Applies one append inside the writer's transaction: runs the steps
/// `switchboard_core::append::AppendPlan` asks for, one statement each, until it decides.
pub(crate) async fn apply(tx: &mut impl WriteTx, append: &Append, now: Millis) -> Result<Appended, AppendError> {
    let (brand_id, request) = match append {
        Append::Consumer(a) => (&a.brand_id, AppendRequest::Consumer { consumer: a.consumer_id }),
        Append::Agent(a) => (
            &a.brand_id,
            AppendRequest::Agent { agent: a.agent_id, may_write_unassigned: a.may_write_unassigned, target: a.target },
        ),
        Append::System(a) => {
            (&a.brand_id, AppendRequest::System { conversation: a.conversation_id, keyed: a.key.is_some() })
        }
    };
    let mut plan = AppendPlan::new(request);
    let mut step = plan.first();
    // What the statements returned that the plan does not keep: the message, the origin.
    let mut message: Option<StoredMessage> = None;
    let mut origin: Option<Origin> = None;
    loop {
        let answer = match step {
            Step::Done(outcome) => {
                let message =
                    message.ok_or_else(|| StoreError::Corrupt("an append finished without a message".into()))?;
                if outcome.announce {
                    tx.announce(brand_id, &message, outcome.consumer, now).await?;
                }
                return Ok(Appended {
                    message,
                    consumer_id: outcome.consumer,
                    agent_id: outcome.agent,
                    opened: outcome.opened,
                    duplicate: outcome.duplicate,
                });
            }
            Step::Refuse(refusal) => return Err(refusal.into()),
            Step::FindDuplicate => {
                let (side, author_id, client_id) = match append {
                    Append::Consumer(a) => (Side::Consumer, a.consumer_id, &a.client_id),
                    Append::Agent(a) => (Side::Agent, a.agent_id, &a.client_id),
                    Append::System(a) => {
                        let key = a.key.as_deref().unwrap_or_default();
                        message = tx.find_keyed_notice(a.conversation_id, key).await?;
                        step = plan.next(Answer::Duplicate(message.as_ref().map(|m| m.conversation_id)));
                        continue;
                    }
                };
                message = tx.find_duplicate(brand_id, side, author_id, client_id).await?;
                Answer::Duplicate(message.as_ref().map(|m| m.conversation_id))
            }
            Step::ReadHead(conversation_id) => Answer::Head(tx.conversation_head(brand_id, conversation_id).await?),
            Step::FindOpen(consumer_id) => Answer::Open(tx.open_conversation_of(brand_id, consumer_id).await?),
            Step::FindLatest(consumer_id) => {
                origin = tx.latest_origin(brand_id, consumer_id).await?;
                Answer::Latest(origin.is_some())
            }
            Step::Open { consumer: consumer_id, assign, origin: from } => {
                let (app_id, channel, skill_id, priority) = match (from, append, &origin) {
                    (OriginOf::Request, Append::Consumer(a), _) => (&a.app_id, &a.channel, a.skill_id, a.priority),
                    (OriginOf::Latest, _, Some(latest)) => (&latest.app_id, &latest.channel, latest.skill_id, 0),
                    _ => return Err(StoreError::Corrupt("no origin for a new conversation".into()).into()),
                };
                let new =
                    NewConversation { brand_id, consumer_id, app_id, channel, skill_id, agent_id: assign, priority };
                Answer::Opened(tx.insert_conversation(&new, now).await?)
            }
            Step::Insert { conversation: conversation_id, into, first_response } => {
                let new = NewMessage::of(append, brand_id, conversation_id, into);
                message = tx.insert_message(&new, now).await?;
                if message.is_some() && first_response {
                    tx.set_first_response(conversation_id, now).await?;
                }
                Answer::Inserted(message.is_some())
            }
        };
        step = plan.next(answer);
    }
}

impl From<Refusal> for AppendError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::ConversationNotFound => AppendError::ConversationNotFound,
            Refusal::ConversationClosed => AppendError::ConversationClosed,
            Refusal::ConsumerNeverWrote => AppendError::ConsumerNeverWrote,
            Refusal::NotAssigned => AppendError::NotAssigned,
            Refusal::Protocol { .. } => AppendError::Store(StoreError::Corrupt(refusal.to_string())),
        }
    }
}

/// Waits for the next job and takes every job already queued behind it, up to
/// [`MAX_BATCH`]: the batch of one transaction. `false` when the store is gone.
pub(crate) async fn next_batch(jobs: &mut tokio::sync::mpsc::Receiver<Job>, batch: &mut Vec<Job>) -> bool {
    let Some(first) = jobs.recv().await else { return false };
    batch.push(first);
    while batch.len() < MAX_BATCH {
        match jobs.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    metrics::histogram!(crate::metrics::WRITE_BATCH_SIZE).record(batch.len() as f64);
    true
}

/// Sends each job its result; a job whose caller went away is dropped silently.
pub(crate) fn answer(batch: &mut Vec<Job>, results: Vec<Result<Appended, AppendError>>) {
    for (job, result) in batch.drain(..).zip(results) {
        let _ = job.reply.send(result);
    }
}
