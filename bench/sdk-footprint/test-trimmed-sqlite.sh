#!/usr/bin/env bash
# Runs the SDK's whole test suite (unit tests and the integration tests against an in-process
# server) on SQLite built with the LIBSQLITE3_FLAGS and CFLAGS of brand-app-config.toml, less
# five API-only omissions that the test server's sqlx calls (sqlite3_column_decltype,
# sqlite3_progress_handler, column metadata, sqlite3_serialize/deserialize,
# sqlite3_load_extension) and the SDK does not: the footprint binaries link without them.
# Its own target directory (target/sqlite-trimmed), because the flags change what
# libsqlite3-sys compiles.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"
config_value() { sed -n "s/^$1 = \"\\(.*\\)\"\$/\\1/p" "$here/brand-app-config.toml"; }
flags=" $(config_value LIBSQLITE3_FLAGS) "
for needed_by_sqlx in -DSQLITE_OMIT_DECLTYPE -DSQLITE_OMIT_PROGRESS_CALLBACK -USQLITE_ENABLE_COLUMN_METADATA \
    -DSQLITE_OMIT_DESERIALIZE -DSQLITE_OMIT_LOAD_EXTENSION; do
    flags="${flags/ $needed_by_sqlx / }"
done
LIBSQLITE3_FLAGS="$(echo $flags)" CFLAGS="$(config_value CFLAGS)" CARGO_TARGET_DIR="$root/target/sqlite-trimmed" \
    cargo test -p switchboard-sdk "$@"
