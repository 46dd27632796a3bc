//! Heartbeat: keeps a member's session alive; tells it to rejoin when a rebalance started.

use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};

use super::{ApiSupport, RequestContext};
use crate::group::{self, state::GroupState};
use crate::shard::Shard;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::Heartbeat,
    min: 0,
    max: 4,
};

pub async fn handle(ctx: &RequestContext<'_>, request: HeartbeatRequest) -> HeartbeatResponse {
    let outcome = match group::check_group_id(&request.group_id) {
        Err(e) => Err(e),
        Ok(()) => {
            let id = request.group_id.to_string();
            group::on_coordinator(&ctx.shard.ctx, &id.clone(), move |shard, _| async move {
                heartbeat(&shard, &id, &request)
            })
            .await
            .and_then(|r| r)
        }
    };
    HeartbeatResponse::default().with_error_code(group::code(outcome))
}

fn heartbeat(shard: &Shard, id: &str, request: &HeartbeatRequest) -> Result<(), ResponseError> {
    let mut groups = shard.groups.groups.borrow_mut();
    let group = groups.get_mut(id).ok_or(ResponseError::UnknownMemberId)?;
    group.check_member(
        request.member_id.as_str(),
        request.group_instance_id.as_deref(),
    )?;
    let generation = group.generation;
    let state = group.state;
    let member = group
        .members
        .get_mut(request.member_id.as_str())
        .ok_or(ResponseError::UnknownMemberId)?;
    if request.generation_id != generation {
        return Err(ResponseError::IllegalGeneration);
    }
    member.last_seen = Instant::now();
    match state {
        GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
        GroupState::Empty => Err(ResponseError::UnknownMemberId),
        GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
    }
}
