//! FindCoordinator: this broker coordinates every group (the leader of the group's
//! `__consumer_offsets` partition) and every transactional id (the leader of its
//! `__transaction_state` partition), each topic created on first use. v4+ batches keys in
//! `coordinator_keys`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, ApiSupport, RequestContext};
use crate::{group, txn};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::FindCoordinator,
    min: 0,
    max: 4,
};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Most keys answered in one batched request.
const MAX_KEYS: usize = 10_000;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let broker = &ctx.shard.ctx;
    let (host, port) = broker.advertised.clone();
    let node = BrokerId(broker.config.node_id);
    let find = |key: &StrBytes| {
        let key = key.clone();
        let host = host.clone();
        async move {
            let base = Coordinator::default().with_key(key.clone());
            let outcome = match request.key_type {
                KEY_TYPE_GROUP if group::check_group_id(&key).is_err() => {
                    Err((ResponseError::InvalidRequest, "invalid group id"))
                }
                KEY_TYPE_GROUP => group::offsets_topic(broker)
                    .await
                    .map(|_| ())
                    .map_err(|e| (e, "the offsets topic is not available")),
                KEY_TYPE_TRANSACTION if txn::check_id(&key).is_err() => {
                    Err((ResponseError::InvalidRequest, "invalid transactional id"))
                }
                KEY_TYPE_TRANSACTION => txn::txn_topic(broker)
                    .await
                    .map(|_| ())
                    .map_err(|e| (e, "the transaction state topic is not available")),
                _ => Err((
                    ResponseError::InvalidRequest,
                    "unknown coordinator key type",
                )),
            };
            match outcome {
                Ok(()) => base
                    .with_node_id(node)
                    .with_host(str_bytes(host))
                    .with_port(port),
                Err((code, message)) => base
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_node_id(BrokerId(-1))
                    .with_port(-1),
            }
        }
    };
    if ctx.version >= 4 {
        let mut coordinators = Vec::new();
        for key in request.coordinator_keys.iter().take(MAX_KEYS) {
            coordinators.push(find(key).await);
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let c = find(&request.key).await;
    let response = FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port);
    if ctx.version >= 1 {
        response.with_error_message(c.error_message)
    } else {
        response
    }
}
