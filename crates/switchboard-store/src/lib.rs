//! Durable state of Switchboard: brands, apps and keys, users and sessions, consumers,
//! conversations and messages. The store is the source of truth: the bus may drop events,
//! the store never does.
//!
//! One implementation serves SQLite (embedded, the default) and PostgreSQL (fleets): queries
//! are written once in the SQL both dialects share and run through `sqlx::Any`; schema
//! migrations are per dialect (`migrations/sqlite`, `migrations/postgres`). The conformance
//! suite in `tests/it` runs against both.
//!
//! Every query that touches brand data takes the brand id; there is no "get by id" that
//! could cross brands.
//!
//! Messages are written by the group-commit writer (`writer`); everything else goes through
//! the pool directly.

#[cfg(feature = "bench")]
pub mod bench;
mod export;
mod floor;
pub mod lease;
pub use lease::{Leases, LeasesLost};
mod metrics;
pub mod model;
mod queries;
pub mod testing;
pub mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Connection, Row};
use switchboard_protocol::{Millis, Side};
use tokio::sync::{mpsc, oneshot};

pub use crate::floor::{Activity, AgentDay};
pub use crate::metrics::describe as describe_metrics;
pub use crate::model::*;
pub use crate::queries::audit::{ActorKind, AuditEntry, AuditFilter, AuditPage, NewAuditEntry};
pub use crate::queries::automation::NewAutomaticMessage;
pub use crate::queries::consumers::ConsumerMerge;
pub use crate::queries::erasure::ErasureCounts;
pub use crate::queries::hours::StoredHours;
pub use crate::queries::outbox::OutboxEntry;
pub use crate::queries::retention::{PurgeCounts, RetentionRun};
pub use crate::queries::search::MAX_SEARCH_PAGE;
pub use crate::queries::{
    ApiToken, ApiTokenGrant, AppPatch, AutoCloseOutcome, BrandPatch, CsatError, NewApiToken, NewApp, NewBrand, NewUser,
    SkillPatch, TokenCreator, UserPatch,
};
pub use crate::writer::{AgentAppend, AgentTarget, Append, AppendError, Appended, ConsumerAppend, SystemAppend};

/// Storage failures. Callers map these to `internal`/`unavailable` at the API edge, except
/// the precise variants (`NotFound`, `Conflict`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist (in this brand).
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write.
    #[error("already exists: {0}")]
    Conflict(String),
    /// The writer task has stopped (the store is shutting down).
    #[error("the store is shutting down")]
    ShuttingDown,
    /// The database URL is not usable.
    #[error("invalid database url {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// A stored value could not be decoded (a bug or a hand-edited database).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other database error.
    #[error(transparent)]
    Database(sqlx::Error),
    /// An error of the SQLite writer's connection.
    #[error("sqlite: {0}")]
    Sqlite(String),
    /// The writer's thread or runtime could not be started.
    #[error("cannot start the writer: {0}")]
    WriterStart(String),
    /// A store error on another node of the fleet (the one that ran the request).
    #[error("on the node running the brand's engine: {0}")]
    Remote(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &error
            && db.is_unique_violation()
        {
            return StoreError::Conflict(db.message().to_owned());
        }
        if let sqlx::Error::RowNotFound = error {
            return StoreError::NotFound;
        }
        StoreError::Database(error)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Database(sqlx::Error::Migrate(Box::new(error)))
    }
}

/// The SQL dialect behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// An append queued at the writer; [`PendingAppend::committed`] waits for its outcome.
#[derive(Debug)]
pub struct PendingAppend {
    answer: oneshot::Receiver<Result<Appended, AppendError>>,
}

impl PendingAppend {
    /// The result once the batch holding this append committed (or failed).
    pub async fn committed(self) -> Result<Appended, AppendError> {
        self.answer.await.map_err(|_| AppendError::Store(StoreError::ShuttingDown))?
    }
}

/// SQLite durability: `Full` fsyncs the WAL at every commit (survives power loss);
/// `Normal` fsyncs at checkpoints only (survives `kill -9`, not power loss).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

/// How to open the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path/to/file.db` or `postgres://…`.
    pub url: String,
    /// SQLite only.
    pub sqlite_sync: SqliteSync,
    /// Connections for reads (and non-message writes).
    pub max_connections: u32,
}

impl StoreOptions {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> StoreOptions {
        StoreOptions { url: url.into(), sqlite_sync: SqliteSync::Full, max_connections: 8 }
    }
}

/// The database file of a `sqlite:` URL, or `None` for another kind of URL; an in-memory
/// SQLite URL is refused (the store needs a second connection to the same database).
pub fn sqlite_file(url: &str) -> Result<Option<std::path::PathBuf>, StoreError> {
    if url.starts_with("sqlite:") { writer::sqlite::file_of(url).map(Some) } else { Ok(None) }
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Handle to the store. Cheap to clone; all clones share the pool and the writer.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
    /// SQLite's durability as configured (the retention purge relaxes it for its own
    /// transactions and puts it back).
    sqlite_sync: SqliteSync,
    /// Queue of the group-commit writer task. The task ends when the last clone of this
    /// sender is dropped (when every `Store` clone is gone); bounded so that a stalled disk
    /// pushes back on writers instead of growing memory.
    writer: mpsc::Sender<writer::Job>,
    /// How to open a connection of one's own (a lease holder's).
    connect_options: AnyConnectOptions,
    /// The leases held on this node, on SQLite (see [`lease`]).
    local_leases: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dialect", &self.dialect).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating a SQLite file if needed), migrates and starts the writer task.
    /// Must be called inside a tokio runtime.
    pub async fn open(options: &StoreOptions) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = if options.url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if options.url.starts_with("postgres:") || options.url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            return Err(StoreError::BadUrl {
                url: options.url.clone(),
                reason: "expected sqlite://… or postgres://…".into(),
            });
        };
        let connect_options = connect_options(options, dialect)?;
        let sync = options.sqlite_sync;
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        configure_sqlite(conn, sync).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(connect_options.clone())
            .await?;
        match dialect {
            Dialect::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Dialect::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        let (writer, jobs) = mpsc::channel(4096);
        match dialect {
            Dialect::Sqlite => writer::sqlite::spawn(&writer::sqlite::file_of(&options.url)?, sync, jobs)?,
            Dialect::Postgres => {
                // The writer binds arrays, which `Any` cannot: it speaks PostgreSQL directly.
                let options = sqlx::postgres::PgConnectOptions::from_str(&options.url)
                    .map_err(|error| StoreError::BadUrl { url: options.url.clone(), reason: error.to_string() })?
                    .disable_statement_logging();
                writer::pg::spawn(options, jobs).await?;
            }
        }
        Ok(Store { pool, dialect, sqlite_sync: sync, writer, connect_options, local_leases: Arc::default() })
    }

    /// The dialect in use.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The schema as `table.column` lines (with ` not null` where the column is), sorted,
    /// without the migrations' bookkeeping table: the same for both dialects, which a test
    /// checks against one committed outline. Column types differ by dialect and are left out.
    pub async fn schema_outline(&self) -> Result<Vec<String>, StoreError> {
        let sql = match self.dialect {
            Dialect::Sqlite => {
                "SELECT m.name, p.name, CASE WHEN p.\"notnull\" = 1 OR p.pk > 0 THEN 1 ELSE 0 END
                 FROM sqlite_master m JOIN pragma_table_info(m.name) p
                 WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'"
            }
            Dialect::Postgres => {
                "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT), CASE WHEN is_nullable = 'NO' THEN 1 ELSE 0 END
                 FROM information_schema.columns WHERE table_schema = 'public' AND table_name NOT LIKE '_sqlx%'"
            }
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        let mut lines = rows
            .iter()
            .map(|row| {
                let (table, column, not_null): (String, String, i32) =
                    (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
                Ok(format!("{table}.{column}{}", if not_null == 1 { " not null" } else { "" }))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        lines.sort();
        Ok(lines)
    }

    /// Checks the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Appends a message through the group-commit writer. Returns once the batch holding it
    /// has committed.
    pub async fn append(&self, append: Append, now: Millis) -> Result<Appended, AppendError> {
        self.submit(append, now).await?.committed().await
    }

    /// Queues an append at the writer and returns as soon as it is queued. Appends are
    /// applied in the order submitted, so a caller may submit several before waiting for the
    /// first (pipelining) and still get seqs in its order.
    pub async fn submit(&self, append: Append, now: Millis) -> Result<PendingAppend, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(writer::Job { append, now, reply })
            .await
            .map_err(|_| AppendError::Store(StoreError::ShuttingDown))?;
        Ok(PendingAppend { answer })
    }

    /// Closes the pool, waiting for connections to finish. Pending appends complete first
    /// only if their callers are still awaiting them.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn connect_options(options: &StoreOptions, dialect: Dialect) -> Result<AnyConnectOptions, StoreError> {
    let mut url = options.url.clone();
    if dialect == Dialect::Sqlite && !url.contains("mode=") {
        url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
    }
    let parsed = AnyConnectOptions::from_str(&url)
        .map_err(|error| StoreError::BadUrl { url: options.url.clone(), reason: error.to_string() })?;
    Ok(parsed.disable_statement_logging())
}

async fn configure_sqlite(conn: &mut sqlx::AnyConnection, sync: SqliteSync) -> Result<(), sqlx::Error> {
    let synchronous = match sync {
        SqliteSync::Full => "PRAGMA synchronous = FULL",
        SqliteSync::Normal => "PRAGMA synchronous = NORMAL",
    };
    for pragma in ["PRAGMA journal_mode = WAL", synchronous, "PRAGMA busy_timeout = 10000", "PRAGMA foreign_keys = ON"]
    {
        sqlx::query(pragma).execute(&mut *conn).await?;
    }
    // Make sure the connection is usable before the pool hands it out.
    conn.ping().await
}

fn opt_side(value: Option<String>) -> Result<Option<Side>, StoreError> {
    value.map(|s| Side::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("side {s:?}")))).transpose()
}

/// A message from its columns, by name: a pool's row (`AnyRow`) or the PostgreSQL writer's
/// (`PgRow`, where the columns follow an ordinal).
pub(crate) fn message_from_row<R>(row: &R) -> Result<StoredMessage, StoreError>
where
    R: sqlx::Row,
    &'static str: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let side: String = row.try_get("side")?;
    Ok(StoredMessage {
        conversation_id: row.try_get("conversation_id")?,
        seq: row.try_get("seq")?,
        side: Side::parse(&side).ok_or_else(|| StoreError::Corrupt(format!("side {side:?}")))?,
        author_id: row.try_get("author_id")?,
        author_name: row.try_get("author_name")?,
        text: row.try_get("text")?,
        client_id: row.try_get("client_id")?,
        created_at: row.try_get("created_at")?,
    })
}

#[cfg(test)]
mod tidy {
    //! The store knows nothing of HTTP: REST types and their OpenAPI schemas are the server's
    //! (`api::types`), converted from the rows here.

    #[test]
    fn the_store_depends_on_no_http_or_openapi_crate() {
        let manifest = include_str!("../Cargo.toml");
        for forbidden in ["utoipa", "axum", "openapi"] {
            assert!(!manifest.contains(forbidden), "switchboard-store must not depend on {forbidden:?}");
        }
    }
}
