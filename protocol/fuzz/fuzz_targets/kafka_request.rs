//! Arbitrary bytes as a Kafka request frame (after the length prefix): the header decoder, then
//! the body decoder of the frame's API key at its version, for every API the broker serves or
//! will serve. Any panic, abort or huge allocation is a bug (the allocation fix is the reason
//! kafka-protocol is vendored).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use protocol::kafka::messages::*;
use protocol::kafka::{decode_body, decode_request_header};

macro_rules! decode_each {
    ($key:expr, $body:expr, $version:expr, $($api:ident => $request:ty),* $(,)?) => {
        match $key {
            $(ApiKey::$api => {
                let _ = decode_body::<$request>($key, $body, $version);
            })*
            _ => {}
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let mut frame = Bytes::copy_from_slice(data);
    let Ok((key, header)) = decode_request_header(&mut frame) else { return };
    let version = header.request_api_version;
    decode_each!(key, frame, version,
        Produce => ProduceRequest,
        Fetch => FetchRequest,
        ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest,
        ApiVersions => ApiVersionsRequest,
        CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest,
        CreatePartitions => CreatePartitionsRequest,
        DeleteRecords => DeleteRecordsRequest,
        DescribeConfigs => DescribeConfigsRequest,
        AlterConfigs => AlterConfigsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        DescribeLogDirs => DescribeLogDirsRequest,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
        DescribeCluster => DescribeClusterRequest,
        FindCoordinator => FindCoordinatorRequest,
        JoinGroup => JoinGroupRequest,
        SyncGroup => SyncGroupRequest,
        Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest,
        OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest,
        OffsetDelete => OffsetDeleteRequest,
        ListGroups => ListGroupsRequest,
        DescribeGroups => DescribeGroupsRequest,
        DeleteGroups => DeleteGroupsRequest,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
        InitProducerId => InitProducerIdRequest,
        AddPartitionsToTxn => AddPartitionsToTxnRequest,
        AddOffsetsToTxn => AddOffsetsToTxnRequest,
        EndTxn => EndTxnRequest,
        TxnOffsetCommit => TxnOffsetCommitRequest,
        DescribeTransactions => DescribeTransactionsRequest,
        ListTransactions => ListTransactionsRequest,
        DescribeProducers => DescribeProducersRequest,
        SaslHandshake => SaslHandshakeRequest,
        SaslAuthenticate => SaslAuthenticateRequest,
    );
});
