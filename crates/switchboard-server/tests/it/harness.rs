//! Test harness: start a server with a demo-like brand, sign consumer tokens, drive sockets.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use switchboard_server::tls::{TlsSettings, TrialCertificate};
use switchboard_server::{Running, ServerConfig};
use switchboard_store::testing::PostgresTestDatabase;
use switchboard_store::{NewApp, NewBrand, NewUser, Role, Store, StoreOptions};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const RSA_PRIVATE: &str = include_str!("keys/rsa-private.pem");
pub const RSA_PUBLIC: &str = include_str!("keys/rsa-public.pem");
pub const EC_PUBLIC: &str = include_str!("keys/ec-public.pem");
pub const EC_PRIVATE_PK8: &[u8] = include_bytes!("keys/ec-private.pk8");
pub const PASSWORD: &str = "correct horse battery staple";

static NEXT: AtomicU64 = AtomicU64::new(0);

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A brand made for a test: one app taking RS256 and ES256 tokens and anonymous consumers,
/// an admin and an agent.
pub struct TestBrand {
    pub id: String,
    pub app: String,
    pub admin_email: String,
    pub agent_email: String,
}

/// The store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in the server's temporary directory.
    Sqlite,
    /// A fresh database on `SWITCHBOARD_TEST_POSTGRES_URL`, dropped with the server.
    Postgres,
}

pub struct TestServer {
    pub running: Option<Running>,
    pub http: String,
    pub ws: String,
    pub store: Store,
    pub dir: PathBuf,
    /// The database URL (a restart opens it again).
    pub url: String,
    postgres: Option<PostgresTestDatabase>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(ServerConfig::default()).await
    }

    pub async fn start_with(config: ServerConfig) -> TestServer {
        Self::start_on(Backend::Sqlite, config).await
    }

    pub async fn start_on(backend: Backend, config: ServerConfig) -> TestServer {
        let dir = std::env::temp_dir().join(unique("sb-it"));
        std::fs::create_dir_all(&dir).unwrap();
        let postgres = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(PostgresTestDatabase::create().await),
        };
        let url = match &postgres {
            Some(database) => database.url(),
            None => format!("sqlite://{}", dir.join("test.db").display()),
        };
        let store = Store::open(&StoreOptions::new(url.clone())).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = switchboard_server::start(store.clone(), config, listener).await.unwrap();
        let addr = running.addr;
        let (http, ws) = (format!("http://{addr}"), format!("ws://{addr}"));
        TestServer { running: Some(running), http, ws, store, dir, url, postgres }
    }

    /// A server serving TLS with `certificate` (written to files in its directory);
    /// `configure` adjusts the rest of the configuration. `http` and `ws` are https/wss
    /// addresses naming `127.0.0.1`.
    pub async fn start_tls(certificate: &TrialCertificate, configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = std::env::temp_dir().join(unique("sb-it-tls"));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &certificate.chain_pem).unwrap();
        std::fs::write(&key, &certificate.key_pem).unwrap();
        let mut config = ServerConfig { tls: Some(TlsSettings::new(&cert, &key)), ..ServerConfig::default() };
        configure(&mut config);
        let url = format!("sqlite://{}", dir.join("test.db").display());
        let store = Store::open(&StoreOptions::new(url.clone())).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = switchboard_server::start(store.clone(), config, listener).await.unwrap();
        let addr = running.addr;
        let (http, ws) = (format!("https://{addr}"), format!("wss://{addr}"));
        TestServer { running: Some(running), http, ws, store, dir, url, postgres: None }
    }

    /// Another node on `first`'s database (a fleet: `config.nats_url` set on both).
    pub async fn join(first: &TestServer, config: ServerConfig) -> TestServer {
        let dir = std::env::temp_dir().join(unique("sb-it-node"));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&StoreOptions::new(first.url.clone())).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = switchboard_server::start(store.clone(), config, listener).await.unwrap();
        let addr = running.addr;
        let (http, ws) = (format!("http://{addr}"), format!("ws://{addr}"));
        TestServer { running: Some(running), http, ws, store, dir, url: first.url.clone(), postgres: None }
    }

    /// Stops the server (gracefully: sockets close with 1001) and starts a new one on the
    /// same database and a new port, as after a restart of the process.
    pub async fn restart(&mut self, config: ServerConfig) {
        self.running.take().unwrap().shutdown().await.unwrap();
        self.store = Store::open(&StoreOptions::new(self.url.clone())).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = switchboard_server::start(self.store.clone(), config, listener).await.unwrap();
        self.http = format!("http://{}", running.addr);
        self.ws = format!("ws://{}", running.addr);
        self.running = Some(running);
    }

    /// Creates a brand with an app, an admin and an online-capable agent (capacity 5).
    pub async fn brand(&self) -> TestBrand {
        let now = now_secs() * 1000;
        let id = unique("brand");
        self.store.create_brand(&NewBrand { id: id.clone(), name: id.clone() }, now).await.unwrap();
        let app = format!("{id}-app");
        self.store
            .create_app(
                &NewApp {
                    id: app.clone(),
                    brand_id: id.clone(),
                    name: "App".into(),
                    channel: "in_app".into(),
                    allow_jwt: true,
                    allow_anonymous: true,
                    jwt_issuer: Some("brand-backend".into()),
                    jwt_audience: None,
                    default_skill_id: None,
                    default_priority: Default::default(),
                },
                now,
            )
            .await
            .unwrap();
        self.store.add_app_key(&id, &app, "pem", RSA_PUBLIC, now).await.unwrap();
        self.store.add_app_key(&id, &app, "pem", EC_PUBLIC, now).await.unwrap();
        let admin_email = format!("admin@{id}.test");
        let agent_email = format!("agent@{id}.test");
        let brand = TestBrand { id, app, admin_email, agent_email };
        for (email, role, max) in [(&brand.admin_email, Role::Admin, 0), (&brand.agent_email, Role::Agent, 5)] {
            self.user(&brand, email, &format!("{role:?} of {}", brand.id), role, max, vec![]).await;
        }
        brand
    }

    /// Adds a user to the brand (password [`PASSWORD`]) and tells the router; returns the id.
    pub async fn user(
        &self,
        brand: &TestBrand,
        email: &str,
        name: &str,
        role: Role,
        max: i64,
        skills: Vec<i64>,
    ) -> i64 {
        let new = NewUser {
            brand_id: brand.id.clone(),
            email: email.to_owned(),
            name: name.to_owned(),
            role,
            password_hash: switchboard_server::auth::hash_password(PASSWORD).unwrap(),
            max_concurrent: max,
            skills,
        };
        let user = self.store.create_user(&new, now_secs() * 1000).await.unwrap();
        self.running.as_ref().unwrap().state.engines.agent_changed(&user);
        user.id
    }

    pub async fn login(&self, email: &str) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/auth/login", self.http))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "login of {email}");
        response.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned()
    }

    /// An agent socket, logged in and online.
    pub async fn online_agent(&self, email: &str) -> Client {
        let token = self.login(email).await;
        let mut agent = Client::connect(&format!("{}/v1/agent", self.ws)).await;
        let welcome = agent.hello(json!({"t": "hello", "v": 1, "session": token})).await;
        assert_eq!(welcome["t"], "welcome", "{welcome}");
        agent.send(json!({"t": "state", "id": 1, "state": "online"})).await;
        agent.expect(|f| f["t"] == "ok" && f["id"] == 1).await;
        agent
    }

    /// A consumer socket authenticated with an RS256 token for `sub`.
    pub async fn consumer(&self, brand: &TestBrand, sub: &str) -> Client {
        let token = rs256_token(&claims(brand, sub, 3600));
        let mut consumer = Client::connect(&format!("{}/v1/consumer", self.ws)).await;
        let welcome =
            consumer.hello(json!({"t": "hello", "v": 1, "brand": brand.id, "app": brand.app, "token": token})).await;
        assert_eq!(welcome["t"], "welcome", "{welcome}");
        consumer
    }
}

pub fn claims(brand: &TestBrand, sub: &str, ttl: i64) -> Value {
    json!({"sub": sub, "iss": "brand-backend", "aud": brand.app, "exp": now_secs() + ttl, "iat": now_secs(), "name": format!("Customer {sub}"), "email": format!("{sub}@example.com")})
}

pub fn rs256_token(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

pub fn es256_token(claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::ES256), claims, &EncodingKey::from_ec_der(EC_PRIVATE_PK8)).unwrap()
}

impl Drop for TestServer {
    /// Drops a PostgreSQL test database (on a thread of its own: this may run inside the
    /// test's runtime, which cannot block on it).
    fn drop(&mut self) {
        if let Some(database) = self.postgres.take() {
            let dropping = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                runtime.block_on(database.drop_database());
            });
            let _ = dropping.join();
        }
    }
}

/// A WebSocket client speaking JSON frames.
pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Frames received while waiting for another one.
    pub seen: Vec<Value>,
}

pub const WAIT: Duration = Duration::from_secs(10);

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client { ws, seen: Vec::new() }
    }

    /// Wraps a socket opened elsewhere (with custom upgrade headers).
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client { ws, seen: Vec::new() }
    }

    /// Connects to a `wss://` URL trusting `tls`.
    pub async fn connect_tls(url: &str, tls: std::sync::Arc<rustls::ClientConfig>) -> Client {
        let connector = tokio_tungstenite::Connector::Rustls(tls);
        let (ws, _) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector)).await.unwrap();
        Client { ws, seen: Vec::new() }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Message::Text(frame.to_string().into())).await.unwrap();
    }

    pub async fn send_raw(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// Sends a binary frame (the protocol speaks text only).
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    /// Sends hello and returns the first frame back.
    pub async fn hello(&mut self, hello: Value) -> Value {
        self.send(hello).await;
        self.next().await.expect("an answer to hello")
    }

    /// The next JSON frame, or `None` when the socket closed (close frames are returned as
    /// `{"t":"closed","code":N}`).
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame within the wait")?;
            match message {
                Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
                Ok(Message::Close(frame)) => {
                    return Some(json!({"t": "closed", "code": frame.map(|f| u16::from(f.code)).unwrap_or(0)}));
                }
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    /// Waits for a frame matching `want`, keeping the others in `seen`.
    pub async fn expect(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(index) = self.seen.iter().position(&want) {
            return self.seen.remove(index);
        }
        loop {
            let frame = self.next().await.expect("socket open while waiting");
            if want(&frame) {
                return frame;
            }
            self.seen.push(frame);
        }
    }

    /// Closes the socket politely and waits for the server to close its side.
    pub async fn close(mut self) {
        let _ = self.ws.send(Message::Close(None)).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(WAIT, self.ws.next()).await {}
    }

    /// Asserts no frame matching `unwanted` arrives within `within`.
    pub async fn expect_none(&mut self, within: Duration, unwanted: impl Fn(&Value) -> bool) {
        assert!(!self.seen.iter().any(&unwanted), "already received: {:?}", self.seen);
        let deadline = tokio::time::Instant::now() + within;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, self.ws.next()).await {
            if let Message::Text(text) = message {
                let frame: Value = serde_json::from_str(&text).unwrap();
                assert!(!unwanted(&frame), "unexpected frame {frame}");
                self.seen.push(frame);
            }
        }
    }
}

/// A trial certificate for `hosts`, valid from a day ago for a day (or `valid` as given).
pub fn certificate(hosts: &[&str]) -> TrialCertificate {
    certificate_valid(hosts, now_secs() - 86_400, now_secs() + 86_400)
}

pub fn certificate_valid(hosts: &[&str], not_before: i64, not_after: i64) -> TrialCertificate {
    let hosts: Vec<String> = hosts.iter().map(|host| (*host).to_owned()).collect();
    TrialCertificate::generate(&hosts, not_before, not_after).unwrap()
}

/// rustls client settings trusting only `ca_pem` (aws-lc-rs).
pub fn trusting(ca_pem: &str) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// An HTTP client trusting only `ca_pem`, not following redirects.
pub fn https_client(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_backend_preconfigured(rustls::ClientConfig::clone(&trusting(ca_pem)))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `method path` with a JSON body as `token`: status and body.
pub async fn call(server: &TestServer, token: &str, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", server.http))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Everything the server crates log, at every level, in this test process: what the
/// masking test greps for a card number. Installed once, as the process's subscriber, on
/// first use; tests running alongside log into it too.
pub fn captured_logs() -> &'static std::sync::Mutex<Vec<u8>> {
    static LOGS: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer: &'static std::sync::Mutex<Vec<u8>> = Box::leak(Box::new(std::sync::Mutex::new(Vec::new())));
        // Our crates at every level; dependencies at `info` (a WebSocket library logs raw
        // frames at `trace`, including what the test's own consumer typed in clear).
        let filter = tracing_subscriber::EnvFilter::new(
            "info,switchboard_server=trace,switchboard_store=trace,switchboard_bus=trace,switchboard_core=trace",
        );
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || LogWriter(buffer))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
}

/// Appends log lines to the captured buffer.
struct LogWriter(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|poison| poison.into_inner()).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
