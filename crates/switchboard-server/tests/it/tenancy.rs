//! Brand isolation: brand B's agents and consumers cannot read, write or subscribe to brand A.

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn brand_b_cannot_read_write_or_follow_brand_a() {
    let server = TestServer::start().await;
    let a = server.brand().await;
    let b = server.brand().await;
    let mut a_agent = server.online_agent(&a.agent_email).await;
    let mut b_agent = server.online_agent(&b.agent_email).await;
    let mut a_consumer = server.consumer(&a, "shared-sub").await;
    a_consumer.send(json!({"t": "send", "id": 1, "cid": "a1", "text": "secret of brand A"})).await;
    let c = a_consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    a_agent.expect(|f| f["t"] == "msg").await;

    // B's agent: no live events, no sync, no write, no close, no receipts.
    for (id, frame) in [
        (2, json!({"t": "sync", "id": 2, "c": c, "after": 0})),
        (3, json!({"t": "send", "id": 3, "c": c, "cid": "b1", "text": "intrusion"})),
        (4, json!({"t": "close", "id": 4, "c": c})),
        (5, json!({"t": "rcpt", "id": 5, "c": c, "seq": 1, "k": "read"})),
    ] {
        b_agent.send(frame).await;
        let error = b_agent.expect(|f| f["t"] == "err" && f["id"] == id).await;
        assert_eq!(error["code"], "conversation_not_found", "{error}");
    }
    b_agent.expect_none(std::time::Duration::from_millis(200), |f| f["t"] == "msg").await;

    // B's consumer with the same `sub` is a different person with nothing to see.
    let mut b_consumer = server.consumer(&b, "shared-sub").await;
    b_consumer.send(json!({"t": "sync", "id": 6, "c": c, "after": 0})).await;
    assert_eq!(b_consumer.expect(|f| f["t"] == "err").await["code"], "conversation_not_found");
    b_consumer.send(json!({"t": "history", "id": 7})).await;
    assert_eq!(b_consumer.expect(|f| f["t"] == "history").await["convs"], json!([]));

    // A consumer cannot pick another brand's app, nor sign in with a token for brand A's app.
    let mut wrong = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    let token = rs256_token(&claims(&a, "x", 60));
    let refused = wrong.hello(json!({"t": "hello", "v": 1, "brand": b.id, "app": a.app, "token": token})).await;
    assert_eq!(refused["code"], "app_not_found");

    // REST: B's admin cannot see A's conversation, users or apps.
    let http = reqwest::Client::new();
    let b_admin = server.login(&b.admin_email).await;
    let response =
        http.get(format!("{}/api/v1/conversations/{c}", server.http)).bearer_auth(&b_admin).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let list: Value = http
        .get(format!("{}/api/v1/conversations", server.http))
        .bearer_auth(&b_admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["conversations"], json!([]));
    let users: Value = http
        .get(format!("{}/api/v1/users", server.http))
        .bearer_auth(&b_admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(users.as_array().unwrap().iter().all(|u| u["brand_id"] == b.id.as_str()), "{users}");
    let app = http.get(format!("{}/api/v1/apps/{}", server.http, a.app)).bearer_auth(&b_admin).send().await.unwrap();
    assert_eq!(app.status(), 404);

    // A's admin does see it, with its messages.
    let a_admin = server.login(&a.admin_email).await;
    let detail: Value = http
        .get(format!("{}/api/v1/conversations/{c}", server.http))
        .bearer_auth(&a_admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["messages"][0]["text"], "secret of brand A");
}
