//! LeaveGroup: members leave (v3+ in batches) and the rest rebalance.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};

use super::{ApiSupport, RequestContext};
use crate::group::state::{Group, MAX_MEMBERS};
use crate::group::{self};

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
    let leaving: Vec<(String, Option<String>)> = members
        .iter()
        .map(|(m, i)| (m.clone(), i.as_ref().map(|i| i.to_string())))
        .collect();
    let outcome = group::on_coordinator(&ctx.shard.ctx, &id.clone(), move |shard, _| async move {
        let mut groups = shard.groups.groups.borrow_mut();
        let Some(group) = groups.get_mut(&id) else {
            return vec![ResponseError::UnknownMemberId.code(); leaving.len()];
        };
        leaving
            .iter()
            .map(|(member, instance)| group::code(leave(group, member, instance.as_deref())))
            .collect::<Vec<i16>>()
    })
    .await;
    let codes = match outcome {
        Ok(codes) => codes,
        Err(e) => return LeaveGroupResponse::default().with_error_code(e.code()),
    };
    if !batched {
        let code = codes.first().copied().unwrap_or(0);
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let responses = members
        .into_iter()
        .zip(codes)
        .map(|((member_id, instance), code)| {
            MemberResponse::default()
                .with_member_id(group_str(member_id))
                .with_group_instance_id(instance)
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}

/// One member leaves: a static member by its instance id (its member id, when given, must be
/// the one holding it), a dynamic one by its member id.
fn leave(group: &mut Group, member_id: &str, instance: Option<&str>) -> Result<(), ResponseError> {
    let member_id = match instance.filter(|i| !i.is_empty()) {
        Some(instance) => match group.static_members.get(instance) {
            None => return Err(ResponseError::UnknownMemberId),
            Some(holder) if !member_id.is_empty() && holder != member_id => {
                return Err(ResponseError::FencedInstanceId)
            }
            Some(holder) => holder.clone(),
        },
        None => member_id.to_owned(),
    };
    if group.remove_member(&member_id) {
        tracing::debug!(group = %group.id, member = %member_id, "member left");
        Ok(())
    } else {
        Err(ResponseError::UnknownMemberId)
    }
}

fn group_str(s: String) -> kafka_protocol::protocol::StrBytes {
    super::str_bytes(s)
}
