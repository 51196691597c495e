//! Rules for agent messages: only to consumers who wrote, only into conversations assigned to
//! the writer (unless a manager), and a message to a closed conversation starts a new one.

use switchboard_protocol::{ConversationStatus, Side};
use switchboard_store::{AgentAppend, AgentTarget, Append, AppendError, Role, Store};

use crate::support::{Brand, SECOND, T0, seqs};

conformance_tests! {
    store: [
        agent_cannot_write_first_to_a_consumer_who_never_wrote,
        agent_cannot_write_into_a_conversation_of_another_agent,
        manager_may_write_into_any_open_conversation,
        agent_message_to_a_closed_conversation_starts_a_new_one,
        agent_message_to_an_unknown_conversation_is_refused,
    ],
}

async fn agent_cannot_write_first_to_a_consumer_who_never_wrote(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let silent = brand.consumer("silent").await;
    let agent = brand.agent("ann@acme.test").await;

    let error = brand.reply(&agent, AgentTarget::Consumer(silent), "r1", "hi!", T0).await.unwrap_err();
    assert!(matches!(error, AppendError::ConsumerNeverWrote), "{error:?}");
    assert_eq!(store.open_conversation("acme", silent).await.unwrap(), None, "nothing was created");
    let all = store.conversations("acme", &Default::default(), None, 100).await.unwrap();
    assert!(all.conversations.is_empty());

    // A consumer id that does not exist at all is refused the same way.
    let error = brand.reply(&agent, AgentTarget::Consumer(silent + 1000), "r2", "hi!", T0).await.unwrap_err();
    assert!(matches!(error, AppendError::ConsumerNeverWrote), "{error:?}");

    // The refusal did not burn the client id: once the consumer wrote, it goes through.
    let conversation = brand.say(silent, "c1", "hello", T0 + SECOND).await.message.conversation_id;
    assert!(store.assign("acme", conversation, agent.id, T0 + SECOND).await.unwrap());
    let reply = brand.reply(&agent, AgentTarget::Consumer(silent), "r1", "hi!", T0 + 2 * SECOND).await.unwrap();
    assert!(!reply.duplicate && !reply.opened);
    assert_eq!((reply.message.conversation_id, reply.message.seq), (conversation, 2));
}

async fn agent_cannot_write_into_a_conversation_of_another_agent(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let ann = brand.agent("ann@acme.test").await;
    let bo = brand.agent("bo@acme.test").await;
    let conversation = brand.say(alice, "c1", "hello", T0).await.message.conversation_id;

    // Unassigned (waiting in the queue): nobody writes yet.
    for target in [AgentTarget::Conversation(conversation), AgentTarget::Consumer(alice)] {
        let error = brand.reply(&bo, target, "b1", "hi", T0 + SECOND).await.unwrap_err();
        assert!(matches!(error, AppendError::NotAssigned), "{target:?}: {error:?}");
    }

    assert!(store.assign("acme", conversation, ann.id, T0 + SECOND).await.unwrap());
    for target in [AgentTarget::Conversation(conversation), AgentTarget::Consumer(alice)] {
        let error = brand.reply(&bo, target, "b1", "hi", T0 + 2 * SECOND).await.unwrap_err();
        assert!(matches!(error, AppendError::NotAssigned), "{target:?}: {error:?}");
    }

    // The assignee writes, and the refusals left no gap.
    let ok = brand.reply(&ann, AgentTarget::Conversation(conversation), "a1", "hi", T0 + 3 * SECOND).await.unwrap();
    assert_eq!(ok.message.seq, 2);
    let ok = brand.reply(&ann, AgentTarget::Consumer(alice), "a2", "hi again", T0 + 4 * SECOND).await.unwrap();
    assert_eq!((ok.message.conversation_id, ok.message.seq), (conversation, 3));
    assert_eq!(seqs(&brand.messages(conversation).await), [1, 2, 3]);
    assert!(brand.messages(conversation).await.iter().all(|m| m.author_id != Some(bo.id)));
}

async fn manager_may_write_into_any_open_conversation(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let ann = brand.agent("ann@acme.test").await;
    let manager = brand.user("max@acme.test", Role::Manager).await;
    let conversation = brand.say(alice, "c1", "hello", T0).await.message.conversation_id;
    assert!(store.assign("acme", conversation, ann.id, T0).await.unwrap());

    let append = |client_id: &str, target| {
        Append::Agent(AgentAppend {
            brand_id: "acme".to_owned(),
            agent_id: manager.id,
            agent_name: manager.name.clone(),
            may_write_unassigned: true,
            target,
            client_id: client_id.to_owned(),
            text: "a manager here".to_owned(),
        })
    };
    let written = store.append(append("m1", AgentTarget::Conversation(conversation)), T0 + SECOND).await.unwrap();
    assert_eq!((written.message.conversation_id, written.message.seq), (conversation, 2));
    assert!(!written.opened);
    let written = store.append(append("m2", AgentTarget::Consumer(alice)), T0 + 2 * SECOND).await.unwrap();
    assert_eq!((written.message.conversation_id, written.message.seq), (conversation, 3));

    assert_eq!(
        brand.conversation(conversation).await.agent_id,
        Some(ann.id),
        "writing does not take the conversation over"
    );
}

async fn agent_message_to_a_closed_conversation_starts_a_new_one(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let ann = brand.agent("ann@acme.test").await;
    let bo = brand.agent("bo@acme.test").await;
    let old = brand.say(alice, "c1", "hello", T0).await.message.conversation_id;
    assert!(store.assign("acme", old, ann.id, T0).await.unwrap());
    store.close_conversation("acme", old, Side::Agent, false, T0 + SECOND).await.unwrap().unwrap();

    // Bo was not the assignee of the closed conversation, and may still follow up.
    let follow_up =
        brand.reply(&bo, AgentTarget::Conversation(old), "f1", "one more thing", T0 + 10 * SECOND).await.unwrap();
    assert!(follow_up.opened, "a message to a closed conversation opens a new one");
    let new = follow_up.message.conversation_id;
    assert_ne!(new, old);
    assert_eq!(follow_up.message.seq, 1);

    let row = brand.conversation(new).await;
    assert_eq!(row.status, ConversationStatus::Open);
    assert_eq!(row.consumer_id, alice);
    assert_eq!((row.agent_id, row.assigned_at), (Some(bo.id), Some(T0 + 10 * SECOND)), "assigned to the writer");
    assert_eq!((row.app_id.as_str(), row.channel.as_str()), (brand.app_id.as_str(), "in_app"), "on the old channel");
    assert_eq!(row.first_response_at, Some(T0 + 10 * SECOND));
    assert_eq!(brand.conversation(old).await.last_seq, 1, "the closed conversation got nothing");

    // The consumer's answer goes into the new conversation, and Bo keeps writing there.
    let answer = brand.say(alice, "c2", "sure", T0 + 11 * SECOND).await;
    assert!(!answer.opened);
    assert_eq!((answer.message.conversation_id, answer.message.seq), (new, 2));
    let again = brand.reply(&bo, AgentTarget::Conversation(old), "f2", "great", T0 + 12 * SECOND).await.unwrap();
    assert_eq!((again.message.conversation_id, again.message.seq, again.opened), (new, 3, false));
    // Ann may not write there: the new conversation is Bo's.
    let error = brand.reply(&ann, AgentTarget::Conversation(old), "a1", "hi", T0 + 13 * SECOND).await.unwrap_err();
    assert!(matches!(error, AppendError::NotAssigned), "{error:?}");

    // Through the consumer target as well: close, then write to the consumer.
    store.close_conversation("acme", new, Side::Agent, false, T0 + 20 * SECOND).await.unwrap().unwrap();
    let third = brand.reply(&ann, AgentTarget::Consumer(alice), "a2", "hello again", T0 + 30 * SECOND).await.unwrap();
    assert!(third.opened);
    assert!(![old, new].contains(&third.message.conversation_id));
    assert_eq!(brand.conversation(third.message.conversation_id).await.agent_id, Some(ann.id));
    let open: Vec<i64> = store.open_conversations("acme").await.unwrap().iter().map(|c| c.id).collect();
    assert_eq!(open, [third.message.conversation_id]);
}

async fn agent_message_to_an_unknown_conversation_is_refused(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let agent = brand.agent("ann@acme.test").await;
    let error = brand.reply(&agent, AgentTarget::Conversation(424_242), "r1", "hi", T0).await.unwrap_err();
    assert!(matches!(error, AppendError::ConversationNotFound), "{error:?}");
    assert!(store.conversations("acme", &Default::default(), None, 100).await.unwrap().conversations.is_empty());
}
