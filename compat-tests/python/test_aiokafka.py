"""aiokafka (asyncio) against a running Sluice broker. Each scenario is a coroutine run with
asyncio.run, so no pytest plugin is needed."""

from __future__ import annotations

import asyncio
import functools
import struct
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.structs import OffsetAndMetadata

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
)

CLIENT = "aiokafka"
TIMEOUT_MS = int(TIMEOUT_S * 1000)
TOPIC_ALREADY_EXISTS = 36


def aio(test):
    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


async def producer(start_timeout: float = TIMEOUT_S, **extra) -> AIOKafkaProducer:
    # aiokafka's default is enable_idempotence=False, acks=1.
    p = AIOKafkaProducer(bootstrap_servers=bootstrap(), acks="all", linger_ms=5,
                         request_timeout_ms=TIMEOUT_MS, **extra)
    try:
        await asyncio.wait_for(p.start(), start_timeout)
    except BaseException:
        await p.stop()
        raise
    return p


async def consumer(group: str | None, *topics: str, **extra) -> AIOKafkaConsumer:
    c = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap(), group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", session_timeout_ms=10000, heartbeat_interval_ms=500,
                         request_timeout_ms=TIMEOUT_MS, **extra)
    await c.start()
    return c


async def produce_all(p: AIOKafkaProducer, topic: str, messages: list[Msg]) -> None:
    futures = [await p.send(topic, value=m.value, key=m.key, partition=m.partition, headers=list(m.headers),
                            timestamp_ms=m.timestamp) for m in messages]
    metas = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S)
    assert [meta.partition for meta in metas] == [m.partition for m in messages]


def received(r) -> Msg:
    return Msg(r.partition, r.key, r.value, tuple(r.headers or ()), r.timestamp, r.offset)


async def poll_once(c: AIOKafkaConsumer, timeout_ms: int = 100) -> list[Msg]:
    batches = await c.getmany(timeout_ms=timeout_ms)
    return [received(r) for records in batches.values() for r in records]


async def consume(c: AIOKafkaConsumer, count: int, what: str) -> list[Msg]:
    deadline = Deadline(f"{count} messages ({what})")
    out: list[Msg] = []
    while len(out) < count:
        deadline.check(f"{len(out)} arrived")
        out.extend(await poll_once(c))
    return out


async def wait_for(what: str, probe, timeout: float = TIMEOUT_S):
    """`helpers.wait_until` for coroutine probes."""
    deadline = Deadline(what, timeout)
    while True:
        last = await probe()
        if last:
            return last
        deadline.check(f"last: {last!r}")
        await asyncio.sleep(0.05)


@aio
async def test_roundtrip():
    topic = fresh_topic(CLIENT, "roundtrip", 3)
    sent = make_messages(topic, 3, 40)
    p = await producer()
    try:
        await produce_all(p, topic, sent)
    finally:
        await p.stop()
    c = await consumer(None)
    try:
        c.assign([TopicPartition(topic, p) for p in range(3)])
        await c.seek_to_beginning()
        got = await consume(c, len(sent), "assigned from the beginning")
    finally:
        await c.stop()
    assert_exactly_once_in_order(sent, got)
    for p in range(3):
        assert [m.offset for m in got if m.partition == p] == list(range(40)), f"partition {p} offsets"


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
@aio
async def test_compression(codec):
    topic = fresh_topic(CLIENT, f"compression-{codec}", 2)
    sent = make_messages(topic, 2, 30, pad=COMPRESSIBLE_PAD)
    p = await producer(compression_type=codec)
    try:
        await produce_all(p, topic, sent)
    finally:
        await p.stop()
    assert_stored_with(codec, topic, 2, len(sent))
    c = await consumer(None)
    try:
        c.assign([TopicPartition(topic, p) for p in range(2)])
        await c.seek_to_beginning()
        got = await consume(c, len(sent), f"{codec} batches")
    finally:
        await c.stop()
    assert_exactly_once_in_order(sent, got)


@aio
async def test_admin():
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(), request_timeout_ms=TIMEOUT_MS)
    await admin.start()
    topic = unique(f"{CLIENT}-admin")
    try:
        def topic_errors(response):
            return [(t[0], t[1]) for t in response.topic_errors if t[1] != 0]

        created = await admin.create_topics(
            [NewTopic(topic, 3, 1, topic_configs={"retention.ms": "3600000"})], timeout_ms=TIMEOUT_MS)
        assert not topic_errors(created), created

        async def partitions():
            if topic not in await admin.list_topics():
                return None
            [described] = await admin.describe_topics([topic])
            return sorted(p["partition"] for p in described["partitions"] if p["leader"] >= 0)

        await wait_for(f"{topic} listed with 3 led partitions", lambda: _eq(partitions(), [0, 1, 2]))

        again = await admin.create_topics([NewTopic(topic, 1, 1)], timeout_ms=TIMEOUT_MS)
        assert topic_errors(again) == [(topic, TOPIC_ALREADY_EXISTS)], again

        async def retention():
            [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            [resource] = response.resources
            assert resource[0] == 0, resource
            return {entry[0]: entry[1] for entry in resource[4]}["retention.ms"]

        assert await retention() == "3600000"
        [altered] = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, {"retention.ms": "7200000"})])
        assert all(r[0] == 0 for r in altered.resources), altered
        assert await retention() == "7200000"

        await admin.create_partitions({topic: NewPartitions(5)}, timeout_ms=TIMEOUT_MS)
        await wait_for(f"{topic} listed with 5 partitions", lambda: _eq(partitions(), [0, 1, 2, 3, 4]))

        deleted = await admin.delete_topics([topic], timeout_ms=TIMEOUT_MS)
        assert all(code == 0 for _, code in deleted.topic_error_codes), deleted
        await wait_for(f"{topic} gone from the topic list", lambda: _not_in(topic, admin.list_topics()))
    finally:
        await admin.close()


async def _eq(value, expected):
    return await value == expected


async def _not_in(item, collection):
    return item not in await collection


@aio
async def test_group():
    """Two members of one group split four partitions; each reads only its own, all messages
    arrive exactly once."""
    topic = fresh_topic(CLIENT, "group", 4)
    group = unique("group")
    members = [await consumer(group, topic), await consumer(group, topic)]
    try:
        async def split():
            for c in members:
                assert not await poll_once(c, 50), "a message before any was produced"
            owned = [{tp.partition for tp in c.assignment()} for c in members]
            return (all(owned) and not owned[0] & owned[1] and owned[0] | owned[1] == {0, 1, 2, 3}
                    and owned)

        owned = await wait_for("both members assigned disjoint partitions covering the topic", split)

        sent = make_messages(topic, 4, 15)
        p = await producer()
        try:
            await produce_all(p, topic, sent)
        finally:
            await p.stop()
        got: list[list[Msg]] = [[], []]
        deadline = Deadline(f"{len(sent)} messages across two members")
        while sum(map(len, got)) < len(sent):
            deadline.check(f"member 0 has {len(got[0])}, member 1 has {len(got[1])}")
            batches = await asyncio.gather(*(poll_once(c, 50) for c in members))
            for i, batch in enumerate(batches):
                got[i].extend(batch)
        for i, c in enumerate(members):
            assert {m.partition for m in got[i]} <= owned[i], f"member {i} read partitions it does not own"
            assert {tp.partition for tp in c.assignment()} == owned[i], f"member {i} was reassigned mid-test"
        assert_exactly_once_in_order(sent, got[0] + got[1])
    finally:
        for c in members:
            await c.stop()


@aio
async def test_commit_resume():
    """A consumer commits its position and leaves; a fresh one in the same group resumes there.
    Partition 0 commits the consumed position, partition 1 an explicit earlier offset."""
    topic = fresh_topic(CLIENT, "commit-resume", 2)
    group = unique("resume")
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    first = make_messages(topic, 2, 8)
    second = make_messages(topic, 2, 5, start=8)
    p = await producer()
    try:
        await produce_all(p, topic, first)
        a = await consumer(group, topic)
        try:
            assert_exactly_once_in_order(first, await consume(a, len(first), "first consumer"))
            await a.commit()
            assert (await a.committed(tp0), await a.committed(tp1)) == (8, 8)
            await a.commit({tp1: OffsetAndMetadata(6, "replay two")})
            assert await a.committed(tp1) == 6
        finally:
            await a.stop()
        await produce_all(p, topic, second)
    finally:
        await p.stop()

    expected = [m for m in first if m.partition == 1][6:] + second
    b = await consumer(group, topic)
    try:
        assert (await b.committed(tp0), await b.committed(tp1)) == (8, 6)
        got = await consume(b, len(expected), "fresh consumer resuming")
    finally:
        await b.stop()
    assert_exactly_once_in_order(expected, got)
    assert {m.partition: m.offset for m in reversed(got)} == {0: 8, 1: 6}, "resumed elsewhere than the commit"


@aio
async def test_offsets_for_times():
    topic = fresh_topic(CLIENT, "offsets-for-times", 2)
    base = int(time.time() * 1000) - 60_000
    sent = [Msg(0, f"k{i}".encode(), f"v{i}".encode(), (), base + 1000 * i) for i in range(6)]
    sent += [Msg(1, b"other", b"other", (), base + 100_000)]
    p = await producer()
    try:
        await produce_all(p, topic, sent)
    finally:
        await p.stop()
    c = await consumer(None)
    tp = TopicPartition(topic, 0)
    try:
        async def lookup(ts):
            found = (await c.offsets_for_times({tp: ts}))[tp]
            return None if found is None else (found.offset, found.timestamp)

        assert await lookup(base - 5000) == (0, base)
        assert await lookup(base) == (0, base)
        assert await lookup(base + 2500) == (3, base + 3000)
        assert await lookup(base + 5000) == (5, base + 5000)
        assert await lookup(base + 5001) is None, "past the newest timestamp: no offset"
        assert await c.beginning_offsets([tp]) == {tp: 0}
        assert await c.end_offsets([tp]) == {tp: 6}
        c.assign([tp])
        c.seek(tp, 3)
        got = await consume(c, 3, "from the looked-up offset")
    finally:
        await c.stop()
    expected = [(i, f"v{i}".encode(), base + 1000 * i) for i in (3, 4, 5)]
    assert [(m.offset, m.value, m.timestamp) for m in got] == expected


def decode_assignment(raw: bytes) -> dict[str, list[int]]:
    """A ConsumerProtocolAssignment (version, [topic, [partition]], user data) as {topic: partitions}."""
    (count,) = struct.unpack_from(">i", raw, 2)
    pos, out = 6, {}
    for _ in range(count):
        (length,) = struct.unpack_from(">h", raw, pos)
        topic = raw[pos + 2:pos + 2 + length].decode()
        (n,) = struct.unpack_from(">i", raw, pos + 2 + length)
        out[topic] = list(struct.unpack_from(f">{n}i", raw, pos + 6 + length))
        pos += 6 + length + 4 * n
    return out


@aio
async def test_group_admin():
    """Groups seen through the admin API (aiokafka has list, describe and offsets): the group
    listed and described while a member is active, its committed offsets with metadata."""
    topic = fresh_topic(CLIENT, "group-admin", 2)
    group = unique("group-admin")
    tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    p = await producer()
    try:
        await produce_all(p, topic, make_messages(topic, 2, 3))
    finally:
        await p.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(), request_timeout_ms=TIMEOUT_MS)
    await admin.start()
    c = await consumer(group, topic, client_id="compat-member")
    try:
        await consume(c, 6, "the only member")
        await c.commit({tp0: OffsetAndMetadata(2, "first two"), tp1: OffsetAndMetadata(3, "")})
        assert [g for g in await admin.list_consumer_groups() if g[0] == group] == [(group, "consumer")]
        [response] = await admin.describe_consumer_groups([group])
        [described] = response.to_object()["groups"]
        assert (described["error_code"], described["state"], described["protocol"]) == (0, "Stable", "roundrobin")
        [member] = described["members"]
        assert member["client_id"] == "compat-member", member
        assert decode_assignment(member["member_assignment"]) == {topic: [0, 1]}, member
        offsets = await admin.list_consumer_group_offsets(group)
        assert {tp: (o.offset, o.metadata) for tp, o in offsets.items()} == {tp0: (2, "first two"), tp1: (3, "")}
    finally:
        await c.stop()
        await admin.close()


@aio
async def test_delete_records():
    topic = fresh_topic(CLIENT, "delete-records", 1)
    tp = TopicPartition(topic, 0)
    sent = make_messages(topic, 1, 10)
    p = await producer()
    try:
        await produce_all(p, topic, sent)
    finally:
        await p.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap(), request_timeout_ms=TIMEOUT_MS)
    await admin.start()
    try:
        assert await admin.delete_records({tp: RecordsToDelete(4)}, timeout_ms=TIMEOUT_MS) == {tp: 4}
    finally:
        await admin.close()
    c = await consumer(None)
    try:
        assert (await c.beginning_offsets([tp]), await c.end_offsets([tp])) == ({tp: 4}, {tp: 10})
        c.assign([tp])
        await c.seek_to_beginning()
        got = await consume(c, 6, "what is left")
    finally:
        await c.stop()
    assert_exactly_once_in_order(sent[4:], got)
    assert [m.offset for m in got] == list(range(4, 10))


@aio
async def test_static_membership():
    """Two static members split two partitions; one restarts with the same group_instance_id and
    gets its partition back without the other member seeing a rebalance (KIP-345)."""
    topic = fresh_topic(CLIENT, "static-membership", 2)
    group = unique("static")
    ids = [unique("instance-a"), unique("instance-b")]
    members = [await consumer(group, topic, group_instance_id=i) for i in ids]
    try:
        async def split():
            await asyncio.gather(*(poll_once(c, 50) for c in members))
            owned = [{tp.partition for tp in c.assignment()} for c in members]
            return all(owned) and not owned[0] & owned[1] and owned

        owned = await wait_for("both static members assigned a partition", split)
        generation = members[1]._coordinator.generation
        await members[0].stop()
        members[0] = await consumer(group, topic, group_instance_id=ids[0])
        assert await wait_for("the restarted static member's assignment", split) == owned
        assert members[1]._coordinator.generation == generation, "the other member rebalanced"
    finally:
        for c in members:
            await c.stop()


@aio
async def test_idempotence():
    """enable_idempotence=True: InitProducerId, then batches with a producer id and sequences."""
    topic = fresh_topic(CLIENT, "idempotence", 2)
    sent = make_messages(topic, 2, 20)
    p = await producer(enable_idempotence=True)
    try:
        await produce_all(p, topic, sent)
    finally:
        await p.stop()
    assert_idempotent_batches(topic, 2)
    c = await consumer(None)
    try:
        c.assign([TopicPartition(topic, p) for p in range(2)])
        await c.seek_to_beginning()
        got = await consume(c, len(sent), "an idempotent producer's messages")
    finally:
        await c.stop()
    assert_exactly_once_in_order(sent, got)


# Known gaps: these fail against the broker today and are not on compat-tests/clients-allow-list.txt
# (the allow-list is what decides); FINDINGS-clients.md says why.

@aio
async def test_transactions():
    """Three transactions on one partition, the second aborted: a read_committed consumer sees
    the first and third, in order; a read_uncommitted one sees all three."""
    topic = fresh_topic(CLIENT, "transactions", 1)
    batches = [make_messages(topic, 1, n, start=start) for start, n in ((0, 5), (5, 3), (8, 2))]
    p = await producer(GAP_TIMEOUT_S, transactional_id=unique("txn"))
    try:
        for batch, commit in zip(batches, (True, False, True), strict=True):
            await p.begin_transaction()
            await asyncio.wait_for(produce_all(p, topic, batch), GAP_TIMEOUT_S)
            if commit:
                await asyncio.wait_for(p.commit_transaction(), GAP_TIMEOUT_S)
            else:
                await asyncio.wait_for(p.abort_transaction(), GAP_TIMEOUT_S)
    finally:
        await p.stop()
    tp = TopicPartition(topic, 0)
    everything = [m for batch in batches for m in batch]
    for isolation, expected in (("read_committed", batches[0] + batches[2]), ("read_uncommitted", everything)):
        c = await consumer(None, isolation_level=isolation)
        try:
            c.assign([tp])
            await c.seek_to_beginning()
            got = await consume(c, len(expected), isolation)
        finally:
            await c.stop()
        assert_exactly_once_in_order(expected, got)
