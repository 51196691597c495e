#!/usr/bin/env bash
# The fleet benchmark (issue 14): the same `switchboard-loadgen run` workload against
#
#   sqlite      one node on SQLite (the single-binary default)
#   pg-1        one node on PostgreSQL with NATS (a fleet of one)
#   pg-2        two nodes on PostgreSQL with NATS
#   pg-3        three nodes on PostgreSQL with NATS
#
# in one sitting, each on a fresh database. With several nodes, consumers connect to the nodes
# in turn and each agent to the node after its consumers' (`--also-url`), so most messages
# cross nodes through NATS. Every node, PostgreSQL, NATS and the load generator share this
# machine's cores: on a small machine the figures show the cost of the fleet, not its
# capacity (BENCH_PIN=1 pins node i to core i mod cores with taskset, for a per-core view).
#
# Usage: bench/fleet/run.sh [sqlite] [pg-1] [pg-2] [pg-3]   (default: all four)
# Environment (optional): BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432),
#   BENCH_AGENTS (20), BENCH_CONSUMERS (200), BENCH_DURATION (20), BENCH_WINDOW (1),
#   BENCH_RATE (messages/s; default closed loop), BENCH_NO_RECORD, BENCH_PIN,
#   SWITCHBOARD_NATS_SERVER (the nats-server binary; default Debian's /usr/sbin/nats-server).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
pg_url="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}"
agents="${BENCH_AGENTS:-20}"
consumers="${BENCH_CONSUMERS:-200}"
duration="${BENCH_DURATION:-20}"
window="${BENCH_WINDOW:-1}"
record=(--record)
[[ -n "${BENCH_NO_RECORD:-}" ]] && record=()
rate=()
[[ -n "${BENCH_RATE:-}" ]] && rate=(--rate "$BENCH_RATE")
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(sqlite pg-1 pg-2 pg-3)
nats_bin="${SWITCHBOARD_NATS_SERVER:-/usr/sbin/nats-server}"
nats_port=14222
cores="$(nproc)"

cargo build --release -p switchboard -p switchboard-loadgen
for var in $(env | grep -o '^SWITCHBOARD_[A-Z_]*' || true); do
    [[ "$var" == SWITCHBOARD_NATS_SERVER ]] || unset "$var"
done
# The load generator is a few clients on loopback addresses holding thousands of sockets and
# anonymous identities: the per-address limits against abuse would refuse it (issue 15).
export SWITCHBOARD_ANONYMOUS_PER_ADDRESS=0 SWITCHBOARD_MAX_CONNECTIONS_PER_ADDRESS=0 SWITCHBOARD_MAX_UNAUTHENTICATED_SOCKETS=0

pids=()
dirs=()
nats_pid=""
db=""
stop_all() {
    for pid in "${pids[@]}" $nats_pid; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}" $nats_pid; do wait "$pid" 2>/dev/null || true; done
    pids=()
    nats_pid=""
    for dir in "${dirs[@]}"; do rm -rf "$dir"; done
    dirs=()
    if [[ -n "$db" ]]; then
        psql "$pg_url/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
        db=""
    fi
}
trap stop_all EXIT

# start_node INDEX DATABASE_URL [NATS_URL]: a node on port 18100+INDEX (DATABASE_URL "":
# SQLite in its data directory); waits for /readyz.
start_node() {
    local index="$1" database_url="$2" nats="${3:-}"
    local dir listen pin=()
    dir="$(mktemp -d -t switchboard-fleet.XXXXXX)"
    dirs+=("$dir")
    listen="127.0.0.1:$((18100 + index))"
    [[ -n "${BENCH_PIN:-}" ]] && pin=(taskset -c "$((index % cores))")
    local flags=(serve --listen "$listen" --data-dir "$dir")
    [[ -n "$database_url" ]] && flags+=(--database-url "$database_url")
    [[ -n "$nats" ]] && flags+=(--nats-url "$nats")
    (cd "$dir" && exec "${pin[@]}" "$root/target/release/switchboard" "${flags[@]}") >"$dir/server.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 150); do
        curl -fsS "http://$listen/readyz" >/dev/null 2>&1 && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || { echo "node $index exited; its log:" >&2; cat "$dir/server.log" >&2; exit 1; }
        sleep 0.2
    done
    echo "node $index not ready after 30 s" >&2
    cat "$dir/server.log" >&2
    exit 1
}

sitting="fleet-$(date -u +%Y%m%dT%H%M%S)"
version="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- . ':!docs/benchmarks.md' ':!docs/benchmarks-latency.svg' ':!bench/results' 2>/dev/null || echo '+dirty')"
for step in "${steps[@]}"; do
    case "$step" in
        sqlite) nodes=0 ;;
        pg-1) nodes=1 ;;
        pg-2) nodes=2 ;;
        pg-3) nodes=3 ;;
        *) echo "unknown step $step (sqlite, pg-1, pg-2, pg-3)" >&2; exit 2 ;;
    esac
    if [[ "$nodes" == 0 ]]; then
        start_node 0 ""
        store=sqlite
        note="release build at $version: one node on SQLite (demo seed, defaults)${BENCH_PIN:+, pinned to core 0}, same machine as the load generator"
    else
        db="bench_fleet_$(date +%s)"
        psql "$pg_url/postgres" -qc "CREATE DATABASE $db" >/dev/null
        "$nats_bin" -a 127.0.0.1 -p "$nats_port" >/dev/null 2>&1 &
        nats_pid=$!
        for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$nats_port) 2>/dev/null && break; sleep 0.1; done
        for index in $(seq 0 $((nodes - 1))); do
            start_node "$index" "$pg_url/$db" "nats://127.0.0.1:$nats_port"
        done
        store=postgres
        note="release build at $version: $nodes node(s) on PostgreSQL 127.0.0.1:5432 with their own nats-server, each node with defaults${BENCH_PIN:+, pinned to core index mod $cores}, same machine as PostgreSQL, NATS and the load generator"
    fi
    also=()
    for index in $(seq 1 $((nodes - 1))); do also+=(--also-url "http://127.0.0.1:$((18100 + index))"); done
    server_pids=()
    for pid in "${pids[@]}"; do server_pids+=(--server-pid "$pid"); done
    echo "== $step ($(uptime))"
    target/release/switchboard-loadgen run --url "http://127.0.0.1:18100" "${also[@]}" \
        --credentials "${dirs[0]}/demo-credentials.json" --store "$store" --sitting "$sitting" \
        --agents "$agents" --consumers "$consumers" --duration "$duration" --window "$window" "${rate[@]}" \
        "${server_pids[@]}" --server-note "$note" "${record[@]}"
    stop_all
done
