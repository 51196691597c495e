//! Reads behind the agent inbox, long-history paging, moving a conversation back to a queue,
//! and the dashboard aggregates.

use switchboard_protocol::{ReceiptKind, Side};
use switchboard_store::{AgentDay, AgentTarget, Store};

use crate::support::{Brand, SECOND, T0, seqs};

conformance_tests! {
    store: [
        inbox_activity_counts_unread_and_waiting_since,
        messages_before_pages_backwards,
        requeue_takes_the_conversation_off_its_agent,
        dashboard_aggregates_count_today_only,
    ],
}

async fn inbox_activity_counts_unread_and_waiting_since(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let ann = brand.agent("ann@acme.test").await;
    let consumer = brand.consumer("c0").await;
    let c = brand.say(consumer, "m1", "hello", T0).await.message.conversation_id;
    store.assign("acme", c, ann.id, T0).await.unwrap();
    brand.say(consumer, "m2", "anyone?", T0 + SECOND).await;

    let activity = store.activity("acme", c, 0).await.unwrap();
    assert_eq!(activity.unread, 2);
    assert_eq!(activity.waiting_since, Some(T0), "waiting since the first unanswered message");
    assert_eq!(activity.last_message.unwrap().text, "anyone?");

    brand.reply(&ann, AgentTarget::Conversation(c), "a1", "here", T0 + 2 * SECOND).await.unwrap();
    store.record_receipt("acme", c, Side::Agent, ReceiptKind::Read, 2).await.unwrap();
    let activity = store.activity("acme", c, brand.conversation(c).await.agent_read_seq).await.unwrap();
    assert_eq!(activity.unread, 0);
    assert_eq!(activity.waiting_since, None, "the agent spoke last");
    assert_eq!(activity.last_message.unwrap().side, Side::Agent);

    brand.say(consumer, "m3", "thanks, one more thing", T0 + 3 * SECOND).await;
    let activity = store.activity("acme", c, 2).await.unwrap();
    assert_eq!((activity.unread, activity.waiting_since), (1, Some(T0 + 3 * SECOND)));
    // Another brand sees nothing of it.
    Brand::create(&store, "other").await;
    assert_eq!(store.activity("other", c, 0).await.unwrap().last_message, None);
}

async fn messages_before_pages_backwards(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let consumer = brand.consumer("c0").await;
    let mut c = 0;
    for i in 0..25 {
        c = brand.say(consumer, &format!("m{i}"), &format!("text {i}"), T0 + i).await.message.conversation_id;
    }
    let (page, more) = store.messages_before("acme", c, 26, 10).await.unwrap();
    assert_eq!(seqs(&page), (16..=25).collect::<Vec<_>>(), "the newest ten, oldest first");
    assert!(more);
    let (page, more) = store.messages_before("acme", c, 6, 10).await.unwrap();
    assert_eq!(seqs(&page), (1..=5).collect::<Vec<_>>());
    assert!(!more, "nothing before seq 1");
}

async fn requeue_takes_the_conversation_off_its_agent(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let ann = brand.agent("ann@acme.test").await;
    let billing = store.create_skill("acme", "billing", T0).await.unwrap();
    let consumer = brand.consumer("c0").await;
    let c = brand.say(consumer, "m1", "hello", T0).await.message.conversation_id;
    store.assign("acme", c, ann.id, T0).await.unwrap();

    let moved = store.requeue("acme", c, Some(billing.id), T0).await.unwrap().expect("open conversation moves");
    assert_eq!((moved.agent_id, moved.assigned_at, moved.skill_id), (None, None, Some(billing.id)));
    assert!(store.agent_conversations("acme", ann.id).await.unwrap().is_empty());
    assert_eq!(store.requeue("other", c, None, T0).await.unwrap(), None, "not across brands");
    store.close_conversation("acme", c, Side::Consumer, false, T0 + SECOND).await.unwrap();
    assert_eq!(store.requeue("acme", c, None, T0).await.unwrap(), None, "a closed conversation stays closed");
    assert!(!store.assign("acme", c, ann.id, T0).await.unwrap(), "a closed conversation is not assigned");

    // Every move is in the conversation's event log, written with the change; refused
    // moves left nothing, and another brand reads nothing.
    let events: Vec<(String, Option<i64>, Option<i64>)> = store
        .conversation_events("acme", c)
        .await
        .unwrap()
        .into_iter()
        .map(|event| (event.kind, event.agent_id, event.skill_id))
        .collect();
    assert_eq!(
        events,
        vec![
            ("opened".to_owned(), None, None),
            ("assigned".to_owned(), Some(ann.id), None),
            ("queued".to_owned(), None, Some(billing.id)),
            ("closed".to_owned(), None, Some(billing.id)),
        ]
    );
    assert!(store.conversation_events("other", c).await.unwrap().is_empty());
}

async fn dashboard_aggregates_count_today_only(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let ann = brand.agent("ann@acme.test").await;
    let today = T0 + 86_400 * SECOND;
    // Yesterday: resolved, rated 1 — not today.
    let old = brand.say(brand.consumer("c0").await, "o1", "hi", T0).await.message.conversation_id;
    store.assign("acme", old, ann.id, T0).await.unwrap();
    brand.reply(&ann, AgentTarget::Conversation(old), "oa", "hello", T0 + SECOND).await.unwrap();
    store.close_conversation("acme", old, Side::Agent, true, T0 + 2 * SECOND).await.unwrap();
    store.answer_csat("acme", old, brand.conversation(old).await.consumer_id, 1, None).await.unwrap();
    // Today: first answered after 30 s and 10 s, one resolved and rated 5, one still open.
    let consumer1 = brand.consumer("c1").await;
    let a = brand.say(consumer1, "a1", "hi", today).await.message.conversation_id;
    store.assign("acme", a, ann.id, today).await.unwrap();
    brand.reply(&ann, AgentTarget::Conversation(a), "aa", "hello", today + 30 * SECOND).await.unwrap();
    store.close_conversation("acme", a, Side::Agent, true, today + 60 * SECOND).await.unwrap();
    store.answer_csat("acme", a, consumer1, 5, Some("great")).await.unwrap();
    let b = brand.say(brand.consumer("c2").await, "b1", "hi", today).await.message.conversation_id;
    store.assign("acme", b, ann.id, today).await.unwrap();
    brand.reply(&ann, AgentTarget::Conversation(b), "ba", "hello", today + 10 * SECOND).await.unwrap();
    brand.say(brand.consumer("c3").await, "q1", "waiting", today).await;

    let days = store.agent_days("acme", today).await.unwrap();
    assert_eq!(days, vec![(ann.id, AgentDay { resolved: 1, responded: 2, first_response_ms: 40 * SECOND })]);
    assert_eq!(store.csat_since("acme", today).await.unwrap(), [0, 0, 0, 0, 1]);
    assert_eq!(store.csat_since("acme", T0).await.unwrap(), [1, 0, 0, 0, 1]);
    assert_eq!(store.open_by_skill("acme").await.unwrap(), vec![(None, 2)]);
    let touching = store.conversations_touching("acme", today, today + 3_600 * SECOND, 100, today).await.unwrap();
    assert_eq!(touching.len(), 3, "the three conversations opened today");
    let touching = store.conversations_touching("acme", T0, T0 + SECOND * 10, 100, T0).await.unwrap();
    assert_eq!(touching.iter().map(|(c, _)| c.id).collect::<Vec<_>>(), vec![old]);
}
