//! DESCRIBE_TOPIC: partitions with their log start and high watermark (read on each owner
//! shard), and the configs set on the topic.

use kafka_protocol::error::ResponseError;
use protocol::native::{
    ConfigEntry, DescribeTopicRequest, DescribeTopicResponse, ErrorCode, PartitionDescription,
};

use super::{Ctx, NativeError};
use crate::partition::LEADER_EPOCH;

pub async fn handle(
    ctx: &Ctx<'_>,
    request: DescribeTopicRequest,
) -> Result<DescribeTopicResponse, NativeError> {
    let broker = &ctx.shard.ctx;
    let info = broker
        .metadata
        .load()
        .topic(&request.name)
        .cloned()
        .ok_or_else(|| {
            NativeError::kafka(
                ResponseError::UnknownTopicOrPartition,
                format!("no topic '{}'", request.name),
            )
        })?;
    let node = broker.config.node_id;
    let offsets = (0..info.partitions).map(|index| {
        let topic_id = info.id;
        async move {
            let owner = broker.shards.owner(&topic_id, index);
            let found = broker
                .shards
                .call(owner, move |shard| async move {
                    shard.partition(&topic_id, index).map(|p| {
                        (
                            p.log.log_start_offset() as i64,
                            p.log.high_watermark() as i64,
                        )
                    })
                })
                .await
                .ok()
                .flatten();
            let (error, (log_start_offset, high_watermark)) = match found {
                Some(offsets) => (ErrorCode::NONE, offsets),
                None => (ErrorCode::NOT_LEADER_OR_FOLLOWER, (-1, -1)),
            };
            PartitionDescription {
                partition: index as u32,
                error,
                leader: node,
                leader_epoch: LEADER_EPOCH,
                log_start_offset,
                high_watermark,
            }
        }
    });
    let partitions = futures::future::join_all(offsets).await;
    Ok(DescribeTopicResponse {
        name: info.name.clone(),
        topic_id: *info.id.as_bytes(),
        internal: info.name.starts_with("__"),
        replication_factor: 1,
        partitions,
        configs: info
            .configs
            .iter()
            .map(|(name, value)| ConfigEntry {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    })
}
