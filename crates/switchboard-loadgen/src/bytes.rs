//! `bytes`: raw TCP bytes of one scripted 12-message conversation at the consumer's socket.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use switchboard_protocol::{
    AgentState, ClientFrame, ConversationEventKind, ConversationId, ReceiptKind, ServerFrame, Side,
};

use crate::conn::{self, ByteCounts, Credentials, Incoming, Rest, Server, Ws};

/// Arguments of `bytes`.
#[derive(Debug, clap::Args)]
pub struct BytesArgs {
    /// Server base URL (http:// or https://).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A certificate authority to trust for https besides the public ones (PEM file).
    #[arg(long)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// The server's demo-credentials.json (to create the agent).
    #[arg(long)]
    pub credentials: PathBuf,
    /// Consumer JWT (e.g. from `switchboard dev-token`); anonymous when absent.
    #[arg(long)]
    pub token: Option<String>,
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

const WAIT: Duration = Duration::from_secs(5);
const MESSAGES_EACH: usize = 6;

/// One side of the conversation: socket, byte counts and frame tallies.
struct Peer {
    name: &'static str,
    ws: Ws,
    counts: Arc<ByteCounts>,
    up: BTreeMap<String, u64>,
    down: BTreeMap<String, u64>,
}

fn tag<T: serde::Serialize>(frame: &T) -> String {
    serde_json::to_value(frame)
        .ok()
        .and_then(|v| v.get("t").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

impl Peer {
    async fn send(&mut self, frame: ClientFrame) -> Result<()> {
        *self.up.entry(tag(&frame)).or_default() += 1;
        conn::send(&mut self.ws, &frame).await
    }

    /// Reads frames until `want` accepts one (returns its value); every frame is tallied.
    async fn wait_for<T>(&mut self, what: &str, mut want: impl FnMut(&ServerFrame) -> Option<T>) -> Result<T> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match conn::recv(&mut self.ws, left).await {
                Some(Incoming::Frame(frame)) => {
                    *self.down.entry(tag(&frame)).or_default() += 1;
                    if let ServerFrame::Err { code, msg, .. } = &frame {
                        bail!("{}: server error {} ({msg}) while waiting for {what}", self.name, code.as_str());
                    }
                    if let Some(value) = want(&frame) {
                        return Ok(value);
                    }
                }
                Some(Incoming::Unknown) => *self.down.entry("undecodable".into()).or_default() += 1,
                Some(Incoming::Closed) => {
                    bail!("{}: socket closed while waiting for {what}", self.name)
                }
                None => bail!("{}: no {what} within {WAIT:?}", self.name),
            }
        }
    }

    /// Reads (and tallies) whatever arrives within `time`.
    async fn drain(&mut self, time: Duration) {
        let deadline = tokio::time::Instant::now() + time;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match conn::recv(&mut self.ws, left).await {
                Some(Incoming::Frame(frame)) => *self.down.entry(tag(&frame)).or_default() += 1,
                Some(Incoming::Unknown) => *self.down.entry("undecodable".into()).or_default() += 1,
                Some(Incoming::Closed) | None => return,
            }
        }
    }
}

fn tally(map: &BTreeMap<String, u64>) -> String {
    let total: u64 = map.values().sum();
    let parts: Vec<String> = map.iter().map(|(t, n)| format!("{t} {n}")).collect();
    format!("{total} ({})", parts.join(", "))
}

/// Closes any open conversation of this consumer first (uncounted), so the measured
/// conversation is new and routed to our agent.
async fn close_leftovers(server: &Server, brand: &str, app: &str, token: &str) -> Result<()> {
    let (mut ws, welcome) =
        conn::connect_consumer(server, brand, app, Some(token), Arc::new(ByteCounts::default())).await?;
    if let ServerFrame::Welcome { convs, .. } = welcome {
        for (n, conv) in convs.iter().enumerate() {
            let id = n as u64 + 1;
            conn::send(&mut ws, &ClientFrame::Close { id: Some(id), c: conv.c }).await?;
            let _ = conn::recv(&mut ws, WAIT).await;
        }
    }
    conn::close(&mut ws).await;
    Ok(())
}

pub async fn run(args: BytesArgs) -> Result<()> {
    let server = Server::parse(&args.url, args.ca_cert.as_deref())?;
    let credentials = Credentials::read(&args.credentials)?;
    let rest = Rest::new(&server)?;
    let admin_login = credentials.admin()?;
    let admin = rest.login(&admin_login.email, &admin_login.password).await?;
    let skills = rest.skill_ids(&admin).await?;
    let run_id = conn::run_id();

    // The agent: new, online, the only one this run adds.
    const PASSWORD: &str = "loadgen-password-123";
    let email = format!("lg-bytes-{run_id}@load.test");
    rest.create_agent(&admin, &email, PASSWORD, &skills).await?;
    let session = rest.login(&email, PASSWORD).await?;
    let agent_counts = Arc::new(ByteCounts::default());
    let (ws, _) = conn::connect_agent(&server, &session, agent_counts.clone()).await?;
    let mut agent = Peer { name: "agent", ws, counts: agent_counts, up: BTreeMap::new(), down: BTreeMap::new() };
    *agent.up.entry("hello".into()).or_default() += 1;
    *agent.down.entry("welcome".into()).or_default() += 1;
    agent.send(ClientFrame::State { id: Some(1), state: AgentState::Online }).await?;
    agent.wait_for("ok to state online", |f| matches!(f, ServerFrame::Ok { id: 1 }).then_some(())).await?;

    if let Some(token) = &args.token {
        close_leftovers(&server, &credentials.brand, &credentials.app, token).await?;
    }

    // The measured consumer socket.
    let consumer_counts = Arc::new(ByteCounts::default());
    let (ws, _) = conn::connect_consumer(
        &server,
        &credentials.brand,
        &credentials.app,
        args.token.as_deref(),
        consumer_counts.clone(),
    )
    .await?;
    let mut consumer =
        Peer { name: "consumer", ws, counts: consumer_counts, up: BTreeMap::new(), down: BTreeMap::new() };
    *consumer.up.entry("hello".into()).or_default() += 1;
    *consumer.down.entry("welcome".into()).or_default() += 1;

    let mut conversation: Option<ConversationId> = None;
    for i in 0..MESSAGES_EACH {
        // Consumer: typing on/off (once the conversation exists), then the message.
        if let Some(c) = conversation {
            consumer.send(ClientFrame::Typing { c, on: true }).await?;
            consumer.send(ClientFrame::Typing { c, on: false }).await?;
        }
        let id = i as u64 + 1;
        consumer
            .send(ClientFrame::Send {
                id: Some(id),
                cid: format!("b{run_id}-{id}"),
                text: format!("Hi, this is question number {} about my order.", i + 1),
                c: None,
                consumer: None,
            })
            .await?;
        let (c, seq) = consumer
            .wait_for("ack", |f| match f {
                ServerFrame::Ack { id: Some(got), c, seq, .. } if *got == id => Some((*c, *seq)),
                _ => None,
            })
            .await?;
        conversation = Some(c);

        // Agent: sees the message (the first one arrives with the assignment).
        agent
            .wait_for("the consumer's message", |f| match f {
                ServerFrame::Msg(m) if m.c == c && m.from == Side::Consumer && m.seq >= seq => Some(()),
                ServerFrame::Conv { c: got, ev: ConversationEventKind::Assigned, conv: Some(conv), .. }
                    if *got == c && conv.last_seq >= seq =>
                {
                    Some(())
                }
                _ => None,
            })
            .await
            .map_err(|e| {
                e.context("the conversation was not routed to the load agent (another agent online? skills?)")
            })?;
        agent.send(ClientFrame::Rcpt { id: None, c, seq, k: ReceiptKind::Read }).await?;
        agent.send(ClientFrame::Typing { c, on: true }).await?;
        let reply_id = 100 + i as u64;
        agent
            .send(ClientFrame::Send {
                id: Some(reply_id),
                cid: format!("r{run_id}-{i}"),
                text: format!("Thanks! Here is answer number {} for you.", i + 1),
                c: Some(c),
                consumer: None,
            })
            .await?;
        let agent_seq = agent
            .wait_for("ack of the reply", |f| match f {
                ServerFrame::Ack { id: Some(got), seq, .. } if *got == reply_id => Some(*seq),
                _ => None,
            })
            .await?;

        // Consumer: receives the reply, sends a read receipt.
        consumer
            .wait_for("the agent's reply", |f| match f {
                ServerFrame::Msg(m) if m.c == c && m.from == Side::Agent && m.seq == agent_seq => Some(()),
                _ => None,
            })
            .await?;
        consumer.send(ClientFrame::Rcpt { id: None, c, seq: agent_seq, k: ReceiptKind::Read }).await?;
        agent
            .wait_for("the consumer's read receipt", |f| match f {
                ServerFrame::Rcpt { c: got, by: Side::Consumer, seq: s, .. } if *got == c && *s >= agent_seq => {
                    Some(())
                }
                _ => None,
            })
            .await?;
    }
    consumer.drain(Duration::from_millis(300)).await;
    agent.drain(Duration::from_millis(50)).await;
    conn::close(&mut consumer.ws).await;
    *consumer.up.entry("close".into()).or_default() += 1;
    agent.send(ClientFrame::State { id: None, state: AgentState::Offline }).await?;
    conn::close(&mut agent.ws).await;

    let (up, down) = (consumer.counts.up(), consumer.counts.down());
    let mut out = String::new();
    let auth = if args.token.is_some() { "JWT (switchboard dev-token)" } else { "anonymous (anon: \"\")" };
    let _ = writeln!(
        out,
        "one conversation of {} messages ({MESSAGES_EACH} consumer, {MESSAGES_EACH} agent), consumer auth: {auth}",
        2 * MESSAGES_EACH
    );
    let _ = writeln!(
        out,
        "script: consumer typing on/off before its messages 2..6, read receipts both ways, agent typing before each reply"
    );
    let _ = writeln!(
        out,
        "consumer socket: up {up} B (target <= 2048: {}), down {down} B (target <= 4096: {})",
        if up <= 2048 { "met" } else { "NOT met" },
        if down <= 4096 { "met" } else { "NOT met" }
    );
    let _ = writeln!(out, "  (raw TCP payload: HTTP upgrade, WebSocket framing with client masking, close handshake)");
    let _ = writeln!(out, "  frames up:   {}", tally(&consumer.up));
    let _ = writeln!(out, "  frames down: {}", tally(&consumer.down));
    let _ = writeln!(out, "agent socket (information): up {} B, down {} B", agent.counts.up(), agent.counts.down());
    let _ = writeln!(out, "  frames up:   {}", tally(&agent.up));
    let _ = writeln!(out, "  frames down: {}", tally(&agent.down));
    println!("{out}");
    if args.record {
        let auth = if args.token.is_some() { "jwt" } else { "anonymous" };
        let figures = serde_json::json!({"consumer_up_bytes": up, "consumer_down_bytes": down, "auth": auth});
        crate::record::write(&args.results, "bytes", &args.server_note, figures, &out)?;
    }
    Ok(())
}
