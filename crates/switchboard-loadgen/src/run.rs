//! `run`: throughput and latency with many consumers and agents.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::future::join_all;
use hdrhistogram::Histogram;
use switchboard_protocol::{AgentState, ClientFrame, ConversationEventKind, ServerFrame, Side};
use tokio::time::Instant;

use crate::conn::{self, ByteCounts, Credentials, Incoming, Rest, Server, Ws};

/// Arguments of `run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Server base URL (http:// or https://).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Other nodes of the same fleet (repeatable): consumers connect to `--url` and these in
    /// turn, and each agent to the node after its consumers' (so most messages cross nodes).
    #[arg(long = "also-url")]
    pub also_urls: Vec<String>,
    /// The server's store, recorded with the run (`report` keeps SQLite and PostgreSQL
    /// figures apart).
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "postgres"])]
    pub store: String,
    /// Runs made together to be compared (a label recorded with the run; `report` shows the
    /// newest fleet sitting's runs side by side).
    #[arg(long)]
    pub sitting: Option<String>,
    /// A certificate authority to trust for https besides the public ones (PEM file).
    #[arg(long)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// The server's demo-credentials.json (to log in as admin).
    #[arg(long)]
    pub credentials: PathBuf,
    /// Agents to create and connect.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub agents: u32,
    /// Consumers to connect.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=20000))]
    pub consumers: u32,
    /// Measurement time in seconds (at most 300).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub duration: u64,
    /// Target total consumer send rate (messages/s); default: as fast as acks allow.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of load before the measurement starts (connections, caches and the writer's
    /// batches settle); nothing sent in them is counted.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=60))]
    pub warmup: u64,
    /// Sends in flight (not yet acknowledged) per consumer.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub window: u32,
    /// Agents answer every Nth consumer message they receive (0: never).
    #[arg(long, default_value_t = 1)]
    pub reply_every: u32,
    /// Record the run as a JSON file under --results.
    #[arg(long)]
    pub record: bool,
    /// The server's configuration, as started (recorded with --record).
    #[arg(long, default_value = "not given")]
    pub server_note: String,
    /// Where `--record` writes the run (one JSON file; `report` reads them).
    #[arg(long, default_value = "bench/results")]
    pub results: PathBuf,
    /// The server's process id on this machine: its CPU time during the measurement is read
    /// from `/proc/PID/stat` and reported per stored message (Linux only). Repeat it for the
    /// nodes of a fleet: their times are added.
    #[arg(long)]
    pub server_pid: Vec<u32>,
}

/// CPU seconds (user + system, all threads) a process has used so far, from `/proc/PID/stat`.
pub(crate) fn process_cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("--server-pid {pid}: cannot read /proc/{pid}/stat (is the server running here?)"))?;
    cpu_secs_of_stat(&stat).with_context(|| format!("/proc/{pid}/stat"))
}

/// Fields 14 (utime) and 15 (stime) of a proc(5) `stat` line, in seconds: they count in
/// USER_HZ, 100 per second in the Linux ABI of x86_64 and arm64.
fn cpu_secs_of_stat(stat: &str) -> Result<f64> {
    // The command name (field 2) is in parentheses and may hold spaces or parentheses.
    let after_name = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3.
    let ticks = |n: usize| -> Result<f64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .map(|v| v as f64 / 100.0)
            .with_context(|| format!("field {n} is missing or not a number"))
    };
    Ok(ticks(14)? + ticks(15)?)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// Figures of one task, merged at the end.
struct Stats {
    consumer_sent: u64,
    consumer_acked: u64,
    agent_sent: u64,
    agent_acked: u64,
    to_agent: u64,
    to_consumer: u64,
    assigned: u64,
    queued: u64,
    resyncs: u64,
    undecodable: u64,
    errors: BTreeMap<String, u64>,
    /// Consumer send → ack, µs.
    consumer_ack: Histogram<u64>,
    /// Agent send → ack, µs.
    agent_ack: Histogram<u64>,
    /// Consumer send → agent receives, µs.
    c_to_a: Histogram<u64>,
    /// Agent send → consumer receives, µs.
    a_to_c: Histogram<u64>,
}

impl Stats {
    fn new() -> Stats {
        Stats {
            consumer_sent: 0,
            consumer_acked: 0,
            agent_sent: 0,
            agent_acked: 0,
            to_agent: 0,
            to_consumer: 0,
            assigned: 0,
            queued: 0,
            resyncs: 0,
            undecodable: 0,
            errors: BTreeMap::new(),
            consumer_ack: histogram(),
            agent_ack: histogram(),
            c_to_a: histogram(),
            a_to_c: histogram(),
        }
    }

    fn merge(&mut self, other: &Stats) {
        self.consumer_sent += other.consumer_sent;
        self.consumer_acked += other.consumer_acked;
        self.agent_sent += other.agent_sent;
        self.agent_acked += other.agent_acked;
        self.to_agent += other.to_agent;
        self.to_consumer += other.to_consumer;
        self.assigned += other.assigned;
        self.queued += other.queued;
        self.resyncs += other.resyncs;
        self.undecodable += other.undecodable;
        for (code, n) in &other.errors {
            *self.errors.entry(code.clone()).or_default() += n;
        }
        for (mine, theirs) in [
            (&mut self.consumer_ack, &other.consumer_ack),
            (&mut self.agent_ack, &other.agent_ack),
            (&mut self.c_to_a, &other.c_to_a),
            (&mut self.a_to_c, &other.a_to_c),
        ] {
            let _ = mine.add(theirs);
        }
    }

    fn error(&mut self, what: impl Into<String>) {
        *self.errors.entry(what.into()).or_default() += 1;
    }
}

/// Shared clock: send times travel in message texts as `lg:<µs since base>`. Only what is
/// sent from `measure_from` on is measured: the warm-up before it loads the server but counts
/// for nothing.
#[derive(Clone, Copy)]
struct Clock {
    base: Instant,
    measure_from: Instant,
}

impl Clock {
    fn micros(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    fn stamp(&self, what: &str) -> String {
        format!("lg:{} {what}", self.micros())
    }

    /// Whether what is sent now is measured.
    fn measuring(&self) -> bool {
        Instant::now() >= self.measure_from
    }

    /// Latency of a stamped text, µs; `None` for a text sent during the warm-up.
    fn latency(&self, text: &str) -> Option<u64> {
        let sent: u64 = text.strip_prefix("lg:")?.split(' ').next()?.parse().ok()?;
        let measure_from = self.measure_from.saturating_duration_since(self.base).as_micros() as u64;
        (sent >= measure_from).then(|| self.micros().saturating_sub(sent))
    }
}

/// When consumer `index` of `n_consumers` first sends, after the start, at a paced rate of one
/// message per `interval` each: the consumers' sends are spread evenly over the interval, so
/// that the server sees a steady stream rather than bursts. (Until issue 13 the offset was
/// `index % 1000 / 1000` of the interval: with 200 consumers, every send of an interval fell in
/// its first fifth.)
fn first_send_offset(index: u32, n_consumers: u32, interval: Duration) -> Duration {
    interval.mul_f64(f64::from(index) / f64::from(n_consumers.max(1)))
}

fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Sends within a deadline (so a stuck socket cannot hold the run past its end).
async fn send_by(ws: &mut Ws, frame: &ClientFrame, deadline: Instant) -> Result<()> {
    tokio::time::timeout_at(deadline, conn::send(ws, frame)).await.context("send timed out")?
}

struct ConsumerPlan {
    index: u32,
    n_consumers: u32,
    start: Instant,
    end: Instant,
    window: u32,
    interval: Option<Duration>,
}

async fn consumer_task(mut ws: Ws, plan: ConsumerPlan, clock: Clock) -> Stats {
    let mut stats = Stats::new();
    let hard_end = plan.end + Duration::from_secs(5);
    // Send time, and whether the send is measured (not in the warm-up).
    let mut in_flight: HashMap<u64, (Instant, bool)> = HashMap::new();
    let mut next_id: u64 = 0;
    let mut next_send = match plan.interval {
        Some(interval) => plan.start + first_send_offset(plan.index, plan.n_consumers, interval),
        None => plan.start,
    };
    tokio::time::sleep_until(plan.start).await;
    loop {
        let now = Instant::now();
        if now >= plan.end {
            break;
        }
        // Send while the window and the rate allow.
        while (in_flight.len() as u32) < plan.window && Instant::now() >= next_send && Instant::now() < plan.end {
            next_id += 1;
            let frame = ClientFrame::Send {
                id: Some(next_id),
                cid: format!("c{}-{next_id}", plan.index),
                text: clock.stamp("load test message from a consumer"),
                c: None,
                consumer: None,
            };
            if let Err(error) = send_by(&mut ws, &frame, hard_end).await {
                stats.error(format!("consumer socket: {error:#}"));
                return stats;
            }
            let measured = clock.measuring();
            in_flight.insert(next_id, (Instant::now(), measured));
            stats.consumer_sent += u64::from(measured);
            if let Some(interval) = plan.interval {
                next_send += interval;
                // Behind by more than a second: do not burst to catch up.
                if next_send + Duration::from_secs(1) < Instant::now() {
                    next_send = Instant::now();
                }
            }
        }
        let wake = match plan.interval {
            Some(_) if (in_flight.len() as u32) < plan.window => next_send.min(plan.end),
            _ => plan.end,
        };
        let timeout = wake.saturating_duration_since(Instant::now()).max(Duration::from_micros(50));
        match conn::recv(&mut ws, timeout).await {
            None => continue,
            Some(Incoming::Closed) => {
                stats.error("consumer socket closed by server");
                return stats;
            }
            Some(Incoming::Unknown) => stats.undecodable += 1,
            Some(Incoming::Frame(frame)) => match frame {
                ServerFrame::Ack { id: Some(id), .. } => {
                    if let Some((sent, true)) = in_flight.remove(&id) {
                        stats.consumer_acked += 1;
                        stats.consumer_ack.saturating_record(micros(sent.elapsed()));
                    }
                }
                ServerFrame::Err { id, code, .. } => {
                    if let Some(id) = id {
                        in_flight.remove(&id);
                    }
                    stats.error(format!("consumer err {}", code.as_str()));
                }
                ServerFrame::Msg(message) if message.from == Side::Agent => {
                    if let Some(latency) = clock.latency(&message.text) {
                        stats.to_consumer += 1;
                        stats.a_to_c.saturating_record(latency);
                    }
                }
                ServerFrame::Conv { ev: ConversationEventKind::Queued, .. } => stats.queued += 1,
                ServerFrame::Resync => stats.resyncs += 1,
                _ => {}
            },
        }
    }
    conn::close(&mut ws).await;
    stats
}

async fn agent_task(mut ws: Ws, index: u32, start: Instant, end: Instant, reply_every: u32, clock: Clock) -> Stats {
    let mut stats = Stats::new();
    let hard_end = end + Duration::from_secs(5);
    let mut in_flight: HashMap<u64, (Instant, bool)> = HashMap::new();
    let mut next_id: u64 = 10;
    let mut received: u64 = 0;
    tokio::time::sleep_until(start).await;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match conn::recv(&mut ws, left).await {
            None => continue,
            Some(Incoming::Closed) => {
                stats.error("agent socket closed by server");
                return stats;
            }
            Some(Incoming::Unknown) => stats.undecodable += 1,
            Some(Incoming::Frame(frame)) => match frame {
                ServerFrame::Msg(message) if message.from == Side::Consumer => {
                    received += 1;
                    if let Some(latency) = clock.latency(&message.text) {
                        stats.to_agent += 1;
                        stats.c_to_a.saturating_record(latency);
                    }
                    if reply_every > 0 && received.is_multiple_of(u64::from(reply_every)) {
                        next_id += 1;
                        let reply = ClientFrame::Send {
                            id: Some(next_id),
                            cid: format!("a{index}-{next_id}"),
                            text: clock.stamp("load test reply from an agent"),
                            c: Some(message.c),
                            consumer: None,
                        };
                        if let Err(error) = send_by(&mut ws, &reply, hard_end).await {
                            stats.error(format!("agent socket: {error:#}"));
                            return stats;
                        }
                        let measured = clock.measuring();
                        in_flight.insert(next_id, (Instant::now(), measured));
                        stats.agent_sent += u64::from(measured);
                    }
                }
                ServerFrame::Ack { id: Some(id), .. } => {
                    if let Some((sent, true)) = in_flight.remove(&id) {
                        stats.agent_acked += 1;
                        stats.agent_ack.saturating_record(micros(sent.elapsed()));
                    }
                }
                ServerFrame::Err { id, code, .. } => {
                    if let Some(id) = id {
                        in_flight.remove(&id);
                    }
                    stats.error(format!("agent err {}", code.as_str()));
                }
                ServerFrame::Conv { ev: ConversationEventKind::Assigned, .. } => stats.assigned += 1,
                ServerFrame::Resync => stats.resyncs += 1,
                _ => {}
            },
        }
    }
    // Leave routing: a disconnected agent must not keep receiving conversations.
    let offline = ClientFrame::State { id: None, state: AgentState::Offline };
    let _ = send_by(&mut ws, &offline, hard_end).await;
    conn::close(&mut ws).await;
    stats
}

/// Creates, logs in and connects one agent, and sets it online.
async fn start_agent(server: &Server, rest: &Rest, admin: &str, email: &str, skills: &[i64]) -> Result<Ws> {
    const PASSWORD: &str = "loadgen-password-123";
    rest.create_agent(admin, email, PASSWORD, skills).await?;
    let session = rest.login(email, PASSWORD).await?;
    let (mut ws, _welcome) = conn::connect_agent(server, &session, Arc::new(ByteCounts::default())).await?;
    conn::send(&mut ws, &ClientFrame::State { id: Some(1), state: AgentState::Online }).await?;
    loop {
        match conn::recv(&mut ws, conn::CONNECT_TIMEOUT).await {
            Some(Incoming::Frame(ServerFrame::Ok { id: 1 })) => return Ok(ws),
            Some(Incoming::Frame(ServerFrame::Err { code, msg, .. })) => {
                bail!("agent {email} state online: {} ({msg})", code.as_str())
            }
            Some(Incoming::Frame(_)) | Some(Incoming::Unknown) => continue,
            Some(Incoming::Closed) => bail!("agent {email}: socket closed during setup"),
            None => bail!("agent {email}: no answer to state online"),
        }
    }
}

fn quantiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    let ms = |v: u64| v as f64 / 1000.0;
    format!(
        "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms (n={})",
        ms(h.value_at_quantile(0.50)),
        ms(h.value_at_quantile(0.90)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len()
    )
}

pub async fn run(args: RunArgs) -> Result<()> {
    let (figures, out) = measure(&args).await?;
    println!("{out}");
    if args.record {
        crate::record::write(&args.results, "run", &args.server_note, figures, &out)?;
    }
    Ok(())
}

/// One run as `run` makes it: the figures it records and the report it prints.
pub async fn measure(args: &RunArgs) -> Result<(serde_json::Value, String)> {
    if let Some(rate) = args.rate
        && !(rate > 0.0 && rate.is_finite())
    {
        bail!("--rate must be a positive number of messages per second");
    }
    let server = Server::parse(&args.url, args.ca_cert.as_deref())?;
    let mut nodes = vec![server.clone()];
    for url in &args.also_urls {
        nodes.push(Server::parse(url, args.ca_cert.as_deref())?);
    }
    let credentials = Credentials::read(&args.credentials)?;
    let rest = Rest::new(&server)?;
    let admin_login = credentials.admin()?;
    let admin = rest.login(&admin_login.email, &admin_login.password).await?;
    let skills = rest.skill_ids(&admin).await?;
    let run_id = conn::run_id();
    println!(
        "run {run_id}: {} agents, {} consumers, {} s, window {}, rate {}",
        args.agents,
        args.consumers,
        args.duration,
        args.window,
        args.rate.map_or("max (closed loop)".to_owned(), |r| format!("{r} msg/s"))
    );

    // Agents: a few at a time (creating and logging in hashes passwords on the server).
    let setup_started = Instant::now();
    let mut agents = Vec::new();
    let emails: Vec<String> = (0..args.agents).map(|i| format!("lg-{run_id}-{i}@load.test")).collect();
    for (n, chunk) in emails.chunks(4).enumerate() {
        let started = join_all(chunk.iter().enumerate().map(|(i, email)| {
            let node = &nodes[(n * 4 + i + 1) % nodes.len()];
            start_agent(node, &rest, &admin, email, &skills)
        }))
        .await;
        for agent in started {
            agents.push(agent?);
        }
    }
    // Consumers: 50 at a time.
    let mut consumers = Vec::new();
    let indexes: Vec<u32> = (0..args.consumers).collect();
    for chunk in indexes.chunks(50) {
        let opened = join_all(chunk.iter().map(|index| {
            let node = &nodes[*index as usize % nodes.len()];
            conn::connect_consumer(node, &credentials.brand, &credentials.app, None, Arc::new(ByteCounts::default()))
        }))
        .await;
        for consumer in opened {
            consumers.push(consumer.context("consumer connect")?.0);
        }
    }
    println!(
        "setup: {} agents online, {} consumers connected in {:.1} s",
        agents.len(),
        consumers.len(),
        setup_started.elapsed().as_secs_f64()
    );

    let start = Instant::now() + Duration::from_millis(200);
    let clock = Clock { base: Instant::now(), measure_from: start + Duration::from_secs(args.warmup) };
    let end = clock.measure_from + Duration::from_secs(args.duration);
    let interval = args.rate.map(|rate| Duration::from_secs_f64(f64::from(args.consumers) / rate));
    let mut tasks = Vec::new();
    for (index, ws) in agents.into_iter().enumerate() {
        tasks.push(tokio::spawn(agent_task(ws, index as u32, start, end, args.reply_every, clock)));
    }
    for (index, ws) in consumers.into_iter().enumerate() {
        let plan = ConsumerPlan {
            index: index as u32,
            n_consumers: args.consumers,
            start,
            end,
            window: args.window,
            interval,
        };
        tasks.push(tokio::spawn(consumer_task(ws, plan, clock)));
    }
    // The server's CPU time over exactly the measured interval.
    let pids = args.server_pid.clone();
    let server_cpu = (!pids.is_empty()).then(|| {
        let (from, to) = (clock.measure_from, end);
        tokio::spawn(async move {
            let total = |pids: &[u32]| pids.iter().map(|pid| process_cpu_secs(*pid)).sum::<Result<f64>>();
            tokio::time::sleep_until(from).await;
            let before = total(&pids)?;
            tokio::time::sleep_until(to).await;
            Ok::<f64, anyhow::Error>(total(&pids)? - before)
        })
    });
    let mut total = Stats::new();
    for task in tasks {
        match task.await {
            Ok(stats) => total.merge(&stats),
            Err(error) => total.error(format!("task failed: {error}")),
        }
    }

    let secs = args.duration as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "agents {}, consumers {}, duration {} s after {} s of warm-up, window {}, target rate {} (sends evenly spread), agents reply to every {} message(s)",
        args.agents,
        args.consumers,
        args.duration,
        args.warmup,
        args.window,
        args.rate.map_or("none (closed loop)".to_owned(), |r| format!("{r} msg/s")),
        args.reply_every
    );
    let _ = writeln!(
        out,
        "consumer messages: sent {}, acked (stored) {} = {:.0}/s",
        total.consumer_sent,
        total.consumer_acked,
        total.consumer_acked as f64 / secs
    );
    let _ = writeln!(
        out,
        "agent replies:     sent {}, acked (stored) {} = {:.0}/s",
        total.agent_sent,
        total.agent_acked,
        total.agent_acked as f64 / secs
    );
    let stored = total.consumer_acked + total.agent_acked;
    let _ = writeln!(out, "all messages stored: {} = {:.0}/s", stored, stored as f64 / secs);
    let delivered = total.to_agent + total.to_consumer;
    let _ = writeln!(
        out,
        "delivered: consumer->agent {}, agent->consumer {}, total {:.0}/s",
        total.to_agent,
        total.to_consumer,
        delivered as f64 / secs
    );
    let _ = writeln!(out, "latency consumer->agent (send to receive): {}", quantiles(&total.c_to_a));
    let _ = writeln!(out, "latency agent->consumer (send to receive): {}", quantiles(&total.a_to_c));
    let _ = writeln!(out, "ack latency consumer send->ack: {}", quantiles(&total.consumer_ack));
    let _ = writeln!(out, "ack latency agent send->ack:    {}", quantiles(&total.agent_ack));
    let cpu_secs = match server_cpu {
        Some(task) => Some(task.await.context("server CPU sampler")??),
        None => None,
    };
    if let Some(cpu) = cpu_secs {
        let _ = writeln!(
            out,
            "server CPU: {cpu:.2} s in {secs} s = {:.2} cores; {:.1} µs per stored message",
            cpu / secs,
            cpu * 1e6 / stored.max(1) as f64
        );
    }
    let _ = writeln!(
        out,
        "conversations assigned to load agents: {} (queued events seen by consumers: {}); resyncs {}, undecodable frames {}",
        total.assigned, total.queued, total.resyncs, total.undecodable
    );
    if total.errors.is_empty() {
        let _ = writeln!(out, "errors: none");
    } else {
        let _ = writeln!(out, "errors:");
        for (what, n) in &total.errors {
            let _ = writeln!(out, "  {what}: {n}");
        }
    }
    let latency = |h: &Histogram<u64>| {
        let ms = |v: u64| v as f64 / 1000.0;
        serde_json::json!({"p50": ms(h.value_at_quantile(0.5)), "p90": ms(h.value_at_quantile(0.9)),
            "p99": ms(h.value_at_quantile(0.99)), "max": ms(h.max()), "n": h.len()})
    };
    let figures = serde_json::json!({
        "agents": args.agents, "consumers": args.consumers, "duration_secs": args.duration,
        "warmup_secs": args.warmup, "window": args.window, "target_rate": args.rate,
        "paced_sends": args.rate.map(|_| "evenly spread"), "reply_every": args.reply_every,
        "stored_per_sec": (stored as f64 / secs).round(), "delivered_per_sec": (delivered as f64 / secs).round(),
        "consumer_to_agent_ms": latency(&total.c_to_a), "agent_to_consumer_ms": latency(&total.a_to_c),
        "resyncs": total.resyncs, "errors": total.errors.values().sum::<u64>(),
        "server_cpu_cores": cpu_secs.map(|cpu| cpu / secs),
        "server_cpu_us_per_message": cpu_secs.map(|cpu| cpu * 1e6 / stored.max(1) as f64),
        "nodes": 1 + args.also_urls.len(),
        "store": args.store,
        "sitting": args.sitting,
    });
    Ok((figures, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--server-pid`: user + system time are read past a command name holding spaces and a
    /// parenthesis; a line cut short is an error naming the field.
    #[test]
    fn server_cpu_is_read_from_proc_stat() {
        let line = "4242 (switch board) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 125 0 0 20 0 9 0 100";
        assert_eq!(cpu_secs_of_stat(line).unwrap(), 3.75);
        let error = cpu_secs_of_stat("4242 (sb) S 1 2 3").unwrap_err();
        assert!(error.to_string().contains("field 14"), "{error}");
        assert!(process_cpu_secs(std::process::id()).unwrap() >= 0.0);
    }

    /// Issue 13: paced sends are spread over the whole interval, evenly, for any number of
    /// consumers: the gaps between consecutive first sends are all equal and the last one is
    /// less than one interval in.
    #[test]
    fn paced_consumers_send_evenly_across_the_interval() {
        let interval = Duration::from_millis(100);
        for n_consumers in [1_u32, 7, 200, 1_000, 5_000] {
            let offsets: Vec<Duration> =
                (0..n_consumers).map(|i| first_send_offset(i, n_consumers, interval)).collect();
            assert_eq!(offsets[0], Duration::ZERO);
            assert!(*offsets.last().unwrap() < interval);
            let step = interval.as_secs_f64() / f64::from(n_consumers);
            for pair in offsets.windows(2) {
                let gap = (pair[1] - pair[0]).as_secs_f64();
                assert!((gap - step).abs() < 1e-6, "{n_consumers} consumers: gap {gap} s, expected {step} s");
            }
            // Half the consumers have sent by half the interval (not all in its first 5 %).
            let by_half = offsets.iter().filter(|offset| **offset < interval / 2).count();
            assert!(by_half.abs_diff(n_consumers as usize / 2) <= 1, "{n_consumers}: {by_half} by half");
        }
    }
}
