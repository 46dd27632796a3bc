//! The registry of Kafka APIs: one file per API key, each declaring the versions it serves, and
//! this one table listing them all. ApiVersions answers from the table, and `dispatch` routes
//! by it, so an API is supported exactly when it is listed here.
//!
//! A handler turns a decoded request into a response value (no sockets), so it can be tested
//! directly; `dispatch` does the decoding and encoding around it.

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod alter_configs;
mod api_versions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_partitions;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_transactions;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
pub(crate) mod list_offsets;
mod list_transactions;
mod metadata;
pub(crate) mod offset_commit;
mod offset_delete;
pub(crate) mod offset_fetch;
mod offset_for_leader_epoch;
pub(crate) mod produce;
mod sync_group;
mod txn_offset_commit;

use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::shard::Shard;

/// The versions of one API this broker serves.
#[derive(Debug, Clone, Copy)]
pub struct ApiSupport {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

/// Every API the broker serves. Versions: from Kafka 4's floors up to the newest that current
/// clients send, without versions Kafka marks unstable or features not implemented yet
/// (e.g. Produce v12+ means transactions V2).
pub const SUPPORTED: &[ApiSupport] = &[
    produce::SUPPORT,
    fetch::SUPPORT,
    list_offsets::SUPPORT,
    metadata::SUPPORT,
    api_versions::SUPPORT,
    create_topics::SUPPORT,
    delete_topics::SUPPORT,
    create_partitions::SUPPORT,
    delete_records::SUPPORT,
    describe_log_dirs::SUPPORT,
    offset_for_leader_epoch::SUPPORT,
    describe_cluster::SUPPORT,
    describe_configs::SUPPORT,
    alter_configs::SUPPORT,
    incremental_alter_configs::SUPPORT,
    find_coordinator::SUPPORT,
    join_group::SUPPORT,
    sync_group::SUPPORT,
    heartbeat::SUPPORT,
    leave_group::SUPPORT,
    offset_commit::SUPPORT,
    offset_fetch::SUPPORT,
    list_groups::SUPPORT,
    describe_groups::SUPPORT,
    delete_groups::SUPPORT,
    offset_delete::SUPPORT,
    consumer_group_heartbeat::SUPPORT,
    consumer_group_describe::SUPPORT,
    init_producer_id::SUPPORT,
    add_partitions_to_txn::SUPPORT,
    add_offsets_to_txn::SUPPORT,
    end_txn::SUPPORT,
    txn_offset_commit::SUPPORT,
    describe_transactions::SUPPORT,
    list_transactions::SUPPORT,
    describe_producers::SUPPORT,
];

pub fn support(key: ApiKey) -> Option<ApiSupport> {
    SUPPORTED.iter().copied().find(|s| s.key == key)
}

/// What a handler sees besides its request.
#[derive(Debug)]
pub struct RequestContext<'a> {
    pub shard: &'a Rc<Shard>,
    pub version: i16,
    /// The client's address (group members report it as their host).
    pub peer: std::net::SocketAddr,
    /// Ended by a handler when the rest of its work may overlap the connection's next request.
    pub ordered: &'a OrderedPhase,
}

/// The part of a request that must not overlap the next request of its connection (see
/// `connection.rs`). It ends when the request is done, or earlier when its handler calls
/// [`OrderedPhase::end`].
#[derive(Debug)]
pub struct OrderedPhase(std::cell::RefCell<Option<tokio::sync::oneshot::Sender<()>>>);

impl OrderedPhase {
    /// A phase and what resolves when it ends (`Err` when it ends by being dropped).
    pub fn new() -> (OrderedPhase, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (OrderedPhase(std::cell::RefCell::new(Some(tx))), rx)
    }

    /// Lets the connection read its next request now.
    pub fn end(&self) {
        if let Some(tx) = self.0.borrow_mut().take() {
            let _ = tx.send(());
        }
    }
}

/// Decodes, handles and encodes one request. `Err` closes the connection (malformed or
/// unsupported request); `Ok(None)` sends nothing (produce with acks=0). A response is a list
/// of segments written with one vectored write.
pub async fn dispatch(
    shard: &Rc<Shard>,
    key: ApiKey,
    header: &RequestHeader,
    body: Bytes,
    peer: std::net::SocketAddr,
    ordered: &OrderedPhase,
) -> Result<Option<Vec<Bytes>>, String> {
    let version = header.request_api_version;
    // Produce v0-v2 are advertised (librdkafka needs them listed) but carry message formats
    // older than v2, which are never stored: answered UNSUPPORTED_VERSION in their own format.
    if key == ApiKey::Produce && (0..3).contains(&version) {
        crate::metrics::count_error(key, ResponseError::UnsupportedVersion.code());
        return Ok(Some(vec![
            produce::legacy_unsupported(header, body)?.freeze()
        ]));
    }
    let supported = support(key).filter(|s| (s.min..=s.max).contains(&version));
    if supported.is_none() {
        return match key {
            // Kafka answers an ApiVersions it cannot parse with UNSUPPORTED_VERSION in v0
            // format, so the client can retry with a version it finds in the list.
            ApiKey::ApiVersions => {
                crate::metrics::count_error(key, ResponseError::UnsupportedVersion.code());
                Ok(Some(vec![
                    api_versions::unsupported_version(header)?.freeze()
                ]))
            }
            _ => Err(format!("{key:?} v{version} is not supported")),
        };
    }
    let ctx = RequestContext {
        shard,
        version,
        peer,
        ordered,
    };
    macro_rules! route {
        ($request:ty, $handler:path) => {{
            let request = decode::<$request>(key, body, version)?;
            let response = $handler(&ctx, request).await;
            crate::metrics::count_errors(key, &response);
            Ok(Some(vec![encode(key, header, &response)?.freeze()]))
        }};
    }
    match key {
        ApiKey::Produce => {
            let request = decode::<kafka_protocol::messages::ProduceRequest>(key, body, version)?;
            match produce::handle(&ctx, request).await {
                Some(response) => {
                    crate::metrics::count_errors(key, &response);
                    Ok(Some(vec![encode(key, header, &response)?.freeze()]))
                }
                None => Ok(None),
            }
        }
        ApiKey::Fetch => {
            // Fetch has its own encoder, which splices record batches in without copying them.
            let request = decode::<kafka_protocol::messages::FetchRequest>(key, body, version)?;
            let response = fetch::handle(&ctx, request).await;
            crate::metrics::count_errors(key, &response);
            Ok(Some(crate::kafka::fetch_encoding::encode(
                header.correlation_id,
                version,
                &response,
            )))
        }
        ApiKey::ListOffsets => route!(
            kafka_protocol::messages::ListOffsetsRequest,
            list_offsets::handle
        ),
        ApiKey::Metadata => route!(kafka_protocol::messages::MetadataRequest, metadata::handle),
        ApiKey::ApiVersions => route!(
            kafka_protocol::messages::ApiVersionsRequest,
            api_versions::handle
        ),
        ApiKey::CreateTopics => route!(
            kafka_protocol::messages::CreateTopicsRequest,
            create_topics::handle
        ),
        ApiKey::DeleteTopics => route!(
            kafka_protocol::messages::DeleteTopicsRequest,
            delete_topics::handle
        ),
        ApiKey::CreatePartitions => route!(
            kafka_protocol::messages::CreatePartitionsRequest,
            create_partitions::handle
        ),
        ApiKey::DeleteRecords => route!(
            kafka_protocol::messages::DeleteRecordsRequest,
            delete_records::handle
        ),
        ApiKey::DescribeLogDirs => route!(
            kafka_protocol::messages::DescribeLogDirsRequest,
            describe_log_dirs::handle
        ),
        ApiKey::OffsetForLeaderEpoch => route!(
            kafka_protocol::messages::OffsetForLeaderEpochRequest,
            offset_for_leader_epoch::handle
        ),
        ApiKey::DescribeCluster => route!(
            kafka_protocol::messages::DescribeClusterRequest,
            describe_cluster::handle
        ),
        ApiKey::DescribeConfigs => route!(
            kafka_protocol::messages::DescribeConfigsRequest,
            describe_configs::handle
        ),
        ApiKey::AlterConfigs => route!(
            kafka_protocol::messages::AlterConfigsRequest,
            alter_configs::handle
        ),
        ApiKey::IncrementalAlterConfigs => route!(
            kafka_protocol::messages::IncrementalAlterConfigsRequest,
            incremental_alter_configs::handle
        ),
        ApiKey::FindCoordinator => route!(
            kafka_protocol::messages::FindCoordinatorRequest,
            find_coordinator::handle
        ),
        ApiKey::JoinGroup => {
            let request = decode::<kafka_protocol::messages::JoinGroupRequest>(key, body, version)?;
            let client_id = header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default();
            let response = join_group::handle(&ctx, request, client_id).await;
            crate::metrics::count_errors(key, &response);
            Ok(Some(vec![encode(key, header, &response)?.freeze()]))
        }
        ApiKey::ConsumerGroupHeartbeat => {
            let request = decode::<kafka_protocol::messages::ConsumerGroupHeartbeatRequest>(
                key, body, version,
            )?;
            let client_id = header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default();
            let response = consumer_group_heartbeat::handle(&ctx, request, client_id).await;
            crate::metrics::count_errors(key, &response);
            Ok(Some(vec![encode(key, header, &response)?.freeze()]))
        }
        ApiKey::ConsumerGroupDescribe => route!(
            kafka_protocol::messages::ConsumerGroupDescribeRequest,
            consumer_group_describe::handle
        ),
        ApiKey::SyncGroup => route!(
            kafka_protocol::messages::SyncGroupRequest,
            sync_group::handle
        ),
        ApiKey::Heartbeat => route!(
            kafka_protocol::messages::HeartbeatRequest,
            heartbeat::handle
        ),
        ApiKey::LeaveGroup => route!(
            kafka_protocol::messages::LeaveGroupRequest,
            leave_group::handle
        ),
        ApiKey::OffsetCommit => route!(
            kafka_protocol::messages::OffsetCommitRequest,
            offset_commit::handle
        ),
        ApiKey::OffsetFetch => route!(
            kafka_protocol::messages::OffsetFetchRequest,
            offset_fetch::handle
        ),
        ApiKey::ListGroups => route!(
            kafka_protocol::messages::ListGroupsRequest,
            list_groups::handle
        ),
        ApiKey::DescribeGroups => route!(
            kafka_protocol::messages::DescribeGroupsRequest,
            describe_groups::handle
        ),
        ApiKey::InitProducerId => route!(
            kafka_protocol::messages::InitProducerIdRequest,
            init_producer_id::handle
        ),
        ApiKey::AddPartitionsToTxn => route!(
            kafka_protocol::messages::AddPartitionsToTxnRequest,
            add_partitions_to_txn::handle
        ),
        ApiKey::AddOffsetsToTxn => route!(
            kafka_protocol::messages::AddOffsetsToTxnRequest,
            add_offsets_to_txn::handle
        ),
        ApiKey::EndTxn => route!(kafka_protocol::messages::EndTxnRequest, end_txn::handle),
        ApiKey::TxnOffsetCommit => route!(
            kafka_protocol::messages::TxnOffsetCommitRequest,
            txn_offset_commit::handle
        ),
        ApiKey::DescribeTransactions => route!(
            kafka_protocol::messages::DescribeTransactionsRequest,
            describe_transactions::handle
        ),
        ApiKey::ListTransactions => route!(
            kafka_protocol::messages::ListTransactionsRequest,
            list_transactions::handle
        ),
        ApiKey::DescribeProducers => route!(
            kafka_protocol::messages::DescribeProducersRequest,
            describe_producers::handle
        ),
        ApiKey::DeleteGroups => route!(
            kafka_protocol::messages::DeleteGroupsRequest,
            delete_groups::handle
        ),
        ApiKey::OffsetDelete => route!(
            kafka_protocol::messages::OffsetDeleteRequest,
            offset_delete::handle
        ),
        other => Err(format!("{other:?} is listed as supported but has no route")),
    }
}

fn decode<T: Decodable>(key: ApiKey, body: Bytes, version: i16) -> Result<T, String> {
    protocol::kafka::decode_body(key, body, version)
}

/// Encodes `[length | response header | body]`.
pub fn encode<T: Encodable>(
    key: ApiKey,
    header: &RequestHeader,
    response: &T,
) -> Result<BytesMut, String> {
    encode_with_version(key, header, response, header.request_api_version)
}

fn encode_with_version<T: Encodable>(
    key: ApiKey,
    header: &RequestHeader,
    response: &T,
    version: i16,
) -> Result<BytesMut, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    let response_header = ResponseHeader::default().with_correlation_id(header.correlation_id);
    response_header
        .encode(&mut buf, key.response_header_version(version))
        .map_err(|e| format!("encode {key:?} response header: {e}"))?;
    response
        .encode(&mut buf, version)
        .map_err(|e| format!("encode {key:?} v{version} response: {e}"))?;
    let length = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&length.to_be_bytes());
    Ok(buf)
}

/// Shorthand for a `StrBytes` from a `String`.
pub fn str_bytes(s: impl Into<String>) -> kafka_protocol::protocol::StrBytes {
    kafka_protocol::protocol::StrBytes::from_string(s.into())
}
