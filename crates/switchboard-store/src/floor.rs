//! Reads for the people running the floor: the agent's inbox (last message, unread count,
//! waiting time), message pages backwards for long histories, moving a conversation back to
//! a queue, and the aggregates behind the manager dashboard and reports. Same SQL subset as
//! `queries/`; sums are cast to BIGINT so both dialects decode them as integers.

use sqlx::{AssertSqlSafe, Row};
use switchboard_protocol::{ConversationId, Millis};

use crate::model::{Conversation, StoredMessage};
use crate::queries::{CONVERSATION_COLUMNS, conversation_from_row};
use crate::{Store, StoreError};

const MESSAGE_COLUMNS: &str = "conversation_id, seq, side, author_id, author_name, text, client_id, created_at";

/// What an agent's inbox shows about one conversation besides the row itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// The newest message.
    pub last_message: Option<StoredMessage>,
    /// Consumer messages after the agent's read seq.
    pub unread: i64,
    /// When the consumer's oldest unanswered message arrived: the first consumer message
    /// after the last agent message. `None` when the agent spoke last.
    pub waiting_since: Option<Millis>,
}

/// Per-agent figures since a moment (the manager's "today").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AgentDay {
    /// Conversations the agent held that closed since then.
    pub resolved: i64,
    /// Conversations the agent first answered since then.
    pub responded: i64,
    /// Sum of (first response − opened) over those, in milliseconds.
    pub first_response_ms: i64,
}

impl Store {
    /// Inbox figures of one conversation. `agent_read_seq` is the agent side's read mark.
    pub async fn activity(
        &self,
        brand_id: &str,
        conversation_id: ConversationId,
        agent_read_seq: i64,
    ) -> Result<Activity, StoreError> {
        let last = sqlx::query(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE brand_id = $1 AND conversation_id = $2 ORDER BY seq DESC LIMIT 1"
        )))
        .bind(brand_id)
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await?;
        let counts = sqlx::query(
            "SELECT
               (SELECT COUNT(*) FROM messages WHERE brand_id = $1 AND conversation_id = $2 AND side = 'c' AND seq > $3),
               (SELECT MIN(created_at) FROM messages WHERE brand_id = $1 AND conversation_id = $2 AND side = 'c'
                  AND seq > COALESCE((SELECT MAX(seq) FROM messages
                                       WHERE brand_id = $1 AND conversation_id = $2 AND side = 'a'), 0))",
        )
        .bind(brand_id)
        .bind(conversation_id)
        .bind(agent_read_seq)
        .fetch_one(&self.pool)
        .await?;
        Ok(Activity {
            last_message: last.map(|row| crate::message_from_row(&row)).transpose()?,
            unread: counts.try_get(0)?,
            waiting_since: counts.try_get(1)?,
        })
    }

    /// The last `limit` messages with seq below `before`, oldest first, and whether older
    /// ones exist.
    pub async fn messages_before(
        &self,
        brand_id: &str,
        conversation_id: ConversationId,
        before: i64,
        limit: u32,
    ) -> Result<(Vec<StoredMessage>, bool), StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE brand_id = $1 AND conversation_id = $2 AND seq < $3
             ORDER BY seq DESC LIMIT $4"
        )))
        .bind(brand_id)
        .bind(conversation_id)
        .bind(before)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut messages = rows.iter().map(crate::message_from_row).collect::<Result<Vec<_>, _>>()?;
        let more = messages.len() > limit as usize;
        messages.truncate(limit as usize);
        messages.reverse();
        Ok((messages, more))
    }

    /// Takes an open conversation off its agent and into the queue of `skill_id` (`None`:
    /// no particular skill), with a `queued` entry in its event log. Returns the updated
    /// row, or `None` if it is not open.
    pub async fn requeue(
        &self,
        brand_id: &str,
        id: ConversationId,
        skill_id: Option<i64>,
        now: Millis,
    ) -> Result<Option<Conversation>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE conversations SET agent_id = NULL, assigned_at = NULL, skill_id = $3
             WHERE brand_id = $1 AND id = $2 AND status = 'open' RETURNING {CONVERSATION_COLUMNS}"
        )))
        .bind(brand_id)
        .bind(id)
        .bind(skill_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let updated = conversation_from_row(&row)?;
        crate::queries::record_event(&mut tx, brand_id, id, "queued", None, skill_id, now).await?;
        tx.commit().await?;
        Ok(Some(updated))
    }

    /// Open conversations per skill (`None`: without a skill).
    pub async fn open_by_skill(&self, brand_id: &str) -> Result<Vec<(Option<i64>, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT skill_id, COUNT(*) FROM conversations WHERE brand_id = $1 AND status = 'open' GROUP BY skill_id",
        )
        .bind(brand_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    /// Per-agent resolved counts and first-response sums since `since`, by agent id.
    pub async fn agent_days(&self, brand_id: &str, since: Millis) -> Result<Vec<(i64, AgentDay)>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent_id,
               CAST(SUM(CASE WHEN status = 'closed' AND closed_at >= $2 THEN 1 ELSE 0 END) AS BIGINT),
               CAST(SUM(CASE WHEN first_response_at >= $2 THEN 1 ELSE 0 END) AS BIGINT),
               CAST(SUM(CASE WHEN first_response_at >= $2 THEN first_response_at - opened_at ELSE 0 END) AS BIGINT)
             FROM conversations
             WHERE brand_id = $1 AND agent_id IS NOT NULL
               AND ((status = 'closed' AND closed_at >= $2) OR first_response_at >= $2)
             GROUP BY agent_id",
        )
        .bind(brand_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    AgentDay {
                        resolved: row.try_get(1)?,
                        responded: row.try_get(2)?,
                        first_response_ms: row.try_get(3)?,
                    },
                ))
            })
            .collect()
    }

    /// CSAT answers of conversations closed since `since`: count per score 1–5.
    pub async fn csat_since(&self, brand_id: &str, since: Millis) -> Result<[i64; 5], StoreError> {
        let rows = sqlx::query(
            "SELECT csat_score, COUNT(*) FROM conversations
             WHERE brand_id = $1 AND closed_at >= $2 AND csat_score IS NOT NULL GROUP BY csat_score",
        )
        .bind(brand_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut distribution = [0; 5];
        for row in &rows {
            let score: i64 = row.try_get(0)?;
            if let Some(slot) = usize::try_from(score - 1).ok().and_then(|i| distribution.get_mut(i)) {
                *slot = row.try_get(1)?;
            }
        }
        Ok(distribution)
    }

    /// Conversations opened or closed in `[from, to)` with their consumer's name, oldest
    /// first, at most `limit` (reports; a caller seeing `limit` rows knows the range was cut).
    /// Conversations past retention at `now` are left out.
    pub async fn conversations_touching(
        &self,
        brand_id: &str,
        from: Millis,
        to: Millis,
        limit: u32,
        now: Millis,
    ) -> Result<Vec<(Conversation, Option<String>)>, StoreError> {
        let horizon = self.retention_horizon(brand_id, now).await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS},
               (SELECT name FROM consumers WHERE consumers.id = conversations.consumer_id) AS consumer_name
             FROM conversations WHERE brand_id = $1
               AND ((opened_at >= $2 AND opened_at < $3) OR (closed_at >= $2 AND closed_at < $3))
               AND (closed_at IS NULL OR closed_at >= $5)
             ORDER BY opened_at, id LIMIT $4"
        )))
        .bind(brand_id)
        .bind(from)
        .bind(to)
        .bind(i64::from(limit))
        .bind(horizon)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((conversation_from_row(row)?, row.try_get("consumer_name")?))).collect()
    }
}
