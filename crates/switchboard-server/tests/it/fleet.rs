//! Several nodes on one PostgreSQL database with NATS between them (issue 14), in one
//! process: each node is a whole server with its own store pool, bus and engines. The
//! failure tests with separate processes (`kill -9`, NATS and PostgreSQL restarts) are the
//! binary's (`crates/switchboard/tests/it/fleet.rs`).

use std::time::Duration;

use serde_json::json;
use switchboard_bus::testing::NatsServer;
use switchboard_server::ServerConfig;

use crate::harness::*;

fn fleet_config(nats: &NatsServer) -> ServerConfig {
    ServerConfig { nats_url: Some(nats.url()), ..ServerConfig::default() }
}

fn leads(server: &TestServer, brand: &TestBrand) -> bool {
    server.running.as_ref().is_some_and(|running| running.state.engines.leads(&brand.id))
}

/// Waits until exactly one of `nodes` runs the brand's engine; returns which.
async fn leader(nodes: &[&TestServer], brand: &TestBrand) -> usize {
    for _ in 0..100 {
        let leading: Vec<usize> = (0..nodes.len()).filter(|i| leads(nodes[*i], brand)).collect();
        assert!(leading.len() <= 1, "two nodes run the brand's engine: {leading:?}");
        if let [one] = leading[..] {
            return one;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no node took the brand's engine within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and nats-server: set SWITCHBOARD_TEST_POSTGRES_URL, run with --include-ignored"]
async fn nodes_share_conversations_and_one_engine_which_another_node_takes_over() {
    let nats = NatsServer::start();
    let mut a = TestServer::start_on(Backend::Postgres, fleet_config(&nats)).await;
    let b = TestServer::join(&a, fleet_config(&nats)).await;
    let c = TestServer::join(&a, fleet_config(&nats)).await;
    let brand = a.brand().await;
    assert_eq!(leader(&[&a, &b, &c], &brand).await, 0, "the node that first needed the brand runs its engine");

    // An agent on c, a consumer on b, the consumer's second device on a.
    let mut agent = c.online_agent(&brand.agent_email).await;
    let mut phone = b.consumer(&brand, "carol").await;
    let mut tablet = a.consumer(&brand, "carol").await;
    phone.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Hello from node b"})).await;
    let ack = phone.expect(|f| f["t"] == "ack").await;
    let c1 = ack["c"].as_i64().unwrap();
    let assigned = agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;
    assert_eq!(assigned["c"], c1, "the engine on a routed b's conversation to the agent on c");
    let msg = agent.expect(|f| f["t"] == "msg").await;
    assert_eq!(msg["text"], "Hello from node b");
    let copy = tablet.expect(|f| f["t"] == "msg").await;
    assert_eq!(copy["text"], "Hello from node b", "the other device, on another node, has it too");

    agent.send(json!({"t": "send", "id": 2, "c": c1, "cid": "a1", "text": "Hello from node c"})).await;
    agent.expect(|f| f["t"] == "ack" && f["id"] == 2).await;
    for device in [&mut phone, &mut tablet] {
        let reply = device.expect(|f| f["t"] == "msg" && f["from"] == "a").await;
        assert_eq!(reply["text"], "Hello from node c");
    }

    // The leading node stops: another takes the brand over, learns the agent is connected,
    // and routes the next conversation.
    a.running.take().unwrap().shutdown().await.unwrap();
    let now = leader(&[&b, &c], &brand).await;
    let mut dave = b.consumer(&brand, "dave").await;
    dave.send(json!({"t": "send", "id": 1, "cid": "d1", "text": "After the takeover"})).await;
    let c2 = dave.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let assigned = agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c2).await;
    assert_eq!(assigned["c"], c2, "routing continues on node {}", ["b", "c"][now]);

    // Both conversations are held by the agent, each once.
    for id in [c1, c2] {
        let stored = b.store.conversation(&brand.id, id).await.unwrap().unwrap();
        assert!(stored.agent_id.is_some(), "conversation {id} is assigned");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and nats-server: set SWITCHBOARD_TEST_POSTGRES_URL, run with --include-ignored"]
async fn a_key_removed_on_one_node_is_refused_at_once_by_the_others() {
    let nats = NatsServer::start();
    let a = TestServer::start_on(Backend::Postgres, fleet_config(&nats)).await;
    let b = TestServer::join(&a, fleet_config(&nats)).await;
    let brand = a.brand().await;
    // b verifies (and caches) the app's keys.
    b.consumer(&brand, "erin").await.close().await;

    let admin = a.login(&brand.admin_email).await;
    let (status, keys) =
        call(&a, &admin, reqwest::Method::GET, &format!("/api/v1/apps/{}/keys", brand.app), json!(null)).await;
    assert_eq!(status, 200);
    for key in keys.as_array().unwrap() {
        let path = format!("/api/v1/apps/{}/keys/{}", brand.app, key["id"]);
        let (status, _) = call(&a, &admin, reqwest::Method::DELETE, &path, json!(null)).await;
        assert_eq!(status, 204);
    }

    let token = rs256_token(&claims(&brand, "erin", 3600));
    let mut refused = false;
    for _ in 0..50 {
        let mut consumer = Client::connect(&format!("{}/v1/consumer", b.ws)).await;
        let answer =
            consumer.hello(json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "token": token})).await;
        if answer["t"] != "welcome" {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "node b still accepts a token whose key was removed on node a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL and nats-server: set SWITCHBOARD_TEST_POSTGRES_URL, run with --include-ignored"]
async fn a_node_whose_lease_connection_alone_breaks_writes_no_routing_decision() {
    let nats = NatsServer::start();
    let a = TestServer::start_on(Backend::Postgres, fleet_config(&nats)).await;
    let b = TestServer::join(&a, fleet_config(&nats)).await;
    let brand = a.brand().await;
    assert_eq!(leader(&[&a, &b], &brand).await, 0);
    let mut agent = b.online_agent(&brand.agent_email).await;

    // Only a's lease connection ends (its pool and writer keep working): PostgreSQL releases
    // the lease, and b may take it while a still thinks it leads.
    let pool = sqlx::PgPool::connect(&a.url).await.unwrap();
    let ended: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('engine:' || $1, 0)",
    )
    .bind(&brand.id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(ended, [true], "the lease's session was found and ended");

    // A conversation opened on a: a's engine finds its lease gone before writing, stops, and
    // the brand's engine moves to b, which routes the conversation from the store, once.
    let mut consumer = a.consumer(&brand, "gil").await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "g1", "text": "Anyone?"})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    let assigned = agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned" && f["c"] == c).await;
    assert_eq!(assigned["c"], c);
    assert_eq!(leader(&[&a, &b], &brand).await, 1, "b runs the brand's engine now");
    let assignments: i64 =
        sqlx::query_scalar("SELECT count(*) FROM conversation_events WHERE conversation_id = $1 AND kind = 'assigned'")
            .bind(c)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(assignments, 1, "assigned once");
}
