#!/usr/bin/env bash
# Benchmark of the browser workspace in headless Chromium: an agent with 200 open
# conversations (one of 2,000 messages) reloads the inbox, opens the long conversation, loads
# an earlier page, and receives live consumer messages. Runs the ignored test
# `bench_workspace` of crates/switchboard-server/tests/browser on a RELEASE build (assets
# embedded, as shipped). Needs Debian's chromium and chromium-driver.
#
#   bench/workspace/run.sh            # print the figures
#   bench/workspace/run.sh --record   # and append them to docs/benchmarks.md
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
command=(cargo test --release -p switchboard-server --test browser -- --ignored --exact bench_workspace --nocapture)
SWITCHBOARD_BENCH_OUT="$out" "${command[@]}"
cat "$out"
if [[ "${1:-}" == "--record" ]]; then
  version="$(git rev-parse --short HEAD)$(git diff --quiet -- . ':!docs/benchmarks.md' || echo '+dirty')"
  cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
  memory="$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  {
    printf '\n### Workspace in the browser (`bench/workspace/run.sh`) — %s\n\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    printf -- '- Machine: %s CPUs available (nproc), %s, %s RAM\n' "$(nproc)" "$cpu" "$memory"
    printf -- '- Command: `bench/workspace/run.sh --record` (runs `%s`)\n' "${command[*]}"
    printf -- '- Build: %s (release); browser: %s, headless, 1440×900, on the same machine as the server\n' "$version" "$(chromium --version 2>/dev/null)"
    printf -- '- Data: one agent holding 200 open conversations, one of 2,000 messages; SQLite\n\n'
    printf '```text\n'
    cat "$out"
    printf '```\n'
  } >> docs/benchmarks.md
  echo "recorded in docs/benchmarks.md"
fi
