//! One segment: a `.log` file of batches plus its in-memory indexes and, while it can still be
//! written, its staging buffer.
//!
//! ```text
//!  file:  [ written and synced ...... | tail page | ...preallocated zeroes... ]
//!                                      ^ staging.file_pos (aligned)
//!  staging chunks hold [file_pos, size): the partial tail page already on disk (rewritten by
//!  the next write, O_DIRECT cannot write less than a block) followed by new appends.
//! ```

use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::aligned::AlignedBuf;
use crate::config::FlushPolicy;
use crate::index::{OffsetEntry, OffsetIndex, TimeEntry, TimeIndex};
use crate::io::{File, OpenMode};
use crate::limits::{align_down, align_up, WRITE_CHUNK_BYTES};

/// The smallest staging chunk; chunks double up to `WRITE_CHUNK_BYTES` as data accumulates.
const STAGING_CHUNK_MIN_BYTES: usize = 64 * 1024;

/// How segment files are opened: O_DIRECT always, and under [`FlushPolicy::Always`] with
/// durable (O_DSYNC) writes, because then every write is followed by a flush anyway and one
/// durable write costs one I/O round trip where a write plus `fdatasync` costs two. A log
/// whose policy changes at run time keeps its open files as they are; the flush path still
/// calls `fdatasync` on any file whose writes are not durable by themselves.
pub(crate) fn segment_open_mode(create: bool, flush: FlushPolicy) -> OpenMode {
    OpenMode {
        create,
        direct: true,
        durable_writes: matches!(flush, FlushPolicy::Always),
    }
}

pub(crate) fn log_file_name(base_offset: u64) -> String {
    format!("{base_offset:020}.log")
}

/// Parses `<base_offset:020>.log` (and nothing else).
pub(crate) fn parse_log_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".log")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Bytes appended to a segment that have not been handed to a write yet, in aligned chunks.
#[derive(Debug)]
pub(crate) struct Staging {
    /// File position of the first staged byte; always aligned.
    pub file_pos: u64,
    pub chunks: Vec<AlignedBuf>,
}

impl Staging {
    pub fn new(file_pos: u64) -> Self {
        debug_assert_eq!(file_pos, align_down(file_pos));
        Staging {
            file_pos,
            chunks: Vec::new(),
        }
    }

    pub fn len(&self) -> u64 {
        self.chunks.iter().map(|c| c.len() as u64).sum()
    }

    pub fn append(&mut self, mut data: &[u8], pool: &mut Vec<AlignedBuf>) {
        while !data.is_empty() {
            if self.chunks.last().is_none_or(|c| c.remaining() == 0) {
                // Chunks grow with the data (a quiet partition holds kilobytes, a busy one
                // megabytes); every capacity is block-aligned, so chunk boundaries stay aligned.
                let staged = self.len() as usize;
                let wanted = (staged + data.len())
                    .next_power_of_two()
                    .clamp(STAGING_CHUNK_MIN_BYTES, WRITE_CHUNK_BYTES);
                let mut chunk = match pool.pop() {
                    Some(chunk) if chunk.capacity() >= wanted => chunk,
                    _ => AlignedBuf::with_capacity(wanted),
                };
                chunk.clear();
                self.chunks.push(chunk);
            }
            let Some(chunk) = self.chunks.last_mut() else {
                unreachable!("a chunk was just pushed")
            };
            let taken = chunk.extend_from_slice(data);
            data = &data[taken..];
        }
    }

    /// Hands the staged bytes over for writing (zero-padded to whole blocks) and keeps a copy of
    /// the partial last block, which the next write must rewrite with more data behind it.
    pub fn take_for_write(&mut self, pool: &mut Vec<AlignedBuf>) -> (u64, Vec<AlignedBuf>) {
        let end = self.file_pos + self.len();
        let tail_start = align_down(end);
        let tail_len = (end - tail_start) as usize;
        let mut next = Staging::new(tail_start);
        if tail_len > 0 {
            let last = self.chunks.last().map(|c| c.as_slice()).unwrap_or(&[]);
            // Chunks are block multiples starting at an aligned position, so the partial block
            // always lies inside the last chunk.
            assert!(last.len() >= tail_len, "partial block spans chunks");
            let tail = last[last.len() - tail_len..].to_vec();
            next.append(&tail, pool);
        }
        let file_pos = self.file_pos;
        let mut chunks = std::mem::take(&mut self.chunks);
        if let Some(last) = chunks.last_mut() {
            let padded = align_up(last.len() as u64) as usize;
            last.zero_extend_to(padded);
        }
        *self = next;
        (file_pos, chunks)
    }
}

/// A segment and everything the log knows about it.
#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    pub path: PathBuf,
    /// Opened (created) lazily by the first flush.
    pub file: Option<Rc<File>>,
    /// Bytes appended (some may only be staged).
    pub size: u64,
    /// Bytes whose write completed: the file holds them (maybe not yet synced).
    pub written: u64,
    /// File size after preallocation.
    pub allocated: u64,
    /// File position up to which the file's extents are written (data or zeros), so writes
    /// below it are overwrites that need no extent metadata at flush (see `zero_fill`).
    pub initialized: u64,
    /// Offset after the last batch (the base offset while empty).
    pub next_offset: u64,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    pub bytes_since_index_entry: u64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: u64,
    /// Max timestamp of the first batch: `segment.ms` is measured from it, as in Kafka.
    pub first_batch_timestamp: Option<i64>,
    /// `None` once the segment is closed.
    pub staging: Option<Staging>,
    /// No more appends go here; the next flush writes its tail and closes it.
    pub sealed: bool,
}

impl Segment {
    pub fn new_active(dir: &Path, base_offset: u64) -> Self {
        Segment {
            base_offset,
            path: dir.join(log_file_name(base_offset)),
            file: None,
            size: 0,
            written: 0,
            allocated: 0,
            initialized: 0,
            next_offset: base_offset,
            offset_index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index_entry: 0,
            max_timestamp: i64::MIN,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp: None,
            staging: Some(Staging::new(0)),
            sealed: false,
        }
    }

    pub fn index_path(&self) -> PathBuf {
        self.path.with_extension("index")
    }

    pub fn timeindex_path(&self) -> PathBuf {
        self.path.with_extension("timeindex")
    }

    pub fn is_empty(&self) -> bool {
        self.next_offset == self.base_offset
    }

    pub fn is_closed(&self) -> bool {
        self.staging.is_none()
    }

    pub fn has_unwritten(&self) -> bool {
        self.size > self.written || (self.sealed && self.staging.is_some())
    }

    /// Index bookkeeping for a batch about to be placed at `self.size`. Both indexes get an
    /// entry every `interval` bytes: the batch's position, and the largest timestamp of every
    /// batch before it.
    pub fn note_batch(
        &mut self,
        base_offset: u64,
        next_offset: u64,
        max_timestamp: i64,
        len: u64,
        interval: u32,
    ) {
        if self.bytes_since_index_entry >= interval as u64 && self.size > 0 {
            let relative_offset = (base_offset - self.base_offset) as u32;
            self.offset_index.push(OffsetEntry {
                relative_offset,
                position: self.size as u32,
            });
            if self.max_timestamp != i64::MIN {
                self.time_index.push(TimeEntry {
                    max_timestamp: self.max_timestamp,
                    relative_next_offset: relative_offset,
                });
            }
            self.bytes_since_index_entry = 0;
        }
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(max_timestamp);
        }
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = base_offset;
        }
        self.bytes_since_index_entry += len;
        self.size += len;
        self.next_offset = next_offset;
    }
}
