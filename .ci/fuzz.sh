#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz) of the protocol's frame decoders:
# fuzz/fuzz_targets/client_frame.rs (what the server decodes from every socket) and
# server_frame.rs (what the SDK decodes), each for FUZZ_SECONDS (default 60), starting from
# the frames of the protocol's snapshots (fuzz/seeds/). A crash or a frame that does not
# encode back to itself fails the script; libFuzzer leaves the input in fuzz/artifacts/.
# New inputs it finds go to target/fuzz-corpus/ (kept between runs, not committed).
#
# Needs a nightly toolchain (`rustup toolchain install nightly`); cargo-fuzz is installed into
# target/tools on first use. The decoders of tokens and configuration live in crates that need
# aws-lc (C) and are fuzzed property-based in `cargo test` instead (docs/security.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${FUZZ_SECONDS:-60}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "coverage-guided fuzzing needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
cargo_fuzz="$root/target/tools/bin/cargo-fuzz"
if [[ ! -x "$cargo_fuzz" ]]; then
    cargo install cargo-fuzz --locked --root "$root/target/tools"
fi
for target in client_frame server_frame; do
    corpus="$root/target/fuzz-corpus/$target"
    mkdir -p "$corpus"
    echo "==> fuzzing $target for $seconds s"
    PATH="$root/target/tools/bin:$PATH" cargo +nightly fuzz run "$target" "$corpus" "fuzz/seeds/$target" \
        -- -max_total_time="$seconds" -max_len=65536 -print_final_stats=1
done
