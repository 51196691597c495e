//! Appending results to `docs/benchmarks.md`: date, machine, exact command, server note.

use std::io::Write;
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

/// The commit measured: `git rev-parse --short HEAD`, with `-dirty` when the tree has
/// uncommitted changes; `unknown` outside a git checkout.
pub fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.trim().is_empty());
            format!("{}{}", head.trim(), if dirty { "-dirty" } else { "" })
        }
        None => "unknown".to_owned(),
    }
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

/// Appends a section to the benchmarks document.
pub fn append(doc: &Path, title: &str, server_note: &str, body: &str) -> Result<()> {
    let section = format!(
        "\n### {title} — {date}\n\n- Machine: {machine}\n- Command: `{command}`\n- Server: {server_note}\n\n```text\n{body}\n```\n",
        date = now_utc(),
        machine = machine(),
        command = command_line(),
        body = body.trim_end(),
    );
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(doc)
        .with_context(|| format!("cannot open {} for appending", doc.display()))?;
    file.write_all(section.as_bytes()).with_context(|| format!("cannot write {}", doc.display()))?;
    println!("recorded in {}", doc.display());
    Ok(())
}
