//! The `switchboard-chat` binary: parses the options and runs the terminal app.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = switchboard_chat::cli::Args::parse();
    switchboard_chat::run(args).await
}
