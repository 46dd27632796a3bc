//! AlterConfigs (the legacy, non-incremental API): the given configs become *all* of a topic's
//! overrides; every config left out returns to its default (Kafka's semantics). Broker
//! resources are refused: dynamic broker configs are not supported.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};

use super::describe_configs::{unsupported_resource, RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{str_bytes, ApiSupport, RequestContext};
use crate::topics::{alter_topic_configs, TopicError};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::AlterConfigs,
    min: 0,
    max: 2,
};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
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
    AlterConfigsResponse::default().with_responses(responses)
}

async fn alter_resource(
    ctx: &RequestContext<'_>,
    resource: &AlterConfigsResource,
    validate_only: bool,
) -> Result<(), TopicError> {
    match resource.resource_type {
        RESOURCE_TOPIC => {
            let overrides = new_overrides(resource)?;
            let name = resource.resource_name.to_string();
            // Replace, whatever the current overrides are.
            let edit = move |_: &BTreeMap<String, String>| Ok(overrides);
            alter_topic_configs(&ctx.shard.ctx, name, edit, validate_only).await
        }
        RESOURCE_BROKER => Err(broker_configs_are_static()),
        other => Err(unsupported_resource(other)),
    }
}

/// The requested overrides. A null value sets nothing, so that key returns to its default
/// (as in Kafka); a key given twice is refused.
fn new_overrides(resource: &AlterConfigsResource) -> Result<BTreeMap<String, String>, TopicError> {
    let mut overrides = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    for config in &resource.configs {
        let name = config.name.to_string();
        if !seen.insert(name.clone()) {
            return Err(repeated_key_error(&name));
        }
        if let Some(value) = &config.value {
            overrides.insert(name, value.to_string());
        }
    }
    Ok(overrides)
}

/// Alters each resource in turn; a resource named twice in one request is refused (the answer
/// could not say which entry an error belongs to). Shared by AlterConfigs and
/// IncrementalAlterConfigs.
pub async fn alter_each<'a, R, Fut>(
    resources: &'a [R],
    key: impl Fn(&R) -> (i8, String),
    alter: impl Fn(&'a R) -> Fut,
) -> Vec<Result<(), TopicError>>
where
    Fut: std::future::Future<Output = Result<(), TopicError>>,
{
    let repeated = repeated_resources(resources.iter().map(&key));
    let mut outcomes = Vec::with_capacity(resources.len());
    for resource in resources {
        let name = key(resource);
        outcomes.push(if repeated.contains(&name) {
            Err(repeated_resource_error(&name.1))
        } else {
            alter(resource).await
        });
    }
    outcomes
}

/// Resources (type, name) that appear more than once: each such entry is refused, since the
/// answer could not say which one an error belongs to.
fn repeated_resources(
    resources: impl Iterator<Item = (i8, String)>,
) -> std::collections::HashSet<(i8, String)> {
    let mut counts: HashMap<(i8, String), usize> = HashMap::new();
    for key in resources {
        *counts.entry(key).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(key, _)| key)
        .collect()
}

fn repeated_resource_error(name: &str) -> TopicError {
    TopicError::new(
        ResponseError::InvalidRequest,
        format!("resource '{name}' appears more than once in the request"),
    )
}

pub fn repeated_key_error(key: &str) -> TopicError {
    TopicError::new(
        ResponseError::InvalidRequest,
        format!("config '{key}' appears more than once for the same resource"),
    )
}

pub fn broker_configs_are_static() -> TopicError {
    TopicError::new(
        ResponseError::InvalidRequest,
        "dynamic broker configs are not supported: set broker settings with flags, environment \
         variables or the config file, and restart",
    )
}
