#!/usr/bin/env bash
# Smoke run of the Kafka request and native frame decoder fuzzers (CI): FUZZ_SECONDS per target (default 20).
# Installs cargo-fuzz if missing; runs on stable through RUSTC_BOOTSTRAP=1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
seconds="${FUZZ_SECONDS:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (one time)"
    cargo install cargo-fuzz --locked
fi
run_target() {
    local target="$1"
    local corpus
    corpus="$(mktemp -d)"
    cp "seeds/$target"/* "$corpus"/
    echo "fuzzing $target for ${seconds}s"
    RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 2>&1 | tail -n 15
    rm -rf "$corpus"
}
run_target kafka_request
run_target native_frame
