//! The group coordinator (DESIGN.md §6): Kafka's classic consumer group protocol and committed
//! offsets, durable in the internal topic `__consumer_offsets`.
//!
//! A group belongs to partition `abs(javaHashCode(group id)) % OFFSETS_PARTITIONS` of
//! `__consumer_offsets` (created with `cleanup.policy=compact` on first use), and its state
//! lives on the shard owning that partition, in [`Coordinator`]; handlers reach it with
//! [`on_coordinator`] (`ShardSet::call`). Offset commits and group metadata are records in that
//! partition (formats in [`codec`]), appended with `Partition::append` and made durable with
//! `Partition::commit` before the answer; when the shard opens the partition at start-up
//! [`load_partition`] replays it, the latest record per key winning.
//!
//! Each group with members has a timer task on its shard (ticking every [`TICK`]) that expires
//! silent members and overdue rebalances. Static members (KIP-345) are kept by their
//! `group.instance.id`: one that restarts takes its place back without a rebalance. KIP-848
//! is not implemented yet.

pub mod assignor;
pub mod codec;
pub mod consumer;
pub mod lag;
pub mod state;
pub mod txn;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use protocol::records::{decode_records, BatchBuilder, Record};
use storage::batch::ValidatedBatch;

use self::codec::{OffsetValue, RecordKey};
use self::state::{Group, GroupState};
use crate::cluster::metadata::{now_ms, TopicInfo};
use crate::partition::Partition;
use crate::shard::{BrokerContext, Shard};
use crate::topics::{create_topic, NewTopic};

/// The internal topic holding offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// Its partition count (Kafka's offsets.topic.num.partitions, 50 there).
pub const OFFSETS_PARTITIONS: i32 = 8;
/// How often a group's timer looks for expired members and overdue rebalances.
pub const TICK: Duration = Duration::from_millis(100);
/// Kafka's offset.metadata.max.bytes.
pub const OFFSET_METADATA_MAX: usize = 4096;
/// Most groups one shard coordinates (new ones are refused beyond it).
pub const MAX_GROUPS_PER_SHARD: usize = 100_000;
/// Records per batch appended to `__consumer_offsets`.
const RECORDS_PER_BATCH: usize = 1000;

/// The groups coordinated by one shard.
#[derive(Debug, Default)]
pub struct Coordinator {
    pub groups: RefCell<HashMap<String, Group>>,
}

/// Java's `String.hashCode` (over UTF-16 code units).
pub fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// The `__consumer_offsets` partition of a group (Kafka's `Utils.abs(hash) % partitions`).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    (java_hash(group) & 0x7fff_ffff) % partitions.max(1)
}

/// The offsets topic, created on first use.
pub async fn offsets_topic(ctx: &Arc<BrokerContext>) -> Result<Arc<TopicInfo>, ResponseError> {
    if let Some(topic) = ctx.metadata.load().topic(OFFSETS_TOPIC) {
        return Ok(topic.clone());
    }
    let topic = NewTopic {
        name: OFFSETS_TOPIC.to_owned(),
        partitions: OFFSETS_PARTITIONS,
        replication_factor: 1,
        configs: BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
    };
    match create_topic(ctx, topic).await {
        Ok(info) => Ok(info),
        Err(e) if e.code == ResponseError::TopicAlreadyExists => ctx
            .metadata
            .load()
            .topic(OFFSETS_TOPIC)
            .cloned()
            .ok_or(ResponseError::CoordinatorNotAvailable),
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot create {OFFSETS_TOPIC}");
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// Checks a group id from a client.
pub fn check_group_id(group: &str) -> Result<(), ResponseError> {
    if group.is_empty() || group.len() > state::MAX_ID_LEN {
        Err(ResponseError::InvalidGroupId)
    } else {
        Ok(())
    }
}

/// Runs `f` on the shard coordinating `group`, with the group's `__consumer_offsets`
/// partition.
pub async fn on_coordinator<R, F, Fut>(
    ctx: &Arc<BrokerContext>,
    group: &str,
    f: F,
) -> Result<R, ResponseError>
where
    R: Send + 'static,
    F: FnOnce(Rc<Shard>, Rc<Partition>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = R> + 'static,
{
    let topic = offsets_topic(ctx).await?;
    on_key_partition(ctx, &topic, group, f).await
}

/// Runs `f` on the shard owning the partition of the internal `topic` that `key` hashes to
/// (a group's or a transactional id's coordinator), with that partition.
pub async fn on_key_partition<R, F, Fut>(
    ctx: &Arc<BrokerContext>,
    topic: &TopicInfo,
    key: &str,
    f: F,
) -> Result<R, ResponseError>
where
    R: Send + 'static,
    F: FnOnce(Rc<Shard>, Rc<Partition>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = R> + 'static,
{
    let index = partition_for(key, topic.partitions);
    let owner = ctx.shards.owner(&topic.id, index);
    let topic_id = topic.id;
    ctx.shards
        .call(owner, move |shard| async move {
            match shard.partition(&topic_id, index) {
                Some(partition) => Ok(f(shard, partition).await),
                None => Err(ResponseError::CoordinatorNotAvailable),
            }
        })
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable)?
}

/// Appends records to an internal partition (`__consumer_offsets`, `__transaction_state`)
/// and waits until they are durable; returns the offset of the first.
pub async fn append_records(
    partition: &Partition,
    records: Vec<(Bytes, Option<Bytes>)>,
) -> Result<u64, ResponseError> {
    append_records_as(partition, records, None).await
}

/// [`append_records`], written by a transactional producer when `producer` is set (offsets
/// committed in a transaction, which count only once its commit marker follows).
pub async fn append_records_as(
    partition: &Partition,
    records: Vec<(Bytes, Option<Bytes>)>,
    producer: Option<(i64, i16)>,
) -> Result<u64, ResponseError> {
    let timestamp = now_ms();
    let mut batches = Vec::new();
    for chunk in records.chunks(RECORDS_PER_BATCH) {
        let mut builder = match producer {
            Some((producer_id, producer_epoch)) => BatchBuilder::new()
                .attributes(storage::batch::ATTRIBUTE_TRANSACTIONAL)
                .producer(protocol::records::ProducerFields {
                    producer_id,
                    producer_epoch,
                    base_sequence: -1,
                }),
            None => BatchBuilder::new(),
        };
        for (key, value) in chunk {
            builder.push(Record {
                key: Some(key.clone()),
                value: value.clone(),
                headers: Vec::new(),
                timestamp,
            });
        }
        let bytes: BytesMut = builder.build();
        let batch = ValidatedBatch::new(bytes).map_err(|e| {
            tracing::error!(error = %e, "built an invalid {OFFSETS_TOPIC} batch");
            ResponseError::UnknownServerError
        })?;
        batches.push(batch);
    }
    if batches.is_empty() {
        return Ok(partition.log.log_end_offset());
    }
    let (first, end) = partition.append(batches).map_err(|e| {
        tracing::warn!(error = %e, "{OFFSETS_TOPIC} append failed");
        ResponseError::CoordinatorNotAvailable
    })?;
    partition.commit(end).await.map_err(|e| {
        tracing::warn!(error = %e, "{OFFSETS_TOPIC} commit failed");
        ResponseError::CoordinatorNotAvailable
    })?;
    Ok(first)
}

/// Replays one `__consumer_offsets` partition into this shard's coordinator (at open, before
/// the partition is reachable).
pub async fn load_partition(
    shard: &Shard,
    log: &storage::PartitionLog,
    index: i32,
) -> Result<(), String> {
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    let mut records = 0usize;
    while offset < end {
        let read = log
            .read(offset, 1 << 20, u64::MAX)
            .await
            .map_err(|e| format!("cannot read {OFFSETS_TOPIC}: {e}"))?;
        if read.batches.is_empty() {
            break;
        }
        for batch in &read.batches {
            if txn::replay_batch(shard, batch, index) {
                continue;
            }
            let decoded = match decode_records(batch) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an unreadable {OFFSETS_TOPIC} batch");
                    continue;
                }
            };
            for record in decoded {
                if record.offset < offset as i64 {
                    continue;
                }
                records += 1;
                apply_record(shard, record.offset as u64, record.key, record.value);
            }
        }
        offset = read.next_offset.max(offset + 1);
    }
    tracing::debug!(
        shard = shard.id,
        records,
        "{OFFSETS_TOPIC} partition replayed"
    );
    Ok(())
}

fn apply_record(shard: &Shard, log_offset: u64, key: Option<Bytes>, value: Option<Bytes>) {
    let Some(key) = key else { return };
    let key = match RecordKey::decode(key) {
        Ok(Some(key)) => key,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(offset = log_offset, error = %e, "bad {OFFSETS_TOPIC} key");
            return;
        }
    };
    let mut groups = shard.groups.groups.borrow_mut();
    match key {
        RecordKey::Offset {
            group,
            topic,
            partition,
        } => {
            let value = match value.map(OffsetValue::decode).transpose() {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(offset = log_offset, error = %e, "bad {OFFSETS_TOPIC} offset value");
                    return;
                }
            };
            groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(group))
                .apply_offset(topic, partition, value, log_offset);
        }
        RecordKey::Group { group } => {
            let value = match value.map(codec::GroupValue::decode).transpose() {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(offset = log_offset, error = %e, "bad {OFFSETS_TOPIC} group value");
                    return;
                }
            };
            let entry = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(group.clone()));
            entry.apply_metadata(value, log_offset);
            if entry.is_forgettable() {
                groups.remove(&group);
            }
        }
        RecordKey::ConsumerGroup { group } => {
            let epoch = match value.map(codec::decode_consumer_group).transpose() {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(offset = log_offset, error = %e, "bad {OFFSETS_TOPIC} consumer group value");
                    return;
                }
            };
            let entry = groups
                .entry(group.clone())
                .or_insert_with(|| Group::new(group.clone()));
            entry.consumer = epoch.map(consumer::ConsumerGroup::restored);
            if entry.is_forgettable() {
                groups.remove(&group);
            }
        }
    }
}

/// Tombstones for `offsets` of a group, appended and durable before they are applied.
pub async fn delete_offsets(
    shard: &Shard,
    partition: &Partition,
    group_id: &str,
    offsets: Vec<(String, i32)>,
) -> Result<(), ResponseError> {
    if offsets.is_empty() {
        return Ok(());
    }
    let records = offsets
        .iter()
        .map(|(topic, index)| {
            let key = RecordKey::Offset {
                group: group_id.to_owned(),
                topic: topic.clone(),
                partition: *index,
            };
            (key.encode(), None)
        })
        .collect();
    let first = append_records(partition, records).await?;
    if let Some(group) = shard.groups.groups.borrow_mut().get_mut(group_id) {
        for (i, (topic, index)) in offsets.into_iter().enumerate() {
            group.apply_offset(topic, index, None, first + i as u64);
        }
    }
    Ok(())
}

/// Deletes every committed offset of `topic` in this shard's groups (the topic was deleted).
pub async fn delete_topic_offsets(shard: &Shard, topic: &str) -> Result<(), ResponseError> {
    let Some(offsets) = shard.metadata().topic(OFFSETS_TOPIC).cloned() else {
        return Ok(());
    };
    let doomed: Vec<(String, Vec<(String, i32)>)> = shard
        .groups
        .groups
        .borrow()
        .values()
        .map(|g| {
            let keys: Vec<(String, i32)> = g
                .offsets
                .keys()
                .filter(|(t, _)| t == topic)
                .cloned()
                .collect();
            (g.id.clone(), keys)
        })
        .filter(|(_, keys)| !keys.is_empty())
        .collect();
    for (group_id, keys) in doomed {
        let index = partition_for(&group_id, offsets.partitions);
        if let Some(partition) = shard.partition(&offsets.id, index) {
            delete_offsets(shard, &partition, &group_id, keys).await?;
        }
    }
    Ok(())
}

/// Deletes an empty group: tombstones for its offsets and its metadata, then forgets it.
/// Fails with NON_EMPTY_GROUP while it has members.
pub async fn delete_group(
    shard: &Shard,
    partition: &Partition,
    group_id: &str,
) -> Result<(), ResponseError> {
    let mut keys = {
        let groups = shard.groups.groups.borrow();
        let group = groups.get(group_id).ok_or(ResponseError::GroupIdNotFound)?;
        if !group.members.is_empty()
            || !group.pending.is_empty()
            || group
                .consumer
                .as_ref()
                .is_some_and(|c| !c.members.is_empty())
        {
            return Err(ResponseError::NonEmptyGroup);
        }
        let consumer_key = group.consumer.is_some().then(|| {
            RecordKey::ConsumerGroup {
                group: group_id.to_owned(),
            }
            .encode()
        });
        group
            .offsets
            .keys()
            .map(|(topic, index)| {
                RecordKey::Offset {
                    group: group_id.to_owned(),
                    topic: topic.clone(),
                    partition: *index,
                }
                .encode()
            })
            .collect::<Vec<_>>()
            .into_iter()
            .chain(consumer_key)
            .collect::<Vec<_>>()
    };
    keys.push(
        RecordKey::Group {
            group: group_id.to_owned(),
        }
        .encode(),
    );
    let count = keys.len() as u64;
    let first = append_records(partition, keys.into_iter().map(|k| (k, None)).collect()).await?;
    let mut groups = shard.groups.groups.borrow_mut();
    // Commits or members may have arrived while the tombstones were written: what came later
    // than the tombstones stays, as it will on replay.
    if let Some(group) = groups.get_mut(group_id) {
        group.offsets.retain(|_, c| c.log_offset >= first + count);
        if group.metadata_offset.is_some_and(|o| o < first + count) {
            group.metadata_offset = None;
            group.protocol_type = None;
        }
        if group
            .consumer
            .as_ref()
            .is_some_and(|c| c.members.is_empty())
        {
            group.consumer = None;
        }
        if group.is_forgettable() {
            groups.remove(group_id);
        }
    }
    tracing::info!(group = %group_id, "group deleted");
    Ok(())
}

/// Deletes expired committed offsets of this shard's groups (Kafka's offset retention), and
/// groups left with nothing, every `offsets.retention.check.interval.ms`.
pub async fn expire_offsets_loop(shard: Rc<Shard>) {
    let config = &shard.ctx.config.groups;
    let interval = Duration::from_millis(config.offsets_retention_check_interval_ms.max(1) as u64);
    let retention_ms = config.offsets_retention_minutes.saturating_mul(60_000);
    loop {
        tokio::time::sleep(interval).await;
        let Some(topic) = shard.metadata().topic(OFFSETS_TOPIC).cloned() else {
            continue;
        };
        let now = now_ms();
        let due: Vec<(String, Vec<(String, i32)>)> = shard
            .groups
            .groups
            .borrow()
            .values()
            .map(|g| (g.id.clone(), g.expired_offsets(now, retention_ms)))
            .filter(|(_, expired)| !expired.is_empty())
            .collect();
        for (group_id, expired) in due {
            let index = partition_for(&group_id, topic.partitions);
            let Some(partition) = shard.partition(&topic.id, index) else {
                continue;
            };
            let count = expired.len();
            if let Err(e) = delete_offsets(&shard, &partition, &group_id, expired).await {
                tracing::warn!(group = %group_id, error = %e, "cannot expire offsets");
                continue;
            }
            tracing::info!(group = %group_id, count, "expired committed offsets");
            let empty = shard
                .groups
                .groups
                .borrow()
                .get(&group_id)
                .is_some_and(|g| {
                    g.offsets.is_empty()
                        && g.members.is_empty()
                        && g.pending.is_empty()
                        && g.consumer.as_ref().is_none_or(|c| c.members.is_empty())
                });
            if empty {
                if let Err(e) = delete_group(&shard, &partition, &group_id).await {
                    tracing::debug!(group = %group_id, error = %e, "group not deleted after expiry");
                }
            }
        }
    }
}

/// Starts the group's timer task unless it runs already.
pub fn ensure_timer(shard: &Rc<Shard>, group_id: &str) {
    {
        let mut groups = shard.groups.groups.borrow_mut();
        let Some(group) = groups.get_mut(group_id) else {
            return;
        };
        if group.timer {
            return;
        }
        group.timer = true;
    }
    let shard = shard.clone();
    let id = group_id.to_owned();
    tokio::task::spawn_local(async move {
        loop {
            // Wake at the next deadline (a session expires on time, not up to a tick late),
            // and at least every TICK.
            let wake = {
                let groups = shard.groups.groups.borrow();
                let next = groups.get(&id).and_then(|g| g.next_deadline());
                let latest = Instant::now() + TICK;
                next.map_or(latest, |d| d.clamp(Instant::now(), latest))
            };
            tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
            let keep = {
                let mut groups = shard.groups.groups.borrow_mut();
                match groups.get_mut(&id) {
                    Some(group) => {
                        let keep = group.tick(Instant::now());
                        if !keep {
                            group.timer = false;
                            // Nothing to remember (no offsets, never synced): forget it.
                            if group.is_forgettable() {
                                groups.remove(&id);
                            }
                        }
                        keep
                    }
                    None => false,
                }
            };
            if !keep {
                break;
            }
        }
    });
}

/// One group as ListGroups shows it.
#[derive(Debug, Clone)]
pub struct ListedGroup {
    pub id: String,
    pub protocol_type: String,
    pub state: &'static str,
    /// "classic" or "consumer".
    pub group_type: &'static str,
}

/// The groups of this shard for ListGroups.
pub fn list_local(shard: &Shard) -> Vec<ListedGroup> {
    shard
        .groups
        .groups
        .borrow()
        .values()
        .map(|g| ListedGroup {
            id: g.id.clone(),
            protocol_type: match g.consumer {
                Some(_) => "consumer".to_owned(),
                None => g.protocol_type.clone().unwrap_or_default(),
            },
            state: g.state_name(),
            group_type: g.group_type(),
        })
        .collect()
}

/// A group's state name for clients ("Dead" when it does not exist).
pub fn state_name(state: Option<GroupState>) -> &'static str {
    state.map(GroupState::name).unwrap_or("Dead")
}

/// The wire code of an outcome (0 for success).
pub fn code(outcome: Result<(), ResponseError>) -> i16 {
    match outcome {
        Ok(()) => 0,
        Err(e) => e.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_map_to_partitions_like_kafka() {
        // Java: "hello".hashCode() == 99162322, "polygenelubricants".hashCode() == i32::MIN.
        assert_eq!(java_hash("hello"), 99_162_322);
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        assert!((0..8).contains(&partition_for("any-group", 8)));
    }
}
