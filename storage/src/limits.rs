//! Every fixed bound the storage engine relies on, in one place.
//!
//! Names put the unit or qualifier last (`batch_bytes_max`), and the relations between the
//! constants are checked at compile time, so a change that breaks an assumption fails to build.

/// O_DIRECT alignment for file offsets, lengths and buffer addresses. 4 KiB covers every block
/// device sector size in use (512 B and 4 KiB) and is the page size on x86_64 and most arm64.
pub const DIRECT_IO_ALIGNMENT: usize = 4096;

/// The size of a RecordBatch v2 header, from `baseOffset` through `recordsCount`.
pub const BATCH_HEADER_BYTES: usize = 61;

/// `batchLength` counts every byte after the length field itself (offset 12 onwards).
pub const BATCH_LENGTH_FIELD_END: usize = 12;

/// The smallest batch that can be valid: a header with no records.
pub const BATCH_BYTES_MIN: usize = BATCH_HEADER_BYTES;

/// The largest batch the log accepts or believes during recovery. Kafka's `message.max.bytes`
/// is usually far lower; this is the hard ceiling that keeps a corrupt length field from making
/// recovery allocate or read gigabytes.
pub const BATCH_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Segment positions are stored as `u32` in the offset index, so a segment never grows past
/// this (Kafka uses the same `Int.MaxValue` bound for `segment.bytes`).
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;

/// Smallest `segment.bytes` accepted: a segment must hold at least one maximal header page.
pub const SEGMENT_BYTES_MIN: u64 = 4 * DIRECT_IO_ALIGNMENT as u64;

/// Relative offsets in the indexes are `u32`; a segment rolls before it spans more offsets.
pub const SEGMENT_OFFSET_SPAN_MAX: u64 = u32::MAX as u64;

/// The staging buffer of the active segment is a list of chunks of this size; flushes write
/// whole chunks, so this is also the largest single write submitted.
pub const WRITE_CHUNK_BYTES: usize = 1024 * 1024;

/// Recovery reads segments in pieces of this size (a batch larger than this is read whole,
/// within [`BATCH_BYTES_MAX`]).
pub const RECOVERY_READ_BYTES: usize = 4 * 1024 * 1024;

/// Bound on the epochs kept in the leader-epoch checkpoint; a log with more epochs than this is
/// refused when its state file is read (Kafka keeps one entry per leader change).
pub const EPOCH_ENTRIES_MAX: usize = 1 << 20;

/// Bound on the opaque vote blob stored in the partition state file.
pub const VOTE_BYTES_MAX: usize = 4096;

/// Bound on the partition state file as a whole.
pub const STATE_FILE_BYTES_MAX: usize =
    64 + EPOCH_ENTRIES_MAX * 12 + VOTE_BYTES_MAX + DIRECT_IO_ALIGNMENT;

const _: () = assert!(DIRECT_IO_ALIGNMENT.is_power_of_two());
const _: () = assert!(
    DIRECT_IO_ALIGNMENT >= 512,
    "O_DIRECT needs at least sector alignment"
);
const _: () = assert!(WRITE_CHUNK_BYTES.is_multiple_of(DIRECT_IO_ALIGNMENT));
const _: () = assert!(RECOVERY_READ_BYTES.is_multiple_of(DIRECT_IO_ALIGNMENT));
const _: () = assert!(BATCH_BYTES_MAX as u64 <= SEGMENT_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_MIN as usize >= 2 * DIRECT_IO_ALIGNMENT);

/// Rounds `value` down to a multiple of [`DIRECT_IO_ALIGNMENT`].
pub const fn align_down(value: u64) -> u64 {
    value & !(DIRECT_IO_ALIGNMENT as u64 - 1)
}

/// Rounds `value` up to a multiple of [`DIRECT_IO_ALIGNMENT`].
pub const fn align_up(value: u64) -> u64 {
    align_down(value + DIRECT_IO_ALIGNMENT as u64 - 1)
}
