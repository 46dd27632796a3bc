//! OffsetDelete: deletes a group's committed offsets for some partitions. A group with members
//! keeps the offsets of topics its members subscribe to (GROUP_SUBSCRIBED_TO_TOPIC); a group
//! with members that does not run the consumer protocol answers NON_EMPTY_GROUP.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::group;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::OffsetDelete,
    min: 0,
    max: 0,
};

/// Most partitions named by one request.
const MAX_PARTITIONS: usize = 100_000;

/// Per partition of the request: its topic, index and answer.
type Outcomes = Vec<(String, i32, i16)>;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    if let Err(e) = group::check_group_id(&request.group_id) {
        return OffsetDeleteResponse::default().with_error_code(e.code());
    }
    let asked: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.to_string(), p.partition_index))
        })
        .take(MAX_PARTITIONS)
        .collect();
    let id = request.group_id.to_string();
    let outcome = group::on_coordinator(
        &ctx.shard.ctx,
        &id.clone(),
        move |shard, partition| async move {
            let (deletable, outcomes) = {
                let groups = shard.groups.groups.borrow();
                let group = groups.get(&id).ok_or(ResponseError::GroupIdNotFound)?;
                let subscribed = group.subscribed_topics(&shard.metadata());
                if subscribed.is_none() && !group.members.is_empty() {
                    return Err(ResponseError::NonEmptyGroup);
                }
                let mut deletable = Vec::new();
                let mut outcomes: Outcomes = Vec::with_capacity(asked.len());
                for (topic, index) in asked {
                    let code = if subscribed.as_ref().is_some_and(|s| s.contains(&topic)) {
                        ResponseError::GroupSubscribedToTopic.code()
                    } else {
                        if group.offsets.contains_key(&(topic.clone(), index)) {
                            deletable.push((topic.clone(), index));
                        }
                        0
                    };
                    outcomes.push((topic, index, code));
                }
                (deletable, outcomes)
            };
            group::delete_offsets(&shard, &partition, &id, deletable).await?;
            Ok(outcomes)
        },
    )
    .await
    .and_then(|r| r);
    let outcomes = match outcome {
        Ok(outcomes) => outcomes,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for (topic, index, code) in outcomes {
        let partition = OffsetDeleteResponsePartition::default()
            .with_partition_index(index)
            .with_error_code(code);
        match topics.last_mut().filter(|t| t.name.as_str() == topic) {
            Some(last) => last.partitions.push(partition),
            None => topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(str_bytes(topic).into())
                    .with_partitions(vec![partition]),
            ),
        }
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
