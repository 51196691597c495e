#!/usr/bin/env bash
# Builds release binaries, starts a throwaway server, records `bytes` and `run` figures in
# bench/results/ (one JSON file per run), stops the server. Run from anywhere; the paths are resolved from here.
#
# Environment (all optional):
#   BENCH_LISTEN      address for the server        (default 127.0.0.1:18080)
#   BENCH_AGENTS      agents for `run`               (default 20)
#   BENCH_CONSUMERS   consumers for `run`            (default 200)
#   BENCH_DURATION    seconds of `run`, <= 300       (default 20)
#   BENCH_WINDOW      in-flight sends per consumer   (default 1)
#   BENCH_RATE        target total send rate, msg/s  (default: closed loop)
#   BENCH_SQLITE_SYNC the server's sqlite_sync: full (default) or normal
#   BENCH_DATABASE_URL a PostgreSQL server, e.g. postgres://postgres@127.0.0.1:5432 (no
#                     database in it): the run creates a fresh database bench_<timestamp>
#                     there (psql), serves with --database-url, and drops it afterwards.
#                     Default: SQLite in the throwaway data directory.
#   BENCH_NO_RECORD   set to skip --record
#   BENCH_RUN_ONLY    set to skip the `bytes` and `sdk-bytes` measurements (only `run`)
#   BENCH_SERVER_BIN  serve with this `switchboard` binary instead of this tree's (a baseline
#                     build, to measure before and after in one sitting); then
#   BENCH_SERVER_VERSION names the commit it was built at (required with BENCH_SERVER_BIN)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

listen="${BENCH_LISTEN:-127.0.0.1:18080}"
agents="${BENCH_AGENTS:-20}"
consumers="${BENCH_CONSUMERS:-200}"
duration="${BENCH_DURATION:-20}"
window="${BENCH_WINDOW:-1}"
record=(--record)
[[ -n "${BENCH_NO_RECORD:-}" ]] && record=()
rate=()
[[ -n "${BENCH_RATE:-}" ]] && rate=(--rate "$BENCH_RATE")

server_bin="target/release/switchboard"
if [[ -n "${BENCH_SERVER_BIN:-}" ]]; then
    server_bin="$(realpath "$BENCH_SERVER_BIN")"  # absolute: "$root/$server_bin" does not exist
    server_version="${BENCH_SERVER_VERSION:?set BENCH_SERVER_VERSION to the commit BENCH_SERVER_BIN was built at}"
    cargo build --release -p switchboard-loadgen
else
    cargo build --release -p switchboard -p switchboard-loadgen
fi

data_dir="$(mktemp -d -t switchboard-bench.XXXXXX)"
server_log="$data_dir/server.log"
# No SWITCHBOARD_* configuration leaks in from the caller's environment or a local
# switchboard.toml: the server runs with its defaults plus the flags below.
for var in $(env | grep -o '^SWITCHBOARD_[A-Z_]*' || true); do unset "$var"; done
# The load generator is a few clients on loopback addresses holding thousands of sockets and
# anonymous identities: the per-address limits against abuse would refuse it (issue 15).
export SWITCHBOARD_ANONYMOUS_PER_ADDRESS=0 SWITCHBOARD_MAX_CONNECTIONS_PER_ADDRESS=0 SWITCHBOARD_MAX_UNAUTHENTICATED_SOCKETS=0
server_cmd=("$server_bin" serve --listen "$listen" --data-dir "$data_dir")
sqlite_sync="${BENCH_SQLITE_SYNC:-full}"
pg_server="${BENCH_DATABASE_URL:-}"
bench_db=""
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "$bench_db" ]]; then
        psql "$pg_server/postgres" -q -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $bench_db WITH (FORCE)" >/dev/null ||
            echo "could not drop database $bench_db" >&2
    fi
    rm -rf "$data_dir"
}
trap cleanup EXIT
if [[ -n "$pg_server" ]]; then
    pg_server="${pg_server%/}"
    bench_db="bench_$(date -u +%Y%m%d_%H%M%S)_$$"
    psql "$pg_server/postgres" -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $bench_db" >/dev/null
    server_cmd+=(--database-url "$pg_server/$bench_db")
fi
(cd "$data_dir" && SWITCHBOARD_SQLITE_SYNC="$sqlite_sync" exec "$(realpath "$root/$server_bin" 2>/dev/null || echo "$server_bin")" "${server_cmd[@]:1}") >"$server_log" 2>&1 &
server_pid=$!

for _ in $(seq 1 100); do
    if curl -fsS "http://$listen/readyz" >/dev/null 2>&1; then break; fi
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "server exited; its log:" >&2
        cat "$server_log" >&2
        exit 1
    fi
    sleep 0.2
done
curl -fsS "http://$listen/readyz" >/dev/null || { echo "server not ready after 20 s" >&2; cat "$server_log" >&2; exit 1; }

credentials="$data_dir/demo-credentials.json"
[[ -f "$credentials" ]] || { echo "no $credentials (demo seed did not run?)" >&2; exit 1; }
token="$("$server_bin" dev-token --data-dir "$data_dir" --sub bench-consumer)"

version="${server_version:-}"
[[ -n "$version" ]] || version="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- . ':!docs/benchmarks.md' ':!docs/benchmarks-latency.svg' ':!bench/results' 2>/dev/null || echo '+dirty')"
if [[ -n "$bench_db" ]]; then
    pg_version="$(psql "$pg_server/postgres" -tA -c 'SHOW server_version' 2>/dev/null || echo '?')"
    store_note="PostgreSQL $pg_version on loopback, a fresh database per run, server settings as installed"
    store=postgres
else
    store_note="SQLite in the data dir with SWITCHBOARD_SQLITE_SYNC=$sqlite_sync"
    store=sqlite
fi
note="release build at $version: ${server_cmd[*]/$data_dir/<tmpdir>} ($store_note, demo seed, all other settings default), same machine as the load generator; load before the run:$(uptime | sed 's/.*load average/ load average/')"

if [[ -z "${BENCH_RUN_ONLY:-}" ]]; then
target/release/switchboard-loadgen bytes --url "http://$listen" --credentials "$credentials" \
    --token "$token" --server-note "$note" "${record[@]}"
# The same conversation with the real SDK as the consumer (a fresh consumer id, so the
# conversation starts new).
sdk_token="$("$server_bin" dev-token --data-dir "$data_dir" --sub bench-sdk-consumer)"
target/release/switchboard-loadgen sdk-bytes --url "http://$listen" --credentials "$credentials" \
    --token "$sdk_token" --server-note "$note" "${record[@]}"
fi
target/release/switchboard-loadgen run --url "http://$listen" --credentials "$credentials" \
    --agents "$agents" --consumers "$consumers" --duration "$duration" --window "$window" "${rate[@]}" \
    --store "$store" --server-pid "$server_pid" --server-note "$note" "${record[@]}"
