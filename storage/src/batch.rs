//! A view of the 61-byte RecordBatch v2 header: the only part of Kafka's format the storage
//! engine understands. Records are opaque bytes to it.
//!
//! ```text
//!  0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
//! 21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
//! 43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordsCount i32 | 61 ...
//! ```
//! The CRC32C covers bytes 21.. (attributes to the end), so the broker may rewrite the base offset
//! and the partition leader epoch without invalidating the producer's checksum.

use crate::error::BatchError;
use crate::limits::{BATCH_BYTES_MAX, BATCH_HEADER_BYTES, BATCH_LENGTH_FIELD_END};

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const PARTITION_LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const CRC_START: usize = 21;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORDS_COUNT: usize = 57;

/// Attribute bit: the batch is a control batch (transaction markers, Raft entries).
pub const ATTRIBUTE_CONTROL: i16 = 1 << 5;
/// Attribute bit: the batch belongs to a transaction.
pub const ATTRIBUTE_TRANSACTIONAL: i16 = 1 << 4;
/// Attribute bit: timestamps are LogAppendTime.
pub const ATTRIBUTE_LOG_APPEND_TIME: i16 = 1 << 3;

/// The decoded fixed fields of one batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field; the whole batch is `batch_length + 12` bytes.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(raw)
}

fn i32_at(b: &[u8], at: usize) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(raw)
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Decodes the header at the start of `bytes` without checking anything but its presence.
    pub fn decode(bytes: &[u8]) -> Result<Self, BatchError> {
        if bytes.len() < BATCH_HEADER_BYTES {
            return Err(BatchError::TooShort { len: bytes.len() });
        }
        Ok(BatchHeader {
            base_offset: i64_at(bytes, BASE_OFFSET),
            batch_length: i32_at(bytes, BATCH_LENGTH),
            partition_leader_epoch: i32_at(bytes, PARTITION_LEADER_EPOCH),
            magic: bytes[MAGIC] as i8,
            crc: i32_at(bytes, CRC) as u32,
            attributes: i16_at(bytes, ATTRIBUTES),
            last_offset_delta: i32_at(bytes, LAST_OFFSET_DELTA),
            base_timestamp: i64_at(bytes, BASE_TIMESTAMP),
            max_timestamp: i64_at(bytes, MAX_TIMESTAMP),
            producer_id: i64_at(bytes, PRODUCER_ID),
            producer_epoch: i16_at(bytes, PRODUCER_EPOCH),
            base_sequence: i32_at(bytes, BASE_SEQUENCE),
            records_count: i32_at(bytes, RECORDS_COUNT),
        })
    }

    /// The total size of the batch these header bytes announce, if it is within bounds.
    /// Only the first 12 bytes need to be present; used to frame batches in a byte stream.
    pub fn framed_len(prefix: &[u8]) -> Result<usize, BatchError> {
        if prefix.len() < BATCH_LENGTH_FIELD_END {
            return Err(BatchError::TooShort { len: prefix.len() });
        }
        let declared = i32_at(prefix, BATCH_LENGTH) as i64;
        let total = declared + BATCH_LENGTH_FIELD_END as i64;
        if total < BATCH_HEADER_BYTES as i64 || total > BATCH_BYTES_MAX as i64 {
            return Err(BatchError::BadLength {
                declared,
                actual: prefix.len(),
            });
        }
        Ok(total as usize)
    }

    /// Decodes and fully validates one batch that must span exactly `bytes`: length, magic,
    /// record counts and CRC32C.
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        let header = Self::parse_framing(bytes)?;
        let actual = crc32c::crc32c(&bytes[CRC_START..]);
        if actual != header.crc {
            return Err(BatchError::BadCrc {
                expected: header.crc,
                actual,
            });
        }
        Ok(header)
    }

    /// `parse` without the CRC32C: for bytes whose CRC this process has already checked
    /// (the same immutable buffer, validated when it was read ahead).
    pub(crate) fn parse_framing(bytes: &[u8]) -> Result<Self, BatchError> {
        let header = Self::decode(bytes)?;
        let total = header.batch_length as i64 + BATCH_LENGTH_FIELD_END as i64;
        if total != bytes.len() as i64 {
            return Err(BatchError::BadLength {
                declared: header.batch_length as i64,
                actual: bytes.len().saturating_sub(BATCH_LENGTH_FIELD_END),
            });
        }
        if bytes.len() > BATCH_BYTES_MAX {
            return Err(BatchError::TooLarge {
                len: bytes.len(),
                max: BATCH_BYTES_MAX,
            });
        }
        header.check_fields()?;
        Ok(header)
    }

    fn check_fields(&self) -> Result<(), BatchError> {
        if self.magic != 2 {
            return Err(BatchError::BadMagic { magic: self.magic });
        }
        // An empty batch (all records compacted away) keeps lastOffsetDelta; recordsCount may be 0.
        if self.last_offset_delta < 0
            || self.records_count < 0
            || (self.records_count as i64) > self.last_offset_delta as i64 + 1
        {
            return Err(BatchError::BadRecordCount {
                last_offset_delta: self.last_offset_delta,
                records_count: self.records_count,
            });
        }
        Ok(())
    }

    /// Size of the whole batch in bytes.
    pub fn total_len(&self) -> usize {
        self.batch_length as usize + BATCH_LENGTH_FIELD_END
    }

    /// Offset of the last record, given the base offset stored in the header.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Number of offsets the batch occupies.
    pub fn offset_count(&self) -> u64 {
        self.last_offset_delta as u64 + 1
    }

    pub fn is_control(&self) -> bool {
        self.attributes & ATTRIBUTE_CONTROL != 0
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTRIBUTE_TRANSACTIONAL != 0
    }
}

/// A batch whose length, header fields and CRC32C have been checked, in a buffer of type `B`.
/// Only [`Validated::new`] makes one, so nothing checks it a second time (the broker validates
/// each produced batch once, where it can answer with an error code).
///
/// Two forms, which may live on different threads, and that is the point:
/// - [`ValidatedBytes`]: still in the buffer the batch arrived in (a slice of a request, shared
///   and read-only), on the thread that received it;
/// - [`ValidatedBatch`]: in a buffer of its own that the log stamps with offsets and keeps in
///   its tail cache. [`ValidatedBytes::into_owned`] makes one, and should run on the thread
///   that will free it (the partition's owner): an allocator with per-thread arenas (jemalloc)
///   reuses freed memory only for its own arena's allocations, so a copy made on the
///   connection's thread would leave a whole cache's worth of memory stranded in that thread's
///   arena whenever the producer reconnects through another thread.
#[derive(Debug)]
pub struct Validated<B> {
    bytes: B,
    header: BatchHeader,
}

/// A validated batch the log can stamp and keep.
pub type ValidatedBatch = Validated<bytes::BytesMut>;

/// A validated batch still in the request it arrived in.
pub type ValidatedBytes = Validated<bytes::Bytes>;

impl<B: AsRef<[u8]>> Validated<B> {
    pub fn new(bytes: B) -> Result<Self, BatchError> {
        let header = BatchHeader::parse(bytes.as_ref())?;
        Ok(Validated { bytes, header })
    }

    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    pub fn len(&self) -> usize {
        self.bytes.as_ref().len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.as_ref().is_empty()
    }

    /// The batch's bytes (before the log assigns offsets).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }
}

impl Validated<bytes::BytesMut> {
    /// Stamps the batch with the broker's clock (LogAppendTime): the attribute bit and the max
    /// timestamp change, and the CRC, which covers both, is recomputed so the batch stays valid.
    pub fn set_log_append_time(&mut self, now: i64) {
        let attributes = self.header.attributes | ATTRIBUTE_LOG_APPEND_TIME;
        self.bytes[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
        self.bytes[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now.to_be_bytes());
        let crc = crc32c::crc32c(&self.bytes[CRC_START..]);
        self.bytes[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        self.header.attributes = attributes;
        self.header.max_timestamp = now;
        self.header.crc = crc;
    }

    pub(crate) fn into_parts(self) -> (bytes::BytesMut, BatchHeader) {
        (self.bytes, self.header)
    }
}

impl Validated<bytes::Bytes> {
    /// The batch as it arrived (cheap to clone: the buffer is shared).
    pub fn bytes(&self) -> &bytes::Bytes {
        &self.bytes
    }

    /// The batch in a buffer of its own, allocated by the calling thread; no second check.
    pub fn into_owned(self) -> ValidatedBatch {
        Validated {
            bytes: bytes::BytesMut::from(&self.bytes[..]),
            header: self.header,
        }
    }
}

/// Writes the broker-assigned base offset and leader epoch into a batch's header. Both fields
/// sit before the CRC'd region, so the batch stays valid.
pub fn assign(batch: &mut [u8], base_offset: u64, leader_epoch: i32) {
    assert!(
        batch.len() >= BATCH_HEADER_BYTES,
        "assign on a buffer shorter than a header"
    );
    batch[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&(base_offset as i64).to_be_bytes());
    batch[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
        .copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Builds syntactically valid batches around opaque record bytes. The storage engine never
/// looks inside records, so tests, benchmarks and fuzzers use this instead of a full Kafka
/// encoder; the `protocol` crate has the real record encoder.
pub mod testing {
    use super::*;

    /// Parameters of a synthetic batch.
    #[derive(Debug, Clone)]
    pub struct SyntheticBatch<'a> {
        pub records_count: i32,
        pub base_timestamp: i64,
        pub max_timestamp: i64,
        pub attributes: i16,
        /// Stands in for the encoded records.
        pub payload: &'a [u8],
    }

    /// Encodes a batch with base offset 0 and leader epoch -1 (the log assigns both).
    pub fn build(spec: &SyntheticBatch<'_>) -> Vec<u8> {
        assert!(
            spec.records_count >= 1,
            "a synthetic batch holds at least one record"
        );
        let total = BATCH_HEADER_BYTES + spec.payload.len();
        let mut b = Vec::with_capacity(total);
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((total - BATCH_LENGTH_FIELD_END) as i32).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&spec.attributes.to_be_bytes());
        b.extend_from_slice(&(spec.records_count - 1).to_be_bytes());
        b.extend_from_slice(&spec.base_timestamp.to_be_bytes());
        b.extend_from_slice(&spec.max_timestamp.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&spec.records_count.to_be_bytes());
        b.extend_from_slice(spec.payload);
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// A batch of `records_count` records whose payload is `payload_len` bytes derived from
    /// `seed`, so a reader can regenerate and compare it.
    pub fn seeded(seed: u64, records_count: i32, payload_len: usize, timestamp: i64) -> Vec<u8> {
        let mut payload = vec![0u8; payload_len];
        let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
        for chunk in payload.chunks_mut(8) {
            // xorshift64*: cheap and deterministic.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let word = state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        build(&SyntheticBatch {
            records_count,
            base_timestamp: timestamp,
            max_timestamp: timestamp,
            attributes: 0,
            payload: &payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn built_batch_parses_and_survives_offset_assignment() {
        let mut b = seeded(1, 3, 100, 1_700_000_000_000);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assign(&mut b, 42, 7);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(
            (h.base_offset, h.partition_leader_epoch, h.last_offset()),
            (42, 7, 44)
        );
    }

    #[test]
    fn log_append_time_keeps_the_batch_valid() {
        let mut batch =
            ValidatedBatch::new(bytes::BytesMut::from(&seeded(4, 2, 50, 10)[..])).unwrap();
        batch.set_log_append_time(1234);
        let (bytes, header) = batch.into_parts();
        assert_eq!(BatchHeader::parse(&bytes).unwrap(), header);
        assert_eq!(header.max_timestamp, 1234);
        assert!(header.attributes & ATTRIBUTE_LOG_APPEND_TIME != 0);
    }

    #[test]
    fn bytes_validated_in_place_are_owned_by_copy() {
        let b = bytes::Bytes::from(seeded(5, 3, 80, 7));
        let validated = ValidatedBytes::new(b.clone()).unwrap();
        assert_eq!(validated.len(), b.len());
        assert_eq!(validated.header().records_count, 3);
        let owned = validated.into_owned();
        assert_eq!(owned.as_bytes(), &b[..]);
        assert_ne!(owned.as_bytes().as_ptr(), b.as_ptr(), "a buffer of its own");
        let mut bad = b.to_vec();
        bad[CRC_START + 3] ^= 1;
        assert!(ValidatedBytes::new(bytes::Bytes::from(bad)).is_err());
    }

    #[test]
    fn every_single_byte_flip_in_the_crc_region_is_caught() {
        let b = seeded(2, 1, 64, 0);
        for i in CRC_START..b.len() {
            let mut bad = b.clone();
            bad[i] ^= 0x01;
            assert!(BatchHeader::parse(&bad).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn rejects_bad_lengths_and_magic() {
        let b = seeded(3, 1, 10, 0);
        assert!(matches!(
            BatchHeader::parse(&b[..40]),
            Err(BatchError::TooShort { .. })
        ));
        assert!(matches!(
            BatchHeader::parse(&b[..b.len() - 1]),
            Err(BatchError::BadLength { .. })
        ));
        let mut m = b.clone();
        m[MAGIC] = 1;
        assert!(matches!(
            BatchHeader::parse(&m),
            Err(BatchError::BadMagic { magic: 1 })
        ));
        let mut neg = b.clone();
        neg[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&(-5i32).to_be_bytes());
        assert!(BatchHeader::framed_len(&neg).is_err());
    }
}
