//! The real broker driven by librdkafka (the `rdkafka` crate): admin, produce/consume round
//! trips with every codec, acks, ordering, offsets by time, error codes, crash and restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::time::Duration;

use common::{producer, TestBroker, TIMEOUT};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

fn consumer(broker: &TestBroker, topic: &str, partition: i32, offset: Offset) -> BaseConsumer {
    common::assigned_consumer(broker, topic, partition, offset)
}

fn consume(consumer: &BaseConsumer, count: usize) -> Vec<rdkafka::message::OwnedMessage> {
    common::poll_messages(consumer, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_creates_validates_and_deletes_topics() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let admin = broker.admin_client();
    let opts = AdminOptions::new();
    let good = NewTopic::new("orders", 3, TopicReplication::Fixed(1)).set("retention.ms", "60000");
    let results = admin.create_topics([&good], &opts).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");

    let cases = [
        (
            NewTopic::new("orders", 1, TopicReplication::Fixed(1)),
            RDKafkaErrorCode::TopicAlreadyExists,
        ),
        (
            NewTopic::new("bad/name", 1, TopicReplication::Fixed(1)),
            RDKafkaErrorCode::InvalidTopic,
        ),
        (
            NewTopic::new("zero", 0, TopicReplication::Fixed(1)),
            RDKafkaErrorCode::InvalidPartitions,
        ),
        (
            NewTopic::new("rf3", 1, TopicReplication::Fixed(3)),
            RDKafkaErrorCode::InvalidReplicationFactor,
        ),
        (
            NewTopic::new("cfg", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon"),
            RDKafkaErrorCode::InvalidConfig,
        ),
        (
            NewTopic::new("cfg2", 1, TopicReplication::Fixed(1)).set("no.such.config", "1"),
            RDKafkaErrorCode::InvalidConfig,
        ),
    ];
    for (topic, expected) in &cases {
        let results = admin.create_topics([topic], &opts).await.unwrap();
        assert_eq!(
            results[0].as_ref().unwrap_err().1,
            *expected,
            "{}",
            topic.name
        );
    }
    // validate_only checks without creating.
    let dry = NewTopic::new("dry", 2, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&dry], &AdminOptions::new().validate_only(true))
        .await
        .unwrap();
    assert!(results[0].is_ok());

    let metadata = admin.inner().fetch_metadata(None, TIMEOUT).unwrap();
    let names: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    assert!(names.contains(&"orders"), "{names:?}");
    for name in ["dry", "zero", "rf3", "cfg", "cfg2"] {
        assert!(
            !names.contains(&name),
            "{name} must not have been created: {names:?}"
        );
    }
    let orders = metadata
        .topics()
        .iter()
        .find(|t| t.name() == "orders")
        .unwrap();
    assert_eq!(orders.partitions().len(), 3);

    let results = admin.delete_topics(&["orders"], &opts).await.unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    let results = admin.delete_topics(&["orders"], &opts).await.unwrap();
    assert_eq!(
        results[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::UnknownTopicOrPartition
    );
    assert!(
        !broker.data_dir().join("orders-0").exists(),
        "partition files removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_with_every_codec() {
    let broker = TestBroker::start(&["--shards", "2"]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        broker.create_topic(&topic, 1, &[]).await;
        let producer = producer(&broker, &[("compression.type", codec), ("acks", "all")]);
        for i in 0..50i64 {
            let key = format!("key-{i}");
            let value = format!("value-{i}-{}", "x".repeat(i as usize * 10));
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "h1",
                    value: Some(&format!("v{i}")),
                })
                .insert(Header {
                    key: "empty",
                    value: None::<&str>,
                });
            let mut record = FutureRecord::to(&topic)
                .key(&key)
                .headers(headers)
                .timestamp(1_700_000_000_000 + i);
            if i % 10 != 9 {
                record = record.payload(&value);
            }
            producer.send(record, TIMEOUT).await.unwrap();
        }
        let consumer = consumer(&broker, &topic, 0, Offset::Beginning);
        let messages = consume(&consumer, 50);
        for (i, m) in messages.iter().enumerate() {
            assert_eq!(m.offset(), i as i64, "{codec}");
            assert_eq!(m.key().unwrap(), format!("key-{i}").as_bytes(), "{codec}");
            if i % 10 == 9 {
                assert!(m.payload().is_none(), "{codec}: null value survives");
            } else {
                assert_eq!(
                    m.payload().unwrap(),
                    format!("value-{i}-{}", "x".repeat(i * 10)).as_bytes()
                );
            }
            assert_eq!(
                m.timestamp().to_millis(),
                Some(1_700_000_000_000 + i as i64)
            );
            let headers = m.headers().unwrap();
            assert_eq!(headers.count(), 2);
            assert_eq!(headers.get(0).value, Some(format!("v{i}").as_bytes()));
            assert_eq!(headers.get(1).value, None);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_one_and_all_and_per_partition_order() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("acks", 3, &[]).await;
    let mut expected: HashMap<i32, Vec<String>> = HashMap::new();
    for acks in ["0", "1", "all"] {
        let producer = producer(&broker, &[("acks", acks), ("max.in.flight", "1")]);
        for i in 0..200 {
            let partition = i % 3;
            let value = format!("acks{acks}-{i}");
            let delivery = producer
                .send(
                    FutureRecord::to("acks")
                        .partition(partition)
                        .payload(&value)
                        .key("k"),
                    TIMEOUT,
                )
                .await
                .unwrap();
            assert_eq!(delivery.partition, partition);
            expected.entry(partition).or_default().push(value);
        }
    }
    for partition in 0..3 {
        let want = &expected[&partition];
        let consumer = consumer(&broker, "acks", partition, Offset::Beginning);
        let got: Vec<String> = consume(&consumer, want.len())
            .iter()
            .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(&got, want, "partition {partition} keeps production order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_by_time_out_of_range_reset_and_message_too_large() {
    let broker = TestBroker::start(&[]);
    broker
        .create_topic("times", 1, &[("max.message.bytes", "2000")])
        .await;
    let producer = producer(&broker, &[("acks", "all"), ("linger.ms", "0")]);
    for i in 0..20i64 {
        producer
            .send(
                FutureRecord::to("times")
                    .payload("x")
                    .key("k")
                    .timestamp(1_000_000 + i * 1000),
                TIMEOUT,
            )
            .await
            .unwrap();
    }
    let consumer = consumer(&broker, "times", 0, Offset::Beginning);
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("times", 0, Offset::Offset(1_000_000 + 7_500))
        .unwrap();
    let found = consumer.offsets_for_times(query, TIMEOUT).unwrap();
    assert_eq!(
        found.find_partition("times", 0).unwrap().offset(),
        Offset::Offset(8)
    );
    let (low, high) = consumer.fetch_watermarks("times", 0, TIMEOUT).unwrap();
    assert_eq!((low, high), (0, 20));

    // An offset past the end resets to the earliest (auto.offset.reset=earliest).
    let reset = self::consumer(&broker, "times", 0, Offset::Offset(5_000));
    assert_eq!(consume(&reset, 1)[0].offset(), 0);

    // A batch over the topic's max.message.bytes is refused with MESSAGE_TOO_LARGE.
    let big = "y".repeat(5_000);
    let err = producer
        .send(FutureRecord::to("times").payload(&big).key("k"), TIMEOUT)
        .await
        .unwrap_err()
        .0;
    assert_eq!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_and_a_clean_restart() {
    let mut broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("durable", 4, &[]).await;
    let producer = producer(&broker, &[("acks", "all")]);
    let mut sent = 0;
    for i in 0..400 {
        producer
            .send(
                FutureRecord::to("durable")
                    .partition(i % 4)
                    .payload(&format!("m{i}"))
                    .key("k"),
                TIMEOUT,
            )
            .await
            .unwrap();
        sent += 1;
    }
    drop(producer);
    broker.kill9();
    broker.restart();
    let mut total = 0;
    for partition in 0..4 {
        let consumer = consumer(&broker, "durable", partition, Offset::Beginning);
        let messages = consume(&consumer, sent / 4);
        for (i, m) in messages.iter().enumerate() {
            assert_eq!(
                m.payload().unwrap(),
                format!("m{}", i * 4 + partition as usize).as_bytes()
            );
        }
        total += messages.len();
    }
    assert_eq!(total, sent);
    // A clean stop (SIGTERM) exits 0 and loses nothing either.
    broker.stop();
    broker.restart();
    let consumer = consumer(&broker, "durable", 0, Offset::Beginning);
    assert_eq!(consume(&consumer, 100).len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_frames_close_only_their_connection() {
    let broker = TestBroker::start(&[]);
    let frames: Vec<Vec<u8>> = vec![
        (i32::MAX).to_be_bytes().to_vec(), // oversized length
        (-5i32).to_be_bytes().to_vec(),    // negative length
        [&12i32.to_be_bytes()[..], &[0, 3, 0, 1, 0, 0]].concat(), // truncated frame, then EOF
        [&10i32.to_be_bytes()[..], &[0x7f; 10]].concat(), // unknown API key
        // Metadata v1 claiming 2^31-1 topics in a 14-byte body.
        [
            &14i32.to_be_bytes()[..],
            &[0, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0x7f, 0xff, 0xff, 0xff],
        ]
        .concat(),
    ];
    for frame in frames {
        let mut stream = std::net::TcpStream::connect(&broker.kafka).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(&frame).unwrap();
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        assert!(
            rest.is_empty(),
            "no answer to garbage, just a closed connection"
        );
    }
    // The broker still serves real clients.
    broker.create_topic("still-up", 1, &[]).await;
    let producer = producer(&broker, &[]);
    producer
        .send(FutureRecord::to("still-up").payload("ok").key("k"), TIMEOUT)
        .await
        .unwrap();
}

#[test]
fn idle_connections_are_closed() {
    let broker = TestBroker::start(&["--connections.max.idle.ms", "300"]);
    let mut stream = std::net::TcpStream::connect(&broker.kafka).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1];
    // The broker closes the silent connection: the read ends with EOF, not the timeout.
    assert_eq!(stream.read(&mut buf).unwrap(), 0);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the idle limit"
    );
}

#[test]
fn a_bad_configuration_fails_start_up_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, "\"log.retention.mss\" = 5\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("log.retention.mss") && stderr.contains("sluice.toml"),
        "{stderr}"
    );
}

#[test]
fn produce_v0_to_v2_is_answered_unsupported_version() {
    let broker = TestBroker::start(&[]);
    // Produce v2: header v1 (key 0, version 2, correlation 7, client "t"), acks 1, timeout,
    // one topic "x" with one partition carrying an empty message set.
    let mut body = Vec::new();
    body.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 7, 0, 1, b't']);
    body.extend_from_slice(&1i16.to_be_bytes());
    body.extend_from_slice(&1000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&[0, 1, b'x']);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    let mut stream = std::net::TcpStream::connect(&broker.kafka).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(&(body.len() as i32).to_be_bytes())
        .unwrap();
    stream.write_all(&body).unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut answer = vec![0u8; i32::from_be_bytes(length) as usize];
    stream.read_exact(&mut answer).unwrap();
    // correlation 7 | 1 topic | "x" | 1 partition | index 0 | error 35 | offset -1 | time -1 | throttle 0
    let mut expected = Vec::new();
    expected.extend_from_slice(&7i32.to_be_bytes());
    expected.extend_from_slice(&1i32.to_be_bytes());
    expected.extend_from_slice(&[0, 1, b'x']);
    expected.extend_from_slice(&1i32.to_be_bytes());
    expected.extend_from_slice(&0i32.to_be_bytes());
    expected.extend_from_slice(&35i16.to_be_bytes());
    expected.extend_from_slice(&(-1i64).to_be_bytes());
    expected.extend_from_slice(&(-1i64).to_be_bytes());
    expected.extend_from_slice(&0i32.to_be_bytes());
    assert_eq!(answer, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topics_carry_the_broker_clock() {
    let broker = TestBroker::start(&[]);
    broker
        .create_topic("stamped", 1, &[("message.timestamp.type", "LogAppendTime")])
        .await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let producer = producer(&broker, &[("acks", "all")]);
    producer
        .send(
            FutureRecord::to("stamped")
                .payload("x")
                .key("k")
                .timestamp(1_000),
            TIMEOUT,
        )
        .await
        .unwrap();
    let consumer = consumer(&broker, "stamped", 0, Offset::Beginning);
    let message = &consume(&consumer, 1)[0];
    match message.timestamp() {
        rdkafka::Timestamp::LogAppendTime(ts) => assert!(ts >= before, "{ts} < {before}"),
        other => panic!("expected LogAppendTime, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_too_far_in_the_future_are_invalid() {
    let broker = TestBroker::start(&[]);
    broker
        .create_topic("future", 1, &[("message.timestamp.after.max.ms", "60000")])
        .await;
    let producer = producer(&broker, &[("acks", "all"), ("retries", "0")]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let err = producer
        .send(
            FutureRecord::to("future")
                .payload("x")
                .key("k")
                .timestamp(now + 3_600_000),
            TIMEOUT,
        )
        .await
        .unwrap_err()
        .0;
    assert_eq!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::InvalidTimestamp),
        "{err}"
    );
    producer
        .send(
            FutureRecord::to("future")
                .payload("x")
                .key("k")
                .timestamp(now),
            TIMEOUT,
        )
        .await
        .unwrap();
}

/// KIP-74: a Fetch answer holds at most `max_bytes` of records, except the first batch of the
/// first non-empty partition, returned whole even when larger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_max_bytes_bounds_the_whole_response() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;

    let broker = TestBroker::start(&[]);
    broker.create_topic("big", 2, &[]).await;
    // One ~300 KB message per batch, three per partition.
    let producer = producer(&broker, &[("linger.ms", "0"), ("batch.size", "1")]);
    let payload = vec![7u8; 300_000];
    for partition in 0..2 {
        for _ in 0..3 {
            producer
                .send(
                    FutureRecord::<(), _>::to("big")
                        .partition(partition)
                        .payload(&payload),
                    TIMEOUT,
                )
                .await
                .unwrap();
        }
    }
    let fetch = |max_bytes: i32| -> Vec<usize> {
        let partitions = (0..2)
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(20_000_000)
            })
            .collect();
        let response: FetchResponse = common::send_request(
            &broker.kafka,
            ApiKey::Fetch,
            12,
            &FetchRequest::default()
                .with_max_wait_ms(0)
                .with_max_bytes(max_bytes)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("big")))
                    .with_partitions(partitions)]),
        );
        response.responses[0]
            .partitions
            .iter()
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .collect()
    };
    // Smaller than one batch: exactly the first batch of partition 0, nothing else.
    let sizes = fetch(1000);
    assert!(sizes[0] > 300_000 && sizes[0] < 400_000, "{sizes:?}");
    assert_eq!(sizes[1], 0, "{sizes:?}");
    // Room for four batches: three of partition 0, one of partition 1.
    let sizes = fetch(1_250_000);
    assert!(sizes[0] > 900_000 && sizes[0] < 1_000_000, "{sizes:?}");
    assert!(sizes[1] > 300_000 && sizes[1] < 400_000, "{sizes:?}");
    assert!(sizes.iter().sum::<usize>() <= 1_250_000);
}
