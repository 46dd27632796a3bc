//! The bench workloads over the native protocol (`protocol::client`).

use std::time::{Duration, Instant};

use futures::StreamExt;
use protocol::client::{
    Client, ClientConfig, ConsumerConfig, DeliveryFuture, ErrorCode, NewTopic, ProducerConfig,
    ProducerRecord, Start,
};
use tokio::sync::mpsc;

use super::report::{new_histogram, record, Progress, Summary};
use super::{
    epoch_ns, payload, CommonArgs, ConsumeBench, E2eBench, Limit, ProduceBench, ProducerArgs,
    Schedule,
};
use crate::cli::explain;

async fn connect(common: &CommonArgs) -> Result<Client, String> {
    common.broker.connect().await
}

/// Creates the topic unless it exists.
async fn ensure_topic(client: &Client, common: &CommonArgs, partitions: u32) -> Result<(), String> {
    let topic = NewTopic {
        name: common.topic.clone(),
        partitions,
        ..NewTopic::default()
    };
    match client.create_topic(topic).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => Ok(()),
        Err(e) => Err(explain(&e, &common.broker.broker)),
    }
}

fn producer_config(args: &ProducerArgs) -> ProducerConfig {
    ProducerConfig {
        linger: Duration::from_millis(args.linger_ms),
        batch_bytes: args.batch_bytes,
        compression: args.compression,
        acks: args.acks,
        ..ProducerConfig::default()
    }
}

/// Sends on a schedule (or as fast as the producer takes records) and hands each delivery to
/// `acks` with its send time. Returns records and bytes sent.
async fn send_loop(
    client: &Client,
    topic: &str,
    args: &ProducerArgs,
    limit: Limit,
    rate: Option<f64>,
    acks: mpsc::Sender<(Instant, DeliveryFuture)>,
) -> Result<(u64, u64), String> {
    let producer = client.producer(producer_config(args));
    let schedule = Schedule::start(limit, rate);
    let mut sent = 0u64;
    let mut bytes = 0u64;
    while !schedule.done(sent) {
        let intended = schedule.next(sent).await;
        let value = payload(args.size, intended);
        bytes += value.len() as u64;
        let delivery = producer
            .send(ProducerRecord::new(topic).value(value))
            .await
            .map_err(|e| explain(&e, &client.config().addr))?;
        sent += 1;
        if acks.send((Instant::now(), delivery)).await.is_err() {
            break;
        }
    }
    producer
        .flush()
        .await
        .map_err(|e| explain(&e, &client.config().addr))?;
    Ok((sent, bytes))
}

pub async fn produce(args: &ProduceBench, limit: Limit) -> Result<Summary, String> {
    let client = connect(&args.common).await?;
    ensure_topic(&client, &args.common, args.producer.partitions).await?;
    let progress = Progress::new(limit.count);
    let (acks_tx, mut acks_rx) = mpsc::channel::<(Instant, DeliveryFuture)>(100_000);
    let collect = async {
        let mut histogram = new_histogram()?;
        let mut errors = 0u64;
        while let Some((sent_at, delivery)) = acks_rx.recv().await {
            match delivery.await {
                Ok(_) => record(&mut histogram, sent_at.elapsed()),
                Err(_) => errors += 1,
            }
            progress.inc(1);
        }
        Ok::<_, String>((histogram, errors))
    };
    let send = send_loop(
        &client,
        &args.common.topic,
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
        protocol: "native",
        messages: messages - errors,
        bytes,
        elapsed: progress.finish(),
        errors,
        latency: Some(histogram),
        target_rate: args.rate,
    })
}

pub async fn consume(args: &ConsumeBench) -> Result<Summary, String> {
    let client = connect(&args.common).await?;
    let addr = args.common.broker.broker.clone();
    let described = client
        .describe_topic(&args.common.topic)
        .await
        .map_err(|e| explain(&e, &addr))?;
    let available: i64 = described
        .partitions
        .iter()
        .map(|p| (p.high_watermark - p.log_start_offset).max(0))
        .sum();
    let count = args.count.unwrap_or(available as u64);
    let progress = Progress::new(Some(count));
    let mut consumer = client.consumer(ConsumerConfig {
        start: Start::Earliest,
        window_bytes: 16 << 20,
        ..ConsumerConfig::default()
    });
    consumer
        .subscribe(&args.common.topic)
        .await
        .map_err(|e| explain(&e, &addr))?;
    let mut messages = 0u64;
    let mut bytes = 0u64;
    while messages < count {
        let Some(item) = consumer.next().await else {
            break;
        };
        let item = item.map_err(|e| explain(&e, &addr))?;
        messages += 1;
        bytes += item.value.as_ref().map_or(0, |v| v.len() as u64);
        if messages.is_multiple_of(1024) {
            progress.inc(1024);
        }
    }
    Ok(Summary {
        workload: "consume",
        protocol: "native",
        messages,
        bytes,
        elapsed: progress.finish(),
        errors: 0,
        latency: None,
        target_rate: None,
    })
}

pub async fn e2e(args: &E2eBench) -> Result<Summary, String> {
    let client = connect(&args.common).await?;
    let addr = args.common.broker.broker.clone();
    ensure_topic(&client, &args.common, args.producer.partitions).await?;
    // The consumer has a connection of its own, as a separate application would.
    let consumer_client = Client::connect(ClientConfig::new(&addr))
        .await
        .map_err(|e| explain(&e, &addr))?;
    let mut consumer = consumer_client.consumer(ConsumerConfig {
        start: Start::Latest,
        ..ConsumerConfig::default()
    });
    consumer
        .subscribe(&args.common.topic)
        .await
        .map_err(|e| explain(&e, &addr))?;
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
            if delivery.await.is_err() {
                errors += 1;
            }
        }
        errors
    };
    let receive = async {
        let mut histogram = new_histogram()?;
        let mut received = 0u64;
        let mut bytes = 0u64;
        // Stop when everything arrived, or a grace period after the schedule ended.
        let deadline = Instant::now() + duration + Duration::from_secs(10);
        while received < expected {
            let next = tokio::time::timeout_at(deadline.into(), consumer.next()).await;
            let Ok(Some(item)) = next else { break };
            let item = item.map_err(|e| explain(&e, &addr))?;
            let Some(value) = item.value.as_ref().filter(|v| v.len() >= 8) else {
                continue;
            };
            let mut stamp = [0u8; 8];
            stamp.copy_from_slice(&value[..8]);
            let intended = u64::from_le_bytes(stamp);
            record(
                &mut histogram,
                Duration::from_nanos(epoch_ns().saturating_sub(intended)),
            );
            received += 1;
            bytes += value.len() as u64;
            progress.inc(1);
        }
        Ok::<_, String>((histogram, received, bytes))
    };
    let send = send_loop(
        &client,
        &args.common.topic,
        &args.producer,
        limit,
        Some(args.rate),
        acks_tx,
    );
    let (sent, errors, received) = tokio::join!(send, drain_acks, receive);
    sent?;
    let (histogram, messages, bytes) = received?;
    Ok(Summary {
        workload: "e2e",
        protocol: "native",
        messages,
        bytes,
        elapsed: progress.finish(),
        errors: errors + expected.saturating_sub(messages),
        latency: Some(histogram),
        target_rate: Some(args.rate),
    })
}
