//! The bench workloads over the Kafka protocol, through librdkafka (the `rdkafka` crate), so
//! the same workload can be compared across protocols.

use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::report::{new_histogram, record, Progress, Receipts, Summary};
use super::{
    payload, CommonArgs, ConsumeBench, E2eBench, Limit, ProduceBench, ProducerArgs, Schedule,
};
use protocol::client::Acks;

const TIMEOUT: Duration = Duration::from_secs(30);

fn config(common: &CommonArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &common.kafka_broker)
        .set("client.id", "sluice-bench");
    config
}

fn kafka_error(common: &CommonArgs, e: KafkaError) -> String {
    format!("kafka protocol at {}: {e}", common.kafka_broker)
}

/// Creates the topic unless it exists.
async fn ensure_topic(common: &CommonArgs, partitions: u32) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = config(common)
        .create()
        .map_err(|e| kafka_error(common, e))?;
    let partitions = i32::try_from(partitions).map_err(|_| "too many partitions".to_string())?;
    let topic = NewTopic::new(&common.topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .map_err(|e| kafka_error(common, e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("creating {name}: {code}")),
        }
    }
    Ok(())
}

fn producer(common: &CommonArgs, args: &ProducerArgs) -> Result<FutureProducer, String> {
    let acks = match args.acks {
        Acks::None => "0",
        Acks::Leader => "1",
        Acks::All => "all",
    };
    config(common)
        .set("acks", acks)
        .set("compression.type", args.compression.name())
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_bytes.to_string())
        // The partitioner the native client uses, so both protocols spread keys alike.
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000")
        .create()
        .map_err(|e| kafka_error(common, e))
}

/// As native's: sends on a schedule or flat out, handing deliveries to `acks`.
async fn send_loop(
    common: &CommonArgs,
    producer: &FutureProducer,
    args: &ProducerArgs,
    limit: Limit,
    rate: Option<f64>,
    acks: mpsc::Sender<(Instant, DeliveryFuture)>,
) -> Result<(u64, u64), String> {
    let schedule = Schedule::start(limit, rate);
    let mut sent = 0u64;
    let mut bytes = 0u64;
    while !schedule.done(sent) {
        let intended = schedule.next(sent).await;
        let value = payload(args.size, intended);
        let delivery = loop {
            let record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(&common.topic).payload(&value);
            match producer.send_result(record) {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // librdkafka's queue is full: let deliveries drain.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(kafka_error(common, e)),
            }
        };
        bytes += value.len() as u64;
        sent += 1;
        if acks.send((Instant::now(), delivery)).await.is_err() {
            break;
        }
    }
    producer
        .flush(TIMEOUT)
        .map_err(|e| kafka_error(common, e))?;
    Ok((sent, bytes))
}

pub async fn produce(args: &ProduceBench, limit: Limit) -> Result<Summary, String> {
    ensure_topic(&args.common, args.producer.partitions).await?;
    let producer = producer(&args.common, &args.producer)?;
    let progress = Progress::new(limit.count);
    let (acks_tx, mut acks_rx) = mpsc::channel::<(Instant, DeliveryFuture)>(100_000);
    let collect = async {
        let mut histogram = new_histogram()?;
        let mut errors = 0u64;
        while let Some((sent_at, delivery)) = acks_rx.recv().await {
            match delivery.await {
                Ok(Ok(_)) => record(&mut histogram, sent_at.elapsed()),
                _ => errors += 1,
            }
            progress.inc(1);
        }
        Ok::<_, String>((histogram, errors))
    };
    let send = send_loop(
        &args.common,
        &producer,
        &args.producer,
        limit,
        args.rate,
        acks_tx,
    );
    let (sent, collected) = tokio::join!(send, collect);
    let (messages, bytes) = sent?;
    let (histogram, errors) = collected?;
    Ok(Summary {
        workload: "produce",
        protocol: "kafka",
        messages: messages - errors,
        bytes,
        elapsed: progress.finish(),
        errors,
        latency: Some(histogram),
        target_rate: args.rate,
    })
}

/// A consumer assigned every partition of the topic (no group coordination), from the start
/// or from the current end. The end is the high watermark read here, not `Offset::End`, which
/// librdkafka resolves later and would skip records produced meanwhile. Also returns how many
/// records the topic holds.
fn assigned_consumer(common: &CommonArgs, from_end: bool) -> Result<(StreamConsumer, i64), String> {
    let consumer: StreamConsumer = config(common)
        .set("group.id", format!("sluice-bench-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(|e| kafka_error(common, e))?;
    let metadata = consumer
        .fetch_metadata(Some(&common.topic), TIMEOUT)
        .map_err(|e| kafka_error(common, e))?;
    let Some(topic) = metadata.topics().iter().find(|t| t.name() == common.topic) else {
        return Err(format!("no topic {:?}", common.topic));
    };
    if topic
        .error()
        .is_some_and(|e| e != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR)
        || topic.partitions().is_empty()
    {
        return Err(format!("no topic {:?}", common.topic));
    }
    let mut assignment = TopicPartitionList::new();
    let mut available = 0i64;
    for p in topic.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(&common.topic, p.id(), TIMEOUT)
            .map_err(|e| kafka_error(common, e))?;
        let offset = if from_end {
            Offset::Offset(high)
        } else {
            Offset::Beginning
        };
        assignment
            .add_partition_offset(&common.topic, p.id(), offset)
            .map_err(|e| kafka_error(common, e))?;
        available += (high - low).max(0);
    }
    consumer
        .assign(&assignment)
        .map_err(|e| kafka_error(common, e))?;
    Ok((consumer, available))
}

pub async fn consume(args: &ConsumeBench) -> Result<Summary, String> {
    let (consumer, available) = assigned_consumer(&args.common, false)?;
    let count = args.count.unwrap_or(available as u64);
    let progress = Progress::new(Some(count));
    let mut stream = consumer.stream();
    let mut messages = 0u64;
    let mut bytes = 0u64;
    while messages < count {
        let Some(message) = stream.next().await else {
            break;
        };
        let message = message.map_err(|e| kafka_error(&args.common, e))?;
        messages += 1;
        bytes += message.payload_len() as u64;
        if messages.is_multiple_of(1024) {
            progress.inc(1024);
        }
    }
    Ok(Summary {
        workload: "consume",
        protocol: "kafka",
        messages,
        bytes,
        elapsed: progress.finish(),
        errors: 0,
        latency: None,
        target_rate: None,
    })
}

pub async fn e2e(args: &E2eBench) -> Result<Summary, String> {
    ensure_topic(&args.common, args.producer.partitions).await?;
    let (consumer, _) = assigned_consumer(&args.common, true)?;
    let producer = producer(&args.common, &args.producer)?;
    let duration = Duration::from_secs_f64(args.duration);
    let expected = (args.rate * args.duration).ceil() as u64;
    let limit = Limit {
        count: Some(expected),
        duration: None,
    };
    let progress = Progress::new(Some(expected));
    let (acks_tx, mut acks_rx) = mpsc::channel::<(Instant, DeliveryFuture)>(100_000);
    let drain_acks = async {
        let mut errors = 0u64;
        while let Some((_, delivery)) = acks_rx.recv().await {
            if !matches!(delivery.await, Ok(Ok(_))) {
                errors += 1;
            }
        }
        errors
    };
    let receive = async {
        let mut receipts = Receipts::new()?;
        let mut stream = consumer.stream();
        // Stop when everything arrived, or a grace period after the schedule ended: one timer
        // for the whole run, not one per record.
        let deadline = Instant::now() + duration + Duration::from_secs(10);
        let receiving = async {
            while receipts.records < expected {
                let Some(message) = stream.next().await else {
                    break;
                };
                let message = message.map_err(|e| kafka_error(&args.common, e))?;
                if let Some(value) = message.payload() {
                    receipts.note(value, &progress);
                }
            }
            Ok::<_, String>(())
        };
        // Past the deadline, what arrived is the result (the rest counts as errors).
        if let Ok(result) = tokio::time::timeout_at(deadline.into(), receiving).await {
            result?;
        }
        Ok::<_, String>(receipts)
    };
    let send = send_loop(
        &args.common,
        &producer,
        &args.producer,
        limit,
        Some(args.rate),
        acks_tx,
    );
    let (sent, errors, received) = tokio::join!(send, drain_acks, receive);
    sent?;
    let Receipts {
        histogram,
        records: messages,
        bytes,
    } = received?;
    Ok(Summary {
        workload: "e2e",
        protocol: "kafka",
        messages,
        bytes,
        elapsed: progress.finish(),
        errors: errors + expected.saturating_sub(messages),
        latency: Some(histogram),
        target_rate: Some(args.rate),
    })
}
