//! DescribeProducers: the idempotent and transactional producers a partition knows (its
//! producer state): id, epoch, last sequence and timestamp, and the start of an open
//! transaction.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};

use super::{ApiSupport, RequestContext};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::DescribeProducers,
    min: 0,
    max: 0,
};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let broker = &ctx.shard.ctx;
    let snapshot = broker.metadata.load_full();
    let mut topics = Vec::new();
    for topic in request.topics {
        let info = snapshot.topic(&topic.name).cloned();
        let mut partitions = Vec::new();
        for index in topic.partition_indexes {
            let base = PartitionResponse::default().with_partition_index(index);
            let Some(info) = info.clone().filter(|t| (0..t.partitions).contains(&index)) else {
                partitions
                    .push(base.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            };
            let owner = broker.shards.owner(&info.id, index);
            let found = broker
                .shards
                .call(owner, move |shard| async move {
                    shard.partition(&info.id, index).map(|p| {
                        let states = p.producers.borrow();
                        let mut producers: Vec<ProducerState> = states
                            .producers
                            .iter()
                            .map(|(id, e)| {
                                let last = e.batches.back();
                                ProducerState::default()
                                    .with_producer_id(ProducerId(*id))
                                    .with_producer_epoch(i32::from(e.epoch))
                                    .with_last_sequence(last.map_or(-1, |b| b.last_seq))
                                    .with_last_timestamp(e.last_append_ms)
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(e.txn_first_offset.unwrap_or(-1))
                            })
                            .collect();
                        producers.sort_by_key(|p| p.producer_id.0);
                        producers
                    })
                })
                .await;
            partitions.push(match found {
                Ok(Some(producers)) => base.with_active_producers(producers),
                _ => base.with_error_code(ResponseError::NotLeaderOrFollower.code()),
            });
        }
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DescribeProducersResponse::default().with_topics(topics)
}
