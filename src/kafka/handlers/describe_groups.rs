//! DescribeGroups: state, protocol and members of each group ("Dead" with no members when the
//! group does not exist). Member metadata and assignments are filled in once the group is
//! stable, as Kafka does.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::group::{self, state::GroupState};
use crate::kafka::acl_ops;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::DescribeGroups,
    min: 0,
    max: 5,
};

/// Most groups described in one request.
const MAX_GROUPS: usize = 10_000;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut groups = Vec::new();
    for group_id in request.groups.iter().take(MAX_GROUPS) {
        let base = DescribedGroup::default()
            .with_group_id(group_id.clone())
            .with_authorized_operations(acl_ops::if_requested(
                request.include_authorized_operations,
                acl_ops::GROUP,
            ));
        if let Err(e) = group::check_group_id(group_id) {
            groups.push(base.with_error_code(e.code()));
            continue;
        }
        let id = group_id.to_string();
        let described =
            group::on_coordinator(&ctx.shard.ctx, &id.clone(), move |shard, _| async move {
                let groups = shard.groups.groups.borrow();
                let Some(g) = groups.get(&id) else {
                    return Ok((
                        group::state_name(None).to_owned(),
                        String::new(),
                        String::new(),
                        Vec::new(),
                    ));
                };
                if g.consumer.is_some() {
                    // KIP-848 groups are described by ConsumerGroupDescribe, as in Kafka.
                    return Err(ResponseError::GroupIdNotFound);
                }
                let stable = g.state == GroupState::Stable;
                let protocol = g.protocol.clone().unwrap_or_default();
                let members = g
                    .members
                    .iter()
                    .map(|(mid, m)| {
                        let mut member = DescribedGroupMember::default()
                            .with_member_id(str_bytes(mid.clone()))
                            .with_group_instance_id(m.instance_id.clone().map(str_bytes))
                            .with_client_id(str_bytes(m.client_id.clone()))
                            .with_client_host(str_bytes(m.client_host.clone()));
                        if stable {
                            let metadata = m
                                .protocols
                                .iter()
                                .find(|(n, _)| *n == protocol)
                                .map(|(_, md)| md.clone())
                                .unwrap_or_default();
                            member = member
                                .with_member_metadata(metadata)
                                .with_member_assignment(m.assignment.clone());
                        }
                        member
                    })
                    .collect();
                Ok((
                    group::state_name(Some(g.state)).to_owned(),
                    g.protocol_type.clone().unwrap_or_default(),
                    if stable { protocol } else { String::new() },
                    members,
                ))
            })
            .await
            .and_then(|r| r);
        groups.push(match described {
            Ok((state, protocol_type, protocol, members)) => base
                .with_group_state(str_bytes(state))
                .with_protocol_type(str_bytes(protocol_type))
                .with_protocol_data(str_bytes(protocol))
                .with_members(members),
            Err(e) => base.with_error_code(e.code()),
        });
    }
    DescribeGroupsResponse::default().with_groups(groups)
}
