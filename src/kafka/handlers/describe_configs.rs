//! DescribeConfigs: a topic's configs (each effective value and where it comes from) and this
//! broker's settings under Kafka's names (read-only: dynamic broker configs are not supported).
//!
//! Also home of what the three config APIs share: Kafka's resource type codes and the answer
//! for resources they cannot handle.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::cluster::metadata::TopicInfo;
use crate::cluster::topic_config::{
    config_source, config_type, default_source, default_value, EffectiveConfig, TOPIC_CONFIGS,
};
use crate::config::{BrokerConfig, ServeArgs, TopicDefaults};
use crate::topics::TopicError;

/// v0 is not served: Kafka 4 removed it, and v1 is the lowest librdkafka sends.
pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::DescribeConfigs,
    min: 1,
    max: 4,
};

/// Kafka's `ConfigResource.Type` codes.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// The documentation and config type fields exist from v3.
const DOCUMENTATION_VERSION: i16 = 3;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let detail = Detail {
        synonyms: request.include_synonyms,
        documentation: request.include_documentation && ctx.version >= DOCUMENTATION_VERSION,
    };
    let results = request
        .resources
        .iter()
        .map(|resource| describe_resource(ctx, resource, detail))
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Which optional parts of each entry the client asked for.
#[derive(Debug, Clone, Copy)]
struct Detail {
    synonyms: bool,
    documentation: bool,
}

/// One config as described: the parts of a `DescribeConfigsResourceResult` that differ.
#[derive(Debug)]
struct Described {
    name: String,
    value: String,
    source: i8,
    read_only: bool,
    config_type: i8,
    doc: &'static str,
    synonyms: Vec<(String, String, i8)>,
}

fn describe_resource(
    ctx: &RequestContext<'_>,
    resource: &DescribeConfigsResource,
    detail: Detail,
) -> DescribeConfigsResult {
    let name = resource.resource_name.to_string();
    let described = match resource.resource_type {
        RESOURCE_TOPIC => describe_topic(ctx, &name),
        RESOURCE_BROKER => check_broker_name(ctx, &name).map(|()| describe_broker(ctx)),
        other => Err(unsupported_resource(other)),
    };
    let result = DescribeConfigsResult::default()
        .with_resource_type(resource.resource_type)
        .with_resource_name(resource.resource_name.clone());
    match described {
        Ok(configs) => {
            // Kafka: a null or empty key list asks for every config; unknown keys are skipped.
            let wanted = resource
                .configuration_keys
                .as_ref()
                .filter(|k| !k.is_empty());
            let configs = configs
                .into_iter()
                .filter(|c| wanted.is_none_or(|keys| keys.iter().any(|k| **k == *c.name)))
                .map(|c| encode_entry(c, detail))
                .collect();
            result.with_configs(configs)
        }
        Err(e) => result
            .with_error_code(e.code.code())
            .with_error_message(Some(str_bytes(e.message))),
    }
}

fn encode_entry(config: Described, detail: Detail) -> DescribeConfigsResourceResult {
    let synonyms = if detail.synonyms {
        config
            .synonyms
            .into_iter()
            .map(|(name, value, source)| {
                DescribeConfigsSynonym::default()
                    .with_name(str_bytes(name))
                    .with_value(Some(str_bytes(value)))
                    .with_source(source)
            })
            .collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(config.name))
        .with_value(Some(str_bytes(config.value)))
        .with_read_only(config.read_only)
        .with_config_source(config.source)
        .with_is_sensitive(false)
        .with_synonyms(synonyms)
        .with_config_type(config.config_type)
        .with_documentation(detail.documentation.then(|| str_bytes(config.doc)))
}

/// Every topic config: the override if there is one, else the broker default.
fn describe_topic(ctx: &RequestContext<'_>, name: &str) -> Result<Vec<Described>, TopicError> {
    let snapshot = ctx.shard.metadata();
    let topic = snapshot.topic(name).ok_or_else(|| {
        TopicError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("no topic '{name}'"),
        )
    })?;
    let defaults = &ctx.shard.ctx.config.defaults;
    Ok(TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let overridden = topic.configs.contains_key(def.name);
            Described {
                name: def.name.to_owned(),
                value: effective(topic, defaults, def.name),
                source: if overridden {
                    config_source::TOPIC
                } else {
                    default_source(def.name, defaults)
                },
                read_only: false,
                config_type: def.kind.config_type(),
                doc: def.doc,
                synonyms: topic_synonyms(topic, defaults, def.name, def.broker_synonym),
            }
        })
        .collect())
}

fn effective(topic: &TopicInfo, defaults: &TopicDefaults, name: &str) -> String {
    EffectiveConfig {
        overrides: &topic.configs,
        defaults,
    }
    .get(name)
}

/// Kafka's order, most specific first: the topic's override, the broker's setting (under its
/// broker name) when it is set, the built-in default.
fn topic_synonyms(
    topic: &TopicInfo,
    defaults: &TopicDefaults,
    name: &str,
    broker_name: &str,
) -> Vec<(String, String, i8)> {
    let mut synonyms = Vec::new();
    if let Some(value) = topic.configs.get(name) {
        synonyms.push((name.to_owned(), value.clone(), config_source::TOPIC));
    }
    if default_source(name, defaults) == config_source::STATIC_BROKER {
        synonyms.push((
            broker_name.to_owned(),
            default_value(name, defaults),
            config_source::STATIC_BROKER,
        ));
    }
    synonyms.push((
        broker_name.to_owned(),
        default_value(name, &TopicDefaults::default()),
        config_source::DEFAULT,
    ));
    synonyms
}

/// The broker resource names this broker: its node id, or empty (Kafka's "the broker that
/// receives the request").
fn check_broker_name(ctx: &RequestContext<'_>, name: &str) -> Result<(), TopicError> {
    let node = ctx.shard.ctx.config.node_id;
    if name.is_empty() || name == node.to_string() {
        return Ok(());
    }
    Err(TopicError::new(
        ResponseError::InvalidRequest,
        format!("this is broker {node}; a broker resource must name it or be empty, got '{name}'"),
    ))
}

pub fn unsupported_resource(resource_type: i8) -> TopicError {
    TopicError::new(
        ResponseError::InvalidRequest,
        format!(
            "resource type {resource_type} is not supported; configs exist for topics \
             ({RESOURCE_TOPIC}) and brokers ({RESOURCE_BROKER})"
        ),
    )
}

/// A broker setting as DescribeConfigs shows it: Kafka's name, and how to read its value from
/// a configuration (so the built-in default is the same function applied to the defaults).
struct BrokerSetting {
    name: &'static str,
    config_type: i8,
    doc: &'static str,
    value: fn(&BrokerConfig) -> String,
}

/// Broker settings that are not the broker default of a topic config (those come from
/// `TOPIC_CONFIGS`). Keep in step with `BrokerConfig`.
const BROKER_SETTINGS: &[BrokerSetting] = &[
    BrokerSetting {
        name: "node.id",
        config_type: config_type::INT,
        doc: "this broker's id",
        value: |c| c.node_id.to_string(),
    },
    BrokerSetting {
        name: "log.dirs",
        config_type: config_type::LIST,
        doc: "the directory holding partition logs and metadata",
        value: |c| c.data_dir.display().to_string(),
    },
    BrokerSetting {
        name: "listeners",
        config_type: config_type::LIST,
        doc: "the address the Kafka listener binds (port 0 picks a free port)",
        value: listeners,
    },
    BrokerSetting {
        name: "advertised.listeners",
        config_type: config_type::LIST,
        doc: "the address clients are told to connect to; defaults to listeners",
        value: |c| match &c.advertised_kafka {
            Some(address) => format!("PLAINTEXT://{address}"),
            None => listeners(c),
        },
    },
    BrokerSetting {
        name: "auto.create.topics.enable",
        config_type: config_type::BOOLEAN,
        doc: "whether Metadata requests create unknown topics",
        value: |c| c.defaults.auto_create_topics_enable.to_string(),
    },
    BrokerSetting {
        name: "num.partitions",
        config_type: config_type::INT,
        doc: "partitions of a topic created without a count",
        value: |c| c.defaults.num_partitions.to_string(),
    },
    BrokerSetting {
        name: "default.replication.factor",
        config_type: config_type::INT,
        doc: "replicas of a topic created without a count",
        value: |c| c.defaults.default_replication_factor.to_string(),
    },
    BrokerSetting {
        name: "socket.request.max.bytes",
        config_type: config_type::INT,
        doc: "largest request accepted",
        value: |c| c.socket_request_max_bytes.to_string(),
    },
    BrokerSetting {
        name: "queued.max.request.bytes",
        config_type: config_type::LONG,
        doc: "request bytes held in memory at once across all connections",
        value: |c| c.queued_max_request_bytes.to_string(),
    },
    BrokerSetting {
        name: "connections.max.idle.ms",
        config_type: config_type::LONG,
        doc: "idle connections are closed after this long",
        value: |c| c.connections_max_idle_ms.to_string(),
    },
    BrokerSetting {
        name: "log.cache.bytes",
        config_type: config_type::LONG,
        doc: "bytes of recent batches each partition keeps in memory for consumers (Sluice)",
        value: |c| c.defaults.log_cache_bytes.to_string(),
    },
];

fn listeners(config: &BrokerConfig) -> String {
    format!("PLAINTEXT://{}", config.kafka_listen)
}

/// Every broker setting, read-only. The source is STATIC_BROKER_CONFIG when the value differs
/// from what the broker would use with nothing set.
fn describe_broker(ctx: &RequestContext<'_>) -> Vec<Described> {
    let config = &ctx.shard.ctx.config;
    // The built-in defaults are exactly what loading with no flags, env or file gives.
    let builtin = BrokerConfig::load(&ServeArgs::default()).ok();
    let described = |name: &str, config_type, doc, value: String, default: Option<String>| {
        let source = if default.as_ref() == Some(&value) {
            config_source::DEFAULT
        } else {
            config_source::STATIC_BROKER
        };
        let mut synonyms = vec![(name.to_owned(), value.clone(), source)];
        if let (config_source::STATIC_BROKER, Some(default)) = (source, default) {
            synonyms.push((name.to_owned(), default, config_source::DEFAULT));
        }
        Described {
            name: name.to_owned(),
            value,
            source,
            read_only: true,
            config_type,
            doc,
            synonyms,
        }
    };
    let own = BROKER_SETTINGS.iter().map(|s| {
        let default = builtin.as_ref().map(s.value);
        described(s.name, s.config_type, s.doc, (s.value)(config), default)
    });
    let topic_defaults = TOPIC_CONFIGS.iter().map(|def| {
        let default = default_value(def.name, &TopicDefaults::default());
        let value = default_value(def.name, &config.defaults);
        let config_type = def.kind.config_type();
        described(
            def.broker_synonym,
            config_type,
            def.doc,
            value,
            Some(default),
        )
    });
    own.chain(topic_defaults).collect()
}
