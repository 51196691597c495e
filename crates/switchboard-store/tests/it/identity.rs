//! Each app's identity-provider settings: the JWKS URL and the OAuth2 code flow.

use switchboard_store::{CodeFlowSettings, IdentitySettings, Store, StoreError};

use crate::support::{Brand, T0};

conformance_tests! {
    store: [identity_settings_are_kept_per_app_and_brand],
}

async fn identity_settings_are_kept_per_app_and_brand(store: Store) {
    let acme = Brand::create(&store, "acme").await;
    Brand::create(&store, "other").await;
    assert_eq!(store.identity_settings("acme", &acme.app_id).await.unwrap(), IdentitySettings::default());
    let settings = IdentitySettings {
        jwks_url: Some("https://id.acme.test/.well-known/jwks.json".into()),
        code_flow: Some(CodeFlowSettings {
            token_url: "https://id.acme.test/oauth/token".into(),
            client_id: "switchboard".into(),
            client_secret: "s3cret".into(),
            redirect_uri: Some("acme://callback".into()),
        }),
    };
    assert_eq!(store.set_identity_settings("acme", &acme.app_id, &settings, T0).await.unwrap(), settings);
    assert_eq!(store.identity_settings("acme", &acme.app_id).await.unwrap(), settings);
    // Another brand reads nothing and cannot write to this app.
    assert_eq!(store.identity_settings("other", &acme.app_id).await.unwrap(), IdentitySettings::default());
    let refused = store.set_identity_settings("other", &acme.app_id, &IdentitySettings::default(), T0).await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
    assert_eq!(store.identity_settings("acme", &acme.app_id).await.unwrap(), settings);
    // Replaced whole: the code flow removed, the JWKS URL kept.
    let keys_only = IdentitySettings { jwks_url: settings.jwks_url.clone(), code_flow: None };
    store.set_identity_settings("acme", &acme.app_id, &keys_only, T0).await.unwrap();
    assert_eq!(store.identity_settings("acme", &acme.app_id).await.unwrap(), keys_only);
}
