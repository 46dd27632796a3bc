//! The Fetch response encoder: writes a response as a list of `Bytes` segments in which the
//! record batches are the log's own buffers, so fetched data goes from the tail cache or a
//! read-ahead window to the socket (vectored write) without being copied into a response
//! buffer. Everything else is encoded here, field for field as kafka-protocol's FetchResponse
//! encoder does (a property test compares the two byte for byte for every version we serve).

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

/// One partition of the answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionOut {
    pub index: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// (producer id, first offset) of aborted transactions; `None` encodes as null.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    pub preferred_read_replica: i32,
    /// Whole batches, concatenated on the wire as the `records` field.
    pub records: Vec<Bytes>,
}

/// One topic of the answer: by name before v13, by id from v13.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicOut {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionOut>,
}

/// A Fetch response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchOut {
    pub throttle_time_ms: i32,
    pub error_code: i16,
    pub session_id: i32,
    pub topics: Vec<TopicOut>,
}

/// Accumulates encoded bytes, cutting a segment wherever record data is spliced in.
struct Writer {
    segments: Vec<Bytes>,
    current: BytesMut,
    flexible: bool,
}

impl Writer {
    fn splice(&mut self, data: &Bytes) {
        if !self.current.is_empty() {
            self.segments.push(self.current.split().freeze());
        }
        self.segments.push(data.clone());
    }

    fn unsigned_varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.current.put_u8((value as u8) | 0x80);
            value >>= 7;
        }
        self.current.put_u8(value as u8);
    }

    /// An array or nullable-array length (`None` = null).
    fn length(&mut self, count: Option<usize>) {
        match (self.flexible, count) {
            (true, None) => self.unsigned_varint(0),
            (true, Some(n)) => self.unsigned_varint(n as u64 + 1),
            (false, None) => self.current.put_i32(-1),
            (false, Some(n)) => self.current.put_i32(n as i32),
        }
    }

    fn string(&mut self, s: &str) {
        if self.flexible {
            self.unsigned_varint(s.len() as u64 + 1);
        } else {
            self.current.put_i16(s.len() as i16);
        }
        self.current.extend_from_slice(s.as_bytes());
    }

    fn no_tagged_fields(&mut self) {
        if self.flexible {
            self.unsigned_varint(0);
        }
    }
}

/// Encodes `[length | response header | body]` as segments for `version` (4..=17).
pub fn encode(correlation_id: i32, version: i16, response: &FetchOut) -> Vec<Bytes> {
    let flexible = version >= 12;
    let mut w = Writer {
        segments: Vec::new(),
        current: BytesMut::with_capacity(256),
        flexible,
    };
    w.current.put_i32(0); // length, patched below
    w.current.put_i32(correlation_id);
    w.no_tagged_fields(); // response header v1 for flexible versions
    w.current.put_i32(response.throttle_time_ms);
    if version >= 7 {
        w.current.put_i16(response.error_code);
        w.current.put_i32(response.session_id);
    }
    w.length(Some(response.topics.len()));
    for topic in &response.topics {
        if version <= 12 {
            w.string(&topic.name);
        }
        if version >= 13 {
            w.current.extend_from_slice(topic.id.as_bytes());
        }
        w.length(Some(topic.partitions.len()));
        for p in &topic.partitions {
            w.current.put_i32(p.index);
            w.current.put_i16(p.error_code);
            w.current.put_i64(p.high_watermark);
            w.current.put_i64(p.last_stable_offset);
            if version >= 5 {
                w.current.put_i64(p.log_start_offset);
            }
            w.length(p.aborted_transactions.as_ref().map(Vec::len));
            for (producer_id, first_offset) in p.aborted_transactions.iter().flatten() {
                w.current.put_i64(*producer_id);
                w.current.put_i64(*first_offset);
                w.no_tagged_fields();
            }
            if version >= 11 {
                w.current.put_i32(p.preferred_read_replica);
            }
            let records_len: usize = p.records.iter().map(Bytes::len).sum();
            if flexible {
                w.unsigned_varint(records_len as u64 + 1);
            } else {
                w.current.put_i32(records_len as i32);
            }
            for batch in &p.records {
                w.splice(batch);
            }
            w.no_tagged_fields();
        }
        w.no_tagged_fields();
    }
    w.no_tagged_fields();
    if !w.current.is_empty() {
        let tail = w.current.split().freeze();
        w.segments.push(tail);
    }
    let total: usize = w.segments.iter().map(Bytes::len).sum();
    patch_length(&mut w.segments, (total - 4) as i32);
    w.segments
}

/// Writes the frame length into the first four bytes (always in the first segment, which
/// starts with the fixed-size header).
fn patch_length(segments: &mut [Bytes], length: i32) {
    if let Some(first) = segments.first_mut() {
        let mut head = BytesMut::from(&first[..]);
        head[..4].copy_from_slice(&length.to_be_bytes());
        *first = head.freeze();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, PartitionData,
    };
    use kafka_protocol::messages::{
        ApiKey, BrokerId, FetchResponse, ProducerId, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;

    fn reference(correlation_id: i32, version: i16, out: &FetchOut) -> Vec<u8> {
        let topics = out
            .topics
            .iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let records: Vec<u8> = p.records.iter().flat_map(|b| b.to_vec()).collect();
                        PartitionData::default()
                            .with_partition_index(p.index)
                            .with_error_code(p.error_code)
                            .with_high_watermark(p.high_watermark)
                            .with_last_stable_offset(p.last_stable_offset)
                            .with_log_start_offset(p.log_start_offset)
                            .with_aborted_transactions(p.aborted_transactions.as_ref().map(
                                |list| {
                                    list.iter()
                                        .map(|(pid, first)| {
                                            AbortedTransaction::default()
                                                .with_producer_id(ProducerId(*pid))
                                                .with_first_offset(*first)
                                        })
                                        .collect()
                                },
                            ))
                            .with_preferred_read_replica(BrokerId(p.preferred_read_replica))
                            .with_records(Some(Bytes::from(records)))
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_topic_id(t.id)
                    .with_partitions(partitions)
            })
            .collect();
        let response = FetchResponse::default()
            .with_throttle_time_ms(out.throttle_time_ms)
            .with_error_code(out.error_code)
            .with_session_id(out.session_id)
            .with_responses(topics);
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, ApiKey::Fetch.response_header_version(version))
            .unwrap();
        response.encode(&mut buf, version).unwrap();
        let length = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&length.to_be_bytes());
        buf.to_vec()
    }

    fn partition() -> impl Strategy<Value = PartitionOut> {
        (
            any::<i32>(),
            any::<i16>(),
            any::<i64>(),
            any::<i64>(),
            any::<i64>(),
            proptest::option::of(proptest::collection::vec(any::<(i64, i64)>(), 0..3)),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..4),
        )
            .prop_map(|(index, error_code, hw, lso, start, aborted, records)| {
                PartitionOut {
                    index,
                    error_code,
                    high_watermark: hw,
                    last_stable_offset: lso,
                    log_start_offset: start,
                    aborted_transactions: aborted,
                    preferred_read_replica: -1,
                    records: records.into_iter().map(Bytes::from).collect(),
                }
            })
    }

    fn fetch_out(version: i16) -> impl Strategy<Value = FetchOut> {
        let topic = (
            "[a-z]{1,20}",
            any::<u128>(),
            proptest::collection::vec(partition(), 0..4),
        )
            .prop_map(move |(name, id, partitions)| TopicOut {
                name: if version <= 12 { name } else { String::new() },
                id: if version >= 13 {
                    Uuid::from_u128(id)
                } else {
                    Uuid::nil()
                },
                partitions,
            });
        (
            any::<i32>(),
            any::<i16>(),
            any::<i32>(),
            proptest::collection::vec(topic, 0..3),
        )
            .prop_map(move |(throttle, error_code, session_id, topics)| FetchOut {
                throttle_time_ms: throttle,
                error_code: if version >= 7 { error_code } else { 0 },
                session_id: if version >= 7 { session_id } else { 0 },
                topics,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn matches_kafka_protocol_byte_for_byte(
            (version, out) in (4i16..=17).prop_flat_map(|v| (Just(v), fetch_out(v))),
            correlation in any::<i32>(),
        ) {
            let ours: Vec<u8> = encode(correlation, version, &out).iter().flat_map(|b| b.to_vec()).collect();
            prop_assert_eq!(ours, reference(correlation, version, &out));
        }
    }
}
