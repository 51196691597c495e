//! Push notifications on the device, end to end: the server sends an FCM push (to a fake FCM
//! on loopback) for an answer to a consumer whose app is closed; the app reads the payload
//! with `parse_push_payload`, and when it opens, `open_push` brings the conversation up to
//! the announced message, even one the connection's own catch-up does not fetch (a closed
//! conversation). `unregister_push_token` removes the device at the server, at once or at the
//! next connection.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use serde_json::{Value, json};
use switchboard_sdk::{Event, MessageState, PushPayload, PushProvider, parse_push_payload};
use switchboard_server::ServerConfig;
use switchboard_server::push::PushConfig;
use switchboard_store::FcmSettings;

use crate::harness::*;

const RSA_PRIVATE: &str = include_str!("../../../switchboard-server/tests/it/keys/rsa-private.pem");

/// A fake FCM over cleartext HTTP on loopback: issues any access token, records each push.
async fn fake_fcm() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    async fn handle(State(received): State<Arc<Mutex<Vec<Value>>>>, uri: Uri, body: Bytes) -> axum::Json<Value> {
        if uri.path() == "/token" {
            return axum::Json(json!({"access_token": "ya29.fake", "expires_in": 3600, "token_type": "Bearer"}));
        }
        received.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
        axum::Json(json!({"name": "projects/demo/messages/1"}))
    }
    let router = Router::new().fallback(handle).with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

async fn push_server() -> (TestServer, Arc<Mutex<Vec<Value>>>) {
    let (url, received) = fake_fcm().await;
    let push = PushConfig {
        fcm_url: url.clone(),
        fcm_token_url: format!("{url}/token"),
        coalesce: Duration::from_millis(100),
        poll: Duration::from_millis(20),
        ..PushConfig::default()
    };
    let server = TestServer::start_with(ServerConfig { push, ..ServerConfig::default() }).await;
    let account = json!({"type": "service_account", "project_id": "demo-push", "private_key": RSA_PRIVATE,
        "client_email": "push@demo-push.iam.gserviceaccount.com"});
    let settings = FcmSettings { project_id: "demo-push".into(), service_account_json: account.to_string() };
    store(&server)
        .set_fcm_settings(switchboard_server::seed::DEMO_BRAND, switchboard_server::seed::DEMO_APP, Some(&settings), 0)
        .await
        .unwrap();
    (server, received)
}

fn store(server: &TestServer) -> &switchboard_store::Store {
    &server.running.as_ref().unwrap().state.store
}

/// Waits until `check` holds (panics after the harness's wait).
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn devices(server: &TestServer, sub: &str) -> Vec<String> {
    let brand = switchboard_server::seed::DEMO_BRAND;
    let Some(consumer) = store(server).consumer_by_external_id(brand, sub).await.unwrap() else { return Vec::new() };
    store(server).push_targets(brand, consumer.id).await.unwrap().into_iter().map(|t| t.token).collect()
}

async fn connected(server: &TestServer, sub: &str) -> bool {
    let brand = switchboard_server::seed::DEMO_BRAND;
    let consumer = store(server).consumer_by_external_id(brand, sub).await.unwrap().unwrap();
    let topic = switchboard_bus::Topic::Consumer { brand: brand.into(), consumer: consumer.id };
    server.running.as_ref().unwrap().state.bus.has_subscribers(&topic)
}

#[tokio::test]
async fn the_app_reads_the_push_and_opens_the_conversation_at_its_message() {
    let (server, received) = push_server().await;
    let mut agent = Agent::online(&server).await;
    let dir = temp_dir("sdk-push");
    let tokens = dev_tokens(&server.data_dir, "pat");
    let client = sdk(&server.url(), Arc::clone(&tokens), &dir);
    let mut events = Events::of(&client);
    client.connect();
    client.register_push_token(PushProvider::Fcm, "fcm-device-pat").unwrap();
    client.send_text("Is my order shipped?").unwrap();
    let sent =
        expect_event(&mut events, |e| matches!(e, Event::MessageStateChanged { state: MessageState::Sent, .. })).await;
    let Event::MessageStateChanged { conversation: Some(c), .. } = sent else { panic!("{sent:?}") };
    agent.expect(|f| f["t"] == "msg" && f["c"] == c).await;
    until("the device is registered", async || devices(&server, "pat").await == ["fcm-device-pat"]).await;

    // The app goes away; the agent answers, then resolves the conversation.
    client.shutdown().await;
    drop(client);
    until("the app is gone", async || !connected(&server, "pat").await).await;
    let ack = agent.reply(c, "Yes, it ships today.").await;
    let seq = ack["seq"].as_i64().unwrap();
    until("the push is sent", async || !received.lock().unwrap().is_empty()).await;
    agent.send(json!({"t": "close", "id": 7, "c": c})).await;
    agent.expect(|f| f["t"] == "ok" && f["id"] == 7).await;

    // What the Android app gets in onMessageReceived: the data map.
    let push = received.lock().unwrap()[0].clone();
    assert_eq!(push["message"]["token"], "fcm-device-pat");
    assert_eq!(push["message"]["notification"]["body"], "Yes, it ships today.");
    let data = push["message"]["data"].to_string();
    let payload = parse_push_payload(&data).unwrap();
    assert_eq!(payload, PushPayload { conversation: c, seq, badge: Some(1) });

    // The user taps it: the app starts, and opens the conversation at that message. The
    // conversation is closed, so only open_push fetches it.
    let client = sdk(&server.url(), tokens, &dir);
    assert!(client.messages(c).unwrap().iter().all(|m| m.seq != Some(seq)), "not here before");
    client.connect();
    let messages = client.open_push(&payload).await.unwrap();
    let shown = messages.iter().find(|m| m.seq == Some(seq)).expect("the announced message is there");
    assert_eq!(shown.text, "Yes, it ships today.");
    // Logging out: the device is unregistered at once.
    client.unregister_push_token().unwrap();
    until("the device is unregistered", async || devices(&server, "pat").await.is_empty()).await;
    client.shutdown().await;
}

#[tokio::test]
async fn a_logout_offline_unregisters_the_device_at_the_next_connection() {
    let (server, _received) = push_server().await;
    let dir = temp_dir("sdk-push-off");
    let tokens = dev_tokens(&server.data_dir, "quinn");
    let client = sdk(&server.url(), Arc::clone(&tokens), &dir);
    let mut events = Events::of(&client);
    client.connect();
    client.register_push_token(PushProvider::Apns, "0a1b2c3d").unwrap();
    expect_event(&mut events, |e| *e == Event::Connection(switchboard_sdk::ConnectionState::Connected)).await;
    until("the device is registered", async || devices(&server, "quinn").await == ["0a1b2c3d"]).await;
    client.shutdown().await;
    drop(client);

    // Logged out while offline: remembered, sent when the app next connects.
    let client = sdk(&server.url(), Arc::clone(&tokens), &dir);
    client.unregister_push_token().unwrap();
    assert_eq!(devices(&server, "quinn").await, ["0a1b2c3d"], "nothing sent offline");
    client.connect();
    until("the device is unregistered", async || devices(&server, "quinn").await.is_empty()).await;

    // Registering again works, and a removal is not repeated at the next connection.
    client.register_push_token(PushProvider::Apns, "0a1b2c3d").unwrap();
    until("registered again", async || devices(&server, "quinn").await == ["0a1b2c3d"]).await;
    client.shutdown().await;
    drop(client);
    let client = sdk(&server.url(), tokens, &dir);
    let mut events = Events::of(&client);
    client.connect();
    expect_event(&mut events, |e| *e == Event::Connection(switchboard_sdk::ConnectionState::Connected)).await;
    until("still registered", async || devices(&server, "quinn").await == ["0a1b2c3d"]).await;
    client.shutdown().await;
}
