//! The outbox: a pending push is written with the message it announces (same transaction),
//! only for news to a consumer with a device, once per message; dispatchers claim entries for
//! a lease, complete or retry them; one claim at a time holds a consumer's entries.

use switchboard_store::{AgentTarget, Append, Store, SystemAppend};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [
        a_message_to_a_consumer_with_a_device_queues_one_push,
        claims_hold_for_their_lease_and_retries_wait_their_turn,
    ],
}

async fn a_message_to_a_consumer_with_a_device_queues_one_push(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let bob = brand.consumer("bob").await;
    let agent = brand.agent("ann@acme.test").await;
    store.register_push_token("acme", &brand.app_id, alice, "fcm", "token-a", T0).await.unwrap();

    let c = brand.say(alice, "c1", "help", T0).await.message.conversation_id;
    assert_eq!(store.outbox_pending("push").await.unwrap(), 0, "the consumer's own message is no news to them");
    assert!(store.assign("acme", c, agent.id, T0).await.unwrap());
    let reply = brand.reply(&agent, AgentTarget::Conversation(c), "r1", "on it", T0 + SECOND).await.unwrap();
    let again = brand.reply(&agent, AgentTarget::Conversation(c), "r1", "on it", T0 + 2 * SECOND).await.unwrap();
    assert!(again.duplicate);
    let notice =
        Append::System(SystemAppend { brand_id: "acme".into(), conversation_id: c, text: "Moved".into(), key: None });
    store.append(notice, T0 + 3 * SECOND).await.unwrap();

    let claimed = store.claim_outbox("push", T0 + 10 * SECOND, T0 + 10 * SECOND, 30 * SECOND, 10).await.unwrap();
    let announced: Vec<(i64, i64, i64)> = claimed.iter().map(|e| (e.conversation_id, e.seq, e.consumer_id)).collect();
    assert_eq!(announced, [(c, reply.message.seq, alice), (c, 3, alice)], "the reply and the notice, once each");
    assert!(claimed.iter().all(|e| e.brand_id == "acme" && e.kind == "push" && e.attempts == 0));

    // Bob has no device: nothing to push.
    let c2 = brand.say(bob, "b1", "hi", T0).await.message.conversation_id;
    assert!(store.assign("acme", c2, agent.id, T0).await.unwrap());
    brand.reply(&agent, AgentTarget::Conversation(c2), "r2", "hello Bob", T0 + SECOND).await.unwrap();
    assert_eq!(store.outbox_pending("push").await.unwrap(), 2);
}

async fn claims_hold_for_their_lease_and_retries_wait_their_turn(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let bob = brand.consumer("bob").await;
    let agent = brand.agent("ann@acme.test").await;
    store.register_push_token("acme", &brand.app_id, alice, "apns", "token-a", T0).await.unwrap();
    store.register_push_token("acme", &brand.app_id, bob, "fcm", "token-b", T0).await.unwrap();
    let c = brand.say(alice, "c1", "help", T0).await.message.conversation_id;
    assert!(store.assign("acme", c, agent.id, T0).await.unwrap());
    for i in 0..3 {
        let at = T0 + (i + 1) * SECOND;
        brand.reply(&agent, AgentTarget::Conversation(c), &format!("r{i}"), "news", at).await.unwrap();
    }
    let b = brand.say(bob, "b1", "hi", T0).await.message.conversation_id;
    assert!(store.assign("acme", b, agent.id, T0).await.unwrap());
    brand.reply(&agent, AgentTarget::Conversation(b), "rb", "news for Bob", T0 + 5 * SECOND).await.unwrap();
    let now = T0 + 10 * SECOND;
    let lease = 30 * SECOND;
    let seqs =
        |entries: &[switchboard_store::OutboxEntry]| entries.iter().map(|e| (e.consumer_id, e.seq)).collect::<Vec<_>>();

    let first = store.claim_outbox("push", now, now, lease, 2).await.unwrap();
    assert_eq!(seqs(&first), [(alice, 2), (alice, 3)], "oldest first, at most the limit");
    let second = store.claim_outbox("push", now, now, lease, 10).await.unwrap();
    assert_eq!(
        seqs(&second),
        [(bob, 2)],
        "claimed entries are not claimed twice, and Alice's third waits while her claim is held"
    );
    assert!(store.claim_outbox("webhook", now, now, lease, 10).await.unwrap().is_empty(), "kinds are apart");
    assert!(store.claim_outbox("push", now, now, lease, 10).await.unwrap().is_empty());

    store.complete_outbox("acme", first[0].id).await.unwrap();
    store.retry_outbox("acme", first[1].id, now + 45 * SECOND, "503 from the provider").await.unwrap();
    // Alice's claim is settled: her third is claimed now; the retried entry waits for its
    // due time.
    let third = store.claim_outbox("push", now + SECOND, now + SECOND, lease, 10).await.unwrap();
    assert_eq!(seqs(&third), [(alice, 4)]);
    // Within the lease nothing more is due; after it, the unfinished claims come back.
    assert!(store.claim_outbox("push", now + 2 * SECOND, now + 2 * SECOND, lease, 10).await.unwrap().is_empty());
    let at = now + SECOND + lease;
    let after_lease = store.claim_outbox("push", at, at, lease, 10).await.unwrap();
    assert_eq!(seqs(&after_lease), [(alice, 4), (bob, 2)], "oldest due first");
    for entry in &after_lease {
        store.complete_outbox("acme", entry.id).await.unwrap();
    }
    let retried = store.claim_outbox("push", now + 45 * SECOND, now + 45 * SECOND, lease, 10).await.unwrap();
    assert_eq!(retried.iter().map(|e| (e.seq, e.attempts)).collect::<Vec<_>>(), [(3, 1)]);
    assert_eq!(store.outbox_pending("push").await.unwrap(), 1);
}
