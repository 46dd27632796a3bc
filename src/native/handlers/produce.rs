//! PRODUCE: each partition's batches go through the produce path the Kafka front end uses
//! (`kafka::handlers::produce::produce_partition`: validation, idempotence, append on the owner
//! shard, acks), so batches are indistinguishable from Kafka-produced ones. `timeout_ms`
//! bounds the wait of acks=all (0: no bound). The connection's produce lane moves on to its
//! next PRODUCE once every partition of this one is appended (`appended`), so a client's
//! pipelined produces keep their order and their acks=all waits share group-committed flushes.

use std::time::Duration;

use tokio::sync::oneshot;

use kafka_protocol::error::ResponseError;
use protocol::native::{
    Acks, ErrorCode, ProducePartition, ProducePartitionResponse, ProduceRequest, ProduceResponse,
};
use uuid::Uuid;

use super::{partition_index, topic_by_id, Ctx};
use crate::kafka::handlers::produce::{produce_partition, Outcome};

/// `appended` is signalled (or dropped) once every partition's batches are in the log, or
/// refused.
pub async fn handle(
    ctx: &Ctx<'_>,
    request: ProduceRequest,
    appended: oneshot::Sender<()>,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let timeout =
        (request.timeout_ms > 0).then(|| Duration::from_millis(request.timeout_ms.into()));
    let mut each_appended = Vec::with_capacity(request.partitions.len());
    let work = request.partitions.into_iter().map(|p| {
        let (done, rx) = oneshot::channel();
        each_appended.push(rx);
        produce_one(ctx, acks, timeout, p, done)
    });
    let work = futures::future::join_all(work);
    let all_appended = async {
        for rx in each_appended {
            let _ = rx.await;
        }
        let _ = appended.send(());
    };
    let (partitions, ()) = futures::join!(work, all_appended);
    (acks != Acks::None).then_some(ProduceResponse { partitions })
}

async fn produce_one(
    ctx: &Ctx<'_>,
    acks: Acks,
    timeout: Option<Duration>,
    p: ProducePartition,
    appended: oneshot::Sender<()>,
) -> ProducePartitionResponse {
    let fail = |code: ResponseError, message: String| ProducePartitionResponse {
        topic_id: p.topic_id,
        partition: p.partition,
        error: ErrorCode::from_kafka(code.code()),
        base_offset: -1,
        log_append_time: -1,
        log_start_offset: -1,
        message,
    };
    let Some((name, partitions)) = topic_by_id(ctx.shard, &p.topic_id) else {
        return fail(
            ResponseError::UnknownTopicId,
            format!("no topic has id {}", Uuid::from_bytes(p.topic_id)),
        );
    };
    let Some(index) = partition_index(p.partition, partitions) else {
        return fail(
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{name}' has no partition {}", p.partition),
        );
    };
    let (appended_here, appended_rx) = oneshot::channel();
    let mut produced = std::pin::pin!(produce_partition(
        &ctx.shard.ctx,
        appended_here,
        acks.to_kafka(),
        None,
        name,
        index,
        Some(p.records.clone()),
    ));
    // `timeout_ms` bounds only the wait after the append: giving up earlier could let the
    // append land after the connection's next PRODUCE, breaking the order the spec promises.
    let finished_early = tokio::select! {
        outcome = &mut produced => Some(outcome),
        _ = appended_rx => None,
    };
    let _ = appended.send(());
    if let Some(outcome) = finished_early {
        return answer(&p, outcome);
    }
    let outcome: Outcome = match timeout.filter(|_| acks == Acks::All) {
        Some(limit) => match tokio::time::timeout(limit, produced).await {
            Ok(outcome) => outcome,
            Err(_) => {
                return fail(
                    ResponseError::RequestTimedOut,
                    format!("not committed within timeout_ms {}", limit.as_millis()),
                )
            }
        },
        None => produced.await,
    };
    answer(&p, outcome)
}

fn answer(p: &ProducePartition, outcome: Outcome) -> ProducePartitionResponse {
    ProducePartitionResponse {
        topic_id: p.topic_id,
        partition: p.partition,
        error: outcome
            .error
            .map(|e| ErrorCode::from_kafka(e.code()))
            .unwrap_or(ErrorCode::NONE),
        base_offset: outcome.base_offset,
        log_append_time: outcome.log_append_time,
        log_start_offset: outcome.log_start_offset,
        message: with_record_errors(outcome.message.unwrap_or_default(), &outcome.record_errors),
    }
}

/// The native answer has no per-record field: refused records are named in the message.
fn with_record_errors(message: String, record_errors: &[(i32, String)]) -> String {
    let Some((_, why)) = record_errors.first() else {
        return message;
    };
    let indexes: Vec<String> = record_errors
        .iter()
        .take(20)
        .map(|(i, _)| i.to_string())
        .collect();
    let more = if record_errors.len() > 20 {
        ", ..."
    } else {
        ""
    };
    format!("{message}: records {}{more}: {why}", indexes.join(", "))
}
