//! The retention purge with an injected clock: what is past the horizon at `now` is hidden
//! from searches and listings at once, and deleted in batches of bounded size (messages,
//! events, outbox rows, CSAT, and the profile of a consumer whose last conversation went);
//! a run survives a restart with exact counts; nothing within retention is touched.

use switchboard_protocol::{Millis, Side};
use switchboard_store::{
    AgentTarget, BrandPatch, ConsumerClaims, ConversationFilter, ConversationSearch, PurgeCounts, StoreOptions,
};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [],
    options: [the_purge_deletes_what_is_past_retention_in_batches_and_survives_a_restart],
}

const DAY: Millis = 24 * 3600 * SECOND;

async fn the_purge_deletes_what_is_past_retention_in_batches_and_survives_a_restart(options: StoreOptions) {
    let store = crate::harness::open(&options).await;
    let brand = Brand::create(&store, "acme").await;
    let other = Brand::create(&store, "globex").await;
    store.update_brand("acme", &BrandPatch { retention_days: Some(30), ..Default::default() }).await.unwrap();
    store.update_brand("globex", &BrandPatch { retention_days: Some(30), ..Default::default() }).await.unwrap();
    let agent = brand.agent("ann@acme.test").await;
    let claims =
        ConsumerClaims { name: Some("Old Olga".into()), email: Some("olga@old.example".into()), ..Default::default() };
    let olga = store.upsert_consumer("acme", "olga", &claims, T0).await.unwrap().id;
    store.register_push_token("acme", &brand.app_id, olga, "fcm", "olga-token", T0).await.unwrap();

    // Old: closed at T0 + 1 s, scored, with a pending push. Big: 1,200 messages, closed at T0 + 2 s.
    let old = brand.say(olga, "o1", "old question", T0).await.message.conversation_id;
    store.assign("acme", old, agent.id, T0).await.unwrap();
    brand.reply(&agent, AgentTarget::Conversation(old), "r1", "old answer", T0).await.unwrap();
    store.close_conversation("acme", old, Side::Agent, true, T0 + SECOND).await.unwrap().unwrap();
    store.answer_csat("acme", old, olga, 4, None).await.unwrap();
    let bigsby = brand.consumer("bigsby").await;
    let big = brand.say(bigsby, "b0", "big 0", T0).await.message.conversation_id;
    for n in 1..1200 {
        brand.say(bigsby, &format!("b{n}"), &format!("big {n}"), T0).await;
    }
    store.close_conversation("acme", big, Side::Consumer, false, T0 + 2 * SECOND).await.unwrap().unwrap();
    // Recent: closed at T0 + 20 days. Open: since T0, never past retention. Another brand's
    // old conversation is its own brand's business.
    let rita = brand.consumer("rita").await;
    let recent = brand.say(rita, "r1", "recent", T0).await.message.conversation_id;
    store.close_conversation("acme", recent, Side::Agent, false, T0 + 20 * DAY).await.unwrap().unwrap();
    let oscar = brand.consumer("oscar").await;
    let open = brand.say(oscar, "p1", "still open", T0).await.message.conversation_id;
    let gina = other.consumer("gina").await;
    let theirs = other.say(gina, "g1", "globex old", T0).await.message.conversation_id;
    store.close_conversation("globex", theirs, Side::Agent, false, T0 + SECOND).await.unwrap().unwrap();

    // At 30 days and 3 s, old and big are past retention: hidden everywhere at once.
    let now = T0 + 30 * DAY + 3 * SECOND;
    let horizon = store.retention_horizon("acme", now).await.unwrap();
    assert_eq!(horizon, T0 + 3 * SECOND);
    let search = store.search_conversations("acme", &ConversationSearch::default(), None, 100, now).await.unwrap();
    let mut found: Vec<i64> = search.conversations.iter().map(|c| c.id).collect();
    found.sort_unstable();
    assert_eq!(found, [recent, open]);
    let listed = store
        .conversations("acme", &ConversationFilter { retained_at: Some(now), ..Default::default() }, None, 100)
        .await
        .unwrap();
    assert_eq!(listed.conversations.len(), 2);
    assert!(store.pending_survey("acme", olga, now).await.unwrap().is_none(), "no survey of a purged conversation");
    let touching = store.conversations_touching("acme", T0, T0 + DAY, 100, now).await.unwrap();
    let mut touching: Vec<i64> = touching.iter().map(|(c, _)| c.id).collect();
    touching.sort_unstable();
    assert_eq!(touching, [recent, open], "reports leave them out too");
    assert_eq!(store.count_past_retention("acme", horizon).await.unwrap(), 2);

    // Batches of at most 500 messages: old whole (2 messages; big does not fit beside it),
    // then big's messages 500 at a time from the first seq up, its row with the last 200.
    let first = store.purge_batch("acme", horizon, 500, now).await.unwrap();
    assert_eq!((first.conversations, first.messages, first.csat, first.profiles), (1, 2, 1, 1));
    assert_eq!((first.events, first.outbox), (3, 1), "old's event log and pending push");
    let under_way = store.retention_run_under_way("acme").await.unwrap().expect("a run under way");
    assert_eq!(under_way.counts, first);
    let second = store.purge_batch("acme", horizon, 500, now).await.unwrap();
    assert_eq!((second.conversations, second.messages), (0, 500));
    assert_eq!(store.messages_after("acme", big, 0, 1).await.unwrap()[0].seq, 501, "big's oldest go first");

    // A restart: a new store on the same database continues the run.
    store.close().await;
    let store = crate::harness::open(&options).await;
    let third = store.purge_batch("acme", horizon, 500, now).await.unwrap();
    assert_eq!((third.conversations, third.messages), (0, 500));
    let rest = store.purge_all("acme", horizon, 500, now).await.unwrap();
    assert_eq!((rest.conversations, rest.messages, rest.events), (1, 200, 2));
    let runs = store.retention_runs("acme", 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.finished_at, Some(now));
    assert_eq!(
        run.counts,
        // Olga's profile is cleared; Bigsby never had a name or an email to clear.
        PurgeCounts { conversations: 2, messages: 1202, events: 5, outbox: 1, csat: 1, profiles: 1 },
        "exact across the restart"
    );
    assert!(store.retention_run_under_way("acme").await.unwrap().is_none());

    // Gone from the store; Olga keeps her id (and device) but not her name or email.
    assert!(store.conversation("acme", old).await.unwrap().is_none());
    assert!(store.messages_after("acme", big, 0, 10).await.unwrap().is_empty());
    assert!(store.conversation_events("acme", old).await.unwrap().is_empty());
    let olga_now = store.consumer("acme", olga).await.unwrap().unwrap();
    assert_eq!((olga_now.name, olga_now.email, olga_now.external_id.as_str()), (None, None, "olga"));
    assert_eq!(store.push_tokens("acme", olga).await.unwrap().len(), 1);
    // Within retention, open, or another brand's: untouched.
    for (brand_id, id) in [("acme", recent), ("acme", open), ("globex", theirs)] {
        assert!(store.conversation(brand_id, id).await.unwrap().is_some(), "{brand_id} {id}");
        assert_eq!(store.messages_after(brand_id, id, 0, 10).await.unwrap().len(), 1);
    }
    // Nothing more to do: no new run.
    assert_eq!(store.purge_all("acme", horizon, 500, now).await.unwrap(), PurgeCounts::default());
    assert_eq!(store.retention_runs("acme", 10).await.unwrap().len(), 1);

    // Twenty days later the recent one goes too, in a run of its own.
    let later = T0 + 50 * DAY + SECOND;
    let horizon = store.retention_horizon("acme", later).await.unwrap();
    let counts = store.purge_all("acme", horizon, 500, later).await.unwrap();
    assert_eq!((counts.conversations, counts.messages), (1, 1));
    assert_eq!(store.retention_runs("acme", 10).await.unwrap().len(), 2);
    assert!(store.conversation("acme", open).await.unwrap().is_some());
    assert!(store.conversation("globex", theirs).await.unwrap().is_some(), "globex is purged by its own run");
}
