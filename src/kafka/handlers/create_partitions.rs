//! CreatePartitions: grows topics, checked in the order Kafka's controller checks (duplicate
//! names, unknown topic, a count that does not grow, explicit assignments); `validate_only`
//! checks without creating. New partitions are committed to the metadata log (so they survive
//! a restart) and opened on their owning shards before the answer goes out, so clients can
//! produce to them as soon as they see them.

use std::collections::HashSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, TopicName,
};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::topics::{create_partitions, TopicError};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::CreatePartitions,
    min: 0,
    max: 3,
};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    // As Kafka's controller: a name given twice is answered once, first, with INVALID_REQUEST,
    // and nothing is created for it; the other topics follow in request order.
    let duplicates = duplicate_names(&request.topics);
    let mut results: Vec<_> = duplicates
        .iter()
        .map(|name| {
            let error = TopicError::new(ResponseError::InvalidRequest, "Duplicate topic name.");
            answer((*name).clone(), Err(error))
        })
        .collect();
    let skip: HashSet<&str> = duplicates.iter().map(|n| n.0.as_str()).collect();
    for topic in &request.topics {
        if skip.contains(topic.name.0.as_str()) {
            continue;
        }
        let outcome = grow(ctx, topic, request.validate_only).await;
        results.push(answer(topic.name.clone(), outcome));
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// Names that appear more than once, each listed once (in the order their repeats appear).
fn duplicate_names(topics: &[CreatePartitionsTopic]) -> Vec<&TopicName> {
    let mut seen = HashSet::new();
    let mut reported = HashSet::new();
    topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.as_str()) && reported.insert(t.name.0.as_str()))
        .map(|t| &t.name)
        .collect()
}

fn answer(name: TopicName, outcome: Result<(), TopicError>) -> CreatePartitionsTopicResult {
    let result = CreatePartitionsTopicResult::default().with_name(name);
    match outcome {
        Ok(()) => result,
        Err(e) => result
            .with_error_code(e.code.code())
            .with_error_message(Some(str_bytes(e.message))),
    }
}

/// Validates one entry (topic and count first, so their errors win, as in Kafka), then its
/// assignments, then creates the partitions unless `validate_only`.
async fn grow(
    ctx: &RequestContext<'_>,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
) -> Result<(), TopicError> {
    let broker = &ctx.shard.ctx;
    let name = topic.name.0.to_string();
    create_partitions(broker, name.clone(), topic.count, true).await?;
    if let Some(assignments) = &topic.assignments {
        let current = broker
            .metadata
            .load()
            .topic(&name)
            .map(|t| t.partitions)
            .unwrap_or(0);
        check_assignments(
            broker.config.node_id,
            assignments,
            topic.count.saturating_sub(current),
        )?;
    }
    if validate_only {
        return Ok(());
    }
    create_partitions(broker, name, topic.count, false).await
}

/// Explicit assignments: one per new partition, each exactly `[node]` (a single-node broker
/// has no other replica to place). Messages follow Kafka's controller.
fn check_assignments(
    node: i32,
    assignments: &[CreatePartitionsAssignment],
    additional: i32,
) -> Result<(), TopicError> {
    let invalid =
        |message: String| TopicError::new(ResponseError::InvalidReplicaAssignment, message);
    if i32::try_from(assignments.len()).ok() != Some(additional) {
        return Err(invalid(format!(
            "Attempted to add {additional} additional partition(s), but only {} assignment(s) were specified.",
            assignments.len()
        )));
    }
    for assignment in assignments {
        check_replicas(node, &assignment.broker_ids).map_err(invalid)?;
    }
    Ok(())
}

fn check_replicas(node: i32, replicas: &[BrokerId]) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("The manual partition assignment includes an empty replica list.".into());
    }
    if let Some(other) = replicas.iter().find(|b| b.0 != node) {
        return Err(format!(
            "The manual partition assignment includes broker {}, but no such broker is registered.",
            other.0
        ));
    }
    if replicas.len() > 1 {
        return Err(format!(
            "The manual partition assignment includes the broker {node} more than once."
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(brokers: &[i32]) -> CreatePartitionsAssignment {
        CreatePartitionsAssignment::default()
            .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
    }

    #[test]
    fn duplicates_are_named_once() {
        let topic = |n: &str| {
            CreatePartitionsTopic::default().with_name(TopicName(str_bytes(n.to_owned())))
        };
        let topics = [
            topic("b"),
            topic("a"),
            topic("b"),
            topic("c"),
            topic("a"),
            topic("b"),
        ];
        let names: Vec<&str> = duplicate_names(&topics)
            .iter()
            .map(|n| n.0.as_str())
            .collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn assignments_must_place_each_new_partition_on_this_node_alone() {
        assert!(check_assignments(1, &[assignment(&[1]), assignment(&[1])], 2).is_ok());
        for (assignments, additional) in [
            (vec![assignment(&[1])], 2),
            (vec![assignment(&[])], 1),
            (vec![assignment(&[2])], 1),
            (vec![assignment(&[1, 1])], 1),
            (vec![assignment(&[1, 2])], 1),
        ] {
            let err = check_assignments(1, &assignments, additional).unwrap_err();
            assert_eq!(err.code, ResponseError::InvalidReplicaAssignment, "{err:?}");
        }
    }
}
