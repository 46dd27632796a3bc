//! Metadata: this broker, and each requested topic with its partitions (the leader of every
//! partition is this broker). Creates unknown topics when the client allows it and
//! `auto.create.topics.enable` is on, with Kafka's defaults.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::cluster::metadata::{validate_topic_name, TopicInfo};
use crate::kafka::acl_ops;
use crate::partition::LEADER_EPOCH;
use crate::topics::{create_topic, NewTopic, TopicError};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::Metadata,
    min: 0,
    max: 13,
};

pub async fn handle(ctx: &RequestContext<'_>, request: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.shard.ctx;
    let node = BrokerId(broker.config.node_id);
    // v0 treats an empty list as "all topics"; later versions use null for that.
    let wanted: Option<Vec<_>> = match request.topics {
        Some(list) if ctx.version == 0 && list.is_empty() => None,
        other => other,
    };
    let auto_create = (ctx.version < 4 || request.allow_auto_topic_creation)
        && broker.config.defaults.auto_create_topics_enable;
    let topic_ops =
        acl_ops::if_requested(request.include_topic_authorized_operations, acl_ops::TOPIC);
    let mut topics = Vec::new();
    match wanted {
        None => {
            let snapshot = broker.metadata.load_full();
            for info in snapshot.topics.values() {
                topics.push(describe(info, node).with_topic_authorized_operations(topic_ops));
            }
        }
        Some(list) => {
            for requested in list {
                let by_name = requested.name.as_ref().map(|n| n.0.to_string());
                let snapshot = broker.metadata.load_full();
                let found = match &by_name {
                    Some(name) => snapshot.topic(name).cloned(),
                    None => snapshot.topic_by_id(&requested.topic_id).cloned(),
                };
                let entry = match (found, by_name) {
                    (Some(info), _) => {
                        describe(&info, node).with_topic_authorized_operations(topic_ops)
                    }
                    (None, Some(name)) if auto_create => {
                        match auto_create_topic(ctx, &name).await {
                            Ok(info) => {
                                describe(&info, node).with_topic_authorized_operations(topic_ops)
                            }
                            Err(e) => error_topic(Some(name), e.code),
                        }
                    }
                    (None, Some(name)) => {
                        let code = if validate_topic_name(&name).is_err() {
                            ResponseError::InvalidTopicException
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        error_topic(Some(name), code)
                    }
                    (None, None) => error_topic(None, ResponseError::UnknownTopicId)
                        .with_topic_id(requested.topic_id),
                };
                topics.push(entry);
            }
        }
    }
    let (host, port) = &broker.advertised;
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(node)
            .with_host(str_bytes(host.clone()))
            .with_port(*port)])
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(node)
        .with_cluster_authorized_operations(acl_ops::if_requested(
            request.include_cluster_authorized_operations,
            acl_ops::CLUSTER,
        ))
        .with_topics(topics)
}

async fn auto_create_topic(
    ctx: &RequestContext<'_>,
    name: &str,
) -> Result<Arc<TopicInfo>, TopicError> {
    let defaults = &ctx.shard.ctx.config.defaults;
    let topic = NewTopic {
        name: name.to_owned(),
        partitions: defaults.num_partitions,
        replication_factor: defaults.default_replication_factor,
        configs: BTreeMap::new(),
    };
    match create_topic(&ctx.shard.ctx, topic).await {
        Ok(info) => Ok(info),
        // Another client created it concurrently: fine.
        Err(e) if e.code == ResponseError::TopicAlreadyExists => {
            ctx.shard.ctx.metadata.load().topic(name).cloned().ok_or(e)
        }
        Err(e) => Err(e),
    }
}

fn describe(info: &TopicInfo, node: BrokerId) -> MetadataResponseTopic {
    let partitions = (0..info.partitions)
        .map(|index| {
            MetadataResponsePartition::default()
                .with_partition_index(index)
                .with_leader_id(node)
                .with_leader_epoch(LEADER_EPOCH)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(str_bytes(info.name.clone()))))
        .with_topic_id(info.id)
        .with_is_internal(info.name.starts_with("__"))
        .with_partitions(partitions)
}

fn error_topic(name: Option<String>, code: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(|n| TopicName(str_bytes(n))))
        .with_error_code(code.code())
}
