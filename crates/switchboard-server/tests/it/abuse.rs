//! Abuse resistance (issue 15, item 3): failed logins limited per account and per client
//! address (429 with `Retry-After`, the right password refused too while limited), password
//! checks refused when the hashing threads are saturated, new anonymous identities limited
//! per address, connections capped per address, sockets that have not authenticated capped,
//! a trickling request body cut off, the body limit on every route. Each with small
//! configured limits; no timing assertions (the speed under a login flood is a benchmark:
//! `switchboard-loadgen login-flood`).

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_server::ServerConfig;
use switchboard_server::abuse::AbuseConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::*;

fn with_abuse(abuse: AbuseConfig) -> ServerConfig {
    ServerConfig { abuse, ..ServerConfig::default() }
}

/// No limits but the ones a test sets.
fn no_limits() -> AbuseConfig {
    AbuseConfig {
        login_attempts_per_account: 0,
        login_attempts_per_address: 0,
        anonymous_per_address: 0,
        max_connections_per_address: 0,
        max_unauthenticated_sockets: 0,
        ..AbuseConfig::default()
    }
}

/// A login: status, `Retry-After` (seconds) and body.
async fn login(
    server: &TestServer,
    email: &str,
    password: &str,
    forwarded_for: Option<&str>,
) -> (u16, Option<u64>, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", server.http))
        .json(&json!({"email": email, "password": password}));
    if let Some(address) = forwarded_for {
        request = request.header("x-forwarded-for", format!("198.51.100.1, {address}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|value| value.to_str().unwrap().parse().unwrap());
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn failed_logins_are_limited_per_account_and_the_right_password_waits_too() {
    // Two failures in a row, then one more every 5 s.
    let server = TestServer::start_with(with_abuse(AbuseConfig {
        login_attempts_per_account: 2,
        login_window: Duration::from_secs(10),
        ..no_limits()
    }))
    .await;
    let brand = server.brand().await;
    for _ in 0..2 {
        let (status, _, body) = login(&server, &brand.agent_email, "wrong password", None).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["code"], "invalid_credentials");
    }
    let (status, retry_after, body) = login(&server, &brand.agent_email, "wrong password", None).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "too_many_requests");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("for this account") && message.contains("at most 2 per 10 s"), "{message}");
    let wait = retry_after.expect("Retry-After on a 429");
    assert!((1..=5).contains(&wait), "Retry-After {wait}");
    // The right password is refused too while the account is limited...
    let (status, _, body) = login(&server, &brand.agent_email, PASSWORD, None).await;
    assert_eq!(status, 429, "{body}");
    // ...another account is not...
    let (status, _, _) = login(&server, &brand.admin_email, PASSWORD, None).await;
    assert_eq!(status, 200);
    // ...and after the wait it works, and clears the account's count.
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let (status, _, body) = login(&server, &brand.agent_email, PASSWORD, None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = login(&server, &brand.agent_email, "wrong password", None).await;
    assert_eq!(status, 401, "a right password starts the account afresh");
}

#[tokio::test]
async fn failed_logins_are_limited_per_client_address() {
    let server = TestServer::start_with(with_abuse(AbuseConfig {
        login_attempts_per_address: 3,
        login_window: Duration::from_secs(3600),
        trust_forwarded_for: true,
        ..no_limits()
    }))
    .await;
    let brand = server.brand().await;
    // Right passwords do not count against the address.
    for _ in 0..5 {
        assert_eq!(login(&server, &brand.agent_email, PASSWORD, Some("203.0.113.7")).await.0, 200);
    }
    // Three failures from one address, on different (and unknown) accounts.
    for n in 0..3 {
        let (status, _, body) = login(&server, &format!("nobody{n}@example.test"), "guess", Some("203.0.113.7")).await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, retry_after, body) = login(&server, "nobody9@example.test", "guess", Some("203.0.113.7")).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["message"].as_str().unwrap().contains("from this address"), "{body}");
    assert!(retry_after.is_some_and(|secs| secs >= 1));
    // The right password from that address waits too; from another address it works.
    assert_eq!(login(&server, &brand.agent_email, PASSWORD, Some("203.0.113.7")).await.0, 429);
    assert_eq!(login(&server, &brand.agent_email, PASSWORD, Some("203.0.113.8")).await.0, 200);
    // Without trust_forwarded_for a client cannot choose its address: the header is ignored.
    let server = TestServer::start_with(with_abuse(AbuseConfig {
        login_attempts_per_address: 1,
        login_window: Duration::from_secs(3600),
        ..no_limits()
    }))
    .await;
    assert_eq!(login(&server, "a@example.test", "guess", Some("203.0.113.1")).await.0, 401);
    assert_eq!(login(&server, "a@example.test", "guess", Some("203.0.113.2")).await.0, 429);
}

#[tokio::test]
async fn logins_beyond_the_hashing_threads_are_refused_when_they_cannot_wait() {
    let server = TestServer::start_with(with_abuse(AbuseConfig {
        password_hash_threads: 1,
        password_hash_wait: Duration::ZERO,
        ..no_limits()
    }))
    .await;
    let brand = server.brand().await;
    let mut busy = None;
    for _ in 0..5 {
        let attempts = (0..8).map(|_| login(&server, &brand.agent_email, "wrong password", None));
        for (status, retry_after, body) in futures_util::future::join_all(attempts).await {
            match status {
                401 => {}
                503 => busy = Some((retry_after, body)),
                other => panic!("{other}: {body}"),
            }
        }
        if busy.is_some() {
            break;
        }
    }
    let (retry_after, body) = busy.expect("some of 8 logins at once found the one hashing thread busy");
    assert_eq!(body["code"], "unavailable");
    assert!(body["message"].as_str().unwrap().contains("too many passwords at once"), "{body}");
    assert_eq!(retry_after, Some(1));
    // The server still answers, and a login alone goes through.
    assert_eq!(login(&server, &brand.agent_email, PASSWORD, None).await.0, 200);
}

#[tokio::test]
async fn new_anonymous_identities_are_limited_per_address() {
    let server = TestServer::start_with(with_abuse(AbuseConfig {
        anonymous_per_address: 2,
        anonymous_window: Duration::from_secs(3600),
        ..no_limits()
    }))
    .await;
    let brand = server.brand().await;
    let hello = |anon: &str| json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "anon": anon});
    let mut secrets = Vec::new();
    for _ in 0..2 {
        let mut consumer = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
        let welcome = consumer.hello(hello("")).await;
        assert_eq!(welcome["t"], "welcome", "{welcome}");
        secrets.push(welcome["anon"].as_str().unwrap().to_owned());
    }
    let mut third = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    let refused = third.hello(hello("")).await;
    assert_eq!(refused["t"], "err", "{refused}");
    assert_eq!(refused["code"], "too_many_requests");
    let message = refused["msg"].as_str().unwrap();
    assert!(message.contains("anonymous identities") && message.contains("at most 2 per 3600 s"), "{message}");
    // Closed with 1001: the client may come back later.
    assert_eq!(third.next().await.unwrap()["code"], 1001);
    // An identity already made is not limited: its device comes back.
    let mut again = Client::connect(&format!("{}/v1/consumer", server.ws)).await;
    let welcome = again.hello(hello(&secrets[0])).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
}

/// Sends `request` on a new connection and reads until the server closes it.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn connections_per_address_are_capped() {
    let server =
        TestServer::start_with(with_abuse(AbuseConfig { max_connections_per_address: 3, ..no_limits() })).await;
    let addr = server.running.as_ref().unwrap().addr;
    // Three idle connections, each answered once so they are surely counted.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut buffer = [0u8; 1024];
        let n = tcp.read(&mut buffer).await.unwrap();
        assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
        held.push(tcp);
    }
    let answer = exchange(addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("too_many_requests") && answer.contains("max_connections_per_address = 3"), "{answer}");
    // One closes: there is room again (once the server has seen it go).
    drop(held.pop());
    let mut admitted = false;
    for _ in 0..100 {
        let answer = exchange(addr, b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
        if answer.starts_with("HTTP/1.1 200") {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "a connection was admitted after one closed");
}

#[tokio::test]
async fn sockets_that_have_not_authenticated_are_capped() {
    let server =
        TestServer::start_with(with_abuse(AbuseConfig { max_unauthenticated_sockets: 2, ..no_limits() })).await;
    let brand = server.brand().await;
    let url = format!("{}/v1/consumer", server.ws);
    let mut first = Client::connect(&url).await;
    let _second = Client::connect(&url).await;
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
            assert_eq!(response.headers()["retry-after"], "1");
            let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
            assert!(body.contains("max_unauthenticated_sockets = 2"), "{body}");
        }
        other => panic!("a third socket without hello was let in: {:?}", other.map(|_| ())),
    }
    // Once one has authenticated, another may come.
    let welcome = first.hello(json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "anon": ""})).await;
    assert_eq!(welcome["t"], "welcome", "{welcome}");
    let _third = Client::connect(&url).await;
}

#[tokio::test]
async fn a_trickling_request_body_is_cut_off_and_its_connection_closed() {
    let server =
        TestServer::start_with(with_abuse(AbuseConfig { body_read_timeout: Duration::from_secs(1), ..no_limits() }))
            .await;
    let addr = server.running.as_ref().unwrap().addr;
    // 100 bytes announced, 9 sent, then nothing.
    let answer = exchange(
        addr,
        b"POST /api/v1/auth/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"email\"",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout") && answer.contains("within 1 s"), "{answer}");
    // A body sent in time is served as before.
    let (status, _, body) = login(&server, "nobody@example.test", "guess", None).await;
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn every_route_has_the_body_limit_even_one_that_reads_no_body() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let token = server.login(&brand.agent_email).await;
    // Logout reads no body; a 2 MiB one is refused all the same.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/logout", server.http))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await;
    // The server may close before the client has sent it all: either the 413 or a broken pipe.
    if let Ok(response) = response {
        assert_eq!(response.status(), 413);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "body_too_large");
    }
    // The session was not ended by the refused request.
    let (status, _) = call(&server, &token, reqwest::Method::GET, "/api/v1/me", Value::Null).await;
    assert_eq!(status, 200);
}
