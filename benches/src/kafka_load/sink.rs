//! A trivial Kafka "broker" that only acknowledges: the load generator's own ceiling.
//!
//! It answers ApiVersions, Metadata (itself as the only broker, `partitions` partitions for any
//! topic asked about), InitProducerId, and Produce (every partition acknowledged at once with
//! offsets that increase by the batches' record counts; nothing is stored). One thread per
//! connection, blocking I/O, requests answered in order. Anything else closes the connection.

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, InitProducerIdResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, ProducerId, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::BenchResult;

/// The largest frame accepted (librdkafka's message.max.bytes default is 1 MB).
const MAX_FRAME: usize = 128 << 20;
/// Versions answered, each within what `kafka-protocol` encodes and librdkafka speaks.
const SUPPORTED: [(ApiKey, i16, i16); 4] = [
    (ApiKey::Produce, 3, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::InitProducerId, 0, 4),
];

/// Serves connections on `listener` forever, a thread each.
pub fn serve(listener: TcpListener, partitions: i32) -> BenchResult<()> {
    let local = listener.local_addr()?;
    for stream in listener.incoming() {
        let stream = stream?;
        std::thread::spawn(move || {
            if let Err(e) = Connection::new(stream, local, partitions).and_then(|c| c.run()) {
                eprintln!("kafka-sink: connection closed: {e}");
            }
        });
    }
    Ok(())
}

struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: StrBytes,
    port: i32,
    partitions: i32,
    /// Next offset of each (topic, partition).
    next_offsets: HashMap<(StrBytes, i32), i64>,
    out: BytesMut,
}

impl Connection {
    fn new(
        stream: TcpStream,
        local: std::net::SocketAddr,
        partitions: i32,
    ) -> BenchResult<Connection> {
        stream.set_nodelay(true)?;
        Ok(Connection {
            reader: BufReader::with_capacity(1 << 20, stream.try_clone()?),
            writer: stream,
            host: StrBytes::from_string(local.ip().to_string()),
            port: i32::from(local.port()),
            partitions,
            next_offsets: HashMap::new(),
            out: BytesMut::with_capacity(64 << 10),
        })
    }

    fn run(mut self) -> BenchResult<()> {
        loop {
            let mut length = [0u8; 4];
            match self.reader.read_exact(&mut length) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let length =
                usize::try_from(i32::from_be_bytes(length)).map_err(|_| "negative frame length")?;
            if !(8..=MAX_FRAME).contains(&length) {
                return Err(format!("frame length {length} out of bounds").into());
            }
            let mut frame = vec![0u8; length];
            self.reader.read_exact(&mut frame)?;
            let mut frame = Bytes::from(frame);
            let (key, header) = protocol::kafka::decode_request_header(&mut frame)?;
            self.answer(key, &header, frame)?;
        }
    }

    fn answer(&mut self, key: ApiKey, header: &RequestHeader, body: Bytes) -> BenchResult<()> {
        let version = header.request_api_version;
        match key {
            ApiKey::ApiVersions => {
                // Unknown newer versions get the v0 answer with UNSUPPORTED_VERSION, as Kafka does.
                let (error, version) = if version > 3 { (35, 0) } else { (0, version) };
                let response = ApiVersionsResponse::default()
                    .with_error_code(error)
                    .with_api_keys(
                        SUPPORTED
                            .iter()
                            .map(|&(key, min, max)| {
                                ApiVersion::default()
                                    .with_api_key(key as i16)
                                    .with_min_version(min)
                                    .with_max_version(max)
                            })
                            .collect(),
                    );
                self.send(key, header, version, &response)
            }
            ApiKey::Metadata => {
                check_version(key, version)?;
                let request: MetadataRequest = protocol::kafka::decode_body(key, body, version)?;
                let topics = request
                    .topics
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|t| t.name)
                    .map(|name| {
                        MetadataResponseTopic::default()
                            .with_name(Some(name))
                            .with_partitions(
                                (0..self.partitions)
                                    .map(|p| {
                                        MetadataResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_leader_id(BrokerId(0))
                                            .with_replica_nodes(vec![BrokerId(0)])
                                            .with_isr_nodes(vec![BrokerId(0)])
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                let response = MetadataResponse::default()
                    .with_brokers(vec![MetadataResponseBroker::default()
                        .with_node_id(BrokerId(0))
                        .with_host(self.host.clone())
                        .with_port(self.port)])
                    .with_cluster_id(Some(StrBytes::from_static_str("kafka-sink")))
                    .with_controller_id(BrokerId(0))
                    .with_topics(topics);
                self.send(key, header, version, &response)
            }
            ApiKey::InitProducerId => {
                check_version(key, version)?;
                let response = InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(1))
                    .with_producer_epoch(0);
                self.send(key, header, version, &response)
            }
            ApiKey::Produce => {
                check_version(key, version)?;
                let request: ProduceRequest = protocol::kafka::decode_body(key, body, version)?;
                let mut responses = Vec::with_capacity(request.topic_data.len());
                for topic in request.topic_data {
                    let mut partitions = Vec::with_capacity(topic.partition_data.len());
                    for partition in topic.partition_data {
                        let records = partition.records.as_deref().map_or(Ok(0), count_records)?;
                        let next = self
                            .next_offsets
                            .entry((topic.name.0.clone(), partition.index))
                            .or_insert(0);
                        partitions.push(
                            PartitionProduceResponse::default()
                                .with_index(partition.index)
                                .with_base_offset(*next)
                                .with_log_append_time_ms(-1),
                        );
                        *next += records;
                    }
                    responses.push(
                        TopicProduceResponse::default()
                            .with_name(topic.name)
                            .with_partition_responses(partitions),
                    );
                }
                if request.acks == 0 {
                    return Ok(());
                }
                let response = ProduceResponse::default().with_responses(responses);
                self.send(key, header, version, &response)
            }
            other => Err(format!("kafka-sink does not answer {other:?}").into()),
        }
    }

    fn send<R: Encodable>(
        &mut self,
        key: ApiKey,
        header: &RequestHeader,
        version: i16,
        response: &R,
    ) -> BenchResult<()> {
        self.out.clear();
        self.out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut self.out, key.response_header_version(version))?;
        response.encode(&mut self.out, version)?;
        let length = i32::try_from(self.out.len() - 4)?;
        self.out[..4].copy_from_slice(&length.to_be_bytes());
        self.writer.write_all(&self.out)?;
        Ok(())
    }
}

fn check_version(key: ApiKey, version: i16) -> BenchResult<()> {
    match SUPPORTED.iter().find(|s| s.0 == key) {
        Some(&(_, min, max)) if (min..=max).contains(&version) => Ok(()),
        _ => Err(format!("{key:?} v{version} is not answered").into()),
    }
}

/// Records in a run of RecordBatch v2 batches: the sum of (last offset delta + 1).
fn count_records(mut records: &[u8]) -> BenchResult<i64> {
    const LENGTH_AT: usize = 8;
    const LAST_OFFSET_DELTA_AT: usize = 23;
    const HEADER: usize = 61;
    let mut count = 0i64;
    while !records.is_empty() {
        if records.len() < HEADER {
            return Err("truncated record batch".into());
        }
        let be32 = |at: usize| {
            i32::from_be_bytes([
                records[at],
                records[at + 1],
                records[at + 2],
                records[at + 3],
            ])
        };
        let length = usize::try_from(be32(LENGTH_AT)).map_err(|_| "negative batch length")?;
        let total = LENGTH_AT + 4 + length;
        if total < HEADER || total > records.len() {
            return Err("record batch length out of bounds".into());
        }
        count += i64::from(be32(LAST_OFFSET_DELTA_AT)) + 1;
        records = &records[total..];
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_records_of_consecutive_batches_and_rejects_truncation() {
        let mut batch = vec![0u8; 61];
        batch[8..12].copy_from_slice(&49i32.to_be_bytes());
        batch[23..27].copy_from_slice(&9i32.to_be_bytes());
        let two = [batch.clone(), batch.clone()].concat();
        assert_eq!(count_records(&two).unwrap(), 20);
        assert!(count_records(&two[..70]).is_err());
    }
}
