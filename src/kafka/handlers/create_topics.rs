//! CreateTopics: validated like Kafka (names, partition and replica counts, configs);
//! `validate_only` checks without creating; invalid input never creates anything.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::cluster::topic_config::{EffectiveConfig, TOPIC_CONFIGS};
use crate::topics::{create_topic, validate_new_topic, NewTopic, TopicError};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::CreateTopics,
    min: 2,
    max: 7,
};

/// Kafka's DescribeConfigs source for a default broker value and for a topic override.
const SOURCE_DEFAULT: i8 = 5;
const SOURCE_TOPIC: i8 = 1;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let broker = &ctx.shard.ctx;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for topic in &request.topics {
        *seen.entry(topic.name.0.to_string()).or_default() += 1;
    }
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let result = CreatableTopicResult::default().with_name(topic.name.clone());
        if seen.get(&name).copied().unwrap_or(0) > 1 {
            results.push(fail(
                result,
                TopicError::new(
                    ResponseError::InvalidRequest,
                    format!("topic '{name}' appears more than once"),
                ),
            ));
            continue;
        }
        let new = match to_new_topic(ctx, &name, &topic) {
            Ok(new) => new,
            Err(e) => {
                results.push(fail(result, e));
                continue;
            }
        };
        let outcome = if request.validate_only {
            validate_new_topic(broker, &new).map(|_| None)
        } else {
            create_topic(broker, new.clone()).await.map(Some)
        };
        match outcome {
            Ok(created) => {
                let configs = EffectiveConfig {
                    overrides: &new.configs,
                    defaults: &broker.config.defaults,
                };
                let described = TOPIC_CONFIGS
                    .iter()
                    .map(|def| {
                        let overridden = new.configs.contains_key(def.name);
                        CreatableTopicConfigs::default()
                            .with_name(str_bytes(def.name))
                            .with_value(Some(str_bytes(configs.get(def.name))))
                            .with_config_source(if overridden {
                                SOURCE_TOPIC
                            } else {
                                SOURCE_DEFAULT
                            })
                    })
                    .collect();
                let mut result = result
                    .with_num_partitions(new.partitions)
                    .with_replication_factor(new.replication_factor)
                    .with_configs(Some(described));
                if let Some(info) = created {
                    result = result.with_topic_id(info.id);
                }
                results.push(result);
            }
            Err(e) => results.push(fail(result, e)),
        }
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn to_new_topic(
    ctx: &RequestContext<'_>,
    name: &str,
    topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<NewTopic, TopicError> {
    let defaults = &ctx.shard.ctx.config.defaults;
    let node = ctx.shard.ctx.config.node_id;
    let mut partitions = if topic.num_partitions == -1 {
        defaults.num_partitions
    } else {
        topic.num_partitions
    };
    let mut replication_factor = if topic.replication_factor == -1 {
        defaults.default_replication_factor
    } else {
        topic.replication_factor
    };
    if !topic.assignments.is_empty() {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(TopicError::new(
                ResponseError::InvalidRequest,
                "give either replica assignments or partition and replica counts, not both",
            ));
        }
        for (i, assignment) in topic.assignments.iter().enumerate() {
            let ok = assignment.partition_index == i as i32
                && assignment.broker_ids.iter().map(|b| b.0).eq([node]);
            if !ok {
                return Err(TopicError::new(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "partitions must be numbered from 0 and assigned to broker {node} alone"
                    ),
                ));
            }
        }
        partitions = topic.assignments.len() as i32;
        replication_factor = 1;
    }
    let mut configs = BTreeMap::new();
    for config in &topic.configs {
        if let Some(value) = &config.value {
            configs.insert(config.name.to_string(), value.to_string());
        }
    }
    Ok(NewTopic {
        name: name.to_owned(),
        partitions,
        replication_factor,
        configs,
    })
}

fn fail(result: CreatableTopicResult, error: TopicError) -> CreatableTopicResult {
    result
        .with_error_code(error.code.code())
        .with_error_message(Some(str_bytes(error.message)))
}
