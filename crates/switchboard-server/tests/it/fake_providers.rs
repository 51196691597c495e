//! Fake push providers on loopback, over TLS with a CA made for the test (the server under
//! test trusts it through `PushConfig::extra_roots`, as an operator's `push_ca_file`):
//!
//! - FCM: one server with the OAuth2 token endpoint (`POST /token`: checks the JWT-bearer
//!   assertion's RS256 signature with the service account's public key, its issuer, scope
//!   and audience) and `POST /v1/projects/{project}/messages:send` (checks the bearer token is
//!   one it issued). ALPN offers `h2` and `http/1.1`.
//! - APNs: `POST /3/device/{token}` over HTTP/2 only (ALPN `h2` alone; an HTTP/1.1 request
//!   is refused), checking the ES256 provider token's signature with the key's public half,
//!   its `kid` and its issuer (the team), and `apns-topic`.
//!
//! Both record every push they accept or refuse, and answer from a script per device token
//! (a queue of answers, then 200).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, Version};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::harness::{EC_PUBLIC, RSA_PRIVATE, RSA_PUBLIC};

/// The APNs key id and team the fake expects.
pub const APNS_KEY_ID: &str = "KEY1234567";
pub const APNS_TEAM_ID: &str = "TEAM123456";
pub const APNS_BUNDLE_ID: &str = "com.acme.app";
/// The Firebase project and service account the fake expects.
pub const FCM_PROJECT: &str = "acme-prod";
pub const FCM_CLIENT_EMAIL: &str = "push@acme-prod.iam.gserviceaccount.com";

/// A service account key file signed with the test RSA key.
pub fn service_account_json() -> String {
    json!({
        "type": "service_account",
        "project_id": FCM_PROJECT,
        "private_key_id": "test-key-1",
        "private_key": RSA_PRIVATE,
        "client_email": FCM_CLIENT_EMAIL,
        "token_uri": "https://oauth2.googleapis.com/token",
    })
    .to_string()
}

/// The test EC key as an Apple .p8 file.
pub fn apns_p8() -> String {
    include_str!("keys/ec-private.pem").to_owned()
}

/// One push a fake received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `fcm` or `apns`.
    pub provider: &'static str,
    pub version: Version,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
    /// The device token it was for.
    pub device: String,
    /// The status the fake answered.
    pub status: u16,
}

impl Received {
    /// The `switchboard` part the app reads: from APNs' payload or FCM's data (a JSON string).
    pub fn app_data(&self) -> Value {
        match self.provider {
            "apns" => self.body["switchboard"].clone(),
            _ => serde_json::from_str(self.body["message"]["data"]["switchboard"].as_str().unwrap_or("null")).unwrap(),
        }
    }

    /// The notification's title and body.
    pub fn alert(&self) -> (String, String) {
        let alert = match self.provider {
            "apns" => &self.body["aps"]["alert"],
            _ => &self.body["message"]["notification"],
        };
        (alert["title"].as_str().unwrap_or("").to_owned(), alert["body"].as_str().unwrap_or("").to_owned())
    }

    /// The badge count.
    pub fn badge(&self) -> i64 {
        match self.provider {
            "apns" => self.body["aps"]["badge"].as_i64().unwrap(),
            _ => self.body["message"]["apns"]["payload"]["aps"]["badge"].as_i64().unwrap(),
        }
    }
}

/// An answer a fake gives instead of 200.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: Value,
}

/// What the fakes saw, and how they answer.
#[derive(Default)]
pub struct FakeState {
    pub received: Mutex<Vec<Received>>,
    /// Access tokens issued by the token endpoint.
    pub issued: Mutex<Vec<String>>,
    /// Token requests refused (bad assertion).
    pub refused_assertions: Mutex<Vec<String>>,
    /// Answers per device token, given in order before answering 200.
    pub script: Mutex<HashMap<String, VecDeque<Scripted>>>,
    /// Tokens the token endpoint invalidates: a send with them gets 401.
    pub revoked: Mutex<Vec<String>>,
    /// Wakes waiters when a push arrives.
    pub arrived: tokio::sync::Notify,
    /// Delay before answering a push (a slow provider).
    pub delay: Mutex<Duration>,
}

/// The two fakes and the CA that vouches for them.
pub struct FakeProviders {
    pub fcm_url: String,
    pub token_url: String,
    pub apns_url: String,
    pub ca_pem: String,
    pub state: Arc<FakeState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeProviders {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl FakeProviders {
    pub async fn start() -> FakeProviders {
        let (ca_pem, chain, key) = test_certificates();
        let state = Arc::new(FakeState::default());
        let fcm = Router::new().fallback(fcm).with_state(Arc::clone(&state));
        let apns = Router::new().fallback(apns).with_state(Arc::clone(&state));
        let (fcm_addr, fcm_task) = serve_tls(fcm, &chain, &key, &[b"h2", b"http/1.1"]).await;
        let (apns_addr, apns_task) = serve_tls(apns, &chain, &key, &[b"h2"]).await;
        FakeProviders {
            fcm_url: format!("https://localhost:{}", fcm_addr.port()),
            token_url: format!("https://localhost:{}/token", fcm_addr.port()),
            apns_url: format!("https://localhost:{}", apns_addr.port()),
            ca_pem,
            state,
            tasks: vec![fcm_task, apns_task],
        }
    }

    /// Push settings pointing at these fakes, trusting their CA, with short delays.
    pub fn config(&self) -> switchboard_server::push::PushConfig {
        switchboard_server::push::PushConfig {
            fcm_url: self.fcm_url.clone(),
            fcm_token_url: self.token_url.clone(),
            apns_url: self.apns_url.clone(),
            apns_sandbox_url: self.apns_url.clone(),
            extra_roots: vec![reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap()],
            coalesce: Duration::from_millis(200),
            poll: Duration::from_millis(20),
            first_backoff: Duration::from_millis(100),
            ..Default::default()
        }
    }

    /// Answers `device`'s next pushes with `answers` (then 200 again).
    pub fn script(&self, device: &str, answers: Vec<Scripted>) {
        self.state.script.lock().unwrap().entry(device.to_owned()).or_default().extend(answers);
    }

    /// Every push received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Pushes received for `device` (accepted or not).
    pub fn received_by(&self, device: &str) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.device == device).collect()
    }

    /// Waits until `n` pushes in all were received (panics after 15 s).
    pub async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let arrived = self.state.arrived.notified();
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("expected {n} pushes, got {}: {received:#?}", received.len());
            }
        }
    }
}

/// A CA, and a certificate for `localhost`/`127.0.0.1` it signed (with its key).
fn test_certificates() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "Switchboard test push CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    (ca.pem(), vec![leaf.der().clone(), ca.der().clone()], key)
}

async fn serve_tls(
    router: Router,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let mut config =
        ServerConfig::builder().with_no_client_auth().with_single_cert(chain.to_vec(), key.clone_key()).unwrap();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener { tcp, acceptor: TlsAcceptor::from(Arc::new(config)) };
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, task)
}

/// Accepts TCP connections and completes their TLS handshake (one at a time: tests are small).
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else { continue };
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), self.acceptor.accept(tcp)).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

fn json_response(status: u16, body: Value, retry_after: Option<u64>) -> Response {
    let mut response = (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        response.headers_mut().insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

/// The next scripted answer for `device`, if any.
fn scripted(state: &FakeState, device: &str) -> Option<Scripted> {
    state.script.lock().unwrap().get_mut(device).and_then(VecDeque::pop_front)
}

fn record(state: &FakeState, received: Received) {
    state.received.lock().unwrap().push(received);
    state.arrived.notify_waiters();
}

async fn fcm(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method == Method::POST && uri.path() == "/token" {
        return fcm_token(&state, &body);
    }
    let path = uri.path().to_owned();
    let expected = format!("/v1/projects/{FCM_PROJECT}/messages:send");
    if method != Method::POST || path != expected {
        return json_response(
            404,
            json!({"error": {"code": 404, "status": "NOT_FOUND", "message": format!("no {path}")}}),
            None,
        );
    }
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let issued = state.issued.lock().unwrap().clone();
    let revoked = state.revoked.lock().unwrap().clone();
    match bearer {
        Some(token) if issued.iter().any(|t| t == token) && !revoked.iter().any(|t| t == token) => {}
        _ => {
            return json_response(
                401,
                json!({"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "Request had invalid authentication credentials."}}),
                None,
            );
        }
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let device = body["message"]["token"].as_str().unwrap_or("").to_owned();
    let delay = *state.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let answer = scripted(&state, &device);
    let status = answer.as_ref().map_or(200, |a| a.status);
    record(&state, Received { provider: "fcm", version, path, headers, body, device, status });
    match answer {
        Some(answer) => json_response(answer.status, answer.body, answer.retry_after),
        None => json_response(200, json!({"name": format!("projects/{FCM_PROJECT}/messages/1")}), None),
    }
}

fn fcm_token(state: &FakeState, body: &[u8]) -> Response {
    let form: HashMap<String, String> = serde_urlencoded_decode(body);
    let refuse = |why: String| {
        state.refused_assertions.lock().unwrap().push(why.clone());
        json_response(400, json!({"error": "invalid_grant", "error_description": why}), None)
    };
    if form.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return refuse(format!("bad grant_type {:?}", form.get("grant_type")));
    }
    let Some(assertion) = form.get("assertion") else { return refuse("no assertion".into()) };
    let header = match jsonwebtoken::decode_header(assertion) {
        Ok(header) => header,
        Err(error) => return refuse(format!("bad header: {error}")),
    };
    if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some("test-key-1") {
        return refuse(format!("header {header:?}"));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    // The audience is the token endpoint's URL, checked below (the port is the test's).
    validation.validate_aud = false;
    validation.set_issuer(&[FCM_CLIENT_EMAIL]);
    let claims = match jsonwebtoken::decode::<Value>(
        assertion,
        &DecodingKey::from_rsa_pem(RSA_PUBLIC.as_bytes()).unwrap(),
        &validation,
    ) {
        Ok(data) => data.claims,
        Err(error) => return refuse(format!("Invalid JWT Signature: {error}")),
    };
    if claims["scope"] != "https://www.googleapis.com/auth/firebase.messaging" {
        return refuse(format!("scope {}", claims["scope"]));
    }
    if !claims["aud"].as_str().is_some_and(|aud| aud.ends_with("/token")) {
        return refuse(format!("aud {}", claims["aud"]));
    }
    let token = format!("ya29.fake-{}", state.issued.lock().unwrap().len() + 1);
    state.issued.lock().unwrap().push(token.clone());
    json_response(200, json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}), None)
}

/// `a=b&c=d` (percent-decoded) without another dependency.
fn serde_urlencoded_decode(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn apns(
    State(state): State<Arc<FakeState>>,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let Some(device) = path.strip_prefix("/3/device/").map(str::to_owned) else {
        return json_response(404, json!({"reason": "BadPath"}), None);
    };
    if method != Method::POST {
        return json_response(405, json!({"reason": "MethodNotAllowed"}), None);
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let refuse = |status: u16, reason: &str, headers: HeaderMap, body: Value| {
        record(
            &state,
            Received { provider: "apns", version, path: path.clone(), headers, body, device: device.clone(), status },
        );
        json_response(status, json!({"reason": reason}), None)
    };
    if version != Version::HTTP_2 {
        return refuse(400, "NotHttp2", headers, body);
    }
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("bearer "));
    let Some(token) = token else { return refuse(403, "MissingProviderToken", headers, body) };
    let verified = jsonwebtoken::decode_header(token)
        .ok()
        .filter(|h| h.alg == Algorithm::ES256 && h.kid.as_deref() == Some(APNS_KEY_ID))
        .and_then(|_| {
            let mut validation = Validation::new(Algorithm::ES256);
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            validation.set_issuer(&[APNS_TEAM_ID]);
            jsonwebtoken::decode::<Value>(token, &DecodingKey::from_ec_pem(EC_PUBLIC.as_bytes()).unwrap(), &validation)
                .ok()
        });
    match verified {
        Some(data) if data.claims["iat"].as_u64().is_some() => {}
        _ => return refuse(403, "InvalidProviderToken", headers, body),
    }
    if headers.get("apns-topic").and_then(|v| v.to_str().ok()) != Some(APNS_BUNDLE_ID) {
        return refuse(400, "DeviceTokenNotForTopic", headers, body);
    }
    let delay = *state.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let answer = scripted(&state, &device);
    let status = answer.as_ref().map_or(200, |a| a.status);
    record(&state, Received { provider: "apns", version, path: path.clone(), headers, body, device, status });
    match answer {
        Some(answer) => json_response(answer.status, answer.body, answer.retry_after),
        None => {
            let mut response = StatusCode::OK.into_response();
            response.headers_mut().insert("apns-id", "00000000-0000-0000-0000-000000000001".parse().unwrap());
            response
        }
    }
}
