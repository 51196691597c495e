//! The Switchboard server: consumer and agent WebSocket endpoints, the REST API with its
//! OpenAPI document, health and metrics. Thin by design: decode, call `core`, persist through
//! `store`, publish on `bus`.
//!
//! # Layout
//! - `ws`: the two WebSocket endpoints and the per-socket loop.
//! - `engine`: one task per brand owning its desk (routing, lifecycle, presence, timers).
//! - `fanout`: the only place that turns events into frames and picks their topics.
//! - `access`: who may read a conversation.
//! - `desk_ops`: what staff do to conversations (read, act on, close, transfer, set the
//!   priority, choose a state), shared by the agent socket and REST.
//! - `api`: REST handlers and the OpenAPI document.
//! - `export`: transcript exports (TXT, XML, JSON), streamed.
//! - `audit`: writing the audit log of admin and data actions.
//! - `auth`, `jwt`: staff sessions and roles; consumer tokens.
//! - `retention`: the background purge of conversations past each brand's retention.
//! - `push`: the push dispatcher (outbox → FCM and APNs).
//! - `origin`, `headers`: cross-site defences (the `Origin` check of cookie requests and agent
//!   upgrades) and the security headers of every response.
//! - `serve`, `tls`: the accept loop (TLS, plain HTTP on a TLS port, handshake and header
//!   deadlines) and the certificate that reloads when its files change.
//! - `abuse`: login limits per account and address, anonymous identities per address,
//!   password hashing on blocking threads, the body deadline, connection caps.
//! - `seed`: demo data for `switchboard serve` without configuration.

pub mod abuse;
pub mod access;
pub mod api;
pub mod audit;
pub mod auth;
pub mod desk_ops;
pub mod engine;
pub mod error;
pub mod export;
pub mod fanout;
pub mod files;
pub mod fleet;
pub mod floor;
pub mod headers;
pub mod identity;

/// A CA certificate the server trusts for outside services (push providers, identity
/// providers) besides the platform's roots.
pub use reqwest::Certificate as CaCertificate;
pub mod jwt;
pub mod metrics;
pub mod origin;
pub mod push;
pub mod retention;
pub mod seed;
pub mod serve;
pub mod text;
pub mod tls;
pub mod web;
pub mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_bus::Bus;
use switchboard_store::Store;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// A random 16-bit id for this node (the high bits of its connection ids).
fn node_id() -> u64 {
    let mut bytes = [0u8; 2];
    // Without randomness, node 0: only a fleet sharing a bus needs the ids to differ.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u64::from(u16::from_le_bytes(bytes))
}

/// A random id for this node in a fleet (never 0, which means "alone").
fn fleet_node_id() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u64::from_le_bytes(bytes).max(1)
}

/// Settings of the server itself (the binary builds this from its validated configuration).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Seconds between heartbeats; a socket silent for `2 × heartbeat + 10` is closed.
    pub heartbeat_secs: u32,
    /// How long a `hello` may take after the upgrade.
    pub hello_timeout: Duration,
    /// Lifetime of staff login sessions.
    pub session_ttl: Duration,
    /// Bearer token of the deployment operator (creates brands); `None` disables that API.
    pub operator_token: Option<String>,
    /// How often queued consumers' estimated waits are recomputed (and re-sent when they
    /// changed significantly).
    pub wait_refresh: Duration,
    /// The demo seed's credentials file (`seed::credentials_path`), when the demo runs: a
    /// password an admin sets for a demo login is removed from it at once.
    pub demo_credentials: Option<std::path::PathBuf>,
    /// The retention purge: how often, in what batches.
    pub retention: retention::RetentionConfig,
    /// Push sending (providers, the dispatcher's timing).
    pub push: push::PushConfig,
    /// CA certificates to trust for the brands' identity providers (JWKS URLs, token
    /// endpoints) besides the platform's.
    pub identity_extra_roots: Vec<reqwest::Certificate>,
    /// Serve TLS with this certificate and key (reloaded when the files change).
    pub tls: Option<tls::TlsSettings>,
    /// With TLS: what a client speaking plain HTTP to the port gets.
    pub plain_http: serve::PlainHttp,
    /// A proxy in front terminates TLS: the public address is https, so cookies are
    /// `Secure` and responses carry HSTS even though this server speaks plain HTTP.
    pub trust_proxy_tls: bool,
    /// Origins besides the server's own whose pages may use the session cookie (state
    /// changes, agent sockets); see `origin`.
    pub allowed_origins: Vec<origin::Origin>,
    /// When set, `/metrics` needs `Authorization: Bearer <this>`.
    pub metrics_token: Option<String>,
    /// Limits against abuse: logins, anonymous identities, password hashing, request
    /// bodies, connections (see `abuse`).
    pub abuse: abuse::AbuseConfig,
    /// NATS of the fleet this node joins (PostgreSQL only); `None`: the node is alone.
    pub nats_url: Option<String>,
    /// The authority that signed the `tls://` NATS servers' certificates (a PEM file), trusted
    /// instead of the system's; `None`: the system's.
    pub nats_ca_file: Option<std::path::PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            heartbeat_secs: 30,
            hello_timeout: Duration::from_secs(10),
            session_ttl: Duration::from_secs(12 * 3600),
            operator_token: None,
            wait_refresh: Duration::from_millis(switchboard_core::desk::DEFAULT_WAIT_REFRESH_MS.unsigned_abs()),
            demo_credentials: None,
            retention: retention::RetentionConfig::default(),
            push: push::PushConfig::default(),
            identity_extra_roots: Vec::new(),
            tls: None,
            plain_http: serve::PlainHttp::default(),
            trust_proxy_tls: false,
            allowed_origins: Vec::new(),
            metrics_token: None,
            abuse: abuse::AbuseConfig::default(),
            nats_url: None,
            nats_ca_file: None,
        }
    }
}

impl ServerConfig {
    /// Whether browsers reach this server over https (served here or by a trusted proxy).
    pub fn public_https(&self) -> bool {
        self.tls.is_some() || self.trust_proxy_tls
    }
}

/// State shared by every handler and socket.
pub struct Shared {
    pub store: Store,
    pub bus: Arc<Bus>,
    pub config: ServerConfig,
    /// The brands' engines (routing and lifecycle).
    pub engines: engine::Engines,
    /// Frames to topics.
    pub fanout: fanout::Fanout,
    /// Parsed public keys per app id. Filled on first use, dropped when the app's keys
    /// change. A std `Mutex`: held only for a map lookup or insert, never across `.await`.
    pub app_keys: Mutex<HashMap<String, Arc<Vec<jwt::VerifyingKey>>>>,
    /// The brands being purged on this node (`retention`).
    pub retention: retention::Retention,
    /// Source of connection ids (bus echo suppression, logs). Starts at a random node id
    /// shifted left 40 bits, so ids of different nodes never collide on a shared bus.
    pub next_connection_id: AtomicU64,
    /// Flips to `true` once shutdown starts: sockets close with 1001.
    pub shutdown: watch::Receiver<bool>,
    /// Renders `/metrics`; `None` when another recorder was installed first (tests).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Push sending: the providers' clients and each app's senders; its dispatcher task runs
    /// until shutdown.
    pub push: Arc<push::Push>,
    /// The brands' identity providers: fetched keys, the code exchange.
    pub identity: identity::Identity,
    /// Each app's identity-provider settings, filled on first use and dropped when an admin
    /// changes them. A std `Mutex`: held for a lookup or insert, never across `.await`.
    pub app_identity: Mutex<HashMap<String, Arc<switchboard_store::IdentitySettings>>>,
    /// Login and anonymous-identity limits, password hashing, the unauthenticated sockets.
    pub abuse: abuse::Abuse,
    /// This node's membership of a fleet (`nats_url`), `None` alone.
    pub fleet: Option<switchboard_bus::nats::Fleet>,
}

/// A demo login's password was changed or the login disabled: the demo's credentials file
/// must not keep showing a password that no longer works.
pub fn demo_password_changed(state: &AppState, user: &switchboard_store::User) {
    if let Some(path) = &state.config.demo_credentials
        && user.brand_id == seed::DEMO_BRAND
        && let Err(error) = seed::forget_demo_password(path, &user.email)
    {
        tracing::warn!(%error, "could not update the demo credentials file");
    }
}

/// Cheap-to-clone handle to [`Shared`].
#[derive(Clone)]
pub struct AppState(pub Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// A running server: its address and the means to stop it.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The push dispatcher, if push sending is on: it ends after shutdown starts, once its
    /// pushes in flight are settled or given back.
    dispatcher: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Starts graceful shutdown (sockets close with 1001, in-flight requests finish) and
    /// waits for it.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.state.engines.leave().await;
        let result = self.task.await.unwrap_or_else(|join| Err(std::io::Error::other(join)));
        if let Some(dispatcher) = self.dispatcher {
            let _ = dispatcher.await;
        }
        self.state.store.close().await;
        result
    }
}

/// Builds the state, rebuilds routing from the store, and serves on `listener` until
/// [`Running::shutdown`].
pub async fn start(store: Store, config: ServerConfig, listener: TcpListener) -> anyhow::Result<Running> {
    // The certificate first: a bad one stops the start before anything else happens.
    let tls = config.tls.clone().map(tls::Acceptor::new).transpose()?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let bus = Bus::new();
    let (fleet, link) = match &config.nats_url {
        None => (None, None),
        Some(_) if store.dialect() == switchboard_store::Dialect::Sqlite => {
            anyhow::bail!(
                "nats_url is set but the database is SQLite: a fleet shares one PostgreSQL database \
                 (set database_url to postgres://…, or leave nats_url out for a single node)"
            )
        }
        Some(url) => {
            let node = fleet_node_id();
            let fleet =
                bus.join_fleet(url, &format!("switchboard-{node:016x}"), config.nats_ca_file.as_deref()).await?;
            let link = engine::remote::Link::new(fleet.client().clone(), node, &store).await?;
            tracing::info!(node = format_args!("{node:016x}"), nats = %url, "joined the fleet");
            (Some(fleet), Some(link))
        }
    };
    // One fan-out for the node: the engines and the sockets share its masking rules.
    let fanout = fanout::Fanout::new(bus.clone(), store.clone());
    let push = Arc::new(push::Push::new(config.push.clone(), store.clone(), bus.clone(), fanout.clone())?);
    let identity = identity::Identity::new(&config.identity_extra_roots)?;
    let abuse = abuse::Abuse::new(config.abuse.clone());
    let state = AppState(Arc::new(Shared {
        engines: engine::Engines::new(
            engine::EngineConfig {
                store: store.clone(),
                fanout: fanout.clone(),
                clock: engine::Clock::start(),
                wait_refresh: config.wait_refresh,
                fleet: link,
            },
            shutdown_rx.clone(),
        ),
        fanout,
        store,
        bus,
        config,
        app_keys: Mutex::new(HashMap::new()),
        retention: retention::Retention::default(),
        next_connection_id: AtomicU64::new(node_id() << 40 | 1),
        shutdown: shutdown_rx,
        metrics: metrics::install(),
        push,
        identity,
        app_identity: Mutex::new(HashMap::new()),
        abuse,
        fleet,
    }));
    if let Some(fleet) = &state.fleet {
        fleet::listen(fleet, Arc::downgrade(&state.0)).await;
    }
    state.engines.start_busy_brands().await?;
    retention::spawn(state.clone());
    let addr = listener.local_addr()?;
    let app = api::router(state.clone());
    if let Some(handle) = state.metrics.clone() {
        // Histograms keep raw samples until upkeep folds them in; without a scrape they
        // would grow forever. Ends with the process (the handle is process-wide).
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    }
    let dispatcher = state.push.spawn(state.shutdown.clone());
    let plain_http = state.config.plain_http;
    let connections = abuse::ConnectionCounts::new(state.config.abuse.max_connections_per_address);
    let task = serve::spawn(listener, serve::Edge { app, tls, plain_http, connections }, state.shutdown.clone());
    tracing::info!(
        %addr,
        tls = state.config.tls.is_some(),
        password_hash_threads = state.abuse.hashing.threads(),
        max_connections_per_address = state.config.abuse.max_connections_per_address,
        "listening"
    );
    Ok(Running { addr, state, shutdown: shutdown_tx, task, dispatcher })
}
