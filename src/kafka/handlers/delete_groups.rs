//! DeleteGroups: deletes empty groups with their committed offsets (tombstones in
//! `__consumer_offsets`); a group with members answers NON_EMPTY_GROUP.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};

use super::{ApiSupport, RequestContext};
use crate::group;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::DeleteGroups,
    min: 0,
    max: 2,
};

/// Most groups deleted by one request (the rest answer INVALID_REQUEST).
const MAX_GROUPS: usize = 10_000;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(request.groups_names.len().min(MAX_GROUPS));
    for (i, name) in request.groups_names.into_iter().enumerate() {
        let outcome = if i >= MAX_GROUPS {
            Err(kafka_protocol::error::ResponseError::InvalidRequest)
        } else {
            match group::check_group_id(&name) {
                Err(e) => Err(e),
                Ok(()) => {
                    let id = name.to_string();
                    group::on_coordinator(
                        &ctx.shard.ctx,
                        &id.clone(),
                        move |shard, partition| async move {
                            group::delete_group(&shard, &partition, &id).await
                        },
                    )
                    .await
                    .and_then(|r| r)
                }
            }
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(name)
                .with_error_code(group::code(outcome)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
