//! KIP-848 consumer groups (`group.protocol=consumer`) against the real broker with librdkafka:
//! server-side assignment split between members and moved when one leaves or dies, commits
//! resumed after a restart, regular-expression subscriptions, the range assignor, and the
//! admin view (ConsumerGroupDescribe, ListGroups by type).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use common::{send_request, TestBroker, TIMEOUT};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, JoinGroupRequest,
    JoinGroupResponse, ListGroupsRequest, ListGroupsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Broker settings so that KIP-848 rebalances take milliseconds, not seconds.
const FAST_GROUPS: &[&str] = &[
    "--shards",
    "2",
    "--group.consumer.heartbeat.interval.ms",
    "100",
    "--group.consumer.session.timeout.ms",
    "3000",
];

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn produce(broker: &TestBroker, topic: &str, partitions: i32, count: usize) {
    let producer: FutureProducer = broker
        .client_config()
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in 0..count {
        let value = format!("{topic}-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(i as i32 % partitions)
                    .payload(&value),
                TIMEOUT,
            )
            .await
            .unwrap();
    }
}

fn member(broker: &TestBroker, group: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut config = broker.client_config();
    config
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "500");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().unwrap()
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<(String, i32)> {
    consumer
        .assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

/// Polls every consumer until `done` holds for what they have read, or fails after `TIMEOUT`.
fn poll_until(
    consumers: &[&BaseConsumer],
    what: &str,
    seen: &mut [Vec<OwnedMessage>],
    mut done: impl FnMut(&[Vec<OwnedMessage>]) -> bool,
) {
    let deadline = Instant::now() + TIMEOUT;
    while !done(seen) {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        for (i, consumer) in consumers.iter().enumerate() {
            match consumer.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => seen[i].push(m.detach()),
                Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                Some(Err(e)) => panic!("consumer {i}: {e}"),
            }
        }
    }
}

fn describe(broker: &TestBroker, group: &str) -> ConsumerGroupDescribeResponse {
    send_request(
        &broker.kafka,
        ApiKey::ConsumerGroupDescribe,
        1,
        &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_split_partitions_and_take_over() {
    let broker = TestBroker::start(FAST_GROUPS);
    broker.create_topic("kip848", 4, &[]).await;
    produce(&broker, "kip848", 4, 40).await;
    let a = member(&broker, "new-protocol", &[]);
    let b = member(&broker, "new-protocol", &[]);
    a.subscribe(&["kip848"]).unwrap();
    b.subscribe(&["kip848"]).unwrap();
    let mut seen = vec![Vec::new(), Vec::new()];
    poll_until(&[&a, &b], "every message, split 2/2", &mut seen, |seen| {
        let (x, y) = (assigned(&a), assigned(&b));
        seen[0].len() + seen[1].len() >= 40 && x.len() == 2 && y.len() == 2 && x.is_disjoint(&y)
    });
    let values: HashSet<Vec<u8>> = seen
        .iter()
        .flatten()
        .map(|m| m.payload().unwrap().to_vec())
        .collect();
    assert_eq!(values.len(), 40, "every message exactly once");

    let described = describe(&broker, "new-protocol");
    let group = &described.groups[0];
    assert_eq!(group.error_code, 0, "{:?}", group.error_message);
    assert_eq!(group.group_state.as_str(), "Stable");
    assert_eq!(group.assignor_name.as_str(), "uniform");
    assert_eq!(group.members.len(), 2);
    for m in &group.members {
        assert_eq!(m.member_epoch, group.assignment_epoch);
        assert_eq!(m.assignment, m.target_assignment);
        assert_eq!(
            m.assignment.topic_partitions[0].topic_name.as_str(),
            "kip848"
        );
        assert_eq!(m.assignment.topic_partitions[0].partitions.len(), 2);
    }

    // Commit what A read, then A leaves: B gets its partitions and reads what A did not.
    a.commit_consumer_state(CommitMode::Sync).unwrap();
    a.unsubscribe();
    drop(a);
    let mut seen = vec![Vec::new()];
    poll_until(&[&b], "B owns everything", &mut seen, |_| {
        assigned(&b).len() == 4
    });
    produce(&broker, "kip848", 4, 8).await;
    poll_until(
        &[&b],
        "B reads new messages everywhere",
        &mut seen,
        |seen| seen[0].len() >= 8,
    );
    let partitions: BTreeSet<i32> = seen[0].iter().map(|m| m.partition()).collect();
    assert_eq!(partitions, BTreeSet::from([0, 1, 2, 3]));
    assert!(
        seen[0].iter().all(|m| m.offset() >= 10),
        "B resumed after A's commits"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_member_is_evicted_and_commits_survive_restart() {
    let mut broker = TestBroker::start(FAST_GROUPS);
    broker.create_topic("evict", 2, &[]).await;
    produce(&broker, "evict", 2, 10).await;
    let a = member(&broker, "evicting", &[]);
    a.subscribe(&["evict"]).unwrap();
    let mut seen = vec![Vec::new()];
    poll_until(&[&a], "ten messages", &mut seen, |seen| seen[0].len() >= 10);
    a.commit_consumer_state(CommitMode::Sync).unwrap();

    a.unsubscribe();
    drop(a);

    // A member that joins and then goes silent (its process died) holds partitions until its
    // session times out; then the live member gets them.
    let ghost: ConsumerGroupHeartbeatResponse = send_request(
        &broker.kafka,
        ApiKey::ConsumerGroupHeartbeat,
        1,
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("evicting")))
            .with_member_id(s("ghost"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(60_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("evict"))]))
            .with_topic_partitions(Some(Vec::new())),
    );
    assert_eq!(ghost.error_code, 0);
    assert_eq!(
        ghost.assignment.unwrap().topic_partitions[0]
            .partitions
            .len(),
        2,
        "alone, the ghost got both partitions"
    );
    let b = member(&broker, "evicting", &[]);
    b.subscribe(&["evict"]).unwrap();
    let started = Instant::now();
    poll_until(
        &[&b],
        "B owns both after the eviction",
        &mut [Vec::new()],
        |_| assigned(&b).len() == 2,
    );
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "B got the ghost's partitions before its session expired"
    );
    drop(b);

    // Committed offsets are records: kill -9, restart, and a new member resumes after them.
    broker.kill9();
    broker.restart();
    produce(&broker, "evict", 2, 4).await;
    let c = member(&broker, "evicting", &[]);
    c.subscribe(&["evict"]).unwrap();
    let mut seen = vec![Vec::new()];
    poll_until(&[&c], "the four new messages", &mut seen, |seen| {
        seen[0].len() >= 4
    });
    assert!(
        seen[0].iter().all(|m| m.offset() >= 5),
        "resumed after the commits: {:?}",
        seen[0]
            .iter()
            .map(|m| (m.partition(), m.offset()))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regex_subscription_and_range_assignor() {
    let broker = TestBroker::start(FAST_GROUPS);
    broker.create_topic("logs-a", 2, &[]).await;
    broker.create_topic("logs-b", 2, &[]).await;
    broker.create_topic("other", 2, &[]).await;
    let range = [("group.remote.assignor", "range")];
    let a = member(&broker, "regex", &range);
    let b = member(&broker, "regex", &range);
    a.subscribe(&["^logs-.*"]).unwrap();
    b.subscribe(&["^logs-.*"]).unwrap();
    poll_until(
        &[&a, &b],
        "range over both topics",
        &mut [Vec::new(), Vec::new()],
        |_| assigned(&a).len() == 2 && assigned(&b).len() == 2,
    );
    // Range: each member gets the same partition index of both topics.
    for consumer in [&a, &b] {
        let owned = assigned(consumer);
        let topics: BTreeSet<&str> = owned.iter().map(|(t, _)| t.as_str()).collect();
        let indexes: BTreeSet<i32> = owned.iter().map(|(_, p)| *p).collect();
        assert_eq!(topics, BTreeSet::from(["logs-a", "logs-b"]));
        assert_eq!(indexes.len(), 1, "co-partitioned: {owned:?}");
    }
    let described = describe(&broker, "regex");
    assert_eq!(described.groups[0].assignor_name.as_str(), "range");
    // librdkafka sends the union of its patterns, "(^logs-.*)".
    let regex = described.groups[0].members[0]
        .subscribed_topic_regex
        .clone()
        .unwrap();
    assert!(regex.contains("^logs-.*"), "{regex}");

    // A new matching topic joins the subscription.
    broker.create_topic("logs-c", 2, &[]).await;
    poll_until(
        &[&a, &b],
        "the new topic assigned",
        &mut [Vec::new(), Vec::new()],
        |_| assigned(&a).len() + assigned(&b).len() == 6,
    );

    // ListGroups by type.
    let listed: ListGroupsResponse = send_request(
        &broker.kafka,
        ApiKey::ListGroups,
        5,
        &ListGroupsRequest::default().with_types_filter(vec![s("consumer")]),
    );
    let ids: Vec<(&str, &str)> = listed
        .groups
        .iter()
        .map(|g| (g.group_id.as_str(), g.group_type.as_str()))
        .collect();
    assert_eq!(ids, vec![("regex", "consumer")]);
}

#[test]
fn protocol_rules_on_the_wire() {
    let broker = TestBroker::start(FAST_GROUPS);
    let heartbeat = |member: &str, epoch: i32, topics: Option<Vec<&str>>| {
        let response: ConsumerGroupHeartbeatResponse = send_request(
            &broker.kafka,
            ApiKey::ConsumerGroupHeartbeat,
            1,
            &ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s("wire")))
                .with_member_id(s(member))
                .with_member_epoch(epoch)
                .with_rebalance_timeout_ms(5000)
                .with_subscribed_topic_names(
                    topics.map(|t| t.into_iter().map(|n| TopicName(s(n))).collect()),
                )
                .with_topic_partitions(Some(Vec::new())),
        );
        response
    };
    // v1: the client names itself; a join needs a subscription.
    assert_eq!(
        heartbeat("", 0, Some(vec!["t"])).error_code,
        42,
        "INVALID_REQUEST"
    );
    assert_eq!(heartbeat("m1", 0, None).error_code, 42, "INVALID_REQUEST");
    let joined = heartbeat("m1", 0, Some(vec!["t"]));
    assert_eq!(joined.error_code, 0);
    assert!(joined.member_epoch > 0);
    assert_eq!(joined.heartbeat_interval_ms, 100);
    assert_eq!(
        heartbeat("m1", joined.member_epoch + 1, None).error_code,
        110,
        "FENCED_MEMBER_EPOCH"
    );
    assert_eq!(heartbeat("m2", 3, None).error_code, 25, "UNKNOWN_MEMBER_ID");

    // A classic member cannot join a consumer group that has members.
    let join: JoinGroupResponse = send_request(
        &broker.kafka,
        ApiKey::JoinGroup,
        9,
        &JoinGroupRequest::default()
            .with_group_id(GroupId(s("wire")))
            .with_session_timeout_ms(3000)
            .with_rebalance_timeout_ms(3000)
            .with_member_id(s("classic-1"))
            .with_protocol_type(s("consumer")),
    );
    assert_eq!(join.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");

    // Leaving empties the group.
    let left = heartbeat("m1", -1, None);
    assert_eq!(left.error_code, 0);
    assert_eq!(left.member_epoch, -1);
    let described = describe(&broker, "wire");
    assert_eq!(described.groups[0].group_state.as_str(), "Empty");
}
