//! A subscription: a task on the connection's shard that pushes one partition's committed
//! batches as SUBSCRIPTION_DATA frames, within the client's credit (NATIVE.md, "Flow control").
//!
//! ```text
//! loop: wait for credit > 0 -> on the owner shard: watch the high watermark, read whole
//!       batches from the position up to it, at most a read-ahead window -> nothing new:
//!       wait for the watch to move
//!       -> take the batches the credit covers (or one oversized batch when the credit is the
//!       whole window) -> [frame header, batch Bytes...] to the writer, no copy -> debit
//! ```

use std::cell::Cell;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use protocol::native::{
    encode_frame, encode_header, ErrorCode, Fallback, SubscriptionData, SubscriptionEnd,
    OP_SUBSCRIPTION_DATA, OP_SUBSCRIPTION_END, SUBSCRIPTION_DATA_FIXED_BYTES,
};
use storage::batch::BatchHeader;
use storage::StorageError;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use super::connection::Connection;
use super::handlers::NativeError;
use crate::kafka::errors::storage_error_code;
use crate::shard::Shard;

/// A subscription's credit: `available` bytes may be sent; `window` is the credit given at
/// SUBSCRIBE, the level at which one batch larger than the credit may still be sent.
#[derive(Debug)]
pub struct Credit {
    available: Cell<i64>,
    window: i64,
    granted: Notify,
}

impl Credit {
    pub fn new(window: u32) -> Credit {
        Credit {
            available: Cell::new(i64::from(window)),
            window: i64::from(window),
            granted: Notify::new(),
        }
    }

    /// GRANT_CREDIT: adds `bytes`, saturating at 2^32 - 1.
    pub fn grant(&self, bytes: u32) {
        let available = (self.available.get() + i64::from(bytes)).min(i64::from(u32::MAX));
        self.available.set(available);
        self.granted.notify_one();
    }

    fn available(&self) -> i64 {
        self.available.get()
    }

    fn debit(&self, bytes: usize) {
        self.available
            .set(self.available.get() - i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// How many of `batches` (in order) one data frame may carry now: as many whole batches as
    /// fit the credit; else the first alone if the credit is the whole window (the oversized
    /// case); else none. Never more than `frame_budget` bytes unless a single batch.
    pub fn admit(&self, batches: &[Bytes], frame_budget: usize) -> usize {
        let available = self.available();
        let mut total = 0usize;
        let mut count = 0;
        for batch in batches {
            let next = total + batch.len();
            if next as i64 > available || next > frame_budget {
                break;
            }
            total = next;
            count += 1;
        }
        if count == 0 && !batches.is_empty() && available >= self.window && available > 0 {
            return 1;
        }
        count
    }
}

/// Where a subscription reads, and what it does when its position leaves the log.
#[derive(Debug)]
pub struct Position {
    /// The topic's name, for metrics and logs.
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub next_offset: u64,
    pub fallback: Fallback,
}

/// One read on the owner shard.
struct Read {
    batches: Vec<Bytes>,
    high_watermark: u64,
    watch: watch::Receiver<u64>,
}

/// Why reading stopped.
enum ReadError {
    /// The partition is not open on its owner (deleted, or moved).
    Gone,
    /// The position is below the log start (retention or DeleteRecords passed it).
    OutOfRange {
        log_start: u64,
        high_watermark: u64,
    },
    Storage(StorageError),
}

/// Runs a subscription until it ends (the END frame is sent here) or is aborted.
pub async fn run(
    shard: Rc<Shard>,
    conn: Rc<Connection>,
    id: u32,
    credit: Rc<Credit>,
    mut position: Position,
) {
    let _open = crate::metrics::native::subscription_opened();
    let end = push(&shard, &conn, id, &credit, &mut position).await;
    if conn.remove_subscription(id, false) {
        tracing::debug!(peer = %conn.peer, subscription = id, code = %end.code, reason = %end.message, "subscription ended");
        let mut buf = BytesMut::new();
        let frame = SubscriptionEnd {
            subscription_id: id,
            error: end.code,
            message: end.message,
        };
        encode_frame(&mut buf, OP_SUBSCRIPTION_END, 0, &frame);
        conn.send(vec![buf.freeze()], None);
    }
}

async fn push(
    shard: &Rc<Shard>,
    conn: &Connection,
    id: u32,
    credit: &Credit,
    position: &mut Position,
) -> NativeError {
    // The records of a frame must fit in it with the frame's own fields.
    let frame_budget = (conn.frame_bytes_max as usize)
        .saturating_sub(protocol::native::limits::FRAME_LENGTH_MIN as usize)
        .saturating_sub(SUBSCRIPTION_DATA_FIXED_BYTES);
    loop {
        if conn.is_closed() {
            return NativeError::new(ErrorCode::NONE, "connection closed");
        }
        while credit.available() <= 0 {
            credit.granted.notified().await;
        }
        let ask = usize::try_from(credit.available())
            .unwrap_or(usize::MAX)
            .clamp(1, frame_budget.max(1));
        let mut read = match read(shard, position, ask).await {
            Ok(read) => read,
            Err(ReadError::Gone) => return gone(shard, position),
            Err(ReadError::OutOfRange {
                log_start,
                high_watermark,
            }) => {
                // Retention (or DeleteRecords) passed the position: the subscription's fallback.
                let next = match position.fallback {
                    Fallback::Earliest => log_start,
                    Fallback::Latest => high_watermark,
                    Fallback::Error => {
                        return NativeError::new(
                            ErrorCode::OFFSET_OUT_OF_RANGE,
                            format!(
                                "offset {} is outside [{log_start}, {high_watermark}]",
                                position.next_offset
                            ),
                        )
                    }
                };
                position.next_offset = next;
                continue;
            }
            Err(ReadError::Storage(e)) => {
                return NativeError::new(
                    ErrorCode::from_kafka(storage_error_code(&e).code()),
                    e.to_string(),
                )
            }
        };
        if read.batches.is_empty() {
            // Caught up: wait for the next commit. An error means the partition was closed;
            // the next read says whether it is gone.
            let _ = read.watch.changed().await;
            continue;
        }
        let count = credit.admit(&read.batches, frame_budget);
        if count == 0 {
            if read.batches[0].len() > frame_budget && credit.available() >= credit.window {
                return NativeError::new(
                    ErrorCode::MESSAGE_TOO_LARGE,
                    format!(
                        "a batch of {} bytes does not fit in a frame (native-max-frame-bytes)",
                        read.batches[0].len()
                    ),
                );
            }
            // Wait for the client to grant more, then read again (the cache makes it cheap).
            credit.granted.notified().await;
            continue;
        }
        read.batches.truncate(count);
        let Some(next_offset) = read
            .batches
            .last()
            .and_then(|b| BatchHeader::decode(b).ok())
            .map(|h| h.last_offset() + 1)
        else {
            return NativeError::new(ErrorCode::CORRUPT_MESSAGE, "unreadable batch header");
        };
        let records_len: usize = read.batches.iter().map(Bytes::len).sum();
        let mut head = BytesMut::with_capacity(32);
        encode_header(
            &mut head,
            OP_SUBSCRIPTION_DATA,
            0,
            SUBSCRIPTION_DATA_FIXED_BYTES + records_len,
        );
        SubscriptionData::encode_fixed(
            &mut head,
            id,
            read.high_watermark as i64,
            next_offset,
            records_len as u32,
        );
        let mut segments = Vec::with_capacity(read.batches.len() + 1);
        segments.push(head.freeze());
        segments.extend(read.batches);
        credit.debit(records_len);
        position.next_offset = next_offset.max(0) as u64;
        conn.send(segments, None);
        crate::metrics::bytes_out(&position.topic, records_len);
    }
}

/// Reads whole committed batches from the position, on the partition's owner shard.
async fn read(shard: &Rc<Shard>, position: &Position, max_bytes: usize) -> Result<Read, ReadError> {
    let (topic_id, index, offset) = (position.topic_id, position.partition, position.next_offset);
    let owner = shard.ctx.shards.owner(&topic_id, index);
    shard
        .ctx
        .shards
        .call(owner, move |shard| async move {
            let partition = shard.partition(&topic_id, index).ok_or(ReadError::Gone)?;
            // Watch before reading, so a commit in between still wakes the subscription.
            let watch = partition.watch_high_watermark();
            let high_watermark = partition.log.high_watermark();
            // One read-ahead window per frame, however much credit there is. A cold read sizes
            // its buffer by what it is asked for: asked for the whole credit (16 MiB from the
            // Rust client), every window was 16 MiB, too large for the log's pool of recycled
            // buffers, so each was allocated and faulted in afresh (half a GB across 8
            // partitions), and the next window could not be read while this frame was sent.
            let max_bytes = max_bytes.min(partition.log.config().read_ahead_bytes.max(1));
            let read = partition
                .log
                .read(offset, max_bytes, high_watermark)
                .await
                .map_err(|e| match e {
                    StorageError::OffsetOutOfRange { .. } => ReadError::OutOfRange {
                        log_start: partition.log.log_start_offset(),
                        high_watermark,
                    },
                    e => ReadError::Storage(e),
                })?;
            Ok(Read {
                batches: read.batches,
                high_watermark,
                watch,
            })
        })
        .await
        .unwrap_or(Err(ReadError::Gone))
}

fn gone(shard: &Shard, position: &Position) -> NativeError {
    if shard
        .ctx
        .metadata
        .load()
        .topic_by_id(&position.topic_id)
        .is_none()
    {
        NativeError::new(ErrorCode::UNKNOWN_TOPIC_ID, "the topic was deleted")
    } else {
        NativeError::new(
            ErrorCode::NOT_LEADER_OR_FOLLOWER,
            "the partition is not open on this broker",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(sizes: &[usize]) -> Vec<Bytes> {
        sizes.iter().map(|n| Bytes::from(vec![0u8; *n])).collect()
    }

    #[test]
    fn credit_admits_whole_batches_that_fit() {
        let credit = Credit::new(100);
        assert_eq!(credit.admit(&batches(&[40, 40, 40]), 1000), 2);
        credit.debit(80);
        // 20 left, window 100: a 40-byte batch waits.
        assert_eq!(credit.admit(&batches(&[40]), 1000), 0);
        credit.grant(80);
        assert_eq!(credit.admit(&batches(&[40, 40]), 1000), 2);
        // The frame budget caps a frame too.
        assert_eq!(credit.admit(&batches(&[40, 40]), 50), 1);
    }

    #[test]
    fn an_oversized_batch_goes_alone_when_the_credit_is_the_whole_window() {
        let credit = Credit::new(100);
        assert_eq!(credit.admit(&batches(&[250, 10]), 1000), 1);
        credit.debit(250);
        assert_eq!(credit.available(), -150);
        assert_eq!(credit.admit(&batches(&[10]), 1000), 0);
        // Granting back what was consumed restores the window; nothing more is needed.
        credit.grant(250);
        assert_eq!(credit.available(), 100);
        assert_eq!(credit.admit(&batches(&[250]), 1000), 1);
        // Below the window, an oversized batch waits.
        credit.debit(1);
        assert_eq!(credit.admit(&batches(&[250]), 1000), 0);
    }

    #[test]
    fn grants_saturate() {
        let credit = Credit::new(u32::MAX);
        credit.grant(u32::MAX);
        assert_eq!(credit.available(), i64::from(u32::MAX));
    }
}
