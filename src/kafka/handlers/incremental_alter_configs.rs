//! IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT single topic configs, leaving the
//! others as they are. APPEND and SUBTRACT apply to LIST configs only (cleanup.policy). Broker
//! resources are refused: dynamic broker configs are not supported.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};

use super::alter_configs::{alter_each, broker_configs_are_static, repeated_key_error};
use super::describe_configs::{unsupported_resource, RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{str_bytes, ApiSupport, RequestContext};
use crate::cluster::topic_config::{self, default_value, list_items, Kind};
use crate::config::TopicDefaults;
use crate::topics::{alter_topic_configs, TopicError};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::IncrementalAlterConfigs,
    min: 0,
    max: 1,
};

/// One requested change, checked for shape (not yet for its value).
#[derive(Debug, Clone)]
enum Op {
    Set(String),
    Delete,
    Append(String),
    Subtract(String),
}

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let outcomes = alter_each(
        &request.resources,
        |r| (r.resource_type, r.resource_name.to_string()),
        |r| alter_resource(ctx, r, request.validate_only),
    )
    .await;
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(resource, outcome)| {
            let response = AlterConfigsResourceResponse::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            match outcome {
                Ok(()) => response,
                Err(e) => response
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            }
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

async fn alter_resource(
    ctx: &RequestContext<'_>,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), TopicError> {
    match resource.resource_type {
        RESOURCE_TOPIC => {
            let ops = parse_ops(&resource.configs)?;
            let name = resource.resource_name.to_string();
            let defaults = ctx.shard.ctx.config.defaults.clone();
            let edit =
                move |current: &BTreeMap<String, String>| Ok(apply(current, &ops, &defaults));
            alter_topic_configs(&ctx.shard.ctx, name, edit, validate_only).await
        }
        RESOURCE_BROKER => Err(broker_configs_are_static()),
        other => Err(unsupported_resource(other)),
    }
}

/// Checks each entry's shape: a known topic config, a known operation, a value where one is
/// needed, a list config for APPEND/SUBTRACT, and each key at most once (Kafka's rules).
fn parse_ops(configs: &[AlterableConfig]) -> Result<Vec<(String, Op)>, TopicError> {
    let mut seen = HashSet::new();
    let mut ops = Vec::with_capacity(configs.len());
    for config in configs {
        let name = config.name.to_string();
        if !seen.insert(name.clone()) {
            return Err(repeated_key_error(&name));
        }
        let def = topic_config::find(&name).ok_or_else(|| {
            TopicError::new(
                ResponseError::InvalidConfig,
                format!("unknown topic config '{name}'"),
            )
        })?;
        let value = config.value.as_ref().map(|v| v.to_string());
        let op = match (config.config_operation, value) {
            (1, _) => Op::Delete,
            (0 | 2 | 3, None) => {
                return Err(TopicError::new(
                    ResponseError::InvalidRequest,
                    format!("a null value is only allowed with DELETE, for config '{name}'"),
                ))
            }
            (2 | 3, Some(_)) if !matches!(def.kind, Kind::List(_)) => {
                return Err(TopicError::new(
                    ResponseError::InvalidConfig,
                    format!("APPEND and SUBTRACT apply to list configs only; '{name}' is not one"),
                ))
            }
            (0, Some(v)) => Op::Set(v),
            (2, Some(v)) => Op::Append(v),
            (3, Some(v)) => Op::Subtract(v),
            (other, _) => {
                return Err(TopicError::new(
                    ResponseError::InvalidRequest,
                    format!(
                        "unknown config operation {other} for '{name}' \
                         (0 SET, 1 DELETE, 2 APPEND, 3 SUBTRACT)"
                    ),
                ))
            }
        };
        ops.push((name, op));
    }
    Ok(ops)
}

/// The overrides after `ops`. APPEND and SUBTRACT start from the effective value (override,
/// else default), as in Kafka, and the result becomes an override.
fn apply(
    current: &BTreeMap<String, String>,
    ops: &[(String, Op)],
    defaults: &TopicDefaults,
) -> BTreeMap<String, String> {
    let mut next = current.clone();
    for (name, op) in ops {
        let effective = || {
            next.get(name)
                .cloned()
                .unwrap_or_else(|| default_value(name, defaults))
        };
        match op {
            Op::Set(value) => {
                next.insert(name.clone(), value.clone());
            }
            Op::Delete => {
                next.remove(name);
            }
            Op::Append(value) => {
                let mut items = owned_items(&effective());
                for item in list_items(value) {
                    if !items.iter().any(|i| i == item) {
                        items.push(item.to_owned());
                    }
                }
                next.insert(name.clone(), items.join(","));
            }
            Op::Subtract(value) => {
                let removed = list_items(value);
                let mut items = owned_items(&effective());
                items.retain(|i| !removed.contains(&i.as_str()));
                next.insert(name.clone(), items.join(","));
            }
        }
    }
    next
}

fn owned_items(value: &str) -> Vec<String> {
    list_items(value)
        .into_iter()
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(list: &[(&str, Op)]) -> Vec<(String, Op)> {
        list.iter()
            .map(|(k, op)| (k.to_string(), op.clone()))
            .collect()
    }

    #[test]
    fn set_delete_append_subtract() {
        let defaults = TopicDefaults::default();
        let mut current = BTreeMap::new();
        current.insert("retention.ms".to_string(), "1000".to_string());
        let next = apply(
            &current,
            &ops(&[
                ("retention.ms", Op::Delete),
                ("segment.bytes", Op::Set("1048576".into())),
                ("cleanup.policy", Op::Append("compact".into())),
            ]),
            &defaults,
        );
        assert_eq!(next.get("retention.ms"), None);
        assert_eq!(next.get("segment.bytes").unwrap(), "1048576");
        assert_eq!(next.get("cleanup.policy").unwrap(), "delete,compact");

        let next = apply(
            &next,
            &ops(&[("cleanup.policy", Op::Subtract("delete".into()))]),
            &defaults,
        );
        assert_eq!(next.get("cleanup.policy").unwrap(), "compact");
        // Appending what is there changes nothing; subtracting all leaves an empty (invalid) list.
        let same = apply(
            &next,
            &ops(&[("cleanup.policy", Op::Append("compact".into()))]),
            &defaults,
        );
        assert_eq!(same, next);
        let empty = apply(
            &next,
            &ops(&[("cleanup.policy", Op::Subtract("compact".into()))]),
            &defaults,
        );
        assert!(topic_config::check_value("cleanup.policy", &empty["cleanup.policy"]).is_err());
    }

    #[test]
    fn shapes_are_checked() {
        let config = |name: &str, op: i8, value: Option<&str>| {
            AlterableConfig::default()
                .with_name(str_bytes(name))
                .with_config_operation(op)
                .with_value(value.map(str_bytes))
        };
        let code = |configs: &[AlterableConfig]| parse_ops(configs).unwrap_err().code;
        assert_eq!(
            code(&[config("retention.ms", 2, Some("1"))]),
            ResponseError::InvalidConfig
        );
        assert_eq!(
            code(&[config("no.such", 0, Some("1"))]),
            ResponseError::InvalidConfig
        );
        assert_eq!(
            code(&[config("retention.ms", 0, None)]),
            ResponseError::InvalidRequest
        );
        assert_eq!(
            code(&[config("retention.ms", 9, Some("1"))]),
            ResponseError::InvalidRequest
        );
        assert_eq!(
            code(&[
                config("retention.ms", 1, None),
                config("retention.ms", 0, Some("1"))
            ]),
            ResponseError::InvalidRequest
        );
        assert!(parse_ops(&[config("retention.ms", 1, None)]).is_ok());
    }
}
