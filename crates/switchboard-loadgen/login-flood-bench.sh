#!/usr/bin/env bash
# A logged-in agent's latency under a flood of wrong-password logins (issue 15, item 3):
# builds release binaries, and for each setup starts a throwaway server, runs
# `switchboard-loadgen login-flood` (recorded in bench/results/ unless BENCH_NO_RECORD is
# set) and stops it. Setups: login limits off (every attempt is checked with argon2: the
# hashing threads are what is measured) at BENCH_RATES, and the default limits at the highest
# rate. Run from anywhere.
#
# Environment (all optional):
#   BENCH_LISTEN      address for the server                   (default 127.0.0.1:18081)
#   BENCH_RATES       flood rates, logins/s, space-separated    (default "50 200")
#   BENCH_DURATION    seconds of flood per run                  (default 20)
#   BENCH_NO_RECORD   set to skip --record
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

listen="${BENCH_LISTEN:-127.0.0.1:18081}"
rates="${BENCH_RATES:-50 200}"
duration="${BENCH_DURATION:-20}"
record=(--record)
[[ -n "${BENCH_NO_RECORD:-}" ]] && record=()

cargo build --release -p switchboard -p switchboard-loadgen
version="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- . ':!docs/benchmarks.md' ':!docs/benchmarks-latency.svg' ':!bench/results' 2>/dev/null || echo '+dirty')"

# run SETUP_LABEL RATE [VAR=VALUE ...]: one server with the given settings, one flood.
run() {
    local setup="$1" rate="$2"
    shift 2
    local data_dir server_log server_pid status=0
    data_dir="$(mktemp -d -t switchboard-login-flood.XXXXXX)"
    server_log="$data_dir/server.log"
    for var in $(env | grep -o '^SWITCHBOARD_[A-Z_]*' || true); do unset "$var"; done
    (cd "$data_dir" && env SWITCHBOARD_LOG=warn "$@" \
        "$root/target/release/switchboard" serve --listen "$listen" --data-dir "$data_dir") >"$server_log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        if curl -fsS "http://$listen/readyz" >/dev/null 2>&1; then break; fi
        sleep 0.2
    done
    local note="release build at $version: switchboard serve --listen $listen (SQLite in a fresh data dir, demo seed) with SWITCHBOARD_LOG=warn $*; default password_hash_threads (half the cores); the load generator on the same machine, which is shared with other work (2 cores)"
    target/release/switchboard-loadgen login-flood --url "http://$listen" \
        --credentials "$data_dir/demo-credentials.json" --rate "$rate" --duration "$duration" \
        --setup "$setup" --server-note "$note" "${record[@]}" || status=$?
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    rm -rf "$data_dir"
    return "$status"
}

highest=0
for rate in $rates; do
    run "login limits off: every attempt checked" "$rate" \
        SWITCHBOARD_LOGIN_ATTEMPTS_PER_ACCOUNT=0 SWITCHBOARD_LOGIN_ATTEMPTS_PER_ADDRESS=0
    (( rate > highest )) && highest=$rate
done
run "default limits (10 per account, 50 per address, in 600 s)" "$highest"
