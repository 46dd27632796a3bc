//! ConsumerGroupHeartbeat (KIP-848): a member of a consumer group joins, heartbeats, reports
//! the partitions it owns and gets its assignment, computed by the broker
//! ([`crate::group::consumer`]). A group keeps its type while it has members: a classic group
//! with members answers GROUP_ID_NOT_FOUND here, as Kafka does; an empty one becomes a
//! consumer group, keeping its committed offsets.

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::group::codec::{encode_consumer_group, RecordKey};
use crate::group::consumer::{self, ConsumerGroup, Heartbeat, Settings};
use crate::group::state::{Group, MAX_ID_LEN};
use crate::group::{self};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::ConsumerGroupHeartbeat,
    min: 0,
    max: 1,
};

/// Most owned partitions one heartbeat may list.
const MAX_OWNED_PARTITIONS: usize = 100_000;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ConsumerGroupHeartbeatRequest,
    client_id: String,
) -> ConsumerGroupHeartbeatResponse {
    let groups_config = &ctx.shard.ctx.config.groups;
    let interval = groups_config
        .consumer_heartbeat_interval_ms
        .min(i32::MAX as i64) as i32;
    let settings = Settings {
        session_timeout: Duration::from_millis(
            groups_config.consumer_session_timeout_ms.max(0) as u64
        ),
        assignors: groups_config.consumer_assignors.clone(),
    };
    let (group_id, heartbeat) = match decode(ctx, request, client_id) {
        Ok(decoded) => decoded,
        Err(e) => return error(e),
    };
    let outcome = group::on_coordinator(
        &ctx.shard.ctx,
        &group_id.clone(),
        move |shard, partition| {
            async move {
                let (answer, persist) = {
                    let mut groups = shard.groups.groups.borrow_mut();
                    if !groups.contains_key(&group_id)
                        && groups.len() >= group::MAX_GROUPS_PER_SHARD
                    {
                        return Err(ResponseError::CoordinatorNotAvailable);
                    }
                    let group = groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(group_id.clone()));
                    if group.consumer.is_none() {
                        if !group.members.is_empty() || !group.pending.is_empty() {
                            return Err(ResponseError::GroupIdNotFound);
                        }
                        if heartbeat.member_epoch != 0 {
                            // Not a member of a group that does not exist (say, after a restart
                            // lost it): rejoining fixes it.
                            return Err(ResponseError::UnknownMemberId);
                        }
                        group.consumer = Some(ConsumerGroup::default());
                    }
                    let Some(consumer) = group.consumer.as_mut() else {
                        return Err(ResponseError::UnknownServerError);
                    };
                    let answer =
                        consumer.heartbeat(heartbeat, &shard.metadata(), &settings, Instant::now());
                    let persist =
                        (consumer.epoch != consumer.persisted_epoch).then_some(consumer.epoch);
                    if consumer.members.is_empty()
                        && consumer.persisted_epoch == 0
                        && persist.is_none()
                    {
                        // A join that failed: the group never came to be.
                        group.consumer = None;
                        if group.is_forgettable() {
                            groups.remove(&group_id);
                        }
                    }
                    (answer, persist)
                };
                group::ensure_timer(&shard, &group_id);
                if let Some(epoch) = persist {
                    let key = RecordKey::ConsumerGroup {
                        group: group_id.clone(),
                    }
                    .encode();
                    group::append_records(
                        &partition,
                        vec![(key, Some(encode_consumer_group(epoch)))],
                    )
                    .await?;
                    if let Some(c) = shard
                        .groups
                        .groups
                        .borrow_mut()
                        .get_mut(&group_id)
                        .and_then(|g| g.consumer.as_mut())
                    {
                        c.persisted_epoch = c.persisted_epoch.max(epoch);
                    }
                }
                answer
            }
        },
    )
    .await
    .and_then(|r| r);
    match outcome {
        Ok(answer) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(str_bytes(answer.member_id)))
            .with_member_epoch(answer.member_epoch)
            .with_heartbeat_interval_ms(interval)
            .with_assignment(answer.assignment.map(|a| {
                Assignment::default().with_topic_partitions(
                    a.into_iter()
                        .map(|(topic, partitions)| {
                            TopicPartitions::default()
                                .with_topic_id(topic)
                                .with_partitions(partitions.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(e) => error(e),
    }
}

fn error(e: ResponseError) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(e.code())
        .with_error_message(Some(str_bytes(e.to_string())))
        .with_member_epoch(-1)
}

/// Checks the request's sizes and shapes and turns it into a [`Heartbeat`].
fn decode(
    ctx: &RequestContext<'_>,
    request: ConsumerGroupHeartbeatRequest,
    client_id: String,
) -> Result<(String, Heartbeat), ResponseError> {
    let invalid = ResponseError::InvalidRequest;
    group::check_group_id(&request.group_id)?;
    let too_long = |s: &Option<kafka_protocol::protocol::StrBytes>| {
        s.as_ref().is_some_and(|s| s.len() > MAX_ID_LEN)
    };
    if request.member_id.len() > MAX_ID_LEN
        || too_long(&request.instance_id)
        || too_long(&request.rack_id)
        || too_long(&request.server_assignor)
        || client_id.len() > MAX_ID_LEN
    {
        return Err(invalid);
    }
    let member_id = if request.member_id.is_empty() {
        // v0 lets the broker pick the id of a joining member; v1 (KIP-1082) has the client
        // pick it.
        if ctx.version == 0 && request.member_epoch == 0 {
            uuid::Uuid::new_v4().to_string()
        } else {
            return Err(invalid);
        }
    } else {
        request.member_id.to_string()
    };
    let names = match request.subscribed_topic_names {
        Some(names) if names.len() > consumer::MAX_SUBSCRIBED_TOPICS => return Err(invalid),
        Some(names) => Some(names.iter().map(|n| n.to_string()).collect()),
        None => None,
    };
    let owned = match request.topic_partitions {
        Some(topics) => {
            let total: usize = topics.iter().map(|t| t.partitions.len()).sum();
            if total > MAX_OWNED_PARTITIONS {
                return Err(invalid);
            }
            let mut owned = crate::group::assignor::Assignment::new();
            for t in topics {
                owned
                    .entry(t.topic_id)
                    .or_default()
                    .extend(t.partitions.iter().copied());
            }
            Some(owned)
        }
        None => None,
    };
    let host = format!("/{}", ctx.peer.ip());
    Ok((
        request.group_id.to_string(),
        Heartbeat {
            member_id,
            member_epoch: request.member_epoch,
            instance_id: request
                .instance_id
                .map(|i| i.to_string())
                .filter(|i| !i.is_empty()),
            rack_id: request.rack_id.map(|r| r.to_string()),
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            subscribed_names: names,
            subscribed_regex: request.subscribed_topic_regex.map(|r| r.to_string()),
            server_assignor: request
                .server_assignor
                .map(|a| a.to_string())
                .filter(|a| !a.is_empty()),
            owned,
            client_id,
            client_host: host,
        },
    ))
}
