//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest local (-4), or the first
//! offset at or after a timestamp.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use protocol::records::decode_records;

use super::{ApiSupport, RequestContext};
use crate::kafka::errors::storage_error_code;
use crate::partition::LEADER_EPOCH;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::ListOffsets,
    min: 1,
    max: 10,
};

pub(crate) const LATEST: i64 = -1;
pub(crate) const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
/// The newest offset in tiered storage (KIP-1005); there is none, so nothing is found.
const LATEST_TIERED: i64 = -5;

pub async fn handle(ctx: &RequestContext<'_>, request: ListOffsetsRequest) -> ListOffsetsResponse {
    let broker = &ctx.shard.ctx;
    let version = ctx.version;
    let snapshot = broker.metadata.load_full();
    // read_committed consumers' "latest" is the last stable offset.
    let read_committed = request.isolation_level == 1;
    let mut topics = Vec::new();
    for topic in &request.topics {
        let info = snapshot.topic(&topic.name.0).cloned();
        let lookups = topic.partitions.iter().map(|p| {
            let info = info.clone();
            let (index, timestamp) = (p.partition_index, p.timestamp);
            async move {
                let response = ListOffsetsPartitionResponse::default().with_partition_index(index);
                let Some(info) = info.filter(|t| index >= 0 && index < t.partitions) else {
                    return response.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                };
                let topic_id = info.id;
                let owner = broker.shards.owner(&topic_id, index);
                let found = broker
                    .shards
                    .call(owner, move |shard| async move {
                        let Some(partition) = shard.partition(&topic_id, index) else {
                            return Err(ResponseError::NotLeaderOrFollower);
                        };
                        let latest = if read_committed {
                            partition.last_stable_offset()
                        } else {
                            partition.log.high_watermark()
                        };
                        lookup(&partition.log, timestamp, latest as i64).await
                    })
                    .await
                    .unwrap_or(Err(ResponseError::NotLeaderOrFollower));
                match found {
                    // The leader epoch exists from v4; earlier versions must leave it unset.
                    Ok((ts, offset)) => response
                        .with_timestamp(ts)
                        .with_offset(offset)
                        .with_leader_epoch(if version >= 4 { LEADER_EPOCH } else { -1 }),
                    Err(code) => response.with_error_code(code.code()),
                }
            }
        });
        let partitions = futures::future::join_all(lookups).await;
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// `(timestamp, offset)` for a ListOffsets query; `(-1, -1)` when nothing matches. `latest`
/// is the high watermark, or the last stable offset for read_committed. The native SUBSCRIBE
/// resolves its timestamp start with it too.
pub(crate) async fn lookup(
    log: &storage::PartitionLog,
    timestamp: i64,
    latest: i64,
) -> Result<(i64, i64), ResponseError> {
    let high_watermark = latest;
    match timestamp {
        LATEST => Ok((-1, latest)),
        EARLIEST | EARLIEST_LOCAL => Ok((-1, log.log_start_offset() as i64)),
        LATEST_TIERED => Ok((-1, -1)),
        MAX_TIMESTAMP => match log.max_timestamp() {
            Some((ts, batch_offset)) => {
                let read = log
                    .read(batch_offset.max(log.log_start_offset()), 1, u64::MAX)
                    .await
                    .map_err(|e| storage_error_code(&e))?;
                let offset = read
                    .batches
                    .first()
                    .and_then(|b| exact_offset(b, |r| r == ts))
                    .unwrap_or(batch_offset as i64);
                Ok((ts, offset))
            }
            None => Ok((-1, -1)),
        },
        t if t >= 0 => match log
            .find_by_timestamp(t)
            .await
            .map_err(|e| storage_error_code(&e))?
        {
            Some(found) if (found.base_offset as i64) < high_watermark => {
                // The exact record inside the batch (compressed batches answer with their base).
                let offset =
                    exact_offset(&found.batch, |r| r >= t).unwrap_or(found.base_offset as i64);
                let ts = record_timestamp(&found.batch, offset).unwrap_or(found.max_timestamp);
                Ok((ts, offset.max(log.log_start_offset() as i64)))
            }
            _ => Ok((-1, -1)),
        },
        _ => Err(ResponseError::InvalidRequest),
    }
}

fn exact_offset(batch: &Bytes, matches: impl Fn(i64) -> bool) -> Option<i64> {
    decode_records(batch)
        .ok()?
        .into_iter()
        .find(|r| matches(r.timestamp))
        .map(|r| r.offset)
}

fn record_timestamp(batch: &Bytes, offset: i64) -> Option<i64> {
    decode_records(batch)
        .ok()?
        .into_iter()
        .find(|r| r.offset == offset)
        .map(|r| r.timestamp)
}
