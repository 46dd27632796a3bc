//! Fetch: read committed batches from each partition's shard, long-polling (`max_wait_ms`) until
//! `min_bytes` are available, honouring per-partition and per-response byte limits, with
//! incremental fetch sessions (KIP-227, see `fetch_session.rs`). read_committed consumers
//! (isolation_level 1) read up to the last stable offset and get the aborted transactions of
//! the range, so they skip aborted records.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, FetchRequest, TopicName};
use tokio::sync::watch;
use uuid::Uuid;

use super::{ApiSupport, RequestContext};
use crate::kafka::errors::storage_error_code;
use crate::kafka::fetch_encoding::{FetchOut, PartitionOut, TopicOut};
use crate::kafka::fetch_session::{FetchTarget, SessionMode, TopicKey};

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::Fetch,
    min: 4,
    max: 17,
};

/// Longest long-poll honoured, whatever the client asks.
const MAX_WAIT_CAP: Duration = Duration::from_secs(60);

/// One partition to read, resolved against the metadata.
#[derive(Debug, Clone)]
struct Wanted {
    target: FetchTarget,
    topic_id: Option<Uuid>,
    /// isolation_level 1: only up to the last stable offset, with the aborted transactions.
    read_committed: bool,
}

/// What one partition read returned.
#[derive(Debug)]
struct Read {
    error: Option<ResponseError>,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// For read_committed: (producer id, first offset) of aborted transactions in the range.
    aborted: Option<Vec<(i64, i64)>>,
    batches: Vec<Bytes>,
    bytes: usize,
    watch: Option<watch::Receiver<u64>>,
}

impl Read {
    fn error(code: ResponseError) -> Self {
        Read {
            error: Some(code),
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted: None,
            batches: Vec::new(),
            bytes: 0,
            watch: None,
        }
    }
}

pub async fn handle(ctx: &RequestContext<'_>, request: FetchRequest) -> FetchOut {
    let by_id = ctx.version >= 13;
    let key = |name: &TopicName, id: Uuid| TopicKey {
        name: if by_id {
            String::new()
        } else {
            name.0.to_string()
        },
        id: if by_id { id } else { Uuid::nil() },
    };
    let requested: Vec<FetchTarget> = request
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| FetchTarget {
                topic: key(&t.topic, t.topic_id),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
            })
        })
        .collect();
    let forgotten: Vec<(TopicKey, i32)> = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (key(&t.topic, t.topic_id), *p))
        })
        .collect();
    // Sessions are for consumers; a request from a follower replica would not use them.
    let begun = ctx.shard.fetch_sessions.borrow_mut().begin(
        request.session_id,
        request.session_epoch,
        requested,
        forgotten,
    );
    let (mode, targets) = match begun {
        Ok(begun) => begun,
        Err(code) => {
            return FetchOut {
                error_code: code.code(),
                ..FetchOut::default()
            };
        }
    };
    let snapshot = ctx.shard.ctx.metadata.load_full();
    let wanted: Vec<Wanted> = targets
        .into_iter()
        .map(|target| {
            let info = if by_id {
                snapshot.topic_by_id(&target.topic.id)
            } else {
                snapshot.topic(&target.topic.name)
            };
            let topic_id = info
                .filter(|t| target.partition >= 0 && target.partition < t.partitions)
                .map(|t| t.id);
            Wanted {
                target,
                topic_id,
                read_committed: request.isolation_level == 1,
            }
        })
        .collect();
    let min_bytes = request.min_bytes.max(0) as usize;
    let max_bytes = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let reads = read_until_enough(ctx, &wanted, min_bytes, wait).await;
    let response = build_response(ctx, mode, &wanted, reads, max_bytes);
    crate::metrics::fetched(&snapshot, &response);
    response
}

/// Reads every partition, and again whenever a high watermark moves, until `min_bytes` are
/// there, an error occurred, or `wait` is over.
async fn read_until_enough(
    ctx: &RequestContext<'_>,
    wanted: &[Wanted],
    min_bytes: usize,
    wait: Duration,
) -> Vec<Read> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut shutdown = ctx.shard.ctx.shutdown.clone();
    loop {
        let reads = read_all(ctx, wanted).await;
        let total: usize = reads.iter().map(|r| r.bytes).sum();
        let failed = reads.iter().any(|r| r.error.is_some());
        if total >= min_bytes.max(1) || failed || tokio::time::Instant::now() >= deadline {
            return reads;
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
    }
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
            let (index, offset, max_bytes, read_committed) = (
                w.target.partition,
                w.target.offset,
                w.target.max_bytes.max(0) as usize,
                w.read_committed,
            );
            let owner = broker.shards.owner(&topic_id, index);
            broker
                .shards
                .call(owner, move |shard| async move {
                    let Some(partition) = shard.partition(&topic_id, index) else {
                        return Read::error(ResponseError::NotLeaderOrFollower);
                    };
                    // Subscribe before reading, so data committed in between still wakes us.
                    let watch = partition.watch_high_watermark();
                    let log = &partition.log;
                    let high_watermark = log.high_watermark();
                    let stable = partition.last_stable_offset();
                    let upper = if read_committed {
                        stable
                    } else {
                        high_watermark
                    };
                    let base = Read {
                        error: None,
                        high_watermark: high_watermark as i64,
                        last_stable_offset: stable as i64,
                        log_start_offset: log.log_start_offset() as i64,
                        aborted: None,
                        batches: Vec::new(),
                        bytes: 0,
                        watch: Some(watch),
                    };
                    if offset < 0 {
                        return Read {
                            error: Some(ResponseError::OffsetOutOfRange),
                            ..base
                        };
                    }
                    match log.read(offset as u64, max_bytes.max(1), upper).await {
                        Ok(read) => {
                            let bytes = read.total_bytes();
                            let aborted = read_committed.then(|| {
                                partition
                                    .producers
                                    .borrow()
                                    .aborted_between(offset, read.next_offset as i64 - 1)
                            });
                            Read {
                                batches: read.batches,
                                bytes,
                                aborted,
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
    mode: SessionMode,
    wanted: &[Wanted],
    reads: Vec<Read>,
    max_bytes: usize,
) -> FetchOut {
    let mut topics: Vec<TopicOut> = Vec::new();
    let mut budget = max_bytes;
    let mut first = true;
    let mut sessions = ctx.shard.fetch_sessions.borrow_mut();
    for (w, read) in wanted.iter().zip(reads) {
        // KIP-74: the response holds at most max_bytes of records, except that the first batch
        // of the first non-empty partition is returned whole even when it alone is larger (so
        // a consumer always progresses). A partition read past the budget is cut after the
        // batches that fit.
        let mut records = Vec::new();
        if read.bytes > 0 {
            let mut used = 0usize;
            for batch in read.batches {
                let whole_first = first && records.is_empty();
                if !whole_first && used + batch.len() > budget {
                    break;
                }
                used += batch.len();
                records.push(batch);
            }
            if !records.is_empty() {
                first = false;
                budget = budget.saturating_sub(used);
            }
        }
        let news = !records.is_empty() || read.error.is_some();
        if !sessions.note_sent(
            mode,
            &w.target,
            read.high_watermark,
            read.log_start_offset,
            news,
        ) {
            continue;
        }
        let partition = PartitionOut {
            index: w.target.partition,
            error_code: read.error.map(|e| e.code()).unwrap_or(0),
            high_watermark: read.high_watermark,
            last_stable_offset: read.last_stable_offset,
            log_start_offset: read.log_start_offset,
            aborted_transactions: read.aborted,
            preferred_read_replica: -1,
            records,
        };
        let same_topic = topics
            .last()
            .is_some_and(|t| t.name == w.target.topic.name && t.id == w.target.topic.id);
        if !same_topic {
            topics.push(TopicOut {
                name: w.target.topic.name.clone(),
                id: w.target.topic.id,
                partitions: Vec::new(),
            });
        }
        if let Some(topic) = topics.last_mut() {
            topic.partitions.push(partition);
        }
    }
    let session_id = match mode {
        SessionMode::Sessionless => 0,
        SessionMode::Full { id } | SessionMode::Incremental { id } => id,
    };
    FetchOut {
        session_id,
        topics,
        ..FetchOut::default()
    }
}
