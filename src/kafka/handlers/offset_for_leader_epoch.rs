//! OffsetForLeaderEpoch (KIP-101, KIP-320): for each partition, where the requested leader
//! epoch ends, so a consumer (or follower) can tell whether the log it read was truncated.
//! librdkafka asks this when a partition's leader epoch changes under a consumer that holds a
//! position with an epoch, and resets the position if the answer is epoch -1 / offset -1, so the
//! current epoch must always be answered (with the log end, as Kafka's leader does).

use std::sync::Arc;

use futures::StreamExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use storage::PartitionLog;

use super::{ApiSupport, RequestContext};
use crate::cluster::metadata::TopicInfo;
use crate::partition::LEADER_EPOCH;
use crate::shard::BrokerContext;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::OffsetForLeaderEpoch,
    min: 2,
    max: 4,
};

/// Partitions worked on at once: a request naming millions of partitions must not allocate a
/// future for each up front.
const IN_FLIGHT: usize = 64;

/// A current leader epoch of -1 asks for no fencing check.
const NO_EPOCH_CHECK: i32 = -1;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let broker = &ctx.shard.ctx;
    let snapshot = broker.metadata.load_full();
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in &request.topics {
        let info = snapshot.topic(&topic.topic.0).cloned();
        let lookups = topic.partitions.iter().map(|p| {
            lookup(
                broker,
                info.clone(),
                p.partition,
                p.current_leader_epoch,
                p.leader_epoch,
            )
        });
        let partitions = futures::stream::iter(lookups)
            .buffered(IN_FLIGHT)
            .collect::<Vec<_>>()
            .await;
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic.clone())
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// One partition, answered on its owning shard (where its epoch and log live).
async fn lookup(
    broker: &Arc<BrokerContext>,
    info: Option<Arc<TopicInfo>>,
    index: i32,
    current_leader_epoch: i32,
    requested: i32,
) -> EpochEndOffset {
    // Defaults are epoch -1 and offset -1: Kafka's "undefined".
    let result = EpochEndOffset::default().with_partition(index);
    let Some(info) = info.filter(|t| (0..t.partitions).contains(&index)) else {
        return result.with_error_code(ResponseError::UnknownTopicOrPartition.code());
    };
    let topic_id = info.id;
    let owner = broker.shards.owner(&topic_id, index);
    let found = broker
        .shards
        .call(owner, move |shard| async move {
            let partition = shard
                .partition(&topic_id, index)
                .ok_or(ResponseError::NotLeaderOrFollower)?;
            check_current_epoch(current_leader_epoch, LEADER_EPOCH)?;
            Ok(end_of_epoch(&partition.log, requested, LEADER_EPOCH))
        })
        .await
        .unwrap_or(Err(ResponseError::NotLeaderOrFollower));
    match found {
        Ok(Some((epoch, end_offset))) => result
            .with_leader_epoch(epoch)
            .with_end_offset(i64::try_from(end_offset).unwrap_or(i64::MAX)),
        Ok(None) => result,
        Err(code) => result.with_error_code(code.code()),
    }
}

/// Kafka's fencing check: a client that knows a newer epoch than ours is ahead of this broker
/// (UNKNOWN_LEADER_EPOCH, retriable); one with an older epoch has stale metadata
/// (FENCED_LEADER_EPOCH).
fn check_current_epoch(requested: i32, ours: i32) -> Result<(), ResponseError> {
    if requested == NO_EPOCH_CHECK {
        return Ok(());
    }
    match requested.cmp(&ours) {
        std::cmp::Ordering::Greater => Err(ResponseError::UnknownLeaderEpoch),
        std::cmp::Ordering::Less => Err(ResponseError::FencedLeaderEpoch),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// `(epoch, end offset)` of `requested`, as Kafka's leader epoch cache answers; `None` is
/// "undefined" (-1, -1).
/// - the current epoch ends at the log end, even before a batch was written in it (Kafka's
///   leader records its epoch when elected, our log only on the first append);
/// - an epoch newer than the current one, or -1, is undefined;
/// - an older epoch: the largest epoch at or below it and where that one ends; older than
///   every epoch kept: the requested epoch ending where the first kept epoch starts.
fn end_of_epoch(log: &PartitionLog, requested: i32, current: i32) -> Option<(i32, u64)> {
    if requested < 0 || requested > current {
        return None;
    }
    if requested == current {
        return Some((current, log.log_end_offset()));
    }
    log.end_offset_for_epoch(requested).or_else(|| {
        log.leader_epochs()
            .first()
            .map(|first| (requested, first.start_offset))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_follows_kafka() {
        assert_eq!(check_current_epoch(-1, 3), Ok(()));
        assert_eq!(check_current_epoch(3, 3), Ok(()));
        assert_eq!(
            check_current_epoch(4, 3),
            Err(ResponseError::UnknownLeaderEpoch)
        );
        assert_eq!(
            check_current_epoch(2, 3),
            Err(ResponseError::FencedLeaderEpoch)
        );
        assert_eq!(
            check_current_epoch(-5, 3),
            Err(ResponseError::FencedLeaderEpoch)
        );
    }
}
