//! Produce: validate every batch, append on the partition's shard, answer per `acks`
//! (0: no answer; 1: after the append; -1: after the data is committed, which on a single node
//! means durable). The connection's next request may be read once every partition's batches
//! are appended (see `connection.rs`): the wait for durability overlaps it.

use std::rc::Rc;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, RequestHeader};
use storage::batch::{BatchHeader, ValidatedBatch, ValidatedBytes};

use crate::kafka::compacted_keys::KeyCheck;
use crate::partition::Partition;
use crate::producer::state::Verdict;
use crate::shard::BrokerContext;

use super::{str_bytes, ApiSupport, RequestContext};
use crate::cluster::metadata::now_ms;
use crate::cluster::topic_config::EffectiveConfig;
use crate::kafka::errors::storage_error_code;

/// Unflushed bytes a partition may hold before a produce request waits for the flush before
/// its connection reads on (backpressure: the log keeps unflushed bytes in memory).
const UNFLUSHED_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// v0-v2 are advertised (librdkafka turns compression off without them) but answered with
/// UNSUPPORTED_VERSION: they carry message formats older than v2.
pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::Produce,
    min: 0,
    max: 11,
};

/// The outcome for one partition.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub(crate) error: Option<ResponseError>,
    pub(crate) message: Option<String>,
    pub(crate) base_offset: i64,
    pub(crate) log_append_time: i64,
    pub(crate) log_start_offset: i64,
    /// Records refused by index with why (Produce v8+ `record_errors`).
    pub(crate) record_errors: Vec<(i32, String)>,
}

impl Outcome {
    fn error(code: ResponseError, message: impl Into<String>) -> Self {
        Outcome {
            error: Some(code),
            message: Some(message.into()),
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
            record_errors: Vec::new(),
        }
    }
}

pub async fn handle(ctx: &RequestContext<'_>, request: ProduceRequest) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut work = Vec::new();
    let mut appended = Vec::new();
    let mut shape = Vec::new();
    for topic in &request.topic_data {
        let name = topic.name.0.to_string();
        let mut indexes = Vec::with_capacity(topic.partition_data.len());
        for partition in &topic.partition_data {
            indexes.push(partition.index);
            let (done, appended_rx) = tokio::sync::oneshot::channel();
            appended.push(appended_rx);
            work.push(produce_partition(
                &ctx.shard.ctx,
                done,
                acks,
                request.transactional_id.as_ref().map(|t| t.to_string()),
                name.clone(),
                partition.index,
                partition.records.clone(),
            ));
        }
        shape.push((topic.name.clone(), indexes));
    }
    // Once every partition has appended (or failed), the next request may start appending
    // while this one waits for durability: in-order appends, shared flushes.
    let end_ordered_phase = async {
        for partition in appended {
            let _ = partition.await;
        }
        ctx.ordered.end();
    };
    let (outcomes, ()) = futures::join!(futures::future::join_all(work), end_ordered_phase);
    let mut outcomes = outcomes.into_iter();
    if acks == 0 {
        return None;
    }
    let responses = shape
        .into_iter()
        .map(|(name, indexes)| {
            let partitions = indexes
                .into_iter()
                .map(|index| {
                    let o = outcomes.next().unwrap_or_else(|| {
                        Outcome::error(ResponseError::UnknownServerError, "lost outcome")
                    });
                    PartitionProduceResponse::default()
                        .with_index(index)
                        .with_error_code(o.error.map(|e| e.code()).unwrap_or(0))
                        .with_error_message(o.message.map(str_bytes))
                        .with_base_offset(o.base_offset)
                        .with_log_append_time_ms(o.log_append_time)
                        .with_log_start_offset(o.log_start_offset)
                        .with_record_errors(
                            o.record_errors
                                .into_iter()
                                .map(|(index, message)| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(index)
                                        .with_batch_index_error_message(Some(str_bytes(message)))
                                })
                                .collect(),
                        )
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(partitions)
        })
        .collect();
    Some(ProduceResponse::default().with_responses(responses))
}

/// Validates, appends and waits per `acks` for one partition's records: the produce path both
/// front ends share (the native PRODUCE calls it too). `appended` is signalled (or dropped)
/// once the partition's batches are in the log, or refused.
pub(crate) async fn produce_partition(
    broker: &Arc<BrokerContext>,
    appended: tokio::sync::oneshot::Sender<()>,
    acks: i16,
    transactional_id: Option<String>,
    topic: String,
    index: i32,
    records: Option<Bytes>,
) -> Outcome {
    if !matches!(acks, -1..=1) {
        return Outcome::error(
            ResponseError::InvalidRequiredAcks,
            format!("acks must be -1, 0 or 1, got {acks}"),
        );
    }
    if topic == crate::group::OFFSETS_TOPIC || topic == crate::txn::TXN_TOPIC {
        // The coordinators' own state: clients may read it, never write it.
        return Outcome::error(
            ResponseError::InvalidTopicException,
            format!("cannot produce to the internal topic '{topic}'"),
        );
    }
    let snapshot = broker.metadata.load_full();
    let Some(info) = snapshot.topic(&topic).cloned() else {
        return Outcome::error(
            ResponseError::UnknownTopicOrPartition,
            format!("no topic '{topic}'"),
        );
    };
    if index < 0 || index >= info.partitions {
        return Outcome::error(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{topic}' has no partition {index}"),
        );
    }
    let config = EffectiveConfig {
        overrides: &info.configs,
        defaults: &broker.config.defaults,
    };
    if acks == -1 && config.min_insync_replicas() > 1 {
        return Outcome::error(
            ResponseError::NotEnoughReplicas,
            format!(
                "min.insync.replicas is {} but this broker is the only replica",
                config.min_insync_replicas()
            ),
        );
    }
    let log_append_time = config.log_append_time().then(now_ms);
    let batches = match split_and_validate(
        records,
        config.max_message_bytes(),
        config.log_config().segment_bytes,
    ) {
        Ok(batches) => batches,
        Err(outcome) => return outcome,
    };
    if log_append_time.is_none() {
        if let Err(outcome) = check_timestamps(&batches, config.timestamp_window(now_ms())) {
            return outcome;
        }
    }
    if config.compacted() {
        // Bounded inflation: a batch may expand to at most this before it is refused.
        let inflated_max = config.max_message_bytes().max(1 << 20).saturating_mul(16);
        if let Err(refused) = crate::kafka::compacted_keys::check(&batches, inflated_max) {
            return keyless_refused(refused, &topic, index);
        }
    }
    // An idempotent producer's batch is checked against its sequence on the partition's shard.
    // Like Kafka, such a request carries exactly one batch per partition.
    let producer = batches
        .first()
        .map(|b| *b.header())
        .filter(|h| h.producer_id >= 0);
    if producer.is_some() && batches.len() != 1 {
        return Outcome::error(
            ResponseError::InvalidRecord,
            "an idempotent producer must send one batch per partition",
        );
    }
    // Transactional batches come with the request's transactional id, and only then.
    let transactional_batch = producer.is_some_and(|h| h.is_transactional());
    if transactional_batch != transactional_id.is_some() {
        return Outcome::error(
            ResponseError::InvalidRecord,
            "transactional batches need a transactional id, and a transactional id needs them",
        );
    }
    if let (Some(id), Some(header)) = (transactional_id, producer) {
        // Only partitions added to the transaction get its markers: writing elsewhere would
        // hold back read_committed consumers forever (KIP-890's verification).
        if let Err(e) = crate::txn::verify_partition(broker, id, header, &topic, index).await {
            return Outcome::error(
                e,
                format!("partition {topic}-{index} is not in the producer's open transaction"),
            );
        }
    }
    let owner = broker.shards.owner(&info.id, index);
    let topic_id = info.id;
    let bytes_in: usize = batches.iter().map(ValidatedBytes::len).sum();
    let result = broker
        .shards
        .call(owner, move |shard| async move {
            let Some(partition) = shard.partition(&topic_id, index) else {
                return Err((
                    ResponseError::NotLeaderOrFollower,
                    "partition is not open on its shard".to_string(),
                ));
            };
            let batches = owned_batches(batches, log_append_time);
            let (base, end) = match producer {
                None => partition
                    .append(batches)
                    .map_err(|e| (storage_error_code(&e), e.to_string()))?,
                Some(header) => append_idempotent(&partition, batches, &header)?,
            };
            // acks 0 and 1 do not wait for the disk, but a producer faster than the disk
            // must not pile up unflushed data in memory (staging and the tail cache hold it
            // twice). Past the bound this request waits for the flush, and the connection
            // reads its next request only then, so TCP pushes back on the producer.
            let behind = partition.log.unflushed_bytes() > UNFLUSHED_BYTES_MAX;
            if !behind {
                let _ = appended.send(());
            } else {
                // Memory decides here, not the topic's flush policy (flush.ms may be long).
                partition
                    .log
                    .flush()
                    .await
                    .map_err(|e| (storage_error_code(&e), e.to_string()))?;
            }
            if acks == -1 || behind {
                partition
                    .commit(end)
                    .await
                    .map_err(|e| (storage_error_code(&e), e.to_string()))?;
            } else {
                Rc::clone(&partition).commit_in_background(end);
            }
            Ok((base, partition.log.log_start_offset()))
        })
        .await;
    if matches!(result, Ok(Ok(_))) {
        crate::metrics::bytes_in(&topic, bytes_in);
    }
    match result {
        Ok(Ok((base, log_start))) => Outcome {
            error: None,
            message: None,
            base_offset: base as i64,
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: log_start as i64,
            record_errors: Vec::new(),
        },
        Ok(Err((code, message))) => Outcome::error(code, message),
        Err(gone) => Outcome::error(ResponseError::NotLeaderOrFollower, gone.to_string()),
    }
}

/// Appends an idempotent producer's batch unless it is a retry of one already in the log
/// (then its original offsets are the answer). Check, append and state update run without a
/// suspension point between them, so two requests of one producer cannot interleave.
fn append_idempotent(
    partition: &Partition,
    batches: Vec<ValidatedBatch>,
    header: &BatchHeader,
) -> Result<(u64, u64), (ResponseError, String)> {
    let verdict = partition.producers.borrow().check(header).map_err(|e| {
        let message = format!(
            "producer {} epoch {} sequence {}: {e}",
            header.producer_id, header.producer_epoch, header.base_sequence
        );
        (e, message)
    })?;
    match verdict {
        Verdict::Duplicate {
            first_offset,
            last_offset,
        } => {
            tracing::debug!(
                producer = header.producer_id,
                sequence = header.base_sequence,
                first_offset,
                "duplicate batch answered with its original offsets"
            );
            Ok((first_offset.max(0) as u64, (last_offset + 1).max(0) as u64))
        }
        Verdict::Append => {
            let (base, end) = partition
                .append(batches)
                .map_err(|e| (storage_error_code(&e), e.to_string()))?;
            partition
                .producers
                .borrow_mut()
                .record(header, base as i64, now_ms());
            Ok((base, end))
        }
    }
}

/// The answer to batches a compacted topic refuses, in Kafka's words.
fn keyless_refused(refused: KeyCheck, topic: &str, index: i32) -> Outcome {
    match refused {
        KeyCheck::Keyless(indexes) => {
            let why =
                format!("Compacted topic cannot accept message without key in topic partition {topic}-{index}.");
            Outcome {
                record_errors: indexes.into_iter().map(|i| (i, why.clone())).collect(),
                ..Outcome::error(
                    ResponseError::InvalidRecord,
                    "One or more records have been rejected",
                )
            }
        }
        KeyCheck::Unreadable(why) => Outcome::error(ResponseError::CorruptMessage, why),
    }
}

/// Splits a record set into batches and checks each one (magic 2, lengths, CRC32C, size
/// limits). The batches stay slices of the request; `owned_batches` copies them for the log.
fn split_and_validate(
    records: Option<Bytes>,
    max_message_bytes: usize,
    segment_bytes: u64,
) -> Result<Vec<ValidatedBytes>, Outcome> {
    let Some(mut records) = records.filter(|r| !r.is_empty()) else {
        return Err(Outcome::error(
            ResponseError::InvalidRecord,
            "produce request carries no records",
        ));
    };
    if records.len() as u64 > segment_bytes {
        return Err(Outcome::error(
            ResponseError::RecordListTooLarge,
            format!(
                "record set of {} bytes exceeds segment.bytes {segment_bytes}",
                records.len()
            ),
        ));
    }
    let mut batches = Vec::new();
    while !records.is_empty() {
        let total = match BatchHeader::framed_len(&records) {
            Ok(total) if total <= records.len() => total,
            Ok(total) => {
                return Err(Outcome::error(
                    ResponseError::CorruptMessage,
                    format!("batch claims {total} bytes but {} remain", records.len()),
                ))
            }
            Err(e) => return Err(Outcome::error(ResponseError::CorruptMessage, e.to_string())),
        };
        if total > max_message_bytes {
            return Err(Outcome::error(
                ResponseError::MessageTooLarge,
                format!("batch of {total} bytes exceeds max.message.bytes {max_message_bytes}"),
            ));
        }
        // Validated here, once, where an error can still be answered with a code; the log
        // trusts what `owned_batches` makes of it.
        let batch = ValidatedBytes::new(records.split_to(total)).map_err(|e| {
            let code = storage_error_code(&storage::StorageError::InvalidBatch(e.clone()));
            Outcome::error(code, e.to_string())
        })?;
        if batch.header().is_control() {
            return Err(Outcome::error(
                ResponseError::InvalidRecord,
                "clients may not write control batches",
            ));
        }
        batches.push(batch);
    }
    Ok(batches)
}

/// The one copy of the produced bytes: out of the request into buffers the log can stamp with
/// offsets and keep in its tail cache, stamped with the broker's clock when the topic uses
/// LogAppendTime. Called on the partition's owner shard, which also frees these buffers, so
/// the allocator reuses their memory there (see `ValidatedBytes`).
fn owned_batches(
    batches: Vec<ValidatedBytes>,
    log_append_time: Option<i64>,
) -> Vec<ValidatedBatch> {
    batches
        .into_iter()
        .map(|batch| {
            let mut batch = batch.into_owned();
            if let Some(now) = log_append_time {
                batch.set_log_append_time(now);
            }
            batch
        })
        .collect()
}

/// With CreateTime, every batch's timestamps must lie in the topic's window
/// (`message.timestamp.before.max.ms` / `after.max.ms`). Checked on the batch header: the first
/// and the largest timestamp, without decompressing records.
fn check_timestamps(
    batches: &[ValidatedBytes],
    (earliest, latest): (i64, i64),
) -> Result<(), Outcome> {
    for batch in batches {
        let header = batch.header();
        let out_of_window = |ts: i64| ts >= 0 && (ts < earliest || ts > latest);
        if out_of_window(header.base_timestamp) || out_of_window(header.max_timestamp) {
            return Err(Outcome::error(
                ResponseError::InvalidTimestamp,
                format!(
                    "batch timestamps {}..{} fall outside [{earliest}, {latest}] (message.timestamp.before/after.max.ms)",
                    header.base_timestamp, header.max_timestamp
                ),
            ));
        }
    }
    Ok(())
}

/// Answers a Produce v0-v2 request with UNSUPPORTED_VERSION for every partition, encoding the
/// old response format by hand (the codec starts at v3).
pub fn legacy_unsupported(header: &RequestHeader, mut body: Bytes) -> Result<BytesMut, String> {
    let version = header.request_api_version;
    let malformed = || format!("malformed Produce v{version} request");
    let need = |body: &Bytes, n: usize| {
        if body.remaining() >= n {
            Ok(())
        } else {
            Err(malformed())
        }
    };
    need(&body, 6)?;
    let acks = body.get_i16();
    body.advance(4);
    need(&body, 4)?;
    let topics = body.get_i32();
    if topics < 0 || topics as usize > body.remaining() {
        return Err(malformed());
    }
    let mut out = BytesMut::new();
    out.put_i32(0);
    out.put_i32(header.correlation_id);
    out.put_i32(topics);
    for _ in 0..topics {
        need(&body, 2)?;
        let name_len = body.get_i16();
        if name_len < 0 {
            return Err(malformed());
        }
        need(&body, name_len as usize + 4)?;
        let name = body.split_to(name_len as usize);
        out.put_i16(name_len);
        out.extend_from_slice(&name);
        let partitions = body.get_i32();
        if partitions < 0 || partitions as usize > body.remaining() {
            return Err(malformed());
        }
        out.put_i32(partitions);
        for _ in 0..partitions {
            need(&body, 8)?;
            let index = body.get_i32();
            let size = body.get_i32();
            if size < 0 || size as usize > body.remaining() {
                return Err(malformed());
            }
            body.advance(size as usize);
            out.put_i32(index);
            out.put_i16(ResponseError::UnsupportedVersion.code());
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0);
    }
    let length = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&length.to_be_bytes());
    if acks == 0 {
        // No answer is expected; closing tells the client something is wrong.
        return Err(format!("Produce v{version} with acks=0 is not supported"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> Bytes {
        let mut b = protocol::records::BatchBuilder::new();
        b.push(protocol::records::Record {
            value: Some(Bytes::from_static(b"v")),
            timestamp: 5,
            ..Default::default()
        });
        b.build().freeze()
    }

    #[test]
    fn validation_maps_to_kafka_codes() {
        let one = batch();
        let mut two = BytesMut::from(&one[..]);
        two.extend_from_slice(&one);
        assert_eq!(
            split_and_validate(Some(two.freeze()), 1 << 20, 1 << 30)
                .unwrap()
                .len(),
            2
        );
        let err = split_and_validate(Some(one.clone()), 10, 1 << 30).unwrap_err();
        assert_eq!(err.error, Some(ResponseError::MessageTooLarge));
        let mut bad = BytesMut::from(&one[..]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let err = split_and_validate(Some(bad.freeze()), 1 << 20, 1 << 30).unwrap_err();
        assert_eq!(err.error, Some(ResponseError::CorruptMessage));
        let err = split_and_validate(Some(one.slice(..30)), 1 << 20, 1 << 30).unwrap_err();
        assert_eq!(err.error, Some(ResponseError::CorruptMessage));
        let err = split_and_validate(None, 1 << 20, 1 << 30).unwrap_err();
        assert_eq!(err.error, Some(ResponseError::InvalidRecord));
    }

    #[test]
    fn timestamps_outside_the_window_are_refused() {
        let batches = split_and_validate(Some(batch()), 1 << 20, 1 << 30).unwrap();
        assert!(check_timestamps(&batches, (0, 10)).is_ok());
        let err = check_timestamps(&batches, (6, 10)).unwrap_err();
        assert_eq!(err.error, Some(ResponseError::InvalidTimestamp));
        assert!(check_timestamps(&batches, (0, 4)).is_err());
    }

    #[test]
    fn log_append_time_is_applied() {
        let batches = split_and_validate(Some(batch()), 1 << 20, 1 << 30).unwrap();
        let batches = owned_batches(batches, Some(1234));
        assert_eq!(batches[0].header().max_timestamp, 1234);
        assert!(batches[0].header().attributes & storage::batch::ATTRIBUTE_LOG_APPEND_TIME != 0);
    }
}
