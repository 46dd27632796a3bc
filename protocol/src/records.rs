//! Kafka records (message format v2): a batch builder and a reader; with the `compression`
//! feature, both handle the four Kafka codecs.
//!
//! The broker stores client batches as they arrive and never re-encodes them; this module is
//! for batches the broker writes itself (internal topics, control records) and for the few
//! places that must look inside a batch (the exact offset for a timestamp). Every length and
//! count read from a batch is bounds-checked before use.

use bytes::{BufMut, Bytes, BytesMut};

/// Size of the RecordBatch v2 header.
pub const BATCH_HEADER_BYTES: usize = 61;
const CRC_START: usize = 21;

/// One record to put in a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp: i64,
}

/// A record read back from a batch, with its absolute offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Producer identity written into a batch header (idempotent and transactional producers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerFields {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

impl Default for ProducerFields {
    fn default() -> Self {
        ProducerFields {
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }
}

/// Builds an uncompressed RecordBatch v2 with base offset 0 (the log assigns offsets).
#[derive(Debug, Default)]
pub struct BatchBuilder {
    records: Vec<Record>,
    attributes: i16,
    producer: ProducerFields,
}

impl BatchBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets attribute bits (control, transactional, timestamp type); compression stays none.
    pub fn attributes(mut self, attributes: i16) -> Self {
        self.attributes = attributes & !0x07;
        self
    }

    pub fn producer(mut self, producer: ProducerFields) -> Self {
        self.producer = producer;
        self
    }

    pub fn push(&mut self, record: Record) {
        self.records.push(record);
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch. Panics only on an empty builder (a batch holds at least one record).
    pub fn build(&self) -> BytesMut {
        assert!(
            !self.records.is_empty(),
            "a record batch holds at least one record"
        );
        let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + self.records.len() * 32);
        self.put_header(&mut out, self.attributes);
        encode_record_section(&self.records, self.base_timestamp(), &mut out);
        finish_batch(&mut out);
        out
    }

    /// Encodes the batch with its records compressed by `codec` (attribute bits 0-2), as a
    /// Kafka producer does. Panics only on an empty builder.
    #[cfg(feature = "compression")]
    pub fn build_compressed(
        &self,
        codec: crate::compression::Compression,
    ) -> Result<BytesMut, crate::compression::CompressionError> {
        if codec == crate::compression::Compression::None {
            return Ok(self.build());
        }
        assert!(
            !self.records.is_empty(),
            "a record batch holds at least one record"
        );
        let mut plain = BytesMut::with_capacity(self.records.len() * 32);
        encode_record_section(&self.records, self.base_timestamp(), &mut plain);
        let packed = crate::compression::compress(codec, &plain)?;
        let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + packed.len());
        self.put_header(&mut out, self.attributes | codec.attribute_bits());
        out.extend_from_slice(&packed);
        finish_batch(&mut out);
        Ok(out)
    }

    /// The batch's base timestamp: the smallest record timestamp.
    pub fn base_timestamp(&self) -> i64 {
        self.records.iter().map(|r| r.timestamp).min().unwrap_or(0)
    }

    fn put_header(&self, out: &mut BytesMut, attributes: i16) {
        let max_timestamp = self.records.iter().map(|r| r.timestamp).max().unwrap_or(0);
        put_batch_header(
            out,
            &HeaderFields {
                attributes,
                records: self.records.len() as i32,
                base_timestamp: self.base_timestamp(),
                max_timestamp,
                producer: self.producer,
            },
        );
    }
}

/// Appends the records of a batch (the part compression covers).
fn encode_record_section(records: &[Record], base_timestamp: i64, out: &mut BytesMut) {
    for (delta, record) in records.iter().enumerate() {
        let fields = RecordFields {
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &record.headers,
        };
        // Over-long fields cannot be encoded: BatchBuilder's callers build small records.
        let rest = fields.body_len_without_deltas().unwrap_or(0);
        put_record(
            out,
            record.timestamp - base_timestamp,
            delta as i32,
            &fields,
            rest,
        );
    }
}

/// What a record carries besides its timestamp and offset.
#[derive(Debug, Clone, Copy)]
pub struct RecordFields<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(String, Option<Bytes>)],
}

impl RecordFields<'_> {
    /// The most bytes the record can take in a batch, whatever its timestamp and offset
    /// deltas; `None` when a length does not fit the format's i32.
    pub fn encoded_len_max(&self) -> Option<usize> {
        // Length prefix, attributes, timestamp delta and offset delta at their widest.
        self.body_len_without_deltas()
            .map(|body| 5 + 1 + 10 + 5 + body)
    }

    /// Key, value and headers with their length prefixes.
    fn body_len_without_deltas(&self) -> Option<usize> {
        let mut len = nullable_len(self.key)? + nullable_len(self.value)?;
        len += varint_len(i32::try_from(self.headers.len()).ok()?);
        for (name, value) in self.headers {
            len += nullable_len(Some(name.as_bytes()))? + nullable_len(value.as_deref())?;
        }
        // The record's length prefix is an i32 too, deltas and attributes included.
        (len <= i32::MAX as usize - 16).then_some(len)
    }
}

/// Bytes a varint-length-prefixed byte string takes (null: the one-byte -1).
fn nullable_len(bytes: Option<&[u8]>) -> Option<usize> {
    match bytes {
        None => Some(1),
        Some(b) => Some(varint_len(i32::try_from(b.len()).ok()?) + b.len()),
    }
}

fn varint_len(value: i32) -> usize {
    unsigned_varint_len(((value << 1) ^ (value >> 31)) as u32 as u64)
}

fn varlong_len(value: i64) -> usize {
    unsigned_varint_len(((value << 1) ^ (value >> 63)) as u64)
}

fn unsigned_varint_len(value: u64) -> usize {
    // 7 bits a byte; 0 still takes one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends one record, length prefix first. The length is computed, not measured, so the
/// record is written straight into `out` without a scratch buffer; `rest` is
/// `fields.body_len_without_deltas()`. Returns the bytes written.
fn put_record(
    out: &mut BytesMut,
    timestamp_delta: i64,
    offset_delta: i32,
    fields: &RecordFields,
    rest: usize,
) -> usize {
    let start = out.len();
    let body = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta) + rest;
    out.reserve(body + 5);
    put_varint(out, body as i32);
    out.put_i8(0); // record attributes
    put_varlong(out, timestamp_delta);
    put_varint(out, offset_delta);
    put_bytes(out, fields.key);
    put_bytes(out, fields.value);
    put_varint(out, fields.headers.len() as i32);
    for (name, value) in fields.headers {
        put_bytes(out, Some(name.as_bytes()));
        put_bytes(out, value.as_deref());
    }
    out.len() - start
}

/// Encodes records one at a time straight into the batch's buffer (the producer's open
/// batches), where `BatchBuilder` keeps `Record`s and encodes them at the end. The base
/// timestamp is the first record's, as the Java producer does; later records may be older
/// (negative deltas are valid).
#[derive(Debug)]
pub struct BatchWriter {
    buf: BytesMut,
    records: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

impl BatchWriter {
    /// An empty batch with room for `capacity` bytes before it grows.
    pub fn with_capacity(capacity: usize) -> BatchWriter {
        let mut buf = BytesMut::with_capacity(capacity.max(BATCH_HEADER_BYTES));
        // The header is written by `finish`, once its fields are known.
        buf.resize(BATCH_HEADER_BYTES, 0);
        BatchWriter {
            buf,
            records: 0,
            base_timestamp: 0,
            max_timestamp: 0,
        }
    }

    /// Bytes of the batch so far, header included (before compression).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes the batch can reach before its buffer has to grow (the producer's tests check
    /// that its batches do not grow).
    #[cfg(all(test, feature = "client"))]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub fn record_count(&self) -> usize {
        self.records as usize
    }

    /// Appends a record; returns the bytes it took. Fails only when the record's lengths or
    /// the batch's record count do not fit the format.
    pub fn append(&mut self, timestamp: i64, fields: &RecordFields) -> Result<usize, RecordsError> {
        let Some(rest) = fields.body_len_without_deltas() else {
            return err("a key, value or header is longer than 2^31 - 1 bytes");
        };
        if self.records == i32::MAX {
            return err("a batch holds at most 2^31 - 1 records");
        }
        if self.records == 0 {
            self.base_timestamp = timestamp;
            self.max_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let delta = timestamp.wrapping_sub(self.base_timestamp);
        let written = put_record(&mut self.buf, delta, self.records, fields, rest);
        self.records += 1;
        Ok(written)
    }

    fn header(&self, attributes: i16) -> [u8; BATCH_HEADER_BYTES] {
        let mut header = BytesMut::with_capacity(BATCH_HEADER_BYTES);
        put_batch_header(
            &mut header,
            &HeaderFields {
                attributes,
                records: self.records,
                base_timestamp: self.base_timestamp,
                max_timestamp: self.max_timestamp,
                producer: ProducerFields::default(),
            },
        );
        let mut out = [0u8; BATCH_HEADER_BYTES];
        out.copy_from_slice(&header);
        out
    }

    /// The whole uncompressed batch, header and CRC filled in, without copying the records.
    /// Panics only on an empty batch (a batch holds at least one record).
    pub fn finish(mut self) -> BytesMut {
        assert!(self.records > 0, "a record batch holds at least one record");
        let header = self.header(0);
        self.buf[..BATCH_HEADER_BYTES].copy_from_slice(&header);
        finish_batch(&mut self.buf);
        self.buf
    }

    /// The whole batch with its records compressed by `codec`. Panics only on an empty batch.
    #[cfg(feature = "compression")]
    pub fn finish_compressed(
        self,
        codec: crate::compression::Compression,
    ) -> Result<BytesMut, crate::compression::CompressionError> {
        if codec == crate::compression::Compression::None {
            return Ok(self.finish());
        }
        assert!(self.records > 0, "a record batch holds at least one record");
        let packed = crate::compression::compress(codec, &self.buf[BATCH_HEADER_BYTES..])?;
        let mut out = BytesMut::with_capacity(BATCH_HEADER_BYTES + packed.len());
        out.extend_from_slice(&self.header(codec.attribute_bits()));
        out.extend_from_slice(&packed);
        finish_batch(&mut out);
        Ok(out)
    }
}

/// The fields of a batch header that vary.
struct HeaderFields {
    attributes: i16,
    records: i32,
    base_timestamp: i64,
    max_timestamp: i64,
    producer: ProducerFields,
}

/// Appends a 61-byte batch header, length and CRC left 0 for `finish_batch`.
fn put_batch_header(out: &mut BytesMut, fields: &HeaderFields) {
    out.put_i64(0); // base offset: assigned by the log
    out.put_i32(0); // batch length: patched by finish_batch
    out.put_i32(-1); // partition leader epoch: assigned by the log
    out.put_i8(2);
    out.put_u32(0); // CRC: patched by finish_batch
    out.put_i16(fields.attributes);
    out.put_i32(fields.records - 1); // last offset delta
    out.put_i64(fields.base_timestamp);
    out.put_i64(fields.max_timestamp);
    out.put_i64(fields.producer.producer_id);
    out.put_i16(fields.producer.producer_epoch);
    out.put_i32(fields.producer.base_sequence);
    out.put_i32(fields.records);
}

/// Patches the batch length and the CRC32C (over attributes to the end) into a whole batch.
fn finish_batch(out: &mut BytesMut) {
    let batch_length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn put_varint(out: &mut BytesMut, value: i32) {
    put_unsigned_varint(out, ((value << 1) ^ (value >> 31)) as u32 as u64);
}

fn put_varlong(out: &mut BytesMut, value: i64) {
    put_unsigned_varint(out, ((value << 1) ^ (value >> 63)) as u64);
}

fn put_unsigned_varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

fn put_bytes(out: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// Why a batch could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordsError(pub String);

impl std::fmt::Display for RecordsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed records: {}", self.0)
    }
}

impl std::error::Error for RecordsError {}

fn err<T>(what: &str) -> Result<T, RecordsError> {
    Err(RecordsError(what.to_owned()))
}

/// Reads the records of an uncompressed batch (`batch` is the whole batch with its header).
pub fn decode_records(batch: &Bytes) -> Result<Vec<DecodedRecord>, RecordsError> {
    let header = BatchHeader::read(batch)?;
    if header.attributes & 0x07 != 0 {
        return err("compressed batch");
    }
    decode_record_section(&header, batch.slice(BATCH_HEADER_BYTES..))
}

/// Reads the records of a batch whatever its codec, inflating at most `inflated_bytes_max`
/// (the guard against a small batch that decompresses to gigabytes).
#[cfg(feature = "compression")]
pub fn decode_records_compressed(
    batch: &Bytes,
    inflated_bytes_max: usize,
) -> Result<Vec<DecodedRecord>, RecordsError> {
    use crate::compression::{decompress, Compression};
    let header = BatchHeader::parse(batch)?;
    let body = batch.slice(BATCH_HEADER_BYTES..);
    match Compression::from_attributes(header.attributes) {
        Some(Compression::None) => decode_record_section(&header, body),
        Some(codec) => {
            let plain = decompress(codec, &body, inflated_bytes_max)
                .map_err(|e| RecordsError(e.to_string()))?;
            decode_record_section(&header, Bytes::from(plain))
        }
        None => err("unknown compression codec"),
    }
}

/// The fields of a RecordBatch v2 header a reader needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Bytes after the length field (the whole batch is 12 + this).
    pub batch_length: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub record_count: i32,
}

impl BatchHeader {
    /// Reads the header of `batch`, checking the magic and that the length matches.
    pub fn parse(batch: &[u8]) -> Result<BatchHeader, RecordsError> {
        let header = BatchHeader::read(batch)?;
        if header.magic != 2 {
            return err("not a RecordBatch v2 (magic 2)");
        }
        if header.batch_length < 0 || header.batch_length as usize + 12 != batch.len() {
            return err("batch length does not match its bytes");
        }
        Ok(header)
    }

    /// Reads the header fields, checking only that there are enough bytes and the record count
    /// is not negative (the broker's readers of its own batches).
    pub fn read(batch: &[u8]) -> Result<BatchHeader, RecordsError> {
        if batch.len() < BATCH_HEADER_BYTES {
            return err("batch shorter than its header");
        }
        let header = BatchHeader {
            base_offset: i64::from_be_bytes(array8(&batch[0..8])),
            batch_length: i32::from_be_bytes([batch[8], batch[9], batch[10], batch[11]]),
            magic: batch[16] as i8,
            crc: u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]),
            attributes: i16::from_be_bytes([batch[21], batch[22]]),
            last_offset_delta: i32::from_be_bytes([batch[23], batch[24], batch[25], batch[26]]),
            base_timestamp: i64::from_be_bytes(array8(&batch[27..35])),
            max_timestamp: i64::from_be_bytes(array8(&batch[35..43])),
            record_count: i32::from_be_bytes([batch[57], batch[58], batch[59], batch[60]]),
        };
        if header.record_count < 0 {
            return err("negative record count");
        }
        Ok(header)
    }

    /// Control batches (transaction markers) carry no application records; consumers skip them.
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset
            .saturating_add(i64::from(self.last_offset_delta))
    }
}

/// Whether the batch's CRC32C (over attributes to the end) matches its header.
pub fn crc_matches(batch: &[u8]) -> bool {
    batch.len() >= BATCH_HEADER_BYTES
        && crc32c::crc32c(&batch[CRC_START..])
            == u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]])
}

fn decode_record_section(
    header: &BatchHeader,
    data: Bytes,
) -> Result<Vec<DecodedRecord>, RecordsError> {
    let count = header.record_count;
    let mut reader = Reader { data };
    // Every record takes at least 7 bytes; never reserve more than the bytes can hold.
    let mut records = Vec::with_capacity((count as usize).min(reader.data.len() / 7));
    for _ in 0..count {
        let length = reader.varint()?;
        if length < 0 || length as usize > reader.data.len() {
            return err("record length out of bounds");
        }
        let mut r = Reader {
            data: reader.take(length as usize)?,
        };
        r.take(1)?; // record attributes
        let timestamp_delta = r.varlong()?;
        let offset_delta = r.varint()?;
        let key = r.nullable_bytes()?;
        let value = r.nullable_bytes()?;
        let header_count = r.varint()?;
        if header_count < 0 || header_count as usize > r.data.len() {
            return err("header count out of bounds");
        }
        let mut headers = Vec::with_capacity(header_count as usize);
        for _ in 0..header_count {
            let Some(name) = r.nullable_bytes()? else {
                return err("null header name");
            };
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| RecordsError("header name not UTF-8".into()))?;
            headers.push((name, r.nullable_bytes()?));
        }
        records.push(DecodedRecord {
            offset: header.base_offset.wrapping_add(offset_delta as i64),
            timestamp: header.base_timestamp.wrapping_add(timestamp_delta),
            key,
            value,
            headers,
        });
    }
    Ok(records)
}

fn array8(b: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&b[..8]);
    out
}

struct Reader {
    data: Bytes,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<Bytes, RecordsError> {
        if n > self.data.len() {
            return err("record truncated");
        }
        Ok(self.data.split_to(n))
    }

    fn unsigned_varint(&mut self) -> Result<u64, RecordsError> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&byte) = self.data.first() else {
                return err("varint truncated");
            };
            self.data = self.data.slice(1..);
            value |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        err("varint too long")
    }

    fn varlong(&mut self) -> Result<i64, RecordsError> {
        let raw = self.unsigned_varint()?;
        Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
    }

    fn varint(&mut self) -> Result<i32, RecordsError> {
        let value = self.varlong()?;
        i32::try_from(value).map_err(|_| RecordsError("varint out of range".into()))
    }

    fn nullable_bytes(&mut self) -> Result<Option<Bytes>, RecordsError> {
        let len = self.varint()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut b = BatchBuilder::new();
        b.push(Record {
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![],
            timestamp: 10,
        });
        b.push(Record {
            key: None,
            value: Some(Bytes::from_static(b"value")),
            headers: vec![
                ("h".into(), Some(Bytes::from_static(b"v"))),
                ("n".into(), None),
            ],
            timestamp: 5,
        });
        let batch = b.build().freeze();
        assert_eq!(
            crc32c::crc32c(&batch[CRC_START..]),
            u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]])
        );
        let records = decode_records(&batch).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(
            (
                records[0].timestamp,
                records[1].timestamp,
                records[1].offset
            ),
            (10, 5, 1)
        );
        assert_eq!(records[1].headers[1], ("n".to_string(), None));
    }

    #[test]
    fn truncated_batches_are_errors_not_panics() {
        let mut b = BatchBuilder::new();
        b.push(Record {
            value: Some(Bytes::from(vec![7u8; 300])),
            ..Record::default()
        });
        let batch = b.build().freeze();
        for cut in 0..batch.len() {
            let _ = decode_records(&batch.slice(..cut));
        }
    }

    #[test]
    fn batch_header_fields() {
        let mut b = BatchBuilder::new();
        b.push(Record {
            value: Some(Bytes::from_static(b"v")),
            timestamp: 3,
            ..Record::default()
        });
        let one = b.build();
        let mut two = one.clone();
        two.extend_from_slice(&one);
        let two = two.freeze();
        let batches = crate::native::split_batches(&two).unwrap();
        assert_eq!(batches.len(), 2);
        let header = BatchHeader::parse(&batches[1]).unwrap();
        assert_eq!((header.record_count, header.base_timestamp), (1, 3));
        assert!(!header.is_control());
        assert!(crc_matches(&batches[0]));
        assert!(BatchHeader::parse(&two).is_err(), "two batches are not one");
    }

    fn sample_records() -> Vec<Record> {
        (0..50u8)
            .map(|i| Record {
                key: (i % 3 != 0).then(|| Bytes::from(vec![i; usize::from(i)])),
                value: (i % 5 != 0).then(|| Bytes::from(vec![i; 300 + usize::from(i)])),
                headers: (0..i % 3)
                    .map(|h| {
                        (
                            format!("h{h}"),
                            (h % 2 == 0).then(|| Bytes::from(vec![h; 3])),
                        )
                    })
                    .collect(),
                timestamp: 1_000_000 + i64::from(i) * 37,
            })
            .collect()
    }

    fn write_all(records: &[Record]) -> BatchWriter {
        let mut writer = BatchWriter::with_capacity(16);
        for r in records {
            let fields = RecordFields {
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: &r.headers,
            };
            let before = writer.len();
            let written = writer.append(r.timestamp, &fields).unwrap();
            assert_eq!(writer.len() - before, written);
            assert!(written <= fields.encoded_len_max().unwrap());
        }
        writer
    }

    #[test]
    fn batch_writer_encodes_as_batch_builder_does() {
        // With ascending timestamps both use the first as base: the bytes must be identical.
        let records = sample_records();
        let mut builder = BatchBuilder::new();
        for r in &records {
            builder.push(r.clone());
        }
        let writer = write_all(&records);
        assert_eq!(writer.record_count(), 50);
        assert_eq!(writer.finish(), builder.build());
    }

    #[test]
    fn batch_writer_takes_older_records_after_newer_ones() {
        let mut records = sample_records();
        records[7].timestamp = 5; // far older than the first: a negative delta
        let batch = write_all(&records).finish().freeze();
        let header = BatchHeader::parse(&batch).unwrap();
        assert!(crc_matches(&batch));
        assert_eq!(
            (
                header.base_timestamp,
                header.max_timestamp,
                header.last_offset_delta
            ),
            (1_000_000, 1_000_000 + 49 * 37, 49)
        );
        let decoded = decode_records(&batch).unwrap();
        for (i, (d, r)) in decoded.iter().zip(&records).enumerate() {
            assert_eq!(d.offset, i as i64);
            assert_eq!(
                (d.timestamp, &d.key, &d.value, &d.headers),
                (r.timestamp, &r.key, &r.value, &r.headers)
            );
        }
    }

    #[test]
    fn varint_lengths_match_the_encoder() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            8191,
            8192,
            i64::from(i32::MAX),
            i64::MIN,
            i64::MAX,
        ] {
            let mut buf = BytesMut::new();
            put_varlong(&mut buf, v);
            assert_eq!(buf.len(), varlong_len(v), "{v}");
            if let Ok(v) = i32::try_from(v) {
                buf.clear();
                put_varint(&mut buf, v);
                assert_eq!(buf.len(), varint_len(v), "{v}");
            }
        }
    }

    #[cfg(feature = "compression")]
    #[test]
    fn batch_writer_compresses_with_every_codec() {
        use crate::compression::Compression;
        let records = sample_records();
        for codec in Compression::ALL {
            let batch = write_all(&records)
                .finish_compressed(codec)
                .unwrap()
                .freeze();
            let header = BatchHeader::parse(&batch).unwrap();
            assert_eq!(Compression::from_attributes(header.attributes), Some(codec));
            assert!(crc_matches(&batch));
            let decoded = decode_records_compressed(&batch, 1 << 20).unwrap();
            assert_eq!(decoded.len(), 50);
            assert_eq!(decoded[49].value, records[49].value);
        }
    }

    #[cfg(feature = "compression")]
    #[test]
    fn compressed_batches_round_trip() {
        use crate::compression::Compression;
        let mut b = BatchBuilder::new();
        for i in 0..100u8 {
            b.push(Record {
                key: Some(Bytes::from(vec![i])),
                value: Some(Bytes::from(vec![i; 200])),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
                timestamp: 1000 + i64::from(i),
            });
        }
        for codec in Compression::ALL {
            let batch = b.build_compressed(codec).unwrap().freeze();
            let header = BatchHeader::parse(&batch).unwrap();
            assert_eq!(Compression::from_attributes(header.attributes), Some(codec));
            assert!(crc_matches(&batch));
            let records = decode_records_compressed(&batch, 1 << 20).unwrap();
            assert_eq!(records.len(), 100);
            assert_eq!(records[99].value.as_deref(), Some(&[99u8; 200][..]));
            assert_eq!((records[7].offset, records[7].timestamp), (7, 1007));
            if codec != Compression::None {
                assert!(decode_records_compressed(&batch, 100).is_err());
            }
        }
    }
}
