//! Transactions against the real broker with librdkafka: a committed transaction is visible
//! and an aborted one invisible to read_committed consumers (read_uncommitted sees both);
//! consume-transform-produce moves offsets and output atomically; a zombie producer is
//! fenced; `kill -9` in the middle of a transaction leaves nothing half visible.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::time::{Duration, Instant};

use common::{send_request, TestBroker, TIMEOUT};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListOffsetsRequest, ListOffsetsResponse, ListTransactionsRequest,
    ListTransactionsResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

type TxnProducer = ThreadedProducer<DefaultProducerContext>;

fn transactional(broker: &TestBroker, id: &str) -> TxnProducer {
    let producer: TxnProducer = broker
        .client_config()
        .set("transactional.id", id)
        .set("transaction.timeout.ms", "10000")
        .set("linger.ms", "1")
        .create()
        .unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    producer
}

fn send(producer: &TxnProducer, topic: &str, values: &[String]) {
    for value in values {
        producer
            .send(BaseRecord::<(), _>::to(topic).partition(0).payload(value))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    producer.flush(TIMEOUT).unwrap();
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Every data record of partition 0 a consumer with `isolation` reads, up to `until` records
/// or until the partition's end (for read_committed, its last stable offset).
fn read_all(broker: &TestBroker, topic: &str, isolation: &str) -> Vec<String> {
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", format!("reader-{isolation}"))
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "never reached the end of {topic}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap()),
            Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
}

/// ListOffsets "latest" for partition 0: (read_uncommitted, read_committed).
fn latest(broker: &TestBroker, topic: &str) -> (i64, i64) {
    let query = |isolation: i8| -> i64 {
        let response: ListOffsetsResponse = send_request(
            &broker.kafka,
            ApiKey::ListOffsets,
            7,
            &ListOffsetsRequest::default()
                .with_isolation_level(isolation)
                .with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(-1)])]),
        );
        response.topics[0].partitions[0].offset
    };
    (query(0), query(1))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_is_visible_aborted_is_not() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("txn", 1, &[]).await;
    let producer = transactional(&broker, "tx-visibility");
    producer.begin_transaction().unwrap();
    send(&producer, "txn", &values("first", 5));
    producer.commit_transaction(TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "txn", &values("aborted", 5));
    producer.abort_transaction(TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "txn", &values("second", 3));
    producer.commit_transaction(TIMEOUT).unwrap();

    let committed: Vec<String> = values("first", 5)
        .into_iter()
        .chain(values("second", 3))
        .collect();
    assert_eq!(read_all(&broker, "txn", "read_committed"), committed);
    let everything: Vec<String> = values("first", 5)
        .into_iter()
        .chain(values("aborted", 5))
        .chain(values("second", 3))
        .collect();
    assert_eq!(read_all(&broker, "txn", "read_uncommitted"), everything);

    // An open transaction holds read_committed back at its first offset.
    let (end_before, _) = latest(&broker, "txn");
    producer.begin_transaction().unwrap();
    send(&producer, "txn", &values("open", 2));
    let (end, stable) = latest(&broker, "txn");
    assert_eq!(end, end_before + 2);
    assert_eq!(
        stable, end_before,
        "the last stable offset stops at the open transaction"
    );
    assert_eq!(read_all(&broker, "txn", "read_committed"), committed);

    // The admin view of the open transaction.
    let described: DescribeTransactionsResponse = send_request(
        &broker.kafka,
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![
            TransactionalId(StrBytes::from_static_str("tx-visibility")),
            TransactionalId(StrBytes::from_static_str("nobody")),
        ]),
    );
    let state = &described.transaction_states[0];
    assert_eq!(state.error_code, 0);
    assert_eq!(state.transaction_state.as_str(), "Ongoing");
    assert_eq!(state.topics[0].topic.as_str(), "txn");
    assert_eq!(state.topics[0].partitions, vec![0]);
    assert_eq!(
        described.transaction_states[1].error_code, 105,
        "TRANSACTIONAL_ID_NOT_FOUND"
    );
    let listed: ListTransactionsResponse = send_request(
        &broker.kafka,
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default()
            .with_state_filters(vec![StrBytes::from_static_str("Ongoing")])
            .with_duration_filter(-1),
    );
    assert_eq!(listed.transaction_states.len(), 1);
    assert_eq!(listed.transaction_states[0].producer_id, state.producer_id);
    let producers: DescribeProducersResponse = send_request(
        &broker.kafka,
        ApiKey::DescribeProducers,
        0,
        &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(TopicName(StrBytes::from_static_str("txn")))
            .with_partition_indexes(vec![0])]),
    );
    let active = &producers.topics[0].partitions[0].active_producers;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].producer_id, state.producer_id);
    assert_eq!(active[0].current_txn_start_offset, end_before);

    producer.commit_transaction(TIMEOUT).unwrap();
    let (end, stable) = latest(&broker, "txn");
    assert_eq!(stable, end, "committed: stable again (past the marker)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_producer_is_fenced() {
    let broker = TestBroker::start(&[]);
    broker.create_topic("zombies", 1, &[]).await;
    let zombie = transactional(&broker, "tx-zombie");
    zombie.begin_transaction().unwrap();
    send(&zombie, "zombies", &values("zombie", 3));
    // A new instance with the same transactional id: the old one's transaction is aborted
    // and its epoch fenced.
    let successor = transactional(&broker, "tx-zombie");
    let err = zombie.commit_transaction(TIMEOUT).unwrap_err();
    assert!(
        err.rdkafka_error_code()
            .is_some_and(|c| format!("{c:?}").contains("Fenced")
                || format!("{c:?}").contains("InvalidProducerEpoch")),
        "the zombie was not fenced: {err}"
    );
    successor.begin_transaction().unwrap();
    send(&successor, "zombies", &values("successor", 2));
    successor.commit_transaction(TIMEOUT).unwrap();
    assert_eq!(
        read_all(&broker, "zombies", "read_committed"),
        values("successor", 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_moves_offsets_and_output_together() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("input", 1, &[]).await;
    broker.create_topic("output", 1, &[]).await;
    let plain: TxnProducer = broker.client_config().create().unwrap();
    for v in values("in", 6) {
        plain
            .send(BaseRecord::<(), _>::to("input").partition(0).payload(&v))
            .map_err(|(e, _)| e)
            .unwrap();
    }
    plain.flush(TIMEOUT).unwrap();

    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", "transformers")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&["input"]).unwrap();
    let producer = transactional(&broker, "tx-transform");
    let round = |take: usize, commit: bool| {
        let mut read = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        while read.len() < take {
            assert!(Instant::now() < deadline, "input not read");
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                read.push((
                    String::from_utf8(m.payload().unwrap().to_vec()).unwrap(),
                    m.offset(),
                ));
            }
        }
        producer.begin_transaction().unwrap();
        let out: Vec<String> = read.iter().map(|(v, _)| format!("out-{v}")).collect();
        send(&producer, "output", &out);
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("input", 0, Offset::Offset(read.last().unwrap().1 + 1))
            .unwrap();
        producer
            .send_offsets_to_transaction(&offsets, &consumer.group_metadata().unwrap(), TIMEOUT)
            .unwrap();
        if commit {
            producer.commit_transaction(TIMEOUT).unwrap();
        } else {
            producer.abort_transaction(TIMEOUT).unwrap();
        }
    };
    round(3, true);
    let committed_offset = || -> i64 {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("input", 0);
        let committed = consumer.committed_offsets(tpl, TIMEOUT).unwrap();
        match committed.elements()[0].offset() {
            Offset::Offset(o) => o,
            other => panic!("no committed offset: {other:?}"),
        }
    };
    assert_eq!(committed_offset(), 3);
    round(3, false);
    assert_eq!(
        committed_offset(),
        3,
        "the aborted transaction's offsets did not count"
    );
    assert_eq!(
        read_all(&broker, "output", "read_committed"),
        vec!["out-in-0", "out-in-1", "out-in-2"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_transaction_leaves_nothing_half_visible() {
    let mut broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("crash", 1, &[]).await;
    let producer: TxnProducer = broker
        .client_config()
        .set("transactional.id", "tx-crash")
        .set("transaction.timeout.ms", "2000")
        .set("message.timeout.ms", "2000")
        .create()
        .unwrap();
    producer.init_transactions(TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "crash", &values("kept", 4));
    producer.commit_transaction(TIMEOUT).unwrap();
    producer.begin_transaction().unwrap();
    send(&producer, "crash", &values("lost", 4));
    // The data is in the log; the transaction is open when the broker dies.
    broker.kill9();
    drop(producer);
    broker.restart();

    // After the restart the coordinator still knows the open transaction: read_committed is
    // held back until its timeout aborts it; then nothing of it is visible.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (end, stable) = latest(&broker, "crash");
        if stable == end {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the open transaction was never aborted"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        read_all(&broker, "crash", "read_committed"),
        values("kept", 4)
    );
    assert_eq!(
        read_all(&broker, "crash", "read_uncommitted"),
        values("kept", 4)
            .into_iter()
            .chain(values("lost", 4))
            .collect::<Vec<_>>()
    );
}
