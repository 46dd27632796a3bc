#!/usr/bin/env bash
# Runs every test of the project: the one command the README names and CI calls.
#   ./test.sh            everything
#   FUZZ_SECONDS=60 ./test.sh   a longer fuzz smoke run
# It installs what the tests need (cargo-fuzz; librdkafka is built from source by the rdkafka
# crate).
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

step "dependency rules: storage must not depend on kafka-protocol"
if cargo tree -p storage -e normal --locked | grep -q kafka-protocol; then
    echo "storage depends on kafka-protocol; it must know batches, not Kafka APIs" >&2
    exit 1
fi
step "dependency rules: protocol depends on tokio only with its client feature"
if cargo tree -p protocol -e normal --locked | grep -q ' tokio v'; then
    echo "protocol depends on tokio without the client feature" >&2
    exit 1
fi

step "unit, integration, property, torn-tail, crash, disk-full and Kafka client tests"
cargo test --workspace --locked

step "Kafka client matrix: confluent-kafka, kafka-python, aiokafka, kafkajs, kcat (compat-tests/run-clients.sh)"
compat-tests/run-clients.sh

step "librdkafka's own test suite against the broker (compat-tests/librdkafka/run.sh)"
compat-tests/librdkafka/run.sh

step "fuzz smoke runs (segment recovery, Kafka request decoding, native frame decoding)"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" storage/fuzz/smoke.sh
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" protocol/fuzz/smoke.sh

step "benchmark smoke run (proves the storage bench runs; figures in benches/RESULTS.md)"
cargo run --release --locked -p sluice-benches --bin storage-bench -- --quick >/dev/null

step "Kafka load generator smoke run (librdkafka against kafka-sink and sluice; figures in benches/RESULTS.md)"
cargo build --release --locked -p sluice --bin sluice
cargo build --release --locked -p sluice-benches --bin kafka-load --bin kafka-sink
cargo run --release --locked -p sluice-benches --bin kafka-load -- --smoke >/dev/null

echo
echo "all tests passed"
