//! Masking rules per brand: every brand starts with the card rule; a brand's rules are its own.

use switchboard_core::masking::{HiddenFrom, RuleKind, RuleSpec};
use switchboard_store::{Store, StoreError};

use crate::support::Brand;

conformance_tests! {
    store: [
        brands_start_with_the_card_rule_and_keep_their_own_rules,
    ],
}

async fn brands_start_with_the_card_rule_and_keep_their_own_rules(store: Store) {
    Brand::create(&store, "acme").await;
    Brand::create(&store, "globex").await;
    assert_eq!(store.masking_rules("acme").await.unwrap(), vec![RuleSpec::default_card_rule()]);

    let rules = vec![
        RuleSpec { enabled: false, ..RuleSpec::default_card_rule() },
        RuleSpec {
            name: "IBAN".into(),
            kind: RuleKind::Pattern,
            pattern: Some(r"\bDE\d{20}\b".into()),
            hidden_from: HiddenFrom { agents: true, other_devices: true, storage: false },
            enabled: true,
        },
    ];
    store.set_masking_rules("acme", &rules).await.unwrap();
    assert_eq!(store.masking_rules("acme").await.unwrap(), rules);
    // Another brand's rules are untouched.
    assert_eq!(store.masking_rules("globex").await.unwrap(), vec![RuleSpec::default_card_rule()]);
    // No rules at all is a list too.
    store.set_masking_rules("globex", &[]).await.unwrap();
    assert_eq!(store.masking_rules("globex").await.unwrap(), Vec::<RuleSpec>::new());

    assert!(matches!(store.masking_rules("nobody").await, Err(StoreError::NotFound)));
    assert!(matches!(store.set_masking_rules("nobody", &rules).await, Err(StoreError::NotFound)));
}
