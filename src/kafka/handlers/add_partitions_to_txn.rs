//! AddPartitionsToTxn (v0-v3, the client form): partitions join the producer's transaction, so
//! that ending it writes a marker to each. Unknown partitions fail the request and the others
//! answer OPERATION_NOT_ATTEMPTED, as in Kafka. v4+ (broker-side verification, KIP-890) is not
//! served.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey};

use super::{ApiSupport, RequestContext};
use crate::txn::{self};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::AddPartitionsToTxn,
    min: 0,
    max: 3,
};

/// Most partitions one request may add.
const MAX_PARTITIONS: usize = 100_000;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let id = request.v3_and_below_transactional_id.to_string();
    let producer_id = request.v3_and_below_producer_id.0;
    let epoch = request.v3_and_below_producer_epoch;
    let wanted: Vec<(String, i32)> = request
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.to_string(), *p)))
        .take(MAX_PARTITIONS)
        .collect();
    let snapshot = ctx.shard.ctx.metadata.load_full();
    let unknown: BTreeSet<(String, i32)> = wanted
        .iter()
        .filter(|(topic, p)| {
            !snapshot
                .topic(topic)
                .is_some_and(|t| (0..t.partitions).contains(p))
        })
        .cloned()
        .collect();
    let outcome = if let Err(e) = txn::check_id(&id) {
        Err(e)
    } else if !unknown.is_empty() {
        Err(ResponseError::UnknownTopicOrPartition)
    } else {
        let version = ctx.version;
        let partitions: BTreeSet<(String, i32)> = wanted.iter().cloned().collect();
        txn::on_coordinator(
            &ctx.shard.ctx,
            &id.clone(),
            move |shard, partition| async move {
                txn::add_partitions(
                    &shard,
                    &partition,
                    &id,
                    producer_id,
                    epoch,
                    version,
                    partitions,
                )
                .await
            },
        )
        .await
        .and_then(|r| r)
    };
    let code_for = |topic: &str, p: i32| -> i16 {
        match &outcome {
            Ok(()) => 0,
            Err(ResponseError::UnknownTopicOrPartition) => {
                if unknown.contains(&(topic.to_owned(), p)) {
                    ResponseError::UnknownTopicOrPartition.code()
                } else {
                    ResponseError::OperationNotAttempted.code()
                }
            }
            Err(e) => e.code(),
        }
    };
    let results = request
        .v3_and_below_topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code_for(&t.name, *p))
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}
