//! DescribeTransactions: state, producer, timeout and partitions of transactional ids, each
//! asked of its coordinator; TRANSACTIONAL_ID_NOT_FOUND for unknown ones.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::txn;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::DescribeTransactions,
    min: 0,
    max: 0,
};

/// Most ids described by one request.
const MAX_IDS: usize = 10_000;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut states = Vec::new();
    for id in request.transactional_ids.into_iter().take(MAX_IDS) {
        let base = TransactionState::default().with_transactional_id(id.clone());
        if let Err(e) = txn::check_id(&id) {
            states.push(base.with_error_code(e.code()));
            continue;
        }
        let name = id.to_string();
        let found =
            txn::on_coordinator(&ctx.shard.ctx, &name.clone(), move |shard, _| async move {
                shard.txns.txns.borrow().get(&name).cloned()
            })
            .await;
        states.push(match found {
            Ok(Some(m)) => {
                let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in &m.partitions {
                    topics.entry(topic.clone()).or_default().push(*partition);
                }
                base.with_transaction_state(str_bytes(m.state.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(m.started_ms)
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.epoch)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(topic, partitions)| {
                                TopicData::default()
                                    .with_topic(TopicName(str_bytes(topic)))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    )
            }
            Ok(None) => base.with_error_code(ResponseError::TransactionalIdNotFound.code()),
            Err(e) => base.with_error_code(e.code()),
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}
