//! Per-test databases for the conformance suite: a fresh SQLite file, or a fresh PostgreSQL
//! database created on the server named by `SWITCHBOARD_TEST_POSTGRES_URL`. Tests run in
//! parallel, so no two tests ever share tables.
//!
//! The test body runs in a spawned task so that the database is removed even when the test
//! panics; the panic is then re-raised. A failed SQLite test keeps its file (the path is
//! printed) for inspection.

use std::future::Future;
use std::path::PathBuf;

use switchboard_store::testing::{PostgresTestDatabase, unique_suffix};
use switchboard_store::{Store, StoreOptions};

/// The database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database made for one test, removed by [`TestDatabase::remove`].
enum TestDatabase {
    Sqlite { path: PathBuf },
    Postgres(PostgresTestDatabase),
}

impl TestDatabase {
    /// Creates an empty database; panics when the backend cannot be reached.
    async fn create(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("switchboard-store-it-{}.db", unique_suffix()));
                TestDatabase::Sqlite { path }
            }
            Backend::Postgres => TestDatabase::Postgres(PostgresTestDatabase::create().await),
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
            TestDatabase::Postgres(database) => StoreOptions::new(database.url()),
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
            TestDatabase::Postgres(database) => database.drop_database().await,
        }
    }
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
