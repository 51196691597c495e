//! Bulk data for benchmarks (the `bench` feature; the product never builds it): a million
//! closed conversations with their consumers, messages and event logs, written with a few
//! set-based statements (`WITH RECURSIVE` number series, which both dialects have) instead
//! of a million appends, so the reporting API, exports and the retention purge can be measured
//! on realistic volumes in minutes. The rows look like the writer's and the desk's: gap-free
//! seqs from 1, messages alternating consumer and agent, an `opened`, `assigned` and `closed`
//! entry per conversation.

use sqlx::{AssertSqlSafe, Row};
use switchboard_protocol::Millis;

use crate::{Store, StoreError};

/// What to write.
#[derive(Debug, Clone)]
pub struct BulkSeed {
    pub brand_id: String,
    pub app_id: String,
    /// A short word (letters and digits) in the consumers' external ids: `<tag>-<n>`.
    pub tag: String,
    pub consumers: i64,
    pub conversations: i64,
    pub messages_per_conversation: i64,
    /// Agents conversations are spread over (round robin); at least one.
    pub agents: Vec<i64>,
    /// Skills conversations are spread over (round robin); empty: none.
    pub skills: Vec<i64>,
    /// When the first conversation opened; the others follow every `spacing_ms`.
    pub first_opened_at: Millis,
    pub spacing_ms: i64,
    /// How long after opening each closed.
    pub close_after_ms: i64,
}

/// What was written: the conversations' ids are `first_conversation..=last_conversation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkSeeded {
    pub first_conversation: i64,
    pub last_conversation: i64,
    pub messages: i64,
}

/// `CASE <index> WHEN 0 THEN a WHEN 1 THEN b … END` over integer ids (never user text).
fn pick(index: &str, ids: &[i64]) -> String {
    if ids.is_empty() {
        return "NULL".to_owned();
    }
    let mut case = format!("CASE {index} % {}", ids.len());
    for (i, id) in ids.iter().enumerate() {
        case.push_str(&format!(" WHEN {i} THEN {id}"));
    }
    case.push_str(" END");
    case
}

/// The numbers `0..count` as a recursive CTE named `n(i)`, `i` a BIGINT.
fn series(count: i64) -> String {
    format!(
        "WITH RECURSIVE n(i) AS (SELECT CAST(0 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < {})",
        count.max(1) - 1
    )
}

impl Store {
    /// Writes `seed` (see the module). Refuses a tag that is not letters and digits.
    pub async fn bulk_seed(&self, seed: &BulkSeed) -> Result<BulkSeeded, StoreError> {
        if seed.tag.is_empty() || !seed.tag.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(StoreError::Corrupt(format!("bench tag {:?}: letters and digits only", seed.tag)));
        }
        if seed.agents.is_empty() || seed.conversations < 1 || seed.consumers < 1 {
            return Err(StoreError::Corrupt("a bulk seed needs agents, consumers and conversations".into()));
        }
        let max_id = |table: &'static str| async move {
            let row = sqlx::query(AssertSqlSafe(format!("SELECT COALESCE(MAX(id), 0) FROM {table}")))
                .fetch_one(&self.pool)
                .await?;
            Ok::<i64, StoreError>(row.try_get(0)?)
        };
        let consumers_before = max_id("consumers").await?;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO consumers (brand_id, external_id, name, email, created_at)
             {} SELECT $1, '{tag}-' || i, 'Bench customer ' || i, '{tag}-' || i || '@bench.example', $2 FROM n",
            series(seed.consumers),
            tag = seed.tag
        )))
        .bind(&seed.brand_id)
        .bind(seed.first_opened_at)
        .execute(&self.pool)
        .await?;
        let first_consumer = sqlx::query("SELECT MIN(id), COUNT(*) FROM consumers WHERE brand_id = $1 AND id > $2")
            .bind(&seed.brand_id)
            .bind(consumers_before)
            .fetch_one(&self.pool)
            .await?;
        let (first_consumer, consumers): (i64, i64) = (first_consumer.try_get(0)?, first_consumer.try_get(1)?);
        if consumers != seed.consumers {
            return Err(StoreError::Corrupt(format!("wrote {consumers} consumers, expected {}", seed.consumers)));
        }

        let conversations_before = max_id("conversations").await?;
        let agent = pick("i", &seed.agents);
        let skill = pick("i", &seed.skills);
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO conversations (brand_id, consumer_id, app_id, channel, skill_id, status, priority, opened_at,
               closed_at, closed_by, agent_id, assigned_at, first_response_at, last_seq, last_message_at, csat_score,
               last_agent_at, last_consumer_at)
             {series} SELECT $1, $2 + (i % $3), $4, CASE WHEN i % 4 = 0 THEN 'web' ELSE 'in_app' END, {skill}, 'closed', 0,
               $5 + i * $6, $5 + i * $6 + $7, 'a', {agent}, $5 + i * $6 + 1000, $5 + i * $6 + 2000, $8,
               $5 + i * $6 + $8 * 1000, CASE WHEN i % 3 = 0 THEN 1 + (i / 3) % 5 ELSE NULL END,
               $5 + i * $6 + 2000, $5 + i * $6 + 1000
             FROM n",
            series = series(seed.conversations),
        )))
        .bind(&seed.brand_id)
        .bind(first_consumer)
        .bind(seed.consumers)
        .bind(&seed.app_id)
        .bind(seed.first_opened_at)
        .bind(seed.spacing_ms)
        .bind(seed.close_after_ms)
        .bind(seed.messages_per_conversation)
        .execute(&self.pool)
        .await?;
        let range = sqlx::query("SELECT MIN(id), MAX(id), COUNT(*) FROM conversations WHERE brand_id = $1 AND id > $2")
            .bind(&seed.brand_id)
            .bind(conversations_before)
            .fetch_one(&self.pool)
            .await?;
        let (first, last, count): (i64, i64, i64) = (range.try_get(0)?, range.try_get(1)?, range.try_get(2)?);
        if count != seed.conversations {
            return Err(StoreError::Corrupt(format!("wrote {count} conversations, expected {}", seed.conversations)));
        }

        let mut messages = 0;
        if seed.messages_per_conversation > 0 {
            let done = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO messages (conversation_id, seq, brand_id, side, author_id, author_name, text, client_id,
                   created_at)
                 {series} SELECT c.id, n.i + 1, c.brand_id, CASE WHEN n.i % 2 = 0 THEN 'c' ELSE 'a' END,
                   CASE WHEN n.i % 2 = 0 THEN NULL ELSE c.agent_id END,
                   CASE WHEN n.i % 2 = 0 THEN NULL ELSE 'Bench agent' END,
                   'Bench message ' || (n.i + 1) || ' of conversation ' || c.id || ': lorem ipsum dolor sit amet',
                   NULL, c.opened_at + (n.i + 1) * 1000
                 FROM conversations c CROSS JOIN n WHERE c.brand_id = $1 AND c.id BETWEEN $2 AND $3",
                series = series(seed.messages_per_conversation),
            )))
            .bind(&seed.brand_id)
            .bind(first)
            .bind(last)
            .execute(&self.pool)
            .await?;
            messages = i64::try_from(done.rows_affected()).unwrap_or(i64::MAX);
        }
        for (kind, at) in [("opened", "c.opened_at"), ("assigned", "c.assigned_at"), ("closed", "c.closed_at")] {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO conversation_events (brand_id, conversation_id, kind, agent_id, skill_id, at)
                 SELECT c.brand_id, c.id, '{kind}', c.agent_id, c.skill_id, {at}
                 FROM conversations c WHERE c.brand_id = $1 AND c.id BETWEEN $2 AND $3 ORDER BY c.id"
            )))
            .bind(&seed.brand_id)
            .bind(first)
            .bind(last)
            .execute(&self.pool)
            .await?;
        }
        if self.dialect == crate::Dialect::Postgres {
            // What autovacuum does within a minute of a load this size (it analyzes a table
            // once a tenth of it changed): without statistics the planner guesses a handful
            // of rows and picks plans that read them all. SQLite keeps no statistics unless
            // told to, and the product never tells it, so it is measured without.
            sqlx::query("ANALYZE").execute(&self.pool).await?;
        }
        Ok(BulkSeeded { first_conversation: first, last_conversation: last, messages })
    }
}
