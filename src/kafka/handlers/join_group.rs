//! JoinGroup: a member joins (or rejoins) a group and waits until the rebalance completes.
//! From v4 a member without an id first gets MEMBER_ID_REQUIRED with its new id (KIP-394).
//! The chosen protocol is the first in the leader's order that every member supports; the
//! leader gets every member's metadata to compute the assignment.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};
use tokio::sync::oneshot;

use super::{ApiSupport, RequestContext};
use crate::group::state::{self, join_error, Group, GroupState, Member};
use crate::group::{self};
use crate::shard::Shard;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::JoinGroup,
    min: 0,
    max: 9,
};

/// Extra time a waiting JoinGroup allows past the rebalance timeout before giving up.
const WAIT_MARGIN: Duration = Duration::from_secs(5);

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: JoinGroupRequest,
    client_id: String,
) -> JoinGroupResponse {
    let version = ctx.version;
    let member_id = request.member_id.to_string();
    if let Err(e) = group::check_group_id(&request.group_id) {
        return join_error(e, &member_id, version);
    }
    let id = request.group_id.to_string();
    // Kafka reports a member's host as "/<address>".
    let client = (client_id, format!("/{}", ctx.peer.ip()));
    group::on_coordinator(&ctx.shard.ctx, &id.clone(), move |shard, _| async move {
        join(shard, id, request, version, client).await
    })
    .await
    .unwrap_or_else(|e| join_error(e, &member_id, version))
}

enum Next {
    Answer(JoinGroupResponse),
    Wait(oneshot::Receiver<JoinGroupResponse>, Duration),
}

async fn join(
    shard: Rc<Shard>,
    id: String,
    request: JoinGroupRequest,
    version: i16,
    client: (String, String),
) -> JoinGroupResponse {
    let member_id = request.member_id.to_string();
    let next = {
        let mut groups = shard.groups.groups.borrow_mut();
        if !groups.contains_key(&id) && groups.len() >= group::MAX_GROUPS_PER_SHARD {
            return join_error(ResponseError::CoordinatorNotAvailable, &member_id, version);
        }
        let group = groups
            .entry(id.clone())
            .or_insert_with(|| Group::new(id.clone()));
        let initial = group.state == GroupState::Empty || group.join_not_before.is_some();
        let next = join_locked(group, request, version, client);
        if initial
            && matches!(next, Ok(Next::Wait(..)))
            && group.state == GroupState::PreparingRebalance
        {
            let rebalance = group
                .members
                .values()
                .map(|m| m.rebalance_timeout)
                .max()
                .unwrap_or_default();
            let delay = Duration::from_millis(
                shard.ctx.config.groups.initial_rebalance_delay_ms.max(0) as u64,
            );
            group.delay_initial_join(Instant::now(), delay, rebalance);
        }
        next
    };
    // The timer also expires member ids handed out with MEMBER_ID_REQUIRED.
    group::ensure_timer(&shard, &id);
    let (rx, wait) = match next {
        Ok(Next::Answer(response)) => return response,
        Ok(Next::Wait(rx, wait)) => (rx, wait),
        Err(e) => return join_error(e, &member_id, version),
    };
    if let Some(group) = shard.groups.groups.borrow_mut().get_mut(&id) {
        group.try_complete_join(false);
    }
    match tokio::time::timeout(wait + WAIT_MARGIN, rx).await {
        Ok(Ok(response)) => fix_version(response, version),
        _ => join_error(ResponseError::RebalanceInProgress, &member_id, version),
    }
}

/// Older versions have no nullable protocol name.
fn fix_version(response: JoinGroupResponse, version: i16) -> JoinGroupResponse {
    if version < 7 && response.protocol_name.is_none() {
        response.with_protocol_name(Some(Default::default()))
    } else {
        response
    }
}

fn join_locked(
    group: &mut Group,
    request: JoinGroupRequest,
    version: i16,
    (client_id, client_host): (String, String),
) -> Result<Next, ResponseError> {
    let session = Duration::from_millis(request.session_timeout_ms.max(0) as u64);
    if !(state::MIN_SESSION_TIMEOUT..=state::MAX_SESSION_TIMEOUT).contains(&session) {
        return Err(ResponseError::InvalidSessionTimeout);
    }
    let rebalance = if version == 0 || request.rebalance_timeout_ms <= 0 {
        session
    } else {
        Duration::from_millis(request.rebalance_timeout_ms as u64)
    }
    .min(state::MAX_REBALANCE_TIMEOUT);
    let protocol_type = request.protocol_type.to_string();
    if protocol_type.is_empty()
        || request.protocols.is_empty()
        || request.protocols.len() > state::MAX_PROTOCOLS
    {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    let metadata_bytes: usize = request
        .protocols
        .iter()
        .map(|p| p.name.len() + p.metadata.len())
        .sum();
    if metadata_bytes > state::MAX_MEMBER_METADATA
        || client_id.len() > state::MAX_ID_LEN
        || request.member_id.len() > state::MAX_ID_LEN
    {
        return Err(ResponseError::InvalidRequest);
    }
    let protocols: Vec<(String, Bytes)> = request
        .protocols
        .iter()
        .map(|p| (p.name.to_string(), p.metadata.clone()))
        .collect();
    if let Some(consumer) = &group.consumer {
        if !consumer.members.is_empty() {
            // A KIP-848 group keeps its type while it has members.
            return Err(ResponseError::InconsistentGroupProtocol);
        }
    }
    if !group.supports(&protocol_type, &protocols) {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    let member_id = request.member_id.to_string();
    let instance_id = request
        .group_instance_id
        .as_ref()
        .map(|i| i.to_string())
        .filter(|i| !i.is_empty());
    if instance_id
        .as_ref()
        .is_some_and(|i| i.len() > state::MAX_ID_LEN)
    {
        return Err(ResponseError::InvalidRequest);
    }
    let new_member = |tx| Member {
        instance_id: instance_id.clone(),
        client_id: client_id.clone(),
        client_host: client_host.clone(),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocols: protocols.clone(),
        assignment: Bytes::new(),
        join_waiter: Some(tx),
        sync_waiter: None,
        last_seen: Instant::now(),
    };
    if member_id.is_empty() {
        if let Some(instance) = &instance_id {
            if let Some(old_id) = group.static_members.get(instance).cloned() {
                let (tx, rx) = oneshot::channel();
                return Ok(rejoin_static(group, &old_id, new_member(tx), rx, version));
            }
        }
        if group.members.len() + group.pending.len() >= state::MAX_MEMBERS {
            return Err(ResponseError::GroupMaxSizeReached);
        }
        let prefix = instance_id.as_deref().unwrap_or(&client_id);
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        // Static members are known by their instance id, so KIP-394's extra round trip (which
        // protects against members that lose their id) does not apply to them.
        if version >= 4 && instance_id.is_none() {
            group
                .pending
                .insert(new_id.clone(), Instant::now() + session);
            return Ok(Next::Answer(join_error(
                ResponseError::MemberIdRequired,
                &new_id,
                version,
            )));
        }
        let (tx, rx) = oneshot::channel();
        add_member(group, new_id.clone(), new_member(tx), &protocol_type);
        return Ok(Next::Wait(rx, rebalance));
    }
    if group.pending.remove(&member_id).is_some() {
        let (tx, rx) = oneshot::channel();
        add_member(group, member_id.clone(), new_member(tx), &protocol_type);
        return Ok(Next::Wait(rx, rebalance));
    }
    group.check_member(&member_id, instance_id.as_deref())?;
    let is_leader = group.is_leader(&member_id);
    let state = group.state;
    let Some(member) = group.members.get_mut(&member_id) else {
        return Err(ResponseError::UnknownMemberId);
    };
    let unchanged = member.protocols == protocols;
    member.session_timeout = session;
    member.rebalance_timeout = rebalance;
    member.last_seen = Instant::now();
    match state {
        GroupState::CompletingRebalance if unchanged => {
            return Ok(Next::Answer(group.current_join_response(&member_id)));
        }
        GroupState::Stable if unchanged && !is_leader => {
            return Ok(Next::Answer(group.current_join_response(&member_id)));
        }
        _ => {}
    }
    let (tx, rx) = oneshot::channel();
    if let Some(old) = member.join_waiter.replace(tx) {
        let _ = old.send(join_error(
            ResponseError::UnknownMemberId,
            &member_id,
            version,
        ));
    }
    member.protocols = protocols;
    if group.state != GroupState::PreparingRebalance {
        group.prepare_rebalance();
    }
    Ok(Next::Wait(rx, rebalance))
}

fn add_member(group: &mut Group, id: String, member: Member, protocol_type: &str) {
    tracing::debug!(group = %group.id, member = %id, "member joins");
    if group.members.is_empty() {
        group.protocol_type = Some(protocol_type.to_owned());
        // An empty KIP-848 group becomes a classic one (its offsets stay).
        group.consumer = None;
    }
    if let Some(instance) = &member.instance_id {
        group.static_members.insert(instance.clone(), id.clone());
    }
    group.members.insert(id, member);
    if group.state != GroupState::PreparingRebalance {
        group.prepare_rebalance();
    }
}

/// A static member rejoins with no member id (it restarted): it takes over its instance id
/// under a new member id, keeping its assignment, and the old id is fenced (Kafka's
/// `updateStaticMemberThenRebalanceOrCompleteJoin`). A stable group does not rebalance unless
/// the member's subscription changed; the leader is told to skip the assignment (v9).
fn rejoin_static(
    group: &mut Group,
    old_id: &str,
    mut member: Member,
    rx: oneshot::Receiver<JoinGroupResponse>,
    version: i16,
) -> Next {
    let instance = member.instance_id.clone().unwrap_or_default();
    let new_id = format!("{instance}-{}", uuid::Uuid::new_v4());
    let rebalance = member.rebalance_timeout;
    let Some(old) = group.members.shift_remove(old_id) else {
        // The map and the members disagree (cannot happen): join as a new member.
        group.static_members.remove(&instance);
        let protocol_type = group.protocol_type.clone().unwrap_or_default();
        add_member(group, new_id, member, &protocol_type);
        return Next::Wait(rx, rebalance);
    };
    if let Some(w) = old.join_waiter {
        let _ = w.send(join_error(ResponseError::FencedInstanceId, old_id, version));
    }
    if let Some(w) = old.sync_waiter {
        let _ = w.send(state::sync_error(ResponseError::FencedInstanceId));
    }
    tracing::info!(group = %group.id, %instance, old = %old_id, new = %new_id, "static member rejoined");
    let unchanged = old.protocols == member.protocols;
    member.assignment = old.assignment;
    if group.leader.as_deref() == Some(old_id) {
        group.leader = Some(new_id.clone());
    }
    group.static_members.insert(instance, new_id.clone());
    let waiter = member.join_waiter.take();
    group.members.insert(new_id.clone(), member);
    match group.state {
        GroupState::Stable if unchanged => {
            let skip = group.is_leader(&new_id);
            let response = group.current_join_response(&new_id);
            let response = if skip && version >= 9 {
                response.with_skip_assignment(true)
            } else {
                response
            };
            Next::Answer(response)
        }
        _ => {
            if let Some(m) = group.members.get_mut(&new_id) {
                m.join_waiter = waiter;
            }
            if group.state != GroupState::PreparingRebalance {
                group.prepare_rebalance();
            }
            Next::Wait(rx, rebalance)
        }
    }
}
