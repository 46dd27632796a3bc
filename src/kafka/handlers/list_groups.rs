//! ListGroups: every group coordinated here (asked of each shard), filtered by state (v4+)
//! and type (v5+: "classic" or "consumer", KIP-848).

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ApiKey, ListGroupsRequest, ListGroupsResponse};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::group;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::ListGroups,
    min: 0,
    max: 5,
};

pub async fn handle(ctx: &RequestContext<'_>, request: ListGroupsRequest) -> ListGroupsResponse {
    let broker = &ctx.shard.ctx;
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let calls = (0..broker.shards.count()).map(|target| {
        broker
            .shards
            .call(target, |shard| async move { group::list_local(&shard) })
    });
    let mut groups = Vec::new();
    for listed in futures::future::join_all(calls).await.into_iter().flatten() {
        for g in listed {
            if !states.is_empty() && !states.iter().any(|s| *s == g.state.to_ascii_lowercase()) {
                continue;
            }
            if !types.is_empty() && !types.iter().any(|t| t == g.group_type) {
                continue;
            }
            groups.push(
                ListedGroup::default()
                    .with_group_id(str_bytes(g.id).into())
                    .with_protocol_type(str_bytes(g.protocol_type))
                    .with_group_state(str_bytes(g.state))
                    .with_group_type(str_bytes(g.group_type)),
            );
        }
    }
    groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    ListGroupsResponse::default().with_groups(groups)
}
