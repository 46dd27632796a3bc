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
//!
//! Every cache keeps its own `capacity_bytes` (`log.cache.bytes`) whatever the others do. Past
//! that floor a cache grows while the caches of its thread (its shard) hold less than the
//! shard's budget ([`set_shard_cache_limit`]; none unless the broker is given one), so the
//! partitions being written keep the most recent data of the shard in memory and a consumer
//! that fell behind by more than a floor still reads from memory. Over budget, a cache that
//! appends gives back its own oldest bytes down to its floor; so the shard holds at most the
//! budget plus the floors. (Not LRU across partitions: an idle partition keeps what it took
//! until it appends or is truncated.)

use std::cell::Cell;
use std::collections::VecDeque;

use bytes::Bytes;

#[derive(Debug, Clone)]
pub(crate) struct CachedBatch {
    pub base_offset: u64,
    /// One past the last offset.
    pub next_offset: u64,
    pub bytes: Bytes,
}

thread_local! {
    /// What the tail caches of this thread hold together, and what they may hold past their
    /// floors (0: nothing, each cache keeps to its own capacity).
    static SHARD_CACHE: ShardCache = const {
        ShardCache { used: Cell::new(0), limit: Cell::new(0) }
    };
}

struct ShardCache {
    used: Cell<usize>,
    limit: Cell<usize>,
}

/// Sets the budget of the tail caches of the calling thread (a shard runs its partitions on
/// one thread). Caches may grow past their own capacity while together they hold less.
pub fn set_shard_cache_limit(bytes: usize) {
    SHARD_CACHE.with(|c| c.limit.set(bytes));
}

/// Bytes the tail caches of the calling thread hold together.
pub fn shard_cache_bytes() -> usize {
    SHARD_CACHE.with(|c| c.used.get())
}

fn shard_over_budget() -> bool {
    SHARD_CACHE.with(|c| c.used.get() > c.limit.get())
}

// A cache lives and dies on the thread of its log (`PartitionLog` is not `Send`), so its
// bytes are given back to the total they were counted in.
fn count_in(bytes: usize) {
    SHARD_CACHE.with(|c| c.used.set(c.used.get() + bytes));
}

fn count_out(bytes: usize) {
    SHARD_CACHE.with(|c| c.used.set(c.used.get().saturating_sub(bytes)));
}

#[derive(Debug)]
pub(crate) struct TailCache {
    batches: VecDeque<CachedBatch>,
    bytes: usize,
    /// The floor: kept whatever the shard's budget.
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
        count_in(batch.bytes.len());
        self.batches.push_back(batch);
    }

    fn pop_front(&mut self) {
        if let Some(front) = self.batches.pop_front() {
            self.bytes -= front.bytes.len();
            count_out(front.bytes.len());
        }
    }

    fn pop_back(&mut self) {
        if let Some(back) = self.batches.pop_back() {
            self.bytes -= back.bytes.len();
            count_out(back.bytes.len());
        }
    }

    /// Drops the oldest batches while over this cache's floor and the shard's budget, keeping
    /// everything at or after `unwritten_from` (data not yet in the file).
    pub fn evict(&mut self, unwritten_from: u64) {
        while self.bytes > self.capacity_bytes && shard_over_budget() {
            match self.batches.front() {
                Some(front) if front.next_offset <= unwritten_from => self.pop_front(),
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
        while self
            .batches
            .back()
            .is_some_and(|back| back.base_offset >= offset)
        {
            self.pop_back();
        }
    }

    /// Removes batches entirely before `offset` (log start moved).
    pub fn remove_before(&mut self, offset: u64) {
        while self
            .batches
            .front()
            .is_some_and(|front| front.next_offset <= offset)
        {
            self.pop_front();
        }
    }

    pub fn clear(&mut self) {
        count_out(self.bytes);
        self.batches.clear();
        self.bytes = 0;
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for TailCache {
    fn drop(&mut self) {
        count_out(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: u64, len: usize) -> CachedBatch {
        CachedBatch {
            base_offset: base,
            next_offset: base + 1,
            bytes: Bytes::from(vec![0u8; len]),
        }
    }

    fn fill(cache: &mut TailCache, from: u64, count: u64, len: usize) {
        for offset in from..from + count {
            cache.push(batch(offset, len));
            cache.evict(u64::MAX);
        }
    }

    // Tests measure the shard total from where it stood when they began, in case another
    // test ran on the same thread before.

    #[test]
    fn without_a_shard_budget_each_cache_keeps_to_its_capacity() {
        set_shard_cache_limit(0);
        let base = shard_cache_bytes();
        let mut cache = TailCache::new(25);
        fill(&mut cache, 0, 5, 10);
        assert_eq!(cache.bytes(), 20);
        assert_eq!(cache.start_offset(), Some(3));
        assert_eq!(shard_cache_bytes(), base + 20);
        drop(cache);
        assert_eq!(shard_cache_bytes(), base);
    }

    #[test]
    fn caches_grow_past_their_floor_until_the_shard_budget_is_used() {
        let base = shard_cache_bytes();
        set_shard_cache_limit(base + 100);
        let mut a = TailCache::new(10);
        let mut b = TailCache::new(10);
        fill(&mut a, 0, 8, 10);
        assert_eq!(a.bytes(), 80, "under budget, a keeps everything");
        fill(&mut b, 0, 4, 10);
        assert_eq!(b.bytes(), 20, "over budget, b gives back its own bytes");
        assert_eq!(shard_cache_bytes(), base + 100);
        fill(&mut a, 8, 1, 10);
        assert_eq!(a.bytes(), 80);
        assert_eq!(a.start_offset(), Some(1));
        // Truncation, removal and drop give bytes back to the shard.
        a.truncate_from(5);
        assert_eq!(shard_cache_bytes(), base + 60);
        a.remove_before(3);
        assert_eq!(shard_cache_bytes(), base + 40);
        drop(a);
        assert_eq!(shard_cache_bytes(), base + 20);
        b.clear();
        assert_eq!(shard_cache_bytes(), base);
        set_shard_cache_limit(0);
    }

    #[test]
    fn unwritten_batches_stay_whatever_the_budget() {
        set_shard_cache_limit(0);
        let mut cache = TailCache::new(10);
        for offset in 0..5 {
            cache.push(batch(offset, 10));
        }
        cache.evict(3);
        assert_eq!(cache.start_offset(), Some(3));
        assert_eq!(cache.bytes(), 20);
    }
}
