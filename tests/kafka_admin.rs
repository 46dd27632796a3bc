//! Admin APIs against the real broker: CreatePartitions and DeleteRecords through librdkafka
//! (the `rdkafka` crate), and DescribeLogDirs, OffsetForLeaderEpoch and DescribeCluster, which
//! rdkafka does not expose, as kafka-protocol requests over a plain socket.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::{send_request, TestBroker, TIMEOUT};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreatePartitionsRequest,
    CreatePartitionsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeLogDirsRequest, DescribeLogDirsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewPartitions};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

fn producer(broker: &TestBroker) -> FutureProducer {
    common::producer(broker, &[("linger.ms", "0"), ("acks", "all")])
}

/// Sends `count` records to one partition, one batch each, values `{prefix}{i}`.
async fn produce(broker: &TestBroker, topic: &str, partition: i32, prefix: &str, count: usize) {
    let producer = producer(broker);
    for i in 0..count {
        let value = format!("{prefix}{i}");
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(partition)
                    .payload(&value)
                    .key("k"),
                TIMEOUT,
            )
            .await
            .unwrap();
    }
}

fn consumer(broker: &TestBroker, topic: &str, partition: i32, offset: Offset) -> BaseConsumer {
    common::assigned_consumer(broker, topic, partition, offset)
}

/// Polls until `count` messages arrived: `(offset, value)` each.
fn consume(consumer: &BaseConsumer, count: usize) -> Vec<(i64, String)> {
    common::poll_messages(consumer, count)
        .iter()
        .map(|m| {
            (
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

fn partition_count(broker: &TestBroker, topic: &str) -> usize {
    let admin = broker.admin_client();
    let metadata = admin.inner().fetch_metadata(Some(topic), TIMEOUT).unwrap();
    metadata.topics()[0].partitions().len()
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_grows_topics_that_serve_at_once_and_survive_restart() {
    let mut broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("grow", 2, &[]).await;
    let admin = broker.admin_client();
    let opts = AdminOptions::new();

    let results = admin
        .create_partitions([&NewPartitions::new("grow", 5)], &opts)
        .await
        .unwrap();
    assert_eq!(results, vec![Ok("grow".to_string())]);
    assert_eq!(partition_count(&broker, "grow"), 5);

    // Each new partition takes writes and serves them right away (a fresh client, so its
    // metadata lists the new partitions).
    for partition in 2..5 {
        produce(&broker, "grow", partition, &format!("p{partition}-"), 3).await;
        let consumer = consumer(&broker, "grow", partition, Offset::Beginning);
        let got = consume(&consumer, 3);
        let want: Vec<_> = (0..3)
            .map(|i| (i as i64, format!("p{partition}-{i}")))
            .collect();
        assert_eq!(got, want, "partition {partition}");
    }

    let assign_self: &[&[i32]] = &[&[1]];
    let assign_other: &[&[i32]] = &[&[7]];
    let cases = [
        (
            NewPartitions::new("grow", 5),
            RDKafkaErrorCode::InvalidPartitions,
        ),
        (
            NewPartitions::new("grow", 3),
            RDKafkaErrorCode::InvalidPartitions,
        ),
        (
            NewPartitions::new("missing", 3),
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ),
        (
            NewPartitions::new("grow", 6).assign(assign_other),
            RDKafkaErrorCode::InvalidReplicaAssignment,
        ),
        (
            // Two new partitions but one assignment.
            NewPartitions::new("grow", 7).assign(assign_self),
            RDKafkaErrorCode::InvalidReplicaAssignment,
        ),
    ];
    for (request, expected) in &cases {
        let results = admin.create_partitions([request], &opts).await.unwrap();
        assert_eq!(
            results[0].as_ref().unwrap_err().1,
            *expected,
            "{} -> {}",
            request.topic_name,
            request.new_partition_count
        );
    }
    // validate_only checks without growing.
    let results = admin
        .create_partitions(
            [&NewPartitions::new("grow", 8)],
            &AdminOptions::new().validate_only(true),
        )
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(partition_count(&broker, "grow"), 5);
    // An explicit assignment of this broker is accepted.
    let results = admin
        .create_partitions([&NewPartitions::new("grow", 6).assign(assign_self)], &opts)
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    drop(admin);

    broker.stop();
    broker.restart();
    assert_eq!(partition_count(&broker, "grow"), 6);
    let consumer = consumer(&broker, "grow", 4, Offset::Beginning);
    assert_eq!(consume(&consumer, 3)[2], (2, "p4-2".to_string()));
    produce(&broker, "grow", 5, "after-", 1).await;
    let consumer = self::consumer(&broker, "grow", 5, Offset::Beginning);
    assert_eq!(consume(&consumer, 1), vec![(0, "after-0".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_answers_a_topic_named_twice_once_with_invalid_request() {
    let broker = TestBroker::start(&[]);
    broker.create_topic("twice", 1, &[]).await;
    broker.create_topic("once", 1, &[]).await;
    for version in [0, 3] {
        let topic = |n: &str, count| {
            CreatePartitionsTopic::default()
                .with_name(name(n))
                .with_count(count)
                .with_assignments(None)
        };
        let request = CreatePartitionsRequest::default()
            .with_topics(vec![
                topic("twice", 2),
                topic("once", 1 + version as i32 + 1),
                topic("twice", 3),
            ])
            .with_timeout_ms(5000);
        let response: CreatePartitionsResponse =
            send_request(&broker.kafka, ApiKey::CreatePartitions, version, &request);
        let codes: Vec<(String, i16)> = response
            .results
            .iter()
            .map(|r| (r.name.0.to_string(), r.error_code))
            .collect();
        let invalid = ResponseError::InvalidRequest.code();
        assert_eq!(
            codes,
            vec![("twice".into(), invalid), ("once".into(), 0)],
            "v{version}"
        );
    }
    assert_eq!(partition_count(&broker, "twice"), 1);
    assert_eq!(partition_count(&broker, "once"), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_earliest_offset_for_consumers() {
    let mut broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("trim", 2, &[]).await;
    produce(&broker, "trim", 0, "a", 20).await;
    produce(&broker, "trim", 1, "b", 10).await;

    let admin = broker.admin_client();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("trim", 0, Offset::Offset(12))
        .unwrap();
    // Offset::End is -1 on the wire: delete up to the high watermark.
    offsets
        .add_partition_offset("trim", 1, Offset::End)
        .unwrap();
    let deleted = admin
        .delete_records(&offsets, &AdminOptions::new())
        .await
        .unwrap();
    let low = |p: i32| {
        let elem = deleted.find_partition("trim", p).unwrap();
        assert!(elem.error().is_ok(), "partition {p}: {:?}", elem.error());
        elem.offset()
    };
    assert_eq!(low(0), Offset::Offset(12));
    assert_eq!(low(1), Offset::Offset(10));

    let check = |broker: &TestBroker, start: i64| {
        let probe = consumer(broker, "trim", 0, Offset::Beginning);
        assert_eq!(
            probe.fetch_watermarks("trim", 0, TIMEOUT).unwrap(),
            (start, 20)
        );
        assert_eq!(
            probe.fetch_watermarks("trim", 1, TIMEOUT).unwrap(),
            (10, 10)
        );
        // Offset::Beginning starts at the new earliest offset.
        assert_eq!(consume(&probe, 1), vec![(start, format!("a{start}"))]);
        // Fetching below it is OFFSET_OUT_OF_RANGE, so auto.offset.reset moves the consumer.
        let below = consumer(broker, "trim", 0, Offset::Offset(3));
        assert_eq!(consume(&below, 1), vec![(start, format!("a{start}"))]);
    };
    check(&broker, 12);

    // Past the high watermark, and unknown partitions, are refused per partition.
    let mut bad = TopicPartitionList::new();
    bad.add_partition_offset("trim", 0, Offset::Offset(21))
        .unwrap();
    bad.add_partition_offset("trim", 9, Offset::Offset(0))
        .unwrap();
    let result = admin
        .delete_records(&bad, &AdminOptions::new())
        .await
        .unwrap();
    let mut errors: Vec<_> = result
        .elements()
        .iter()
        .map(|e| {
            (
                e.partition(),
                e.error().err().and_then(|e| e.rdkafka_error_code()),
            )
        })
        .collect();
    errors.sort_by_key(|(p, _)| *p);
    assert_eq!(
        errors,
        vec![
            (0, Some(RDKafkaErrorCode::OffsetOutOfRange)),
            // librdkafka knows the topic has 2 partitions and does not ask.
            (9, Some(RDKafkaErrorCode::UnknownPartition)),
        ]
    );
    // The broker's own checks, over the wire: unknown partitions and topics, negative offsets
    // other than -1, and topics whose cleanup.policy keeps no deletes.
    broker
        .create_topic("compacted", 1, &[("cleanup.policy", "compact")])
        .await;
    let delete = |topic: &str, partitions: &[(i32, i64)]| {
        DeleteRecordsTopic::default()
            .with_name(name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|(p, o)| {
                        DeleteRecordsPartition::default()
                            .with_partition_index(*p)
                            .with_offset(*o)
                    })
                    .collect(),
            )
    };
    let request = DeleteRecordsRequest::default()
        .with_topics(vec![
            delete("trim", &[(9, 0), (0, -2), (0, 13)]),
            delete("missing", &[(0, 0)]),
            delete("compacted", &[(0, -1)]),
        ])
        .with_timeout_ms(5000);
    for version in [0, 2] {
        let response: DeleteRecordsResponse =
            send_request(&broker.kafka, ApiKey::DeleteRecords, version, &request);
        let answers: Vec<(String, i32, i16, i64)> = response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.0.to_string(),
                        p.partition_index,
                        p.error_code,
                        p.low_watermark,
                    )
                })
            })
            .collect();
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        let out_of_range = ResponseError::OffsetOutOfRange.code();
        let policy = ResponseError::PolicyViolation.code();
        assert_eq!(
            answers,
            vec![
                ("trim".into(), 9, unknown, -1),
                ("trim".into(), 0, out_of_range, -1),
                ("trim".into(), 0, 0, 13),
                ("missing".into(), 0, unknown, -1),
                ("compacted".into(), 0, policy, -1),
            ],
            "v{version}"
        );
    }
    drop(admin);

    // The new log start offset is durable.
    broker.stop();
    broker.restart();
    check(&broker, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_log_dirs_lists_partitions_with_their_sizes() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("dirs", 3, &[]).await;
    broker.create_topic("other", 1, &[]).await;
    produce(&broker, "dirs", 0, "x", 10).await;
    let data_dir = std::path::absolute(broker.data_dir()).unwrap();

    let all: DescribeLogDirsResponse = send_request(
        &broker.kafka,
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(None),
    );
    assert_eq!(all.error_code, 0);
    assert_eq!(all.results.len(), 1, "one log dir");
    let dir = &all.results[0];
    assert_eq!(dir.error_code, 0);
    assert_eq!(dir.log_dir.as_str(), data_dir.to_str().unwrap());
    assert!(
        dir.total_bytes > 0 && dir.usable_bytes > 0 && dir.usable_bytes <= dir.total_bytes,
        "total {} usable {}",
        dir.total_bytes,
        dir.usable_bytes
    );
    let mut listed: Vec<(String, i32, bool)> = dir
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                assert_eq!(p.offset_lag, 0);
                assert!(!p.is_future_key);
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.partition_size > 0,
                )
            })
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("dirs".into(), 0, true),
            ("dirs".into(), 1, false),
            ("dirs".into(), 2, false),
            ("other".into(), 0, false),
        ]
    );

    // Only the requested partitions that exist (v1: no sizes of the filesystem).
    let some = DescribeLogDirsRequest::default().with_topics(Some(vec![
        DescribableLogDirTopic::default()
            .with_topic(name("dirs"))
            .with_partitions(vec![0, 7, 0]),
        DescribableLogDirTopic::default()
            .with_topic(name("missing"))
            .with_partitions(vec![0]),
    ]));
    for version in [1, 4] {
        let response: DescribeLogDirsResponse =
            send_request(&broker.kafka, ApiKey::DescribeLogDirs, version, &some);
        let topics = &response.results[0].topics;
        assert_eq!(topics.len(), 1, "v{version}");
        assert_eq!(topics[0].name.0.as_str(), "dirs");
        let partitions: Vec<i32> = topics[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        assert_eq!(partitions, vec![0], "v{version}");
        assert!(topics[0].partitions[0].partition_size > 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_for_leader_epoch_answers_like_a_kafka_leader() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("epochs", 2, &[]).await;
    produce(&broker, "epochs", 0, "e", 5).await;

    let ask = |partition: i32, current: i32, epoch: i32| {
        OffsetForLeaderPartition::default()
            .with_partition(partition)
            .with_current_leader_epoch(current)
            .with_leader_epoch(epoch)
    };
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![
            OffsetForLeaderTopic::default()
                .with_topic(name("epochs"))
                .with_partitions(vec![
                    ask(0, 0, 0),
                    ask(0, -1, 0),
                    ask(1, -1, 0), // empty: the current epoch still ends at the log end
                    ask(0, -1, 3), // newer than any epoch: undefined
                    ask(0, 1, 0),  // the client knows a newer epoch than ours
                    ask(9, -1, 0),
                ]),
            OffsetForLeaderTopic::default()
                .with_topic(name("missing"))
                .with_partitions(vec![ask(0, -1, 0)]),
        ]);
    let unknown = ResponseError::UnknownTopicOrPartition.code();
    for version in [2, 3, 4] {
        let response: OffsetForLeaderEpochResponse = send_request(
            &broker.kafka,
            ApiKey::OffsetForLeaderEpoch,
            version,
            &request,
        );
        let answers: Vec<Vec<(i16, i32, i32, i64)>> = response
            .topics
            .iter()
            .map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (p.error_code, p.partition, p.leader_epoch, p.end_offset))
                    .collect()
            })
            .collect();
        assert_eq!(
            answers,
            vec![
                vec![
                    (0, 0, 0, 5),
                    (0, 0, 0, 5),
                    (0, 1, 0, 0),
                    (0, 0, -1, -1),
                    (ResponseError::UnknownLeaderEpoch.code(), 0, -1, -1),
                    (unknown, 9, -1, -1),
                ],
                vec![(unknown, 0, -1, -1)],
            ],
            "v{version}"
        );
    }

    // librdkafka validates a position that carries a leader epoch with this API (KIP-320)
    // after a seek, and resets it on a bad answer. The position after two records carries
    // epoch 0; seeking back to it after reading on resumes there.
    let consumer = consumer(&broker, "epochs", 0, Offset::Beginning);
    consume(&consumer, 2);
    let position = consumer.position().unwrap();
    assert_eq!(consume(&consumer, 3)[2], (4, "e4".to_string()));
    consumer.seek_partitions(position, TIMEOUT).unwrap();
    assert_eq!(
        consume(&consumer, 2),
        vec![(2, "e2".to_string()), (3, "e3".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_cluster_names_this_broker_as_the_controller() {
    let broker = TestBroker::start(&[]);
    let (host, port) = broker.kafka.rsplit_once(':').unwrap();
    let port: i32 = port.parse().unwrap();
    let mut cluster_ids = Vec::new();
    for version in [0, 1] {
        let response: DescribeClusterResponse = send_request(
            &broker.kafka,
            ApiKey::DescribeCluster,
            version,
            &DescribeClusterRequest::default(),
        );
        assert_eq!(response.error_code, 0, "v{version}");
        assert_eq!(response.endpoint_type, 1);
        assert_eq!(response.controller_id.0, 1);
        assert_eq!(response.brokers.len(), 1);
        let me = &response.brokers[0];
        assert_eq!((me.broker_id.0, me.host.as_str(), me.port), (1, host, port));
        assert_eq!(response.cluster_authorized_operations, i32::MIN);
        assert!(!response.cluster_id.is_empty());
        cluster_ids.push(response.cluster_id.to_string());
    }
    assert_eq!(cluster_ids[0], cluster_ids[1], "one cluster id");

    let response: DescribeClusterResponse = send_request(
        &broker.kafka,
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
    );
    // DESCRIBE (8) and ALTER (7) among them.
    assert_eq!(
        response.cluster_authorized_operations & (1 << 8 | 1 << 7),
        1 << 8 | 1 << 7
    );

    let response: DescribeClusterResponse = send_request(
        &broker.kafka,
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default().with_endpoint_type(2),
    );
    assert_eq!(
        response.error_code,
        ResponseError::MismatchedEndpointType.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_lists_the_admin_apis() {
    let broker = TestBroker::start(&[]);
    let response: ApiVersionsResponse = send_request(
        &broker.kafka,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("sluice-tests"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    assert_eq!(response.error_code, 0);
    for (key, min, max) in [
        (ApiKey::CreatePartitions, 0, 3),
        (ApiKey::DeleteRecords, 0, 2),
        (ApiKey::DescribeLogDirs, 1, 4),
        (ApiKey::OffsetForLeaderEpoch, 2, 4),
        (ApiKey::DescribeCluster, 0, 2),
    ] {
        let listed = response
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .unwrap_or_else(|| panic!("{key:?} not listed"));
        assert_eq!(
            (listed.min_version, listed.max_version),
            (min, max),
            "{key:?}"
        );
    }
}
