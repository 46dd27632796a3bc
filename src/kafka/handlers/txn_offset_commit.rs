//! TxnOffsetCommit: offsets committed inside a transaction (consume-transform-produce). They
//! are written to the group's `__consumer_offsets` partition as the producer's transactional
//! batch and stay pending until the transaction's marker arrives there
//! ([`crate::group::txn`]): visible if it commits, gone if it aborts.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::offset_commit::check_member;
use super::{ApiSupport, RequestContext};
use crate::cluster::metadata::now_ms;
use crate::group::codec::{OffsetValue, RecordKey};
use crate::group::state::Group;
use crate::group::{self, OFFSET_METADATA_MAX};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::TxnOffsetCommit,
    min: 0,
    // v4 is Transactions V2 (KIP-890), not implemented.
    max: 3,
};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let snapshot = ctx.shard.ctx.metadata.load_full();
    let now = now_ms();
    // Per partition: the value to store, or the error to answer with.
    let mut plan: Vec<(String, i32, Result<OffsetValue, ResponseError>)> = Vec::new();
    for topic in &request.topics {
        let known = snapshot.topic(&topic.name).map(|t| t.partitions);
        for p in &topic.partitions {
            let metadata = p
                .committed_metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            let value = if !known.is_some_and(|n| (0..n).contains(&p.partition_index)) {
                Err(ResponseError::UnknownTopicOrPartition)
            } else if metadata.len() > OFFSET_METADATA_MAX {
                Err(ResponseError::OffsetMetadataTooLarge)
            } else {
                Ok(OffsetValue {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata,
                    timestamp: now,
                    expire_timestamp: None,
                })
            };
            plan.push((topic.name.to_string(), p.partition_index, value));
        }
    }
    let outcome = match group::check_group_id(&request.group_id) {
        Err(e) => Err(e),
        Ok(()) => {
            let id = request.group_id.to_string();
            let producer = (request.producer_id.0, request.producer_epoch);
            let member = (
                request.generation_id,
                request.member_id.to_string(),
                request.group_instance_id.as_ref().map(|i| i.to_string()),
            );
            let plan = plan.clone();
            group::on_coordinator(&ctx.shard.ctx, &id.clone(), move |shard, partition| {
                async move {
                    let (generation, member_id, instance) = member;
                    // Members are checked as OffsetCommit does (v3+ sends them); a producer
                    // without group metadata (generation -1) commits like a simple consumer.
                    if generation >= 0 || !member_id.is_empty() {
                        check_member(&shard, &id, generation, &member_id, instance.as_deref())?;
                    }
                    let mut records = Vec::new();
                    let mut pending = Vec::new();
                    for (topic, index, value) in plan {
                        let Ok(value) = value else { continue };
                        let key = RecordKey::Offset {
                            group: id.clone(),
                            topic: topic.clone(),
                            partition: index,
                        };
                        records.push((key.encode(), Some(value.encode())));
                        pending.push((topic, index, value));
                    }
                    if records.is_empty() {
                        return Ok(());
                    }
                    let first =
                        group::append_records_as(&partition, records, Some(producer)).await?;
                    let mut groups = shard.groups.groups.borrow_mut();
                    let group = groups
                        .entry(id.clone())
                        .or_insert_with(|| Group::new(id.clone()));
                    let list = group.pending_txn_offsets.entry(producer.0).or_default();
                    for (i, (topic, index, value)) in pending.into_iter().enumerate() {
                        list.push((topic, index, value, first + i as u64));
                    }
                    Ok(())
                }
            })
            .await
            .and_then(|r| r)
        }
    };
    let mut topics: Vec<TxnOffsetCommitResponseTopic> = Vec::new();
    for (topic, index, value) in plan {
        let code = match (&outcome, value) {
            (_, Err(e)) => e.code(),
            (Err(e), _) => e.code(),
            (Ok(()), Ok(_)) => 0,
        };
        let partition = TxnOffsetCommitResponsePartition::default()
            .with_partition_index(index)
            .with_error_code(code);
        match topics.last_mut().filter(|t| t.name.as_str() == topic) {
            Some(last) => last.partitions.push(partition),
            None => topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(super::str_bytes(topic).into())
                    .with_partitions(vec![partition]),
            ),
        }
    }
    TxnOffsetCommitResponse::default().with_topics(topics)
}
