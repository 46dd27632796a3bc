//! OffsetFetch: committed offsets of a group (v8+: of several groups); all of a group's
//! partitions when `topics` is null. Partitions without a commit answer offset -1.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, OffsetFetchRequest, OffsetFetchResponse};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::group::{self, codec::OffsetValue};
use crate::shard::BrokerContext;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::OffsetFetch,
    min: 1,
    max: 9,
};

/// Most groups answered in one v8+ request.
const MAX_GROUPS: usize = 10_000;

pub(crate) type Wanted = Option<Vec<(String, Vec<i32>)>>;
/// Per topic: (partition, committed value, error code: UNSTABLE_OFFSET_COMMIT when a
/// transaction holds an offset for it and the client asked for stable offsets).
pub(crate) type Found = Vec<(String, Vec<(i32, Option<OffsetValue>, i16)>)>;

pub async fn handle(ctx: &RequestContext<'_>, request: OffsetFetchRequest) -> OffsetFetchResponse {
    if ctx.version >= 8 {
        let mut groups = Vec::new();
        for g in request.groups.iter().take(MAX_GROUPS) {
            let wanted: Wanted = g.topics.as_ref().map(|topics| {
                topics
                    .iter()
                    .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let member = g
                .member_id
                .as_ref()
                .filter(|m| !m.is_empty() && g.member_epoch >= 0)
                .map(|m| (m.to_string(), g.member_epoch));
            let result = fetch_offsets(
                &ctx.shard.ctx,
                &g.group_id,
                wanted,
                member,
                request.require_stable,
            )
            .await;
            let entry = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            groups.push(match result {
                Ok(found) => entry.with_topics(
                    found
                        .into_iter()
                        .map(|(name, partitions)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(str_bytes(name).into())
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(index, v, code)| {
                                            let (offset, epoch, metadata) = fields(v);
                                            OffsetFetchResponsePartitions::default()
                                                .with_error_code(code)
                                                .with_partition_index(index)
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(Some(str_bytes(metadata)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
                Err(e) => entry.with_error_code(e.code()),
            });
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted: Wanted = request.topics.as_ref().map(|topics| {
        topics
            .iter()
            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let found = fetch_offsets(
        &ctx.shard.ctx,
        &request.group_id,
        wanted,
        None,
        request.require_stable,
    )
    .await;
    match found {
        Ok(found) => OffsetFetchResponse::default().with_topics(
            found
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(str_bytes(name).into())
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(index, v, code)| {
                                    let (offset, epoch, metadata) = fields(v);
                                    OffsetFetchResponsePartition::default()
                                        .with_error_code(code)
                                        .with_partition_index(index)
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(Some(str_bytes(metadata)))
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
        Err(e) if ctx.version >= 2 => OffsetFetchResponse::default().with_error_code(e.code()),
        Err(e) => {
            // v1 has no top-level error: every requested partition carries it.
            let topics = request
                .topics
                .unwrap_or_default()
                .into_iter()
                .map(|t| {
                    OffsetFetchResponseTopic::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partition_indexes
                                .into_iter()
                                .map(|index| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(index)
                                        .with_committed_offset(-1)
                                        .with_error_code(e.code())
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetFetchResponse::default().with_topics(topics)
        }
    }
}

fn fields(value: Option<OffsetValue>) -> (i64, i32, String) {
    match value {
        Some(v) => (v.offset, v.leader_epoch, v.metadata),
        None => (-1, -1, String::new()),
    }
}

/// A group's committed offsets, read on its coordinator: the path OffsetFetch and the native
/// FETCH_OFFSETS share. `member`: the member id and epoch a KIP-848 member sends (v9+),
/// checked like a commit's.
pub(crate) async fn fetch_offsets(
    broker: &Arc<BrokerContext>,
    group_id: &str,
    wanted: Wanted,
    member: Option<(String, i32)>,
    require_stable: bool,
) -> Result<Found, ResponseError> {
    group::check_group_id(group_id)?;
    let id = group_id.to_string();
    group::on_coordinator(broker, &id.clone(), move |shard, _| async move {
        let groups = shard.groups.groups.borrow();
        let group = groups.get(&id);
        if let (Some((member_id, epoch)), Some(consumer)) =
            (member, group.and_then(|g| g.consumer.as_ref()))
        {
            consumer.check_member_epoch(&member_id, epoch)?;
        }
        let unstable = |topic: &str, index: i32| -> i16 {
            let pending =
                require_stable && group.is_some_and(|g| g.has_pending_offset(topic, index));
            if pending {
                ResponseError::UnstableOffsetCommit.code()
            } else {
                0
            }
        };
        Ok(match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(name, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|index| {
                            let code = unstable(&name, index);
                            let value = group
                                .and_then(|g| g.offsets.get(&(name.clone(), index)))
                                .map(|c| c.value.clone())
                                .filter(|_| code == 0);
                            (index, value, code)
                        })
                        .collect();
                    (name, found)
                })
                .collect(),
            None => {
                let mut by_topic: std::collections::BTreeMap<String, Vec<_>> = Default::default();
                if let Some(group) = group {
                    for ((topic, index), committed) in &group.offsets {
                        let code = unstable(topic, *index);
                        let value = Some(committed.value.clone()).filter(|_| code == 0);
                        by_topic
                            .entry(topic.clone())
                            .or_default()
                            .push((*index, value, code));
                    }
                }
                by_topic
                    .into_iter()
                    .map(|(topic, mut partitions)| {
                        partitions.sort_by_key(|(index, _, _)| *index);
                        (topic, partitions)
                    })
                    .collect()
            }
        })
    })
    .await
    .and_then(|r| r)
}
