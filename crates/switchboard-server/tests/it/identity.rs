//! Issue 15, item 6: consumer identity from the brand's identity provider — keys fetched from
//! a JWKS URL (cached, refetched on an unknown `kid` at most once in a while) and the OAuth2
//! authorization code flow (the code exchanged at the provider's token endpoint, the returned
//! id token verified like any consumer JWT). The provider is a fake on loopback that checks
//! what it is sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::harness::*;

/// A fake identity provider: its own P-256 signing key (published only in its JWKS), a
/// token endpoint that takes one code.
struct FakeProvider {
    url: String,
    jwks_fetches: Arc<AtomicUsize>,
    key: EncodingKey,
}

#[derive(Clone)]
struct ProviderState {
    jwks: Value,
    jwks_fetches: Arc<AtomicUsize>,
    id_token: String,
}

impl FakeProvider {
    async fn start(app_id: &str) -> FakeProvider {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let key = EncodingKey::from_ec_der(&pair.serialize_der());
        let point = pair.public_key_raw(); // 0x04 || x || y
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let published = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
            "x": b64(&point[1..33]), "y": b64(&point[33..65])}]});
        let claims = json!({"sub": "oidc-user", "iss": "brand-backend", "aud": "sb-client",
            "exp": now_secs() + 3600, "iat": now_secs(), "name": "Olga OIDC"});
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("k1".into());
        let id_token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        let jwks_fetches = Arc::new(AtomicUsize::new(0));
        let state = ProviderState { jwks: published, jwks_fetches: jwks_fetches.clone(), id_token };
        let router = axum::Router::new().route("/jwks", get(jwks)).route("/token", post(token)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let _ = app_id;
        FakeProvider { url, jwks_fetches, key }
    }

    /// A consumer token signed with the provider's key (`kid` as given).
    fn token(&self, brand: &TestBrand, sub: &str, kid: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims(brand, sub, 3600), &self.key).unwrap()
    }
}

async fn jwks(State(state): State<ProviderState>) -> ([(&'static str, &'static str); 1], axum::Json<Value>) {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    ([("cache-control", "public, max-age=600")], axum::Json(state.jwks))
}

/// RFC 6749 §4.1.3: the code, the redirect URI, the client's credentials, the PKCE verifier.
async fn token(
    State(state): State<ProviderState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, axum::Json<Value>) {
    let field = |name: &str| form.get(name).map(String::as_str);
    let form_encoded =
        headers.get("content-type").and_then(|v| v.to_str().ok()) == Some("application/x-www-form-urlencoded");
    let well_formed = form_encoded
        && field("grant_type") == Some("authorization_code")
        && field("client_id") == Some("sb-client")
        && field("client_secret") == Some("s3cret")
        && field("redirect_uri") == Some("com.acme.app:/oauth")
        && field("code_verifier") == Some("verifier-of-the-device");
    if !well_formed {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_request", "error_description": format!("{form:?}")})),
        );
    }
    if field("code") != Some("good-code") {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": "the code expired"})),
        );
    }
    let answer = json!({"access_token": "at", "token_type": "Bearer", "expires_in": 3600, "id_token": state.id_token});
    (StatusCode::OK, axum::Json(answer))
}

async fn hello(server: &TestServer, brand: &TestBrand, auth: Value) -> Value {
    let mut client = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    let mut hello = json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app});
    for (name, value) in auth.as_object().unwrap() {
        hello[name] = value.clone();
    }
    client.hello(hello).await
}

#[tokio::test]
async fn keys_come_from_the_jwks_url_and_codes_are_exchanged_at_the_token_endpoint() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let provider = FakeProvider::start(&brand.app).await;
    let admin = server.login(&brand.admin_email).await;
    let path = format!("/api/v1/apps/{}/identity", brand.app);
    let settings = json!({
        "jwks_url": format!("{}/jwks", provider.url),
        "code_flow": {"token_url": format!("{}/token", provider.url), "client_id": "sb-client",
            "client_secret": "s3cret", "redirect_uri": "com.acme.app:/oauth"},
    });
    let (status, saved) = call(&server, &admin, reqwest::Method::PUT, &path, settings).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["code_flow"]["client_secret_set"], true);
    let (_, shown) = call(&server, &admin, reqwest::Method::GET, &path, Value::Null).await;
    assert!(!shown.to_string().contains("s3cret"), "the secret is never shown: {shown}");

    // A token signed with a key only the JWKS publishes: fetched once, then cached.
    let welcome = hello(&server, &brand, json!({"token": provider.token(&brand, "jay", "k1")})).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    hello(&server, &brand, json!({"token": provider.token(&brand, "kay", "k1")})).await;
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), 1, "the keys are cached");
    // An unknown key id makes one refetch, and forged ones right after make none.
    for sub in ["forger-1", "forger-2", "forger-3"] {
        let refused = hello(&server, &brand, json!({"token": provider.token(&brand, sub, "k9")})).await;
        assert_eq!(refused["code"], "token_invalid", "{refused}");
    }
    assert_eq!(provider.jwks_fetches.load(Ordering::SeqCst), 2, "one refetch for the unknown kid, no flood");

    // The code flow: the id token's subject is the consumer, named by its claims.
    let code = json!({"code": {"code": "good-code", "redirect_uri": "com.acme.app:/oauth", "verifier": "verifier-of-the-device"}});
    let welcome = hello(&server, &brand, code).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    assert_eq!(welcome["me"]["name"], "Olga OIDC");
    let consumer = server.store.consumer_by_external_id(&brand.id, "oidc-user").await.unwrap().unwrap();
    assert_eq!(welcome["me"]["id"], consumer.id);
    // A code the provider refuses is refused with its reason.
    let bad = json!({"code": {"code": "stale-code", "verifier": "verifier-of-the-device"}});
    let refused = hello(&server, &brand, bad).await;
    assert_eq!(refused["code"], "token_invalid", "{refused}");
    assert!(refused["msg"].as_str().unwrap().contains("invalid_grant"), "{refused}");
    let both = json!({"token": provider.token(&brand, "jay", "k1"), "code": {"code": "good-code"}});
    assert_eq!(hello(&server, &brand, both).await["code"], "bad_request");
}

#[tokio::test]
async fn identity_settings_are_checked_and_only_for_the_brands_admins() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let other = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let path = format!("/api/v1/apps/{}/identity", brand.app);
    for (body, says) in [
        (json!({"jwks_url": "http://idp.example.com/jwks"}), "https://"),
        (json!({"jwks_url": "not a url"}), "not a URL"),
        (
            json!({"code_flow": {"token_url": "https://idp.example.com/token", "client_id": "x"}}),
            "client_secret is required",
        ),
        (
            json!({"code_flow": {"token_url": "https://idp.example.com/token", "client_id": "", "client_secret": "s"}}),
            "client_id",
        ),
    ] {
        let (status, error) = call(&server, &admin, reqwest::Method::PUT, &path, body.clone()).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error["message"].as_str().unwrap().contains(says), "{says:?} not in {error}");
    }
    // Without a code flow, a code is refused by name.
    let refused = hello(&server, &brand, json!({"code": {"code": "c"}})).await;
    assert_eq!(refused["code"], "auth_mode_disabled", "{refused}");
    let agent = server.login(&brand.agent_email).await;
    assert_eq!(call(&server, &agent, reqwest::Method::GET, &path, Value::Null).await.0, 403);
    let other_admin = server.login(&other.admin_email).await;
    let (status, error) = call(&server, &other_admin, reqwest::Method::GET, &path, Value::Null).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("app_not_found")), "{error}");
}
