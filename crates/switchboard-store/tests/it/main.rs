//! The store's one integration-test binary: a conformance suite that runs the same async test
//! functions against SQLite and against PostgreSQL, in the style of matrix-rust-sdk's
//! `crates/matrix-sdk-base/src/store/integration_tests.rs`.
//!
//! Each area of the store has a module holding plain `async fn test_x(store: Store)` functions
//! (or `async fn test_x(options: StoreOptions)` for tests that open stores themselves, such as
//! reopening a file). The module lists them in one [`conformance_tests!`] invocation, which
//! instantiates every function twice, as `<module>::sqlite::test_x` and
//! `<module>::postgres::test_x`, each on a database of its own (see `harness`).
//!
//! Run one backend with a filter: `cargo test -p switchboard-store --test it sqlite::`.
//! The SQLite tests always run. The PostgreSQL ones are `#[ignore]`d with their reason, so a
//! plain `cargo test` lists them as ignored rather than as passed; run them with
//! `SWITCHBOARD_TEST_POSTGRES_URL=… cargo test -p switchboard-store -- --include-ignored`.
//! Run without that variable, they fail naming it: a test never passes without running.

/// Instantiates conformance tests for every backend.
///
/// `store: [...]` lists functions taking a freshly opened, empty [`switchboard_store::Store`];
/// `options: [...]` lists functions taking the [`switchboard_store::StoreOptions`] of a fresh,
/// empty database, for tests that open (and reopen) stores themselves. Attributes written
/// before a name go on both backends' tests; attributes in `(postgres: …)` after a name go on
/// the PostgreSQL one only. Every PostgreSQL test is `#[ignore]`d with the reason (above), so
/// neither list may add another `#[ignore]`.
macro_rules! conformance_tests {
    (
        store: [$($(#[$store_meta:meta])* $store_test:ident $((postgres: $(#[$store_pg_meta:meta])+))?),* $(,)?]
        $(, options: [
            $($(#[$options_meta:meta])* $options_test:ident $((postgres: $(#[$options_pg_meta:meta])+))?),* $(,)?
        ])?
        $(,)?
    ) => {
        mod sqlite {
            conformance_tests!(@backend Sqlite,
                [$([$(#[$store_meta])*] $store_test),*],
                [$($([$(#[$options_meta])*] $options_test),*)?]);
        }
        mod postgres {
            conformance_tests!(@backend Postgres,
                [$([#[ignore = "needs PostgreSQL: set SWITCHBOARD_TEST_POSTGRES_URL, run with --include-ignored"] $(#[$store_meta])* $($(#[$store_pg_meta])+)?] $store_test),*],
                [$($([#[ignore = "needs PostgreSQL: set SWITCHBOARD_TEST_POSTGRES_URL, run with --include-ignored"] $(#[$options_meta])* $($(#[$options_pg_meta])+)?] $options_test),*)?]);
        }
    };
    (
        @backend $backend:ident,
        [$([$(#[$store_meta:meta])*] $store_test:ident),*],
        [$([$(#[$options_meta:meta])*] $options_test:ident),*]
    ) => {
        $(
            $(#[$store_meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $store_test() {
                $crate::harness::run_with_store($crate::harness::Backend::$backend, super::$store_test).await;
            }
        )*
        $(
            $(#[$options_meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $options_test() {
                $crate::harness::run_with_options($crate::harness::Backend::$backend, super::$options_test).await;
            }
        )*
    };
}

mod harness;
mod support;

mod agents;
mod audit;
mod automation;
mod conversations;
mod directory;
mod erasure;
mod floor;
mod identity;
mod leases;
mod listing;
mod masking;
mod messages;
mod outbox;
mod persistence;
mod push;
mod receipts;
mod retention;
mod schema;
mod search;
mod tenancy;
mod tls;
