//! Per-test databases for the conformance suite: a fresh SQLite file, or a fresh PostgreSQL
//! database created on the server named by `SWITCHBOARD_TEST_POSTGRES_URL`. Tests run in
//! parallel, so no two tests ever share tables.
//!
//! The test body runs in a spawned task so that the database is removed even when the test
//! panics; the panic is then re-raised. A failed SQLite test keeps its file (the path is
//! printed) for inspection.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use switchboard_store::{Store, StoreOptions};

/// Names the PostgreSQL server to test against, e.g. `postgres://postgres@127.0.0.1:5432/test`.
pub const POSTGRES_URL_VAR: &str = "SWITCHBOARD_TEST_POSTGRES_URL";

/// The database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database made for one test, removed by [`TestDatabase::remove`].
enum TestDatabase {
    Sqlite { path: PathBuf },
    Postgres { server_url: String, name: String },
}

impl TestDatabase {
    /// Creates an empty database; panics when the backend cannot be reached.
    async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("switchboard-store-it-{}.db", unique_suffix()));
                TestDatabase::Sqlite { path }
            }
            Backend::Postgres => {
                let server_url = postgres_server_url();
                let name = format!("sb_test_{}", unique_suffix());
                let mut conn = PgConnection::connect(&server_url)
                    .await
                    .unwrap_or_else(|error| panic!("cannot connect to {POSTGRES_URL_VAR}={server_url:?}: {error}"));
                sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|error| panic!("cannot create database {name}: {error}"));
                let _ = conn.close().await;
                TestDatabase::Postgres { server_url, name }
            }
        }
    }

    /// Options that open this database.
    fn options(&self) -> StoreOptions {
        match self {
            TestDatabase::Sqlite { path } => {
                let path = path.to_str().expect("temp dir path is UTF-8");
                // `sqlite://` followed by the absolute path (which starts with `/`).
                StoreOptions::new(format!("sqlite://{path}"))
            }
            TestDatabase::Postgres { server_url, name } => StoreOptions::new(with_database(server_url, name)),
        }
    }

    /// Best-effort removal. A failed test's SQLite file is kept and its path printed.
    async fn remove(self, test_failed: bool) {
        match self {
            TestDatabase::Sqlite { path } => {
                if test_failed {
                    eprintln!("keeping the database of the failed test: {}", path.display());
                    return;
                }
                for suffix in ["", "-wal", "-shm"] {
                    let mut file = path.clone().into_os_string();
                    file.push(suffix);
                    let _ = std::fs::remove_file(file);
                }
            }
            TestDatabase::Postgres { server_url, name } => {
                // `WITH (FORCE)` ends the sessions the dropped store may still be closing.
                let result = async {
                    let mut conn = PgConnection::connect(&server_url).await?;
                    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                        .execute(&mut conn)
                        .await?;
                    conn.close().await
                }
                .await;
                if let Err(error) = result {
                    eprintln!("could not drop test database {name}: {error}");
                }
            }
        }
    }
}

/// The PostgreSQL server URL. The PostgreSQL tests are ignored by default; one that was asked
/// to run without the server named fails with the reason rather than passing untested.
fn postgres_server_url() -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("needs PostgreSQL: {POSTGRES_URL_VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"),
    }
}

/// `url` with its database (the path) replaced by `database`; the query string is kept.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let authority_end = base[authority_start..].find('/').map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..authority_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// 16 random hex digits (from the std hasher's random keys; no extra crate needed).
fn unique_suffix() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// Opens the store, failing the test with the reason if it cannot.
pub async fn open(options: &StoreOptions) -> Store {
    Store::open(options).await.unwrap_or_else(|error| panic!("cannot open store at {:?}: {error}", options.url))
}

/// Runs `test` with the options of a fresh database of `backend`, then removes it.
pub async fn run_with_options<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(StoreOptions) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let database = TestDatabase::create(backend).await;
    // The test runs in its own task so that a panic comes back here as a `JoinError` and the
    // database is still removed; the task ends before `remove` starts.
    let outcome = tokio::spawn(test(database.options())).await;
    database.remove(outcome.is_err()).await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("test task did not finish: {error}"),
        }
    }
}

/// Runs `test` with a store opened on a fresh database of `backend`, then removes it.
pub async fn run_with_store<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Store) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_with_options(backend, |options| async move { test(open(&options).await).await }).await;
}

#[test]
fn with_database_replaces_only_the_path() {
    let cases = [
        ("postgres://postgres@127.0.0.1:5432/test", "postgres://postgres@127.0.0.1:5432/x"),
        ("postgres://postgres@127.0.0.1:5432", "postgres://postgres@127.0.0.1:5432/x"),
        ("postgres://u:p@h/test?sslmode=disable", "postgres://u:p@h/x?sslmode=disable"),
        ("postgresql://h:5432/?sslmode=disable", "postgresql://h:5432/x?sslmode=disable"),
    ];
    for (url, expected) in cases {
        assert_eq!(with_database(url, "x"), expected, "{url}");
    }
}
