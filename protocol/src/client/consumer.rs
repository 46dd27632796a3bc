//! The consumer: one SUBSCRIBE per partition, data pushed by the broker and merged into one
//! [`Stream`] of records. Credit for a data frame is granted back as soon as the frame is
//! decoded, so the broker sends the next window while the application works through this
//! frame: at most a window per partition plus the one frame being handed out are held here.
//! (Granting only after the frame's last record was taken made each partition stop and wait:
//! with a 4 MiB window, a consumer delayed a few milliseconds fell behind a 600 MB/s producer
//! and could not catch up.)
//!
//! Each partition has a supervisor task that (re)subscribes: after a lost connection or a
//! retriable `SUBSCRIPTION_END` it resubscribes at the consumer's position with backoff, and a
//! generation number makes the stream drop frames of the old subscription still queued.
//!
//! An `Err` item does not end the stream. A partition that ended for good (its topic was
//! deleted, its position fell out of range with `Fallback::Error`, a batch too large for the
//! broker's frame limit) yields its error once and delivers nothing more; while the broker is
//! unreachable the stream yields the connection error after each `reconnect_timeout` and keeps
//! trying.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::connection::{Connection, SubscriptionEvent};
use super::error::ClientError;
use super::{Backoff, Client, TopicInfo};
use crate::native::split_batches;
use crate::native::{ErrorCode, Fallback, StartPosition, SubscribeRequest, SubscriptionData};
use crate::records::{crc_matches, decode_records_compressed, BatchHeader};

/// Where a consumer starts on each partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    Earliest,
    Latest,
    Offset(i64),
    /// The first record at or after this time (ms since the epoch).
    Timestamp(i64),
    /// The group's committed offset (the consumer's group), else the fallback.
    Committed,
}

/// How a [`Consumer`] starts, buffers and commits.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// The group offsets are committed for (and read from with [`Start::Committed`]).
    pub group_id: Option<String>,
    pub start: Start,
    /// When the start offset is out of range or the group has none (`auto.offset.reset`).
    pub fallback: Fallback,
    /// Credit window per partition, bytes (NATIVE.md, "Flow control"): what the broker may
    /// have sent ahead of the frame being handed out.
    pub window_bytes: u32,
    /// Commit positions this often in the background (needs a group). None: only explicit
    /// [`Consumer::commit`].
    pub auto_commit_interval: Option<Duration>,
    /// The most bytes one batch may decompress to.
    pub inflated_bytes_max: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            group_id: None,
            start: Start::Earliest,
            fallback: Fallback::Earliest,
            window_bytes: 4 << 20,
            auto_commit_interval: None,
            inflated_bytes_max: 64 << 20,
        }
    }
}

impl ConsumerConfig {
    /// Sets the group; with it, starts from the group's committed offsets (else earliest).
    pub fn group(mut self, group_id: impl Into<String>) -> Self {
        self.group_id = Some(group_id.into());
        self.start = Start::Committed;
        self
    }
    pub fn start(mut self, start: Start) -> Self {
        self.start = start;
        self
    }
    pub fn auto_commit(mut self, interval: Duration) -> Self {
        self.auto_commit_interval = Some(interval);
        self
    }
}

/// A record with where it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// The partition's high watermark when the record's frame was sent (lag =
    /// high_watermark - offset - 1).
    pub high_watermark: i64,
}

/// One partition's position, shared by the stream (which advances it) and its supervisor
/// (which resubscribes from it).
#[derive(Debug)]
struct Position {
    /// Bumped at every (re)subscription; frames of older ones are dropped.
    generation: u64,
    /// The next offset to hand to the application; -1 until the first subscription answered.
    next_offset: i64,
    /// The offset last committed (to commit only what moved).
    committed: i64,
}

#[derive(Debug)]
struct PartitionSlot {
    topic: TopicInfo,
    topic_name: Arc<str>,
    partition: u32,
    position: Mutex<Position>,
}

impl PartitionSlot {
    fn position(&self) -> MutexGuard<'_, Position> {
        self.position.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Delivery {
    Data {
        slot: Arc<PartitionSlot>,
        generation: u64,
        connection: Arc<Connection>,
        data: SubscriptionData,
    },
    Failed(ClientError),
}

/// The frame being handed out record by record.
struct Current {
    slot: Arc<PartitionSlot>,
    generation: u64,
    next_offset: i64,
    high_watermark: i64,
    records: VecDeque<crate::records::DecodedRecord>,
}

/// A stream of records from the partitions added with [`subscribe`](Consumer::subscribe) or
/// [`assign`](Consumer::assign). See the module docs.
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    slots: Arc<Mutex<Vec<Arc<PartitionSlot>>>>,
    deliveries_tx: mpsc::UnboundedSender<Delivery>,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    current: Option<Current>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("config", &self.config)
            .field("partitions", &self.positions())
            .finish()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Consumer {
    pub(crate) fn new(client: Client, config: ConsumerConfig) -> Consumer {
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        let slots = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        if let (Some(group), Some(interval)) = (&config.group_id, config.auto_commit_interval) {
            tasks.push(tokio::spawn(auto_commit(
                client.clone(),
                group.clone(),
                slots.clone(),
                interval,
            )));
        }
        Consumer {
            client,
            config,
            slots,
            deliveries_tx,
            deliveries,
            current: None,
            tasks,
        }
    }

    /// Consumes every partition of `topic`.
    pub async fn subscribe(&mut self, topic: &str) -> Result<(), ClientError> {
        let info = self.client.refresh_topic(topic).await?;
        let partitions: Vec<u32> = (0..info.partitions).collect();
        self.assign(topic, &partitions).await
    }

    /// Consumes these partitions of `topic`; returns once each subscription was answered, so
    /// a start position of `Latest` is fixed when this returns.
    pub async fn assign(&mut self, topic: &str, partitions: &[u32]) -> Result<(), ClientError> {
        if self.config.start == Start::Committed && self.config.group_id.is_none() {
            return Err(ClientError::InvalidArgument(
                "starting from committed offsets needs a group id".into(),
            ));
        }
        let info = self.client.topic(topic).await?;
        for &partition in partitions {
            if partition >= info.partitions {
                return Err(ClientError::InvalidArgument(format!(
                    "partition {partition} of {topic:?}, which has {}",
                    info.partitions
                )));
            }
        }
        for &partition in partitions {
            let slot = Arc::new(PartitionSlot {
                topic: info.clone(),
                topic_name: Arc::from(topic),
                partition,
                position: Mutex::new(Position {
                    generation: 0,
                    next_offset: -1,
                    committed: -1,
                }),
            });
            let first = subscribe_once(
                &self.client,
                &self.config,
                &slot,
                self.start_position(),
                self.config.fallback,
            )
            .await?;
            self.slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(slot.clone());
            self.tasks.push(tokio::spawn(supervise(
                self.client.clone(),
                self.config.clone(),
                slot,
                first,
                self.deliveries_tx.clone(),
            )));
        }
        Ok(())
    }

    fn start_position(&self) -> StartPosition {
        match &self.config.start {
            Start::Earliest => StartPosition::Earliest,
            Start::Latest => StartPosition::Latest,
            Start::Offset(offset) => StartPosition::Offset(*offset),
            Start::Timestamp(ts) => StartPosition::Timestamp(*ts),
            Start::Committed => StartPosition::Committed {
                group_id: self.config.group_id.clone().unwrap_or_default(),
            },
        }
    }

    /// (topic, partition, next offset) of every partition, -1 before its first subscription.
    pub fn positions(&self) -> Vec<(String, u32, i64)> {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| (s.topic.name.clone(), s.partition, s.position().next_offset))
            .collect()
    }

    /// Commits the position of every partition (the offset after the last record the stream
    /// returned) for the consumer's group.
    pub async fn commit(&self) -> Result<(), ClientError> {
        let Some(group) = &self.config.group_id else {
            return Err(ClientError::InvalidArgument(
                "commit needs a group id".into(),
            ));
        };
        commit_positions(&self.client, group, &self.slots, true).await
    }

    /// Stops the background tasks, committing first when auto commit is on.
    pub async fn close(mut self) -> Result<(), ClientError> {
        let result = match (&self.config.group_id, self.config.auto_commit_interval) {
            (Some(group), Some(_)) => {
                commit_positions(&self.client, group, &self.slots, false).await
            }
            _ => Ok(()),
        };
        for task in self.tasks.drain(..) {
            task.abort();
        }
        result
    }

    /// Decodes a data frame into `current`, or returns why it is unusable.
    fn open_frame(
        &mut self,
        slot: Arc<PartitionSlot>,
        generation: u64,
        connection: Arc<Connection>,
        data: SubscriptionData,
    ) -> Result<(), ClientError> {
        let decoded = decode_frame(&data.records, self.config.inflated_bytes_max);
        // The frame's bytes go back now, decoded or not: the next window travels while the
        // application takes these records (and a bad frame must not stall the subscription).
        let credit = data.records.len().min(u32::MAX as usize) as u32;
        connection.grant_credit(data.subscription_id, credit);
        self.current = Some(Current {
            slot,
            generation,
            next_offset: data.next_offset,
            high_watermark: data.high_watermark,
            records: decoded?,
        });
        Ok(())
    }
}

/// The records of a frame's batches, control batches skipped, CRCs checked.
fn decode_frame(
    records: &Bytes,
    inflated_bytes_max: usize,
) -> Result<VecDeque<crate::records::DecodedRecord>, ClientError> {
    let mut out = VecDeque::new();
    let batches = split_batches(records).map_err(|e| ClientError::Protocol(e.to_string()))?;
    for batch in batches {
        let header =
            BatchHeader::parse(&batch).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if !crc_matches(&batch) {
            return Err(ClientError::broker(
                ErrorCode::CORRUPT_MESSAGE,
                format!("batch at offset {} fails its CRC", header.base_offset),
            ));
        }
        if header.is_control() {
            continue;
        }
        let decoded = decode_records_compressed(&batch, inflated_bytes_max)
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        out.extend(decoded);
    }
    Ok(out)
}

impl Stream for Consumer {
    type Item = Result<ConsumerRecord, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(current) = &mut this.current {
                let mut position = current.slot.position();
                if position.generation != current.generation {
                    // The subscription this frame came from is gone.
                    drop(position);
                    this.current = None;
                    continue;
                }
                if let Some(record) = current.records.pop_front() {
                    if record.offset < position.next_offset {
                        continue; // before the start offset, or already returned
                    }
                    position.next_offset = record.offset + 1;
                    drop(position);
                    return Poll::Ready(Some(Ok(ConsumerRecord {
                        topic: current.slot.topic_name.clone(),
                        partition: current.slot.partition,
                        offset: record.offset,
                        timestamp: record.timestamp,
                        key: record.key,
                        value: record.value,
                        headers: record.headers,
                        high_watermark: current.high_watermark,
                    })));
                }
                // Frame consumed (its credit went back when it was opened): skip past control
                // records.
                position.next_offset = position.next_offset.max(current.next_offset);
                drop(position);
                this.current = None;
            }
            match this.deliveries.poll_recv(cx) {
                Poll::Pending => return Poll::Pending,
                // Unreachable while `deliveries_tx` lives in self; ends the stream otherwise.
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Delivery::Failed(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(Some(Delivery::Data {
                    slot,
                    generation,
                    connection,
                    data,
                })) => {
                    if let Err(error) = this.open_frame(slot, generation, connection, data) {
                        return Poll::Ready(Some(Err(error)));
                    }
                }
            }
        }
    }
}

/// A live subscription the supervisor forwards from.
struct Subscribed {
    connection: Arc<Connection>,
    generation: u64,
    events: mpsc::UnboundedReceiver<SubscriptionEvent>,
}

async fn subscribe_once(
    client: &Client,
    config: &ConsumerConfig,
    slot: &PartitionSlot,
    start: StartPosition,
    fallback: Fallback,
) -> Result<Subscribed, ClientError> {
    let connection = client.connection().await?;
    let (answer, events) = connection
        .subscribe(SubscribeRequest {
            topic_id: slot.topic.id,
            partition: slot.partition,
            start,
            fallback,
            credit_bytes: config.window_bytes.max(1),
        })
        .await?;
    let mut position = slot.position();
    position.generation += 1;
    // A resubscription resolves to the position asked for, unless the fallback moved it.
    if position.next_offset < 0 || answer.start_offset > position.next_offset {
        position.next_offset = answer.start_offset;
    }
    Ok(Subscribed {
        connection,
        generation: position.generation,
        events,
    })
}

/// Resubscriptions in a row that the broker may refuse with a retriable code before the
/// consumer reports it (a topic deleted while subscribed answers UNKNOWN_TOPIC_ID forever).
const BROKER_REFUSALS_MAX: u32 = 10;

/// Whether a subscription ended for good: the topic is gone, or the broker's answer is one
/// that resubscribing cannot change.
fn ends_for_good(error: &ClientError) -> bool {
    error.code() == Some(ErrorCode::UNKNOWN_TOPIC_ID) || !error.is_retriable()
}

async fn supervise(
    client: Client,
    config: ConsumerConfig,
    slot: Arc<PartitionSlot>,
    first: Subscribed,
    out: mpsc::UnboundedSender<Delivery>,
) {
    let client_config = client.config().clone();
    let mut backoff = Backoff::new(client_config.backoff_initial, client_config.backoff_max);
    let mut subscribed = Some(first);
    let mut refusals = 0u32;
    loop {
        if let Some(mut live) = subscribed.take() {
            let ended = loop {
                match live.events.recv().await {
                    Some(SubscriptionEvent::Data(data)) => {
                        backoff.reset();
                        let delivery = Delivery::Data {
                            slot: slot.clone(),
                            generation: live.generation,
                            connection: live.connection.clone(),
                            data,
                        };
                        if out.send(delivery).is_err() {
                            return;
                        }
                    }
                    Some(SubscriptionEvent::End(error)) => break error,
                    None => break ClientError::ConnectionLost("subscription dropped".into()),
                }
            };
            if ends_for_good(&ended) {
                let _ = out.send(Delivery::Failed(ended));
                return;
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
        let next_offset = slot.position().next_offset;
        match subscribe_once(
            &client,
            &config,
            &slot,
            StartPosition::Offset(next_offset),
            config.fallback,
        )
        .await
        {
            Ok(live) => {
                refusals = 0;
                subscribed = Some(live);
            }
            Err(e) if ends_for_good(&e) => {
                let _ = out.send(Delivery::Failed(e));
                return;
            }
            Err(e @ ClientError::Broker { .. }) => {
                refusals += 1;
                if refusals >= BROKER_REFUSALS_MAX {
                    let _ = out.send(Delivery::Failed(e));
                    return;
                }
            }
            Err(e) => {
                // The broker stayed unreachable for the client's reconnect_timeout: tell the
                // application (the stream goes on, and so do the attempts).
                if out.send(Delivery::Failed(e)).is_err() {
                    return;
                }
            }
        }
        if out.is_closed() {
            return;
        }
    }
}

async fn commit_positions(
    client: &Client,
    group: &str,
    slots: &Mutex<Vec<Arc<PartitionSlot>>>,
    all: bool,
) -> Result<(), ClientError> {
    let slots: Vec<Arc<PartitionSlot>> = slots.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut moved = Vec::new();
    for slot in slots {
        let next_offset = {
            let position = slot.position();
            if position.next_offset < 0 || (!all && position.next_offset == position.committed) {
                continue;
            }
            position.next_offset
        };
        moved.push((slot, next_offset));
    }
    if moved.is_empty() {
        return Ok(());
    }
    let offsets: Vec<_> = moved
        .iter()
        .map(|(slot, offset)| (slot.topic.id, slot.partition, *offset))
        .collect();
    client.commit_offsets(group, &offsets).await?;
    for (slot, offset) in moved {
        slot.position().committed = offset;
    }
    Ok(())
}

async fn auto_commit(
    client: Client,
    group: String,
    slots: Arc<Mutex<Vec<Arc<PartitionSlot>>>>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        // A failed auto commit is retried at the next tick, as Kafka's consumer does.
        let _ = commit_positions(&client, &group, &slots, false).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchBuilder, Record};

    fn batch(attributes: i16, value: &'static [u8]) -> bytes::BytesMut {
        let mut b = BatchBuilder::new().attributes(attributes);
        b.push(Record {
            value: Some(Bytes::from_static(value)),
            ..Record::default()
        });
        b.build()
    }

    #[test]
    fn frames_skip_control_batches_and_reject_corruption() {
        let mut frame = batch(0x20, b"marker");
        frame.extend_from_slice(&batch(0, b"data"));
        let records = decode_frame(&frame.clone().freeze(), 1 << 20).unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].value.as_deref(), Some(&b"data"[..]));

        let mut corrupt = frame.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let error = decode_frame(&corrupt.freeze(), 1 << 20).unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::CORRUPT_MESSAGE));

        let cut = frame.len() - 1;
        let truncated = frame.freeze().slice(..cut);
        assert!(matches!(
            decode_frame(&truncated, 1 << 20),
            Err(ClientError::Protocol(_))
        ));
    }
}
