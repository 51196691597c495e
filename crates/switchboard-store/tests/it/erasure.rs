//! Erasure leaves nothing of the consumer behind: after it, every column of every table of
//! the schema (within the brand, where a table has one) is queried for the consumer's id,
//! their conversations' ids and every text they left, and another
//! consumer of the same brand (and one of another brand with the same id) keep everything.

use sqlx::{AnyPool, AssertSqlSafe, Row};
use switchboard_protocol::Side;
use switchboard_store::{AgentTarget, ConsumerClaims, ErasureCounts, Store, StoreOptions};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [],
    options: [erasure_leaves_nothing_of_the_consumer_in_any_table],
}

/// Strings only the erased consumer's data holds.
const MARKERS: [&str; 5] = ["erin-ext-7731", "Erin Erasable", "erin@erase.example", "+44 7700 900731", "ERIN-SECRET"];

/// A consumer with everything a consumer can have: a profile, a device, a push token, two
/// conversations (one closed and scored, one open and assigned), messages both ways, event
/// log entries and pending pushes.
async fn full_history(brand: &Brand, external_id: &str, marker: &str) -> (i64, Vec<i64>) {
    let store = &brand.store;
    let claims = ConsumerClaims {
        name: Some(format!("{marker} name")),
        email: Some(format!("{marker}@mail.example")),
        phone: Some(format!("{marker} phone")),
        language: Some("de".into()),
    };
    let id = store.upsert_consumer(&brand.id, external_id, &claims, T0).await.unwrap().id;
    let device = switchboard_protocol::DeviceInfo {
        os: Some(format!("{marker} OS")),
        app_version: Some("1.0".into()),
        device_type: Some("phone".into()),
    };
    store.set_consumer_device(&brand.id, id, &device).await.unwrap();
    store.register_push_token(&brand.id, &brand.app_id, id, "fcm", &format!("{marker}-token"), T0).await.unwrap();
    let agent = match store.user_by_email(&brand.id, &format!("agent@{}.test", brand.id)).await.unwrap() {
        Some(agent) => agent,
        None => brand.agent(&format!("agent@{}.test", brand.id)).await,
    };
    let first = brand.say(id, "m1", &format!("{marker} first message"), T0).await.message.conversation_id;
    store.assign(&brand.id, first, agent.id, T0 + SECOND).await.unwrap();
    brand
        .reply(
            &agent,
            AgentTarget::Conversation(first),
            &format!("{marker}-a1"),
            &format!("{marker} reply"),
            T0 + 2 * SECOND,
        )
        .await
        .unwrap();
    store.close_conversation(&brand.id, first, Side::Agent, true, T0 + 3 * SECOND).await.unwrap().unwrap();
    store.answer_csat(&brand.id, first, id, 5, Some(&format!("{marker} comment"))).await.unwrap();
    let second = brand.say(id, "m2", &format!("{marker} second"), T0 + 10 * SECOND).await.message.conversation_id;
    store.assign(&brand.id, second, agent.id, T0 + 11 * SECOND).await.unwrap();
    brand
        .reply(
            &agent,
            AgentTarget::Conversation(second),
            &format!("{marker}-a2"),
            &format!("{marker} again"),
            T0 + 12 * SECOND,
        )
        .await
        .unwrap();
    (id, vec![first, second])
}

/// Every `table.column` of the schema.
async fn columns(store: &Store) -> Vec<(String, String)> {
    store
        .schema_outline()
        .await
        .unwrap()
        .iter()
        .map(|line| {
            let name = line.split(' ').next().unwrap();
            let (table, column) = name.split_once('.').unwrap();
            (table.to_owned(), column.to_owned())
        })
        .collect()
}

/// Rows of `table` in brand acme (if the table has a brand) where `condition` holds (with
/// `$1` bound to `value`).
async fn count(pool: &AnyPool, table: &str, has_brand: bool, condition: &str, value: &str) -> i64 {
    let brand = if has_brand { " AND brand_id = 'acme'" } else { "" };
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {condition}{brand}");
    sqlx::query(AssertSqlSafe(sql)).bind(value).fetch_one(pool).await.unwrap().try_get(0).unwrap()
}

/// What of the consumer (`id`, `conversations`, `markers`) any table still holds, as
/// `table.column` names.
async fn leftovers(store: &Store, pool: &AnyPool, id: i64, conversations: &[i64], markers: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let columns = columns(store).await;
    for (table, column) in &columns {
        let has_brand = columns.iter().any(|(t, c)| t == table && c == "brand_id");
        let (table, column) = (table.as_str(), column.as_str());
        let as_text = format!("CAST({column} AS TEXT)");
        let mut hits = 0;
        if column == "consumer_id" || (table == "consumers" && column == "id") {
            hits += count(pool, table, has_brand, &format!("{as_text} = $1"), &id.to_string()).await;
        }
        if column == "conversation_id" || (table == "conversations" && column == "id") {
            for conversation in conversations {
                hits += count(pool, table, has_brand, &format!("{as_text} = $1"), &conversation.to_string()).await;
            }
        }
        for marker in markers {
            hits += count(pool, table, has_brand, &format!("{as_text} LIKE $1"), &format!("%{marker}%")).await;
        }
        if hits > 0 {
            found.push(format!("{table}.{column} ({hits})"));
        }
    }
    found
}

async fn erasure_leaves_nothing_of_the_consumer_in_any_table(options: StoreOptions) {
    let store = crate::harness::open(&options).await;
    sqlx::any::install_default_drivers();
    let pool = AnyPool::connect(&options.url).await.unwrap();
    let acme = Brand::create(&store, "acme").await;
    let globex = Brand::create(&store, "globex").await;
    let (erin, erin_conversations) = full_history(&acme, MARKERS[0], "ERIN-SECRET").await;
    // Name, email and phone from the markers too.
    let claims = ConsumerClaims {
        name: Some(MARKERS[1].into()),
        email: Some(MARKERS[2].into()),
        phone: Some(MARKERS[3].into()),
        language: None,
    };
    store.upsert_consumer("acme", MARKERS[0], &claims, T0).await.unwrap();
    let (frank, frank_conversations) = full_history(&acme, "frank", "FRANK-KEEP").await;
    let (twin, twin_conversations) = full_history(&globex, MARKERS[0], "TWIN-KEEP").await;
    assert!(!leftovers(&store, &pool, erin, &erin_conversations, &MARKERS).await.is_empty(), "the probe finds data");

    // Another brand cannot erase acme's consumer, even naming its internal id.
    assert_eq!(store.erase_consumer("globex", erin).await.unwrap(), ErasureCounts::default());
    let counts = store.erase_consumer("acme", erin).await.unwrap();
    assert_eq!(
        counts,
        ErasureCounts {
            conversations: 2,
            open_conversations: 1,
            messages: 4,
            events: 5,
            outbox: 2,
            push_tokens: 1,
            profiles: 1
        }
    );
    assert_eq!(leftovers(&store, &pool, erin, &erin_conversations, &MARKERS).await, Vec::<String>::new());
    assert_eq!(store.consumer_by_external_id("acme", MARKERS[0]).await.unwrap(), None);
    assert_eq!(store.erase_consumer("acme", erin).await.unwrap(), ErasureCounts::default(), "nothing left to erase");

    // The others keep everything.
    for (brand, id, conversations, marker) in
        [("acme", frank, frank_conversations, "FRANK-KEEP"), ("globex", twin, twin_conversations, "TWIN-KEEP")]
    {
        assert!(store.consumer(brand, id).await.unwrap().is_some());
        for c in conversations {
            let messages = store.messages_after(brand, c, 0, 100).await.unwrap();
            assert_eq!(messages.len(), 2, "{brand} {c}");
            assert!(messages[0].text.starts_with(marker));
        }
        assert_eq!(store.push_tokens(brand, id).await.unwrap().len(), 1);
    }
    pool.close().await;
}
