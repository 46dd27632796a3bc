use bytes::{BufMut, Bytes, BytesMut};

use super::{get_error_code, Payload, TopicId};
use crate::native::limits::FRAME_BYTES_MAX;
use crate::native::wire::*;
use crate::native::ErrorCode;

/// When the broker answers a produce, as Kafka's acks 0, 1 and -1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Acks {
    /// No answer at all (Kafka acks=0).
    None,
    /// After the leader appended (acks=1).
    Leader,
    /// After the batches are committed (acks=-1 / all).
    #[default]
    All,
}

impl Acks {
    pub fn wire(self) -> u8 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => 2,
        }
    }

    pub fn from_wire(value: u8) -> Result<Acks> {
        match value {
            0 => Ok(Acks::None),
            1 => Ok(Acks::Leader),
            2 => Ok(Acks::All),
            value => Err(DecodeError::InvalidValue {
                field: "acks",
                value: u64::from(value),
            }),
        }
    }

    /// The Kafka `acks` value with the same meaning.
    pub fn to_kafka(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Records for one partition: one or more RecordBatch v2, back to back, as a Kafka producer
/// would send them (base offset 0; the broker assigns offsets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducePartition {
    pub topic_id: TopicId,
    pub partition: u32,
    pub records: Bytes,
}

/// PRODUCE request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceRequest {
    pub acks: Acks,
    pub timeout_ms: u32,
    pub partitions: Vec<ProducePartition>,
}

impl Payload for ProduceRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.acks.wire());
        buf.put_u32_le(self.timeout_ms);
        put_count(buf, self.partitions.len());
        for p in &self.partitions {
            buf.put_slice(&p.topic_id);
            buf.put_u32_le(p.partition);
            put_blob(buf, &p.records);
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(ProduceRequest {
            acks: Acks::from_wire(get_u8(buf, "acks")?)?,
            timeout_ms: get_u32(buf, "timeout_ms")?,
            partitions: get_array(buf, "partitions", 24, |b| {
                Ok(ProducePartition {
                    topic_id: get_uuid(b, "topic_id")?,
                    partition: get_u32(b, "partition")?,
                    records: get_blob(b, "records", FRAME_BYTES_MAX)?,
                })
            })?,
        })
    }
}

/// One partition's produce answer. On success `base_offset` is the offset of the partition's
/// first record; `log_append_time` is -1 unless the topic uses LogAppendTime.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducePartitionResponse {
    pub topic_id: TopicId,
    pub partition: u32,
    pub error: ErrorCode,
    pub base_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
    pub message: String,
}

/// PRODUCE answer: one entry per request partition, in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProduceResponse {
    pub partitions: Vec<ProducePartitionResponse>,
}

impl Payload for ProduceResponse {
    fn encode(&self, buf: &mut BytesMut) {
        put_count(buf, self.partitions.len());
        for p in &self.partitions {
            buf.put_slice(&p.topic_id);
            buf.put_u32_le(p.partition);
            buf.put_u16_le(p.error.0);
            buf.put_i64_le(p.base_offset);
            buf.put_i64_le(p.log_append_time);
            buf.put_i64_le(p.log_start_offset);
            put_string(buf, &p.message);
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(ProduceResponse {
            partitions: get_array(buf, "partitions", 48, |b| {
                Ok(ProducePartitionResponse {
                    topic_id: get_uuid(b, "topic_id")?,
                    partition: get_u32(b, "partition")?,
                    error: get_error_code(b)?,
                    base_offset: get_i64(b, "base_offset")?,
                    log_append_time: get_i64(b, "log_append_time")?,
                    log_start_offset: get_i64(b, "log_start_offset")?,
                    message: get_string(b, "message")?,
                })
            })?,
        })
    }
}

/// Records blobs below this size are copied into the frame's head; larger ones are written
/// from the caller's buffer.
const INLINE_RECORDS_MAX: usize = 16 * 1024;

impl ProduceRequest {
    /// The whole PRODUCE frame as buffers to write back to back, the larger record blobs
    /// being the caller's own `Bytes` (not copied). Concatenated, they are exactly what
    /// `Request::Produce(..).encode_frame` writes.
    pub fn encode_frame_parts(&self, request_id: u32) -> Vec<Bytes> {
        let payload_len = 1
            + 4
            + 4
            + self
                .partitions
                .iter()
                .map(|p| 16 + 4 + 4 + p.records.len())
                .sum::<usize>();
        let mut parts = Vec::new();
        let mut head = BytesMut::with_capacity(64 + 24 * self.partitions.len());
        crate::native::encode_header(
            &mut head,
            crate::native::Opcode::Produce as u16,
            request_id,
            payload_len,
        );
        head.put_u8(self.acks.wire());
        head.put_u32_le(self.timeout_ms);
        put_count(&mut head, self.partitions.len());
        for p in &self.partitions {
            head.put_slice(&p.topic_id);
            head.put_u32_le(p.partition);
            if p.records.len() < INLINE_RECORDS_MAX {
                put_blob(&mut head, &p.records);
            } else {
                head.put_u32_le(p.records.len() as u32);
                parts.push(head.split().freeze());
                parts.push(p.records.clone());
            }
        }
        if !head.is_empty() {
            parts.push(head.freeze());
        }
        parts
    }
}
