//! Idempotent producers against the real broker: a librdkafka producer with
//! `enable.idempotence=true` sends through a proxy that drops connections and responses at
//! random, and every message is in the log exactly once, in order; producer state survives
//! `kill -9` (a retried batch is still recognised), and producer ids never repeat.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{send_request, TestBroker, TIMEOUT};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use protocol::records::{BatchBuilder, Record};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy in front of the broker that, at random (seeded), cuts a connection instead of
/// forwarding a chunk: before a request reaches the broker, or after the broker answered and
/// before the client sees the answer (the case idempotence exists for).
struct ChaosProxy {
    cuts: Arc<AtomicUsize>,
    /// Cuts happen only while armed.
    armed: Arc<AtomicBool>,
}

impl ChaosProxy {
    /// Serves on `listener`, forwarding to `upstream`; cuts about one chunk in `one_in`, at
    /// most `max_cuts` times.
    fn start(listener: TcpListener, upstream: String, one_in: u64, max_cuts: usize) -> ChaosProxy {
        let cuts = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(false));
        let proxy_armed = armed.clone();
        let rng = Arc::new(AtomicU64::new(0x5EED_1DE4_F00D_CAFE));
        let proxy_cuts = cuts.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (cuts, rng, armed) = (proxy_cuts.clone(), rng.clone(), proxy_armed.clone());
                tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let chaos = move || {
                        if !armed.load(Ordering::Relaxed) {
                            return false;
                        }
                        // xorshift over a shared state: deterministic sequence of decisions.
                        let mut x = rng.load(Ordering::Relaxed);
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        rng.store(x, Ordering::Relaxed);
                        x % one_in == 0 && cuts.fetch_add(1, Ordering::Relaxed) < max_cuts
                    };
                    let chaos_up = chaos.clone();
                    let up = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = client_read.read(&mut buf).await.unwrap_or(0);
                            if n == 0 || chaos_up() {
                                return;
                            }
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = server_read.read(&mut buf).await.unwrap_or(0);
                            if n == 0 || chaos() {
                                return;
                            }
                            if client_write.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    // Either direction ending drops both halves: the connection is cut.
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        ChaosProxy { cuts, armed }
    }

    fn arm(&self, on: bool) {
        self.armed.store(on, Ordering::Relaxed);
    }
}

/// Reads a whole partition straight from the broker: the payloads in offset order.
fn read_partition(broker: &TestBroker, topic: &str, partition: i32, count: usize) -> Vec<String> {
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", "idempotence-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    while out.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "read {} of {count}",
            out.len()
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    // Nothing beyond: no duplicates appended after the expected messages.
    let (_, high) = consumer
        .fetch_watermarks(topic, partition, TIMEOUT)
        .unwrap();
    assert_eq!(
        high as usize, count,
        "partition {partition} holds extra records"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_through_a_flaky_network_write_each_message_once_in_order() {
    // The broker advertises the proxy, so every connection the client makes goes through it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap().to_string();
    let broker = TestBroker::start(&["--advertised-kafka", &proxy_addr]);
    let proxy = ChaosProxy::start(listener, broker.kafka.clone(), 6, 60);
    broker.create_topic("exactly-once", 2, &[]).await;
    proxy.arm(true);

    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &proxy_addr)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("batch.num.messages", "10")
        .set("message.timeout.ms", "120000")
        .set("retry.backoff.ms", "20")
        .set("reconnect.backoff.ms", "10")
        .set("reconnect.backoff.max.ms", "100")
        .create()
        .unwrap();
    const PER_PARTITION: usize = 1000;
    let mut deliveries = Vec::new();
    for i in 0..PER_PARTITION {
        for partition in 0..2 {
            let payload = format!("{partition}-{i:05}");
            let queued = producer
                .send_result(
                    FutureRecord::<(), _>::to("exactly-once")
                        .partition(partition)
                        .payload(&payload),
                )
                .map_err(|(e, _)| e);
            deliveries.push(queued);
        }
    }
    for delivery in deliveries {
        let result = delivery.unwrap().await.unwrap();
        assert!(result.is_ok(), "delivery failed: {:?}", result.err());
    }
    proxy.arm(false);
    assert!(
        proxy.cuts.load(Ordering::Relaxed) >= 10,
        "the proxy hardly cut anything ({}); the test proves nothing",
        proxy.cuts.load(Ordering::Relaxed)
    );
    for partition in 0..2 {
        let expected: Vec<String> = (0..PER_PARTITION)
            .map(|i| format!("{partition}-{i:05}"))
            .collect();
        assert_eq!(
            read_partition(&broker, "exactly-once", partition, PER_PARTITION),
            expected,
            "partition {partition}: every message exactly once, in order"
        );
    }
}

fn init_producer_id(broker: &TestBroker) -> (i64, i16) {
    let response: InitProducerIdResponse = send_request(
        &broker.kafka,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000),
    );
    assert_eq!(response.error_code, 0);
    (response.producer_id.0, response.producer_epoch)
}

/// An idempotent batch of `records` records, written as a client would.
fn idempotent_batch(pid: i64, epoch: i16, sequence: i32, records: usize) -> Bytes {
    let mut builder = BatchBuilder::new();
    for i in 0..records {
        builder.push(Record {
            value: Some(Bytes::from(format!("seq-{}", sequence as usize + i))),
            timestamp: common_now(),
            ..Record::default()
        });
    }
    let mut batch = builder.build();
    // Producer id, epoch and base sequence sit at fixed header offsets; the CRC covers them.
    batch[43..51].copy_from_slice(&pid.to_be_bytes());
    batch[51..53].copy_from_slice(&epoch.to_be_bytes());
    batch[53..57].copy_from_slice(&sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch.freeze()
}

fn common_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Produces one batch; returns (error code, base offset).
fn produce(broker: &TestBroker, topic: &str, batch: Bytes) -> (i16, i64) {
    let response: ProduceResponse = send_request(
        &broker.kafka,
        ApiKey::Produce,
        9,
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))])]),
    );
    let p = &response.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_state_and_ids_survive_kill9() {
    let mut broker = TestBroker::start(&[]);
    broker.create_topic("state", 1, &[]).await;
    let (pid, epoch) = init_producer_id(&broker);
    assert_eq!(epoch, 0);
    // The coordinators' internal topics are not writable by clients.
    for internal in ["__consumer_offsets", "__transaction_state"] {
        assert_eq!(
            produce(&broker, internal, idempotent_batch(pid, epoch, 0, 1)).0,
            17,
            "INVALID_TOPIC_EXCEPTION for {internal}"
        );
    }
    let mut offsets = BTreeMap::new();
    for (seq, records) in [(0, 3), (3, 2), (5, 4)] {
        let (code, base) = produce(&broker, "state", idempotent_batch(pid, epoch, seq, records));
        assert_eq!(code, 0);
        offsets.insert(seq, base);
    }
    // A retry is answered with the original offset; a gap and an old epoch are refused.
    assert_eq!(
        produce(&broker, "state", idempotent_batch(pid, epoch, 3, 2)),
        (0, offsets[&3])
    );
    assert_eq!(
        produce(&broker, "state", idempotent_batch(pid, epoch, 11, 1)).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(
        produce(&broker, "state", idempotent_batch(pid + 99, 0, 7, 1)).0,
        59,
        "UNKNOWN_PRODUCER_ID"
    );

    // kill -9: no snapshot written; the state is rebuilt from the log.
    broker.kill9();
    broker.restart();
    assert_eq!(
        produce(&broker, "state", idempotent_batch(pid, epoch, 5, 4)),
        (0, offsets[&5]),
        "the retry is still recognised after kill -9"
    );
    let (code, base) = produce(&broker, "state", idempotent_batch(pid, epoch, 9, 1));
    assert_eq!((code, base), (0, 9), "the sequence continues");

    // A clean stop writes a snapshot; recovery starts from it.
    broker.stop();
    assert!(
        broker
            .data_dir()
            .join(format!("state-0/{}", "producer-state.snapshot"))
            .exists()
            || std::fs::read_dir(broker.data_dir())
                .unwrap()
                .flatten()
                .any(|d| d.path().join("producer-state.snapshot").exists())
    );
    broker.restart();
    assert_eq!(
        produce(&broker, "state", idempotent_batch(pid, epoch, 9, 1)),
        (0, 9)
    );
    // Producer ids are never handed out twice, across restarts.
    let (next, _) = init_producer_id(&broker);
    assert!(next > pid, "{next} after {pid}");
}
