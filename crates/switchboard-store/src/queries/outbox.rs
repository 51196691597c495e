//! The outbox: work that follows a committed change out of the database. The writer adds a
//! `push` entry in the transaction of each message that is news for a consumer with a
//! registered device; a dispatcher claims due entries for a lease (on PostgreSQL with
//! `SKIP LOCKED`, so nodes never claim the same entry at once), then completes each (the
//! entry is removed) or retries it later. A dispatcher that dies leaves its claims to expire
//! and be claimed again: delivery is at least once.

use sqlx::Row;
use switchboard_protocol::{ConversationId, Millis};

use crate::{Dialect, Store, StoreError};

/// One pending outbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub id: i64,
    pub brand_id: String,
    /// `push`.
    pub kind: String,
    pub conversation_id: ConversationId,
    /// The message announced.
    pub seq: i64,
    pub consumer_id: i64,
    pub created_at: Millis,
    /// Attempts that failed so far.
    pub attempts: i64,
}

/// Claims due entries. The same statement on both; PostgreSQL also skips rows another
/// node's claim holds locked (SQLite has one writer at a time anyway).
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET claimed_until = $3 WHERE id IN (
               SELECT id FROM outbox WHERE kind = $1 AND due_at <= $2
               AND (claimed_until IS NULL OR claimed_until <= $2) ORDER BY due_at, id LIMIT $4 ",
            $lock,
            ") RETURNING id, brand_id, kind, conversation_id, seq, consumer_id, created_at, attempts, due_at"
        )
    };
}
const CLAIM_POSTGRES: &str = claim!("FOR UPDATE SKIP LOCKED");
const CLAIM_SQLITE: &str = claim!("");

/// Longest error text kept with a retried entry.
const MAX_ERROR_CHARS: usize = 500;

impl Store {
    /// Claims up to `limit` entries of `kind` due at `now` for `lease_ms`: until the lease
    /// ends nobody else claims them. Oldest due first.
    pub async fn claim_outbox(
        &self,
        kind: &str,
        now: Millis,
        lease_ms: Millis,
        limit: u32,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let sql = match self.dialect {
            Dialect::Postgres => CLAIM_POSTGRES,
            Dialect::Sqlite => CLAIM_SQLITE,
        };
        let rows = sqlx::query(sql)
            .bind(kind)
            .bind(now)
            .bind(now.saturating_add(lease_ms.max(1)))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut entries = rows
            .iter()
            .map(|row| {
                let entry = OutboxEntry {
                    id: row.try_get(0)?,
                    brand_id: row.try_get(1)?,
                    kind: row.try_get(2)?,
                    conversation_id: row.try_get(3)?,
                    seq: row.try_get(4)?,
                    consumer_id: row.try_get(5)?,
                    created_at: row.try_get(6)?,
                    attempts: row.try_get(7)?,
                };
                Ok((row.try_get::<i64, _>(8)?, entry))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // RETURNING keeps no order.
        entries.sort_by_key(|(due_at, entry)| (*due_at, entry.id));
        Ok(entries.into_iter().map(|(_, entry)| entry).collect())
    }

    /// The entry was carried out: it is removed.
    pub async fn complete_outbox(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM outbox WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// The entry failed: it is due again at `due_at`, with one more attempt counted and the
    /// error kept (at most 500 characters).
    pub async fn retry_outbox(&self, id: i64, due_at: Millis, error: &str) -> Result<(), StoreError> {
        let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
        sqlx::query(
            "UPDATE outbox SET due_at = $2, attempts = attempts + 1, claimed_until = NULL, last_error = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(due_at)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many entries of `kind` are pending (claimed or not).
    pub async fn outbox_pending(&self, kind: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE kind = $1").bind(kind).fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }
}
