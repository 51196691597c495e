#!/usr/bin/env bash
# Push sending under load: builds release binaries, starts a throwaway server whose FCM URLs
# point at the load generator's fake FCM, runs `switchboard-loadgen push` (recorded in
# bench/results/ unless BENCH_NO_RECORD is set), stops the server. Run from anywhere.
#
# Environment (all optional):
#   BENCH_LISTEN      address for the server                  (default 127.0.0.1:18080)
#   BENCH_FAKE        address of the fake FCM                 (default 127.0.0.1:18090)
#   BENCH_CONSUMERS   consumers with a device (pushes)        (default 100000)
#   BENCH_PLAIN       consumers without a device              (default 40000)
#   BENCH_NO_RECORD   set to skip --record
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

listen="${BENCH_LISTEN:-127.0.0.1:18080}"
fake="${BENCH_FAKE:-127.0.0.1:18090}"
consumers="${BENCH_CONSUMERS:-100000}"
plain="${BENCH_PLAIN:-40000}"
record=(--record)
[[ -n "${BENCH_NO_RECORD:-}" ]] && record=()

cargo build --release -p switchboard -p switchboard-loadgen

data_dir="$(mktemp -d -t switchboard-push-bench.XXXXXX)"
server_log="$data_dir/server.log"
for var in $(env | grep -o '^SWITCHBOARD_[A-Z_]*' || true); do unset "$var"; done
# The load generator is a few clients on loopback addresses holding thousands of sockets and
# anonymous identities: the per-address limits against abuse would refuse it (issue 15).
export SWITCHBOARD_ANONYMOUS_PER_ADDRESS=0 SWITCHBOARD_MAX_CONNECTIONS_PER_ADDRESS=0 SWITCHBOARD_MAX_UNAUTHENTICATED_SOCKETS=0
server_cmd=(target/release/switchboard serve --listen "$listen" --data-dir "$data_dir")
(cd "$data_dir" && SWITCHBOARD_FCM_URL="http://$fake" SWITCHBOARD_FCM_TOKEN_URL="http://$fake/token" \
    SWITCHBOARD_LOG=warn exec "$root/${server_cmd[0]}" "${server_cmd[@]:1}") >"$server_log" 2>&1 &
server_pid=$!
cleanup() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    rm -rf "$data_dir"
}
trap cleanup EXIT

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

version="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- . ':!docs/benchmarks.md' ':!docs/benchmarks-latency.svg' ':!bench/results' 2>/dev/null || echo '+dirty')"
note="release build at $version: ${server_cmd[*]/$data_dir/<tmpdir>} with SWITCHBOARD_FCM_URL=http://$fake SWITCHBOARD_FCM_TOKEN_URL=http://$fake/token SWITCHBOARD_LOG=warn (SQLite in the data dir, demo seed, all other settings default: push_coalesce_ms 1000, batches of 256), same machine as the load generator"

target/release/switchboard-loadgen push --url "http://$listen" --credentials "$data_dir/demo-credentials.json" \
    --fake "$fake" --consumers "$consumers" --plain "$plain" --server-pid "$server_pid" --server-note "$note" "${record[@]}"
