//! End-to-end tests of the server over real sockets: a server bound to 127.0.0.1:0 on a
//! fresh SQLite file, real WebSocket clients (tokio-tungstenite) and a real HTTP client.

/// Instantiates each named `async fn test(backend: Backend)` twice: `sqlite::test`, and
/// `postgres::test`, `#[ignore]`d with its reason (run with `--include-ignored` and
/// `SWITCHBOARD_TEST_POSTGRES_URL`). Defined before the modules so every one can use it.
macro_rules! on_both_stores {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(crate::harness::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                #[ignore = "needs PostgreSQL: set SWITCHBOARD_TEST_POSTGRES_URL, run with --include-ignored"]
                async fn $test() {
                    super::$test(crate::harness::Backend::Postgres).await;
                }
            )*
        }
    };
}

mod harness;

mod abuse;
mod admin;
mod auth;
mod authz;
mod automation;
mod conversation;
mod credentials;
mod edge;
mod fake_providers;
mod fleet;
mod floor;
mod governance;
mod identity;
mod masking;
mod presence;
mod push;
mod races;
mod robustness;
mod tenancy;
mod text_input;
mod tls;
mod tokens;
