//! The accept loop: TCP connections in, HTTP/1.1 (and WebSocket upgrades) out, over TLS when
//! the server has a certificate. It replaces `axum::serve` because the edge needs what that
//! one does not offer: TLS with a certificate that reloads, plain HTTP on a TLS port answered
//! by policy (redirected or refused), a deadline for the TLS handshake and for request
//! headers, the client's address on every request (`ConnectInfo`), and a cap of open
//! connections per client address (`abuse::ConnectionCounts`).
//!
//! Each accepted connection gets its own task; a slow or silent client never holds up the
//! accept loop. On shutdown the loop stops accepting, idle keep-alive connections close, and
//! requests in flight finish (hyper's graceful shutdown). Upgraded WebSockets are no longer
//! HTTP connections: they close themselves when `Shared::shutdown` flips.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower_service::Service;

use crate::tls::Acceptor;

/// What a TLS port does with a client that speaks plain HTTP to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlainHttp {
    /// Answer `400` naming the https address (nothing of the request is used).
    #[default]
    Refuse,
    /// Answer `308 Permanent Redirect` to the same path over https.
    Redirect,
}

/// How long a new connection may take to send its first byte and finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's headers (the whole head, from its first
/// byte; hyper closes the connection after it).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The first byte of a TLS record carrying a handshake (a ClientHello starts with it); an
/// HTTP request starts with a method's letter.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Everything a connection task needs; cloned per connection.
#[derive(Clone)]
pub(crate) struct Edge {
    pub app: Router,
    pub tls: Option<Acceptor>,
    pub plain_http: PlainHttp,
    /// Open connections per client address, and the cap.
    pub connections: Arc<crate::abuse::ConnectionCounts>,
}

/// Serves `listener` until `shutdown` flips to `true`, then shuts down gracefully.
pub(crate) async fn serve(
    listener: TcpListener,
    edge: Edge,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // Every connection task holds a receiver of `connections`; once the loop ends, waiting
    // for `closed()` waits for every HTTP connection to finish (each is told to finish its
    // request in flight and close, by `shutdown`).
    let (connections, _) = watch::channel(());
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors (EMFILE) or a connection reset before accept:
                    // the listener is still good. Back off briefly so an exhausted process
                    // does not spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() } => break,
        };
        // Frames are small and latency matters: no Nagle delay (it held acks back ~40 ms
        // behind the peer's delayed ACK in the load test).
        let _ = tcp.set_nodelay(true);
        let edge = edge.clone();
        let Some(slot) = edge.connections.open(peer.ip()) else {
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "connections_per_address").increment(1);
            metrics::counter!(crate::metrics::ABUSE_REFUSED, "limit" => "connections_per_address").increment(1);
            tracing::debug!(%peer, "connection refused: the address has max_connections_per_address open");
            if let Some(permit) = edge.connections.refusal_permit() {
                tokio::spawn(async move {
                    refuse_connection(tcp, peer, &edge).await;
                    drop(permit);
                });
            }
            // Else dropped: closed at once.
            continue;
        };
        let open = connections.subscribe();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            if let Some(connection) = accept(tcp, peer, &edge).await {
                match connection {
                    Accepted::Tls(stream) => serve_http(stream, peer, edge.app, true, stop).await,
                    Accepted::Plain(stream) => serve_http(stream, peer, edge.app, false, stop).await,
                    Accepted::PlainOnTlsPort(stream) => serve_plain_http_policy(stream, edge.plain_http).await,
                }
            }
            drop(open);
            drop(slot);
        });
    }
    drop(listener);
    connections.closed().await;
    Ok(())
}

enum Accepted {
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Plain(TcpStream),
    PlainOnTlsPort(TcpStream),
}

/// Answers a connection over the per-address cap: `429 too_many_requests` naming the cap,
/// then closes (after the TLS handshake when serving TLS, so the client can read it). Bounded
/// in time like any handshake; nothing of the request is parsed.
async fn refuse_connection(tcp: TcpStream, peer: SocketAddr, edge: &Edge) {
    let body = format!(
        "{{\"code\":\"too_many_requests\",\"message\":\"too many open connections from this address \
         (max_connections_per_address = {}): close some, or try again later\"}}",
        edge.connections.max()
    );
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    match accept(tcp, peer, edge).await {
        Some(Accepted::Tls(stream)) => answer_and_close(*stream, answer.as_bytes()).await,
        Some(Accepted::Plain(stream) | Accepted::PlainOnTlsPort(stream)) => {
            answer_and_close(stream, answer.as_bytes()).await
        }
        None => {}
    }
}

/// Writes `answer`, ends the sending side, and reads (and drops) what the client sends for a
/// moment, so the close does not reset the connection before the client read the answer.
async fn answer_and_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, answer: &[u8]) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        let mut discard = [0u8; 4096];
        let mut read = 0;
        while read < 64 * 1024 {
            match stream.read(&mut discard).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

/// Finishes the TLS handshake (or recognizes plain HTTP on a TLS port), within
/// [`HANDSHAKE_TIMEOUT`]. `None`: the connection is dropped.
async fn accept(tcp: TcpStream, peer: SocketAddr, edge: &Edge) -> Option<Accepted> {
    let Some(tls) = &edge.tls else { return Some(Accepted::Plain(tcp)) };
    let handshake = async {
        let mut first = [0u8; 1];
        match tcp.peek(&mut first).await {
            Ok(1) if first[0] == TLS_HANDSHAKE_RECORD => {}
            Ok(1) => return Ok(Accepted::PlainOnTlsPort(tcp)),
            Ok(_) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
            Err(error) => return Err(error),
        }
        tls.acceptor.accept(tcp).await.map(|stream| Accepted::Tls(Box::new(stream)))
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(accepted)) => Some(accepted),
        Ok(Err(error)) => {
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "tls_handshake").increment(1);
            tracing::debug!(%peer, %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "tls_handshake").increment(1);
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// The HTTP/1.1 builder every connection uses: a deadline for request headers.
fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
    builder
}

/// Whether a request arrived over TLS at this server (a request extension set by `serve`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServedOverTls(pub bool);

async fn serve_http<S>(stream: S, peer: SocketAddr, app: Router, tls: bool, mut shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(ServedOverTls(tls));
        let mut app = app.clone();
        async move { app.call(request).await }
    });
    let connection = http1().serve_connection(TokioIo::new(stream), service).with_upgrades();
    tokio::pin!(connection);
    let mut stopping = false;
    let result = loop {
        tokio::select! {
            result = connection.as_mut() => break result,
            _ = async { shutdown.wait_for(|stop| *stop).await.is_ok() }, if !stopping => {
                // Finish the request in flight, then close (an idle keep-alive closes now).
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "HTTP connection ended with an error");
    }
}

/// Answers plain HTTP on a TLS port: a redirect to https, or a refusal naming it.
async fn serve_plain_http_policy(stream: TcpStream, policy: PlainHttp) {
    metrics::counter!(crate::metrics::CONNECTIONS_REFUSED, "reason" => "plain_http").increment(1);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        std::future::ready(Ok::<_, std::convert::Infallible>(plain_http_answer(&request, policy)))
    });
    // One answer per connection: no keep-alive, so the client moves to https.
    let mut builder = http1();
    builder.keep_alive(false);
    let _ = builder.serve_connection(TokioIo::new(stream), service).await;
}

fn plain_http_answer<B>(request: &Request<B>, policy: PlainHttp) -> Response<String> {
    let host = request.headers().get(header::HOST).and_then(|value| value.to_str().ok()).filter(|host| {
        !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    });
    let path = request.uri().path_and_query().map_or("/", |path| path.as_str());
    let location = host.map(|host| format!("https://{host}{path}"));
    let (status, body) = match (policy, &location) {
        (PlainHttp::Redirect, Some(location)) => {
            (StatusCode::PERMANENT_REDIRECT, format!("{{\"code\":\"tls_required\",\"message\":\"use {location}\"}}"))
        }
        (_, Some(location)) => (
            StatusCode::BAD_REQUEST,
            format!("{{\"code\":\"tls_required\",\"message\":\"this server speaks https only: use {location}\"}}"),
        ),
        (_, None) => (
            StatusCode::BAD_REQUEST,
            "{\"code\":\"tls_required\",\"message\":\"this server speaks https only\"}".to_owned(),
        ),
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::PERMANENT_REDIRECT
        && let Some(value) = location.and_then(|location| HeaderValue::from_str(&location).ok())
    {
        headers.insert(header::LOCATION, value);
    }
    response
}

/// Starts the certificate watcher (when serving TLS) and the accept loop.
pub(crate) fn spawn(
    listener: TcpListener,
    edge: Edge,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    if let Some(tls) = &edge.tls {
        tokio::spawn(Arc::clone(&tls.cert).watch(shutdown.clone()));
    }
    tokio::spawn(serve(listener, edge, shutdown))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(host: Option<&str>, policy: PlainHttp) -> Response<String> {
        let mut request = Request::builder().uri("/api/v1/me?x=1");
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        plain_http_answer(&request.body(()).unwrap(), policy)
    }

    #[test]
    fn plain_http_is_redirected_or_refused_by_policy() {
        let redirect = answer(Some("chat.example.com:8443"), PlainHttp::Redirect);
        assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(redirect.headers()[header::LOCATION], "https://chat.example.com:8443/api/v1/me?x=1");
        let refuse = answer(Some("chat.example.com"), PlainHttp::Refuse);
        assert_eq!(refuse.status(), StatusCode::BAD_REQUEST);
        assert!(refuse.body().contains("https://chat.example.com/api/v1/me?x=1"), "{}", refuse.body());
        // A Host that is not a host name is never echoed into a Location.
        let odd = answer(Some("evil.com/x?"), PlainHttp::Redirect);
        assert_eq!(odd.status(), StatusCode::BAD_REQUEST);
        assert!(odd.headers().get(header::LOCATION).is_none());
        assert_eq!(answer(None, PlainHttp::Redirect).status(), StatusCode::BAD_REQUEST);
    }
}
