#!/usr/bin/env bash
# Smoke run of the Kafka request decoder fuzzer (CI): FUZZ_SECONDS per target (default 20).
# Installs cargo-fuzz if missing; runs on stable through RUSTC_BOOTSTRAP=1.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
seconds="${FUZZ_SECONDS:-20}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (one time)"
    cargo install cargo-fuzz --locked
fi
corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
cp seeds/kafka_request/* "$corpus"/
echo "fuzzing kafka_request for ${seconds}s"
RUSTC_BOOTSTRAP=1 cargo fuzz run kafka_request "$corpus" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 -print_final_stats=1 2>&1 | tail -n 15
