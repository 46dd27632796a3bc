//! Recycled read buffers.
//!
//! Cold reads hand out `Bytes` slices of the `AlignedBuf` the kernel filled (no copy). When the
//! last slice is dropped — on whatever thread the response was written — the buffer goes back
//! to its log's pool instead of to the allocator, so a sequential reader neither allocates nor
//! faults in fresh pages for every read-ahead window.

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use crate::aligned::AlignedBuf;

/// A bounded pool of aligned buffers; cheap to clone, shareable across threads.
#[derive(Debug, Clone)]
pub(crate) struct BufferPool {
    free: Arc<Mutex<Vec<AlignedBuf>>>,
    max_buffers: usize,
}

impl BufferPool {
    pub fn new(max_buffers: usize) -> Self {
        BufferPool {
            free: Arc::default(),
            max_buffers,
        }
    }

    /// A buffer of at least `capacity` bytes, recycled when one fits.
    pub fn take(&self, capacity: usize) -> AlignedBuf {
        if let Ok(mut free) = self.free.lock() {
            // Reuse only buffers that are not wastefully large for this read.
            if let Some(at) = free
                .iter()
                .position(|b| b.capacity() >= capacity && b.capacity() <= capacity * 2)
            {
                let mut buf = free.swap_remove(at);
                buf.clear();
                return buf;
            }
        }
        AlignedBuf::with_capacity(capacity)
    }

    /// Freezes the first `len` bytes of `buf` into `Bytes` that return `buf` here when dropped.
    pub fn freeze(&self, buf: AlignedBuf, len: usize) -> Bytes {
        let len = len.min(buf.len());
        let owner = Pooled {
            buf: Some(buf),
            pool: Arc::downgrade(&self.free),
            max_buffers: self.max_buffers,
        };
        Bytes::from_owner(owner).slice(0..len)
    }
}

struct Pooled {
    buf: Option<AlignedBuf>,
    pool: Weak<Mutex<Vec<AlignedBuf>>>,
    max_buffers: usize,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_ref().map(|b| b.as_slice()).unwrap_or(&[])
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let (Some(buf), Some(pool)) = (self.buf.take(), self.pool.upgrade()) else {
            return;
        };
        let Ok(mut free) = pool.lock() else { return };
        if free.len() < self.max_buffers {
            free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_when_the_last_slice_drops() {
        let pool = BufferPool::new(2);
        let mut buf = pool.take(8192);
        buf.extend_from_slice(&[7u8; 100]);
        let address = buf.as_slice().as_ptr();
        let bytes = pool.freeze(buf, 100);
        let slice = bytes.slice(10..20);
        drop(bytes);
        assert_eq!(&slice[..], &[7u8; 10]);
        drop(slice);
        assert_eq!(pool.take(8192).as_slice().as_ptr(), address, "recycled");
        assert_ne!(
            pool.take(8192).capacity(),
            0,
            "a fresh one when the pool is empty"
        );
    }
}
