//! Kafka's rule for compacted topics: every record needs a key, since compaction keeps the
//! last record per key and a keyless one could never be compacted (Kafka's `LogValidator`
//! rejects such batches with INVALID_RECORD and names each keyless record).
//!
//! This is the only place the broker reads records inside a batch: everywhere else batches
//! are stored and served as the producer built them. Compressed batches are inflated for the
//! check, bounded by `inflated_bytes_max`.

use protocol::records::decode_records_compressed;
use storage::batch::ValidatedBytes;

/// Why a compacted topic refuses a partition's batches.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyCheck {
    /// Records without a key, by their index among the partition's records in the request.
    Keyless(Vec<i32>),
    /// A batch whose records cannot be read (or inflate past the bound).
    Unreadable(String),
}

/// Checks that every record of `batches` has a key. Control batches (transaction markers)
/// carry no user records and are skipped.
pub fn check(batches: &[ValidatedBytes], inflated_bytes_max: usize) -> Result<(), KeyCheck> {
    let mut keyless = Vec::new();
    let mut index = 0i32;
    for batch in batches {
        if batch.header().is_control() {
            continue;
        }
        let bytes = batch.bytes().clone();
        let records = decode_records_compressed(&bytes, inflated_bytes_max)
            .map_err(|e| KeyCheck::Unreadable(e.to_string()))?;
        for record in records {
            if record.key.is_none() {
                keyless.push(index);
            }
            index = index.saturating_add(1);
        }
    }
    if keyless.is_empty() {
        Ok(())
    } else {
        Err(KeyCheck::Keyless(keyless))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use protocol::compression::Compression;
    use protocol::records::{BatchBuilder, Record};

    fn batch(keys: &[Option<&str>], codec: Compression) -> ValidatedBytes {
        let mut builder = BatchBuilder::new();
        for key in keys {
            builder.push(Record {
                timestamp: 1,
                key: key.map(|k| bytes::Bytes::copy_from_slice(k.as_bytes())),
                value: Some(bytes::Bytes::from_static(b"v")),
                headers: Vec::new(),
            });
        }
        let built = builder.build_compressed(codec).unwrap();
        ValidatedBytes::new(built.freeze()).unwrap()
    }

    #[test]
    fn keyless_records_are_named_by_index_across_batches() {
        let batches = [
            batch(&[Some("a"), None], Compression::None),
            batch(&[Some("b"), Some("c"), None], Compression::Zstd),
        ];
        assert_eq!(check(&batches, 1 << 20), Err(KeyCheck::Keyless(vec![1, 4])));
        let keyed = [batch(&[Some("a")], Compression::Gzip)];
        assert_eq!(check(&keyed, 1 << 20), Ok(()));
    }

    #[test]
    fn inflation_is_bounded() {
        let big = "x".repeat(10_000);
        let batches = [batch(&[Some(big.as_str())], Compression::Lz4)];
        assert!(matches!(
            check(&batches, 1_000),
            Err(KeyCheck::Unreadable(_))
        ));
    }
}
