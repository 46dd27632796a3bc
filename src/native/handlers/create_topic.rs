//! CREATE_TOPIC: Kafka's checks and defaults, through `topics::create_topic` as CreateTopics.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use protocol::native::{CreateTopicRequest, CreateTopicResponse};

use super::{Ctx, NativeError};
use crate::topics::{create_topic, NewTopic};

pub async fn handle(
    ctx: &Ctx<'_>,
    request: CreateTopicRequest,
) -> Result<CreateTopicResponse, NativeError> {
    let broker = &ctx.shard.ctx;
    let defaults = &broker.config.defaults;
    let partitions = match request.partitions {
        0 => defaults.num_partitions,
        n => i32::try_from(n).map_err(|_| {
            NativeError::kafka(ResponseError::InvalidPartitions, format!("{n} partitions"))
        })?,
    };
    let replication_factor = match request.replication_factor {
        0 => defaults.default_replication_factor,
        n => i16::try_from(n).map_err(|_| {
            NativeError::kafka(
                ResponseError::InvalidReplicationFactor,
                format!("replication factor {n}"),
            )
        })?,
    };
    let mut configs = BTreeMap::new();
    for config in request.configs {
        if configs.insert(config.name.clone(), config.value).is_some() {
            return Err(NativeError::kafka(
                ResponseError::InvalidConfig,
                format!("config '{}' is given twice", config.name),
            ));
        }
    }
    let topic = NewTopic {
        name: request.name,
        partitions,
        replication_factor,
        configs,
    };
    let info = create_topic(broker, topic).await?;
    Ok(CreateTopicResponse {
        topic_id: *info.id.as_bytes(),
        partitions: info.partitions.max(0) as u32,
        replication_factor: replication_factor.max(0) as u16,
    })
}
