//! The admin REST surface: brands (operator), apps and keys, settings that change behaviour.

use serde_json::{Value, json};
use switchboard_server::ServerConfig;

use crate::harness::*;

const OPERATOR: &str = "operator-token-for-tests-0123456789";

#[tokio::test]
async fn the_operator_creates_brands_and_nobody_else_can() {
    let server =
        TestServer::start_with(ServerConfig { operator_token: Some(OPERATOR.into()), ..ServerConfig::default() }).await;
    let http = reqwest::Client::new();
    let body = json!({"id": "acme", "name": "Acme", "admin_email": "root@acme.test", "admin_name": "Root", "admin_password": PASSWORD});
    let anonymous = http.post(format!("{}/api/v1/brands", server.http)).json(&body).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = http
        .post(format!("{}/api/v1/brands", server.http))
        .bearer_auth("not-the-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let created =
        http.post(format!("{}/api/v1/brands", server.http)).bearer_auth(OPERATOR).json(&body).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["brand"]["id"], "acme");
    assert_eq!(created["admin"]["role"], "admin");
    let again =
        http.post(format!("{}/api/v1/brands", server.http)).bearer_auth(OPERATOR).json(&body).send().await.unwrap();
    assert_eq!(again.status(), 409);
    let bad_id = json!({"id": "Has Spaces", "name": "X", "admin_email": "x@x.test", "admin_name": "X", "admin_password": PASSWORD});
    let refused =
        http.post(format!("{}/api/v1/brands", server.http)).bearer_auth(OPERATOR).json(&bad_id).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.json::<Value>().await.unwrap()["message"].as_str().unwrap().contains("a-z, 0-9"));
    // The new admin can log in and sees their brand.
    let admin = server.login("root@acme.test").await;
    let brand: Value = http
        .get(format!("{}/api/v1/brand", server.http))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(brand["name"], "Acme");
    assert_eq!(brand["retention_days"], 396);
}

#[tokio::test]
async fn apps_take_valid_keys_only_and_new_keys_work_at_once() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let http = reqwest::Client::new();
    let app: Value = http
        .post(format!("{}/api/v1/apps", server.http))
        .bearer_auth(&admin)
        .json(&json!({"id": "web-shop", "name": "Web shop", "channel": "web", "jwt_issuer": "brand-backend"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(app["id"], "web-shop");
    assert_eq!(app["allow_anonymous"], false);
    let bad_channel = http
        .post(format!("{}/api/v1/apps", server.http))
        .bearer_auth(&admin)
        .json(&json!({"name": "Fax", "channel": "fax"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_channel.status(), 400);
    let bad_key = http
        .post(format!("{}/api/v1/apps/web-shop/keys", server.http))
        .bearer_auth(&admin)
        .json(&json!({"format": "pem", "material": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), 400);
    assert_eq!(bad_key.json::<Value>().await.unwrap()["code"], "invalid_key");

    // No key yet: tokens are refused; after adding the RSA key, the same token works.
    let mut claims = claims(&brand, "web-user", 60);
    claims["aud"] = json!("web-shop");
    let token = rs256_token(&claims);
    let hello = json!({"t": "hello", "v": 1, "brand": brand.id, "app": "web-shop", "token": token});
    let mut before = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    assert_eq!(before.hello(hello.clone()).await["code"], "token_invalid");
    let added = http
        .post(format!("{}/api/v1/apps/web-shop/keys", server.http))
        .bearer_auth(&admin)
        .json(&json!({"format": "pem", "material": RSA_PUBLIC}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201);
    let mut after = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    assert_eq!(after.hello(hello).await["t"], "welcome");

    // Anonymous consumers are opt-in per app.
    let mut anonymous = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    let refused =
        anonymous.hello(json!({"t": "hello", "v": 1, "brand": brand.id, "app": "web-shop", "anon": ""})).await;
    assert_eq!(refused["code"], "auth_mode_disabled");
}

#[tokio::test]
async fn with_csat_off_resolving_sends_no_survey() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let settings: Value = reqwest::Client::new()
        .patch(format!("{}/api/v1/brand", server.http))
        .bearer_auth(&admin)
        .json(&json!({"csat_enabled": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["csat_enabled"], false);
    let mut agent = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "no-survey").await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "n1", "text": "hello"})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    agent.expect(|f| f["t"] == "msg").await;
    agent.send(json!({"t": "close", "id": 2, "c": c})).await;
    consumer.expect(|f| f["t"] == "conv" && f["ev"] == "closed").await;
    consumer.expect_none(std::time::Duration::from_millis(300), |f| f["t"] == "survey").await;
    consumer.send(json!({"t": "csat", "id": 3, "c": c, "score": 5})).await;
    assert_eq!(consumer.expect(|f| f["t"] == "err").await["code"], "survey_not_available");
}

#[tokio::test]
async fn history_hides_conversations_older_than_the_retention() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    reqwest::Client::new()
        .patch(format!("{}/api/v1/brand", server.http))
        .bearer_auth(&admin)
        .json(&json!({"retention_days": 30}))
        .send()
        .await
        .unwrap();
    let mut consumer = server.consumer(&brand, "old-timer").await;
    let consumer_id = server.store.consumer_by_external_id(&brand.id, "old-timer").await.unwrap().unwrap().id;
    // A conversation from 40 days ago, closed, then a recent one.
    let day = 24 * 3600 * 1000;
    let now = now_secs() * 1000;
    let append = |cid: &str| {
        switchboard_store::Append::Consumer(switchboard_store::ConsumerAppend {
            brand_id: brand.id.clone(),
            consumer_id,
            app_id: brand.app.clone(),
            channel: "in_app".into(),
            skill_id: None,
            priority: 0,
            client_id: cid.into(),
            text: "hello".into(),
        })
    };
    let old = server.store.append(append("old"), now - 40 * day).await.unwrap();
    server
        .store
        .close_conversation(
            &brand.id,
            old.message.conversation_id,
            switchboard_protocol::Side::Consumer,
            false,
            now - 40 * day,
        )
        .await
        .unwrap();
    let recent = server.store.append(append("recent"), now - day).await.unwrap();
    consumer.send(json!({"t": "history", "id": 1})).await;
    let history = consumer.expect(|f| f["t"] == "history").await;
    let ids: Vec<i64> = history["convs"].as_array().unwrap().iter().map(|c| c["c"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![recent.message.conversation_id]);
    consumer.send(json!({"t": "history", "id": 2, "from": now - 60 * day})).await;
    let asked_older = consumer.expect(|f| f["t"] == "history" && f["id"] == 2).await;
    assert_eq!(
        asked_older["convs"].as_array().unwrap().len(),
        1,
        "an earlier `from` does not reach past the retention"
    );
}

/// Found by schemathesis: without an operator token configured, a request with no
/// credentials got 403 where every other operation answers 401. It gets 401 now; one with
/// credentials is told that no operator token is configured.
#[tokio::test]
async fn without_an_operator_token_brands_cannot_be_created() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let body = json!({"id": "acme", "name": "Acme", "admin_email": "root@acme.test", "admin_name": "Root", "admin_password": PASSWORD});
    let anonymous = http.post(format!("{}/api/v1/brands", server.http)).json(&body).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let guessed =
        http.post(format!("{}/api/v1/brands", server.http)).bearer_auth(OPERATOR).json(&body).send().await.unwrap();
    assert_eq!(guessed.status(), 403);
    let error: Value = guessed.json().await.unwrap();
    assert!(error["message"].as_str().unwrap().contains("SWITCHBOARD_OPERATOR_TOKEN"), "{error}");
}
