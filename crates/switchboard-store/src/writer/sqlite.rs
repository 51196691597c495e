//! The SQLite writer: a dedicated thread with its own rusqlite connection, running the append
//! rules of `writer` in one `BEGIN IMMEDIATE` transaction per batch with cached prepared
//! statements. Going through sqlx here would cost two thread hand-offs per statement (sqlx
//! runs SQLite on a worker thread of its own); this thread is that worker, and does nothing
//! else. Reads and other writes keep using the sqlx pool on the same WAL file.
//!
//! The `WriteTx` methods are `async` because the PostgreSQL writer once ran them too (it now
//! runs `writer::batch`'s set-based statements); they never wait, and the thread drives them
//! on a current-thread runtime.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, ToSql};
use switchboard_protocol::{ConversationId, Millis, Side};
use tokio::sync::mpsc;

use super::{
    AppendTo, ConversationHead, Job, MAX_BATCH, NewConversation, NewMessage, Origin, WriteTx, answer, apply, next_batch,
};
use crate::model::StoredMessage;
use crate::{AppendError, Appended, SqliteSync, StoreError};

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(failure, message) = &error
            && failure.code == rusqlite::ErrorCode::ConstraintViolation
        {
            return StoreError::Conflict(message.clone().unwrap_or_else(|| failure.to_string()));
        }
        StoreError::Sqlite(error.to_string())
    }
}

/// The file of a `sqlite:` URL; in-memory databases cannot have a second connection.
pub(crate) fn file_of(url: &str) -> Result<PathBuf, StoreError> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        return Err(StoreError::BadUrl {
            url: url.to_owned(),
            reason: "SQLite needs a file (in-memory databases are not supported)".into(),
        });
    }
    Ok(PathBuf::from(path))
}

fn open(path: &Path, sync: SqliteSync) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    let synchronous = match sync {
        SqliteSync::Full => "FULL",
        SqliteSync::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 10000;
         PRAGMA foreign_keys = ON;"
    ))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Opens the writer's connection (so errors surface to the caller) and starts its thread.
/// The thread ends when every sender of `jobs` is gone.
pub(crate) fn spawn(path: &Path, sync: SqliteSync, jobs: mpsc::Receiver<Job>) -> Result<(), StoreError> {
    let conn = open(path, sync)?;
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || run(conn, jobs))
        .map_err(|error| StoreError::Sqlite(format!("cannot start the writer thread: {error}")))?;
    Ok(())
}

fn run(conn: Connection, mut jobs: mpsc::Receiver<Job>) {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            // Without a runtime no job can be answered; dropping `jobs` makes every append
            // fail with `ShuttingDown` instead of hanging.
            tracing::error!(%error, "sqlite writer cannot start");
            return;
        }
    };
    runtime.block_on(async move {
        let mut tx = SqliteTx { conn };
        let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
        while next_batch(&mut jobs, &mut batch).await {
            match tx.commit_batch(&batch).await {
                Ok(results) => answer(&mut batch, results),
                Err(batch_error) => {
                    // Retry each job alone so one bad job cannot fail the others.
                    tracing::warn!(error = %batch_error, jobs = batch.len(), "batch append failed; retrying one by one");
                    for job in batch.drain(..) {
                        let result = match tx.commit_batch(std::slice::from_ref(&job)).await {
                            Ok(mut results) => results.pop().expect("one result per job"),
                            Err(error) => Err(AppendError::Store(error)),
                        };
                        let _ = job.reply.send(result);
                    }
                }
            }
        }
    });
}

/// A message row as read: `conversation_id, seq, side, author_id, author_name, text, client_id,
/// created_at`.
struct MessageRow(i64, i64, String, Option<i64>, Option<String>, String, Option<String>, i64);

impl MessageRow {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
        Ok(MessageRow(
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
            row.get(4)?,
            row.get(5)?,
            row.get(6)?,
            row.get(7)?,
        ))
    }

    fn into_message(self) -> Result<StoredMessage, StoreError> {
        let MessageRow(conversation_id, seq, side, author_id, author_name, text, client_id, created_at) = self;
        Ok(StoredMessage {
            conversation_id,
            seq,
            side: Side::parse(&side).ok_or_else(|| StoreError::Corrupt(format!("side {side:?}")))?,
            author_id,
            author_name,
            text,
            client_id,
            created_at,
        })
    }
}

struct SqliteTx {
    conn: Connection,
}

impl SqliteTx {
    async fn commit_batch(&mut self, jobs: &[Job]) -> Result<Vec<Result<Appended, AppendError>>, StoreError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            match apply(self, &job.append, job.now).await {
                Err(AppendError::Store(error)) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(error);
                }
                other => results.push(other),
            }
        }
        if let Err(error) = self.conn.execute_batch("COMMIT") {
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(error.into());
        }
        Ok(results)
    }

    fn row_opt<T>(
        &self,
        sql: &str,
        params: &[(&str, &dyn ToSql)],
        map: impl FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        Ok(self.conn.prepare_cached(sql)?.query_row(params, map).optional()?)
    }
}

impl WriteTx for SqliteTx {
    async fn find_duplicate(
        &mut self,
        brand_id: &str,
        side: Side,
        author_id: i64,
        client_id: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let found = self.row_opt(
            find_duplicate(side),
            &[("$1", &brand_id), ("$2", &author_id), ("$3", &client_id)],
            MessageRow::read,
        )?;
        found.map(MessageRow::into_message).transpose()
    }

    async fn find_keyed_notice(
        &mut self,
        conversation_id: ConversationId,
        key: &str,
    ) -> Result<Option<StoredMessage>, StoreError> {
        let found = self.row_opt(FIND_KEYED_NOTICE, &[("$1", &conversation_id), ("$2", &key)], MessageRow::read)?;
        found.map(MessageRow::into_message).transpose()
    }

    async fn open_conversation_of(
        &mut self,
        brand_id: &str,
        consumer_id: i64,
    ) -> Result<Option<(ConversationId, Option<i64>)>, StoreError> {
        self.row_opt(
            "SELECT id, agent_id FROM conversations WHERE brand_id = $1 AND consumer_id = $2 AND status = 'open'",
            &[("$1", &brand_id), ("$2", &consumer_id)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
    }

    async fn conversation_head(
        &mut self,
        brand_id: &str,
        conversation_id: ConversationId,
    ) -> Result<Option<ConversationHead>, StoreError> {
        self.row_opt(
            "SELECT consumer_id, status, agent_id FROM conversations WHERE id = $1 AND brand_id = $2",
            &[("$1", &conversation_id), ("$2", &brand_id)],
            |row| {
                Ok(ConversationHead {
                    consumer: row.get(0)?,
                    open: row.get::<_, String>(1)? == "open",
                    agent: row.get(2)?,
                })
            },
        )
    }

    async fn latest_origin(&mut self, brand_id: &str, consumer_id: i64) -> Result<Option<Origin>, StoreError> {
        self.row_opt(
            "SELECT app_id, channel, skill_id FROM conversations WHERE brand_id = $1 AND consumer_id = $2
             ORDER BY opened_at DESC, id DESC LIMIT 1",
            &[("$1", &brand_id), ("$2", &consumer_id)],
            |row| Ok(Origin { app_id: row.get(0)?, channel: row.get(1)?, skill_id: row.get(2)? }),
        )
    }

    async fn insert_conversation(
        &mut self,
        new: &NewConversation<'_>,
        now: Millis,
    ) -> Result<ConversationId, StoreError> {
        let assigned_at = new.agent_id.map(|_| now);
        let id = self.row_opt(
            INSERT_CONVERSATION,
            &[
                ("$1", &new.brand_id),
                ("$2", &new.consumer_id),
                ("$3", &new.app_id),
                ("$4", &new.channel),
                ("$5", &new.skill_id),
                ("$6", &now),
                ("$7", &new.agent_id),
                ("$8", &assigned_at),
                ("$9", &new.priority),
            ],
            |row| row.get(0),
        )?;
        let id: ConversationId = id.ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING returned no row".into()))?;
        self.conn.prepare_cached(INSERT_OPENED_EVENT)?.execute(rusqlite::named_params! {
            "$1": new.brand_id,
            "$2": id,
            "$3": new.agent_id,
            "$4": new.skill_id,
            "$5": now,
        })?;
        Ok(id)
    }

    async fn insert_message(&mut self, new: &NewMessage<'_>, now: Millis) -> Result<Option<StoredMessage>, StoreError> {
        let bump = match new.into {
            AppendTo::Open => BUMP_SEQ_IF_OPEN,
            AppendTo::Any => BUMP_SEQ,
        };
        let Some(seq) =
            self.row_opt(bump, &[("$1", &new.conversation_id), ("$2", &now), ("$3", &new.side.as_str())], |row| {
                row.get::<_, i64>(0)
            })?
        else {
            return Ok(None);
        };
        self.conn.prepare_cached(INSERT_MESSAGE)?.execute(
            &[
                ("$1", &new.conversation_id as &dyn ToSql),
                ("$2", &seq),
                ("$3", &new.brand_id),
                ("$4", &new.side.as_str()),
                ("$5", &new.author_id),
                ("$6", &new.author_name),
                ("$7", &new.text),
                ("$8", &new.client_id),
                ("$9", &now),
            ][..],
        )?;
        Ok(Some(new.stored(seq, now)))
    }

    async fn announce(
        &mut self,
        brand_id: &str,
        message: &StoredMessage,
        consumer_id: i64,
        now: Millis,
    ) -> Result<(), StoreError> {
        self.conn.prepare_cached(INSERT_PUSH)?.execute(rusqlite::named_params! {
            "$1": brand_id,
            "$2": message.conversation_id,
            "$3": message.seq,
            "$4": consumer_id,
            "$5": now,
        })?;
        Ok(())
    }

    async fn set_first_response(&mut self, conversation_id: ConversationId, now: Millis) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(SET_FIRST_RESPONSE)?
            .execute(&[("$1", &conversation_id as &dyn ToSql), ("$2", &now)][..])?;
        Ok(())
    }
}

// The statements of an append (`$n` parameters, which SQLite reads as `?n`).
/// The `opened` entry of a new conversation's event log, in the append's transaction.
const INSERT_OPENED_EVENT: &str = "INSERT INTO conversation_events
    (brand_id, conversation_id, kind, agent_id, skill_id, at) VALUES ($1, $2, 'opened', $3, $4, $5)";

/// A conversation opened with an agent (`$7`) is that agent's proactive follow-up.
const INSERT_CONVERSATION: &str = "INSERT INTO conversations
    (brand_id, consumer_id, app_id, channel, skill_id, status, opened_at, last_message_at, agent_id, assigned_at,
     priority, follow_up_by)
    VALUES ($1, $2, $3, $4, $5, 'open', $6, $6, $7, $8, $9, $7) RETURNING id";
/// Takes the next seq of an open conversation and stamps who wrote when (`$3`: the side, `a` or `c`).
const BUMP_SEQ_IF_OPEN: &str = "UPDATE conversations SET last_seq = last_seq + 1, last_message_at = $2,
    last_agent_at = CASE WHEN $3 = 'a' THEN $2 ELSE last_agent_at END,
    last_consumer_at = CASE WHEN $3 = 'c' THEN $2 ELSE last_consumer_at END
    WHERE id = $1 AND status = 'open' RETURNING last_seq";
/// The same for any conversation (system notices; `$3` is `s`, stamping nothing).
const BUMP_SEQ: &str = "UPDATE conversations SET last_seq = last_seq + 1, last_message_at = $2
    WHERE id = $1 AND $3 = 's' RETURNING last_seq";
/// The message an author stored under a client id (`$1` brand, `$2` author, `$3` client id).
/// The side is written into the statement, not bound: SQLite re-prepares a statement whose
/// bound value decides whether a partial index applies (`messages_system_key` is for
/// `side = 's'`), so a bound side re-parsed this statement on nearly every append.
fn find_duplicate(side: Side) -> &'static str {
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
const FIND_KEYED_NOTICE: &str = "SELECT conversation_id, seq, side, author_id, author_name, text,
    client_id, created_at FROM messages WHERE conversation_id = $1 AND side = 's' AND client_id = $2";
const INSERT_MESSAGE: &str = "INSERT INTO messages
    (conversation_id, seq, brand_id, side, author_id, author_name, text, client_id, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
/// A pending push for a stored message, only for a consumer with a registered device.
const INSERT_PUSH: &str = "INSERT INTO outbox
    (brand_id, kind, conversation_id, seq, consumer_id, created_at, due_at)
    SELECT $1, 'push', $2, $3, $4, $5, $5
    WHERE EXISTS (SELECT 1 FROM push_tokens WHERE brand_id = $1 AND consumer_id = $4)";
const SET_FIRST_RESPONSE: &str =
    "UPDATE conversations SET first_response_at = $2 WHERE id = $1 AND first_response_at IS NULL";

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;
    use crate::{Store, StoreOptions};

    type Params<'a> = Vec<(&'a str, &'a dyn ToSql)>;

    /// Steps `sql` once (cached, as the writer runs it) and returns how often SQLite has
    /// re-prepared it so far.
    fn step(conn: &Connection, sql: &str, params: &[(&str, &dyn ToSql)]) -> i32 {
        let mut statement = conn.prepare_cached(sql).expect("statement prepares");
        {
            let mut rows = statement.query(params).expect("statement runs");
            rows.next().expect("statement steps");
        }
        statement.get_status(StatementStatus::RePrepare)
    }

    /// The append path's statements are prepared once and stay prepared as their bound
    /// values change. SQLite re-prepares a statement whose bound value decides whether a
    /// partial index applies: a bound side in the duplicate lookup (`messages_system_key` is
    /// for `side = 's'`) re-parsed it on nearly every append, a fifth of the server's CPU
    /// under load.
    #[tokio::test]
    async fn append_statements_are_not_reprepared_as_bound_values_change() {
        let dir = std::env::temp_dir().join(format!("switchboard-reprepare-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("store.db");
        let store = Store::open(&StoreOptions::new(format!("sqlite://{}", path.display()))).await.unwrap();
        store.close().await;
        let conn = Connection::open(&path).unwrap();
        // Nothing is kept: no rows are needed for a statement to be planned and stepped.
        conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN").unwrap();
        let sides = [Side::Consumer, Side::Agent, Side::System];
        let mut reprepared = Vec::new();
        for round in 0..9_i64 {
            let side = sides[round as usize % 3];
            let (brand, client_id, name) = (format!("brand-{}", round % 2), format!("cid-{round}"), Some("Ann"));
            let none: Option<i64> = None;
            let (side_str, channel) = (side.as_str(), "in_app");
            let checks: [(&str, Params<'_>); 9] = [
                (find_duplicate(side), vec![("$1", &brand), ("$2", &round), ("$3", &client_id)]),
                (FIND_KEYED_NOTICE, vec![("$1", &round), ("$2", &client_id)]),
                (BUMP_SEQ_IF_OPEN, vec![("$1", &round), ("$2", &round), ("$3", &side_str)]),
                (BUMP_SEQ, vec![("$1", &round), ("$2", &round), ("$3", &side_str)]),
                (
                    INSERT_MESSAGE,
                    vec![
                        ("$1", &round),
                        ("$2", &round),
                        ("$3", &brand),
                        ("$4", &side_str),
                        ("$5", &round),
                        ("$6", &name),
                        ("$7", &client_id),
                        ("$8", &client_id),
                        ("$9", &round),
                    ],
                ),
                (INSERT_PUSH, vec![("$1", &brand), ("$2", &round), ("$3", &round), ("$4", &round), ("$5", &round)]),
                (SET_FIRST_RESPONSE, vec![("$1", &round), ("$2", &round)]),
                (
                    INSERT_CONVERSATION,
                    vec![
                        ("$1", &brand),
                        ("$2", &round),
                        ("$3", &brand),
                        ("$4", &channel),
                        ("$5", &none),
                        ("$6", &round),
                        ("$7", &none),
                        ("$8", &none),
                        ("$9", &round),
                    ],
                ),
                (
                    INSERT_OPENED_EVENT,
                    vec![("$1", &brand), ("$2", &round), ("$3", &none), ("$4", &none), ("$5", &round)],
                ),
            ];
            for (sql, params) in &checks {
                let count = step(&conn, sql, params);
                if count > 0 && !reprepared.contains(sql) {
                    reprepared.push(*sql);
                }
            }
        }
        conn.execute_batch("ROLLBACK").unwrap();
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(reprepared.is_empty(), "re-prepared as bound values changed: {reprepared:#?}");
    }
}
