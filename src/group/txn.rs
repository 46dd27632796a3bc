//! Offsets committed inside transactions (TxnOffsetCommit): written to `__consumer_offsets` as
//! a transactional batch of the producer, held as pending until the transaction's marker
//! reaches that partition, then applied (commit) or dropped (abort). Replay does the same with
//! the batches and markers it reads, so a transaction half done at a crash never shows.

use bytes::Bytes;
use storage::batch::BatchHeader;

use super::codec::{OffsetValue, RecordKey};
use super::state::Group;
use super::{partition_for, OFFSETS_TOPIC};
use crate::shard::Shard;

/// One offset waiting for its transaction to end: (topic, partition, value, log offset).
pub type PendingOffset = (String, i32, OffsetValue, u64);

/// A transaction marker for `producer_id` was written to `__consumer_offsets` partition
/// `index` at `marker_offset`: its pending offsets there take effect or vanish.
pub fn on_marker(shard: &Shard, index: i32, producer_id: i64, commit: bool, marker_offset: u64) {
    let partitions = shard
        .metadata()
        .topic(OFFSETS_TOPIC)
        .map(|t| t.partitions)
        .unwrap_or(super::OFFSETS_PARTITIONS);
    let mut groups = shard.groups.groups.borrow_mut();
    for group in groups.values_mut() {
        if partition_for(&group.id, partitions) != index {
            continue;
        }
        end_pending(group, producer_id, commit);
    }
    tracing::debug!(
        index,
        producer_id,
        commit,
        marker_offset,
        "transaction marker applied to group offsets"
    );
}

/// Applies or drops one producer's pending offsets in `group`.
pub fn end_pending(group: &mut Group, producer_id: i64, commit: bool) {
    let Some(pending) = group.pending_txn_offsets.remove(&producer_id) else {
        return;
    };
    if commit {
        for (topic, partition, value, log_offset) in pending {
            group.apply_offset(topic, partition, Some(value), log_offset);
        }
    }
}

/// Replays a transactional batch of `__consumer_offsets` (offsets pending until the marker) or
/// a marker. Returns false for other batches, which the caller replays as usual.
pub fn replay_batch(shard: &Shard, batch: &Bytes, index: i32) -> bool {
    let Ok(header) = BatchHeader::decode(batch) else {
        return false;
    };
    if !header.is_transactional() || header.producer_id < 0 {
        return false;
    }
    if header.is_control() {
        if let Some(commit) = crate::producer::marker::is_commit(batch) {
            on_marker(
                shard,
                index,
                header.producer_id,
                commit,
                header.base_offset as u64,
            );
        }
        return true;
    }
    let Ok(records) = protocol::records::decode_records(batch) else {
        tracing::warn!("skipping an unreadable transactional {OFFSETS_TOPIC} batch");
        return true;
    };
    let mut groups = shard.groups.groups.borrow_mut();
    for record in records {
        let (Some(key), Some(value)) = (record.key, record.value) else {
            continue;
        };
        let Ok(Some(RecordKey::Offset {
            group,
            topic,
            partition,
        })) = RecordKey::decode(key)
        else {
            continue;
        };
        let Ok(value) = OffsetValue::decode(value) else {
            continue;
        };
        groups
            .entry(group.clone())
            .or_insert_with(|| Group::new(group))
            .pending_txn_offsets
            .entry(header.producer_id)
            .or_default()
            .push((topic, partition, value, record.offset as u64));
    }
    true
}
