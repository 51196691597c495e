//! The message write path: one task owns one connection and appends messages in batches,
//! one transaction (and so one fsync) per batch: group commit. Callers get their result
//! only after the batch committed, so an `Ok` means the message is durable.
//!
//! Sequence numbers come from `conversations.last_seq`, bumped in the same transaction as
//! the insert, so they are gap-free per conversation. Idempotency: an author's `client_id`
//! is unique (a partial unique index), looked up before anything is written.

use sqlx::{Acquire, AnyConnection, Connection, Row};
use switchboard_protocol::{ConversationId, Millis, Side};
use tokio::sync::{mpsc, oneshot};

use crate::model::StoredMessage;
use crate::{Dialect, StoreError};

/// Most appends committed in one transaction.
const MAX_BATCH: usize = 512;

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

/// Runs until every `Sender` of `jobs` is dropped (the store was dropped), then returns,
/// closing its connection. Jobs received are always answered: a dropped reply channel would
/// make a caller think the write failed when it may have committed, so every job gets either
/// its result or an error.
pub(crate) async fn run(mut conn: AnyConnection, reconnect: Reconnect, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = jobs.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        metrics::histogram!(crate::metrics::WRITE_BATCH_SIZE).record(batch.len() as f64);
        match commit_batch(&mut conn, reconnect.dialect, &batch).await {
            Ok(results) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(batch_error) => {
                // A database error aborted the whole batch: a unique-key race with another
                // node, or a lost connection. Make sure the connection works, then retry each
                // job alone so one bad job cannot fail the others.
                tracing::warn!(error = %batch_error, jobs = batch.len(), "batch append failed; retrying one by one");
                if conn.ping().await.is_err() {
                    match reconnect.connect().await {
                        Ok(fresh) => conn = fresh,
                        Err(error) => tracing::error!(%error, "writer cannot reconnect to the database"),
                    }
                }
                for job in batch.drain(..) {
                    let result = commit_alone(&mut conn, reconnect.dialect, &job).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// How the writer gets a new connection after losing one.
pub(crate) struct Reconnect {
    pub(crate) options: sqlx::any::AnyConnectOptions,
    pub(crate) dialect: Dialect,
    pub(crate) sqlite_sync: crate::SqliteSync,
}

impl Reconnect {
    pub(crate) async fn connect(&self) -> Result<AnyConnection, sqlx::Error> {
        use sqlx::ConnectOptions;
        let mut conn = self.options.connect().await?;
        if self.dialect == Dialect::Sqlite {
            crate::configure_sqlite(&mut conn, self.sqlite_sync).await?;
        }
        Ok(conn)
    }
}

/// Commits one job in its own transaction. A unique-key conflict means another writer (a
/// second node, or a retry racing its original) committed the same message or opened the
/// same conversation first; by the time the conflict is reported that transaction has
/// committed, so a second attempt sees its row and answers from it.
async fn commit_alone(conn: &mut AnyConnection, dialect: Dialect, job: &Job) -> Result<Appended, AppendError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match commit_batch(conn, dialect, std::slice::from_ref(job)).await {
            Ok(mut results) => return results.pop().expect("one result per job"),
            Err(StoreError::Conflict(_)) if attempts < 3 => continue,
            Err(error) => return Err(AppendError::Store(error)),
        }
    }
}

/// Applies `jobs` in one transaction. Refusals (closed conversation, …) are per-job
/// results; a database error aborts the transaction and is returned for the whole batch.
async fn commit_batch(
    conn: &mut AnyConnection,
    dialect: Dialect,
    jobs: &[Job],
) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
    let mut tx = conn.begin_with(dialect.begin_write()).await?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let conn = tx.acquire().await?;
        let result = match &job.append {
            Append::Consumer(append) => append_consumer(conn, append, job.now).await,
            Append::Agent(append) => append_agent(conn, append, job.now).await,
            Append::System(append) => append_system(conn, append, job.now).await,
        };
        match result {
            Err(AppendError::Store(error)) => return Err(error),
            other => results.push(other),
        }
    }
    tx.commit().await?;
    Ok(results)
}

async fn find_duplicate(
    conn: &mut AnyConnection,
    brand_id: &str,
    side: Side,
    author_id: i64,
    client_id: &str,
) -> Result<Option<StoredMessage>, StoreError> {
    let row = sqlx::query(
        "SELECT conversation_id, seq, side, author_id, author_name, text, client_id, created_at
         FROM messages WHERE brand_id = $1 AND side = $2 AND author_id = $3 AND client_id = $4",
    )
    .bind(brand_id)
    .bind(side.as_str())
    .bind(author_id)
    .bind(client_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| crate::message_from_row(&row)).transpose()
}

/// Which conversations a message may be appended to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppendTo {
    /// Only an open one: consumer and agent messages. The status is checked by the same
    /// statement that takes the seq, so a close committed by another connection in between
    /// (PostgreSQL runs these transactions at READ COMMITTED) is seen, never overrun.
    Open,
    /// Open or closed: system notices.
    Any,
}

/// Appends one message row; `None` if `into` is `Open` and the conversation is not.
#[allow(clippy::too_many_arguments)] // One row's columns; a struct would only rename them.
async fn insert_message(
    conn: &mut AnyConnection,
    into: AppendTo,
    brand_id: &str,
    conversation_id: ConversationId,
    side: Side,
    author_id: Option<i64>,
    author_name: Option<&str>,
    text: &str,
    client_id: Option<&str>,
    now: Millis,
) -> Result<Option<StoredMessage>, StoreError> {
    let bump = match into {
        AppendTo::Open => {
            "UPDATE conversations SET last_seq = last_seq + 1, last_message_at = $2 WHERE id = $1 AND status = 'open'
             RETURNING last_seq"
        }
        AppendTo::Any => {
            "UPDATE conversations SET last_seq = last_seq + 1, last_message_at = $2 WHERE id = $1 RETURNING last_seq"
        }
    };
    let Some(row) = sqlx::query(bump).bind(conversation_id).bind(now).fetch_optional(&mut *conn).await? else {
        return Ok(None);
    };
    let seq: i64 = row.try_get(0)?;
    sqlx::query(
        "INSERT INTO messages (conversation_id, seq, brand_id, side, author_id, author_name, text, client_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(conversation_id)
    .bind(seq)
    .bind(brand_id)
    .bind(side.as_str())
    .bind(author_id)
    .bind(author_name)
    .bind(text)
    .bind(client_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(Some(StoredMessage {
        conversation_id,
        seq,
        side,
        author_id,
        author_name: author_name.map(str::to_owned),
        text: text.to_owned(),
        client_id: client_id.map(str::to_owned),
        created_at: now,
    }))
}

async fn open_conversation_of(
    conn: &mut AnyConnection,
    brand_id: &str,
    consumer_id: i64,
) -> Result<Option<(ConversationId, Option<i64>)>, StoreError> {
    let row = sqlx::query(
        "SELECT id, agent_id FROM conversations WHERE brand_id = $1 AND consumer_id = $2 AND status = 'open'",
    )
    .bind(brand_id)
    .bind(consumer_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(match row {
        Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
        None => None,
    })
}

struct NewConversation<'a> {
    brand_id: &'a str,
    consumer_id: i64,
    app_id: &'a str,
    channel: &'a str,
    skill_id: Option<i64>,
    agent_id: Option<i64>,
}

async fn insert_conversation(
    conn: &mut AnyConnection,
    new: NewConversation<'_>,
    now: Millis,
) -> Result<ConversationId, StoreError> {
    let assigned_at = new.agent_id.map(|_| now);
    Ok(sqlx::query(
        "INSERT INTO conversations (brand_id, consumer_id, app_id, channel, skill_id, status, opened_at, last_message_at, agent_id, assigned_at)
         VALUES ($1, $2, $3, $4, $5, 'open', $6, $6, $7, $8) RETURNING id",
    )
    .bind(new.brand_id)
    .bind(new.consumer_id)
    .bind(new.app_id)
    .bind(new.channel)
    .bind(new.skill_id)
    .bind(now)
    .bind(new.agent_id)
    .bind(assigned_at)
    .fetch_one(&mut *conn)
    .await?
    .try_get(0)?)
}

async fn append_consumer(
    conn: &mut AnyConnection,
    append: &ConsumerAppend,
    now: Millis,
) -> Result<Appended, AppendError> {
    if let Some(message) =
        find_duplicate(conn, &append.brand_id, Side::Consumer, append.consumer_id, &append.client_id).await?
    {
        return Ok(Appended { message, consumer_id: append.consumer_id, opened: false, duplicate: true });
    }
    // Twice at most: if the open conversation closes between the lookup and the append (a
    // close committed by another connection), the second round opens a new one.
    for _ in 0..2 {
        let (conversation_id, opened) = match open_conversation_of(conn, &append.brand_id, append.consumer_id).await? {
            Some((id, _)) => (id, false),
            None => {
                let new = NewConversation {
                    brand_id: &append.brand_id,
                    consumer_id: append.consumer_id,
                    app_id: &append.app_id,
                    channel: &append.channel,
                    skill_id: append.skill_id,
                    agent_id: None,
                };
                (insert_conversation(conn, new, now).await?, true)
            }
        };
        let inserted = insert_message(
            conn,
            AppendTo::Open,
            &append.brand_id,
            conversation_id,
            Side::Consumer,
            Some(append.consumer_id),
            None,
            &append.text,
            Some(&append.client_id),
            now,
        )
        .await?;
        if let Some(message) = inserted {
            return Ok(Appended { message, consumer_id: append.consumer_id, opened, duplicate: false });
        }
    }
    // Closed twice within one append: the conversation is being closed repeatedly by
    // someone; refuse rather than loop.
    Err(AppendError::ConversationClosed)
}

async fn append_agent(conn: &mut AnyConnection, append: &AgentAppend, now: Millis) -> Result<Appended, AppendError> {
    if let Some(message) =
        find_duplicate(conn, &append.brand_id, Side::Agent, append.agent_id, &append.client_id).await?
    {
        let consumer_id: i64 = sqlx::query("SELECT consumer_id FROM conversations WHERE id = $1")
            .bind(message.conversation_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(StoreError::from)?
            .try_get(0)
            .map_err(StoreError::from)?;
        return Ok(Appended { message, consumer_id, opened: false, duplicate: true });
    }
    let consumer_id = match append.target {
        AgentTarget::Consumer(consumer_id) => consumer_id,
        AgentTarget::Conversation(conversation_id) => {
            let row =
                sqlx::query("SELECT consumer_id, status, agent_id FROM conversations WHERE id = $1 AND brand_id = $2")
                    .bind(conversation_id)
                    .bind(&append.brand_id)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(StoreError::from)?
                    .ok_or(AppendError::ConversationNotFound)?;
            let consumer_id: i64 = row.try_get(0).map_err(StoreError::from)?;
            let status: String = row.try_get(1).map_err(StoreError::from)?;
            if status == "open" {
                let agent_id: Option<i64> = row.try_get(2).map_err(StoreError::from)?;
                if agent_id != Some(append.agent_id) && !append.may_write_unassigned {
                    return Err(AppendError::NotAssigned);
                }
                if let Some(appended) =
                    write_agent_message(conn, append, conversation_id, consumer_id, false, now).await?
                {
                    return Ok(appended);
                }
                // Closed meanwhile: continue as a message to the consumer.
            }
            consumer_id
        }
    };
    // Twice at most, as for consumers: a close between lookup and append sends us round again.
    for _ in 0..2 {
        match open_conversation_of(conn, &append.brand_id, consumer_id).await? {
            Some((conversation_id, agent_id)) => {
                if agent_id != Some(append.agent_id) && !append.may_write_unassigned {
                    return Err(AppendError::NotAssigned);
                }
                if let Some(appended) =
                    write_agent_message(conn, append, conversation_id, consumer_id, false, now).await?
                {
                    return Ok(appended);
                }
            }
            None => {
                // Proactive follow-up: only to a consumer who wrote before, in a new
                // conversation on the channel of their latest one, assigned to this agent.
                let last = sqlx::query(
                    "SELECT app_id, channel, skill_id FROM conversations WHERE brand_id = $1 AND consumer_id = $2
                     ORDER BY opened_at DESC, id DESC LIMIT 1",
                )
                .bind(&append.brand_id)
                .bind(consumer_id)
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::from)?
                .ok_or(AppendError::ConsumerNeverWrote)?;
                let app_id: String = last.try_get(0).map_err(StoreError::from)?;
                let channel: String = last.try_get(1).map_err(StoreError::from)?;
                let new = NewConversation {
                    brand_id: &append.brand_id,
                    consumer_id,
                    app_id: &app_id,
                    channel: &channel,
                    skill_id: last.try_get(2).map_err(StoreError::from)?,
                    agent_id: Some(append.agent_id),
                };
                let conversation_id = insert_conversation(conn, new, now).await?;
                if let Some(appended) =
                    write_agent_message(conn, append, conversation_id, consumer_id, true, now).await?
                {
                    return Ok(appended);
                }
            }
        }
    }
    Err(AppendError::ConversationClosed)
}

async fn write_agent_message(
    conn: &mut AnyConnection,
    append: &AgentAppend,
    conversation_id: ConversationId,
    consumer_id: i64,
    opened: bool,
    now: Millis,
) -> Result<Option<Appended>, AppendError> {
    let Some(message) = insert_message(
        conn,
        AppendTo::Open,
        &append.brand_id,
        conversation_id,
        Side::Agent,
        Some(append.agent_id),
        Some(&append.agent_name),
        &append.text,
        Some(&append.client_id),
        now,
    )
    .await?
    else {
        return Ok(None);
    };
    sqlx::query("UPDATE conversations SET first_response_at = $2 WHERE id = $1 AND first_response_at IS NULL")
        .bind(conversation_id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(StoreError::from)?;
    Ok(Some(Appended { message, consumer_id, opened, duplicate: false }))
}

async fn append_system(conn: &mut AnyConnection, append: &SystemAppend, now: Millis) -> Result<Appended, AppendError> {
    let consumer_id: i64 = sqlx::query("SELECT consumer_id FROM conversations WHERE id = $1 AND brand_id = $2")
        .bind(append.conversation_id)
        .bind(&append.brand_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::from)?
        .ok_or(AppendError::ConversationNotFound)?
        .try_get(0)
        .map_err(StoreError::from)?;
    let message = insert_message(
        conn,
        AppendTo::Any,
        &append.brand_id,
        append.conversation_id,
        Side::System,
        None,
        None,
        &append.text,
        None,
        now,
    )
    .await?
    .ok_or(AppendError::ConversationNotFound)?;
    Ok(Appended { message, consumer_id, opened: false, duplicate: false })
}
