#!/usr/bin/env bash
# Data-governance benchmarks (issue 9), each on a throwaway release server with bulk data
# written straight into its database (`switchboard-loadgen seed`):
#
#   search   the reporting API's first page over 1,000,000 conversations, SQLite
#   search   the same on PostgreSQL (needs BENCH_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432)
#   export   a JSON export of 100,000 conversations (10 messages each), the server's peak memory
#   purge    the message path's p99 with and without a retention purge of 1,000,000 messages
#
# Usage: bench/governance/run.sh [search-sqlite] [search-postgres] [export] [purge]   (default: all)
# Environment (optional): BENCH_LISTEN (127.0.0.1:18095), BENCH_POSTGRES_URL, BENCH_NO_RECORD,
#   BENCH_SEARCH_CONVERSATIONS (1000000), BENCH_EXPORT_CONVERSATIONS (100000),
#   BENCH_PURGE_MESSAGES (1000000, as 10,000 conversations), BENCH_RATE (1000 msg/s, purge load),
#   BENCH_DURATION (15 s, purge load), BENCH_PURGE_BATCH (500 messages), BENCH_PURGE_PAUSE_MS (20).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
listen="${BENCH_LISTEN:-127.0.0.1:18095}"
record=(--record)
[[ -n "${BENCH_NO_RECORD:-}" ]] && record=()
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(search-sqlite search-postgres export purge)

cargo build --release -p switchboard -p switchboard-loadgen
for var in $(env | grep -o '^SWITCHBOARD_[A-Z_]*' || true); do unset "$var"; done
loadgen="$root/target/release/switchboard-loadgen"

server_pid=""
data_dir=""
pg_db=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
    [[ -n "$data_dir" ]] && rm -rf "$data_dir"
    data_dir=""
    if [[ -n "$pg_db" ]]; then
        psql "$BENCH_POSTGRES_URL/postgres" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null || true
        pg_db=""
    fi
}
trap stop_server EXIT

# The load generator is a few clients on loopback addresses holding thousands of sockets and
# anonymous identities: the per-address limits against abuse would refuse it (issue 15).
export SWITCHBOARD_ANONYMOUS_PER_ADDRESS=0 SWITCHBOARD_MAX_CONNECTIONS_PER_ADDRESS=0 SWITCHBOARD_MAX_UNAUTHENTICATED_SOCKETS=0

# start_server [DATABASE_URL]: a fresh data directory (demo brand seeded), the periodic purge
# off (the purge benchmark starts it over REST); sets server_pid, data_dir, database_url.
start_server() {
    data_dir="$(mktemp -d -t switchboard-gov.XXXXXX)"
    database_url="${1:-sqlite://$data_dir/switchboard.db}"
    (cd "$data_dir" && SWITCHBOARD_RETENTION_PURGE_SECS=0 SWITCHBOARD_RETENTION_BATCH_MESSAGES="${BENCH_PURGE_BATCH:-500}" \
        SWITCHBOARD_RETENTION_PAUSE_MS="${BENCH_PURGE_PAUSE_MS:-20}" exec "$root/target/release/switchboard" serve \
        --listen "$listen" --data-dir "$data_dir" --database-url "$database_url") >"$data_dir/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 150); do
        curl -fsS "http://$listen/readyz" >/dev/null 2>&1 && return 0
        kill -0 "$server_pid" 2>/dev/null || { cat "$data_dir/server.log" >&2; exit 1; }
        sleep 0.2
    done
    echo "server not ready" >&2
    exit 1
}

common() { echo --url "http://$listen" --credentials "$data_dir/demo-credentials.json"; }

for step in "${steps[@]}"; do
    case "$step" in
    search-sqlite | search-postgres)
        n="${BENCH_SEARCH_CONVERSATIONS:-1000000}"
        if [[ "$step" == search-postgres ]]; then
            [[ -n "${BENCH_POSTGRES_URL:-}" ]] || { echo "search-postgres needs BENCH_POSTGRES_URL" >&2; exit 1; }
            pg_db="sb_gov_bench_$$"
            psql "$BENCH_POSTGRES_URL/postgres" -qc "CREATE DATABASE $pg_db" >/dev/null
            start_server "$BENCH_POSTGRES_URL/$pg_db"
            dialect=PostgreSQL
        else
            start_server
            dialect=SQLite
        fi
        "$loadgen" seed --database-url "$database_url" --conversations "$n" --messages 1 --consumers 50000 --span-days 300
        "$loadgen" search $(common) "${record[@]}" --dataset "$n conversations (1 message, 3 events each) over 300 days, $dialect" \
            --server-note "target/release/switchboard serve ($dialect, fresh data dir, demo brand) with bulk-seeded conversations"
        stop_server
        ;;
    export)
        n="${BENCH_EXPORT_CONVERSATIONS:-100000}"
        start_server
        "$loadgen" seed --database-url "$database_url" --conversations "$n" --messages 10 --consumers 20000 --span-days 300
        "$loadgen" export $(common) --server-pid "$server_pid" --format json "${record[@]}" \
            --dataset "$n conversations, 10 messages and 3 events each, SQLite" \
            --server-note "target/release/switchboard serve (SQLite, fresh data dir, demo brand) with bulk-seeded conversations"
        stop_server
        ;;
    purge)
        messages="${BENCH_PURGE_MESSAGES:-1000000}"
        start_server
        # Closed 800 days ago: past the demo brand's 396-day retention.
        "$loadgen" seed --database-url "$database_url" --conversations $((messages / 100)) --messages 100 \
            --consumers 5000 --closed-days-ago 800 --span-days 30 --tag old
        "$loadgen" purge $(common) --agents 10 --consumers 100 --rate "${BENCH_RATE:-1000}" \
            --duration "${BENCH_DURATION:-15}" --warmup 3 "${record[@]}" \
            --dataset "$messages messages in $((messages / 100)) conversations past retention, SQLite" \
            --server-note "target/release/switchboard serve (SQLite, fresh data dir, demo brand, retention_purge_secs=0; purge batches of ${BENCH_PURGE_BATCH:-500} messages, ${BENCH_PURGE_PAUSE_MS:-20} ms apart)"
        stop_server
        ;;
    *)
        echo "unknown step $step (search-sqlite, search-postgres, export, purge)" >&2
        exit 1
        ;;
    esac
done
