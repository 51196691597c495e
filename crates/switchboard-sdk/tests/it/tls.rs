//! The SDK over TLS (issue 15, item 1): `https://` servers with a certificate authority the
//! app adds; a certificate that is expired, for another host or from an unknown authority is
//! refused with `SdkError::Certificate` naming why (an `Error` event with code
//! `certificate_refused`), never as "offline", and nothing is sent.

use switchboard_sdk::{Auth, Client, ConnectionState, Event, MessageState, SdkError};
use switchboard_server::seed;
use switchboard_server::tls::TrialCertificate;

use crate::harness::*;

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn certificate(hosts: &[&str], not_before: i64, not_after: i64) -> TrialCertificate {
    let hosts: Vec<String> = hosts.iter().map(|host| (*host).to_owned()).collect();
    TrialCertificate::generate(&hosts, not_before, not_after).unwrap()
}

fn tls_client(url: &str, server: &TestServer, ca_pem: Option<&str>) -> Client {
    let mut builder = Client::builder(url, seed::DEMO_BRAND, seed::DEMO_APP)
        .auth(Auth::Jwt(dev_tokens(&server.data_dir, "tls-casey")))
        .data_dir(temp_dir("sdk-client-tls"))
        .encryption_key(KEY)
        .backoff(switchboard_sdk::Backoff {
            initial: std::time::Duration::from_millis(50),
            max: std::time::Duration::from_millis(400),
        });
    if let Some(pem) = ca_pem {
        builder = builder.extra_root_certificate_pem(pem);
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn the_sdk_talks_to_an_https_server_trusting_the_apps_ca() {
    let certificate = certificate(&["localhost"], now_secs() - 3600, now_secs() + 3600);
    let server = TestServer::start_tls(&certificate).await;
    let url = format!("https://localhost:{}", server.addr.port());
    let client = tls_client(&url, &server, Some(&certificate.ca_pem));
    let mut events = Events::of(&client);
    client.connect();
    expect_event(&mut events, |e| *e == Event::Connection(ConnectionState::Connected)).await;
    client.send_text("sent over TLS").unwrap();
    let sent =
        expect_event(&mut events, |e| matches!(e, Event::MessageStateChanged { state: MessageState::Sent, .. })).await;
    assert!(matches!(sent, Event::MessageStateChanged { seq: Some(1), .. }), "{sent:?}");
    client.shutdown().await;
}

/// The error event of a refused certificate, and that the client never connected.
async fn refused(client: &Client) -> (String, Option<String>, bool) {
    let mut events = Events::of(client);
    client.connect();
    let event = expect_event(&mut events, |e| matches!(e, Event::Error { .. })).await;
    let Event::Error { message, code, transient } = event else { unreachable!() };
    assert!(!client.pending_messages().unwrap().iter().any(|m| m.state == MessageState::Sent));
    assert_ne!(client.connection_state(), ConnectionState::Connected);
    client.shutdown().await;
    (message, code, transient)
}

#[tokio::test]
async fn a_certificate_for_another_host_is_refused_by_name() {
    let certificate = certificate(&["other.example"], now_secs() - 3600, now_secs() + 3600);
    let server = TestServer::start_tls(&certificate).await;
    let client = tls_client(&format!("https://127.0.0.1:{}", server.addr.port()), &server, Some(&certificate.ca_pem));
    let (message, code, transient) = refused(&client).await;
    assert_eq!(code.as_deref(), Some("certificate_refused"));
    assert!(message.contains("not valid for this host name"), "{message}");
    assert!(!transient, "a wrong certificate does not fix itself");
}

#[tokio::test]
async fn an_expired_certificate_is_refused_as_expired() {
    let certificate = certificate(&["localhost"], now_secs() - 10 * 86_400, now_secs() - 86_400);
    let server = TestServer::start_tls(&certificate).await;
    let client = tls_client(&format!("https://localhost:{}", server.addr.port()), &server, Some(&certificate.ca_pem));
    let (message, code, _) = refused(&client).await;
    assert_eq!(code.as_deref(), Some("certificate_refused"));
    assert!(message.contains("expired"), "{message}");
}

#[tokio::test]
async fn a_certificate_from_an_unknown_authority_is_refused() {
    let certificate = certificate(&["localhost"], now_secs() - 3600, now_secs() + 3600);
    let server = TestServer::start_tls(&certificate).await;
    // The webpki roots only: the trial CA is unknown to them.
    let client = tls_client(&format!("wss://localhost:{}", server.addr.port()), &server, None);
    let (message, code, _) = refused(&client).await;
    assert_eq!(code.as_deref(), Some("certificate_refused"));
    assert!(message.contains("not signed by a trusted certificate authority"), "{message}");
}

#[test]
fn an_extra_root_that_is_not_a_certificate_is_refused_at_build() {
    let dir = temp_dir("sdk-client-tls-bad");
    let build = |pem: &str| {
        Client::builder("https://chat.example.com", "b", "a")
            .auth(Auth::Anonymous)
            .data_dir(&dir)
            .encryption_key(KEY)
            .extra_root_certificate_pem(pem)
            .build()
    };
    for pem in ["", "not a pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"] {
        match build(pem) {
            Err(SdkError::InvalidInput(message)) => assert!(message.contains("extra root certificate"), "{message}"),
            other => panic!("{pem:?}: {other:?}"),
        }
    }
}
