//! `PartitionLog`: one partition's log, a directory of segments.
//!
//! # Contract
//!
//! **Appended versus durable.** [`PartitionLog::append`] assigns offsets and makes a batch
//! readable at once (it sits in the tail cache and a staging buffer); it is *not* durable.
//! [`PartitionLog::flush`] makes everything appended before the call durable: written with
//! O_DIRECT and `fdatasync`ed (under `FlushPolicy::Always` the segment is opened O_DSYNC, so the
//! write is the sync), new segment files' directory entries synced. Only data at or below
//! [`PartitionLog::durable_offset`] survives a crash; Raft commit and acknowledgements must wait
//! for it ([`PartitionLog::wait_durable`] applies the configured [`FlushPolicy`]).
//!
//! **Concurrency.** A log is owned by one thread (it is `!Send`; share it with `Rc`). Every method
//! takes `&self`. `append` and the accessors are synchronous and may run at any time, including
//! while a flush is in flight. Flushes coalesce (group commit): appends that arrive while one
//! flush is writing are covered by the next one, which every waiting caller shares. `read` may
//! run concurrently with anything. Maintenance (`truncate_to`, `delete_records_before`,
//! `enforce_retention`, `checkpoint`, `close`) is serialised with flushes by an internal lock.
//! A log runs inside a tokio `LocalSet` (as [`crate::runtime::block_on`] sets up): sequential
//! cold reads prefetch the next window with `spawn_local`.
//!
//! **Alignment.** Files are opened with O_DIRECT; every write and read is a whole number of
//! `DIRECT_IO_ALIGNMENT` blocks at an aligned position from an aligned buffer. A flush rewrites
//! the partial last block. Callers never see any of this: batches go in and come out as bytes.
//!
//! **Failure.** A failed `fdatasync` or write poisons the log: it refuses appends and flushes
//! (the kernel may have dropped dirty data, so no retry can be trusted) until it is reopened,
//! which runs recovery. Running out of space while preallocating is not poisoning: appends fail
//! with `DiskFull` until a flush gets the space it needs.

pub mod maintenance;
mod read;
mod recovery;
mod segment;
mod zero_fill;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};

use crate::aligned::AlignedBuf;
use crate::batch::{self, ValidatedBatch};
use crate::cache::{CachedBatch, TailCache};
use crate::config::{FlushPolicy, LogConfig};
use crate::error::{Result, StorageError};
use crate::io::{Backend, OpenMode};
use crate::limits::{align_up, SEGMENT_OFFSET_SPAN_MAX};
use crate::state::{EpochEntry, PartitionState};

pub use read::ReadBatches;
use segment::{segment_open_mode, Segment};

/// What `append` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: u64,
    pub last_offset: u64,
    /// Max timestamp from the batch header.
    pub max_timestamp: i64,
    /// Bytes appended but not yet flushed, so the owner can flush before memory grows.
    pub unflushed_bytes: u64,
}

/// A batch found by [`PartitionLog::find_by_timestamp`].
#[derive(Debug, Clone)]
pub struct TimestampMatch {
    pub base_offset: u64,
    pub last_offset: u64,
    pub max_timestamp: i64,
    /// The whole batch, for callers that need the exact record.
    pub batch: Bytes,
}

/// Counters describing a log, for metrics and admin APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    pub log_start_offset: u64,
    pub log_end_offset: u64,
    pub durable_offset: u64,
    pub high_watermark: u64,
    pub size_bytes: u64,
    pub segments: usize,
    pub cache_bytes: usize,
}

/// One partition's log. See the module docs for the contract.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    /// Replaceable at run time ([`PartitionLog::set_config`]). Borrowed only for the length of
    /// one expression, never across an `.await`, so a config change can never meet a live borrow.
    config: RefCell<LogConfig>,
    backend: Backend,
    inner: RefCell<Inner>,
    /// Cold-read buffers, recycled when the bytes handed out are dropped.
    read_buffers: crate::buffer_pool::BufferPool,
    /// Serialises flushes and maintenance; FIFO, so a flush that queues behind another covers
    /// everything its waiters appended (group commit).
    io_lock: tokio::sync::Mutex<()>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    segments: BTreeMap<u64, Segment>,
    log_start_offset: u64,
    log_end_offset: u64,
    /// Everything below is on disk (written), though maybe not yet synced.
    written_offset: u64,
    durable_offset: u64,
    high_watermark: u64,
    recovery_point: u64,
    epochs: Vec<EpochEntry>,
    vote: Option<Bytes>,
    cache: TailCache,
    read_ahead: Option<read::ReadAhead>,
    chunk_pool: Vec<AlignedBuf>,
    poisoned: Option<String>,
    disk_full: bool,
    closed: bool,
    unflushed_messages: u64,
    unflushed_bytes: u64,
    first_unflushed_at: Option<Instant>,
    /// Wall-clock ms at which the active segment got its first batch in this process.
    active_started_ms: Option<i64>,
}

/// Spare staging chunks kept per log, so steady appends do not allocate (and fault in) fresh
/// memory: after each flush the pool keeps up to as many bytes as that flush wrote, so a busy
/// partition recycles its chunks and a quiet one holds little.
const CHUNK_POOL_MAX: usize = 16;
const CHUNK_POOL_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Cold-read buffers kept per log: enough for a read-ahead window in use while the next one
/// is read.
const READ_BUFFERS_MAX: usize = 4;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl PartitionLog {
    /// Opens the log in `dir` (creating it if needed) and recovers it: validates every batch past
    /// the recovery point, truncates a torn or corrupt tail, rebuilds missing or stale indexes.
    /// Never panics on any file content.
    pub async fn open(
        dir: impl Into<PathBuf>,
        config: LogConfig,
        backend: Backend,
    ) -> Result<Self> {
        let dir = dir.into();
        config.validate().map_err(StorageError::InvalidArgument)?;
        let inner = recovery::recover(&dir, &config, &backend).await?;
        Ok(PartitionLog {
            dir,
            config: RefCell::new(config),
            backend,
            inner: RefCell::new(inner),
            read_buffers: crate::buffer_pool::BufferPool::new(READ_BUFFERS_MAX),
            io_lock: tokio::sync::Mutex::new(()),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A copy of the current configuration (a copy, because [`PartitionLog::set_config`] may
    /// replace it at any time).
    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }

    /// Replaces the configuration of an open log (a topic config change). Validated like at
    /// `open`; an invalid config leaves the current one in place.
    ///
    /// Every setting is read where it is used, so the new values apply from the next append
    /// (segment.bytes, segment.ms, index.interval.bytes), flush decision (flush policy) or
    /// retention pass. The active segment is not rolled by the change itself. `cache_bytes`
    /// sizes the tail cache when the log is opened and only takes effect on the next open.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate().map_err(StorageError::InvalidArgument)?;
        *self.config.borrow_mut() = config;
        Ok(())
    }

    /// Name of the I/O backend in use (`io_uring` or `posix`).
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    pub fn log_start_offset(&self) -> u64 {
        self.inner.borrow().log_start_offset
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> u64 {
        self.inner.borrow().log_end_offset
    }

    /// Everything below this offset is on stable storage.
    pub fn durable_offset(&self) -> u64 {
        self.inner.borrow().durable_offset
    }

    pub fn high_watermark(&self) -> u64 {
        self.inner.borrow().high_watermark
    }

    /// Sets the high watermark (clamped to the log end; persisted at the next checkpoint).
    pub fn set_high_watermark(&self, offset: u64) {
        let mut inner = self.inner.borrow_mut();
        inner.high_watermark = offset.min(inner.log_end_offset).max(inner.log_start_offset);
    }

    /// Bytes appended but not yet durable (staged, or written and not synced).
    pub fn unflushed_bytes(&self) -> u64 {
        self.inner.borrow().unflushed_bytes
    }

    pub fn stats(&self) -> LogStats {
        let inner = self.inner.borrow();
        LogStats {
            log_start_offset: inner.log_start_offset,
            log_end_offset: inner.log_end_offset,
            durable_offset: inner.durable_offset,
            high_watermark: inner.high_watermark,
            size_bytes: inner.segments.values().map(|s| s.size).sum(),
            segments: inner.segments.len(),
            cache_bytes: inner.cache.bytes(),
        }
    }

    /// The newest timestamp in the log and the base offset of the batch holding it.
    pub fn max_timestamp(&self) -> Option<(i64, u64)> {
        let inner = self.inner.borrow();
        inner
            .segments
            .values()
            .filter(|s| !s.is_empty() && s.max_timestamp != i64::MIN)
            .map(|s| (s.max_timestamp, s.offset_of_max_timestamp))
            .fold(None, |best: Option<(i64, u64)>, cur| match best {
                Some(b) if b.0 >= cur.0 => Some(b),
                _ => Some(cur),
            })
    }

    /// The leader-epoch checkpoint: each epoch and the first offset written in it.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.inner.borrow().epochs.clone()
    }

    /// Kafka's OffsetForLeaderEpoch: the largest epoch `<= epoch` and the offset where it ends
    /// (the next epoch's start, or the log end for the latest). `None` if `epoch` predates
    /// every epoch in the log.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, u64)> {
        let inner = self.inner.borrow();
        let at = inner.epochs.partition_point(|e| e.epoch <= epoch);
        if at == 0 {
            return None;
        }
        let found = inner.epochs[at - 1];
        let end = inner
            .epochs
            .get(at)
            .map(|e| e.start_offset)
            .unwrap_or(inner.log_end_offset);
        Some((found.epoch, end))
    }

    /// The stored Raft vote, if any.
    pub fn vote(&self) -> Option<Bytes> {
        self.inner.borrow().vote.clone()
    }

    /// Persists a Raft vote (durably, before returning).
    pub async fn store_vote(&self, vote: &[u8]) -> Result<()> {
        if vote.len() > crate::limits::VOTE_BYTES_MAX {
            return Err(StorageError::InvalidArgument(format!(
                "vote of {} bytes",
                vote.len()
            )));
        }
        let _io = self.io_lock.lock().await;
        self.inner.borrow_mut().vote = Some(Bytes::copy_from_slice(vote));
        self.store_state().await
    }

    /// Appends one RecordBatch v2, assigning it the next offsets and `leader_epoch`.
    ///
    /// The batch is validated (length, magic, record counts, CRC32C); its base offset and
    /// partition leader epoch fields are overwritten (both outside the CRC). The batch is
    /// readable when this returns and durable after a later `flush`.
    pub fn append(&self, batch: BytesMut, leader_epoch: i32) -> Result<AppendInfo> {
        self.append_validated(ValidatedBatch::new(batch)?, leader_epoch)
    }

    /// `append` for a batch that was validated already.
    pub fn append_validated(&self, batch: ValidatedBatch, leader_epoch: i32) -> Result<AppendInfo> {
        let (mut batch, header) = batch.into_parts();
        let mut guard = self.inner.borrow_mut();
        let inner = &mut *guard;
        inner.check_writable()?;
        if inner.disk_full {
            return Err(StorageError::DiskFull {
                context: "append refused until a flush finds space".into(),
            });
        }
        if let Some(last) = inner.epochs.last() {
            if leader_epoch < last.epoch {
                return Err(StorageError::InvalidArgument(format!(
                    "leader epoch {leader_epoch} is older than the log's latest epoch {}",
                    last.epoch
                )));
            }
        }
        let base_offset = inner.log_end_offset;
        let next_offset = base_offset + header.offset_count();
        let len = batch.len() as u64;
        let now = now_ms();
        self.roll_if_needed(inner, len, next_offset, now);
        batch::assign(&mut batch, base_offset, leader_epoch);
        let bytes = batch.freeze();

        let Some((_, active)) = inner.segments.last_key_value() else {
            unreachable!("a log always has an active segment")
        };
        let active_base = active.base_offset;
        let pool = &mut inner.chunk_pool;
        let Some(active) = inner.segments.get_mut(&active_base) else {
            unreachable!()
        };
        active.note_batch(
            base_offset,
            next_offset,
            header.max_timestamp,
            len,
            self.config.borrow().index_interval_bytes,
        );
        let Some(staging) = active.staging.as_mut() else {
            unreachable!("the active segment always has a staging buffer")
        };
        staging.append(&bytes, pool);
        inner.active_started_ms.get_or_insert(now);

        inner.cache.push(CachedBatch {
            base_offset,
            next_offset,
            bytes,
        });
        inner.log_end_offset = next_offset;
        inner.unflushed_messages += header.records_count.max(1) as u64;
        inner.unflushed_bytes += len;
        inner.first_unflushed_at.get_or_insert_with(Instant::now);
        if inner.epochs.last().is_none_or(|e| leader_epoch > e.epoch) && leader_epoch >= 0 {
            inner.epochs.push(EpochEntry {
                epoch: leader_epoch,
                start_offset: base_offset,
            });
        }
        let written = inner.written_offset;
        inner.cache.evict(written);
        Ok(AppendInfo {
            base_offset,
            last_offset: next_offset - 1,
            max_timestamp: header.max_timestamp,
            unflushed_bytes: inner.unflushed_bytes,
        })
    }

    fn roll_if_needed(&self, inner: &mut Inner, len: u64, next_offset: u64, now: i64) {
        let Some((_, active)) = inner.segments.last_key_value() else {
            return;
        };
        if active.is_empty() {
            return;
        }
        let (segment_bytes, segment_ms) = {
            let config = self.config.borrow();
            (config.segment_bytes, config.segment_ms)
        };
        let too_big = active.size + len > segment_bytes;
        let too_many_offsets = next_offset - active.base_offset > SEGMENT_OFFSET_SPAN_MAX;
        let started = inner
            .active_started_ms
            .or(active.first_batch_timestamp)
            .unwrap_or(now);
        let too_old = segment_ms.is_some_and(|ms| now.saturating_sub(started) >= ms as i64);
        if !(too_big || too_many_offsets || too_old) {
            return;
        }
        let base = inner.log_end_offset;
        if let Some((_, active)) = inner.segments.iter_mut().next_back() {
            active.sealed = true;
        }
        inner
            .segments
            .insert(base, Segment::new_active(&self.dir, base));
        inner.active_started_ms = None;
    }

    /// Makes everything appended so far durable and returns the durable offset. Concurrent
    /// callers share flushes (group commit).
    pub async fn flush(&self) -> Result<u64> {
        let target = self.inner.borrow().log_end_offset;
        let _io = self.io_lock.lock().await;
        {
            let inner = self.inner.borrow();
            if inner.closed {
                return Err(StorageError::Closed);
            }
            if inner.durable_offset >= target && !inner.has_sealed_segments() {
                return Ok(inner.durable_offset);
            }
        }
        let started = Instant::now();
        let flushed = self.flush_locked().await;
        crate::metrics::flushed(started.elapsed());
        flushed
    }

    /// Waits until `offset` (exclusive) is durable, flushing as the [`FlushPolicy`] says:
    /// at once for `Always`; for `Interval`, when enough messages are pending or the oldest
    /// unflushed append is old enough.
    pub async fn wait_durable(&self, offset: u64) -> Result<()> {
        loop {
            let (due_in, durable) = {
                let inner = self.inner.borrow();
                inner.check_writable()?;
                (self.flush_due_in(&inner), inner.durable_offset)
            };
            if durable >= offset {
                return Ok(());
            }
            if let Some(wait) = due_in {
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            self.flush().await?;
        }
    }

    /// Flushes if the policy says a flush is due (the owner calls this from a timer so appends
    /// nobody waits for still become durable). Returns the durable offset.
    pub async fn flush_if_due(&self) -> Result<u64> {
        let due = {
            let inner = self.inner.borrow();
            let pending =
                inner.durable_offset < inner.log_end_offset || inner.has_sealed_segments();
            pending && self.flush_due_in(&inner).is_none_or(|d| d.is_zero())
        };
        if due {
            self.flush().await
        } else {
            Ok(self.durable_offset())
        }
    }

    /// `None` = flush now regardless of time (policy Always); `Some(d)` = due in `d`.
    fn flush_due_in(&self, inner: &Inner) -> Option<Duration> {
        let flush = self.config.borrow().flush;
        match flush {
            FlushPolicy::Always => None,
            FlushPolicy::Interval {
                messages,
                interval_ms,
            } => {
                if inner.unflushed_messages >= messages || inner.disk_full {
                    return Some(Duration::ZERO);
                }
                let age = inner
                    .first_unflushed_at
                    .map(|t| t.elapsed())
                    .unwrap_or_default();
                Some(Duration::from_millis(interval_ms).saturating_sub(age))
            }
        }
    }

    /// The flush itself; the caller holds `io_lock`.
    async fn flush_locked(&self) -> Result<u64> {
        self.inner.borrow().check_writable()?;
        let bases: Vec<u64> = {
            let inner = self.inner.borrow();
            inner
                .segments
                .values()
                .filter(|s| s.has_unwritten())
                .map(|s| s.base_offset)
                .collect()
        };
        // Phase 1: files exist and have room, before any staged byte is handed out, so running
        // out of space loses nothing and can be retried.
        let mut created = false;
        for &base in &bases {
            created |= self.prepare_segment_file(base).await?;
        }
        if created {
            self.backend
                .sync_dir(&self.dir)
                .await
                .map_err(|e| self.poison("sync log directory", e))?;
        }
        // Phase 2: take the staged bytes.
        let (target, jobs) = {
            let mut guard = self.inner.borrow_mut();
            let inner = &mut *guard;
            let target = inner.log_end_offset;
            let mut jobs = Vec::with_capacity(bases.len());
            for &base in &bases {
                let Some(seg) = inner.segments.get_mut(&base) else {
                    continue;
                };
                let (Some(staging), Some(file)) = (seg.staging.as_mut(), seg.file.clone()) else {
                    continue;
                };
                let (file_pos, mut chunks) = staging.take_for_write(&mut inner.chunk_pool);
                let write_end = file_pos + chunks.iter().map(|c| c.len() as u64).sum::<u64>();
                let zeros = if seg.sealed {
                    0
                } else {
                    zero_fill::bytes_ahead(file_pos, write_end, seg.initialized, seg.allocated)
                };
                if zeros > 0 {
                    chunks.push(zero_fill::take(zeros as usize));
                }
                jobs.push(WriteJob {
                    base,
                    file,
                    file_pos,
                    chunks,
                    zeros,
                    end: seg.size,
                    seal: seg.sealed,
                });
            }
            (target, jobs)
        };
        // Phase 3: write and sync.
        let mut closing = Vec::new();
        for job in jobs {
            let WriteJob {
                base,
                file,
                file_pos,
                chunks,
                zeros,
                end,
                seal,
            } = job;
            let write_end = file_pos + chunks.iter().map(|c| c.len() as u64).sum::<u64>();
            let write_started = Instant::now();
            let (res, mut chunks) = file.write_chunks_at(chunks, file_pos).await;
            if zeros > 0 {
                if let Some(zero_chunk) = chunks.pop() {
                    zero_fill::give_back(zero_chunk);
                }
            }
            res.map_err(|e| self.poison(&format!("write {}", file.path().display()), e))?;
            {
                let mut inner = self.inner.borrow_mut();
                let budget = chunks
                    .iter()
                    .map(|c| c.capacity())
                    .sum::<usize>()
                    .min(CHUNK_POOL_BYTES_MAX);
                let mut pooled: usize = inner.chunk_pool.iter().map(|c| c.capacity()).sum();
                for mut chunk in chunks {
                    if inner.chunk_pool.len() >= CHUNK_POOL_MAX
                        || pooled + chunk.capacity() > budget
                    {
                        break;
                    }
                    pooled += chunk.capacity();
                    chunk.clear();
                    inner.chunk_pool.push(chunk);
                }
            }
            if let Some(seg) = self.inner.borrow_mut().segments.get_mut(&base) {
                seg.written = seg.written.max(end);
                seg.initialized = seg.initialized.max(write_end);
            }
            if file.writes_are_durable() {
                // The write itself was durable (O_DSYNC): its time is the flush's time.
                crate::metrics::fdatasync(write_started.elapsed());
            } else {
                let synced = Instant::now();
                file.sync_data()
                    .await
                    .map_err(|e| self.poison(&format!("fdatasync {}", file.path().display()), e))?;
                crate::metrics::fdatasync(synced.elapsed());
            }
            if seal {
                closing.push((base, file, end));
            }
        }
        {
            let mut inner = self.inner.borrow_mut();
            inner.written_offset = inner.written_offset.max(target);
            inner.durable_offset = inner.durable_offset.max(target);
            inner.unflushed_messages = 0;
            inner.unflushed_bytes = 0;
            inner.first_unflushed_at = None;
            let written = inner.written_offset;
            inner.cache.evict(written);
        }
        // Phase 4: close sealed segments: trim the preallocation, write the indexes, move the
        // recovery point past them.
        if !closing.is_empty() {
            for (base, file, end) in closing {
                self.close_segment(base, &file, end).await?;
            }
            {
                let mut inner = self.inner.borrow_mut();
                let first_open = inner
                    .segments
                    .values()
                    .find(|s| !s.is_closed())
                    .map(|s| s.base_offset);
                if let Some(rp) = first_open {
                    inner.recovery_point = rp;
                }
            }
            self.store_state().await?;
        }
        Ok(self.inner.borrow().durable_offset)
    }

    /// Opens (creating) a segment's file and preallocates room for its staged bytes. Returns
    /// true if the file was created.
    async fn prepare_segment_file(&self, base: u64) -> Result<bool> {
        let (path, has_file, allocated, need) = {
            let inner = self.inner.borrow();
            let Some(seg) = inner.segments.get(&base) else {
                return Ok(false);
            };
            (
                seg.path.clone(),
                seg.file.is_some(),
                seg.allocated,
                align_up(seg.size),
            )
        };
        let mut created = false;
        if !has_file {
            let mode = segment_open_mode(true, self.config.borrow().flush);
            let file = self
                .backend
                .open(&path, mode)
                .await
                .map_err(|e| StorageError::io(format!("create {}", path.display()), e))?;
            if let Some(seg) = self.inner.borrow_mut().segments.get_mut(&base) {
                seg.file = Some(std::rc::Rc::new(file));
            }
            created = true;
        }
        if need <= allocated {
            return Ok(created);
        }
        let Some(file) = self
            .inner
            .borrow()
            .segments
            .get(&base)
            .and_then(|s| s.file.clone())
        else {
            return Ok(created);
        };
        let (segment_bytes, preallocate_bytes) = {
            let config = self.config.borrow();
            (config.segment_bytes, config.preallocate_bytes)
        };
        let cap = align_up(segment_bytes).max(need);
        let wanted = (need + preallocate_bytes).min(cap).max(need);
        let result = match file.allocate(allocated, wanted - allocated).await {
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) && wanted > need => file
                .allocate(allocated, need - allocated)
                .await
                .map(|_| need),
            other => other.map(|_| wanted),
        };
        let mut inner = self.inner.borrow_mut();
        match result {
            Ok(now_allocated) => {
                inner.disk_full = false;
                if let Some(seg) = inner.segments.get_mut(&base) {
                    seg.allocated = now_allocated;
                }
                Ok(created)
            }
            Err(e) => {
                let err = StorageError::io(format!("preallocate {}", path.display()), e);
                if matches!(err, StorageError::DiskFull { .. }) {
                    inner.disk_full = true;
                    tracing::warn!(path = %path.display(), "disk full: appends refused until space is freed");
                } else {
                    inner.poisoned = Some(err.to_string());
                }
                Err(err)
            }
        }
    }

    async fn close_segment(&self, base: u64, file: &crate::io::File, end: u64) -> Result<()> {
        file.set_len(end)
            .await
            .map_err(|e| self.poison("trim closed segment", e))?;
        file.sync_data()
            .await
            .map_err(|e| self.poison("fdatasync closed segment", e))?;
        let (index, timeindex, index_path, timeindex_path) = {
            let inner = self.inner.borrow();
            let Some(seg) = inner.segments.get(&base) else {
                return Ok(());
            };
            (
                seg.offset_index.encode(),
                seg.time_index.encode(),
                seg.index_path(),
                seg.timeindex_path(),
            )
        };
        self.write_small_file(&index_path, &index).await?;
        self.write_small_file(&timeindex_path, &timeindex).await?;
        let mut inner = self.inner.borrow_mut();
        if let Some(seg) = inner.segments.get_mut(&base) {
            seg.staging = None;
            seg.allocated = end;
        }
        Ok(())
    }

    /// Writes an index file in one go and syncs it.
    async fn write_small_file(&self, path: &Path, data: &[u8]) -> Result<()> {
        let ctx = |what: &str| format!("{what} {}", path.display());
        self.backend
            .remove_file(path)
            .await
            .map_err(|e| StorageError::io(ctx("remove"), e))?;
        let file = self
            .backend
            .open(
                path,
                OpenMode {
                    create: true,
                    direct: false,
                    durable_writes: false,
                },
            )
            .await
            .map_err(|e| StorageError::io(ctx("create"), e))?;
        if !data.is_empty() {
            let mut buf = AlignedBuf::with_capacity(data.len());
            buf.extend_from_slice(data);
            let (res, _) = file.write_all_at(buf, 0).await;
            res.map_err(|e| StorageError::io(ctx("write"), e))?;
        }
        file.sync_data()
            .await
            .map_err(|e| StorageError::io(ctx("sync"), e))
    }

    /// Records a write or sync failure: the log is poisoned from now on.
    fn poison(&self, what: &str, err: std::io::Error) -> StorageError {
        let reason = format!("{what} failed: {err}");
        tracing::error!(dir = %self.dir.display(), %reason, "partition log poisoned");
        self.inner.borrow_mut().poisoned = Some(reason.clone());
        StorageError::Poisoned { reason }
    }

    async fn store_state(&self) -> Result<()> {
        let state = {
            let inner = self.inner.borrow();
            PartitionState {
                log_start_offset: inner.log_start_offset,
                recovery_point: inner.recovery_point,
                high_watermark: inner.high_watermark,
                epochs: inner.epochs.clone(),
                vote: inner.vote.clone(),
            }
        };
        state.store(&self.backend, &self.dir).await
    }
}

struct WriteJob {
    base: u64,
    file: std::rc::Rc<crate::io::File>,
    file_pos: u64,
    chunks: Vec<AlignedBuf>,
    /// The last chunk is this many bytes of zeros from `zero_fill` (0: none).
    zeros: u64,
    end: u64,
    seal: bool,
}

impl Inner {
    fn check_writable(&self) -> Result<()> {
        if self.closed {
            return Err(StorageError::Closed);
        }
        if let Some(reason) = &self.poisoned {
            return Err(StorageError::Poisoned {
                reason: reason.clone(),
            });
        }
        Ok(())
    }

    fn has_sealed_segments(&self) -> bool {
        self.segments.values().any(|s| s.sealed && !s.is_closed())
    }
}
