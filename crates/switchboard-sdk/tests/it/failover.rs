//! Several addresses of one service (the nodes of a fleet): the client moves to the next when
//! the one it uses cannot be reached, without waiting out its backoff first.

use std::time::Duration;

use switchboard_sdk::{Auth, Backoff, Client, Event, MessageState};
use switchboard_server::seed;

use crate::harness::*;

fn client(urls: &[String], server_data_dir: &std::path::Path, backoff: Backoff) -> Client {
    Client::builder(&urls[0], seed::DEMO_BRAND, seed::DEMO_APP)
        .fallback_servers(&urls[1..])
        .auth(Auth::Jwt(dev_tokens(server_data_dir, "fay")))
        .data_dir(temp_dir("sdk-failover"))
        .encryption_key(KEY)
        .backoff(backoff)
        .build()
        .unwrap()
}

async fn sent(events: &mut Events) -> i64 {
    let Event::MessageStateChanged { seq: Some(seq), .. } =
        expect_event(events, |e| matches!(e, Event::MessageStateChanged { state: MessageState::Sent, .. })).await
    else {
        unreachable!()
    };
    seq
}

/// The first address is dead: the client connects through the second at once. Its backoff is
/// longer than the test waits, so waiting before the second address would fail the test.
#[tokio::test]
async fn a_dead_first_address_is_skipped_for_the_next_one_at_once() {
    let (dead, _) = TestServer::reserve().await;
    let server = TestServer::start().await;
    let urls = [format!("http://{dead}"), server.url()];
    let slow = Backoff { initial: Duration::from_secs(60), max: Duration::from_secs(60) };
    let client = client(&urls, &server.data_dir, slow);
    let mut events = Events::of(&client);
    client.connect();
    client.send_text("through the second address").unwrap();
    assert_eq!(sent(&mut events).await, 1);
    client.shutdown().await;
}

/// Connected to one node, which dies: the client tries it again, then moves to the other
/// node (here the same service started on a second address) and carries on where it was.
#[tokio::test]
async fn when_its_node_dies_the_client_carries_on_through_another() {
    let mut first = TestServer::start().await;
    let (second_addr, _) = TestServer::reserve().await;
    let urls = [first.url(), format!("http://{second_addr}")];
    let client =
        client(&urls, &first.data_dir, Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(400) });
    let mut events = Events::of(&client);
    client.connect();
    client.send_text("before").unwrap();
    assert_eq!(sent(&mut events).await, 1);

    first.stop().await;
    let _second = TestServer::start_at(second_addr, first.data_dir.clone()).await;
    client.send_text("after").unwrap();
    assert_eq!(sent(&mut events).await, 2, "the same conversation, the next seq");
    client.shutdown().await;
}
