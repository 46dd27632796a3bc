#!/usr/bin/env bash
# Runs every test of the project: the one command the README names and CI calls.
#   ./test.sh            everything
#   FUZZ_SECONDS=60 ./test.sh   a longer fuzz smoke run
# It installs what the tests need (cargo-fuzz today; Kafka clients once the broker exists).
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

step "dependency rules: storage must not depend on kafka-protocol"
if cargo tree -p storage -e normal --locked | grep -q kafka-protocol; then
    echo "storage depends on kafka-protocol; it must know batches, not Kafka APIs" >&2
    exit 1
fi

step "unit, integration, property, torn-tail, crash and disk-full tests"
cargo test --workspace --locked

step "fuzz smoke run (segment recovery)"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" storage/fuzz/smoke.sh

step "benchmark smoke run (proves the storage bench runs; figures in benches/RESULTS.md)"
cargo run --release --locked -p sluice-benches --bin storage-bench -- --quick >/dev/null

echo
echo "all tests passed"
