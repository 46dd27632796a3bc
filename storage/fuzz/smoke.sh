#!/usr/bin/env bash
# Short fuzzing smoke run of the storage recovery targets, for CI:
#
#   bash storage/fuzz/smoke.sh                 # every target, 20 s each
#   FUZZ_SECONDS=300 bash storage/fuzz/smoke.sh recover_log
#
# Runs on stable Rust: cargo-fuzz needs nightly flags (-Zsanitizer=address, sanitizer
# coverage), which RUSTC_BOOTSTRAP=1 unlocks. Each target starts from a temporary copy of its
# seeds (storage/fuzz/seeds/<target>/) and also replays storage/fuzz/known/<target>/ (inputs
# that once failed). A crash, panic, timeout or memory blow-up fails the script; the input is
# saved under storage/fuzz/artifacts/<target>/ and printed in hex, since CI's clone is thrown
# away.
#
# Environment:
#   FUZZ_SECONDS           fuzzing time per target (default 20; test.sh passes it on)
#   SLUICE_FUZZ_SANITIZER  cargo fuzz --sanitizer: address (default), none, ...
#   SLUICE_FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (default 30)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

seconds="${FUZZ_SECONDS:-20}"
sanitizer="${SLUICE_FUZZ_SANITIZER:-address}"
timeout="${SLUICE_FUZZ_TIMEOUT:-30}"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=(scan_segment recover_log)
fi

export RUSTC_BOOTSTRAP=1
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
echo "smoke: $(cargo fuzz --version), $(rustc --version), sanitizer $sanitizer, ${seconds}s per target"

work="$(mktemp -d)"
# recover_log writes a partition directory per input: put them on tmpfs when there is one, so
# the fdatasyncs recovery does cost nothing, and remove whatever a crash leaves behind.
logs="$(mktemp -d -p /dev/shm sluice-fuzz.XXXXXX 2>/dev/null || mktemp -d)"
trap 'rm -rf "$work" "$logs"' EXIT
export SLUICE_FUZZ_TMPDIR="$logs"

start=$(date +%s)
# `cargo fuzz build` takes one target or all: build all (they share every crate), so the
# fuzzing time below is not spent compiling.
cargo fuzz build --sanitizer "$sanitizer"
echo "smoke: build took $(( $(date +%s) - start ))s"

failed=()
for target in "${targets[@]}"; do
    corpus="$work/corpus-$target"
    mkdir -p "$corpus" "artifacts/$target"
    cp seeds/"$target"/* "$corpus"/
    inputs=("$corpus" "seeds/$target")
    if [ -d "known/$target" ]; then
        inputs+=("known/$target")
    fi
    before="$(ls "artifacts/$target")"
    t0=$(date +%s)
    echo "smoke: fuzzing $target for ${seconds}s"
    if cargo fuzz run --sanitizer "$sanitizer" "$target" "${inputs[@]}" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=16384 -timeout="$timeout" \
        -print_final_stats=1 >"$work/$target.log" 2>&1; then
        grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$work/$target.log" || true
        echo "smoke: $target ok in $(( $(date +%s) - t0 ))s"
    else
        echo "smoke: $target FAILED after $(( $(date +%s) - t0 ))s:"
        grep -E -A14 'panicked at|ERROR: |SUMMARY: ' "$work/$target.log" | head -n 80 || tail -n 40 "$work/$target.log"
        for artifact in artifacts/"$target"/*; do
            [ -e "$artifact" ] || continue
            if ! grep -qxF "$(basename "$artifact")" <<<"$before"; then
                echo "smoke: failing input $here/$artifact ($(wc -c <"$artifact") bytes), hex:"
                od -An -v -tx1 "$artifact" | tr -d ' \n' | head -c 65536
                echo
            fi
        done
        failed+=("$target")
    fi
done

echo "smoke: total $(( $(date +%s) - start ))s"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "smoke: FAILED: ${failed[*]}"
    exit 1
fi
echo "smoke: all targets ok"
