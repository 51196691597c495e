//! The reporting API's search: every filter, keyset pages newest first, retention, and the
//! batch reads of a page (consumers, event logs, first messages), each within one brand.

use switchboard_protocol::{ConversationId, ConversationStatus, Millis, Side};
use switchboard_store::{Append, BrandPatch, ConsumerAppend, ConversationSearch, PageCursor, Store};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [
        every_filter_selects_and_pages_follow_the_keyset,
        conversations_past_retention_are_never_found,
        batch_reads_stay_in_the_brand,
    ],
}

const DAY: Millis = 24 * 3600 * SECOND;

/// Opens a conversation for `consumer` on `channel` at `now` and returns its id.
async fn open(brand: &Brand, consumer: i64, channel: &str, skill_id: Option<i64>, now: Millis) -> ConversationId {
    let append = Append::Consumer(ConsumerAppend {
        brand_id: brand.id.clone(),
        consumer_id: consumer,
        app_id: brand.app_id.clone(),
        channel: channel.to_owned(),
        skill_id,
        priority: 0,
        client_id: format!("open-{consumer}-{now}"),
        text: format!("hello at {now}"),
    });
    brand.store.append(append, now).await.expect("append").message.conversation_id
}

/// Every page of `search` at `now`, `limit` at a time: the ids, newest first.
async fn all_pages(store: &Store, brand: &str, search: &ConversationSearch, limit: u32, now: Millis) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = store.search_conversations(brand, search, after, limit, now).await.expect("search");
        assert!(page.conversations.len() <= limit as usize);
        ids.extend(page.conversations.iter().map(|c| c.id));
        match page.next {
            Some(next) => {
                assert_eq!(page.conversations.len(), limit as usize, "only a full page has a next one");
                after = Some(next);
            }
            None => return ids,
        }
    }
}

async fn every_filter_selects_and_pages_follow_the_keyset(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let ann = brand.agent("ann@acme.test").await;
    let bo = brand.agent("bo@acme.test").await;
    let billing = store.create_skill("acme", "billing", T0).await.unwrap();
    let now = T0 + DAY;

    // Twelve conversations: two opened in the same millisecond (the keyset breaks the tie by
    // id), half on the web, every third in billing, alternating agents, scores 1 to 5.
    let mut made = Vec::new();
    for i in 0..12i64 {
        let consumer = brand.consumer(&format!("c{i}")).await;
        let at = T0 + (i.min(10)) * SECOND;
        let channel = if i % 2 == 0 { "in_app" } else { "web" };
        let skill = (i % 3 == 0).then_some(billing.id);
        let c = open(&brand, consumer, channel, skill, at).await;
        let agent = if i % 2 == 0 { &ann } else { &bo };
        store.assign("acme", c, agent.id, at).await.unwrap();
        if i < 8 {
            store.close_conversation("acme", c, Side::Agent, true, at + SECOND).await.unwrap().unwrap();
            if i < 5 {
                store.answer_csat("acme", c, consumer, (i + 1) as u8, Some("ok")).await.unwrap();
            }
        }
        made.push((i, c, consumer));
    }
    let newest_first: Vec<i64> = {
        let mut ids: Vec<(Millis, i64)> = made.iter().map(|(i, c, _)| (T0 + (*i).min(10) * SECOND, *c)).collect();
        ids.sort_by(|a, b| b.cmp(a));
        ids.into_iter().map(|(_, c)| c).collect()
    };
    let ids_where = |keep: &dyn Fn(i64) -> bool| -> Vec<i64> {
        let kept: Vec<i64> = made.iter().filter(|(i, _, _)| keep(*i)).map(|(_, c, _)| *c).collect();
        newest_first.iter().copied().filter(|c| kept.contains(c)).collect()
    };

    let everything = ConversationSearch::default();
    for limit in [1, 2, 5, 12, 500] {
        assert_eq!(all_pages(&store, "acme", &everything, limit, now).await, newest_first, "pages of {limit}");
    }
    let cases: Vec<(ConversationSearch, Vec<i64>)> = vec![
        (ConversationSearch { status: Some(ConversationStatus::Open), ..Default::default() }, ids_where(&|i| i >= 8)),
        (ConversationSearch { status: Some(ConversationStatus::Closed), ..Default::default() }, ids_where(&|i| i < 8)),
        (ConversationSearch { agent_id: Some(bo.id), ..Default::default() }, ids_where(&|i| i % 2 == 1)),
        (ConversationSearch { skill_id: Some(billing.id), ..Default::default() }, ids_where(&|i| i % 3 == 0)),
        (ConversationSearch { channel: Some("web".into()), ..Default::default() }, ids_where(&|i| i % 2 == 1)),
        (ConversationSearch { csat_min: Some(4), ..Default::default() }, ids_where(&|i| i == 3 || i == 4)),
        (ConversationSearch { csat_max: Some(2), ..Default::default() }, ids_where(&|i| i <= 1)),
        (ConversationSearch { csat_min: Some(3), csat_max: Some(3), ..Default::default() }, ids_where(&|i| i == 2)),
        (
            ConversationSearch {
                opened_from: Some(T0 + 3 * SECOND),
                opened_to: Some(T0 + 6 * SECOND),
                ..Default::default()
            },
            ids_where(&|i| (3..6).contains(&i)),
        ),
        (ConversationSearch { consumer_id: Some(made[4].2), ..Default::default() }, vec![made[4].1]),
        (
            ConversationSearch {
                status: Some(ConversationStatus::Closed),
                agent_id: Some(ann.id),
                channel: Some("in_app".into()),
                csat_min: Some(1),
                ..Default::default()
            },
            ids_where(&|i| i < 5 && i % 2 == 0),
        ),
        (ConversationSearch { channel: Some("sms".into()), ..Default::default() }, vec![]),
        (ConversationSearch { csat_min: Some(4), csat_max: Some(2), ..Default::default() }, vec![]),
        (
            ConversationSearch { csat_min: Some(2), csat_max: Some(4), agent_id: Some(ann.id), ..Default::default() },
            ids_where(&|i| i == 2),
        ),
    ];
    for (search, expected) in cases {
        assert_eq!(all_pages(&store, "acme", &search, 2, now).await, expected, "{search:?}");
    }

    // A cursor is a position, not an offset: a conversation opened meanwhile (newer than the
    // first page) neither shifts nor repeats what follows.
    let first = store.search_conversations("acme", &everything, None, 4, now).await.unwrap();
    let late = brand.consumer("late").await;
    open(&brand, late, "in_app", None, T0 + 20 * SECOND).await;
    let rest = all_pages_after(&store, &everything, first.next.unwrap(), now).await;
    assert_eq!(rest, newest_first[4..]);
}

async fn all_pages_after(store: &Store, search: &ConversationSearch, after: PageCursor, now: Millis) -> Vec<i64> {
    let page = store.search_conversations("acme", search, Some(after), 500, now).await.unwrap();
    page.conversations.iter().map(|c| c.id).collect()
}

async fn conversations_past_retention_are_never_found(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    store.update_brand("acme", &BrandPatch { retention_days: Some(30), ..Default::default() }).await.unwrap();
    let old = open(&brand, brand.consumer("old").await, "in_app", None, T0).await;
    store.close_conversation("acme", old, Side::Agent, false, T0 + SECOND).await.unwrap().unwrap();
    // Open since T0: open conversations are never past retention.
    let long_open = open(&brand, brand.consumer("long").await, "in_app", None, T0).await;
    let everything = ConversationSearch::default();
    let at = |now| all_pages(&store, "acme", &everything, 10, now);
    assert_eq!(at(T0 + 30 * DAY).await, vec![long_open, old], "closed 30 days ago minus a second: kept");
    assert_eq!(at(T0 + 30 * DAY + SECOND).await, vec![long_open, old], "closed exactly at the horizon: kept");
    assert_eq!(at(T0 + 30 * DAY + SECOND + 1).await, vec![long_open], "past the horizon: gone");
    assert_eq!(store.retention_horizon("acme", T0 + 31 * DAY).await.unwrap(), T0 + DAY);
}

async fn batch_reads_stay_in_the_brand(store: Store) {
    let acme = Brand::create(&store, "acme").await;
    let globex = Brand::create(&store, "globex").await;
    let ann = acme.agent("ann@acme.test").await;
    let alice = acme.consumer("alice").await;
    let mallory = globex.consumer("mallory").await;
    let a = open(&acme, alice, "in_app", None, T0).await;
    store.assign("acme", a, ann.id, T0 + SECOND).await.unwrap();
    for n in 0..3 {
        acme.say(alice, &format!("more-{n}"), &format!("more {n}"), T0 + (2 + n) * SECOND).await;
    }
    let g = open(&globex, mallory, "in_app", None, T0).await;

    let consumers = store.consumers_by_ids("acme", &[alice, mallory]).await.unwrap();
    assert_eq!(consumers.iter().map(|c| c.external_id.as_str()).collect::<Vec<_>>(), ["alice"]);
    let events = store.events_of("acme", &[a, g]).await.unwrap();
    assert!(events.iter().all(|(c, _)| *c == a), "{events:?}");
    assert_eq!(events.iter().map(|(_, e)| e.kind.as_str()).collect::<Vec<_>>(), ["opened", "assigned"]);
    let first = store.first_messages("acme", &[a, g], 2).await.unwrap();
    assert_eq!(first.iter().map(|m| (m.conversation_id, m.seq)).collect::<Vec<_>>(), [(a, 1), (a, 2)]);
    assert_eq!(store.first_messages("acme", &[a], 0).await.unwrap(), vec![]);
    assert_eq!(store.consumers_by_ids("acme", &[]).await.unwrap(), vec![]);
    // Another brand's search finds nothing of acme's.
    let page = store.search_conversations("globex", &ConversationSearch::default(), None, 10, T0).await.unwrap();
    assert_eq!(page.conversations.iter().map(|c| c.id).collect::<Vec<_>>(), [g]);
    assert!(store.search_conversations("nobody", &ConversationSearch::default(), None, 10, T0).await.is_err());
}
