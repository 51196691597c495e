//! Issue 15, item 8: text the store cannot keep. On PostgreSQL a NUL byte in any string (a
//! login email, a name, a JWT `name` claim, a message) was a 500, locked that consumer out of
//! `hello`, and failed the writer's group commit for its whole batch; SQLite stored it. The
//! rule is now one, at the edge, on both stores: refused with `bad_request` (or
//! `token_invalid`) naming the field. Each test runs on SQLite and, with the PostgreSQL tests
//! included, on PostgreSQL.

use serde_json::{Value, json};
use switchboard_server::ServerConfig;

use crate::harness::*;

on_both_stores!(nul_in_rest_input_is_refused_naming_the_field, nul_from_a_consumer_is_refused_and_nobody_is_locked_out);

async fn nul_in_rest_input_is_refused_naming_the_field(backend: Backend) {
    let server = TestServer::start_on(backend, ServerConfig::default()).await;
    let brand = server.brand().await;
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{}/api/v1/auth/login", server.http))
        .json(&json!({"email": "admin\u{0}@x.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 400);
    let body: Value = login.json().await.unwrap();
    assert_eq!(body["code"], "bad_request");
    assert_eq!(body["message"], "`email` contains the NUL character (U+0000), which is not allowed in text");

    let admin = server.login(&brand.admin_email).await;
    let new_user = json!({"email": "nul@x.test", "name": "Nul\u{0}l", "role": "agent", "password": PASSWORD});
    let (status, body) = call(&server, &admin, reqwest::Method::POST, "/api/v1/users", new_user).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")), "{body}");
    assert!(body["message"].as_str().unwrap().starts_with("`name` contains the NUL"), "{body}");
    let (status, body) = call(&server, &admin, reqwest::Method::GET, "/api/v1/apps/x%00y", Value::Null).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")), "{body}");
    let (status, body) =
        call(&server, &admin, reqwest::Method::GET, "/api/v1/conversations?status=open%00", Value::Null).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")), "{body}");
    // The same requests without the NUL work.
    let good_user = json!({"email": "nul@x.test", "name": "Null", "role": "agent", "password": PASSWORD});
    let (status, body) = call(&server, &admin, reqwest::Method::POST, "/api/v1/users", good_user).await;
    assert_eq!(status, 201, "{body}");
}

async fn nul_from_a_consumer_is_refused_and_nobody_is_locked_out(backend: Backend) {
    let server = TestServer::start_on(backend, ServerConfig::default()).await;
    let brand = server.brand().await;
    let url = format!("{}/v1/consumer", server.ws);

    // A token whose profile claim holds NUL is refused, naming the claim...
    let mut bad = claims(&brand, "nul-claim", 3600);
    bad["name"] = json!("Ann\u{0}");
    let mut client = Client::connect(&url).await;
    let hello = json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "token": rs256_token(&bad)});
    let refused = client.hello(hello).await;
    assert_eq!(refused["code"], "token_invalid", "{refused}");
    assert!(refused["msg"].as_str().unwrap().contains("`name` claim"), "{refused}");
    // ...and the same consumer with a clean token is not locked out.
    let mut consumer = server.consumer(&brand, "nul-claim").await;

    // A frame with NUL in its text is refused with its id; nothing is stored, and the
    // messages around it are.
    let mut other = server.consumer(&brand, "neighbour").await;
    for n in 0..20 {
        other.send(json!({"t": "send", "id": n, "cid": format!("n{n}"), "text": format!("neighbour {n}")})).await;
    }
    consumer.send(json!({"t": "send", "id": 1, "cid": "before", "text": "before"})).await;
    consumer.send(json!({"t": "send", "id": 2, "cid": "nul", "text": "a\u{0}b"})).await;
    consumer.send(json!({"t": "send", "id": 3, "cid": "after", "text": "after"})).await;
    let first = consumer.expect(|f| f["id"] == 1).await;
    let refused = consumer.expect(|f| f["id"] == 2).await;
    let last = consumer.expect(|f| f["id"] == 3).await;
    assert_eq!((first["t"].as_str(), last["t"].as_str()), (Some("ack"), Some("ack")), "{first} {last}");
    assert_eq!(refused["t"], "err");
    assert_eq!(refused["code"], "bad_request", "{refused}");
    assert_eq!(last["seq"].as_i64(), first["seq"].as_i64().map(|seq| seq + 1), "the refused message took no seq");
    for n in 0..20 {
        assert_eq!(other.expect(|f| f["id"] == n).await["t"], "ack");
    }
}
