//! ListTransactions: every transactional id of every coordinator (shard), filtered by state,
//! producer id, minimum running time (v1) and an id pattern (v2, a regular expression that
//! must match the whole id).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ApiKey, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
};

use super::{str_bytes, ApiSupport, RequestContext};
use crate::cluster::metadata::now_ms;
use crate::txn::state::TxnState;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::ListTransactions,
    min: 0,
    max: 2,
};

const STATES: &[TxnState] = &[
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
];

/// Longest id pattern accepted.
const MAX_PATTERN_LEN: usize = 1024;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut unknown = Vec::new();
    let mut states = Vec::new();
    for filter in &request.state_filters {
        match STATES.iter().find(|s| s.name() == filter.as_str()) {
            Some(state) => states.push(*state),
            None => unknown.push(filter.clone()),
        }
    }
    let pattern = match request.transactional_id_pattern.as_deref() {
        Some(p) if !p.is_empty() => {
            let compiled = (p.len() <= MAX_PATTERN_LEN)
                .then(|| regex::Regex::new(&format!("^(?:{p})$")).ok())
                .flatten();
            match compiled {
                Some(re) => Some(re),
                None => {
                    return ListTransactionsResponse::default()
                        .with_error_code(ResponseError::InvalidRegularExpression.code())
                }
            }
        }
        _ => None,
    };
    let producers: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let min_duration = request.duration_filter;
    let broker = &ctx.shard.ctx;
    let calls = (0..broker.shards.count()).map(|target| {
        broker.shards.call(target, |shard| async move {
            shard
                .txns
                .txns
                .borrow()
                .values()
                .cloned()
                .collect::<Vec<_>>()
        })
    });
    let now = now_ms();
    let mut listed = Vec::new();
    for txns in futures::future::join_all(calls).await.into_iter().flatten() {
        for m in txns {
            let keep = (states.is_empty() || states.contains(&m.state))
                && (producers.is_empty() || producers.contains(&m.producer_id))
                && (min_duration < 0
                    || (m.state == TxnState::Ongoing
                        && now.saturating_sub(m.started_ms) >= min_duration))
                && pattern.as_ref().is_none_or(|re| re.is_match(&m.id));
            if keep {
                listed.push(
                    TransactionState::default()
                        .with_transactional_id(str_bytes(m.id).into())
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_transaction_state(str_bytes(m.state.name())),
                );
            }
        }
    }
    listed.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}
