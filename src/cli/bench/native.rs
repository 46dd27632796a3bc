//! The bench workloads over the native protocol (`protocol::client`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hdrhistogram::Histogram;
use protocol::client::{
    Client, ClientConfig, ClientError, ConsumerConfig, DeliveryFuture, ErrorCode, NewTopic,
    ProducerConfig, ProducerRecord, Start,
};

use super::report::{new_histogram, record, Progress, Receipts, Summary};
use super::{
    payload, CommonArgs, ConsumeBench, E2eBench, Limit, ProduceBench, ProducerArgs, Schedule,
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
        // acks=all throughput is what is in flight over the broker's flush latency: 32 MiB
        // (the default) held 1 KiB x1 acks=all to about 600 MB/s, 128 MiB reached about
        // 860. Still far below the queue librdkafka is given (1M messages, 1 GiB by default).
        queue_bytes: 128 << 20,
        ..ProducerConfig::default()
    }
}

/// Deliveries not yet acknowledged, oldest first, kept by the send loop itself: no channel
/// and no task per record. A record's latency is the instant the producer took when its
/// batch's answer arrived minus the instant `send` returned, so draining late (a loop busy
/// sending) does not inflate it.
struct Deliveries<'a> {
    pending: VecDeque<(Option<Instant>, DeliveryFuture)>,
    /// None: only errors are counted (e2e measures latency at the consumer).
    histogram: Option<Histogram<u64>>,
    errors: u64,
    progress: Option<&'a Progress>,
}

impl<'a> Deliveries<'a> {
    fn new(latency: bool, progress: Option<&'a Progress>) -> Result<Deliveries<'a>, String> {
        Ok(Deliveries {
            pending: VecDeque::new(),
            histogram: latency.then(new_histogram).transpose()?,
            errors: 0,
            progress,
        })
    }

    /// `sent_at`: when `send` returned.
    fn push(&mut self, delivery: DeliveryFuture, sent_at: Instant) {
        let sent_at = self.histogram.is_some().then_some(sent_at);
        self.pending.push_back((sent_at, delivery));
    }

    /// Takes the completed deliveries at the front (one atomic load when there are none).
    fn drain_completed(&mut self) {
        let mut done = 0;
        while let Some((sent_at, delivery)) = self.pending.front() {
            let Some(outcome) = delivery.acknowledged_at() else {
                break;
            };
            self.count(*sent_at, outcome);
            self.pending.pop_front();
            done += 1;
        }
        if let (Some(progress), true) = (self.progress, done > 0) {
            progress.inc(done);
        }
    }

    fn count(&mut self, sent_at: Option<Instant>, outcome: Result<Instant, ClientError>) {
        match (outcome, sent_at, &mut self.histogram) {
            (Ok(at), Some(sent_at), Some(histogram)) => {
                record(histogram, at.saturating_duration_since(sent_at));
            }
            (Ok(_), _, _) => {}
            (Err(_), _, _) => self.errors += 1,
        }
    }

    /// Waits for the rest (after a flush they are all complete).
    async fn finish(mut self) -> (Option<Histogram<u64>>, u64) {
        while let Some((sent_at, delivery)) = self.pending.pop_front() {
            let mut delivery = delivery;
            let _ = (&mut delivery).await;
            if let Some(outcome) = delivery.acknowledged_at() {
                self.count(sent_at, outcome);
            }
            if let Some(progress) = self.progress {
                progress.inc(1);
            }
        }
        (self.histogram, self.errors)
    }
}

/// Sends on a schedule (or as fast as the producer takes records), keeping each delivery in
/// `deliveries`. Returns records and bytes sent.
async fn send_loop(
    client: &Client,
    topic: &str,
    args: &ProducerArgs,
    limit: Limit,
    rate: Option<f64>,
    deliveries: &mut Deliveries<'_>,
) -> Result<(u64, u64), String> {
    let producer = client.producer(producer_config(args));
    let schedule = Schedule::start(limit, rate);
    let mut sent = 0u64;
    let mut bytes = 0u64;
    // One clock reading per record, taken when `send` returns: the record's send time for
    // its latency, and for the next record the duration check and (flat out) its stamp.
    let mut now = Instant::now();
    while !schedule.done_at(sent, now) {
        let intended = schedule.next_at(sent, now).await;
        let value = payload(args.size, intended);
        bytes += value.len() as u64;
        let delivery = producer
            .send(ProducerRecord::new(topic).value(value))
            .await
            .map_err(|e| explain(&e, &client.config().addr))?;
        now = Instant::now();
        sent += 1;
        deliveries.push(delivery, now);
        deliveries.drain_completed();
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
    let mut deliveries = Deliveries::new(true, Some(&progress))?;
    let (messages, bytes) = send_loop(
        &client,
        &args.common.topic,
        &args.producer,
        limit,
        args.rate,
        &mut deliveries,
    )
    .await?;
    let (histogram, errors) = deliveries.finish().await;
    Ok(Summary {
        workload: "produce",
        protocol: "native",
        messages: messages - errors,
        bytes,
        elapsed: progress.finish(),
        errors,
        latency: histogram,
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
    let duration = Duration::from_secs_f64(args.duration);
    let expected = (args.rate * args.duration).ceil() as u64;
    let limit = Limit {
        count: Some(expected),
        duration: None,
    };
    let progress = Progress::new(Some(expected));
    let (subscribed, receipts) = spawn_e2e_consumer(E2eConsumer {
        addr: addr.clone(),
        topic: args.common.topic.clone(),
        expected,
        // Stop when everything arrived, or a grace period after the schedule ended.
        give_up_after: duration + Duration::from_secs(10),
        progress: progress.clone(),
    })?;
    // Sending starts once the consumer is subscribed (at the log end), so it sees every record.
    subscribed
        .await
        .map_err(|_| "the e2e consumer thread ended before subscribing".to_string())??;
    let mut deliveries = Deliveries::new(false, None)?;
    send_loop(
        &client,
        &args.common.topic,
        &args.producer,
        limit,
        Some(args.rate),
        &mut deliveries,
    )
    .await?;
    let errors = deliveries.finish().await.1;
    let Receipts {
        histogram,
        records: messages,
        bytes,
    } = receipts
        .await
        .map_err(|_| "the e2e consumer thread ended without a result".to_string())??;
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

/// What the e2e consumer needs on its thread.
struct E2eConsumer {
    addr: String,
    topic: String,
    expected: u64,
    give_up_after: Duration,
    progress: Progress,
}

type Reply<T> = tokio::sync::oneshot::Receiver<Result<T, String>>;

/// Runs the e2e consumer on a thread and runtime of its own, with a connection of its own: a
/// separate application, as it would be (librdkafka's consumer has its own threads too). On
/// the producer's thread, receipts and sends would queue behind each other. Answers once
/// subscribed, then with what it received.
fn spawn_e2e_consumer(consumer: E2eConsumer) -> Result<(Reply<()>, Reply<Receipts>), String> {
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel();
    let (receipts_tx, receipts) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-e2e-consumer".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = subscribed_tx.send(Err(format!("cannot start a runtime: {e}")));
                    return;
                }
            };
            let received = runtime.block_on(receive(consumer, subscribed_tx));
            let _ = receipts_tx.send(received);
        })
        .map_err(|e| format!("cannot start the e2e consumer thread: {e}"))?;
    Ok((subscribed, receipts))
}

async fn receive(
    job: E2eConsumer,
    subscribed: tokio::sync::oneshot::Sender<Result<(), String>>,
) -> Result<Receipts, String> {
    let E2eConsumer {
        addr,
        topic,
        expected,
        give_up_after,
        progress,
    } = job;
    let subscribing = async {
        let client = Client::connect(ClientConfig::new(&addr))
            .await
            .map_err(|e| explain(&e, &addr))?;
        let mut consumer = client.consumer(ConsumerConfig {
            start: Start::Latest,
            ..ConsumerConfig::default()
        });
        consumer
            .subscribe(&topic)
            .await
            .map_err(|e| explain(&e, &addr))?;
        Ok::<_, String>((client, consumer))
    };
    let (_client, mut consumer) = match subscribing.await {
        Ok(subscribed_consumer) => {
            let _ = subscribed.send(Ok(()));
            subscribed_consumer
        }
        Err(e) => {
            let _ = subscribed.send(Err(e.clone()));
            return Err(e);
        }
    };
    let mut receipts = Receipts::new()?;
    // One timer for the whole run, not one per record.
    let receiving = async {
        while receipts.records < expected {
            let Some(item) = consumer.next().await else {
                break;
            };
            let item = item.map_err(|e| explain(&e, &addr))?;
            if let Some(value) = &item.value {
                receipts.note(value, &progress);
            }
        }
        Ok::<_, String>(())
    };
    // Past the deadline, what arrived is the result (the rest counts as errors).
    if let Ok(result) = tokio::time::timeout(give_up_after, receiving).await {
        result?;
    }
    Ok(receipts)
}
