//! PostgreSQL over TLS. A fleet's database usually runs on a machine of its own (issue 14),
//! so what crosses the network between a node and it — every message — must be able to go
//! encrypted: `sslmode` in `database_url` says how (docs/operations.md).

use sqlx::{Connection, PgConnection};
use switchboard_store::testing::PostgresTestDatabase;
use switchboard_store::{Store, StoreOptions};

/// `url` with one more query parameter.
fn with_param(url: &str, param: &str) -> String {
    format!("{url}{}{param}", if url.contains('?') { '&' } else { '?' })
}

/// With `sslmode=require`, every session the store opens (its pool, the message writer, a
/// lease holder) is encrypted, as PostgreSQL itself reports in `pg_stat_ssl`; and
/// `sslmode=verify-full` refuses a server whose certificate no trusted authority signed
/// (this machine's PostgreSQL serves Debian's self-signed "snakeoil" certificate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL with ssl = on: set SWITCHBOARD_TEST_POSTGRES_URL, run with --include-ignored"]
async fn sslmode_in_the_database_url_puts_every_session_on_tls() {
    let database = PostgresTestDatabase::create().await;
    let mut watcher = PgConnection::connect(&with_param(&database.url(), "sslmode=disable")).await.unwrap();
    let ssl: String = sqlx::query_scalar("SHOW ssl").fetch_one(&mut watcher).await.unwrap();
    assert_eq!(
        ssl, "on",
        "the PostgreSQL server at SWITCHBOARD_TEST_POSTGRES_URL has ssl = off; this test needs ssl = on (Debian's default, with its snakeoil certificate)"
    );

    let store = Store::open(&StoreOptions::new(with_param(&database.url(), "sslmode=require")))
        .await
        .expect("the store opens over TLS with sslmode=require");
    store.ping().await.unwrap();
    let _leases = store.lease_holder().await.unwrap();
    let sessions: Vec<(bool,)> = sqlx::query_as(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a ON a.pid = s.pid
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
    )
    .fetch_all(&mut watcher)
    .await
    .unwrap();
    // The pool's connection, the writer's two lanes and the lease holder's, at least.
    assert!(sessions.len() >= 4, "the store's sessions: {sessions:?}");
    assert!(sessions.iter().all(|(ssl,)| *ssl), "a session of the store is not encrypted: {sessions:?}");
    let (watcher_ssl,): (bool,) = sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(&mut watcher)
        .await
        .unwrap();
    assert!(!watcher_ssl, "sslmode=disable must give a plain session (the check above would prove nothing)");
    store.close().await;

    let error = Store::open(&StoreOptions::new(with_param(&database.url(), "sslmode=verify-full")))
        .await
        .expect_err("a self-signed server certificate must be refused under verify-full")
        .to_string();
    assert!(error.contains("certificate"), "the refusal should name the certificate: {error}");

    let _ = watcher.close().await;
    database.drop_database().await;
}
