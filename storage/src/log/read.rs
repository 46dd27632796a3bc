//! Reads: whole batches from an offset, as `Bytes` ready for a vectored socket write.
//!
//! Hot path: the tail cache, no I/O, no copy. Cold path: one aligned O_DIRECT read of at least
//! `read_ahead_bytes` at the indexed position, frozen into `Bytes` and sliced per batch; the
//! buffer is kept as a read-ahead window, so a sequential consumer issues one device read per
//! window, not per fetch. A reader that continues where its last window ended also gets the next
//! window read in the background (a spawned task) while it sends this one, so disk reads overlap
//! the network and the client. Batches read from disk are CRC-checked before they are served;
//! those of a prefetched window are checked by the prefetch task, so that work too is done while
//! the consumer is busy with the last answer, not while it waits for the next.

use std::ops::Range;
use std::rc::Rc;

use bytes::Bytes;

use super::{Inner, PartitionLog, TimestampMatch};
use crate::batch::BatchHeader;
use crate::error::{BatchError, Result, StorageError};
use crate::io::File;
use crate::limits::{align_down, align_up, BATCH_BYTES_MAX, BATCH_LENGTH_FIELD_END};

/// The answer to a read.
#[derive(Debug, Clone, Default)]
pub struct ReadBatches {
    /// Whole batches in offset order; the first contains the requested offset.
    pub batches: Vec<Bytes>,
    /// The offset after the last batch returned (the requested offset if none).
    pub next_offset: u64,
}

impl ReadBatches {
    pub fn total_bytes(&self) -> usize {
        self.batches.iter().map(|b| b.len()).sum()
    }
}

/// Bytes read from a segment: `data` starts at the aligned `file_pos`; the batches lying wholly
/// in `verified` (indexes into `data`) have had their CRC checked already.
#[derive(Debug, Clone)]
struct Window {
    file_pos: u64,
    data: Bytes,
    verified: Range<usize>,
}

impl Window {
    fn unverified(file_pos: u64, data: Bytes) -> Self {
        Window {
            file_pos,
            data,
            verified: 0..0,
        }
    }

    /// Fully validates the batch at `at` (window-relative, `len` bytes), or only its framing
    /// when its CRC was checked when the window was read ahead.
    fn parse(&self, at: usize, len: usize) -> std::result::Result<BatchHeader, BatchError> {
        let batch = &self.data[at..at + len];
        if self.verified.start <= at && at + len <= self.verified.end {
            BatchHeader::parse_framing(batch)
        } else {
            BatchHeader::parse(batch)
        }
    }
}

/// The buffer of the last cold read, kept for the next sequential one.
#[derive(Debug)]
pub(crate) struct ReadAhead {
    segment_base: u64,
    window: Window,
    /// Where the next sequential read will start: the first batch that does not lie wholly in
    /// the window (block-aligned down), or the end of what was readable.
    next_pos: u64,
    /// The window at `next_pos`, being read in the background. Only a reader that has read
    /// sequentially once already gets one, so random reads do not double the disk traffic.
    prefetch: Option<Prefetch>,
}

/// A background read of the next window, whose batches the task also CRC-checks. Dropping it
/// discards the result (truncation and deletion drop the whole `ReadAhead`, so stale bytes are
/// never served).
#[derive(Debug)]
struct Prefetch {
    file_pos: u64,
    task: PrefetchTask,
}

type PrefetchTask = tokio::task::JoinHandle<std::io::Result<Window>>;

/// Where a cold read must look.
struct ColdTarget {
    segment_base: u64,
    file: Rc<File>,
    /// Position to start parsing from (at or before the wanted batch).
    position: u64,
    /// The base offset of the batch at `position` (from the index).
    position_offset: u64,
    /// Bytes of the segment that are in the file.
    readable_len: u64,
    segment_next_offset: u64,
}

impl PartitionLog {
    /// Reads whole batches starting with the one that contains `offset`, up to `max_bytes`
    /// (always at least one batch if one is available, as Kafka's fetch does), never including
    /// a batch that reaches past `upper_bound` (e.g. the high watermark) or the log end.
    ///
    /// `offset` must lie within `[log_start_offset, log_end_offset]`.
    pub async fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        upper_bound: u64,
    ) -> Result<ReadBatches> {
        self.inner.borrow().check_readable(offset)?;
        self.read_unchecked(offset, max_bytes, upper_bound).await
    }

    /// `read` without the log-start check (internal walks may start below it).
    pub(super) async fn read_unchecked(
        &self,
        offset: u64,
        max_bytes: usize,
        upper_bound: u64,
    ) -> Result<ReadBatches> {
        let mut out = ReadBatches {
            batches: Vec::new(),
            next_offset: offset,
        };
        let bound = {
            let inner = self.inner.borrow();
            let bound = upper_bound.min(inner.log_end_offset);
            if offset >= bound {
                return Ok(out);
            }
            if inner
                .cache
                .start_offset()
                .is_some_and(|start| start <= offset)
            {
                out.next_offset = inner.cache.read(offset, max_bytes, bound, &mut out.batches);
                crate::metrics::cache_hit();
                return Ok(out);
            }
            bound
        };
        crate::metrics::cache_miss();
        let mut want = offset;
        let mut total = 0usize;
        while want < bound && total < max_bytes {
            let Some(target) = self.cold_target(want)? else {
                break;
            };
            let before = out.batches.len();
            let next = self
                .read_segment(
                    &target,
                    want,
                    max_bytes,
                    bound,
                    &mut total,
                    &mut out.batches,
                )
                .await?;
            out.next_offset = next;
            if out.batches.len() == before {
                if next >= target.segment_next_offset && want < target.segment_next_offset {
                    want = target.segment_next_offset;
                    continue;
                }
                break;
            }
            // Continue into the next segment only if this one was exhausted.
            if next < target.segment_next_offset {
                break;
            }
            want = next;
            // Cached data is served on the next call; stop at the cache boundary.
            let cached = self
                .inner
                .borrow()
                .cache
                .start_offset()
                .is_some_and(|s| s <= want);
            if cached {
                break;
            }
        }
        Ok(out)
    }

    fn cold_target(&self, offset: u64) -> Result<Option<ColdTarget>> {
        let inner = self.inner.borrow();
        let Some((_, seg)) = inner.segments.range(..=offset).next_back() else {
            return Ok(None);
        };
        if offset >= seg.next_offset {
            return Ok(None);
        }
        let Some(file) = seg.file.clone() else {
            return Ok(None);
        };
        let (relative, position) = seg.offset_index.floor((offset - seg.base_offset) as u32);
        Ok(Some(ColdTarget {
            segment_base: seg.base_offset,
            file,
            position,
            position_offset: seg.base_offset + relative as u64,
            readable_len: seg.written.min(seg.size),
            segment_next_offset: seg.next_offset,
        }))
    }

    /// Reads batches of one segment from `target.position`, skipping those before `want`.
    async fn read_segment(
        &self,
        target: &ColdTarget,
        want: u64,
        max_bytes: usize,
        bound: u64,
        total: &mut usize,
        out: &mut Vec<Bytes>,
    ) -> Result<u64> {
        let mut position = target.position;
        let mut next_offset = want;
        // Base offsets sit outside the CRC: check that every batch continues the one before, so
        // a damaged offset is reported, never served or looped on.
        let mut expected_base = target.position_offset;
        let mut kept = self.window_at(target.segment_base, position);
        loop {
            if position >= target.readable_len {
                return Ok(next_offset);
            }
            let fresh = kept.is_none();
            let window = match kept.take() {
                Some(w) => w,
                None => self.read_window(target, position, max_bytes).await?,
            };
            let bytes = &window.data;
            let mut at = (position - window.file_pos) as usize;
            let mut progressed = false;
            while at + BATCH_LENGTH_FIELD_END <= bytes.len() && position < target.readable_len {
                let total_len = BatchHeader::framed_len(&bytes[at..])
                    .map_err(|e| self.corrupt(target, position, e.to_string()))?;
                if at + total_len > bytes.len() {
                    break;
                }
                let header = window
                    .parse(at, total_len)
                    .map_err(|e| self.corrupt(target, position, e.to_string()))?;
                if header.base_offset != expected_base as i64 {
                    return Err(self.corrupt(
                        target,
                        position,
                        format!(
                            "batch base offset {} where {expected_base} was expected",
                            header.base_offset
                        ),
                    ));
                }
                let batch_next = expected_base + header.offset_count();
                expected_base = batch_next;
                if batch_next > want {
                    if batch_next > bound {
                        return Ok(next_offset);
                    }
                    if !out.is_empty() && *total + total_len > max_bytes {
                        return Ok(next_offset);
                    }
                    out.push(bytes.slice(at..at + total_len));
                    *total += total_len;
                    next_offset = batch_next;
                    if *total >= max_bytes {
                        return Ok(next_offset);
                    }
                }
                at += total_len;
                position += total_len as u64;
                progressed = true;
            }
            if position < target.readable_len && fresh && !progressed {
                // A read sized for this very batch still does not hold it.
                return Err(self.corrupt(
                    target,
                    position,
                    "batch extends past the written data".into(),
                ));
            }
            // Otherwise the window ended inside a batch (or was used up): read on from here.
        }
    }

    fn window_at(&self, segment_base: u64, position: u64) -> Option<Window> {
        let inner = self.inner.borrow();
        let r = inner.read_ahead.as_ref()?;
        let w = &r.window;
        let inside = r.segment_base == segment_base
            && position >= w.file_pos
            && position + BATCH_LENGTH_FIELD_END as u64 <= w.file_pos + w.data.len() as u64;
        inside.then(|| w.clone())
    }

    /// One aligned read at `position`, big enough for the batch there, `max_bytes` and the
    /// read-ahead size; stored as the read-ahead window. A sequential reader finds it already
    /// read (or under way) by the prefetch the previous window started, and starts the next.
    async fn read_window(
        &self,
        target: &ColdTarget,
        position: u64,
        max_bytes: usize,
    ) -> Result<Window> {
        let file_pos = align_down(position);
        let skew = (position - file_pos) as usize;
        // Learn the size of the batch at `position` first if it may exceed the read.
        let read_ahead_bytes = self.config.borrow().read_ahead_bytes;
        let mut want = read_ahead_bytes.max(max_bytes.min(BATCH_BYTES_MAX)) + skew;
        let readable_end = align_up(target.readable_len);
        want = want.min((readable_end - file_pos) as usize);
        let (sequential, prefetched) = self.take_prefetch(target.segment_base, file_pos);
        let prefetched = match prefetched {
            Some(task) => task.await.ok().and_then(|read| read.ok()),
            None => None,
        };
        let mut window = match prefetched {
            Some(window) if window.data.len() >= skew + BATCH_LENGTH_FIELD_END => {
                crate::metrics::read_prefetched();
                window
            }
            _ => Window::unverified(
                file_pos,
                self.read_exact_window(target, file_pos, want).await?,
            ),
        };
        // (`framed_len` refuses a slice too short to hold a length field.)
        let at_skew = window.data.get(skew..).unwrap_or_default();
        if let Ok(batch_len) = BatchHeader::framed_len(at_skew) {
            if skew + batch_len > window.data.len() {
                let bigger = (skew + batch_len).min((readable_end - file_pos) as usize);
                let data = self.read_exact_window(target, file_pos, bigger).await?;
                window = Window::unverified(file_pos, data);
            }
        }
        let next_batch = next_batch_position(file_pos, skew, &window.data, target.readable_len);
        let next_pos = align_down(next_batch);
        // Only a whole window of written data is worth a prefetch: near the end of the log a
        // reader is about to reach the tail cache, and a short window would be read again.
        let prefetch =
            (sequential && next_pos > file_pos && next_pos + want as u64 <= target.readable_len)
                .then(|| self.start_prefetch(target, next_batch, want));
        self.inner.borrow_mut().read_ahead = Some(ReadAhead {
            segment_base: target.segment_base,
            window: window.clone(),
            next_pos,
            prefetch,
        });
        Ok(window)
    }

    /// Whether a read at `file_pos` continues the last window (sequential), and the window
    /// prefetched for it, if one was and its read succeeded (a failed one is read again, in
    /// the foreground, so its error surfaces there).
    fn take_prefetch(&self, segment_base: u64, file_pos: u64) -> (bool, Option<PrefetchTask>) {
        let mut inner = self.inner.borrow_mut();
        let Some(window) = inner.read_ahead.as_mut() else {
            return (false, None);
        };
        if window.segment_base != segment_base || window.next_pos != file_pos {
            return (false, None);
        }
        let task = window
            .prefetch
            .take()
            .filter(|p| p.file_pos == file_pos)
            .map(|p| p.task);
        (true, task)
    }

    /// Reads `len` bytes from the block holding `first_batch` in a task of its own, while the
    /// current window is served and sent, and checks the CRCs of the batches it got whole.
    fn start_prefetch(&self, target: &ColdTarget, first_batch: u64, len: usize) -> Prefetch {
        let file = target.file.clone();
        let pool = self.read_buffers.clone();
        let readable_len = target.readable_len;
        let file_pos = align_down(first_batch);
        let skew = (first_batch - file_pos) as usize;
        let len = len.min((align_up(readable_len) - file_pos) as usize);
        let task = tokio::task::spawn_local(async move {
            let buf = pool.take(align_up(len as u64) as usize);
            let (res, buf) = file.read_at(buf, file_pos).await;
            let n = res?;
            let valid = (n as u64).min(readable_len.saturating_sub(file_pos)) as usize;
            let data = pool.freeze(buf, valid);
            let verified = skew..verified_end(&data, skew);
            Ok(Window {
                file_pos,
                data,
                verified,
            })
        });
        Prefetch { file_pos, task }
    }

    async fn read_exact_window(
        &self,
        target: &ColdTarget,
        file_pos: u64,
        len: usize,
    ) -> Result<Bytes> {
        let buf = self.read_buffers.take(align_up(len as u64) as usize);
        let (res, buf) = target.file.read_at(buf, file_pos).await;
        let n =
            res.map_err(|e| StorageError::io(format!("read {}", target.file.path().display()), e))?;
        let valid = (n as u64).min(target.readable_len.saturating_sub(file_pos)) as usize;
        Ok(self.read_buffers.freeze(buf, valid))
    }

    fn corrupt(&self, target: &ColdTarget, position: u64, reason: String) -> StorageError {
        tracing::error!(path = %target.file.path().display(), position, %reason, "corrupt batch read back");
        StorageError::Corrupt {
            path: target.file.path().to_path_buf(),
            position,
            reason,
        }
    }

    /// The first batch whose max timestamp is at or after `timestamp` (Kafka's ListOffsets by
    /// time works at batch granularity here; the caller finds the exact record inside).
    pub async fn find_by_timestamp(&self, timestamp: i64) -> Result<Option<TimestampMatch>> {
        let candidates: Vec<(u64, u64)> = {
            let inner = self.inner.borrow();
            inner
                .segments
                .values()
                .filter(|s| !s.is_empty() && s.max_timestamp >= timestamp)
                .map(|s| {
                    let from = s.base_offset + s.time_index.lookup(timestamp) as u64;
                    (from.max(inner.log_start_offset), s.next_offset)
                })
                .collect()
        };
        for (mut offset, segment_end) in candidates {
            while offset < segment_end {
                let read = self.read(offset, 256 * 1024, segment_end).await?;
                if read.batches.is_empty() {
                    break;
                }
                for batch in &read.batches {
                    let header = BatchHeader::decode(batch)?;
                    if header.max_timestamp >= timestamp && header.last_offset() as u64 >= offset {
                        return Ok(Some(TimestampMatch {
                            base_offset: header.base_offset as u64,
                            last_offset: header.last_offset() as u64,
                            max_timestamp: header.max_timestamp,
                            batch: batch.clone(),
                        }));
                    }
                }
                offset = read.next_offset;
            }
        }
        Ok(None)
    }
}

/// Where a sequential reader's next batch lies after `data` (read at `file_pos`, its first
/// batch at `skew`): the first batch that `data` does not hold whole.
fn next_batch_position(file_pos: u64, skew: usize, data: &[u8], readable_len: u64) -> u64 {
    let end = end_of_batches(data, skew, |_| true);
    (file_pos + end as u64).min(readable_len)
}

/// The end of the run of whole, valid batches (CRC included) in `data` from `start`. Whatever
/// follows (a partial batch, or damage) is left to the reader, which validates it in full and
/// reports what it finds.
fn verified_end(data: &[u8], start: usize) -> usize {
    end_of_batches(data, start, |batch| BatchHeader::parse(batch).is_ok())
}

/// Walks the batches in `data` from `start` while each lies wholly in `data` and `accept`s;
/// returns where the walk stopped.
fn end_of_batches(data: &[u8], start: usize, accept: impl Fn(&[u8]) -> bool) -> usize {
    let mut at = start;
    while at + BATCH_LENGTH_FIELD_END <= data.len() {
        match BatchHeader::framed_len(&data[at..]) {
            Ok(len) if at + len <= data.len() && accept(&data[at..at + len]) => at += len,
            _ => break,
        }
    }
    at
}

impl Inner {
    fn check_readable(&self, offset: u64) -> Result<()> {
        if self.closed {
            return Err(StorageError::Closed);
        }
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.log_end_offset,
            });
        }
        Ok(())
    }
}
