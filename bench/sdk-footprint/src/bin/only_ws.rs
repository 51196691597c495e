//! Attribution variant: the baseline plus a tokio-tungstenite WebSocket client (no SDK):
//! connect, send the JSON `hello`, read one frame.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let addr = sdk_footprint::server_addr();
    println!("{}", sdk_footprint::baseline_work(&addr).await);
    let hello = serde_json::json!({"t": "hello", "v": 1, "brand": "demo", "app": "demo-app", "anon": ""});
    match tokio_tungstenite::connect_async(format!("ws://{addr}/v1/consumer")).await {
        Ok((mut ws, _)) => {
            let sent = ws.send(Message::text(hello.to_string())).await;
            let reply = ws.next().await;
            println!("sent: {sent:?}, reply: {reply:?}");
        }
        Err(error) => eprintln!("connect failed: {error}"),
    }
}
