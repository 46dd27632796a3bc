//! DeleteTopics: by name (v0-v5) or by name or id (v6).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use uuid::Uuid;

use super::{str_bytes, ApiSupport, RequestContext};
use crate::topics::delete_topic;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::DeleteTopics,
    min: 1,
    max: 6,
};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let broker = &ctx.shard.ctx;
    let targets: Vec<(Option<String>, Uuid)> = if ctx.version >= 6 {
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        request
            .topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match &name {
            Some(name) => Some(name.clone()),
            None => broker
                .metadata
                .load()
                .topic_by_id(&id)
                .map(|t| t.name.clone()),
        };
        let result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(str_bytes(n))));
        let Some(resolved) = resolved else {
            responses.push(
                result
                    .with_topic_id(id)
                    .with_error_code(ResponseError::UnknownTopicId.code()),
            );
            continue;
        };
        match delete_topic(broker, resolved).await {
            Ok(deleted) => responses.push(result.with_topic_id(deleted)),
            Err(e) => responses.push(
                result
                    .with_topic_id(id)
                    .with_error_code(e.code.code())
                    .with_error_message(Some(str_bytes(e.message))),
            ),
        }
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
