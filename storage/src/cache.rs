//! The tail cache: the most recent batches of a log as `Bytes`, so consumers that keep up are
//! served from memory and never touch the disk.
//!
//! ```text
//!   offsets:  [log start ......... cache start ............................ log end)
//!                  on disk only        | cached: contiguous batches, newest at the back
//!                                       ^ evicted from the front when over capacity, but never
//!                                         past data not yet written to the file
//! ```
//! Because unwritten batches are always cached, a read never has to look at a staging buffer.

use std::collections::VecDeque;

use bytes::Bytes;

#[derive(Debug, Clone)]
pub(crate) struct CachedBatch {
    pub base_offset: u64,
    /// One past the last offset.
    pub next_offset: u64,
    pub bytes: Bytes,
}

#[derive(Debug)]
pub(crate) struct TailCache {
    batches: VecDeque<CachedBatch>,
    bytes: usize,
    capacity_bytes: usize,
}

impl TailCache {
    pub fn new(capacity_bytes: usize) -> Self {
        TailCache {
            batches: VecDeque::new(),
            bytes: 0,
            capacity_bytes,
        }
    }

    pub fn push(&mut self, batch: CachedBatch) {
        debug_assert!(self
            .batches
            .back()
            .is_none_or(|b| b.next_offset == batch.base_offset));
        self.bytes += batch.bytes.len();
        self.batches.push_back(batch);
    }

    /// Drops the oldest batches while over capacity, keeping everything at or after
    /// `unwritten_from` (data not yet in the file).
    pub fn evict(&mut self, unwritten_from: u64) {
        while self.bytes > self.capacity_bytes {
            match self.batches.front() {
                Some(front) if front.next_offset <= unwritten_from => {
                    self.bytes -= front.bytes.len();
                    self.batches.pop_front();
                }
                _ => break,
            }
        }
    }

    /// The first offset the cache can serve, if any.
    pub fn start_offset(&self) -> Option<u64> {
        self.batches.front().map(|b| b.base_offset)
    }

    /// Batches containing `offset` onwards, up to `max_bytes` (at least one batch), stopping
    /// before any batch that reaches `upper_bound`.
    pub fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        upper_bound: u64,
        out: &mut Vec<Bytes>,
    ) -> u64 {
        let first = self.batches.partition_point(|b| b.next_offset <= offset);
        let mut total = 0usize;
        let mut next = offset;
        for batch in self.batches.iter().skip(first) {
            if batch.next_offset > upper_bound {
                break;
            }
            if !out.is_empty() && total + batch.bytes.len() > max_bytes {
                break;
            }
            total += batch.bytes.len();
            next = batch.next_offset;
            out.push(batch.bytes.clone());
            if total >= max_bytes {
                break;
            }
        }
        next
    }

    /// Removes batches at or after `offset` (log truncation).
    pub fn truncate_from(&mut self, offset: u64) {
        while let Some(back) = self.batches.back() {
            if back.base_offset < offset {
                break;
            }
            self.bytes -= back.bytes.len();
            self.batches.pop_back();
        }
    }

    /// Removes batches entirely before `offset` (log start moved).
    pub fn remove_before(&mut self, offset: u64) {
        while let Some(front) = self.batches.front() {
            if front.next_offset > offset {
                break;
            }
            self.bytes -= front.bytes.len();
            self.batches.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}
