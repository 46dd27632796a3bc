//! Changing a log's extent: truncation (for Raft), DeleteRecords, retention, checkpoints and
//! close. Each holds the I/O lock so no flush is in flight while segments change, and each
//! makes the new state durable before deleting data, so a crash in between leaves the state
//! file pointing at data that still exists, never the reverse.

use super::recovery::delete_segment_files;
use super::segment::Staging;
use super::{now_ms, PartitionLog};
use crate::aligned::AlignedBuf;
use crate::error::{Result, StorageError};
use crate::limits::align_down;

/// What `enforce_retention` removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: u64,
}

impl PartitionLog {
    /// Removes every batch at or after `offset`, which must be a batch boundary within
    /// `[log_start_offset, log_end_offset]`. Durable before it returns. Used by Raft followers
    /// to drop a divergent suffix.
    pub async fn truncate_to(&self, offset: u64) -> Result<()> {
        let _io = self.io_lock.lock().await;
        {
            let inner = self.inner.borrow();
            inner.check_writable()?;
            if offset == inner.log_end_offset {
                return Ok(());
            }
            if offset < inner.log_start_offset || offset > inner.log_end_offset {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start_offset: inner.log_start_offset,
                    log_end_offset: inner.log_end_offset,
                });
            }
        }
        // Everything appended so far goes to disk first, so the truncation works on files only.
        self.flush_locked().await?;
        let position = self.batch_position(offset).await?;
        let (target_base, doomed, file) = {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            let Some((&target_base, _)) = inner.segments.range(..=offset).next_back() else {
                return Err(StorageError::InvalidArgument(format!(
                    "no segment holds offset {offset}"
                )));
            };
            let doomed: Vec<u64> = inner
                .segments
                .range(target_base + 1..)
                .map(|(b, _)| *b)
                .collect();
            for base in &doomed {
                inner.segments.remove(base);
            }
            let Some(seg) = inner.segments.get_mut(&target_base) else {
                unreachable!()
            };
            let relative = (offset - target_base) as u32;
            seg.offset_index.truncate_from_offset(relative);
            seg.time_index.truncate_from_offset(relative);
            seg.size = position;
            seg.written = position;
            seg.next_offset = offset;
            seg.sealed = false;
            seg.bytes_since_index_entry = 0;
            if seg.offset_of_max_timestamp >= offset {
                let (ts, _) = seg.time_index.last().unwrap_or((i64::MIN, 0));
                seg.max_timestamp = ts;
                seg.offset_of_max_timestamp = target_base;
            }
            if seg.is_empty() {
                seg.first_batch_timestamp = None;
            }
            inner.log_end_offset = offset;
            inner.written_offset = inner.written_offset.min(offset);
            inner.durable_offset = inner.durable_offset.min(offset);
            inner.high_watermark = inner.high_watermark.min(offset);
            inner.recovery_point = inner.recovery_point.min(target_base);
            inner.epochs.retain(|e| e.start_offset < offset);
            inner.cache.truncate_from(offset);
            inner.read_ahead = None;
            (target_base, doomed, seg.file.clone())
        };
        self.store_state().await?;
        if let Some(file) = file {
            file.set_len(position)
                .await
                .map_err(|e| self.poison("truncate segment", e))?;
            file.sync_data()
                .await
                .map_err(|e| self.poison("fdatasync truncated segment", e))?;
            let tail_start = align_down(position);
            let mut staging = Staging::new(tail_start);
            if position > tail_start {
                let (res, buf) = file
                    .read_at(AlignedBuf::with_capacity(4096), tail_start)
                    .await;
                let n = res.map_err(|e| StorageError::io("read tail block", e))?;
                let want = (position - tail_start) as usize;
                if n < want {
                    return Err(self.poison(
                        "read tail block",
                        std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
                    ));
                }
                let mut inner = self.inner.borrow_mut();
                staging.append(&buf.as_slice()[..want], &mut inner.chunk_pool);
            }
            let mut inner = self.inner.borrow_mut();
            if let Some(seg) = inner.segments.get_mut(&target_base) {
                seg.staging = Some(staging);
                seg.allocated = position;
                seg.initialized = seg.initialized.min(position);
            }
        }
        // The segment may have been closed: its index files are stale now.
        {
            let (index, timeindex) = {
                let inner = self.inner.borrow();
                let Some(seg) = inner.segments.get(&target_base) else {
                    unreachable!()
                };
                (seg.index_path(), seg.timeindex_path())
            };
            for path in [index, timeindex] {
                self.backend
                    .remove_file(&path)
                    .await
                    .map_err(|e| StorageError::io("remove stale index", e))?;
            }
        }
        for base in doomed {
            delete_segment_files(&self.backend, &self.dir, base).await?;
        }
        self.backend
            .sync_dir(&self.dir)
            .await
            .map_err(|e| StorageError::io("sync log directory", e))?;
        Ok(())
    }

    /// Byte position of the batch that starts at `offset` in its segment; an error if `offset`
    /// falls inside a batch.
    async fn batch_position(&self, offset: u64) -> Result<u64> {
        let (mut at, mut position) = {
            let inner = self.inner.borrow();
            let Some((_, seg)) = inner.segments.range(..=offset).next_back() else {
                return Err(StorageError::InvalidArgument(format!(
                    "no segment holds offset {offset}"
                )));
            };
            let (relative, position) = seg.offset_index.floor((offset - seg.base_offset) as u32);
            (seg.base_offset + relative as u64, position)
        };
        // Walk batch by batch from the indexed position; at most one index interval.
        while at < offset {
            let read = self.read_unchecked(at, 1, offset).await?;
            let Some(batch) = read.batches.first() else {
                break;
            };
            position += batch.len() as u64;
            at = read.next_offset;
        }
        if at != offset {
            return Err(StorageError::InvalidArgument(format!(
                "offset {offset} is inside a batch; truncate at a batch boundary"
            )));
        }
        Ok(position)
    }

    /// Moves the log start offset to `offset` (Kafka's DeleteRecords) and deletes the segments
    /// wholly below it. Returns the new log start offset.
    pub async fn delete_records_before(&self, offset: u64) -> Result<u64> {
        let _io = self.io_lock.lock().await;
        {
            let mut inner = self.inner.borrow_mut();
            inner.check_writable()?;
            if offset > inner.log_end_offset {
                return Err(StorageError::OffsetOutOfRange {
                    offset,
                    log_start_offset: inner.log_start_offset,
                    log_end_offset: inner.log_end_offset,
                });
            }
            if offset <= inner.log_start_offset {
                return Ok(inner.log_start_offset);
            }
            inner.log_start_offset = offset;
            inner.high_watermark = inner.high_watermark.max(offset);
            inner.cache.remove_before(offset);
        }
        self.store_state().await?;
        self.delete_segments_below_start().await?;
        Ok(self.log_start_offset())
    }

    /// Deletes closed segments by `retention.ms` (newest batch older than `now - retention.ms`)
    /// and `retention.bytes` (oldest first while the log is larger), never the active segment.
    pub async fn enforce_retention(&self) -> Result<RetentionOutcome> {
        let _io = self.io_lock.lock().await;
        let now = now_ms();
        let (new_start, deleted, bytes) = {
            let inner = self.inner.borrow();
            inner.check_writable()?;
            let mut total: u64 = inner.segments.values().map(|s| s.size).sum();
            let mut new_start = inner.log_start_offset;
            let (mut deleted, mut bytes) = (0, 0);
            let active = inner.segments.keys().next_back().copied();
            let (retention_ms, retention_bytes) = {
                let config = self.config.borrow();
                (config.retention_ms, config.retention_bytes)
            };
            for seg in inner.segments.values() {
                if Some(seg.base_offset) == active || !seg.is_closed() {
                    break;
                }
                let expired = retention_ms.is_some_and(|ms| {
                    seg.max_timestamp != i64::MIN
                        && seg.max_timestamp < now.saturating_sub(ms as i64)
                });
                let oversized = retention_bytes.is_some_and(|max| total - seg.size >= max);
                if !(expired || oversized) {
                    break;
                }
                total -= seg.size;
                bytes += seg.size;
                deleted += 1;
                new_start = new_start.max(seg.next_offset);
            }
            (new_start, deleted, bytes)
        };
        if deleted > 0 {
            {
                let mut inner = self.inner.borrow_mut();
                inner.log_start_offset = new_start;
                inner.high_watermark = inner.high_watermark.max(new_start);
                inner.cache.remove_before(new_start);
            }
            self.store_state().await?;
            self.delete_segments_below_start().await?;
            tracing::info!(dir = %self.dir.display(), deleted, bytes, log_start = new_start, "retention deleted segments");
        }
        Ok(RetentionOutcome {
            segments_deleted: deleted,
            bytes_deleted: bytes,
            log_start_offset: self.log_start_offset(),
        })
    }

    /// Deletes closed segments that end at or below the log start (the state file already says
    /// so, so a crash midway is finished by recovery).
    async fn delete_segments_below_start(&self) -> Result<()> {
        let doomed: Vec<u64> = {
            let mut inner = self.inner.borrow_mut();
            let start = inner.log_start_offset;
            let active = inner.segments.keys().next_back().copied();
            let doomed: Vec<u64> = inner
                .segments
                .values()
                .filter(|s| {
                    s.next_offset <= start && s.is_closed() && Some(s.base_offset) != active
                })
                .map(|s| s.base_offset)
                .collect();
            for base in &doomed {
                inner.segments.remove(base);
            }
            inner.read_ahead = None;
            doomed
        };
        for base in doomed {
            delete_segment_files(&self.backend, &self.dir, base).await?;
        }
        Ok(())
    }

    /// Persists the log start, recovery point, high watermark and epochs now.
    pub async fn checkpoint(&self) -> Result<()> {
        let _io = self.io_lock.lock().await;
        self.inner.borrow().check_writable()?;
        self.store_state().await
    }

    /// Flushes, trims the active segment's preallocation, writes its indexes and a checkpoint
    /// that lets the next open skip scanning, then refuses further calls.
    pub async fn close(&self) -> Result<()> {
        let _io = self.io_lock.lock().await;
        if self.inner.borrow().closed {
            return Ok(());
        }
        self.flush_locked().await?;
        let active = self.inner.borrow().segments.keys().next_back().copied();
        if let Some(base) = active {
            let (file, size) = {
                let inner = self.inner.borrow();
                let Some(seg) = inner.segments.get(&base) else {
                    unreachable!()
                };
                (seg.file.clone(), seg.size)
            };
            if let Some(file) = file {
                self.close_segment(base, &file, size).await?;
            }
        }
        {
            let mut inner = self.inner.borrow_mut();
            inner.recovery_point = inner.log_end_offset;
        }
        self.store_state().await?;
        let mut inner = self.inner.borrow_mut();
        inner.closed = true;
        inner.cache.clear();
        inner.read_ahead = None;
        Ok(())
    }
}
