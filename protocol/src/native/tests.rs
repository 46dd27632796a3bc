//! Round trips for every payload, and malformed input: every truncation, huge counts, bad
//! UTF-8, unknown opcodes, trailing bytes, bad frame lengths.

use super::*;
use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;

const TOPIC: TopicId = [7; 16];

fn sample_requests() -> Vec<Request> {
    vec![
        Request::Handshake(HandshakeRequest {
            version_min: 1,
            version_max: 3,
            client_id: "app-1".into(),
            auth_mechanism: String::new(),
            auth_data: Bytes::new(),
        }),
        Request::Ping(Ping { nonce: 0xdead_beef }),
        Request::Metadata(MetadataRequest {
            topics: vec!["a".into(), "bé".into()],
        }),
        Request::CreateTopic(CreateTopicRequest {
            name: "orders".into(),
            partitions: 3,
            replication_factor: 1,
            configs: vec![ConfigEntry {
                name: "retention.ms".into(),
                value: "1000".into(),
            }],
        }),
        Request::DeleteTopic(DeleteTopicRequest {
            topic_id: TOPIC,
            name: String::new(),
        }),
        Request::DescribeTopic(DescribeTopicRequest {
            name: "orders".into(),
        }),
        Request::Produce(ProduceRequest {
            acks: Acks::Leader,
            timeout_ms: 30_000,
            partitions: vec![ProducePartition {
                topic_id: TOPIC,
                partition: 2,
                records: Bytes::from_static(b"batch bytes"),
            }],
        }),
        Request::Subscribe(SubscribeRequest {
            topic_id: TOPIC,
            partition: 0,
            start: StartPosition::Committed {
                group_id: "g".into(),
            },
            fallback: Fallback::Latest,
            credit_bytes: 1 << 20,
        }),
        Request::Subscribe(SubscribeRequest {
            topic_id: TOPIC,
            partition: 1,
            start: StartPosition::Timestamp(1_700_000_000_000),
            fallback: Fallback::Error,
            credit_bytes: 10,
        }),
        Request::GrantCredit(GrantCreditRequest {
            subscription_id: 4,
            credit_bytes: 4096,
        }),
        Request::Unsubscribe(UnsubscribeRequest { subscription_id: 4 }),
        Request::CommitOffsets(CommitOffsetsRequest {
            group_id: "g".into(),
            generation_id: -1,
            member_id: String::new(),
            offsets: vec![OffsetCommitEntry {
                topic_id: TOPIC,
                partition: 0,
                offset: 42,
                leader_epoch: -1,
                metadata: None,
            }],
        }),
        Request::FetchOffsets(FetchOffsetsRequest {
            group_id: "g".into(),
            partitions: vec![TopicPartition {
                topic_id: TOPIC,
                partition: 0,
            }],
        }),
    ]
}

fn sample_server_frames() -> Vec<ServerFrame> {
    let response = |request_id, response| ServerFrame::Response {
        request_id,
        response,
    };
    vec![
        response(
            1,
            Response::Handshake(HandshakeResponse {
                version: 1,
                node_id: 1,
                frame_bytes_max: 1 << 24,
                subscriptions_max: 1024,
                server: "sluice 0.1.0".into(),
                auth_data: Bytes::new(),
            }),
        ),
        response(
            2,
            Response::Metadata(MetadataResponse {
                brokers: vec![BrokerInfo {
                    node_id: 1,
                    host: "127.0.0.1".into(),
                    port: 9192,
                }],
                topics: vec![TopicMetadata {
                    error: ErrorCode::NONE,
                    name: "orders".into(),
                    topic_id: TOPIC,
                    internal: false,
                    partitions: vec![PartitionMetadata {
                        partition: 0,
                        error: ErrorCode::NONE,
                        leader: 1,
                        leader_epoch: 0,
                    }],
                }],
            }),
        ),
        response(
            3,
            Response::DescribeTopic(DescribeTopicResponse {
                name: "orders".into(),
                topic_id: TOPIC,
                internal: false,
                replication_factor: 1,
                partitions: vec![PartitionDescription {
                    partition: 0,
                    error: ErrorCode::NONE,
                    leader: 1,
                    leader_epoch: 0,
                    log_start_offset: 0,
                    high_watermark: 10,
                }],
                configs: vec![ConfigEntry {
                    name: "cleanup.policy".into(),
                    value: "compact".into(),
                }],
            }),
        ),
        response(
            4,
            Response::Produce(ProduceResponse {
                partitions: vec![ProducePartitionResponse {
                    topic_id: TOPIC,
                    partition: 0,
                    error: ErrorCode::NOT_LEADER_OR_FOLLOWER,
                    base_offset: -1,
                    log_append_time: -1,
                    log_start_offset: -1,
                    message: "moved".into(),
                }],
            }),
        ),
        response(5, Response::Unsubscribe(Empty)),
        response(
            6,
            Response::FetchOffsets(FetchOffsetsResponse {
                offsets: vec![FetchedOffset {
                    topic_id: TOPIC,
                    partition: 0,
                    error: ErrorCode::NONE,
                    offset: 42,
                    leader_epoch: 3,
                    metadata: Some("m".into()),
                }],
            }),
        ),
        ServerFrame::Error {
            request_id: 7,
            error: ErrorFrame {
                code: ErrorCode::UNSUPPORTED_VERSION,
                message: "speaks 1..=1".into(),
            },
        },
        ServerFrame::Data(SubscriptionData {
            subscription_id: 1,
            high_watermark: 10,
            next_offset: 10,
            records: Bytes::from_static(b"batches"),
        }),
        ServerFrame::End(SubscriptionEnd {
            subscription_id: 1,
            error: ErrorCode::UNKNOWN_TOPIC_ID,
            message: "deleted".into(),
        }),
    ]
}

fn split_one(mut buf: BytesMut) -> (FrameHeader, Bytes) {
    let (header, payload) = split_frame(&mut buf, limits::FRAME_BYTES_MAX)
        .unwrap()
        .unwrap();
    assert!(buf.is_empty());
    (header, payload)
}

#[test]
fn produce_frame_parts_are_the_frame_in_pieces() {
    let request = ProduceRequest {
        acks: Acks::Leader,
        timeout_ms: 1234,
        partitions: [10usize, 40_000, 0, 17_000, 5]
            .iter()
            .enumerate()
            .map(|(i, &len)| ProducePartition {
                topic_id: [i as u8; 16],
                partition: i as u32,
                records: Bytes::from(vec![i as u8 + 1; len]),
            })
            .collect(),
    };
    let parts = request.encode_frame_parts(99);
    // The two large blobs are the request's own buffers, the rest is copied around them.
    assert_eq!(parts.len(), 5);
    assert_eq!(parts[1].as_ptr(), request.partitions[1].records.as_ptr());
    let joined: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let mut whole = BytesMut::new();
    Request::Produce(request).encode_frame(99, &mut whole);
    assert_eq!(joined, whole.to_vec());
}

#[test]
fn every_request_round_trips_through_a_frame() {
    for (i, request) in sample_requests().into_iter().enumerate() {
        let mut buf = BytesMut::new();
        request.encode_frame(i as u32 + 1, &mut buf);
        let (header, payload) = split_one(buf);
        assert_eq!(header.request_id, i as u32 + 1);
        assert_eq!(header.opcode, request.opcode() as u16);
        assert_eq!(Request::decode(header.opcode, payload).unwrap(), request);
    }
}

#[test]
fn every_server_frame_round_trips() {
    for frame in sample_server_frames() {
        let mut buf = BytesMut::new();
        frame.encode_frame(&mut buf);
        let (header, payload) = split_one(buf);
        assert_eq!(ServerFrame::decode(header, payload).unwrap(), frame);
    }
}

#[test]
fn every_truncation_is_an_error_never_a_panic() {
    for request in sample_requests() {
        let mut buf = BytesMut::new();
        request.encode_frame(1, &mut buf);
        let (header, payload) = split_one(buf);
        let required = payload.len();
        for cut in 0..required {
            let result = Request::decode(header.opcode, payload.slice(..cut));
            // Ops whose payload is all optional-looking fields still have fixed parts, so
            // every strict prefix must fail.
            assert!(
                result.is_err(),
                "{:?} cut at {cut} of {required} decoded",
                request.opcode()
            );
        }
    }
    for frame in sample_server_frames() {
        let mut buf = BytesMut::new();
        frame.encode_frame(&mut buf);
        let (header, payload) = split_one(buf);
        for cut in 0..payload.len() {
            assert!(ServerFrame::decode(header, payload.slice(..cut)).is_err());
        }
    }
}

#[test]
fn trailing_bytes_unknown_opcodes_and_bad_utf8_are_errors() {
    let mut payload = BytesMut::new();
    Ping { nonce: 1 }.encode(&mut payload);
    payload.put_u8(0);
    assert_eq!(
        Request::decode(Opcode::Ping as u16, payload.freeze()),
        Err(DecodeError::TrailingBytes(1))
    );
    assert_eq!(
        Request::decode(0x0999, Bytes::new()),
        Err(DecodeError::UnknownOpcode(0x0999))
    );
    assert_eq!(
        ErrorCode::for_decode_error(&DecodeError::UnknownOpcode(0x0999)),
        ErrorCode::UNKNOWN_OPCODE
    );
    // A response opcode sent as a request is unknown too.
    assert!(Request::decode(Opcode::Ping as u16 | RESPONSE_BIT, Bytes::new()).is_err());

    let bad_name = Bytes::from_static(&[2, 0, 0xc3, 0x28]);
    assert_eq!(
        Request::decode(Opcode::DescribeTopic as u16, bad_name),
        Err(DecodeError::InvalidUtf8 { field: "name" })
    );
}

#[test]
fn huge_counts_fail_before_allocating() {
    // METADATA claiming u32::MAX topics in a 4-byte payload.
    let err = Request::decode(Opcode::Metadata as u16, Bytes::from_static(&[0xff; 4])).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::TooLarge {
                field: "topics",
                ..
            }
        ),
        "{err}"
    );
    // PRODUCE claiming 90_000 partitions (under the array limit) with no bytes behind them.
    let mut payload = BytesMut::new();
    payload.put_u8(1);
    payload.put_u32_le(1000);
    payload.put_u32_le(90_000);
    let err = Request::decode(Opcode::Produce as u16, payload.freeze()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::Truncated {
                field: "partitions",
                ..
            }
        ),
        "{err}"
    );
    // A records blob claiming 1 GiB + 1.
    let mut payload = BytesMut::new();
    payload.put_u8(1);
    payload.put_u32_le(1000);
    payload.put_u32_le(1);
    payload.put_slice(&TOPIC);
    payload.put_u32_le(0);
    payload.put_u32_le(limits::FRAME_BYTES_MAX + 1);
    let err = Request::decode(Opcode::Produce as u16, payload.freeze()).unwrap_err();
    assert!(
        matches!(
            err,
            DecodeError::TooLarge {
                field: "records",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn invalid_enum_values_are_rejected() {
    let mut payload = BytesMut::new();
    payload.put_u8(3); // acks 3
    payload.put_u32_le(0);
    payload.put_u32_le(0);
    assert_eq!(
        Request::decode(Opcode::Produce as u16, payload.freeze()),
        Err(DecodeError::InvalidValue {
            field: "acks",
            value: 3
        })
    );
    let mut buf = BytesMut::new();
    Request::Subscribe(SubscribeRequest {
        topic_id: TOPIC,
        partition: 0,
        start: StartPosition::Earliest,
        fallback: Fallback::Earliest,
        credit_bytes: 1,
    })
    .encode_frame(1, &mut buf);
    let (header, payload) = split_one(buf);
    let mut bad = BytesMut::from(&payload[..]);
    bad[20] = 9; // the start kind
    assert!(matches!(
        Request::decode(header.opcode, bad.freeze()),
        Err(DecodeError::InvalidValue { field: "start", .. })
    ));
}

#[test]
fn frame_lengths_are_checked_before_the_body_arrives() {
    // Too large: detected from the 4-byte prefix alone.
    let mut buf = BytesMut::from(&(1u32 << 20).to_le_bytes()[..]);
    assert!(matches!(
        split_frame(&mut buf, 1 << 16),
        Err(DecodeError::TooLarge { .. })
    ));
    // Too small to hold opcode and request id.
    let mut buf = BytesMut::from(&[5, 0, 0, 0, 1, 0, 1, 0, 0, 0][..]);
    assert!(matches!(
        split_frame(&mut buf, 1 << 16),
        Err(DecodeError::InvalidValue { .. })
    ));
    // Incomplete: not an error, nothing consumed.
    let mut whole = BytesMut::new();
    Request::Ping(Ping { nonce: 9 }).encode_frame(3, &mut whole);
    let mut partial = BytesMut::from(&whole[..whole.len() - 1]);
    assert_eq!(split_frame(&mut partial, 1 << 16).unwrap(), None);
    assert_eq!(partial.len(), whole.len() - 1);
    // Two frames back to back split one at a time.
    let mut two = whole.clone();
    two.extend_from_slice(&whole);
    assert!(split_frame(&mut two, 1 << 16).unwrap().is_some());
    assert!(split_frame(&mut two, 1 << 16).unwrap().is_some());
    assert_eq!(split_frame(&mut two, 1 << 16).unwrap(), None);
}

#[test]
fn the_opcode_table_is_consistent() {
    let mut seen = std::collections::HashSet::new();
    for op in OPS {
        assert!(
            seen.insert(op.opcode as u16),
            "duplicate opcode {}",
            op.name
        );
        assert_eq!(op.opcode as u16 & RESPONSE_BIT, 0);
        assert!(
            (op.opcode as u16) < OP_SUBSCRIPTION_DATA,
            "request opcodes stay below push opcodes"
        );
        assert_eq!(Opcode::from_wire(op.opcode as u16), Some(op.opcode));
        assert_eq!(op.opcode.info(), op);
    }
    assert_eq!(
        OPS.len(),
        sample_requests().len() - 1,
        "every op has a sample (subscribe twice)"
    );
}

#[test]
fn data_frames_can_be_written_as_header_plus_records() {
    let records = Bytes::from_static(b"0123456789");
    let mut head = BytesMut::new();
    encode_header(
        &mut head,
        OP_SUBSCRIPTION_DATA,
        0,
        SUBSCRIPTION_DATA_FIXED_BYTES + records.len(),
    );
    SubscriptionData::encode_fixed(&mut head, 5, 20, 20, records.len() as u32);
    let mut joined = head;
    joined.extend_from_slice(&records);
    let (header, payload) = split_one(joined);
    let expected = SubscriptionData {
        subscription_id: 5,
        high_watermark: 20,
        next_offset: 20,
        records,
    };
    assert_eq!(
        ServerFrame::decode(header, payload).unwrap(),
        ServerFrame::Data(expected)
    );
}

fn arb_string() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a-zA-Z0-9._é-]{0,40}").unwrap()
}

proptest! {
    #[test]
    fn produce_round_trips(
        acks in 0u8..3,
        timeout_ms: u32,
        parts in proptest::collection::vec((any::<[u8; 16]>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..8),
    ) {
        let request = ProduceRequest {
            acks: Acks::from_wire(acks).unwrap(),
            timeout_ms,
            partitions: parts.into_iter().map(|(topic_id, partition, records)| ProducePartition {
                topic_id, partition, records: Bytes::from(records),
            }).collect(),
        };
        let mut buf = BytesMut::new();
        request.encode(&mut buf);
        prop_assert_eq!(decode_payload::<ProduceRequest>(buf.freeze()).unwrap(), request);
    }

    #[test]
    fn commit_offsets_round_trip(
        group in arb_string(),
        generation_id: i32,
        member in arb_string(),
        entries in proptest::collection::vec((any::<[u8; 16]>(), any::<u32>(), any::<i64>(), any::<i32>(), proptest::option::of(arb_string())), 0..8),
    ) {
        let request = CommitOffsetsRequest {
            group_id: group,
            generation_id,
            member_id: member,
            offsets: entries.into_iter().map(|(topic_id, partition, offset, leader_epoch, metadata)| OffsetCommitEntry {
                topic_id, partition, offset, leader_epoch, metadata,
            }).collect(),
        };
        let mut buf = BytesMut::new();
        request.encode(&mut buf);
        prop_assert_eq!(decode_payload::<CommitOffsetsRequest>(buf.freeze()).unwrap(), request);
    }

    #[test]
    fn arbitrary_bytes_never_panic(opcode: u16, request_id: u32, payload in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Request::decode(opcode, Bytes::from(payload.clone()));
        let header = FrameHeader { length: 6 + payload.len() as u32, opcode, request_id };
        let _ = ServerFrame::decode(header, Bytes::from(payload));
    }
}
