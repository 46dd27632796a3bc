#!/usr/bin/env bash
# kcat (Debian's package: kcat 1.7 on librdkafka 2.0) against a running Sluice broker.
#
#   SLUICE_BOOTSTRAP=127.0.0.1:PORT compat-tests/kcat/kcat.sh [scenario ...]   # all when none
#
# Environment:
#   SLUICE_BOOTSTRAP  the broker (required)
#   SLUICE_DATA_DIR   its data directory: the compression scenarios then check the stored batches
#   SLUICE_RESULTS    a file to append `kcat:<scenario><TAB>pass|fail<TAB>...` lines to
#   PYTHON            a Python with confluent-kafka (default: target/compat-venv/bin/python),
#                     used to create multi-partition topics, which kcat cannot do
# Each scenario uses its own topic; each kcat call has a deadline (KCAT_TIMEOUT_S, default 30).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/target/compat-venv/bin/python}"
HELPERS="$HERE/../python/helpers.py"
KCAT_TIMEOUT_S="${KCAT_TIMEOUT_S:-30}"
SCENARIOS=(roundtrip compression-gzip compression-snappy compression-lz4 compression-zstd metadata
    auto-create offsets-for-times commit-resume)

die() { echo "kcat.sh: $*" >&2; exit 2; }
[[ -n "${SLUICE_BOOTSTRAP:-}" ]] || die "SLUICE_BOOTSTRAP is not set: run compat-tests/run-clients.sh, or start a broker and export SLUICE_BOOTSTRAP=127.0.0.1:PORT"
command -v kcat >/dev/null || die "kcat is not installed: apt-get install kcat"
[[ -x "$PYTHON" ]] || die "no Python at $PYTHON: run compat-tests/run-clients.sh once (it makes target/compat-venv), or set PYTHON"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# --- helpers (a failing command fails the scenario: each runs in a subshell with set -eE) ------

fail() { echo "FAIL: $*" >&2; exit 1; }

kc() {
    local rc=0
    timeout "$KCAT_TIMEOUT_S" kcat -b "$SLUICE_BOOTSTRAP" -m 10 "$@" || rc=$?
    [[ $rc -ne 124 ]] || fail "kcat $* did not finish in ${KCAT_TIMEOUT_S}s"
    return "$rc"
}

name() { echo "kcat-$1-$(head -c6 /dev/urandom | od -An -tx1 | tr -d ' \n')"; }
create_topic() { "$PYTHON" "$HELPERS" create-topic "$1" "$2"; }

# Produces $3 messages to partition $2 of topic $1, with keys and three headers, from a file;
# appends what a consumer must print (format FMT) to $WORK/expected.
PAD=""  # appended to every value; the compression scenarios set it (see compression())
produce_partition() {
    local topic=$1 p=$2 n=$3 i
    shift 3
    : >"$WORK/in"
    for ((i = 0; i < n; i++)); do
        printf 'key-%d-%d:%s/p%d/m%d/ value with spaces%s\n' "$p" "$i" "$topic" "$p" "$i" "$PAD" >>"$WORK/in"
        printf '%d\t%d\tkey-%d-%d\t%s/p%d/m%d/ value with spaces%s\torigin=sluice-compat,part=%d,empty=\n' \
            "$p" "$i" "$p" "$i" "$topic" "$p" "$i" "$PAD" "$p" >>"$WORK/expected"
    done
    kc -P -t "$topic" -p "$p" -K: -H origin=sluice-compat -H "part=$p" -H empty= "$@" -l "$WORK/in"
}
FMT='%p\t%o\t%k\t%s\t%h\n'

# Consumes the whole topic (all partitions, from the beginning, exit at the end) and compares it
# with $WORK/expected: every message once, each partition in order, offsets, keys, headers.
consume_and_compare() {
    local topic=$1
    kc -C -t "$topic" -o beginning -e -q -f "$FMT" >"$WORK/got"
    # A stable sort by partition keeps each partition's messages in the order they arrived.
    sort -s -t$'\t' -k1,1n "$WORK/got" >"$WORK/got.sorted"
    diff -u "$WORK/expected" "$WORK/got.sorted" >"$WORK/diff" ||
        fail "consumed messages differ from those produced (- expected, + got):"$'\n'"$(head -40 "$WORK/diff")"
}

# --- scenarios -----------------------------------------------------------------------------

scenario_roundtrip() {
    local topic p
    topic=$(name roundtrip)
    create_topic "$topic" 3
    for p in 0 1 2; do produce_partition "$topic" "$p" 40; done
    consume_and_compare "$topic"
}

compression() {
    local codec=$1 topic p
    # librdkafka sends a batch uncompressed when compressing does not make it smaller: pad every
    # value so that even a batch of one message shrinks, and the stored codec can be checked.
    PAD=$(printf ' compressible%.0s' {1..40})
    topic=$(name "compression-$codec")
    create_topic "$topic" 2
    for p in 0 1; do produce_partition "$topic" "$p" 30 -X compression.codec="$codec" -X acks=all; done
    if [[ -n "${SLUICE_DATA_DIR:-}" ]]; then
        "$PYTHON" "$HELPERS" assert-stored "$codec" "$topic" 2 60 || fail "not stored as $codec batches"
    fi
    consume_and_compare "$topic"
}
scenario_compression_gzip() { compression gzip; }
scenario_compression_snappy() { compression snappy; }
scenario_compression_lz4() { compression lz4; }
scenario_compression_zstd() { compression zstd; }

scenario_metadata() {
    local topic
    topic=$(name metadata)
    create_topic "$topic" 3
    kc -L -J -t "$topic" >"$WORK/one.json"
    kc -L -J >"$WORK/all.json"
    "$PYTHON" - "$topic" "$SLUICE_BOOTSTRAP" "$WORK/one.json" "$WORK/all.json" <<'EOF'
import json, sys
topic, bootstrap, one, every = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
brokers = {b["id"]: b["name"] for b in one["brokers"]}
assert list(brokers.values()) == [bootstrap], f"brokers {brokers}, expected one at {bootstrap}"
assert one["controllerid"] in brokers, f"controller {one['controllerid']} not among {brokers}"
[t] = one["topics"]
assert t["topic"] == topic and "error" not in t, t
assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2], t
for p in t["partitions"]:
    assert p["leader"] in brokers and [r["id"] for r in p["replicas"]] == [p["leader"]], p
    assert [r["id"] for r in p["isrs"]] == [p["leader"]], p
names = [t["topic"] for t in every["topics"]]
assert topic in names, f"{topic} missing from the full listing {names}"
assert len(names) == len(set(names)), f"a topic listed twice: {names}"
EOF
}

scenario_auto_create() {
    local topic
    topic=$(name auto-create)
    printf 'k:first\n' | kc -P -t "$topic" -K:
    kc -L -J -t "$topic" >"$WORK/meta.json"
    "$PYTHON" - "$topic" "$WORK/meta.json" <<'EOF'
import json, sys
[t] = json.load(open(sys.argv[2]))["topics"]
assert t["topic"] == sys.argv[1] and "error" not in t and len(t["partitions"]) >= 1, t
EOF
    [[ "$(kc -C -t "$topic" -o beginning -e -q -f '%k=%s\n')" == "k=first" ]] ||
        fail "the auto-created topic does not hold the message produced"
}

scenario_offsets_for_times() {
    # kcat produces with the current time; three separate runs make distinct timestamps likely,
    # and the expected offsets are computed from the timestamps the broker returns, so the check
    # holds even when two messages share a millisecond.
    local topic batch i
    topic=$(name offsets-for-times)
    create_topic "$topic" 1
    for batch in 0 1 2; do
        for i in 0 1; do echo "b$batch-m$i"; done | kc -P -t "$topic" -p 0
    done
    kc -C -t "$topic" -o beginning -e -q -f '%o %T %s\n' >"$WORK/all"
    [[ $(wc -l <"$WORK/all") -eq 6 ]] || fail "expected 6 messages, got: $(cat "$WORK/all")"
    local ts expected got
    for i in 1 2 3 4 5; do
        ts=$(awk -v i="$i" 'NR == i + 1 { print $2 }' "$WORK/all")
        expected=$(awk -v ts="$ts" '$2 >= ts { print $1; exit }' "$WORK/all")
        got=$(kc -Q -t "$topic:0:$ts" | awk '{ print $NF }')
        [[ "$got" == "$expected" ]] || fail "-Q at timestamp $ts: offset $got, expected $expected"
        kc -C -t "$topic" -p 0 -o "s@$ts" -e -q -f '%o %T %s\n' >"$WORK/from"
        diff -u <(awk -v o="$expected" '$1 >= o' "$WORK/all") "$WORK/from" ||
            fail "-o s@$ts did not start at offset $expected"
    done
    ts=$(($(awk 'END { print $2 }' "$WORK/all") + 1))
    got=$(kc -Q -t "$topic:0:$ts" | awk '{ print $NF }')
    [[ "$got" == "-1" ]] || fail "-Q past the newest timestamp: offset $got, expected -1 (end)"
}

scenario_commit_resume() {
    # A balanced consumer (-G) reads everything and commits on close; the next one in the group
    # reads only what was produced since.
    local topic group p
    topic=$(name commit-resume)
    group=$(name group)
    create_topic "$topic" 2
    for p in 0 1; do printf 'p%d-first-%d\n' "$p" 0 "$p" 1 "$p" 2 | kc -P -t "$topic" -p "$p"; done
    kc -G "$group" -X auto.offset.reset=earliest -e -q -f '%p %o %s\n' "$topic" | sort -s -k1,1n >"$WORK/first"
    diff -u <(printf '0 %d p0-first-%d\n' 0 0 1 1 2 2; printf '1 %d p1-first-%d\n' 0 0 1 1 2 2) "$WORK/first" ||
        fail "the first group member did not read each message once, in order"
    for p in 0 1; do printf 'p%d-second-%d\n' "$p" 0 "$p" 1 | kc -P -t "$topic" -p "$p"; done
    kc -G "$group" -X auto.offset.reset=earliest -e -q -f '%p %o %s\n' "$topic" | sort -s -k1,1n >"$WORK/second"
    diff -u <(printf '0 %d p0-second-%d\n' 3 0 4 1; printf '1 %d p1-second-%d\n' 3 0 4 1) "$WORK/second" ||
        fail "the second group member did not resume at the committed offsets"
}

# --- runner --------------------------------------------------------------------------------

(($# > 0)) || set -- "${SCENARIOS[@]}"
failed=()
for scenario in "$@"; do
    fn="scenario_${scenario//-/_}"
    declare -F "$fn" >/dev/null || die "no scenario $scenario (have: ${SCENARIOS[*]})"
    echo "--- kcat:$scenario"
    : >"$WORK/expected"
    rc=0
    (
        set -eE
        trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
        "$fn"
    ) || rc=$?
    if ((rc == 0)); then outcome=pass; else outcome=fail; failed+=("$scenario"); fi
    echo "--- kcat:$scenario $outcome"
    if [[ -n "${SLUICE_RESULTS:-}" ]]; then
        printf 'kcat:%s\t%s\t%s\n' "$scenario" "$outcome" "compat-tests/kcat/kcat.sh $scenario" >>"$SLUICE_RESULTS"
    fi
done
echo "kcat: $(($# - ${#failed[@]})) passed, ${#failed[@]} failed${failed[*]:+ (${failed[*]})}"
((${#failed[@]} == 0))
