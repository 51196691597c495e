//! Brands, apps, users, sessions and API tokens: what login and the admin API rely on.

use switchboard_protocol::AgentState;
use switchboard_store::{
    AppPatch, BrandPatch, ConsumerClaims, DEFAULT_RETENTION_DAYS, NewBrand, NewUser, Role, Store, StoreError, User,
    UserPatch,
};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [
        sessions_end_at_expiry_and_on_logout,
        disabling_a_user_ends_their_sessions,
        user_emails_are_case_insensitive_and_unique,
        users_keep_their_skills,
        brand_and_app_settings_round_trip,
        consumer_profile_is_updated_by_present_claims_only,
        api_tokens_are_found_by_hash,
        an_anonymous_consumer_merges_into_an_authenticated_one,
    ],
}

async fn session_user(store: &Store, token_hash: &str, now: i64) -> Option<User> {
    store.session_user(token_hash, now).await.expect("read session")
}

async fn sessions_end_at_expiry_and_on_logout(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let ann = brand.agent("ann@acme.test").await;
    let expires_at = T0 + 3600 * SECOND;
    store.create_session("token-1", &ann, T0, expires_at).await.unwrap();

    assert_eq!(session_user(&store, "token-1", T0).await.map(|u| u.id), Some(ann.id));
    assert_eq!(session_user(&store, "token-1", expires_at - 1).await.map(|u| u.id), Some(ann.id));
    assert_eq!(session_user(&store, "token-1", expires_at).await, None, "a session ends at its expiry");
    assert_eq!(session_user(&store, "token-1", expires_at + SECOND).await, None);
    assert_eq!(session_user(&store, "no-such-token", T0).await, None);

    store.create_session("token-2", &ann, T0, expires_at).await.unwrap();
    store.delete_session("token-2").await.unwrap();
    assert_eq!(session_user(&store, "token-2", T0).await, None, "logout ends the session");
    assert!(session_user(&store, "token-1", T0).await.is_some(), "other sessions stay");
}

async fn disabling_a_user_ends_their_sessions(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let ann = brand.agent("ann@acme.test").await;
    let bo = brand.agent("bo@acme.test").await;
    let expires_at = T0 + 3600 * SECOND;
    store.create_session("ann-token", &ann, T0, expires_at).await.unwrap();
    store.create_session("bo-token", &bo, T0, expires_at).await.unwrap();

    let disabled =
        store.update_user("acme", ann.id, &UserPatch { disabled: Some(true), ..Default::default() }).await.unwrap();
    assert!(disabled.disabled);
    assert_eq!(session_user(&store, "ann-token", T0 + SECOND).await, None, "a disabled user's session is refused");
    assert!(session_user(&store, "bo-token", T0 + SECOND).await.is_some());

    // A session created while disabled is refused too.
    store.create_session("ann-token-2", &disabled, T0 + SECOND, expires_at).await.unwrap();
    assert_eq!(session_user(&store, "ann-token-2", T0 + 2 * SECOND).await, None);

    // Enabling again does not bring the old sessions back; a new login works.
    store.update_user("acme", ann.id, &UserPatch { disabled: Some(false), ..Default::default() }).await.unwrap();
    assert_eq!(session_user(&store, "ann-token", T0 + 3 * SECOND).await, None);
    store.create_session("ann-token-3", &ann, T0 + 3 * SECOND, expires_at).await.unwrap();
    assert_eq!(session_user(&store, "ann-token-3", T0 + 4 * SECOND).await.map(|u| u.id), Some(ann.id));
}

async fn user_emails_are_case_insensitive_and_unique(store: Store) {
    let acme = Brand::create(&store, "acme").await;
    Brand::create(&store, "other").await;
    let ann = acme.agent("Ann.Lee@Example.COM").await;
    assert_eq!(ann.email, "ann.lee@example.com", "emails are stored lowercased");
    assert_eq!(store.user_by_email("ANN.LEE@example.com").await.unwrap().map(|u| u.id), Some(ann.id));
    assert_eq!(store.user_by_email("ann.lee@example.com").await.unwrap().map(|u| u.id), Some(ann.id));
    assert_eq!(store.user_by_email("nobody@example.com").await.unwrap(), None);

    let new_user = |brand: &str, email: &str| NewUser {
        brand_id: brand.to_owned(),
        email: email.to_owned(),
        name: "Impostor".to_owned(),
        role: Role::Admin,
        password_hash: "x".to_owned(),
        max_concurrent: 1,
        skills: Vec::new(),
    };
    for (brand, email) in
        [("acme", "ann.lee@example.com"), ("acme", "ANN.LEE@EXAMPLE.COM"), ("other", "Ann.Lee@example.com")]
    {
        let result = store.create_user(&new_user(brand, email), T0).await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{brand} {email}: {result:?}");
    }
    assert_eq!(store.users("acme").await.unwrap().len(), 1);
    assert!(store.users("other").await.unwrap().is_empty());
    let login = store.user_by_email("ann.lee@example.com").await.unwrap().unwrap();
    assert_eq!((login.brand_id.as_str(), login.name.as_str(), login.role), ("acme", "Ann.Lee", Role::Agent));
}

async fn users_keep_their_skills(store: Store) {
    Brand::create(&store, "acme").await;
    let billing = store.create_skill("acme", "billing", T0).await.unwrap();
    let sales = store.create_skill("acme", "sales", T0).await.unwrap();
    assert!(matches!(store.create_skill("acme", "billing", T0).await, Err(StoreError::Conflict(_))));

    let new_user = |email: &str, skills: Vec<i64>| NewUser {
        brand_id: "acme".to_owned(),
        email: email.to_owned(),
        name: "Ann".to_owned(),
        role: Role::Agent,
        password_hash: "x".to_owned(),
        max_concurrent: 4,
        skills,
    };
    let ann = store.create_user(&new_user("ann@acme.test", vec![sales.id, billing.id]), T0).await.unwrap();
    let mut both = vec![billing.id, sales.id];
    both.sort_unstable();
    assert_eq!(ann.skills, both);
    assert_eq!(ann.max_concurrent, 4);
    assert_eq!(ann.state, AgentState::Offline, "new users start offline");

    // An unknown skill refuses the whole user: nothing is half-created.
    let error = store.create_user(&new_user("bo@acme.test", vec![billing.id, 999_999]), T0).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound), "{error:?}");
    assert_eq!(store.user_by_email("bo@acme.test").await.unwrap(), None);
    store.create_user(&new_user("bo@acme.test", vec![]), T0).await.expect("the email is still free");

    let patch = UserPatch { skills: Some(vec![sales.id]), max_concurrent: Some(7), ..Default::default() };
    let changed = store.update_user("acme", ann.id, &patch).await.unwrap();
    assert_eq!((changed.skills.clone(), changed.max_concurrent), (vec![sales.id], 7));
    let listed = store.users("acme").await.unwrap();
    assert_eq!(listed.iter().find(|u| u.id == ann.id), Some(&changed), "the list shows the same skills");

    // Deleting a skill takes it from users.
    store.delete_skill("acme", sales.id).await.unwrap();
    assert!(store.user("acme", ann.id).await.unwrap().unwrap().skills.is_empty());
    assert!(matches!(store.delete_skill("acme", sales.id).await, Err(StoreError::NotFound)));

    store.set_user_state("acme", ann.id, AgentState::Online).await.unwrap();
    assert_eq!(store.user("acme", ann.id).await.unwrap().unwrap().state, AgentState::Online);
}

async fn brand_and_app_settings_round_trip(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let row = store.brand("acme").await.unwrap().unwrap();
    assert_eq!((row.name.as_str(), row.csat_enabled, row.retention_days), ("Brand acme", true, DEFAULT_RETENTION_DAYS));
    assert!(matches!(
        store.create_brand(&NewBrand { id: "acme".to_owned(), name: "again".to_owned() }, T0).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.brand_ids().await.unwrap(), ["acme"]);

    let patch = BrandPatch { csat_enabled: Some(false), retention_days: Some(30), ..Default::default() };
    let changed = store.update_brand("acme", &patch).await.unwrap();
    assert_eq!((changed.name.as_str(), changed.csat_enabled, changed.retention_days), ("Brand acme", false, 30));
    assert_eq!(store.brand("acme").await.unwrap(), Some(changed));
    assert!(matches!(store.update_brand("nope", &patch).await, Err(StoreError::NotFound)));
    assert_eq!(store.brand("nope").await.unwrap(), None);

    let skill = store.create_skill("acme", "billing", T0).await.unwrap();
    let patch = AppPatch {
        allow_anonymous: Some(true),
        jwt_issuer: Some(Some("https://id.acme.test".to_owned())),
        default_skill_id: Some(Some(skill.id)),
        ..Default::default()
    };
    let app = store.update_app("acme", &brand.app_id, &patch).await.unwrap();
    assert!(app.allow_anonymous && app.allow_jwt);
    assert_eq!((app.jwt_issuer.as_deref(), app.default_skill_id), (Some("https://id.acme.test"), Some(skill.id)));
    assert_eq!(store.app("acme", &brand.app_id).await.unwrap(), Some(app));

    let clear = AppPatch { jwt_issuer: Some(None), ..Default::default() };
    let app = store.update_app("acme", &brand.app_id, &clear).await.unwrap();
    assert_eq!(app.jwt_issuer, None, "Some(None) clears");
    assert!(app.allow_anonymous, "fields not in the patch keep their value");

    // Deleting the app's default skill makes the app route to no skill.
    store.delete_skill("acme", skill.id).await.unwrap();
    assert_eq!(store.app("acme", &brand.app_id).await.unwrap().unwrap().default_skill_id, None);
    assert!(matches!(store.update_app("acme", "nope", &clear).await, Err(StoreError::NotFound)));
}

async fn consumer_profile_is_updated_by_present_claims_only(store: Store) {
    Brand::create(&store, "acme").await;
    let claims = ConsumerClaims {
        name: Some("Alice".to_owned()),
        email: Some("a@x.test".to_owned()),
        phone: None,
        language: None,
    };
    let first = store.upsert_consumer("acme", "sub-1", &claims, T0).await.unwrap();
    let update = ConsumerClaims {
        name: None,
        email: Some("alice@x.test".to_owned()),
        phone: Some("+1".to_owned()),
        language: Some("de-AT".to_owned()),
    };
    let second = store.upsert_consumer("acme", "sub-1", &update, T0 + SECOND).await.unwrap();
    assert_eq!(second.id, first.id, "the same subject is the same consumer");
    assert_eq!(second.created_at, T0);
    assert_eq!(
        (second.name.as_deref(), second.email.as_deref(), second.phone.as_deref()),
        (Some("Alice"), Some("alice@x.test"), Some("+1"))
    );
    assert_eq!((first.language, second.language.as_deref()), (None, Some("de-AT")), "the token's locale");
    assert_eq!(store.consumer_by_external_id("acme", "sub-1").await.unwrap(), Some(second.clone()));
    assert_eq!(store.consumer("acme", first.id).await.unwrap(), Some(second));
}

async fn api_tokens_are_found_by_hash(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let admin = brand.user("root@acme.test", Role::Admin).await;
    let token = store.create_api_token("acme", "deploy", Role::Manager, "hash-1", admin.id, T0).await.unwrap();
    assert_eq!(store.api_token("hash-1").await.unwrap(), Some(token.clone()));
    assert_eq!(store.api_token("hash-2").await.unwrap(), None);
    let duplicate = store.create_api_token("acme", "other", Role::Agent, "hash-1", admin.id, T0).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");

    store.delete_api_token("acme", token.id).await.unwrap();
    assert_eq!(store.api_token("hash-1").await.unwrap(), None, "a revoked token no longer authenticates");
    assert!(store.api_tokens("acme").await.unwrap().is_empty());
}

/// The anonymous → authenticated upgrade moves conversations, message authorship, push
/// tokens and pending pushes, closes the anonymous open conversation when both have one, and
/// retires the anonymous identity; nothing of another consumer or brand moves.
async fn an_anonymous_consumer_merges_into_an_authenticated_one(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let other = Brand::create(&store, "other").await;
    let anonymous = brand.consumer("anon:hash-of-the-device-secret").await;
    let maria = brand.consumer("maria").await;
    let bystander = brand.consumer("bob").await;
    // Anonymous: a closed conversation and an open one, a push token. Maria: an open one.
    let first = brand.say(anonymous, "a1", "before login", T0).await.message.conversation_id;
    store.close_conversation("acme", first, switchboard_protocol::Side::Agent, false, T0 + SECOND).await.unwrap();
    let open_anonymous = brand.say(anonymous, "a2", "still anonymous", T0 + 2 * SECOND).await.message.conversation_id;
    brand.say(anonymous, "shared-cid", "same client id as Maria's", T0 + 3 * SECOND).await;
    store.register_push_token("acme", &brand.app_id, anonymous, "fcm", "device-token", T0).await.unwrap();
    let marias = brand.say(maria, "m1", "logged in", T0 + 4 * SECOND).await.message.conversation_id;
    brand.say(maria, "shared-cid", "Maria's own", T0 + 5 * SECOND).await;
    let bobs = brand.say(bystander, "b1", "unrelated", T0 + 6 * SECOND).await.message.conversation_id;

    // Not an anonymous consumer, itself, or another brand's: nothing happens.
    assert_eq!(store.merge_anonymous_consumer("acme", bystander, maria, T0).await.unwrap(), None);
    assert_eq!(store.merge_anonymous_consumer("acme", anonymous, anonymous, T0).await.unwrap(), None);
    assert_eq!(store.merge_anonymous_consumer("other", anonymous, maria, T0).await.unwrap(), None);

    let at = T0 + 10 * SECOND;
    let merge = store.merge_anonymous_consumer("acme", anonymous, maria, at).await.unwrap().expect("merged");
    assert_eq!(merge.conversations, 2);
    assert_eq!(merge.messages, 2, "the message whose client id Maria also used keeps its author");
    assert_eq!(merge.push_tokens, 1);
    assert_eq!(merge.closed, Some(open_anonymous));
    for id in [first, open_anonymous, marias] {
        assert_eq!(brand.conversation(id).await.consumer_id, maria, "conversation {id}");
    }
    let closed = brand.conversation(open_anonymous).await;
    assert_eq!((closed.status, closed.closed_at), (switchboard_protocol::ConversationStatus::Closed, Some(at)));
    assert_eq!(store.open_conversation("acme", maria).await.unwrap().map(|c| c.id), Some(marias));
    assert_eq!(brand.messages(first).await[0].author_id, Some(maria));
    assert_eq!(store.push_tokens("acme", maria).await.unwrap().len(), 1);
    assert!(store.consumer("acme", anonymous).await.unwrap().is_none(), "the anonymous identity is retired");
    assert_eq!(brand.conversation(bobs).await.consumer_id, bystander);
    // Maria writes again: into her open conversation; a message sent before the login and
    // resent after it (the device's outbox) is stored once.
    let again = brand.say(maria, "m2", "after login", at + SECOND).await;
    assert_eq!((again.message.conversation_id, again.duplicate), (marias, false));
    let resent = brand.say(maria, "a2", "still anonymous", at + SECOND).await;
    assert!(resent.duplicate);
    assert_eq!(store.open_conversation("other", maria).await.unwrap(), None);
    drop(other);
}
