//! Fetch: read committed batches from each partition's shard, long-polling (`max_wait_ms`) until
//! `min_bytes` are available, honouring per-partition and per-response byte limits.
//!
//! Sessions (KIP-227): the broker answers with session id 0, which tells clients to keep
//! sending full fetch requests; incremental sessions are not implemented yet.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use tokio::sync::watch;
use uuid::Uuid;

use super::{ApiSupport, RequestContext};
use crate::kafka::errors::storage_error_code;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::Fetch,
    min: 4,
    max: 16,
};

/// Longest long-poll honoured, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

/// One requested partition, resolved against the metadata.
#[derive(Debug, Clone)]
struct Wanted {
    topic_index: usize,
    topic_id: Option<Uuid>,
    partition: i32,
    offset: i64,
    max_bytes: usize,
}

/// What one partition read returned.
#[derive(Debug)]
struct Read {
    error: Option<ResponseError>,
    high_watermark: i64,
    log_start_offset: i64,
    batches: Vec<Bytes>,
    bytes: usize,
    watch: Option<watch::Receiver<u64>>,
}

impl Read {
    fn error(code: ResponseError) -> Self {
        Read {
            error: Some(code),
            high_watermark: -1,
            log_start_offset: -1,
            batches: Vec::new(),
            bytes: 0,
            watch: None,
        }
    }
}

pub async fn handle(ctx: &RequestContext<'_>, request: FetchRequest) -> FetchResponse {
    let broker = &ctx.shard.ctx;
    let snapshot = broker.metadata.load_full();
    let by_id = ctx.version >= 13;
    let mut topics_out: Vec<(TopicName, Uuid)> = Vec::new();
    let mut wanted = Vec::new();
    for topic in &request.topics {
        let info = if by_id {
            snapshot.topic_by_id(&topic.topic_id)
        } else {
            snapshot.topic(&topic.topic.0)
        };
        topics_out.push((topic.topic.clone(), topic.topic_id));
        for p in &topic.partitions {
            let valid = info.filter(|t| p.partition >= 0 && p.partition < t.partitions);
            wanted.push(Wanted {
                topic_index: topics_out.len() - 1,
                topic_id: valid.map(|t| t.id),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
            });
        }
    }
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let mut shutdown = broker.shutdown.clone();
    let reads = loop {
        let reads = read_all(ctx, &wanted).await;
        let total: usize = reads.iter().map(|r| r.bytes).sum();
        let failed = reads.iter().any(|r| r.error.is_some());
        if total >= min_bytes.max(1) || failed || tokio::time::Instant::now() >= deadline {
            break reads;
        }
        let mut watches: Vec<_> = reads.into_iter().filter_map(|r| r.watch).collect();
        if watches.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let changed =
            futures::future::select_all(watches.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => {}
        }
    };
    build_response(ctx, topics_out, &wanted, reads, max_bytes, by_id)
}

async fn read_all(ctx: &RequestContext<'_>, wanted: &[Wanted]) -> Vec<Read> {
    let broker = &ctx.shard.ctx;
    let reads = wanted.iter().map(|w| {
        let w = w.clone();
        async move {
            let Some(topic_id) = w.topic_id else {
                let code = if ctx.version >= 13 {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                return Read::error(code);
            };
            let owner = broker.shards.owner(&topic_id, w.partition);
            broker
                .shards
                .call(owner, move |shard| async move {
                    let Some(partition) = shard.partition(&topic_id, w.partition) else {
                        return Read::error(ResponseError::NotLeaderOrFollower);
                    };
                    // Subscribe before reading, so data committed in between still wakes us.
                    let watch = partition.watch_high_watermark();
                    let log = &partition.log;
                    let high_watermark = log.high_watermark();
                    let base = Read {
                        error: None,
                        high_watermark: high_watermark as i64,
                        log_start_offset: log.log_start_offset() as i64,
                        batches: Vec::new(),
                        bytes: 0,
                        watch: Some(watch),
                    };
                    if w.offset < 0 {
                        return Read {
                            error: Some(ResponseError::OffsetOutOfRange),
                            ..base
                        };
                    }
                    match log
                        .read(w.offset as u64, w.max_bytes.max(1), high_watermark)
                        .await
                    {
                        Ok(read) => {
                            let bytes = read.total_bytes();
                            Read {
                                batches: read.batches,
                                bytes,
                                ..base
                            }
                        }
                        Err(e) => Read {
                            error: Some(storage_error_code(&e)),
                            ..base
                        },
                    }
                })
                .await
                .unwrap_or_else(|_| Read::error(ResponseError::NotLeaderOrFollower))
        }
    });
    futures::future::join_all(reads).await
}

fn build_response(
    ctx: &RequestContext<'_>,
    topics: Vec<(TopicName, Uuid)>,
    wanted: &[Wanted],
    reads: Vec<Read>,
    max_bytes: usize,
    by_id: bool,
) -> FetchResponse {
    let mut partitions: Vec<Vec<PartitionData>> = vec![Vec::new(); topics.len()];
    let mut budget = max_bytes;
    let mut first = true;
    for (w, read) in wanted.iter().zip(reads) {
        // KIP-74: the first non-empty partition is returned even if it alone exceeds max_bytes.
        let records = if read.bytes > 0 && (first || read.bytes <= budget) {
            first = false;
            budget = budget.saturating_sub(read.bytes);
            concat(&read.batches, read.bytes)
        } else {
            Bytes::new()
        };
        partitions[w.topic_index].push(
            PartitionData::default()
                .with_partition_index(w.partition)
                .with_error_code(read.error.map(|e| e.code()).unwrap_or(0))
                .with_high_watermark(read.high_watermark)
                .with_last_stable_offset(read.high_watermark)
                .with_log_start_offset(read.log_start_offset)
                .with_aborted_transactions(Some(Vec::new()))
                .with_records(Some(records)),
        );
    }
    let responses = topics
        .into_iter()
        .zip(partitions)
        .map(|((name, id), partitions)| {
            let topic = FetchableTopicResponse::default().with_partitions(partitions);
            if by_id {
                topic.with_topic_id(id)
            } else {
                topic.with_topic(name)
            }
        })
        .collect();
    let _ = ctx;
    FetchResponse::default()
        .with_session_id(0)
        .with_responses(responses)
}

fn concat(batches: &[Bytes], total: usize) -> Bytes {
    if let [one] = batches {
        return one.clone();
    }
    let mut out = BytesMut::with_capacity(total);
    for b in batches {
        out.extend_from_slice(b);
    }
    out.freeze()
}
