//! `switchboard-loadgen`: load and wire-size measurements against a running Switchboard
//! server. `run` measures throughput and latency with many consumers and agents; `bytes`
//! counts the socket bytes of one scripted conversation; `idle` holds many idle consumer
//! connections, reads the server's memory per connection and times a reconnection storm;
//! `desk` measures routing decisions inside one brand's desk, and `eta` the error of the
//! estimated wait against a simulated workload, and `timers` the memory and rebuild time of
//! auto-close timers, all in process; `push` the pushes per second to a fake FCM and the
//! message path's rate with and without push; `seed`, `search`, `export` and `purge` measure the
//! reporting API, transcript exports and the retention purge on bulk data (`governance`);
//! `login-flood` a logged-in agent's latency under a flood of wrong-password logins;
//! `report` regenerates the benchmarks page's table and chart from the raw runs.

mod bytes;
mod conn;
mod desk;
mod eta;
mod governance;
mod idle;
mod login_flood;
mod push;
mod record;
mod report;
mod run;
mod sdk_bytes;
mod timers;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// The process's allocator: the system's, counting the bytes allocated and freed (two
/// atomic additions per call), so `timers` can read the heap a desk holds
/// (`GLOBAL.stats()`). The workspace forbids `unsafe` code, so the wrapper is the
/// `stats_alloc` crate's rather than our own `GlobalAlloc`. Every subcommand pays the
/// counting; it is small beside what they measure.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

#[derive(Debug, Parser)]
#[command(name = "switchboard-loadgen", about = "Load generator and wire-size meter for Switchboard")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Throughput and latency: N agents, M consumers, for a bounded time.
    Run(run::RunArgs),
    /// Socket bytes of one 12-message conversation (consumer side).
    Bytes(bytes::BytesArgs),
    /// Many idle consumer connections: server memory per connection, reconnection storm.
    Idle(idle::IdleArgs),
    /// Socket bytes of the same conversation with the real SDK as the consumer.
    SdkBytes(sdk_bytes::SdkBytesArgs),
    /// Routing decisions per second inside one brand's desk (in process).
    Desk(desk::DeskArgs),
    /// Error of the estimated wait against a simulated contact center (in process).
    Eta(eta::EtaArgs),
    /// Memory per auto-close timer, and the time to rebuild and fire them (in process).
    Timers(timers::TimersArgs),
    /// Pushes per second to a fake FCM, and the message path with and without push.
    Push(push::PushArgs),
    /// Regenerates the table and chart of docs/benchmarks.md from bench/results/*.json.
    Report(report::ReportArgs),
    /// Records a run measured by a script (workspace, SDK footprint) as a results file.
    Record(record::RecordArgs),
    /// Writes bulk closed conversations straight into a server's database (for the next three).
    Seed(governance::SeedArgs),
    /// The reporting API's first page for a set of filters: latency percentiles.
    Search(governance::SearchArgs),
    /// One transcript export of every conversation, streamed, with the server's peak memory.
    Export(governance::ExportArgs),
    /// The message path's latency with and without a retention purge underneath.
    Purge(governance::PurgeArgs),
    /// A logged-in agent's REST and WebSocket latency under a flood of wrong-password logins.
    LoginFlood(login_flood::LoginFloodArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => {
                // Setup, the measurement and the shutdown, bounded together.
                let limit = Duration::from_secs(args.duration + 300);
                match tokio::time::timeout(limit, run::run(args)).await {
                    Ok(result) => result,
                    Err(_) => Err(anyhow::anyhow!("run did not finish within {limit:?}")),
                }
            }
            Command::Idle(args) => {
                let limit =
                    Duration::from_secs(600 + args.hold_secs + if args.storm { args.storm_timeout } else { 0 } + 60);
                match tokio::time::timeout(limit, idle::run(args)).await {
                    Ok(result) => result,
                    Err(_) => Err(anyhow::anyhow!("idle did not finish within {limit:?}")),
                }
            }
            Command::Bytes(args) => match tokio::time::timeout(Duration::from_secs(120), bytes::run(args)).await {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!("bytes did not finish within 120 s")),
            },
            Command::Push(args) => match tokio::time::timeout(Duration::from_secs(3600), push::run(args)).await {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!("push did not finish within an hour")),
            },
            Command::Desk(args) => desk::run(args),
            Command::Eta(args) => eta::run(args),
            Command::Timers(args) => timers::run(args),
            Command::Report(args) => report::run(args),
            Command::Record(args) => record::run_record(args),
            Command::LoginFlood(args) => {
                let limit = Duration::from_secs(args.baseline + args.duration + 300);
                match tokio::time::timeout(limit, login_flood::run(args)).await {
                    Ok(result) => result,
                    Err(_) => Err(anyhow::anyhow!("login-flood did not finish within {limit:?}")),
                }
            }
            Command::Seed(args) => governance::seed(args).await,
            Command::Search(args) => governance::search(args).await,
            Command::Export(args) => governance::export(args).await,
            Command::Purge(args) => {
                let limit = Duration::from_secs(2 * (args.run.duration + args.run.warmup) + 900);
                match tokio::time::timeout(limit, governance::purge(args)).await {
                    Ok(result) => result,
                    Err(_) => Err(anyhow::anyhow!("purge did not finish within {limit:?}")),
                }
            }
            Command::SdkBytes(args) => {
                match tokio::time::timeout(Duration::from_secs(120), sdk_bytes::run(args)).await {
                    Ok(result) => result,
                    Err(_) => Err(anyhow::anyhow!("sdk-bytes did not finish within 120 s")),
                }
            }
        }
    });
    // Do not wait for stragglers (sockets of failed tasks) on the way out.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
