//! The fleet tests' harness: a `nats-server` and a PostgreSQL database (or a private
//! PostgreSQL cluster) of the test's own, `switchboard serve` nodes as separate processes on
//! loopback ports, and the clients that load them: SDK consumers, agents over raw sockets, and
//! a manager's REST view of what was stored. Everything started here is stopped when dropped
//! (nodes killed, the database dropped, the cluster stopped and removed), so a failed test
//! leaves nothing running.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use switchboard_sdk::{Auth, Backoff, Client, ConnectionState, ConversationStatus, MessageState, Side, TokenProvider};
use switchboard_store::testing::{create_database, drop_database, postgres_server_url, unique_suffix, with_database};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// Why the fleet tests are ignored in a plain `cargo test`.
pub const NEEDS: &str =
    "needs PostgreSQL and nats-server: set SWITCHBOARD_TEST_POSTGRES_URL, run with --include-ignored";

/// The demo brand and app every node serves (seeded by the first node).
pub const BRAND: &str = "demo";
pub const APP: &str = "demo-app";

/// How long the tests wait for one answer of `/readyz`. With PostgreSQL gone, a node's
/// readiness check waits for a pooled connection (the store's acquire timeout, 10 s) before
/// it answers 503; a load balancer with a shorter health-check timeout counts the timeout as
/// not ready too, but the tests want the node's own answer.
pub const READYZ_TIMEOUT: Duration = Duration::from_secs(15);

/// A password that passes the server's policy, for the agents the tests create.
const AGENT_PASSWORD: &str = "fleet tests: correct horse battery staple";

/// A free TCP port on loopback (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `check` every 100 ms until it answers `Some`, for at most `limit`; panics naming
/// `what` when it never does. Bounds every wait of the tests (no test measures time).
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("{what}: not within {} s", limit.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`eventually`] for a check that says what it is still waiting for (`Err(why)`): the
/// panic shows the last answer.
pub async fn eventually_why<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(why) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not within {} s; still: {why}", limit.as_secs())
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The longest a fleet test may run (each takes well under a minute): a hang fails the test,
/// naming its last [`step`], instead of stalling the suite.
pub const TEST_LIMIT: Duration = Duration::from_secs(150);

/// Runs a fleet test's scenario, one fleet at a time, within [`TEST_LIMIT`] (the wait for the
/// previous fleet test does not count). The scenario runs as a task of its own, so the limit
/// holds even if it blocks a thread; one cut short is aborted, which drops (and so stops)
/// what it started.
pub async fn bounded(scenario: impl std::future::Future<Output = ()> + Send + 'static) {
    let _one_at_a_time = one_fleet_at_a_time().await;
    let task = tokio::spawn(scenario);
    let abort = task.abort_handle();
    match tokio::time::timeout(TEST_LIMIT, task).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Ok(Err(error)) => panic!("the scenario ended: {error}"),
        Err(_) => {
            abort.abort();
            panic!("the scenario did not finish within {} s; its last step is printed above", TEST_LIMIT.as_secs());
        }
    }
}

/// Prints where a scenario is (shown with the output of a failed test).
pub fn step(what: &str) {
    eprintln!("fleet test step: {what}");
}

/// Held by a fleet test while it runs: one fleet at a time (each is three servers under
/// load; several at once on a small machine would only test its scheduler). A tokio mutex:
/// it is held across awaits, and each test has a runtime of its own.
async fn one_fleet_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static FLEET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    FLEET.lock().await
}

/// A directory of the test's own under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("sb-{prefix}-{}", unique_suffix()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ----- NATS ------------------------------------------------------------------------------

/// A `nats-server` of the test's own on a free loopback port, killed when dropped.
pub use switchboard_bus::testing::NatsServer as Nats;

// ----- PostgreSQL -----------------------------------------------------------------------

/// A database `fleet_<random>` on `SWITCHBOARD_TEST_POSTGRES_URL`'s server; dropped on drop
/// (`WITH (FORCE)`: a killed node's sessions may linger).
pub struct Database {
    server_url: String,
    name: String,
}

impl Database {
    pub async fn create() -> Database {
        let server_url = postgres_server_url();
        let name = format!("fleet_{}", unique_suffix());
        create_database(&server_url, &name)
            .await
            .unwrap_or_else(|error| panic!("cannot create database {name} at {server_url:?} ({error}): {NEEDS}"));
        Database { server_url, name }
    }

    pub fn url(&self) -> String {
        with_database(&self.server_url, &self.name)
    }
}

impl Drop for Database {
    /// On a thread of its own: this may run inside the test's runtime, which cannot block.
    fn drop(&mut self) {
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        let dropping = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(drop_database(&server_url, &name));
        });
        let _ = dropping.join();
    }
}

/// The directory of PostgreSQL's server programs (`initdb`, `pg_ctl`): `SWITCHBOARD_PG_BINDIR`,
/// else Debian's newest `/usr/lib/postgresql/<version>/bin`, else whatever is on the `PATH`.
fn postgres_bindir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("SWITCHBOARD_PG_BINDIR") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A PostgreSQL cluster of the test's own (initdb into a temporary directory, on a private
/// loopback port), so that stopping it never touches the shared service. As root, its
/// programs run as the `postgres` user (initdb refuses root). Stopped and removed on drop.
pub struct PrivateCluster {
    root: PathBuf,
    bindir: Option<PathBuf>,
    pub port: u16,
}

impl PrivateCluster {
    /// Creates the cluster and starts it.
    pub fn start() -> PrivateCluster {
        let root = std::env::temp_dir().join(format!("sb-pgcluster-{}", unique_suffix()));
        std::fs::create_dir_all(&root).unwrap();
        // initdb (as postgres) creates `data` in here, and pg_ctl writes its log here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
        let cluster = PrivateCluster { root, bindir: postgres_bindir(), port: free_port() };
        let data = cluster.data_dir();
        cluster
            .run("initdb", &["-D", data.to_str().unwrap(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
        cluster.start_again();
        cluster
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// `program` of the PostgreSQL binaries, to run as the cluster's owner (`postgres` when
    /// the tests run as root, which initdb refuses).
    fn command(&self, program: &str) -> Command {
        let binary = self.binary(program);
        if rustix::process::geteuid().is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&binary);
            command
        } else {
            Command::new(&binary)
        }
    }

    /// Where `program` of the PostgreSQL binaries is.
    fn binary(&self, program: &str) -> PathBuf {
        self.bindir.as_ref().map_or_else(|| PathBuf::from(program), |dir| dir.join(program))
    }

    /// `program args…` as the cluster's owner; panics with its output when it fails.
    fn run(&self, program: &str, args: &[&str]) {
        let binary = self.binary(program);
        let output = self
            .command(program)
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|error| panic!("cannot run {} ({error}): needs PostgreSQL's server programs (Debian package postgresql; SWITCHBOARD_PG_BINDIR names their directory)", binary.display()));
        assert!(
            output.status.success(),
            "{} {args:?} failed: {}{}",
            binary.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Starts the server (again) on its port, waiting until it accepts connections.
    pub fn start_again(&self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.root.display());
        let data = self.data_dir();
        let log = self.root.join("postgres.log");
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-l", log.to_str().unwrap(), "-o", &options, "-w", "-t", "30", "start"],
        );
    }

    /// Stops the server (fast: sessions are ended, the data is flushed).
    pub fn stop(&self) {
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "-t", "30", "stop"]);
    }

    /// The URL of its `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        // Best effort: it may be stopped already.
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

// ----- nodes -----------------------------------------------------------------------------

/// A `switchboard serve` process: one member of the fleet.
pub struct Node {
    child: Option<Child>,
    pub name: String,
    /// `http://127.0.0.1:PORT`
    pub http: String,
    /// `ws://127.0.0.1:PORT`
    pub ws: String,
    pub data_dir: PathBuf,
    /// Its stdout and stderr (logs and banner).
    pub log: PathBuf,
}

impl Node {
    /// Starts `switchboard serve` on a free loopback port with its own data directory under
    /// `root`, on `database_url`, joined to `nats_url` when given; waits for its banner and
    /// for `/readyz` to answer 200. Inherited `SWITCHBOARD_*` variables are cleared; the
    /// per-address abuse limits are off (every client of the test comes from 127.0.0.1).
    pub async fn start(root: &Path, name: &str, database_url: &str, nats_url: Option<&str>) -> Node {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let data_dir = dir.join("data");
        let log = dir.join("node.log");
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .args(["--database-url", database_url]);
        if let Some(nats_url) = nats_url {
            command.args(["--nats-url", nats_url]);
        }
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SWITCHBOARD_") {
                command.env_remove(key);
            }
        }
        command
            .current_dir(&dir)
            .env("SWITCHBOARD_LOG", "info")
            .env("SWITCHBOARD_ANONYMOUS_PER_ADDRESS", "0")
            .env("SWITCHBOARD_MAX_CONNECTIONS_PER_ADDRESS", "0")
            .env("SWITCHBOARD_MAX_UNAUTHENTICATED_SOCKETS", "0")
            .env("SWITCHBOARD_LOGIN_ATTEMPTS_PER_ADDRESS", "0")
            .env("SWITCHBOARD_PUSH", "false")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = command.spawn().expect("the switchboard binary starts");
        let mut node =
            Node { child: Some(child), name: name.to_owned(), http: String::new(), ws: String::new(), data_dir, log };
        let http = eventually(&format!("node {name} prints its address"), Duration::from_secs(30), || {
            let found = std::fs::read_to_string(&node.log)
                .unwrap_or_default()
                .lines()
                .find_map(|line| line.strip_prefix("Switchboard is listening on ").map(|rest| rest.trim().to_owned()));
            let exited = node.child.as_mut().unwrap().try_wait().unwrap();
            if let Some(status) = exited {
                panic!("node {name} exited ({status}) at start:\n{}", node.log_text());
            }
            std::future::ready(found)
        })
        .await;
        node.ws = http.replace("http://", "ws://");
        node.http = http;
        eventually(&format!("node {name} is ready"), Duration::from_secs(30), || {
            let node = &node;
            async move { (node.readyz().await == Some(200)).then_some(()) }
        })
        .await;
        node
    }

    /// The status of `GET /readyz`; `None` when the node does not answer within
    /// [`READYZ_TIMEOUT`] (a load balancer's health check gives up too).
    pub async fn readyz(&self) -> Option<u16> {
        let client = reqwest::Client::builder().timeout(READYZ_TIMEOUT).build().unwrap();
        client.get(format!("{}/readyz", self.http)).send().await.ok().map(|r| r.status().as_u16())
    }

    /// Whether this node's process has the socket `inode` open.
    fn owns_socket(&self, inode: u64) -> bool {
        let Some(child) = &self.child else { return false };
        let wanted = format!("socket:[{inode}]");
        std::fs::read_dir(format!("/proc/{}/fd", child.id()))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == wanted.as_str()))
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether this node found the demo seeded already (it wrote no credentials).
    pub fn credentials_missing(&self) -> bool {
        !self.data_dir.join("demo-credentials.json").exists()
    }

    /// The demo credentials this node wrote (the first node on an empty database).
    pub fn credentials(&self) -> Value {
        let path = self.data_dir.join("demo-credentials.json");
        let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        serde_json::from_slice(&bytes).unwrap()
    }

    /// A consumer JWT for `sub` signed with the demo key in this node's data directory.
    pub fn consumer_token(&self, sub: &str) -> String {
        switchboard_server::seed::dev_token(&self.data_dir, sub, Some(sub), 3600).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Nodes, their NATS server and their database, started together; dropped in that order
/// (nodes killed first, then NATS stopped, then the database dropped).
pub struct Fleet {
    pub nodes: Vec<Node>,
    pub nats: Option<Nats>,
    /// The database every node uses.
    pub database_url: String,
    /// Held for its drop (after the nodes').
    _database: Option<Database>,
    /// The nodes' directories, removed last.
    _root: TempDir,
}

impl Fleet {
    /// `n` nodes on a fresh database of `SWITCHBOARD_TEST_POSTGRES_URL`'s server, joined
    /// to a NATS server of their own.
    pub async fn start(test: &str, n: usize) -> Fleet {
        Fleet::start_with(test, n, Some(Nats::start())).await
    }

    /// `n` nodes on a fresh database without NATS: each node stands alone (what works
    /// without the fleet: the harness itself).
    pub async fn start_without_nats(test: &str, n: usize) -> Fleet {
        Fleet::start_with(test, n, None).await
    }

    async fn start_with(test: &str, n: usize, nats: Option<Nats>) -> Fleet {
        let database = Database::create().await;
        let root = TempDir::new(test);
        let database_url = database.url();
        let nodes = start_nodes(&root.0, n, &database_url, nats.as_ref().map(Nats::url).as_deref()).await;
        Fleet { nodes, nats, database_url, _database: Some(database), _root: root }
    }

    /// `n` nodes on `cluster` (a private PostgreSQL of the test's), joined to a NATS server
    /// of their own.
    pub async fn start_on_cluster(test: &str, n: usize, cluster: &PrivateCluster) -> Fleet {
        let nats = Nats::start();
        let root = TempDir::new(test);
        let nodes = start_nodes(&root.0, n, &cluster.url(), Some(&nats.url())).await;
        Fleet { nodes, nats: Some(nats), database_url: cluster.url(), _database: None, _root: root }
    }

    /// Waits until every node's `/readyz` answers `status` (asked of all nodes at once).
    pub async fn all_ready_status(&self, status: u16, what: &str, limit: Duration) {
        eventually(what, limit, || async {
            let answers = futures_util::future::join_all(self.nodes.iter().map(Node::readyz)).await;
            answers.iter().all(|answer| *answer == Some(status)).then_some(())
        })
        .await;
    }

    /// The node holding `brand`'s engine lease, if one does: the lease is a PostgreSQL
    /// advisory lock on `hashtextextended('engine:<brand>', 0)` held by a connection of the
    /// node's own, so PostgreSQL's lock table names the connection's client port, and the
    /// kernel's socket table the node process that owns that port.
    pub async fn engine_holder(&self, brand: &str) -> Option<usize> {
        let mut conn = PgConnection::connect(&self.database_url).await.ok()?;
        let ports: Vec<Option<i32>> = sqlx::query_scalar(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
             AND ((l.classid::int8 << 32) | l.objid::int8) = hashtextextended($1, 0)",
        )
        .bind(format!("engine:{brand}"))
        .fetch_all(&mut conn)
        .await
        .ok()?;
        let _ = conn.close().await;
        let port = u16::try_from(ports.into_iter().flatten().next()?).ok()?;
        let inode = socket_inode_of_local_port(port)?;
        self.nodes.iter().position(|node| node.owns_socket(inode))
    }

    /// Every node's address, `first`'s first: an SDK client's server list.
    pub fn urls_from(&self, first: usize) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.nodes[(first + i) % self.nodes.len()].http.clone()).collect()
    }

    /// The node that seeded the demo (holds the credentials and the signing key).
    pub fn seeder(&self) -> &Node {
        &self.nodes[0]
    }
}

/// The inode of the TCP socket whose local port is `port` (Linux's `/proc/net/tcp*`).
fn socket_inode_of_local_port(port: u16) -> Option<u64> {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1).and_then(|local| local.rsplit(':').next());
            if local_port.and_then(|hex| u16::from_str_radix(hex, 16).ok()) == Some(port) {
                return fields.get(9)?.parse().ok();
            }
        }
    }
    None
}

/// Starts node 1 first (it seeds the demo on the empty database), waits for it to be ready,
/// then the others.
async fn start_nodes(root: &Path, n: usize, database_url: &str, nats_url: Option<&str>) -> Vec<Node> {
    let mut nodes = vec![Node::start(root, "node1", database_url, nats_url).await];
    for i in 2..=n {
        nodes.push(Node::start(root, &format!("node{i}"), database_url, nats_url).await);
    }
    nodes
}

// ----- REST ------------------------------------------------------------------------------

/// A staff member's REST session on one node.
#[derive(Clone)]
pub struct Rest {
    http: reqwest::Client,
    base: String,
    pub token: String,
}

impl Rest {
    /// Logs in as the demo login of `role` (from the seeding node's credentials) at `base`.
    pub async fn demo(base: &str, seeder: &Node, role: &str) -> Rest {
        let credentials = seeder.credentials();
        let login = credentials["logins"].as_array().unwrap().iter().find(|l| l["role"] == role).unwrap().clone();
        Rest::login(base, login["email"].as_str().unwrap(), login["password"].as_str().unwrap()).await
    }

    pub async fn login(base: &str, email: &str, password: &str) -> Rest {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
        let response = http
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap_or_else(|error| panic!("login at {base}: {error}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        assert_eq!(status, 200, "login of {email} at {base}: {body}");
        Rest { http, base: base.to_owned(), token: body["token"].as_str().unwrap().to_owned() }
    }

    pub async fn get(&self, path: &str) -> Value {
        let response = self.http.get(format!("{}{path}", self.base)).bearer_auth(&self.token).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "GET {path} at {}: {status}: {text}", self.base);
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("GET {path}: {error}: {text}"))
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path} at {}: {status}: {text}", self.base);
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates agents (admin) with every skill of the brand and room for `max_concurrent`
    /// conversations each; returns their logins (email, password).
    pub async fn create_agents(&self, prefix: &str, n: usize, max_concurrent: i64) -> Vec<(String, String)> {
        let skills: Vec<i64> =
            self.get("/api/v1/skills").await.as_array().unwrap().iter().map(|s| s["id"].as_i64().unwrap()).collect();
        let mut logins = Vec::new();
        for i in 0..n {
            let email = format!("{prefix}{i}@fleet.test");
            let body = json!({"email": email, "name": format!("Fleet agent {prefix}{i}"), "role": "agent",
                "password": AGENT_PASSWORD, "max_concurrent": max_concurrent, "skills": skills});
            self.send(reqwest::Method::POST, "/api/v1/users", body).await;
            logins.push((email, AGENT_PASSWORD.to_owned()));
        }
        logins
    }

    /// Brand settings (admin), e.g. a long agent grace period so that an agent whose node
    /// died keeps their conversations while they reconnect elsewhere.
    pub async fn patch_brand(&self, body: Value) {
        self.send(reqwest::Method::PATCH, "/api/v1/brand", body).await;
    }

    /// Every stored message of conversation `c` (manager), in seq order.
    pub async fn messages(&self, c: i64) -> Vec<Value> {
        let mut messages = Vec::new();
        let mut after = 0;
        loop {
            let page = self.get(&format!("/api/v1/conversations/{c}?after={after}&limit=1000")).await;
            let batch = page["messages"].as_array().unwrap().clone();
            after = batch.last().map_or(after, |m| m["seq"].as_i64().unwrap());
            let empty = batch.is_empty();
            messages.extend(batch);
            assert!(!(empty && page["more"] == true), "conversation {c}: an empty page says more follow");
            if page["more"] != true {
                return messages;
            }
        }
    }

    /// The conversation (manager): status, agent, last seq…
    pub async fn conversation(&self, c: i64) -> Value {
        self.get(&format!("/api/v1/conversations/{c}?limit=1")).await["conversation"].clone()
    }

    /// The event log of conversation `c` (its JSON transcript's `events`), oldest first.
    pub async fn events(&self, c: i64) -> Vec<Value> {
        let transcript = self.get(&format!("/api/v1/conversations/{c}/transcript?format=json")).await;
        transcript["conversations"][0]["events"].as_array().cloned().unwrap_or_default()
    }
}

// ----- checks ----------------------------------------------------------------------------

/// A message whose send was acknowledged: conversation, seq, the sender's cid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Acked {
    pub c: i64,
    pub seq: i64,
    pub cid: String,
}

/// Every acknowledged message is stored exactly once, where its ack said; each conversation's
/// seqs run 1..=n without a gap, and no cid is stored twice. Read through `rest` (a manager).
pub async fn assert_stored_exactly_once(rest: &Rest, acked: &[Acked]) {
    let mut by_conversation: BTreeMap<i64, Vec<&Acked>> = BTreeMap::new();
    for ack in acked {
        by_conversation.entry(ack.c).or_default().push(ack);
    }
    for (c, acks) in by_conversation {
        let stored = rest.messages(c).await;
        let seqs: Vec<i64> = stored.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "conversation {c}: seqs without gaps");
        let mut cids = HashMap::new();
        for message in &stored {
            if let Some(cid) = message["cid"].as_str() {
                let seq = message["seq"].as_i64().unwrap();
                if let Some(first) = cids.insert((message["from"].to_string(), cid.to_owned()), seq) {
                    panic!("conversation {c}: cid {cid} stored twice, at seq {first} and {seq}");
                }
            }
        }
        for ack in acks {
            let message = stored
                .get(ack.seq as usize - 1)
                .unwrap_or_else(|| panic!("conversation {c}: acknowledged seq {} is not stored ({ack:?})", ack.seq));
            assert_eq!(message["cid"].as_str(), Some(ack.cid.as_str()), "conversation {c} seq {}: {message}", ack.seq);
        }
    }
}

/// No conversation was ever held by two agents at once: in its event log, an `assigned`
/// follows only an opening or a return to the queue (the tests make no transfers).
pub async fn assert_never_assigned_twice(rest: &Rest, conversations: &BTreeSet<i64>) {
    for &c in conversations {
        let events = rest.events(c).await;
        let mut holder: Option<i64> = None;
        for event in &events {
            match event["kind"].as_str().unwrap_or_default() {
                "assigned" => {
                    let agent = event["agent_id"].as_i64();
                    assert!(
                        holder.is_none(),
                        "conversation {c} assigned to {agent:?} while {holder:?} held it: {events:#?}"
                    );
                    holder = agent;
                }
                "queued" | "closed" | "auto_closed" => holder = None,
                _ => {}
            }
        }
    }
}

// ----- consumers (the SDK) ---------------------------------------------------------------

struct DevTokens {
    data_dir: PathBuf,
    sub: String,
}

impl TokenProvider for DevTokens {
    fn fetch_token(&self) -> Result<String, String> {
        switchboard_server::seed::dev_token(&self.data_dir, &self.sub, Some(&self.sub), 3600).map_err(|e| e.to_string())
    }
}

/// A consumer's device on the SDK, knowing every node (`servers[0]` first).
pub struct Consumer {
    pub client: Client,
    pub sub: String,
    /// Index of its first node in the fleet.
    pub primary: usize,
    _dir: TempDir,
}

impl Consumer {
    /// A device of consumer `sub`, connected, with `servers` (its first node first) and quick
    /// reconnection.
    pub fn connect(seeder: &Node, sub: &str, servers: &[String], primary: usize) -> Consumer {
        let dir = TempDir::new(&format!("sdk-{sub}"));
        let client = Client::builder(servers[0].clone(), BRAND, APP)
            .fallback_servers(servers[1..].iter().cloned())
            .auth(Auth::Jwt(Arc::new(DevTokens { data_dir: seeder.data_dir.clone(), sub: sub.to_owned() })))
            .data_dir(dir.0.join("cache"))
            .encryption_key([7; 32])
            .backoff(Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(1) })
            .build()
            .unwrap();
        client.connect();
        Consumer { client, sub: sub.to_owned(), primary, _dir: dir }
    }

    /// This device's messages the server acknowledged (they have a seq).
    pub fn acked(&self) -> Vec<Acked> {
        let mut acked = Vec::new();
        for conversation in self.client.conversations().unwrap() {
            for message in self.client.messages(conversation.id).unwrap() {
                if message.from == Side::Consumer
                    && message.state != MessageState::Pending
                    && let (Some(seq), Some(cid)) = (message.seq, message.client_id)
                {
                    acked.push(Acked { c: conversation.id, seq, cid });
                }
            }
        }
        acked
    }

    /// Messages still waiting in the outbox.
    pub fn pending(&self) -> usize {
        self.client.pending_messages().unwrap().len()
    }

    pub fn connected(&self) -> bool {
        self.client.connection_state() == ConnectionState::Connected
    }

    /// The seqs of conversation `c` in the device's cache.
    pub fn seqs(&self, c: i64) -> BTreeSet<i64> {
        self.client.messages(c).unwrap().iter().filter_map(|m| m.seq).collect()
    }

    /// The consumer's conversations as the device knows them.
    pub fn conversations(&self) -> Vec<Conversation> {
        let conversations = self.client.conversations().unwrap();
        conversations
            .iter()
            .map(|c| Conversation { id: c.id, open: c.status == ConversationStatus::Open, assigned: c.agent.is_some() })
            .collect()
    }
}

/// A conversation as a consumer's device knows it.
#[derive(Debug, Clone, Copy)]
pub struct Conversation {
    pub id: i64,
    pub open: bool,
    /// An agent holds it (or held it, when closed).
    pub assigned: bool,
}

/// Sends `n` messages from `consumer`, one every `every` (into the SDK's outbox: the SDK
/// sends them when it can, exactly once).
pub fn send_continuously(consumer: &Consumer, n: usize, every: Duration) -> tokio::task::JoinHandle<()> {
    let client = consumer.client.clone();
    let sub = consumer.sub.clone();
    tokio::spawn(async move {
        for i in 0..n {
            client.send_text(&format!("{sub} says {i}")).unwrap();
            tokio::time::sleep(every).await;
        }
    })
}

// ----- agents (raw sockets) --------------------------------------------------------------

/// A JSON-frame WebSocket.
pub struct Socket {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    /// Frames read while waiting for another.
    pub seen: Vec<Value>,
}

impl Socket {
    pub async fn connect(url: &str) -> Option<Socket> {
        let connecting = tokio_tungstenite::connect_async(url);
        let (ws, _) = tokio::time::timeout(Duration::from_secs(5), connecting).await.ok()?.ok()?;
        Some(Socket { ws, seen: Vec::new() })
    }

    pub async fn send(&mut self, frame: Value) -> bool {
        self.ws.send(Message::Text(frame.to_string().into())).await.is_ok()
    }

    /// The next JSON frame; `None` when the socket ended or nothing came within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await.ok()?? {
                Ok(Message::Text(text)) => return serde_json::from_str(&text).ok(),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Waits (at most 15 s) for a frame matching `wanted`, keeping the others in `seen`.
    pub async fn expect(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.seen.iter().position(&wanted) {
            return self.seen.remove(i);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame =
                self.next(left).await.unwrap_or_else(|| panic!("{what}: not within 15 s; got {:#?}", self.seen));
            if wanted(&frame) {
                return frame;
            }
            self.seen.push(frame);
        }
    }

    /// A consumer socket at `ws` authenticated with `token`.
    pub async fn consumer(ws: &str, token: &str) -> Socket {
        let mut socket = Socket::connect(&format!("{ws}/v1/consumer")).await.expect("the node accepts a consumer");
        socket.send(json!({"t": "hello", "v": 1, "brand": BRAND, "app": APP, "token": token})).await;
        let welcome = socket.expect("welcome", |f| f["t"] == "welcome" || f["t"] == "err").await;
        assert_eq!(welcome["t"], "welcome", "{welcome}");
        socket
    }

    /// A staff socket at `ws` with `session` (a manager's: the dashboard's socket).
    pub async fn staff(ws: &str, session: &str) -> Socket {
        let mut socket = Socket::connect(&format!("{ws}/v1/agent")).await.expect("the node accepts an agent");
        socket.send(json!({"t": "hello", "v": 1, "session": session})).await;
        let welcome = socket.expect("welcome", |f| f["t"] == "welcome" || f["t"] == "err").await;
        assert_eq!(welcome["t"], "welcome", "{welcome}");
        socket
    }

    /// An agent's socket at `ws` with `session`, online.
    pub async fn online_agent(ws: &str, session: &str) -> Socket {
        let mut socket = Socket::staff(ws, session).await;
        socket.send(json!({"t": "state", "id": 0, "state": "online"})).await;
        socket.expect("the online state is taken", |f| f["t"] == "ok" && f["id"] == 0).await;
        socket
    }
}

/// What an agent worker did.
#[derive(Debug, Default)]
pub struct AgentReport {
    /// The agent's messages the server acknowledged.
    pub acked: Vec<Acked>,
    /// Conversations assigned to the agent (from `welcome` and `assigned` events).
    pub conversations: BTreeSet<i64>,
    /// Seqs the agent holds per conversation: received live or by sync, or its own acked.
    pub seqs: BTreeMap<i64, BTreeSet<i64>>,
    /// Connections made (more than one: it moved to another node).
    pub connections: usize,
    /// Sends written and not acknowledged yet.
    pub unacked: usize,
    /// Refusals of its sends (code and message).
    pub errors: Vec<String>,
    /// Sends answered `unavailable`, kept apart from the refusals: a request in flight to the
    /// brand's engine when its node is killed gets no answer and fails after the forwarder's
    /// 15 s (`engine::remote`'s `ANSWER_TIMEOUT`); the send stays unacknowledged and is resent.
    pub unavailable: Vec<String>,
}

/// What an agent worker does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Takes conversations and writes to them.
    Send,
    /// Keeps resending what was not acknowledged, reads, writes nothing new.
    Quiet,
    /// Ends.
    Stop,
}

/// How an agent worker writes.
#[derive(Debug, Clone, Copy)]
pub struct AgentPlan {
    /// One message every `every`, to its open conversations in turn.
    pub every: Duration,
    /// Closes a conversation once this many of its messages there were acknowledged (its
    /// seat then takes the next in the queue); `None`: never closes.
    pub close_after: Option<usize>,
}

/// An agent that stays online on the first node of `servers` that answers (moving on when
/// its node dies, resending unacknowledged sends with their cids), follows its conversations
/// by seq (syncing after a gap, a `resync` or an assignment), and while `phase` is
/// [`Phase::Send`] writes to its conversations as `plan` says.
pub fn spawn_agent(
    name: String,
    login: (String, String),
    servers: Vec<String>,
    plan: AgentPlan,
    phase: watch::Receiver<Phase>,
) -> (Arc<Mutex<AgentReport>>, tokio::task::JoinHandle<()>) {
    let report = Arc::new(Mutex::new(AgentReport::default()));
    let worker = AgentWorker { name, login, plan, report: Arc::clone(&report), ..AgentWorker::default() };
    let handle = tokio::spawn(worker.run(servers, phase));
    (report, handle)
}

/// The state of one agent worker across its connections.
#[derive(Default)]
struct AgentWorker {
    name: String,
    login: (String, String),
    plan: AgentPlan,
    report: Arc<Mutex<AgentReport>>,
    /// Sends written and not yet acknowledged: frame id → (conversation, cid).
    unacked: BTreeMap<u64, (i64, String)>,
    /// Open conversations it holds (writes to).
    open: BTreeSet<i64>,
    /// Its acknowledged messages per conversation.
    written: BTreeMap<i64, usize>,
    next_id: u64,
    turn: usize,
}

impl Default for AgentPlan {
    fn default() -> Self {
        AgentPlan { every: Duration::from_millis(200), close_after: None }
    }
}

impl AgentWorker {
    async fn run(mut self, servers: Vec<String>, mut phase: watch::Receiver<Phase>) {
        let mut server = 0usize;
        while *phase.borrow() != Phase::Stop {
            let base = servers[server % servers.len()].clone();
            server += 1;
            let Some((mut socket, welcome)) = self.connect(&base).await else {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            self.report.lock().unwrap().connections += 1;
            let mine: Vec<i64> =
                welcome["convs"].as_array().into_iter().flatten().filter_map(|c| c["c"].as_i64()).collect();
            self.report.lock().unwrap().conversations.extend(&mine);
            self.open.extend(&mine);
            // Catch up on everything it holds, then resend what was not acknowledged.
            let held: Vec<i64> = self.report.lock().unwrap().conversations.iter().copied().collect();
            for c in held {
                let after = self.last_seq(c);
                socket.send(json!({"t": "sync", "c": c, "after": after})).await;
            }
            for (id, (c, cid)) in &self.unacked {
                let text = format!("{} resends {cid}", self.name);
                socket.send(json!({"t": "send", "id": id, "cid": cid, "c": c, "text": text})).await;
            }
            let mut ticker = tokio::time::interval(self.plan.every);
            let lost = loop {
                self.report.lock().unwrap().unacked = self.unacked.len();
                tokio::select! {
                    frame = socket.next(Duration::from_secs(3600)) => {
                        let Some(frame) = frame else { break true };
                        self.handle(&mut socket, &frame).await;
                    }
                    _ = ticker.tick() => {
                        if *phase.borrow() == Phase::Send && !self.tick(&mut socket).await {
                            break true;
                        }
                    }
                    changed = phase.changed() => {
                        if changed.is_err() || *phase.borrow() == Phase::Stop {
                            break false;
                        }
                    }
                }
            };
            if lost && Socket::connect(&format!("{}/v1/agent", base.replace("http://", "ws://"))).await.is_some() {
                // The node is still there (a cut, not a death): the same node again.
                server -= 1;
            }
        }
    }

    /// Logs in at `base` (any node accepts the login: sessions are in the shared store),
    /// opens the agent socket and goes online.
    async fn connect(&self, base: &str) -> Option<(Socket, Value)> {
        let (email, password) = &self.login;
        let response = reqwest::Client::new()
            .post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()
            .filter(|response| response.status().is_success())?;
        let session = response.json::<Value>().await.ok()?["token"].as_str()?.to_owned();
        let mut socket = Socket::connect(&format!("{}/v1/agent", base.replace("http://", "ws://"))).await?;
        socket.send(json!({"t": "hello", "v": 1, "session": session})).await;
        let welcome = socket.next(Duration::from_secs(5)).await.filter(|f| f["t"] == "welcome")?;
        socket.send(json!({"t": "state", "id": 0, "state": "online"})).await;
        Some((socket, welcome))
    }

    /// Writes the next message, or closes a conversation that had its share; false when
    /// the socket is gone.
    async fn tick(&mut self, socket: &mut Socket) -> bool {
        let open: Vec<i64> = self.open.iter().copied().collect();
        if open.is_empty() {
            return true;
        }
        let c = open[self.turn % open.len()];
        self.turn += 1;
        let in_flight = self.unacked.values().any(|(to, _)| *to == c);
        if let Some(close_after) = self.plan.close_after
            && self.written.get(&c).copied().unwrap_or(0) >= close_after
        {
            if in_flight {
                return true;
            }
            // Written once: a close lost with its node is found open again in the next
            // `welcome`, and closed again.
            self.open.remove(&c);
            self.next_id += 1;
            return socket.send(json!({"t": "close", "id": self.next_id, "c": c})).await;
        }
        self.next_id += 1;
        let (id, cid) = (self.next_id, format!("{}-{}", self.name, self.next_id));
        self.unacked.insert(id, (c, cid.clone()));
        let text = format!("{} writes {id}", self.name);
        socket.send(json!({"t": "send", "id": id, "cid": cid, "c": c, "text": text})).await
    }

    /// The highest seq of conversation `c` up to which it holds every message: where a
    /// catch-up starts (not the highest seq held: its own acks may run ahead of a gap).
    fn last_seq(&self, c: i64) -> i64 {
        let report = self.report.lock().unwrap();
        let mut last = 0;
        for &seq in report.seqs.get(&c).into_iter().flatten() {
            if seq != last + 1 {
                break;
            }
            last = seq;
        }
        last
    }

    async fn handle(&mut self, socket: &mut Socket, frame: &Value) {
        match frame["t"].as_str().unwrap_or_default() {
            "ack" => {
                let id = frame["id"].as_u64().unwrap_or_default();
                if let Some((_, cid)) = self.unacked.remove(&id) {
                    let (c, seq) = (frame["c"].as_i64().unwrap(), frame["seq"].as_i64().unwrap());
                    *self.written.entry(c).or_default() += 1;
                    let mut report = self.report.lock().unwrap();
                    report.acked.push(Acked { c, seq, cid });
                    report.seqs.entry(c).or_default().insert(seq);
                }
            }
            "msg" => {
                let (c, seq) = (frame["c"].as_i64().unwrap(), frame["seq"].as_i64().unwrap());
                let last = self.last_seq(c);
                self.report.lock().unwrap().seqs.entry(c).or_default().insert(seq);
                if seq > last + 1 {
                    // A gap: something was missed, read it from the store.
                    socket.send(json!({"t": "sync", "c": c, "after": last})).await;
                }
            }
            "msgs" => {
                let c = frame["c"].as_i64().unwrap();
                let messages = frame["msgs"].as_array().cloned().unwrap_or_default();
                let mut last = 0;
                {
                    let mut report = self.report.lock().unwrap();
                    let seqs = report.seqs.entry(c).or_default();
                    for message in &messages {
                        last = message["seq"].as_i64().unwrap();
                        seqs.insert(last);
                    }
                }
                if frame["more"] == true {
                    socket.send(json!({"t": "sync", "c": c, "after": last})).await;
                }
            }
            "resync" => {
                let held: Vec<i64> = self.report.lock().unwrap().conversations.iter().copied().collect();
                for c in held {
                    let after = self.last_seq(c);
                    socket.send(json!({"t": "sync", "c": c, "after": after})).await;
                }
            }
            "conv" if frame["ev"] == "assigned" => {
                if let Some(c) = frame["c"].as_i64() {
                    self.report.lock().unwrap().conversations.insert(c);
                    self.open.insert(c);
                    let after = self.last_seq(c);
                    socket.send(json!({"t": "sync", "c": c, "after": after})).await;
                }
            }
            "conv" if frame["ev"] == "closed" => {
                if let Some(c) = frame["c"].as_i64() {
                    self.open.remove(&c);
                }
            }
            "err" => {
                let code = frame["code"].as_str().unwrap_or_default();
                // A store that is briefly unavailable: the send stays unacknowledged and is
                // resent at the next connection. Anything else is a refusal, recorded.
                if let Some(id) = frame["id"].as_u64()
                    && !matches!(code, "unavailable" | "internal")
                {
                    self.unacked.remove(&id);
                }
                let mut report = self.report.lock().unwrap();
                match code {
                    "unavailable" => report.unavailable.push(frame.to_string()),
                    _ => report.errors.push(frame.to_string()),
                }
            }
            _ => {}
        }
    }
}
