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
    if request.group_instance_id.is_some() {
        // Static membership is not implemented.
        return join_error(ResponseError::UnsupportedVersion, &member_id, version);
    }
    let id = request.group_id.to_string();
    group::on_coordinator(&ctx.shard.ctx, &id.clone(), move |shard, _| async move {
        join(shard, id, request, version, client_id).await
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
    client_id: String,
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
        join_locked(group, request, version, client_id)
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
    client_id: String,
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
    if !group.supports(&protocol_type, &protocols) {
        return Err(ResponseError::InconsistentGroupProtocol);
    }
    let member_id = request.member_id.to_string();
    let new_member = |tx| Member {
        client_id: client_id.clone(),
        client_host: String::new(),
        session_timeout: session,
        rebalance_timeout: rebalance,
        protocols: protocols.clone(),
        assignment: Bytes::new(),
        join_waiter: Some(tx),
        sync_waiter: None,
        last_seen: Instant::now(),
    };
    if member_id.is_empty() {
        if group.members.len() + group.pending.len() >= state::MAX_MEMBERS {
            return Err(ResponseError::GroupMaxSizeReached);
        }
        let new_id = format!("{client_id}-{}", uuid::Uuid::new_v4());
        if version >= 4 {
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
    }
    group.members.insert(id, member);
    if group.state != GroupState::PreparingRebalance {
        group.prepare_rebalance();
    }
}
