//! The storage engine's typed errors.
//!
//! Three kinds of failure take three paths (see `shared/EXAMPLES.md` §6): bugs are assertions;
//! bad input (a malformed batch from a client, a corrupt file) is a `StorageError` naming what
//! was wrong; and a failed fsync poisons the log, after which it refuses writes for good, because
//! the kernel may have dropped the dirty data and no retry can tell.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a batch was rejected by [`crate::batch::BatchHeader::parse`] or the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchError {
    /// Fewer bytes than a batch header.
    TooShort { len: usize },
    /// `batchLength` disagrees with the bytes given, or is out of bounds.
    BadLength { declared: i64, actual: usize },
    /// Only message format v2 is stored.
    BadMagic { magic: i8 },
    /// CRC32C over attributes..end does not match the header.
    BadCrc { expected: u32, actual: u32 },
    /// `lastOffsetDelta` or `recordsCount` is negative or inconsistent.
    BadRecordCount {
        last_offset_delta: i32,
        records_count: i32,
    },
    /// The batch is bigger than the configured maximum.
    TooLarge { len: usize, max: usize },
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::TooShort { len } => {
                write!(f, "batch of {len} bytes is shorter than its header")
            }
            BatchError::BadLength { declared, actual } => {
                write!(
                    f,
                    "batch length field says {declared} but {actual} bytes follow it"
                )
            }
            BatchError::BadMagic { magic } => {
                write!(
                    f,
                    "batch magic {magic} is not 2 (only message format v2 is stored)"
                )
            }
            BatchError::BadCrc { expected, actual } => {
                write!(
                    f,
                    "batch CRC32C is {actual:#010x}, header says {expected:#010x}"
                )
            }
            BatchError::BadRecordCount {
                last_offset_delta,
                records_count,
            } => write!(
                f,
                "batch has lastOffsetDelta {last_offset_delta} and recordsCount {records_count}"
            ),
            BatchError::TooLarge { len, max } => write!(f, "batch of {len} bytes exceeds {max}"),
        }
    }
}

impl std::error::Error for BatchError {}

/// Every error the storage crate returns.
#[derive(Debug)]
pub enum StorageError {
    /// An I/O call failed; `context` says what the log was doing.
    Io { context: String, source: io::Error },
    /// The device is full. Nothing durable was lost; appends succeed again once space is freed
    /// and a flush gets through.
    DiskFull { context: String },
    /// An earlier fsync or write failed; the log refuses writes until it is reopened (which runs
    /// recovery and so learns what really reached the disk).
    Poisoned { reason: String },
    /// The caller handed the log a malformed batch.
    InvalidBatch(BatchError),
    /// A read asked for an offset outside `[log_start_offset, log_end_offset]`.
    OffsetOutOfRange {
        offset: u64,
        log_start_offset: u64,
        log_end_offset: u64,
    },
    /// Data read back from a file failed validation (bit rot, or a bug).
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// The request is inconsistent with the log's state (e.g. a truncation point that is not a
    /// batch boundary, or a leader epoch that goes backwards).
    InvalidArgument(String),
    /// The log was closed.
    Closed,
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        let context = context.into();
        if source.raw_os_error() == Some(libc::ENOSPC)
            || source.kind() == io::ErrorKind::StorageFull
        {
            StorageError::DiskFull { context }
        } else {
            StorageError::Io { context, source }
        }
    }

    /// True for errors after which a retry may succeed without reopening the log.
    pub fn is_retriable(&self) -> bool {
        matches!(self, StorageError::DiskFull { .. })
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { context, source } => write!(f, "{context}: {source}"),
            StorageError::DiskFull { context } => {
                write!(
                    f,
                    "{context}: no space left on device; free space or add capacity"
                )
            }
            StorageError::Poisoned { reason } => write!(
                f,
                "log refuses writes after an earlier I/O failure ({reason}); restart to recover"
            ),
            StorageError::InvalidBatch(e) => write!(f, "invalid record batch: {e}"),
            StorageError::OffsetOutOfRange {
                offset,
                log_start_offset,
                log_end_offset,
            } => write!(
                f,
                "offset {offset} is outside the log [{log_start_offset}, {log_end_offset}]"
            ),
            StorageError::Corrupt {
                path,
                position,
                reason,
            } => {
                write!(
                    f,
                    "corrupt data in {} at position {position}: {reason}",
                    path.display()
                )
            }
            StorageError::InvalidArgument(msg) => write!(f, "{msg}"),
            StorageError::Closed => write!(f, "log is closed"),
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<BatchError> for StorageError {
    fn from(e: BatchError) -> Self {
        StorageError::InvalidBatch(e)
    }
}

/// The storage crate's result type.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
