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
//! that floor a cache grows while all caches sharing a [`CacheBudget`] hold less than it (the
//! broker gives its shards one budget, so a shard whose partitions are busier may take more of
//! it; without one, each cache keeps to its floor). The partitions being written thus keep the
//! most recent data in memory, and a consumer that fell behind by more than a floor still reads
//! from memory. Over budget, a cache that appends gives back its own oldest bytes down to its
//! floor; so the caches hold at most the budget or, if more, their floors. (Not LRU across
//! partitions: an idle partition keeps what it took until it appends or is truncated.)

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;

#[derive(Debug, Clone)]
pub(crate) struct CachedBatch {
    pub base_offset: u64,
    /// One past the last offset.
    pub next_offset: u64,
    pub bytes: Bytes,
}

/// Bytes the tail caches of several threads (the broker's shards) may hold together.
#[derive(Debug)]
pub struct CacheBudget {
    limit: usize,
    used: AtomicUsize,
}

impl CacheBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(CacheBudget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes the caches sharing this budget hold.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

thread_local! {
    /// What the tail caches of this thread hold together (for the per-shard gauge), and the
    /// budget they share with other threads, if the program gave this thread one.
    static SHARD_CACHE: ShardCache = const {
        ShardCache { used: Cell::new(0), budget: RefCell::new(None) }
    };
}

struct ShardCache {
    used: Cell<usize>,
    budget: RefCell<Option<Arc<CacheBudget>>>,
}

/// Lets the tail caches of the calling thread (a shard runs its partitions on one thread)
/// grow past their own capacity while all caches sharing `budget` hold less than it. Call it
/// before the thread opens any log, so every cached byte is counted in the budget it is later
/// given back to (a byte counted nowhere would only be subtracted, saturating at zero).
pub fn share_cache_budget(budget: Arc<CacheBudget>) {
    SHARD_CACHE.with(|c| *c.budget.borrow_mut() = Some(budget));
}

/// Bytes the tail caches of the calling thread hold together.
pub fn shard_cache_bytes() -> usize {
    SHARD_CACHE.with(|c| c.used.get())
}

fn over_budget() -> bool {
    SHARD_CACHE.with(|c| {
        c.budget
            .borrow()
            .as_ref()
            .is_none_or(|b| b.used() > b.limit)
    })
}

// A cache lives and dies on the thread of its log (`PartitionLog` is not `Send`), so its
// bytes are given back to the totals they were counted in. Relaxed suffices: the budget is a
// soft limit, read to decide whether to evict, never to publish data.
fn count_in(bytes: usize) {
    SHARD_CACHE.with(|c| {
        c.used.set(c.used.get() + bytes);
        if let Some(budget) = c.budget.borrow().as_ref() {
            budget.used.fetch_add(bytes, Ordering::Relaxed);
        }
    });
}

fn count_out(bytes: usize) {
    SHARD_CACHE.with(|c| {
        c.used.set(c.used.get().saturating_sub(bytes));
        if let Some(budget) = c.budget.borrow().as_ref() {
            // Never below zero, whatever a caller did wrong.
            let _ = budget
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                    Some(u.saturating_sub(bytes))
                });
        }
    });
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
        while self.bytes > self.capacity_bytes && over_budget() {
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

    // Tests measure the thread's total from where it stood when they began, in case another
    // test ran on the same thread before.

    #[test]
    fn without_a_budget_each_cache_keeps_to_its_capacity() {
        share_cache_budget(CacheBudget::new(0));
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
    fn caches_grow_past_their_floor_until_the_budget_is_used() {
        let budget = CacheBudget::new(100);
        share_cache_budget(budget.clone());
        let base = shard_cache_bytes();
        let mut a = TailCache::new(10);
        let mut b = TailCache::new(10);
        fill(&mut a, 0, 8, 10);
        assert_eq!(a.bytes(), 80, "under budget, a keeps everything");
        fill(&mut b, 0, 4, 10);
        assert_eq!(b.bytes(), 20, "over budget, b gives back its own bytes");
        assert_eq!(budget.used(), 100);
        assert_eq!(shard_cache_bytes(), base + 100);
        fill(&mut a, 8, 1, 10);
        assert_eq!(a.bytes(), 80);
        assert_eq!(a.start_offset(), Some(1));
        // Truncation, removal and drop give bytes back.
        a.truncate_from(5);
        assert_eq!(budget.used(), 60);
        a.remove_before(3);
        assert_eq!(budget.used(), 40);
        drop(a);
        assert_eq!(budget.used(), 20);
        b.clear();
        assert_eq!(budget.used(), 0);
        assert_eq!(shard_cache_bytes(), base);
    }

    #[test]
    fn threads_sharing_a_budget_share_it() {
        let budget = CacheBudget::new(100);
        let other = budget.clone();
        // Another thread (shard) takes 70 of the budget and keeps it.
        let held = std::thread::spawn(move || {
            share_cache_budget(other);
            let mut cache = TailCache::new(10);
            fill(&mut cache, 0, 7, 10);
            let bytes = cache.bytes();
            std::mem::forget(cache); // keep its bytes counted
            bytes
        })
        .join()
        .unwrap();
        assert_eq!(held, 70);
        share_cache_budget(budget.clone());
        let mut cache = TailCache::new(10);
        fill(&mut cache, 0, 6, 10);
        assert_eq!(
            cache.bytes(),
            30,
            "only what the other thread left, and the floor"
        );
        assert_eq!(budget.used(), 100);
    }

    #[test]
    fn unwritten_batches_stay_whatever_the_budget() {
        share_cache_budget(CacheBudget::new(0));
        let mut cache = TailCache::new(10);
        for offset in 0..5 {
            cache.push(batch(offset, 10));
        }
        cache.evict(3);
        assert_eq!(cache.start_offset(), Some(3));
        assert_eq!(cache.bytes(), 20);
    }
}
