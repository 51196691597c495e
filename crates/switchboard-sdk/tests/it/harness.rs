//! A server with the demo brand, an agent client, SDK clients with dev tokens.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_sdk::{Auth, Backoff, Client, Event, EventStream, TokenProvider};
use switchboard_server::{Running, ServerConfig, seed};
use switchboard_store::{Store, StoreOptions};
use tokio_tungstenite::tungstenite::Message;

static NEXT: AtomicU64 = AtomicU64::new(0);

pub fn temp_dir(prefix: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub const WAIT: Duration = Duration::from_secs(15);

/// A server on a fixed address (so it can be restarted on the same port) with the demo seed.
pub struct TestServer {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data_dir = temp_dir("sdk-server");
        let running = launch_with(&data_dir, listener, config).await;
        TestServer { running: Some(running), addr, data_dir }
    }

    /// An address where nothing listens yet; `start_at` brings the server up there later.
    pub async fn reserve() -> (SocketAddr, PathBuf) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        (listener.local_addr().unwrap(), temp_dir("sdk-server"))
    }

    pub async fn start_at(addr: SocketAddr, data_dir: PathBuf) -> TestServer {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let running = launch(&data_dir, listener).await;
        TestServer { running: Some(running), addr, data_dir }
    }

    pub async fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await.unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.running = Some(launch(&self.data_dir, listener).await);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn credentials(&self) -> seed::DemoCredentials {
        serde_json::from_slice(&std::fs::read(self.data_dir.join("demo-credentials.json")).unwrap()).unwrap()
    }
}

async fn launch(data_dir: &Path, listener: tokio::net::TcpListener) -> Running {
    launch_with(data_dir, listener, ServerConfig::default()).await
}

async fn launch_with(data_dir: &Path, listener: tokio::net::TcpListener, config: ServerConfig) -> Running {
    let url = format!("sqlite://{}", data_dir.join("server.db").display());
    let store = Store::open(&StoreOptions::new(url)).await.unwrap();
    seed::ensure_demo(&store, data_dir).await.unwrap();
    switchboard_server::start(store, config, listener).await.unwrap()
}

impl TestServer {
    /// A server serving TLS with `certificate`; `url()` is still its `http://` form.
    pub async fn start_tls(certificate: &switchboard_server::tls::TrialCertificate) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data_dir = temp_dir("sdk-server-tls");
        let (cert, key) = (data_dir.join("cert.pem"), data_dir.join("key.pem"));
        std::fs::write(&cert, &certificate.chain_pem).unwrap();
        std::fs::write(&key, &certificate.key_pem).unwrap();
        let config =
            ServerConfig { tls: Some(switchboard_server::tls::TlsSettings::new(cert, key)), ..ServerConfig::default() };
        let running = launch_with(&data_dir, listener, config).await;
        TestServer { running: Some(running), addr, data_dir }
    }
}

/// Tokens from the demo key, counting calls; the first `short` tokens live `short_ttl` s.
pub struct DevTokens {
    pub data_dir: PathBuf,
    pub subject: String,
    pub calls: AtomicUsize,
    pub short: usize,
    pub short_ttl: i64,
}

impl TokenProvider for DevTokens {
    fn fetch_token(&self) -> Result<String, String> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        let ttl = if call < self.short { self.short_ttl } else { 3600 };
        seed::dev_token(&self.data_dir, &self.subject, Some("Casey Consumer"), ttl).map_err(|e| e.to_string())
    }
}

pub fn dev_tokens(server_data_dir: &Path, subject: &str) -> Arc<DevTokens> {
    Arc::new(DevTokens {
        data_dir: server_data_dir.to_owned(),
        subject: subject.into(),
        calls: AtomicUsize::new(0),
        short: 0,
        short_ttl: 0,
    })
}

pub const KEY: [u8; 32] = [42; 32];

/// An SDK client with fast reconnects.
pub fn sdk(url: &str, tokens: Arc<DevTokens>, dir: &Path) -> Client {
    Client::builder(url, seed::DEMO_BRAND, seed::DEMO_APP)
        .auth(Auth::Jwt(tokens))
        .data_dir(dir)
        .encryption_key(KEY)
        .backoff(Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(400) })
        .build()
        .unwrap()
}

/// An event stream that keeps events not matched yet, so tests need not guess the order of
/// independent events (an ack and an assignment race by design).
pub struct Events {
    stream: EventStream,
    seen: Vec<Event>,
}

impl Events {
    pub fn of(client: &Client) -> Events {
        Events { stream: client.events(), seen: Vec::new() }
    }
}

/// Waits for an event matching `want` (taking it out of those seen earlier first); on
/// timeout, the panic lists the events seen.
pub async fn expect_event(events: &mut Events, want: impl Fn(&Event) -> bool) -> Event {
    if let Some(index) = events.seen.iter().position(&want) {
        return events.seen.remove(index);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.stream.next()).await {
            Ok(Some(event)) if want(&event) => return event,
            Ok(Some(event)) => events.seen.push(event),
            Ok(None) => panic!("event stream closed; seen: {:#?}", events.seen),
            Err(_) => panic!("no matching event within {WAIT:?}; seen: {:#?}", events.seen),
        }
    }
}

/// Sets a demo agent's capacity (concurrent conversations) over REST, as the demo admin.
pub async fn set_capacity(server: &TestServer, email: &str, max_concurrent: i64) {
    let credentials = server.credentials();
    let admin = credentials.logins.iter().find(|l| l.email == "admin@demo.test").unwrap();
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/api/v1/auth/login", server.url()))
        .json(&json!({"email": admin.email, "password": admin.password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let users: Value = http
        .get(format!("{}/api/v1/users", server.url()))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = users.as_array().unwrap().iter().find(|u| u["email"] == email).unwrap()["id"].clone();
    let patched = http
        .patch(format!("{}/api/v1/users/{id}", server.url()))
        .bearer_auth(&token)
        .json(&json!({"max_concurrent": max_concurrent}))
        .send()
        .await
        .unwrap();
    assert!(patched.status().is_success(), "{}", patched.text().await.unwrap());
}

/// The demo agent Alice over a raw WebSocket.
pub struct Agent {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next_id: u64,
    pub seen: Vec<Value>,
}

impl Agent {
    pub async fn online(server: &TestServer) -> Agent {
        let credentials = server.credentials();
        let alice = credentials.logins.iter().find(|l| l.email == "alice@demo.test").unwrap();
        let login: Value = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", server.url()))
            .json(&json!({"email": alice.email, "password": alice.password}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/agent", server.addr)).await.unwrap();
        let mut agent = Agent { ws, next_id: 0, seen: Vec::new() };
        agent.send(json!({"t": "hello", "v": 1, "session": login["token"]})).await;
        agent.expect(|f| f["t"] == "welcome").await;
        agent.send(json!({"t": "state", "id": 1, "state": "online"})).await;
        agent.expect(|f| f["t"] == "ok").await;
        agent
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    }

    /// Replies in conversation `c`; returns the ack.
    pub async fn reply(&mut self, c: i64, text: &str) -> Value {
        self.next_id += 1;
        let id = 1000 + self.next_id;
        // Unique across agent sockets: a reused cid would be (rightly) deduplicated.
        let cid = format!("agent-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        self.send(json!({"t": "send", "id": id, "c": c, "cid": cid, "text": text})).await;
        self.expect(|f| f["t"] == "ack" && f["id"] == id).await
    }

    pub async fn expect(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&want) {
            return self.seen.remove(i);
        }
        tokio::time::timeout(WAIT, async {
            loop {
                match self.ws.next().await.expect("agent socket open").unwrap() {
                    Message::Text(text) => {
                        let frame: Value = serde_json::from_str(&text).unwrap();
                        if want(&frame) {
                            return frame;
                        }
                        self.seen.push(frame);
                    }
                    _ => continue,
                }
            }
        })
        .await
        .expect("agent frame within the wait")
    }

    /// Texts of consumer messages received so far plus those arriving within `within`.
    pub async fn consumer_texts(&mut self, within: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Text(text) = message {
                self.seen.push(serde_json::from_str(&text).unwrap());
            }
        }
        self.seen
            .iter()
            .filter(|f| f["t"] == "msg" && f["from"] == "c")
            .map(|f| f["text"].as_str().unwrap().to_owned())
            .collect()
    }
}
