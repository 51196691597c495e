//! Races on the desk (issue "The conversation desk", item 11): consumers opening and closing
//! conversations while agents connect, drop, hand conversations back and resolve them, with
//! restarts between rounds. Whatever the interleaving, no conversation is ever held by two
//! agents, nobody holds more than their capacity, the engine's loads equal what the store
//! says, and a conversation held by an agent who is gone returns to the queue (grace 0).

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_server::ServerConfig;
use switchboard_store::{BrandPatch, Role, Store};
use tokio::task::JoinSet;

use crate::harness::*;

const AGENTS: usize = 3;
const CAPACITY: i64 = 2;
const CONSUMERS: usize = 8;

/// A small deterministic generator (xorshift) so a failing interleaving is likely to recur.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

async fn agent_socket(ws: &str, token: &str) -> Client {
    let mut agent = Client::connect(&format!("{ws}/v1/agent")).await;
    let welcome = agent.hello(json!({"t": "hello", "v": 1, "session": token})).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    agent.send(json!({"t": "state", "id": 1, "state": "online"})).await;
    agent.expect(|f| f["t"] == "ok" && f["id"] == 1).await;
    agent
}

/// One agent's churn: connect, hand back or resolve what they hold, drop, again.
async fn churn(http: String, ws: String, store: Store, brand: String, agent_id: i64, token: String, seed: u64) {
    let mut rng = Rng(seed);
    let client = reqwest::Client::new();
    for _ in 0..4 {
        let mut socket = agent_socket(&ws, &token).await;
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
        for conversation in store.agent_conversations(&brand, agent_id).await.unwrap() {
            match rng.below(3) {
                0 => {
                    let response = client
                        .post(format!("{http}/api/v1/conversations/{}/transfer", conversation.id))
                        .bearer_auth(&token)
                        .json(&json!({}))
                        .send()
                        .await
                        .unwrap();
                    // Lost races are answered, never a server error.
                    assert!(response.status().as_u16() < 500, "transfer: {}", response.status());
                }
                1 => socket.send(json!({"t": "close", "id": 9, "c": conversation.id})).await,
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.below(40))).await;
        drop(socket);
    }
}

/// One consumer: opens a conversation with two messages, and sometimes closes it.
async fn consumer_turn(ws: String, brand: TestBrand, sub: String, close: bool) {
    let token = rs256_token(&claims(&brand, &sub, 3600));
    let mut consumer = Client::connect(&format!("{ws}/v1/consumer")).await;
    let welcome =
        consumer.hello(json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "token": token})).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    for n in 1..=2 {
        consumer.send(json!({"t": "send", "id": n, "cid": format!("{sub}-{n}-{}", now_secs()), "text": "hello"})).await;
    }
    let ack = consumer.expect(|f| f["t"] == "ack" && f["id"] == 2).await;
    if close {
        consumer.send(json!({"t": "close", "id": 3, "c": ack["c"]})).await;
        consumer.expect(|f| f["t"] == "ok" && f["id"] == 3).await;
    }
}

/// The engine and the store agree on every agent's load, nobody is over capacity, and
/// (with every agent gone and grace 0) nothing stays assigned. Retries while the last
/// disconnects are still being processed.
async fn check_agreement(server: &TestServer, brand: &TestBrand, agents: &[i64]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let floor = server.running.as_ref().unwrap().state.engines.floor(&brand.id, Vec::new()).await;
        let mut disagreement = Vec::new();
        for agent in agents {
            let stored = server.store.agent_conversations(&brand.id, *agent).await.unwrap().len() as u32;
            let engine = floor.agents.iter().find(|view| view.agent == *agent).map_or(0, |view| view.load);
            assert!(i64::from(stored) <= CAPACITY, "agent {agent} holds {stored} > {CAPACITY} in the store");
            if stored != engine || stored != 0 {
                disagreement.push((agent, stored, engine));
            }
        }
        if disagreement.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "(agent, stored load, engine load) still disagree or hold conversations of gone agents: {disagreement:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_opens_hand_backs_closes_disconnects_and_restarts_never_double_assign() {
    let config = ServerConfig { wait_refresh: Duration::from_millis(200), ..ServerConfig::default() };
    let mut server = TestServer::start_with(config.clone()).await;
    let brand = server.brand().await;
    let patch = BrandPatch { agent_grace_secs: Some(0), ..Default::default() };
    server.store.update_brand(&brand.id, &patch).await.unwrap();
    let mut agents = Vec::new();
    for n in 0..AGENTS {
        let email = format!("racer{n}@{}.test", brand.id);
        let id = server.user(&brand, &email, &format!("Racer {n}"), Role::Agent, CAPACITY, vec![]).await;
        agents.push((id, email));
    }
    server.restart(config.clone()).await;
    let ids: Vec<i64> = agents.iter().map(|(id, _)| *id).collect();
    for round in 0..3u64 {
        let mut tasks = JoinSet::new();
        for (n, (id, email)) in agents.iter().enumerate() {
            let token = server.login(email).await;
            let seed = 0x9e37_79b9 ^ (round << 8) ^ n as u64;
            tasks.spawn(churn(
                server.http.clone(),
                server.ws.clone(),
                server.store.clone(),
                brand.id.clone(),
                *id,
                token,
                seed | 1,
            ));
        }
        for n in 0..CONSUMERS {
            let brand = brand_copy(&brand);
            tasks.spawn(consumer_turn(server.ws.clone(), brand, format!("racer-{round}-{n}"), n % 3 == 0));
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap();
        }
        check_agreement(&server, &brand, &ids).await;
        // Every open conversation waits for an agent, with the event log to say how it got there.
        let open = server.store.open_conversations(&brand.id).await.unwrap();
        assert!(open.iter().all(|c| c.agent_id.is_none()), "{open:?}");
        server.restart(config.clone()).await;
        check_agreement(&server, &brand, &ids).await;
    }
    // Once an agent is back, the queue drains into their capacity and no further.
    let mut socket = agent_socket(&server.ws, &server.login(&agents[0].1).await).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held = server.store.agent_conversations(&brand.id, agents[0].0).await.unwrap().len() as i64;
        let open = server.store.open_conversations(&brand.id).await.unwrap().len() as i64;
        if held == open.min(CAPACITY) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "holds {held} of {open} open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The races did happen: conversations were assigned and moved back to the queue.
    let all = server.store.conversations(&brand.id, &Default::default(), None, 500).await.unwrap();
    let mut kinds = std::collections::BTreeMap::<String, usize>::new();
    for conversation in &all.conversations {
        for event in server.store.conversation_events(&brand.id, conversation.id).await.unwrap() {
            *kinds.entry(event.kind).or_default() += 1;
        }
    }
    // At least one per consumer turn: an agent may close a conversation between a consumer's
    // two messages, and the second then opens a new one.
    assert!(all.conversations.len() >= 3 * CONSUMERS, "{} conversations, {kinds:?}", all.conversations.len());
    assert!(
        kinds.get("assigned").copied().unwrap_or(0) >= 3 && kinds.get("queued").copied().unwrap_or(0) >= 3,
        "{kinds:?}"
    );
    socket.send(json!({"t": "ping", "id": 99})).await;
    let pong: Value = socket.expect(|f| f["t"] == "pong").await;
    assert_eq!(pong["id"], 99);
}

fn brand_copy(brand: &TestBrand) -> TestBrand {
    TestBrand {
        id: brand.id.clone(),
        app: brand.app.clone(),
        admin_email: brand.admin_email.clone(),
        agent_email: brand.agent_email.clone(),
    }
}
