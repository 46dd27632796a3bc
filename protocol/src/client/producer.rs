//! The producer: records are queued to one background task that groups them per partition,
//! closes a batch when it reaches `batch_bytes` or has waited `linger`, compresses it, and
//! sends the ready batches of all partitions in one PRODUCE, up to `max_in_flight` requests
//! pipelined on the connection.
//!
//! Delivery is at least once: a request whose answer was lost (connection drop, timeout) or
//! that failed with a retriable code is sent again, up to `retries` times with backoff.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use super::error::{code_is_retriable, ClientError};
use super::{Backoff, Client, TopicInfo};
use crate::compression::Compression;
use crate::murmur2::partition_for_key;
use crate::native::{Acks, ProducePartition, ProduceRequest, Request, Response, TopicId};
use crate::records::{BatchBuilder, Record};

/// How a [`Producer`] batches and sends.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// How long a batch may wait for more records (librdkafka's `linger.ms`).
    pub linger: Duration,
    /// A batch is sent once its records reach this many bytes (before compression). Keep it
    /// below the topic's `max.message.bytes`.
    pub batch_bytes: usize,
    pub compression: Compression,
    pub acks: Acks,
    /// How long acks=all may wait on the broker (`timeout_ms` of PRODUCE).
    pub produce_timeout: Duration,
    /// PRODUCE requests awaiting their answers at once.
    pub max_in_flight: usize,
    /// How many times a failed request is sent again.
    pub retries: u32,
    /// Records queued ahead of the batching task before `send` waits.
    pub queue_records: usize,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger: Duration::from_millis(5),
            batch_bytes: 512 * 1024,
            compression: Compression::None,
            acks: Acks::All,
            produce_timeout: Duration::from_secs(30),
            max_in_flight: 5,
            retries: 5,
            queue_records: 100_000,
        }
    }
}

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    pub topic: String,
    /// None: by key (murmur2), or for records without a key, one partition per batch in turn.
    pub partition: Option<u32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch; None: now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>) -> ProducerRecord {
        ProducerRecord {
            topic: topic.into(),
            ..ProducerRecord::default()
        }
    }
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), Some(value.into())));
        self
    }
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Bytes the record takes in a batch, roughly (for batch-size accounting).
    fn size(&self) -> usize {
        let len = |b: &Option<Bytes>| b.as_ref().map_or(0, Bytes::len);
        16 + len(&self.key)
            + len(&self.value)
            + self
                .headers
                .iter()
                .map(|(n, v)| 4 + n.len() + len(v))
                .sum::<usize>()
    }
}

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: u32,
    /// The record's offset; -1 with acks none (the broker does not answer).
    pub offset: i64,
    pub timestamp: i64,
}

type Delivery = oneshot::Sender<Result<RecordMetadata, ClientError>>;

/// Resolves when the record's batch was acknowledged (per `acks`) or failed for good.
#[derive(Debug)]
pub struct DeliveryFuture {
    receiver: oneshot::Receiver<Result<RecordMetadata, ClientError>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, ClientError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(ClientError::Closed)))
    }
}

enum Command {
    Send {
        topic: TopicInfo,
        partition: Option<u32>,
        record: Record,
        size: usize,
        delivery: Delivery,
    },
    Flush(oneshot::Sender<()>),
}

/// Sends records; see the module docs. Cheap to clone: clones share the batching task.
#[derive(Debug, Clone)]
pub struct Producer {
    client: Client,
    commands: mpsc::Sender<Command>,
}

impl Producer {
    pub(crate) fn new(client: Client, config: ProducerConfig) -> Producer {
        let (commands, receiver) = mpsc::channel(config.queue_records.max(1));
        tokio::spawn(batch_loop(client.clone(), config, receiver));
        Producer { client, commands }
    }

    /// Queues a record; waits only while the queue is full. The returned future resolves
    /// when the broker acknowledged it.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, ClientError> {
        let topic = self.client.topic(&record.topic).await?;
        if let Some(p) = record.partition {
            if p >= topic.partitions {
                return Err(ClientError::InvalidArgument(format!(
                    "partition {p} of {:?}, which has {}",
                    topic.name, topic.partitions
                )));
            }
        }
        let partition = record.partition.or_else(|| {
            record
                .key
                .as_ref()
                .map(|k| partition_for_key(k, topic.partitions))
        });
        let size = record.size();
        let (delivery, receiver) = oneshot::channel();
        let command = Command::Send {
            topic,
            partition,
            size,
            delivery,
            record: Record {
                key: record.key,
                value: record.value,
                headers: record.headers,
                timestamp: record.timestamp.unwrap_or_else(now_ms),
            },
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| ClientError::Closed)?;
        Ok(DeliveryFuture { receiver })
    }

    /// Sends everything queued and waits until every request in flight was answered.
    pub async fn flush(&self) -> Result<(), ClientError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Flush(done))
            .await
            .map_err(|_| ClientError::Closed)?;
        wait.await.map_err(|_| ClientError::Closed)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The records accumulating for one partition.
struct OpenBatch {
    topic: TopicInfo,
    partition: u32,
    builder: BatchBuilder,
    deliveries: Vec<(Delivery, i64)>,
    bytes: usize,
    deadline: Instant,
}

/// One partition's closed batch, ready to send.
struct ReadyBatch {
    topic: TopicInfo,
    partition: u32,
    records: Bytes,
    deliveries: Vec<(Delivery, i64)>,
}

/// Commands handled in one go before the linger timer is looked at again.
const COMMANDS_PER_WAKE: usize = 1024;

async fn batch_loop(client: Client, config: ProducerConfig, mut commands: mpsc::Receiver<Command>) {
    let mut batcher = Batcher {
        in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
        client,
        config,
        open: HashMap::new(),
        sticky: HashMap::new(),
        next_sticky: 0,
    };
    loop {
        let next_deadline = batcher.open.values().map(|b| b.deadline).min();
        let command = tokio::select! {
            command = commands.recv() => command,
            _ = sleep_until_opt(next_deadline) => {
                batcher.close_expired().await;
                continue;
            }
        };
        let Some(command) = command else {
            // Every producer handle dropped: send what is left, then stop.
            batcher.close_all().await;
            return;
        };
        batcher.handle(command).await;
        // Take what else is queued without re-arming the timer for each record.
        for _ in 1..COMMANDS_PER_WAKE {
            match commands.try_recv() {
                Ok(command) => batcher.handle(command).await,
                Err(_) => break,
            }
        }
    }
}

/// The batching task's state.
struct Batcher {
    client: Client,
    config: ProducerConfig,
    in_flight: Arc<Semaphore>,
    open: HashMap<(TopicId, u32), OpenBatch>,
    /// Records without key or partition stick to one partition per topic until its batch
    /// closes (Kafka's sticky partitioner), so they still form large batches.
    sticky: HashMap<TopicId, u32>,
    next_sticky: u32,
}

impl Batcher {
    async fn handle(&mut self, command: Command) {
        match command {
            Command::Flush(done) => {
                self.close_all().await;
                let all = self.config.max_in_flight.max(1) as u32;
                if let Ok(permits) = self.in_flight.acquire_many(all).await {
                    drop(permits);
                }
                let _ = done.send(());
            }
            Command::Send {
                topic,
                partition,
                record,
                size,
                delivery,
            } => {
                let next_sticky = &mut self.next_sticky;
                let partition = partition.unwrap_or_else(|| {
                    *self.sticky.entry(topic.id).or_insert_with(|| {
                        *next_sticky = next_sticky.wrapping_add(1);
                        *next_sticky % topic.partitions.max(1)
                    })
                });
                let key = (topic.id, partition);
                let linger = self.config.linger;
                let batch = self.open.entry(key).or_insert_with(|| OpenBatch {
                    topic,
                    partition,
                    builder: BatchBuilder::new(),
                    deliveries: Vec::new(),
                    bytes: 0,
                    deadline: Instant::now() + linger,
                });
                batch.deliveries.push((delivery, record.timestamp));
                batch.builder.push(record);
                batch.bytes += size;
                if batch.bytes >= self.config.batch_bytes {
                    self.close(&[key]).await;
                }
            }
        }
    }

    async fn close_expired(&mut self) {
        let now = Instant::now();
        let expired: Vec<_> = self
            .open
            .iter()
            .filter(|(_, b)| b.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        self.close(&expired).await;
    }

    async fn close_all(&mut self) {
        let keys: Vec<_> = self.open.keys().copied().collect();
        self.close(&keys).await;
    }

    async fn close(&mut self, keys: &[(TopicId, u32)]) {
        let ready = close_batches(
            &mut self.open,
            keys,
            &mut self.sticky,
            self.config.compression,
        );
        send_ready(&self.client, &self.config, &self.in_flight, ready).await;
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Encodes (and compresses) the batches of `keys`. A batch that fails to encode fails its
/// records instead of being sent.
fn close_batches(
    open: &mut HashMap<(TopicId, u32), OpenBatch>,
    keys: &[(TopicId, u32)],
    sticky: &mut HashMap<TopicId, u32>,
    compression: Compression,
) -> Vec<ReadyBatch> {
    let mut ready = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(batch) = open.remove(key) else {
            continue;
        };
        if sticky.get(&key.0) == Some(&key.1) {
            sticky.remove(&key.0);
        }
        match batch.builder.build_compressed(compression) {
            Ok(records) => ready.push(ReadyBatch {
                topic: batch.topic,
                partition: batch.partition,
                records: records.freeze(),
                deliveries: batch.deliveries,
            }),
            Err(e) => {
                for (delivery, _) in batch.deliveries {
                    let _ = delivery.send(Err(ClientError::Compression(e.to_string())));
                }
            }
        }
    }
    ready
}

/// Sends the ready batches as one PRODUCE once a request slot is free; the answer is awaited
/// by a task of its own so batching goes on meanwhile.
async fn send_ready(
    client: &Client,
    config: &ProducerConfig,
    in_flight: &Arc<Semaphore>,
    ready: Vec<ReadyBatch>,
) {
    if ready.is_empty() {
        return;
    }
    let Ok(permit) = in_flight.clone().acquire_owned().await else {
        return;
    };
    let client = client.clone();
    let config = config.clone();
    tokio::spawn(async move {
        produce_with_retries(&client, &config, ready).await;
        drop(permit);
    });
}

async fn produce_with_retries(
    client: &Client,
    config: &ProducerConfig,
    mut batches: Vec<ReadyBatch>,
) {
    let client_config = client.config();
    let mut backoff = Backoff::new(client_config.backoff_initial, client_config.backoff_max);
    let mut attempt = 0u32;
    loop {
        let failure = match produce_once(client, config, &mut batches).await {
            Ok(()) => return,
            Err(failure) => failure,
        };
        attempt += 1;
        if !failure.is_retriable() || attempt > config.retries || batches.is_empty() {
            for batch in batches {
                for (delivery, _) in batch.deliveries {
                    let _ = delivery.send(Err(failure.clone()));
                }
            }
            return;
        }
        tokio::time::sleep(backoff.next_delay()).await;
        if matches!(failure.code(), Some(c) if c == crate::native::ErrorCode::UNKNOWN_TOPIC_ID) {
            // The id went stale (topic deleted and re-created): look it up again.
            for batch in &mut batches {
                if let Ok(info) = client.refresh_topic(&batch.topic.name).await {
                    batch.topic = info;
                }
            }
        }
    }
}

/// Bytes a PRODUCE frame needs besides the records: header, acks, timeout, count, and per
/// partition its id, index and blob length.
const PRODUCE_FIXED_BYTES: usize = 10 + 1 + 4 + 4;
const PRODUCE_PARTITION_BYTES: usize = 16 + 4 + 4;

/// Sends `batches` as one PRODUCE, or as several when together they exceed the broker's frame
/// limit (announced in the handshake). A batch that alone exceeds it fails with
/// MESSAGE_TOO_LARGE without being sent (the broker would close the connection).
async fn produce_once(
    client: &Client,
    config: &ProducerConfig,
    batches: &mut Vec<ReadyBatch>,
) -> Result<(), ClientError> {
    let connection = client.connection().await?;
    let limit = connection.handshake.frame_bytes_max as usize;
    let mut retry = Vec::new();
    let mut first_error = None;
    let mut pending = std::mem::take(batches);
    while !pending.is_empty() {
        // The longest prefix that fits in one frame.
        let mut size = PRODUCE_FIXED_BYTES;
        let mut take = 0;
        for batch in &pending {
            let needed = PRODUCE_PARTITION_BYTES + batch.records.len();
            if size + needed > limit {
                break;
            }
            size += needed;
            take += 1;
        }
        if take == 0 {
            let batch = pending.remove(0);
            let error = ClientError::broker(
                crate::native::ErrorCode::MESSAGE_TOO_LARGE,
                format!(
                    "a batch of {} bytes exceeds the broker's frame limit of {limit} bytes",
                    batch.records.len()
                ),
            );
            for (delivery, _) in batch.deliveries {
                let _ = delivery.send(Err(error.clone()));
            }
            continue;
        }
        let mut group: Vec<ReadyBatch> = pending.drain(..take).collect();
        if let Err(error) = produce_request(&connection, config, &mut group).await {
            first_error.get_or_insert(error);
            retry.append(&mut group);
        }
    }
    *batches = retry;
    match first_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// One PRODUCE. Resolves the deliveries of partitions that succeeded or failed for good and
/// leaves in `batches` those to retry, returning the error to retry them for.
async fn produce_request(
    connection: &super::connection::Connection,
    config: &ProducerConfig,
    batches: &mut Vec<ReadyBatch>,
) -> Result<(), ClientError> {
    let request = Request::Produce(ProduceRequest {
        acks: config.acks,
        timeout_ms: config.produce_timeout.as_millis().min(u128::from(u32::MAX)) as u32,
        partitions: batches
            .iter()
            .map(|b| ProducePartition {
                topic_id: b.topic.id,
                partition: b.partition,
                records: b.records.clone(),
            })
            .collect(),
    });
    if config.acks == Acks::None {
        connection.send_unanswered(&request)?;
        for batch in batches.drain(..) {
            for (delivery, timestamp) in batch.deliveries {
                let _ = delivery.send(Ok(RecordMetadata {
                    topic: batch.topic.name.clone(),
                    partition: batch.partition,
                    offset: -1,
                    timestamp,
                }));
            }
        }
        return Ok(());
    }
    let Response::Produce(answer) = connection.call(request).await? else {
        return Err(ClientError::Protocol(
            "PRODUCE answered with another op".into(),
        ));
    };
    if answer.partitions.len() != batches.len() {
        return Err(ClientError::Protocol(format!(
            "PRODUCE of {} partitions answered with {}",
            batches.len(),
            answer.partitions.len()
        )));
    }
    let mut retry = Vec::new();
    let mut retry_error = None;
    for (batch, result) in std::mem::take(batches).into_iter().zip(answer.partitions) {
        if result.error.is_ok() {
            for (i, (delivery, timestamp)) in batch.deliveries.into_iter().enumerate() {
                let timestamp = if result.log_append_time >= 0 {
                    result.log_append_time
                } else {
                    timestamp
                };
                let _ = delivery.send(Ok(RecordMetadata {
                    topic: batch.topic.name.clone(),
                    partition: batch.partition,
                    offset: result.base_offset + i as i64,
                    timestamp,
                }));
            }
            continue;
        }
        let error = ClientError::broker(result.error, result.message);
        if code_is_retriable(result.error) {
            retry.push(batch);
            retry_error = Some(error);
        } else {
            for (delivery, _) in batch.deliveries {
                let _ = delivery.send(Err(error.clone()));
            }
        }
    }
    *batches = retry;
    match retry_error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
