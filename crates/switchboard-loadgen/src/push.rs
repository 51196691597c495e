//! `push`: push sending under load. The load generator runs a fake FCM (HTTP/1.1 on loopback:
//! an OAuth2 token endpoint that issues any token, and `messages:send` answering 200 at once)
//! which a server started with `SWITCHBOARD_FCM_URL` / `SWITCHBOARD_FCM_TOKEN_URL` pointing at
//! it sends its pushes to; it sets the demo app's FCM settings over REST.
//!
//! Setup: `--consumers` anonymous consumers (the push group) each register an FCM token, write
//! one message (opening a conversation, left queued: no agent is online) and disconnect;
//! `--plain` more do the same without a token (the no-push group). Then, with admin sockets
//! (admins may write into any conversation), one message to every conversation, pipelined:
//! first the no-push group (the message path without push), then the push group (the same
//! path, each message also queuing a push, while the dispatcher sends them). Reported:
//! messages stored per second in each phase, and pushes per second at the fake from its first
//! push of the phase to the last (every consumer of the group must get exactly one).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use switchboard_protocol::{ClientFrame, PushProvider, ServerFrame};
use tokio::sync::Semaphore;

use crate::conn::{self, ByteCounts, Credentials, Incoming, Rest, Server, Ws};
use crate::record;

/// The test-only RSA key of the server's tests, as the fake service account's key: the fake
/// token endpoint does not check it (the integration tests do).
const RSA_PRIVATE: &str = include_str!("../../switchboard-server/tests/it/keys/rsa-private.pem");

/// Marks the measured messages: the fake counts pushes whose body starts with it.
const MARKER: &str = "lg-push";

#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A PEM file of a CA to trust for an https:// server.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// The server's demo-credentials.json (to log in as admin).
    #[arg(long)]
    pub credentials: PathBuf,
    /// Where the fake FCM listens; the server must be started with
    /// SWITCHBOARD_FCM_URL=http://ADDR and SWITCHBOARD_FCM_TOKEN_URL=http://ADDR/token.
    #[arg(long, default_value = "127.0.0.1:18090")]
    pub fake: SocketAddr,
    /// Disconnected consumers with a device, one message each: the pushes measured.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub consumers: u32,
    /// Disconnected consumers without a device (the message path without push): half are
    /// written to before the push phase, half after the pushes are done.
    #[arg(long, default_value_t = 40_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub plain: u32,
    /// Consumer setups in flight at once.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub concurrency: u32,
    /// Admin sockets writing the messages (each also receives the others' messages: the
    /// author's other sockets are told of what they wrote).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub writers: u32,
    /// Unacknowledged sends per writer socket.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub window: u32,
    /// Loopback source addresses the consumer sockets use (127.0.0.1 … 127.0.0.N), so that
    /// the sockets closed in setup do not exhaust one address's ephemeral ports.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..=200))]
    pub source_ips: u8,
    /// Record the run as a JSON file under --results.
    #[arg(long)]
    pub record: bool,
    /// The server's configuration, as started (recorded with --record).
    #[arg(long, default_value = "not given")]
    pub server_note: String,
    #[arg(long, default_value = "bench/results")]
    pub results: PathBuf,
    /// The server's process id on this machine: its CPU time in each phase is reported per
    /// message (Linux only).
    #[arg(long)]
    pub server_pid: Option<u32>,
}

/// The server's CPU seconds so far, if its pid was given.
fn cpu(pid: Option<u32>) -> Result<Option<f64>> {
    pid.map(crate::run::process_cpu_secs).transpose()
}

/// Microseconds of server CPU per item between two readings.
fn per_item_us(before: Option<f64>, after: Option<f64>, items: u64) -> Option<f64> {
    Some((after? - before?) * 1e6 / items.max(1) as f64)
}

/// What the fake FCM saw.
#[derive(Default)]
struct Fake {
    /// Measured pushes (body starts with [`MARKER`]).
    measured: AtomicU64,
    /// Every push, measured or not.
    all: AtomicU64,
    /// When the first and the latest measured push arrived.
    span: Mutex<Option<(Instant, Instant)>>,
    /// Measured pushes per device token, to check each consumer got exactly one.
    per_device: Mutex<std::collections::HashMap<String, u32>>,
}

async fn fake_fcm(addr: SocketAddr, fake: Arc<Fake>) -> Result<()> {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::Uri;
    async fn handle(State(fake): State<Arc<Fake>>, uri: Uri, body: Bytes) -> axum::Json<serde_json::Value> {
        if uri.path() == "/token" {
            return axum::Json(serde_json::json!({"access_token": "ya29.loadgen", "expires_in": 3600}));
        }
        fake.all.fetch_add(1, Ordering::Relaxed);
        let push: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if push["message"]["notification"]["body"].as_str().is_some_and(|b| b.starts_with(MARKER)) {
            let now = Instant::now();
            fake.measured.fetch_add(1, Ordering::Relaxed);
            let mut span = fake.span.lock().unwrap_or_else(|p| p.into_inner());
            *span = Some(span.map_or((now, now), |(first, _)| (first, now)));
            drop(span);
            let device = push["message"]["token"].as_str().unwrap_or_default().to_owned();
            *fake.per_device.lock().unwrap_or_else(|p| p.into_inner()).entry(device).or_default() += 1;
        }
        axum::Json(serde_json::json!({"name": "projects/loadgen/messages/1"}))
    }
    let listener =
        tokio::net::TcpListener::bind(addr).await.with_context(|| format!("the fake FCM cannot listen on {addr}"))?;
    let router = axum::Router::new().fallback(handle).with_state(fake);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(())
}

/// One consumer's setup: connect, optionally register a token, write, wait for the ack,
/// leave. Returns the conversation id.
async fn setup_consumer(
    server: &Server,
    credentials: &Credentials,
    source: IpAddr,
    target: SocketAddr,
    token: Option<String>,
    index: u32,
) -> Result<i64> {
    let counts = Arc::new(ByteCounts::default());
    let mut ws = conn::connect_from(server, "/v1/consumer", Some((source, target)), counts).await?;
    conn::send(&mut ws, &conn::consumer_hello(&credentials.brand, &credentials.app, None)).await?;
    match conn::recv(&mut ws, Duration::from_secs(30)).await {
        Some(Incoming::Frame(ServerFrame::Welcome { .. })) => {}
        other => bail!("no welcome: {other:?}"),
    }
    if let Some(token) = token {
        conn::send(&mut ws, &ClientFrame::Push { id: None, provider: PushProvider::Fcm, token }).await?;
    }
    let send =
        ClientFrame::Send { id: Some(1), cid: format!("setup-{index}"), text: "Hello".into(), c: None, consumer: None };
    conn::send(&mut ws, &send).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match conn::recv(&mut ws, deadline.saturating_duration_since(Instant::now())).await {
            Some(Incoming::Frame(ServerFrame::Ack { c, .. })) => {
                conn::close(&mut ws).await;
                return Ok(c);
            }
            Some(Incoming::Frame(ServerFrame::Err { code, msg, .. })) => bail!("send refused: {} {msg}", code.as_str()),
            Some(Incoming::Closed) | None => bail!("no ack"),
            Some(_) => continue,
        }
    }
}

/// Sets up `count` consumers (`tokens`: with a device each); returns their conversations.
async fn setup_group(
    server: &Server,
    credentials: &Arc<Credentials>,
    target: SocketAddr,
    args: &PushArgs,
    count: u32,
    tokens: Option<&str>,
    first_index: u32,
) -> Result<Vec<i64>> {
    let gate = Arc::new(Semaphore::new(args.concurrency as usize));
    let mut work = FuturesUnordered::new();
    for i in 0..count {
        let index = first_index + i;
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % u32::from(args.source_ips)) as u8));
        let token = tokens.map(|prefix| format!("{prefix}-{index}"));
        let gate = Arc::clone(&gate);
        let (server, credentials) = (server.clone(), Arc::clone(credentials));
        work.push(async move {
            let _permit = gate.acquire_owned().await;
            let mut last = None;
            for _ in 0..3 {
                match setup_consumer(&server, &credentials, source, target, token.clone(), index).await {
                    Ok(c) => return Ok(c),
                    Err(error) => last = Some(error),
                }
            }
            Err(last.unwrap_or_else(|| anyhow!("setup failed")))
        });
    }
    let mut conversations = Vec::with_capacity(count as usize);
    while let Some(result) = work.next().await {
        conversations.push(result.with_context(|| "consumer setup")?);
        if conversations.len() % 20_000 == 0 {
            println!("  {} consumers set up", conversations.len());
        }
    }
    Ok(conversations)
}

/// Writes one message (`text`) into each conversation over `writers` admin sockets, each
/// with `window` sends in flight; returns (stored, seconds).
async fn write_all(
    server: &Server,
    session: &str,
    conversations: &[i64],
    writers: u32,
    window: u32,
) -> Result<(u64, f64)> {
    let mut sockets = Vec::new();
    for _ in 0..writers {
        let (ws, _) = conn::connect_agent(server, session, Arc::new(ByteCounts::default())).await?;
        sockets.push(ws);
    }
    let chunks: Vec<Vec<i64>> =
        conversations.chunks(conversations.len().div_ceil(writers as usize).max(1)).map(<[i64]>::to_vec).collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (ws, chunk) in sockets.into_iter().zip(chunks) {
        tasks.push(tokio::spawn(async move { writer(ws, chunk, window).await }));
    }
    let mut stored = 0;
    for task in tasks {
        stored += task.await.map_err(|error| anyhow!("writer task: {error}"))??;
    }
    Ok((stored, started.elapsed().as_secs_f64()))
}

async fn writer(mut ws: Ws, conversations: Vec<i64>, window: u32) -> Result<u64> {
    let run = conn::run_id();
    let mut next = 0usize;
    let mut in_flight = 0u32;
    let mut stored = 0u64;
    while stored < conversations.len() as u64 {
        while in_flight < window && next < conversations.len() {
            let c = conversations[next];
            let send = ClientFrame::Send {
                id: Some(next as u64 + 1),
                cid: format!("lg-{run}-{next}"),
                text: format!("{MARKER} {next}"),
                c: Some(c),
                consumer: None,
            };
            conn::send(&mut ws, &send).await?;
            next += 1;
            in_flight += 1;
        }
        match conn::recv(&mut ws, Duration::from_secs(60)).await {
            Some(Incoming::Frame(ServerFrame::Ack { .. })) => {
                stored += 1;
                in_flight -= 1;
            }
            Some(Incoming::Frame(ServerFrame::Err { code, msg, .. })) => bail!("send refused: {} {msg}", code.as_str()),
            Some(Incoming::Closed) | None => bail!("writer socket closed or silent after {stored} acks"),
            Some(_) => {}
        }
    }
    conn::close(&mut ws).await;
    Ok(stored)
}

/// Waits until the fake has seen `count` measured pushes and then nothing new for a second
/// (or `limit` passed); returns whether all came.
async fn wait_for_pushes(fake: &Fake, count: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let seen = fake.measured.load(Ordering::Relaxed);
        if seen >= count {
            // A duplicate would arrive after the last: give it a moment to show.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the fake's push count stops moving for `quiet`.
async fn settle(fake: &Fake, quiet: Duration, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut last = fake.all.load(Ordering::Relaxed);
    let mut since = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = fake.all.load(Ordering::Relaxed);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

pub async fn run(args: PushArgs) -> Result<()> {
    let server = Server::parse(&args.url, args.ca_cert.as_deref())?;
    let target = server.loopback_target("push").await?;
    let credentials = Arc::new(Credentials::read(&args.credentials)?);
    let rest = Rest::new(&server)?;
    let admin_login = credentials.admin()?;
    let admin = rest.login(&admin_login.email, &admin_login.password).await?;
    let fake = Arc::new(Fake::default());
    fake_fcm(args.fake, Arc::clone(&fake)).await?;
    let account = serde_json::json!({"type": "service_account", "project_id": "loadgen", "private_key_id": "k1",
        "private_key": RSA_PRIVATE, "client_email": "push@loadgen.iam.gserviceaccount.com"});
    rest.put_json(
        &admin,
        &format!("/api/v1/apps/{}/push/fcm", credentials.app),
        &serde_json::json!({"service_account_json": account.to_string()}),
    )
    .await
    .context("setting the demo app's FCM settings")?;
    let run_id = conn::run_id();
    println!(
        "push {run_id}: {} consumers with a device, {} without, fake FCM on {}, {} writers × window {}",
        args.consumers, args.plain, args.fake, args.writers, args.window
    );

    let setup_started = Instant::now();
    let plain = setup_group(&server, &credentials, target, &args, args.plain, None, 0).await?;
    let (plain_before, plain_after) = plain.split_at(plain.len() / 2);
    let prefix = format!("lg-{run_id}");
    let with_device =
        setup_group(&server, &credentials, target, &args, args.consumers, Some(&prefix), args.plain).await?;
    let setup_secs = setup_started.elapsed().as_secs_f64();
    println!("setup: {} + {} consumers in {setup_secs:.1} s", plain.len(), with_device.len());
    // Anything the setup queued (nothing is expected: no automatic messages) goes out first.
    settle(&fake, Duration::from_secs(3), Duration::from_secs(120)).await;
    let before = fake.all.load(Ordering::Relaxed);

    // Phase 1: the message path without push.
    let cpu_1 = cpu(args.server_pid)?;
    let (stored_1, secs_1) = write_all(&server, &admin, plain_before, args.writers, args.window).await?;
    let cpu_1_end = cpu(args.server_pid)?;
    let rate_1 = stored_1 as f64 / secs_1;
    println!("without push: {stored_1} messages stored in {secs_1:.2} s = {rate_1:.0}/s");
    settle(&fake, Duration::from_secs(2), Duration::from_secs(30)).await;
    let stray = fake.all.load(Ordering::Relaxed) - before;

    // Phase 2: the same path to consumers with a device; pushes go out meanwhile.
    let cpu_2 = cpu(args.server_pid)?;
    let (stored_push, secs_push) = write_all(&server, &admin, &with_device, args.writers, args.window).await?;
    let cpu_2_writes = cpu(args.server_pid)?;
    let rate_push = stored_push as f64 / secs_push;
    println!("with push:    {stored_push} messages stored in {secs_push:.2} s = {rate_push:.0}/s");
    let all_came = wait_for_pushes(&fake, u64::from(args.consumers), Duration::from_secs(900)).await;
    let cpu_2_end = cpu(args.server_pid)?;
    let measured = fake.measured.load(Ordering::Relaxed);
    let (first, last) = fake.span.lock().unwrap_or_else(|p| p.into_inner()).unwrap_or((Instant::now(), Instant::now()));
    let push_secs = last.duration_since(first).as_secs_f64().max(1e-3);
    let pushes_per_sec = measured as f64 / push_secs;
    let per_device = fake.per_device.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let duplicates: u64 = per_device.values().map(|n| u64::from(n.saturating_sub(1))).sum();
    let devices = per_device.len();

    // Phase 3: without push again, the pushes done.
    let cpu_3 = cpu(args.server_pid)?;
    let (stored_3, secs_3) = write_all(&server, &admin, plain_after, args.writers, args.window).await?;
    let cpu_3_end = cpu(args.server_pid)?;
    let rate_3 = stored_3 as f64 / secs_3;
    println!("without push, after: {stored_3} messages stored in {secs_3:.2} s = {rate_3:.0}/s");
    let rate_plain = (stored_1 + stored_3) as f64 / (secs_1 + secs_3);
    // CPU per message: the message path alone (phases 1 and 3), the message path while
    // pushes were sent (phase 2's writes), and each message with its push (phase 2 to the
    // last push, over its messages).
    let cpu_plain_us = match (per_item_us(cpu_1, cpu_1_end, stored_1), per_item_us(cpu_3, cpu_3_end, stored_3)) {
        (Some(a), Some(b)) => Some((a * stored_1 as f64 + b * stored_3 as f64) / (stored_1 + stored_3) as f64),
        _ => None,
    };
    let cpu_push_writes_us = per_item_us(cpu_2, cpu_2_writes, stored_push);
    let cpu_with_push_us = per_item_us(cpu_2, cpu_2_end, stored_push);

    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} consumers with an FCM device and {} without, anonymous, each wrote one message and disconnected (setup {setup_secs:.1} s)",
        args.consumers, args.plain
    );
    let _ = writeln!(
        out,
        "message path, admin sockets {} × window {}: without push {stored_1} stored in {secs_1:.2} s = {rate_1:.0}/s before and {stored_3} in {secs_3:.2} s = {rate_3:.0}/s after ({rate_plain:.0}/s together); with push {stored_push} stored in {secs_push:.2} s = {rate_push:.0}/s ({:+.1} %)",
        args.writers,
        args.window,
        (rate_push / rate_plain - 1.0) * 100.0
    );
    if let (Some(plain), Some(writes), Some(whole)) = (cpu_plain_us, cpu_push_writes_us, cpu_with_push_us) {
        let _ = writeln!(
            out,
            "server CPU per message: {plain:.1} µs without push; {writes:.1} µs while writing with pushes going out; {whole:.1} µs with its push (from the first write to the last push)"
        );
    }
    let _ = writeln!(
        out,
        "pushes at the fake FCM: {measured} of {} ({devices} devices, {duplicates} duplicates), first to last {push_secs:.2} s = {pushes_per_sec:.0}/s; {stray} pushes for the consumers without a device",
        args.consumers
    );
    if !all_came {
        let _ = writeln!(out, "NOT ALL PUSHES ARRIVED within 15 minutes");
    }
    print!("{out}");
    if args.record {
        let figures = serde_json::json!({
            "consumers": args.consumers,
            "plain_consumers": args.plain,
            "writers": args.writers,
            "window": args.window,
            "setup_secs": setup_secs,
            "stored_per_sec_without_push": rate_plain,
            "stored_per_sec_without_push_before": rate_1,
            "stored_per_sec_without_push_after": rate_3,
            "server_cpu_us_per_message_without_push": cpu_plain_us,
            "server_cpu_us_per_message_while_pushing": cpu_push_writes_us,
            "server_cpu_us_per_message_with_its_push": cpu_with_push_us,
            "stored_per_sec_with_push": rate_push,
            "pushes": measured,
            "push_devices": devices,
            "push_duplicates": duplicates,
            "push_secs": push_secs,
            "pushes_per_sec": pushes_per_sec,
            "all_pushes_arrived": all_came,
        });
        record::write(&args.results, "push", &args.server_note, figures, &out)?;
    }
    if !all_came || duplicates > 0 || stray > 0 {
        bail!("push sending was not exactly once per consumer (see above)");
    }
    Ok(())
}
