//! The audit log: entries are added and read back newest first in keyset pages, filtered by
//! action (one, or a resource's), actor and time, each brand's its own.

use switchboard_store::{ActorKind, AuditFilter, NewAuditEntry, Store};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [audit_entries_page_newest_first_filter_and_stay_in_their_brand],
}

fn entry(brand: &str, n: i64, action: &str, actor_kind: ActorKind, actor_id: Option<i64>) -> NewAuditEntry {
    NewAuditEntry {
        brand_id: brand.to_owned(),
        at: T0 + n * SECOND,
        actor_kind,
        actor_id,
        actor_name: format!("actor {actor_id:?}"),
        action: action.to_owned(),
        target: Some(format!("thing {n}")),
        detail: Some(format!("{{\"n\":{n}}}")),
    }
}

async fn audit_entries_page_newest_first_filter_and_stay_in_their_brand(store: Store) {
    Brand::create(&store, "acme").await;
    Brand::create(&store, "globex").await;
    let actions = ["user.create", "user.update", "skill.create", "users.weird", "export.conversations"];
    let mut ids = Vec::new();
    for n in 0..10i64 {
        let kind = if n % 3 == 0 { ActorKind::ApiToken } else { ActorKind::User };
        let id = store.record_audit(&entry("acme", n, actions[(n % 5) as usize], kind, Some(n % 2))).await.unwrap();
        ids.push(id);
    }
    store.record_audit(&entry("globex", 0, "user.create", ActorKind::Operator, None)).await.unwrap();

    // Pages of three, newest first, each entry once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store.audit_log("acme", &AuditFilter::default(), before, 3).await.unwrap();
        seen.extend(page.entries.iter().map(|e| e.id));
        match page.next {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids);
    let newest = store.audit_log("acme", &AuditFilter::default(), None, 1).await.unwrap().entries.remove(0);
    assert_eq!(newest.action, "export.conversations");
    assert_eq!(
        (newest.at, newest.target.as_deref(), newest.detail.as_deref()),
        (T0 + 9 * SECOND, Some("thing 9"), Some("{\"n\":9}"))
    );
    assert_eq!((newest.actor_kind, newest.actor_id), (ActorKind::ApiToken, Some(1)));

    let count = |filter: AuditFilter| {
        let store = store.clone();
        async move { store.audit_log("acme", &filter, None, 500).await.unwrap().entries.len() }
    };
    let action = |a: &str| AuditFilter { action: Some(a.to_owned()), ..Default::default() };
    assert_eq!(count(action("user.create")).await, 2);
    assert_eq!(count(action("user.")).await, 4, "a resource's actions, not `users.`");
    assert_eq!(count(action("users.")).await, 2);
    assert_eq!(count(action("user")).await, 0, "no partial names");
    assert_eq!(count(AuditFilter { actor_kind: Some(ActorKind::ApiToken), ..Default::default() }).await, 4);
    assert_eq!(count(AuditFilter { actor_id: Some(1), ..Default::default() }).await, 5);
    assert_eq!(
        count(AuditFilter { from: Some(T0 + 2 * SECOND), to: Some(T0 + 5 * SECOND), ..Default::default() }).await,
        3
    );
    // Another brand's log is its own.
    let theirs = store.audit_log("globex", &AuditFilter::default(), None, 500).await.unwrap();
    assert_eq!(theirs.entries.len(), 1);
    assert_eq!(theirs.entries[0].actor_kind, ActorKind::Operator);
    assert!(store.audit_log("nobody", &AuditFilter::default(), None, 10).await.unwrap().entries.is_empty());
}
