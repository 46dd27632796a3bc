//! EndTxn: commits or aborts the producer's transaction: `Prepare*` is made durable, a marker
//! is written to every partition in the transaction (each durable), then `Complete*`. The
//! answer comes once all of that is done, so a read_committed consumer sees a committed
//! transaction as soon as the producer hears of it. A retry of a finished EndTxn succeeds.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse};

use super::{ApiSupport, RequestContext};
use crate::group;
use crate::txn::state::TxnState;
use crate::txn::{self};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::EndTxn,
    min: 0,
    // v5 is Transactions V2 (KIP-890), not implemented.
    max: 4,
};

pub async fn handle(ctx: &RequestContext<'_>, request: EndTxnRequest) -> EndTxnResponse {
    let id = request.transactional_id.to_string();
    let version = ctx.version;
    let (producer_id, epoch, commit) = (
        request.producer_id.0,
        request.producer_epoch,
        request.committed,
    );
    let outcome = match txn::check_id(&id) {
        Err(e) => Err(e),
        Ok(()) => txn::on_coordinator(&ctx.shard.ctx, &id.clone(), move |shard, partition| {
            async move {
                let state = {
                    let txns = shard.txns.txns.borrow();
                    let m = txns
                        .get(&id)
                        .ok_or(ResponseError::InvalidProducerIdMapping)?;
                    txn::check_producer(m, producer_id, epoch, version, 2)?;
                    if m.busy {
                        return Err(ResponseError::ConcurrentTransactions);
                    }
                    m.state
                };
                match (state, commit) {
                    (TxnState::Ongoing, _) => {
                        txn::end_transaction(&shard, &partition, &id, commit, false)
                            .await
                            .map(|_| ())
                    }
                    // The client retries an EndTxn whose answer it lost.
                    (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
                    (TxnState::PrepareCommit | TxnState::PrepareAbort, _) => {
                        Err(ResponseError::ConcurrentTransactions)
                    }
                    _ => Err(ResponseError::InvalidTxnState),
                }
            }
        })
        .await
        .and_then(|r| r),
    };
    EndTxnResponse::default().with_error_code(group::code(outcome))
}
