//! Data-governance benchmarks (issue 9) against a running server:
//!
//! - `seed`: writes bulk closed conversations straight into the server's database
//!   (`switchboard_store::Store::bulk_seed`), with their consumers, messages and event logs;
//! - `search`: the reporting API's first page over those, for a set of filters, each asked
//!   many times: latency percentiles against the SPEC's 100 ms;
//! - `export`: one transcript export of every conversation, read as it streams, while the
//!   server's resident memory is sampled from `/proc`: its peak against its size before;
//! - `purge`: the message path's latency (the `run` load) with and without a retention
//!   purge running underneath, in the same sitting.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use switchboard_store::bench::BulkSeed;
use switchboard_store::{Store, StoreOptions};
use tokio::time::Instant;

use crate::conn::{Credentials, Rest, Server};

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Arguments of `seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// The server's database (`sqlite://DIR/switchboard.db` or `postgres://…`).
    #[arg(long)]
    pub database_url: String,
    /// The brand to write into (it must exist, with agents).
    #[arg(long, default_value = "demo")]
    pub brand: String,
    /// Its app.
    #[arg(long, default_value = "demo-app")]
    pub app: String,
    #[arg(long, default_value_t = 1_000_000)]
    pub conversations: i64,
    #[arg(long, default_value_t = 1)]
    pub messages: i64,
    #[arg(long, default_value_t = 50_000)]
    pub consumers: i64,
    /// How many days ago the last conversation closed; they spread evenly over
    /// `--span-days` before that.
    #[arg(long, default_value_t = 0)]
    pub closed_days_ago: i64,
    #[arg(long, default_value_t = 300)]
    pub span_days: i64,
    /// A word for the consumers' ids (`<tag>-<n>`).
    #[arg(long, default_value = "bench")]
    pub tag: String,
}

/// `seed`.
pub async fn seed(args: SeedArgs) -> Result<()> {
    let store = Store::open(&StoreOptions::new(&args.database_url))
        .await
        .with_context(|| format!("cannot open {}", args.database_url))?;
    let agents: Vec<i64> =
        store.users(&args.brand).await?.iter().filter(|u| u.max_concurrent > 0).map(|u| u.id).collect();
    if agents.is_empty() {
        bail!(
            "brand {:?} has no agents to hold the conversations (start the server once to seed the demo)",
            args.brand
        );
    }
    let skills: Vec<i64> = store.skills(&args.brand).await?.iter().map(|s| s.id).collect();
    let last_closed = now_ms() - args.closed_days_ago * DAY_MS - 60_000;
    let spacing = (args.span_days * DAY_MS / args.conversations.max(1)).max(1);
    let seed = BulkSeed {
        brand_id: args.brand.clone(),
        app_id: args.app.clone(),
        tag: args.tag.clone(),
        consumers: args.consumers.min(args.conversations),
        conversations: args.conversations,
        messages_per_conversation: args.messages,
        agents,
        skills,
        first_opened_at: last_closed - args.conversations * spacing - 600_000,
        spacing_ms: spacing,
        close_after_ms: 600_000,
    };
    let started = Instant::now();
    let seeded = store.bulk_seed(&seed).await?;
    println!(
        "seeded {} conversations ({}..={}) with {} messages into brand {:?} in {:.1} s",
        args.conversations,
        seeded.first_conversation,
        seeded.last_conversation,
        seeded.messages,
        args.brand,
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    Ok(())
}

/// Options every HTTP measurement here shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A PEM file of a CA to trust for an https:// server.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    /// The server's demo-credentials.json (the admin logs in).
    #[arg(long)]
    pub credentials: PathBuf,
    /// Record the run under --results.
    #[arg(long)]
    pub record: bool,
    /// How the server was started (recorded).
    #[arg(long, default_value = "not given")]
    pub server_note: String,
    #[arg(long, default_value = "bench/results")]
    pub results: PathBuf,
}

async fn admin(common: &Common) -> Result<(Rest, String, reqwest::Client, String)> {
    let server = Server::parse(&common.url, common.ca_cert.as_deref())?;
    let rest = Rest::new(&server)?;
    let credentials = Credentials::read(&common.credentials)?;
    let login = credentials.admin()?;
    let token = rest.login(&login.email, &login.password).await?;
    Ok((rest, token, reqwest::Client::new(), common.url.trim_end_matches('/').to_owned()))
}

/// Arguments of `search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    pub common: Common,
    /// Times each query is asked (after one that warms the caches).
    #[arg(long, default_value_t = 100)]
    pub repeat: u32,
    /// What the database holds, for the record (e.g. "1,000,000 conversations, SQLite").
    #[arg(long, default_value = "")]
    pub dataset: String,
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// `search`.
pub async fn search(args: SearchArgs) -> Result<()> {
    let (_, token, client, base) = admin(&args.common).await?;
    let get = |path: String| {
        let client = client.clone();
        let token = token.clone();
        let url = format!("{base}{path}");
        async move {
            let response = client.get(&url).bearer_auth(&token).send().await?;
            let status = response.status();
            let body: Value = response.json().await?;
            if !status.is_success() {
                bail!("{url}: {status} {body}");
            }
            Ok::<Value, anyhow::Error>(body)
        }
    };
    // Filters from the data: an agent, a skill, a consumer and a week in the middle.
    let users: Value = get("/api/v1/users".into()).await?;
    let agent = users
        .as_array()
        .and_then(|u| u.iter().find(|u| u["max_concurrent"].as_i64() > Some(0)))
        .and_then(|u| u["id"].as_i64())
        .context("no agent")?;
    let skills: Value = get("/api/v1/skills".into()).await?;
    let skill = skills.as_array().and_then(|s| s.first()).and_then(|s| s["id"].as_i64());
    let newest: Value = get("/api/v1/reports/conversations?limit=1&messages=0".into()).await?;
    let newest_at = newest["conversations"][0]["conversation"]["opened_at"].as_i64().context("no conversation")?;
    let total = get("/api/v1/retention".into()).await.ok();
    let week_to = newest_at - 100 * DAY_MS;
    let week_from = week_to - 7 * DAY_MS;
    // A cursor far back (page positions are opened_at.id): as deep as half the history.
    let deep = format!("{}.{}", newest_at - 150 * DAY_MS, i64::MAX / 2);
    let mut queries: Vec<(String, String)> = vec![
        ("no filter".into(), String::new()),
        ("status=closed".into(), "status=closed".into()),
        ("agent".into(), format!("agent_id={agent}")),
        ("channel=web".into(), "channel=web".into()),
        ("csat 4-5".into(), "csat_min=4".into()),
        ("csat 1-2".into(), "csat_min=1&csat_max=2".into()),
        ("csat = 5".into(), "csat_min=5&csat_max=5".into()),
        ("a week, 100 days back".into(), format!("from={week_from}&to={week_to}")),
        ("consumer".into(), "consumer=bench-12345".into()),
        ("closed + agent + web + csat 4-5".into(), format!("status=closed&agent_id={agent}&channel=web&csat_min=4")),
        ("a page 150 days deep (cursor)".into(), format!("cursor={deep}")),
        ("no match (status=open)".into(), "status=open".into()),
    ];
    if let Some(skill) = skill {
        queries.insert(3, ("skill".into(), format!("skill_id={skill}")));
    }
    let mut out = String::new();
    let mut results = Vec::new();
    let mut worst = 0.0f64;
    for (name, filter) in &queries {
        let mut histogram = Histogram::<u64>::new(3)?;
        let mut found = 0;
        for round in 0..=args.repeat {
            let path = format!("/api/v1/reports/conversations?limit=20&{filter}");
            let started = Instant::now();
            let page = get(path).await?;
            let micros = started.elapsed().as_micros() as u64;
            found = page["conversations"].as_array().map_or(0, Vec::len);
            // The first round warms the caches; it is not counted.
            if round > 0 {
                histogram.record(micros.max(1))?;
            }
        }
        let (p50, p99, max) = (ms(&histogram, 0.5), ms(&histogram, 0.99), histogram.max() as f64 / 1000.0);
        worst = worst.max(p99);
        let line = format!("{name:<34} {found:>3} found  p50 {p50:>7.1} ms  p99 {p99:>7.1} ms  max {max:>7.1} ms");
        println!("{line}");
        out.push_str(&line);
        out.push('\n');
        results.push(
            json!({"query": name, "filter": filter, "found": found, "p50_ms": p50, "p99_ms": p99, "max_ms": max}),
        );
    }
    let summary = format!("worst p99 of a first page: {worst:.1} ms (target < 100 ms) over {}", args.dataset);
    println!("{summary}");
    out.push_str(&summary);
    if args.common.record {
        let figures = json!({"dataset": args.dataset, "repeat": args.repeat, "limit": 20, "messages_per_record": 50,
            "worst_p99_ms": worst, "queries": results, "retention": total});
        crate::record::write(&args.common.results, "search", &args.common.server_note, figures, &out)?;
    }
    Ok(())
}

/// Resident memory of a process, from `/proc/PID/status`: (VmRSS, VmHWM) in KiB.
fn memory_kib(pid: u32) -> Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status (is the server running here?)"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub common: Common,
    /// The server's process id (its memory is read from `/proc`).
    #[arg(long)]
    pub server_pid: u32,
    /// `json`, `xml` or `txt`.
    #[arg(long, default_value = "json")]
    pub format: String,
    /// Read the export this many bytes per second at most (a slow client); 0: as fast as it comes.
    #[arg(long, default_value_t = 0)]
    pub read_bytes_per_sec: u64,
    #[arg(long, default_value = "")]
    pub dataset: String,
}

/// `export`.
pub async fn export(args: ExportArgs) -> Result<()> {
    let (_, token, client, base) = admin(&args.common).await?;
    let (rss_before, hwm_before) = memory_kib(args.server_pid)?;
    let url = format!("{base}/api/v1/exports/conversations?format={}", args.format);
    let started = Instant::now();
    let mut response = client.get(&url).bearer_auth(&token).send().await?;
    if !response.status().is_success() {
        bail!("{url}: {}", response.status());
    }
    let mut bytes: u64 = 0;
    let mut peak = rss_before;
    let mut samples = 0u64;
    let mut last_sample = Instant::now();
    // Count conversations without holding the file: the JSON form starts each with `{"id":`.
    let mut conversations: u64 = 0;
    let needle: &[u8] = match args.format.as_str() {
        "xml" => b"<conversation ",
        "txt" => b"\nConversation ",
        _ => b"\n{\"id\":",
    };
    let mut carry: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        bytes += chunk.len() as u64;
        carry.extend_from_slice(&chunk);
        conversations += carry.windows(needle.len()).filter(|w| *w == needle).count() as u64;
        let keep = carry.len().min(needle.len() - 1);
        carry.drain(..carry.len() - keep);
        if last_sample.elapsed() >= Duration::from_millis(20) {
            peak = peak.max(memory_kib(args.server_pid)?.0);
            samples += 1;
            last_sample = Instant::now();
        }
        if args.read_bytes_per_sec > 0 {
            let due = Duration::from_secs_f64(bytes as f64 / args.read_bytes_per_sec as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let (rss_after, hwm_after) = memory_kib(args.server_pid)?;
    peak = peak.max(rss_after);
    let out = format!(
        "export ({}) of {} conversations: {:.1} MB in {:.1} s ({:.1} MB/s)\n\
         server VmRSS before {} KiB, peak during the export {} KiB (+{} KiB; {} samples), after {} KiB; \
         VmHWM {} KiB before, {} KiB after\ndataset: {}",
        args.format,
        conversations,
        bytes as f64 / 1e6,
        secs,
        bytes as f64 / 1e6 / secs,
        rss_before,
        peak,
        peak.saturating_sub(rss_before),
        samples,
        rss_after,
        hwm_before,
        hwm_after,
        args.dataset
    );
    println!("{out}");
    if args.common.record {
        let figures = json!({"format": args.format, "conversations": conversations, "bytes": bytes, "secs": secs,
            "rss_before_kib": rss_before, "rss_peak_kib": peak, "rss_growth_kib": peak.saturating_sub(rss_before),
            "rss_after_kib": rss_after, "hwm_before_kib": hwm_before, "hwm_after_kib": hwm_after, "samples": samples,
            "read_bytes_per_sec": args.read_bytes_per_sec, "dataset": args.dataset});
        crate::record::write(&args.common.results, "export", &args.common.server_note, figures, &out)?;
    }
    Ok(())
}

/// Arguments of `purge`.
#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// The message load, as `run` takes it (its `--record` is ignored: this records both).
    #[command(flatten)]
    pub run: crate::run::RunArgs,
    #[arg(long, default_value = "")]
    pub dataset: String,
}

async fn retention(client: &reqwest::Client, base: &str, token: &str) -> Result<Value> {
    let response = client.get(format!("{base}/api/v1/retention")).bearer_auth(token).send().await?;
    Ok(response.error_for_status()?.json().await?)
}

/// `purge`: a baseline `run`, then the same `run` with a purge started as its measurement
/// starts; the purge must still be running when the measurement ends, so every latency of the
/// second run was taken under it.
pub async fn purge(args: PurgeArgs) -> Result<()> {
    let common = Common {
        url: args.run.url.clone(),
        ca_cert: args.run.ca_cert.clone(),
        credentials: args.run.credentials.clone(),
        record: false,
        server_note: String::new(),
        results: PathBuf::new(),
    };
    let (_, token, client, base) = admin(&common).await?;
    let before = retention(&client, &base, &token).await?;
    let waiting = before["waiting"].as_i64().unwrap_or(0);
    if waiting == 0 {
        bail!("nothing is past retention: seed with --closed-days-ago beyond the brand's retention first");
    }
    println!("baseline (no purge):");
    let (baseline, baseline_out) = crate::run::measure(&args.run).await?;
    println!("{baseline_out}");

    // The purge starts when the measured part of the second run does.
    let warmup = Duration::from_secs(args.run.warmup);
    let trigger = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        tokio::spawn(async move {
            tokio::time::sleep(warmup + Duration::from_secs(2)).await;
            let started = Instant::now();
            let response = client.post(format!("{base}/api/v1/retention/purge")).bearer_auth(&token).send().await?;
            response.error_for_status()?;
            Ok::<Instant, anyhow::Error>(started)
        })
    };
    println!("the same load with a purge running:");
    let (during, during_out) = crate::run::measure(&args.run).await?;
    println!("{during_out}");
    let purge_started = trigger.await??;
    let at_end = retention(&client, &base, &token).await?;
    let covered = at_end["running"] == true;
    let mut run = Value::Null;
    while run.is_null() {
        let status = retention(&client, &base, &token).await?;
        if status["running"] == false {
            run = status["runs"][0].clone();
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let purge_secs = purge_started.elapsed().as_secs_f64();
    let p99 = |figures: &Value| {
        let a = figures["consumer_to_agent_ms"]["p99"].as_f64().unwrap_or(f64::NAN);
        let b = figures["agent_to_consumer_ms"]["p99"].as_f64().unwrap_or(a);
        a.max(b)
    };
    let out = format!(
        "{baseline_out}\n---\n{during_out}\n---\npurge: {} conversations, {} messages deleted; about {purge_secs:.1} s \
         (from its start to seeing it finished); the purge {} still running when the measurement ended\n\
         p99 delivery without purge {:.1} ms, during the purge {:.1} ms; dataset: {}",
        run["conversations"],
        run["messages"],
        if covered { "was" } else { "was NOT" },
        p99(&baseline),
        p99(&during),
        args.dataset
    );
    println!("{}", out.lines().rev().take(2).collect::<Vec<_>>().join("\n"));
    if args.run.record {
        let figures = json!({"baseline": baseline, "during_purge": during, "purge": run, "purge_secs": purge_secs,
            "purge_covered_the_measurement": covered, "p99_baseline_ms": p99(&baseline),
            "p99_during_purge_ms": p99(&during), "dataset": args.dataset});
        crate::record::write(&args.run.results, "purge", &args.run.server_note, figures, &out)?;
    }
    Ok(())
}
