//! `AlignedBuf`: a heap buffer whose address and capacity are multiples of
//! [`DIRECT_IO_ALIGNMENT`], as O_DIRECT requires.
//!
//! It owns its memory (so io_uring can hold it while a read or write is in flight and hand it
//! back), tracks how many leading bytes are initialised, and can be frozen into `Bytes` without a
//! copy so cold reads hand out slices of the very buffer the kernel filled.

use std::alloc::{self, Layout};
use std::fmt;
use std::ptr::NonNull;

use crate::limits::{align_up, DIRECT_IO_ALIGNMENT};

/// An owned, O_DIRECT-aligned byte buffer with a fixed capacity.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    /// Initialised bytes at the front of the buffer.
    len: usize,
    /// Allocated bytes; a non-zero multiple of the alignment.
    capacity: usize,
}

// SAFETY: `AlignedBuf` uniquely owns its allocation (like `Vec<u8>`); no aliasing pointers are
// kept anywhere, so moving it to another thread or sharing `&AlignedBuf` is sound.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only allow reading initialised bytes, as with `Vec<u8>`.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// Allocates a buffer of at least `capacity` bytes (rounded up to the alignment, at least one
    /// block), with no initialised bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = align_up(capacity.max(1) as u64) as usize;
        let layout = Self::layout(capacity);
        // SAFETY: `layout` has a non-zero size (capacity >= DIRECT_IO_ALIGNMENT).
        let raw = unsafe { alloc::alloc(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        AlignedBuf {
            ptr,
            len: 0,
            capacity,
        }
    }

    fn layout(capacity: usize) -> Layout {
        match Layout::from_size_align(capacity, DIRECT_IO_ALIGNMENT) {
            Ok(layout) => layout,
            // Capacities are bounded by the storage limits, far below isize::MAX.
            Err(_) => panic!("aligned buffer capacity {capacity} overflows a Layout"),
        }
    }

    /// Initialised length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no bytes are initialised.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Allocated size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes that can still be appended.
    pub fn remaining(&self) -> usize {
        self.capacity - self.len
    }

    /// Appends as much of `data` as fits and returns how many bytes were taken.
    pub fn extend_from_slice(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.remaining());
        // SAFETY: `self.len + n <= capacity`, the source is a valid slice of `n` bytes, and the
        // destination lies inside our allocation, which cannot overlap a borrowed `data`.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(self.len), n);
        }
        self.len += n;
        n
    }

    /// Zero-fills from the current length up to `new_len` (used to pad the last block of a
    /// write, so stale memory never reaches the disk).
    pub fn zero_extend_to(&mut self, new_len: usize) {
        assert!(new_len <= self.capacity, "zero_extend_to past capacity");
        if new_len > self.len {
            // SAFETY: the range [len, new_len) lies inside the allocation.
            unsafe {
                std::ptr::write_bytes(self.ptr.as_ptr().add(self.len), 0, new_len - self.len)
            };
            self.len = new_len;
        }
    }

    /// Forgets bytes past `len` (they stay allocated).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Clears the buffer for reuse.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// The initialised bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialised and owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The initialised bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as `as_slice`, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `with_capacity` with exactly this layout, freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.capacity)) }
    }
}

impl AsRef<[u8]> for AlignedBuf {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

// SAFETY: the pointer is stable for the buffer's lifetime (the allocation never moves, even when
// the `AlignedBuf` value does), `bytes_init` is the initialised prefix, and `bytes_total` the
// allocation size.
unsafe impl tokio_uring::buf::IoBuf for AlignedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.len
    }

    fn bytes_total(&self) -> usize {
        self.capacity
    }
}

// SAFETY: as for `IoBuf`; `set_init` only ever grows the initialised prefix within capacity, and
// the runtime calls it only for bytes the kernel wrote.
unsafe impl tokio_uring::buf::IoBufMut for AlignedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }

    unsafe fn set_init(&mut self, pos: usize) {
        if pos > self.len {
            self.len = pos.min(self.capacity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_and_address_are_aligned() {
        for want in [1, 511, 4096, 4097, 1 << 20] {
            let buf = AlignedBuf::with_capacity(want);
            assert!(buf.capacity() >= want);
            assert_eq!(buf.capacity() % DIRECT_IO_ALIGNMENT, 0);
            assert_eq!(buf.as_ptr() as usize % DIRECT_IO_ALIGNMENT, 0);
        }
    }

    #[test]
    fn extend_stops_at_capacity_and_zero_pads() {
        let mut buf = AlignedBuf::with_capacity(4096);
        assert_eq!(buf.extend_from_slice(&[7u8; 5000]), 4096);
        buf.truncate(10);
        buf.zero_extend_to(20);
        assert_eq!(&buf.as_slice()[..10], &[7u8; 10]);
        assert_eq!(&buf.as_slice()[10..], &[0u8; 10]);
    }
}
