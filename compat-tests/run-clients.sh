#!/usr/bin/env bash
# The client matrix: confluent-kafka, kafka-python, aiokafka (pytest), kafkajs (node --test) and
# kcat (a shell script), each against one real Sluice broker process.
#
#   compat-tests/run-clients.sh                  every client
#   compat-tests/run-clients.sh kafkajs kcat     some of them (confluent-kafka kafka-python aiokafka kafkajs kcat)
#
# It installs what it needs and skips what is installed already: a venv in target/compat-venv
# (wheels only, versions pinned in python/requirements.txt), node/node_modules (npm ci from the
# committed lock file), kcat (apt-get). Then it builds the broker, starts it on ephemeral ports
# in a temporary data directory, runs every scenario and compares the outcomes with
# clients-allow-list.txt: an allow-listed scenario that fails (or does not run) fails the run; any
# other failure is a known gap (FINDINGS-clients.md) and is only reported. Logs: target/compat-clients/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
COMPAT="$ROOT/compat-tests"
VENV="$ROOT/target/compat-venv"
LOGS="$ROOT/target/compat-clients"
ALLOW="$COMPAT/clients-allow-list.txt"
CLIENTS=(confluent-kafka kafka-python aiokafka kafkajs kcat)

die() { echo "run-clients.sh: $*" >&2; exit 2; }
now() { echo "${EPOCHREALTIME/./}"; }  # microseconds
since() { local tenths=$((($(now) - $1) / 100000)); echo "$((tenths / 10)).$((tenths % 10))s"; }
note() { printf '  %s\n' "$*"; }

(($# > 0)) || set -- "${CLIENTS[@]}"
for client in "$@"; do
    [[ " ${CLIENTS[*]} " == *" $client "* ]] || die "unknown client '$client' (have: ${CLIENTS[*]})"
done
SELECTED=" $* "
wants() { [[ "$SELECTED" == *" $1 "* ]]; }
# kcat's scenarios use the venv too, to create multi-partition topics.
wants_python() { wants confluent-kafka || wants kafka-python || wants aiokafka || wants kcat; }

rm -rf "$LOGS"
mkdir -p "$LOGS"

# --- installs --------------------------------------------------------------------------------
t_install=$(now)

if wants_python; then
    command -v python3 >/dev/null || die "python3 is missing: install Python 3.10 or newer"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
        die "python3 is $(python3 -V 2>&1); the Python clients need 3.10 or newer"
    want_stamp="$(sha256sum "$COMPAT/python/requirements.txt" | cut -d' ' -f1) $(python3 -V 2>&1)"
    if [[ "$(cat "$VENV/.sluice-stamp" 2>/dev/null)" == "$want_stamp" ]]; then
        note "python: $VENV is up to date"
    else
        note "python: installing $COMPAT/python/requirements.txt into $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV" || die "python3 -m venv failed: on Debian, apt-get install python3-venv"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: \
            -r "$COMPAT/python/requirements.txt" >"$LOGS/pip-install.log" 2>&1 ||
            die "pip install failed, see $LOGS/pip-install.log"
        "$VENV/bin/pip" check >>"$LOGS/pip-install.log" 2>&1 ||
            die "the pinned Python packages conflict (pip check), see $LOGS/pip-install.log"
        echo "$want_stamp" >"$VENV/.sluice-stamp"
    fi
fi

if wants kafkajs; then
    { command -v node && command -v npm; } >/dev/null || die "node and npm are missing: install Node 20 or newer"
    node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
        die "node is $(node --version); kafkajs's scenarios need node 20 or newer (node --test reporters)"
    want_stamp="$(sha256sum "$COMPAT/node/package-lock.json" | cut -d' ' -f1) $(node --version)"
    if [[ "$(cat "$COMPAT/node/node_modules/.sluice-stamp" 2>/dev/null)" == "$want_stamp" ]]; then
        note "node: compat-tests/node/node_modules is up to date"
    else
        note "node: npm ci in compat-tests/node"
        (cd "$COMPAT/node" && npm ci --no-audit --no-fund --ignore-scripts >"$LOGS/npm-ci.log" 2>&1) ||
            die "npm ci failed, see $LOGS/npm-ci.log"
        echo "$want_stamp" >"$COMPAT/node/node_modules/.sluice-stamp"
    fi
fi

if wants kcat && ! command -v kcat >/dev/null; then
    [[ $EUID -eq 0 ]] || die "kcat is missing: sudo apt-get install kcat (or run without kcat: $0 confluent-kafka kafka-python aiokafka kafkajs)"
    note "kcat: apt-get install kcat"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kcat; } \
        >"$LOGS/apt-get.log" 2>&1 || die "apt-get install kcat failed, see $LOGS/apt-get.log"
fi
note "installs: $(since "$t_install")"

# --- the broker ------------------------------------------------------------------------------
t_build=$(now)
cargo build --release --locked --bin sluice 2>"$LOGS/cargo-build.log" ||
    { tail -20 "$LOGS/cargo-build.log" >&2; die "cargo build --release failed, see $LOGS/cargo-build.log"; }
note "build: $(since "$t_build")"

TMP="$(mktemp -d)"
BROKER_PID=""
stop_broker() {
    if [[ -n "$BROKER_PID" ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill -TERM "$BROKER_PID" 2>/dev/null || true
        local deadline=$((SECONDS + 15))
        while kill -0 "$BROKER_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        kill -KILL "$BROKER_PID" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap stop_broker EXIT
trap 'exit 130' INT TERM

RUST_LOG="${RUST_LOG:-warn}" "$ROOT/target/release/sluice" serve \
    --kafka-listen 127.0.0.1:0 --native-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --data-dir "$TMP/data" \
    >"$LOGS/broker.stdout" 2>"$LOGS/broker.log" &
BROKER_PID=$!
deadline=$((SECONDS + 30))
until grep -q '^sluice ready ' "$LOGS/broker.stdout" 2>/dev/null; do
    kill -0 "$BROKER_PID" 2>/dev/null || { tail -20 "$LOGS/broker.log" >&2; die "the broker exited before it was ready, see $LOGS/broker.log"; }
    ((SECONDS < deadline)) || die "the broker printed no ready line in 30s, see $LOGS/broker.log"
    sleep 0.05
done
ready="$(grep -m1 '^sluice ready ' "$LOGS/broker.stdout")"
SLUICE_BOOTSTRAP="$(sed -n 's/.* kafka=\([^ ]*\).*/\1/p' <<<"$ready")"
[[ -n "$SLUICE_BOOTSTRAP" ]] || die "no kafka= in the ready line: $ready"
note "broker: $ready"
export SLUICE_BOOTSTRAP SLUICE_DATA_DIR="$TMP/data" SLUICE_RESULTS="$LOGS/results.tsv"
: >"$SLUICE_RESULTS"

# --- the clients -----------------------------------------------------------------------------
run_client() {
    local client=$1 t rc=0
    t=$(now)
    case "$client" in
        confluent-kafka | kafka-python | aiokafka)
            (cd "$COMPAT/python" && COLUMNS=200 "$VENV/bin/python" -m pytest "test_${client//-/_}.py") ;;
        kafkajs)  # the spec reporter to the log, ours (one line a scenario) to the results
            (cd "$COMPAT/node" && node --test --test-reporter=spec --test-reporter-destination=stdout \
                --test-reporter=./results-reporter.mjs --test-reporter-destination="$LOGS/kafkajs.results" \
                test/kafkajs.test.mjs) ;;
        kcat)
            PYTHON="$VENV/bin/python" "$COMPAT/kcat/kcat.sh" ;;
    esac >"$LOGS/$client.log" 2>&1 || rc=$?
    if [[ $client == kafkajs && -f "$LOGS/kafkajs.results" ]]; then
        cat "$LOGS/kafkajs.results" >>"$SLUICE_RESULTS"
    fi
    note "$client: $(since "$t") (exit $rc), log $LOGS/$client.log"
}

t_run=$(now)
for client in "$@"; do run_client "$client"; done
note "scenarios: $(since "$t_run")"

# --- the verdict -----------------------------------------------------------------------------
declare -A outcome where allowed
while IFS=$'\t' read -r key result place; do
    [[ -n "$key" ]] || continue
    outcome[$key]=$result
    where[$key]=$place
done <"$SLUICE_RESULTS"

bad=()
lineno=0
while IFS= read -r line || [[ -n "$line" ]]; do
    lineno=$((lineno + 1))
    line="${line%%#*}"
    line="${line//[[:space:]]/}"
    [[ -n "$line" ]] || continue
    [[ "$line" =~ ^([a-z0-9-]+):[a-z0-9-]+$ ]] || die "$ALLOW:$lineno: '$line' is not client:scenario"
    [[ " ${CLIENTS[*]} " == *" ${BASH_REMATCH[1]} "* ]] || die "$ALLOW:$lineno: unknown client in '$line'"
    allowed[$line]=1
    [[ "$SELECTED" == *" ${BASH_REMATCH[1]} "* ]] || continue
    case "${outcome[$line]:-missing}" in
        pass) ;;
        missing) bad+=("$line: did not run (renamed or removed? the allow-list only grows) -- log $LOGS/${BASH_REMATCH[1]}.log") ;;
        *) bad+=("$line: ${outcome[$line]} (${where[$line]}) -- log $LOGS/${BASH_REMATCH[1]}.log") ;;
    esac
done <"$ALLOW"

passed=0 gaps=() unlisted=()
for key in $(printf '%s\n' "${!outcome[@]}" | sort); do
    if [[ -n "${allowed[$key]:-}" ]]; then
        [[ "${outcome[$key]}" == pass ]] && passed=$((passed + 1))
    elif [[ "${outcome[$key]}" == pass ]]; then
        unlisted+=("$key")
    else
        gaps+=("$key")
    fi
done

# One line of why a scenario failed, from its client's log.
reason() {
    local key=$1 client=${1%%:*} scenario=${1#*:} log="$LOGS/${1%%:*}.log" line=""
    case "$client" in
        kcat) line=$(sed -n "/^--- kcat:$scenario\$/,/^--- kcat:$scenario /p" "$log" | grep -m1 '^FAIL' || true) ;;
        kafkajs) line=$(grep -m1 -A1 "^✖ $scenario (" "$log" | tail -1 || true) ;;
        *) line=$(grep -m1 -F "FAILED ${where[$key]} " "$log" | sed 's/^FAILED [^ ]* - //' || true) ;;
    esac
    line="${line#"${line%%[![:space:]]*}"}"
    echo "${line:0:160}"
}

echo
echo "client matrix (logs in $LOGS):"
for key in "${gaps[@]}"; do note "known gap: $key -- $(reason "$key")"; done
for key in "${unlisted[@]}"; do note "passes but not allow-listed: $key -- add it to $ALLOW"; done
for key in "${bad[@]}"; do note "FAILED allow-listed: $key"; note "    $(reason "${key%%: *}")"; done
echo "client matrix: $passed allow-listed scenarios passed, ${#bad[@]} allow-listed failing, ${#gaps[@]} known gaps, ${#unlisted[@]} passing but not allow-listed"
if ((${#bad[@]} > 0)); then
    echo >&2
    echo "run-clients.sh: allow-listed client scenarios failed; each client's log is in $LOGS, the broker's in $LOGS/broker.log" >&2
    echo "a failure is either a broker regression (fix it) or a client change (pin, and record it in compat-tests/FINDINGS-clients.md)" >&2
    exit 1
fi
