//! Recording results: one JSON file per run under `bench/results/` with the date, machine,
//! commit, exact command, server note, the figures the report reads, and the printed output.
//! `report` (in `report.rs`) turns the files into the table and chart of
//! `docs/benchmarks.md`.

use std::path::Path;

use anyhow::{Context, Result};

/// Date and time (UTC), from `date -u`, or seconds since the epoch if that fails.
pub fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M:%S UTC"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| {
            let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
            format!("unix {secs}")
        })
}

/// `nproc`, CPU model and memory, from the OS.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    format!("{cpus} CPUs available (nproc), {model}, {memory} RAM")
}

/// The command line as run, shell-quoted where needed; the value of `--token` (a JWT) is
/// replaced by `<jwt>`.
pub fn command_line() -> String {
    let mut after_token = false;
    std::env::args()
        .map(|arg| {
            let redact = std::mem::replace(&mut after_token, arg == "--token");
            if redact {
                return "<jwt>".to_owned();
            }
            if let Some(("--token", _)) = arg.split_once('=') {
                return "--token=<jwt>".to_owned();
            }
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || "\"'$`\\;&|<>()*?".contains(c)) {
                format!("'{}'", arg.replace('\'', "'\\''"))
            } else {
                arg
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The commit of the working tree the command runs in (`+dirty` with uncommitted changes),
/// or `unknown` outside a git checkout.
pub fn commit() -> String {
    let git = |args: &[&str]| std::process::Command::new("git").args(args).output().ok();
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]).filter(|o| o.status.success()) else {
        return "unknown".into();
    };
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let clean = git(&[
        "diff",
        "--quiet",
        "HEAD",
        "--",
        ".",
        ":!bench/results",
        ":!docs/benchmarks.md",
        ":!docs/benchmarks-latency.svg",
    ])
    .is_some_and(|o| o.status.success());
    if clean { head } else { format!("{head}+dirty") }
}

/// Writes one run as `<dir>/<UTC date and time>-<kind>.json`; `figures` are the numbers the
/// report reads, `output` what the command printed.
pub fn write(dir: &Path, kind: &str, server_note: &str, figures: serde_json::Value, output: &str) -> Result<()> {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| now_utc().replace(' ', "T"));
    let record = serde_json::json!({
        "kind": kind,
        "date": date,
        "commit": commit(),
        "machine": machine(),
        "command": command_line(),
        "server": server_note,
        "recorded": true,
        "figures": figures,
        "output": output.trim_end().lines().collect::<Vec<_>>(),
    });
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stamp: String = date.chars().filter(|c| c.is_ascii_alphanumeric()).take(15).collect();
    // Two runs in the same second get distinct files.
    let mut path = dir.join(format!("{stamp}-{kind}.json"));
    let mut n = 2;
    while path.exists() {
        path = dir.join(format!("{stamp}-{kind}-{n}.json"));
        n += 1;
    }
    let mut text = serde_json::to_string_pretty(&record)?;
    text.push('\n');
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("recorded in {}; regenerate the page with `cargo run -p switchboard-loadgen -- report`", path.display());
    Ok(())
}

/// Whether and where a run is recorded (flattened into each command's options).
#[derive(Debug, clap::Args)]
pub struct RecordOpts {
    /// Record the run as a JSON file under --results.
    #[arg(long)]
    pub record: bool,
    /// Where recorded runs go.
    #[arg(long, default_value = "bench/results")]
    pub results: std::path::PathBuf,
}

/// `record`: writes a run measured by a script (the workspace benchmark, the SDK footprint) as
/// a results file, like `--record` does for the load generator's own commands.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// What was measured (`workspace`, `sdk-footprint`, …): the file's `kind`.
    #[arg(long)]
    pub kind: String,
    /// The command that was run (recorded as is).
    #[arg(long)]
    pub command: String,
    /// How the measured thing was built or started.
    #[arg(long, default_value = "not given")]
    pub note: String,
    /// A file holding what the command printed.
    #[arg(long)]
    pub output: std::path::PathBuf,
    /// A figure for the report, `name=number`; a dotted name nests (`reload_ms.median=239`).
    #[arg(long = "figure", value_name = "NAME=NUMBER")]
    pub figures: Vec<String>,
    /// Where to write the file.
    #[arg(long, default_value = "bench/results")]
    pub results: std::path::PathBuf,
}

/// Figures given as `a.b=1.5` on the command line, as nested JSON.
pub fn figures_from(pairs: &[String]) -> Result<serde_json::Value> {
    let mut figures = serde_json::json!({});
    for pair in pairs {
        let (name, value) = pair.split_once('=').with_context(|| format!("--figure {pair:?} is not NAME=NUMBER"))?;
        let number: f64 = value.trim().parse().with_context(|| format!("--figure {pair:?}: not a number"))?;
        let mut slot = &mut figures;
        for key in name.split('.') {
            slot = slot
                .as_object_mut()
                .with_context(|| format!("--figure {pair:?} nests under a number"))?
                .entry(key.to_owned())
                .or_insert_with(|| serde_json::json!({}));
        }
        *slot = serde_json::json!(number);
    }
    Ok(figures)
}

pub fn run_record(args: RecordArgs) -> Result<()> {
    let output = std::fs::read_to_string(&args.output).with_context(|| format!("reading {}", args.output.display()))?;
    let figures = figures_from(&args.figures)?;
    let date = now_utc();
    let mut record = serde_json::json!({
        "kind": args.kind, "commit": commit(), "machine": machine(), "command": args.command,
        "server": args.note, "recorded": true, "figures": figures,
        "output": output.trim_end().lines().collect::<Vec<_>>(),
    });
    let iso = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or(date);
    record["date"] = serde_json::json!(iso);
    std::fs::create_dir_all(&args.results)?;
    let stamp: String = iso.chars().filter(|c| c.is_ascii_alphanumeric()).take(15).collect();
    let mut path = args.results.join(format!("{stamp}-{}.json", args.kind));
    let mut n = 2;
    while path.exists() {
        path = args.results.join(format!("{stamp}-{}-{n}.json", args.kind));
        n += 1;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&record)? + "\n")?;
    println!("recorded in {}; regenerate the page with `cargo run -p switchboard-loadgen -- report`", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_nest_by_dotted_names() {
        let figures = super::figures_from(&["a.median=239".into(), "a.max=241".into(), "b=1.5".into()]).unwrap();
        assert_eq!(figures, serde_json::json!({"a": {"median": 239.0, "max": 241.0}, "b": 1.5}));
        assert!(super::figures_from(&["a=x".into()]).is_err());
    }
}
