//! Conversations: reads, the event log, assignment, closing, receipts, priority and CSAT.

use sqlx::{AssertSqlSafe, Row};
use switchboard_protocol::{ConversationId, ConversationStatus, Millis, ReceiptKind, Side};

use super::*;
use crate::{Store, StoreError};

impl Store {
    // ----- conversations ------------------------------------------------------------------

    /// A conversation of the brand.
    pub async fn conversation(&self, brand_id: &str, id: ConversationId) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1 AND id = $2"
        )))
        .bind(brand_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| conversation_from_row(&row)).transpose()
    }

    /// The consumer's open conversation, if any.
    pub async fn open_conversation(
        &self,
        brand_id: &str,
        consumer_id: i64,
    ) -> Result<Option<Conversation>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1 AND consumer_id = $2 AND status = 'open'"
        )))
        .bind(brand_id)
        .bind(consumer_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| conversation_from_row(&row)).transpose()
    }

    /// The consumer's most recently closed conversation whose CSAT survey is still open (and
    /// that is within retention at `now`).
    pub async fn pending_survey(
        &self,
        brand_id: &str,
        consumer_id: i64,
        now: Millis,
    ) -> Result<Option<Conversation>, StoreError> {
        let horizon = self.retention_horizon(brand_id, now).await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1 AND consumer_id = $2 AND survey_open = 1
               AND closed_at >= $3
             ORDER BY closed_at DESC, id DESC LIMIT 1"
        )))
        .bind(brand_id)
        .bind(consumer_id)
        .bind(horizon)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| conversation_from_row(&row)).transpose()
    }

    /// Brands that have at least one open conversation (their engines start at boot).
    pub async fn brands_with_open_conversations(&self) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT brand_id FROM conversations WHERE status = 'open' ORDER BY brand_id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// All open conversations of the brand, oldest first (routing rebuild).
    pub async fn open_conversations(&self, brand_id: &str) -> Result<Vec<Conversation>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1 AND status = 'open' ORDER BY opened_at, id"
        )))
        .bind(brand_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    /// Open conversations assigned to an agent, oldest first.
    pub async fn agent_conversations(&self, brand_id: &str, agent_id: i64) -> Result<Vec<Conversation>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1 AND agent_id = $2 AND status = 'open'
             ORDER BY opened_at, id"
        )))
        .bind(brand_id)
        .bind(agent_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(conversation_from_row).collect()
    }

    /// A page of the brand's conversations matching `filter`, newest first (without those
    /// past retention when `filter.retained_at` is set).
    pub async fn conversations(
        &self,
        brand_id: &str,
        filter: &ConversationFilter,
        after: Option<PageCursor>,
        limit: u32,
    ) -> Result<ConversationPage, StoreError> {
        let limit = i64::from(limit.clamp(1, 500));
        let horizon = match filter.retained_at {
            Some(now) => Some(self.retention_horizon(brand_id, now).await?),
            None => None,
        };
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE brand_id = $1
               AND ($2 IS NULL OR status = $2)
               AND ($3 IS NULL OR consumer_id = $3)
               AND ($4 IS NULL OR agent_id = $4)
               AND ($5 IS NULL OR skill_id = $5)
               AND ($6 IS NULL OR opened_at >= $6)
               AND ($7 IS NULL OR opened_at < $7)
               AND ($8 IS NULL OR opened_at < $8 OR (opened_at = $8 AND id < $9))
               AND ($11 IS NULL OR closed_at IS NULL OR closed_at >= $11)
             ORDER BY opened_at DESC, id DESC LIMIT $10"
        )))
        .bind(brand_id)
        .bind(filter.status.map(ConversationStatus::as_str))
        .bind(filter.consumer_id)
        .bind(filter.agent_id)
        .bind(filter.skill_id)
        .bind(filter.opened_from)
        .bind(filter.opened_to)
        .bind(after.map(|cursor| cursor.opened_at))
        .bind(after.map_or(0, |cursor| cursor.id))
        .bind(limit + 1)
        .bind(horizon)
        .fetch_all(&self.pool)
        .await?;
        let mut conversations = rows.iter().map(conversation_from_row).collect::<Result<Vec<_>, _>>()?;
        let next = if conversations.len() as i64 > limit {
            conversations.truncate(limit as usize);
            conversations.last().map(|last| PageCursor { opened_at: last.opened_at, id: last.id })
        } else {
            None
        };
        Ok(ConversationPage { conversations, next })
    }

    /// Messages of a conversation after `after_seq`, oldest first, at most `limit`.
    pub async fn messages_after(
        &self,
        brand_id: &str,
        conversation_id: ConversationId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT conversation_id, seq, side, author_id, author_name, text, client_id, created_at FROM messages
             WHERE brand_id = $1 AND conversation_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(brand_id)
        .bind(conversation_id)
        .bind(after_seq)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(crate::message_from_row).collect()
    }

    /// Assigns an open conversation to an agent, with an `assigned` entry in its event log.
    /// `false` if it is not open.
    pub async fn assign(
        &self,
        brand_id: &str,
        id: ConversationId,
        agent_id: i64,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE conversations SET agent_id = $3, assigned_at = $4 WHERE brand_id = $1 AND id = $2 AND status = 'open'",
        )
        .bind(brand_id)
        .bind(id)
        .bind(agent_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        record_event(&mut tx, brand_id, id, "assigned", Some(agent_id), None, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Adds an entry that changes nothing else to a conversation's event log (an offer
    /// declined or expired). `false` if the brand has no such open conversation.
    pub async fn record_conversation_event(
        &self,
        brand_id: &str,
        id: ConversationId,
        kind: &str,
        agent_id: Option<i64>,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO conversation_events (brand_id, conversation_id, kind, agent_id, skill_id, at)
             SELECT brand_id, id, $3, $4, skill_id, $5 FROM conversations WHERE brand_id = $1 AND id = $2 AND status = 'open'",
        )
        .bind(brand_id)
        .bind(id)
        .bind(kind)
        .bind(agent_id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Sets an open conversation's priority, with a `priority` entry in its event log.
    /// `false` if the brand has no such open conversation.
    pub async fn set_priority(
        &self,
        brand_id: &str,
        id: ConversationId,
        priority: ConversationPriority,
        now: Millis,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("UPDATE conversations SET priority = $3 WHERE brand_id = $1 AND id = $2 AND status = 'open'")
                .bind(brand_id)
                .bind(id)
                .bind(i64::from(priority.to_core().rank()))
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        record_event(&mut tx, brand_id, id, "priority", None, None, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// How many event-log entries of `kind` the brand has in `[from, to)`.
    pub async fn count_events(&self, brand_id: &str, kind: &str, from: Millis, to: Millis) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM conversation_events WHERE brand_id = $1 AND kind = $2 AND at >= $3 AND at < $4",
        )
        .bind(brand_id)
        .bind(kind)
        .bind(from)
        .bind(to)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// How many event-log entries of `kind` each agent has since `since`, by agent id.
    pub async fn events_per_agent(
        &self,
        brand_id: &str,
        kind: &str,
        since: Millis,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT agent_id, COUNT(*) FROM conversation_events WHERE brand_id = $1 AND kind = $2 AND at >= $3
             AND agent_id IS NOT NULL GROUP BY agent_id",
        )
        .bind(brand_id)
        .bind(kind)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    /// The event log of a conversation, oldest first: `(kind, agent_id, skill_id, at)`.
    /// Kinds: `opened`, `assigned`, `queued`, `closed`, `offer_declined`, `offer_expired`,
    /// `priority`.
    pub async fn conversation_events(
        &self,
        brand_id: &str,
        id: ConversationId,
    ) -> Result<Vec<ConversationEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, agent_id, skill_id, at FROM conversation_events WHERE brand_id = $1 AND conversation_id = $2
             ORDER BY id",
        )
        .bind(brand_id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ConversationEvent {
                    kind: row.try_get(0)?,
                    agent_id: row.try_get(1)?,
                    skill_id: row.try_get(2)?,
                    at: row.try_get(3)?,
                })
            })
            .collect()
    }

    /// Closes an open conversation; `survey` opens the CSAT survey. Returns the closed
    /// conversation, or `None` if it was not open (already closed: closing is idempotent).
    pub async fn close_conversation(
        &self,
        brand_id: &str,
        id: ConversationId,
        by: Side,
        survey: bool,
        now: Millis,
    ) -> Result<Option<Conversation>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE conversations SET status = 'closed', closed_at = $3, closed_by = $4, survey_open = $5
             WHERE brand_id = $1 AND id = $2 AND status = 'open' RETURNING {CONVERSATION_COLUMNS}"
        )))
        .bind(brand_id)
        .bind(id)
        .bind(now)
        .bind(by.as_str())
        .bind(int(survey))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let closed = conversation_from_row(&row)?;
        record_event(&mut tx, brand_id, id, "closed", closed.agent_id, closed.skill_id, now).await?;
        tx.commit().await?;
        Ok(Some(closed))
    }

    /// Closes a conversation as auto-closed, only if the consumer has not written since the
    /// agent's message at `since` (and no agent wrote after it): checked by the statement
    /// that closes, so a consumer message committed just before is never overrun. Records
    /// `auto_closed` in the event log.
    pub async fn auto_close_conversation(
        &self,
        brand_id: &str,
        id: ConversationId,
        since: Millis,
        survey: bool,
        now: Millis,
    ) -> Result<AutoCloseOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE conversations SET status = 'closed', closed_at = $3, closed_by = 's', survey_open = $4,
               auto_closed = 1
             WHERE brand_id = $1 AND id = $2 AND status = 'open' AND agent_id IS NOT NULL
               AND (last_consumer_at IS NULL OR last_consumer_at < $5) AND (last_agent_at IS NULL OR last_agent_at <= $5)
             RETURNING {CONVERSATION_COLUMNS}"
        )))
        .bind(brand_id)
        .bind(id)
        .bind(now)
        .bind(int(survey))
        .bind(since)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            drop(tx);
            return Ok(match self.conversation(brand_id, id).await? {
                Some(c) if c.status == ConversationStatus::Open => {
                    AutoCloseOutcome::Answered { agent_at: c.last_agent_at, consumer_at: c.last_consumer_at }
                }
                _ => AutoCloseOutcome::NotOpen,
            });
        };
        let closed = conversation_from_row(&row)?;
        record_event(&mut tx, brand_id, id, "auto_closed", closed.agent_id, closed.skill_id, now).await?;
        tx.commit().await?;
        Ok(AutoCloseOutcome::Closed(Box::new(closed)))
    }

    /// Records a cumulative receipt by `reader` (never moves backwards, never past the last
    /// message). Returns whether it moved.
    pub async fn record_receipt(
        &self,
        brand_id: &str,
        id: ConversationId,
        reader: Side,
        kind: ReceiptKind,
        seq: i64,
    ) -> Result<bool, StoreError> {
        let column = match (reader, kind) {
            (Side::Consumer, ReceiptKind::Delivered) => "consumer_delivered_seq",
            (Side::Consumer, ReceiptKind::Read) => "consumer_read_seq",
            (_, ReceiptKind::Delivered) => "agent_delivered_seq",
            (_, ReceiptKind::Read) => "agent_read_seq",
        };
        // Read implies delivered: a read receipt also moves the delivered mark, so clients
        // need not send both.
        let also_delivered = match (reader, kind) {
            (Side::Consumer, ReceiptKind::Read) => {
                ", consumer_delivered_seq = CASE WHEN consumer_delivered_seq < $3 THEN $3 ELSE consumer_delivered_seq END"
            }
            (_, ReceiptKind::Read) => {
                ", agent_delivered_seq = CASE WHEN agent_delivered_seq < $3 THEN $3 ELSE agent_delivered_seq END"
            }
            (_, ReceiptKind::Delivered) => "",
        };
        let done = sqlx::query(AssertSqlSafe(format!(
            "UPDATE conversations SET {column} = $3{also_delivered} WHERE brand_id = $1 AND id = $2 AND {column} < $3
             AND last_seq >= $3"
        )))
        .bind(brand_id)
        .bind(id)
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Stores the consumer's CSAT answer for a conversation with an open survey.
    pub async fn answer_csat(
        &self,
        brand_id: &str,
        id: ConversationId,
        consumer_id: i64,
        score: u8,
        comment: Option<&str>,
    ) -> Result<(), CsatError> {
        let done = sqlx::query(
            "UPDATE conversations SET csat_score = $4, csat_comment = $5, survey_open = 0
             WHERE brand_id = $1 AND id = $2 AND consumer_id = $3 AND survey_open = 1",
        )
        .bind(brand_id)
        .bind(id)
        .bind(consumer_id)
        .bind(i64::from(score))
        .bind(comment)
        .execute(&self.pool)
        .await
        .map_err(StoreError::from)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        match self.conversation(brand_id, id).await? {
            Some(conversation) if conversation.consumer_id == consumer_id => {
                if conversation.csat_score.is_some() {
                    Err(CsatError::AlreadyAnswered)
                } else {
                    Err(CsatError::NotAvailable)
                }
            }
            _ => Err(CsatError::NotFound),
        }
    }
}
