//! Running the floor over REST: the agent's inbox, transfers (to an agent, to a skill, back
//! to the queue) and closes with everyone told, the manager dashboard, reports and CSV
//! export, and the browser workspace's files.

use serde_json::{Value, json};
use switchboard_store::Role;

use crate::harness::*;

/// A REST caller with a session token.
struct Rest {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Rest {
    async fn login(server: &TestServer, email: &str) -> Rest {
        Rest { http: reqwest::Client::new(), base: server.http.clone(), token: server.login(email).await }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response =
            self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.token).json(&body).send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
    }
}

/// The element of a JSON array whose `field` is `value`.
fn row(array: &Value, field: &str, value: &str) -> Value {
    array
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item[field] == value)
        .cloned()
        .unwrap_or_else(|| panic!("no {field} {value:?} in {array}"))
}

/// The consumer writes; returns the conversation id once the agent has it.
async fn open_with(consumer: &mut Client, agent: &mut Client, text: &str) -> i64 {
    consumer.send(json!({"t": "send", "id": 1, "cid": "first", "text": text})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    c
}

#[tokio::test]
async fn transfer_to_an_agent_moves_the_conversation_and_tells_everyone() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let bob_email = format!("bob@{}.test", brand.id);
    let bob_id = server.user(&brand, &bob_email, "Bob Builder", Role::Agent, 2, vec![]).await;
    let mut alice = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "carol").await;
    let c = open_with(&mut consumer, &mut alice, "Where is my parcel?").await;
    let rest = Rest::login(&server, &brand.agent_email).await;

    // Bob is offline: refused, with the reason.
    let (status, body) = rest.post(&format!("/api/v1/conversations/{c}/transfer"), json!({"agent_id": bob_id})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("transfer_refused")));
    assert!(body["message"].as_str().unwrap().contains("Bob Builder is offline"), "{body}");

    let mut bob = server.online_agent(&bob_email).await;
    let (status, body) = rest.post(&format!("/api/v1/conversations/{c}/transfer"), json!({"agent_id": bob_id})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["agent_id"], bob_id);

    let left = alice.expect(|f| f["t"] == "conv" && f["c"] == c).await;
    assert_eq!((left["ev"].as_str(), left["agent"].as_str()), (Some("transferred"), Some("Bob Builder")));
    let got = bob.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;
    assert_eq!(got["conv"]["consumer"]["name"], "Customer carol");
    let notice = consumer.expect(|f| f["t"] == "msg").await;
    assert_eq!((notice["from"].as_str(), notice["text"].as_str()), (Some("s"), Some("Transferred to Bob Builder")));
    // After the notice (Alice's earlier assignment was skipped above).
    consumer.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["agent"] == "Bob Builder").await;

    // Bob's inbox has it (with the notice as the last message); Alice's does not, and she
    // can no longer write in it.
    let bob_rest = Rest::login(&server, &bob_email).await;
    let (_, inbox) = bob_rest.get("/api/v1/inbox").await;
    assert_eq!(inbox["items"][0]["conversation"]["id"], c);
    assert_eq!(inbox["items"][0]["last_message"]["text"], "Transferred to Bob Builder");
    let (_, inbox) = rest.get("/api/v1/inbox").await;
    assert_eq!(inbox["items"], json!([]));
    alice.send(json!({"t": "send", "id": 9, "c": c, "cid": "late", "text": "still here?"})).await;
    let refused = alice.expect(|f| f["t"] == "err" && f["id"] == 9).await;
    assert_eq!(refused["code"], "not_assigned");
    // Transferring again to the holder is refused too.
    let (status, body) =
        bob_rest.post(&format!("/api/v1/conversations/{c}/transfer"), json!({"agent_id": bob_id})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("transfer_refused")));
}

#[tokio::test]
async fn back_to_the_queue_goes_to_someone_else_and_a_skill_without_agents_waits() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let billing = server.store.create_skill(&brand.id, "billing", now_secs() * 1000).await.unwrap();
    let bob_email = format!("bob@{}.test", brand.id);
    server.user(&brand, &bob_email, "Bob Builder", Role::Agent, 2, vec![]).await;
    let mut alice = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "dave").await;
    let c = open_with(&mut consumer, &mut alice, "Hello").await;
    let mut bob = server.online_agent(&bob_email).await;
    let alice_rest = Rest::login(&server, &brand.agent_email).await;

    // Alice gives it back: Bob gets it (not Alice again, though she has room).
    let (status, body) = alice_rest.post(&format!("/api/v1/conversations/{c}/transfer"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    let left = alice.expect(|f| f["t"] == "conv" && f["c"] == c).await;
    assert_eq!(left["ev"], "transferred");
    assert_eq!(left.get("agent"), None, "back to the queue names no agent");
    bob.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    let notice = consumer.expect(|f| f["t"] == "msg").await;
    assert_eq!(notice["text"], "Returned to the queue");

    // Bob sends it to billing, which nobody online has: the consumer waits, without an ETA.
    let bob_rest = Rest::login(&server, &bob_email).await;
    let (status, body) =
        bob_rest.post(&format!("/api/v1/conversations/{c}/transfer"), json!({"skill_id": billing.id})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["skill_id"].as_i64(), body["agent_id"].as_i64()), (Some(billing.id), None));
    let notice = consumer.expect(|f| f["t"] == "msg" && f["seq"] == 3).await;
    assert_eq!(notice["text"], "Transferred to billing");
    let queued = consumer.expect(|f| f["t"] == "conv" && f["ev"] == "queued").await;
    assert_eq!(queued.get("eta"), None);

    let manager = Rest::login(&server, &brand.admin_email).await;
    let (status, floor) = manager.get("/api/v1/dashboard").await;
    assert_eq!(status, 200, "{floor}");
    let row = row(&floor["skills"], "name", "billing");
    assert_eq!((row["queue_depth"].as_i64(), row["open"].as_i64()), (Some(1), Some(1)));
    assert!(row["longest_wait_secs"].as_i64().is_some());
    assert_eq!(row["estimated_wait_secs"], Value::Null, "nobody online has billing");
    assert_eq!(floor["totals"]["queued"], 1);

    // Bad requests name the problem.
    let (status, body) =
        bob_rest.post(&format!("/api/v1/conversations/{c}/transfer"), json!({"skill_id": 1, "agent_id": 2})).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) =
        manager.post(&format!("/api/v1/conversations/{c}/transfer"), json!({"skill_id": 999_999})).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("no skill has id 999999"), "{body}");
}

#[tokio::test]
async fn inbox_dashboard_reports_and_csv_show_the_day() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut agent = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "erin").await;
    let c = open_with(&mut consumer, &mut agent, "First question").await;
    consumer.send(json!({"t": "send", "id": 2, "cid": "second", "text": "=cmd|' /C calc'!A0, and more"})).await;
    consumer.expect(|f| f["t"] == "ack" && f["id"] == 2).await;

    let rest = Rest::login(&server, &brand.agent_email).await;
    let (_, inbox) = rest.get("/api/v1/inbox").await;
    let item = &inbox["items"][0];
    assert_eq!((item["unread"].as_i64(), item["char_limit"].as_i64()), (Some(2), Some(2000)));
    assert!(item["waiting_since"].as_i64().is_some());
    assert_eq!(item["consumer"]["name"], "Customer erin");
    assert_eq!(item["last_message"]["seq"], 2);
    // Agents do not see the manager's views.
    assert_eq!(rest.get("/api/v1/dashboard").await.0, 403);
    assert_eq!(rest.get("/api/v1/reports?from=0&to=1").await.0, 403);

    let manager = Rest::login(&server, &brand.admin_email).await;
    let (_, floor) = manager.get("/api/v1/dashboard").await;
    let me = row(&floor["agents"], "name", &format!("Agent of {}", brand.id));
    assert_eq!(
        (me["state"].as_str(), me["load"].as_i64(), me["max_concurrent"].as_i64()),
        (Some("online"), Some(1), Some(5))
    );
    assert_eq!(floor["totals"]["open"], 1);

    agent.send(json!({"t": "send", "id": 5, "c": c, "cid": "r1", "text": "Answer"})).await;
    agent.expect(|f| f["t"] == "ack" && f["id"] == 5).await;
    agent.send(json!({"t": "close", "id": 6, "c": c})).await;
    agent.expect(|f| f["t"] == "ok" && f["id"] == 6).await;
    consumer.expect(|f| f["t"] == "survey").await;
    consumer.send(json!({"t": "csat", "id": 7, "c": c, "score": 5})).await;
    consumer.expect(|f| f["t"] == "ok" && f["id"] == 7).await;

    let (_, floor) = manager.get("/api/v1/dashboard").await;
    let me = row(&floor["agents"], "name", &format!("Agent of {}", brand.id));
    assert_eq!((me["load"].as_i64(), me["resolved_today"].as_i64()), (Some(0), Some(1)));
    assert!(me["avg_first_response_secs"].as_i64().is_some());
    assert_eq!(floor["csat"]["distribution"], json!([0, 0, 0, 0, 1]));
    assert_eq!(floor["csat"]["average"], 5.0);

    let now = now_secs() * 1000;
    let range = format!("from={}&to={}", now - 3_600_000, now + 3_600_000);
    let (status, report) = manager.get(&format!("/api/v1/reports?{range}&tz_offset=60")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!((report["opened"].as_i64(), report["closed"].as_i64()), (Some(1), Some(1)));
    assert_eq!(report["first_response"]["count"], 1);
    assert_eq!(report["resolution"]["histogram"][0]["label"], "< 5 min");
    assert_eq!(report["resolution"]["histogram"][0]["count"], 1);
    assert_eq!(report["csat"]["responses"], 1);
    let hourly = report["hourly"].as_array().unwrap();
    assert!(hourly.len() >= 2 && hourly.len() <= 3, "one bucket per hour: {}", hourly.len());
    assert_eq!(hourly.iter().map(|h| h["opened"].as_i64().unwrap()).sum::<i64>(), 1);

    let csv = reqwest::Client::new()
        .get(format!("{}/api/v1/reports/conversations.csv?{range}", server.http))
        .bearer_auth(&manager.token)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        csv.headers()["content-disposition"].to_str().unwrap().starts_with("attachment; filename=\"conversations-")
    );
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("conversation_id,opened_at,closed_at,status"));
    assert!(
        lines[1].starts_with(&format!("{c},")) && lines[1].contains(",closed,") && lines[1].contains("Customer erin")
    );
    assert!(lines[1].contains(",agent,") && lines[1].ends_with(",5,"), "{}", lines[1]);
    // Issue 13: the consumer is named by the brand's own id (the JWT `sub`), not ours.
    let header: Vec<&str> = lines[0].split(',').collect();
    let consumer_column = header.iter().position(|name| *name == "consumer_id").unwrap();
    assert_eq!(lines[1].split(',').nth(consumer_column), Some("erin"), "{}", lines[1]);

    for bad in [
        "from=10&to=5",
        "from=0&to=99999999999",
        "from=0&to=10&tz_offset=9999",
        "to=10",
        "from=-99999999999999999&to=-99999999999999990",
        "from=9223372036854775000&to=9223372036854775807",
    ] {
        let (status, body) = manager.get(&format!("/api/v1/reports?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        let (status, body) = manager.get(&format!("/api/v1/reports/conversations.csv?{bad}")).await;
        assert_eq!(status, 400, "csv {bad}: {body}");
    }
    for since in ["-9223372036854775808", "9223372036854775807", "0"] {
        let (status, body) = manager.get(&format!("/api/v1/dashboard?since={since}")).await;
        assert_eq!(status, 400, "since={since}: {body}");
    }
}

#[tokio::test]
async fn history_pages_backwards_for_long_conversations() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut agent = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "fred").await;
    let c = open_with(&mut consumer, &mut agent, "m1").await;
    for i in 2..=12 {
        consumer.send(json!({"t": "send", "id": i, "cid": format!("m{i}"), "text": format!("m{i}")})).await;
        consumer.expect(|f| f["t"] == "ack" && f["id"] == i).await;
    }
    let rest = Rest::login(&server, &brand.agent_email).await;
    let (_, page) = rest.get(&format!("/api/v1/conversations/{c}?before=13&limit=5")).await;
    let seqs: Vec<i64> = page["messages"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!((seqs, page["more"].as_bool()), (vec![8, 9, 10, 11, 12], Some(true)));
    let (status, body) = rest.get(&format!("/api/v1/conversations/{c}?before=13&after=2")).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn the_workspace_is_served_with_a_strict_content_security_policy() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let page = http.get(format!("{}/", server.http)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
    assert!(page.text().await.unwrap().contains("/assets/app.js"));

    let script = http.get(format!("{}/assets/app.js", server.http)).send().await.unwrap();
    assert_eq!(script.headers()["content-type"], "text/javascript; charset=utf-8");
    let etag = script.headers()["etag"].clone();
    let again = http.get(format!("{}/assets/app.js", server.http)).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304, "unchanged files are revalidated, not resent");
    let missing = http.get(format!("{}/assets/nope.js", server.http)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let escape = http.get(format!("{}/assets/../../Cargo.toml", server.http)).send().await.unwrap();
    assert_eq!(escape.status(), 404);
}

#[tokio::test]
async fn an_agent_serving_a_consumer_sees_their_past_conversations_with_other_agents() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let billing = server.store.create_skill(&brand.id, "billing", now_secs() * 1000).await.unwrap();
    let bob_email = format!("bob@{}.test", brand.id);
    server.user(&brand, &bob_email, "Bob Builder", Role::Agent, 2, vec![billing.id]).await;
    let mut alice = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "gina").await;
    let first = open_with(&mut consumer, &mut alice, "First visit").await;
    alice.send(json!({"t": "close", "id": 3, "c": first})).await;
    alice.expect(|f| f["t"] == "ok" && f["id"] == 3).await;
    alice.send(json!({"t": "state", "id": 4, "state": "away"})).await;
    alice.expect(|f| f["t"] == "ok" && f["id"] == 4).await;

    // Her second conversation goes to Bob, who sees the first one (Alice's) beside it.
    let mut bob = server.online_agent(&bob_email).await;
    consumer.send(json!({"t": "send", "id": 5, "cid": "again", "text": "Back again"})).await;
    let second = consumer.expect(|f| f["t"] == "ack" && f["id"] == 5).await["c"].as_i64().unwrap();
    let assigned = bob.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == second).await;
    let consumer_id = assigned["conv"]["consumer"]["id"].as_i64().unwrap();
    let bob_rest = Rest::login(&server, &bob_email).await;
    let (_, list) = bob_rest.get(&format!("/api/v1/conversations?consumer_id={consumer_id}")).await;
    let ids: Vec<i64> = list["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![second, first], "the consumer's whole history, newest first");
    assert_eq!(bob_rest.get(&format!("/api/v1/conversations/{first}")).await.0, 200);
    // Alice, who no longer serves her, sees only her own conversation with her.
    let alice_rest = Rest::login(&server, &brand.agent_email).await;
    let (_, list) = alice_rest.get(&format!("/api/v1/conversations?consumer_id={consumer_id}")).await;
    let ids: Vec<i64> = list["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![first]);
}

#[tokio::test]
async fn summaries_name_the_skill_and_logout_ends_the_agent_socket() {
    let config = switchboard_server::ServerConfig { heartbeat_secs: 1, ..Default::default() };
    let server = TestServer::start_with(config).await;
    let brand = server.brand().await;
    let billing = server.store.create_skill(&brand.id, "billing", now_secs() * 1000).await.unwrap();
    let mut alice = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "hank").await;
    let c = open_with(&mut consumer, &mut alice, "Invoice question").await;
    let rest = Rest::login(&server, &brand.agent_email).await;
    let (status, _) = rest.post(&format!("/api/v1/conversations/{c}/transfer"), json!({"skill_id": billing.id})).await;
    assert_eq!(status, 200);
    // Nobody online has billing, so it waits; an agent with the skill comes online and gets
    // it, the summary naming the skill.
    let carl_email = format!("carl@{}.test", brand.id);
    server.user(&brand, &carl_email, "Carl", Role::Agent, 1, vec![billing.id]).await;
    let mut carl = server.online_agent(&carl_email).await;
    let assigned = carl.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    assert_eq!(assigned["conv"]["skill"], "billing");

    // Logging out (the session ends on the server) closes Carl's socket within a heartbeat.
    let carl_token = server.login(&carl_email).await;
    let mut second = Client::connect(&format!("{}/v1/agent", server.ws)).await;
    let welcome = second.hello(json!({"t": "hello", "v": 1, "session": carl_token})).await;
    assert_eq!(welcome["convs"][0]["skill"], "billing", "welcome summaries name the skill too");
    let logout = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/logout", server.http))
        .bearer_auth(&carl_token)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    let error = second.expect(|f| f["t"] == "err").await;
    assert_eq!(error["code"], "session_expired");
    let closed = second.expect(|f| f["t"] == "closed").await;
    assert_eq!(closed["code"], 4003);
    // The other session's socket stays.
    carl.send(json!({"t": "ping", "id": 77})).await;
    carl.expect(|f| f["t"] == "pong" && f["id"] == 77).await;
}

#[tokio::test]
async fn managers_sockets_hear_that_the_floor_changed_and_agents_do_not() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut agent = server.online_agent(&brand.agent_email).await;
    let manager_token = server.login(&brand.admin_email).await;
    let mut manager = Client::connect(&format!("{}/v1/agent", server.ws)).await;
    let welcome = manager.hello(json!({"t": "hello", "v": 1, "session": manager_token})).await;
    assert_eq!(welcome["t"], "welcome");

    // A new conversation (opened, assigned) and its close each tell the manager's dashboard.
    let mut consumer = server.consumer(&brand, "ivy").await;
    let c = open_with(&mut consumer, &mut agent, "Hello").await;
    assert_eq!(manager.expect(|f| f["t"] == "floor").await, json!({"t": "floor"}));
    agent.send(json!({"t": "close", "id": 8, "c": c})).await;
    agent.expect(|f| f["t"] == "ok" && f["id"] == 8).await;
    manager.seen.clear();
    manager.expect(|f| f["t"] == "floor").await;
    // An agent state change too.
    agent.send(json!({"t": "state", "id": 9, "state": "away"})).await;
    agent.expect(|f| f["t"] == "ok" && f["id"] == 9).await;
    manager.seen.clear();
    manager.expect(|f| f["t"] == "floor").await;
    // Agents' sockets carry only their own conversations.
    agent.expect_none(std::time::Duration::from_millis(300), |f| f["t"] == "floor").await;
}

#[tokio::test]
async fn close_over_rest_tells_the_consumer_and_checks_who_may() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let other_brand = server.brand().await;
    let bob_email = format!("bob@{}.test", brand.id);
    let dave_email = format!("dave@{}.test", brand.id);
    server.user(&brand, &bob_email, "Bob Builder", Role::Agent, 2, vec![]).await;
    server.user(&brand, &dave_email, "Dave Diver", Role::Agent, 2, vec![]).await;
    let mut alice = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "carol").await;
    let c = open_with(&mut consumer, &mut alice, "Please close this").await;
    let close = format!("/api/v1/conversations/{c}/close");

    // Dave may not even read Alice's open conversation, and another brand's admin does not
    // see it at all: both are told it does not exist.
    let dave = Rest::login(&server, &dave_email).await;
    let (status, body) = dave.post(&close, json!({})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("conversation_not_found")), "{body}");
    let stranger = Rest::login(&server, &other_brand.admin_email).await;
    let (status, body) = stranger.post(&close, json!({})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("conversation_not_found")), "{body}");

    // Alice closes it: 200 with the conversation, and the consumer's socket hears it.
    let alice_rest = Rest::login(&server, &brand.agent_email).await;
    let (status, body) = alice_rest.post(&close, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["id"].as_i64(), body["status"].as_str(), body["closed_by"].as_str()),
        (Some(c), Some("closed"), Some("a"))
    );
    let closed = consumer.expect(|f| f["t"] == "conv" && f["c"] == c && f["ev"] == "closed").await;
    assert_eq!(closed["by"], "a");
    alice.expect(|f| f["t"] == "conv" && f["c"] == c && f["ev"] == "closed").await;

    // Closing it again is a conflict with the WebSocket's code for a closed conversation.
    let (status, body) = alice_rest.post(&close, json!({})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conversation_closed")), "{body}");

    // The consumer writes again while Alice is away: Bob serves them, so he may read the
    // past conversation, but it is not his to close.
    alice.send(json!({"t": "state", "id": 2, "state": "away"})).await;
    alice.expect(|f| f["t"] == "ok" && f["id"] == 2).await;
    let mut bob = server.online_agent(&bob_email).await;
    consumer.send(json!({"t": "send", "id": 3, "cid": "again", "text": "One more thing"})).await;
    let again = consumer.expect(|f| f["t"] == "ack" && f["id"] == 3).await["c"].as_i64().unwrap();
    assert_ne!(again, c);
    bob.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == again).await;
    let bob_rest = Rest::login(&server, &bob_email).await;
    assert_eq!(bob_rest.get(&format!("/api/v1/conversations/{c}")).await.0, 200, "Bob reads the history");
    let (status, body) = bob_rest.post(&close, json!({})).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("not_assigned")), "{body}");
    // His socket gets the same answer for the same rule.
    bob.send(json!({"t": "close", "id": 4, "c": c})).await;
    assert_eq!(bob.expect(|f| f["t"] == "err" && f["id"] == 4).await["code"], "not_assigned");

    // A manager (here the admin) closes any conversation of the brand.
    let manager = Rest::login(&server, &brand.admin_email).await;
    let (status, body) = manager.post(&format!("/api/v1/conversations/{again}/close"), json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("closed")), "{body}");
    consumer.expect(|f| f["t"] == "conv" && f["c"] == again && f["ev"] == "closed").await;
    bob.expect(|f| f["t"] == "conv" && f["c"] == again && f["ev"] == "closed").await;
}

/// Issue 15, item 8: an agent who writes first to a consumer (a proactive follow-up) holds
/// the new conversation, which used to open the consumer's whole history to them: any agent
/// could read anyone's past conversations by writing to them. It does so now only if the
/// brand allows it.
#[tokio::test]
async fn a_proactive_follow_up_opens_the_consumers_history_only_if_the_brand_allows() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let bob_email = format!("bob@{}.test", brand.id);
    server.user(&brand, &bob_email, "Bob Builder", Role::Agent, 2, vec![]).await;
    let mut bob = server.online_agent(&bob_email).await;
    let mut consumer = server.consumer(&brand, "hana").await;
    // Hana's conversation is Bob's, and is closed.
    let bobs = open_with(&mut consumer, &mut bob, "A question for Bob").await;
    bob.send(json!({"t": "close", "id": 2, "c": bobs})).await;
    bob.expect(|f| f["t"] == "ok" && f["id"] == 2).await;
    let consumer_id = server.store.conversation(&brand.id, bobs).await.unwrap().unwrap().consumer_id;

    // Alice writes to her first: a new conversation, hers.
    let mut alice = server.online_agent(&brand.agent_email).await;
    alice.send(json!({"t": "send", "id": 3, "c": bobs, "cid": "hello-hana", "text": "Hi Hana, a follow-up"})).await;
    let ack = alice.expect(|f| f["id"] == 3).await;
    assert_eq!(ack["t"], "ack", "{ack}");
    let alices = ack["c"].as_i64().unwrap();
    assert_ne!(alices, bobs);
    let alice_rest = Rest::login(&server, &brand.agent_email).await;
    assert_eq!(alice_rest.get(&format!("/api/v1/conversations/{alices}")).await.0, 200);
    // She does not see Bob's conversation with Hana: not listed, not readable, not syncable.
    let (_, list) = alice_rest.get(&format!("/api/v1/conversations?consumer_id={consumer_id}")).await;
    let ids: Vec<i64> = list["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![alices]);
    let (status, body) = alice_rest.get(&format!("/api/v1/conversations/{bobs}")).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("conversation_not_found")), "{body}");
    alice.send(json!({"t": "sync", "id": 4, "c": bobs, "after": 0})).await;
    assert_eq!(alice.expect(|f| f["id"] == 4).await["code"], "conversation_not_found");

    // The brand allows it: now she does.
    let admin = Rest::login(&server, &brand.admin_email).await;
    let response = admin
        .http
        .patch(format!("{}/api/v1/brand", server.http))
        .bearer_auth(&admin.token)
        .json(&json!({"follow_up_history": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["follow_up_history"], true);
    let (_, list) = alice_rest.get(&format!("/api/v1/conversations?consumer_id={consumer_id}")).await;
    let ids: Vec<i64> = list["conversations"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![alices, bobs]);
    assert_eq!(alice_rest.get(&format!("/api/v1/conversations/{bobs}")).await.0, 200);
}
