//! Fresh PostgreSQL databases for tests, shared by the store's conformance suite and the
//! tests of the crates built on it (the server's end-to-end tests on PostgreSQL): each test
//! gets a database of its own on the server named by [`POSTGRES_URL_VAR`], dropped after it.
//! Nothing here is used by the product.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// Names the PostgreSQL server to test against, e.g. `postgres://postgres@127.0.0.1:5432/test`.
pub const POSTGRES_URL_VAR: &str = "SWITCHBOARD_TEST_POSTGRES_URL";

/// What a PostgreSQL test prints when it is asked to run without its server (it fails rather
/// than passing untested).
pub const NEEDS_POSTGRES: &str = "needs PostgreSQL: set SWITCHBOARD_TEST_POSTGRES_URL, run with --include-ignored";

/// The PostgreSQL server URL; panics with the reason when it is not set.
pub fn postgres_server_url() -> String {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!("needs PostgreSQL: {POSTGRES_URL_VAR} is not set (e.g. postgres://postgres@127.0.0.1:5432/test)"),
    }
}

/// `url` with its database (the path) replaced by `database`; the query string is kept.
pub fn with_database(url: &str, database: &str) -> String {
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
pub fn unique_suffix() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// `CREATE DATABASE name` on the server at `server_url`.
pub async fn create_database(server_url: &str, name: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(server_url).await?;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut conn).await?;
    let _ = conn.close().await;
    Ok(())
}

/// `DROP DATABASE IF EXISTS name` on the server at `server_url`, `WITH (FORCE)`: it ends the
/// sessions a dropped store, or a killed process, may still hold. A failure is printed, not
/// returned (tests drop their databases on the way out).
pub async fn drop_database(server_url: &str, name: &str) {
    let result = async {
        let mut conn = PgConnection::connect(server_url).await?;
        sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&mut conn).await?;
        conn.close().await
    }
    .await;
    if let Err(error) = result {
        eprintln!("could not drop test database {name}: {error}");
    }
}

/// A database created for one test on the server at `server_url`.
#[derive(Debug, Clone)]
pub struct PostgresTestDatabase {
    pub server_url: String,
    pub name: String,
}

impl PostgresTestDatabase {
    /// Creates an empty database with a unique name; panics when the server cannot be reached.
    pub async fn create() -> PostgresTestDatabase {
        let server_url = postgres_server_url();
        let name = format!("sb_test_{}", unique_suffix());
        create_database(&server_url, &name).await.unwrap_or_else(|error| {
            panic!("cannot create database {name} at {POSTGRES_URL_VAR}={server_url:?}: {error}")
        });
        PostgresTestDatabase { server_url, name }
    }

    /// The URL of this database.
    pub fn url(&self) -> String {
        with_database(&self.server_url, &self.name)
    }

    /// Drops the database (best effort: a failure is printed). `WITH (FORCE)` ends the
    /// sessions a dropped store may still be closing.
    pub async fn drop_database(self) {
        drop_database(&self.server_url, &self.name).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
