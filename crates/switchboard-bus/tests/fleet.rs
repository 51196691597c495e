//! The fleet's bus against a real NATS server: each test starts its own `nats-server` on a
//! free loopback port (Debian's package; `SWITCHBOARD_NATS_SERVER` names another binary), so
//! stopping it touches nothing shared. Two `Bus`es joined to it stand for two nodes.

use std::sync::Arc;
use std::time::Duration;

use switchboard_bus::nats::Fleet;
use switchboard_bus::testing::NatsServer as Nats;
use switchboard_bus::{Bus, Envelope, Received, Subscription, Topic};

fn consumer(brand: &str, id: i64) -> Topic {
    Topic::Consumer { brand: brand.into(), consumer: id }
}

async fn node(nats: &Nats, name: &str) -> (Arc<Bus>, Fleet) {
    let bus = Bus::new();
    let fleet = bus.join_fleet(&nats.url(), name).await.expect("joins the fleet");
    (bus, fleet)
}

/// The next thing a subscriber receives, within 5 s.
async fn next(subscription: &mut Subscription) -> Received {
    tokio::time::timeout(Duration::from_secs(5), subscription.recv()).await.expect("something arrives within 5 s")
}

async fn nothing_within(subscription: &mut Subscription, millis: u64) -> bool {
    tokio::time::timeout(Duration::from_millis(millis), subscription.recv()).await.is_err()
}

#[tokio::test]
#[ignore = "needs nats-server (Debian package nats-server): run with --include-ignored"]
async fn events_reach_subscribers_on_other_nodes_once_and_stay_in_their_brand() {
    let nats = Nats::start();
    let (a, fleet_a) = node(&nats, "a").await;
    let (b, fleet_b) = node(&nats, "b").await;
    let mut phone_on_a = a.subscribe(consumer("acme", 1));
    let mut tablet_on_b = b.subscribe(consumer("acme", 1));
    let mut other_brand_on_b = b.subscribe(consumer("globex", 1));
    let mut other_consumer_on_b = b.subscribe(consumer("acme", 2));
    let mut dashboard_on_b = b.subscribe(Topic::Brand { brand: "acme".into() });
    fleet_a.sync().await;
    fleet_b.sync().await;

    a.publish(&consumer("acme", 1), Envelope::new(7, "from a"));
    a.publish(&Topic::Brand { brand: "acme".into() }, Envelope::new(0, "queue moved"));
    assert_eq!(next(&mut tablet_on_b).await, Received::Event(Envelope::new(0, "from a")));
    assert_eq!(next(&mut phone_on_a).await, Received::Event(Envelope::new(7, "from a")));
    assert_eq!(next(&mut dashboard_on_b).await, Received::Event(Envelope::new(0, "queue moved")));
    b.publish(&consumer("acme", 1), Envelope::new(9, "from b"));
    assert_eq!(next(&mut phone_on_a).await, Received::Event(Envelope::new(0, "from b")));
    assert_eq!(next(&mut tablet_on_b).await, Received::Event(Envelope::new(9, "from b")));

    // Nothing twice (no echo from NATS), nothing for another consumer or brand.
    assert!(nothing_within(&mut phone_on_a, 300).await, "a's subscriber got a copy back from NATS");
    assert!(nothing_within(&mut tablet_on_b, 50).await, "b's subscriber got a copy back from NATS");
    assert!(nothing_within(&mut other_brand_on_b, 50).await, "another brand's consumer 1 got acme's event");
    assert!(nothing_within(&mut other_consumer_on_b, 50).await, "another consumer got the event");
    fleet_a.close().await;
    fleet_b.close().await;
}

#[tokio::test]
#[ignore = "needs nats-server (Debian package nats-server): run with --include-ignored"]
async fn a_node_stops_listening_to_a_brand_when_its_last_subscriber_leaves() {
    let nats = Nats::start();
    let (a, fleet_a) = node(&nats, "a").await;
    let (b, fleet_b) = node(&nats, "b").await;
    let first = b.subscribe(consumer("acme", 1));
    fleet_b.sync().await;
    drop(first);
    fleet_b.sync().await;
    // Subscribed again: exactly one subscription to the brand, so one copy arrives.
    let mut again = b.subscribe(consumer("acme", 1));
    fleet_b.sync().await;
    fleet_a.sync().await;
    a.publish(&consumer("acme", 1), Envelope::new(0, "hello again"));
    assert_eq!(next(&mut again).await, Received::Event(Envelope::new(0, "hello again")));
    assert!(nothing_within(&mut again, 300).await, "one subscription per brand and node, one copy");
    fleet_a.close().await;
    fleet_b.close().await;
}

/// NATS stopped and started again: a subscriber learns it may have missed events (and
/// resyncs from the store), and events flow again without anything done by hand.
#[tokio::test]
#[ignore = "needs nats-server (Debian package nats-server): run with --include-ignored"]
async fn after_nats_restarts_subscribers_resync_and_events_flow_again() {
    let mut nats = Nats::start();
    let port = nats.port();
    let (a, fleet_a) = node(&nats, "a").await;
    let (b, fleet_b) = node(&nats, "b").await;
    let mut tablet_on_b = b.subscribe(consumer("acme", 1));
    fleet_b.sync().await;
    nats.stop();
    // Published while NATS is down: the local subscriber has it, the other node cannot.
    a.publish(&consumer("acme", 1), Envelope::new(0, "while down"));
    let _nats = Nats::start_on(port);
    let received =
        tokio::time::timeout(Duration::from_secs(30), tablet_on_b.recv()).await.expect("b hears back within 30 s");
    if received != Received::Lagged {
        // "while down" may have been buffered by a's client and delivered after the
        // reconnect; the resync signal must come all the same.
        assert_eq!(received, Received::Event(Envelope::new(0, "while down")));
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(30), tablet_on_b.recv()).await.expect("resync within 30 s"),
            Received::Lagged
        );
    }
    // Both clients are back (each reconnects on its own schedule): keep publishing until one
    // arrives.
    let mut delivered = false;
    for attempt in 0..60 {
        a.publish(&consumer("acme", 1), Envelope::new(0, format!("after {attempt}")));
        match tokio::time::timeout(Duration::from_millis(500), tablet_on_b.recv()).await {
            Ok(Received::Event(payload)) if payload.text.starts_with("after") => {
                delivered = true;
                break;
            }
            _ => {}
        }
    }
    assert!(delivered, "events flow between the nodes again after NATS restarted");
    assert!(fleet_a.connected() && fleet_b.connected());
    fleet_a.close().await;
    fleet_b.close().await;
}

#[tokio::test]
async fn joining_an_address_that_is_no_nats_server_fails_with_the_address() {
    let bus = Bus::new();
    let error = bus.join_fleet("nats://127.0.0.1:1", "a").await.expect_err("nothing listens on port 1");
    let message = error.to_string();
    assert!(message.contains("cannot connect to NATS at nats://127.0.0.1:1"), "{message}");
    let error = bus.join_fleet("http://[::1", "a").await.expect_err("not an address");
    assert!(error.to_string().contains("is not a NATS address"), "{error}");
}
