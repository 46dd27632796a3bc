//! LeaveGroup: members leave (v3+ in batches) and the rest rebalance.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};

use super::{ApiSupport, RequestContext};
use crate::group::{self, state::MAX_MEMBERS};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::LeaveGroup,
    min: 0,
    max: 5,
};

pub async fn handle(ctx: &RequestContext<'_>, request: LeaveGroupRequest) -> LeaveGroupResponse {
    if let Err(e) = group::check_group_id(&request.group_id) {
        return LeaveGroupResponse::default().with_error_code(e.code());
    }
    let batched = ctx.version >= 3;
    let members: Vec<(String, Option<kafka_protocol::protocol::StrBytes>)> = if batched {
        request
            .members
            .iter()
            .take(MAX_MEMBERS)
            .map(|m| (m.member_id.to_string(), m.group_instance_id.clone()))
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let id = request.group_id.to_string();
    let ids: Vec<String> = members.iter().map(|(m, _)| m.clone()).collect();
    let outcome = group::on_coordinator(&ctx.shard.ctx, &id.clone(), move |shard, _| async move {
        let mut groups = shard.groups.groups.borrow_mut();
        let group = groups.get_mut(&id);
        match group {
            None => ids.iter().map(|_| false).collect::<Vec<bool>>(),
            Some(group) => ids
                .iter()
                .map(|m| {
                    let removed = group.remove_member(m);
                    if removed {
                        tracing::debug!(group = %id, member = %m, "member left");
                    }
                    removed
                })
                .collect(),
        }
    })
    .await;
    let removed = match outcome {
        Ok(removed) => removed,
        Err(e) => return LeaveGroupResponse::default().with_error_code(e.code()),
    };
    if !batched {
        let code = if removed.first().copied().unwrap_or(false) {
            0
        } else {
            ResponseError::UnknownMemberId.code()
        };
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let responses = members
        .into_iter()
        .zip(removed)
        .map(|((member_id, instance), ok)| {
            MemberResponse::default()
                .with_member_id(group_str(member_id))
                .with_group_instance_id(instance)
                .with_error_code(if ok {
                    0
                } else {
                    ResponseError::UnknownMemberId.code()
                })
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}

fn group_str(s: String) -> kafka_protocol::protocol::StrBytes {
    super::str_bytes(s)
}
