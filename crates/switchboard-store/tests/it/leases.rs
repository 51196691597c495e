//! Leases: one holder at a time per name, across holders of one database (on PostgreSQL each
//! holder is a session of its own, like the nodes of a fleet).

use switchboard_store::Store;

async fn test_a_lease_has_one_holder_until_given_back_or_dropped(store: Store) {
    let node_a = store.lease_holder().await.unwrap();
    let node_b = store.lease_holder().await.unwrap();
    assert!(node_a.try_take("engine:acme").await.unwrap());
    assert!(node_a.try_take("engine:acme").await.unwrap(), "taking one's own lease again is fine");
    assert!(!node_b.try_take("engine:acme").await.unwrap(), "two holders of one lease");
    assert!(node_b.try_take("engine:globex").await.unwrap(), "another name is another lease");
    assert!(node_a.holds("engine:acme") && !node_b.holds("engine:acme"));

    node_a.give_back("engine:acme").await.unwrap();
    assert!(!node_a.holds("engine:acme"));
    assert!(node_b.try_take("engine:acme").await.unwrap(), "given back, taken by the other");
    assert!(!node_a.try_take("engine:acme").await.unwrap());

    // A holder that goes away (a node that dies) frees everything it held.
    drop(node_b);
    let node_c = store.lease_holder().await.unwrap();
    let mut taken = false;
    for _ in 0..50 {
        // PostgreSQL ends the session's locks once it has seen the connection close.
        if node_c.try_take("engine:acme").await.unwrap() {
            taken = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(taken, "the lease of a holder that went away is free again");
    assert!(node_c.try_take("engine:globex").await.unwrap());
    node_a.check().await.unwrap();
}

conformance_tests! {
    store: [test_a_lease_has_one_holder_until_given_back_or_dropped],
}
