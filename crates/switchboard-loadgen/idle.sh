#!/usr/bin/env bash
# Idle connections: server memory per idle authenticated consumer connection at several
# counts (a fresh server for each), then a reconnection storm (the server is restarted
# under a connected fleet). Records each run in bench/results/.
#
# This sandbox caps open files at 20,000 per process, so one server and one load generator
# hold fewer than 20,000 sockets each; counts above ~19,000 need a host with a larger
# `ulimit -n` (the script raises the soft limit to the hard one).
#
# Environment (all optional):
#   IDLE_LISTEN       address for the server (loopback)     (default 127.0.0.1:18090)
#   IDLE_COUNTS       connection counts, one run each       (default "5000 15000")
#   IDLE_HOLD         seconds to hold before reading memory (default 20)
#   IDLE_SOURCE_IPS   loopback source addresses 127.0.0.1..N (default 4)
#   IDLE_STORM_COUNT  clients for the storm, 0 to skip      (default 15000)
#   IDLE_NO_RECORD    set to skip --record
#   CARGO_TARGET_DIR  where to build and find the release binaries (default target)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

listen="${IDLE_LISTEN:-127.0.0.1:18090}"
counts="${IDLE_COUNTS:-5000 15000}"
hold="${IDLE_HOLD:-20}"
source_ips="${IDLE_SOURCE_IPS:-4}"
storm_count="${IDLE_STORM_COUNT:-15000}"
record=(--record)
[[ -n "${IDLE_NO_RECORD:-}" ]] && record=()

cargo build --release -p switchboard -p switchboard-loadgen
target_dir="${CARGO_TARGET_DIR:-target}"
[[ "$target_dir" = /* ]] || target_dir="$root/$target_dir"
bin="$target_dir/release"

data_dir="$(mktemp -d -t switchboard-idle.XXXXXX)"
server_log="$data_dir/server.log"
for var in $(env | grep -o '^SWITCHBOARD_[A-Z_]*' || true); do unset "$var"; done
# The load generator is a few clients on loopback addresses holding thousands of sockets and
# anonymous identities: the per-address limits against abuse would refuse it (issue 15).
export SWITCHBOARD_ANONYMOUS_PER_ADDRESS=0 SWITCHBOARD_MAX_CONNECTIONS_PER_ADDRESS=0 SWITCHBOARD_MAX_UNAUTHENTICATED_SOCKETS=0
server_cmd=("$bin/switchboard" serve --listen "$listen" --data-dir "$data_dir")
server_pid=""
start_server() {
    (cd "$data_dir" && exec "${server_cmd[@]}") >>"$server_log" 2>&1 &
    server_pid=$!
    echo "$server_pid" >"$data_dir/server.pid"
    for _ in $(seq 1 150); do
        if curl -fsS "http://$listen/readyz" >/dev/null 2>&1; then return 0; fi
        if ! kill -0 "$server_pid" 2>/dev/null; then
            echo "server exited; its log:" >&2
            cat "$server_log" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "server not ready after 15 s" >&2
    cat "$server_log" >&2
    exit 1
}
stop_server() {
    [[ -n "$server_pid" ]] || return 0
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
}
loadgen_pid=""
cleanup() {
    [[ -n "$loadgen_pid" ]] && kill "$loadgen_pid" 2>/dev/null || true
    stop_server
    rm -rf "$data_dir"
}
trap cleanup EXIT

version="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- . ':!docs/benchmarks.md' ':!docs/benchmarks-latency.svg' ':!bench/results' 2>/dev/null || echo '+dirty')"
shown_cmd="${server_cmd[*]/$data_dir/<tmpdir>}"
note="release build at $version: ${shown_cmd#"$root/"} (SQLite in the data dir, demo seed, all other settings default: heartbeat 30 s), a fresh server process per run, same machine as the load generator; open files limit $(ulimit -n) per process"

for count in $counts; do
    start_server
    sleep 1
    "$bin/switchboard-loadgen" idle --url "http://$listen" --count "$count" --source-ips "$source_ips" \
        --hold-secs "$hold" --server-pid "$server_pid" --server-note "$note" "${record[@]}"
    stop_server
done

if (( storm_count > 0 )); then
    start_server
    sleep 1
    ready="$data_dir/storm.ready"
    storm_note="$note; storm: SIGTERM (graceful: sockets closed with 1001), then the same command again on the same data dir as soon as the old process exited"
    "$bin/switchboard-loadgen" idle --url "http://$listen" --count "$storm_count" --source-ips "$source_ips" \
        --hold-secs 5 --server-pid "$server_pid" --storm --ready-file "$ready" \
        --storm-pid-file "$data_dir/server.pid" --server-note "$storm_note" "${record[@]}" &
    loadgen_pid=$!
    while [[ ! -f "$ready" ]]; do
        if ! kill -0 "$loadgen_pid" 2>/dev/null; then wait "$loadgen_pid"; exit 1; fi
        sleep 0.2
    done
    t0=$(date +%s.%N)
    stop_server
    t1=$(date +%s.%N)
    start_server
    t2=$(date +%s.%N)
    restart="$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "old server exited %.2f s after the SIGTERM, new server ready (GET /readyz) %.2f s after it", b - a, c - a }')"
    echo "storm: $restart"
    wait "$loadgen_pid"
    loadgen_pid=""
    if (( ${#record[@]} )); then
        echo "(restart timing printed only: $restart)"
    fi
fi
