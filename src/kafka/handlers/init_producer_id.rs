//! InitProducerId: a new producer id (epoch 0) for an idempotent producer. Ids are never
//! reused, across restarts too ([`crate::producer::ids`]). Transactional producers
//! (`transactional.id` set) get COORDINATOR_NOT_AVAILABLE until transactions exist, as
//! FindCoordinator answers them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{ApiSupport, RequestContext};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::InitProducerId,
    min: 0,
    // v6 is KIP-939 (two-phase commit), not implemented.
    max: 5,
};

/// The shard holding the metadata store, and so the allocator.
const ALLOCATOR_SHARD: usize = 0;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let error = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        tracing::debug!(
            "InitProducerId with a transactional id: transactions are not supported yet"
        );
        return error(ResponseError::CoordinatorNotAvailable);
    }
    // An idempotent producer asking to bump its epoch after a failure (KIP-360) gets a fresh
    // id instead, as Kafka does for producers without a transactional id.
    let allocated = ctx
        .shard
        .ctx
        .shards
        .call(ALLOCATOR_SHARD, |shard| async move {
            shard.producer_ids.allocate(&shard).await
        })
        .await;
    match allocated {
        Ok(Ok(id)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            error(ResponseError::CoordinatorNotAvailable)
        }
        Err(_) => error(ResponseError::CoordinatorNotAvailable),
    }
}
