//! The PostgreSQL writer: a tokio task with one sqlx connection, running the append rules of
//! `writer` in one transaction per batch. Also what makes multi-node safe: unique-key races
//! with other nodes are retried until the winner's row is visible.

use sqlx::{Acquire, AnyConnection, ConnectOptions, Connection, Row};
use switchboard_protocol::{ConversationId, Millis, Side};
use tokio::sync::mpsc;

use super::{
    AppendTo, ConversationHead, Job, MAX_BATCH, NewConversation, NewMessage, Origin, WriteTx, answer, apply, next_batch,
};
use crate::model::StoredMessage;
use crate::{AppendError, Appended, StoreError};

/// Runs until every `Sender` of `jobs` is dropped (the store was dropped). Every job
/// received is answered: with its result, or with an error.
pub(crate) async fn run(options: sqlx::any::AnyConnectOptions, mut conn: AnyConnection, mut jobs: mpsc::Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while next_batch(&mut jobs, &mut batch).await {
        match commit_batch(&mut conn, &batch).await {
            Ok(results) => answer(&mut batch, results),
            Err(batch_error) => {
                // A database error aborted the whole batch: a unique-key race with another
                // node, or a lost connection. Make sure the connection works, then retry each
                // job alone so one bad job cannot fail the others.
                tracing::warn!(error = %batch_error, jobs = batch.len(), "batch append failed; retrying one by one");
                if conn.ping().await.is_err() {
                    match options.connect().await {
                        Ok(fresh) => conn = fresh,
                        Err(error) => tracing::error!(%error, "writer cannot reconnect to the database"),
                    }
                }
                for job in batch.drain(..) {
                    let result = commit_alone(&mut conn, &job).await;
                    let _ = job.reply.send(result);
                }
            }
        }
    }
}

/// Commits one job in its own transaction. A unique-key conflict means another writer (a
/// second node, or a retry racing its original) committed the same message or opened the
/// same conversation first; by the time the conflict is reported that transaction has
/// committed, so a second attempt sees its row and answers from it.
async fn commit_alone(conn: &mut AnyConnection, job: &Job) -> Result<Appended, AppendError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match commit_batch(conn, std::slice::from_ref(job)).await {
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
    jobs: &[Job],
) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
    let mut tx = Connection::begin(conn).await?;
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let conn = tx.acquire().await?;
        match apply(conn, &job.append, job.now).await {
            Err(AppendError::Store(error)) => return Err(error),
            other => results.push(other),
        }
    }
    tx.commit().await?;
    Ok(results)
}

impl WriteTx for AnyConnection {
    async fn find_duplicate(
        &mut self,
        brand_id: &str,
        side: Side,
        author_id: i64,
        client_id: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let row = sqlx::query(find_duplicate(side))
            .bind(brand_id)
            .bind(author_id)
            .bind(client_id)
            .fetch_optional(&mut *self)
            .await?;
        row.map(|row| crate::message_from_row(&row)).transpose()
    }

    async fn find_keyed_notice(
        &mut self,
        conversation_id: ConversationId,
        key: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let row = sqlx::query(FIND_KEYED_NOTICE).bind(conversation_id).bind(key).fetch_optional(&mut *self).await?;
        row.map(|row| crate::message_from_row(&row)).transpose()
    }

    async fn open_conversation_of(
        &mut self,
        brand_id: &str,
        consumer_id: i64,
    ) -> Result<Option<(ConversationId, Option<i64>)>, StoreError> {
        let row = sqlx::query(
            "SELECT id, agent_id FROM conversations WHERE brand_id = $1 AND consumer_id = $2 AND status = 'open'",
        )
        .bind(brand_id)
        .bind(consumer_id)
        .fetch_optional(&mut *self)
        .await?;
        Ok(match row {
            Some(row) => Some((row.try_get(0)?, row.try_get(1)?)),
            None => None,
        })
    }

    async fn conversation_head(
        &mut self,
        brand_id: &str,
        conversation_id: ConversationId,
    ) -> Result<Option<ConversationHead>, StoreError> {
        let row =
            sqlx::query("SELECT consumer_id, status, agent_id FROM conversations WHERE id = $1 AND brand_id = $2")
                .bind(conversation_id)
                .bind(brand_id)
                .fetch_optional(&mut *self)
                .await?;
        Ok(match row {
            Some(row) => Some(ConversationHead {
                consumer: row.try_get(0)?,
                open: row.try_get::<String, _>(1)? == "open",
                agent: row.try_get(2)?,
            }),
            None => None,
        })
    }

    async fn latest_origin(&mut self, brand_id: &str, consumer_id: i64) -> Result<Option<Origin>, StoreError> {
        let row = sqlx::query(
            "SELECT app_id, channel, skill_id FROM conversations WHERE brand_id = $1 AND consumer_id = $2
             ORDER BY opened_at DESC, id DESC LIMIT 1",
        )
        .bind(brand_id)
        .bind(consumer_id)
        .fetch_optional(&mut *self)
        .await?;
        Ok(match row {
            Some(row) => Some(Origin { app_id: row.try_get(0)?, channel: row.try_get(1)?, skill_id: row.try_get(2)? }),
            None => None,
        })
    }

    async fn insert_conversation(
        &mut self,
        new: &NewConversation<'_>,
        now: Millis,
    ) -> Result<ConversationId, StoreError> {
        let id: ConversationId = sqlx::query(INSERT_CONVERSATION)
            .bind(new.brand_id)
            .bind(new.consumer_id)
            .bind(new.app_id)
            .bind(new.channel)
            .bind(new.skill_id)
            .bind(now)
            .bind(new.agent_id)
            .bind(new.agent_id.map(|_| now))
            .bind(new.priority)
            .fetch_one(&mut *self)
            .await?
            .try_get(0)?;
        sqlx::query(INSERT_OPENED_EVENT)
            .bind(new.brand_id)
            .bind(id)
            .bind(new.agent_id)
            .bind(new.skill_id)
            .bind(now)
            .execute(&mut *self)
            .await?;
        Ok(id)
    }

    async fn insert_message(&mut self, new: &NewMessage<'_>, now: Millis) -> Result<Option<StoredMessage>, StoreError> {
        let bump = match new.into {
            AppendTo::Open => BUMP_SEQ_IF_OPEN,
            AppendTo::Any => BUMP_SEQ,
        };
        let Some(row) = sqlx::query(bump)
            .bind(new.conversation_id)
            .bind(now)
            .bind(new.side.as_str())
            .fetch_optional(&mut *self)
            .await?
        else {
            return Ok(None);
        };
        let seq: i64 = row.try_get(0)?;
        sqlx::query(INSERT_MESSAGE)
            .bind(new.conversation_id)
            .bind(seq)
            .bind(new.brand_id)
            .bind(new.side.as_str())
            .bind(new.author_id)
            .bind(new.author_name)
            .bind(new.text)
            .bind(new.client_id)
            .bind(now)
            .execute(&mut *self)
            .await?;
        Ok(Some(new.stored(seq, now)))
    }

    async fn announce(
        &mut self,
        brand_id: &str,
        message: &StoredMessage,
        consumer_id: i64,
        now: Millis,
    ) -> Result<(), StoreError> {
        sqlx::query(INSERT_PUSH)
            .bind(brand_id)
            .bind(message.conversation_id)
            .bind(message.seq)
            .bind(consumer_id)
            .bind(now)
            .execute(&mut *self)
            .await?;
        Ok(())
    }

    async fn set_first_response(&mut self, conversation_id: ConversationId, now: Millis) -> Result<(), StoreError> {
        sqlx::query(SET_FIRST_RESPONSE).bind(conversation_id).bind(now).execute(&mut *self).await?;
        Ok(())
    }
}

// Statements shared with the SQLite writer (same SQL, `$n` parameters).
/// The `opened` entry of a new conversation's event log, in the append's transaction.
pub(crate) const INSERT_OPENED_EVENT: &str = "INSERT INTO conversation_events
    (brand_id, conversation_id, kind, agent_id, skill_id, at) VALUES ($1, $2, 'opened', $3, $4, $5)";

/// A conversation opened with an agent (`$7`) is that agent's proactive follow-up.
pub(crate) const INSERT_CONVERSATION: &str = "INSERT INTO conversations
    (brand_id, consumer_id, app_id, channel, skill_id, status, opened_at, last_message_at, agent_id, assigned_at,
     priority, follow_up_by)
    VALUES ($1, $2, $3, $4, $5, 'open', $6, $6, $7, $8, $9, $7) RETURNING id";
/// Takes the next seq of an open conversation and stamps who wrote when (`$3`: the side, `a` or `c`).
pub(crate) const BUMP_SEQ_IF_OPEN: &str = "UPDATE conversations SET last_seq = last_seq + 1, last_message_at = $2,
    last_agent_at = CASE WHEN $3 = 'a' THEN $2 ELSE last_agent_at END,
    last_consumer_at = CASE WHEN $3 = 'c' THEN $2 ELSE last_consumer_at END
    WHERE id = $1 AND status = 'open' RETURNING last_seq";
/// The same for any conversation (system notices; `$3` is `s`, stamping nothing).
pub(crate) const BUMP_SEQ: &str = "UPDATE conversations SET last_seq = last_seq + 1, last_message_at = $2
    WHERE id = $1 AND $3 = 's' RETURNING last_seq";
/// The message an author stored under a client id (`$1` brand, `$2` author, `$3` client id).
/// The side is written into the statement, not bound: SQLite re-prepares a statement whose
/// bound value decides whether a partial index applies (`messages_system_key` is for
/// `side = 's'`), so a bound side re-parsed this statement on nearly every append.
pub(crate) fn find_duplicate(side: Side) -> &'static str {
    match side {
        Side::Consumer => FIND_DUPLICATE_CONSUMER,
        Side::Agent => FIND_DUPLICATE_AGENT,
        Side::System => FIND_DUPLICATE_SYSTEM,
    }
}
const FIND_DUPLICATE_CONSUMER: &str = "SELECT conversation_id, seq, side, author_id, author_name, text, client_id,
    created_at FROM messages WHERE brand_id = $1 AND side = 'c' AND author_id = $2 AND client_id = $3";
const FIND_DUPLICATE_AGENT: &str = "SELECT conversation_id, seq, side, author_id, author_name, text, client_id,
    created_at FROM messages WHERE brand_id = $1 AND side = 'a' AND author_id = $2 AND client_id = $3";
const FIND_DUPLICATE_SYSTEM: &str = "SELECT conversation_id, seq, side, author_id, author_name, text, client_id,
    created_at FROM messages WHERE brand_id = $1 AND side = 's' AND author_id = $2 AND client_id = $3";
/// A keyed system notice (an automatic message) stored before in the conversation.
pub(crate) const FIND_KEYED_NOTICE: &str = "SELECT conversation_id, seq, side, author_id, author_name, text,
    client_id, created_at FROM messages WHERE conversation_id = $1 AND side = 's' AND client_id = $2";
pub(crate) const INSERT_MESSAGE: &str = "INSERT INTO messages
    (conversation_id, seq, brand_id, side, author_id, author_name, text, client_id, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// A pending push for a stored message, only for a consumer with a registered device.
pub(crate) const INSERT_PUSH: &str = "INSERT INTO outbox
    (brand_id, kind, conversation_id, seq, consumer_id, created_at, due_at)
    SELECT $1, 'push', $2, $3, $4, $5, $5
    WHERE EXISTS (SELECT 1 FROM push_tokens WHERE brand_id = $1 AND consumer_id = $4)";
pub(crate) const SET_FIRST_RESPONSE: &str =
    "UPDATE conversations SET first_response_at = $2 WHERE id = $1 AND first_response_at IS NULL";
