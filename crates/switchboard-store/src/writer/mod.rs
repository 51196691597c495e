//! The message write path: one writer owns one connection and appends messages in batches,
//! one transaction (and so one fsync) per batch: group commit. Callers get their result
//! only after the batch committed, so an `Ok` means the message is durable.
//!
//! The rules of an append (idempotency, which conversation, gap-free seq) are written once,
//! here, against [`WriteTx`]: the handful of statements an append needs. Two writers run
//! them: `sqlite` (rusqlite on a dedicated thread, prepared statements, no async hops per
//! statement: the hot path of a single node) and `pg` (sqlx, for PostgreSQL fleets).
//!
//! Sequence numbers come from `conversations.last_seq`, bumped in the same transaction as
//! the insert, so they are gap-free per conversation. Idempotency: an author's `client_id`
//! is unique (a partial unique index), looked up before anything is written.

pub(crate) mod pg;
pub(crate) mod sqlite;

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
    pub client_id: String,
    pub text: String,
}

/// Where an agent writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentTarget {
    /// A conversation. If it is closed, the message starts a new conversation with the same
    /// consumer, assigned to the writing agent (proactive follow-up).
    Conversation(ConversationId),
    /// A consumer's open conversation, or a new one if they wrote before.
    Consumer(i64),
}

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

/// A system notice in a conversation (no idempotency id).
#[derive(Debug, Clone)]
pub struct SystemAppend {
    pub brand_id: String,
    pub conversation_id: ConversationId,
    pub text: String,
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

/// Which conversations a message may be appended to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendTo {
    /// Only an open one: consumer and agent messages. The status is checked by the same
    /// statement that takes the seq, so a close committed by another connection in between
    /// (PostgreSQL runs these transactions at READ COMMITTED) is seen, never overrun.
    Open,
    /// Open or closed: system notices.
    Any,
}

/// A new conversation row.
pub(crate) struct NewConversation<'a> {
    pub(crate) brand_id: &'a str,
    pub(crate) consumer_id: i64,
    pub(crate) app_id: &'a str,
    pub(crate) channel: &'a str,
    pub(crate) skill_id: Option<i64>,
    pub(crate) agent_id: Option<i64>,
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

impl NewMessage<'_> {
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

/// What an append needs from a conversation row.
pub(crate) struct ConversationHead {
    pub(crate) consumer_id: i64,
    pub(crate) open: bool,
    pub(crate) agent_id: Option<i64>,
}

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
    /// Records the first agent response time once.
    async fn set_first_response(&mut self, conversation_id: ConversationId, now: Millis) -> Result<(), StoreError>;
}

/// Applies one append inside the writer's transaction.
pub(crate) async fn apply(tx: &mut impl WriteTx, append: &Append, now: Millis) -> Result<Appended, AppendError> {
    match append {
        Append::Consumer(append) => append_consumer(tx, append, now).await,
        Append::Agent(append) => append_agent(tx, append, now).await,
        Append::System(append) => append_system(tx, append, now).await,
    }
}

async fn append_consumer(tx: &mut impl WriteTx, append: &ConsumerAppend, now: Millis) -> Result<Appended, AppendError> {
    if let Some(message) =
        tx.find_duplicate(&append.brand_id, Side::Consumer, append.consumer_id, &append.client_id).await?
    {
        return Ok(Appended {
            message,
            consumer_id: append.consumer_id,
            agent_id: None,
            opened: false,
            duplicate: true,
        });
    }
    // Twice at most: if the open conversation closes between the lookup and the append (a
    // close committed by another connection), the second round opens a new one.
    for _ in 0..2 {
        let (conversation_id, agent_id, opened) =
            match tx.open_conversation_of(&append.brand_id, append.consumer_id).await? {
                Some((id, agent_id)) => (id, agent_id, false),
                None => {
                    let new = NewConversation {
                        brand_id: &append.brand_id,
                        consumer_id: append.consumer_id,
                        app_id: &append.app_id,
                        channel: &append.channel,
                        skill_id: append.skill_id,
                        agent_id: None,
                    };
                    (tx.insert_conversation(&new, now).await?, None, true)
                }
            };
        let new = NewMessage {
            into: AppendTo::Open,
            brand_id: &append.brand_id,
            conversation_id,
            side: Side::Consumer,
            author_id: Some(append.consumer_id),
            author_name: None,
            text: &append.text,
            client_id: Some(&append.client_id),
        };
        if let Some(message) = tx.insert_message(&new, now).await? {
            return Ok(Appended { message, consumer_id: append.consumer_id, agent_id, opened, duplicate: false });
        }
    }
    // Closed twice within one append: someone keeps closing it; refuse rather than loop.
    Err(AppendError::ConversationClosed)
}

async fn append_agent(tx: &mut impl WriteTx, append: &AgentAppend, now: Millis) -> Result<Appended, AppendError> {
    if let Some(message) = tx.find_duplicate(&append.brand_id, Side::Agent, append.agent_id, &append.client_id).await? {
        let head = tx.conversation_head(&append.brand_id, message.conversation_id).await?;
        let consumer_id = head.ok_or(AppendError::ConversationNotFound)?.consumer_id;
        return Ok(Appended { message, consumer_id, agent_id: None, opened: false, duplicate: true });
    }
    let may_write = |agent_id: Option<i64>| agent_id == Some(append.agent_id) || append.may_write_unassigned;
    let consumer_id = match append.target {
        AgentTarget::Consumer(consumer_id) => consumer_id,
        AgentTarget::Conversation(conversation_id) => {
            let head = tx
                .conversation_head(&append.brand_id, conversation_id)
                .await?
                .ok_or(AppendError::ConversationNotFound)?;
            if head.open {
                if !may_write(head.agent_id) {
                    return Err(AppendError::NotAssigned);
                }
                if let Some(appended) =
                    write_agent_message(tx, append, conversation_id, head.consumer_id, false, now).await?
                {
                    return Ok(appended);
                }
                // Closed meanwhile: continue as a message to the consumer.
            }
            head.consumer_id
        }
    };
    // Twice at most, as for consumers: a close between lookup and append sends us round again.
    for _ in 0..2 {
        match tx.open_conversation_of(&append.brand_id, consumer_id).await? {
            Some((conversation_id, agent_id)) => {
                if !may_write(agent_id) {
                    return Err(AppendError::NotAssigned);
                }
                if let Some(appended) =
                    write_agent_message(tx, append, conversation_id, consumer_id, false, now).await?
                {
                    return Ok(appended);
                }
            }
            None => {
                // Proactive follow-up: only to a consumer who wrote before, in a new
                // conversation on the channel of their latest one, assigned to this agent.
                let origin =
                    tx.latest_origin(&append.brand_id, consumer_id).await?.ok_or(AppendError::ConsumerNeverWrote)?;
                let new = NewConversation {
                    brand_id: &append.brand_id,
                    consumer_id,
                    app_id: &origin.app_id,
                    channel: &origin.channel,
                    skill_id: origin.skill_id,
                    agent_id: Some(append.agent_id),
                };
                let conversation_id = tx.insert_conversation(&new, now).await?;
                if let Some(appended) = write_agent_message(tx, append, conversation_id, consumer_id, true, now).await?
                {
                    return Ok(appended);
                }
            }
        }
    }
    Err(AppendError::ConversationClosed)
}

async fn write_agent_message(
    tx: &mut impl WriteTx,
    append: &AgentAppend,
    conversation_id: ConversationId,
    consumer_id: i64,
    opened: bool,
    now: Millis,
) -> Result<Option<Appended>, AppendError> {
    let new = NewMessage {
        into: AppendTo::Open,
        brand_id: &append.brand_id,
        conversation_id,
        side: Side::Agent,
        author_id: Some(append.agent_id),
        author_name: Some(&append.agent_name),
        text: &append.text,
        client_id: Some(&append.client_id),
    };
    let Some(message) = tx.insert_message(&new, now).await? else { return Ok(None) };
    tx.set_first_response(conversation_id, now).await?;
    Ok(Some(Appended { message, consumer_id, agent_id: Some(append.agent_id), opened, duplicate: false }))
}

async fn append_system(tx: &mut impl WriteTx, append: &SystemAppend, now: Millis) -> Result<Appended, AppendError> {
    let head = tx
        .conversation_head(&append.brand_id, append.conversation_id)
        .await?
        .ok_or(AppendError::ConversationNotFound)?;
    let new = NewMessage {
        into: AppendTo::Any,
        brand_id: &append.brand_id,
        conversation_id: append.conversation_id,
        side: Side::System,
        author_id: None,
        author_name: None,
        text: &append.text,
        client_id: None,
    };
    let message = tx.insert_message(&new, now).await?.ok_or(AppendError::ConversationNotFound)?;
    Ok(Appended { message, consumer_id: head.consumer_id, agent_id: head.agent_id, opened: false, duplicate: false })
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
