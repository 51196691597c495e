//! Baseline: a minimal tokio + serde_json app (what an app embedding the SDK has anyway).

#[tokio::main]
async fn main() {
    let addr = sdk_footprint::server_addr();
    println!("{}", sdk_footprint::baseline_work(&addr).await);
}
