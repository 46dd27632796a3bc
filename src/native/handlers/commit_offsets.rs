//! COMMIT_OFFSETS: the path OffsetCommit takes (`offset_commit::commit_offsets`: member check,
//! append to `__consumer_offsets`, apply), with topics by id. A group committed here resumes
//! in a Kafka consumer and the other way round.

use kafka_protocol::error::ResponseError;
use protocol::native::{CommitOffsetsRequest, CommitOffsetsResponse, ErrorCode, PartitionResult};

use super::{partition_index, topic_by_id, Ctx, NativeError};
use crate::cluster::metadata::now_ms;
use crate::group;
use crate::kafka::handlers::offset_commit::{commit_offsets, offset_value, Plan};

pub async fn handle(
    ctx: &Ctx<'_>,
    request: CommitOffsetsRequest,
) -> Result<CommitOffsetsResponse, NativeError> {
    group::check_group_id(&request.group_id)
        .map_err(|e| NativeError::kafka(e, format!("invalid group id '{}'", request.group_id)))?;
    let now = now_ms();
    // One plan entry per request entry, so answers line up with the request.
    let plan: Plan = request
        .offsets
        .iter()
        .map(|entry| match topic_by_id(ctx.shard, &entry.topic_id) {
            None => (
                String::new(),
                vec![(-1, Err(ResponseError::UnknownTopicId))],
            ),
            Some((name, partitions)) => {
                let index = partition_index(entry.partition, partitions);
                let value = offset_value(
                    index.is_some(),
                    entry.offset,
                    entry.leader_epoch,
                    entry.metadata.clone().unwrap_or_default(),
                    now,
                    None,
                );
                (name, vec![(index.unwrap_or(-1), value)])
            }
        })
        .collect();
    let member = (request.generation_id, request.member_id.clone(), None);
    let outcome = commit_offsets(&ctx.shard.ctx, &request.group_id, member, plan.clone()).await;
    let partitions = request
        .offsets
        .iter()
        .zip(plan)
        .map(|(entry, (_, values))| {
            let error = match (&outcome, values.first().map(|(_, v)| v)) {
                (_, Some(Err(e))) => ErrorCode::from_kafka(e.code()),
                (Err(e), _) => ErrorCode::from_kafka(e.code()),
                _ => ErrorCode::NONE,
            };
            PartitionResult {
                topic_id: entry.topic_id,
                partition: entry.partition,
                error,
            }
        })
        .collect();
    Ok(CommitOffsetsResponse { partitions })
}
