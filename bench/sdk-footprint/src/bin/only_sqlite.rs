//! Attribution variant: the baseline plus bundled SQLite through rusqlite (no SDK).

#[tokio::main]
async fn main() {
    let addr = sdk_footprint::server_addr();
    println!("{}", sdk_footprint::baseline_work(&addr).await);
    let path = std::env::temp_dir().join(format!("sdk-footprint-{}.db", std::process::id()));
    let result = (|| -> rusqlite::Result<i64> {
        let db = rusqlite::Connection::open(&path)?;
        db.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS m (id INTEGER PRIMARY KEY, body BLOB)")?;
        db.execute("INSERT INTO m (body) VALUES (?1)", [addr.as_bytes()])?;
        db.query_row("SELECT count(*) FROM m", [], |row| row.get(0))
    })();
    println!("rows: {result:?}");
    let _ = std::fs::remove_file(&path);
}
