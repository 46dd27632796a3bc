//! The native client (`protocol::client`) against the real broker: producer/consumer round
//! trips, every compression codec read back by librdkafka, keyed partitioning identical to
//! librdkafka's murmur2 partitioner, group commits shared with Kafka consumers, and a consumer
//! and producer carrying on across a broker restart.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{assigned_consumer, poll_messages, producer, TestBroker, TIMEOUT};
use futures::StreamExt;
use protocol::client::{
    Client, ClientConfig, ClientError, Compression, Consumer, ConsumerConfig, ConsumerRecord,
    ErrorCode, NewTopic, ProducerConfig, ProducerRecord, Start,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

async fn client(broker: &TestBroker) -> Client {
    Client::connect(ClientConfig::new(&broker.native))
        .await
        .unwrap()
}

async fn create(client: &Client, name: &str, partitions: u32) {
    client
        .create_topic(NewTopic {
            name: name.into(),
            partitions,
            ..NewTopic::default()
        })
        .await
        .unwrap();
}

/// The next `n` records, failing after TIMEOUT.
async fn take(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = tokio::time::timeout(TIMEOUT, consumer.next()).await;
        let record = next
            .unwrap_or_else(|_| panic!("only {} of {n} records arrived", out.len()))
            .expect("stream ended")
            .unwrap();
        out.push(record);
    }
    out
}

#[tokio::test]
async fn produced_records_come_back_with_keys_headers_and_offsets() {
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    create(&client, "round-trip", 3).await;
    let producer = client.producer(ProducerConfig::default());
    let mut deliveries = Vec::new();
    for i in 0..300u32 {
        let record = ProducerRecord::new("round-trip")
            .key(format!("key-{}", i % 10))
            .value(format!("value-{i}"))
            .header("i", i.to_string());
        deliveries.push(producer.send(record).await.unwrap());
    }
    let mut written = HashMap::new();
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let meta = delivery.await.unwrap();
        written.insert(format!("value-{i}"), (meta.partition, meta.offset));
    }

    let mut consumer = client.consumer(ConsumerConfig::default());
    consumer.subscribe("round-trip").await.unwrap();
    let records = take(&mut consumer, 300).await;
    let mut last_offset: HashMap<u32, i64> = HashMap::new();
    for record in &records {
        let value = String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap();
        let i: u32 = value.trim_start_matches("value-").parse().unwrap();
        assert_eq!(
            written[&value],
            (record.partition, record.offset),
            "{value}"
        );
        let key = format!("key-{}", i % 10);
        assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(
            record.partition,
            protocol::murmur2::partition_for_key(key.as_bytes(), 3)
        );
        assert_eq!(
            record.headers,
            vec![("i".to_string(), Some(i.to_string().into()))]
        );
        // Per partition, in offset order.
        let previous = last_offset.insert(record.partition, record.offset);
        assert!(previous.is_none_or(|p| p < record.offset));
    }
}

#[tokio::test]
async fn every_codec_is_read_back_by_librdkafka() {
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    for codec in Compression::ALL {
        let topic = format!("codec-{codec}");
        create(&client, &topic, 1).await;
        let producer = client.producer(ProducerConfig {
            compression: codec,
            linger: Duration::from_millis(50),
            ..ProducerConfig::default()
        });
        let mut deliveries = Vec::new();
        for i in 0..200u32 {
            // Repetitive values, so every codec has something to compress.
            let value = format!("{codec} record {i} ").repeat(20);
            let record = ProducerRecord::new(&topic)
                .key(i.to_string())
                .value(value)
                .header("codec", codec.name());
            deliveries.push(producer.send(record).await.unwrap());
        }
        for delivery in deliveries {
            delivery.await.unwrap();
        }
        let consumer = assigned_consumer(&broker, &topic, 0, Offset::Beginning);
        let messages = poll_messages(&consumer, 200);
        for (i, message) in messages.iter().enumerate() {
            assert_eq!(message.offset(), i as i64);
            assert_eq!(message.key(), Some(i.to_string().as_bytes()));
            assert_eq!(
                message.payload(),
                Some(format!("{codec} record {i} ").repeat(20).as_bytes())
            );
            let header = message.headers().unwrap().get(0);
            assert_eq!(
                (header.key, header.value),
                ("codec", Some(codec.name().as_bytes()))
            );
        }
        // And the native consumer reads what it wrote.
        let mut native = client.consumer(ConsumerConfig::default());
        native.subscribe(&topic).await.unwrap();
        let records = take(&mut native, 200).await;
        assert_eq!(records[199].offset, 199, "{codec}");
    }
}

#[tokio::test]
async fn keys_land_where_librdkafka_murmur2_puts_them() {
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    create(&client, "keyed", 7).await;
    let kafka = producer(&broker, &[("partitioner", "murmur2_random")]);
    let native = client.producer(ProducerConfig::default());
    for i in 0..100 {
        let key = format!("customer-{i}-{}", "x".repeat(i % 9));
        let (kafka_partition, _) = kafka
            .send(
                FutureRecord::to("keyed").key(&key).payload("kafka"),
                TIMEOUT,
            )
            .await
            .map(|d| (d.partition, d.offset))
            .unwrap();
        let delivery = native
            .send(
                ProducerRecord::new("keyed")
                    .key(key.clone())
                    .value("native"),
            )
            .await
            .unwrap();
        let native_partition = delivery.await.unwrap().partition;
        assert_eq!(native_partition as i32, kafka_partition, "key {key}");
    }
}

#[tokio::test]
async fn group_commits_are_shared_with_kafka_consumers() {
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    create(&client, "shared", 1).await;
    let producer = client.producer(ProducerConfig::default());
    for i in 0..20 {
        producer
            .send(ProducerRecord::new("shared").value(format!("m{i}")))
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();

    // Native consumer reads 10 and commits: Kafka's OffsetFetch sees 10.
    let mut consumer = client.consumer(ConsumerConfig::default().group("shared-group"));
    consumer.subscribe("shared").await.unwrap();
    let first = take(&mut consumer, 10).await;
    assert_eq!(first[0].offset, 0);
    consumer.commit().await.unwrap();
    drop(consumer);
    let kafka: BaseConsumer = broker
        .client_config()
        .set("group.id", "shared-group")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("shared", 0);
    let committed = kafka.committed_offsets(tpl, TIMEOUT).unwrap();
    assert_eq!(
        committed.find_partition("shared", 0).unwrap().offset(),
        Offset::Offset(10)
    );

    // Kafka commits 15: a native consumer of the group starts there.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("shared", 0, Offset::Offset(15))
        .unwrap();
    kafka.assign(&tpl).unwrap();
    kafka.commit(&tpl, CommitMode::Sync).unwrap();
    let mut consumer = client.consumer(ConsumerConfig::default().group("shared-group"));
    consumer.subscribe("shared").await.unwrap();
    let next = take(&mut consumer, 1).await;
    assert_eq!(next[0].offset, 15);
    assert_eq!(next[0].value.as_deref(), Some(&b"m15"[..]));

    // Automatic commits: positions reach the broker without an explicit commit.
    let mut auto = client.consumer(
        ConsumerConfig::default()
            .group("auto-group")
            .auto_commit(Duration::from_millis(50)),
    );
    auto.subscribe("shared").await.unwrap();
    take(&mut auto, 20).await;
    let id = client.topic("shared").await.unwrap().id;
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let offsets = client
            .fetch_offsets("auto-group", &[(id, 0)])
            .await
            .unwrap();
        if offsets[0].offset == 20 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "auto commit never reached 20: {offsets:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn errors_are_matchable() {
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    create(&client, "exists", 1).await;
    let again = client
        .create_topic(NewTopic {
            name: "exists".into(),
            partitions: 1,
            ..NewTopic::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Some(ErrorCode::TOPIC_ALREADY_EXISTS));
    assert!(!again.is_retriable());
    let producer = client.producer(ProducerConfig::default());
    let missing = producer
        .send(ProducerRecord::new("missing").value("v"))
        .await;
    assert!(matches!(missing, Err(ClientError::UnknownTopic(ref t)) if t == "missing"));
    let bad_partition = producer
        .send(ProducerRecord::new("exists").partition(5).value("v"))
        .await;
    assert!(matches!(
        bad_partition,
        Err(ClientError::InvalidArgument(_))
    ));
    let refused = Client::connect(ClientConfig::new("127.0.0.1:1"))
        .await
        .unwrap_err();
    assert!(refused.is_connection_refused(), "{refused:?}");
}

#[tokio::test]
async fn consumer_and_producer_carry_on_across_a_broker_restart() {
    let mut broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    create(&client, "restart", 2).await;
    let producer = client.producer(ProducerConfig::default());
    let mut consumer = client.consumer(ConsumerConfig::default().start(Start::Earliest));
    consumer.subscribe("restart").await.unwrap();
    for i in 0..10 {
        producer
            .send(
                ProducerRecord::new("restart")
                    .key(format!("k{i}"))
                    .value(format!("before-{i}")),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let before = take(&mut consumer, 10).await;
    assert!(before
        .iter()
        .all(|r| r.value.as_deref().unwrap().starts_with(b"before-")));

    broker.stop();
    broker.restart_on_same_addresses();

    // Sends wait for the reconnect (with backoff) instead of failing.
    for i in 0..10 {
        producer
            .send(
                ProducerRecord::new("restart")
                    .key(format!("k{i}"))
                    .value(format!("after-{i}")),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // The consumer resubscribed at its positions: the new records, and none twice.
    let after = take(&mut consumer, 10).await;
    for record in &after {
        assert!(
            record.value.as_deref().unwrap().starts_with(b"after-"),
            "{record:?}"
        );
    }
}

#[tokio::test]
async fn requests_are_split_under_the_frame_limit_and_oversized_batches_refused() {
    let broker = TestBroker::start(&["--native-max-frame-bytes", "65536"]);
    let client = client(&broker).await;
    assert_eq!(client.server_info().await.unwrap().frame_bytes_max, 65536);
    create(&client, "framed", 4).await;
    let producer = client.producer(ProducerConfig {
        linger: Duration::from_secs(60),
        ..ProducerConfig::default()
    });
    // Four 30 KB batches close together on flush: more than one frame holds.
    let mut deliveries = Vec::new();
    for partition in 0..4 {
        let record = ProducerRecord::new("framed")
            .partition(partition)
            .value(vec![b'a' + partition as u8; 30_000]);
        deliveries.push(producer.send(record).await.unwrap());
    }
    producer.flush().await.unwrap();
    for (partition, delivery) in deliveries.into_iter().enumerate() {
        let meta = delivery.await.unwrap();
        assert_eq!((meta.partition, meta.offset), (partition as u32, 0));
    }
    // One record larger than a frame can never be sent: refused without losing the connection.
    let too_big = producer
        .send(
            ProducerRecord::new("framed")
                .partition(0)
                .value(vec![0u8; 100_000]),
        )
        .await
        .unwrap();
    producer.flush().await.unwrap();
    let error = too_big.await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::MESSAGE_TOO_LARGE), "{error}");
    let after = producer
        .send(ProducerRecord::new("framed").partition(0).value("small"))
        .await
        .unwrap();
    producer.flush().await.unwrap();
    assert_eq!(after.await.unwrap().offset, 1);
}

#[tokio::test]
async fn a_deleted_topic_ends_its_subscriptions_with_an_error() {
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    create(&client, "doomed", 1).await;
    let producer = client.producer(ProducerConfig::default());
    producer
        .send(ProducerRecord::new("doomed").value("one"))
        .await
        .unwrap()
        .await
        .unwrap();
    let mut consumer = client.consumer(ConsumerConfig::default());
    consumer.subscribe("doomed").await.unwrap();
    assert_eq!(take(&mut consumer, 1).await[0].offset, 0);
    client.delete_topic("doomed").await.unwrap();
    let next = tokio::time::timeout(TIMEOUT, consumer.next())
        .await
        .unwrap()
        .unwrap();
    let error = next.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::UNKNOWN_TOPIC_ID), "{error}");
}

#[tokio::test]
async fn every_acks_level_delivers() {
    use protocol::client::Acks;
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    create(&client, "acks", 1).await;
    for (acks, name) in [
        (Acks::None, "none"),
        (Acks::Leader, "leader"),
        (Acks::All, "all"),
    ] {
        let producer = client.producer(ProducerConfig {
            acks,
            ..ProducerConfig::default()
        });
        let mut deliveries = Vec::new();
        for i in 0..10 {
            let record = ProducerRecord::new("acks").value(format!("{name}-{i}"));
            deliveries.push(producer.send(record).await.unwrap());
        }
        producer.flush().await.unwrap();
        for delivery in deliveries {
            let meta = delivery.await.unwrap();
            // acks none: the broker does not answer, so no offset is known.
            assert_eq!(meta.offset < 0, acks == Acks::None, "{name}");
        }
    }
    let mut consumer = client.consumer(ConsumerConfig::default());
    consumer.subscribe("acks").await.unwrap();
    let values: Vec<String> = take(&mut consumer, 30)
        .await
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect();
    let expected: Vec<String> = ["none", "leader", "all"]
        .iter()
        .flat_map(|name| (0..10).map(move |i| format!("{name}-{i}")))
        .collect();
    assert_eq!(values, expected);
}

#[tokio::test]
async fn offsets_follow_send_order_within_and_across_batches() {
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    create(&client, "ordered", 2).await;
    // Small batches: 500 records make dozens of them, several per request.
    let producer = client.producer(ProducerConfig {
        batch_bytes: 2048,
        acks: protocol::client::Acks::Leader,
        ..ProducerConfig::default()
    });
    let mut deliveries = Vec::new();
    for i in 0..500u32 {
        let record = ProducerRecord::new("ordered")
            .partition(i % 2)
            .value(format!("{i:0>100}"));
        deliveries.push(producer.send(record).await.unwrap());
    }
    let mut next = [0i64; 2];
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let meta = delivery.await.unwrap();
        assert_eq!(meta.partition, i as u32 % 2);
        assert_eq!(meta.offset, next[i % 2], "record {i}");
        next[i % 2] += 1;
    }
    let mut consumer = client.consumer(ConsumerConfig::default().start(Start::Earliest));
    consumer.subscribe("ordered").await.unwrap();
    let mut seen = [Vec::new(), Vec::new()];
    for record in take(&mut consumer, 500).await {
        let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
        seen[record.partition as usize].push((record.offset, value.parse::<u32>().unwrap()));
    }
    for (partition, records) in seen.iter_mut().enumerate() {
        records.sort();
        let expected: Vec<_> = (0..250)
            .map(|n| (n as i64, n * 2 + partition as u32))
            .collect();
        assert_eq!(*records, expected);
    }
}

#[tokio::test]
async fn flush_waits_for_every_record_sent_before_it() {
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    create(&client, "flushed", 3).await;
    // A linger no test waits out: only flush sends these.
    let producer = client.producer(ProducerConfig {
        linger: Duration::from_secs(600),
        ..ProducerConfig::default()
    });
    let mut deliveries = Vec::new();
    for i in 0..30 {
        let record = ProducerRecord::new("flushed")
            .key(format!("k{i}"))
            .value("v");
        deliveries.push(producer.send(record).await.unwrap());
    }
    assert!(deliveries.iter().all(|d| d.try_result().is_none()));
    tokio::time::timeout(TIMEOUT, producer.flush())
        .await
        .unwrap()
        .unwrap();
    for delivery in &deliveries {
        let meta = delivery.try_result().expect("resolved by flush").unwrap();
        assert!(meta.offset >= 0);
        assert!(matches!(delivery.acknowledged_at(), Some(Ok(_))));
    }
}

#[tokio::test]
async fn send_waits_while_the_queue_bound_is_reached() {
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    create(&client, "bounded", 1).await;
    let producer = client.producer(ProducerConfig {
        linger: Duration::from_secs(600),
        queue_records: 3,
        ..ProducerConfig::default()
    });
    let mut first = Vec::new();
    for i in 0..3 {
        let record = ProducerRecord::new("bounded").value(format!("{i}"));
        first.push(producer.send(record).await.unwrap());
    }
    assert!(first.iter().all(|d| d.try_result().is_none()));
    // The fourth gets room only once the first three were acknowledged: it waited for them
    // (and made them go without waiting out the linger).
    let fourth = tokio::time::timeout(
        TIMEOUT,
        producer.send(ProducerRecord::new("bounded").value("3")),
    )
    .await
    .unwrap()
    .unwrap();
    for delivery in &first {
        assert!(delivery.try_result().unwrap().is_ok());
    }
    producer.flush().await.unwrap();
    assert_eq!(fourth.await.unwrap().offset, 3);
}

#[tokio::test]
async fn a_failed_batch_fails_its_records_and_no_other_batch() {
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    client
        .create_topic(NewTopic {
            name: "limited".into(),
            partitions: 2,
            configs: vec![("max.message.bytes".into(), "2000".into())],
            ..NewTopic::default()
        })
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig {
        linger: Duration::from_secs(600),
        ..ProducerConfig::default()
    });
    // Partition 0's batch exceeds the topic's max.message.bytes; partition 1's does not.
    // Flush sends both in one PRODUCE.
    let mut big = Vec::new();
    let mut small = Vec::new();
    for i in 0..5 {
        let value = vec![b'x'; 600];
        big.push(
            producer
                .send(ProducerRecord::new("limited").partition(0).value(value))
                .await
                .unwrap(),
        );
        let value = format!("small-{i}");
        small.push(
            producer
                .send(ProducerRecord::new("limited").partition(1).value(value))
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    for delivery in big {
        let error = delivery.await.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::MESSAGE_TOO_LARGE), "{error}");
    }
    for (i, delivery) in small.into_iter().enumerate() {
        assert_eq!(delivery.await.unwrap().offset, i as i64);
    }
}

#[tokio::test]
async fn a_recreated_topic_is_looked_up_again_and_the_batch_retried() {
    let broker = TestBroker::start(&[]);
    let client = client(&broker).await;
    create(&client, "reborn", 1).await;
    let producer = client.producer(ProducerConfig::default());
    let old = producer
        .send(ProducerRecord::new("reborn").value("old"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(old.offset, 0);
    // A second client deletes and re-creates it: the producer's cached id is now stale.
    let admin = Client::connect(ClientConfig::new(&broker.native))
        .await
        .unwrap();
    admin.delete_topic("reborn").await.unwrap();
    create(&admin, "reborn", 1).await;
    // UNKNOWN_TOPIC_ID is retriable: the batch is retried under the new id.
    let new = tokio::time::timeout(
        TIMEOUT,
        producer
            .send(ProducerRecord::new("reborn").value("new"))
            .await
            .unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(new.offset, 0, "written to the new topic");
    let mut consumer = admin.consumer(ConsumerConfig::default().start(Start::Earliest));
    consumer.subscribe("reborn").await.unwrap();
    let records = take(&mut consumer, 1).await;
    assert_eq!(records[0].value.as_deref(), Some(&b"new"[..]));
}
