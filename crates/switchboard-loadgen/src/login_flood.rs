//! `login-flood` (issue 15, item 3): a logged-in agent's REST and WebSocket latency while a
//! flood of wrong-password logins hits the server. The agent asks `GET /api/v1/me` and sends
//! a `ping` every `--probe-ms`, first for `--baseline` seconds without the flood, then for
//! `--duration` seconds with it, in the same sitting; the flood is paced at `--rate` logins a
//! second, spread over `--addresses` loopback source addresses (127.0.0.10, .11, …) so the
//! per-address limit sees several clients. Every answer to the flood is counted by status:
//! 401 (the password was checked), 429 (a login limit), 503 (the hashing threads were busy).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use switchboard_protocol::{ClientFrame, ServerFrame};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::conn::{self, ByteCounts, Credentials, Incoming, Rest, Server};
use crate::governance::Common;

/// Arguments of `login-flood`.
#[derive(Debug, clap::Args)]
pub struct LoginFloodArgs {
    #[command(flatten)]
    pub common: Common,
    /// Wrong-password logins per second.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Seconds of flood (measured).
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Seconds measured before the flood starts.
    #[arg(long, default_value_t = 10)]
    pub baseline: u64,
    /// Loopback source addresses the flood comes from (127.0.0.10 and up); 0: the default
    /// source address.
    #[arg(long, default_value_t = 8)]
    pub addresses: u8,
    /// Milliseconds between two probes of the agent (each of REST and WebSocket).
    #[arg(long, default_value_t = 50)]
    pub probe_ms: u64,
    /// Flood logins in flight at most (beyond, an attempt is skipped and counted).
    #[arg(long, default_value_t = 512)]
    pub max_in_flight: u64,
    /// How the server's limits were set, for the record (e.g. "login limits off").
    #[arg(long, default_value = "")]
    pub setup: String,
}

/// Answers to the flood, by kind.
#[derive(Debug, Default)]
struct Outcomes {
    unauthorized: AtomicU64,
    limited: AtomicU64,
    busy: AtomicU64,
    other: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

fn summary(h: &Histogram<u64>) -> Value {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    json!({"n": h.len(), "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "max": h.max() as f64 / 1000.0})
}

/// Probes the agent until `stop`: REST and WebSocket latencies in microseconds.
async fn probe(
    rest: reqwest::Client,
    base: String,
    token: String,
    mut ws: conn::Ws,
    every: Duration,
    stop: Instant,
) -> Result<(Histogram<u64>, Histogram<u64>)> {
    let rest_task = tokio::spawn(async move {
        let mut histogram = Histogram::<u64>::new(3)?;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while Instant::now() < stop {
            tick.tick().await;
            let started = Instant::now();
            let response =
                rest.get(format!("{base}/api/v1/me")).bearer_auth(&token).send().await.context("GET /api/v1/me")?;
            anyhow::ensure!(response.status().is_success(), "GET /api/v1/me: {}", response.status());
            response.bytes().await?;
            histogram.record((started.elapsed().as_micros() as u64).max(1))?;
        }
        Ok::<_, anyhow::Error>(histogram)
    });
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut id = 0u64;
    while Instant::now() < stop {
        tick.tick().await;
        id += 1;
        let started = Instant::now();
        conn::send(&mut ws, &ClientFrame::Ping { id: Some(id) }).await?;
        loop {
            match conn::recv(&mut ws, Duration::from_secs(30)).await {
                Some(Incoming::Frame(ServerFrame::Pong { id: Some(answered) })) if answered == id => break,
                Some(Incoming::Frame(_) | Incoming::Unknown) => continue,
                Some(Incoming::Closed) => anyhow::bail!("the agent's socket closed"),
                None => anyhow::bail!("no pong within 30 s"),
            }
        }
        histogram.record((started.elapsed().as_micros() as u64).max(1))?;
    }
    let rest = rest_task.await??;
    let _ = ws.close(None).await;
    Ok((rest, histogram))
}

/// `login-flood`.
pub async fn run(args: LoginFloodArgs) -> Result<()> {
    let server = Server::parse(&args.common.url, args.common.ca_cert.as_deref())?;
    let rest = Rest::new(&server)?;
    let credentials = Credentials::read(&args.common.credentials)?;
    let agent = credentials
        .logins
        .iter()
        .find(|login| login.role == "agent")
        .or_else(|| credentials.logins.first())
        .context("no login in the credentials file")?;
    let base = server.http.clone();
    let http = |source: Option<IpAddr>| {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
        if let Some(config) = &server.tls {
            builder = builder.tls_backend_preconfigured(rustls::ClientConfig::clone(config));
        }
        if let Some(source) = source {
            builder = builder.local_address(source);
        }
        builder.build()
    };
    let every = Duration::from_millis(args.probe_ms.max(1));

    // Phase 1: the agent alone.
    let token = rest.login(&agent.email, &agent.password).await?;
    let (ws, _) = conn::connect_agent(&server, &token, Arc::new(ByteCounts::default())).await?;
    let stop = Instant::now() + Duration::from_secs(args.baseline);
    let (rest_before, ws_before) = probe(http(None)?, base.clone(), token.clone(), ws, every, stop).await?;

    // Phase 2: the same, under the flood.
    let (ws, _) = conn::connect_agent(&server, &token, Arc::new(ByteCounts::default())).await?;
    let sources: Vec<Option<IpAddr>> = if args.addresses == 0 {
        vec![None]
    } else {
        (0..args.addresses).map(|n| Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10u8.saturating_add(n))))).collect()
    };
    let clients = sources.iter().map(|source| http(*source)).collect::<Result<Vec<_>, _>>()?;
    let outcomes = Arc::new(Outcomes::default());
    let flood_latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let in_flight = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let stop = started + Duration::from_secs(args.duration);
    let probes = tokio::spawn(probe(http(None)?, base.clone(), token.clone(), ws, every, stop));
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(0.001));
    let mut sent = 0u64;
    let mut attempts = Vec::new();
    while Instant::now() < stop {
        let due = started + interval.mul_f64(sent as f64);
        tokio::time::sleep_until(due).await;
        if due >= stop {
            break;
        }
        let client = clients[(sent as usize) % clients.len()].clone();
        sent += 1;
        if in_flight.load(Ordering::Relaxed) >= args.max_in_flight {
            outcomes.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        // One in ten on the agent's own account, the rest on addresses that do not exist
        // (checked against a dummy hash all the same).
        let email = if sent.is_multiple_of(10) { agent.email.clone() } else { format!("flood-{sent}@example.test") };
        let (outcomes, latency, in_flight, url) =
            (outcomes.clone(), flood_latency.clone(), in_flight.clone(), format!("{base}/api/v1/auth/login"));
        in_flight.fetch_add(1, Ordering::Relaxed);
        attempts.push(tokio::spawn(async move {
            let begun = Instant::now();
            let answer =
                client.post(url).json(&json!({"email": email, "password": "not the password 123"})).send().await;
            let counter = match answer.as_ref().map(|response| response.status().as_u16()) {
                Ok(401) => &outcomes.unauthorized,
                Ok(429) => &outcomes.limited,
                Ok(503) => &outcomes.busy,
                Ok(_) => &outcomes.other,
                Err(_) => &outcomes.failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if let Ok(response) = answer {
                let _ = response.bytes().await;
            }
            let _ = latency.lock().await.record((begun.elapsed().as_micros() as u64).max(1));
            in_flight.fetch_sub(1, Ordering::Relaxed);
        }));
    }
    let (rest_during, ws_during) = probes.await??;
    for attempt in attempts {
        let _ = attempt.await;
    }
    let flood_secs = started.elapsed().as_secs_f64();
    let flood_latency = flood_latency.lock().await.clone();
    let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let figures = json!({
        "setup": args.setup,
        "rate": args.rate,
        "addresses": args.addresses,
        "duration_secs": args.duration,
        "baseline_secs": args.baseline,
        "probe_ms": args.probe_ms,
        "attempts": sent,
        "attempts_per_sec": sent as f64 / args.duration.max(1) as f64,
        "secs_until_every_answer": flood_secs,
        "answers": {
            "unauthorized_401": count(&outcomes.unauthorized),
            "too_many_requests_429": count(&outcomes.limited),
            "busy_503": count(&outcomes.busy),
            "other": count(&outcomes.other),
            "failed": count(&outcomes.failed),
            "skipped": count(&outcomes.skipped),
        },
        "flood_login_ms": summary(&flood_latency),
        "rest_ms": {"baseline": summary(&rest_before), "flood": summary(&rest_during)},
        "ws_ping_ms": {"baseline": summary(&ws_before), "flood": summary(&ws_during)},
    });
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
    let mut out = String::new();
    let mut line = |text: String| {
        println!("{text}");
        out.push_str(&text);
        out.push('\n');
    };
    line(format!(
        "flood: {sent} wrong-password logins in {} s ({:.1}/s; the last answered after {flood_secs:.1} s) from {} source address(es); {}",
        args.duration,
        sent as f64 / args.duration.max(1) as f64,
        sources.len(),
        args.setup
    ));
    line(format!(
        "answers: 401 {}, 429 {}, 503 {}, other {}, failed {}, skipped {}; login p50 {:.1} ms p99 {:.1} ms",
        count(&outcomes.unauthorized),
        count(&outcomes.limited),
        count(&outcomes.busy),
        count(&outcomes.other),
        count(&outcomes.failed),
        count(&outcomes.skipped),
        flood_latency.value_at_quantile(0.5) as f64 / 1000.0,
        p99(&flood_latency)
    ));
    line(format!(
        "agent REST GET /api/v1/me p99: {:.1} ms before, {:.1} ms during (n {} / {}, max {:.1} ms)",
        p99(&rest_before),
        p99(&rest_during),
        rest_before.len(),
        rest_during.len(),
        rest_during.max() as f64 / 1000.0
    ));
    line(format!(
        "agent WebSocket ping p99: {:.1} ms before, {:.1} ms during (n {} / {}, max {:.1} ms)",
        p99(&ws_before),
        p99(&ws_during),
        ws_before.len(),
        ws_during.len(),
        ws_during.max() as f64 / 1000.0
    ));
    let met = p99(&rest_during) < 100.0 && p99(&ws_during) < 100.0;
    line(format!("target: both p99 under 100 ms during the flood: {}", if met { "met" } else { "NOT met" }));
    if args.common.record {
        crate::record::write(&args.common.results, "login-flood", &args.common.server_note, figures, &out)?;
    }
    Ok(())
}
