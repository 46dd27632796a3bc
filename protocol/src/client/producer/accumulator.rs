//! The record accumulator: per partition, the open batch records are encoded into as they are
//! sent, and the queue of closed batches the sender takes from. Everything here runs under the
//! producer's one lock, briefly: no I/O, no awaiting, no clock read per record.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use super::delivery::{BatchState, DeliveryFuture, Unresolved};
use crate::client::{ClientError, TopicInfo};
use crate::murmur2::partition_for_key;
use crate::records::{BatchWriter, RecordFields, BATCH_HEADER_BYTES};

/// The clock is read when a batch opens and then once every this many records appended without
/// a timestamp of their own; the records between share the last reading.
pub(super) const CLOCK_EVERY: u32 = 16;

/// Batches in one PRODUCE at most (well below the protocol's array limit of 100,000).
const BATCHES_PER_REQUEST_MAX: usize = 10_000;

/// An open batch's first buffer, before its partition has shown how large its batches get.
const FIRST_CAPACITY: usize = 16 * 1024;

/// Room a partition's next batch starts with, given the size its last batch reached (0: none
/// yet). Never more than `batch_bytes`: after a single huge record the next batch starts small
/// again.
///
/// A batch of the same shape as the last must not outgrow it: growing a BytesMut of hundreds
/// of KiB reallocates it at twice the size, copies it and faults the new pages in, so every
/// full batch held twice its bytes (the bench client's peak RSS at 1 KiB records: 134-148 MB
/// before this rule, 123-130 MB after). The last size alone is not enough room, because each
/// append reserves its record's length prefix at its widest, a few bytes past what it writes,
/// so the last record of a batch as large as the previous one would still reallocate. An
/// eighth more covers that and batches somewhat larger than the last (deltas a byte wider,
/// values of varying size); a full batch's successor gets all of `batch_bytes`.
fn next_capacity(last: usize, batch_bytes: usize) -> usize {
    let wanted = match last {
        0 => FIRST_CAPACITY,
        last => last
            .saturating_add(last / 8)
            .saturating_add(LENGTH_PREFIX_SLACK),
    };
    wanted.min(batch_bytes)
}

/// The most an append reserves beyond what it writes: a length prefix reserved at 5 bytes,
/// written in 1 or more.
const LENGTH_PREFIX_SLACK: usize = 4;

/// The bounds `append` enforces, from `ProducerConfig`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub batch_bytes: usize,
    pub linger: Duration,
    pub queue_records: usize,
    pub queue_bytes: usize,
}

/// A record on its way in, borrowed from the caller's `ProducerRecord`.
pub(super) struct Incoming<'a> {
    pub topic: &'a str,
    pub partition: Option<u32>,
    pub fields: RecordFields<'a>,
    pub timestamp: Option<i64>,
    /// The most bytes the record takes in a batch (`RecordFields::encoded_len_max`).
    pub size: usize,
}

/// What `append` did.
pub(super) enum Appended {
    /// In a batch; `wake_sender` when a batch opened or closed, which the sender must know of.
    Queued {
        delivery: DeliveryFuture,
        wake_sender: bool,
    },
    /// The topic is not in the cache yet: look it up (outside the lock) and try again.
    UnknownTopic,
    /// The producer holds `queue_records` records or `queue_bytes` bytes not yet acknowledged:
    /// wait for some to complete.
    Full,
}

/// A closed batch, waiting for the sender.
#[derive(Debug)]
pub(super) struct ClosedBatch {
    pub id: u64,
    pub topic: TopicInfo,
    pub partition: u32,
    pub writer: BatchWriter,
    pub state: Unresolved,
    /// What the batch counts against the queue bounds until it completes.
    pub records: usize,
    pub bytes: usize,
}

#[derive(Debug)]
struct OpenBatch {
    id: u64,
    writer: BatchWriter,
    state: Unresolved,
    deadline: Instant,
    bytes: usize,
    clock_ms: i64,
    since_clock: u32,
}

impl OpenBatch {
    /// CreateTime for a record without a timestamp: the last clock reading, renewed every
    /// `CLOCK_EVERY` records.
    fn timestamp(&mut self) -> i64 {
        if self.since_clock >= CLOCK_EVERY {
            self.clock_ms = now_ms();
            self.since_clock = 0;
        }
        self.since_clock += 1;
        self.clock_ms
    }
}

#[derive(Debug, Default)]
struct PartitionSlot {
    open: Option<OpenBatch>,
    /// The size the partition's last batch reached: the next one starts with that much room,
    /// so a busy partition's batches do not grow by reallocation.
    capacity: usize,
}

#[derive(Debug)]
struct TopicSlot {
    info: TopicInfo,
    /// Only the partitions written to: the count comes from the broker and is not trusted to
    /// size an allocation.
    partitions: HashMap<u32, PartitionSlot, BuildHasherDefault<PartitionHasher>>,
    /// Records without key or partition stick to one partition until its batch closes
    /// (Kafka's sticky partitioner), so they still form large batches.
    sticky: Option<u32>,
}

impl TopicSlot {
    fn new(info: TopicInfo) -> TopicSlot {
        TopicSlot {
            info,
            partitions: HashMap::default(),
            sticky: None,
        }
    }
}

/// The producer's records not yet acknowledged: open batches, closed ones, and the count of
/// those in flight.
#[derive(Debug, Default)]
pub(super) struct Accumulator {
    topics: HashMap<String, TopicSlot>,
    batches: Batches,
    /// Records and bytes in the producer until their batch completes (the queue bounds).
    records: usize,
    bytes: usize,
    next_batch_id: u64,
    /// Ids of the batches not completed yet; `flush` waits for those below its mark.
    unfinished: BTreeSet<u64>,
    next_sticky: u32,
    /// Every `Producer` handle is gone: send what is left, then the sender stops.
    pub closing: bool,
    /// The sender task is gone: nothing will be sent any more.
    pub sender_gone: bool,
}

impl Accumulator {
    /// Adds the record to its partition's open batch, opening or closing batches as needed.
    pub fn append(
        &mut self,
        limits: &Limits,
        record: &Incoming<'_>,
    ) -> Result<Appended, ClientError> {
        if self.sender_gone {
            return Err(ClientError::Closed);
        }
        let Some(topic) = self.topics.get_mut(record.topic) else {
            return Ok(Appended::UnknownTopic);
        };
        let count = topic.info.partitions;
        if count == 0 {
            return Err(ClientError::InvalidArgument(format!(
                "topic {:?} has no partitions",
                topic.info.name
            )));
        }
        // A record larger than the whole bound still goes alone, or it could never be sent.
        if self.records > 0
            && (self.records >= limits.queue_records
                || self.bytes.saturating_add(record.size) > limits.queue_bytes)
        {
            return Ok(Appended::Full);
        }
        let mut wake_sender = false;
        // Each turn closes a batch, so this ends: a keyless record whose sticky partition's
        // batch is full moves on to the next partition, as Kafka's sticky partitioner does.
        let partition = loop {
            let (partition, sticky) = match (record.partition, record.fields.key) {
                (Some(p), _) if p >= count => {
                    return Err(ClientError::InvalidArgument(format!(
                        "partition {p} of {:?}, which has {count}",
                        topic.info.name
                    )));
                }
                (Some(p), _) => (p, false),
                (None, Some(key)) => (partition_for_key(key, count), false),
                (None, None) => {
                    let next_sticky = &mut self.next_sticky;
                    let p = *topic.sticky.get_or_insert_with(|| {
                        *next_sticky = next_sticky.wrapping_add(1);
                        *next_sticky % count
                    });
                    (p, true)
                }
            };
            let slot = topic.partitions.entry(partition).or_default();
            // Close the open batch first if the record would take it past `batch_bytes`, so
            // batches stay below it (and below the topic's max.message.bytes) unless a single
            // record is larger.
            if slot
                .open
                .as_ref()
                .is_none_or(|b| b.writer.len() + record.size <= limits.batch_bytes)
            {
                break partition;
            }
            topic.close(partition, &mut self.batches);
            wake_sender = true;
            if !sticky {
                break partition;
            }
        };
        let slot = topic.partitions.entry(partition).or_default();
        let batch = match &mut slot.open {
            Some(batch) => batch,
            None => {
                let id = self.next_batch_id;
                self.next_batch_id += 1;
                self.unfinished.insert(id);
                self.batches.open += 1;
                wake_sender = true;
                let capacity = next_capacity(slot.capacity, limits.batch_bytes);
                slot.open.insert(OpenBatch {
                    id,
                    writer: BatchWriter::with_capacity(
                        capacity.max(BATCH_HEADER_BYTES + record.size),
                    ),
                    state: Unresolved(BatchState::new(topic.info.name.clone(), partition)),
                    deadline: Instant::now() + limits.linger,
                    bytes: 0,
                    clock_ms: now_ms(),
                    since_clock: 0,
                })
            }
        };
        let timestamp = match record.timestamp {
            Some(timestamp) => timestamp,
            None => batch.timestamp(),
        };
        let index = batch.writer.record_count() as u32;
        batch
            .writer
            .append(timestamp, &record.fields)
            .map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
        batch.bytes += record.size;
        self.records += 1;
        self.bytes += record.size;
        let delivery = DeliveryFuture::new(batch.state.0.clone(), index, timestamp);
        if batch.writer.len() >= limits.batch_bytes {
            topic.close(partition, &mut self.batches);
            wake_sender = true;
        }
        Ok(Appended::Queued {
            delivery,
            wake_sender,
        })
    }

    /// Caches a topic looked up outside the lock. When the id or partition count changed
    /// (re-created, grown), its open batches are closed under the old one first.
    pub fn update_topic(&mut self, info: TopicInfo) {
        if let Some(topic) = self.topics.get_mut(&info.name) {
            if topic.info == info {
                return;
            }
            topic.close_where(&mut self.batches, |_| true);
        }
        self.topics.insert(info.name.clone(), TopicSlot::new(info));
    }

    /// Closes the batches whose linger has passed, or every open batch with `all`.
    pub fn close_expired(&mut self, now: Instant, all: bool) {
        if self.batches.open == 0 {
            return;
        }
        for topic in self.topics.values_mut() {
            topic.close_where(&mut self.batches, |b| all || b.deadline <= now);
        }
    }

    /// When the next open batch's linger ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.batches.open == 0 {
            return None;
        }
        self.topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter_map(|s| s.open.as_ref().map(|b| b.deadline))
            .min()
    }

    pub fn has_ready(&self) -> bool {
        !self.batches.ready.is_empty()
    }

    /// Nothing open or waiting to be sent (in-flight batches aside).
    pub fn is_idle(&self) -> bool {
        self.batches.ready.is_empty() && self.batches.open == 0
    }

    /// Closed batches in the order they closed (so a partition's go out in order), as many as
    /// fit in `max_bytes` by their uncompressed size (at least one; per batch `overhead`
    /// more).
    pub fn take_ready(&mut self, max_bytes: usize, overhead: usize) -> Vec<ClosedBatch> {
        let mut taken = Vec::new();
        let mut size = 0usize;
        while let Some(next) = self.batches.ready.front() {
            if taken.len() == BATCHES_PER_REQUEST_MAX {
                break;
            }
            let needed = next.writer.len() + overhead;
            if !taken.is_empty() && size + needed > max_bytes {
                break;
            }
            size += needed;
            taken.extend(self.batches.ready.pop_front());
        }
        taken
    }

    /// Every batch, open or closed, for a sender that is going away.
    pub fn take_all(&mut self) -> Vec<ClosedBatch> {
        self.close_expired(Instant::now(), true);
        self.batches.ready.drain(..).collect()
    }

    /// The id the next batch gets: every batch below it holds records sent before now.
    pub fn next_batch_id(&self) -> u64 {
        self.next_batch_id
    }

    /// Whether every batch below `mark` completed.
    pub fn completed_below(&self, mark: u64) -> bool {
        self.unfinished.first().is_none_or(|&id| id >= mark)
    }

    /// A batch completed: its records and bytes leave the queue bounds.
    pub fn release(&mut self, id: u64, records: usize, bytes: usize) {
        self.records = self.records.saturating_sub(records);
        self.bytes = self.bytes.saturating_sub(bytes);
        self.unfinished.remove(&id);
    }
}

/// Batches closed and waiting for the sender, and the count of those still open.
#[derive(Debug, Default)]
struct Batches {
    ready: VecDeque<ClosedBatch>,
    open: usize,
}

impl TopicSlot {
    /// Closes `partition`'s open batch, if it has one, and queues it for the sender.
    fn close(&mut self, partition: u32, batches: &mut Batches) {
        if let Some(slot) = self.partitions.get_mut(&partition) {
            close_slot(&self.info, &mut self.sticky, partition, slot, batches);
        }
    }

    /// Closes every open batch of this topic that `pred` picks.
    fn close_where(&mut self, batches: &mut Batches, mut pred: impl FnMut(&OpenBatch) -> bool) {
        for (&partition, slot) in self.partitions.iter_mut() {
            if slot.open.as_ref().is_some_and(&mut pred) {
                close_slot(&self.info, &mut self.sticky, partition, slot, batches);
            }
        }
    }
}

/// Moves a partition's open batch (if any) to the ready queue; the sticky partition moves on
/// when its batch closes.
fn close_slot(
    info: &TopicInfo,
    sticky: &mut Option<u32>,
    partition: u32,
    slot: &mut PartitionSlot,
    batches: &mut Batches,
) {
    let Some(batch) = slot.open.take() else {
        return;
    };
    batches.open -= 1;
    if *sticky == Some(partition) {
        *sticky = None;
    }
    slot.capacity = batch.writer.len();
    batches.ready.push_back(ClosedBatch {
        id: batch.id,
        topic: info.clone(),
        partition,
        records: batch.writer.record_count(),
        writer: batch.writer,
        state: batch.state,
        bytes: batch.bytes,
    });
}

/// Partition numbers are small integers the producer computes itself: they hash as they are
/// (SipHash would cost more than the rest of a record's bookkeeping).
#[derive(Debug, Default)]
struct PartitionHasher(u64);

impl Hasher for PartitionHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n);
    }
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            batch_bytes: 1000,
            linger: Duration::from_secs(60),
            queue_records: 10,
            queue_bytes: 1 << 20,
        }
    }

    fn topic(partitions: u32) -> TopicInfo {
        TopicInfo {
            name: "t".into(),
            id: [1; 16],
            partitions,
        }
    }

    fn incoming<'a>(value: &'a [u8], partition: Option<u32>) -> Incoming<'a> {
        let fields = RecordFields {
            key: None,
            value: Some(value),
            headers: &[],
        };
        Incoming {
            topic: "t",
            partition,
            size: fields.encoded_len_max().unwrap(),
            fields,
            timestamp: None,
        }
    }

    fn queued(acc: &mut Accumulator, record: &Incoming<'_>) -> DeliveryFuture {
        match acc.append(&limits(), record).unwrap() {
            Appended::Queued { delivery, .. } => delivery,
            Appended::UnknownTopic => panic!("unknown topic"),
            Appended::Full => panic!("full"),
        }
    }

    #[test]
    fn batches_close_before_passing_batch_bytes_and_keep_their_order() {
        let mut acc = Accumulator::default();
        assert!(matches!(
            acc.append(&limits(), &incoming(b"x", None)),
            Ok(Appended::UnknownTopic)
        ));
        acc.update_topic(topic(2));
        let value = [7u8; 250];
        for _ in 0..7 {
            queued(&mut acc, &incoming(&value, Some(1)));
        }
        // 250-byte values: three fit under 1000 bytes with the header, a fourth would not.
        let ready = acc.take_ready(usize::MAX, 0);
        assert_eq!(ready.iter().map(|b| b.records).collect::<Vec<_>>(), [3, 3]);
        assert!(ready
            .iter()
            .all(|b| b.writer.len() <= 1000 && b.partition == 1));
        assert!(ready[0].id < ready[1].id);
        assert!(!acc.is_idle(), "the seventh record's batch is still open");
        acc.close_expired(Instant::now(), true);
        assert_eq!(acc.take_ready(usize::MAX, 0)[0].records, 1);
    }

    #[test]
    fn a_partitions_batches_of_one_shape_never_grow_their_buffer() {
        let limits = Limits {
            batch_bytes: 512 * 1024,
            queue_records: 10_000,
            queue_bytes: 64 << 20,
            ..limits()
        };
        let mut acc = Accumulator::default();
        acc.update_topic(topic(1));
        let value = [3u8; 1024];
        for _ in 0..2000 {
            match acc.append(&limits, &incoming(&value, Some(0))) {
                Ok(Appended::Queued { .. }) => {}
                _ => panic!("not queued"),
            }
        }
        let ready = acc.take_ready(usize::MAX, 0);
        assert!(ready.len() >= 3, "full batches of 1 KiB records");
        // The first batch grew from FIRST_CAPACITY; the next ones start with room for all.
        for batch in &ready[1..] {
            assert_eq!(batch.writer.capacity(), limits.batch_bytes, "it never grew");
            assert!(batch.writer.len() <= limits.batch_bytes);
        }
    }

    #[test]
    fn a_batch_starts_with_room_for_its_predecessors_size_and_some() {
        assert_eq!(next_capacity(0, 1 << 20), FIRST_CAPACITY);
        assert_eq!(next_capacity(8000, 1 << 20), 9000 + LENGTH_PREFIX_SLACK);
        assert_eq!(next_capacity(1000, 1024), 1024);
        // After a single record larger than batch_bytes, back to at most batch_bytes.
        assert_eq!(next_capacity(10 << 20, 1 << 20), 1 << 20);
    }

    #[test]
    fn keyless_records_stick_to_a_partition_until_its_batch_closes() {
        let mut acc = Accumulator::default();
        acc.update_topic(topic(3));
        let value = [0u8; 250];
        for _ in 0..6 {
            queued(&mut acc, &incoming(&value, None));
        }
        acc.close_expired(Instant::now(), true);
        let partitions: Vec<_> = acc
            .take_ready(usize::MAX, 0)
            .iter()
            .map(|b| (b.partition, b.records))
            .collect();
        assert_eq!(partitions.len(), 2);
        assert_ne!(partitions[0].0, partitions[1].0);
        assert_eq!((partitions[0].1, partitions[1].1), (3, 3));
    }

    #[test]
    fn the_queue_bound_counts_records_until_their_batch_completes() {
        let mut acc = Accumulator::default();
        acc.update_topic(topic(1));
        for _ in 0..10 {
            queued(&mut acc, &incoming(b"v", None));
        }
        assert!(matches!(
            acc.append(&limits(), &incoming(b"v", None)),
            Ok(Appended::Full)
        ));
        acc.close_expired(Instant::now(), true);
        let batch = acc.take_ready(usize::MAX, 0).remove(0);
        let mark = acc.next_batch_id();
        assert!(!acc.completed_below(mark));
        // Taken by the sender is not enough: only completion frees room.
        assert!(matches!(
            acc.append(&limits(), &incoming(b"v", None)),
            Ok(Appended::Full)
        ));
        acc.release(batch.id, batch.records, batch.bytes);
        assert!(acc.completed_below(mark));
        queued(&mut acc, &incoming(b"v", None));
    }

    #[test]
    fn a_bad_partition_is_refused_and_timestamps_come_from_the_batch_clock() {
        let mut acc = Accumulator::default();
        acc.update_topic(topic(2));
        assert!(matches!(
            acc.append(&limits(), &incoming(b"v", Some(2))),
            Err(ClientError::InvalidArgument(_))
        ));
        let before = now_ms();
        let mut own = incoming(b"v", Some(0));
        own.timestamp = Some(42);
        let first = queued(&mut acc, &incoming(b"v", Some(0)));
        let second = queued(&mut acc, &own);
        let state = first.state_for_tests();
        state.complete(Ok(super::super::delivery::Ack {
            base_offset: 0,
            log_append_time: -1,
        }));
        let first = first.try_result().unwrap().unwrap();
        assert!(first.timestamp >= before && first.timestamp <= now_ms());
        assert_eq!(second.try_result().unwrap().unwrap().timestamp, 42);
        acc.close_expired(Instant::now(), true);
    }
}
