//! The transaction coordinator (DESIGN.md §6), following Kafka's: a transactional id belongs to
//! partition `abs(javaHashCode(id)) % TXN_PARTITIONS` of the internal topic
//! `__transaction_state` (created on first use); its state ([`state::TxnMetadata`]) lives on the
//! shard owning that partition, and every change is a record there ([`codec`]), durable before
//! it is acted on and replayed when the partition opens.
//!
//! Ending a transaction writes `PrepareCommit`/`PrepareAbort`, then a commit or abort marker
//! (a control batch) to every partition in the transaction, waiting until each is durable,
//! then `CompleteCommit`/`CompleteAbort`. A crash between the two leaves a `Prepare*` state,
//! which the coordinator finishes after a restart; an `Ongoing` transaction older than its
//! timeout is aborted with the producer's epoch bumped, fencing the producer.

pub mod codec;
pub mod state;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use protocol::records::decode_records;

use self::state::{TxnMetadata, TxnState};
use crate::cluster::metadata::{now_ms, TopicInfo};
use crate::group::{self, OFFSETS_TOPIC};
use crate::partition::Partition;
use crate::shard::{BrokerContext, Shard};
use crate::topics::{create_topic, NewTopic};

/// The internal topic holding transaction state.
pub const TXN_TOPIC: &str = "__transaction_state";
/// Its partition count (Kafka's transaction.state.log.num.partitions, 50 there).
pub const TXN_PARTITIONS: i32 = 8;
/// Longest transaction timeout a producer may ask for (Kafka's transaction.max.timeout.ms).
pub const MAX_TIMEOUT_MS: i32 = 900_000;
/// Longest transactional id accepted.
pub const MAX_ID_LEN: usize = 1024;
/// Most transactional ids one shard coordinates.
pub const MAX_TXNS_PER_SHARD: usize = 100_000;
/// Written into markers; there is one coordinator incarnation per partition on a single node.
const COORDINATOR_EPOCH: i32 = 0;
/// How often the coordinator looks for timed-out and unfinished transactions.
const TIMER_INTERVAL: Duration = Duration::from_millis(500);

/// The transactional ids coordinated by one shard.
#[derive(Debug, Default)]
pub struct TxnCoordinator {
    pub txns: RefCell<HashMap<String, TxnMetadata>>,
}

/// Checks a transactional id from a client.
pub fn check_id(id: &str) -> Result<(), ResponseError> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        Err(ResponseError::InvalidRequest)
    } else {
        Ok(())
    }
}

/// The transaction state topic, created on first use.
pub async fn txn_topic(ctx: &Arc<BrokerContext>) -> Result<Arc<TopicInfo>, ResponseError> {
    if let Some(topic) = ctx.metadata.load().topic(TXN_TOPIC) {
        return Ok(topic.clone());
    }
    let topic = NewTopic {
        name: TXN_TOPIC.to_owned(),
        partitions: TXN_PARTITIONS,
        replication_factor: 1,
        configs: BTreeMap::from([("cleanup.policy".to_owned(), "compact".to_owned())]),
    };
    match create_topic(ctx, topic).await {
        Ok(info) => Ok(info),
        Err(e) if e.code == ResponseError::TopicAlreadyExists => ctx
            .metadata
            .load()
            .topic(TXN_TOPIC)
            .cloned()
            .ok_or(ResponseError::CoordinatorNotAvailable),
        Err(e) => {
            tracing::warn!(error = %e.message, "cannot create {TXN_TOPIC}");
            Err(ResponseError::CoordinatorNotAvailable)
        }
    }
}

/// Runs `f` on the shard coordinating `transactional_id`, with its `__transaction_state`
/// partition.
pub async fn on_coordinator<R, F, Fut>(
    ctx: &Arc<BrokerContext>,
    transactional_id: &str,
    f: F,
) -> Result<R, ResponseError>
where
    R: Send + 'static,
    F: FnOnce(Rc<Shard>, Rc<Partition>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = R> + 'static,
{
    let topic = txn_topic(ctx).await?;
    group::on_key_partition(ctx, &topic, transactional_id, f).await
}

/// Makes `m` durable in the coordinator's partition.
pub async fn persist(partition: &Partition, m: &TxnMetadata) -> Result<(), ResponseError> {
    let record = (codec::encode_key(&m.id), Some(codec::encode_value(m)));
    group::append_records(partition, vec![record])
        .await
        .map(|_| ())
}

/// Replays one `__transaction_state` partition into this shard's coordinator (at open).
pub async fn load_partition(shard: &Shard, log: &storage::PartitionLog) -> Result<(), String> {
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = log
            .read(offset, 1 << 20, u64::MAX)
            .await
            .map_err(|e| format!("cannot read {TXN_TOPIC}: {e}"))?;
        if read.batches.is_empty() {
            break;
        }
        let mut txns = shard.txns.txns.borrow_mut();
        for batch in &read.batches {
            let Ok(records) = decode_records(batch) else {
                tracing::warn!("skipping an unreadable {TXN_TOPIC} batch");
                continue;
            };
            for record in records {
                if record.offset < offset as i64 {
                    continue;
                }
                let Some(key) = record.key else { continue };
                let id = match codec::decode_key(key) {
                    Ok(Some(id)) => id,
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!(offset = record.offset, error = %e, "bad {TXN_TOPIC} key");
                        continue;
                    }
                };
                match record.value.map(|v| codec::decode_value(id.clone(), v)) {
                    None => {
                        txns.remove(&id);
                    }
                    Some(Ok(m)) => {
                        txns.insert(id, m);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(offset = record.offset, error = %e, "bad {TXN_TOPIC} value")
                    }
                }
            }
        }
        offset = read.next_offset.max(offset + 1);
    }
    Ok(())
}

/// Writes a commit or abort marker for `producer_id` to every partition in `partitions`, each
/// durable before this returns. Partitions of deleted topics are skipped.
pub async fn write_markers(
    ctx: &Arc<BrokerContext>,
    producer_id: i64,
    epoch: i16,
    commit: bool,
    partitions: &BTreeSet<(String, i32)>,
) -> Result<(), ResponseError> {
    let snapshot = ctx.metadata.load_full();
    let writes = partitions.iter().filter_map(|(topic, index)| {
        let Some(info) = snapshot.topic(topic).cloned() else {
            tracing::info!(%topic, "no marker for a deleted topic");
            return None;
        };
        let index = *index;
        let owner = ctx.shards.owner(&info.id, index);
        let is_offsets = topic == OFFSETS_TOPIC;
        Some(ctx.shards.call(owner, move |shard| async move {
            let Some(partition) = shard.partition(&info.id, index) else {
                return Err(ResponseError::NotLeaderOrFollower);
            };
            let end = partition
                .write_marker(producer_id, epoch, commit, COORDINATOR_EPOCH)
                .map_err(|e| crate::kafka::errors::storage_error_code(&e))?;
            partition
                .commit(end)
                .await
                .map_err(|e| crate::kafka::errors::storage_error_code(&e))?;
            if is_offsets {
                group::txn::on_marker(&shard, index, producer_id, commit, end - 1);
            }
            Ok(())
        }))
    });
    for result in futures::future::join_all(writes).await {
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(ResponseError::CoordinatorNotAvailable),
        }
    }
    Ok(())
}

/// Ends `id`'s transaction: `Prepare*` (unless already there), markers, `Complete*`. With
/// `bump_epoch` (timeouts, fencing) the markers carry the next epoch, fencing the producer.
/// Returns the producer id and epoch the markers carried.
pub async fn end_transaction(
    shard: &Rc<Shard>,
    partition: &Partition,
    id: &str,
    commit: bool,
    bump_epoch: bool,
) -> Result<(i64, i16), ResponseError> {
    let prepared = {
        let mut txns = shard.txns.txns.borrow_mut();
        let m = txns
            .get_mut(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if m.busy {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let already = m.state.is_prepare();
        if !already {
            if bump_epoch && m.epoch < i16::MAX - 1 {
                m.epoch += 1;
            }
            m.state = if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            };
            m.updated_ms = now_ms();
        }
        m.busy = true;
        (m.clone(), already)
    };
    let (m, already) = prepared;
    let commit = m.state == TxnState::PrepareCommit;
    let done = async {
        if !already {
            persist(partition, &m).await?;
        }
        write_markers(&shard.ctx, m.producer_id, m.epoch, commit, &m.partitions).await
    }
    .await;
    let completed = {
        let mut txns = shard.txns.txns.borrow_mut();
        let Some(current) = txns.get_mut(id) else {
            return Err(ResponseError::InvalidProducerIdMapping);
        };
        current.busy = false;
        if let Err(e) = done {
            // Left in Prepare*: the timer finishes it.
            tracing::warn!(transactional_id = %id, error = %e, "transaction markers not all written; will retry");
            return Err(e);
        }
        current.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        current.partitions.clear();
        current.updated_ms = now_ms();
        current.clone()
    };
    persist(partition, &completed).await?;
    tracing::debug!(transactional_id = %id, commit, producer_id = m.producer_id, epoch = m.epoch, "transaction ended");
    Ok((m.producer_id, m.epoch))
}

/// Aborts transactions past their timeout and finishes ones left half done (after a crash or
/// a failed marker write), on this shard, forever.
pub async fn timer_loop(shard: Rc<Shard>) {
    // Markers go to partitions on every shard: wait until they are all open.
    while !shard.ctx.ready.load(Ordering::Acquire) {
        tokio::time::sleep(TIMER_INTERVAL).await;
    }
    loop {
        let Some(topic) = shard.metadata().topic(TXN_TOPIC).cloned() else {
            tokio::time::sleep(TIMER_INTERVAL).await;
            continue;
        };
        let now = now_ms();
        let due: Vec<(String, bool, bool)> = shard
            .txns
            .txns
            .borrow()
            .values()
            .filter(|m| !m.busy)
            .filter_map(|m| match m.state {
                TxnState::Ongoing
                    if now.saturating_sub(m.started_ms) >= i64::from(m.timeout_ms) =>
                {
                    Some((m.id.clone(), false, true))
                }
                TxnState::PrepareCommit => Some((m.id.clone(), true, false)),
                TxnState::PrepareAbort => Some((m.id.clone(), false, false)),
                _ => None,
            })
            .collect();
        for (id, commit, timed_out) in due {
            let index = group::partition_for(&id, topic.partitions);
            let Some(partition) = shard.partition(&topic.id, index) else {
                continue;
            };
            if timed_out {
                tracing::info!(transactional_id = %id, "transaction timed out; aborting and fencing its producer");
            }
            let _ = end_transaction(&shard, &partition, &id, commit, timed_out).await;
        }
        tokio::time::sleep(TIMER_INTERVAL).await;
    }
}

/// The error for a producer whose epoch is not the current one: PRODUCER_FENCED from the API
/// version `since` that knows it (KIP-588), INVALID_PRODUCER_EPOCH before.
pub fn fenced(version: i16, since: i16) -> ResponseError {
    if version >= since {
        ResponseError::ProducerFenced
    } else {
        ResponseError::InvalidProducerEpoch
    }
}

/// Checks that `producer_id`/`epoch` is the current producer of `m`.
pub fn check_producer(
    m: &TxnMetadata,
    producer_id: i64,
    epoch: i16,
    version: i16,
    fenced_since: i16,
) -> Result<(), ResponseError> {
    if m.producer_id != producer_id {
        return Err(ResponseError::InvalidProducerIdMapping);
    }
    if epoch != m.epoch {
        return Err(fenced(version, fenced_since));
    }
    Ok(())
}

/// Adds partitions to `id`'s transaction (starting it if none is open), durably.
pub async fn add_partitions(
    shard: &Shard,
    partition: &Partition,
    id: &str,
    producer_id: i64,
    epoch: i16,
    version: i16,
    partitions: BTreeSet<(String, i32)>,
) -> Result<(), ResponseError> {
    let next = {
        let mut txns = shard.txns.txns.borrow_mut();
        let m = txns
            .get_mut(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        check_producer(m, producer_id, epoch, version, 2)?;
        if m.busy || m.state.is_prepare() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if m.state == TxnState::Dead {
            return Err(ResponseError::InvalidTxnState);
        }
        let starts = m.state != TxnState::Ongoing;
        if !starts && partitions.is_subset(&m.partitions) {
            return Ok(());
        }
        let mut next = m.clone();
        if starts {
            next.state = TxnState::Ongoing;
            next.started_ms = now_ms();
            next.partitions.clear();
        }
        next.partitions.extend(partitions);
        next.updated_ms = now_ms();
        m.busy = true;
        next
    };
    // Durable before the producer may write: a crash then still knows where markers go.
    let stored = persist(partition, &next).await;
    let mut txns = shard.txns.txns.borrow_mut();
    match (stored, txns.get_mut(id)) {
        (Ok(()), Some(m)) => {
            *m = next;
            m.busy = false;
            Ok(())
        }
        (Err(e), Some(m)) => {
            m.busy = false;
            Err(e)
        }
        (_, None) => Err(ResponseError::InvalidProducerIdMapping),
    }
}

/// Checks that `header`'s producer is the current one of `transactional_id` and that
/// `topic`/`index` was added to its open transaction.
pub async fn verify_partition(
    ctx: &Arc<BrokerContext>,
    transactional_id: String,
    header: storage::batch::BatchHeader,
    topic: &str,
    index: i32,
) -> Result<(), ResponseError> {
    check_id(&transactional_id)?;
    let key = (topic.to_owned(), index);
    on_coordinator(ctx, &transactional_id.clone(), move |shard, _| async move {
        let txns = shard.txns.txns.borrow();
        let m = txns
            .get(&transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if m.producer_id != header.producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if header.producer_epoch < m.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if m.state != TxnState::Ongoing || !m.partitions.contains(&key) {
            return Err(ResponseError::InvalidTxnState);
        }
        Ok(())
    })
    .await
    .and_then(|r| r)
}
