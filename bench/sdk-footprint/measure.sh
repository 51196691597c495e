#!/usr/bin/env bash
# SDK footprint: bytes that linking `switchboard-sdk` adds to a stripped, size-optimized
# release binary (SPEC: <= 1 MB). Builds four binaries of this standalone project
# (profile: opt-level "z", fat LTO, codegen-units 1, strip) into target/sdk-footprint:
#   baseline     tokio + serde_json: TCP connect, JSON write/parse (what the app has anyway)
#   with-sdk     the same plus Client::builder/build, connect, send_text, events(), shutdown,
#                SQLite compiled in (bundled), as an Android app ships it
#   with-sdk-system-sqlite  the same binary linking the platform's libsqlite3 (as iOS can)
#   only-sqlite  the baseline plus bundled SQLite via rusqlite (attribution, no SDK)
#   only-aws-lc  the baseline plus AES-256-GCM via aws-lc-rs (attribution, no SDK)
#   only-ws      the baseline plus a tokio-tungstenite client (attribution, no SDK)
# and prints the sizes and differences. `--record` appends a section to docs/benchmarks.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
record=0
for arg in "$@"; do
    case "$arg" in
        --record) record=1 ;;
        *) echo "usage: $0 [--record]" >&2; exit 2 ;;
    esac
done

export CARGO_TARGET_DIR="$root/target/sdk-footprint"
manifest="$here/Cargo.toml"
build() { # bin [features]
    local features=()
    [[ -n "${2:-}" ]] && features=(--features "$2")
    cargo build --release --manifest-path "$manifest" --bin "$1" "${features[@]}"
}
build baseline
build with-sdk sdk
cp "$CARGO_TARGET_DIR/release/with-sdk" "$CARGO_TARGET_DIR/release/with-sdk-system-sqlite"
build with-sdk with-sdk
build only-sqlite only-sqlite
build only-aws-lc only-aws-lc
build only-ws only-ws

bin="$CARGO_TARGET_DIR/release"
size() { stat -c %s "$bin/$1"; }
base=$(size baseline)
mb() { awk -v b="$1" 'BEGIN { printf "%.3f MB (%.3f MiB)", b / 1000000, b / 1048576 }'; }
line() { # name
    local s d
    s=$(size "$1")
    d=$((s - base))
    printf '%-23s %10d B   %+10d B = %s\n' "$1" "$s" "$d" "$(mb "$d")"
}
verdict() {
    local d=$(( $(size with-sdk) - base ))
    if (( d <= 1000000 )); then echo "SDK delta $d B: within the SPEC's 1 MB"; else echo "SDK delta $d B: OVER the SPEC's 1 MB by $((d - 1000000)) B"; fi
}
rustc_v="$(rustc --version)"
target="$(rustc -vV | awk '/^host:/ {print $2}')"
body="$(
    echo "stripped release binaries, opt-level \"z\", lto = true (fat), codegen-units = 1, panic = unwind; $rustc_v, $target"
    printf '%-23s %12s   %s\n' binary size "delta vs baseline"
    for b in baseline with-sdk with-sdk-system-sqlite only-sqlite only-aws-lc only-ws; do line "$b"; done
    verdict
    for b in with-sdk with-sdk-system-sqlite; do
        echo "$b shared libraries: $(ldd "$bin/$b" 2>/dev/null | awk '{print $1}' | grep -v vdso | tr '\n' ' ')"
    done
)"
echo "$body"

if (( record )); then
    version="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet -- crates/switchboard-sdk crates/switchboard-protocol 2>/dev/null || echo '+dirty')"
    machine="$(nproc) CPUs available (nproc), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(awk '/^MemTotal:/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM"
    {
        printf '\n### SDK footprint (`measure.sh`) — %s\n\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        printf -- '- Machine: %s\n' "$machine"
        printf -- '- Command: `bench/sdk-footprint/measure.sh --record`\n'
        printf -- '- SDK: `crates/switchboard-sdk` at %s, linked by path from the standalone project `bench/sdk-footprint` (bundled SQLite)\n\n' "$version"
        printf '```text\n%s\n```\n' "$body"
    } >>"$root/docs/benchmarks.md"
    echo "recorded in docs/benchmarks.md"
fi
