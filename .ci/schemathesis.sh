#!/usr/bin/env bash
# Schemathesis against the REST API, as the demo brand's admin and as one of its agents:
# every operation of /openapi.json gets generated requests (valid and invalid), and every
# answer must be no server error (not_a_server_error), have a status the document lists for
# the operation (status_code_conformance), the documented content type and schema
# (content_type_conformance, response_schema_conformance), refuse a request without
# credentials where they are needed (ignored_auth, missing_required_header) and, when it is
# an error, be {code, message} (error_body_is_code_message, in schemathesis_hooks.py). Any
# finding fails the script. Not checked: positive_data_acceptance (the schemas do not state
# every rule, e.g. a name's minimum length or an id of the brand; such requests get 400).
#
# Builds `switchboard` (debug) unless SCHEMATHESIS_SERVER names a built one, starts
# `switchboard serve` on a free loopback port with a throwaway data directory (SQLite, demo
# seed), logs in with the demo credentials, runs, stops.
# Schemathesis is installed from PyPI into target/schemathesis-venv (pinned below) on first use.
#
# Operations left out, because they would end the session under test (the rest of the run
# would only see 401s): POST /api/v1/auth/logout, PUT /api/v1/me/password (ends the caller's
# other sessions; with a generated current password it is refused anyway), and
# PATCH /api/v1/users/{user_id} (may disable or demote the caller). The authorization matrix
# test (crates/switchboard-server/tests/it/authz.rs) covers who may call them.
#
# Environment (all optional):
#   SCHEMATHESIS_MAX_EXAMPLES  generated cases per operation and caller (default 50)
#   SCHEMATHESIS_CHECKS        the checks, comma-separated (default: the three above)
#   SCHEMATHESIS_VENV          the virtualenv to use (default target/schemathesis-venv)
#   SCHEMATHESIS_SEED          a seed, to repeat a run
#   SCHEMATHESIS_SERVER        a built `switchboard` binary to serve with (default: build one).
#                              .ci/run passes the one its `cargo test --workspace` built: a
#                              `cargo build -p switchboard` resolves features for that package
#                              alone and rebuilds about a hundred crates (3 minutes).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

version="4.32.5"
venv="${SCHEMATHESIS_VENV:-$root/target/schemathesis-venv}"
max_examples="${SCHEMATHESIS_MAX_EXAMPLES:-50}"
checks="${SCHEMATHESIS_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth,missing_required_header,error_body_is_code_message}"

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$version"
fi

server="${SCHEMATHESIS_SERVER:-}"
if [[ -z "$server" ]]; then
    cargo build --locked -p switchboard
    server="$root/target/debug/switchboard"
fi
server="$(realpath "$server")"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
data_dir="$(mktemp -d -t switchboard-schemathesis.XXXXXX)"
server_log="$data_dir/server.log"
for var in $(env | grep -o '^SWITCHBOARD_[A-Z_]*' || true); do unset "$var"; done
(cd "$data_dir" && exec "$server" serve --listen "127.0.0.1:$port" --data-dir "$data_dir") \
    >"$server_log" 2>&1 &
server_pid=$!
cleanup() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    rm -rf "$data_dir"
}
trap cleanup EXIT

for _ in $(seq 1 150); do
    curl -fsS "$base/readyz" >/dev/null 2>&1 && break
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "the server exited; its log:" >&2
        cat "$server_log" >&2
        exit 1
    fi
    sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null || { echo "server not ready after 30 s" >&2; cat "$server_log" >&2; exit 1; }

# A session token for the demo login of `role`.
login() {
    local body
    body="$(python3 - "$data_dir/demo-credentials.json" "$1" <<'PY'
import json, sys
credentials = json.load(open(sys.argv[1]))
login = next(login for login in credentials["logins"] if login["role"] == sys.argv[2])
print(json.dumps({"email": login["email"], "password": login["password"]}))
PY
)"
    curl -fsS "$base/api/v1/auth/login" -H 'Content-Type: application/json' -d "$body" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}

seed=()
[[ -n "${SCHEMATHESIS_SEED:-}" ]] && seed=(--seed "$SCHEMATHESIS_SEED")
# Both sessions first: the admin's run sends generated logins, and their failures count
# against this address's login limit (50 in 600 s): a login after it could be refused (429).
# Nothing the runs call ends the other role's session (see the operations left out above).
declare -A tokens
for role in admin agent; do
    tokens[$role]="$(login "$role")"
done
status=0
for role in admin agent; do
    token="${tokens[$role]}"
    echo "==> schemathesis as the demo $role ($max_examples examples per operation)"
    # From target/: schemathesis keeps its cache of failures in .schemathesis/ where it runs.
    (cd "$root/target" && SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$root/.ci" \
        "$venv/bin/schemathesis" --no-color run "$base/openapi.json" \
        --header "Authorization: Bearer $token" \
        --checks "$checks" \
        --exclude-operation-id logout --exclude-operation-id change_password --exclude-operation-id patch_user \
        --max-examples "$max_examples" --workers 2 --request-timeout 20 \
        --suppress-health-check all --output-truncate true "${seed[@]}") || status=1
done
if [[ $status -ne 0 ]]; then
    echo "schemathesis found problems; the server's log is in the output above if it says why" >&2
    tail -n 50 "$server_log" >&2
fi
exit $status
