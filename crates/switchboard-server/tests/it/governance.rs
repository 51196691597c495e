//! Data governance end to end: the reporting API's search, transcript exports, the audit
//! log, erasure of a consumer's data and retention, each refused across brands.

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::*;

pub const CARD: &str = "4111 1111 1111 1111";
pub const MASKED: &str = "**** **** **** 1111";

/// A conversation of consumer `sub` with the brand's agent: the consumer writes (a card
/// number among the words), the agent answers, hands it back to the queue (a transfer), a
/// manager closes it and the consumer scores it `score`. Returns its id.
pub async fn scored_conversation(server: &TestServer, brand: &TestBrand, sub: &str, score: u8) -> i64 {
    let mut consumer = server.consumer(brand, sub).await;
    let mut agent = server.online_agent(&brand.agent_email).await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "m1", "text": format!("my card is {CARD}")})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    agent.send(json!({"t": "send", "id": 2, "c": c, "cid": "a1", "text": "Thanks, looking into it"})).await;
    agent.expect(|f| f["t"] == "ack" && f["id"] == 2).await;
    let admin = server.login(&brand.admin_email).await;
    let (status, body) =
        call(server, &admin, Method::POST, &format!("/api/v1/conversations/{c}/transfer"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) =
        call(server, &admin, Method::POST, &format!("/api/v1/conversations/{c}/close"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    consumer.expect(|f| f["t"] == "survey" && f["c"] == c).await;
    consumer.send(json!({"t": "csat", "id": 3, "c": c, "score": score, "comment": "quick"})).await;
    consumer.expect(|f| f["t"] == "ok" && f["id"] == 3).await;
    c
}

#[tokio::test]
async fn the_reporting_api_finds_conversations_with_consumer_messages_transfers_and_scores() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let good = scored_conversation(&server, &brand, "erin", 5).await;
    let poor = scored_conversation(&server, &brand, "frank", 2).await;
    let admin = server.login(&brand.admin_email).await;

    let (status, page) = call(&server, &admin, Method::GET, "/api/v1/reports/conversations", Value::Null).await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<i64> =
        page["conversations"].as_array().unwrap().iter().map(|r| r["conversation"]["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [poor, good], "newest first");

    let (status, page) =
        call(&server, &admin, Method::GET, "/api/v1/reports/conversations?csat_min=4&status=closed", Value::Null).await;
    assert_eq!(status, 200, "{page}");
    let records = page["conversations"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{page}");
    let record = &records[0];
    assert_eq!(record["conversation"]["id"], good);
    assert_eq!(record["consumer"]["external_id"], "erin", "the brand's own consumer id");
    assert_eq!(record["consumer"]["name"], "Customer erin");
    assert_eq!(record["consumer"]["email"], "erin@example.com");
    assert_eq!(record["csat"], json!({"score": 5, "comment": "quick"}));
    assert_eq!(record["agent"], format!("Agent of {}", brand.id));
    let texts: Vec<&str> = record["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&format!("my card is {MASKED}").as_str()), "masked as agents see it: {texts:?}");
    assert!(texts.contains(&"Thanks, looking into it"), "{texts:?}");
    assert!(!page.to_string().contains("4111 1111 1111"), "{page}");
    let transfers = record["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 1, "{record}");
    assert_eq!(transfers[0]["from_agent"], format!("Agent of {}", brand.id));
    assert_eq!(transfers[0]["to_agent_id"], Value::Null, "back to the queue");
    let kinds: Vec<&str> = record["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["opened", "assigned", "queued", "closed"]);

    // By consumer (the brand's id), and in pages of one that follow `next`.
    let (_, page) =
        call(&server, &admin, Method::GET, "/api/v1/reports/conversations?consumer=frank", Value::Null).await;
    assert_eq!(page["conversations"][0]["conversation"]["id"], poor, "{page}");
    let (_, page) =
        call(&server, &admin, Method::GET, "/api/v1/reports/conversations?consumer=nobody", Value::Null).await;
    assert_eq!(page["conversations"], json!([]));
    let (_, first) =
        call(&server, &admin, Method::GET, "/api/v1/reports/conversations?limit=1&messages=1", Value::Null).await;
    assert_eq!(first["conversations"][0]["conversation"]["id"], poor);
    assert_eq!(first["conversations"][0]["messages"].as_array().unwrap().len(), 1);
    assert_eq!(first["conversations"][0]["more_messages"], true);
    let next = first["next"].as_str().unwrap();
    let (_, second) = call(
        &server,
        &admin,
        Method::GET,
        &format!("/api/v1/reports/conversations?limit=1&cursor={next}"),
        Value::Null,
    )
    .await;
    assert_eq!(second["conversations"][0]["conversation"]["id"], good);
    assert_eq!(second["next"], Value::Null);

    for (query, says) in [
        ("csat_min=0", "csat_min must be 1 to 5 (got 0)"),
        ("csat_min=4&csat_max=2", "csat_max must be at least csat_min"),
        ("status=pending", "status must be \"open\" or \"closed\""),
        ("channel=fax", "channel must be one of in_app, web, sms, messenger"),
        ("limit=0", "limit must be 1 to 100 (got 0)"),
        ("messages=501", "messages must be 0 to 500 (got 501)"),
        ("cursor=xyz", "cursor is not valid"),
        ("from=10&to=10", "to must be after from"),
        ("agent_id=abc", "agent_id"),
    ] {
        let (status, body) =
            call(&server, &admin, Method::GET, &format!("/api/v1/reports/conversations?{query}"), Value::Null).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["message"].as_str().unwrap().contains(says), "{says:?} not in {body}");
    }

    // Agents may not search the brand; another brand's admin finds nothing of this one.
    let agent = server.login(&brand.agent_email).await;
    let (status, _) = call(&server, &agent, Method::GET, "/api/v1/reports/conversations", Value::Null).await;
    assert_eq!(status, 403);
    let other = server.brand().await;
    let other_admin = server.login(&other.admin_email).await;
    let (status, page) =
        call(&server, &other_admin, Method::GET, "/api/v1/reports/conversations?consumer=erin", Value::Null).await;
    assert_eq!((status, &page["conversations"]), (200, &json!([])));
    let (_, page) = call(&server, &other_admin, Method::GET, "/api/v1/reports/conversations", Value::Null).await;
    assert_eq!(page["conversations"], json!([]));
}
