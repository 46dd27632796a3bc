//! OffsetCommit: checks the member and generation (generation -1 with no member id commits
//! for a group without members, as simple consumers do), appends one record per partition to
//! the group's `__consumer_offsets` partition and answers once they are durable.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};

use super::{ApiSupport, RequestContext};
use crate::cluster::metadata::now_ms;
use crate::group::codec::{OffsetValue, RecordKey};
use crate::group::state::{Group, GroupState};
use crate::group::{self, OFFSET_METADATA_MAX};
use crate::partition::Partition;
use crate::shard::{BrokerContext, Shard};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::OffsetCommit,
    min: 2,
    max: 9,
};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let broker = &ctx.shard.ctx;
    let snapshot = broker.metadata.load_full();
    // Per partition: Ok(value to store) or the error to answer with.
    let mut plan: Plan = Vec::new();
    let now = now_ms();
    for topic in &request.topics {
        let name = topic.name.to_string();
        let known = snapshot.topic(&name).map(|t| t.partitions);
        let partitions = topic
            .partitions
            .iter()
            .map(|p| {
                let metadata = p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let known = known.is_some_and(|n| (0..n).contains(&p.partition_index));
                let value = offset_value(
                    known,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    metadata,
                    now,
                    // v2-v4 may ask for their own retention; -1 means the broker's.
                    (request.retention_time_ms > 0)
                        .then(|| now.saturating_add(request.retention_time_ms)),
                );
                (p.partition_index, value)
            })
            .collect();
        plan.push((name, partitions));
    }
    let member = (
        request.generation_id_or_member_epoch,
        request.member_id.to_string(),
        request.group_instance_id.as_ref().map(|i| i.to_string()),
    );
    let outcome = commit_offsets(broker, &request.group_id, member, plan.clone()).await;
    let topics = plan
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, value)| {
                    let code = match (&outcome, value) {
                        (_, Err(e)) => e.code(),
                        (Err(e), _) => e.code(),
                        (Ok(()), Ok(_)) => 0,
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(super::str_bytes(name).into())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Per topic name, per partition: the value to store, or the error to answer with.
pub(crate) type Plan = Vec<(String, Vec<(i32, Result<OffsetValue, ResponseError>)>)>;

/// The value to store for one committed partition, or why it is refused.
pub(crate) fn offset_value(
    partition_known: bool,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    now: i64,
    expire_timestamp: Option<i64>,
) -> Result<OffsetValue, ResponseError> {
    if !partition_known {
        Err(ResponseError::UnknownTopicOrPartition)
    } else if metadata.len() > OFFSET_METADATA_MAX {
        Err(ResponseError::OffsetMetadataTooLarge)
    } else {
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            timestamp: now,
            expire_timestamp,
        })
    }
}

/// Checks the member (generation, member id, instance id) and stores the plan's valid entries
/// on the group's coordinator: the path OffsetCommit and the native COMMIT_OFFSETS share, so
/// a group committed over one protocol resumes over the other. `Err` applies to every entry.
pub(crate) async fn commit_offsets(
    broker: &Arc<BrokerContext>,
    group_id: &str,
    member: (i32, String, Option<String>),
    plan: Plan,
) -> Result<(), ResponseError> {
    group::check_group_id(group_id)?;
    let id = group_id.to_owned();
    group::on_coordinator(broker, group_id, move |shard, partition| {
        commit(shard, partition, id, member, plan)
    })
    .await
    .and_then(|r| r)
}

async fn commit(
    shard: Rc<Shard>,
    partition: Rc<Partition>,
    id: String,
    (generation, member_id, instance): (i32, String, Option<String>),
    plan: Plan,
) -> Result<(), ResponseError> {
    check_member(&shard, &id, generation, &member_id, instance.as_deref())?;
    let mut records = Vec::new();
    let mut applied = Vec::new();
    for (topic, partitions) in plan {
        for (index, value) in partitions {
            let Ok(value) = value else { continue };
            let key = RecordKey::Offset {
                group: id.clone(),
                topic: topic.clone(),
                partition: index,
            };
            records.push((key.encode(), Some(value.encode())));
            applied.push((topic.clone(), index, value));
        }
    }
    if records.is_empty() {
        return Ok(());
    }
    let first = group::append_records(&partition, records).await?;
    let mut groups = shard.groups.groups.borrow_mut();
    let group = groups
        .entry(id.clone())
        .or_insert_with(|| Group::new(id.clone()));
    for (i, (topic, index, value)) in applied.into_iter().enumerate() {
        group.apply_offset(topic, index, Some(value), first + i as u64);
    }
    Ok(())
}

pub(super) fn check_member(
    shard: &Shard,
    id: &str,
    generation: i32,
    member_id: &str,
    instance: Option<&str>,
) -> Result<(), ResponseError> {
    let mut groups = shard.groups.groups.borrow_mut();
    // Refused before anything is written: a new group beyond the shard's limit.
    if !groups.contains_key(id) && groups.len() >= group::MAX_GROUPS_PER_SHARD {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    let group = groups.get_mut(id);
    if generation < 0 {
        // A simple consumer (manual assignment, or a KIP-848 consumer that has not joined:
        // librdkafka sends its own member id then): only for groups without members, whatever
        // the member id, as Kafka's `validateOffsetCommit` does.
        return match group {
            Some(g) if !g.members.is_empty() => Err(ResponseError::UnknownMemberId),
            Some(g) if g.consumer.as_ref().is_some_and(|c| !c.members.is_empty()) => {
                Err(ResponseError::UnknownMemberId)
            }
            _ => Ok(()),
        };
    }
    let group = group.ok_or(ResponseError::IllegalGeneration)?;
    if let Some(consumer) = &group.consumer {
        // KIP-848 groups: the generation field carries the member epoch.
        return consumer.check_member_epoch(member_id, generation);
    }
    group.check_member(member_id, instance)?;
    let current = group.generation;
    let state = group.state;
    let member = group
        .members
        .get_mut(member_id)
        .ok_or(ResponseError::UnknownMemberId)?;
    if generation != current {
        return Err(ResponseError::IllegalGeneration);
    }
    member.last_seen = Instant::now();
    match state {
        // An eager consumer commits what it is giving up before it rejoins: still accepted
        // while the group prepares the rebalance; refused only once assignments are being
        // handed out (Kafka's `ClassicGroup.validateOffsetCommit`).
        GroupState::Stable | GroupState::PreparingRebalance => Ok(()),
        GroupState::CompletingRebalance => Err(ResponseError::RebalanceInProgress),
        GroupState::Empty => Err(ResponseError::UnknownMemberId),
    }
}
