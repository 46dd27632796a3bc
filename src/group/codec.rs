//! The records of `__consumer_offsets`, in Kafka's own formats (so Kafka tools can read them):
//!
//! ```text
//! offset commit   key   [i16 version=1][string group][string topic][i32 partition]
//!                 value [i16 version=3][i64 offset][i32 leader epoch][string metadata]
//!                       [i64 commit timestamp]
//!                 or, with an explicit retention (OffsetCommit v2-v4):
//!                       [i16 version=1][i64 offset][string metadata][i64 commit timestamp]
//!                       [i64 expire timestamp]
//! group metadata  key   [i16 version=2][string group]
//!                 value [i16 version=3][string protocol type][i32 generation]
//!                       [nullable string protocol][nullable string leader]
//!                       [i64 state timestamp][i32 member count = 0]
//! ```
//! consumer group key   [i16 version=3][string group]          (KIP-848 groups)
//!                 value [i16 version=0][i32 group epoch][u8 tagged fields = 0]
//!
//! Strings are an i16 length then UTF-8 bytes (-1 for null). A null value is a tombstone.
//! Members are never stored: after a restart a group is Empty with its last generation, and
//! its consumers rejoin. Replay keeps the latest record per key, as compaction would.

use bytes::{Buf, BufMut, Bytes, BytesMut};

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;
const CONSUMER_GROUP_KEY_VERSION: i16 = 3;
const CONSUMER_GROUP_VALUE_VERSION: i16 = 0;

/// The key of a `__consumer_offsets` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
    /// A KIP-848 consumer group's metadata (its type and epoch).
    ConsumerGroup {
        group: String,
    },
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub timestamp: i64,
    /// When the commit expires, if the client set a retention time (else
    /// `offsets.retention.minutes` applies).
    pub expire_timestamp: Option<i64>,
}

/// Group metadata as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub timestamp: i64,
}

fn put_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => {
            let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
            out.put_i16(bytes.len() as i16);
            out.put_slice(bytes);
        }
        None => out.put_i16(-1),
    }
}

fn get_string(buf: &mut Bytes) -> Result<Option<String>, String> {
    if buf.remaining() < 2 {
        return Err("truncated string length".into());
    }
    let len = buf.get_i16();
    if len < 0 {
        return Ok(None);
    }
    let len = len as usize;
    if buf.remaining() < len {
        return Err("truncated string".into());
    }
    let bytes = buf.split_to(len);
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| "string is not UTF-8".into())
}

fn get_required(buf: &mut Bytes) -> Result<String, String> {
    get_string(buf)?.ok_or_else(|| "null where a string is required".into())
}

fn need(buf: &Bytes, n: usize) -> Result<(), String> {
    if buf.remaining() < n {
        Err("truncated record".into())
    } else {
        Ok(())
    }
}

impl RecordKey {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                out.put_i16(OFFSET_KEY_VERSION);
                put_string(&mut out, Some(group));
                put_string(&mut out, Some(topic));
                out.put_i32(*partition);
            }
            RecordKey::Group { group } => {
                out.put_i16(GROUP_KEY_VERSION);
                put_string(&mut out, Some(group));
            }
            RecordKey::ConsumerGroup { group } => {
                out.put_i16(CONSUMER_GROUP_KEY_VERSION);
                put_string(&mut out, Some(group));
            }
        }
        out.freeze()
    }

    /// `Ok(None)` for key versions this broker does not know (skipped on replay).
    pub fn decode(mut buf: Bytes) -> Result<Option<RecordKey>, String> {
        need(&buf, 2)?;
        match buf.get_i16() {
            0 | 1 => {
                let group = get_required(&mut buf)?;
                let topic = get_required(&mut buf)?;
                need(&buf, 4)?;
                Ok(Some(RecordKey::Offset {
                    group,
                    topic,
                    partition: buf.get_i32(),
                }))
            }
            2 => Ok(Some(RecordKey::Group {
                group: get_required(&mut buf)?,
            })),
            3 => Ok(Some(RecordKey::ConsumerGroup {
                group: get_required(&mut buf)?,
            })),
            _ => Ok(None),
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        if let Some(expire) = self.expire_timestamp {
            // Only version 1 has an expire timestamp (and no leader epoch).
            out.put_i16(1);
            out.put_i64(self.offset);
            put_string(&mut out, Some(&self.metadata));
            out.put_i64(self.timestamp);
            out.put_i64(expire);
            return out.freeze();
        }
        out.put_i16(OFFSET_VALUE_VERSION);
        out.put_i64(self.offset);
        out.put_i32(self.leader_epoch);
        put_string(&mut out, Some(&self.metadata));
        out.put_i64(self.timestamp);
        out.freeze()
    }

    pub fn decode(mut buf: Bytes) -> Result<OffsetValue, String> {
        need(&buf, 2)?;
        let version = buf.get_i16();
        if !(0..=4).contains(&version) {
            return Err(format!("offset value version {version}"));
        }
        need(&buf, 8)?;
        let offset = buf.get_i64();
        let leader_epoch = if version >= 3 {
            need(&buf, 4)?;
            buf.get_i32()
        } else {
            -1
        };
        let metadata = get_string(&mut buf)?.unwrap_or_default();
        need(&buf, 8)?;
        let timestamp = buf.get_i64();
        let expire_timestamp = if version == 1 {
            need(&buf, 8)?;
            Some(buf.get_i64())
        } else {
            None
        };
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            timestamp,
            expire_timestamp,
        })
    }
}

impl GroupValue {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_i16(GROUP_VALUE_VERSION);
        put_string(&mut out, Some(&self.protocol_type));
        out.put_i32(self.generation);
        put_string(&mut out, self.protocol.as_deref());
        put_string(&mut out, self.leader.as_deref());
        out.put_i64(self.timestamp);
        out.put_i32(0);
        out.freeze()
    }

    /// Reads the fields this broker keeps; stored members (written by Kafka) are ignored.
    pub fn decode(mut buf: Bytes) -> Result<GroupValue, String> {
        need(&buf, 2)?;
        let version = buf.get_i16();
        if !(0..=4).contains(&version) {
            return Err(format!("group value version {version}"));
        }
        let protocol_type = get_required(&mut buf)?;
        need(&buf, 4)?;
        let generation = buf.get_i32();
        let protocol = get_string(&mut buf)?;
        let leader = get_string(&mut buf)?;
        let timestamp = if version >= 2 {
            need(&buf, 8)?;
            buf.get_i64()
        } else {
            -1
        };
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            timestamp,
        })
    }
}

/// A KIP-848 group's epoch as stored.
pub fn encode_consumer_group(epoch: i32) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(CONSUMER_GROUP_VALUE_VERSION);
    out.put_i32(epoch);
    out.put_u8(0); // no tagged fields
    out.freeze()
}

pub fn decode_consumer_group(mut buf: Bytes) -> Result<i32, String> {
    need(&buf, 6)?;
    let version = buf.get_i16();
    if version != CONSUMER_GROUP_VALUE_VERSION {
        return Err(format!("consumer group value version {version}"));
    }
    Ok(buf.get_i32())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_and_values_round_trip() {
        let key = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 3,
        };
        assert_eq!(RecordKey::decode(key.encode()).unwrap(), Some(key));
        let key = RecordKey::Group { group: "g".into() };
        assert_eq!(RecordKey::decode(key.encode()).unwrap(), Some(key));
        let value = OffsetValue {
            offset: 42,
            leader_epoch: 0,
            metadata: "m".into(),
            timestamp: 7,
            expire_timestamp: None,
        };
        assert_eq!(OffsetValue::decode(value.encode()).unwrap(), value);
        let expiring = OffsetValue {
            leader_epoch: -1,
            expire_timestamp: Some(99),
            ..value
        };
        assert_eq!(OffsetValue::decode(expiring.encode()).unwrap(), expiring);
        let value = GroupValue {
            protocol_type: "consumer".into(),
            generation: 5,
            protocol: Some("range".into()),
            leader: None,
            timestamp: 9,
        };
        assert_eq!(GroupValue::decode(value.encode()).unwrap(), value);
        assert!(OffsetValue::decode(Bytes::from_static(&[0, 3, 1])).is_err());
        let key = RecordKey::ConsumerGroup { group: "g".into() };
        assert_eq!(RecordKey::decode(key.encode()).unwrap(), Some(key));
        assert_eq!(
            decode_consumer_group(encode_consumer_group(12)).unwrap(),
            12
        );
        assert!(decode_consumer_group(Bytes::from_static(&[0, 0, 1])).is_err());
    }
}
