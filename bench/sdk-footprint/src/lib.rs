//! The work every variant does, so the runtime and serde_json are linked the same way in
//! each: open a TCP connection to the server (or fail to), write a JSON `hello`, parse
//! whatever comes back as JSON. The baseline is just this; the other binaries add the code
//! under measurement.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Connects to `addr` (`host:port`), sends a JSON line and parses the reply as JSON.
/// Returns a one-line description; never fails (the binaries are measured, not used).
pub async fn baseline_work(addr: &str) -> String {
    let hello = serde_json::json!({"t": "hello", "v": 1, "brand": "demo", "app": "demo-app", "anon": ""});
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream.write_all(serde_json::to_string(&hello)?.as_bytes()).await?;
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await?;
        let parsed: serde_json::Value = serde_json::from_slice(&buf[..n]).unwrap_or(serde_json::Value::Null);
        Ok::<_, std::io::Error>(parsed.to_string())
    };
    match tokio::time::timeout(Duration::from_secs(5), attempt).await {
        Ok(Ok(reply)) => format!("reply: {reply}"),
        Ok(Err(error)) => format!("error: {error}"),
        Err(_) => "timed out".to_owned(),
    }
}

/// The server address from the first argument, `127.0.0.1:8080` by default.
pub fn server_addr() -> String {
    std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".to_owned())
}
