//! The conversation path end to end: consumer → agent → consumer, receipts, typing, resume,
//! idempotency, close, survey and history.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn consumer_writes_agent_receives_and_replies_then_resolves_with_survey() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut agent = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "carol").await;

    consumer.send(json!({"t": "send", "id": 7, "cid": "m1", "text": "Hello, my order is late"})).await;
    let ack = consumer.expect(|f| f["t"] == "ack").await;
    assert_eq!(ack["id"], 7);
    assert_eq!(ack["seq"], 1);
    let c = ack["c"].as_i64().unwrap();

    // The agent gets the assignment (with the consumer's profile from the token) and the
    // message; the consumer learns who took it.
    let assigned = agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;
    assert_eq!(assigned["c"], c);
    assert_eq!(assigned["conv"]["consumer"]["name"], "Customer carol");
    assert_eq!(assigned["conv"]["consumer"]["email"], "carol@example.com");
    let msg = agent.expect(|f| f["t"] == "msg").await;
    assert_eq!(msg["text"], "Hello, my order is late");
    assert_eq!(msg["from"], "c");
    let told = consumer.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;
    assert!(told["agent"].as_str().unwrap().contains("Agent"), "{told}");

    // Typing and read receipts show on both sides.
    agent.send(json!({"t": "typing", "c": c, "on": true})).await;
    let typing = consumer.expect(|f| f["t"] == "typing").await;
    let agent_name = format!("Agent of {}", brand.id);
    assert_eq!(
        typing,
        json!({"t": "typing", "c": c, "by": "a", "on": true, "name": agent_name}),
        "with the agent's name"
    );
    agent.send(json!({"t": "rcpt", "c": c, "seq": 1, "k": "read"})).await;
    let read = consumer.expect(|f| f["t"] == "rcpt").await;
    assert_eq!(read, json!({"t": "rcpt", "c": c, "by": "a", "k": "read", "seq": 1}));

    agent.send(json!({"t": "send", "id": 2, "c": c, "cid": "a1", "text": "Let me check that for you"})).await;
    let agent_ack = agent.expect(|f| f["t"] == "ack").await;
    assert_eq!(agent_ack["seq"], 2);
    let reply = consumer.expect(|f| f["t"] == "msg").await;
    assert_eq!(reply["text"], "Let me check that for you");
    assert_eq!(reply["from"], "a");
    assert_eq!(reply["seq"], 2);
    consumer.send(json!({"t": "rcpt", "c": c, "seq": 2, "k": "read"})).await;
    let read = agent.expect(|f| f["t"] == "rcpt").await;
    assert_eq!(read["by"], "c");

    // Resolve: the consumer gets the closed notice and the survey; answering works once.
    agent.send(json!({"t": "close", "id": 3, "c": c})).await;
    agent.expect(|f| f["t"] == "ok" && f["id"] == 3).await;
    let closed = consumer.expect(|f| f["t"] == "conv" && f["ev"] == "closed").await;
    assert_eq!(closed["by"], "a");
    consumer.expect(|f| f["t"] == "survey" && f["c"] == c).await;
    // A device that was away gets the pending survey in its welcome.
    let mut away = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    let token = rs256_token(&claims(&brand, "carol", 60));
    let welcome = away.hello(json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "token": token})).await;
    assert_eq!(welcome["convs"][0]["c"], c);
    assert_eq!(welcome["convs"][0]["survey"], true);
    consumer.send(json!({"t": "csat", "id": 9, "c": c, "score": 5, "comment": "quick and kind"})).await;
    consumer.expect(|f| f["t"] == "ok" && f["id"] == 9).await;
    consumer.send(json!({"t": "csat", "id": 10, "c": c, "score": 4})).await;
    let again = consumer.expect(|f| f["t"] == "err").await;
    assert_eq!(again["code"], "survey_already_answered");
    assert_eq!(server.store.conversation(&brand.id, c).await.unwrap().unwrap().csat_score, Some(5));

    // A new consumer message after close starts a new conversation.
    consumer.send(json!({"t": "send", "id": 11, "cid": "m2", "text": "One more thing"})).await;
    let ack = consumer.expect(|f| f["t"] == "ack").await;
    assert_ne!(ack["c"], c);
    assert_eq!(ack["seq"], 1);

    // History shows both, newest first, filterable by status.
    consumer.send(json!({"t": "history", "id": 12})).await;
    let history = consumer.expect(|f| f["t"] == "history").await;
    let convs = history["convs"].as_array().unwrap();
    assert_eq!(convs.len(), 2);
    assert_eq!(convs[1]["c"], c);
    assert_eq!(convs[1]["csat"], 5);
    consumer.send(json!({"t": "history", "id": 13, "status": "closed"})).await;
    let closed_only = consumer.expect(|f| f["t"] == "history" && f["id"] == 13).await;
    assert_eq!(closed_only["convs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_same_idempotency_id_twice_is_stored_once() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut consumer = server.consumer(&brand, "dave").await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "retry-me", "text": "first try"})).await;
    let first = consumer.expect(|f| f["t"] == "ack" && f["id"] == 1).await;
    consumer.send(json!({"t": "send", "id": 2, "cid": "retry-me", "text": "first try"})).await;
    let second = consumer.expect(|f| f["t"] == "ack" && f["id"] == 2).await;
    assert_eq!((first["c"].clone(), first["seq"].clone()), (second["c"].clone(), second["seq"].clone()));
    let c = first["c"].as_i64().unwrap();
    let stored = server.store.messages_after(&brand.id, c, 0, 100).await.unwrap();
    assert_eq!(stored.len(), 1);
}

#[tokio::test]
async fn reconnect_after_seq_n_gets_exactly_the_missing_messages() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut agent = server.online_agent(&brand.agent_email).await;
    let mut consumer = server.consumer(&brand, "erin").await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "e1", "text": "hi"})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;
    drop(consumer);
    for i in 0..5 {
        agent
            .send(json!({"t": "send", "id": 10 + i, "c": c, "cid": format!("a{i}"), "text": format!("reply {i}")}))
            .await;
        agent.expect(|f| f["t"] == "ack" && f["id"] == 10 + i).await;
    }
    // Back on another device: the welcome names the open conversation and its last seq.
    let mut device = server.consumer(&brand, "erin").await;
    device.send(json!({"t": "sync", "id": 3, "c": c, "after": 3})).await;
    let msgs = device.expect(|f| f["t"] == "msgs").await;
    let seqs: Vec<i64> = msgs["msgs"].as_array().unwrap().iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, vec![4, 5, 6]);
    assert_eq!(msgs["more"], false);
    device.send(json!({"t": "sync", "id": 4, "c": c, "after": 0, "limit": 2})).await;
    let page = device.expect(|f| f["t"] == "msgs" && f["id"] == 4).await;
    assert_eq!(page["msgs"].as_array().unwrap().len(), 2);
    assert_eq!(page["more"], true);
}

#[tokio::test]
async fn other_devices_of_the_consumer_see_messages_live_but_the_sender_gets_only_its_ack() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut phone = server.consumer(&brand, "fay").await;
    let mut tablet = server.consumer(&brand, "fay").await;
    phone.send(json!({"t": "send", "id": 1, "cid": "f1", "text": "from my phone"})).await;
    let c = phone.expect(|f| f["t"] == "ack").await["c"].clone();
    let opened = tablet.expect(|f| f["t"] == "conv" && f["ev"] == "opened").await;
    assert_eq!(opened["c"], c);
    assert_eq!(opened["conv"]["status"], "open");
    let seen = tablet.expect(|f| f["t"] == "msg").await;
    assert_eq!(seen["text"], "from my phone");
    assert_eq!(seen["cid"], "f1");
    phone.expect_none(std::time::Duration::from_millis(300), |f| f["t"] == "msg" || f["ev"] == "opened").await;
}

#[tokio::test]
async fn conversations_wait_for_capacity_and_are_assigned_oldest_first() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    // No agent online: the consumer is told it is queued.
    let mut first = server.consumer(&brand, "q1").await;
    first.send(json!({"t": "send", "id": 1, "cid": "x", "text": "first"})).await;
    let c1 = first.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    first.expect(|f| f["t"] == "conv" && f["ev"] == "queued").await;
    let mut second = server.consumer(&brand, "q2").await;
    second.send(json!({"t": "send", "id": 1, "cid": "x", "text": "second"})).await;
    second.expect(|f| f["t"] == "conv" && f["ev"] == "queued").await;
    // The agent comes online with capacity 5: both assigned, the older first.
    let mut agent = server.online_agent(&brand.agent_email).await;
    let a = agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;
    assert_eq!(a["c"], c1);
    agent.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;
    first.expect(|f| f["t"] == "conv" && f["ev"] == "assigned").await;
}

#[tokio::test]
async fn agents_cannot_start_a_conversation_with_a_consumer_who_never_wrote() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let consumer =
        server.store.upsert_consumer(&brand.id, "silent", &Default::default(), now_secs() * 1000).await.unwrap();
    let mut agent = server.online_agent(&brand.agent_email).await;
    agent.send(json!({"t": "send", "id": 5, "consumer": consumer.id, "cid": "p1", "text": "Hi there!"})).await;
    let error = agent.expect(|f| f["t"] == "err").await;
    assert_eq!(error["id"], 5);
    assert_eq!(error["code"], "consumer_never_wrote");
}

#[tokio::test]
async fn over_limit_text_is_refused_naming_the_limit_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut consumer = server.consumer(&brand, "gus").await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "long", "text": "é".repeat(2001)})).await;
    let error = consumer.expect(|f| f["t"] == "err").await;
    assert_eq!(error["code"], "text_too_long");
    assert!(error["msg"].as_str().unwrap().contains("2000"), "{error}");
    consumer.send(json!({"t": "send", "id": 2, "cid": "ok", "text": "é".repeat(2000)})).await;
    let ack = consumer.expect(|f| f["t"] == "ack").await;
    assert_eq!(ack["seq"], 1, "the refused message took no seq");
}

#[tokio::test]
async fn pipelined_sends_are_acknowledged_in_order_with_consecutive_seqs() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut consumer = server.consumer(&brand, "pipe").await;
    for i in 0..30 {
        consumer.send(json!({"t": "send", "id": i, "cid": format!("p{i}"), "text": format!("burst {i}")})).await;
    }
    // A receipt after the burst is answered after every ack (commands keep their order).
    consumer.send(json!({"t": "ping", "id": 99})).await;
    let mut answers = Vec::new();
    while answers.len() < 31 {
        let frame = consumer.next().await.unwrap();
        if frame["t"] == "ack" || frame["t"] == "pong" {
            answers.push(frame);
        }
    }
    for (i, ack) in answers[..30].iter().enumerate() {
        assert_eq!(ack["t"], "ack");
        assert_eq!(ack["id"], i as u64, "acks in request order");
        assert_eq!(ack["seq"], i as u64 + 1, "seqs in send order");
    }
    assert_eq!(answers[30]["t"], "pong");
}

#[tokio::test]
async fn devices_register_push_tokens_for_their_consumer() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut consumer = server.consumer(&brand, "pushy").await;
    consumer.send(json!({"t": "push", "id": 1, "provider": "fcm", "token": "fcm-token-1"})).await;
    consumer.expect(|f| f["t"] == "ok" && f["id"] == 1).await;
    consumer.send(json!({"t": "push", "id": 2, "provider": "apns", "token": ""})).await;
    assert_eq!(consumer.expect(|f| f["t"] == "err").await["code"], "bad_request");
    let id = server.store.consumer_by_external_id(&brand.id, "pushy").await.unwrap().unwrap().id;
    let tokens = server.store.push_tokens(&brand.id, id).await.unwrap();
    assert_eq!(tokens, vec![("fcm".to_owned(), "fcm-token-1".to_owned(), brand.app.clone())]);
}

#[tokio::test]
async fn a_managers_message_in_an_agents_conversation_reaches_the_agent_and_the_managers_other_tabs() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let mut agent = server.online_agent(&brand.agent_email).await;
    let manager_email = format!("manager@{}.test", brand.id);
    server.user(&brand, &manager_email, "Morgan Manager", switchboard_store::Role::Manager, 0, vec![]).await;
    let token = server.login(&manager_email).await;
    let mut tabs = Vec::new();
    for _ in 0..2 {
        let mut tab = Client::connect(&format!("{}/v1/agent", server.ws)).await;
        let welcome = tab.hello(json!({"t": "hello", "v": 1, "session": token})).await;
        assert_eq!(welcome["t"], "welcome", "{welcome}");
        tabs.push(tab);
    }
    let mut consumer = server.consumer(&brand, "dora").await;
    consumer.send(json!({"t": "send", "id": 1, "cid": "m1", "text": "Hi"})).await;
    let c = consumer.expect(|f| f["t"] == "ack").await["c"].as_i64().unwrap();
    agent.expect(|f| f["t"] == "msg" && f["c"] == c).await;

    tabs[0].send(json!({"t": "send", "id": 5, "c": c, "cid": "mgr-1", "text": "Stepping in to help"})).await;
    tabs[0].expect(|f| f["t"] == "ack" && f["id"] == 5).await;
    for (who, client) in
        [("consumer", &mut consumer), ("holding agent", &mut agent), ("manager's other tab", &mut tabs[1])]
    {
        let msg = client.expect(|f| f["t"] == "msg" && f["c"] == c && f["seq"] == 2).await;
        assert_eq!(msg["text"], "Stepping in to help", "the {who} gets the manager's message");
    }
}
