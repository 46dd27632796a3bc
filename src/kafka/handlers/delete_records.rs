//! DeleteRecords: moves each partition's log start offset forward (offset -1 means the high
//! watermark) and answers the new low watermark. Consumers then see the new earliest offset
//! (ListOffsets) and fetching below it fails with OFFSET_OUT_OF_RANGE.

use std::sync::Arc;

use futures::StreamExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};
use uuid::Uuid;

use super::{ApiSupport, RequestContext};
use crate::cluster::metadata::TopicInfo;
use crate::cluster::topic_config::EffectiveConfig;
use crate::kafka::errors::storage_error_code;
use crate::shard::{BrokerContext, Shard};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::DeleteRecords,
    min: 0,
    max: 2,
};

/// Partitions worked on at once: a request naming millions of partitions must not allocate a
/// future for each up front.
const IN_FLIGHT: usize = 64;

/// The offset that asks to delete everything below the high watermark.
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let broker = &ctx.shard.ctx;
    let snapshot = broker.metadata.load_full();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let info = snapshot.topic(&topic.name.0).cloned();
        let deletions = topic
            .partitions
            .iter()
            .map(|p| delete_partition(broker, info.clone(), p.partition_index, p.offset));
        let partitions = futures::stream::iter(deletions)
            .buffered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

/// Checks what the metadata can tell (topic, partition, internal topic, cleanup policy), then
/// deletes on the partition's owning shard.
async fn delete_partition(
    broker: &Arc<BrokerContext>,
    info: Option<Arc<TopicInfo>>,
    index: i32,
    offset: i64,
) -> DeleteRecordsPartitionResult {
    // Kafka answers -1 as the low watermark of a partition it did not touch.
    let result = DeleteRecordsPartitionResult::default()
        .with_partition_index(index)
        .with_low_watermark(-1);
    let Some(info) = info.filter(|t| (0..t.partitions).contains(&index)) else {
        return result.with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    if let Err(code) = check_deletable(broker, &info) {
        return result.with_error_code(code.code());
    }
    let topic_id = info.id;
    let owner = broker.shards.owner(&topic_id, index);
    let deleted = broker
        .shards
        .call(owner, move |shard| async move {
            delete_on_owner(&shard, topic_id, index, offset).await
        })
        .await
        .unwrap_or(Err(ResponseError::NotLeaderOrFollower));
    match deleted {
        Ok(low_watermark) => result.with_low_watermark(low_watermark),
        Err(code) => result.with_error_code(code.code()),
    }
}

/// Kafka refuses internal topics (their records are the broker's own state) and topics whose
/// `cleanup.policy` does not include `delete`.
fn check_deletable(broker: &BrokerContext, info: &TopicInfo) -> Result<(), ResponseError> {
    if info.name.starts_with("__") {
        return Err(ResponseError::InvalidTopicException);
    }
    let policy = EffectiveConfig {
        overrides: &info.configs,
        defaults: &broker.config.defaults,
    }
    .get("cleanup.policy");
    if !policy.split(',').any(|p| p.trim() == "delete") {
        return Err(ResponseError::PolicyViolation);
    }
    Ok(())
}

/// Moves the log start offset on the owner and publishes the high watermark, so fetches that
/// wait on it re-read (and find their offset gone) instead of sleeping out their wait.
async fn delete_on_owner(
    shard: &Shard,
    topic_id: Uuid,
    index: i32,
    offset: i64,
) -> Result<i64, ResponseError> {
    let partition = shard
        .partition(&topic_id, index)
        .ok_or(ResponseError::NotLeaderOrFollower)?;
    let target = resolve_offset(offset, partition.log.high_watermark())?;
    let low_watermark = partition
        .log
        .delete_records_before(target)
        .await
        .map_err(|e| storage_error_code(&e))?;
    partition.publish_high_watermark();
    Ok(i64::try_from(low_watermark).unwrap_or(i64::MAX))
}

/// The offset to delete before: -1 is the high watermark; anything else must lie in
/// `[0, high watermark]` (only committed records may be deleted).
fn resolve_offset(offset: i64, high_watermark: u64) -> Result<u64, ResponseError> {
    if offset == HIGH_WATERMARK {
        return Ok(high_watermark);
    }
    u64::try_from(offset)
        .ok()
        .filter(|o| *o <= high_watermark)
        .ok_or(ResponseError::OffsetOutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_resolve_against_the_high_watermark() {
        assert_eq!(resolve_offset(-1, 7), Ok(7));
        assert_eq!(resolve_offset(0, 7), Ok(0));
        assert_eq!(resolve_offset(7, 7), Ok(7));
        assert_eq!(resolve_offset(8, 7), Err(ResponseError::OffsetOutOfRange));
        assert_eq!(resolve_offset(-2, 7), Err(ResponseError::OffsetOutOfRange));
        assert_eq!(
            resolve_offset(i64::MIN, 7),
            Err(ResponseError::OffsetOutOfRange)
        );
    }
}
