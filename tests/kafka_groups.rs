//! Consumer groups against the real broker with librdkafka (the `rdkafka` crate): subscribe and
//! consume, partitions split between members and taken over when one leaves, committed offsets
//! resumed by the next consumer and kept across `kill -9`, and the group admin APIs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use common::{send_request, TestBroker, TIMEOUT};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, JoinGroupRequest, JoinGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetFetchRequest, OffsetFetchResponse,
};
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, OffsetCommitRequest, OffsetCommitResponse,
    SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

fn producer(broker: &TestBroker) -> FutureProducer {
    broker
        .client_config()
        .set("linger.ms", "5")
        .set("acks", "all")
        .create()
        .unwrap()
}

async fn produce(broker: &TestBroker, topic: &str, partitions: i32, count: usize) {
    let producer = producer(broker);
    for i in 0..count {
        let value = format!("value-{i}");
        let key = format!("key-{i}");
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(i as i32 % partitions)
                    .key(&key)
                    .payload(&value),
                TIMEOUT,
            )
            .await
            .unwrap();
    }
}

/// A group member with short timeouts so rebalances in tests are quick.
fn group_consumer(broker: &TestBroker, group: &str, auto_commit: bool) -> BaseConsumer {
    broker
        .client_config()
        .set("group.id", group)
        .set("client.id", "groups-test")
        .set(
            "enable.auto.commit",
            if auto_commit { "true" } else { "false" },
        )
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "3000")
        .set("heartbeat.interval.ms", "200")
        .set("max.poll.interval.ms", "10000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap()
}

/// Polls every consumer (round robin) until `done` holds for the messages seen so far, or
/// fails after `TIMEOUT` with `what`.
fn poll_until(
    consumers: &[&BaseConsumer],
    what: &str,
    mut done: impl FnMut(&[Vec<OwnedMessage>]) -> bool,
) -> Vec<Vec<OwnedMessage>> {
    let deadline = Instant::now() + TIMEOUT;
    let mut seen: Vec<Vec<OwnedMessage>> = consumers.iter().map(|_| Vec::new()).collect();
    loop {
        if done(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        for (i, consumer) in consumers.iter().enumerate() {
            match consumer.poll(Duration::from_millis(50)) {
                Some(Ok(m)) => seen[i].push(m.detach()),
                Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                Some(Err(e)) => panic!("consume error: {e}"),
            }
        }
    }
}

fn assigned(consumer: &BaseConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribed_consumer_reads_every_partition() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("events", 4, &[]).await;
    produce(&broker, "events", 4, 40).await;
    let consumer = group_consumer(&broker, "readers", true);
    consumer.subscribe(&["events"]).unwrap();
    let seen = poll_until(&[&consumer], "40 messages", |s| s[0].len() >= 40);
    let values: HashSet<Vec<u8>> = seen[0]
        .iter()
        .map(|m| m.payload().unwrap().to_vec())
        .collect();
    assert_eq!(values.len(), 40, "no duplicates");
    assert_eq!(assigned(&consumer), BTreeSet::from([0, 1, 2, 3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_split_partitions_and_one_takes_over() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("split", 4, &[]).await;
    let a = group_consumer(&broker, "splitters", false);
    let b = group_consumer(&broker, "splitters", false);
    a.subscribe(&["split"]).unwrap();
    b.subscribe(&["split"]).unwrap();
    poll_until(
        &[&a, &b],
        "both members assigned, together all partitions",
        |_| {
            let (pa, pb) = (assigned(&a), assigned(&b));
            !pa.is_empty()
                && !pb.is_empty()
                && pa.is_disjoint(&pb)
                && pa.union(&pb).copied().collect::<BTreeSet<_>>() == BTreeSet::from([0, 1, 2, 3])
        },
    );
    let (pa, pb) = (assigned(&a), assigned(&b));
    produce(&broker, "split", 4, 40).await;
    let seen = poll_until(&[&a, &b], "40 messages between the two", |s| {
        s[0].len() + s[1].len() >= 40
    });
    for m in &seen[0] {
        assert!(pa.contains(&m.partition()), "a read a partition of b");
    }
    for m in &seen[1] {
        assert!(pb.contains(&m.partition()), "b read a partition of a");
    }
    let values: HashSet<Vec<u8>> = seen
        .iter()
        .flatten()
        .map(|m| m.payload().unwrap().to_vec())
        .collect();
    assert_eq!(values.len(), 40, "each message once");
    assert_eq!(seen[0].len() + seen[1].len(), 40, "no duplicates");

    // b leaves (LeaveGroup on close): a gets everything.
    b.unsubscribe();
    drop(b);
    poll_until(&[&a], "a owns all four partitions", |_| {
        assigned(&a) == BTreeSet::from([0, 1, 2, 3])
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_resume_and_survive_kill9() {
    let mut broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("orders", 2, &[]).await;
    produce(&broker, "orders", 2, 40).await;

    let first = group_consumer(&broker, "billing", false);
    first.subscribe(&["orders"]).unwrap();
    poll_until(&[&first], "all 40 messages", |s| s[0].len() >= 40);
    // Commit 7 on partition 0 and 12 on partition 1.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, Offset::Offset(7))
        .unwrap();
    tpl.add_partition_offset("orders", 1, Offset::Offset(12))
        .unwrap();
    first.commit(&tpl, CommitMode::Sync).unwrap();
    // (rdkafka's `committed()` is not used: with it librdkafka 2.x hangs in rd_kafka_destroy
    // after the consumer closes; OffsetFetch is checked with a raw request below.)
    first.unsubscribe();
    drop(first);

    let check_resume = |broker: &TestBroker, label: &str| {
        let consumer = group_consumer(broker, "billing", false);
        consumer.subscribe(&["orders"]).unwrap();
        // 20 - 7 + 20 - 12 messages remain after the commits.
        let seen = poll_until(&[&consumer], label, |s| s[0].len() >= 21);
        let mut firsts = [i64::MAX; 2];
        for m in &seen[0] {
            let p = m.partition() as usize;
            firsts[p] = firsts[p].min(m.offset());
        }
        assert_eq!(firsts, [7, 12], "{label}: resumes right after the commit");
        assert_eq!(seen[0].len(), 21, "{label}: nothing before the commit");
        consumer.unsubscribe();
    };
    check_resume(&broker, "a new consumer in the group");
    broker.kill9();
    broker.restart();
    check_resume(&broker, "a consumer after kill -9 and restart");

    // A simple consumer (no membership) reads the same offsets.
    let fetched: OffsetFetchResponse = send_request(
        &broker.kafka,
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str("billing")))
            .with_topics(None)]),
    );
    let group = &fetched.groups[0];
    assert_eq!(group.error_code, 0);
    let offsets: Vec<(i32, i64)> = group.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(offsets, vec![(0, 7), (1, 12)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_admin_apis() {
    let broker = TestBroker::start(&[]);
    broker.create_topic("admin-t", 2, &[]).await;
    let consumer = group_consumer(&broker, "watched", false);
    consumer.subscribe(&["admin-t"]).unwrap();
    poll_until(&[&consumer], "an assignment", |_| {
        assigned(&consumer).len() == 2
    });

    // FindCoordinator v4, batched.
    let found: FindCoordinatorResponse = send_request(
        &broker.kafka,
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default().with_coordinator_keys(vec![
            StrBytes::from_static_str("watched"),
            StrBytes::from_static_str("other"),
        ]),
    );
    assert_eq!(found.coordinators.len(), 2);
    for c in &found.coordinators {
        assert_eq!(c.error_code, 0);
        assert_eq!(
            format!("{}:{}", c.host, c.port),
            broker.kafka,
            "this broker coordinates"
        );
    }

    // ListGroups with a state filter.
    let listed = |states: Vec<&'static str>| -> Vec<(String, String)> {
        let response: ListGroupsResponse = send_request(
            &broker.kafka,
            ApiKey::ListGroups,
            4,
            &ListGroupsRequest::default()
                .with_states_filter(states.into_iter().map(StrBytes::from_static_str).collect()),
        );
        assert_eq!(response.error_code, 0);
        response
            .groups
            .iter()
            .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
            .collect()
    };
    assert_eq!(
        listed(vec!["Stable"]),
        vec![("watched".to_string(), "Stable".to_string())]
    );
    assert!(listed(vec!["Empty"]).is_empty());

    // DescribeGroups: the member, its assignment, and "Dead" for an unknown group.
    let described: DescribeGroupsResponse = send_request(
        &broker.kafka,
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![
            GroupId(StrBytes::from_static_str("watched")),
            GroupId(StrBytes::from_static_str("nobody")),
        ]),
    );
    let watched = &described.groups[0];
    assert_eq!(watched.error_code, 0);
    assert_eq!(watched.group_state.as_str(), "Stable");
    assert_eq!(watched.protocol_type.as_str(), "consumer");
    assert!(!watched.protocol_data.is_empty());
    assert_eq!(watched.members.len(), 1);
    assert_eq!(watched.members[0].client_id.as_str(), "groups-test");
    assert!(!watched.members[0].member_assignment.is_empty());
    assert_eq!(described.groups[1].group_state.as_str(), "Dead");

    // KIP-394: a first JoinGroup v4+ without a member id gets one back with
    // MEMBER_ID_REQUIRED; an unknown member id is refused.
    let join = |member: &'static str| -> JoinGroupResponse {
        send_request(
            &broker.kafka,
            ApiKey::JoinGroup,
            5,
            &JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("raw")))
                .with_session_timeout_ms(3000)
                .with_rebalance_timeout_ms(3000)
                .with_member_id(StrBytes::from_static_str(member))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("range"))
                    .with_metadata(bytes::Bytes::from_static(b"m"))]),
        )
    };
    let first = join("");
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    assert!(!first.member_id.is_empty());
    assert_eq!(join("nobody-knows-me").error_code, 25, "UNKNOWN_MEMBER_ID");

    // The member leaves on close: the group goes Empty.
    consumer.unsubscribe();
    drop(consumer);
    let deadline = Instant::now() + TIMEOUT;
    while !listed(vec!["Empty"]).contains(&("watched".to_string(), "Empty".to_string())) {
        assert!(Instant::now() < deadline, "the group never became Empty");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn raw_join(broker: &TestBroker, group: &str, member: &str, session_ms: i32) -> JoinGroupResponse {
    send_request(
        &broker.kafka,
        ApiKey::JoinGroup,
        5,
        &JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_session_timeout_ms(session_ms)
            .with_rebalance_timeout_ms(session_ms)
            .with_member_id(StrBytes::from_string(member.to_string()))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(bytes::Bytes::from_static(b"m"))]),
    )
}

fn raw_heartbeat(broker: &TestBroker, group: &str, member: &str, generation: i32) -> i16 {
    let response: HeartbeatResponse = send_request(
        &broker.kafka,
        ApiKey::Heartbeat,
        4,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_member_id(StrBytes::from_string(member.to_string()))
            .with_generation_id(generation),
    );
    response.error_code
}

fn group_state(broker: &TestBroker, group: &str) -> String {
    let described: DescribeGroupsResponse = send_request(
        &broker.kafka,
        ApiKey::DescribeGroups,
        0,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]),
    );
    described.groups[0].group_state.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_expire_and_generations_fence() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("fenced", 1, &[]).await;
    let id = raw_join(&broker, "raw", "", 1000).member_id.to_string();
    let joined = raw_join(&broker, "raw", &id, 1000);
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    assert_eq!(joined.members.len(), 1);
    let generation = joined.generation_id;
    let synced: SyncGroupResponse = send_request(
        &broker.kafka,
        ApiKey::SyncGroup,
        5,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("raw")))
            .with_member_id(StrBytes::from_string(id.clone()))
            .with_generation_id(generation)
            .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
            .with_protocol_name(Some(StrBytes::from_static_str("range")))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(id.clone()))
                .with_assignment(bytes::Bytes::from_static(b"mine"))]),
    );
    assert_eq!(synced.error_code, 0);
    assert_eq!(&synced.assignment[..], b"mine");
    assert_eq!(raw_heartbeat(&broker, "raw", &id, generation), 0);
    assert_eq!(
        raw_heartbeat(&broker, "raw", &id, generation + 1),
        22,
        "ILLEGAL_GENERATION"
    );
    // A member commits with its generation; a stale generation is fenced.
    let commit = |generation: i32, member: &str, version: i16| -> i16 {
        let response: OffsetCommitResponse = send_request(
            &broker.kafka,
            ApiKey::OffsetCommit,
            version,
            &OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("raw")))
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(StrBytes::from_string(member.to_string()))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("fenced")))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(5)])]),
        );
        response.topics[0].partitions[0].error_code
    };
    assert_eq!(commit(generation, &id, 8), 0);
    assert_eq!(commit(generation - 1, &id, 8), 22, "ILLEGAL_GENERATION");
    assert_eq!(
        commit(-1, "", 2),
        25,
        "no simple commits while the group has members"
    );

    // No more heartbeats: the member expires and the group empties.
    let deadline = Instant::now() + TIMEOUT;
    while group_state(&broker, "raw") != "Empty" {
        assert!(
            Instant::now() < deadline,
            "the silent member was never evicted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        raw_heartbeat(&broker, "raw", &id, generation),
        25,
        "UNKNOWN_MEMBER_ID"
    );
    // Now a simple consumer may commit, even with an old version; OffsetFetch v1 reads it.
    assert_eq!(commit(-1, "", 2), 0);
    let fetched: OffsetFetchResponse = send_request(
        &broker.kafka,
        ApiKey::OffsetFetch,
        1,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("raw")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("fenced")))
                .with_partition_indexes(vec![0, 1])])),
    );
    let partitions = &fetched.topics[0].partitions;
    assert_eq!(partitions[0].committed_offset, 5);
    assert_eq!(partitions[1].committed_offset, -1, "never committed");
}
