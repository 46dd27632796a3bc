"""What every Python client scenario shares: the broker address, fresh topics, the messages a
scenario sends, the exactly-once-in-order check, polling with a deadline, and a look at the
batches the broker stored (to prove a codec was really used, not silently dropped).

Each scenario builds its own topic (`fresh_topic`) with a neutral admin client (librdkafka's,
through confluent-kafka) so that a client's own admin gap does not fail its other scenarios.
"""

from __future__ import annotations

import itertools
import os
import struct
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

#: Padding of the compression scenarios' messages (see `make_messages`).
COMPRESSIBLE_PAD = 40
#: How long any one wait (a delivery, a rebalance, a message) may take before the scenario fails.
TIMEOUT_S = float(os.environ.get("SLUICE_CLIENT_TIMEOUT_S", "30"))
#: The same for the known-gap scenarios (transactions, ...), which a client may retry until its
#: own deadline: short, so that the gaps cost the run little.
GAP_TIMEOUT_S = float(os.environ.get("SLUICE_GAP_TIMEOUT_S", "8"))


def bootstrap() -> str:
    addr = os.environ.get("SLUICE_BOOTSTRAP")
    if not addr:
        raise RuntimeError(
            "SLUICE_BOOTSTRAP is not set: run compat-tests/run-clients.sh, or start a broker "
            "(target/release/sluice serve) and export SLUICE_BOOTSTRAP=127.0.0.1:PORT"
        )
    return addr


def unique(prefix: str) -> str:
    """A name no earlier run or scenario used (topics, groups, transactional ids)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(what: str, probe, timeout: float = TIMEOUT_S, interval: float = 0.05):
    """Calls `probe` until it returns something truthy and returns that; after `timeout` seconds
    fails naming `what` and the last thing `probe` returned."""
    deadline = time.monotonic() + timeout
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class Deadline:
    """For loops that do their own waiting (a consumer's poll): `check()` fails after `timeout`."""

    def __init__(self, what: str, timeout: float = TIMEOUT_S):
        self.what = what
        self.timeout = timeout
        self.end = time.monotonic() + timeout

    def check(self, progress: str = "") -> None:
        if time.monotonic() >= self.end:
            raise AssertionError(f"timed out after {self.timeout:.0f}s waiting for {self.what}; {progress}")

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())


def fresh_topic(client: str, scenario: str, partitions: int, config: dict | None = None) -> str:
    """A new topic named after the client and scenario (see `create_topic`)."""
    name = unique(f"{client}-{scenario}")
    create_topic(name, partitions, config)
    return name


def create_topic(name: str, partitions: int, config: dict | None = None) -> None:
    """Creates a topic with librdkafka's admin client and waits until every partition has a
    leader in the metadata."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap()})
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=TIMEOUT_S,
    )
    futures[name].result(timeout=TIMEOUT_S)

    def ready():
        topic = admin.list_topics(topic=name, timeout=TIMEOUT_S).topics.get(name)
        return (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 and p.error is None for p in topic.partitions.values())
        )

    wait_until(f"topic {name} with {partitions} partitions and leaders in metadata", ready)


@dataclass(frozen=True)
class Msg:
    """One message: what was sent, or what was received (offset set then)."""

    partition: int
    key: bytes | None
    value: bytes
    headers: tuple = ()
    timestamp: int | None = None
    offset: int | None = None


def make_messages(topic: str, partitions: int, per_partition: int, start: int = 0, headers: bool = True,
                  pad: int = 0) -> list[Msg]:
    """`per_partition` messages for each partition, interleaved across partitions as they are
    sent. Values name topic, partition and sequence (so a stray message is recognisable); the
    first message of each partition has a null key; headers include a repeated name, an empty
    value and non-UTF-8 bytes. `pad` repeats a word in each value: librdkafka sends a batch
    uncompressed when compressing does not make it smaller, so the compression scenarios pad
    every message enough that even a batch of one shrinks."""
    out = []
    for i in range(start, start + per_partition):
        for p in range(partitions):
            key = None if i == 0 else f"key-{p}-{i}".encode()
            value = f"{topic}/p{p}/m{i}/".encode() + b"payload " * (i % 5) + b"compressible " * pad
            hdrs = (
                (("seq", str(i).encode()), ("origin", b"sluice-compat"), ("bin", bytes([0, 255, i % 256])),
                 ("origin", b""))
                if headers
                else ()
            )
            out.append(Msg(p, key, value, hdrs))
    return out


def norm_headers(headers) -> tuple:
    """Clients return headers as None, a list or a tuple of (str, bytes): one form to compare."""
    return tuple((k, bytes(v) if v is not None else None) for k, v in (headers or ()))


def assert_exactly_once_in_order(expected: list[Msg], received: list[Msg], check_headers: bool = True,
                                 check_keys: bool = True) -> None:
    """Every expected message arrived exactly once, each partition's in the order sent, with
    strictly increasing offsets, equal keys and (when the client has them) equal headers."""
    exp_by_p: dict[int, list[Msg]] = defaultdict(list)
    got_by_p: dict[int, list[Msg]] = defaultdict(list)
    for m in expected:
        exp_by_p[m.partition].append(m)
    for m in received:
        got_by_p[m.partition].append(m)
    problems = []
    for p in sorted(set(exp_by_p) | set(got_by_p)):
        exp, got = exp_by_p.get(p, []), got_by_p.get(p, [])
        ev, gv = [m.value for m in exp], [m.value for m in got]
        if ev != gv:
            dups = [v for v, n in Counter(gv).items() if n > 1]
            missing = [v for v in ev if v not in set(gv)]
            stray = [v for v in gv if v not in set(ev)]
            problems.append(
                f"partition {p}: expected {len(ev)} messages, got {len(gv)}; missing {missing[:3]}, "
                f"duplicated {dups[:3]}, unexpected {stray[:3]}"
                + ("; same messages in a different order" if sorted(ev) == sorted(gv) else "")
            )
            continue
        offsets = [m.offset for m in got]
        if any(b <= a for a, b in itertools.pairwise(offsets)):
            problems.append(f"partition {p}: offsets not strictly increasing: {offsets}")
        for e, g in zip(exp, got):
            if check_keys and e.key != g.key:
                problems.append(f"partition {p} offset {g.offset}: key {g.key!r}, expected {e.key!r}")
            if check_headers and norm_headers(e.headers) != norm_headers(g.headers):
                problems.append(f"partition {p} offset {g.offset}: headers {g.headers!r}, expected {e.headers!r}")
    assert not problems, "\n".join(problems[:20])


CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def stored_batches(topic: str, partition: int) -> list[tuple[str, int]] | None:
    """(codec, record count) of every batch the broker stored for `topic`-`partition`, read from
    its segment files (RecordBatch v2 header: batch length at byte 8, magic at 16, attributes at
    21, record count at 57). None when SLUICE_DATA_DIR is not set (a broker started by hand)."""
    data_dir = os.environ.get("SLUICE_DATA_DIR")
    if not data_dir:
        return None
    part_dir = Path(data_dir) / f"{topic}-{partition}"
    segments = sorted(part_dir.glob("*.log"))
    assert segments, f"no segment files in {part_dir}"
    batches = []
    for segment in segments:
        with segment.open("rb") as f:
            pos = 0
            while True:
                f.seek(pos)
                header = f.read(61)
                if len(header) < 61:
                    break
                (length,) = struct.unpack_from(">i", header, 8)
                if length <= 0 or header[16] != 2:  # the preallocated, zero-filled rest
                    break
                (attributes,) = struct.unpack_from(">h", header, 21)
                (records,) = struct.unpack_from(">i", header, 57)
                batches.append((CODECS.get(attributes & 7, f"unknown({attributes & 7})"), records))
                pos += 12 + length
    return batches


def stored_producers(topic: str, partition: int) -> list[tuple[int, int, int]] | None:
    """(producer id, producer epoch, base sequence) of every stored batch of `topic`-`partition`
    (RecordBatch v2 header bytes 43, 51, 53); None when SLUICE_DATA_DIR is not set."""
    data_dir = os.environ.get("SLUICE_DATA_DIR")
    if not data_dir:
        return None
    out = []
    for segment in sorted((Path(data_dir) / f"{topic}-{partition}").glob("*.log")):
        with segment.open("rb") as f:
            pos = 0
            while True:
                f.seek(pos)
                header = f.read(61)
                if len(header) < 61:
                    break
                (length,) = struct.unpack_from(">i", header, 8)
                if length <= 0 or header[16] != 2:
                    break
                out.append(struct.unpack_from(">qhi", header, 43))
                pos += 12 + length
    return out


def assert_idempotent_batches(topic: str, partitions: int) -> None:
    """Every stored batch carries one producer id (>= 0) and epoch, and each partition's
    sequences run from 0 without a gap: what an idempotent producer writes (KIP-98)."""
    ids = set()
    for p in range(partitions):
        batches = stored_producers(topic, p)
        if batches is None:
            return
        assert batches, f"no batches stored for {topic}-{p}"
        ids |= {(pid, epoch) for pid, epoch, _ in batches}
        sequences = [seq for _, _, seq in batches]
        assert sequences[0] == 0 and sequences == sorted(sequences), f"partition {p} sequences {sequences}"
    assert len(ids) == 1 and next(iter(ids))[0] >= 0, f"producer ids/epochs in the stored batches: {ids}"


def assert_stored_with(codec: str, topic: str, partitions: int, records: int) -> None:
    """Every batch of the topic was stored compressed with `codec`, and they hold `records`
    records in all (acks=all producers: what was acknowledged is on disk)."""
    seen = []
    for p in range(partitions):
        batches = stored_batches(topic, p)
        if batches is None:
            return
        seen.extend(batches)
    codecs = {c for c, _ in seen}
    assert codecs == {codec}, f"stored batches use {codecs}, expected only {codec}: {seen}"
    assert sum(n for _, n in seen) == records, f"stored {sum(n for _, n in seen)} records, sent {records}: {seen}"


def main(argv: list[str]) -> int:
    """For scripts without a Kafka admin API of their own (compat-tests/kcat/kcat.sh):
        python helpers.py create-topic NAME PARTITIONS
        python helpers.py assert-stored CODEC TOPIC PARTITIONS RECORDS
    """
    match argv:
        case ["create-topic", name, partitions]:
            create_topic(name, int(partitions))
        case ["assert-stored", codec, topic, partitions, records]:
            try:
                assert_stored_with(codec, topic, int(partitions), int(records))
            except AssertionError as e:
                print(f"stored batches of {topic}: {e}", file=sys.stderr)
                return 1
        case _:
            print(main.__doc__, file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
