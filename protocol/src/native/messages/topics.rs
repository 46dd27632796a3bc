use bytes::{BufMut, Bytes, BytesMut};

use super::{get_error_code, Payload, TopicId};
use crate::native::wire::*;
use crate::native::ErrorCode;

/// A topic config, by its Kafka name (`retention.ms`, `cleanup.policy`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: String,
}

fn put_configs(buf: &mut BytesMut, configs: &[ConfigEntry]) {
    put_count(buf, configs.len());
    for c in configs {
        put_string(buf, &c.name);
        put_string(buf, &c.value);
    }
}

fn get_configs(buf: &mut Bytes) -> Result<Vec<ConfigEntry>> {
    get_array(buf, "configs", 4, |b| {
        Ok(ConfigEntry {
            name: get_string(b, "config name")?,
            value: get_string(b, "config value")?,
        })
    })
}

/// CREATE_TOPIC request. Zero partitions or replication factor means the broker's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateTopicRequest {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    pub configs: Vec<ConfigEntry>,
}

impl Payload for CreateTopicRequest {
    fn encode(&self, buf: &mut BytesMut) {
        put_string(buf, &self.name);
        buf.put_u32_le(self.partitions);
        buf.put_u16_le(self.replication_factor);
        put_configs(buf, &self.configs);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(CreateTopicRequest {
            name: get_string(buf, "name")?,
            partitions: get_u32(buf, "partitions")?,
            replication_factor: get_u16(buf, "replication_factor")?,
            configs: get_configs(buf)?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateTopicResponse {
    pub topic_id: TopicId,
    pub partitions: u32,
    pub replication_factor: u16,
}

impl Payload for CreateTopicResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.topic_id);
        buf.put_u32_le(self.partitions);
        buf.put_u16_le(self.replication_factor);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(CreateTopicResponse {
            topic_id: get_uuid(buf, "topic_id")?,
            partitions: get_u32(buf, "partitions")?,
            replication_factor: get_u16(buf, "replication_factor")?,
        })
    }
}

/// DELETE_TOPIC request: by id, or by name when the id is all zeros.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteTopicRequest {
    pub topic_id: TopicId,
    pub name: String,
}

impl Payload for DeleteTopicRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.topic_id);
        put_string(buf, &self.name);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(DeleteTopicRequest {
            topic_id: get_uuid(buf, "topic_id")?,
            name: get_string(buf, "name")?,
        })
    }
}

/// DELETE_TOPIC answer: the id of the deleted topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteTopicResponse {
    pub topic_id: TopicId,
}

impl Payload for DeleteTopicResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.topic_id);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(DeleteTopicResponse {
            topic_id: get_uuid(buf, "topic_id")?,
        })
    }
}

/// DESCRIBE_TOPIC request: by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeTopicRequest {
    pub name: String,
}

impl Payload for DescribeTopicRequest {
    fn encode(&self, buf: &mut BytesMut) {
        put_string(buf, &self.name);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(DescribeTopicRequest {
            name: get_string(buf, "name")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    pub partition: u32,
    pub error: ErrorCode,
    pub leader: i32,
    pub leader_epoch: i32,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

/// DESCRIBE_TOPIC answer: partitions with their offsets, and the configs set on the topic
/// (not the broker defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeTopicResponse {
    pub name: String,
    pub topic_id: TopicId,
    pub internal: bool,
    pub replication_factor: u16,
    pub partitions: Vec<PartitionDescription>,
    pub configs: Vec<ConfigEntry>,
}

impl Payload for DescribeTopicResponse {
    fn encode(&self, buf: &mut BytesMut) {
        put_string(buf, &self.name);
        buf.put_slice(&self.topic_id);
        put_bool(buf, self.internal);
        buf.put_u16_le(self.replication_factor);
        put_count(buf, self.partitions.len());
        for p in &self.partitions {
            buf.put_u32_le(p.partition);
            buf.put_u16_le(p.error.0);
            buf.put_i32_le(p.leader);
            buf.put_i32_le(p.leader_epoch);
            buf.put_i64_le(p.log_start_offset);
            buf.put_i64_le(p.high_watermark);
        }
        put_configs(buf, &self.configs);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(DescribeTopicResponse {
            name: get_string(buf, "name")?,
            topic_id: get_uuid(buf, "topic_id")?,
            internal: get_bool(buf, "internal")?,
            replication_factor: get_u16(buf, "replication_factor")?,
            partitions: get_array(buf, "partitions", 30, |b| {
                Ok(PartitionDescription {
                    partition: get_u32(b, "partition")?,
                    error: get_error_code(b)?,
                    leader: get_i32(b, "leader")?,
                    leader_epoch: get_i32(b, "leader_epoch")?,
                    log_start_offset: get_i64(b, "log_start_offset")?,
                    high_watermark: get_i64(b, "high_watermark")?,
                })
            })?,
            configs: get_configs(buf)?,
        })
    }
}
