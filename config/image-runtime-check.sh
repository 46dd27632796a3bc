#!/usr/bin/env bash
# Checks the Dockerfile's runtime stage where no Docker engine runs (as on the machines this
# project is built on): a Debian bookworm minbase root (what debian:bookworm-slim is), the
# same user, directories and SLUICE_* environment as the image, the stripped release binary,
# then `sluice serve` as uid 10001 in private network, mount and PID namespaces, answered by
# the HEALTHCHECK command (`sluice health`), and a clean stop on SIGTERM. Needs root.
#
#   config/image-runtime-check.sh [path/to/sluice]     (default: target/release/sluice)
#
# It does not replace `docker build`: the build stage (rust:1-bookworm, cargo build --release
# --locked) is what `cargo build --release --locked` does on any bookworm machine.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
binary="${1:-$repo/target/release/sluice}"
root="${ROOTFS:-/var/tmp/sluice-image-root}"
[[ $(id -u) == 0 ]] || { echo "run as root (chroot and namespaces)" >&2; exit 2; }
[[ -x $binary ]] || { echo "no $binary: cargo build --release --locked --bin sluice" >&2; exit 2; }
if [[ ! -x $root/bin/sh ]]; then
    command -v debootstrap >/dev/null || apt-get install -y debootstrap
    debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
fi
# The runtime stage, step by step.
chroot "$root" id sluice >/dev/null 2>&1 ||
    chroot "$root" useradd --system --uid 10001 --home-dir /var/lib/sluice sluice
mkdir -p "$root/var/lib/sluice" && chroot "$root" chown sluice /var/lib/sluice
install -m 0755 "$binary" "$root/usr/local/bin/sluice"
strip "$root/usr/local/bin/sluice"
echo "image binary: $(stat -c %s "$root/usr/local/bin/sluice") bytes (stripped)"
env_image=(SLUICE_DATA_DIR=/var/lib/sluice SLUICE_KAFKA_LISTEN=0.0.0.0:9092
    SLUICE_NATIVE_LISTEN=0.0.0.0:9192 SLUICE_ADMIN_LISTEN=0.0.0.0:9644)
export root
export env_line="${env_image[*]}"
unshare --net --mount --pid --fork --mount-proc bash -euo pipefail -c '
    ip link set lo up 2>/dev/null || true
    mount -t proc proc "$root/proc"
    trap "umount $root/proc" EXIT
    as_sluice() { chroot --userspec=10001:10001 "$root" /usr/bin/env -i HOME=/var/lib/sluice $env_line "$@"; }
    # chroot, env and sh exec one another: $! is the broker itself, as PID 1 of a container
    # gets the SIGTERM of `docker stop`.
    chroot --userspec=10001:10001 "$root" /usr/bin/env -i HOME=/var/lib/sluice $env_line \
        sh -c "cd /var/lib/sluice && exec /usr/local/bin/sluice serve" > "$root/tmp/broker.log" 2>&1 &
    broker=$!
    healthy=""
    for _ in $(seq 1 60); do
        if as_sluice /usr/local/bin/sluice health >/dev/null 2>&1; then healthy=1; break; fi
        sleep 1
    done
    kill -TERM "$broker"; wait "$broker" || { echo "broker exited with $?"; exit 1; }
    grep -h "sluice ready" "$root/tmp/broker.log"
    [[ -n $healthy ]] || { echo "HEALTHCHECK never passed:"; cat "$root/tmp/broker.log"; exit 1; }
    echo "HEALTHCHECK passed; the broker ran as uid 10001 and stopped cleanly on SIGTERM"
'
