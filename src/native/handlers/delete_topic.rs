//! DELETE_TOPIC: by id (or by name when the id is all zeros), through `topics::delete_topic`
//! as DeleteTopics. Subscriptions to the topic end with UNKNOWN_TOPIC_ID.

use kafka_protocol::error::ResponseError;
use protocol::native::{DeleteTopicRequest, DeleteTopicResponse};
use uuid::Uuid;

use super::{topic_by_id, Ctx, NativeError};
use crate::topics::delete_topic;

pub async fn handle(
    ctx: &Ctx<'_>,
    request: DeleteTopicRequest,
) -> Result<DeleteTopicResponse, NativeError> {
    let name = if request.topic_id == [0; 16] {
        request.name
    } else {
        let (name, _) = topic_by_id(ctx.shard, &request.topic_id).ok_or_else(|| {
            NativeError::kafka(
                ResponseError::UnknownTopicId,
                format!("no topic has id {}", Uuid::from_bytes(request.topic_id)),
            )
        })?;
        name
    };
    let deleted = delete_topic(&ctx.shard.ctx, name).await?;
    Ok(DeleteTopicResponse {
        topic_id: *deleted.as_bytes(),
    })
}
