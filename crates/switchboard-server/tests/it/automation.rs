//! Automation end to end: settings refuse unknown fields, templates are checked at save and
//! previewed, and a consumer sees the automatic messages of a conversation's life in order,
//! ending in an auto-close.

use serde_json::{Value, json};
use switchboard_store::BrandPatch;

use crate::harness::*;

#[tokio::test]
async fn settings_bodies_refuse_unknown_fields_by_name() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let (status, body) =
        call(&server, &admin, reqwest::Method::PATCH, "/api/v1/brand", json!({"auto_close_minutes": 1})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("auto_close_minutes"), "{body}");
    let path = format!("/api/v1/apps/{}", brand.app);
    let (status, body) = call(&server, &admin, reqwest::Method::PATCH, &path, json!({"colour": "red"})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("colour"), "{body}");

    // The auto-close setting itself: limits named, the warning shorter than the close.
    for (bad, says) in [
        (json!({"auto_close_secs": 30}), "60 (1 minute) to 7776000 (90 days)"),
        (json!({"auto_close_secs": 7_776_001}), "90 days"),
        (json!({"auto_close_secs": 600, "auto_close_warn_secs": 600}), "less than auto_close_secs"),
        (json!({"default_language": "??"}), "language tag"),
    ] {
        let (status, body) = call(&server, &admin, reqwest::Method::PATCH, "/api/v1/brand", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{bad}: {body}");
    }
    let good = json!({"auto_close_secs": 3600, "auto_close_warn_secs": 300, "auto_close_survey": true, "default_language": "de-AT"});
    let (status, body) = call(&server, &admin, reqwest::Method::PATCH, "/api/v1/brand", good).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["auto_close_secs"], &body["auto_close_warn_secs"], &body["default_language"]),
        (&json!(3600), &json!(300), &json!("de"))
    );
}

#[tokio::test]
async fn templates_are_checked_at_save_previewed_and_kept_per_brand() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let other = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let agent = server.login(&brand.agent_email).await;
    let put = |token: &str, body: Value| {
        let (server, token) = (&server, token.to_owned());
        async move { call(server, &token, reqwest::Method::PUT, "/api/v1/automatic-messages", body).await }
    };
    let (status, body) = put(&admin, json!({"trigger": "welcome", "text": "Hi {first_name}"})).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("{first_name}"), "{body}");
    let (status, body) = put(&admin, json!({"trigger": "hello", "text": "Hi"})).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("welcome, queued"), "{body}");
    let (status, body) = put(&admin, json!({"trigger": "welcome", "text": "x".repeat(2001)})).await;
    assert_eq!(status, 400);
    assert_eq!(body["message"], "`text` is 2001 characters; the limit is 2000", "{body}");
    let (status, _) = put(&agent, json!({"trigger": "welcome", "text": "Hi"})).await;
    assert_eq!(status, 403, "admins configure automatic messages");

    let (status, saved) =
        put(&admin, json!({"trigger": "queued", "text": "Wait: {wait_time}.", "language": "en-GB"})).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!((&saved["language"], &saved["enabled"]), (&json!("en"), &json!(true)));
    let (_, listed) = call(&server, &admin, reqwest::Method::GET, "/api/v1/automatic-messages", Value::Null).await;
    assert_eq!(listed["messages"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["triggers"].as_array().unwrap().len(), 9);
    let other_admin = server.login(&other.admin_email).await;
    let (_, theirs) =
        call(&server, &other_admin, reqwest::Method::GET, "/api/v1/automatic-messages", Value::Null).await;
    assert!(theirs["messages"].as_array().unwrap().is_empty(), "another brand sees none");

    let (status, preview) = call(
        &server,
        &admin,
        reqwest::Method::POST,
        "/api/v1/automatic-messages/preview",
        json!({"text": "Hallo {consumer_name}, Wartezeit {wait_time}", "language": "de"}),
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["text"], "Hallo Carol Jones, Wartezeit etwa 4 Minuten");

    let path = format!("/api/v1/automatic-messages/{}", saved["id"]);
    let (status, _) = call(&server, &other_admin, reqwest::Method::DELETE, &path, Value::Null).await;
    assert_eq!(status, 404, "tenancy");
    let (status, _) = call(&server, &admin, reqwest::Method::DELETE, &path, Value::Null).await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn a_consumer_sees_welcome_wait_assigned_warning_and_auto_closed_in_order() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    for (trigger, text) in [
        ("welcome", "Welcome to {brand_name}, {consumer_name}."),
        ("queued", "Your wait: {wait_time}."),
        ("assigned", "{agent_name} is here."),
        ("inactive_warning", "Still there?"),
        ("auto_closed", "Closed for now. Write any time."),
    ] {
        let body = json!({"trigger": trigger, "text": text});
        let (status, saved) = call(&server, &admin, reqwest::Method::PUT, "/api/v1/automatic-messages", body).await;
        assert_eq!(status, 200, "{saved}");
    }
    // Seconds instead of the API's minimum minute, written to the store as a test may.
    let patch =
        BrandPatch { auto_close_secs: Some(Some(2)), auto_close_warn_secs: Some(Some(1)), ..BrandPatch::default() };
    let stored = server.store.update_brand(&brand.id, &patch).await.unwrap();
    server.running.as_ref().unwrap().state.engines.settings_changed(&stored);

    let mut consumer = server.consumer(&brand, "uma").await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Hello?"})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let mut agent = server.online_agent(&brand.agent_email).await;
    agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    agent.send(json!({"t": "send", "id": 2, "c": c, "cid": "a1", "text": "How can I help?"})).await;
    agent.expect(|f| f["t"] == "ack" && f["id"] == 2).await;

    let mut seen = Vec::new();
    loop {
        let frame = consumer.expect(|f| f["t"] == "msg" || (f["t"] == "conv" && f["ev"] == "closed")).await;
        if frame["t"] == "conv" {
            seen.push("(closed)".to_owned());
            continue;
        }
        let from = frame["from"].as_str().unwrap();
        seen.push(format!("{from}: {}", frame["text"].as_str().unwrap()));
        if frame["text"] == "Closed for now. Write any time." {
            break;
        }
    }
    let name = "Customer uma";
    assert_eq!(
        seen,
        [
            format!("s: Welcome to {}, {name}.", brand.id),
            // Nobody online yet: no estimate, said neutrally.
            "s: Your wait: shortly.".to_owned(),
            format!("s: Agent of {} is here.", brand.id),
            "a: How can I help?".to_owned(),
            "s: Still there?".to_owned(),
            "(closed)".to_owned(),
            "s: Closed for now. Write any time.".to_owned(),
        ]
    );
    let row = server.store.conversation(&brand.id, c).await.unwrap().unwrap();
    assert!(row.auto_closed);
    let kinds: Vec<String> =
        server.store.conversation_events(&brand.id, c).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds.last().map(String::as_str), Some("auto_closed"));
    // Reports count it apart, and the CSV says who closed it.
    let now = now_secs() * 1000;
    let query = format!("from={}&to={}", now - 3_600_000, now + 60_000);
    let (_, report) =
        call(&server, &admin, reqwest::Method::GET, &format!("/api/v1/reports?{query}"), Value::Null).await;
    assert_eq!((&report["closed"], &report["auto_closed"]), (&json!(1), &json!(1)), "{report}");
    let (_, dashboard) = call(&server, &admin, reqwest::Method::GET, "/api/v1/dashboard", Value::Null).await;
    assert_eq!(dashboard["totals"]["auto_closed_today"], 1, "{dashboard}");
    let csv = reqwest::Client::new()
        .get(format!("{}/api/v1/reports/conversations.csv?{query}", server.http))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.lines().nth(1).unwrap().contains(",auto,"), "{csv}");
    // Each automatic message is stored once, with its key.
    let messages = server.store.messages_after(&brand.id, c, 0, 100).await.unwrap();
    let keys: Vec<&str> =
        messages.iter().filter_map(|m| m.client_id.as_deref()).filter(|k| k.starts_with("auto:")).collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
}

#[tokio::test]
async fn business_hours_are_validated_and_say_what_would_happen_now() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let skill = server.store.create_skill(&brand.id, "billing", now_secs() * 1000).await.unwrap();
    let put = reqwest::Method::PUT;
    for (bad, says) in [
        (json!({"hours": {"time_zone": "Europe/Berln"}}), "Europe/Berln"),
        (
            json!({"hours": {"time_zone": "UTC", "weekly": [{"day": "funday", "start": "09:00", "end": "17:00"}]}}),
            "funday",
        ),
        (
            json!({"hours": {"time_zone": "UTC", "weekly": [{"day": "monday", "start": "09:00", "end": "25:00"}]}}),
            "25:00",
        ),
        (json!({"hours": null, "off_hours": "later"}), "\"queue\" or \"close\""),
        (json!({"hours": null, "colour": 1}), "colour"),
    ] {
        let (status, body) = call(&server, &admin, put.clone(), "/api/v1/brand/hours", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{bad}: {body}");
    }
    let all_week: Vec<Value> = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
        .iter()
        .map(|day| json!({"day": day, "start": "00:00", "end": "24:00"}))
        .collect();
    let hours = json!({"time_zone": "Europe/Berlin", "weekly": all_week});
    let (status, body) = call(&server, &admin, put.clone(), "/api/v1/brand/hours", json!({"hours": hours})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["status"]["open"], &body["off_hours"]), (&json!(true), &json!("queue")));
    assert!(body["status"]["local_time"].as_str().unwrap().contains("CET"), "{body}");
    let path = format!("/api/v1/skills/{}/hours", skill.id);
    let (_, follows) = call(&server, &admin, reqwest::Method::GET, &path, Value::Null).await;
    assert_eq!((&follows["follows"], &follows["hours"]), (&json!("brand"), &Value::Null), "{follows}");
    let closed = json!({"hours": {"time_zone": "UTC"}});
    let (status, own) = call(&server, &admin, put, &path, closed).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(
        (&own["follows"], &own["status"]["open"], &own["status"]["until"]),
        (&json!("skill"), &json!(false), &Value::Null)
    );
    let (_, now) = call(&server, &admin, reqwest::Method::GET, "/api/v1/hours/status", Value::Null).await;
    assert_eq!(now.as_array().unwrap().len(), 1, "{now}");
    assert_eq!(now[0]["name"], "billing");
}

#[tokio::test]
async fn a_conversation_opened_after_hours_waits_for_the_opening_or_is_closed() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let (status, saved) = call(
        &server,
        &admin,
        reqwest::Method::PUT,
        "/api/v1/automatic-messages",
        json!({"trigger": "off_hours", "text": "We are closed; we answer when we open."}),
    )
    .await;
    assert_eq!(status, 200, "{saved}");
    // Hours that never open (no shifts): closed now.
    let never = json!({"hours": {"time_zone": "UTC"}});
    let (status, _) = call(&server, &admin, reqwest::Method::PUT, "/api/v1/brand/hours", never.clone()).await;
    assert_eq!(status, 200);
    let mut agent = server.online_agent(&brand.agent_email).await;

    let mut consumer = server.consumer(&brand, "vic").await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Anyone?"})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let notice = consumer.expect(|f| f["t"] == "msg" && f["from"] == "s").await;
    assert_eq!(notice["text"], "We are closed; we answer when we open.");
    consumer.expect(|f| f["t"] == "conv" && f["ev"] == "queued").await;
    agent.expect_none(std::time::Duration::from_millis(300), |f| f["t"] == "conv" && f["ev"] == "assigned").await;
    assert_eq!(
        server.store.conversation(&brand.id, c).await.unwrap().unwrap().agent_id,
        None,
        "not served while closed"
    );

    // The hours open (here: the brand drops them): the waiting conversation is served.
    let (status, _) = call(&server, &admin, reqwest::Method::PUT, "/api/v1/brand/hours", json!({"hours": null})).await;
    assert_eq!(status, 200);
    agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    let kinds: Vec<String> =
        server.store.conversation_events(&brand.id, c).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["opened", "off_hours", "assigned"]);
    let (_, dashboard) = call(&server, &admin, reqwest::Method::GET, "/api/v1/dashboard", Value::Null).await;
    assert_eq!(dashboard["totals"]["off_hours_today"], 1, "{dashboard}");

    // With "close", a conversation opened after hours is told and closed.
    let close = json!({"hours": {"time_zone": "UTC"}, "off_hours": "close"});
    let (status, _) = call(&server, &admin, reqwest::Method::PUT, "/api/v1/brand/hours", close).await;
    assert_eq!(status, 200);
    let mut late = server.consumer(&brand, "wes").await;
    late.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Hello at night"})).await;
    let d = late.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    late.expect(|f| f["t"] == "msg" && f["from"] == "s").await;
    late.expect(|f| f["t"] == "conv" && f["ev"] == "closed" && f["c"] == d).await;
    let row = server.store.conversation(&brand.id, d).await.unwrap().unwrap();
    assert_eq!((row.status.as_str(), row.closed_by), ("closed", Some(switchboard_protocol::Side::System)));
}

#[tokio::test]
async fn automatic_messages_come_in_the_consumers_language_from_the_token_or_the_device() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    for (language, text) in [("en", "Welcome!"), ("de", "Willkommen!")] {
        let body = json!({"trigger": "welcome", "language": language, "text": text});
        let (status, saved) = call(&server, &admin, reqwest::Method::PUT, "/api/v1/automatic-messages", body).await;
        assert_eq!(status, 200, "{saved}");
    }
    let welcome_of = |hello_lang: Option<&'static str>, locale: Option<&'static str>, sub: &'static str| {
        let server = &server;
        let brand = &brand;
        async move {
            let mut claims = claims(brand, sub, 600);
            if let Some(locale) = locale {
                claims["locale"] = json!(locale);
            }
            let mut hello =
                json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "token": rs256_token(&claims)});
            if let Some(lang) = hello_lang {
                hello["lang"] = json!(lang);
            }
            let mut consumer = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
            let welcome = consumer.hello(hello).await;
            assert_eq!(welcome["t"], "welcome", "{welcome}");
            consumer.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "hi"})).await;
            consumer.expect(|f| f["t"] == "msg" && f["from"] == "s").await["text"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(welcome_of(None, Some("de-AT"), "xia").await, "Willkommen!", "the token's locale");
    assert_eq!(welcome_of(Some("de"), None, "yan").await, "Willkommen!", "the device's language");
    assert_eq!(welcome_of(Some("fr-CA"), Some("de"), "zed").await, "Welcome!", "no French: the brand's default");
    let mut bad = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    let refused = bad
        .hello(json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app,
            "token": rs256_token(&claims(&brand, "abe", 600)), "lang": "not a language"}))
        .await;
    assert_eq!(refused["code"], "bad_request", "{refused}");
}

/// Found by schemathesis: deleting a skill that had its own automatic message failed with a
/// server error (the message still named it). The skill's messages go with it; the
/// brand-wide ones stay, and the audit log shows the deletion (its detail is `null`).
#[tokio::test]
async fn a_skill_with_its_own_automatic_messages_can_be_deleted() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let (status, skill) =
        call(&server, &admin, reqwest::Method::POST, "/api/v1/skills", json!({"name": "Billing"})).await;
    assert_eq!(status, 201, "{skill}");
    let skill_id = skill["id"].as_i64().unwrap();
    for body in [
        json!({"trigger": "welcome", "text": "Billing here", "skill_id": skill_id}),
        json!({"trigger": "welcome", "text": "Hello"}),
    ] {
        let (status, saved) = call(&server, &admin, reqwest::Method::PUT, "/api/v1/automatic-messages", body).await;
        assert_eq!(status, 200, "{saved}");
    }
    let path = format!("/api/v1/skills/{skill_id}");
    let (status, body) = call(&server, &admin, reqwest::Method::DELETE, &path, Value::Null).await;
    assert_eq!(status, 204, "{body}");
    let (_, listed) = call(&server, &admin, reqwest::Method::GET, "/api/v1/automatic-messages", Value::Null).await;
    let texts: Vec<&str> = listed["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["Hello"], "{listed}");
    let (status, audit) = call(&server, &admin, reqwest::Method::GET, "/api/v1/audit", Value::Null).await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["entries"][0]["action"], "skill.delete", "{audit}");
    assert_eq!(audit["entries"][0]["detail"], Value::Null, "{audit}");
}
