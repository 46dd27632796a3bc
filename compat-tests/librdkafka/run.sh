#!/usr/bin/env bash
# librdkafka's own test suite (the tests/ directory of the librdkafka sources that the
# rdkafka-sys crate in Cargo.lock ships) against a real Sluice broker.
#
#   compat-tests/librdkafka/run.sh                  every test in allow-list.txt
#   compat-tests/librdkafka/run.sh 0081 0113        just these tests (allow-listed or not)
#   compat-tests/librdkafka/run.sh 0018:kip848      a test in another mode (see below)
#
# Exits non-zero when a test fails, naming it and its log.
#
# Environment:
#   JOBS=2                        make/cargo parallelism for the builds
#   SLUICE_BIN=path               use this broker binary instead of building target/release/sluice
#   LIBRDKAFKA_TEST_TIMEOUT=300   seconds one test may take before run.sh kills it (the
#                                 test-runner also enforces each test's own timeouts)
#   LIBRDKAFKA_TEST_PARALLEL=6    test numbers run at once (each in its own test-runner); the
#                                 tests mostly wait on timers, so this is not bound by cores
#   SUBTESTS=name TEST_DEBUG=cgrp,fetch TEST_LEVEL=3
#                                 passed to librdkafka's test-runner (see tests/README.md):
#                                 one sub-test only, client debug logs, more output
#
# Modes, each with its own fresh broker:
#   default       librdkafka's "default" test scenario: topics auto-created with 4 partitions,
#                 consumer groups on the classic protocol
#   kip848        the same with consumer groups on KIP-848 (TEST_CONSUMER_GROUP_PROTOCOL=consumer)
#   noautocreate  librdkafka's "noautocreate" scenario: topic auto-creation off
#
# librdkafka is built once per rdkafka-sys version under target/librdkafka-suite/ and reused.
# The last run's logs (brokers, one file per test, results.txt) are in
# target/librdkafka-suite/logs/. FINDINGS.md beside this script says why the tests that are not
# allow-listed fail.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
suite="$repo/target/librdkafka-suite"
logs="$suite/logs"
jobs="${JOBS:-2}"
per_test_timeout="${LIBRDKAFKA_TEST_TIMEOUT:-300}"
parallel="${LIBRDKAFKA_TEST_PARALLEL:-6}"
# The Kafka release whose feature set Sluice serves (its API versions start at Kafka 4's
# floors). The test-runner skips or adapts sub-tests by broker version: 4.0 has no message
# formats v0/v1, which Sluice does not store either.
kafka_version="4.0.0"
# Partitions of auto-created topics in librdkafka's test scenarios.
num_partitions=4
configure_flags=(--disable-ssl --disable-gssapi --disable-curl --disable-lz4-ext
    --enable-zlib --enable-zstd)
# C/C++ toolchain, the codecs the suite exercises (lz4 and snappy are built in), and RapidJSON,
# which the statistics tests (0053, 0110, ...) use to read librdkafka's stats.
debian_packages=(gcc g++ make pkg-config zlib1g-dev libzstd-dev rapidjson-dev)

say() { printf '[librdkafka-suite] %s\n' "$*"; }
die() {
    printf '[librdkafka-suite] error: %s\n' "$*" >&2
    exit 1
}

[[ $parallel =~ ^[1-9][0-9]*$ ]] || die "LIBRDKAFKA_TEST_PARALLEL=$parallel is not a positive number"
[[ $per_test_timeout =~ ^[1-9][0-9]*$ ]] ||
    die "LIBRDKAFKA_TEST_TIMEOUT=$per_test_timeout is not a positive number of seconds"

cd "$repo"
mkdir -p "$suite"

# One run at a time per checkout: the build dir and the logs dir are shared.
exec 9>"$suite/.lock"
flock -n 9 || die "another run.sh is using $suite; wait for it to finish"

# ---------------------------------------------------------------------------------------------
# Which tests: "NNNN" or "NNNN:mode" on the command line, "NNNN [mode]" in the list
# ---------------------------------------------------------------------------------------------
modes=(default kip848 noautocreate)
tests=()     # "NNNN:mode"
add_test() { # number [mode] source
    local number="$1" mode="${2:-default}" source="$3"
    [[ $number =~ ^[0-9]{4}$ ]] ||
        die "$source: '$number' is not a test number (four digits, e.g. 0081)"
    [[ " ${modes[*]} " == *" $mode "* ]] ||
        die "$source: unknown mode '$mode' for $number (one of: ${modes[*]})"
    tests+=("$number:$mode")
}
if [[ $# -gt 0 ]]; then
    for arg in "$@"; do
        mode=""
        [[ $arg == *:* ]] && mode="${arg#*:}"
        add_test "${arg%%:*}" "$mode" "argument '$arg'"
    done
else
    lineno=0
    while IFS= read -r line || [[ -n $line ]]; do
        lineno=$((lineno + 1))
        line="${line%%#*}"
        read -r -a fields <<<"$line"
        [[ ${#fields[@]} -eq 0 ]] && continue
        [[ ${#fields[@]} -le 2 ]] ||
            die "allow-list.txt:$lineno: expected 'NNNN [mode]  # what it covers'"
        add_test "${fields[0]}" "${fields[1]:-}" "allow-list.txt:$lineno"
    done <"$here/allow-list.txt"
    [[ ${#tests[@]} -gt 0 ]] || die "allow-list.txt lists no tests"
fi

# ---------------------------------------------------------------------------------------------
# Debian packages the librdkafka build needs
# ---------------------------------------------------------------------------------------------
missing=()
for p in "${debian_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        die "missing Debian packages: ${missing[*]} (as root: apt-get install -y ${missing[*]})"
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q "${missing[@]}" >/dev/null; then
        apt-get update -q >/dev/null || die "apt-get update failed"
        apt-get install -y -q "${missing[@]}" >/dev/null ||
            die "apt-get install -y ${missing[*]} failed"
    fi
fi

# ---------------------------------------------------------------------------------------------
# librdkafka and its test-runner, from the rdkafka-sys crate in Cargo.lock
# ---------------------------------------------------------------------------------------------
sys_version="$(awk '$0 == "name = \"rdkafka-sys\"" {
    getline; gsub(/^version = "|"$/, ""); print; exit }' Cargo.lock)"
[[ -n $sys_version ]] || die "rdkafka-sys is not in Cargo.lock"
find_src() {
    local d
    for d in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"rdkafka-sys-$sys_version"/librdkafka; do
        [[ -f $d/tests/test.c ]] && {
            echo "$d"
            return 0
        }
    done
    return 1
}
if ! src="$(find_src)"; then
    say "fetching the crates of Cargo.lock (cargo fetch --locked) for rdkafka-sys $sys_version"
    cargo fetch --locked || die "cargo fetch --locked failed"
    src="$(find_src)" || die "no librdkafka sources with tests/ for rdkafka-sys $sys_version" \
        "under ${CARGO_HOME:-$HOME/.cargo}/registry/src"
fi
build="$suite/rdkafka-sys-$sys_version"
stamp="$build/.built"
want_stamp="rdkafka-sys-$sys_version ${configure_flags[*]} ${debian_packages[*]}"

if [[ -x $build/tests/test-runner && -f $stamp && $(cat "$stamp") == "$want_stamp" ]]; then
    say "reusing the librdkafka $sys_version test-runner in $build"
else
    say "building librdkafka and its test suite from rdkafka-sys $sys_version" \
        "(log: $suite/build.log)"
    started=$SECONDS
    rm -rf "$build"
    cp -R "$src" "$build"
    chmod -R u+w "$build"
    if ! (
        cd "$build"
        ./configure "${configure_flags[@]}"
        make libs -j"$jobs"
        make -C tests build -j"$jobs"
    ) >"$suite/build.log" 2>&1; then
        tail -n 30 "$suite/build.log" >&2
        die "the librdkafka build failed; full log: $suite/build.log"
    fi
    echo "$want_stamp" >"$stamp"
    say "built in $((SECONDS - started))s"
fi

# ---------------------------------------------------------------------------------------------
# The broker
# ---------------------------------------------------------------------------------------------
if [[ -n ${SLUICE_BIN:-} ]]; then
    [[ -x $SLUICE_BIN ]] || die "SLUICE_BIN=$SLUICE_BIN is not an executable"
    sluice="$SLUICE_BIN"
    say "using the broker binary $sluice (SLUICE_BIN)"
else
    say "building sluice (cargo build --release --locked)"
    cargo build --release --locked -j"$jobs" --bin sluice ||
        die "cargo build --release failed; the suite needs the broker binary"
    sluice="$repo/target/release/sluice"
fi

rm -rf "$logs"
mkdir -p "$logs/tests" "$logs/running"
declare -A broker_pids=() # mode -> pid

stop_brokers() {
    local mode pid
    for mode in "${!broker_pids[@]}"; do
        pid="${broker_pids[$mode]}"
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            say "the $mode broker did not stop within 10s of SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    broker_pids=()
}
stop_tests() {
    local f
    for f in "$logs"/running/*; do
        # timeout passes the SIGTERM on to its test-runner.
        if [[ -f $f ]]; then
            kill -TERM "$(cat "$f")" 2>/dev/null || true
        fi
    done
}
trap 'stop_tests; stop_brokers' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_broker() { # mode: a fresh broker for the tests of one mode, and its test.conf
    local mode="$1" auto_create=true bootstrap="" pid heartbeat_ms=5000
    [[ $mode == noautocreate ]] && auto_create=false
    # A KIP-848 member heartbeats every interval from the moment it subscribes, and 0091 then
    # moves in 10 s steps: at Kafka's 5 s a heartbeat meets another member's leave within a
    # millisecond, and which arrives first decides the rebalance count the test asserts
    # (FINDINGS.md, "Races in the tests themselves"). At 3 s no heartbeat meets a leave.
    [[ $mode == kip848 ]] && heartbeat_ms=3000
    "$sluice" serve \
        --kafka-listen 127.0.0.1:0 --native-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --data-dir "$logs/data-$mode" \
        --num.partitions "$num_partitions" \
        --auto.create.topics.enable "$auto_create" \
        --group.consumer.heartbeat.interval.ms "$heartbeat_ms" \
        >"$logs/broker-$mode.out" 2>"$logs/broker-$mode.log" &
    pid=$!
    broker_pids[$mode]=$pid
    for _ in $(seq 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$logs/broker-$mode.log" >&2
            die "sluice exited before it was ready; its log: $logs/broker-$mode.log"
        fi
        bootstrap="$(sed -n 's/^sluice ready kafka=\([^ ]*\) .*/\1/p' "$logs/broker-$mode.out")"
        [[ -n $bootstrap ]] && break
        sleep 0.1
    done
    [[ -n $bootstrap ]] ||
        die "sluice printed no ready line within 30s; its log: $logs/broker-$mode.log"
    {
        printf 'bootstrap.servers=%s\n' "$bootstrap"
        # What the test-runner adds to its timeouts itself for N tests at a time (-pN).
        printf 'test.timeout.multiplier=%s\n' \
            "$(awk -v p="$parallel" 'BEGIN { print 1 + (p - 1) / 3 }')"
    } >"$logs/test-$mode.conf"
    say "mode $mode: sluice ready at $bootstrap (log: $logs/broker-$mode.log)"
}

# ---------------------------------------------------------------------------------------------
# The tests: one test-runner per test number, with every sub-test (no -Q: quick mode skips
# sub-tests) and without the broker-less ones (-L: they run against librdkafka's mock cluster
# and say nothing about Sluice). Up to $parallel test numbers run at once against the broker,
# each test-runner running its own variants one at a time (-p1); like librdkafka's own parallel
# runs, the test timeouts grow with the parallelism.
# ---------------------------------------------------------------------------------------------
results="$logs/results.txt"
: >"$results"

run_test() { # number mode: runs in the background, appends one line to results.txt
    local t="$1" mode="$2" name="$1" log rc table passed failed_sub verdict reason
    local started=$SECONDS scenario=default protocol=classic
    [[ $mode == default ]] || name="$t:$mode"
    [[ $mode == noautocreate ]] && scenario=noautocreate
    [[ $mode == kip848 ]] && protocol=consumer
    log="$logs/tests/${name/:/-}.log"
    set +e
    (
        cd "$build/tests"
        # Without CI=..., which would make the test-runner lengthen its timeouts and run three
        # tests at a time: runs behave the same on every machine.
        env -u CI -u TESTS \
            RDKAFKA_TEST_CONF="$logs/test-$mode.conf" \
            TEST_CONSUMER_GROUP_PROTOCOL="$protocol" \
            TEST_KAFKA_VERSION="$kafka_version" \
            LD_LIBRARY_PATH="$build/src:$build/src-cpp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
            timeout -k 10 "$per_test_timeout" \
            ./test-runner -L -p1 -s "$scenario" "$t" &
        # For the exit trap: timeout passes a SIGTERM on to the test-runner.
        echo $! >"$logs/running/${name/:/-}"
        # A failed assertion ends the test-runner with SIGABRT; bash's "Aborted" notice goes
        # to the log, not the terminal.
        wait $!
    ) >"$log" 2>&1
    rc=$?
    set -e
    rm -f "$logs/running/${name/:/-}"

    # The test-runner's summary table: "| 0081_admin   |     PASSED |  12.3s |" per variant.
    table="$(sed 's/\x1b\[[0-9;]*m//g; s/\x1b(B//g' "$log" |
        grep -E "^\|[[:space:]]*${t}_[A-Za-z0-9_]+[[:space:]]*\|" || true)"
    passed="$(grep -c '| *PASSED *|' <<<"$table" || true)"
    failed_sub="$(grep -c '| *FAILED *|\|| *RUNNING *|' <<<"$table" || true)"
    reason=""
    # 124: timeout's own verdict; 137: timeout's SIGKILL (-k) if the test-runner ignored the
    # SIGTERM, or the test-runner's own timeout handling (it SIGKILLs itself: a FAIL below).
    if [[ $rc -eq 124 || ($rc -eq 137 && $((SECONDS - started)) -ge $per_test_timeout) ]]; then
        verdict="TIMEOUT"
        reason="killed after ${per_test_timeout}s (LIBRDKAFKA_TEST_TIMEOUT)"
    elif [[ $rc -ne 0 || $failed_sub -gt 0 ]]; then
        verdict="FAIL"
        # The first failure: '### Test "..." failed at file:line:func() at <date>: ###' and
        # the assertion on the next line.
        reason="$(sed 's/\x1b\[[0-9;]*m//g; s/\x1b(B//g' "$log" |
            grep -m1 -A1 '^### Test .* failed at' |
            sed 's/^### Test "\(.*\)" failed at \([^ ]*\) at .*/\1 at \2:/' |
            tr '\n' ' ' | cut -c1-300 || true)"
        [[ -n $reason ]] || reason="test-runner exited with status $rc"
    elif [[ $passed -eq 0 ]]; then
        verdict="SKIPPED"
        reason="$(grep -o 'SKIPPING TEST: .*' "$log" | sort -u | sed 's/SKIPPING TEST: //' |
            tr '\n' ';' | cut -c1-200 || true)"
    else
        verdict="PASS"
    fi
    # One short write: lines of concurrent tests do not interleave.
    printf '%-17s %-7s %4ss  %s\n' "$name" "$verdict" "$((SECONDS - started))" "$reason" |
        tee -a "$results"
}

jobs_running=()
# Waits until fewer than $1 tests run; dies if the broker died meanwhile.
wait_for_slots() {
    local limit="$1" alive p mode
    while :; do
        alive=()
        for p in "${jobs_running[@]}"; do
            kill -0 "$p" 2>/dev/null && alive+=("$p")
        done
        jobs_running=("${alive[@]}")
        for mode in "${!broker_pids[@]}"; do
            kill -0 "${broker_pids[$mode]}" 2>/dev/null && continue
            tail -n 30 "$logs/broker-$mode.log" >&2
            die "the $mode broker died while these tests ran: $(ls "$logs/running")" \
                "- a broker bug (its log: $logs/broker-$mode.log; the tests': $logs/tests/)"
        done
        [[ ${#jobs_running[@]} -lt $limit ]] && return 0
        sleep 0.2
    done
}

say "running ${#tests[@]} test(s), $parallel at a time, against Kafka ${kafka_version}'s" \
    "feature set; logs: $logs/tests/"
for mode in "${modes[@]}"; do
    [[ " ${tests[*]} " == *":$mode "* ]] && start_broker "$mode"
done
for entry in "${tests[@]}"; do
    wait_for_slots "$parallel"
    run_test "${entry%%:*}" "${entry#*:}" &
    jobs_running+=($!)
done
wait_for_slots 1
stop_brokers

failed="$(grep -v '^[^ ]* *PASS ' "$results" || true)"
if [[ -n $failed ]]; then
    echo
    say "$(wc -l <<<"$failed") of ${#tests[@]} test(s) did not pass:"
    while read -r name verdict _; do
        printf '  %-17s %-7s %s\n' "$name" "$verdict" "$logs/tests/${name/:/-}.log"
    done <<<"$failed"
    say "SKIPPED: every sub-test skipped itself (the log says why); TIMEOUT: killed by run.sh"
    say "re-run one: compat-tests/librdkafka/run.sh NNNN (TEST_DEBUG=cgrp,fetch,protocol for" \
        "client debug logs); broker logs: $logs/broker-*.log"
    exit 1
fi
rm -rf "$logs"/data-*
say "all ${#tests[@]} test(s) passed"
