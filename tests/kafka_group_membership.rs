//! Group membership beyond the basics, against the real broker: static membership (KIP-345:
//! a restarted member takes its place back without a rebalance, a duplicate instance is
//! fenced), cooperative-sticky incremental rebalances (KIP-429), and the group admin deletes
//! (OffsetDelete, DeleteGroups).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{send_request, TestBroker, TIMEOUT};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

const FENCED_INSTANCE_ID: i16 = 82;
const UNKNOWN_MEMBER_ID: i16 = 25;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Records every rebalance callback: ('A' | 'R', partitions).
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<(char, BTreeSet<i32>)>>,
}

impl ClientContext for Recorder {}

impl ConsumerContext for Recorder {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let (kind, list) = match rebalance {
            Rebalance::Assign(l) => ('A', l),
            Rebalance::Revoke(l) => ('R', l),
            Rebalance::Error(_) => return,
        };
        let partitions = list.elements().iter().map(|e| e.partition()).collect();
        self.events.lock().unwrap().push((kind, partitions));
    }
}

impl Recorder {
    fn count(&self) -> usize {
        self.events.lock().unwrap().len()
    }
    fn revoked(&self) -> BTreeSet<i32> {
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter(|(k, _)| *k == 'R')
            .flat_map(|(_, p)| p.iter().copied())
            .collect()
    }
}

fn member(broker: &TestBroker, group: &str, settings: &[(&str, &str)]) -> BaseConsumer<Recorder> {
    let mut config = broker.client_config();
    config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "200")
        .set("max.poll.interval.ms", "20000")
        .set("topic.metadata.refresh.interval.ms", "1000");
    for (k, v) in settings {
        config.set(*k, *v);
    }
    config.create_with_context(Recorder::default()).unwrap()
}

fn assigned(consumer: &BaseConsumer<Recorder>) -> BTreeSet<i32> {
    consumer
        .assignment()
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// Polls every consumer until `done` holds, failing after `TIMEOUT` with `what`. Errors are
/// handed to `on_error` (which panics unless the test expects them).
fn poll_until(
    consumers: &[&BaseConsumer<Recorder>],
    what: &str,
    mut on_error: impl FnMut(usize, KafkaError),
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + TIMEOUT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        for (i, consumer) in consumers.iter().enumerate() {
            match consumer.poll(Duration::from_millis(20)) {
                Some(Err(KafkaError::PartitionEOF(_))) | Some(Ok(_)) | None => {}
                Some(Err(e)) => on_error(i, e),
            }
        }
    }
}

fn no_errors(i: usize, e: KafkaError) {
    panic!("consumer {i}: {e}");
}

fn split_evenly(a: &BaseConsumer<Recorder>, b: &BaseConsumer<Recorder>) -> bool {
    let (a, b) = (assigned(a), assigned(b));
    a.len() == 2 && b.len() == 2 && a.is_disjoint(&b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_restarts_without_rebalance_and_duplicates_are_fenced() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("static", 4, &[]).await;
    let a = member(&broker, "statics", &[("group.instance.id", "instance-a")]);
    let b = member(&broker, "statics", &[("group.instance.id", "instance-b")]);
    a.subscribe(&["static"]).unwrap();
    b.subscribe(&["static"]).unwrap();
    poll_until(&[&a, &b], "two static members", no_errors, || {
        split_evenly(&a, &b)
    });
    let a_partitions = assigned(&a);
    let b_partitions = assigned(&b);
    let b_callbacks = b.context().count();

    // A static member does not leave the group on close: a new process with the same
    // instance id takes its place and its partitions, and B sees no rebalance.
    drop(a);
    let a2 = member(&broker, "statics", &[("group.instance.id", "instance-a")]);
    a2.subscribe(&["static"]).unwrap();
    poll_until(&[&a2, &b], "the restarted member", no_errors, || {
        assigned(&a2) == a_partitions
    });
    assert_eq!(assigned(&b), b_partitions);
    assert_eq!(
        b.context().count(),
        b_callbacks,
        "the other member saw a rebalance: {:?}",
        b.context().events.lock().unwrap()
    );

    // A second live process with the same instance id takes over; the first is fenced.
    let a3 = member(&broker, "statics", &[("group.instance.id", "instance-a")]);
    a3.subscribe(&["static"]).unwrap();
    let fenced = std::cell::Cell::new(false);
    poll_until(
        &[&a2, &a3, &b],
        "the duplicate instance fenced",
        |i, e| {
            assert_eq!(i, 0, "only the old instance may fail: {e}");
            let code = e.rdkafka_error_code();
            assert!(
                matches!(
                    code,
                    Some(RDKafkaErrorCode::FencedInstanceId | RDKafkaErrorCode::Fatal)
                ),
                "unexpected error on the fenced member: {e}"
            );
            fenced.set(true);
        },
        || fenced.get() && assigned(&a3) == a_partitions,
    );
    assert_eq!(assigned(&b), b_partitions);
    assert_eq!(b.context().count(), b_callbacks);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_moves_only_what_it_must() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("coop", 4, &[]).await;
    let strategy = [("partition.assignment.strategy", "cooperative-sticky")];
    let a = member(&broker, "cooperative", &strategy);
    a.subscribe(&["coop"]).unwrap();
    poll_until(&[&a], "the first member owns everything", no_errors, || {
        assigned(&a).len() == 4
    });
    assert!(a.context().revoked().is_empty());

    let b = member(&broker, "cooperative", &strategy);
    b.subscribe(&["coop"]).unwrap();
    poll_until(&[&a, &b], "an even split", no_errors, || {
        split_evenly(&a, &b)
    });
    // Incremental: A gave up exactly the two partitions B now owns and kept the others
    // throughout (an eager rebalance would have revoked all four).
    assert_eq!(a.context().revoked(), assigned(&b));
    let kept = assigned(&a);
    assert!(kept.is_disjoint(&a.context().revoked()));

    // B leaves: A gets B's partitions added, revoking none of its own.
    let b_owned = assigned(&b);
    drop(b);
    poll_until(&[&a], "A owns everything again", no_errors, || {
        assigned(&a).len() == 4
    });
    assert_eq!(a.context().revoked(), b_owned, "A revoked only once");
}

fn static_join(
    broker: &TestBroker,
    member_id: &str,
    instance: &str,
    version: i16,
) -> JoinGroupResponse {
    send_request(
        &broker.kafka,
        ApiKey::JoinGroup,
        version,
        &JoinGroupRequest::default()
            .with_group_id(GroupId(s("raw-static")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(member_id))
            .with_group_instance_id(Some(s(instance)))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(bytes::Bytes::from_static(b"m"))]),
    )
}

fn heartbeat(broker: &TestBroker, member_id: &str, instance: &str, generation: i32) -> i16 {
    let response: HeartbeatResponse = send_request(
        &broker.kafka,
        ApiKey::Heartbeat,
        4,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(s("raw-static")))
            .with_member_id(s(member_id))
            .with_group_instance_id(Some(s(instance)))
            .with_generation_id(generation),
    );
    response.error_code
}

#[test]
fn static_membership_on_the_wire() {
    let broker = TestBroker::start(&[]);
    // A static member joins at once (no MEMBER_ID_REQUIRED round trip).
    let joined = static_join(&broker, "", "i1", 9);
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].group_instance_id.as_deref(), Some("i1"));
    let first_id = joined.member_id.to_string();
    let generation = joined.generation_id;
    let synced: SyncGroupResponse = send_request(
        &broker.kafka,
        ApiKey::SyncGroup,
        5,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s("raw-static")))
            .with_member_id(s(&first_id))
            .with_group_instance_id(Some(s("i1")))
            .with_generation_id(generation)
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(s(&first_id))
                .with_assignment(bytes::Bytes::from_static(b"mine"))]),
    );
    assert_eq!(synced.error_code, 0);

    // The process restarts: same instance, no member id. It is answered at once with a new
    // id in the same generation, and as leader is told to keep the current assignment.
    let rejoined = static_join(&broker, "", "i1", 9);
    assert_eq!(rejoined.error_code, 0);
    assert_eq!(rejoined.generation_id, generation, "no rebalance");
    assert_ne!(rejoined.member_id.as_str(), first_id);
    assert!(rejoined.skip_assignment);
    let second_id = rejoined.member_id.to_string();
    assert_eq!(
        heartbeat(&broker, &first_id, "i1", generation),
        FENCED_INSTANCE_ID
    );
    assert_eq!(heartbeat(&broker, &second_id, "i1", generation), 0);
    assert_eq!(
        static_join(&broker, &first_id, "i1", 9).error_code,
        FENCED_INSTANCE_ID
    );
    let synced: SyncGroupResponse = send_request(
        &broker.kafka,
        ApiKey::SyncGroup,
        5,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s("raw-static")))
            .with_member_id(s(&second_id))
            .with_group_instance_id(Some(s("i1")))
            .with_generation_id(generation),
    );
    assert_eq!(&synced.assignment[..], b"mine", "the assignment is kept");

    // Leaving by instance id: a stale member id is fenced, the holder's leaves.
    let leave = |member_id: &str| -> LeaveGroupResponse {
        send_request(
            &broker.kafka,
            ApiKey::LeaveGroup,
            4,
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("raw-static")))
                .with_members(vec![MemberIdentity::default()
                    .with_member_id(s(member_id))
                    .with_group_instance_id(Some(s("i1")))]),
        )
    };
    assert_eq!(leave(&first_id).members[0].error_code, FENCED_INSTANCE_ID);
    assert_eq!(leave("").members[0].error_code, 0);
    assert_eq!(leave("").members[0].error_code, UNKNOWN_MEMBER_ID);
    let described: DescribeGroupsResponse = send_request(
        &broker.kafka,
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("raw-static"))]),
    );
    assert_eq!(described.groups[0].group_state.as_str(), "Empty");
}

fn commit(broker: &TestBroker, group: &str, topic: &str, partition: i32, offset: i64) {
    let response: OffsetCommitResponse = send_request(
        &broker.kafka,
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)])]),
    );
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
}

/// The committed offsets of a group as (topic, partition, offset), -1 entries left out.
fn committed(broker: &TestBroker, group: &str) -> BTreeSet<(String, i32, i64)> {
    let response: OffsetFetchResponse = send_request(
        &broker.kafka,
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(None),
    );
    assert_eq!(response.error_code, 0);
    response
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.committed_offset >= 0)
                .map(move |p| (t.name.to_string(), p.partition_index, p.committed_offset))
        })
        .collect()
}

fn list_groups(broker: &TestBroker) -> Vec<String> {
    let response: ListGroupsResponse = send_request(
        &broker.kafka,
        ApiKey::ListGroups,
        4,
        &ListGroupsRequest::default(),
    );
    response
        .groups
        .iter()
        .filter(|g| !g.group_id.starts_with("__"))
        .map(|g| g.group_id.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_delete_and_delete_groups_survive_restart() {
    let mut broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("kept", 2, &[]).await;
    broker.create_topic("dropped", 2, &[]).await;
    for group in ["g1", "g2"] {
        commit(&broker, group, "kept", 0, 10);
        commit(&broker, group, "dropped", 1, 20);
    }

    // OffsetDelete on an empty group deletes exactly what was asked.
    let deleted: OffsetDeleteResponse = send_request(
        &broker.kafka,
        ApiKey::OffsetDelete,
        0,
        &OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("g1")))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(TopicName(s("dropped")))
                .with_partitions(vec![
                    OffsetDeleteRequestPartition::default().with_partition_index(1)
                ])]),
    );
    assert_eq!(deleted.error_code, 0);
    assert_eq!(deleted.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        committed(&broker, "g1"),
        BTreeSet::from([("kept".to_string(), 0, 10)])
    );

    // A group with an active consumer keeps the offsets of topics it subscribes to.
    let consumer = member(&broker, "g2", &[]);
    consumer.subscribe(&["kept"]).unwrap();
    poll_until(&[&consumer], "the consumer joins", no_errors, || {
        assigned(&consumer).len() == 2
    });
    let refused: OffsetDeleteResponse = send_request(
        &broker.kafka,
        ApiKey::OffsetDelete,
        0,
        &OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("g2")))
            .with_topics(vec![
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("kept")))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0)
                    ]),
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s("dropped")))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(1)
                    ]),
            ]),
    );
    assert_eq!(refused.error_code, 0);
    assert_eq!(
        refused.topics[0].partitions[0].error_code,
        GROUP_SUBSCRIBED_TO_TOPIC
    );
    assert_eq!(refused.topics[1].partitions[0].error_code, 0);

    // DeleteGroups: an active group is not deleted, an empty one is, an unknown one is named.
    let delete = |groups: &[&str]| -> Vec<i16> {
        let response: DeleteGroupsResponse = send_request(
            &broker.kafka,
            ApiKey::DeleteGroups,
            2,
            &DeleteGroupsRequest::default()
                .with_groups_names(groups.iter().map(|g| GroupId(s(g))).collect()),
        );
        response.results.iter().map(|r| r.error_code).collect()
    };
    assert_eq!(
        delete(&["g1", "g2", "nobody"]),
        vec![0, NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND]
    );
    assert!(committed(&broker, "g1").is_empty());
    consumer.unsubscribe();
    drop(consumer);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let codes = delete(&["g2"]);
        if codes == vec![0] {
            break;
        }
        assert_eq!(codes, vec![NON_EMPTY_GROUP]);
        assert!(Instant::now() < deadline, "g2 never became deletable");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        list_groups(&broker).is_empty(),
        "{:?}",
        list_groups(&broker)
    );

    // Deletions are records in __consumer_offsets: they hold after kill -9 and a restart.
    commit(&broker, "g3", "kept", 1, 7);
    broker.kill9();
    broker.restart();
    assert!(committed(&broker, "g1").is_empty());
    assert!(committed(&broker, "g2").is_empty());
    assert_eq!(
        committed(&broker, "g3"),
        BTreeSet::from([("kept".to_string(), 1, 7)])
    );
    assert_eq!(list_groups(&broker), vec!["g3".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_expire_after_their_retention() {
    let mut broker = TestBroker::start(&["--offsets.retention.check.interval.ms", "100"]);
    broker.create_topic("expiring", 1, &[]).await;
    // OffsetCommit v2-v4 may ask for their own retention time.
    let response: OffsetCommitResponse = send_request(
        &broker.kafka,
        ApiKey::OffsetCommit,
        2,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s("short-lived")))
            .with_generation_id_or_member_epoch(-1)
            .with_retention_time_ms(300)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("expiring")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(3)])]),
    );
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
    commit(&broker, "long-lived", "expiring", 0, 4);
    assert_eq!(committed(&broker, "short-lived").len(), 1);

    let deadline = Instant::now() + TIMEOUT;
    while !committed(&broker, "short-lived").is_empty() {
        assert!(Instant::now() < deadline, "the offset never expired");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The group had nothing else: it is gone too. The other keeps its offset (7 days).
    assert_eq!(list_groups(&broker), vec!["long-lived".to_string()]);
    broker.kill9();
    broker.restart();
    assert!(committed(&broker, "short-lived").is_empty());
    assert_eq!(
        committed(&broker, "long-lived"),
        BTreeSet::from([("expiring".to_string(), 0, 4)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_started_together_share_the_first_generation() {
    // Kafka's group.initial.rebalance.delay.ms: the first rebalance waits for more members.
    let broker = TestBroker::start(&["--group.initial.rebalance.delay.ms", "1500"]);
    broker.create_topic("together", 4, &[]).await;
    let a = member(&broker, "together", &[]);
    a.subscribe(&["together"]).unwrap();
    // A joins alone first; without the delay it would get a generation of its own.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(500) {
        a.poll(Duration::from_millis(20));
    }
    assert!(
        assigned(&a).is_empty(),
        "the first rebalance waits for more members"
    );
    let b = member(&broker, "together", &[]);
    b.subscribe(&["together"]).unwrap();
    poll_until(&[&a, &b], "an even split", no_errors, || {
        split_evenly(&a, &b)
    });
    for consumer in [&a, &b] {
        let events = consumer.context().events.lock().unwrap().clone();
        assert_eq!(
            events.iter().filter(|(k, _)| *k == 'A').count(),
            1,
            "one assignment, no second generation: {events:?}"
        );
        assert!(consumer.context().revoked().is_empty(), "{events:?}");
    }
}
