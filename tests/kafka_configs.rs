//! Topic and broker configs against the real broker: DescribeConfigs and AlterConfigs through
//! librdkafka (the `rdkafka` crate), and, as kafka-protocol requests over a plain socket, what
//! rdkafka does not expose: IncrementalAlterConfigs, synonyms, documentation, and the
//! per-resource error codes (rdkafka 0.38 reports every resource of a DescribeConfigs or
//! AlterConfigs answer as `Ok`, whatever its error code).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::HashMap;

use common::{send_request, TestBroker, TIMEOUT};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request as incremental;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    alter_configs_request, alter_configs_response, AlterConfigsRequest, AlterConfigsResponse,
    ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminOptions, AlterConfig, ConfigEntry, ConfigSource, OwnedResourceSpecifier, ResourceSpecifier,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
/// Every topic config the broker knows (src/cluster/topic_config.rs).
const TOPIC_CONFIG_COUNT: usize = 17;

fn s(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

/// A topic's configs through rdkafka, by name.
async fn describe_topic(broker: &TestBroker, topic: &str) -> HashMap<String, ConfigEntry> {
    let results = broker
        .admin_client()
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = results.into_iter().next().unwrap().unwrap();
    assert_eq!(
        resource.specifier,
        OwnedResourceSpecifier::Topic(topic.into())
    );
    resource
        .entries
        .into_iter()
        .map(|e| (e.name.clone(), e))
        .collect()
}

/// The effective value of every config of `topic`.
async fn values(broker: &TestBroker, topic: &str) -> HashMap<String, String> {
    describe_topic(broker, topic)
        .await
        .into_iter()
        .map(|(k, e)| (k, e.value.unwrap_or_default()))
        .collect()
}

/// AlterConfigs through rdkafka (which cannot tell whether the resource failed).
async fn alter(broker: &TestBroker, resource: ResourceSpecifier<'_>, entries: &[(&str, &str)]) {
    let mut change = AlterConfig::new(resource);
    for (k, v) in entries {
        change = change.set(k, v);
    }
    let results = broker
        .admin_client()
        .alter_configs([&change], &AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(results.len(), 1);
}

/// AlterConfigs over a socket: the answer for the one resource.
fn alter_raw(
    broker: &TestBroker,
    version: i16,
    resource_type: i8,
    name: &str,
    entries: &[(&str, &str)],
    validate_only: bool,
) -> alter_configs_response::AlterConfigsResourceResponse {
    let configs = entries
        .iter()
        .map(|(k, v)| {
            alter_configs_request::AlterableConfig::default()
                .with_name(s(k))
                .with_value(Some(s(v)))
        })
        .collect();
    let request = AlterConfigsRequest::default()
        .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(configs)])
        .with_validate_only(validate_only);
    let response: AlterConfigsResponse =
        send_request(&broker.kafka, ApiKey::AlterConfigs, version, &request);
    response.responses.into_iter().next().unwrap()
}

/// DescribeConfigs over a socket, with synonyms and documentation.
fn describe_raw(
    broker: &TestBroker,
    version: i16,
    resources: Vec<DescribeConfigsResource>,
) -> Vec<DescribeConfigsResult> {
    let request = DescribeConfigsRequest::default()
        .with_resources(resources)
        .with_include_synonyms(true)
        // The field exists from v3.
        .with_include_documentation(version >= 3);
    let response: DescribeConfigsResponse =
        send_request(&broker.kafka, ApiKey::DescribeConfigs, version, &request);
    response.results
}

fn config_resource(
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsResource {
    DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(s(name))
        .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()))
}

/// IncrementalAlterConfigs over a socket: `(name, operation, value)` per config.
fn incremental_alter(
    broker: &TestBroker,
    version: i16,
    resource_type: i8,
    name: &str,
    ops: &[Op],
    validate_only: bool,
) -> AlterConfigsResourceResponse {
    let configs = ops
        .iter()
        .map(|(k, op, v)| {
            incremental::AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(*op)
                .with_value(v.map(s))
        })
        .collect();
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![incremental::AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(configs)])
        .with_validate_only(validate_only);
    let response: IncrementalAlterConfigsResponse = send_request(
        &broker.kafka,
        ApiKey::IncrementalAlterConfigs,
        version,
        &request,
    );
    response.responses.into_iter().next().unwrap()
}

/// One IncrementalAlterConfigs entry: name, operation, value.
type Op<'a> = (&'a str, i8, Option<&'a str>);

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn producer(broker: &TestBroker) -> FutureProducer {
    common::producer(broker, &[("linger.ms", "0"), ("acks", "all")])
}

/// Sends `count` records of `size` bytes to partition 0, one batch each.
async fn produce(broker: &TestBroker, topic: &str, count: usize, size: usize) {
    let producer = producer(broker);
    let payload = vec![b'x'; size];
    for _ in 0..count {
        producer
            .send(
                FutureRecord::to(topic)
                    .partition(0)
                    .payload(&payload)
                    .key("k"),
                TIMEOUT,
            )
            .await
            .unwrap();
    }
}

fn log_files(broker: &TestBroker, topic: &str) -> usize {
    std::fs::read_dir(broker.data_dir().join(format!("{topic}-0")))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".log")
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describes_topic_configs_with_their_sources() {
    // A broker default that differs from the built-in one shows as STATIC_BROKER_CONFIG.
    let broker = TestBroker::start(&["--shards", "2", "--log.retention.ms", "3600000"]);
    broker.create_topic("plain", 1, &[]).await;
    broker
        .create_topic("tuned", 2, &[("segment.bytes", "1048576")])
        .await;

    let plain = describe_topic(&broker, "plain").await;
    assert_eq!(plain.len(), TOPIC_CONFIG_COUNT, "{:?}", plain.keys());
    for entry in plain.values() {
        assert!(!entry.is_read_only && !entry.is_sensitive, "{entry:?}");
    }
    let retention = &plain["retention.ms"];
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::StaticBroker);
    assert!(!retention.is_default);
    let segment = &plain["segment.bytes"];
    assert_eq!(segment.value.as_deref(), Some("1073741824"));
    assert_eq!(segment.source, ConfigSource::Default);
    assert!(segment.is_default);
    assert_eq!(plain["cleanup.policy"].value.as_deref(), Some("delete"));

    let tuned = describe_topic(&broker, "tuned").await;
    assert_eq!(tuned["segment.bytes"].value.as_deref(), Some("1048576"));
    assert_eq!(tuned["segment.bytes"].source, ConfigSource::DynamicTopic);
    assert_eq!(tuned["retention.ms"].source, ConfigSource::StaticBroker);

    let missing = broker
        .admin_client()
        .describe_configs([&ResourceSpecifier::Topic("missing")], &AdminOptions::new())
        .await
        .unwrap();
    // rdkafka hides the error code (checked below): at least no configs come back.
    assert!(missing[0].as_ref().map_or(true, |r| r.entries.is_empty()));

    // What rdkafka does not show: synonyms, types, documentation, and the key filter.
    for version in [1, 3, 4] {
        let results = describe_raw(
            &broker,
            version,
            vec![
                config_resource(
                    TOPIC,
                    "tuned",
                    Some(&["segment.bytes", "retention.ms", "no.such"]),
                ),
                config_resource(TOPIC, "missing", None),
            ],
        );
        let tuned = &results[0];
        assert_eq!(tuned.error_code, 0, "v{version}");
        let names: Vec<&str> = tuned.configs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["retention.ms", "segment.bytes"], "v{version}");
        let segment = &tuned.configs[1];
        let synonyms: Vec<(&str, &str, i8)> = segment
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_deref().unwrap(), s.source))
            .collect();
        assert_eq!(
            synonyms,
            [
                ("segment.bytes", "1048576", 1),
                ("log.segment.bytes", "1073741824", 5)
            ],
            "v{version}"
        );
        let retention = &tuned.configs[0];
        assert_eq!(
            retention.synonyms.len(),
            2,
            "static broker value, then the default"
        );
        assert_eq!(retention.synonyms[0].name.as_str(), "log.retention.ms");
        assert_eq!(retention.synonyms[0].source, 4);
        if version >= 3 {
            assert_eq!(segment.config_type, 3, "INT");
            assert_eq!(retention.config_type, 5, "LONG");
            assert!(segment
                .documentation
                .as_ref()
                .is_some_and(|d| !d.is_empty()));
        }
        let missing = &results[1];
        assert_eq!(
            missing.error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        assert!(missing.error_message.as_ref().unwrap().contains("missing"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_configs_replaces_overrides_and_survives_a_restart() {
    let mut broker = TestBroker::start(&["--shards", "2"]);
    broker
        .create_topic("orders", 3, &[("retention.ms", "60000")])
        .await;

    alter(
        &broker,
        ResourceSpecifier::Topic("orders"),
        &[("segment.bytes", "1048576"), ("max.message.bytes", "2000")],
    )
    .await;
    let check = |configs: HashMap<String, ConfigEntry>| {
        assert_eq!(configs["segment.bytes"].value.as_deref(), Some("1048576"));
        assert_eq!(configs["segment.bytes"].source, ConfigSource::DynamicTopic);
        assert_eq!(configs["max.message.bytes"].value.as_deref(), Some("2000"));
        // AlterConfigs replaces the whole set: the old override is gone.
        assert_eq!(configs["retention.ms"].value.as_deref(), Some("604800000"));
        assert_eq!(configs["retention.ms"].source, ConfigSource::Default);
    };
    check(describe_topic(&broker, "orders").await);

    // max.message.bytes applies to the next produce at once.
    let producer = producer(&broker);
    let too_big = vec![b'x'; 5000];
    let (err, _) = producer
        .send(
            FutureRecord::<str, _>::to("orders")
                .partition(0)
                .payload(&too_big),
            TIMEOUT,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)
    );

    broker.stop();
    broker.restart();
    check(describe_topic(&broker, "orders").await);

    // validate_only checks without changing anything.
    let validated = alter_raw(
        &broker,
        2,
        TOPIC,
        "orders",
        &[("retention.ms", "1000")],
        true,
    );
    assert_eq!(validated.error_code, 0, "{validated:?}");
    check(describe_topic(&broker, "orders").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_values_are_refused_and_change_nothing() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker
        .create_topic("strict", 1, &[("retention.ms", "60000")])
        .await;
    let before = values(&broker, "strict").await;
    // Through rdkafka: the change is refused (rdkafka cannot say so), nothing changes.
    alter(
        &broker,
        ResourceSpecifier::Topic("strict"),
        &[("segment.bytes", "1048576"), ("retention.ms", "-5")],
    )
    .await;
    assert_eq!(values(&broker, "strict").await, before);

    // The code and a message naming the key, for each version.
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("retention.ms", "-5")], "retention.ms"),
        (&[("retention.ms", "soon")], "retention.ms"),
        (
            &[("segment.bytes", "1048576"), ("no.such.config", "1")],
            "no.such.config",
        ),
        (&[("segment.bytes", "12")], "segment.bytes"),
        (&[("cleanup.policy", "compact,compact")], "cleanup.policy"),
        (
            &[("message.timestamp.type", "Now")],
            "message.timestamp.type",
        ),
    ];
    for version in [0, 1, 2] {
        for (entries, key) in cases {
            let result = alter_raw(&broker, version, TOPIC, "strict", entries, false);
            assert_eq!(
                result.error_code,
                ResponseError::InvalidConfig.code(),
                "v{version} {entries:?}"
            );
            let message = result.error_message.unwrap();
            assert!(message.contains(key), "v{version}: {message}");
        }
    }
    assert_eq!(values(&broker, "strict").await, before);

    let missing = alter_raw(
        &broker,
        2,
        TOPIC,
        "missing",
        &[("retention.ms", "1")],
        false,
    );
    assert_eq!(
        missing.error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_configs_are_described_read_only_and_cannot_be_altered() {
    let broker = TestBroker::start(&["--shards", "2", "--log.retention.ms", "3600000"]);
    let results = broker
        .admin_client()
        .describe_configs([&ResourceSpecifier::Broker(1)], &AdminOptions::new())
        .await
        .unwrap();
    let resource = results.into_iter().next().unwrap().unwrap();
    let entries = resource.entry_map();
    for name in [
        "node.id",
        "log.dirs",
        "listeners",
        "advertised.listeners",
        "auto.create.topics.enable",
        "num.partitions",
        "log.retention.ms",
        "log.retention.bytes",
        "log.segment.bytes",
        "log.roll.ms",
        "log.flush.interval.messages",
        "message.max.bytes",
        "socket.request.max.bytes",
        "connections.max.idle.ms",
        "min.insync.replicas",
        "log.cleanup.policy",
    ] {
        assert!(
            entries.contains_key(name),
            "no {name} in {:?}",
            entries.keys()
        );
    }
    assert!(entries.values().all(|e| e.is_read_only));
    let retention = entries["log.retention.ms"];
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert_eq!(retention.source, ConfigSource::StaticBroker);
    assert_eq!(entries["node.id"].value.as_deref(), Some("1"));
    assert_eq!(entries["node.id"].source, ConfigSource::Default);
    assert_eq!(entries["num.partitions"].value.as_deref(), Some("1"));

    alter(
        &broker,
        ResourceSpecifier::Broker(1),
        &[("log.retention.ms", "1000")],
    )
    .await;
    let refused = alter_raw(
        &broker,
        2,
        BROKER,
        "1",
        &[("log.retention.ms", "1000")],
        false,
    );
    assert_eq!(refused.error_code, ResponseError::InvalidRequest.code());
    let message = refused.error_message.unwrap();
    assert!(message.contains("dynamic broker configs"), "{message}");

    // Raw: the message says why; an empty name is this broker; another id or an unsupported
    // resource type is an invalid request.
    let results = describe_raw(
        &broker,
        4,
        vec![
            config_resource(BROKER, "", Some(&["log.segment.bytes"])),
            config_resource(BROKER, "7", None),
            config_resource(8, "1", None),
        ],
    );
    assert_eq!(results[0].error_code, 0);
    assert_eq!(results[0].configs.len(), 1);
    assert_eq!(results[0].configs[0].value.as_deref(), Some("1073741824"));
    assert_eq!(results[0].configs[0].config_type, 3, "INT");
    for failed in &results[1..] {
        assert_eq!(
            failed.error_code,
            ResponseError::InvalidRequest.code(),
            "{failed:?}"
        );
    }
    let refused = incremental_alter(
        &broker,
        1,
        BROKER,
        "1",
        &[("log.retention.ms", SET, Some("1"))],
        false,
    );
    assert_eq!(refused.error_code, ResponseError::InvalidRequest.code());
    let message = refused.error_message.unwrap();
    assert!(message.contains("dynamic broker configs"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smaller_segment_bytes_rolls_the_open_log() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("rolling", 1, &[]).await;
    produce(&broker, "rolling", 20, 1000).await;
    assert_eq!(log_files(&broker, "rolling"), 1);

    // The smallest segment the engine allows: 16 KiB.
    alter(
        &broker,
        ResourceSpecifier::Topic("rolling"),
        &[("segment.bytes", "16384")],
    )
    .await;
    produce(&broker, "rolling", 100, 1000).await;
    let segments = log_files(&broker, "rolling");
    assert!(segments >= 5, "{segments} segments after 100 KB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_alter_configs_sets_deletes_appends_and_subtracts() {
    let mut broker = TestBroker::start(&["--shards", "2"]);
    broker
        .create_topic("events", 2, &[("retention.ms", "60000")])
        .await;

    for version in [0, 1] {
        let ok = incremental_alter(
            &broker,
            version,
            TOPIC,
            "events",
            &[
                ("segment.bytes", SET, Some("1048576")),
                ("cleanup.policy", APPEND, Some("compact")),
            ],
            false,
        );
        assert_eq!(ok.error_code, 0, "v{version}: {ok:?}");
    }
    let now = values(&broker, "events").await;
    assert_eq!(now["segment.bytes"], "1048576");
    assert_eq!(now["cleanup.policy"], "delete,compact", "appended once");
    assert_eq!(now["retention.ms"], "60000", "untouched");

    let ok = incremental_alter(
        &broker,
        1,
        TOPIC,
        "events",
        &[
            ("cleanup.policy", SUBTRACT, Some("delete")),
            ("retention.ms", DELETE, None),
        ],
        false,
    );
    assert_eq!(ok.error_code, 0, "{ok:?}");
    let now = values(&broker, "events").await;
    assert_eq!(now["cleanup.policy"], "compact");
    assert_eq!(now["retention.ms"], "604800000", "back to the default");
    assert_eq!(now["segment.bytes"], "1048576");

    // Each failure leaves everything as it was, including the valid ops beside it.
    let cases: &[(&[Op], ResponseError)] = &[
        (
            &[
                ("segment.bytes", SET, Some("2097152")),
                ("retention.ms", APPEND, Some("1")),
            ],
            ResponseError::InvalidConfig,
        ),
        (
            &[("retention.ms", SET, Some("-7"))],
            ResponseError::InvalidConfig,
        ),
        (
            &[("cleanup.policy", SUBTRACT, Some("compact"))],
            ResponseError::InvalidConfig,
        ),
        (
            &[("no.such.config", SET, Some("1"))],
            ResponseError::InvalidConfig,
        ),
        (
            &[("retention.ms", SET, None)],
            ResponseError::InvalidRequest,
        ),
        (
            &[("retention.ms", 9, Some("1"))],
            ResponseError::InvalidRequest,
        ),
    ];
    for (ops, code) in cases {
        let failed = incremental_alter(&broker, 1, TOPIC, "events", ops, false);
        assert_eq!(failed.error_code, code.code(), "{ops:?}: {failed:?}");
        assert!(failed.error_message.is_some(), "{ops:?}");
    }
    let unchanged = values(&broker, "events").await;
    assert_eq!(unchanged, now);

    let validated = incremental_alter(
        &broker,
        1,
        TOPIC,
        "events",
        &[("segment.bytes", SET, Some("2097152"))],
        true,
    );
    assert_eq!(validated.error_code, 0);
    assert_eq!(values(&broker, "events").await, now, "validate_only");

    let missing = incremental_alter(
        &broker,
        1,
        TOPIC,
        "missing",
        &[("retention.ms", DELETE, None)],
        false,
    );
    assert_eq!(
        missing.error_code,
        ResponseError::UnknownTopicOrPartition.code()
    );

    broker.stop();
    broker.restart();
    assert_eq!(values(&broker, "events").await, now, "after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topics_refuse_records_without_a_key() {
    // Kafka's rule (librdkafka test 0011): a compacted topic takes only keyed records; a
    // batch holding a keyless one is refused with INVALID_RECORD, compressed or not.
    let broker = TestBroker::start(&["--shards", "2"]);
    broker
        .create_topic("compacted", 1, &[("cleanup.policy", "compact")])
        .await;
    for codec in ["none", "zstd"] {
        let producer = common::producer(
            &broker,
            &[
                ("linger.ms", "0"),
                ("acks", "all"),
                ("compression.type", codec),
                ("retries", "0"),
            ],
        );
        let keyed = producer
            .send(
                FutureRecord::to("compacted")
                    .partition(0)
                    .payload("v")
                    .key("k"),
                TIMEOUT,
            )
            .await;
        assert!(keyed.is_ok(), "{codec}: {keyed:?}");
        let keyless = producer
            .send(
                FutureRecord::<(), _>::to("compacted")
                    .partition(0)
                    .payload("v"),
                TIMEOUT,
            )
            .await;
        match keyless {
            Err((KafkaError::MessageProduction(code), _)) => {
                assert_eq!(code, RDKafkaErrorCode::InvalidRecord, "{codec}")
            }
            other => panic!("{codec}: a keyless record was accepted: {other:?}"),
        }
    }
    // Topics that only delete take keyless records as before.
    broker.create_topic("deleting", 1, &[]).await;
    let producer = producer(&broker);
    producer
        .send(
            FutureRecord::<(), _>::to("deleting")
                .partition(0)
                .payload("v"),
            TIMEOUT,
        )
        .await
        .unwrap();
}

/// A topic that flushes only every hour still gets its data flushed (and visible to
/// consumers, which read up to the durable offset) once an acks=1 producer has 64 MiB pending:
/// the broker holds unflushed bytes in memory, so it must not let them grow without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unflushed_data_is_bounded_whatever_the_flush_interval() {
    let broker = TestBroker::start(&[]);
    let topic = "rarely-flushed";
    broker
        .create_topic(
            topic,
            1,
            &[("flush.messages", "100000000"), ("flush.ms", "3600000")],
        )
        .await;
    let producer = common::producer(&broker, &[("linger.ms", "0"), ("acks", "1")]);
    let payload = vec![b'y'; 512 * 1024];
    let records = 160; // 80 MiB, past the 64 MiB bound once
    let sends: Vec<_> = (0..records)
        .map(|_| {
            producer.send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(&payload),
                TIMEOUT,
            )
        })
        .collect();
    for send in sends {
        send.await.unwrap();
    }
    // 128 records of 512 KiB are 64 MiB: the request that went past it flushed all before it.
    let consumer = common::assigned_consumer(&broker, topic, 0, rdkafka::Offset::Beginning);
    let got = common::poll_messages(&consumer, 120);
    assert!(got.len() >= 120);
}
