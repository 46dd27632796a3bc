//! SyncGroup: the leader hands in the assignments (made durable as the group's metadata
//! record) and every member gets its own; followers wait until the leader has synced.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};
use tokio::sync::oneshot;

use super::{str_bytes, ApiSupport, RequestContext};
use crate::cluster::metadata::now_ms;
use crate::group::codec::RecordKey;
use crate::group::state::{sync_error, GroupState, MAX_MEMBERS};
use crate::group::{self};
use crate::partition::Partition;
use crate::shard::Shard;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::SyncGroup,
    min: 0,
    max: 5,
};

/// Extra time a waiting SyncGroup allows past the session timeout.
const WAIT_MARGIN: Duration = Duration::from_secs(5);

pub async fn handle(ctx: &RequestContext<'_>, request: SyncGroupRequest) -> SyncGroupResponse {
    if let Err(e) = group::check_group_id(&request.group_id) {
        return sync_error(e);
    }
    let version = ctx.version;
    let id = request.group_id.to_string();
    let response = group::on_coordinator(&ctx.shard.ctx, &id.clone(), move |shard, partition| {
        sync(shard, partition, id, request)
    })
    .await
    .unwrap_or_else(sync_error);
    if version < 5 {
        response.with_protocol_type(None).with_protocol_name(None)
    } else {
        response
    }
}

async fn sync(
    shard: Rc<Shard>,
    partition: Rc<Partition>,
    id: String,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let member_id = request.member_id.to_string();
    let (rx, wait, store) = {
        let mut groups = shard.groups.groups.borrow_mut();
        let Some(group) = groups.get_mut(&id) else {
            return sync_error(ResponseError::UnknownMemberId);
        };
        if let Err(e) = group.check_member(&member_id, request.group_instance_id.as_deref()) {
            return sync_error(e);
        }
        if request.generation_id != group.generation {
            return sync_error(ResponseError::IllegalGeneration);
        }
        let mismatch = |asked: &Option<kafka_protocol::protocol::StrBytes>,
                        have: &Option<String>| {
            asked
                .as_ref()
                .is_some_and(|a| have.as_deref() != Some(a.as_str()))
        };
        if mismatch(&request.protocol_type, &group.protocol_type)
            || mismatch(&request.protocol_name, &group.protocol)
        {
            return sync_error(ResponseError::InconsistentGroupProtocol);
        }
        let protocol_type = group.protocol_type.clone().map(str_bytes);
        let protocol_name = group.protocol.clone().map(str_bytes);
        match group.state {
            GroupState::Empty => return sync_error(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => {
                return sync_error(ResponseError::RebalanceInProgress)
            }
            GroupState::Stable => {
                let assignment = group
                    .members
                    .get(&member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                return SyncGroupResponse::default()
                    .with_protocol_type(protocol_type)
                    .with_protocol_name(protocol_name)
                    .with_assignment(assignment);
            }
            GroupState::CompletingRebalance => {}
        }
        if request.assignments.len() > MAX_MEMBERS {
            return sync_error(ResponseError::InvalidRequest);
        }
        let is_leader = group.is_leader(&member_id);
        let generation = group.generation;
        let value = group.metadata_value(now_ms());
        let Some(member) = group.members.get_mut(&member_id) else {
            return sync_error(ResponseError::UnknownMemberId);
        };
        let (tx, rx) = oneshot::channel();
        if let Some(old) = member.sync_waiter.replace(tx) {
            let _ = old.send(sync_error(ResponseError::UnknownMemberId));
        }
        member.last_seen = Instant::now();
        let wait = member.session_timeout.max(member.rebalance_timeout);
        let store = is_leader.then(|| {
            let assignments: HashMap<String, Bytes> = request
                .assignments
                .iter()
                .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                .collect();
            (generation, value, assignments)
        });
        (rx, wait, store)
    };
    if let Some((generation, value, assignments)) = store {
        let key = RecordKey::Group { group: id.clone() }.encode();
        let stored = group::append_records(&partition, vec![(key, Some(value.encode()))]).await;
        let mut groups = shard.groups.groups.borrow_mut();
        if let Some(group) = groups
            .get_mut(&id)
            .filter(|g| g.generation == generation && g.state == GroupState::CompletingRebalance)
        {
            match stored {
                Ok(offset) => {
                    group.metadata_offset = Some(offset);
                    let protocol_type = group.protocol_type.clone().map(str_bytes);
                    let protocol_name = group.protocol.clone().map(str_bytes);
                    for (mid, member) in group.members.iter_mut() {
                        member.assignment = assignments.get(mid).cloned().unwrap_or_default();
                        if let Some(waiter) = member.sync_waiter.take() {
                            let _ = waiter.send(
                                SyncGroupResponse::default()
                                    .with_protocol_type(protocol_type.clone())
                                    .with_protocol_name(protocol_name.clone())
                                    .with_assignment(member.assignment.clone()),
                            );
                        }
                    }
                    group.state = GroupState::Stable;
                    tracing::debug!(group = %id, generation, "group stable");
                }
                Err(e) => {
                    for member in group.members.values_mut() {
                        if let Some(waiter) = member.sync_waiter.take() {
                            let _ = waiter.send(sync_error(e));
                        }
                    }
                    group.prepare_rebalance();
                }
            }
        }
    }
    match tokio::time::timeout(wait + WAIT_MARGIN, rx).await {
        Ok(Ok(response)) => response,
        _ => sync_error(ResponseError::RebalanceInProgress),
    }
}
