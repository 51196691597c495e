//! Tenancy: brand B can neither read nor change anything of brand A through the store, and
//! every list is per brand.

use switchboard_protocol::{ReceiptKind, Side};
use switchboard_store::{
    AgentTarget, Append, AppendError, ConsumerClaims, ConversationFilter, CsatError, Role, Store, StoreError,
    SystemAppend,
};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [
        a_brand_cannot_read_or_change_another_brands_conversation,
        users_apps_skills_and_consumers_are_per_brand,
    ],
}

async fn a_brand_cannot_read_or_change_another_brands_conversation(store: Store) {
    let a = Brand::create(&store, "brand-a").await;
    let b = Brand::create(&store, "brand-b").await;
    let alice = a.consumer("alice").await;
    let a_agent = a.agent("ann@a.test").await;
    let b_agent = b.agent("bo@b.test").await;
    let id = a.say(alice, "c1", "private", T0).await.message.conversation_id;
    assert!(store.assign("brand-a", id, a_agent.id, T0).await.unwrap());
    let before = a.conversation(id).await;

    // Reads.
    assert_eq!(store.conversation("brand-b", id).await.unwrap(), None);
    assert!(store.messages_after("brand-b", id, 0, 100).await.unwrap().is_empty());
    assert!(store.open_conversations("brand-b").await.unwrap().is_empty());
    assert_eq!(store.open_conversation("brand-b", alice).await.unwrap(), None);
    assert!(store.agent_conversations("brand-b", a_agent.id).await.unwrap().is_empty());
    let page = store.conversations("brand-b", &ConversationFilter::default(), None, 100).await.unwrap();
    assert!(page.conversations.is_empty());
    let page = store
        .conversations("brand-b", &ConversationFilter { consumer_id: Some(alice), ..Default::default() }, None, 100)
        .await
        .unwrap();
    assert!(page.conversations.is_empty());

    // Writes through every path that takes a conversation id.
    assert!(!store.assign("brand-b", id, b_agent.id, T0).await.unwrap());
    assert!(!store.record_receipt("brand-b", id, Side::Agent, ReceiptKind::Read, 1).await.unwrap());
    assert_eq!(store.close_conversation("brand-b", id, Side::Agent, true, T0).await.unwrap(), None);
    let error = store.answer_csat("brand-b", id, alice, 5, None).await.unwrap_err();
    assert!(matches!(error, CsatError::NotFound), "{error:?}");

    let manager = b.user("max@b.test", Role::Manager).await;
    for target in [AgentTarget::Conversation(id), AgentTarget::Consumer(alice)] {
        let append = Append::Agent(switchboard_store::AgentAppend {
            brand_id: "brand-b".to_owned(),
            agent_id: manager.id,
            agent_name: manager.name.clone(),
            may_write_unassigned: true,
            target,
            client_id: format!("x-{target:?}"),
            text: "intrusion".to_owned(),
        });
        let error = store.append(append, T0 + SECOND).await.unwrap_err();
        let expected = match target {
            AgentTarget::Conversation(_) => matches!(error, AppendError::ConversationNotFound),
            AgentTarget::Consumer(_) => matches!(error, AppendError::ConsumerNeverWrote),
        };
        assert!(expected, "{target:?}: {error:?}");
    }
    let notice =
        SystemAppend { brand_id: "brand-b".to_owned(), conversation_id: id, text: "intrusion".to_owned(), key: None };
    let error = store.append(Append::System(notice), T0 + SECOND).await.unwrap_err();
    assert!(matches!(error, AppendError::ConversationNotFound), "{error:?}");

    // Brand A sees exactly what it had.
    assert_eq!(a.conversation(id).await, before);
    assert_eq!(a.messages(id).await.len(), 1);
}

async fn users_apps_skills_and_consumers_are_per_brand(store: Store) {
    let a = Brand::create(&store, "brand-a").await;
    let b = Brand::create(&store, "brand-b").await;
    let a_agent = a.agent("ann@a.test").await;
    let b_agent = b.agent("bo@b.test").await;
    let a_skill = store.create_skill("brand-a", "billing", T0).await.unwrap();
    // Skill names are unique per brand, not globally.
    let b_skill = store.create_skill("brand-b", "billing", T0).await.unwrap();
    assert_ne!(a_skill.id, b_skill.id);

    let ids = |users: Vec<switchboard_store::User>| users.iter().map(|u| u.id).collect::<Vec<_>>();
    assert_eq!(ids(store.users("brand-a").await.unwrap()), [a_agent.id]);
    assert_eq!(ids(store.users("brand-b").await.unwrap()), [b_agent.id]);
    assert_eq!(store.user("brand-b", a_agent.id).await.unwrap(), None);
    assert!(matches!(store.update_user("brand-b", a_agent.id, &Default::default()).await, Err(StoreError::NotFound)));

    let app_ids = |apps: Vec<switchboard_store::App>| apps.iter().map(|app| app.id.clone()).collect::<Vec<_>>();
    assert_eq!(app_ids(store.apps("brand-a").await.unwrap()), [a.app_id.as_str()]);
    assert_eq!(app_ids(store.apps("brand-b").await.unwrap()), [b.app_id.as_str()]);
    assert_eq!(store.app("brand-b", &a.app_id).await.unwrap(), None);
    assert!(matches!(store.add_app_key("brand-b", &a.app_id, "pem", "KEY", T0).await, Err(StoreError::NotFound)));
    let key = store.add_app_key("brand-a", &a.app_id, "pem", "KEY", T0).await.unwrap();
    assert!(store.app_keys("brand-b", &a.app_id).await.unwrap().is_empty());
    assert!(matches!(store.delete_app_key("brand-b", &a.app_id, key.id).await, Err(StoreError::NotFound)));
    assert_eq!(store.app_keys("brand-a", &a.app_id).await.unwrap(), [key]);

    let skill_names = |skills: Vec<switchboard_store::Skill>| skills.iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(skill_names(store.skills("brand-a").await.unwrap()), [a_skill.id]);
    assert_eq!(skill_names(store.skills("brand-b").await.unwrap()), [b_skill.id]);
    assert!(matches!(store.delete_skill("brand-b", a_skill.id).await, Err(StoreError::NotFound)));
    assert_eq!(store.skills("brand-a").await.unwrap().len(), 1);
    // A user cannot be given another brand's skill.
    let patch = switchboard_store::UserPatch { skills: Some(vec![a_skill.id]), ..Default::default() };
    assert!(matches!(store.update_user("brand-b", b_agent.id, &patch).await, Err(StoreError::NotFound)));
    assert!(store.user("brand-b", b_agent.id).await.unwrap().unwrap().skills.is_empty());

    let new_token = switchboard_store::NewApiToken {
        brand_id: "brand-a",
        name: "ci",
        role: Role::Admin,
        token_hash: "hash-a",
        created_by: a_agent.id,
        expires_at: None,
    };
    let token = store.create_api_token(&new_token, T0).await.unwrap();
    store.touch_api_token("brand-b", token.id, T0 + 1).await.unwrap();
    assert_eq!(store.api_token("hash-a").await.unwrap().unwrap().last_used_at, None, "brand B cannot touch it");
    assert!(store.api_tokens("brand-b").await.unwrap().is_empty());
    assert!(matches!(store.delete_api_token("brand-b", token.id).await, Err(StoreError::NotFound)));
    assert_eq!(store.api_tokens("brand-a").await.unwrap(), [token]);

    // The same external id in two brands is two different consumers.
    let a_alice = store.upsert_consumer("brand-a", "alice", &ConsumerClaims::default(), T0).await.unwrap();
    let b_alice = store.upsert_consumer("brand-b", "alice", &ConsumerClaims::default(), T0).await.unwrap();
    assert_ne!(a_alice.id, b_alice.id);
    assert_eq!(store.consumer("brand-b", a_alice.id).await.unwrap(), None);
    assert_eq!(store.consumer_by_external_id("brand-b", "alice").await.unwrap(), Some(b_alice));
}
