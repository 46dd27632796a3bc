use bytes::{BufMut, Bytes, BytesMut};

use super::{get_error_code, Payload, TopicId};
use crate::native::wire::*;
use crate::native::ErrorCode;

/// One committed position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitEntry {
    pub topic_id: TopicId,
    pub partition: u32,
    /// The next offset to consume (Kafka's convention).
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// COMMIT_OFFSETS request. `generation_id` -1 with an empty `member_id` commits for a group
/// with no active members (a "simple" consumer, as Kafka's standalone commits); otherwise the
/// generation and member of a classic Kafka group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOffsetsRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub offsets: Vec<OffsetCommitEntry>,
}

impl Payload for CommitOffsetsRequest {
    fn encode(&self, buf: &mut BytesMut) {
        put_string(buf, &self.group_id);
        buf.put_i32_le(self.generation_id);
        put_string(buf, &self.member_id);
        put_count(buf, self.offsets.len());
        for o in &self.offsets {
            buf.put_slice(&o.topic_id);
            buf.put_u32_le(o.partition);
            buf.put_i64_le(o.offset);
            buf.put_i32_le(o.leader_epoch);
            put_nullable_string(buf, o.metadata.as_deref());
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(CommitOffsetsRequest {
            group_id: get_string(buf, "group_id")?,
            generation_id: get_i32(buf, "generation_id")?,
            member_id: get_string(buf, "member_id")?,
            offsets: get_array(buf, "offsets", 34, |b| {
                Ok(OffsetCommitEntry {
                    topic_id: get_uuid(b, "topic_id")?,
                    partition: get_u32(b, "partition")?,
                    offset: get_i64(b, "offset")?,
                    leader_epoch: get_i32(b, "leader_epoch")?,
                    metadata: get_nullable_string(b, "metadata")?,
                })
            })?,
        })
    }
}

/// A partition and its result code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionResult {
    pub topic_id: TopicId,
    pub partition: u32,
    pub error: ErrorCode,
}

/// COMMIT_OFFSETS answer: one result per entry, in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitOffsetsResponse {
    pub partitions: Vec<PartitionResult>,
}

impl Payload for CommitOffsetsResponse {
    fn encode(&self, buf: &mut BytesMut) {
        put_count(buf, self.partitions.len());
        for p in &self.partitions {
            buf.put_slice(&p.topic_id);
            buf.put_u32_le(p.partition);
            buf.put_u16_le(p.error.0);
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(CommitOffsetsResponse {
            partitions: get_array(buf, "partitions", 22, |b| {
                Ok(PartitionResult {
                    topic_id: get_uuid(b, "topic_id")?,
                    partition: get_u32(b, "partition")?,
                    error: get_error_code(b)?,
                })
            })?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicPartition {
    pub topic_id: TopicId,
    pub partition: u32,
}

/// FETCH_OFFSETS request: these partitions, or none for every partition the group committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchOffsetsRequest {
    pub group_id: String,
    pub partitions: Vec<TopicPartition>,
}

impl Payload for FetchOffsetsRequest {
    fn encode(&self, buf: &mut BytesMut) {
        put_string(buf, &self.group_id);
        put_count(buf, self.partitions.len());
        for p in &self.partitions {
            buf.put_slice(&p.topic_id);
            buf.put_u32_le(p.partition);
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(FetchOffsetsRequest {
            group_id: get_string(buf, "group_id")?,
            partitions: get_array(buf, "partitions", 20, |b| {
                Ok(TopicPartition {
                    topic_id: get_uuid(b, "topic_id")?,
                    partition: get_u32(b, "partition")?,
                })
            })?,
        })
    }
}

/// A committed position; `offset` -1 when the group has none for the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub topic_id: TopicId,
    pub partition: u32,
    pub error: ErrorCode,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchOffsetsResponse {
    pub offsets: Vec<FetchedOffset>,
}

impl Payload for FetchOffsetsResponse {
    fn encode(&self, buf: &mut BytesMut) {
        put_count(buf, self.offsets.len());
        for o in &self.offsets {
            buf.put_slice(&o.topic_id);
            buf.put_u32_le(o.partition);
            buf.put_u16_le(o.error.0);
            buf.put_i64_le(o.offset);
            buf.put_i32_le(o.leader_epoch);
            put_nullable_string(buf, o.metadata.as_deref());
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(FetchOffsetsResponse {
            offsets: get_array(buf, "offsets", 36, |b| {
                Ok(FetchedOffset {
                    topic_id: get_uuid(b, "topic_id")?,
                    partition: get_u32(b, "partition")?,
                    error: get_error_code(b)?,
                    offset: get_i64(b, "offset")?,
                    leader_epoch: get_i32(b, "leader_epoch")?,
                    metadata: get_nullable_string(b, "metadata")?,
                })
            })?,
        })
    }
}
