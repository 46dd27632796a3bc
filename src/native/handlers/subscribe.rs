//! SUBSCRIBE: resolves the start position (earliest, latest, offset, timestamp, or the group's
//! committed offset, shared with Kafka groups) on the partition's owner shard, then starts the
//! subscription's task (`native/subscription.rs`).

use std::rc::Rc;

use kafka_protocol::error::ResponseError;
use protocol::native::{ErrorCode, Fallback, StartPosition, SubscribeRequest, SubscribeResponse};
use uuid::Uuid;

use super::{partition_index, topic_by_id, Ctx, NativeError};
use crate::group;
use crate::kafka::handlers::{list_offsets, offset_fetch};
use crate::native::connection::SubscriptionHandle;
use crate::native::subscription::{self, Credit, Position};

/// The start, once the group's committed offset (if asked for) is known.
#[derive(Debug, Clone, Copy)]
enum Want {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
    /// The group has no committed offset: the fallback decides.
    Fallback,
}

pub async fn handle(
    ctx: &Ctx<'_>,
    request: SubscribeRequest,
) -> Result<SubscribeResponse, NativeError> {
    let broker = &ctx.shard.ctx;
    if request.credit_bytes == 0 {
        return Err(NativeError::new(
            ErrorCode::INVALID_REQUEST,
            "credit_bytes must be at least 1",
        ));
    }
    let (name, partitions) = topic_by_id(ctx.shard, &request.topic_id).ok_or_else(|| {
        NativeError::kafka(
            ResponseError::UnknownTopicId,
            format!("no topic has id {}", Uuid::from_bytes(request.topic_id)),
        )
    })?;
    let index = partition_index(request.partition, partitions).ok_or_else(|| {
        NativeError::kafka(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' has no partition {}", request.partition),
        )
    })?;
    let want = match request.start {
        StartPosition::Earliest => Want::Earliest,
        StartPosition::Latest => Want::Latest,
        StartPosition::Offset(offset) => Want::Offset(offset),
        StartPosition::Timestamp(ts) if ts < 0 => {
            return Err(NativeError::new(
                ErrorCode::INVALID_REQUEST,
                format!("start timestamp {ts} is negative"),
            ))
        }
        StartPosition::Timestamp(ts) => Want::Timestamp(ts),
        StartPosition::Committed { group_id } => {
            group::check_group_id(&group_id)
                .map_err(|e| NativeError::kafka(e, format!("invalid group id '{group_id}'")))?;
            let wanted = Some(vec![(name.clone(), vec![index])]);
            let found = offset_fetch::fetch_offsets(broker, &group_id, wanted, None, false)
                .await
                .map_err(|e| NativeError::kafka(e, format!("group '{group_id}'")))?;
            let committed = found
                .first()
                .and_then(|(_, partitions)| partitions.first())
                .and_then(|(_, value, _)| value.as_ref())
                .map(|v| v.offset)
                .filter(|offset| *offset >= 0);
            committed.map(Want::Offset).unwrap_or(Want::Fallback)
        }
    };
    let topic_id = Uuid::from_bytes(request.topic_id);
    let (start_offset, log_start_offset, high_watermark) =
        resolve(ctx, topic_id, index, want, request.fallback).await?;

    let credit = Rc::new(Credit::new(request.credit_bytes));
    let position = Position {
        topic: name.clone(),
        topic_id,
        partition: index,
        next_offset: start_offset,
        fallback: request.fallback,
    };
    let (shard, conn) = (ctx.shard.clone(), ctx.conn.clone());
    // The task is spawned on this thread and cannot run before this task yields, which is
    // after the answer is queued: the SUBSCRIBE answer always precedes the first data frame.
    let subscription_id = ctx
        .conn
        .add_subscription(|id| {
            let task = tokio::task::spawn_local(subscription::run(
                shard,
                conn,
                id,
                credit.clone(),
                position,
            ));
            SubscriptionHandle {
                credit: credit.clone(),
                task: task.abort_handle(),
            }
        })
        .ok_or_else(|| {
            NativeError::new(
                ErrorCode::TOO_MANY_SUBSCRIPTIONS,
                format!(
                    "the connection holds {} subscriptions (native-max-subscriptions)",
                    ctx.conn.subscriptions_max
                ),
            )
        })?;
    tracing::debug!(peer = %ctx.conn.peer, subscription = subscription_id, topic = %name, partition = index, start_offset, "subscribed");
    Ok(SubscribeResponse {
        subscription_id,
        start_offset: start_offset as i64,
        log_start_offset: log_start_offset as i64,
        high_watermark: high_watermark as i64,
    })
}

/// `(start offset, log start offset, high watermark)`, read on the owner shard.
async fn resolve(
    ctx: &Ctx<'_>,
    topic_id: Uuid,
    index: i32,
    want: Want,
    fallback: Fallback,
) -> Result<(u64, u64, u64), NativeError> {
    let shards = &ctx.shard.ctx.shards;
    let owner = shards.owner(&topic_id, index);
    let not_open = || {
        NativeError::kafka(
            ResponseError::NotLeaderOrFollower,
            "the partition is not open on this broker",
        )
    };
    shards
        .call(owner, move |shard| async move {
            let partition = shard.partition(&topic_id, index).ok_or_else(not_open)?;
            let log = &partition.log;
            let log_start = log.log_start_offset();
            let high_watermark = log.high_watermark();
            let fall_back = |why: String| match fallback {
                Fallback::Earliest => Ok(log_start),
                Fallback::Latest => Ok(high_watermark),
                Fallback::Error => Err(NativeError::new(ErrorCode::OFFSET_OUT_OF_RANGE, why)),
            };
            let start = match want {
                Want::Earliest => log_start,
                Want::Latest => high_watermark,
                Want::Offset(offset)
                    if offset >= log_start as i64 && offset <= high_watermark as i64 =>
                {
                    offset as u64
                }
                Want::Offset(offset) => fall_back(format!(
                    "offset {offset} is outside [{log_start}, {high_watermark}]"
                ))?,
                Want::Fallback => fall_back("the group has no committed offset".into())?,
                Want::Timestamp(ts) => {
                    let (_, offset) = list_offsets::lookup(log, ts, high_watermark as i64)
                        .await
                        .map_err(|e| NativeError::kafka(e, format!("timestamp lookup {ts}")))?;
                    if offset < 0 {
                        high_watermark
                    } else {
                        offset as u64
                    }
                }
            };
            Ok((start, log_start, high_watermark))
        })
        .await
        .unwrap_or_else(|_| Err(not_open()))
}
