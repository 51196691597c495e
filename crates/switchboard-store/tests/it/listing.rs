//! Listing a brand's conversations: filters, newest-first order and keyset pagination with
//! [`PageCursor`].

use std::collections::BTreeSet;

use switchboard_protocol::{ConversationId, ConversationStatus, Millis, Side};
use switchboard_store::{Append, ConsumerAppend, ConversationFilter, PageCursor, Store};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [
        filters_select_by_status_consumer_agent_skill_and_date,
        pages_return_every_conversation_once_newest_first,
    ],
}

/// Opens a conversation for `consumer` at `now` (with `skill_id`) and returns its id.
async fn open_at(brand: &Brand, consumer: i64, skill_id: Option<i64>, now: Millis) -> ConversationId {
    let append = Append::Consumer(ConsumerAppend {
        brand_id: brand.id.clone(),
        consumer_id: consumer,
        app_id: brand.app_id.clone(),
        channel: "in_app".to_owned(),
        skill_id,
        priority: 0,
        client_id: format!("open-{consumer}-{now}"),
        text: "hello".to_owned(),
    });
    let appended = brand.store.append(append, now).await.expect("append");
    assert!(appended.opened);
    appended.message.conversation_id
}

async fn list(store: &Store, filter: ConversationFilter) -> Vec<ConversationId> {
    let page = store.conversations("acme", &filter, None, 500).await.expect("list conversations");
    assert_eq!(page.next, None);
    page.conversations.iter().map(|c| c.id).collect()
}

async fn filters_select_by_status_consumer_agent_skill_and_date(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let ann = brand.agent("ann@acme.test").await;
    let bo = brand.agent("bo@acme.test").await;
    let billing = store.create_skill("acme", "billing", T0).await.unwrap();
    let c0 = brand.consumer("c0").await;
    let c1 = brand.consumer("c1").await;
    let c2 = brand.consumer("c2").await;
    let c3 = brand.consumer("c3").await;

    let a = open_at(&brand, c0, Some(billing.id), T0).await;
    store.assign("acme", a, ann.id, T0).await.unwrap();
    store.close_conversation("acme", a, Side::Agent, false, T0 + 25 * SECOND).await.unwrap().unwrap();
    let b = open_at(&brand, c1, None, T0 + 10 * SECOND).await;
    store.assign("acme", b, bo.id, T0 + 10 * SECOND).await.unwrap();
    let c = open_at(&brand, c2, Some(billing.id), T0 + 20 * SECOND).await;
    let d = open_at(&brand, c0, None, T0 + 30 * SECOND).await;
    store.assign("acme", d, ann.id, T0 + 30 * SECOND).await.unwrap();
    let e = open_at(&brand, c3, None, T0 + 40 * SECOND).await;
    store.close_conversation("acme", e, Side::Consumer, false, T0 + 41 * SECOND).await.unwrap().unwrap();

    let all = ConversationFilter::default();
    assert_eq!(list(&store, all.clone()).await, [e, d, c, b, a], "newest first");
    let status = |status| ConversationFilter { status: Some(status), ..Default::default() };
    assert_eq!(list(&store, status(ConversationStatus::Open)).await, [d, c, b]);
    assert_eq!(list(&store, status(ConversationStatus::Closed)).await, [e, a]);
    let consumer = ConversationFilter { consumer_id: Some(c0), ..Default::default() };
    assert_eq!(list(&store, consumer).await, [d, a], "a consumer's history");
    let agent = |id| ConversationFilter { agent_id: Some(id), ..Default::default() };
    assert_eq!(list(&store, agent(ann.id)).await, [d, a]);
    assert_eq!(list(&store, agent(bo.id)).await, [b]);
    let skill = ConversationFilter { skill_id: Some(billing.id), ..Default::default() };
    assert_eq!(list(&store, skill).await, [c, a]);

    let range = |from, to| ConversationFilter { opened_from: from, opened_to: to, ..Default::default() };
    assert_eq!(
        list(&store, range(Some(T0 + 10 * SECOND), Some(T0 + 30 * SECOND))).await,
        [c, b],
        "from is inclusive, to is exclusive"
    );
    assert_eq!(list(&store, range(Some(T0 + 30 * SECOND), None)).await, [e, d]);
    assert_eq!(list(&store, range(None, Some(T0 + 10 * SECOND))).await, [a]);
    assert!(list(&store, range(Some(T0 + 20 * SECOND), Some(T0 + 20 * SECOND))).await.is_empty());

    let combined = ConversationFilter {
        status: Some(ConversationStatus::Open),
        agent_id: Some(ann.id),
        opened_from: Some(T0),
        ..Default::default()
    };
    assert_eq!(list(&store, combined).await, [d]);
    let nothing =
        ConversationFilter { consumer_id: Some(c3), status: Some(ConversationStatus::Open), ..Default::default() };
    assert!(list(&store, nothing).await.is_empty());
}

async fn pages_return_every_conversation_once_newest_first(store: Store) {
    const TOTAL: usize = 23;
    let brand = Brand::create(&store, "acme").await;
    let mut opened: Vec<(Millis, ConversationId)> = Vec::new();
    for i in 0..TOTAL {
        let consumer = brand.consumer(&format!("consumer-{i}")).await;
        // Groups of three open in the same millisecond: the id must break the tie.
        let at = T0 + (i / 3) as i64 * SECOND;
        let id = open_at(&brand, consumer, None, at).await;
        if i % 4 == 0 {
            store.close_conversation("acme", id, Side::Agent, false, at + 1).await.unwrap().unwrap();
        }
        opened.push((at, id));
    }
    opened.sort_by(|x, y| y.cmp(x));
    let expected: Vec<ConversationId> = opened.iter().map(|(_, id)| *id).collect();

    // Walk the pages through the API's text form of the cursor.
    let walk = |filter: ConversationFilter, limit: u32| {
        let store = store.clone();
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let after = cursor.as_deref().map(|text| PageCursor::decode(text).expect("cursor decodes"));
                let page = store.conversations("acme", &filter, after, limit).await.unwrap();
                pages += 1;
                assert!(page.conversations.len() <= limit as usize);
                seen.extend(page.conversations.iter().map(|c| c.id));
                match page.next {
                    Some(next) => {
                        assert_eq!(page.conversations.len(), limit as usize, "only full pages have a next page");
                        cursor = Some(next.encode());
                    }
                    None => break,
                }
                assert!(pages <= 100, "pagination does not end");
            }
            (seen, pages)
        }
    };

    for limit in [1, 5, 22, 23, 24, 500] {
        let (seen, pages) = walk(ConversationFilter::default(), limit).await;
        assert_eq!(seen, expected, "limit {limit}: every conversation once, newest first");
        assert_eq!(pages, TOTAL.div_ceil(limit as usize).max(1), "limit {limit}: no empty trailing page");
    }
    let unique: BTreeSet<_> = expected.iter().collect();
    assert_eq!(unique.len(), TOTAL);

    // Pagination combined with a filter.
    let open_filter = ConversationFilter { status: Some(ConversationStatus::Open), ..Default::default() };
    let (seen, _) = walk(open_filter.clone(), 4).await;
    assert_eq!(seen, list(&store, open_filter).await);
    assert_eq!(seen.len(), TOTAL - TOTAL.div_ceil(4));

    // A conversation opened while a client pages does not shift the later pages.
    let first = store.conversations("acme", &ConversationFilter::default(), None, 5).await.unwrap();
    let newcomer = brand.consumer("newcomer").await;
    open_at(&brand, newcomer, None, T0 + 3600 * SECOND).await;
    let mut seen: Vec<ConversationId> = first.conversations.iter().map(|c| c.id).collect();
    let mut next = first.next;
    while let Some(after) = next {
        let page = store.conversations("acme", &ConversationFilter::default(), Some(after), 5).await.unwrap();
        seen.extend(page.conversations.iter().map(|c| c.id));
        next = page.next;
    }
    assert_eq!(seen, expected);
}
