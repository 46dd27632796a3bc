//! The producer, a record accumulator as in librdkafka and the Java client: `send` encodes
//! the record straight into its partition's open batch (RecordBatch v2, in place) under a
//! short lock, with no channel hop and no task wake-up per record. A batch closes when the
//! next record would take it past `batch_bytes`, when it has waited `linger`, or on
//! [`flush`](Producer::flush). One sender task then finishes closed batches (header, CRC,
//! compression), sends the batches of all partitions in one PRODUCE up to the broker's frame
//! limit, with up to `max_in_flight` requests pipelined on the connection.
//!
//! - Delivery is at least once: a request whose answer was lost (connection drop, timeout) or
//!   that failed with a retriable code is sent again, up to `retries` times with backoff (a
//!   retried batch can land after a later one). UNKNOWN_TOPIC_ID refreshes the topic first.
//! - A batch larger than the broker's frame limit fails with MESSAGE_TOO_LARGE, unsent.
//! - Delivery reports are per batch: one shared outcome, and a [`DeliveryFuture`] per record
//!   that is that outcome plus the record's index. [`flush`](Producer::flush) waits for
//!   everything sent before it, the cheap way to wait when per-record results are not needed.
//! - Partitions: the record's own, else murmur2 of its key (where Kafka clients put it), else
//!   one partition per topic until its batch closes (Kafka's sticky partitioner).
//! - Backpressure: records count against `queue_records` and `queue_bytes` from `send` until
//!   their batch completes; past either bound `send` waits (and the open batches are sent
//!   without waiting out their linger).
//! - Timestamps: a record's own timestamp wins. Otherwise its CreateTime is a clock reading
//!   taken when its batch opened and renewed every 16 records without a timestamp of their
//!   own (`accumulator::CLOCK_EVERY`): at most 15 records' sending and never more than the
//!   batch's age (`linger`, at most) before the record's `send`.
//! - Topic ids and partition counts are cached per producer, looked up on a topic's first
//!   record and again after UNKNOWN_TOPIC_ID.

mod accumulator;
mod delivery;
mod sender;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::error::ClientError;
use super::Client;
use crate::compression::Compression;
use crate::native::Acks;
use crate::records::RecordFields;
use accumulator::{Accumulator, Appended, Incoming, Limits};

pub use delivery::DeliveryFuture;

/// How a [`Producer`] batches and sends.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// How long a batch may wait for more records (librdkafka's `linger.ms`).
    pub linger: Duration,
    /// A batch closes before a record would take it past this many bytes (encoded, before
    /// compression); a record larger than this goes alone. Keep it below the topic's
    /// `max.message.bytes`.
    pub batch_bytes: usize,
    pub compression: Compression,
    pub acks: Acks,
    /// How long acks=all may wait on the broker (`timeout_ms` of PRODUCE).
    pub produce_timeout: Duration,
    /// PRODUCE requests awaiting their answers at once.
    pub max_in_flight: usize,
    /// How many times a failed request is sent again.
    pub retries: u32,
    /// Records sent but not yet acknowledged (or failed) before `send` waits.
    pub queue_records: usize,
    /// Bytes of such records (encoded, before compression) before `send` waits (Java's
    /// `buffer.memory`). A single record larger than this is still taken when the producer
    /// holds nothing else.
    pub queue_bytes: usize,
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
            queue_bytes: 32 << 20,
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
    /// Milliseconds since the epoch; None: now (see the module docs for the granularity).
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

/// What the producer handles and the sender task share.
struct Shared {
    client: Client,
    config: ProducerConfig,
    limits: Limits,
    accumulator: Mutex<Accumulator>,
    /// Wakes the sender: a batch opened or closed, a flush, the last handle dropped.
    wake: Notify,
    /// A batch completed: room in the queue bounds for a waiting `send`.
    space: Notify,
    /// A batch completed: a waiting `flush` checks its mark.
    completed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Accumulator> {
        // The accumulator is consistent between statements a panic could interrupt
        // (counters and queues are updated together): keep going after one.
        self.accumulator.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A batch completed (any outcome): frees its room and tells whoever waits for it.
    fn release(&self, id: u64, records: usize, bytes: usize) {
        self.lock().release(id, records, bytes);
        self.space.notify_waiters();
        self.completed.notify_waiters();
    }
}

/// Ends the sender once every `Producer` clone is gone: what is queued is sent first.
struct LastHandle(Arc<Shared>);

impl Drop for LastHandle {
    fn drop(&mut self) {
        {
            let mut acc = self.0.lock();
            acc.closing = true;
            acc.close_expired(tokio::time::Instant::now(), true);
        }
        self.0.wake.notify_one();
    }
}

/// Sends records; see the module docs. Cheap to clone: clones share the accumulator and the
/// sender task.
#[derive(Clone)]
pub struct Producer {
    shared: Arc<Shared>,
    _handle: Arc<LastHandle>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Producer {
    pub(crate) fn new(client: Client, config: ProducerConfig) -> Producer {
        let limits = Limits {
            batch_bytes: config.batch_bytes.max(1),
            linger: config.linger,
            queue_records: config.queue_records.max(1),
            queue_bytes: config.queue_bytes.max(1),
        };
        let shared = Arc::new(Shared {
            client,
            config,
            limits,
            accumulator: Mutex::new(Accumulator::default()),
            wake: Notify::new(),
            space: Notify::new(),
            completed: Notify::new(),
        });
        tokio::spawn(sender::run(shared.clone()));
        Producer {
            _handle: Arc::new(LastHandle(shared.clone())),
            shared,
        }
    }

    /// Adds the record to its partition's batch; waits only for the topic's first lookup and
    /// while the queue bounds are reached. The returned future resolves when the broker
    /// acknowledged the record's batch (per `acks`).
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, ClientError> {
        // Nothing below waits in the common case, so a loop of sends would never let a
        // single-threaded runtime run the sender or the linger timer: give up the thread
        // when the task's cooperative budget is spent (every 128 sends or so).
        tokio::task::coop::consume_budget().await;
        let fields = RecordFields {
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &record.headers,
        };
        let size = fields.encoded_len_max().ok_or_else(|| {
            ClientError::InvalidArgument(
                "a key, value or header is longer than 2^31 - 1 bytes".into(),
            )
        })?;
        let incoming = Incoming {
            topic: &record.topic,
            partition: record.partition,
            fields,
            timestamp: record.timestamp,
            size,
        };
        let shared = &*self.shared;
        loop {
            let space = {
                let mut acc = shared.lock();
                match acc.append(&shared.limits, &incoming)? {
                    Appended::Queued {
                        delivery,
                        wake_sender,
                    } => {
                        drop(acc);
                        if wake_sender {
                            shared.wake.notify_one();
                        }
                        return Ok(delivery);
                    }
                    Appended::UnknownTopic => None,
                    Appended::Full => {
                        // Send what is open now rather than after its linger: the room we
                        // wait for comes from acknowledgements. Created under the lock, the
                        // `Notified` catches any release that follows.
                        acc.close_expired(tokio::time::Instant::now(), true);
                        Some(shared.space.notified())
                    }
                }
            };
            match space {
                Some(space) => {
                    shared.wake.notify_one();
                    space.await;
                }
                None => {
                    let info = shared.client.topic(&record.topic).await?;
                    shared.lock().update_topic(info);
                }
            }
        }
    }

    /// Sends every record sent so far without waiting out linger, and waits until each one's
    /// batch was acknowledged or failed (failures are reported by their `DeliveryFuture`s).
    pub async fn flush(&self) -> Result<(), ClientError> {
        let shared = &*self.shared;
        let mark = {
            let mut acc = shared.lock();
            acc.close_expired(tokio::time::Instant::now(), true);
            acc.next_batch_id()
        };
        shared.wake.notify_one();
        loop {
            // Created before the check, so a completion between the two still wakes us.
            let completed = shared.completed.notified();
            {
                let acc = shared.lock();
                if acc.completed_below(mark) {
                    return Ok(());
                }
                if acc.sender_gone {
                    return Err(ClientError::Closed);
                }
            }
            completed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    /// Compiled, not run: callers spawn sends and flushes on multi-threaded runtimes, so no
    /// lock guard may be held across an await.
    #[allow(dead_code)]
    fn sends_and_flushes_are_send(producer: &Producer) {
        assert_send(&producer.send(ProducerRecord::new("t")));
        assert_send(&producer.flush());
        assert_send(producer);
    }
}
