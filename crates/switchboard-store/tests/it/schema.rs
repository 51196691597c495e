//! Both dialects' migrations build the same schema: every table, column and NOT NULL matches
//! one committed outline (`schema.txt`), checked on SQLite and on PostgreSQL. To change the
//! schema, write both migrations, run `UPDATE_SCHEMA=1 cargo test -p switchboard-store
//! schema`, and review the outline's diff.

use std::path::Path;

use switchboard_store::Store;

conformance_tests! {
    store: [schema_matches_the_outline],
}

async fn schema_matches_the_outline(store: Store) {
    let outline = store.schema_outline().await.unwrap().join("\n") + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/schema.txt");
    if std::env::var("UPDATE_SCHEMA").is_ok_and(|value| value == "1") {
        std::fs::write(&path, &outline).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    let missing: Vec<&str> = expected.lines().filter(|line| !outline.lines().any(|have| have == *line)).collect();
    let extra: Vec<&str> = outline.lines().filter(|line| !expected.lines().any(|want| want == *line)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{:?} schema differs from tests/it/schema.txt: missing {missing:?}, extra {extra:?}",
        store.dialect()
    );
}
