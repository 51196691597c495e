//! Conversation lifecycle: at most one open conversation per consumer, closing (idempotent),
//! reopening by the next consumer message, and assignment.

use switchboard_protocol::{ConversationStatus, Side};
use switchboard_store::{AgentTarget, Store};

use crate::support::{Brand, SECOND, T0, seqs};

/// Rounds of the close-versus-append races; on an affected store, a large share of rounds
/// shows the bad interleaving.
const RACE_ROUNDS: usize = 200;

// The race tests are regression tests: on PostgreSQL (READ COMMITTED) a close committed between
// the writer's status lookup and its seq bump once let a message land in a closed conversation.
conformance_tests! {
    store: [
        closing_ends_the_open_conversation_and_the_next_message_opens_a_new_one,
        closing_twice_returns_none_the_second_time,
        only_open_conversations_can_be_assigned,
        consumer_message_racing_a_close_never_lands_in_the_closed_conversation,
        agent_message_racing_a_close_never_lands_in_the_closed_conversation,
    ],
}

async fn closing_ends_the_open_conversation_and_the_next_message_opens_a_new_one(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let first = brand.say(alice, "c1", "hello", T0).await.message.conversation_id;
    brand.say(alice, "c2", "anyone?", T0 + SECOND).await;
    assert_eq!(store.open_conversation("acme", alice).await.unwrap().map(|c| c.id), Some(first));

    let closed = store.close_conversation("acme", first, Side::Consumer, false, T0 + 2 * SECOND).await.unwrap();
    let closed = closed.expect("an open conversation can be closed");
    assert_eq!(closed.id, first);
    assert_eq!(closed.status, ConversationStatus::Closed);
    assert_eq!(closed.closed_at, Some(T0 + 2 * SECOND));
    assert_eq!(closed.closed_by, Some(Side::Consumer));
    assert_eq!(brand.conversation(first).await, closed, "the returned row is what is stored");
    assert_eq!(store.open_conversation("acme", alice).await.unwrap(), None);
    assert!(store.open_conversations("acme").await.unwrap().is_empty());

    let reopened = brand.say(alice, "c3", "me again", T0 + 3 * SECOND).await;
    assert!(reopened.opened, "after a close, the next message opens a new conversation");
    let second = reopened.message.conversation_id;
    assert_ne!(second, first);
    assert_eq!(reopened.message.seq, 1, "the new conversation counts from 1");
    assert_eq!(brand.conversation(second).await.opened_at, T0 + 3 * SECOND);

    // The old conversation is untouched.
    let old = brand.conversation(first).await;
    assert_eq!(old.status, ConversationStatus::Closed);
    assert_eq!(old.last_seq, 2);
    assert_eq!(seqs(&brand.messages(first).await), [1, 2]);

    let open: Vec<i64> = store.open_conversations("acme").await.unwrap().iter().map(|c| c.id).collect();
    assert_eq!(open, [second], "at most one open conversation per consumer");
    assert_eq!(store.open_conversation("acme", alice).await.unwrap().map(|c| c.id), Some(second));
}

async fn closing_twice_returns_none_the_second_time(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let conversation = brand.say(alice, "c1", "hello", T0).await.message.conversation_id;

    assert!(store.close_conversation("acme", conversation, Side::Agent, true, T0 + SECOND).await.unwrap().is_some());
    let again = store.close_conversation("acme", conversation, Side::Consumer, false, T0 + 2 * SECOND).await.unwrap();
    assert_eq!(again, None, "closing a closed conversation is a no-op");

    // The second close changed nothing: who closed it, when, and the survey stay.
    let row = brand.conversation(conversation).await;
    assert_eq!(row.closed_by, Some(Side::Agent));
    assert_eq!(row.closed_at, Some(T0 + SECOND));
    assert!(row.survey_open);

    assert_eq!(store.close_conversation("acme", conversation + 1000, Side::Agent, false, T0).await.unwrap(), None);
}

async fn only_open_conversations_can_be_assigned(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let ann = brand.agent("ann@acme.test").await;
    let bo = brand.agent("bo@acme.test").await;
    let conversation = brand.say(alice, "c1", "hello", T0).await.message.conversation_id;

    assert!(store.assign("acme", conversation, ann.id, T0 + SECOND).await.unwrap());
    let row = brand.conversation(conversation).await;
    assert_eq!((row.agent_id, row.assigned_at), (Some(ann.id), Some(T0 + SECOND)));
    let ids = |list: Vec<switchboard_store::Conversation>| list.iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(store.agent_conversations("acme", ann.id).await.unwrap()), [conversation]);

    // Transfer.
    assert!(store.assign("acme", conversation, bo.id, T0 + 2 * SECOND).await.unwrap());
    assert!(store.agent_conversations("acme", ann.id).await.unwrap().is_empty());
    assert_eq!(ids(store.agent_conversations("acme", bo.id).await.unwrap()), [conversation]);

    store.close_conversation("acme", conversation, Side::Agent, false, T0 + 3 * SECOND).await.unwrap();
    assert!(
        !store.assign("acme", conversation, ann.id, T0 + 4 * SECOND).await.unwrap(),
        "a closed conversation stays closed"
    );
    assert_eq!(brand.conversation(conversation).await.agent_id, Some(bo.id));
    assert!(
        store.agent_conversations("acme", bo.id).await.unwrap().is_empty(),
        "closed conversations are not an agent's load"
    );
}

/// A message and a close of its conversation, at the same moment: either the message is part
/// of the conversation as it was closed (counted in the closed conversation's `last_seq`), or
/// it opens a new conversation. It must never be appended to a conversation after the close.
async fn consumer_message_racing_a_close_never_lands_in_the_closed_conversation(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let mut late = Vec::new();
    for round in 0..RACE_ROUNDS {
        let now = T0 + round as i64 * SECOND;
        let conversation = brand.say(alice, &format!("open-{round}"), "hi", now).await.message.conversation_id;
        let client_id = format!("race-{round}");
        let (closed, message) = tokio::join!(
            store.close_conversation("acme", conversation, Side::Agent, false, now + 1),
            brand.say(alice, &client_id, "one more thing", now + 1),
        );
        let closed = closed.unwrap().expect("the conversation was open");
        if message.message.conversation_id == conversation {
            assert!(!message.opened);
            if message.message.seq > closed.last_seq {
                late.push((round, closed.last_seq, message.message.seq));
            }
        } else {
            assert!(message.opened, "a message outside the closed conversation opens a new one");
            let new = message.message.conversation_id;
            store.close_conversation("acme", new, Side::Agent, false, now + 2).await.unwrap().unwrap();
        }
    }
    assert!(
        late.is_empty(),
        "{} of {RACE_ROUNDS} messages were appended after their conversation closed; \
         (round, last_seq at close, seq): {:?}",
        late.len(),
        &late[..late.len().min(5)],
    );
}

/// As above, for an agent: a message to a conversation being closed is either in it before
/// the close, or starts a new conversation assigned to the agent.
async fn agent_message_racing_a_close_never_lands_in_the_closed_conversation(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let ann = brand.agent("ann@acme.test").await;
    let mut late = Vec::new();
    for round in 0..RACE_ROUNDS {
        let now = T0 + round as i64 * SECOND;
        let conversation = brand.say(alice, &format!("open-{round}"), "hi", now).await.message.conversation_id;
        assert!(store.assign("acme", conversation, ann.id, now).await.unwrap());
        let client_id = format!("race-{round}");
        let (closed, message) = tokio::join!(
            store.close_conversation("acme", conversation, Side::Consumer, false, now + 1),
            brand.reply(&ann, AgentTarget::Conversation(conversation), &client_id, "anything else?", now + 1),
        );
        let closed = closed.unwrap().expect("the conversation was open");
        let message = message.expect("the agent may write: assigned, or a follow-up after the close");
        if message.message.conversation_id == conversation {
            if message.message.seq > closed.last_seq {
                late.push((round, closed.last_seq, message.message.seq));
            }
        } else {
            assert!(message.opened, "a follow-up after the close opens a new conversation");
            let new = message.message.conversation_id;
            assert_eq!(brand.conversation(new).await.agent_id, Some(ann.id));
            store.close_conversation("acme", new, Side::Agent, false, now + 2).await.unwrap().unwrap();
        }
    }
    assert!(
        late.is_empty(),
        "{} of {RACE_ROUNDS} messages were appended after their conversation closed; \
         (round, last_seq at close, seq): {:?}",
        late.len(),
        &late[..late.len().min(5)],
    );
}
