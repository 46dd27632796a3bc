//! One place that maps internal errors to the Kafka error codes clients branch on.

use kafka_protocol::error::ResponseError;
use storage::{BatchError, StorageError};

/// The Kafka error code for a storage error. Bugs and unexpected I/O become
/// KAFKA_STORAGE_ERROR (retriable, so producers retry rather than drop data).
pub fn storage_error_code(error: &StorageError) -> ResponseError {
    match error {
        StorageError::InvalidBatch(BatchError::TooLarge { .. }) => ResponseError::MessageTooLarge,
        StorageError::InvalidBatch(BatchError::BadCrc { .. }) => ResponseError::CorruptMessage,
        StorageError::InvalidBatch(BatchError::BadMagic { .. }) => {
            ResponseError::UnsupportedForMessageFormat
        }
        StorageError::InvalidBatch(_) => ResponseError::CorruptMessage,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::DiskFull { .. }
        | StorageError::Poisoned { .. }
        | StorageError::Io { .. }
        | StorageError::Corrupt { .. }
        | StorageError::Closed => ResponseError::KafkaStorageError,
        StorageError::InvalidArgument(_) => ResponseError::InvalidRequest,
    }
}
