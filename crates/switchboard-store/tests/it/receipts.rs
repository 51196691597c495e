//! Delivery and read receipts (cumulative, never backwards, never past the last message) and
//! the CSAT survey (only when offered, answered once).

use switchboard_protocol::{ReceiptKind, Side};
use switchboard_store::{CsatError, Store};

use crate::support::{Brand, SECOND, T0};

conformance_tests! {
    store: [
        receipts_never_move_backwards_nor_past_the_last_message,
        csat_is_answered_once_and_only_when_offered,
    ],
}

async fn receipts_never_move_backwards_nor_past_the_last_message(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let id = brand.say(alice, "c1", "one", T0).await.message.conversation_id;
    brand.say(alice, "c2", "two", T0 + SECOND).await;
    brand.say(alice, "c3", "three", T0 + 2 * SECOND).await;

    let receipt = |reader, kind, seq| {
        let store = store.clone();
        async move { store.record_receipt("acme", id, reader, kind, seq).await.unwrap() }
    };
    let positions = || async {
        let c = brand.conversation(id).await;
        [c.consumer_delivered_seq, c.consumer_read_seq, c.agent_delivered_seq, c.agent_read_seq]
    };
    assert_eq!(positions().await, [0, 0, 0, 0]);

    assert!(receipt(Side::Agent, ReceiptKind::Read, 2).await, "moving forward");
    assert!(!receipt(Side::Agent, ReceiptKind::Read, 1).await, "backwards is ignored");
    assert!(!receipt(Side::Agent, ReceiptKind::Read, 2).await, "the same position is no move");
    assert!(!receipt(Side::Agent, ReceiptKind::Read, 4).await, "past the last message is ignored");
    assert_eq!(positions().await, [0, 0, 2, 2], "read implies delivered; the consumer's side is untouched");

    assert!(receipt(Side::Agent, ReceiptKind::Delivered, 3).await);
    assert!(receipt(Side::Consumer, ReceiptKind::Delivered, 1).await);
    assert!(receipt(Side::Consumer, ReceiptKind::Read, 1).await);
    assert!(!receipt(Side::Consumer, ReceiptKind::Read, 0).await);
    assert!(!receipt(Side::Consumer, ReceiptKind::Read, -5).await);
    assert_eq!(positions().await, [1, 1, 3, 2]);

    // A new message makes the next position reachable.
    brand.say(alice, "c4", "four", T0 + 3 * SECOND).await;
    assert!(receipt(Side::Agent, ReceiptKind::Read, 4).await);
    assert_eq!(positions().await, [1, 1, 4, 4]);

    assert!(!store.record_receipt("acme", id + 1000, Side::Agent, ReceiptKind::Read, 1).await.unwrap());
}

async fn csat_is_answered_once_and_only_when_offered(store: Store) {
    let brand = Brand::create(&store, "acme").await;
    let alice = brand.consumer("alice").await;
    let bob = brand.consumer("bob").await;

    let surveyed = brand.say(alice, "c1", "help", T0).await.message.conversation_id;
    let error = store.answer_csat("acme", surveyed, alice, 5, None).await.unwrap_err();
    assert!(matches!(error, CsatError::NotAvailable), "an open conversation has no survey: {error:?}");

    let closed = store.close_conversation("acme", surveyed, Side::Agent, true, T0 + SECOND).await.unwrap().unwrap();
    assert!(closed.survey_open);
    let error = store.answer_csat("acme", surveyed, bob, 1, None).await.unwrap_err();
    assert!(matches!(error, CsatError::NotFound), "another consumer cannot answer: {error:?}");

    store.answer_csat("acme", surveyed, alice, 4, Some("quick, thanks")).await.unwrap();
    let row = brand.conversation(surveyed).await;
    assert_eq!(row.csat_score, Some(4));
    assert_eq!(row.csat_comment.as_deref(), Some("quick, thanks"));
    assert!(!row.survey_open, "an answered survey is no longer open");

    let error = store.answer_csat("acme", surveyed, alice, 1, Some("changed my mind")).await.unwrap_err();
    assert!(matches!(error, CsatError::AlreadyAnswered), "{error:?}");
    let row = brand.conversation(surveyed).await;
    assert_eq!(
        (row.csat_score, row.csat_comment.as_deref()),
        (Some(4), Some("quick, thanks")),
        "the first answer stays"
    );

    // Closed without a survey.
    let plain = brand.say(bob, "b1", "help", T0).await.message.conversation_id;
    store.close_conversation("acme", plain, Side::Consumer, false, T0 + SECOND).await.unwrap().unwrap();
    let error = store.answer_csat("acme", plain, bob, 5, None).await.unwrap_err();
    assert!(matches!(error, CsatError::NotAvailable), "{error:?}");
    assert_eq!(brand.conversation(plain).await.csat_score, None);

    let error = store.answer_csat("acme", plain + 1000, bob, 5, None).await.unwrap_err();
    assert!(matches!(error, CsatError::NotFound), "{error:?}");
}
