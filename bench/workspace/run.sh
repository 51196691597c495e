#!/usr/bin/env bash
# Benchmark of the browser workspace in headless Chromium: an agent with 200 open
# conversations (one of 2,000 messages) reloads the inbox, opens the long conversation, loads
# an earlier page, and receives live consumer messages. Runs the ignored test
# `bench_workspace` of crates/switchboard-server/tests/browser on a RELEASE build (assets
# embedded, as shipped). Needs Debian's chromium and chromium-driver.
#
#   bench/workspace/run.sh            # print the figures
#   bench/workspace/run.sh --record   # and record them in bench/results/ (then run
#                                     # `cargo run -p switchboard-loadgen -- report`)
set -euo pipefail
cd "$(dirname "$0")/../.."
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
command=(cargo test --release -p switchboard-server --test browser -- --ignored --exact bench_workspace --nocapture)
SWITCHBOARD_BENCH_OUT="$out" "${command[@]}"
cat "$out"
if [[ "${1:-}" == "--record" ]]; then
  # min, median and max of the line starting with $1 (… 236 ms 283 ms 289 ms (5 runs)).
  field() { awk -v start="$1" -v n="$2" 'index($0, start) == 1 { print $(NF - n) }' "$out"; }
  figures=()
  for pair in "reload_inbox_200_ms:reload" "open_2000_message_conversation_ms:click" "earlier_page_ms:scroll to top" "live_message_ms:consumer sends"; do
    name="${pair%%:*}" start="${pair#*:}"
    figures+=(--figure "$name.min=$(field "$start" 7)" --figure "$name.median=$(field "$start" 5)" --figure "$name.max=$(field "$start" 3)")
  done
  cargo run -q --release -p switchboard-loadgen -- record --kind workspace \
    --command "bench/workspace/run.sh --record (runs ${command[*]})" \
    --note "release build; browser: $(chromium --version 2>/dev/null), headless, 1440x900, same machine as the server; one agent holding 200 open conversations, one of 2,000 messages; SQLite" \
    --output "$out" "${figures[@]}"
fi
