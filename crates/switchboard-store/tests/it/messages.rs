//! Appending messages: gap-free `seq` per conversation, idempotency on the author's client id,
//! and group commit under concurrent writers.

use std::collections::{BTreeMap, BTreeSet};

use switchboard_protocol::Side;
use switchboard_store::{AgentTarget, Append, AppendError, Store, SystemAppend};
use tokio::task::JoinSet;

use crate::support::{Brand, SECOND, T0, seqs};
use switchboard_store::User;

/// What one acknowledged append said.
#[derive(Debug)]
struct Ack {
    conversation: i64,
    seq: i64,
    opened: bool,
    duplicate: bool,
}

conformance_tests! {
    store: [
        consumer_messages_get_gap_free_seqs_in_one_open_conversation,
        consumer_retry_with_same_client_id_is_stored_once,
        agent_retry_with_same_client_id_is_stored_once,
        concurrent_appends_are_all_acknowledged_without_gaps,
        a_failing_append_does_not_fail_the_others_in_its_batch,
        system_notices_take_the_next_seq,
        first_response_is_recorded_once,
        one_batch_answers_as_one_append_at_a_time,
    ],
}

async fn consumer_messages_get_gap_free_seqs_in_one_open_conversation(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let bob = brand.consumer("bob").await;

    let first = brand.say(alice, "a1", "hello", T0).await;
    assert!(first.opened, "a consumer's first message opens a conversation");
    assert!(!first.duplicate);
    assert_eq!(first.message.seq, 1);
    assert_eq!(first.message.side, Side::Consumer);
    assert_eq!(first.message.author_id, Some(alice));
    assert_eq!(first.message.client_id.as_deref(), Some("a1"));
    let conversation = first.message.conversation_id;

    for (i, client_id) in ["a2", "a3"].into_iter().enumerate() {
        let next = brand.say(alice, client_id, "more", T0 + (i as i64 + 1) * SECOND).await;
        assert!(!next.opened, "later messages go to the open conversation");
        assert_eq!(next.message.conversation_id, conversation);
        assert_eq!(next.message.seq, i as i64 + 2);
    }

    // Another consumer's conversation counts from 1 on its own.
    let other = brand.say(bob, "b1", "hi", T0 + 3 * SECOND).await;
    assert!(other.opened);
    assert_ne!(other.message.conversation_id, conversation);
    assert_eq!(other.message.seq, 1);

    let stored = brand.messages(conversation).await;
    assert_eq!(seqs(&stored), [1, 2, 3]);
    assert_eq!(stored.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["hello", "more", "more"]);
    assert_eq!(stored[0], first.message, "the stored message is the acknowledged one");
    assert_eq!(seqs(&store.messages_after("acme", conversation, 1, 100).await.unwrap()), [2, 3]);
    assert_eq!(seqs(&store.messages_after("acme", conversation, 1, 1).await.unwrap()), [2], "limit is honoured");
    assert!(store.messages_after("acme", conversation, 3, 100).await.unwrap().is_empty());

    let row = brand.conversation(conversation).await;
    assert_eq!(row.last_seq, 3);
    assert_eq!(row.last_message_at, T0 + 2 * SECOND);
    assert_eq!(row.opened_at, T0);
    assert_eq!(row.consumer_id, alice);
    assert_eq!(row.app_id, brand.app_id);
    assert_eq!(row.channel, "in_app");
    assert_eq!(row.agent_id, None, "a consumer's conversation starts unassigned");
}

async fn consumer_retry_with_same_client_id_is_stored_once(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let bob = brand.consumer("bob").await;

    let original = brand.say(alice, "m1", "first try", T0).await;
    let retry = brand.say(alice, "m1", "first try (resent)", T0 + SECOND).await;
    assert!(retry.duplicate, "a retry is reported as a duplicate");
    assert!(!retry.opened);
    assert_eq!(retry.message, original.message, "the retry is answered with the message stored first");

    let next = brand.say(alice, "m2", "second", T0 + 2 * SECOND).await;
    assert!(!next.duplicate);
    assert_eq!(next.message.seq, 2, "a duplicate does not use up a seq");

    // Client ids are per author: another consumer may use the same one.
    let bobs = brand.say(bob, "m1", "bob's own", T0).await;
    assert!(!bobs.duplicate);
    assert!(bobs.opened);

    let conversation = original.message.conversation_id;
    assert_eq!(seqs(&brand.messages(conversation).await), [1, 2]);
    assert_eq!(brand.conversation(conversation).await.last_seq, 2);
}

async fn agent_retry_with_same_client_id_is_stored_once(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let agent = brand.agent("ann@acme.test").await;
    let conversation = brand.say(alice, "c1", "help", T0).await.message.conversation_id;
    assert!(store.assign("acme", conversation, agent.id, T0).await.unwrap());

    let target = AgentTarget::Conversation(conversation);
    let original = brand.reply(&agent, target, "r1", "on it", T0 + SECOND).await.unwrap();
    assert!(!original.duplicate);
    assert_eq!(original.message.seq, 2);
    assert_eq!(original.message.side, Side::Agent);
    assert_eq!(original.message.author_id, Some(agent.id));
    assert_eq!(original.message.author_name.as_deref(), Some(agent.name.as_str()));

    let retry = brand.reply(&agent, target, "r1", "on it (resent)", T0 + 2 * SECOND).await.unwrap();
    assert!(retry.duplicate);
    assert_eq!(retry.message, original.message);

    // The same client id through the consumer target is still the same message.
    let via_consumer = brand.reply(&agent, AgentTarget::Consumer(alice), "r1", "again", T0 + 3 * SECOND).await.unwrap();
    assert!(via_consumer.duplicate);
    assert_eq!(via_consumer.message.seq, 2);

    // A consumer message with the agent's client id is a different author's message.
    let consumer = brand.say(alice, "r1", "thanks", T0 + 4 * SECOND).await;
    assert!(!consumer.duplicate);
    assert_eq!(consumer.message.seq, 3);

    assert_eq!(seqs(&brand.messages(conversation).await), [1, 2, 3]);
}

async fn concurrent_appends_are_all_acknowledged_without_gaps(store: Store) {
    const CONSUMERS: usize = 10;
    const PER_CONSUMER: usize = 5;
    let brand = Brand::create(&store, "acme").await;
    let mut consumers = Vec::new();
    for i in 0..CONSUMERS {
        consumers.push(brand.consumer(&format!("consumer-{i}")).await);
    }

    // Every message is sent twice at once (a client retrying while the first send is in
    // flight), so the writer sees 100 concurrent appends, 50 of them duplicates.
    let mut tasks = JoinSet::new();
    for &consumer in &consumers {
        for n in 0..PER_CONSUMER {
            for attempt in 0..2 {
                let store = store.clone();
                let append = brand.consumer_append(consumer, &format!("{consumer}-{n}"), &format!("message {n}"));
                tasks.spawn(async move { (consumer, attempt, store.append(append, T0 + n as i64).await) });
            }
        }
    }

    let mut acked: BTreeMap<(i64, String), Vec<Ack>> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (consumer, _attempt, result) = joined.expect("append task panicked");
        let appended = result.unwrap_or_else(|error| panic!("concurrent append refused: {error}"));
        let client_id = appended.message.client_id.clone().expect("consumer messages keep their client id");
        acked.entry((consumer, client_id)).or_default().push(Ack {
            conversation: appended.message.conversation_id,
            seq: appended.message.seq,
            opened: appended.opened,
            duplicate: appended.duplicate,
        });
    }
    assert_eq!(acked.len(), CONSUMERS * PER_CONSUMER, "every message was acknowledged");

    for &consumer in &consumers {
        let mine: Vec<&Ack> = acked.iter().filter(|((c, _), _)| *c == consumer).flat_map(|(_, acks)| acks).collect();
        assert_eq!(mine.len(), 2 * PER_CONSUMER);
        let conversations: BTreeSet<i64> = mine.iter().map(|ack| ack.conversation).collect();
        assert_eq!(conversations.len(), 1, "consumer {consumer}: all messages in one conversation");
        assert_eq!(
            mine.iter().filter(|ack| ack.opened).count(),
            1,
            "consumer {consumer}: exactly one append opened it"
        );
        let conversation = *conversations.first().unwrap();

        let stored = brand.messages(conversation).await;
        assert_eq!(seqs(&stored), (1..=PER_CONSUMER as i64).collect::<Vec<_>>(), "consumer {consumer}: gap-free");
        assert!(stored.iter().all(|m| m.author_id == Some(consumer)));
        assert_eq!(brand.conversation(conversation).await.last_seq, PER_CONSUMER as i64);
        assert_eq!(store.open_conversation("acme", consumer).await.unwrap().map(|c| c.id), Some(conversation));
    }
    for ((_, client_id), acks) in &acked {
        assert_eq!(acks.len(), 2);
        let duplicates = acks.iter().filter(|ack| ack.duplicate).count();
        assert_eq!(duplicates, 1, "{client_id}: exactly one of the two sends is the duplicate");
        assert_eq!(acks[0].seq, acks[1].seq, "{client_id}: both sends are answered with the same seq");
    }
}

async fn a_failing_append_does_not_fail_the_others_in_its_batch(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    // A consumer id with no row (say, purged meanwhile): opening a conversation for it
    // breaks a foreign key, a database error that aborts the batch's transaction.
    let ghost = alice + 1000;

    let mut tasks = JoinSet::new();
    for n in 0..40 {
        let consumer = if n % 10 == 5 { ghost } else { alice };
        let append = brand.consumer_append(consumer, &format!("m{n}"), "hello");
        let store = store.clone();
        tasks.spawn(async move { (consumer, store.append(append, T0 + n).await) });
    }
    let (mut ok, mut failed) = (Vec::new(), 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.expect("append task panicked") {
            (consumer, Ok(appended)) => {
                assert_eq!(consumer, alice, "an append for a missing consumer was acknowledged");
                ok.push(appended.message.seq);
            }
            (consumer, Err(error)) => {
                assert_eq!(consumer, ghost, "a valid append failed: {error}");
                assert!(matches!(error, AppendError::Store(_)), "{error:?}");
                failed += 1;
            }
        }
    }
    assert_eq!(failed, 4);
    ok.sort_unstable();
    assert_eq!(ok, (1..=36).collect::<Vec<_>>(), "every valid append committed, gap-free");

    // The writer keeps working after the failed transactions.
    let conversation = store.open_conversation("acme", alice).await.unwrap().expect("alice's conversation").id;
    assert_eq!(brand.say(alice, "after", "still there?", T0 + SECOND).await.message.seq, 37);
    assert_eq!(seqs(&brand.messages(conversation).await), (1..=37).collect::<Vec<_>>());
    assert_eq!(store.open_conversation("acme", ghost).await.unwrap(), None);
}

async fn system_notices_take_the_next_seq(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let conversation = brand.say(alice, "c1", "hello", T0).await.message.conversation_id;

    let notice = SystemAppend {
        brand_id: "acme".to_owned(),
        conversation_id: conversation,
        text: "assigned".to_owned(),
        key: None,
    };
    let appended = store.append(Append::System(notice.clone()), T0 + SECOND).await.unwrap();
    assert_eq!(appended.message.seq, 2);
    assert_eq!(appended.message.side, Side::System);
    assert_eq!(appended.message.author_id, None);
    assert_eq!(appended.message.client_id, None);
    assert!(!appended.opened && !appended.duplicate);

    // System notices have no idempotency id: the same text twice is two notices.
    let again = store.append(Append::System(notice), T0 + 2 * SECOND).await.unwrap();
    assert_eq!(again.message.seq, 3);

    let missing = SystemAppend {
        brand_id: "acme".to_owned(),
        conversation_id: conversation + 1000,
        text: "x".to_owned(),
        key: None,
    };
    let error = store.append(Append::System(missing), T0).await.unwrap_err();
    assert!(matches!(error, AppendError::ConversationNotFound), "{error:?}");

    assert_eq!(seqs(&brand.messages(conversation).await), [1, 2, 3]);
}

async fn first_response_is_recorded_once(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let agent = brand.agent("ann@acme.test").await;
    let conversation = brand.say(alice, "c1", "hello", T0).await.message.conversation_id;
    assert_eq!(brand.conversation(conversation).await.first_response_at, None);
    assert!(store.assign("acme", conversation, agent.id, T0 + SECOND).await.unwrap());

    let target = AgentTarget::Conversation(conversation);
    brand.reply(&agent, target, "r1", "hi", T0 + 5 * SECOND).await.unwrap();
    brand.reply(&agent, target, "r2", "still here", T0 + 9 * SECOND).await.unwrap();
    let row = brand.conversation(conversation).await;
    assert_eq!(row.first_response_at, Some(T0 + 5 * SECOND), "the first agent reply counts, later ones do not");
    assert_eq!(row.assigned_at, Some(T0 + SECOND));
    assert_eq!(row.last_message_at, T0 + 9 * SECOND);
}

/// What a brand of [`one_batch_answers_as_one_append_at_a_time`] starts with.
struct Scene {
    brand: Brand,
    alice: i64,
    bob: i64,
    carol: i64,
    dave: i64,
    ann: User,
    ben: User,
    /// Alice's open conversation, assigned to Ann.
    alice_open: i64,
    /// Carol's closed conversation.
    carol_closed: i64,
}

impl Scene {
    async fn set_up(store: &Store, id: &str) -> Scene {
        let brand = Brand::create(store, id).await;
        let (alice, bob, carol, dave) = (
            brand.consumer("alice").await,
            brand.consumer("bob").await,
            brand.consumer("carol").await,
            brand.consumer("dave").await,
        );
        let (ann, ben) = (brand.agent(&format!("ann@{id}.test")).await, brand.agent(&format!("ben@{id}.test")).await);
        let alice_open = brand.say(alice, "a1", "hello", T0).await.message.conversation_id;
        assert!(store.assign(id, alice_open, ann.id, T0).await.unwrap());
        let carol_closed = brand.say(carol, "c1", "hello", T0).await.message.conversation_id;
        store.close_conversation(id, carol_closed, Side::Agent, false, T0).await.unwrap().expect("closed");
        // Carol has a device: an agent's message to her queues a push.
        store.register_push_token(id, &brand.app_id, carol, "fcm", &format!("{id}-carol-token"), T0).await.unwrap();
        Scene { brand, alice, bob, carol, dave, ann, ben, alice_open, carol_closed }
    }

    /// Every kind of append, with resends, follow-ups and refusals, several per consumer.
    fn script(&self) -> Vec<Append> {
        let b = &self.brand;
        let system = |conversation_id: i64, key: Option<&str>| {
            Append::System(SystemAppend {
                brand_id: b.id.clone(),
                conversation_id,
                text: "notice".to_owned(),
                key: key.map(str::to_owned),
            })
        };
        vec![
            // A notice puts Alice's next message in a later generation; Ann's reply, queued
            // after it, must not take a seq before it.
            system(self.alice_open, None),
            b.consumer_append(self.alice, "a2", "more"),
            b.agent_append(&self.ann, AgentTarget::Conversation(self.alice_open), "r1", "hi alice"),
            b.consumer_append(self.alice, "a2", "more (resent)"),
            b.agent_append(&self.ann, AgentTarget::Conversation(self.alice_open), "r1", "hi alice (resent)"),
            b.consumer_append(self.bob, "b1", "hello"),
            b.consumer_append(self.bob, "b2", "anyone?"),
            b.consumer_append(self.bob, "b1", "hello (resent)"),
            b.agent_append(&self.ann, AgentTarget::Conversation(self.carol_closed), "f1", "following up"),
            b.agent_append(&self.ann, AgentTarget::Consumer(self.carol), "f2", "and again"),
            b.agent_append(&self.ben, AgentTarget::Conversation(self.alice_open), "x1", "not mine"),
            b.agent_append(&self.ben, AgentTarget::Consumer(self.bob), "x2", "not mine either"),
            system(self.alice_open, Some("warning:1")),
            system(self.alice_open, Some("warning:1")),
            system(self.carol_closed, None),
            b.agent_append(&self.ann, AgentTarget::Consumer(self.dave), "d1", "never wrote"),
            system(self.alice_open + 10_000, None),
            b.consumer_append(self.alice, "a3", "last"),
        ]
    }
}

/// One line per answer, with conversations named by their first appearance (the two brands'
/// ids differ).
fn describe_answers(answers: &[Result<switchboard_store::Appended, AppendError>]) -> Vec<String> {
    let mut names: BTreeMap<i64, usize> = BTreeMap::new();
    answers
        .iter()
        .map(|answer| match answer {
            Ok(appended) => {
                let next = names.len();
                let name = *names.entry(appended.message.conversation_id).or_insert(next);
                format!(
                    "conversation {name} seq {} {:?} opened {} duplicate {} agent {}",
                    appended.message.seq,
                    appended.message.side,
                    appended.opened,
                    appended.duplicate,
                    appended.agent_id.is_some()
                )
            }
            Err(error) => format!("refused: {error}"),
        })
        .collect()
}

/// The PostgreSQL writer runs a batch set-based (several appends per statement); whatever
/// the batching, the answers, seqs, pushes and first responses are those of the same appends
/// made one at a time.
async fn one_batch_answers_as_one_append_at_a_time(store: Store) {
    let one = Scene::set_up(&store, "one").await;
    let pushes_before = store.outbox_pending("push").await.unwrap();
    let mut one_by_one = Vec::new();
    for (n, append) in one.script().into_iter().enumerate() {
        one_by_one.push(store.append(append, T0 + SECOND + n as i64).await);
    }
    let pushes_one_by_one = store.outbox_pending("push").await.unwrap() - pushes_before;

    let many = Scene::set_up(&store, "many").await;
    // Keep the writer busy first, so the script queues up behind it and goes in together.
    let filler = many.brand.consumer("filler").await;
    let mut pending = Vec::new();
    for n in 0..20 {
        pending.push(store.submit(many.brand.consumer_append(filler, &format!("z{n}"), "busy"), T0).await.unwrap());
    }
    let mut script = Vec::new();
    for (n, append) in many.script().into_iter().enumerate() {
        script.push(store.submit(append, T0 + SECOND + n as i64).await.unwrap());
    }
    for pending in pending {
        pending.committed().await.unwrap();
    }
    let mut batched = Vec::new();
    for pending in script {
        batched.push(pending.committed().await);
    }
    let pushes_batched = store.outbox_pending("push").await.unwrap() - pushes_before - pushes_one_by_one;

    assert_eq!(describe_answers(&batched), describe_answers(&one_by_one));
    assert_eq!(pushes_batched, pushes_one_by_one, "pushes queued");
    assert!(pushes_one_by_one > 0, "the follow-ups to Carol queue pushes");
    for scene in [&one, &many] {
        let alice = scene.brand.conversation(scene.alice_open).await;
        assert_eq!(seqs(&scene.brand.messages(scene.alice_open).await), (1..=alice.last_seq).collect::<Vec<_>>());
        assert_eq!(alice.first_response_at, Some(T0 + SECOND + 2), "{}: Ann's first reply", scene.brand.id);
        let follow_up = store.open_conversation(&scene.brand.id, scene.carol).await.unwrap().expect("follow-up");
        assert_eq!(follow_up.agent_id, Some(scene.ann.id));
        assert_eq!(follow_up.first_response_at, Some(T0 + SECOND + 8), "{}: the follow-up", scene.brand.id);
        let events = store.conversation_events(&scene.brand.id, follow_up.id).await.unwrap();
        assert_eq!(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["opened"]);
        assert_eq!(events[0].agent_id, Some(scene.ann.id));
        let bob = store.open_conversation(&scene.brand.id, scene.bob).await.unwrap().expect("bob's conversation");
        assert_eq!(seqs(&scene.brand.messages(bob.id).await), [1, 2]);
        assert_eq!(store.open_conversation(&scene.brand.id, scene.dave).await.unwrap(), None);
    }
}
