//! The PostgreSQL writer: a thread of its own ([`spawn`]) running two lanes (tasks with a
//! connection each, see [`LANES`]) that apply the append rules of `writer` in one transaction
//! per batch, set-based (`writer::batch`): each statement takes the whole batch's inputs as
//! arrays (`unnest … WITH ORDINALITY`) and answers one row per input it found, so a batch
//! costs two round trips per generation (plus its heads, `BEGIN` and `COMMIT`) instead of four
//! or five per append. Also what makes multi-node safe: unique-key races with other nodes are retried
//! until the winner's row is visible.

use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{ConnectOptions, Connection, Executor, Row};
use switchboard_protocol::{ConversationId, Millis};
use tokio::sync::mpsc;

use super::batch::{BatchTx, DuplicateKey, Inserting, OpenConversation, apply_batch};
use super::{AppendTo, ConversationHead, Job, MAX_BATCH, NewConversation, NewMessage, Origin, answer, next_batch};
use crate::model::StoredMessage;
use crate::{AppendError, Appended, StoreError};

/// How many connections write batches, overlapping: one batch's statements run while the
/// previous batch's `COMMIT` (its WAL flush) is under way on another connection.
const LANES: usize = 2;

/// The job queue and the right to run statements: a lane holds it while it collects a batch
/// and runs its statements, and lets go just before `COMMIT`. The next lane's statements then
/// run while that commit flushes; any row they share with it (a conversation's `last_seq`, a
/// unique key) waits for the commit, so appends keep the order in which they were queued.
type Turn = std::sync::Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>;

/// Starts the writer on a thread of its own, once its first connection is made. The thread
/// runs its own single-threaded runtime, as the SQLite writer does: a batch waits on a
/// handful of statements one after another, and each answer is taken up as soon as it
/// arrives instead of queueing behind the sockets' tasks on the server's runtime.
pub(crate) async fn spawn(options: PgConnectOptions, jobs: mpsc::Receiver<Job>) -> Result<(), StoreError> {
    let (started, connected) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("postgres-writer".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = started.send(Err(StoreError::WriterStart(format!("its runtime: {error}"))));
                    return;
                }
            };
            runtime.block_on(async move {
                match options.connect().await {
                    Ok(conn) => {
                        let _ = started.send(Ok(()));
                        run(options, conn, jobs).await;
                    }
                    Err(error) => {
                        let _ = started.send(Err(error.into()));
                    }
                }
            });
        })
        .map_err(|error| StoreError::WriterStart(format!("its thread: {error}")))?;
    connected.await.map_err(|_| StoreError::ShuttingDown)?
}

/// Runs until every `Sender` of `jobs` is dropped (the store was dropped). Every job
/// received is answered: with its result, or with an error.
async fn run(options: PgConnectOptions, conn: PgConnection, jobs: mpsc::Receiver<Job>) {
    let turn: Turn = std::sync::Arc::new(tokio::sync::Mutex::new(jobs));
    let mut lanes = vec![tokio::spawn(lane(options.clone(), conn, turn.clone()))];
    for _ in 1..LANES {
        match options.connect().await {
            Ok(conn) => lanes.push(tokio::spawn(lane(options.clone(), conn, turn.clone()))),
            // One lane still writes everything, only without the overlap.
            Err(error) => tracing::warn!(%error, "the writer's second connection failed; writing on one"),
        }
    }
    for lane in lanes {
        let _ = lane.await;
    }
}

/// Whether a lane prepares its statements again before its `batches`th batch: after 16, 128,
/// 1,024 and 8,192 batches, then every 65,536. PostgreSQL keeps a prepared statement's
/// generic plan, made after its fifth run, until `ANALYZE` changes the table's statistics;
/// made while `conversations` is empty, with every index as cheap as any other, it may look
/// a consumer's conversations up through an index that reads the whole brand (measured:
/// about 200 entries read per lookup instead of 1, a fifth of the throughput lost).
/// Autovacuum's `ANALYZE` comes within a minute or so of the first writes; until then the
/// plans are made again as the table grows. Planning each run instead
/// (`plan_cache_mode = force_custom_plan`) cost about a sixth of the backend's time.
fn replans_after(batches: u64) -> bool {
    matches!(batches, 16 | 128 | 1_024 | 8_192) || batches.is_multiple_of(65_536)
}

/// One writing connection: takes its turn, collects a batch and runs its statements, lets
/// the turn go and commits.
async fn lane(options: PgConnectOptions, mut conn: PgConnection, turn: Turn) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut batches: u64 = 0;
    loop {
        batches += 1;
        if replans_after(batches) {
            // Between transactions: the next statements are prepared, and planned, afresh.
            if let Err(error) = conn.clear_cached_statements().await {
                tracing::warn!(%error, "the writer could not drop its prepared statements");
            }
        }
        let mut jobs = turn.lock().await;
        if !next_batch(&mut jobs, &mut batch).await {
            return;
        }
        // The transaction by statements, not sqlx's guard: the turn is let go between the
        // last statement and `COMMIT`.
        let executed = async {
            conn.execute("BEGIN").await?;
            let appends: Vec<_> = batch.iter().map(|job| (&job.append, job.now)).collect();
            apply_batch(&mut Statements(&mut conn), &appends).await
        }
        .await;
        let (error, _turn) = match executed {
            Ok(results) => {
                // The next lane may run its statements while this commit flushes.
                drop(jobs);
                match conn.execute("COMMIT").await {
                    Ok(_) => {
                        answer(&mut batch, results);
                        continue;
                    }
                    // Nothing of the batch is stored (a lost connection): each job again,
                    // alone, in the queue's order once this lane has the turn back.
                    Err(error) => (StoreError::from(error), turn.lock().await),
                }
            }
            // Still this lane's turn: the retries keep the queue's order.
            Err(error) => {
                let _ = conn.execute("ROLLBACK").await;
                (error, jobs)
            }
        };
        retry_alone(&options, &mut conn, &mut batch, &error).await;
    }
}

/// A database error aborted the whole batch: a unique-key race with another node or the
/// other lane, or a lost connection. Makes sure the connection works, then commits each job
/// alone so one bad job cannot fail the others.
async fn retry_alone(options: &PgConnectOptions, conn: &mut PgConnection, batch: &mut Vec<Job>, error: &StoreError) {
    tracing::warn!(%error, jobs = batch.len(), "batch append failed; retrying one by one");
    if conn.ping().await.is_err() {
        match options.connect().await {
            Ok(fresh) => *conn = fresh,
            Err(error) => tracing::error!(%error, "writer cannot reconnect to the database"),
        }
    }
    for job in batch.drain(..) {
        let result = commit_alone(conn, &job).await;
        let _ = job.reply.send(result);
    }
}

/// Commits one job in its own transaction. A unique-key conflict means another writer (a
/// second node, or a retry racing its original) committed the same message or opened the
/// same conversation first; by the time the conflict is reported that transaction has
/// committed, so a second attempt sees its row and answers from it.
async fn commit_alone(conn: &mut PgConnection, job: &Job) -> Result<Appended, AppendError> {
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
async fn commit_batch(conn: &mut PgConnection, jobs: &[Job]) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
    let mut tx = Connection::begin(conn).await?;
    let appends: Vec<_> = jobs.iter().map(|job| (&job.append, job.now)).collect();
    let results = apply_batch(&mut Statements(&mut tx), &appends).await?;
    tx.commit().await?;
    Ok(results)
}

/// The batch statements on the writer's open transaction.
struct Statements<'c>(&'c mut PgConnection);

/// Places the rows a statement found by their input's ordinal (`ord`, 1-based, the first
/// column): `None` where it found none.
fn by_ordinal<T>(
    inputs: usize,
    rows: Vec<PgRow>,
    read: impl Fn(&PgRow) -> Result<T, StoreError>,
) -> Result<Vec<Option<T>>, StoreError> {
    let mut found: Vec<Option<T>> = (0..inputs).map(|_| None).collect();
    for row in rows {
        let ord: i64 = row.try_get(0)?;
        let slot = usize::try_from(ord - 1)
            .ok()
            .and_then(|index| found.get_mut(index))
            .ok_or_else(|| StoreError::Corrupt(format!("ordinal {ord} of {inputs} inputs")))?;
        *slot = Some(read(&row)?);
    }
    Ok(found)
}

impl BatchTx for Statements<'_> {
    async fn find_duplicates(
        &mut self,
        keys: &[DuplicateKey<'_>],
    ) -> Result<Vec<(Option<StoredMessage>, Option<OpenConversation>)>, StoreError> {
        let brands: Vec<&str> = keys.iter().map(|k| k.brand_id).collect();
        let sides: Vec<&str> = keys.iter().map(|k| k.side.as_str()).collect();
        let authors: Vec<i64> = keys.iter().map(|k| k.author_id).collect();
        let client_ids: Vec<&str> = keys.iter().map(|k| k.client_id).collect();
        let open_of: Vec<Option<i64>> = keys.iter().map(|k| k.open_of).collect();
        let rows = sqlx::query(FIND_DUPLICATES)
            .bind(brands)
            .bind(sides)
            .bind(authors)
            .bind(client_ids)
            .bind(open_of)
            .fetch_all(&mut *self.0)
            .await?;
        let found = by_ordinal(keys.len(), rows, |row| {
            let message = match row.try_get::<Option<ConversationId>, _>("conversation_id")? {
                Some(_) => Some(crate::message_from_row(row)?),
                None => None,
            };
            let open = match row.try_get::<Option<ConversationId>, _>("open_id")? {
                Some(id) => Some((id, row.try_get("open_agent")?)),
                None => None,
            };
            Ok((message, open))
        })?;
        Ok(found.into_iter().map(Option::unwrap_or_default).collect())
    }

    async fn find_keyed_notices(
        &mut self,
        keys: &[(ConversationId, &str)],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError> {
        let ids: Vec<i64> = keys.iter().map(|k| k.0).collect();
        let client_ids: Vec<&str> = keys.iter().map(|k| k.1).collect();
        let rows = sqlx::query(FIND_KEYED_NOTICES).bind(ids).bind(client_ids).fetch_all(&mut *self.0).await?;
        by_ordinal(keys.len(), rows, crate::message_from_row)
    }

    async fn conversation_heads(
        &mut self,
        targets: &[(&str, ConversationId)],
    ) -> Result<Vec<Option<ConversationHead>>, StoreError> {
        let brands: Vec<&str> = targets.iter().map(|t| t.0).collect();
        let ids: Vec<i64> = targets.iter().map(|t| t.1).collect();
        let rows = sqlx::query(CONVERSATION_HEADS).bind(brands).bind(ids).fetch_all(&mut *self.0).await?;
        by_ordinal(targets.len(), rows, |row| {
            Ok(ConversationHead {
                consumer: row.try_get(1)?,
                open: row.try_get::<String, _>(2)? == "open",
                agent: row.try_get(3)?,
            })
        })
    }

    async fn open_conversations_of(
        &mut self,
        consumers: &[(&str, i64)],
    ) -> Result<Vec<Option<OpenConversation>>, StoreError> {
        let brands: Vec<&str> = consumers.iter().map(|c| c.0).collect();
        let ids: Vec<i64> = consumers.iter().map(|c| c.1).collect();
        let rows = sqlx::query(OPEN_CONVERSATIONS_OF).bind(brands).bind(ids).fetch_all(&mut *self.0).await?;
        by_ordinal(consumers.len(), rows, |row| Ok((row.try_get(1)?, row.try_get(2)?)))
    }

    async fn latest_origins(&mut self, consumers: &[(&str, i64)]) -> Result<Vec<Option<Origin>>, StoreError> {
        let brands: Vec<&str> = consumers.iter().map(|c| c.0).collect();
        let ids: Vec<i64> = consumers.iter().map(|c| c.1).collect();
        let rows = sqlx::query(LATEST_ORIGINS).bind(brands).bind(ids).fetch_all(&mut *self.0).await?;
        by_ordinal(consumers.len(), rows, |row| {
            Ok(Origin { app_id: row.try_get(1)?, channel: row.try_get(2)?, skill_id: row.try_get(3)? })
        })
    }

    async fn insert_conversations(
        &mut self,
        new: &[(NewConversation<'_>, Millis)],
    ) -> Result<Vec<ConversationId>, StoreError> {
        let rows = sqlx::query(INSERT_CONVERSATIONS)
            .bind(new.iter().map(|(c, _)| c.brand_id).collect::<Vec<&str>>())
            .bind(new.iter().map(|(c, _)| c.consumer_id).collect::<Vec<i64>>())
            .bind(new.iter().map(|(c, _)| c.app_id).collect::<Vec<&str>>())
            .bind(new.iter().map(|(c, _)| c.channel).collect::<Vec<&str>>())
            .bind(new.iter().map(|(c, _)| c.skill_id).collect::<Vec<Option<i64>>>())
            .bind(new.iter().map(|(c, _)| c.agent_id).collect::<Vec<Option<i64>>>())
            .bind(new.iter().map(|(c, _)| c.priority).collect::<Vec<i64>>())
            .bind(new.iter().map(|(_, now)| *now).collect::<Vec<i64>>())
            .fetch_all(&mut *self.0)
            .await?;
        let ids = by_ordinal(new.len(), rows, |row| Ok(row.try_get::<ConversationId, _>(1)?))?;
        ids.into_iter()
            .map(|id| id.ok_or_else(|| StoreError::Corrupt("a new conversation was not returned".into())))
            .collect()
    }

    async fn insert_messages(
        &mut self,
        new: &[(NewMessage<'_>, Millis)],
        inserting: &[Inserting],
    ) -> Result<Vec<Option<StoredMessage>>, StoreError> {
        let rows = sqlx::query(INSERT_MESSAGES)
            .bind(new.iter().map(|(m, _)| m.conversation_id).collect::<Vec<i64>>())
            .bind(new.iter().map(|(m, _)| matches!(m.into, AppendTo::Any)).collect::<Vec<bool>>())
            .bind(new.iter().map(|(m, _)| m.brand_id).collect::<Vec<&str>>())
            .bind(new.iter().map(|(m, _)| m.side.as_str()).collect::<Vec<&str>>())
            .bind(new.iter().map(|(m, _)| m.author_id).collect::<Vec<Option<i64>>>())
            .bind(new.iter().map(|(m, _)| m.author_name).collect::<Vec<Option<&str>>>())
            .bind(new.iter().map(|(m, _)| m.text).collect::<Vec<&str>>())
            .bind(new.iter().map(|(m, _)| m.client_id).collect::<Vec<Option<&str>>>())
            .bind(new.iter().map(|(_, now)| *now).collect::<Vec<i64>>())
            .bind(inserting.iter().map(|i| i.first_response).collect::<Vec<bool>>())
            .bind(inserting.iter().map(|i| i.announce).collect::<Vec<bool>>())
            .fetch_all(&mut *self.0)
            .await?;
        let seqs = by_ordinal(new.len(), rows, |row| Ok(row.try_get::<i64, _>(1)?))?;
        Ok(new.iter().zip(seqs).map(|((message, now), seq)| seq.map(|seq| message.stored(seq, *now))).collect())
    }
}

// The statements are prepared once per connection, and PostgreSQL keeps the generic plan it
// settles on after a few runs; on a fresh database that is while `conversations` is nearly
// empty and has no statistics. A lookup that two indexes could answer may then keep the wrong
// one for the connection's life: the consumer's open conversation was looked up through
// `conversations_open_agent` (the brand's open conversations, filtered) instead of
// `conversations_one_open`, reading 100 to 520 index entries per lookup in a benchmark with
// 200 open conversations, and planning it per batch chose the same. So that lookup is written
// so that only one index fits (below).
//
// Each lookup joins its inputs to a `LATERAL` subquery with `LIMIT 1`, which the planner does
// not flatten into a join: one index probe per input, whatever it guesses of the array's
// length (an `unnest` is guessed at 100 rows; a hash join over a growing table would be worse).

/// The partial unique index `messages_idempotency` answers each probe (`client_id = …`
/// implies `client_id IS NOT NULL`). With it, the open conversation of `open_of` (the
/// consumer's next lookup when the id is new), as [`OPEN_CONVERSATIONS_OF`] finds it; a row
/// only where either was found.
const FIND_DUPLICATES: &str = "SELECT i.ord, m.conversation_id, m.seq, m.side, m.author_id, m.author_name,
    m.text, m.client_id, m.created_at, o.id AS open_id, o.agent_id AS open_agent
    FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int8[]) WITH ORDINALITY
        AS i(brand_id, side, author_id, client_id, open_of, ord)
    LEFT JOIN LATERAL (SELECT * FROM messages WHERE brand_id = i.brand_id AND side = i.side
        AND author_id = i.author_id AND client_id = i.client_id LIMIT 1) m ON true
    LEFT JOIN LATERAL (SELECT c.id, c.agent_id FROM (SELECT id, agent_id, status FROM conversations
        WHERE i.open_of IS NOT NULL AND brand_id = i.brand_id AND consumer_id = i.open_of OFFSET 0) c
        WHERE c.status = 'open' LIMIT 1) o ON true
    WHERE m.conversation_id IS NOT NULL OR o.id IS NOT NULL";

/// Keyed system notices (automatic messages), by `messages_system_key`.
const FIND_KEYED_NOTICES: &str = "SELECT i.ord, m.conversation_id, m.seq, m.side, m.author_id, m.author_name,
    m.text, m.client_id, m.created_at
    FROM unnest($1::int8[], $2::text[]) WITH ORDINALITY AS i(conversation_id, client_id, ord)
    CROSS JOIN LATERAL (SELECT * FROM messages WHERE conversation_id = i.conversation_id AND side = 's'
        AND client_id = i.client_id LIMIT 1) m";

const CONVERSATION_HEADS: &str = "SELECT i.ord, c.consumer_id, c.status, c.agent_id
    FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS i(brand_id, id, ord)
    CROSS JOIN LATERAL (SELECT consumer_id, status, agent_id FROM conversations
        WHERE id = i.id AND brand_id = i.brand_id LIMIT 1) c";

/// Through `conversations_consumer` (the consumer's conversations, few), the status checked
/// outside the subquery: `OFFSET 0` keeps the check from being pushed into it, so neither
/// partial index on open conversations is a candidate (see above).
const OPEN_CONVERSATIONS_OF: &str = "SELECT i.ord, c.id, c.agent_id
    FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS i(brand_id, consumer_id, ord)
    CROSS JOIN LATERAL (SELECT id, agent_id, status FROM conversations
        WHERE brand_id = i.brand_id AND consumer_id = i.consumer_id OFFSET 0) c
    WHERE c.status = 'open'";

const LATEST_ORIGINS: &str = "SELECT i.ord, c.app_id, c.channel, c.skill_id
    FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS i(brand_id, consumer_id, ord)
    CROSS JOIN LATERAL (SELECT app_id, channel, skill_id FROM conversations
        WHERE brand_id = i.brand_id AND consumer_id = i.consumer_id ORDER BY opened_at DESC, id DESC LIMIT 1) c";

/// New open conversations and their `opened` events. A conversation opened with an agent is
/// that agent's proactive follow-up (`follow_up_by`). The consumers of one call are distinct
/// (at most one open conversation each), so the returned rows find their input by consumer.
const INSERT_CONVERSATIONS: &str = "WITH i AS (
        SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::int8[], $6::int8[], $7::int8[], $8::int8[])
        WITH ORDINALITY AS i(brand_id, consumer_id, app_id, channel, skill_id, agent_id, priority, now, ord)
    ), inserted AS (
        INSERT INTO conversations (brand_id, consumer_id, app_id, channel, skill_id, status, opened_at, last_message_at,
            agent_id, assigned_at, priority, follow_up_by)
        SELECT brand_id, consumer_id, app_id, channel, skill_id, 'open', now, now,
            agent_id, CASE WHEN agent_id IS NULL THEN NULL ELSE now END, priority, agent_id
        FROM i ORDER BY ord
        RETURNING id, brand_id, consumer_id, agent_id, skill_id, opened_at
    ), events AS (
        INSERT INTO conversation_events (brand_id, conversation_id, kind, agent_id, skill_id, at)
        SELECT brand_id, id, 'opened', agent_id, skill_id, opened_at FROM inserted ORDER BY id
    )
    SELECT i.ord, inserted.id FROM inserted JOIN i ON i.brand_id = inserted.brand_id AND i.consumer_id = inserted.consumer_id";

/// Inserts the messages, each into its conversation if that is open or, for a system notice
/// (`into_any`), if it exists: one `UPDATE` per conversation takes as many seqs as it gets
/// messages (consecutive, in input order), stamps who wrote last when (side `a` or `c`; `s`
/// stamps nothing) and, where `first`, the first agent response unless one is recorded; where
/// `announce`, a pending push is queued for a consumer with a registered device.
/// Updating a conversation once per statement keeps its row to one new version, and once
/// per transaction where the batch allows: a second update of a row this transaction wrote
/// makes PostgreSQL check the row's foreign keys again. The status is the one the `UPDATE`
/// finds, so a close committed by another connection meanwhile (READ COMMITTED) is seen,
/// never overrun. Answers the ordinal and seq of each message stored.
const INSERT_MESSAGES: &str = "WITH i AS (
        SELECT * FROM unnest($1::int8[], $2::bool[], $3::text[], $4::text[], $5::int8[], $6::text[], $7::text[],
            $8::text[], $9::int8[], $10::bool[], $11::bool[])
        WITH ORDINALITY AS i(conversation_id, into_any, brand_id, side, author_id, author_name, text, client_id, now,
            first, announce, ord)
    ), per_conversation AS (
        SELECT conversation_id, count(*) AS open_count, max(now) AS open_at,
            max(now) FILTER (WHERE side = 'a') AS agent_at, max(now) FILTER (WHERE side = 'c') AS consumer_at,
            min(now) FILTER (WHERE first) AS first_at,
            count(*) FILTER (WHERE into_any AND side = 's') AS any_count,
            max(now) FILTER (WHERE into_any AND side = 's') AS any_at
        FROM i GROUP BY conversation_id
    ), bumped AS (
        UPDATE conversations c SET
            last_seq = c.last_seq + CASE WHEN c.status = 'open' THEN p.open_count ELSE p.any_count END,
            last_message_at = CASE WHEN c.status = 'open' THEN p.open_at ELSE p.any_at END,
            last_agent_at = CASE WHEN c.status = 'open' THEN coalesce(p.agent_at, c.last_agent_at)
                ELSE c.last_agent_at END,
            last_consumer_at = CASE WHEN c.status = 'open' THEN coalesce(p.consumer_at, c.last_consumer_at)
                ELSE c.last_consumer_at END,
            first_response_at = CASE WHEN c.status = 'open' THEN coalesce(c.first_response_at, p.first_at)
                ELSE c.first_response_at END
        FROM per_conversation p
        WHERE c.id = p.conversation_id AND (c.status = 'open' OR p.any_count > 0)
        RETURNING c.id, c.last_seq, c.status = 'open' AS open, c.consumer_id
    ), placed AS (
        SELECT i.*, bumped.consumer_id, bumped.last_seq - count(*) OVER taken + row_number() OVER (taken ORDER BY i.ord) AS seq
        FROM i JOIN bumped ON bumped.id = i.conversation_id
        WHERE bumped.open OR (i.into_any AND i.side = 's')
        WINDOW taken AS (PARTITION BY i.conversation_id)
    ), inserted AS (
        INSERT INTO messages (conversation_id, seq, brand_id, side, author_id, author_name, text, client_id, created_at)
        SELECT conversation_id, seq, brand_id, side, author_id, author_name, text, client_id, now
        FROM placed ORDER BY ord
    ), announced AS (
        INSERT INTO outbox (brand_id, kind, conversation_id, seq, consumer_id, created_at, due_at)
        SELECT brand_id, 'push', conversation_id, seq, consumer_id, now, now FROM placed
        WHERE announce AND EXISTS (SELECT 1 FROM push_tokens p
            WHERE p.brand_id = placed.brand_id AND p.consumer_id = placed.consumer_id)
        ORDER BY ord
    )
    SELECT ord, seq FROM placed";
