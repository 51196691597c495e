//! `idle`: many idle authenticated consumer connections. Opens `--count` anonymous consumer
//! sockets (from several loopback source addresses), waits for each `welcome`, keeps them
//! open (reading, so WebSocket pings are answered, and sending an application `ping` every
//! heartbeat interval), and reports the server's resident memory per connection from
//! `/proc/PID/status`. With `--storm`, it then waits for the server to go away (the caller
//! restarts it) and reports how long the whole fleet takes to reconnect with the SDK's
//! backoff (initial 500 ms, doubling, cap 30 s, jitter in [½, 1]).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use switchboard_protocol::{ClientFrame, Hello, PROTOCOL_VERSION, ServerFrame};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

use crate::conn::{self, ByteCounts, Incoming, Server, Ws};

/// Arguments of `idle`.
#[derive(Debug, clap::Args)]
pub struct IdleArgs {
    /// Server base URL (http:// or https://).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A certificate authority to trust for https besides the public ones (PEM file).
    #[arg(long)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Consumer connections to open (one process holds fewer than its open-files limit).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=60000))]
    pub count: u32,
    /// Loopback source addresses to spread the sockets over: 127.0.0.1 … 127.0.0.N.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(1..=250))]
    pub source_ips: u8,
    /// Connection handshakes in flight at once while opening.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub concurrency: u32,
    /// Seconds to hold the connections open after all are up (memory is read at the end).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=600))]
    pub hold_secs: u64,
    /// PID of the server process, for its VmRSS before and after.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// After the hold, wait for the server to drop every socket (restart it from outside)
    /// and measure the reconnection of all clients.
    #[arg(long)]
    pub storm: bool,
    /// Written (with the count connected) when the fleet is up and measured, so a script
    /// knows when to restart the server for `--storm`.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Seconds to wait for the restart and the reconnection of all clients.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=1800))]
    pub storm_timeout: u64,
    /// File holding the restarted server's PID, read after the storm for its VmRSS.
    #[arg(long)]
    pub storm_pid_file: Option<PathBuf>,
    /// Brand of the consumers.
    #[arg(long, default_value = "demo")]
    pub brand: String,
    /// App of the consumers (must allow anonymous consumers).
    #[arg(long, default_value = "demo-app")]
    pub app: String,
    /// Record the run as a JSON file under --results.
    #[arg(long)]
    pub record: bool,
    /// The server's configuration, as started (recorded with --record).
    #[arg(long, default_value = "not given")]
    pub server_note: String,
    /// Where `--record` writes the run (one JSON file; `report` reads them).
    #[arg(long, default_value = "bench/results")]
    pub results: PathBuf,
}

/// What the client tasks tell the coordinator.
#[derive(Debug)]
enum Report {
    /// First `welcome`.
    Up,
    /// Gave up opening (error text).
    Failed(String),
    /// The server closed the socket or it broke.
    Lost(Instant),
    /// `welcome` again after a loss; `attempts` connection attempts it took.
    Resumed { lost_at: Instant, attempts: u32 },
}

/// Memory figures of one process, from `/proc/PID/status` (KiB) and its open descriptors.
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss_kib: u64,
    anon_kib: u64,
    fds: u64,
}

fn read_memory(pid: u32) -> Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status (is --server-pid right?)"))?;
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count() as u64).unwrap_or(0);
    Ok(Memory { rss_kib: field("VmRSS:"), anon_kib: field("RssAnon:"), fds })
}

fn describe(memory: &Memory) -> String {
    format!("VmRSS {} KiB (RssAnon {} KiB), {} open fds", memory.rss_kib, memory.anon_kib, memory.fds)
}

/// A small splitmix64 generator for backoff jitter (seeded per client).
struct Jitter(u64);

impl Jitter {
    /// A random fraction in [½, 1].
    fn fraction(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        0.5 + (z >> 11) as f64 / (1u64 << 53) as f64 / 2.0
    }
}

/// The SDK's reconnect delay before attempt `n` (0-based): 500 ms · 2ⁿ, capped at 30 s,
/// times a random fraction in [½, 1].
fn backoff_delay(jitter: &mut Jitter, attempt: u32) -> Duration {
    let exponential = Duration::from_millis(500).saturating_mul(1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX));
    exponential.min(Duration::from_secs(30)).mul_f64(jitter.fraction())
}

/// Everything a client task needs.
struct Target {
    server: Server,
    addr: SocketAddr,
    brand: String,
    app: String,
    storm: bool,
}

/// Connects, says hello (a new anonymous identity, or the one from `secret`), waits for
/// `welcome`. Returns the socket, the heartbeat interval and the identity's secret.
async fn open(target: &Target, source: IpAddr, secret: Option<&str>) -> Result<(Ws, u32, Option<String>)> {
    let mut ws = conn::connect_from(
        &target.server,
        "/v1/consumer",
        Some((source, target.addr)),
        Arc::new(ByteCounts::default()),
    )
    .await?;
    let hello = ClientFrame::Hello(Hello {
        v: PROTOCOL_VERSION,
        brand: Some(target.brand.clone()),
        app: Some(target.app.clone()),
        token: None,
        anon: Some(secret.unwrap_or_default().to_owned()),
        code: None,
        session: None,
        device: None,
        skill: None,
        lang: None,
    });
    conn::send(&mut ws, &hello).await?;
    match conn::recv(&mut ws, conn::CONNECT_TIMEOUT).await {
        Some(Incoming::Frame(ServerFrame::Welcome { anon, hb, .. })) => Ok((ws, hb, anon)),
        Some(Incoming::Frame(ServerFrame::Err { code, msg, .. })) => bail!("hello refused: {} ({msg})", code.as_str()),
        Some(other) => bail!("unexpected answer to hello: {other:?}"),
        None => bail!("no welcome within {:?}", conn::CONNECT_TIMEOUT),
    }
}

/// Holds the socket: reads (tungstenite answers pings while reading), sends an application
/// `ping` every heartbeat. Returns when the socket ends (true) or on stop (false).
async fn hold(ws: &mut Ws, hb: u32, stop: &mut watch::Receiver<bool>) -> bool {
    let period = Duration::from_secs(u64::from(hb.max(2)) / 2);
    let mut next_ping = Instant::now() + period;
    loop {
        tokio::select! {
            _ = stop.changed() => return false,
            incoming = conn::recv(ws, next_ping.saturating_duration_since(Instant::now())) => match incoming {
                Some(Incoming::Closed) => return true,
                Some(_) => {}
                None => {
                    if conn::send(ws, &ClientFrame::Ping { id: None }).await.is_err() {
                        return true;
                    }
                    next_ping = Instant::now() + period;
                }
            },
        }
    }
}

/// One idle consumer.
async fn client(
    index: u32,
    target: Arc<Target>,
    source: IpAddr,
    gate: Arc<Semaphore>,
    reports: mpsc::UnboundedSender<Report>,
    mut stop: watch::Receiver<bool>,
) {
    let first = {
        let Ok(_permit) = gate.acquire().await else { return };
        open(&target, source, None).await
    };
    let (mut ws, mut hb, secret) = match first {
        Ok(opened) => opened,
        Err(error) => {
            let _ = reports.send(Report::Failed(format!("{error:#}")));
            return;
        }
    };
    let _ = reports.send(Report::Up);
    let mut jitter = Jitter(u64::from(index) << 32 | u64::from(std::process::id()));
    loop {
        if !hold(&mut ws, hb, &mut stop).await {
            return;
        }
        let lost_at = Instant::now();
        let _ = reports.send(Report::Lost(lost_at));
        if !target.storm {
            return;
        }
        let mut attempt = 0u32;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(backoff_delay(&mut jitter, attempt)) => {}
            }
            attempt += 1;
            if let Ok((socket, interval, _)) = open(&target, source, secret.as_deref()).await {
                ws = socket;
                hb = interval;
                let _ = reports.send(Report::Resumed { lost_at, attempts: attempt });
                break;
            }
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn quantiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "n=0".into();
    }
    format!(
        "p50 {} ms, p90 {} ms, p99 {} ms, max {} ms (n={})",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.max(),
        h.len()
    )
}

/// Runs `idle` and prints (and optionally records) the figures.
pub async fn run(args: IdleArgs) -> Result<()> {
    let server = Server::parse(&args.url, args.ca_cert.as_deref())?;
    let addr = server.loopback_target("idle").await?;
    let before = args.server_pid.map(read_memory).transpose()?;
    let target = Arc::new(Target { server, addr, brand: args.brand.clone(), app: args.app.clone(), storm: args.storm });
    let gate = Arc::new(Semaphore::new(args.concurrency as usize));
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.count as usize);
    for index in 0..args.count {
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % u32::from(args.source_ips)) as u8));
        tasks.push(tokio::spawn(client(
            index,
            Arc::clone(&target),
            source,
            Arc::clone(&gate),
            report_tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(report_tx);

    // Phase 1: open everything.
    let mut up = 0u32;
    let mut failed = std::collections::BTreeMap::<String, u32>::new();
    let mut lost_early = 0u32;
    let open_limit = started + Duration::from_secs(600);
    while up + failed.values().sum::<u32>() < args.count {
        match tokio::time::timeout_at(open_limit, reports.recv()).await {
            Ok(Some(Report::Up)) => up += 1,
            Ok(Some(Report::Failed(error))) => *failed.entry(error).or_default() += 1,
            Ok(Some(Report::Lost(_))) => lost_early += 1,
            Ok(Some(Report::Resumed { .. })) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let open_time = started.elapsed();
    let mut out = String::new();
    writeln!(
        out,
        "idle anonymous consumers: {up} of {} connected (welcome received) in {:.1} s, from {} source address(es) 127.0.0.1..{}, {} handshakes in flight",
        args.count,
        open_time.as_secs_f64(),
        args.source_ips,
        args.source_ips,
        args.concurrency
    )?;
    for (error, n) in &failed {
        writeln!(out, "  failed {n}: {error}")?;
    }
    print!("{out}");
    let printed = out.len();

    // Phase 2: hold, then read the server's memory.
    let settle = Instant::now() + Duration::from_secs(args.hold_secs);
    while let Ok(Some(report)) = tokio::time::timeout_at(settle, reports.recv()).await {
        if let Report::Lost(_) = report {
            lost_early += 1;
        }
    }
    let after = args.server_pid.map(read_memory).transpose()?;
    writeln!(out, "held {} s; connections lost while holding: {lost_early}", args.hold_secs)?;
    // What `report` reads from the recorded file.
    let mut figures = serde_json::json!({
        "connected": up.saturating_sub(lost_early), "attempted": args.count, "lost": lost_early,
    });
    if let (Some(pid), Some(before), Some(after)) = (args.server_pid, before, after) {
        writeln!(out, "server pid {pid} before: {}", describe(&before))?;
        writeln!(out, "server pid {pid} after:  {}", describe(&after))?;
        let connected = f64::from(up.saturating_sub(lost_early).max(1));
        let per = |a: u64, b: u64| (a as f64 - b as f64) / connected;
        figures["server_kib_per_connection"] =
            serde_json::json!((per(after.rss_kib, before.rss_kib) * 10.0).round() / 10.0);
        writeln!(
            out,
            "server memory per idle connection: {:.1} KiB VmRSS ({:.1} KiB RssAnon) over {} connections (SPEC <= 10 KB = 9.8 KiB: {})",
            per(after.rss_kib, before.rss_kib),
            per(after.anon_kib, before.anon_kib),
            connected,
            if per(after.rss_kib, before.rss_kib) * 1024.0 <= 10_000.0 { "met" } else { "NOT met" }
        )?;
    }
    if let Ok(own) = read_memory(std::process::id()) {
        writeln!(out, "load generator (information): {}", describe(&own))?;
    }
    print!("{}", &out[printed..]);

    // Phase 3: the reconnection storm.
    if args.storm {
        if let Some(path) = &args.ready_file {
            std::fs::write(path, format!("{up}\n")).with_context(|| format!("cannot write {}", path.display()))?;
        }
        println!("storm: ready; waiting for the server to drop the sockets");
        let expected = up.saturating_sub(lost_early);
        let deadline = Instant::now() + Duration::from_secs(args.storm_timeout);
        let mut first_lost: Option<Instant> = None;
        let mut last_lost: Option<Instant> = None;
        let mut lost = 0u32;
        let mut resumed = 0u32;
        let mut first_resumed: Option<Instant> = None;
        let mut last_resumed: Option<Instant> = None;
        let mut own_wait = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3)?;
        let mut attempts = Histogram::<u64>::new_with_bounds(1, 10_000, 3)?;
        let mut pending = Vec::new();
        while resumed < expected {
            match tokio::time::timeout_at(deadline, reports.recv()).await {
                Ok(Some(Report::Lost(at))) => {
                    lost += 1;
                    first_lost = Some(first_lost.map_or(at, |f| f.min(at)));
                    last_lost = Some(last_lost.map_or(at, |l| l.max(at)));
                }
                Ok(Some(Report::Resumed { lost_at, attempts: n })) => {
                    resumed += 1;
                    let now = Instant::now();
                    first_resumed.get_or_insert(now);
                    last_resumed = Some(now);
                    own_wait.record((now - lost_at).as_millis().max(1) as u64)?;
                    attempts.record(u64::from(n))?;
                    pending.push(now);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let mut storm = String::new();
        writeln!(
            storm,
            "storm: {lost} of {expected} sockets dropped by the server, {resumed} resumed (welcome with the same anonymous identity)"
        )?;
        if let Some(first) = first_lost {
            let since = |t: Option<Instant>| t.map(|t| ms(t - first)).unwrap_or_else(|| "never".into());
            writeln!(
                storm,
                "  from the first drop: last drop +{}, first resume +{}, all resumed +{}",
                since(last_lost),
                since(first_resumed),
                if resumed == expected { since(last_resumed) } else { format!("not within {} s", args.storm_timeout) }
            )?;
            let mut from_first = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3)?;
            for t in &pending {
                from_first.record((*t - first).as_millis().max(1) as u64)?;
            }
            writeln!(storm, "  resumed, time since the first drop: {}", quantiles(&from_first))?;
            figures["storm_resumed_ms"] = serde_json::json!({
                "p50": from_first.value_at_quantile(0.5), "p90": from_first.value_at_quantile(0.9),
                "p99": from_first.value_at_quantile(0.99), "max": from_first.max(), "clients": expected,
                "all_resumed": resumed == expected,
            });
        }
        writeln!(storm, "  resumed, time since its own drop: {}", quantiles(&own_wait))?;
        writeln!(
            storm,
            "  connection attempts per client: p50 {}, p99 {}, max {} (backoff 500 ms doubling, cap 30 s, jitter [1/2, 1])",
            attempts.value_at_quantile(0.5),
            attempts.value_at_quantile(0.99),
            attempts.max()
        )?;
        figures["storm_attempts"] = serde_json::json!({
            "p50": attempts.value_at_quantile(0.5), "p99": attempts.value_at_quantile(0.99), "max": attempts.max(),
        });
        if let Some(path) = &args.storm_pid_file {
            let pid = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<u32>().ok());
            if let Some(pid) = pid {
                match read_memory(pid) {
                    Ok(memory) => writeln!(storm, "  restarted server pid {pid} with them: {}", describe(&memory))?,
                    Err(error) => writeln!(storm, "  restarted server: {error:#}")?,
                }
            }
        }
        print!("{storm}");
        out.push_str(&storm);
    }

    let _ = stop_tx.send(true);
    drop(reports);
    let drain = Instant::now() + Duration::from_secs(5);
    for task in tasks {
        if tokio::time::timeout_at(drain, task).await.is_err() {
            break;
        }
    }
    if args.record {
        crate::record::write(&args.results, "idle", &args.server_note, figures, &out)?;
    }
    if up < args.count {
        bail!("only {up} of {} connections opened", args.count);
    }
    Ok(())
}
