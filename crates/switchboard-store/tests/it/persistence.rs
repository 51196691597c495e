//! What survives a restart, and several stores (nodes) on one database.

use std::collections::BTreeMap;

use switchboard_store::{ConversationFilter, Store, StoreOptions};
use tokio::task::JoinSet;

use crate::harness::open;
use crate::support::{Brand, SECOND, T0, seqs};

// `same_message_through_two_stores_at_once_is_stored_once` is a regression test: a send racing
// its retry on another node once failed with `Conflict` although the message was stored.
conformance_tests! {
    store: [],
    options: [
        acknowledged_messages_survive_a_restart,
        two_stores_on_one_database_keep_seqs_gap_free,
        same_message_through_two_stores_at_once_is_stored_once,
        upgrading_to_per_brand_emails_keeps_staff_sessions_and_skills,
    ],
}

async fn acknowledged_messages_survive_a_restart(options: StoreOptions) {
    let store = open(&options).await;
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let mut acked = Vec::new();
    for n in 1..=3 {
        acked.push(brand.say(alice, &format!("c{n}"), &format!("message {n}"), T0 + n * SECOND).await.message);
    }
    let conversation = acked[0].conversation_id;
    store.close().await;
    drop(brand);
    drop(store);

    // Opening again runs the migrations on a migrated database and finds everything.
    let store = open(&options).await;
    let brand = Brand { store: store.clone(), id: "acme".to_owned(), app_id: "acme-ios".to_owned() };
    assert_eq!(brand.messages(conversation).await, acked, "every acknowledged message is there");
    let row = brand.conversation(conversation).await;
    assert_eq!(row.last_seq, 3);
    assert_eq!(store.open_conversation("acme", alice).await.unwrap().map(|c| c.id), Some(conversation));
    assert!(store.user_by_email("acme", "nobody@acme.test").await.unwrap().is_none());

    // Numbering and idempotency carry on where they were.
    let retry = brand.say(alice, "c2", "message 2 (resent)", T0 + 10 * SECOND).await;
    assert!(retry.duplicate);
    assert_eq!(retry.message, acked[1]);
    let next = brand.say(alice, "c4", "message 4", T0 + 11 * SECOND).await;
    assert!(!next.opened);
    assert_eq!((next.message.conversation_id, next.message.seq), (conversation, 4));
    assert_eq!(seqs(&brand.messages(conversation).await), [1, 2, 3, 4]);
}

/// Opens two stores (two nodes) on one database with `CONSUMERS` consumers.
async fn two_nodes(options: &StoreOptions) -> (Store, Store, Brand, Vec<i64>) {
    let first = open(options).await;
    let second = open(options).await;
    let brand = Brand::create(&first, "acme").await;
    let mut consumers = Vec::new();
    for i in 0..CONSUMERS {
        consumers.push(brand.consumer(&format!("consumer-{i}")).await);
    }
    (first, second, brand, consumers)
}

/// Sends `sends` (consumer, client id, store index) all at once; returns each consumer's
/// acknowledgements as (client id, conversation, seq, duplicate).
async fn send_all(
    brand: &Brand,
    stores: [&Store; 2],
    sends: Vec<(i64, String, usize)>,
) -> Vec<(i64, String, i64, i64, bool)> {
    let mut tasks = JoinSet::new();
    for (n, (consumer, client_id, node)) in sends.into_iter().enumerate() {
        let store = stores[node].clone();
        let append = brand.consumer_append(consumer, &client_id, "hello");
        tasks.spawn(async move { (consumer, client_id, store.append(append, T0 + n as i64).await) });
    }
    let mut acks = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (consumer, client_id, result) = joined.expect("append task panicked");
        let appended = result.unwrap_or_else(|error| panic!("append {consumer}/{client_id} refused: {error}"));
        acks.push((consumer, client_id, appended.message.conversation_id, appended.message.seq, appended.duplicate));
    }
    acks
}

/// Every consumer has one open conversation holding exactly seqs 1..=`expected`.
async fn assert_gap_free(store: &Store, brand: &Brand, consumers: &[i64], expected: i64) {
    for &consumer in consumers {
        let open = store.open_conversation("acme", consumer).await.unwrap().expect("an open conversation");
        assert_eq!(open.last_seq, expected, "consumer {consumer}");
        let stored = brand.messages(open.id).await;
        assert_eq!(seqs(&stored), (1..=expected).collect::<Vec<_>>(), "consumer {consumer}: gap-free");
        let filter = ConversationFilter { consumer_id: Some(consumer), ..Default::default() };
        let page = store.conversations("acme", &filter, None, 10).await.unwrap();
        assert_eq!(page.conversations.len(), 1, "consumer {consumer}: one conversation, not one per node");
    }
}

const CONSUMERS: i64 = 4;
const PER_CONSUMER: i64 = 10;

async fn two_stores_on_one_database_keep_seqs_gap_free(options: StoreOptions) {
    let (first, second, brand, consumers) = two_nodes(&options).await;
    // Each consumer's conversation exists before the concurrent part (see the next test for
    // two nodes opening it at once).
    for &consumer in &consumers {
        assert!(brand.say(consumer, "hello", "hello", T0).await.opened);
    }

    // Each consumer's messages alternate between the two stores, all in flight at once.
    let mut sends = Vec::new();
    for &consumer in &consumers {
        for n in 0..PER_CONSUMER - 1 {
            sends.push((consumer, format!("m{n}"), (n % 2) as usize));
        }
    }
    let acks = send_all(&brand, [&first, &second], sends).await;
    assert_eq!(acks.len(), (CONSUMERS * (PER_CONSUMER - 1)) as usize);
    assert!(acks.iter().all(|ack| !ack.4), "no send is a duplicate");
    assert_gap_free(&first, &brand, &consumers, PER_CONSUMER).await;
    assert_gap_free(&second, &brand, &consumers, PER_CONSUMER).await;
}

async fn same_message_through_two_stores_at_once_is_stored_once(options: StoreOptions) {
    let (first, second, brand, consumers) = two_nodes(&options).await;
    // Every message is sent through both stores at once (a client retrying on another node
    // while the first send is in flight), first messages included.
    let mut sends = Vec::new();
    for &consumer in &consumers {
        for n in 0..PER_CONSUMER {
            for node in [0, 1] {
                sends.push((consumer, format!("m{n}"), node));
            }
        }
    }
    let acks = send_all(&brand, [&first, &second], sends).await;

    // (conversation, seq, duplicate) of both sends of each message.
    type Acks = Vec<(i64, i64, bool)>;
    let mut by_message: BTreeMap<(i64, String), Acks> = BTreeMap::new();
    for (consumer, client_id, conversation, seq, duplicate) in acks {
        by_message.entry((consumer, client_id)).or_default().push((conversation, seq, duplicate));
    }
    assert_eq!(by_message.len(), (CONSUMERS * PER_CONSUMER) as usize);
    for ((consumer, client_id), acks) in &by_message {
        assert_eq!(acks.len(), 2);
        assert_eq!(
            (acks[0].0, acks[0].1),
            (acks[1].0, acks[1].1),
            "{consumer}/{client_id}: one message for both sends"
        );
        assert_eq!(acks.iter().filter(|ack| ack.2).count(), 1, "{consumer}/{client_id}: one send is the duplicate");
    }
    assert_gap_free(&first, &brand, &consumers, PER_CONSUMER).await;
}

/// Issue 15: migration 0010 makes staff emails unique per brand. On SQLite it rebuilds
/// `users` (a column's UNIQUE cannot be dropped) with foreign keys off; with them on, dropping
/// the old table would have cascaded to every session and skill of every user. A database
/// migrated up to 0009, with staff, skills and sessions in it, keeps them all.
async fn upgrading_to_per_brand_emails_keeps_staff_sessions_and_skills(options: StoreOptions) {
    use sqlx::any::AnyPoolOptions;
    let dialect = if options.url.starts_with("sqlite:") { "sqlite" } else { "postgres" };
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(dialect);
    let before = std::env::temp_dir().join(format!("sb-migrations-before-0010-{}-{dialect}", std::process::id()));
    let _ = std::fs::remove_dir_all(&before);
    std::fs::create_dir_all(&before).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name[..4].parse::<u32>().unwrap() < 10 {
            std::fs::copy(&path, before.join(&name)).unwrap();
        }
    }
    sqlx::any::install_default_drivers();
    let url = if dialect == "sqlite" { format!("{}?mode=rwc", options.url) } else { options.url.clone() };
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if dialect == "sqlite" {
                    sqlx::query("PRAGMA foreign_keys = ON").execute(conn).await?;
                }
                Ok(())
            })
        })
        .connect(&url)
        .await
        .unwrap();
    sqlx::migrate::Migrator::new(before.as_path()).await.unwrap().run(&pool).await.unwrap();
    for statement in [
        "INSERT INTO brands (id, name, created_at) VALUES ('acme', 'Acme', 1)",
        "INSERT INTO skills (id, brand_id, name, created_at) VALUES (7, 'acme', 'billing', 1)",
        "INSERT INTO users (id, brand_id, email, name, role, password_hash, created_at)
         VALUES (42, 'acme', 'ann@example.com', 'Ann', 'agent', 'hash', 1)",
        "INSERT INTO user_skills (user_id, skill_id) VALUES (42, 7)",
        "INSERT INTO sessions (token_hash, user_id, brand_id, created_at, expires_at) VALUES ('s1', 42, 'acme', 1, 9999999999999)",
        "INSERT INTO brands (id, name, created_at) VALUES ('other', 'Other', 1)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let _ = std::fs::remove_dir_all(&before);

    let store = open(&options).await;
    let ann = store.user("acme", 42).await.unwrap().expect("the user is kept, with her id");
    assert_eq!((ann.email.as_str(), ann.skills.as_slice()), ("ann@example.com", [7].as_slice()));
    assert_eq!(store.session_user("s1", 2).await.unwrap().map(|user| user.id), Some(42), "her session is kept");
    let new = switchboard_store::NewUser {
        brand_id: "other".into(),
        email: "ann@example.com".into(),
        name: "Ann at Other".into(),
        role: switchboard_store::Role::Admin,
        password_hash: "x".into(),
        max_concurrent: 0,
        skills: vec![],
    };
    store.create_user(&new, 3).await.expect("the same email in another brand");
    let again = switchboard_store::NewUser { brand_id: "acme".into(), ..new };
    assert!(matches!(store.create_user(&again, 3).await, Err(switchboard_store::StoreError::Conflict(_))));
}
