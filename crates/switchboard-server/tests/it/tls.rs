//! TLS end to end (issue 15, item 1): REST and both WebSockets over https/wss with a
//! certificate from rcgen, `Secure` cookies and HSTS, plain HTTP on the TLS port refused or
//! redirected, a renewed certificate picked up without a restart, unusable files refused at
//! start naming the file.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_server::ServerConfig;
use switchboard_server::serve::PlainHttp;
use switchboard_server::tls::TlsSettings;

use crate::harness::*;

#[tokio::test]
async fn rest_and_websockets_work_over_tls() {
    let certificate = certificate(&["localhost", "127.0.0.1"]);
    let server = TestServer::start_tls(&certificate, |_| {}).await;
    let brand = server.brand().await;
    let http = https_client(&certificate.ca_pem);

    let health = http.get(format!("{}/healthz", server.http)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let login = http
        .post(format!("{}/api/v1/auth/login", server.http))
        .json(&json!({"email": brand.agent_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "a cookie set over TLS is Secure: {cookie}");
    let session = login.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();

    let tls = trusting(&certificate.ca_pem);
    let mut agent = Client::connect_tls(&format!("{}/v1/agent", server.ws), tls.clone()).await;
    let welcome = agent.hello(json!({"t": "hello", "v": 1, "session": session})).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    agent.send(json!({"t": "state", "id": 1, "state": "online"})).await;
    agent.expect(|f| f["t"] == "ok" && f["id"] == 1).await;

    let mut consumer = Client::connect_tls(&format!("{}/v1/consumer", server.ws), tls).await;
    let token = rs256_token(&claims(&brand, "tls-customer", 3600));
    let welcome =
        consumer.hello(json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "token": token})).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    consumer.send(json!({"t": "send", "id": 1, "cid": "c1", "text": "over TLS"})).await;
    consumer.expect(|f| f["t"] == "ack" && f["id"] == 1).await;
    let delivered = agent.expect(|f| f["t"] == "msg").await;
    assert_eq!(delivered["text"], "over TLS");
}

#[tokio::test]
async fn hsts_is_sent_to_a_host_name_over_tls() {
    let certificate = certificate(&["switchboard.test"]);
    let server = TestServer::start_tls(&certificate, |_| {}).await;
    let addr = server.running.as_ref().unwrap().addr;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured(rustls::ClientConfig::clone(&trusting(&certificate.ca_pem)))
        .resolve("switchboard.test", addr)
        .build()
        .unwrap();
    for path in ["/healthz", "/no/such/page", "/docs/"] {
        let response = http.get(format!("https://switchboard.test:{}{path}", addr.port())).send().await.unwrap();
        assert_eq!(
            response.headers().get("strict-transport-security").map(|v| v.to_str().unwrap()),
            Some("max-age=31536000"),
            "{path}"
        );
    }
    // Not to an IP address (browsers ignore it there, and `localhost` must not be pinned).
    let plain = TestServer::start().await;
    let response = reqwest::get(format!("{}/healthz", plain.http)).await.unwrap();
    assert!(response.headers().get("strict-transport-security").is_none(), "no HSTS over plain HTTP");
}

#[tokio::test]
async fn behind_a_trusted_tls_proxy_cookies_are_secure() {
    let server = TestServer::start_with(ServerConfig { trust_proxy_tls: true, ..ServerConfig::default() }).await;
    let brand = server.brand().await;
    let login = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.http))
        .json(&json!({"email": brand.agent_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Without the setting, plain HTTP cookies cannot be Secure (browsers would drop them).
    let plain = TestServer::start().await;
    let brand = plain.brand().await;
    let login = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", plain.http))
        .json(&json!({"email": brand.agent_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert!(!login.headers()["set-cookie"].to_str().unwrap().contains("Secure"));
}

/// Plain HTTP sent to the TLS port: refused naming the https address by default, or
/// redirected to it when configured.
#[tokio::test]
async fn plain_http_on_the_tls_port_is_refused_or_redirected() {
    let certificate = certificate(&["127.0.0.1"]);
    let server = TestServer::start_tls(&certificate, |_| {}).await;
    let addr = server.running.as_ref().unwrap().addr;
    let plain = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let refused = plain.get(format!("http://{addr}/api/v1/me")).send().await.unwrap();
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "tls_required");
    assert!(body["message"].as_str().unwrap().contains(&format!("https://{addr}/api/v1/me")), "{body}");

    let server = TestServer::start_tls(&certificate, |config| config.plain_http = PlainHttp::Redirect).await;
    let addr = server.running.as_ref().unwrap().addr;
    let redirected = plain.get(format!("http://{addr}/assets/app.js?v=1")).send().await.unwrap();
    assert_eq!(redirected.status(), 308);
    assert_eq!(redirected.headers()["location"], format!("https://{addr}/assets/app.js?v=1").as_str());
    // The same port still serves TLS.
    let http = https_client(&certificate.ca_pem);
    assert_eq!(http.get(format!("https://{addr}/healthz")).send().await.unwrap().status(), 200);
}

/// A renewal (new files written over the old) is served to new connections without a
/// restart; a broken pair written meanwhile is ignored and the old certificate kept.
#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let first = certificate(&["127.0.0.1"]);
    let server = TestServer::start_tls(&first, |config| {
        config.tls.as_mut().unwrap().reload_interval = Duration::from_millis(50);
    })
    .await;
    let (cert_path, key_path) = (server.dir.join("cert.pem"), server.dir.join("key.pem"));
    let healthz = format!("{}/healthz", server.http);
    assert!(https_client(&first.ca_pem).get(&healthz).send().await.is_ok());

    // A key that does not match: ignored.
    let other = certificate(&["127.0.0.1"]);
    std::fs::write(&key_path, &other.key_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(https_client(&first.ca_pem).get(&healthz).send().await.is_ok(), "old certificate kept");

    // The renewal: both files.
    std::fs::write(&cert_path, &other.chain_pem).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // Fresh clients: no connection reuse across the swap.
        if https_client(&other.ca_pem).get(&healthz).send().await.is_ok() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the renewed certificate was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(https_client(&first.ca_pem).get(&healthz).send().await.is_err(), "the old one is gone");
}

#[tokio::test]
async fn unusable_certificate_files_stop_the_start_naming_the_file() {
    let dir = std::env::temp_dir().join(unique("sb-tls-bad"));
    std::fs::create_dir_all(&dir).unwrap();
    let a = certificate(&["127.0.0.1"]);
    let b = certificate(&["127.0.0.1"]);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cases = [
        (write("missing.pem", "").with_extension("nope"), write("k1.pem", &a.key_pem), "cannot read"),
        (write("empty.pem", "hello"), write("k2.pem", &a.key_pem), "holds no PEM certificate"),
        (write("c3.pem", &a.chain_pem), write("nokey.pem", &a.chain_pem), "holds no PEM private key"),
        (write("c4.pem", &a.chain_pem), write("k4.pem", &b.key_pem), "does not belong to the certificate"),
    ];
    for (cert, key, expected) in cases {
        let store = switchboard_store::Store::open(&switchboard_store::StoreOptions::new(format!(
            "sqlite://{}",
            dir.join(unique("db")).display()
        )))
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = ServerConfig { tls: Some(TlsSettings::new(&cert, &key)), ..ServerConfig::default() };
        let error = switchboard_server::start(store, config, listener).await.unwrap_err().to_string();
        assert!(error.contains(expected), "{expected}: {error}");
        assert!(error.contains(&cert.display().to_string()) || error.contains(&key.display().to_string()), "{error}");
    }
}
