//! API tokens are principals of their own (issue 15, item 4): a token does at most its role
//! and at most its creator's current role; a disabled creator, a revocation or an expiry ends
//! its REST access at once and its sockets within a heartbeat; on the agent socket it acts
//! under its own id and name, holds no conversations, and reads or writes only what its role
//! allows; its last use is shown.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_server::ServerConfig;
use switchboard_store::{NewApiToken, Role};

use crate::harness::*;

on_both_stores!(
    a_departed_admins_token_creates_no_admins,
    a_demoted_creator_caps_the_token,
    a_revoked_tokens_access_and_sockets_end,
    an_agent_role_token_cannot_touch_others_conversations,
    a_tokens_messages_carry_its_own_name,
    tokens_expire_and_show_their_last_use,
);

/// A server on `backend` whose sockets check their credential every second.
async fn server(backend: Backend) -> TestServer {
    TestServer::start_on(backend, ServerConfig { heartbeat_secs: 1, ..ServerConfig::default() }).await
}

/// Creates a token as `creator` (a session): the secret and the token's id.
async fn create_token(server: &TestServer, creator: &str, body: Value) -> (String, i64) {
    let (status, created) = call(server, creator, Method::POST, "/api/v1/tokens", body).await;
    assert_eq!(status, 201, "{created}");
    (created["token"].as_str().unwrap().to_owned(), created["info"]["id"].as_i64().unwrap())
}

/// An agent socket signed in with `credential` (a session or an API token): the welcome.
async fn agent_socket(server: &TestServer, credential: &str) -> (Client, Value) {
    let mut socket = Client::connect(&format!("{}/v1/agent", server.ws)).await;
    let welcome = socket.hello(json!({"t": "hello", "v": 1, "session": credential})).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    (socket, welcome)
}

/// Waits for the server to close `socket`, returning the `err` frame it sent first and the
/// close code.
async fn ended(socket: &mut Client) -> (Value, u16) {
    let error = socket.expect(|f| f["t"] == "err").await;
    let closed = socket.expect(|f| f["t"] == "closed").await;
    (error, closed["code"].as_u64().unwrap() as u16)
}

/// The token as the token list shows it.
async fn listed(server: &TestServer, admin: &str, token_id: i64) -> Value {
    let (status, tokens) = call(server, admin, Method::GET, "/api/v1/tokens", Value::Null).await;
    assert_eq!(status, 200, "{tokens}");
    tokens.as_array().unwrap().iter().find(|t| t["id"] == token_id).unwrap().clone()
}

/// The token's `last_used_at` in the token list.
async fn last_used_at(server: &TestServer, admin: &str, token_id: i64) -> Value {
    listed(server, admin, token_id).await["last_used_at"].clone()
}

/// The token's `status` and `acts_as` in the token list.
async fn standing(server: &TestServer, admin: &str, token_id: i64) -> (String, Value) {
    let token = listed(server, admin, token_id).await;
    (token["status"].as_str().unwrap().to_owned(), token["acts_as"].clone())
}

/// A consumer's conversation, assigned to the brand's agent (online on the returned socket).
async fn assigned_conversation(server: &TestServer, brand: &TestBrand, sub: &str) -> (Client, Client, i64) {
    let mut agent = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(brand, sub).await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Where is my parcel?"})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    (agent, consumer, c)
}

/// Issue 15: a departed admin's token could still create admins. Disabling the creator ends
/// the token's REST access at once and closes its socket.
async fn a_departed_admins_token_creates_no_admins(backend: Backend) {
    let server = server(backend).await;
    let brand = server.brand().await;
    let root = server.login(&brand.admin_email).await;
    let dana_email = format!("dana@{}.test", brand.id);
    let dana = server.user(&brand, &dana_email, "Dana", Role::Admin, 0, vec![]).await;
    let (token, token_id) =
        create_token(&server, &server.login(&dana_email).await, json!({"name": "provisioning"})).await;

    let new_admin = |email: &str| json!({"email": email, "name": "New Admin", "role": "admin", "password": "violet-harbor-lantern-87"});
    let (status, body) = call(&server, &token, Method::POST, "/api/v1/users", new_admin("one@x.test")).await;
    assert_eq!(status, 201, "while Dana is an admin, her token is one: {body}");
    let (mut socket, welcome) = agent_socket(&server, &token).await;
    assert_eq!(welcome["me"]["id"], -token_id, "the token is its own principal");
    assert_eq!(welcome["me"]["name"], "provisioning");

    let (status, _) =
        call(&server, &root, Method::PATCH, &format!("/api/v1/users/{dana}"), json!({"disabled": true})).await;
    assert_eq!(status, 200);
    let (status, body) = call(&server, &token, Method::POST, "/api/v1/users", new_admin("two@x.test")).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("provisioning") && message.contains("disabled"), "{message}");
    assert_eq!(call(&server, &token, Method::GET, "/api/v1/skills", Value::Null).await.0, 401);
    assert!(server.store.user_by_email(&brand.id, "two@x.test").await.unwrap().is_none());
    let (error, code) = ended(&mut socket).await;
    assert_eq!((error["code"].as_str(), code), (Some("unauthenticated"), 4003), "{error}");
    assert_eq!(standing(&server, &root, token_id).await, ("creator_disabled".to_owned(), Value::Null));

    // Enabled again, the token works again (it was never revoked).
    let (status, _) =
        call(&server, &root, Method::PATCH, &format!("/api/v1/users/{dana}"), json!({"disabled": false})).await;
    assert_eq!(status, 200);
    assert_eq!(call(&server, &token, Method::GET, "/api/v1/skills", Value::Null).await.0, 200);
    assert_eq!(standing(&server, &root, token_id).await, ("active".to_owned(), json!("admin")));
}

/// A token's power is at most its creator's current role: a demotion caps it at once on REST,
/// and closes a socket it opened with more.
async fn a_demoted_creator_caps_the_token(backend: Backend) {
    let server = server(backend).await;
    let brand = server.brand().await;
    let root = server.login(&brand.admin_email).await;
    let lee_email = format!("lee@{}.test", brand.id);
    let lee = server.user(&brand, &lee_email, "Lee", Role::Admin, 0, vec![]).await;
    let (token, token_id) = create_token(&server, &server.login(&lee_email).await, json!({"name": "ops"})).await;
    let (mut admin_socket, _) = agent_socket(&server, &token).await;

    let (status, _) =
        call(&server, &root, Method::PATCH, &format!("/api/v1/users/{lee}"), json!({"role": "manager"})).await;
    assert_eq!(status, 200);
    let (status, body) = call(
        &server,
        &token,
        Method::POST,
        "/api/v1/users",
        json!({"email": "x@x.test", "name": "X", "role": "admin", "password": "violet-harbor-lantern-87"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("acts as manager"), "{body}");
    assert_eq!(call(&server, &token, Method::GET, "/api/v1/queue", Value::Null).await.0, 200, "a manager's read");
    assert_eq!(standing(&server, &root, token_id).await, ("active".to_owned(), json!("manager")), "the list says so");
    let (error, code) = ended(&mut admin_socket).await;
    assert_eq!((error["code"].as_str(), code), (Some("forbidden"), 4003), "{error}");
    assert!(error["msg"].as_str().unwrap().contains("now acts as manager"), "{error}");

    // A socket opened at the capped role stays open until the next demotion.
    let (mut manager_socket, _) = agent_socket(&server, &token).await;
    manager_socket.send(json!({"t": "ping", "id": 9})).await;
    manager_socket.expect(|f| f["t"] == "pong").await;
    let (status, _) =
        call(&server, &root, Method::PATCH, &format!("/api/v1/users/{lee}"), json!({"role": "agent"})).await;
    assert_eq!(status, 200);
    assert_eq!(call(&server, &token, Method::GET, "/api/v1/queue", Value::Null).await.0, 403);
    let (_, code) = ended(&mut manager_socket).await;
    assert_eq!(code, 4003);
}

/// Issue 15: revoking a token left its open sockets working.
async fn a_revoked_tokens_access_and_sockets_end(backend: Backend) {
    let server = server(backend).await;
    let brand = server.brand().await;
    let root = server.login(&brand.admin_email).await;
    let (token, token_id) = create_token(&server, &root, json!({"name": "wallboard", "role": "manager"})).await;
    let (mut socket, _) = agent_socket(&server, &token).await;
    assert_eq!(call(&server, &token, Method::GET, "/api/v1/dashboard", Value::Null).await.0, 200);

    let (status, _) = call(&server, &root, Method::DELETE, &format!("/api/v1/tokens/{token_id}"), Value::Null).await;
    assert_eq!(status, 204);
    let (status, body) = call(&server, &token, Method::GET, "/api/v1/dashboard", Value::Null).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    let (error, code) = ended(&mut socket).await;
    assert_eq!((error["code"].as_str(), code), (Some("unauthenticated"), 4003), "{error}");
    let mut again = Client::connect(&format!("{}/v1/agent", server.ws)).await;
    let refused = again.hello(json!({"t": "hello", "v": 1, "session": token})).await;
    assert_eq!(refused["code"], "unauthenticated", "{refused}");
}

/// Issue 15: an agent-role token acted with its creator's powers on the socket and on
/// transfers. It is an agent of its own now: it holds no conversation (it is no seat on the
/// desk), so it reads and writes none of anyone else's.
async fn an_agent_role_token_cannot_touch_others_conversations(backend: Backend) {
    let server = server(backend).await;
    let brand = server.brand().await;
    let root = server.login(&brand.admin_email).await;
    let (agent, _consumer, c) = assigned_conversation(&server, &brand, "gus").await;
    let consumer_id = server.store.conversation(&brand.id, c).await.unwrap().unwrap().consumer_id;
    let (token, token_id) = create_token(&server, &root, json!({"name": "triage", "role": "agent"})).await;

    // REST: not found, not listed, not transferable.
    let (status, body) = call(&server, &token, Method::GET, &format!("/api/v1/conversations/{c}"), Value::Null).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("conversation_not_found")), "{body}");
    let (status, body) =
        call(&server, &token, Method::POST, &format!("/api/v1/conversations/{c}/transfer"), json!({})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("conversation_not_found")), "{body}");
    let (status, body) =
        call(&server, &token, Method::POST, &format!("/api/v1/conversations/{c}/close"), Value::Null).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("conversation_not_found")), "{body}");
    let (_, inbox) = call(&server, &token, Method::GET, "/api/v1/inbox", Value::Null).await;
    assert_eq!(inbox["items"], json!([]), "{inbox}");
    let (_, listed) = call(&server, &token, Method::GET, "/api/v1/conversations", Value::Null).await;
    assert_eq!(listed["conversations"], json!([]), "{listed}");
    let (status, body) = call(&server, &token, Method::GET, "/api/v1/me", Value::Null).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "a token is not a user account: {body}");

    // The socket: its own principal, nothing held, nothing of anyone else's.
    let (mut socket, welcome) = agent_socket(&server, &token).await;
    assert_eq!(welcome["me"], json!({"id": -token_id, "name": "triage"}), "no availability: {welcome}");
    assert_eq!(welcome.get("convs"), None, "it holds no conversation: {welcome}");
    socket.send(json!({"t": "sync", "id": 1, "c": c, "after": 0})).await;
    assert_eq!(socket.expect(|f| f["id"] == 1).await["code"], "conversation_not_found");
    socket.send(json!({"t": "send", "id": 2, "c": c, "cid": "t1", "text": "Hi, I am the admin"})).await;
    let refused = socket.expect(|f| f["id"] == 2).await;
    assert_eq!(refused["t"], "err", "{refused}");
    assert!(["not_assigned", "conversation_not_found"].contains(&refused["code"].as_str().unwrap()), "{refused}");
    socket.send(json!({"t": "close", "id": 3, "c": c})).await;
    assert_eq!(socket.expect(|f| f["id"] == 3).await["code"], "conversation_not_found");
    socket.send(json!({"t": "send", "id": 4, "consumer": consumer_id, "cid": "t2", "text": "Hello"})).await;
    assert_eq!(socket.expect(|f| f["id"] == 4).await["code"], "forbidden", "a token starts no conversation");
    socket.send(json!({"t": "state", "id": 5, "state": "online"})).await;
    assert_eq!(socket.expect(|f| f["id"] == 5).await["code"], "forbidden", "a token takes no routed work");

    let messages = server.store.messages_after(&brand.id, c, 0, 10).await.unwrap();
    assert_eq!(messages.len(), 1, "nothing was written: {messages:?}");
    let conversation = server.store.conversation(&brand.id, c).await.unwrap().unwrap();
    assert_eq!(
        conversation.agent_id,
        server.store.user_by_email(&brand.id, &brand.agent_email).await.unwrap().map(|u| u.id)
    );
    drop(agent);
}

/// Issue 15: a token's messages were signed as the admin who created it. A manager token may
/// write into any conversation, under its own name and id.
async fn a_tokens_messages_carry_its_own_name(backend: Backend) {
    let server = server(backend).await;
    let brand = server.brand().await;
    let root = server.login(&brand.admin_email).await;
    let (mut agent, mut consumer, c) = assigned_conversation(&server, &brand, "hal").await;
    let (token, token_id) = create_token(&server, &root, json!({"name": "Order bot", "role": "manager"})).await;
    let (mut socket, _) = agent_socket(&server, &token).await;

    socket.send(json!({"t": "send", "id": 1, "c": c, "cid": "b1", "text": "Your parcel left the depot today."})).await;
    let ack = socket.expect(|f| f["id"] == 1).await;
    assert_eq!(ack["t"], "ack", "{ack}");
    let seen = consumer.expect(|f| f["t"] == "msg" && f["from"] == "a").await;
    assert_eq!(seen["name"], "Order bot", "{seen}");
    let seen = agent.expect(|f| f["t"] == "msg" && f["from"] == "a").await;
    assert_eq!(seen["name"], "Order bot", "the holding agent sees who wrote: {seen}");
    let stored = server.store.messages_after(&brand.id, c, 1, 10).await.unwrap();
    assert_eq!((stored[0].author_id, stored[0].author_name.as_deref()), (Some(-token_id), Some("Order bot")));
    let admin_name = format!("Admin of {}", brand.id);
    assert!(
        stored.iter().all(|m| m.author_name.as_deref() != Some(admin_name.as_str())),
        "never signed as its creator"
    );

    // Its REST actions are the audit log's under its own name too.
    let (status, _) = call(
        &server,
        &token,
        Method::POST,
        &format!("/api/v1/conversations/{c}/priority"),
        json!({"priority": "high"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = call(&server, &token, Method::POST, "/api/v1/tokens", json!({"name": "child"})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")), "a token mints no tokens: {body}");
}

/// Optional expiry, refused with a message naming it (REST and socket), and the last use,
/// written at most once a minute.
async fn tokens_expire_and_show_their_last_use(backend: Backend) {
    let server = server(backend).await;
    let brand = server.brand().await;
    let root = server.login(&brand.admin_email).await;

    let before = now_secs() * 1000;
    let (status, created) =
        call(&server, &root, Method::POST, "/api/v1/tokens", json!({"name": "quarterly", "expires_in_days": 90})).await;
    assert_eq!(status, 201, "{created}");
    let expires_at = created["info"]["expires_at"].as_i64().unwrap();
    assert_eq!(
        (created["info"]["status"].as_str(), created["info"]["acts_as"].as_str()),
        (Some("active"), Some("admin"))
    );
    assert!((before + 90 * 86_400_000..before + 90 * 86_400_000 + 60_000).contains(&expires_at), "{created}");
    for days in [0, 3651] {
        let (status, body) =
            call(&server, &root, Method::POST, "/api/v1/tokens", json!({"name": "x", "expires_in_days": days})).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().unwrap().contains("1 to 3650"), "{body}");
    }

    // Last use: none yet; set by the first use; not rewritten within the minute.
    let token = created["token"].as_str().unwrap();
    let token_id = created["info"]["id"].as_i64().unwrap();
    let last_used = || last_used_at(&server, &root, token_id);
    assert_eq!(last_used().await, Value::Null);
    assert_eq!(call(&server, token, Method::GET, "/api/v1/skills", Value::Null).await.0, 200);
    let first = last_used().await;
    assert!(first.as_i64().unwrap() >= before, "{first}");
    assert_eq!(call(&server, token, Method::GET, "/api/v1/skills", Value::Null).await.0, 200);
    assert_eq!(last_used().await, first, "one write a minute at most");

    // An expired token is refused naming its expiry; a socket closes when its token expires.
    let admin_id = server.store.user_by_email(&brand.id, &brand.admin_email).await.unwrap().unwrap().id;
    let expired = "sbt_expired-token-of-the-test";
    let hash = switchboard_server::auth::hash_secret(expired);
    let now = now_secs() * 1000;
    let new = |name, hash, expires_at| NewApiToken {
        brand_id: &brand.id,
        name,
        role: Role::Manager,
        token_hash: hash,
        created_by: admin_id,
        expires_at: Some(expires_at),
    };
    server.store.create_api_token(&new("old", &hash, now - 1000), now - 86_400_000).await.unwrap();
    let (status, body) = call(&server, expired, Method::GET, "/api/v1/skills", Value::Null).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("token_expired")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("\"old\" expired at 20"), "{body}");
    let old_id = server.store.api_token(&hash).await.unwrap().unwrap().id;
    assert_eq!(standing(&server, &root, old_id).await, ("expired".to_owned(), Value::Null));

    let expiring = "sbt_expiring-token-of-the-test";
    let hash = switchboard_server::auth::hash_secret(expiring);
    server.store.create_api_token(&new("brief", &hash, now + 1500), now).await.unwrap();
    let (mut socket, _) = agent_socket(&server, expiring).await;
    let (error, code) = ended(&mut socket).await;
    assert_eq!((error["code"].as_str(), code), (Some("token_expired"), 4001), "{error}");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(call(&server, expiring, Method::GET, "/api/v1/skills", Value::Null).await.0, 401);
}
