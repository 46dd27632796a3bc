//! Zero-filling preallocated segment space ahead of small writes.
//!
//! Segments are preallocated with `fallocate`, which on ext4 (and XFS) leaves "unwritten"
//! extents: the first write into such space must also change the extent tree, and the flush
//! that makes the write durable must write that metadata too, an extra synchronous device
//! write on every flush (measured here: 4 KiB append + fdatasync p50 0.39 ms against 0.12 ms
//! for an overwrite). A log that flushes a few kilobytes at a time pays it on every flush.
//!
//! So when a flush is small and reaches past the space already written, the same (vectored)
//! write carries [`ZERO_FILL_STEP`] bytes of zeros behind the data. The extents up to there
//! become written in that one flush, and the next flushes inside that range are plain
//! overwrites: data plus a cache flush. Large flushes skip it: their metadata change is
//! amortised over many bytes already, and zeros would double what they write.
//!
//! Zeros past the end of the data are what preallocated space reads as anyway, so recovery
//! and readers see no difference.

use std::cell::RefCell;

use crate::aligned::AlignedBuf;
use crate::limits::align_down;

/// Bytes of zeros written ahead at a time: one extent conversion per this many bytes.
pub(crate) const ZERO_FILL_STEP: usize = 256 * 1024;

/// Only flushes of at most this many bytes fill ahead (beyond it, the conversion is cheap per
/// byte and the zeros would cost more device time than they save).
const SMALL_FLUSH_BYTES: u64 = ZERO_FILL_STEP as u64 / 4;

/// Zero buffers kept per thread for reuse (one per flush in flight on this thread).
const POOL_MAX: usize = 4;

thread_local! {
    static POOL: RefCell<Vec<AlignedBuf>> = const { RefCell::new(Vec::new()) };
}

/// How many zero bytes to write behind a flush of `[write_start, write_end)` (block-aligned)
/// into a segment whose extents are written up to `initialized` and allocated up to
/// `allocated`; 0 for none.
pub(crate) fn bytes_ahead(
    write_start: u64,
    write_end: u64,
    initialized: u64,
    allocated: u64,
) -> u64 {
    let small = write_end.saturating_sub(write_start) <= SMALL_FLUSH_BYTES;
    if !small || write_end <= initialized {
        return 0;
    }
    let room = align_down(allocated.saturating_sub(write_end));
    room.min(ZERO_FILL_STEP as u64)
}

/// A buffer of `len` zeros (`len` at most [`ZERO_FILL_STEP`]), to hand to a write.
pub(crate) fn take(len: usize) -> AlignedBuf {
    let mut buf = POOL
        .with(|pool| pool.borrow_mut().pop())
        .unwrap_or_else(|| {
            let mut buf = AlignedBuf::with_capacity(ZERO_FILL_STEP);
            buf.zero_extend_to(ZERO_FILL_STEP);
            buf
        });
    // The contents are zeros throughout (nothing ever writes into these buffers), so
    // shortening only moves the length.
    buf.truncate(len.min(ZERO_FILL_STEP));
    buf
}

/// Returns a buffer from [`take`] after its write completed.
pub(crate) fn give_back(mut buf: AlignedBuf) {
    if buf.capacity() != ZERO_FILL_STEP {
        return;
    }
    buf.zero_extend_to(ZERO_FILL_STEP);
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_flushes_past_the_written_space_fill_ahead() {
        let step = ZERO_FILL_STEP as u64;
        // A 4 KiB flush into fresh preallocated space fills one step ahead.
        assert_eq!(bytes_ahead(0, 4096, 0, 32 << 20), step);
        // Inside the filled range: nothing more.
        assert_eq!(bytes_ahead(4096, 8192, 4096 + step, 32 << 20), 0);
        // Large flushes never fill.
        assert_eq!(bytes_ahead(0, 1 << 20, 0, 32 << 20), 0);
        // Never past the allocation, and only whole blocks.
        assert_eq!(bytes_ahead(0, 4096, 0, 4096 + 10_000), 8192);
        assert_eq!(bytes_ahead(0, 4096, 0, 4096), 0);
    }

    #[test]
    fn zero_buffers_stay_zero_and_sized() {
        let buf = take(8192);
        assert_eq!(buf.len(), 8192);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
        give_back(buf);
        let buf = take(ZERO_FILL_STEP);
        assert_eq!(buf.len(), ZERO_FILL_STEP);
        assert!(buf.as_slice().iter().all(|&b| b == 0));
    }
}
