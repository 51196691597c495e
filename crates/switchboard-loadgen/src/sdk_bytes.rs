//! `sdk-bytes`: the same 12-message conversation as `bytes`, but the consumer is the real
//! SDK (`switchboard-sdk`), connected through a byte-counting TCP proxy: what an app using the
//! SDK puts on the wire, handshake, heartbeats, automatic receipts and close included.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use switchboard_protocol::{AgentState, ClientFrame, ReceiptKind, ServerFrame, Side};
use switchboard_sdk::{Auth, Client, ConnectionState, Event, EventStream, MessageState, TokenProvider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::conn::{self, ByteCounts, Credentials, Incoming, Rest, Server};

/// Arguments of `sdk-bytes`.
#[derive(Debug, clap::Args)]
pub struct SdkBytesArgs {
    /// Server base URL (http:// or https://).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A certificate authority to trust for https besides the public ones (PEM file).
    #[arg(long)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// The server's demo-credentials.json (to create the agent).
    #[arg(long)]
    pub credentials: PathBuf,
    /// Consumer JWT (from `switchboard dev-token`), handed to the SDK's token provider.
    #[arg(long)]
    pub token: String,
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

struct FixedToken(String);

impl TokenProvider for FixedToken {
    fn fetch_token(&self) -> Result<String, String> {
        Ok(self.0.clone())
    }
}

/// Forwards every connection accepted on `listener` to `upstream`, counting bytes.
async fn counting_proxy(listener: TcpListener, upstream: String, up: Arc<AtomicU64>, down: Arc<AtomicU64>) {
    while let Ok((client, _)) = listener.accept().await {
        let Ok(server) = TcpStream::connect(&upstream).await else { continue };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::spawn(pump(client_read, server_write, Arc::clone(&up)));
        tokio::spawn(pump(server_read, client_write, Arc::clone(&down)));
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                count.fetch_add(n as u64, Ordering::Relaxed);
                if to.write_all(&buffer[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown().await;
}

async fn next_event(events: &mut EventStream, what: &str, mut want: impl FnMut(&Event) -> bool) -> Result<Event> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(event)) if want(&event) => return Ok(event),
            Ok(Some(_)) => continue,
            Ok(None) => bail!("the SDK's event stream ended while waiting for {what}"),
            Err(_) => bail!("no {what} from the SDK within {WAIT:?}"),
        }
    }
}

async fn agent_wait<T>(ws: &mut conn::Ws, what: &str, mut want: impl FnMut(&ServerFrame) -> Option<T>) -> Result<T> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match conn::recv(ws, left).await {
            Some(Incoming::Frame(frame)) => {
                if let Some(value) = want(&frame) {
                    return Ok(value);
                }
            }
            Some(Incoming::Unknown) => {}
            Some(Incoming::Closed) => bail!("agent: socket closed while waiting for {what}"),
            None => bail!("agent: no {what} within {WAIT:?}"),
        }
    }
}

pub async fn run(args: SdkBytesArgs) -> Result<()> {
    let server = Server::parse(&args.url, args.ca_cert.as_deref())?;
    if server.tls.is_some() {
        // The counting proxy reads the bytes between the SDK and the server; over TLS it
        // would count encrypted records, which the bandwidth target excludes.
        anyhow::bail!("sdk-bytes counts plain WebSocket bytes through a proxy: give an http:// --url");
    }
    let credentials = Credentials::read(&args.credentials)?;
    let rest = Rest::new(&server)?;
    let admin_login = credentials.admin()?;
    let admin = rest.login(&admin_login.email, &admin_login.password).await?;
    let skills = rest.skill_ids(&admin).await?;
    let run_id = conn::run_id();

    const PASSWORD: &str = "loadgen-password-123";
    let email = format!("lg-sdk-bytes-{run_id}@load.test");
    rest.create_agent(&admin, &email, PASSWORD, &skills).await?;
    let session = rest.login(&email, PASSWORD).await?;
    let (mut agent, _) = conn::connect_agent(&server, &session, Arc::new(ByteCounts::default())).await?;
    conn::send(&mut agent, &ClientFrame::State { id: Some(1), state: AgentState::Online }).await?;
    agent_wait(&mut agent, "ok to state online", |f| matches!(f, ServerFrame::Ok { id: 1 }).then_some(())).await?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_addr = listener.local_addr()?;
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let upstream = args.url.trim_start_matches("http://").trim_end_matches('/').to_owned();
    tokio::spawn(counting_proxy(listener, upstream, Arc::clone(&up), Arc::clone(&down)));

    let data_dir = std::env::temp_dir().join(format!("switchboard-sdk-bytes-{run_id}"));
    let client = Client::builder(format!("http://{proxy_addr}"), &credentials.brand, &credentials.app)
        .auth(Auth::Jwt(Arc::new(FixedToken(args.token.clone()))))
        .data_dir(&data_dir)
        .encryption_key([7; 32])
        .build()
        .context("building the SDK client")?;
    let mut events = client.events();
    client.connect();
    next_event(&mut events, "connection", |e| *e == Event::Connection(ConnectionState::Connected)).await?;
    if client.conversations()?.iter().any(|c| c.status == switchboard_sdk::ConversationStatus::Open) {
        client.close_conversation().await?;
    }

    for i in 0..MESSAGES_EACH {
        if i > 0 {
            client.set_typing(true)?;
            client.set_typing(false)?;
        }
        let sent = client.send_text(&format!("Hi, this is question number {} about my order.", i + 1))?;
        let cid = sent.client_id.clone().unwrap_or_default();
        let Event::MessageStateChanged { conversation: Some(c), seq: Some(seq), .. } =
            next_event(&mut events, "ack", |e| {
                matches!(e, Event::MessageStateChanged { client_id, state: MessageState::Sent, .. } if *client_id == cid)
            })
            .await?
        else {
            bail!("ack without conversation")
        };
        agent_wait(&mut agent, "the consumer's message", |f| match f {
            ServerFrame::Msg(m) if m.c == c && m.from == Side::Consumer && m.seq >= seq => Some(()),
            _ => None,
        })
        .await?;
        conn::send(&mut agent, &ClientFrame::Rcpt { id: None, c, seq, k: ReceiptKind::Read }).await?;
        conn::send(&mut agent, &ClientFrame::Typing { c, on: true }).await?;
        let reply_id = 100 + i as u64;
        conn::send(
            &mut agent,
            &ClientFrame::Send {
                id: Some(reply_id),
                cid: format!("r{run_id}-{i}"),
                text: format!("Thanks! Here is answer number {} for you.", i + 1),
                c: Some(c),
                consumer: None,
            },
        )
        .await?;
        let Event::MessageReceived(reply) = next_event(
            &mut events,
            "the agent's reply",
            |e| matches!(e, Event::MessageReceived(m) if m.from == Side::Agent),
        )
        .await?
        else {
            bail!("unexpected event")
        };
        // The app shows it at once: read receipt (which makes the delivery receipt unneeded).
        client.mark_read(c, reply.seq.unwrap_or(0));
        agent_wait(&mut agent, "the consumer's read receipt", |f| match f {
            ServerFrame::Rcpt { c: got, by: Side::Consumer, k: ReceiptKind::Read, .. } if *got == c => Some(()),
            _ => None,
        })
        .await?;
    }
    // Let any delayed delivery receipt go out (the SDK waits 300 ms for a covering read).
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn::send(&mut agent, &ClientFrame::State { id: None, state: AgentState::Offline }).await?;
    conn::close(&mut agent).await;
    let _ = std::fs::remove_dir_all(&data_dir);

    let (up, down) = (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed));
    let total = 2 * MESSAGES_EACH;
    let out = format!(
        "one conversation of {total} messages ({MESSAGES_EACH} consumer, {MESSAGES_EACH} agent) through the SDK (switchboard-sdk), \
         JWT auth\nscript: as `bytes`, the app calls set_typing(true/false) before messages 2..6 and mark_read for each reply\n\
         consumer socket: up {up} B (target <= 2048: {}), down {down} B (target <= 4096: {})\n  (raw TCP through a \
         counting proxy: HTTP upgrade, WebSocket framing with client masking, the SDK's own receipts, close handshake)\n",
        if up <= 2048 { "met" } else { "NOT met" },
        if down <= 4096 { "met" } else { "NOT met" },
    );
    println!("{out}");
    if args.record {
        let figures = serde_json::json!({"consumer_up_bytes": up, "consumer_down_bytes": down, "auth": "jwt"});
        crate::record::write(&args.results, "sdk-bytes", &args.server_note, figures, &out)?;
    }
    Ok(())
}
