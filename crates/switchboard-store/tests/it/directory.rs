//! Brands, apps, users, sessions and API tokens: what login and the admin API rely on.

use switchboard_protocol::AgentState;
use switchboard_store::{
    AppPatch, BrandPatch, ConsumerClaims, DEFAULT_RETENTION_DAYS, NewApiToken, NewBrand, NewUser, Role, Store,
    StoreError, TokenCreator, User, UserPatch,
};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [
        sessions_end_at_expiry_and_on_logout,
        disabling_a_user_ends_their_sessions,
        user_emails_are_case_insensitive_and_unique_per_brand,
        a_new_password_ends_sessions_but_the_users_own_change_keeps_theirs,
        users_keep_their_skills,
        brand_and_app_settings_round_trip,
        consumer_profile_is_updated_by_present_claims_only,
        api_tokens_are_found_by_hash,
        an_anonymous_consumer_merges_into_an_authenticated_one,
        api_tokens_expire_and_record_their_last_use,
        a_token_is_read_with_its_creators_standing,
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

async fn user_emails_are_case_insensitive_and_unique_per_brand(store: Store) {
    let acme = Brand::create(&store, "acme").await;
    Brand::create(&store, "other").await;
    let ann = acme.agent("Ann.Lee@Example.COM").await;
    assert_eq!(ann.email, "ann.lee@example.com", "emails are stored lowercased");
    assert_eq!(store.user_by_email("acme", "ANN.LEE@example.com").await.unwrap().map(|u| u.id), Some(ann.id));
    assert_eq!(store.user_by_email("acme", "ann.lee@example.com").await.unwrap().map(|u| u.id), Some(ann.id));
    assert_eq!(store.user_by_email("acme", "nobody@example.com").await.unwrap(), None);
    assert_eq!(store.user_by_email("other", "ann.lee@example.com").await.unwrap(), None, "scoped to the brand");

    let new_user = |brand: &str, email: &str| NewUser {
        brand_id: brand.to_owned(),
        email: email.to_owned(),
        name: "Ann at other".to_owned(),
        role: Role::Admin,
        password_hash: "x".to_owned(),
        max_concurrent: 1,
        skills: Vec::new(),
    };
    for email in ["ann.lee@example.com", "ANN.LEE@EXAMPLE.COM"] {
        let result = store.create_user(&new_user("acme", email), T0).await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "acme {email}: {result:?}");
    }
    // Issue 15: the same person may work for another brand; that brand learns nothing of the
    // first (its create succeeds as for any new address).
    let other_ann = store.create_user(&new_user("other", "Ann.Lee@example.com"), T0).await.unwrap();
    assert_eq!(store.users("acme").await.unwrap().len(), 1);
    assert_eq!(store.users("other").await.unwrap().len(), 1);
    assert_eq!(store.user_by_email("other", "ann.lee@example.com").await.unwrap().map(|u| u.id), Some(other_ann.id));
    let logins = store.logins_by_email("ANN.LEE@example.com", 10).await.unwrap();
    let found: Vec<(&str, i64)> = logins.iter().map(|u| (u.brand_id.as_str(), u.id)).collect();
    assert_eq!(found, [("acme", ann.id), ("other", other_ann.id)]);
    assert_eq!(store.logins_by_email("ann.lee@example.com", 1).await.unwrap().len(), 1, "bounded");
    assert!(store.logins_by_email("nobody@example.com", 10).await.unwrap().is_empty());
}

async fn a_new_password_ends_sessions_but_the_users_own_change_keeps_theirs(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let ann = brand.agent("ann@acme.test").await;
    let bo = brand.agent("bo@acme.test").await;
    let expires_at = T0 + 3600 * SECOND;
    for (hash, user) in [("ann-1", &ann), ("ann-2", &ann), ("bo-1", &bo)] {
        store.create_session(hash, user, T0, expires_at).await.unwrap();
    }
    // An admin's reset ends all of the user's sessions, and only theirs.
    let reset = UserPatch { password_hash: Some("new-hash".to_owned()), ..Default::default() };
    store.update_user("acme", ann.id, &reset).await.unwrap();
    assert_eq!(session_user(&store, "ann-1", T0).await, None);
    assert_eq!(session_user(&store, "ann-2", T0).await, None);
    assert!(session_user(&store, "bo-1", T0).await.is_some());
    // The user's own change keeps the session they changed it from.
    store.create_session("ann-3", &ann, T0, expires_at).await.unwrap();
    store.create_session("ann-4", &ann, T0, expires_at).await.unwrap();
    store.change_password("acme", ann.id, "newer-hash", Some("ann-3")).await.unwrap();
    assert!(session_user(&store, "ann-3", T0).await.is_some(), "the session that changed it stays");
    assert_eq!(session_user(&store, "ann-4", T0).await, None);
    assert_eq!(store.user("acme", ann.id).await.unwrap().unwrap().password_hash, "newer-hash");
    // Another brand cannot change it.
    Brand::create(&store, "other").await;
    assert!(matches!(store.change_password("other", ann.id, "x", None).await, Err(StoreError::NotFound)));
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
    assert_eq!(store.user_by_email("acme", "bo@acme.test").await.unwrap(), None);
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
    let new = |name: &'static str, role, hash: &'static str| NewApiToken {
        brand_id: "acme",
        name,
        role,
        token_hash: hash,
        created_by: admin.id,
        expires_at: None,
    };
    let token = store.create_api_token(&new("deploy", Role::Manager, "hash-1"), T0).await.unwrap();
    assert_eq!(store.api_token("hash-1").await.unwrap(), Some(token.clone()));
    assert_eq!(store.api_token("hash-2").await.unwrap(), None);
    let duplicate = store.create_api_token(&new("other", Role::Agent, "hash-1"), T0).await;
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

async fn api_tokens_expire_and_record_their_last_use(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let admin = brand.user("root@acme.test", Role::Admin).await;
    let new = NewApiToken {
        brand_id: "acme",
        name: "nightly export",
        role: Role::Manager,
        token_hash: "hash-x",
        created_by: admin.id,
        expires_at: Some(T0 + 3600 * SECOND),
    };
    let token = store.create_api_token(&new, T0).await.unwrap();
    assert_eq!((token.expires_at, token.last_used_at), (Some(T0 + 3600 * SECOND), None));
    store.touch_api_token("acme", token.id, T0 + SECOND).await.unwrap();
    assert_eq!(store.api_token("hash-x").await.unwrap().unwrap().last_used_at, Some(T0 + SECOND));
    // At most one write a minute.
    store.touch_api_token("acme", token.id, T0 + 30 * SECOND).await.unwrap();
    assert_eq!(store.api_token("hash-x").await.unwrap().unwrap().last_used_at, Some(T0 + SECOND));
    store.touch_api_token("acme", token.id, T0 + 62 * SECOND).await.unwrap();
    assert_eq!(store.api_token("hash-x").await.unwrap().unwrap().last_used_at, Some(T0 + 62 * SECOND));
    // Another brand's touch changes nothing.
    store.touch_api_token("other", token.id, T0 + 200 * SECOND).await.unwrap();
    let listed = store.api_tokens("acme").await.unwrap();
    assert_eq!((listed[0].expires_at, listed[0].last_used_at), (Some(T0 + 3600 * SECOND), Some(T0 + 62 * SECOND)));
}

/// Authenticating a token reads its creator's current role and standing with it: a demoted,
/// disabled or missing creator is seen at once.
async fn a_token_is_read_with_its_creators_standing(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let admin = brand.user("root@acme.test", Role::Admin).await;
    let new = |name: &'static str, hash: &'static str, created_by: i64| NewApiToken {
        brand_id: "acme",
        name,
        role: Role::Admin,
        token_hash: hash,
        created_by,
        expires_at: Some(T0 + 3600 * SECOND),
    };
    let token = store.create_api_token(&new("provisioning", "hash-p", admin.id), T0).await.unwrap();
    let grant = store.api_token_grant("hash-p").await.unwrap().unwrap();
    assert_eq!(grant.token, token);
    assert_eq!(grant.creator, Some(TokenCreator { role: Role::Admin, disabled: false }));
    assert_eq!(store.api_token_grant("hash-none").await.unwrap(), None);

    let demote = UserPatch { role: Some(Role::Agent), ..Default::default() };
    store.update_user("acme", admin.id, &demote).await.unwrap();
    let grant = store.api_token_grant("hash-p").await.unwrap().unwrap();
    assert_eq!(grant.creator, Some(TokenCreator { role: Role::Agent, disabled: false }));
    let disable = UserPatch { disabled: Some(true), ..Default::default() };
    store.update_user("acme", admin.id, &disable).await.unwrap();
    let grant = store.api_token_grant("hash-p").await.unwrap().unwrap();
    assert_eq!(grant.creator, Some(TokenCreator { role: Role::Agent, disabled: true }));

    // A creator who is not a user of the token's brand (another brand's id) is no creator.
    let other = Brand::create(&store, "other").await;
    let stranger = other.user("root@other.test", Role::Admin).await;
    store.create_api_token(&new("orphan", "hash-o", stranger.id), T0).await.unwrap();
    assert_eq!(store.api_token_grant("hash-o").await.unwrap().unwrap().creator, None);

    store.touch_api_token("acme", token.id, T0 + SECOND).await.unwrap();
    assert_eq!(store.api_token_grant("hash-p").await.unwrap().unwrap().token.last_used_at, Some(T0 + SECOND));
    store.delete_api_token("acme", token.id).await.unwrap();
    assert_eq!(store.api_token_grant("hash-p").await.unwrap(), None, "a revoked token is gone");
}
