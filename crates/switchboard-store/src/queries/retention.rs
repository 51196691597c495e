//! The retention purge's storage: deleting conversations past a brand's retention in small
//! batches, and the record of each run.
//!
//! A batch ([`Store::purge_batch`]) is one short transaction of a few set-based statements
//! that deletes at most a given number of messages — whole conversations, the oldest-closed
//! first, while they fit; a conversation with more messages than that is deleted over several
//! batches, its messages from the first seq up, and its row, event log and outbox rows with its
//! last messages. Its first write re-checks, and locks, that each conversation is still closed
//! and past the horizon, so a conversation an agent reopens meanwhile is left alone. The same transaction adds what it deleted to the
//! brand's run (`retention_runs`), so after a crash or a restart the run continues where it
//! stopped with exact counts: nothing else remembers progress (what is past retention is
//! simply what is still there).
//!
//! When a consumer's last conversation goes, their profile's personal fields (name, email,
//! phone, device, language) are cleared too; the identity row stays, so a returning consumer
//! keeps their id (push tokens stay with their device).

use sqlx::Row;
use switchboard_protocol::{ConversationId, Millis};

use super::search::{Bind, Sql};
use crate::{Store, StoreError};

/// What a purge deleted (one batch, or a run's total).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PurgeCounts {
    pub conversations: i64,
    pub messages: i64,
    pub events: i64,
    pub outbox: i64,
    /// CSAT answers (of the conversations deleted).
    pub csat: i64,
    /// Consumer profiles whose personal fields were cleared (their last conversation went).
    pub profiles: i64,
}

impl PurgeCounts {
    /// Nothing was deleted.
    pub fn is_empty(&self) -> bool {
        *self == PurgeCounts::default()
    }

    fn add(&mut self, other: &PurgeCounts) {
        self.conversations += other.conversations;
        self.messages += other.messages;
        self.events += other.events;
        self.outbox += other.outbox;
        self.csat += other.csat;
        self.profiles += other.profiles;
    }
}

/// One run of the purge over a brand.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RetentionRun {
    pub id: i64,
    pub brand_id: String,
    pub started_at: Millis,
    /// Conversations closed before this were purged.
    pub horizon: Millis,
    /// `None` while under way (or interrupted: the next run continues it).
    pub finished_at: Option<Millis>,
    pub counts: PurgeCounts,
}

/// A conversation due for purging, as read before the batch's transaction.
struct Due {
    id: ConversationId,
    last_seq: i64,
}

const RUN_COLUMNS: &str =
    "id, brand_id, started_at, horizon, finished_at, conversations, messages, events, outbox, csat, profiles";

fn run_from_row(row: &sqlx::any::AnyRow) -> Result<RetentionRun, StoreError> {
    Ok(RetentionRun {
        id: row.try_get("id")?,
        brand_id: row.try_get("brand_id")?,
        started_at: row.try_get("started_at")?,
        horizon: row.try_get("horizon")?,
        finished_at: row.try_get("finished_at")?,
        counts: PurgeCounts {
            conversations: row.try_get("conversations")?,
            messages: row.try_get("messages")?,
            events: row.try_get("events")?,
            outbox: row.try_get("outbox")?,
            csat: row.try_get("csat")?,
            profiles: row.try_get("profiles")?,
        },
    })
}

fn rows(done: sqlx::any::AnyQueryResult) -> i64 {
    i64::try_from(done.rows_affected()).unwrap_or(i64::MAX)
}

impl Store {
    /// How many conversations of the brand are past `horizon` and not yet purged.
    pub async fn count_past_retention(&self, brand_id: &str, horizon: Millis) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM conversations WHERE brand_id = $1 AND status = 'closed' AND closed_at < $2",
        )
        .bind(brand_id)
        .bind(horizon)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Deletes at most `max_messages` messages of the brand's conversations closed before
    /// `horizon`, oldest-closed first, in one transaction of a few set-based statements (so it
    /// holds the database's write lock for milliseconds, whatever it deletes), which also adds
    /// the counts to the brand's run under way (creating it, at `now`, if none is): whole
    /// conversations while they fit in `max_messages`, or the next `max_messages` messages of
    /// one that does not. An empty result: nothing is past the horizon any more.
    pub async fn purge_batch(
        &self,
        brand_id: &str,
        horizon: Millis,
        max_messages: i64,
        now: Millis,
    ) -> Result<PurgeCounts, StoreError> {
        let max_messages = max_messages.max(1);
        // Read outside the transaction: its first statement must be a write (see
        // `erase_consumer`), and that write checks each candidate again.
        let candidates = sqlx::query(
            "SELECT id, last_seq FROM conversations WHERE brand_id = $1 AND status = 'closed' AND closed_at < $2
             ORDER BY closed_at, id LIMIT 256",
        )
        .bind(brand_id)
        .bind(horizon)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok(Due { id: row.try_get(0)?, last_seq: row.try_get(1)? }))
        .collect::<Result<Vec<_>, StoreError>>()?;
        let Some(first) = candidates.first() else { return Ok(PurgeCounts::default()) };
        let mut conn = self.pool.acquire().await?;
        // On SQLite the purge commits without waiting for the disk (`synchronous = NORMAL`):
        // a commit is then still durable against a crash of the process, and what a power
        // loss could undo is a batch that is still past retention, deleted again by the next
        // run (its counts were in the same transaction). Its fsyncs would otherwise hold the
        // database's one write lock, which the message writer waits for.
        let relaxed = self.dialect == crate::Dialect::Sqlite && self.sqlite_sync == crate::SqliteSync::Full;
        if relaxed {
            sqlx::query("PRAGMA synchronous = NORMAL").execute(&mut *conn).await?;
        }
        let result = purge_candidates(&mut conn, brand_id, horizon, max_messages, now, first, &candidates).await;
        if relaxed && sqlx::query("PRAGMA synchronous = FULL").execute(&mut *conn).await.is_err() {
            // Never hand a relaxed connection back to the pool.
            conn.close_on_drop();
        }
        result
    }

    /// The brand's run under way (or interrupted), if any.
    pub async fn retention_run_under_way(&self, brand_id: &str) -> Result<Option<RetentionRun>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM retention_runs WHERE brand_id = $1 AND finished_at IS NULL"
        )))
        .bind(brand_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| run_from_row(&row)).transpose()
    }

    /// Marks the brand's run under way finished at `now` and returns it (`None`: no run was
    /// under way, nothing was purged).
    pub async fn finish_retention_run(&self, brand_id: &str, now: Millis) -> Result<Option<RetentionRun>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE retention_runs SET finished_at = $2 WHERE brand_id = $1 AND finished_at IS NULL
             RETURNING {RUN_COLUMNS}"
        )))
        .bind(brand_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| run_from_row(&row)).transpose()
    }

    /// The brand's latest runs, newest first.
    pub async fn retention_runs(&self, brand_id: &str, limit: u32) -> Result<Vec<RetentionRun>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM retention_runs WHERE brand_id = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(brand_id)
        .bind(i64::from(limit.clamp(1, 100)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    /// Purges everything of the brand past `horizon`, batch after batch (each its own
    /// transaction of at most `max_messages` messages), and finishes the run. For tools and
    /// tests; the server's job pauses between batches and records the run in the audit log.
    pub async fn purge_all(
        &self,
        brand_id: &str,
        horizon: Millis,
        max_messages: i64,
        now: Millis,
    ) -> Result<PurgeCounts, StoreError> {
        let mut total = PurgeCounts::default();
        loop {
            let batch = self.purge_batch(brand_id, horizon, max_messages, now).await?;
            if batch.is_empty() {
                break;
            }
            total.add(&batch);
        }
        self.finish_retention_run(brand_id, now).await?;
        Ok(total)
    }
}

/// Deletes conversations whose messages are gone (`ids`, held by the caller's transaction):
/// their event logs, outbox rows and rows, and clears the personal fields of consumers left
/// without any conversation. Counts all but messages.
async fn delete_conversations(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    brand_id: &str,
    ids: &[ConversationId],
) -> Result<PurgeCounts, StoreError> {
    let brand = || Bind::Text(brand_id.to_owned());
    let mut counts = PurgeCounts::default();
    let mut sql = Sql::new("DELETE FROM conversation_events WHERE ");
    sql.push("brand_id = ? AND conversation_id IN ", [brand()]).push_ids(ids);
    counts.events = rows(sql.query().execute(&mut **tx).await?);
    let mut sql = Sql::new("DELETE FROM outbox WHERE ");
    sql.push("brand_id = ? AND conversation_id IN ", [brand()]).push_ids(ids);
    counts.outbox = rows(sql.query().execute(&mut **tx).await?);
    let mut sql = Sql::new("DELETE FROM conversations WHERE ");
    sql.push("brand_id = ? AND id IN ", [brand()]).push_ids(ids);
    sql.text.push_str(" RETURNING consumer_id, csat_score");
    let gone = sql.query().fetch_all(&mut **tx).await?;
    counts.conversations = gone.len() as i64;
    let mut consumers = Vec::new();
    for row in &gone {
        let consumer_id: i64 = row.try_get(0)?;
        let csat: Option<i64> = row.try_get(1)?;
        counts.csat += i64::from(csat.is_some());
        consumers.push(consumer_id);
    }
    consumers.sort_unstable();
    consumers.dedup();
    if !consumers.is_empty() {
        let mut sql = Sql::new(
            "UPDATE consumers SET name = NULL, email = NULL, phone = NULL, device = NULL, language = NULL WHERE ",
        );
        sql.push("brand_id = ? AND id IN ", [brand()]).push_ids(&consumers);
        sql.push(
            " AND (name IS NOT NULL OR email IS NOT NULL OR phone IS NOT NULL OR device IS NOT NULL
                   OR language IS NOT NULL)
               AND NOT EXISTS (SELECT 1 FROM conversations c WHERE c.brand_id = ? AND c.consumer_id = consumers.id)",
            [brand()],
        );
        counts.profiles = rows(sql.query().execute(&mut **tx).await?);
    }
    Ok(counts)
}

/// The transaction of [`Store::purge_batch`] on `conn`, for `candidates` (oldest-closed first).
async fn purge_candidates(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    brand_id: &str,
    horizon: Millis,
    max_messages: i64,
    now: Millis,
    first: &Due,
    candidates: &[Due],
) -> Result<PurgeCounts, StoreError> {
    let mut tx = sqlx::Connection::begin(&mut **conn).await?;
    let mut batch = PurgeCounts::default();
    if first.last_seq > max_messages {
        // A long conversation: its next messages only, the row and the rest later. The
        // update re-checks (and locks) that it is still closed and past the horizon; it
        // changes nothing a reader sees (a closed conversation's survey is long over).
        let held = sqlx::query(
            "UPDATE conversations SET survey_open = 0
             WHERE brand_id = $1 AND id = $2 AND status = 'closed' AND closed_at < $3",
        )
        .bind(brand_id)
        .bind(first.id)
        .bind(horizon)
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() == 1 {
            let oldest: Option<i64> =
                sqlx::query("SELECT MIN(seq) FROM messages WHERE brand_id = $1 AND conversation_id = $2")
                    .bind(brand_id)
                    .bind(first.id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
            let up_to = oldest.unwrap_or(0) + max_messages - 1;
            batch.messages = rows(
                sqlx::query("DELETE FROM messages WHERE brand_id = $1 AND conversation_id = $2 AND seq <= $3")
                    .bind(brand_id)
                    .bind(first.id)
                    .bind(up_to)
                    .execute(&mut *tx)
                    .await?,
            );
            if up_to >= first.last_seq {
                batch.add(&delete_conversations(&mut tx, brand_id, &[first.id]).await?);
            }
        }
    } else {
        // Whole conversations, as many as fit (`last_seq` bounds each one's messages).
        let mut fits = Vec::new();
        let mut budget = max_messages;
        for due in candidates {
            if due.last_seq > budget {
                break;
            }
            budget -= due.last_seq.max(1);
            fits.push(due.id);
        }
        let mut sql = Sql::new("UPDATE conversations SET survey_open = 0 WHERE ");
        sql.push(
            "brand_id = ? AND status = 'closed' AND closed_at < ? AND id IN ",
            [Bind::Text(brand_id.to_owned()), Bind::Int(horizon)],
        )
        .push_ids(&fits);
        sql.text.push_str(" RETURNING id");
        let held: Vec<i64> =
            sql.query().fetch_all(&mut *tx).await?.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
        if !held.is_empty() {
            let mut sql = Sql::new("DELETE FROM messages WHERE ");
            sql.push("brand_id = ? AND conversation_id IN ", [Bind::Text(brand_id.to_owned())]).push_ids(&held);
            batch.messages = rows(sql.query().execute(&mut *tx).await?);
            batch.add(&delete_conversations(&mut tx, brand_id, &held).await?);
        }
    }
    if batch.is_empty() {
        // Every candidate was reopened meanwhile; the transaction rolls back.
        return Ok(batch);
    }
    let moved = sqlx::query(
        "UPDATE retention_runs SET horizon = $2, conversations = conversations + $3, messages = messages + $4,
           events = events + $5, outbox = outbox + $6, csat = csat + $7, profiles = profiles + $8
         WHERE brand_id = $1 AND finished_at IS NULL",
    )
    .bind(brand_id)
    .bind(horizon)
    .bind(batch.conversations)
    .bind(batch.messages)
    .bind(batch.events)
    .bind(batch.outbox)
    .bind(batch.csat)
    .bind(batch.profiles)
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 0 {
        sqlx::query(
            "INSERT INTO retention_runs (brand_id, started_at, horizon, conversations, messages, events, outbox,
               csat, profiles) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(brand_id)
        .bind(now)
        .bind(horizon)
        .bind(batch.conversations)
        .bind(batch.messages)
        .bind(batch.events)
        .bind(batch.outbox)
        .bind(batch.csat)
        .bind(batch.profiles)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(batch)
}
