//! FETCH_OFFSETS: a group's committed offsets through the path OffsetFetch takes
//! (`offset_fetch::fetch_offsets`), with topics by id.

use kafka_protocol::error::ResponseError;
use protocol::native::{ErrorCode, FetchOffsetsRequest, FetchOffsetsResponse, FetchedOffset};

use super::{partition_index, topic_by_id, Ctx, NativeError};
use crate::group;
use crate::group::codec::OffsetValue;
use crate::kafka::handlers::offset_fetch::fetch_offsets;

pub async fn handle(
    ctx: &Ctx<'_>,
    request: FetchOffsetsRequest,
) -> Result<FetchOffsetsResponse, NativeError> {
    let group_id = &request.group_id;
    group::check_group_id(group_id)
        .map_err(|e| NativeError::kafka(e, format!("invalid group id '{group_id}'")))?;
    let broker = &ctx.shard.ctx;
    let failed = |e: ResponseError| NativeError::kafka(e, format!("group '{group_id}'"));
    if request.partitions.is_empty() {
        let found = fetch_offsets(broker, group_id, None, None, false)
            .await
            .map_err(failed)?;
        let snapshot = broker.metadata.load();
        let offsets = found
            .into_iter()
            .filter_map(|(name, partitions)| {
                // Offsets of deleted topics have no id to report.
                let id = *snapshot.topic(&name)?.id.as_bytes();
                Some(partitions.into_iter().map(move |(index, value, code)| {
                    fetched(id, index as u32, ErrorCode::from_kafka(code), value)
                }))
            })
            .flatten()
            .collect();
        return Ok(FetchOffsetsResponse { offsets });
    }
    // Per request entry: the (name, index) to look up, or its error.
    let resolved: Vec<Result<(String, i32), ResponseError>> = request
        .partitions
        .iter()
        .map(|p| {
            let (name, partitions) =
                topic_by_id(ctx.shard, &p.topic_id).ok_or(ResponseError::UnknownTopicId)?;
            let index = partition_index(p.partition, partitions)
                .ok_or(ResponseError::UnknownTopicOrPartition)?;
            Ok((name, index))
        })
        .collect();
    let wanted = resolved
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .map(|(name, index)| (name.clone(), vec![*index]))
        .collect();
    let mut found = fetch_offsets(broker, group_id, Some(wanted), None, false)
        .await
        .map_err(failed)?
        .into_iter();
    let offsets = request
        .partitions
        .iter()
        .zip(resolved)
        .map(|(p, r)| match r {
            Err(e) => fetched(
                p.topic_id,
                p.partition,
                ErrorCode::from_kafka(e.code()),
                None,
            ),
            Ok(_) => {
                let (_, value, code) = found
                    .next()
                    .and_then(|(_, partitions)| partitions.into_iter().next())
                    .unwrap_or((0, None, ResponseError::UnknownServerError.code()));
                fetched(p.topic_id, p.partition, ErrorCode::from_kafka(code), value)
            }
        })
        .collect();
    Ok(FetchOffsetsResponse { offsets })
}

fn fetched(
    topic_id: [u8; 16],
    partition: u32,
    error: ErrorCode,
    value: Option<OffsetValue>,
) -> FetchedOffset {
    match value {
        Some(v) => FetchedOffset {
            topic_id,
            partition,
            error,
            offset: v.offset,
            leader_epoch: v.leader_epoch,
            metadata: Some(v.metadata),
        },
        None => FetchedOffset {
            topic_id,
            partition,
            error,
            offset: -1,
            leader_epoch: -1,
            metadata: None,
        },
    }
}
