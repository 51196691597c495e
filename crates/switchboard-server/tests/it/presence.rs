//! Presence is real: an agent is online only while connected; a dropped agent keeps their
//! conversations for the brand's grace period, then they go to someone who is there; after
//! a restart nobody is assigned to an agent who is not connected; queued consumers hear of
//! a significant change of their estimated wait. Real sockets, real time (grace 1 s).

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_server::ServerConfig;
use switchboard_store::Role;

use crate::harness::*;

fn config() -> ServerConfig {
    ServerConfig { wait_refresh: Duration::from_millis(200), ..ServerConfig::default() }
}

async fn patch_brand(server: &TestServer, brand: &TestBrand, body: Value) -> (u16, Value) {
    let token = server.login(&brand.admin_email).await;
    let response = reqwest::Client::new()
        .patch(format!("{}/api/v1/brand", server.http))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// `GET path` as `token`, the body as JSON.
async fn get_json(server: &TestServer, token: &str, path: &str) -> Value {
    let response =
        reqwest::Client::new().get(format!("{}{path}", server.http)).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

/// The agent named `name` as the dashboard shows them.
async fn roster_agent(server: &TestServer, brand: &TestBrand, name: &str) -> Value {
    let body = get_json(server, &server.login(&brand.admin_email).await, "/api/v1/dashboard").await;
    body["agents"].as_array().unwrap().iter().find(|agent| agent["name"] == name).cloned().unwrap()
}

/// Polls `fetch` until `done` holds for its value (at most the harness's wait).
async fn until<T, F: std::future::Future<Output = T>>(mut fetch: impl FnMut() -> F, done: impl Fn(&T) -> bool) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = fetch().await;
        if done(&value) {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "the condition did not come true within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn open(consumer: &mut Client, text: &str) -> i64 {
    consumer.send(json!({"t": "send", "id": 1, "cid": text, "text": text})).await;
    consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap()
}

#[tokio::test]
async fn a_dropped_agent_keeps_conversations_for_the_grace_then_they_go_to_someone_there() {
    let server = TestServer::start_with(config()).await;
    let brand = server.brand().await;
    // Long enough for a reconnection on a loaded machine, short enough for a test.
    let (status, body) = patch_brand(&server, &brand, json!({"agent_grace_secs": 3})).await;
    assert_eq!((status, body["agent_grace_secs"].as_i64()), (200, Some(3)), "{body}");
    let (status, body) = patch_brand(&server, &brand, json!({"agent_grace_secs": 3601})).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("0 to 3600"), "{body}");

    let bob_email = format!("bob@{}.test", brand.id);
    server.user(&brand, &bob_email, "Bob Builder", Role::Agent, 2, vec![]).await;
    let alice_name = format!("Agent of {}", brand.id);
    let mut alice = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "fay").await;
    let c = open(&mut consumer, "Hello?").await;
    alice.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    consumer.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;

    // Alice's browser closes and comes back within the grace: she keeps the conversation.
    drop(alice);
    let shown = until(|| roster_agent(&server, &brand, &alice_name), |shown| shown["connected"] == false).await;
    assert_eq!((shown["state"].as_str(), shown["chosen_state"].as_str()), (Some("offline"), Some("online")));
    assert_eq!((shown["connected"].as_bool(), shown["load"].as_i64()), (Some(false), Some(1)));
    assert!(shown["grace_until"].as_i64().is_some(), "{shown}");
    let mut alice = server.online_agent(&brand.agent_email).await;
    let shown = roster_agent(&server, &brand, &alice_name).await;
    assert_eq!((shown["connected"].as_bool(), shown["grace_until"].as_i64()), (Some(true), None));
    consumer.expect_none(Duration::from_millis(3500), |f| f["t"] == "conv").await;

    // She leaves for good while Bob is there: after the grace it is Bob's, the consumer is
    // told (a notice and the new agent), and nobody gives it to an agent who is not there.
    let mut bob = server.online_agent(&bob_email).await;
    alice.send(json!({"t": "ping", "id": 9})).await;
    alice.expect(|f| f["t"] == "pong").await;
    drop(alice);
    let assigned = bob.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    assert_eq!(assigned["conv"]["c"], c);
    let notice = consumer.expect(|f| f["t"] == "msg" && f["from"] == "s").await;
    assert_eq!(notice["text"], format!("Returned to the queue: {alice_name} is unavailable"));
    let told = consumer.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;
    assert_eq!(told["agent"], "Bob Builder");
    let events: Vec<String> =
        server.store.conversation_events(&brand.id, c).await.unwrap().into_iter().map(|event| event.kind).collect();
    assert_eq!(events, ["opened", "assigned", "queued", "assigned"]);
}

#[tokio::test]
async fn choosing_offline_hands_conversations_back_and_away_keeps_them() {
    let server = TestServer::start_with(config()).await;
    let brand = server.brand().await;
    patch_brand(&server, &brand, json!({"agent_grace_secs": 1})).await;
    let mut alice = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "gus").await;
    let c = open(&mut consumer, "Hi").await;
    alice.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;

    alice.send(json!({"t": "state", "id": 2, "state": "away"})).await;
    alice.expect(|f| f["t"] == "ok" && f["id"] == 2).await;
    alice.expect_none(Duration::from_millis(1500), |f| f["t"] == "conv").await;

    alice.send(json!({"t": "state", "id": 3, "state": "offline"})).await;
    alice.expect(|f| f["t"] == "ok" && f["id"] == 3).await;
    let left = alice.expect(|f| f["t"] == "conv" && f["ev"] == "transferred" && f["c"] == c).await;
    assert_eq!(left.get("agent"), None);
    let queued = consumer.expect(|f| f["t"] == "conv" && f["ev"] == "queued").await;
    assert_eq!(queued.get("eta"), None, "nobody is online to estimate from");
}

#[tokio::test]
async fn after_a_restart_nobody_is_assigned_to_an_agent_who_is_not_connected() {
    let mut server = TestServer::start_with(config()).await;
    let brand = server.brand().await;
    patch_brand(&server, &brand, json!({"agent_grace_secs": 1})).await;
    let mut alice = server.online_agent(&brand.agent_email).await;
    let mut ida = server.consumer(&brand, "ida").await;
    let held = open(&mut ida, "Before the restart").await;
    alice.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == held).await;
    drop((alice, ida));

    server.restart(config()).await;
    // Alice chose online before the restart, but has no socket now: a new consumer waits.
    let mut jon = server.consumer(&brand, "jon").await;
    let new = open(&mut jon, "After the restart").await;
    let queued = jon.expect(|f| f["t"] == "conv" && f["c"] == new).await;
    assert_eq!(queued["ev"], "queued", "{queued}");
    // Alice's conversation from before keeps its agent through the grace from the boot,
    // then returns to the queue; when she connects she gets the new one.
    let store = server.store.clone();
    let brand_id = brand.id.clone();
    let fetch = || {
        let (store, brand_id) = (store.clone(), brand_id.clone());
        async move { store.conversation(&brand_id, held).await.unwrap().unwrap() }
    };
    until(fetch, |before| before.agent_id.is_none()).await;
    let mut alice = server.online_agent(&brand.agent_email).await;
    alice.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == held).await;
    alice.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == new).await;
}

#[tokio::test]
async fn a_queued_consumer_hears_when_the_estimated_wait_changes_significantly() {
    let server = TestServer::start_with(config()).await;
    let brand = server.brand().await;
    let bob_email = format!("bob@{}.test", brand.id);
    server.user(&brand, &bob_email, "Bob Builder", Role::Agent, 1, vec![]).await;
    // One seat (Alice at capacity 1), 5 minutes per conversation until one closes.
    let token = server.login(&brand.admin_email).await;
    let users: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/users", server.http))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice_id = users.as_array().unwrap().iter().find(|u| u["email"] == brand.agent_email.as_str()).unwrap()["id"]
        .as_i64()
        .unwrap();
    let response = reqwest::Client::new()
        .patch(format!("{}/api/v1/users/{alice_id}", server.http))
        .bearer_auth(&token)
        .json(&json!({"max_concurrent": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut alice = server.online_agent(&brand.agent_email).await;
    let mut first = server.consumer(&brand, "kim").await;
    let c1 = open(&mut first, "one").await;
    alice.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c1).await;
    let mut second = server.consumer(&brand, "lee").await;
    let c2 = open(&mut second, "two").await;
    assert_eq!(second.expect(|f| f["t"] == "conv" && f["c"] == c2).await["eta"], 300);
    let mut third = server.consumer(&brand, "max").await;
    let c3 = open(&mut third, "three").await;
    assert_eq!(third.expect(|f| f["t"] == "conv" && f["c"] == c3).await["eta"], 600);

    // Bob comes online: he takes the second; the third is now next for two seats and is told
    // at the next refresh (150 s instead of the 600 it was told).
    let _bob = server.online_agent(&bob_email).await;
    second.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;
    let update = third.expect(|f| f["t"] == "conv" && f["ev"] == "queued").await;
    assert_eq!(update["eta"], 150, "{update}");
    // Nothing changes: nothing more is said.
    third.expect_none(Duration::from_millis(600), |f| f["t"] == "conv").await;
}

#[tokio::test]
async fn a_skill_in_offer_mode_rings_one_agent_who_accepts_or_declines() {
    let server = TestServer::start_with(config()).await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let http = reqwest::Client::new();
    let billing = server.store.create_skill(&brand.id, "billing", now_secs() * 1000).await.unwrap();
    let patch = |body: Value| {
        http.patch(format!("{}/api/v1/skills/{}", server.http, billing.id)).bearer_auth(&admin).json(&body).send()
    };
    let response = patch(json!({"routing": "offer", "offer_timeout_secs": 2})).await.unwrap();
    assert_eq!(response.status(), 400, "2 s is under the 5 s floor");
    let response = patch(json!({"routing": "ring"})).await.unwrap();
    assert_eq!(response.status(), 400, "unknown mode");
    let skill: Value =
        patch(json!({"routing": "offer", "offer_timeout_secs": 30})).await.unwrap().json().await.unwrap();
    assert_eq!((skill["routing"].as_str(), skill["offer_timeout_secs"].as_i64()), (Some("offer"), Some(30)));
    let patch_app = switchboard_store::AppPatch {
        name: None,
        allow_jwt: None,
        allow_anonymous: None,
        jwt_issuer: None,
        jwt_audience: None,
        default_skill_id: Some(Some(billing.id)),
        default_priority: None,
    };
    server.store.update_app(&brand.id, &brand.app, &patch_app).await.unwrap();
    let alice_email = format!("alice@{}.test", brand.id);
    let bob_email = format!("bob@{}.test", brand.id);
    server.user(&brand, &alice_email, "Alice Able", Role::Agent, 2, vec![billing.id]).await;
    server.user(&brand, &bob_email, "Bob Builder", Role::Agent, 2, vec![billing.id]).await;
    let mut alice = server.online_agent(&alice_email).await;
    let mut bob = server.online_agent(&bob_email).await;

    // Alice (idle longest) is rung; the consumer is told it is about to be answered.
    let mut consumer = server.consumer(&brand, "nia").await;
    let c = open(&mut consumer, "Question about my bill").await;
    let offer = alice.expect(|f| f["t"] == "conv" && f["ev"] == "offered" && f["c"] == c).await;
    assert!(offer["until"].as_i64().unwrap() > now_secs() * 1000 + 20_000, "{offer}");
    assert_eq!(offer["conv"]["skill"], "billing");
    assert_eq!(consumer.expect(|f| f["t"] == "conv" && f["ev"] == "queued").await["eta"], 0);
    assert_eq!(
        server.store.conversation(&brand.id, c).await.unwrap().unwrap().agent_id,
        None,
        "an offer is not an assignment"
    );

    // Alice passes: Bob is rung. Alice cannot take it back afterwards.
    alice.send(json!({"t": "decline", "id": 5, "c": c})).await;
    alice.expect(|f| f["t"] == "ok" && f["id"] == 5).await;
    alice.expect(|f| f["t"] == "conv" && f["ev"] == "withdrawn" && f["c"] == c).await;
    bob.expect(|f| f["t"] == "conv" && f["ev"] == "offered" && f["c"] == c).await;
    alice.send(json!({"t": "accept", "id": 6, "c": c})).await;
    let late = alice.expect(|f| f["t"] == "err" && f["id"] == 6).await;
    assert_eq!(late["code"], "offer_gone");

    // Bob accepts: it is his, stored, and the consumer hears who.
    bob.send(json!({"t": "accept", "id": 7, "c": c})).await;
    bob.expect(|f| f["t"] == "ok" && f["id"] == 7).await;
    bob.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    assert_eq!(consumer.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await["agent"], "Bob Builder");
    let bob_id = server.store.user_by_email(&brand.id, &bob_email).await.unwrap().unwrap().id;
    assert_eq!(server.store.conversation(&brand.id, c).await.unwrap().unwrap().agent_id, Some(bob_id));
    let kinds: Vec<String> =
        server.store.conversation_events(&brand.id, c).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["opened", "offer_declined", "assigned"]);
    let shown = roster_agent(&server, &brand, "Alice Able").await;
    assert_eq!(shown["offers_declined_today"], 1, "{shown}");
}

#[tokio::test]
async fn a_manager_raises_a_waiting_conversation_and_the_queue_serves_it_first() {
    let server = TestServer::start_with(config()).await;
    let brand = server.brand().await;
    let http = reqwest::Client::new();
    let admin = server.login(&brand.admin_email).await;
    let alice_email = format!("alice@{}.test", brand.id);
    server.user(&brand, &alice_email, "Alice Able", Role::Agent, 1, vec![]).await;
    let mut alice = server.online_agent(&alice_email).await;
    let mut first = server.consumer(&brand, "oda").await;
    let c1 = open(&mut first, "one").await;
    alice.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c1).await;
    let mut second = server.consumer(&brand, "pia").await;
    let c2 = open(&mut second, "two").await;
    let mut third = server.consumer(&brand, "quin").await;
    let c3 = open(&mut third, "three").await;
    third.expect(|f| f["t"] == "conv" && f["ev"] == "queued").await;

    let queue = get_json(&server, &admin, "/api/v1/queue").await;
    let order: Vec<i64> =
        queue["waiting"].as_array().unwrap().iter().map(|w| w["conversation_id"].as_i64().unwrap()).collect();
    assert_eq!((order, queue["total"].as_i64()), (vec![c2, c3], Some(2)), "{queue}");
    assert_eq!(queue["waiting"][0]["consumer"]["name"], "Customer pia");

    // Agents may not reorder the queue; bad values are named.
    let agent_token = server.login(&alice_email).await;
    let url = format!("{}/api/v1/conversations/{c3}/priority", server.http);
    let refused = http.post(&url).bearer_auth(&agent_token).json(&json!({"priority": "urgent"})).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let bad = http.post(&url).bearer_auth(&admin).json(&json!({"priority": "asap"})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let raised = http.post(&url).bearer_auth(&admin).json(&json!({"priority": "urgent"})).send().await.unwrap();
    assert_eq!(raised.status(), 200);
    let body: Value = raised.json().await.unwrap();
    assert_eq!(body["priority"], 2, "{body}");
    let queue = get_json(&server, &admin, "/api/v1/queue").await;
    assert_eq!(queue["waiting"][0]["conversation_id"], c3, "{queue}");
    assert_eq!(queue["waiting"][0]["priority"], "urgent");

    // Alice resolves her conversation: the urgent one is next, though it came later.
    alice.send(json!({"t": "close", "id": 4, "c": c1})).await;
    alice.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c3).await;
    assert_eq!(server.store.conversation(&brand.id, c2).await.unwrap().unwrap().agent_id, None);
}

#[tokio::test]
async fn an_apps_priority_puts_its_conversations_ahead_in_the_queue() {
    let server = TestServer::start_with(config()).await;
    let brand = server.brand().await;
    let http = reqwest::Client::new();
    let admin = server.login(&brand.admin_email).await;
    // A second entry point whose conversations are urgent (e.g. the app's "card lost" screen).
    let created = http
        .post(format!("{}/api/v1/apps", server.http))
        .bearer_auth(&admin)
        .json(&json!({"id": format!("{}-vip", brand.id), "name": "VIP", "channel": "in_app",
            "jwt_issuer": "brand-backend", "default_priority": "urgent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let app: Value = created.json().await.unwrap();
    assert_eq!(app["default_priority"], "urgent", "{app}");
    let bad = http
        .patch(format!("{}/api/v1/apps/{}", server.http, brand.app))
        .bearer_auth(&admin)
        .json(&json!({"default_priority": "asap"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let vip_app = app["id"].as_str().unwrap();
    server.store.add_app_key(&brand.id, vip_app, "pem", RSA_PUBLIC, now_secs() * 1000).await.unwrap();

    let mut regular = server.consumer(&brand, "sal").await;
    let c1 = open(&mut regular, "ordinary question").await;
    let token = rs256_token(&json!({"sub": "tia", "iss": "brand-backend", "aud": app["id"], "exp": now_secs() + 600}));
    let mut vip = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    let welcome = vip.hello(json!({"t": "hello", "v": 1, "brand": brand.id, "app": app["id"], "token": token})).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    let c2 = open(&mut vip, "my card is gone").await;
    let queue = get_json(&server, &admin, "/api/v1/queue").await;
    let order: Vec<(i64, String)> = queue["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["conversation_id"].as_i64().unwrap(), w["priority"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(order, [(c2, "urgent".to_owned()), (c1, "normal".to_owned())], "the later, urgent one first");
}

#[tokio::test]
async fn the_brand_default_skill_routes_conversations_whose_app_names_none() {
    let server = TestServer::start_with(config()).await;
    let brand = server.brand().await;
    let general = server.store.create_skill(&brand.id, "general", now_secs() * 1000).await.unwrap();
    let (status, body) = patch_brand(&server, &brand, json!({"default_skill_id": 999_999})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("999999"), "{body}");
    let (status, body) = patch_brand(&server, &brand, json!({"default_skill_id": general.id})).await;
    assert_eq!((status, body["default_skill_id"].as_i64()), (200, Some(general.id)), "{body}");
    let mut consumer = server.consumer(&brand, "rae").await;
    let c = open(&mut consumer, "Hello").await;
    assert_eq!(server.store.conversation(&brand.id, c).await.unwrap().unwrap().skill_id, Some(general.id));
    let (status, body) = patch_brand(&server, &brand, json!({"default_skill_id": null})).await;
    assert_eq!((status, body["default_skill_id"].as_i64()), (200, None), "{body}");
    let (_, body) = patch_brand(&server, &brand, json!({"name": "Renamed"})).await;
    assert_eq!(body["default_skill_id"], Value::Null, "an absent field keeps the value");
}

#[tokio::test]
async fn a_device_asks_for_an_entry_skill_the_app_allows_and_nothing_else() {
    let server = TestServer::start_with(config()).await;
    let brand = server.brand().await;
    let now = now_secs() * 1000;
    let sales = server.store.create_skill(&brand.id, "sales", now).await.unwrap();
    let secret = server.store.create_skill(&brand.id, "internal", now).await.unwrap();
    let admin = server.login(&brand.admin_email).await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/v1/apps/{}", server.http, brand.app);
    let bad = http.patch(&url).bearer_auth(&admin).json(&json!({"entry_skill_ids": [999_999]})).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let app: Value = http
        .patch(&url)
        .bearer_auth(&admin)
        .json(&json!({"entry_skill_ids": [sales.id]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(app["entry_skill_ids"], json!([sales.id]), "{app}");

    let hello = |sub: &str, skill: i64| json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "token": rs256_token(&claims(&brand, sub, 3600)), "skill": skill});
    let mut refused = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    let answer = refused.hello(hello("sam", secret.id)).await;
    assert_eq!(answer["code"], "bad_request", "{answer}");
    assert!(
        answer["msg"].as_str().unwrap().contains(&format!("skill {} is not an entry point", secret.id)),
        "{answer}"
    );

    let mut consumer = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    assert_eq!(consumer.hello(hello("sam", sales.id)).await["t"], "welcome");
    let c = open(&mut consumer, "I want to buy").await;
    assert_eq!(server.store.conversation(&brand.id, c).await.unwrap().unwrap().skill_id, Some(sales.id));
}
