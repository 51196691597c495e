#!/usr/bin/env bash
# SDK footprint: bytes that linking `switchboard-sdk` adds to a stripped release binary
# (SPEC: <= 1 MB). One command builds every variant of this standalone project and prints
# the sizes; `--record` records them in bench/results/ (`switchboard-loadgen report` makes the page).
#
# Variants (src/bin): `baseline` is tokio + serde_json doing a TCP connect and JSON work
# (what an app has anyway); `with-sdk` is the same plus Client::builder/build, connect,
# send_text, events(), shutdown; `only-*` add one SDK dependency alone (attribution).
#
# Profiles, applied alike to the baseline and to every variant so each difference is fair:
#   release    size-optimized, as recommended to brand apps: opt-level "z", fat LTO,
#              codegen-units 1, panic "abort", strip (Cargo.toml)
#   reference  cargo's default release profile (opt-level 3, no LTO, 16 codegen units,
#              panic "unwind") plus strip, for comparison
# SQLite builds:
#   stock        libsqlite3-sys's bundled SQLite with its default options
#   trimmed      the same with LIBSQLITE3_FLAGS from brand-app-config.toml
#   recommended  LIBSQLITE3_FLAGS and CFLAGS from brand-app-config.toml (the full advice)
#   system       no SQLite compiled in: the platform's libsqlite3 (iOS can; Android cannot)
# Each SQLite build has its own target directory under target/sdk-footprint, because the
# environment variables change what libsqlite3-sys compiles.
#
# Finally the recommended with-sdk binary is run once without a server: it must open its
# encrypted cache and queue a message on the trimmed SQLite, or the script fails.
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

manifest="$here/Cargo.toml"
out="$root/target/sdk-footprint"
bins="$out/bins"
mkdir -p "$bins"
config_value() { # NAME: the quoted value of NAME in brand-app-config.toml
    sed -n "s/^$1 = \"\\(.*\\)\"\$/\\1/p" "$here/brand-app-config.toml"
}
app_sqlite_flags="$(config_value LIBSQLITE3_FLAGS)"
app_cflags="$(config_value CFLAGS)"
[[ -n "$app_sqlite_flags" && -n "$app_cflags" ]] || { echo "brand-app-config.toml: LIBSQLITE3_FLAGS or CFLAGS missing" >&2; exit 1; }

# build NAME SQLITE PROFILE BIN [FEATURES]: builds BIN and copies it to $bins/NAME.
build() {
    local name="$1" sqlite="$2" profile="$3" bin="$4" features="${5:-}"
    local env=(env -u LIBSQLITE3_FLAGS -u CFLAGS)
    case "$sqlite" in
        stock | system) ;;
        trimmed) env+=(LIBSQLITE3_FLAGS="$app_sqlite_flags") ;;
        recommended) env+=(LIBSQLITE3_FLAGS="$app_sqlite_flags" CFLAGS="$app_cflags") ;;
    esac
    local args=(build --profile "$profile" --manifest-path "$manifest" --bin "$bin")
    [[ -n "$features" ]] && args+=(--features "$features")
    echo "== $name: $bin, profile $profile, SQLite $sqlite${features:+, features $features}" >&2
    "${env[@]}" CARGO_TARGET_DIR="$out/$sqlite" cargo "${args[@]}"
    cp "$out/$sqlite/$profile/$bin" "$bins/$name"
}

build baseline                 stock       release   baseline
build with-sdk                 stock       release   with-sdk     with-sdk
build with-sdk-system-sqlite   system      release   with-sdk     sdk
build with-sdk-trimmed-sqlite  trimmed     release   with-sdk     with-sdk
build with-sdk-recommended     recommended release   with-sdk     with-sdk
build only-sqlite-stock        stock       release   only-sqlite  only-sqlite
build only-sqlite-recommended  recommended release   only-sqlite  only-sqlite
build only-aes-gcm             stock       release   only-aes-gcm only-aes-gcm
build only-ws                  stock       release   only-ws      only-ws
build baseline-reference       stock       reference baseline
build with-sdk-reference       stock       reference with-sdk     with-sdk

# The recommended binary works: no server listens on port 9, so it queues and gives up.
smoke_dir="$(mktemp -d)"
smoke="$(cd "$smoke_dir" && TMPDIR="$smoke_dir" timeout 30 "$bins/with-sdk-recommended" 127.0.0.1:9 2>&1 || true)"
rm -rf "$smoke_dir"
if ! grep -q '^queued: ChatMessage' <<<"$smoke" || ! grep -q '^history: Ok(\[ChatMessage' <<<"$smoke"; then
    echo "with-sdk-recommended did not queue a message on the trimmed SQLite:" >&2
    echo "$smoke" >&2
    exit 1
fi

size() { stat -c %s "$bins/$1"; }
mb() { awk -v b="$1" 'BEGIN { printf "%.3f MB (%.3f MiB)", b / 1000000, b / 1048576 }'; }
line() { # NAME BASE-NAME
    local s d
    s=$(size "$1")
    d=$((s - $(size "$2")))
    printf '%-25s %10d B   %+10d B = %s\n' "$1" "$s" "$d" "$(mb "$d")"
}
verdict() { # NAME
    local d=$(( $(size "$1") - $(size baseline) ))
    if (( d <= 1000000 )); then
        echo "SDK delta ($1) $d B: within the SPEC's 1 MB ($((1000000 - d)) B to spare)"
    else
        echo "SDK delta ($1) $d B: OVER the SPEC's 1 MB by $((d - 1000000)) B"
    fi
}
rustc_v="$(rustc --version)"
cc_v="$(cc --version | head -1)"
target="$(rustc -vV | awk '/^host:/ {print $2}')"
body="$(
    echo "$rustc_v, $target, C compiler: $cc_v"
    echo "profile release (size-optimized, recommended): opt-level \"z\", lto = true (fat), codegen-units = 1, panic = \"abort\", strip = true"
    printf '%-25s %12s   %s\n' binary size "delta vs baseline"
    for b in baseline with-sdk with-sdk-trimmed-sqlite with-sdk-recommended with-sdk-system-sqlite \
        only-sqlite-stock only-sqlite-recommended only-aes-gcm only-ws; do
        line "$b" baseline
    done
    verdict with-sdk-recommended
    verdict with-sdk
    echo "profile reference (cargo's default release + strip): opt-level 3, lto = false, codegen-units = 16, panic = \"unwind\", strip = true"
    line baseline-reference baseline-reference
    line with-sdk-reference baseline-reference
    echo "SQLite: with-sdk = libsqlite3-sys defaults; trimmed = LIBSQLITE3_FLAGS of brand-app-config.toml;"
    echo "  recommended = LIBSQLITE3_FLAGS + CFLAGS ($app_cflags) of brand-app-config.toml; system = the platform's libsqlite3"
    echo "smoke run of with-sdk-recommended (no server): $(grep -c '' <<<"$smoke") lines, message queued in the encrypted cache"
    for b in with-sdk-recommended with-sdk-system-sqlite; do
        echo "$b shared libraries: $(ldd "$bins/$b" 2>/dev/null | awk '{print $1}' | grep -v vdso | tr '\n' ' ')"
    done
)"
echo "$body"

if (( record )); then
    body_file="$(mktemp)"
    printf '%s\n' "$body" >"$body_file"
    added() { awk -v b="$1" '$1 == b && $3 == "B" { sub(/^\+/, "", $4); print $4 }' "$body_file"; }
    (cd "$root" && cargo run -q --release -p switchboard-loadgen -- record --kind sdk-footprint \
        --command "bench/sdk-footprint/measure.sh --record" \
        --note "crates/switchboard-sdk linked by path from the standalone project bench/sdk-footprint" \
        --output "$body_file" \
        --figure "with_sdk_added_bytes=$(added with-sdk)" \
        --figure "with_sdk_recommended_added_bytes=$(added with-sdk-recommended)" \
        --figure "with_sdk_system_sqlite_added_bytes=$(added with-sdk-system-sqlite)")
    rm -f "$body_file"
fi
