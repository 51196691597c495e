//! What automation reads and writes: keyed notices stored once, who-wrote-when stamps, the
//! auto-close that never overruns a consumer's answer, templates and brand settings.

use switchboard_store::{
    AgentTarget, Append, AutoCloseOutcome, BrandPatch, NewAutomaticMessage, Store, StoreError, SystemAppend,
};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [
        a_keyed_notice_is_stored_once_per_conversation,
        messages_stamp_who_wrote_last,
        auto_close_closes_only_an_unanswered_conversation,
        templates_are_one_per_trigger_skill_and_language_within_the_brand,
        brand_automation_settings_round_trip,
        business_hours_are_kept_per_brand_and_skill,
    ],
}

fn notice(conversation: i64, key: Option<&str>, text: &str) -> Append {
    Append::System(SystemAppend {
        brand_id: "acme".into(),
        conversation_id: conversation,
        text: text.into(),
        key: key.map(str::to_owned),
    })
}

async fn a_keyed_notice_is_stored_once_per_conversation(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let bob = brand.consumer("bob").await;
    let c = brand.say(alice, "c1", "hello", T0).await.message.conversation_id;
    let d = brand.say(bob, "b1", "hello", T0).await.message.conversation_id;

    let first = store.append(notice(c, Some("auto:welcome"), "Welcome!"), T0 + SECOND).await.unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.message.client_id.as_deref(), Some("auto:welcome"));
    let again = store.append(notice(c, Some("auto:welcome"), "Welcome (again)!"), T0 + 2 * SECOND).await.unwrap();
    assert!(again.duplicate, "the same key in the same conversation is the same message");
    assert_eq!(again.message, first.message);
    let elsewhere = store.append(notice(d, Some("auto:welcome"), "Welcome!"), T0 + SECOND).await.unwrap();
    assert!(!elsewhere.duplicate, "keys are per conversation");
    assert_eq!(brand.messages(c).await.len(), 2);
}

async fn messages_stamp_who_wrote_last(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let agent = brand.agent("ann@acme.test").await;
    let c = brand.say(alice, "c1", "hello", T0).await.message.conversation_id;
    assert!(store.assign("acme", c, agent.id, T0).await.unwrap());
    brand.reply(&agent, AgentTarget::Conversation(c), "r1", "hi", T0 + 5 * SECOND).await.unwrap();
    store.append(notice(c, None, "a notice"), T0 + 9 * SECOND).await.unwrap();
    let row = brand.conversation(c).await;
    assert_eq!((row.last_consumer_at, row.last_agent_at), (Some(T0), Some(T0 + 5 * SECOND)), "notices stamp nothing");
}

async fn auto_close_closes_only_an_unanswered_conversation(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let agent = brand.agent("ann@acme.test").await;
    let c = brand.say(alice, "c1", "hello", T0).await.message.conversation_id;
    assert!(store.assign("acme", c, agent.id, T0).await.unwrap());
    let since = T0 + 5 * SECOND;
    brand.reply(&agent, AgentTarget::Conversation(c), "r1", "anything else?", since).await.unwrap();
    // The consumer answered before the deadline: not closed, the stored times come back.
    brand.say(alice, "c2", "yes, one thing", T0 + 8 * SECOND).await;
    let outcome = store.auto_close_conversation("acme", c, since, false, T0 + 100 * SECOND).await.unwrap();
    assert_eq!(outcome, AutoCloseOutcome::Answered { agent_at: Some(since), consumer_at: Some(T0 + 8 * SECOND) });

    let since = T0 + 10 * SECOND;
    brand.reply(&agent, AgentTarget::Conversation(c), "r2", "here you go", since).await.unwrap();
    let AutoCloseOutcome::Closed(closed) =
        store.auto_close_conversation("acme", c, since, true, T0 + 200 * SECOND).await.unwrap()
    else {
        panic!("an unanswered conversation closes")
    };
    assert!(closed.auto_closed && closed.survey_open);
    assert_eq!(closed.closed_by, Some(switchboard_protocol::Side::System));
    let kinds: Vec<String> =
        store.conversation_events("acme", c).await.unwrap().into_iter().map(|event| event.kind).collect();
    assert_eq!(kinds.last().map(String::as_str), Some("auto_closed"));
    assert_eq!(
        store.auto_close_conversation("acme", c, since, true, T0 + 201 * SECOND).await.unwrap(),
        AutoCloseOutcome::NotOpen
    );
    // A queued conversation (no agent) is never auto-closed.
    let bob = brand.consumer("bob").await;
    let waiting = brand.say(bob, "b1", "hello", T0).await.message.conversation_id;
    let outcome = store.auto_close_conversation("acme", waiting, T0, false, T0 + 300 * SECOND).await.unwrap();
    assert!(matches!(outcome, AutoCloseOutcome::Answered { .. }), "{outcome:?}");
}

async fn templates_are_one_per_trigger_skill_and_language_within_the_brand(store: Store) {
    let acme = Brand::create(&store, "acme").await;
    Brand::create(&store, "globex").await;
    let skill = store.create_skill("acme", "billing", T0).await.unwrap();
    let other = store.create_skill("globex", "sales", T0).await.unwrap();
    let new = |skill_id, language: &str, text: &str| NewAutomaticMessage {
        trigger: "welcome".into(),
        skill_id,
        language: language.into(),
        enabled: true,
        text: text.into(),
    };
    let brand_wide = store.put_automatic_message("acme", &new(None, "en", "Hi"), T0).await.unwrap();
    store.put_automatic_message("acme", &new(Some(skill.id), "en", "Hi billing"), T0).await.unwrap();
    let replaced = store.put_automatic_message("acme", &new(None, "en", "Hello"), T0 + SECOND).await.unwrap();
    assert_eq!(replaced.id, brand_wide.id, "the same trigger, skill and language is replaced");
    let listed = store.automatic_messages("acme").await.unwrap();
    assert_eq!(listed.iter().map(|t| t.text.as_str()).collect::<Vec<_>>(), ["Hello", "Hi billing"]);
    let error = store.put_automatic_message("acme", &new(Some(other.id), "en", "x"), T0).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound), "another brand's skill: {error:?}");
    assert!(store.automatic_messages("globex").await.unwrap().is_empty());
    assert!(!store.delete_automatic_message("globex", brand_wide.id).await.unwrap(), "tenancy");
    assert!(store.delete_automatic_message("acme", brand_wide.id).await.unwrap());
    assert_eq!(store.automatic_messages("acme").await.unwrap().len(), 1);
    drop(acme);
}

async fn brand_automation_settings_round_trip(store: Store) {
    Brand::create(&store, "acme").await;
    let brand = store.brand("acme").await.unwrap().unwrap();
    assert_eq!((brand.default_language.as_str(), brand.auto_close_secs, brand.auto_close_survey), ("en", None, false));
    let patch = BrandPatch {
        default_language: Some("de".into()),
        auto_close_secs: Some(Some(3600)),
        auto_close_warn_secs: Some(Some(600)),
        auto_close_survey: Some(true),
        ..BrandPatch::default()
    };
    let brand = store.update_brand("acme", &patch).await.unwrap();
    assert_eq!(
        (brand.default_language.as_str(), brand.auto_close_secs, brand.auto_close_warn_secs, brand.auto_close_survey),
        ("de", Some(3600), Some(600), true)
    );
    let off = BrandPatch { auto_close_secs: Some(None), ..BrandPatch::default() };
    let brand = store.update_brand("acme", &off).await.unwrap();
    assert_eq!((brand.auto_close_secs, brand.auto_close_warn_secs), (None, Some(600)), "only what was named changes");
}

async fn business_hours_are_kept_per_brand_and_skill(store: Store) {
    Brand::create(&store, "acme").await;
    Brand::create(&store, "globex").await;
    let skill = store.create_skill("acme", "billing", T0).await.unwrap();
    let theirs = store.create_skill("globex", "sales", T0).await.unwrap();
    let hours: switchboard_core::hours::BusinessHours = serde_json::from_value(serde_json::json!({
        "time_zone": "Europe/Berlin",
        "weekly": [{"day": "monday", "start": "09:00", "end": "17:00"}],
        "exceptions": [{"date": "2026-12-25", "name": "Christmas", "hours": []}],
    }))
    .unwrap();
    assert_eq!(store.business_hours("acme").await.unwrap().brand, None, "always open by default");
    store.set_brand_hours("acme", Some(&hours), "close").await.unwrap();
    store.set_skill_hours("acme", skill.id, Some(&hours)).await.unwrap();
    let stored = store.business_hours("acme").await.unwrap();
    assert_eq!((stored.brand.as_ref(), stored.off_hours.as_str()), (Some(&hours), "close"));
    assert_eq!(stored.skills, [(skill.id, hours.clone())]);
    let error = store.set_skill_hours("acme", theirs.id, Some(&hours)).await.unwrap_err();
    assert!(matches!(error, StoreError::NotFound), "another brand's skill: {error:?}");
    assert!(store.business_hours("globex").await.unwrap().skills.is_empty());
    store.set_skill_hours("acme", skill.id, None).await.unwrap();
    assert!(store.business_hours("acme").await.unwrap().skills.is_empty(), "cleared: follows the brand");
}
