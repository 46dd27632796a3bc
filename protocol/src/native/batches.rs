//! Splitting a `records` field (SUBSCRIPTION_DATA, PRODUCE) into its RecordBatch v2 batches,
//! each a `Bytes` slice of the frame (no copy). Only the batch length is read here; a client
//! decodes (and CRC-checks, decompresses) the batches it gets.

use bytes::Bytes;

use super::wire::DecodeError;

/// Bytes before a batch's records that hold its length: base offset (8) + length (4).
const LENGTH_FIELD_END: usize = 12;
/// The smallest batch: its 61-byte header.
const BATCH_BYTES_MIN: usize = 61;

/// The batches of a records field, in order. A length below a header or past the end is an
/// error (a broker never sends one; a client that gets one has a corrupt frame).
pub fn split_batches(records: &Bytes) -> Result<Vec<Bytes>, DecodeError> {
    let mut rest = records.clone();
    let mut batches = Vec::new();
    while !rest.is_empty() {
        if rest.len() < LENGTH_FIELD_END {
            return Err(DecodeError::Truncated {
                field: "batch length",
                needed: LENGTH_FIELD_END,
                remaining: rest.len(),
            });
        }
        let length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let total = usize::try_from(length)
            .ok()
            .and_then(|l| l.checked_add(LENGTH_FIELD_END))
            .filter(|total| *total >= BATCH_BYTES_MIN)
            .ok_or(DecodeError::InvalidValue {
                field: "batch length",
                value: length as u32 as u64,
            })?;
        if total > rest.len() {
            return Err(DecodeError::Truncated {
                field: "batch",
                needed: total,
                remaining: rest.len(),
            });
        }
        batches.push(rest.split_to(total));
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{BatchBuilder, Record};

    fn batch(value: &'static [u8]) -> Bytes {
        let mut builder = BatchBuilder::new();
        builder.push(Record {
            value: Some(Bytes::from_static(value)),
            ..Default::default()
        });
        builder.build().freeze()
    }

    #[test]
    fn splits_back_to_back_batches_and_rejects_bad_lengths() {
        let (a, b) = (batch(b"a"), batch(b"bb"));
        let mut joined = a.to_vec();
        joined.extend_from_slice(&b);
        let joined = Bytes::from(joined);
        assert_eq!(split_batches(&joined).unwrap(), vec![a.clone(), b]);
        assert_eq!(split_batches(&Bytes::new()).unwrap(), Vec::<Bytes>::new());
        assert!(split_batches(&joined.slice(..joined.len() - 1)).is_err());
        assert!(split_batches(&a.slice(..5)).is_err());
        let mut negative = a.to_vec();
        negative[8..12].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(split_batches(&Bytes::from(negative)).is_err());
    }
}
