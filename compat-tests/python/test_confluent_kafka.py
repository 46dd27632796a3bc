"""confluent-kafka-python (librdkafka inside the wheel) against a running Sluice broker."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

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

CLIENT = "confluent-kafka"


def producer(**extra) -> Producer:
    # librdkafka's default is enable.idempotence=false and acks=all.
    return Producer({"bootstrap.servers": bootstrap(), "linger.ms": 5,
                     "message.timeout.ms": int(TIMEOUT_S * 1000), **extra})


def consumer(group: str, **extra) -> Consumer:
    return Consumer({
        "bootstrap.servers": bootstrap(),
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 500,
        **extra,
    })


def close_all(consumers: list[Consumer]) -> None:
    for c in consumers:
        try:
            c.close()
        except RuntimeError:  # closed already
            pass


def produce_all(p: Producer, topic: str, messages: list[Msg], timeout: float = TIMEOUT_S) -> None:
    """Sends `messages` to their partitions and fails unless every one is acknowledged."""
    errors = []
    for m in messages:
        kwargs = {"timestamp": m.timestamp} if m.timestamp is not None else {}
        p.produce(topic, value=m.value, key=m.key, partition=m.partition, headers=list(m.headers),
                  on_delivery=lambda err, _msg: err and errors.append(err), **kwargs)
        p.poll(0)
    left = p.flush(timeout)
    assert left == 0, f"{left} messages not delivered after {timeout}s"
    assert not errors, f"delivery errors: {errors[:5]}"


def received(msg) -> Msg:
    return Msg(msg.partition(), msg.key(), msg.value(), tuple(msg.headers() or ()),
               msg.timestamp()[1], msg.offset())


def consume(c: Consumer, count: int, what: str) -> list[Msg]:
    deadline = Deadline(f"{count} messages ({what})")
    out = []
    while len(out) < count:
        deadline.check(f"{len(out)} arrived")
        msg = c.poll(0.1)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(f"consume error: {msg.error()}")
        out.append(received(msg))
    return out


def test_roundtrip():
    topic = fresh_topic(CLIENT, "roundtrip", 3)
    sent = make_messages(topic, 3, 40)
    produce_all(producer(), topic, sent)
    c = consumer(unique("assign-only"))
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
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
    produce_all(producer(**{"compression.type": codec, "acks": "all"}), topic, sent)
    assert_stored_with(codec, topic, 2, len(sent))
    c = consumer(unique("assign-only"))
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(2)])
        got = consume(c, len(sent), f"{codec} batches")
    finally:
        c.close()
    assert_exactly_once_in_order(sent, got)


def test_admin():
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    topic = unique(f"{CLIENT}-admin")
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=3, replication_factor=1, config={"retention.ms": "3600000"})],
        operation_timeout=TIMEOUT_S)
    futures[topic].result(timeout=TIMEOUT_S)

    def partitions():
        t = admin.list_topics(timeout=TIMEOUT_S).topics.get(topic)
        return t and t.error is None and sorted(p.id for p in t.partitions.values() if p.leader >= 0)

    assert wait_until(f"{topic} listed with 3 led partitions", lambda: partitions() == [0, 1, 2])

    again = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)],
                                operation_timeout=TIMEOUT_S)
    with pytest.raises(KafkaException) as exists:
        again[topic].result(timeout=TIMEOUT_S)
    assert exists.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS, exists.value

    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    assert configs["retention.ms"].value == "3600000", configs["retention.ms"]

    alter = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    admin.incremental_alter_configs([alter])[alter].result(timeout=TIMEOUT_S)
    configs = admin.describe_configs([resource])[resource].result(timeout=TIMEOUT_S)
    assert configs["retention.ms"].value == "7200000", configs["retention.ms"]

    admin.create_partitions([NewPartitions(topic, 5)],
                            operation_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)
    assert wait_until(f"{topic} listed with 5 partitions", lambda: partitions() == [0, 1, 2, 3, 4])

    admin.delete_topics([topic], operation_timeout=TIMEOUT_S)[topic].result(timeout=TIMEOUT_S)
    wait_until(f"{topic} gone from the topic list",
               lambda: topic not in admin.list_topics(timeout=TIMEOUT_S).topics)


@pytest.mark.parametrize("protocol", ["classic", "kip848"])
def test_group(protocol):
    """Two members of one group split four partitions; each reads only its own, all messages
    arrive exactly once. Scenario `group` uses the classic protocol (JoinGroup/SyncGroup, the
    client assigns), `group-kip848` KIP-848's (ConsumerGroupHeartbeat, the broker assigns)."""
    topic = fresh_topic(CLIENT, "group", 4)
    group = unique("group")
    if protocol == "classic":
        members = [consumer(group), consumer(group)]
    else:  # session and heartbeat intervals are the broker's under KIP-848
        members = [Consumer({"bootstrap.servers": bootstrap(), "group.id": group, "group.protocol": "consumer",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"}) for _ in range(2)]
    try:
        for c in members:
            c.subscribe([topic])

        def split():
            for c in members:
                msg = c.poll(0.05)
                assert msg is None or msg.error(), f"a message before any was produced: {msg}"
            owned = [{tp.partition for tp in c.assignment()} for c in members]
            return (all(owned) and not owned[0] & owned[1] and owned[0] | owned[1] == {0, 1, 2, 3}
                    and owned)

        owned = wait_until("both members assigned disjoint partitions covering the topic", split)

        sent = make_messages(topic, 4, 15)
        produce_all(producer(), topic, sent)
        got: list[list[Msg]] = [[], []]
        deadline = Deadline(f"{len(sent)} messages across two members")
        while sum(map(len, got)) < len(sent):
            deadline.check(f"member 0 has {len(got[0])}, member 1 has {len(got[1])}")
            for i, c in enumerate(members):
                msg = c.poll(0.05)
                if msg is not None and not msg.error():
                    got[i].append(received(msg))
        for i, c in enumerate(members):
            assert {m.partition for m in got[i]} <= owned[i], f"member {i} read partitions it does not own"
            assert {tp.partition for tp in c.assignment()} == owned[i], f"member {i} was reassigned mid-test"
        assert_exactly_once_in_order(sent, got[0] + got[1])
    finally:
        close_all(members)


def test_commit_resume():
    """A consumer commits its position and leaves; a fresh one in the same group resumes there."""
    topic = fresh_topic(CLIENT, "commit-resume", 2)
    group = unique("resume")
    first = make_messages(topic, 2, 8)
    produce_all(producer(), topic, first)
    a = consumer(group)
    try:
        a.subscribe([topic])
        assert_exactly_once_in_order(first, consume(a, len(first), "first consumer"))
        a.commit(asynchronous=False)
        committed = a.committed([TopicPartition(topic, p) for p in range(2)], timeout=TIMEOUT_S)
        assert sorted((tp.partition, tp.offset) for tp in committed) == [(0, 8), (1, 8)], committed
    finally:
        a.close()

    second = make_messages(topic, 2, 5, start=8)
    produce_all(producer(), topic, second)
    b = consumer(group)
    try:
        committed = b.committed([TopicPartition(topic, p) for p in range(2)], timeout=TIMEOUT_S)
        assert sorted((tp.partition, tp.offset) for tp in committed) == [(0, 8), (1, 8)], committed
        b.subscribe([topic])
        got = consume(b, len(second), "fresh consumer resuming")
    finally:
        b.close()
    assert_exactly_once_in_order(second, got)
    assert {m.partition: m.offset for m in reversed(got)} == {0: 8, 1: 8}, "resumed elsewhere than the commit"


def test_offsets_for_times():
    topic = fresh_topic(CLIENT, "offsets-for-times", 2)
    base = int(time.time() * 1000) - 60_000
    sent = [Msg(0, f"k{i}".encode(), f"v{i}".encode(), (), base + 1000 * i) for i in range(6)]
    sent += [Msg(1, b"other", b"other", (), base + 100_000)]
    produce_all(producer(), topic, sent)
    c = consumer(unique("times"))
    try:
        def lookup(ts):
            [tp] = c.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=TIMEOUT_S)
            assert tp.error is None, tp.error
            return tp.offset

        assert lookup(base - 5000) == 0
        assert lookup(base) == 0
        assert lookup(base + 2500) == 3
        assert lookup(base + 5000) == 5
        assert lookup(base + 5001) == -1, "past the newest timestamp: no offset (-1)"
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S) == (0, 6)
        c.assign([TopicPartition(topic, 0, 3)])
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
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    produce_all(producer(), topic, make_messages(topic, 2, 3))
    c = consumer(group, **{"client.id": "compat-member"})
    try:
        c.subscribe([topic])
        consume(c, 6, "the only member")
        c.commit(offsets=[TopicPartition(topic, 0, 2, metadata="first two"), TopicPartition(topic, 1, 3)],
                 asynchronous=False)

        listed = admin.list_consumer_groups().result(timeout=TIMEOUT_S)
        assert not listed.errors, listed.errors
        assert [g.state for g in listed.valid if g.group_id == group] == [ConsumerGroupState.STABLE]
        described = admin.describe_consumer_groups([group])[group].result(timeout=TIMEOUT_S)
        assert (described.state, described.is_simple_consumer_group, described.partition_assignor) == (
            ConsumerGroupState.STABLE, False, "range"), described
        [member] = described.members
        assert member.client_id == "compat-member", member.client_id
        assert sorted((tp.topic, tp.partition) for tp in member.assignment.topic_partitions) == [
            (topic, 0), (topic, 1)]

        def committed():
            result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
            partitions = result.result(timeout=TIMEOUT_S).topic_partitions
            return sorted((tp.partition, tp.offset, tp.metadata or "") for tp in partitions)

        assert committed() == [(0, 2, "first two"), (1, 3, "")]
        refused = admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1)])])[group].result(timeout=TIMEOUT_S)
        assert [tp.error and tp.error.code() for tp in refused.topic_partitions] == [KafkaError.UNKNOWN_MEMBER_ID], \
            "offsets of a group with an active member must not be altered"
    finally:
        c.close()

    described = admin.describe_consumer_groups([group])[group].result(timeout=TIMEOUT_S)
    assert (described.state, described.members) == (ConsumerGroupState.EMPTY, []), described
    altered = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1)])])[group].result(timeout=TIMEOUT_S)
    assert [tp.error for tp in altered.topic_partitions] == [None]
    assert committed() == [(0, 1, ""), (1, 3, "")]
    admin.delete_consumer_groups([group])[group].result(timeout=TIMEOUT_S)
    assert committed() == []
    assert admin.describe_consumer_groups([group])[group].result(timeout=TIMEOUT_S).state == ConsumerGroupState.DEAD


def test_delete_records():
    topic = fresh_topic(CLIENT, "delete-records", 1)
    sent = make_messages(topic, 1, 10)
    produce_all(producer(), topic, sent)
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    [future] = admin.delete_records([TopicPartition(topic, 0, 4)]).values()
    assert future.result(timeout=TIMEOUT_S).low_watermark == 4
    c = consumer(unique("assign-only"))
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT_S) == (4, 10)
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
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
    assignments = [0, 0]

    def member(i):
        c = consumer(group, **{"group.instance.id": ids[i]})
        c.subscribe([topic], on_assign=lambda _c, _parts: assignments.__setitem__(i, assignments[i] + 1))
        return c

    members = [member(0), member(1)]
    try:
        def split():
            for c in members:
                c.poll(0.05)
            owned = [{tp.partition for tp in c.assignment()} for c in members]
            return all(owned) and not owned[0] & owned[1] and owned

        owned = wait_until("both static members assigned a partition", split)
        seen = assignments[1]
        members[0].close()  # a static member leaves no LeaveGroup behind
        members[0] = member(0)
        assert wait_until("the restarted static member's assignment", split) == owned
        assert assignments[1] == seen, "the other member went through a rebalance"
    finally:
        close_all(members)


def test_idempotence():
    """enable.idempotence=true: InitProducerId, then batches with a producer id and sequences."""
    topic = fresh_topic(CLIENT, "idempotence", 2)
    sent = make_messages(topic, 2, 20)
    produce_all(producer(**{"enable.idempotence": True}), topic, sent)
    assert_idempotent_batches(topic, 2)
    c = consumer(unique("assign-only"))
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(2)])
        got = consume(c, len(sent), "an idempotent producer's messages")
    finally:
        c.close()
    assert_exactly_once_in_order(sent, got)


# Known gaps: these fail against the broker today and are not on compat-tests/clients-allow-list.txt
# (the allow-list is what decides); FINDINGS-clients.md says why.

def test_authorized_operations():
    """With no authorizer Kafka reports every operation of a resource as allowed when a client
    asks (include_authorized_operations). librdkafka asks through Metadata v10 (cluster), Metadata
    v12+ (topics) and DescribeGroups v3+ (groups)."""
    topic = fresh_topic(CLIENT, "authorized-operations", 1)
    group = unique("authorized-operations")
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    ops = lambda found: sorted(op.name for op in found or ())
    assert ops(admin.describe_cluster(include_authorized_operations=True).result(timeout=TIMEOUT_S)
               .authorized_operations) == sorted(
        ["CREATE", "ALTER", "DESCRIBE", "CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE"])
    described = admin.describe_topics(TopicCollection([topic]), include_authorized_operations=True)[topic]
    assert ops(described.result(timeout=TIMEOUT_S).authorized_operations) == sorted(
        ["READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"])
    c = consumer(group)
    try:
        c.subscribe([topic])
        wait_until("an assignment", lambda: (c.poll(0.05), c.assignment())[1])
        described = admin.describe_consumer_groups([group], include_authorized_operations=True)[group]
        assert ops(described.result(timeout=TIMEOUT_S).authorized_operations) == ["DELETE", "DESCRIBE", "READ"]
    finally:
        c.close()



def test_transactions():
    """Three transactions on one partition, the second aborted: a read_committed consumer sees
    the first and third, in order; a read_uncommitted one sees all three."""
    topic = fresh_topic(CLIENT, "transactions", 1)
    batches = [make_messages(topic, 1, n, start=start) for start, n in ((0, 5), (5, 3), (8, 2))]
    p = producer(**{"transactional.id": unique("txn"), "message.timeout.ms": int(GAP_TIMEOUT_S * 1000)})
    p.init_transactions(GAP_TIMEOUT_S)
    for batch, commit in zip(batches, (True, False, True), strict=True):
        p.begin_transaction()
        produce_all(p, topic, batch, GAP_TIMEOUT_S)
        if commit:
            p.commit_transaction(GAP_TIMEOUT_S)
        else:
            p.abort_transaction(GAP_TIMEOUT_S)
    everything = [m for batch in batches for m in batch]
    for isolation, expected in (("read_committed", batches[0] + batches[2]), ("read_uncommitted", everything)):
        c = consumer(unique("txn-reader"), **{"isolation.level": isolation})
        try:
            c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            got = consume(c, len(expected), isolation)
        finally:
            c.close()
        assert_exactly_once_in_order(expected, got)
