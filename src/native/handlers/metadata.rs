//! METADATA: this broker (with its native address) and the requested topics, or all of them.
//! Unlike Kafka's Metadata it never creates topics: CREATE_TOPIC does.

use protocol::native::{
    BrokerInfo, ErrorCode, MetadataRequest, MetadataResponse, PartitionMetadata, TopicMetadata,
};

use super::Ctx;
use crate::cluster::metadata::{validate_topic_name, TopicInfo};
use crate::partition::LEADER_EPOCH;

pub fn handle(ctx: &Ctx<'_>, request: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.shard.ctx;
    let node = broker.config.node_id;
    let snapshot = broker.metadata.load_full();
    let topics = if request.topics.is_empty() {
        snapshot
            .topics
            .values()
            .map(|t| describe(t, node))
            .collect()
    } else {
        request
            .topics
            .iter()
            .map(|name| match snapshot.topic(name) {
                Some(info) => describe(info, node),
                None => TopicMetadata {
                    error: if validate_topic_name(name).is_err() {
                        ErrorCode::INVALID_TOPIC_EXCEPTION
                    } else {
                        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                    },
                    name: name.clone(),
                    topic_id: [0; 16],
                    internal: false,
                    partitions: Vec::new(),
                },
            })
            .collect()
    };
    MetadataResponse {
        brokers: vec![BrokerInfo {
            node_id: node,
            host: broker.advertised.0.clone(),
            port: broker.native_addr.port(),
        }],
        topics,
    }
}

fn describe(info: &TopicInfo, node: i32) -> TopicMetadata {
    TopicMetadata {
        error: ErrorCode::NONE,
        name: info.name.clone(),
        topic_id: *info.id.as_bytes(),
        internal: info.name.starts_with("__"),
        partitions: (0..info.partitions.max(0) as u32)
            .map(|partition| PartitionMetadata {
                partition,
                error: ErrorCode::NONE,
                leader: node,
                leader_epoch: LEADER_EPOCH,
            })
            .collect(),
    }
}
