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
///
/// A consumer with an entry under a live claim is passed over: a dispatcher still sending to
/// them may be about to announce an older message, and a second batch announcing a newer one
/// beside it could reach the device first, leaving the older one shown last. Their entries
/// wait until that claim is settled, given back or expired.
macro_rules! claim {
    ($lock:literal) => {
        concat!(
            "UPDATE outbox SET claimed_until = $3 WHERE id IN (
               SELECT e.id FROM outbox e WHERE e.kind = $1 AND e.due_at <= $5
               AND (e.claimed_until IS NULL OR e.claimed_until <= $2)
               AND NOT EXISTS (SELECT 1 FROM outbox busy WHERE busy.brand_id = e.brand_id
                 AND busy.consumer_id = e.consumer_id AND busy.kind = $1 AND busy.claimed_until > $2)
               ORDER BY e.due_at, e.id LIMIT $4 ",
            $lock,
            ") RETURNING id, brand_id, kind, conversation_id, seq, consumer_id, created_at, attempts, due_at"
        )
    };
}
const CLAIM_POSTGRES: &str = claim!("FOR UPDATE SKIP LOCKED");
const CLAIM_SQLITE: &str = claim!("");

/// The columns a claim returns, in [`entry_from_row`]'s order.
const RETURNING: &str = "RETURNING id, brand_id, kind, conversation_id, seq, consumer_id, created_at, attempts, due_at";

/// Longest error text kept with a retried entry.
const MAX_ERROR_CHARS: usize = 500;

/// Most ids bound in one `IN (…)` list (both dialects take far more; this keeps statements
/// short).
pub(crate) const MAX_IDS_PER_STATEMENT: usize = 256;

/// `$first, $first+1, …` for `count` parameters.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
}

/// Claimed entries, oldest due first (RETURNING keeps no order).
fn entries_from_rows(rows: &[sqlx::any::AnyRow]) -> Result<Vec<OutboxEntry>, StoreError> {
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
    entries.sort_by_key(|(due_at, entry)| (*due_at, entry.id));
    Ok(entries.into_iter().map(|(_, entry)| entry).collect())
}

/// Moves an entry's due time (one more attempt, the error kept), on the pool or inside a
/// transaction.
pub(crate) async fn retry<'e, E>(
    executor: E,
    brand_id: &str,
    id: i64,
    due_at: Millis,
    error: &str,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
    sqlx::query(
        "UPDATE outbox SET due_at = $3, attempts = attempts + 1, claimed_until = NULL, last_error = $4
         WHERE brand_id = $1 AND id = $2",
    )
    .bind(brand_id)
    .bind(id)
    .bind(due_at)
    .bind(error)
    .execute(executor)
    .await?;
    Ok(())
}

impl Store {
    /// Claims up to `limit` entries of `kind` due by `due_by` (at most `now`; the push
    /// dispatcher waits a moment so that messages sent together are announced together) for
    /// `lease_ms` from `now`: until the lease ends nobody else claims them. Oldest due first.
    /// Entries of a consumer who has others under a live claim are left until that claim
    /// ends, so one batch at a time sends to a consumer. (Two nodes claiming at the same
    /// instant on PostgreSQL can each still take one of a consumer's entries; a device's mark
    /// then keeps the older from being sent after the newer once the newer is settled.)
    ///
    /// This is the one outbox read that spans brands: a node's dispatcher serves them all,
    /// and each entry names its brand, which every later step of it is keyed by.
    pub async fn claim_outbox(
        &self,
        kind: &str,
        now: Millis,
        due_by: Millis,
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
            .bind(due_by.min(now))
            .fetch_all(&self.pool)
            .await?;
        entries_from_rows(&rows)
    }

    /// Claims, for `lease_ms` from `now`, the other entries of `kind` due at `now` of the
    /// brand's `consumers` (those a claim by [`Store::claim_outbox`] named): a dispatcher that
    /// waits a moment after a message then also takes the messages that came right after it,
    /// and announces them together.
    pub async fn claim_outbox_of_consumers(
        &self,
        kind: &str,
        brand_id: &str,
        consumers: &[i64],
        now: Millis,
        lease_ms: Millis,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut entries = Vec::new();
        let lock = match self.dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        for chunk in consumers.chunks(MAX_IDS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE outbox SET claimed_until = $4 WHERE id IN (
                   SELECT id FROM outbox WHERE kind = $1 AND brand_id = $2 AND due_at <= $3
                   AND (claimed_until IS NULL OR claimed_until <= $3) AND consumer_id IN ({}) {lock}) {RETURNING}",
                placeholders(5, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(kind)
                .bind(brand_id)
                .bind(now)
                .bind(now.saturating_add(lease_ms.max(1)));
            for consumer in chunk {
                query = query.bind(*consumer);
            }
            entries.extend(entries_from_rows(&query.fetch_all(&self.pool).await?)?);
        }
        Ok(entries)
    }

    /// The entry was carried out: it is removed.
    pub async fn complete_outbox(&self, brand_id: &str, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM outbox WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The entry failed: it is due again at `due_at`, with one more attempt counted and the
    /// error kept (at most 500 characters).
    pub async fn retry_outbox(&self, brand_id: &str, id: i64, due_at: Millis, error: &str) -> Result<(), StoreError> {
        retry(&self.pool, brand_id, id, due_at, error).await
    }

    /// Gives claimed entries back before their lease ends (a node shutting down): they can
    /// be claimed again at once.
    pub async fn release_outbox(&self, brand_id: &str, ids: &[i64]) -> Result<(), StoreError> {
        for chunk in ids.chunks(MAX_IDS_PER_STATEMENT) {
            let sql = format!(
                "UPDATE outbox SET claimed_until = NULL WHERE brand_id = $1 AND id IN ({})",
                placeholders(2, chunk.len())
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(brand_id);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(&self.pool).await?;
        }
        Ok(())
    }

    /// How many entries of `kind` are pending (claimed or not).
    pub async fn outbox_pending(&self, kind: &str) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM outbox WHERE kind = $1").bind(kind).fetch_one(&self.pool).await?;
        Ok(row.try_get(0)?)
    }
}
