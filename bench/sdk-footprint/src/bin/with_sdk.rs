//! The baseline plus the SDK: build a `Client`, `connect`, `send_text`, read `events()`,
//! `shutdown`, so the SDK's code paths are linked and not optimized away.

use std::time::Duration;

use futures_util::StreamExt;
use switchboard_sdk::{Auth, Client};

#[tokio::main]
async fn main() {
    let addr = sdk_footprint::server_addr();
    println!("{}", sdk_footprint::baseline_work(&addr).await);
    let data_dir = std::env::temp_dir().join(format!("sdk-footprint-{}", std::process::id()));
    let client = match Client::builder(format!("http://{addr}"), "demo", "demo-app")
        .auth(Auth::Anonymous)
        .data_dir(&data_dir)
        .encryption_key([7u8; 32])
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            eprintln!("build failed: {error}");
            return;
        }
    };
    let mut events = client.events();
    client.connect();
    match client.send_text("Hello from the footprint binary") {
        Ok(message) => println!("queued: {message:?}"),
        Err(error) => eprintln!("send_text failed: {error}"),
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while let Ok(Some(event)) = tokio::time::timeout_at(deadline, events.next()).await {
        println!("event: {event:?}");
    }
    println!("history: {:?}", client.pending_messages());
    client.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
}
