//! Connection and handshake code shared by `run`, `bytes` and `idle`: a byte-counting TCP wrapper,
//! WebSocket connect with small buffers, the `hello` handshakes, frame I/O and REST login.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use switchboard_protocol::{ClientFrame, Hello, PROTOCOL_VERSION, ServerFrame};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long to wait for TCP connect + WebSocket upgrade + `welcome`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Raw byte counters of one socket (what crossed the TCP connection, upgrade included).
#[derive(Debug, Default)]
pub struct ByteCounts {
    pub up: AtomicU64,
    pub down: AtomicU64,
}

impl ByteCounts {
    pub fn up(&self) -> u64 {
        self.up.load(Ordering::Relaxed)
    }
    pub fn down(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
}

/// A stream that counts the bytes read from and written to it.
#[derive(Debug)]
pub struct Counting<S> {
    inner: S,
    counts: Arc<ByteCounts>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counting<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let read = (buf.filled().len() - before) as u64;
            self.counts.down.fetch_add(read, Ordering::Relaxed);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counting<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = result {
            self.counts.up.fetch_add(written as u64, Ordering::Relaxed);
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A client WebSocket over a counting stream: TCP, or TLS over TCP. The count is of what the
/// WebSocket reads and writes, TLS records excluded (the bandwidth targets exclude TLS).
pub type Ws = WebSocketStream<Counting<MaybeTlsStream<TcpStream>>>;

/// Small buffers: a load generator opens hundreds of sockets.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(1024 * 1024)
        .max_message_size(Some(1024 * 1024))
}

/// The server's base address (`http://host:port` or `https://host:port`), as given on the
/// command line.
#[derive(Debug, Clone)]
pub struct Server {
    /// `http://host:port` or `https://host:port` without a trailing slash.
    pub http: String,
    /// `host:port`, for the TCP connect.
    pub authority: String,
    /// TLS settings for an https server: webpki roots plus `--ca-cert`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Server {
    /// The server's IPv4 address, which must be on loopback: `command` (named in the refusal)
    /// binds loopback source addresses 127.0.0.N to spread its sockets over them.
    pub async fn loopback_target(&self, command: &str) -> Result<std::net::SocketAddr> {
        let target = tokio::net::lookup_host(&self.authority)
            .await
            .with_context(|| format!("cannot resolve {}", self.authority))?
            .find(std::net::SocketAddr::is_ipv4)
            .ok_or_else(|| anyhow!("{} has no IPv4 address", self.authority))?;
        if !target.ip().is_loopback() {
            bail!("{command} binds loopback source addresses: the server must be on 127.0.0.0/8, not {target}");
        }
        Ok(target)
    }

    /// Parses `--url`; `ca_cert` is a PEM file of a CA to trust (https only).
    pub fn parse(url: &str, ca_cert: Option<&std::path::Path>) -> Result<Server> {
        let trimmed = url.trim_end_matches('/');
        let (tls, authority) =
            if let Some(rest) = trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("wss://")) {
                (true, rest)
            } else if let Some(rest) = trimmed.strip_prefix("http://").or_else(|| trimmed.strip_prefix("ws://")) {
                (false, rest)
            } else {
                bail!("--url must start with http:// or https://: {url}");
            };
        if authority.is_empty() || authority.contains('/') {
            bail!("--url must be http(s)://host:port without a path: {url}");
        }
        let tls = match (tls, ca_cert) {
            (true, ca_cert) => Some(tls_config(ca_cert)?),
            (false, Some(_)) => bail!("--ca-cert is for https:// servers; --url is {url}"),
            (false, None) => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        Ok(Server { http: format!("{scheme}://{authority}"), authority: authority.to_owned(), tls })
    }

    fn ws_url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}{path}", self.authority)
    }

    /// The host name the certificate must name (the authority without its port).
    fn host(&self) -> &str {
        let authority = self.authority.as_str();
        if let Some(rest) = authority.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        authority.rsplit_once(':').map_or(authority, |(host, _)| host)
    }
}

/// rustls with the aws-lc-rs provider, trusting the webpki roots and `ca_cert`.
fn tls_config(ca_cert: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| anyhow!("--ca-cert {} is not PEM: {error}", path.display()))?;
        if certificates.is_empty() {
            bail!("--ca-cert {} holds no certificate", path.display());
        }
        for certificate in certificates {
            roots.add(certificate).with_context(|| format!("--ca-cert {}", path.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Opens a WebSocket to `path` (`/v1/consumer` or `/v1/agent`) counting bytes into `counts`.
pub async fn connect(server: &Server, path: &str, counts: Arc<ByteCounts>) -> Result<Ws> {
    connect_from(server, path, None, counts).await
}

/// Like [`connect`], from a given local socket: `Some((source_ip, server_addr))` binds the
/// client socket to `source_ip` (port chosen by the OS) before connecting to `server_addr`,
/// so many sockets can use several loopback addresses' ephemeral port ranges.
pub async fn connect_from(
    server: &Server,
    path: &str,
    bind: Option<(std::net::IpAddr, std::net::SocketAddr)>,
    counts: Arc<ByteCounts>,
) -> Result<Ws> {
    let attempt = async {
        let tcp = match bind {
            None => TcpStream::connect(&server.authority).await,
            Some((source, target)) => {
                let socket =
                    if target.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
                socket.bind(std::net::SocketAddr::new(source, 0))?;
                socket.connect(target).await
            }
        }
        .with_context(|| format!("cannot connect to {} (is the server running?)", server.authority))?;
        tcp.set_nodelay(true)?;
        let stream = match &server.tls {
            None => MaybeTlsStream::Plain(tcp),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from(server.host().to_owned())
                    .with_context(|| format!("{} is not a host name for TLS", server.host()))?;
                let tls = tokio_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .with_context(|| format!("TLS handshake with {} failed", server.authority))?;
                MaybeTlsStream::Rustls(tls)
            }
        };
        let request = server.ws_url(path).into_client_request()?;
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(request, Counting { inner: stream, counts }, Some(ws_config()))
                .await
                .with_context(|| format!("WebSocket upgrade of {path} failed"))?;
        Ok::<_, anyhow::Error>(ws)
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt).await.map_err(|_| anyhow!("connecting to {path} timed out"))?
}

/// Sends one client frame.
pub async fn send(ws: &mut Ws, frame: &ClientFrame) -> Result<()> {
    let text = serde_json::to_string(frame)?;
    ws.send(Message::text(text)).await.context("socket write failed")?;
    Ok(())
}

/// What `recv` got.
#[derive(Debug)]
pub enum Incoming {
    Frame(ServerFrame),
    /// A text frame this build cannot decode (counted, otherwise ignored).
    Unknown,
    /// The server closed the socket (or it broke).
    Closed,
}

/// Reads the next text frame (pings and pongs are handled by tungstenite). `None` on timeout.
pub async fn recv(ws: &mut Ws, timeout: Duration) -> Option<Incoming> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await.ok()?;
        match next {
            Some(Ok(Message::Text(text))) => {
                return Some(match serde_json::from_str::<ServerFrame>(&text) {
                    Ok(frame) => Incoming::Frame(frame),
                    Err(_) => Incoming::Unknown,
                });
            }
            Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Some(Incoming::Closed),
            Some(Ok(_)) => continue,
        }
    }
}

/// Waits for `welcome` after a hello; fails with the server's error otherwise.
async fn expect_welcome(ws: &mut Ws) -> Result<ServerFrame> {
    match recv(ws, CONNECT_TIMEOUT).await {
        Some(Incoming::Frame(frame @ ServerFrame::Welcome { .. })) => Ok(frame),
        Some(Incoming::Frame(ServerFrame::Err { code, msg, .. })) => {
            bail!("hello refused: {} ({msg})", code.as_str())
        }
        Some(other) => bail!("unexpected answer to hello: {other:?}"),
        None => bail!("no welcome within {CONNECT_TIMEOUT:?}"),
    }
}

/// Consumer hello: a JWT if given, otherwise a new anonymous identity.
pub fn consumer_hello(brand: &str, app: &str, token: Option<&str>) -> ClientFrame {
    ClientFrame::Hello(Hello {
        v: PROTOCOL_VERSION,
        brand: Some(brand.into()),
        app: Some(app.into()),
        token: token.map(str::to_owned),
        anon: if token.is_none() { Some(String::new()) } else { None },
        code: None,
        session: None,
        device: None,
        skill: None,
        lang: None,
    })
}

/// Connects a consumer and completes the handshake.
pub async fn connect_consumer(
    server: &Server,
    brand: &str,
    app: &str,
    token: Option<&str>,
    counts: Arc<ByteCounts>,
) -> Result<(Ws, ServerFrame)> {
    let mut ws = connect(server, "/v1/consumer", counts).await?;
    send(&mut ws, &consumer_hello(brand, app, token)).await?;
    let welcome = expect_welcome(&mut ws).await?;
    Ok((ws, welcome))
}

/// Connects an agent with a session token and completes the handshake.
pub async fn connect_agent(server: &Server, session: &str, counts: Arc<ByteCounts>) -> Result<(Ws, ServerFrame)> {
    let mut ws = connect(server, "/v1/agent", counts).await?;
    let hello = ClientFrame::Hello(Hello {
        v: PROTOCOL_VERSION,
        brand: None,
        app: None,
        token: None,
        anon: None,
        code: None,
        session: Some(session.into()),
        device: None,
        skill: None,
        lang: None,
    });
    send(&mut ws, &hello).await?;
    let welcome = expect_welcome(&mut ws).await?;
    Ok((ws, welcome))
}

/// Sends a close frame and reads until the server's close (bounded).
pub async fn close(ws: &mut Ws) {
    let _ = ws.close(None).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, ws.next()).await {}
}

// ----- REST ------------------------------------------------------------------------------

/// `demo-credentials.json` as written by `switchboard serve`.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    pub brand: String,
    pub app: String,
    pub logins: Vec<Login>,
}

#[derive(Debug, Deserialize)]
pub struct Login {
    pub email: String,
    pub password: String,
    pub role: String,
}

impl Credentials {
    pub fn read(path: &std::path::Path) -> Result<Credentials> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read credentials file {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not a demo-credentials.json", path.display()))
    }

    pub fn admin(&self) -> Result<&Login> {
        self.logins.iter().find(|l| l.role == "admin").ok_or_else(|| anyhow!("no admin login in the credentials file"))
    }
}

/// A REST client bound to one server.
#[derive(Debug, Clone)]
pub struct Rest {
    client: reqwest::Client,
    base: String,
}

#[derive(Debug, Deserialize)]
struct LoginResponse {
    token: String,
}

#[derive(Debug, Deserialize)]
struct Skill {
    id: i64,
}

impl Rest {
    pub fn new(server: &Server) -> Result<Rest> {
        let mut client = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(config) = &server.tls {
            client = client.tls_backend_preconfigured(rustls::ClientConfig::clone(config));
        }
        let client = client.build()?;
        Ok(Rest { client, base: server.http.clone() })
    }

    async fn check(response: reqwest::Response, what: &str) -> Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        bail!("{what}: HTTP {status}: {body}")
    }

    /// `POST /api/v1/auth/login` → session token.
    pub async fn login(&self, email: &str, password: &str) -> Result<String> {
        let response = self
            .client
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&serde_json::json!({"email": email, "password": password}))
            .send()
            .await
            .with_context(|| format!("cannot reach {} (is the server running?)", self.base))?;
        let response = Self::check(response, &format!("login as {email}")).await?;
        Ok(response.json::<LoginResponse>().await?.token)
    }

    /// `GET /api/v1/skills` → all skill ids.
    pub async fn skill_ids(&self, session: &str) -> Result<Vec<i64>> {
        let response = self.client.get(format!("{}/api/v1/skills", self.base)).bearer_auth(session).send().await?;
        let response = Self::check(response, "list skills").await?;
        Ok(response.json::<Vec<Skill>>().await?.into_iter().map(|s| s.id).collect())
    }

    /// `PUT path` with a JSON body, as `session`.
    pub async fn put_json(&self, session: &str, path: &str, body: &serde_json::Value) -> Result<()> {
        let response = self.client.put(format!("{}{path}", self.base)).bearer_auth(session).json(body).send().await?;
        Self::check(response, &format!("PUT {path}")).await?;
        Ok(())
    }

    /// `POST /api/v1/users`: an agent with the given skills and a large capacity.
    pub async fn create_agent(&self, admin: &str, email: &str, password: &str, skills: &[i64]) -> Result<()> {
        let body = serde_json::json!({
            "email": email, "name": format!("Load {email}"), "role": "agent", "password": password,
            "max_concurrent": 10_000, "skills": skills,
        });
        let response =
            self.client.post(format!("{}/api/v1/users", self.base)).bearer_auth(admin).json(&body).send().await?;
        Self::check(response, &format!("create agent {email}")).await?;
        Ok(())
    }
}

/// A run id unique enough for emails and cids: seconds and sub-second nanos in base 36.
pub fn run_id() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut n = now.as_secs() as u128 * 1_000_000_000 + u128::from(now.subsec_nanos()) + u128::from(std::process::id());
    let mut out = Vec::new();
    while n > 0 {
        out.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}
