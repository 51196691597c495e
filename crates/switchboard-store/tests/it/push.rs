//! Push sending's store: app credentials per provider, what a push announces (the message,
//! the delivery mark, the unread count), claims that wait for messages sent together, claims
//! given back at shutdown, and the settlement of a consumer's pushes in one transaction.
//! Every read and write is keyed by brand: brand B reaches none of brand A's.

use switchboard_protocol::{ReceiptKind, Side};
use switchboard_store::{AgentTarget, ApnsEnvironment, ApnsSettings, FcmSettings, PushSettlement, Store, StoreError};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [
        push_settings_per_provider_and_app,
        a_push_subject_has_the_message_the_delivery_mark_and_the_unread_count,
        a_claim_waits_for_the_coalescing_delay_and_released_claims_come_back_at_once,
        settling_completes_retries_marks_and_removes_in_one_go,
        another_brand_reaches_none_of_it,
        a_batch_settles_several_brands_each_in_its_own_keys,
    ],
}

fn fcm(project: &str) -> FcmSettings {
    FcmSettings { project_id: project.into(), service_account_json: format!("{{\"project_id\":\"{project}\"}}") }
}

fn apns(key_id: &str) -> ApnsSettings {
    ApnsSettings {
        key_id: key_id.into(),
        team_id: "TEAM123456".into(),
        bundle_id: "com.acme.app".into(),
        private_key: "-----BEGIN PRIVATE KEY-----\n…\n-----END PRIVATE KEY-----\n".into(),
        environment: ApnsEnvironment::Sandbox,
    }
}

async fn push_settings_per_provider_and_app(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    assert_eq!(store.push_settings("acme", &brand.app_id).await.unwrap(), None);

    let set = store.set_fcm_settings("acme", &brand.app_id, Some(&fcm("acme-prod")), T0).await.unwrap();
    assert_eq!(set.fcm, Some(fcm("acme-prod")));
    assert_eq!(set.apns, None, "only FCM is configured");
    let set = store.set_apns_settings("acme", &brand.app_id, Some(&apns("KEY1234567")), T0 + SECOND).await.unwrap();
    assert_eq!(set.fcm, Some(fcm("acme-prod")), "setting APNs keeps FCM");
    assert_eq!(set.apns, Some(apns("KEY1234567")));
    assert_eq!(set.updated_at, T0 + SECOND);

    let cleared = store.set_fcm_settings("acme", &brand.app_id, None, T0 + 2 * SECOND).await.unwrap();
    assert_eq!(cleared.fcm, None);
    assert_eq!(store.push_settings("acme", &brand.app_id).await.unwrap(), Some(cleared));

    let missing = store.set_fcm_settings("acme", "no-such-app", Some(&fcm("x")), T0).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");
    // The secret never shows in debug output (logs).
    let debug = format!("{:?}", store.push_settings("acme", &brand.app_id).await.unwrap());
    assert!(!debug.contains("PRIVATE KEY"), "{debug}");
}

async fn a_push_subject_has_the_message_the_delivery_mark_and_the_unread_count(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let agent = brand.agent("ann@acme.test").await;
    let c = brand.say(alice, "c1", "help", T0).await.message.conversation_id;
    assert!(store.assign("acme", c, agent.id, T0).await.unwrap());
    for (i, text) in ["one", "two", "three"].iter().enumerate() {
        let at = T0 + (i as i64 + 1) * SECOND;
        brand.reply(&agent, AgentTarget::Conversation(c), &format!("r{i}"), text, at).await.unwrap();
    }

    let subject = store.push_subject("acme", alice, c, 4).await.unwrap().expect("the message exists");
    assert_eq!((subject.message.seq, subject.message.text.as_str()), (4, "three"));
    assert_eq!(subject.message.author_name.as_deref(), Some("ann"));
    assert_eq!(subject.consumer_delivered_seq, 0);
    assert_eq!(subject.unread, 3, "the consumer's own message is not unread");

    store.record_receipt("acme", c, Side::Consumer, ReceiptKind::Delivered, 3).await.unwrap();
    store.record_receipt("acme", c, Side::Consumer, ReceiptKind::Read, 2).await.unwrap();
    let subject = store.push_subject("acme", alice, c, 4).await.unwrap().unwrap();
    assert_eq!((subject.consumer_delivered_seq, subject.unread), (3, 2));

    // A message that is not the consumer's, or does not exist, has no subject.
    let bob = brand.consumer("bob").await;
    assert_eq!(store.push_subject("acme", bob, c, 4).await.unwrap(), None);
    assert_eq!(store.push_subject("acme", alice, c, 99).await.unwrap(), None);

    // The same for a batch: only the consumer's own, existing messages.
    let c_bob = brand.say(bob, "b1", "hi", T0).await.message.conversation_id;
    assert!(store.assign("acme", c_bob, agent.id, T0).await.unwrap());
    brand.reply(&agent, AgentTarget::Conversation(c_bob), "rb", "hello Bob", T0 + SECOND).await.unwrap();
    let carol = brand.consumer("carol").await;
    let subjects = store.push_subjects("acme", &[(alice, c, 4), (bob, c_bob, 2), (carol, c, 3)]).await.unwrap();
    assert_eq!(subjects.len(), 2, "carol's entry names alice's conversation");
    assert_eq!((subjects[&alice].message.text.as_str(), subjects[&alice].unread), ("three", 2));
    assert_eq!((subjects[&bob].message.text.as_str(), subjects[&bob].unread), ("hello Bob", 1));
    assert!(store.push_subjects("globex", &[(alice, c, 4)]).await.unwrap().is_empty(), "another brand reads nothing");
}

async fn a_claim_waits_for_the_coalescing_delay_and_released_claims_come_back_at_once(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let agent = brand.agent("ann@acme.test").await;
    store.register_push_token("acme", &brand.app_id, alice, "fcm", "token-a", T0).await.unwrap();
    let c = brand.say(alice, "c1", "help", T0).await.message.conversation_id;
    assert!(store.assign("acme", c, agent.id, T0).await.unwrap());
    brand.reply(&agent, AgentTarget::Conversation(c), "r1", "first", T0 + SECOND).await.unwrap();
    brand.reply(&agent, AgentTarget::Conversation(c), "r2", "second", T0 + 2 * SECOND).await.unwrap();

    let now = T0 + 2 * SECOND;
    let lease = 60 * SECOND;
    let claimed = store.claim_outbox("push", now, now - SECOND, lease, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|e| e.seq).collect::<Vec<_>>(), [2], "the second is younger than the delay");
    assert_eq!(claimed[0].consumer_id, alice);

    // The rest of the consumer's burst is claimed with it; nothing of another brand.
    let rest = store.claim_outbox_of_consumers("push", "acme", &[alice], now, lease).await.unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
    assert!(store.claim_outbox_of_consumers("push", "globex", &[alice], now, lease).await.unwrap().is_empty());
    assert!(store.claim_outbox_of_consumers("push", "acme", &[alice], now, lease).await.unwrap().is_empty());
    store.release_outbox("acme", &[claimed[0].id, rest[0].id]).await.unwrap();
    let again = store.claim_outbox("push", now, now, lease, 10).await.unwrap();
    assert_eq!(again.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3], "released before its lease ended");
}

async fn settling_completes_retries_marks_and_removes_in_one_go(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let agent = brand.agent("ann@acme.test").await;
    store.register_push_token("acme", &brand.app_id, alice, "fcm", "phone", T0).await.unwrap();
    store.register_push_token("acme", &brand.app_id, alice, "apns", "tablet", T0 + 1).await.unwrap();
    store.register_push_token("acme", &brand.app_id, alice, "apns", "old-phone", T0 + 2).await.unwrap();
    let c = brand.say(alice, "c1", "help", T0).await.message.conversation_id;
    assert!(store.assign("acme", c, agent.id, T0).await.unwrap());
    for i in 0..3 {
        brand.reply(&agent, AgentTarget::Conversation(c), &format!("r{i}"), "news", T0 + SECOND).await.unwrap();
    }
    let now = T0 + 10 * SECOND;
    let entries = store.claim_outbox("push", now, now, 60 * SECOND, 10).await.unwrap();
    let ids: Vec<i64> = entries.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 3);

    let batch = store.push_targets_of("acme", &[alice, 12345]).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[&alice], store.push_targets("acme", alice).await.unwrap());
    assert!(store.push_targets_of("globex", &[alice]).await.unwrap().is_empty());
    let targets = store.push_targets("acme", alice).await.unwrap();
    let tokens: Vec<(&str, &str, i64)> =
        targets.iter().map(|t| (t.provider.as_str(), t.token.as_str(), t.pushed_outbox_id)).collect();
    assert_eq!(tokens, [("fcm", "phone", 0), ("apns", "tablet", 0), ("apns", "old-phone", 0)]);
    assert!(targets.iter().all(|t| t.app_id == brand.app_id));

    // The phone got the push, the old phone is gone, the tablet must wait: the latest entry
    // is retried, the others are done.
    store
        .settle_push(
            "acme",
            &PushSettlement {
                completed: ids[..2].to_vec(),
                retry: Some((ids[2], now + 30 * SECOND, "429 Too Many Requests".into())),
                pushed: vec![("fcm".into(), "phone".into(), ids[2])],
                removed: vec![("apns".into(), "old-phone".into())],
            },
        )
        .await
        .unwrap();
    let targets = store.push_targets("acme", alice).await.unwrap();
    let tokens: Vec<(&str, i64)> = targets.iter().map(|t| (t.token.as_str(), t.pushed_outbox_id)).collect();
    assert_eq!(tokens, [("phone", ids[2]), ("tablet", 0)]);
    assert_eq!(store.outbox_pending("push").await.unwrap(), 1);
    assert!(store.claim_outbox("push", now + SECOND, now + SECOND, 60 * SECOND, 10).await.unwrap().is_empty());
    let retried = store.claim_outbox("push", now + 30 * SECOND, now + 30 * SECOND, 60 * SECOND, 10).await.unwrap();
    assert_eq!(retried.iter().map(|e| (e.id, e.attempts)).collect::<Vec<_>>(), [(ids[2], 1)]);

    // A mark never goes back.
    let back = PushSettlement { pushed: vec![("fcm".into(), "phone".into(), ids[0])], ..Default::default() };
    store.settle_push("acme", &back).await.unwrap();
    assert_eq!(store.push_targets("acme", alice).await.unwrap()[0].pushed_outbox_id, ids[2]);

    assert!(store.remove_push_token("acme", "apns", "tablet").await.unwrap());
    assert!(!store.remove_push_token("acme", "apns", "tablet").await.unwrap(), "already gone");
    assert_eq!(store.push_targets("acme", alice).await.unwrap().len(), 1);
}

async fn another_brand_reaches_none_of_it(store: Store) {
    let acme = Brand::create(&store, "acme").await;
    let _globex = Brand::create(&store, "globex").await;
    let alice = acme.consumer("alice").await;
    let agent = acme.agent("ann@acme.test").await;
    store.register_push_token("acme", &acme.app_id, alice, "fcm", "phone", T0).await.unwrap();
    store.set_fcm_settings("acme", &acme.app_id, Some(&fcm("acme-prod")), T0).await.unwrap();
    let c = acme.say(alice, "c1", "help", T0).await.message.conversation_id;
    assert!(store.assign("acme", c, agent.id, T0).await.unwrap());
    acme.reply(&agent, AgentTarget::Conversation(c), "r1", "news", T0 + SECOND).await.unwrap();
    let now = T0 + 10 * SECOND;
    let entry = store.claim_outbox("push", now, now, 60 * SECOND, 10).await.unwrap().remove(0);

    // Globex cannot read or change Acme's settings, devices, messages or outbox.
    assert_eq!(store.push_settings("globex", &acme.app_id).await.unwrap(), None);
    let hijack = store.set_fcm_settings("globex", &acme.app_id, Some(&fcm("globex")), T0).await;
    assert!(matches!(hijack, Err(StoreError::NotFound)), "{hijack:?}");
    assert!(matches!(store.set_apns_settings("globex", &acme.app_id, None, T0).await, Err(StoreError::NotFound)));
    assert_eq!(store.push_settings("acme", &acme.app_id).await.unwrap().unwrap().fcm, Some(fcm("acme-prod")));
    assert!(store.push_targets("globex", alice).await.unwrap().is_empty());
    assert_eq!(store.push_subject("globex", alice, c, entry.seq).await.unwrap(), None);
    assert!(!store.remove_push_token("globex", "fcm", "phone").await.unwrap());
    store
        .settle_push(
            "globex",
            &PushSettlement {
                completed: vec![entry.id],
                retry: None,
                pushed: vec![("fcm".into(), "phone".into(), entry.id)],
                removed: vec![("fcm".into(), "phone".into())],
            },
        )
        .await
        .unwrap();
    store.release_outbox("globex", &[entry.id]).await.unwrap();
    store.complete_outbox("globex", entry.id).await.unwrap();
    store.retry_outbox("globex", entry.id, now, "x").await.unwrap();
    assert_eq!(store.outbox_pending("push").await.unwrap(), 1, "Acme's entry is still there");
    assert!(store.claim_outbox("push", now, now, 60 * SECOND, 10).await.unwrap().is_empty(), "and still claimed");
    let targets = store.push_targets("acme", alice).await.unwrap();
    assert_eq!(targets.iter().map(|t| (t.token.as_str(), t.pushed_outbox_id)).collect::<Vec<_>>(), [("phone", 0)]);
}

async fn a_batch_settles_several_brands_each_in_its_own_keys(store: Store) {
    let mut claimed = Vec::new();
    for id in ["acme", "globex"] {
        let brand = Brand::create(&store, id).await;
        let alice = brand.consumer("alice").await;
        let agent = brand.agent(&format!("ann@{id}.test")).await;
        store.register_push_token(id, &brand.app_id, alice, "fcm", &format!("phone-{id}"), T0).await.unwrap();
        let c = brand.say(alice, "c1", "help", T0).await.message.conversation_id;
        assert!(store.assign(id, c, agent.id, T0).await.unwrap());
        brand.reply(&agent, AgentTarget::Conversation(c), "r1", "news", T0 + SECOND).await.unwrap();
    }
    let now = T0 + 10 * SECOND;
    claimed.extend(store.claim_outbox("push", now, now, 60 * SECOND, 10).await.unwrap());
    assert_eq!(claimed.len(), 2);
    // Each settlement names its brand: Acme's entry settled under Globex's name is untouched.
    let acme = claimed.iter().find(|e| e.brand_id == "acme").unwrap();
    let globex = claimed.iter().find(|e| e.brand_id == "globex").unwrap();
    let settlements = vec![(
        "globex".to_owned(),
        PushSettlement {
            completed: vec![globex.id, acme.id],
            pushed: vec![
                ("fcm".into(), "phone-globex".into(), globex.id),
                ("fcm".into(), "phone-acme".into(), acme.id),
            ],
            ..Default::default()
        },
    )];
    store.settle_pushes(&settlements).await.unwrap();
    assert_eq!(store.outbox_pending("push").await.unwrap(), 1, "only Globex's entry is done");
    let alice = store.consumer_by_external_id("acme", "alice").await.unwrap().unwrap().id;
    assert_eq!(store.push_targets("acme", alice).await.unwrap()[0].pushed_outbox_id, 0);
    let settlements = vec![("acme".to_owned(), PushSettlement { completed: vec![acme.id], ..Default::default() })];
    store.settle_pushes(&settlements).await.unwrap();
    assert_eq!(store.outbox_pending("push").await.unwrap(), 0);
}
