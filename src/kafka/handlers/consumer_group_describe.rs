//! ConsumerGroupDescribe (KIP-848): a consumer group's epochs, assignor and members with their
//! subscriptions, current and target assignments. Classic groups answer GROUP_ID_NOT_FOUND
//! (DescribeGroups describes them), as Kafka does.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::cluster::metadata::MetadataSnapshot;
use crate::group::{self, assignor};
use crate::kafka::acl_ops;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::ConsumerGroupDescribe,
    min: 0,
    max: 1,
};

/// Most groups described by one request.
const MAX_GROUPS: usize = 10_000;
/// KIP-1099's member type of a member using the consumer protocol.
const MEMBER_TYPE_CONSUMER: i8 = 1;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let mut groups = Vec::with_capacity(request.group_ids.len().min(MAX_GROUPS));
    for (i, id) in request.group_ids.into_iter().enumerate() {
        let base = DescribedGroup::default()
            .with_group_id(id.clone())
            .with_authorized_operations(acl_ops::if_requested(
                request.include_authorized_operations,
                acl_ops::GROUP,
            ));
        if i >= MAX_GROUPS {
            groups.push(base.with_error_code(ResponseError::InvalidRequest.code()));
            continue;
        }
        if let Err(e) = group::check_group_id(&id) {
            groups.push(base.with_error_code(e.code()));
            continue;
        }
        let name = id.to_string();
        let described =
            group::on_coordinator(&ctx.shard.ctx, &name.clone(), move |shard, _| async move {
                describe(&shard, &name, base)
            })
            .await;
        groups.push(match described {
            Ok(group) => group,
            Err(e) => DescribedGroup::default()
                .with_group_id(id)
                .with_error_code(e.code()),
        });
    }
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

fn describe(shard: &crate::shard::Shard, id: &str, base: DescribedGroup) -> DescribedGroup {
    let groups = shard.groups.groups.borrow();
    let Some(consumer) = groups.get(id).and_then(|g| g.consumer.as_ref()) else {
        let message = if groups.contains_key(id) {
            format!("group {id} is not a consumer group")
        } else {
            format!("group {id} not found")
        };
        return base
            .with_error_code(ResponseError::GroupIdNotFound.code())
            .with_error_message(Some(str_bytes(message)));
    };
    let metadata = shard.metadata();
    let members = consumer
        .members
        .iter()
        .map(|(member_id, m)| {
            Member::default()
                .with_member_id(str_bytes(member_id.clone()))
                .with_instance_id(m.instance_id.clone().map(str_bytes))
                .with_rack_id(m.rack_id.clone().map(str_bytes))
                .with_member_epoch(m.epoch)
                .with_client_id(str_bytes(m.client_id.clone()))
                .with_client_host(str_bytes(m.client_host.clone()))
                .with_subscribed_topic_names(
                    m.subscribed_names
                        .iter()
                        .map(|n| TopicName(str_bytes(n.clone())))
                        .collect(),
                )
                .with_subscribed_topic_regex(
                    m.subscribed_regex
                        .as_ref()
                        .map(|(r, _)| str_bytes(r.clone())),
                )
                .with_assignment(wire(&m.assigned, &metadata))
                .with_target_assignment(wire(
                    consumer
                        .target
                        .get(member_id)
                        .unwrap_or(&Default::default()),
                    &metadata,
                ))
                .with_member_type(MEMBER_TYPE_CONSUMER)
        })
        .collect();
    base.with_group_state(str_bytes(consumer.state_name()))
        .with_group_epoch(consumer.epoch)
        .with_assignment_epoch(consumer.assignment_epoch)
        .with_assignor_name(str_bytes(consumer.assignor.clone()))
        .with_members(members)
}

fn wire(assignment: &assignor::Assignment, metadata: &MetadataSnapshot) -> Assignment {
    Assignment::default().with_topic_partitions(
        assignment
            .iter()
            .map(|(topic, partitions)| {
                let name = metadata
                    .topic_by_id(topic)
                    .map(|t| t.name.clone())
                    .unwrap_or_default();
                TopicPartitions::default()
                    .with_topic_id(*topic)
                    .with_topic_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions.iter().copied().collect())
            })
            .collect(),
    )
}
