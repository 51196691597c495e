#!/usr/bin/env bash
# The message path of two server builds in one sitting: each build serves a fresh data dir in
# turn (A, B, A, B, ...) and the same load generator (this tree's) drives it with the same
# workload, so machine noise hits both alike. Writes one results file (kind `compare`, the
# build's label in its note) per run under bench/results/ and prints a summary.
#
#   bench/compare/run.sh BASE_BINARY BASE_LABEL HEAD_BINARY HEAD_LABEL [ROUNDS]
#
# Environment: BENCH_WINDOW (default 10), BENCH_CONSUMERS (200), BENCH_AGENTS (20),
# BENCH_DURATION (20 s), BENCH_LISTEN (127.0.0.1:18090), BENCH_RATE (consumer sends per
# second, paced evenly; agents answer each, so about twice as many messages are stored;
# unset: closed loop, as fast as acks allow). The server's CPU time over the measurement is
# read from /proc and reported per stored message: at a paced rate both builds do the same
# work, so that figure is the cost of the message path.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
[[ $# -ge 4 ]] || { sed -n 2,10p "$0"; exit 2; }
base_bin="$1"; base_label="$2"; head_bin="$3"; head_label="$4"; rounds="${5:-2}"
listen="${BENCH_LISTEN:-127.0.0.1:18090}"
window="${BENCH_WINDOW:-10}"; consumers="${BENCH_CONSUMERS:-200}"; agents="${BENCH_AGENTS:-20}"; duration="${BENCH_DURATION:-20}"
rate="${BENCH_RATE:-}"
rate_args=(); [[ -n "$rate" ]] && rate_args=(--rate "$rate")
cargo build --release -p switchboard-loadgen
for var in $(env | grep -o '^SWITCHBOARD_[A-Z_]*' || true); do unset "$var"; done
# The load generator is a few clients on loopback addresses holding thousands of sockets and
# anonymous identities: the per-address limits against abuse would refuse it (issue 15).
export SWITCHBOARD_ANONYMOUS_PER_ADDRESS=0 SWITCHBOARD_MAX_CONNECTIONS_PER_ADDRESS=0 SWITCHBOARD_MAX_UNAUTHENTICATED_SOCKETS=0

one_run() {
    local bin="$1" label="$2" n="$3" is_base="$4"
    local data_dir; data_dir="$(mktemp -d -t switchboard-compare.XXXXXX)"
    (cd "$data_dir" && exec "$bin" serve --listen "$listen" --data-dir "$data_dir") >"$data_dir/server.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 100); do curl -fsS "http://$listen/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
    local out; out="$(target/release/switchboard-loadgen run --url "http://$listen" --credentials "$data_dir/demo-credentials.json" \
        --agents "$agents" --consumers "$consumers" --duration "$duration" --window "$window" \
        "${rate_args[@]}" --server-pid "$pid")"
    kill "$pid"; wait "$pid" 2>/dev/null || true; rm -rf "$data_dir"
    echo "$out" | sed "s/^/[$label #$n] /" >&2
    local stored p99 a2c_p99 resyncs cpu_us
    stored="$(echo "$out" | grep -oP 'all messages stored: [0-9]+ = \K[0-9.]+' | head -1)"
    p99="$(echo "$out" | grep 'latency consumer->agent' | grep -oP 'p99 \K[0-9.]+' | head -1)"
    a2c_p99="$(echo "$out" | grep 'latency agent->consumer' | grep -oP 'p99 \K[0-9.]+' | head -1)"
    resyncs="$(echo "$out" | grep -oP 'resyncs \K[0-9]+' | head -1)"
    cpu_us="$(echo "$out" | grep -oP 'cores; \K[0-9.]+(?= µs per stored message)' | head -1)"
    local output_file="$data_dir.out"
    echo "$out" >"$output_file"
    target/release/switchboard-loadgen record --kind compare \
        --command "bench/compare/run.sh: $bin serve (fresh data dir); switchboard-loadgen run --agents $agents --consumers $consumers --duration $duration --window $window ${rate_args[*]} --server-pid PID" \
        --note "build $label ($bin)" --output "$output_file" \
        --figure "stored_per_sec=$stored" --figure "consumer_to_agent_ms.p99=$p99" --figure "agent_to_consumer_ms.p99=$a2c_p99" \
        --figure "resyncs=$resyncs" --figure "server_cpu_us_per_message=$cpu_us" --figure "rate=${rate:-0}" \
        --figure "window=$window" --figure "consumers=$consumers" --figure "round=$n" --figure "is_base=$is_base" >/dev/null
    rm -f "$output_file"
    echo "$label #$n: $stored msg/s stored, p99 consumer->agent $p99 ms, agent->consumer $a2c_p99 ms, resyncs $resyncs, server CPU $cpu_us µs/message"
}

for n in $(seq 1 "$rounds"); do
    one_run "$base_bin" "$base_label" "$n" 1
    one_run "$head_bin" "$head_label" "$n" 0
done
