use bytes::{BufMut, Bytes, BytesMut};

use super::{get_error_code, Payload, TopicId};
use crate::native::wire::*;
use crate::native::ErrorCode;

/// METADATA request: topic names, or none for every topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataRequest {
    pub topics: Vec<String>,
}

impl Payload for MetadataRequest {
    fn encode(&self, buf: &mut BytesMut) {
        put_count(buf, self.topics.len());
        for topic in &self.topics {
            put_string(buf, topic);
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(MetadataRequest {
            topics: get_array(buf, "topics", 2, |b| get_string(b, "topic"))?,
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    /// The broker's native port.
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: u32,
    pub error: ErrorCode,
    /// Node id of the leader, -1 when there is none.
    pub leader: i32,
    pub leader_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub error: ErrorCode,
    pub name: String,
    pub topic_id: TopicId,
    pub internal: bool,
    pub partitions: Vec<PartitionMetadata>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataResponse {
    pub brokers: Vec<BrokerInfo>,
    pub topics: Vec<TopicMetadata>,
}

impl Payload for MetadataResponse {
    fn encode(&self, buf: &mut BytesMut) {
        put_count(buf, self.brokers.len());
        for broker in &self.brokers {
            buf.put_i32_le(broker.node_id);
            put_string(buf, &broker.host);
            buf.put_u16_le(broker.port);
        }
        put_count(buf, self.topics.len());
        for topic in &self.topics {
            buf.put_u16_le(topic.error.0);
            put_string(buf, &topic.name);
            buf.put_slice(&topic.topic_id);
            put_bool(buf, topic.internal);
            put_count(buf, topic.partitions.len());
            for p in &topic.partitions {
                buf.put_u32_le(p.partition);
                buf.put_u16_le(p.error.0);
                buf.put_i32_le(p.leader);
                buf.put_i32_le(p.leader_epoch);
            }
        }
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        let brokers = get_array(buf, "brokers", 8, |b| {
            Ok(BrokerInfo {
                node_id: get_i32(b, "node_id")?,
                host: get_string(b, "host")?,
                port: get_u16(b, "port")?,
            })
        })?;
        let topics = get_array(buf, "topics", 25, |b| {
            Ok(TopicMetadata {
                error: get_error_code(b)?,
                name: get_string(b, "name")?,
                topic_id: get_uuid(b, "topic_id")?,
                internal: get_bool(b, "internal")?,
                partitions: get_array(b, "partitions", 14, |b| {
                    Ok(PartitionMetadata {
                        partition: get_u32(b, "partition")?,
                        error: get_error_code(b)?,
                        leader: get_i32(b, "leader")?,
                        leader_epoch: get_i32(b, "leader_epoch")?,
                    })
                })?,
            })
        })?;
        Ok(MetadataResponse { brokers, topics })
    }
}
