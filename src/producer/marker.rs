//! Transaction markers: the control batches that end a transaction in a partition (Kafka's
//! `EndTransactionMarker`): attributes control + transactional, the producer's id and epoch,
//! one record with key `[i16 version=0][i16 type]` (0 abort, 1 commit) and value
//! `[i16 version=0][i32 coordinator epoch]`.

use bytes::{BufMut, Bytes, BytesMut};
use protocol::records::{BatchBuilder, ProducerFields, Record};
use storage::batch::{ValidatedBatch, ATTRIBUTE_CONTROL, ATTRIBUTE_TRANSACTIONAL};
use storage::BatchError;

const MARKER_VERSION: i16 = 0;
const ABORT: i16 = 0;
const COMMIT: i16 = 1;

pub fn control_batch(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Result<ValidatedBatch, BatchError> {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(MARKER_VERSION);
    key.put_i16(if commit { COMMIT } else { ABORT });
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(MARKER_VERSION);
    value.put_i32(coordinator_epoch);
    let mut builder = BatchBuilder::new()
        .attributes(ATTRIBUTE_CONTROL | ATTRIBUTE_TRANSACTIONAL)
        .producer(ProducerFields {
            producer_id,
            producer_epoch: epoch,
            base_sequence: -1,
        });
    builder.push(Record {
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Vec::new(),
        timestamp,
    });
    ValidatedBatch::new(builder.build())
}

/// Whether `batch` (a whole control batch) is a commit (true) or abort (false) marker.
pub fn is_commit(batch: &Bytes) -> Option<bool> {
    super::state::marker_kind(batch)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn markers_are_valid_control_batches_of_their_kind() {
        for commit in [true, false] {
            let batch = control_batch(42, 3, commit, 0, 1000).unwrap();
            let header = *batch.header();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
            let bytes = Bytes::copy_from_slice(batch.as_bytes());
            assert_eq!(is_commit(&bytes), Some(commit));
        }
    }
}
