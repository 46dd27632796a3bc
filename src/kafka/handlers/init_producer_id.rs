//! InitProducerId: a producer id and epoch. Without a transactional id: a new id (epoch 0),
//! never reused across restarts ([`crate::producer::ids`]). With one: the id's coordinator
//! ([`crate::txn`]) keeps its producer id and bumps its epoch, which fences any older instance
//! ("zombie"); an open transaction of that older instance is aborted first.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{ApiSupport, RequestContext};
use crate::cluster::metadata::now_ms;
use crate::shard::BrokerContext;
use crate::txn::state::{TxnMetadata, TxnState};
use crate::txn::{self};

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
    let broker = &ctx.shard.ctx;
    let outcome = match request.transactional_id.as_ref() {
        // An idempotent producer asking to bump its epoch after a failure (KIP-360) gets a
        // fresh id instead, as Kafka does for producers without a transactional id.
        None => allocate(broker).await.map(|id| (id, 0)),
        Some(id) => {
            let version = ctx.version;
            let id = id.to_string();
            let timeout = request.transaction_timeout_ms;
            let claimed = (request.producer_id.0, request.producer_epoch);
            if let Err(e) = txn::check_id(&id) {
                return error(e);
            }
            if !(1..=txn::MAX_TIMEOUT_MS).contains(&timeout) {
                return error(ResponseError::InvalidTransactionTimeout);
            }
            let broker = broker.clone();
            txn::on_coordinator(
                &broker.clone(),
                &id.clone(),
                move |shard, partition| async move {
                    init_transactional(&shard, &partition, &broker, id, timeout, claimed, version)
                        .await
                },
            )
            .await
            .and_then(|r| r)
        }
    };
    match outcome {
        Ok((id, epoch)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => error(e),
    }
}

async fn allocate(broker: &std::sync::Arc<BrokerContext>) -> Result<i64, ResponseError> {
    match broker
        .shards
        .call(ALLOCATOR_SHARD, |shard| async move {
            shard.producer_ids.allocate(&shard).await
        })
        .await
    {
        Ok(Ok(id)) => Ok(id),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot allocate a producer id");
            Err(ResponseError::CoordinatorNotAvailable)
        }
        Err(_) => Err(ResponseError::CoordinatorNotAvailable),
    }
}

/// Kafka's `handleInitProducerId` for a transactional id, on its coordinator's shard.
async fn init_transactional(
    shard: &std::rc::Rc<crate::shard::Shard>,
    partition: &crate::partition::Partition,
    broker: &std::sync::Arc<BrokerContext>,
    id: String,
    timeout_ms: i32,
    (claimed_id, claimed_epoch): (i64, i16),
    version: i16,
) -> Result<(i64, i16), ResponseError> {
    let existing = shard.txns.txns.borrow().get(&id).cloned();
    let Some(current) = existing else {
        if shard.txns.txns.borrow().len() >= txn::MAX_TXNS_PER_SHARD {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let producer_id = allocate(broker).await?;
        let now = now_ms();
        let m = TxnMetadata {
            id: id.clone(),
            producer_id,
            epoch: 0,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            started_ms: -1,
            updated_ms: now,
            busy: false,
        };
        txn::persist(partition, &m).await?;
        shard.txns.txns.borrow_mut().entry(id).or_insert(m);
        return Ok((producer_id, 0));
    };
    if current.busy || current.state.is_prepare() {
        return Err(ResponseError::ConcurrentTransactions);
    }
    // KIP-360: a producer that names its id and epoch must be the current one.
    if claimed_id >= 0 && (claimed_id != current.producer_id || claimed_epoch != current.epoch) {
        return Err(txn::fenced(version, 4));
    }
    if current.state == TxnState::Ongoing {
        // A new instance of this transactional id: abort what the old one left open, fencing
        // it with a bumped epoch.
        tracing::info!(transactional_id = %id, "aborting the open transaction of a previous producer instance");
        txn::end_transaction(shard, partition, &id, false, true).await?;
    }
    let next = {
        let mut txns = shard.txns.txns.borrow_mut();
        let m = txns
            .get_mut(&id)
            .ok_or(ResponseError::ConcurrentTransactions)?;
        if m.busy || m.state.is_prepare() || m.state == TxnState::Ongoing {
            return Err(ResponseError::ConcurrentTransactions);
        }
        m.epoch += 1;
        m.state = TxnState::Empty;
        m.partitions.clear();
        m.timeout_ms = timeout_ms;
        m.updated_ms = now_ms();
        m.clone()
    };
    // Epochs are i16: when they run out, the id moves to a fresh producer id at epoch 0.
    let next = if next.epoch >= i16::MAX - 1 {
        let producer_id = allocate(broker).await?;
        let mut txns = shard.txns.txns.borrow_mut();
        let m = txns
            .get_mut(&id)
            .ok_or(ResponseError::ConcurrentTransactions)?;
        m.producer_id = producer_id;
        m.epoch = 0;
        m.clone()
    } else {
        next
    };
    txn::persist(partition, &next).await?;
    Ok((next.producer_id, next.epoch))
}
