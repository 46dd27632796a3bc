//! AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction, so the
//! offsets the producer then commits with TxnOffsetCommit count only if it commits.

use std::collections::BTreeSet;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};

use super::{ApiSupport, RequestContext};
use crate::group::{self, OFFSETS_TOPIC};
use crate::txn;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::AddOffsetsToTxn,
    min: 0,
    max: 3,
};

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let broker = &ctx.shard.ctx;
    let id = request.transactional_id.to_string();
    let version = ctx.version;
    let outcome = async {
        txn::check_id(&id)?;
        group::check_group_id(&request.group_id)?;
        let offsets = group::offsets_topic(broker).await?;
        let index = group::partition_for(&request.group_id, offsets.partitions);
        let partitions = BTreeSet::from([(OFFSETS_TOPIC.to_owned(), index)]);
        let (producer_id, epoch) = (request.producer_id.0, request.producer_epoch);
        let id = id.clone();
        txn::on_coordinator(broker, &id.clone(), move |shard, partition| async move {
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
        })
        .await
        .and_then(|r| r)
    }
    .await;
    AddOffsetsToTxnResponse::default().with_error_code(group::code(outcome))
}
