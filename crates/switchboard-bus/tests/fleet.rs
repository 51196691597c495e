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
    let fleet = bus.join_fleet(&nats.url(), name, None).await.expect("joins the fleet");
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
    let error = bus.join_fleet("nats://127.0.0.1:1", "a", None).await.expect_err("nothing listens on port 1");
    let message = error.to_string();
    assert!(message.contains("cannot connect to NATS at nats://127.0.0.1:1"), "{message}");
    let error = bus.join_fleet("http://[::1", "a", None).await.expect_err("not an address");
    assert!(error.to_string().contains("is not a NATS address"), "{error}");
}

/// Writes, into a directory of its own, a test authority's certificate (`ca.pem`) and a
/// certificate for 127.0.0.1 that it signed, with its key (`server.pem`, `server-key.pem`).
fn tls_files(name: &str) -> std::path::PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let dir = std::env::temp_dir().join(format!("sb-nats-tls-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("Switchboard test NATS CA {name}"));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).unwrap();
    dir
}

/// A fleet whose NATS speaks TLS (`tls://`): nodes that trust its authority (`ca_file`, as
/// `nats_ca_file` gives it) join and exchange events; a node that trusts another authority
/// is refused, and so is one that asks for a plain connection.
#[tokio::test]
#[ignore = "needs nats-server (Debian package nats-server): run with --include-ignored"]
async fn nodes_join_a_nats_that_speaks_tls_when_they_trust_its_authority() {
    let files = tls_files("ours");
    let nats = Nats::start_tls(files.join("server.pem"), files.join("server-key.pem"));
    assert!(nats.url().starts_with("tls://"), "{}", nats.url());
    let ca = files.join("ca.pem");
    let a = Bus::new();
    let fleet_a = a.join_fleet(&nats.url(), "a", Some(&ca)).await.expect("joins over TLS trusting the CA");
    let b = Bus::new();
    let fleet_b = b.join_fleet(&nats.url(), "b", Some(&ca)).await.expect("joins over TLS trusting the CA");
    let mut tablet_on_b = b.subscribe(consumer("acme", 1));
    fleet_b.sync().await;
    a.publish(&consumer("acme", 1), Envelope::new(7, "over TLS"));
    assert_eq!(next(&mut tablet_on_b).await, Received::Event(Envelope::new(0, "over TLS")));

    let other = tls_files("theirs").join("ca.pem");
    let error = Bus::new().join_fleet(&nats.url(), "c", Some(&other)).await.expect_err("another CA signed it");
    assert!(error.to_string().contains("cannot connect to NATS"), "{error}");
    let plain = nats.url().replacen("tls://", "nats://", 1);
    let error = Bus::new().join_fleet(&plain, "d", None).await.expect_err("the server requires TLS");
    assert!(error.to_string().contains("cannot connect to NATS"), "{error}");

    fleet_a.close().await;
    fleet_b.close().await;
    for dir in [files, other.parent().unwrap().to_path_buf()] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
