//! Erasure: deleting everything a brand holds about one consumer, on request (the right to
//! erasure). One transaction: either all of it goes or none.
//!
//! What is keyed by the consumer, and so deleted: their conversations (with the CSAT answers,
//! receipts and survey state they carry), every message and event-log entry of those
//! conversations, outbox rows for them or their conversations, their push tokens, and their
//! profile (the consumer row: the brand's id of them, name, email, phone, device, language).
//! The conformance suite checks every table of the schema afterwards, so a table added later
//! that holds consumer data fails the test until erasure covers it.

use sqlx::Row;

use crate::{Store, StoreError};

/// What an erasure deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErasureCounts {
    pub conversations: i64,
    /// Of those, how many were open (the engine holding them must forget them).
    pub open_conversations: i64,
    pub messages: i64,
    pub events: i64,
    pub outbox: i64,
    pub push_tokens: i64,
    /// The consumer's profile (1, or 0 if it was already gone).
    pub profiles: i64,
}

const CONVERSATIONS_OF: &str = "SELECT id FROM conversations WHERE brand_id = $1 AND consumer_id = $2";

impl Store {
    /// Deletes everything the brand holds about consumer `consumer_id` (internal id), in one
    /// transaction, and says how much. A consumer the brand does not have deletes nothing.
    pub async fn erase_consumer(&self, brand_id: &str, consumer_id: i64) -> Result<ErasureCounts, StoreError> {
        let mut tx = self.pool.begin().await?;
        // The first statement writes, so SQLite takes the write lock at once (a deferred
        // transaction that read first could not upgrade if another writer came in between).
        let messages = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM messages WHERE brand_id = $1 AND conversation_id IN ({CONVERSATIONS_OF})"
        )))
        .bind(brand_id)
        .bind(consumer_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let events = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM conversation_events WHERE brand_id = $1 AND conversation_id IN ({CONVERSATIONS_OF})"
        )))
        .bind(brand_id)
        .bind(consumer_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let outbox = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM outbox WHERE brand_id = $1 AND (consumer_id = $2 OR conversation_id IN ({CONVERSATIONS_OF}))"
        )))
        .bind(brand_id)
        .bind(consumer_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let push_tokens = sqlx::query("DELETE FROM push_tokens WHERE brand_id = $1 AND consumer_id = $2")
            .bind(brand_id)
            .bind(consumer_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let open: i64 = sqlx::query(
            "SELECT COUNT(*) FROM conversations WHERE brand_id = $1 AND consumer_id = $2 AND status = 'open'",
        )
        .bind(brand_id)
        .bind(consumer_id)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let conversations = sqlx::query("DELETE FROM conversations WHERE brand_id = $1 AND consumer_id = $2")
            .bind(brand_id)
            .bind(consumer_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let profiles = sqlx::query("DELETE FROM consumers WHERE brand_id = $1 AND id = $2")
            .bind(brand_id)
            .bind(consumer_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        Ok(ErasureCounts {
            conversations: count(conversations),
            open_conversations: open,
            messages: count(messages),
            events: count(events),
            outbox: count(outbox),
            push_tokens: count(push_tokens),
            profiles: count(profiles),
        })
    }
}
