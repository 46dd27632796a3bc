"""kafka-python 3.x (pure Python) against a running Sluice broker.

kafka-python 3.x enables idempotence by default (`enable_idempotence=True`), which needs
InitProducerId. The scenarios' producers set it off explicitly (the plain produce path, and what
works on a broker without InitProducerId); `test_idempotence` keeps the default."""

from __future__ import annotations

import threading
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import NoError, TopicAlreadyExistsError, UnknownMemberIdError
from kafka.structs import OffsetAndMetadata

from helpers import (
    COMPRESSIBLE_PAD,
    GAP_TIMEOUT_S,
    TIMEOUT_S,
    Deadline,
    Msg,
    assert_exactly_once_in_order,
    assert_idempotent_batches,
    assert_stored_with,
    bootstrap,
    fresh_topic,
    make_messages,
    unique,
    wait_until,
)

CLIENT = "kafka-python"
TIMEOUT_MS = int(TIMEOUT_S * 1000)


def producer(**extra) -> KafkaProducer:
    config = {"bootstrap_servers": bootstrap(), "enable_idempotence": False, "acks": "all",
              "linger_ms": 5, "request_timeout_ms": TIMEOUT_MS, "max_block_ms": TIMEOUT_MS}
    config.update(extra)
    return KafkaProducer(**config)


def consumer(group: str | None, *topics: str, **extra) -> KafkaConsumer:
    """A consumer, subscribed to `topics` if any, returned once its group coordinator knows
    their partitions (before its first poll, so before it joins the group).

    kafka-python 3.0.12 takes the partitions it assigns from a snapshot of the metadata that a
    metadata response rebuilds; a member that joins before the snapshot has its topic assigns
    nothing (or, as leader, rejoins when the snapshot changes), and such a rejoin can be lost
    when its round trip outlasts the poll() that started it (FINDINGS-clients.md). Waiting for
    the snapshot (built by the client's network thread, no poll needed) avoids both."""
    c = KafkaConsumer(*topics, bootstrap_servers=bootstrap(), group_id=group, enable_auto_commit=False,
                      auto_offset_reset="earliest", session_timeout_ms=10000, heartbeat_interval_ms=500,
                      request_timeout_ms=TIMEOUT_MS, **extra)
    if topics and group is not None:
        # A private attribute, read only: see the docstring.
        wait_until(f"kafka-python's metadata snapshot of {topics}",
                   lambda: all(c._coordinator._metadata_snapshot.get(t) for t in topics))
    return c


def produce_all(p: KafkaProducer, topic: str, messages: list[Msg]) -> None:
    futures = [p.send(topic, value=m.value, key=m.key, partition=m.partition, headers=list(m.headers),
                      timestamp_ms=m.timestamp) for m in messages]
    p.flush(timeout=TIMEOUT_S)
    for m, f in zip(messages, futures):
        meta = f.get(timeout=TIMEOUT_S)
        assert meta.partition == m.partition, meta


def received(r) -> Msg:
    return Msg(r.partition, r.key, r.value, tuple(r.headers or ()), r.timestamp, r.offset)


def poll_once(c: KafkaConsumer, timeout_ms: int = 100) -> list[Msg]:
    return [received(r) for records in c.poll(timeout_ms=timeout_ms).values() for r in records]


def consume(c: KafkaConsumer, count: int, what: str) -> list[Msg]:
    deadline = Deadline(f"{count} messages ({what})")
    out: list[Msg] = []
    while len(out) < count:
        deadline.check(f"{len(out)} arrived")
        out.extend(poll_once(c))
    return out


def test_roundtrip():
    topic = fresh_topic(CLIENT, "roundtrip", 3)
    sent = make_messages(topic, 3, 40)
    p = producer()
    produce_all(p, topic, sent)
    p.close()
    c = consumer(None)
    try:
        c.assign([TopicPartition(topic, p) for p in range(3)])
        c.seek_to_beginning()
        got = consume(c, len(sent), "assigned from the beginning")
    finally:
        c.close()
    assert_exactly_once_in_order(sent, got)
    for p in range(3):
        assert [m.offset for m in got if m.partition == p] == list(range(40)), f"partition {p} offsets"


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression(codec):
    topic = fresh_topic(CLIENT, f"compression-{codec}", 2)
    sent = make_messages(topic, 2, 30, pad=COMPRESSIBLE_PAD)
    p = producer(compression_type=codec)
    produce_all(p, topic, sent)
    p.close()
    assert_stored_with(codec, topic, 2, len(sent))
    c = consumer(None)
    try:
        c.assign([TopicPartition(topic, p) for p in range(2)])
        c.seek_to_beginning()
        got = consume(c, len(sent), f"{codec} batches")
    finally:
        c.close()
    assert_exactly_once_in_order(sent, got)


def test_admin():
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(), request_timeout_ms=TIMEOUT_MS)
    topic = unique(f"{CLIENT}-admin")
    try:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1,
                                     "configs": {"retention.ms": "3600000"}}},
                            timeout_ms=TIMEOUT_MS, wait_for_metadata=True)
        assert topic in admin.list_topics()
        [described] = admin.describe_topics([topic])
        assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2], described

        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics({topic: {"num_partitions": 1, "replication_factor": 1}}, timeout_ms=TIMEOUT_MS)

        def retention():
            configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)],
                                             config_filter="all")
            return configs["topic"][topic]["retention.ms"]["value"]

        assert retention() == "3600000"
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "7200000"})])
        assert retention() == "7200000"

        admin.create_partitions({topic: 5}, timeout_ms=TIMEOUT_MS)
        wait_until(f"{topic} described with 5 partitions",
                   lambda: len(admin.describe_topics([topic])[0]["partitions"]) == 5)

        admin.delete_topics([topic], timeout_ms=TIMEOUT_MS)
        wait_until(f"{topic} gone from the topic list", lambda: topic not in admin.list_topics())
    finally:
        admin.close()


class Member:
    """One group member polled in its own thread, as kafka-python is meant to be used: two
    consumers polled in turn from one thread hold up each other's rebalances."""

    def __init__(self, group: str, topic: str, **extra):
        self.consumer = consumer(group, topic, **extra)
        self._lock = threading.Lock()
        self._got: list[Msg] = []
        self._owned: set[int] = set()
        self._error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                got = poll_once(self.consumer, 200)
                with self._lock:
                    self._got.extend(got)
                    self._owned = {tp.partition for tp in self.consumer.assignment()}
        except Exception as e:  # noqa: BLE001 -- handed to the test by state()
            self._error = e

    def state(self) -> tuple[list[Msg], set[int]]:
        """What it received so far and the partitions it owns."""
        with self._lock:
            if self._error is not None:
                raise AssertionError(f"the member's poll failed: {self._error!r}") from self._error
            return list(self._got), set(self._owned)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT_S)
        self.consumer.close()


def split(members: list[Member], covering: set[int]):
    """The members' partitions when each owns some, none twice, all of `covering` together."""
    owned = [m.state()[1] for m in members]
    return all(owned) and not owned[0] & owned[1] and owned[0] | owned[1] == covering and owned


def test_group():
    """Two members of one group split four partitions; each reads only its own, all messages
    arrive exactly once."""
    topic = fresh_topic(CLIENT, "group", 4)
    group = unique("group")
    members = [Member(group, topic), Member(group, topic)]
    try:
        owned = wait_until("both members assigned disjoint partitions covering the topic",
                           lambda: split(members, {0, 1, 2, 3}))
        assert [m.state()[0] for m in members] == [[], []], "a message before any was produced"

        sent = make_messages(topic, 4, 15)
        p = producer()
        produce_all(p, topic, sent)
        p.close()
        wait_until(f"{len(sent)} messages across two members",
                   lambda: sum(len(m.state()[0]) for m in members) >= len(sent))
        got = [m.state()[0] for m in members]
        for i, m in enumerate(members):
            assert {x.partition for x in got[i]} <= owned[i], f"member {i} read partitions it does not own"
            assert m.state()[1] == owned[i], f"member {i} was reassigned mid-test"
        assert_exactly_once_in_order(sent, got[0] + got[1])
    finally:
        for m in members:
            m.close()


def test_commit_resume():
    """A consumer commits its position and leaves; a fresh one in the same group resumes there.
    Partition 0 commits the consumed position, partition 1 an explicit earlier offset."""
    topic = fresh_topic(CLIENT, "commit-resume", 2)
    group = unique("resume")
    first = make_messages(topic, 2, 8)
    p = producer()
    produce_all(p, topic, first)
    a = consumer(group, topic)
    try:
        assert_exactly_once_in_order(first, consume(a, len(first), "first consumer"))
        a.commit()
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        assert (a.committed(tp0), a.committed(tp1)) == (8, 8)
        a.commit({tp1: OffsetAndMetadata(6, "replay two", -1)})
        assert a.committed(tp1, metadata=True).offset == 6
        assert a.committed(tp1, metadata=True).metadata == "replay two"
    finally:
        a.close()

    second = make_messages(topic, 2, 5, start=8)
    produce_all(p, topic, second)
    p.close()
    expected = [m for m in first if m.partition == 1][6:] + second
    b = consumer(group, topic)
    try:
        assert (b.committed(tp0), b.committed(tp1)) == (8, 6)
        got = consume(b, len(expected), "fresh consumer resuming")
    finally:
        b.close()
    assert_exactly_once_in_order(expected, got)
    assert {m.partition: m.offset for m in reversed(got)} == {0: 8, 1: 6}, "resumed elsewhere than the commit"


def test_offsets_for_times():
    topic = fresh_topic(CLIENT, "offsets-for-times", 2)
    base = int(time.time() * 1000) - 60_000
    sent = [Msg(0, f"k{i}".encode(), f"v{i}".encode(), (), base + 1000 * i) for i in range(6)]
    sent += [Msg(1, b"other", b"other", (), base + 100_000)]
    p = producer()
    produce_all(p, topic, sent)
    p.close()
    c = consumer(None)
    tp = TopicPartition(topic, 0)
    try:
        def lookup(ts):
            found = c.offsets_for_times({tp: ts}, timeout_ms=TIMEOUT_MS)[tp]
            return None if found is None else (found.offset, found.timestamp)

        assert lookup(base - 5000) == (0, base)
        assert lookup(base) == (0, base)
        assert lookup(base + 2500) == (3, base + 3000)
        assert lookup(base + 5000) == (5, base + 5000)
        assert lookup(base + 5001) is None, "past the newest timestamp: no offset"
        assert c.beginning_offsets([tp], timeout_ms=TIMEOUT_MS) == {tp: 0}
        assert c.end_offsets([tp], timeout_ms=TIMEOUT_MS) == {tp: 6}
        c.assign([tp])
        c.seek(tp, 3)
        got = consume(c, 3, "from the looked-up offset")
    finally:
        c.close()
    expected = [(i, f"v{i}".encode(), base + 1000 * i) for i in (3, 4, 5)]
    assert [(m.offset, m.value, m.timestamp) for m in got] == expected


def test_group_admin():
    """Groups seen through the admin API: listed and described while a member is active (state,
    assignor, member, assignment), committed offsets with metadata, offsets refused while the
    member is active and altered once it left, the group deleted."""
    topic = fresh_topic(CLIENT, "group-admin", 2)
    group = unique("group-admin")
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    p = producer()
    produce_all(p, topic, make_messages(topic, 2, 3))
    p.close()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(), request_timeout_ms=TIMEOUT_MS)
    c = consumer(group, topic, client_id="compat-member")
    try:
        consume(c, 6, "the only member")
        c.commit({tp0: OffsetAndMetadata(2, "first two", -1), tp1: OffsetAndMetadata(3, "", -1)})

        assert [(g["group_state"], g["protocol_type"]) for g in admin.list_groups() if g["group_id"] == group] == [
            ("Stable", "consumer")]
        described = admin.describe_groups([group])[group]
        assert (described["error"], described["group_state"], described["protocol_data"]) == (None, "Stable", "range")
        [member] = described["members"]
        assert member["client_id"] == "compat-member", member
        assert member["member_assignment"]["assigned_partitions"] == [{"topic": topic, "partitions": [0, 1]}], member

        def committed():
            offsets = admin.list_group_offsets({group: None})[group]
            return sorted((tp.partition, o.offset, o.metadata) for tp, o in offsets.items())

        assert committed() == [(0, 2, "first two"), (1, 3, "")]
        refused = admin.alter_group_offsets(group, {tp0: OffsetAndMetadata(1, "", -1)})
        assert refused == {tp0: UnknownMemberIdError}, "offsets of a group with an active member must not be altered"
    finally:
        c.close()

    try:
        described = admin.describe_groups([group])[group]
        assert (described["group_state"], described["members"]) == ("Empty", []), described
        assert admin.alter_group_offsets(group, {tp0: OffsetAndMetadata(1, "", -1)}) == {tp0: NoError}
        assert committed() == [(0, 1, ""), (1, 3, "")]
        assert admin.delete_groups([group]) == {group: "OK"}
        assert committed() == []
        assert admin.describe_groups([group])[group]["group_state"] == "Dead"
    finally:
        admin.close()


def test_delete_records():
    topic = fresh_topic(CLIENT, "delete-records", 1)
    tp = TopicPartition(topic, 0)
    sent = make_messages(topic, 1, 10)
    p = producer()
    produce_all(p, topic, sent)
    p.close()
    admin = KafkaAdminClient(bootstrap_servers=bootstrap(), request_timeout_ms=TIMEOUT_MS)
    try:
        result = admin.delete_records({tp: 4}, timeout_ms=TIMEOUT_MS)
        assert (result[tp]["error_code"], result[tp]["low_watermark"]) == (0, 4), result
    finally:
        admin.close()
    c = consumer(None)
    try:
        assert (c.beginning_offsets([tp]), c.end_offsets([tp])) == ({tp: 4}, {tp: 10})
        c.assign([tp])
        c.seek_to_beginning()
        got = consume(c, 6, "what is left")
    finally:
        c.close()
    assert_exactly_once_in_order(sent[4:], got)
    assert [m.offset for m in got] == list(range(4, 10))


def test_static_membership():
    """Two static members split two partitions; one restarts with the same group.instance.id and
    gets its partition back without the other member seeing a rebalance (KIP-345)."""
    topic = fresh_topic(CLIENT, "static-membership", 2)
    group = unique("static")
    ids = [unique("instance-a"), unique("instance-b")]
    members = [Member(group, topic, group_instance_id=i) for i in ids]
    try:
        owned = wait_until("both static members assigned a partition", lambda: split(members, {0, 1}))
        generation = members[1].consumer._coordinator._generation.generation_id
        members[0].close()  # a static member leaves no LeaveGroup behind
        members[0] = Member(group, topic, group_instance_id=ids[0])
        assert wait_until("the restarted static member's assignment", lambda: split(members, {0, 1})) == owned
        assert members[1].consumer._coordinator._generation.generation_id == generation, \
            "the other member rebalanced"
    finally:
        for m in members:
            m.close()


def test_idempotence():
    """kafka-python's own defaults (enable_idempotence=True): InitProducerId, then batches with a
    producer id and sequences."""
    topic = fresh_topic(CLIENT, "idempotence", 2)
    sent = make_messages(topic, 2, 20)
    p = KafkaProducer(bootstrap_servers=bootstrap(), max_block_ms=TIMEOUT_MS)
    try:
        produce_all(p, topic, sent)
    finally:
        p.close(timeout=5)
    assert_idempotent_batches(topic, 2)
    c = consumer(None)
    try:
        c.assign([TopicPartition(topic, p) for p in range(2)])
        c.seek_to_beginning()
        got = consume(c, len(sent), "an idempotent producer's messages")
    finally:
        c.close()
    assert_exactly_once_in_order(sent, got)


# Known gaps: these fail against the broker today and are not on compat-tests/clients-allow-list.txt
# (the allow-list is what decides); FINDINGS-clients.md says why.

def test_transactions():
    """Three transactions on one partition, the second aborted: a read_committed consumer sees
    the first and third, in order; a read_uncommitted one sees all three."""
    topic = fresh_topic(CLIENT, "transactions", 1)
    batches = [make_messages(topic, 1, n, start=start) for start, n in ((0, 5), (5, 3), (8, 2))]
    p = KafkaProducer(bootstrap_servers=bootstrap(), transactional_id=unique("txn"),
                      max_block_ms=int(GAP_TIMEOUT_S * 1000), request_timeout_ms=int(GAP_TIMEOUT_S * 1000))
    try:
        p.init_transactions()
        for batch, commit in zip(batches, (True, False, True), strict=True):
            p.begin_transaction()
            produce_all(p, topic, batch)
            if commit:
                p.commit_transaction()
            else:
                p.abort_transaction()
    finally:
        p.close(timeout=5)
    tp = TopicPartition(topic, 0)
    everything = [m for batch in batches for m in batch]
    for isolation, expected in (("read_committed", batches[0] + batches[2]), ("read_uncommitted", everything)):
        c = consumer(None, isolation_level=isolation)
        try:
            c.assign([tp])
            c.seek_to_beginning()
            got = consume(c, len(expected), isolation)
        finally:
            c.close()
        assert_exactly_once_in_order(expected, got)
