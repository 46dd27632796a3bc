//! The sender task: takes closed batches from the accumulator, finishes them (header, CRC,
//! compression), writes them as PRODUCE requests and hands each request's answer to a task
//! of its own, which completes the batches or retries them.
//!
//! It wakes when a batch closes (full, flushed, or its topic changed), when a batch opens
//! (to learn its linger deadline) and when a linger deadline passes; never per record.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::accumulator::ClosedBatch;
use super::delivery::{Ack, Unresolved};
use super::Shared;
use crate::client::connection::{Connection, SentRequest};
use crate::client::error::{code_is_retriable, ClientError};
use crate::client::{Backoff, TopicInfo};
use crate::native::{Acks, ErrorCode, ProducePartition, ProduceRequest, Response};

/// Bytes a PRODUCE frame needs besides the records: header, acks, timeout, count, and per
/// partition its id, index and blob length.
const PRODUCE_FIXED_BYTES: usize = 10 + 1 + 4 + 4;
const PRODUCE_PARTITION_BYTES: usize = 16 + 4 + 4;
/// The frame limit assumed while no connection told us (the broker's default,
/// `native-max-frame-bytes`): only sizes the batches handed to the retries.
const FRAME_LIMIT_UNKNOWN: usize = 16 << 20;

/// A batch's claim on the producer until it completes: dropped, it resolves the batch (with
/// `Closed` if nothing decided it) and frees its room in the queue bounds, whatever path the
/// batch took (acknowledged, failed, or its task cancelled).
struct Completion {
    state: Unresolved,
    id: u64,
    records: usize,
    bytes: usize,
    shared: Arc<Shared>,
}

impl Completion {
    fn complete(self, result: Result<Ack, ClientError>) {
        self.state.0.complete(result);
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        // Resolved before released: a flush that sees the batch released finds its futures
        // resolved.
        self.state.0.complete(Err(ClientError::Closed));
        self.shared.release(self.id, self.records, self.bytes);
    }
}

/// A finished batch, as it goes on the wire.
struct SentBatch {
    topic: TopicInfo,
    partition: u32,
    records: Bytes,
    done: Completion,
}

/// Marks the sender gone when its task ends (or is dropped with the runtime), failing what
/// is left so no `send`, `flush` or `DeliveryFuture` waits for it.
struct SenderGone(Arc<Shared>);

impl Drop for SenderGone {
    fn drop(&mut self) {
        let left = {
            let mut acc = self.0.lock();
            acc.sender_gone = true;
            acc.take_all()
        };
        let left: Vec<_> = left.into_iter().map(|b| claim(&self.0, b)).collect();
        drop(left); // outside the lock: each release takes it
        self.0.space.notify_waiters();
        self.0.completed.notify_waiters();
    }
}

fn claim(shared: &Arc<Shared>, batch: ClosedBatch) -> (ClosedBatchParts, Completion) {
    let ClosedBatch {
        id,
        topic,
        partition,
        writer,
        state,
        records,
        bytes,
    } = batch;
    (
        ClosedBatchParts {
            topic,
            partition,
            writer,
        },
        Completion {
            state,
            id,
            records,
            bytes,
            shared: shared.clone(),
        },
    )
}

struct ClosedBatchParts {
    topic: TopicInfo,
    partition: u32,
    writer: crate::records::BatchWriter,
}

pub(super) async fn run(shared: Arc<Shared>) {
    let _gone = SenderGone(shared.clone());
    let config = &shared.config;
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    loop {
        let (has_ready, deadline, finished) = {
            let mut acc = shared.lock();
            acc.close_expired(Instant::now(), false);
            (
                acc.has_ready(),
                acc.next_deadline(),
                acc.closing && acc.is_idle(),
            )
        };
        if finished {
            return;
        }
        if !has_ready {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = sleep_until_opt(deadline) => {}
            }
            continue;
        }
        // A request slot first: batches closing meanwhile join this request.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let connection = shared.client.connection().await;
        let limit = match &connection {
            Ok(c) => c.handshake.frame_bytes_max as usize,
            Err(_) => FRAME_LIMIT_UNKNOWN,
        };
        let taken = {
            let mut acc = shared.lock();
            acc.close_expired(Instant::now(), false);
            acc.take_ready(
                limit.saturating_sub(PRODUCE_FIXED_BYTES),
                PRODUCE_PARTITION_BYTES,
            )
        };
        let batches = finish_batches(&shared, taken, limit);
        if batches.is_empty() {
            continue;
        }
        let connection = match connection {
            Ok(connection) => connection,
            Err(error) => {
                // Not reachable even after reconnect_timeout: the retries decide.
                tokio::spawn(deliver(shared.clone(), batches, Err(error), permit));
                continue;
            }
        };
        let mut permit = Some(permit);
        for group in frames(batches, limit) {
            let permit = match permit.take() {
                Some(permit) => permit,
                // Compression made a batch larger than its estimate: another request.
                None => match in_flight.clone().acquire_owned().await {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
            };
            let mut group = group;
            match start_request(&shared, &connection, &mut group) {
                Ok(Some(sent)) => {
                    let first = Ok((connection.clone(), sent));
                    tokio::spawn(deliver(shared.clone(), group, first, permit));
                }
                Ok(None) => drop(permit), // acks none: completed once written
                Err(error) => {
                    tokio::spawn(deliver(shared.clone(), group, Err(error), permit));
                }
            }
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Header, CRC and compression for each taken batch. A batch that fails to compress, or
/// that alone exceeds the frame limit (the broker would close the connection), fails here.
fn finish_batches(shared: &Arc<Shared>, taken: Vec<ClosedBatch>, limit: usize) -> Vec<SentBatch> {
    let mut out = Vec::with_capacity(taken.len());
    for batch in taken {
        let (parts, done) = claim(shared, batch);
        if parts.writer.is_empty() {
            continue; // no record, no future: nothing to send or resolve
        }
        let records = match parts.writer.finish_compressed(shared.config.compression) {
            Ok(records) => records.freeze(),
            Err(e) => {
                done.complete(Err(ClientError::Compression(e.to_string())));
                continue;
            }
        };
        if PRODUCE_FIXED_BYTES + PRODUCE_PARTITION_BYTES + records.len() > limit {
            done.complete(Err(ClientError::broker(
                ErrorCode::MESSAGE_TOO_LARGE,
                format!(
                    "a batch of {} bytes exceeds the broker's frame limit of {limit} bytes",
                    records.len()
                ),
            )));
            continue;
        }
        out.push(SentBatch {
            topic: parts.topic,
            partition: parts.partition,
            records,
            done,
        });
    }
    out
}

/// Splits batches (in order) into groups that each fit one frame; a batch alone always fits
/// (`finish_batches` checked).
fn frames(batches: Vec<SentBatch>, limit: usize) -> Vec<Vec<SentBatch>> {
    let mut groups: Vec<Vec<SentBatch>> = Vec::new();
    let mut size = PRODUCE_FIXED_BYTES;
    for batch in batches {
        let needed = PRODUCE_PARTITION_BYTES + batch.records.len();
        match groups.last_mut() {
            Some(group) if size + needed <= limit => group.push(batch),
            _ => {
                size = PRODUCE_FIXED_BYTES;
                groups.push(vec![batch]);
            }
        }
        size += needed;
    }
    groups
}

fn produce_request(shared: &Shared, batches: &[SentBatch]) -> ProduceRequest {
    let config = &shared.config;
    ProduceRequest {
        acks: config.acks,
        timeout_ms: config.produce_timeout.as_millis().min(u128::from(u32::MAX)) as u32,
        partitions: batches
            .iter()
            .map(|b| ProducePartition {
                topic_id: b.topic.id,
                partition: b.partition,
                records: b.records.clone(),
            })
            .collect(),
    }
}

/// Writes one PRODUCE (queued for the connection's writer before this returns, which keeps
/// the order of a partition's batches). With acks none the batches complete here (`None`).
fn start_request(
    shared: &Shared,
    connection: &Connection,
    batches: &mut Vec<SentBatch>,
) -> Result<Option<SentRequest>, ClientError> {
    let request = produce_request(shared, batches);
    if shared.config.acks == Acks::None {
        connection.send_produce_unanswered(&request)?;
        for batch in batches.drain(..) {
            batch.done.complete(Ok(Ack {
                base_offset: -1,
                log_append_time: -1,
            }));
        }
        return Ok(None);
    }
    connection.start_produce(&request).map(Some)
}

/// Waits for a request's answer and completes its batches, retrying failed ones as the
/// module docs say; holds a request slot until done.
async fn deliver(
    shared: Arc<Shared>,
    mut batches: Vec<SentBatch>,
    first: Result<(Arc<Connection>, SentRequest), ClientError>,
    permit: OwnedSemaphorePermit,
) {
    let first = match first {
        Ok((connection, sent)) => {
            let answer = connection.finish_call(sent).await;
            resolve(answer, &mut batches)
        }
        Err(error) => Err(error),
    };
    if let Err(failure) = first {
        retry(&shared, batches, failure).await;
    }
    drop(permit);
}

/// Sends the batches again, with backoff, up to `retries` times or until the failure is not
/// retriable; then fails what is left with the last failure.
async fn retry(shared: &Shared, mut batches: Vec<SentBatch>, mut failure: ClientError) {
    let client_config = shared.client.config();
    let mut backoff = Backoff::new(client_config.backoff_initial, client_config.backoff_max);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        if !failure.is_retriable() || attempt > shared.config.retries || batches.is_empty() {
            for batch in batches {
                batch.done.complete(Err(failure.clone()));
            }
            return;
        }
        tokio::time::sleep(backoff.next_delay()).await;
        if failure.code() == Some(ErrorCode::UNKNOWN_TOPIC_ID) {
            // The id went stale (topic deleted and re-created): look it up again, for these
            // batches and for the records still to come.
            for batch in &mut batches {
                if let Ok(info) = shared.client.refresh_topic(&batch.topic.name).await {
                    shared.lock().update_topic(info.clone());
                    batch.topic = info;
                }
            }
        }
        match produce_once(shared, &mut batches).await {
            Ok(()) => return,
            Err(next) => failure = next,
        }
    }
}

/// One attempt for every batch: as many PRODUCE requests as the frame limit needs, each
/// awaited in turn. Leaves in `batches` those to try again.
async fn produce_once(shared: &Shared, batches: &mut Vec<SentBatch>) -> Result<(), ClientError> {
    let connection = shared.client.connection().await?;
    let limit = connection.handshake.frame_bytes_max as usize;
    let mut retry = Vec::new();
    let mut first_error = None;
    for mut group in frames(std::mem::take(batches), limit) {
        let outcome = match start_request(shared, &connection, &mut group) {
            Ok(Some(sent)) => resolve(connection.finish_call(sent).await, &mut group),
            Ok(None) => Ok(()),
            Err(error) => Err(error),
        };
        if let Err(error) = outcome {
            first_error.get_or_insert(error);
            retry.append(&mut group);
        }
    }
    *batches = retry;
    first_error.map_or(Ok(()), Err)
}

/// Completes the batches the answer decides (acknowledged, or failed for good) and leaves in
/// `batches` those to retry, returning the error to retry them for.
fn resolve(
    answer: Result<Response, ClientError>,
    batches: &mut Vec<SentBatch>,
) -> Result<(), ClientError> {
    let Response::Produce(answer) = answer? else {
        return Err(ClientError::Protocol(
            "PRODUCE answered with another op".into(),
        ));
    };
    if answer.partitions.len() != batches.len() {
        return Err(ClientError::Protocol(format!(
            "PRODUCE of {} partitions answered with {}",
            batches.len(),
            answer.partitions.len()
        )));
    }
    let mut retry = Vec::new();
    let mut retry_error = None;
    for (batch, result) in std::mem::take(batches).into_iter().zip(answer.partitions) {
        if result.error.is_ok() {
            batch.done.complete(Ok(Ack {
                base_offset: result.base_offset,
                log_append_time: result.log_append_time,
            }));
            continue;
        }
        let error = ClientError::broker(result.error, result.message);
        if code_is_retriable(result.error) {
            retry.push(batch);
            retry_error = Some(error);
        } else {
            batch.done.complete(Err(error));
        }
    }
    *batches = retry;
    retry_error.map_or(Ok(()), Err)
}
