//! Searching a brand's conversations (the reporting API, transcript exports) and the batch
//! reads that go with a page of them: their consumers, event logs and messages.
//!
//! Pages are keyset pages, newest first by `(opened_at, id)`: a page starts after the last
//! row of the one before, never at an offset, so page 10,000 costs what page 1 does. The SQL
//! names only the filters that are set (no `$n IS NULL OR …`), so each dialect's planner can
//! walk the index of that filter (`conversations_search_*`, migration 0009) in order and stop
//! after one page. Conversations past the brand's retention are left out
//! (`switchboard_core::retention`): every read here takes `now`.

use std::fmt::Write as _;

use sqlx::{AssertSqlSafe, Row};
use switchboard_protocol::{ConversationId, ConversationStatus, Millis};

use super::*;
use crate::{Store, StoreError};

/// Most rows a search page or a batch read returns.
pub const MAX_SEARCH_PAGE: u32 = 500;

/// A value bound to a dynamically built statement.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Int(i64),
    Text(String),
}

/// A statement built piece by piece: its text and its parameters, numbered in order.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) binds: Vec<Bind>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Sql {
        Sql { text: text.to_owned(), binds: Vec::new() }
    }

    /// Appends `text`, replacing each `?` with the next parameter, bound to `values`.
    pub(crate) fn push(&mut self, text: &str, values: impl IntoIterator<Item = Bind>) -> &mut Sql {
        let mut values = values.into_iter();
        for piece in text.split_inclusive('?') {
            match piece.strip_suffix('?') {
                Some(before) => {
                    self.text.push_str(before);
                    let value = values.next().expect("one value per placeholder");
                    self.binds.push(value);
                    let _ = write!(self.text, "${}", self.binds.len());
                }
                None => self.text.push_str(piece),
            }
        }
        debug_assert!(values.next().is_none(), "more values than placeholders in {text:?}");
        self
    }

    /// `(?, ?, …)` for a list of ids.
    pub(crate) fn push_ids(&mut self, ids: &[i64]) -> &mut Sql {
        self.text.push('(');
        for (index, id) in ids.iter().enumerate() {
            if index > 0 {
                self.text.push_str(", ");
            }
            self.push("?", [Bind::Int(*id)]);
        }
        self.text.push(')');
        self
    }

    pub(crate) fn query(&self) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
        let mut query = sqlx::query(AssertSqlSafe(self.text.as_str()));
        for bind in &self.binds {
            query = match bind {
                Bind::Int(value) => query.bind(*value),
                Bind::Text(value) => query.bind(value.as_str()),
            };
        }
        query
    }
}

impl Store {
    /// The brand's retention horizon at `now`: conversations closed before it are past
    /// retention. `NotFound` for an unknown brand.
    pub async fn retention_horizon(&self, brand_id: &str, now: Millis) -> Result<Millis, StoreError> {
        let row = sqlx::query("SELECT retention_days FROM brands WHERE id = $1")
            .bind(brand_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        Ok(switchboard_core::retention::horizon(row.try_get(0)?, now))
    }

    /// A page of the brand's conversations matching `search`, newest first (by `opened_at`,
    /// then id), starting after `after`; at most `limit` (1 to [`MAX_SEARCH_PAGE`]). Only
    /// conversations within retention at `now` are found.
    pub async fn search_conversations(
        &self,
        brand_id: &str,
        search: &ConversationSearch,
        after: Option<PageCursor>,
        limit: u32,
        now: Millis,
    ) -> Result<ConversationPage, StoreError> {
        let horizon = self.retention_horizon(brand_id, now).await?;
        let limit = i64::from(limit.clamp(1, MAX_SEARCH_PAGE));
        // A range of scores is one index walk per score, merged: `csat_score >= 4` walks the
        // CSAT index out of time order and sorts everything it found (hundreds of ms over a
        // million conversations), while `= 4` and `= 5` each walk it in time order and stop
        // after a page.
        let scores: Vec<Option<i64>> = match (search.csat_min, search.csat_max) {
            (None, None) => vec![None],
            (min, max) => {
                let (min, max) = (min.unwrap_or(1).max(1), max.unwrap_or(5).min(5));
                (min..=max).map(Some).collect()
            }
        };
        if scores.is_empty() {
            // No score is in the range asked for.
            return Ok(ConversationPage { conversations: Vec::new(), next: None });
        }
        let mut sql = Sql::new("");
        if scores.len() > 1 {
            sql.text.push_str("SELECT * FROM (");
        }
        for (arm, score) in scores.iter().enumerate() {
            if arm > 0 {
                sql.text.push_str(") AS page UNION ALL SELECT * FROM (");
            }
            sql.text.push_str(&format!("SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE "));
            sql.push("brand_id = ?", [Bind::Text(brand_id.to_owned())]);
            search_conditions(&mut sql, search, horizon, *score);
            if let Some(cursor) = after {
                sql.push(" AND (opened_at, id) < (?, ?)", [Bind::Int(cursor.opened_at), Bind::Int(cursor.id)]);
            }
            sql.push(" ORDER BY opened_at DESC, id DESC LIMIT ?", [Bind::Int(limit + 1)]);
        }
        if scores.len() > 1 {
            sql.push(") AS page ORDER BY opened_at DESC, id DESC LIMIT ?", [Bind::Int(limit + 1)]);
        }
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut conversations = rows.iter().map(conversation_from_row).collect::<Result<Vec<_>, _>>()?;
        let next = if conversations.len() as i64 > limit {
            conversations.truncate(limit as usize);
            conversations.last().map(|last| PageCursor { opened_at: last.opened_at, id: last.id })
        } else {
            None
        };
        Ok(ConversationPage { conversations, next })
    }

    /// The brand's consumers with these ids (any order; ids of other brands find nothing).
    pub async fn consumers_by_ids(&self, brand_id: &str, ids: &[i64]) -> Result<Vec<Consumer>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(
            "SELECT id, brand_id, external_id, name, email, phone, device, language, created_at FROM consumers WHERE ",
        );
        sql.push("brand_id = ? AND id IN ", [Bind::Text(brand_id.to_owned())]).push_ids(ids);
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter().map(consumer_from_row).collect()
    }

    /// The event logs of these conversations of the brand, each oldest first, by conversation.
    pub async fn events_of(
        &self,
        brand_id: &str,
        ids: &[ConversationId],
    ) -> Result<Vec<(ConversationId, ConversationEvent)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new("SELECT conversation_id, kind, agent_id, skill_id, at FROM conversation_events WHERE ");
        sql.push("brand_id = ? AND conversation_id IN ", [Bind::Text(brand_id.to_owned())]).push_ids(ids);
        sql.text.push_str(" ORDER BY conversation_id, id");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    ConversationEvent {
                        kind: row.try_get(1)?,
                        agent_id: row.try_get(2)?,
                        skill_id: row.try_get(3)?,
                        at: row.try_get(4)?,
                    },
                ))
            })
            .collect()
    }

    /// The first `per_conversation` messages (seq 1 to n: seqs are gap-free) of each of these
    /// conversations of the brand, by conversation then seq.
    pub async fn first_messages(
        &self,
        brand_id: &str,
        ids: &[ConversationId],
        per_conversation: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        if ids.is_empty() || per_conversation == 0 {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(
            "SELECT conversation_id, seq, side, author_id, author_name, text, client_id, created_at FROM messages WHERE ",
        );
        sql.push("brand_id = ? AND conversation_id IN ", [Bind::Text(brand_id.to_owned())]).push_ids(ids);
        sql.push(" AND seq <= ? ORDER BY conversation_id, seq", [Bind::Int(i64::from(per_conversation))]);
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter().map(crate::message_from_row).collect()
    }

    /// The agents who wrote in these conversations of the brand: `(conversation, agent id,
    /// the name they wrote under)`, one row per agent and conversation.
    pub async fn agent_authors(
        &self,
        brand_id: &str,
        ids: &[ConversationId],
    ) -> Result<Vec<(ConversationId, i64, String)>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new("SELECT conversation_id, author_id, MAX(author_name) FROM messages WHERE ");
        sql.push(
            "brand_id = ? AND side = 'a' AND author_id IS NOT NULL AND conversation_id IN ",
            [Bind::Text(brand_id.to_owned())],
        )
        .push_ids(ids);
        sql.text.push_str(" GROUP BY conversation_id, author_id ORDER BY conversation_id, MIN(seq)");
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let name: Option<String> = row.try_get(2)?;
                Ok((row.try_get(0)?, row.try_get(1)?, name.unwrap_or_default()))
            })
            .collect()
    }
}

/// The `AND …` conditions of a search, after `brand_id`: retention first, then each filter
/// that is set; the CSAT filter as the one `score` of this arm of the query (`None`: none).
fn search_conditions(sql: &mut Sql, search: &ConversationSearch, horizon: Millis, score: Option<i64>) {
    sql.push(" AND (closed_at IS NULL OR closed_at >= ?)", [Bind::Int(horizon)]);
    if let Some(from) = search.opened_from {
        sql.push(" AND opened_at >= ?", [Bind::Int(from)]);
    }
    if let Some(to) = search.opened_to {
        sql.push(" AND opened_at < ?", [Bind::Int(to)]);
    }
    if let Some(skill_id) = search.skill_id {
        sql.push(" AND skill_id = ?", [Bind::Int(skill_id)]);
    }
    if let Some(agent_id) = search.agent_id {
        sql.push(" AND agent_id = ?", [Bind::Int(agent_id)]);
    }
    if let Some(status) = search.status {
        sql.push(" AND status = ?", [Bind::Text(ConversationStatus::as_str(status).to_owned())]);
    }
    if let Some(score) = score {
        sql.push(" AND csat_score = ?", [Bind::Int(score)]);
    }
    if let Some(channel) = &search.channel {
        sql.push(" AND channel = ?", [Bind::Text(channel.clone())]);
    }
    if let Some(consumer_id) = search.consumer_id {
        sql.push(" AND consumer_id = ?", [Bind::Int(consumer_id)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        let mut sql = Sql::new("SELECT 1 WHERE ");
        sql.push("a = ? AND b IN ", [Bind::Text("x".into())]).push_ids(&[4, 5]);
        sql.push(" AND (c, d) < (?, ?)", [Bind::Int(1), Bind::Int(2)]);
        assert_eq!(sql.text, "SELECT 1 WHERE a = $1 AND b IN ($2, $3) AND (c, d) < ($4, $5)");
        assert_eq!(sql.binds.len(), 5);
    }
}
