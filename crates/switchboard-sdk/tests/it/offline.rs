//! Offline-first: the outbox survives, is sent exactly once in order, and the cache resumes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use switchboard_sdk::{Auth, Client, ConnectionState, Event, MessageState, SdkError};

use crate::harness::*;

#[tokio::test]
async fn messages_written_offline_are_sent_once_in_order_even_after_an_app_restart() {
    let (addr, server_dir) = TestServer::reserve().await;
    // The server's demo key does not exist until it starts; the token provider fails until
    // then, which the SDK treats like being offline.
    let dir = temp_dir("sdk-client");
    let tokens = dev_tokens(&server_dir, "erin");
    {
        let client = sdk(&format!("http://{addr}"), tokens.clone(), &dir);
        client.connect();
        for text in ["one", "two", "three"] {
            client.send_text(text).unwrap();
        }
        let pending = client.pending_messages().unwrap();
        assert_eq!(pending.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["one", "two", "three"]);
        assert!(pending.iter().all(|m| m.state == MessageState::Pending));
        // The app is killed: no shutdown.
    }
    let server = TestServer::start_at(addr, server_dir).await;
    let mut agent = Agent::online(&server).await;
    let client = sdk(&server.url(), tokens, &dir);
    let mut events = Events::of(&client);
    client.connect();
    client.send_text("four").unwrap();
    for _ in 0..4 {
        expect_event(&mut events, |e| matches!(e, Event::MessageStateChanged { state: MessageState::Sent, .. })).await;
    }
    let texts = agent.consumer_texts(Duration::from_millis(500)).await;
    assert_eq!(texts, ["one", "two", "three", "four"], "each once, in order");
    assert!(client.pending_messages().unwrap().is_empty());
}

#[tokio::test]
async fn a_wrong_key_is_a_clear_error() {
    let dir = temp_dir("sdk-key");
    let server = TestServer::start().await;
    let client = sdk(&server.url(), dev_tokens(&server.data_dir, "key"), &dir);
    client.send_text("secret").unwrap();
    drop(client);
    let error = Client::builder(server.url(), "demo", "demo-app")
        .auth(Auth::Anonymous)
        .data_dir(&dir)
        .encryption_key([1; 32])
        .build()
        .unwrap_err();
    assert_eq!(error, SdkError::WrongKey);
    assert!(!error.is_transient());
}

#[tokio::test]
async fn after_a_server_restart_the_client_resumes_with_exactly_the_missing_messages() {
    let mut server = TestServer::start().await;
    let mut agent = Agent::online(&server).await;
    let client = sdk(&server.url(), dev_tokens(&server.data_dir, "finn"), &temp_dir("sdk-client"));
    let mut events = Events::of(&client);
    client.connect();
    client.send_text("hi").unwrap();
    let Event::MessageStateChanged { conversation: Some(c), .. } =
        expect_event(&mut events, |e| matches!(e, Event::MessageStateChanged { state: MessageState::Sent, .. })).await
    else {
        unreachable!()
    };
    agent.expect(|f| f["t"] == "msg").await;
    agent.reply(c, "reply 1").await;
    expect_event(&mut events, |e| matches!(e, Event::MessageReceived(_))).await;

    // The server goes away; while it is down the consumer writes; it comes back, the agent
    // writes more before the client reconnects.
    server.stop().await;
    expect_event(&mut events, |e| matches!(e, Event::Connection(ConnectionState::WaitingToReconnect { .. }))).await;
    client.send_text("still there?").unwrap();
    server.restart().await;
    let mut agent = Agent::online(&server).await;
    agent.reply(c, "reply 2").await;
    agent.reply(c, "reply 3").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while client.messages(c).unwrap().len() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "cache: {:?}",
            client.messages(c).unwrap().iter().map(|m| (m.seq, m.text.clone())).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cached = client.messages(c).unwrap();
    let seqs: Vec<i64> = cached.iter().map(|m| m.seq.unwrap()).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5], "gap-free, no duplicates");
    let texts: Vec<&str> = cached.iter().map(|m| m.text.as_str()).collect();
    assert!(texts.contains(&"still there?") && texts.contains(&"reply 2") && texts.contains(&"reply 3"), "{texts:?}");
    assert_eq!(texts.iter().filter(|t| **t == "still there?").count(), 1);
}

#[tokio::test]
async fn an_expired_token_is_replaced_by_asking_the_provider_again() {
    let server = TestServer::start().await;
    let mut agent = Agent::online(&server).await;
    let tokens = Arc::new(DevTokens {
        data_dir: server.data_dir.clone(),
        subject: "gale".into(),
        calls: AtomicUsize::new(0),
        short: 1,
        // Expired 27 s ago: accepted within the server's 30 s leeway, cut off 3 s later.
        short_ttl: -27,
    });
    let client = sdk(&server.url(), tokens.clone(), &temp_dir("sdk-client"));
    let mut events = Events::of(&client);
    client.connect();
    expect_event(&mut events, |e| *e == Event::Connection(ConnectionState::Connected)).await;
    // The first token's leeway ends after 3 s: the server closes with 4001, the SDK asks again.
    expect_event(&mut events, |e| matches!(e, Event::Error { transient: true, .. })).await;
    expect_event(&mut events, |e| *e == Event::Connection(ConnectionState::Connected)).await;
    assert!(tokens.calls.load(Ordering::SeqCst) >= 2);
    client.send_text("after the refresh").unwrap();
    let texts = loop {
        let texts = agent.consumer_texts(Duration::from_millis(200)).await;
        if !texts.is_empty() {
            break texts;
        }
    };
    assert_eq!(texts, ["after the refresh"]);
}

#[tokio::test]
async fn a_conversation_closed_while_the_device_was_away_shows_as_closed_on_return() {
    let server = TestServer::start().await;
    let mut agent = Agent::online(&server).await;
    let dir = temp_dir("sdk-client");
    let tokens = dev_tokens(&server.data_dir, "hana");
    let client = sdk(&server.url(), tokens.clone(), &dir);
    let mut events = Events::of(&client);
    client.connect();
    client.send_text("hello").unwrap();
    let Event::MessageStateChanged { conversation: Some(c), .. } =
        expect_event(&mut events, |e| matches!(e, Event::MessageStateChanged { state: MessageState::Sent, .. })).await
    else {
        unreachable!()
    };
    agent.expect(|f| f["t"] == "msg").await;
    client.shutdown().await;
    drop(client);

    agent.send(serde_json::json!({"t": "close", "id": 3, "c": c})).await;
    agent.expect(|f| f["t"] == "ok" && f["id"] == 3).await;
    let client = sdk(&server.url(), tokens, &dir);
    assert_eq!(
        client.conversations().unwrap()[0].status,
        switchboard_sdk::ConversationStatus::Open,
        "stale until connected"
    );
    let mut events = Events::of(&client);
    client.connect();
    expect_event(&mut events, |e| *e == Event::Closed { conversation: c, by: None }).await;
    assert_eq!(client.conversations().unwrap()[0].status, switchboard_sdk::ConversationStatus::Closed);
}

#[tokio::test]
async fn closing_from_the_device_updates_the_cache_and_reports_it() {
    let server = TestServer::start().await;
    let client = sdk(&server.url(), dev_tokens(&server.data_dir, "ivan"), &temp_dir("sdk-client"));
    let mut events = Events::of(&client);
    client.connect();
    client.send_text("never mind").unwrap();
    let Event::MessageStateChanged { conversation: Some(c), .. } =
        expect_event(&mut events, |e| matches!(e, Event::MessageStateChanged { state: MessageState::Sent, .. })).await
    else {
        unreachable!()
    };
    client.close_conversation().await.unwrap();
    expect_event(&mut events, |e| *e == Event::Closed { conversation: c, by: Some(switchboard_sdk::Side::Consumer) })
        .await;
    assert_eq!(client.conversations().unwrap()[0].status, switchboard_sdk::ConversationStatus::Closed);
}

#[tokio::test]
async fn the_queue_estimate_is_kept_across_an_app_restart_offline_until_an_agent_takes_over() {
    let server = TestServer::start().await;
    // Alice can hold one conversation: the first consumer takes her, the second waits with
    // an estimate (an estimate needs an online agent with the skill).
    set_capacity(&server, "alice@demo.test", 1).await;
    let mut agent = Agent::online(&server).await;
    let first = sdk(&server.url(), dev_tokens(&server.data_dir, "first"), &temp_dir("sdk-client"));
    let mut first_events = Events::of(&first);
    first.connect();
    first.send_text("I came first").unwrap();
    expect_event(&mut first_events, |e| matches!(e, Event::Assigned { .. })).await;
    assert_eq!(first.queue_estimate().unwrap(), None, "assigned at once: no wait to show");

    let dir = temp_dir("sdk-client");
    let tokens = dev_tokens(&server.data_dir, "queued");
    let client = sdk(&server.url(), tokens.clone(), &dir);
    let mut events = Events::of(&client);
    client.connect();
    let before_ms = now_ms();
    client.send_text("Anyone there?").unwrap();
    let Event::Queued { conversation: c, eta_secs: Some(eta) } =
        expect_event(&mut events, |e| matches!(e, Event::Queued { eta_secs: Some(_), .. })).await
    else {
        unreachable!()
    };
    let kept = client.queue_estimate().unwrap().expect("estimate kept");
    assert_eq!((kept.conversation, kept.eta_secs), (c, eta));
    assert!(kept.received_ms >= before_ms && kept.received_ms <= now_ms());
    // The app is killed.
    drop(client);

    // Restarted and not connected (offline): the same estimate, counting down from when it
    // was received.
    let client = sdk(&server.url(), tokens.clone(), &dir);
    let restored = client.queue_estimate().unwrap().expect("estimate after restart");
    assert_eq!(restored, kept);
    assert_eq!(restored.remaining_secs(kept.received_ms), eta);
    assert_eq!(restored.remaining_secs(kept.received_ms + 1500), eta.saturating_sub(1));
    assert_eq!(restored.remaining_secs(kept.received_ms + i64::from(eta) * 1000 + 1), 0);

    // Connected again: Alice finishes the first conversation and takes this one; the
    // estimate is forgotten, also for the next start.
    let mut events = Events::of(&client);
    client.connect();
    expect_event(&mut events, |e| *e == Event::Connection(ConnectionState::Connected)).await;
    let first_c = first.conversations().unwrap()[0].id;
    agent.send(serde_json::json!({"t": "close", "id": 9, "c": first_c})).await;
    expect_event(&mut events, |e| matches!(e, Event::Assigned { conversation, .. } if *conversation == c)).await;
    assert_eq!(client.queue_estimate().unwrap(), None);
    drop(client);
    let client = sdk(&server.url(), tokens, &dir);
    assert_eq!(client.queue_estimate().unwrap(), None, "forgotten on disk too");
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}
