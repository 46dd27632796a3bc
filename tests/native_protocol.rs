//! The native protocol (protocol/NATIVE.md) against the real broker, driven by a minimal
//! blocking client built on the protocol crate's codec: handshake, topics, produce with every
//! acks, subscriptions from every start position with credit flow control, group offsets, and
//! the cross-protocol guarantees checked with librdkafka. Malformed frames get error frames or
//! a closed connection, and the broker carries on.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::{Bytes, BytesMut};
use common::{producer, TestBroker, TIMEOUT};
use protocol::native::*;
use protocol::records::{decode_records, BatchBuilder, DecodedRecord, Record};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

// ---------------------------------------------------------------------------------------------
// A minimal blocking client
// ---------------------------------------------------------------------------------------------

struct Client {
    stream: TcpStream,
    buf: BytesMut,
    next_id: u32,
    /// Pushed frames that arrived while waiting for an answer.
    pushed: VecDeque<ServerFrame>,
}

type Answered = Result<Response, ErrorFrame>;

impl Client {
    fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
            next_id: 1,
            pushed: VecDeque::new(),
        }
    }

    /// Connects and completes the handshake.
    fn open(addr: &str) -> Client {
        let mut client = Client::connect(addr);
        let answer = client.call(Request::Handshake(handshake(1, 1)));
        assert!(matches!(answer, Ok(Response::Handshake(_))), "{answer:?}");
        client
    }

    fn send(&mut self, request: &Request) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        let mut frame = BytesMut::new();
        request.encode_frame(id, &mut frame);
        self.stream.write_all(&frame).unwrap();
        id
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next frame from the broker; None when the broker closed the connection.
    fn recv(&mut self) -> Option<ServerFrame> {
        loop {
            if let Some((header, payload)) = split_frame(&mut self.buf, u32::MAX).unwrap() {
                return Some(ServerFrame::decode(header, payload).unwrap());
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.stream.read(&mut chunk).unwrap();
            if n == 0 {
                assert!(self.buf.is_empty(), "connection closed inside a frame");
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The answer to request `id`, keeping pushed frames for later.
    fn answer(&mut self, id: u32) -> Answered {
        loop {
            match self
                .recv()
                .expect("connection closed while waiting for an answer")
            {
                ServerFrame::Response {
                    request_id,
                    response,
                } if request_id == id => return Ok(response),
                ServerFrame::Error { request_id, error } if request_id == id => return Err(error),
                frame @ (ServerFrame::Data(_) | ServerFrame::End(_)) => {
                    self.pushed.push_back(frame)
                }
                other => panic!("unexpected frame while waiting for {id}: {other:?}"),
            }
        }
    }

    fn call(&mut self, request: Request) -> Answered {
        let id = self.send(&request);
        self.answer(id)
    }

    /// The next pushed frame.
    fn next_push(&mut self) -> ServerFrame {
        if let Some(frame) = self.pushed.pop_front() {
            return frame;
        }
        match self
            .recv()
            .expect("connection closed while waiting for data")
        {
            frame @ (ServerFrame::Data(_) | ServerFrame::End(_)) => frame,
            other => panic!("unexpected frame while waiting for data: {other:?}"),
        }
    }

    fn next_data(&mut self) -> SubscriptionData {
        match self.next_push() {
            ServerFrame::Data(data) => data,
            other => panic!("expected data, got {other:?}"),
        }
    }

    /// A PING round trip: every frame the broker queued before the pong has been received.
    fn barrier(&mut self) {
        let answer = self.call(Request::Ping(Ping { nonce: 7 }));
        assert_eq!(answer, Ok(Response::Ping(Ping { nonce: 7 })));
    }

    fn create_topic(&mut self, name: &str, partitions: u32) -> TopicId {
        match self.call(Request::CreateTopic(CreateTopicRequest {
            name: name.into(),
            partitions,
            replication_factor: 0,
            configs: Vec::new(),
        })) {
            Ok(Response::CreateTopic(created)) => created.topic_id,
            other => panic!("create {name}: {other:?}"),
        }
    }

    fn produce(
        &mut self,
        acks: Acks,
        topic_id: TopicId,
        partition: u32,
        records: Bytes,
    ) -> ProducePartitionResponse {
        let request = Request::Produce(ProduceRequest {
            acks,
            timeout_ms: 10_000,
            partitions: vec![ProducePartition {
                topic_id,
                partition,
                records,
            }],
        });
        match self.call(request) {
            Ok(Response::Produce(mut response)) => response.partitions.remove(0),
            other => panic!("produce: {other:?}"),
        }
    }

    fn subscribe(
        &mut self,
        topic_id: TopicId,
        partition: u32,
        start: StartPosition,
        fallback: Fallback,
        credit_bytes: u32,
    ) -> Result<SubscribeResponse, ErrorFrame> {
        self.call(Request::Subscribe(SubscribeRequest {
            topic_id,
            partition,
            start,
            fallback,
            credit_bytes,
        }))
        .map(|answer| match answer {
            Response::Subscribe(s) => s,
            other => panic!("subscribe answered with {other:?}"),
        })
    }

    fn grant(&mut self, subscription_id: u32, credit_bytes: u32) {
        self.send(&Request::GrantCredit(GrantCreditRequest {
            subscription_id,
            credit_bytes,
        }));
    }

    /// Receives data frames until records up to `end` (exclusive) arrived, granting back each
    /// frame's bytes; returns the records at or after `from`. Frames of other subscriptions
    /// are dropped.
    fn consume_until(&mut self, subscription_id: u32, from: i64, end: i64) -> Vec<DecodedRecord> {
        let mut records = Vec::new();
        let mut next = from;
        while next < end {
            let data = self.next_data();
            if data.subscription_id != subscription_id {
                continue;
            }
            for batch in split_batches(&data.records).unwrap() {
                records.extend(
                    decode_records(&batch)
                        .unwrap()
                        .into_iter()
                        .filter(|r| r.offset >= from),
                );
            }
            next = data.next_offset;
            self.grant(subscription_id, data.records.len() as u32);
        }
        records
    }
}

fn handshake(min: u16, max: u16) -> HandshakeRequest {
    HandshakeRequest {
        version_min: min,
        version_max: max,
        client_id: "native-tests".into(),
        auth_mechanism: String::new(),
        auth_data: Bytes::new(),
    }
}

fn record(key: &str, value: &str, timestamp: i64, headers: &[(&str, &str)]) -> Record {
    Record {
        key: Some(Bytes::copy_from_slice(key.as_bytes())),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), Some(Bytes::copy_from_slice(v.as_bytes()))))
            .collect(),
        timestamp,
    }
}

fn batch(records: Vec<Record>) -> Bytes {
    let mut builder = BatchBuilder::new();
    for r in records {
        builder.push(r);
    }
    builder.build().freeze()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn error_code(answer: Answered) -> ErrorCode {
    match answer {
        Err(error) => error.code,
        Ok(response) => panic!("expected an error, got {response:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn handshake_negotiates_the_version_and_is_required_first() {
    let broker = TestBroker::start(&[]);
    let mut client = Client::connect(&broker.native);
    // Nothing but HANDSHAKE and PING before the handshake.
    let early = client.call(Request::Metadata(MetadataRequest::default()));
    assert_eq!(error_code(early), ErrorCode::HANDSHAKE_REQUIRED);
    client.barrier();
    // No version in common: an error frame, and the connection stays open for another try.
    let unsupported = client.call(Request::Handshake(handshake(2, 5)));
    let Err(error) = unsupported else {
        panic!("{unsupported:?}")
    };
    assert_eq!(error.code, ErrorCode::UNSUPPORTED_VERSION);
    assert!(error.message.contains("1..=1"), "{}", error.message);
    let mut auth = handshake(1, 1);
    auth.auth_mechanism = "PLAIN".into();
    assert_eq!(
        error_code(client.call(Request::Handshake(auth))),
        ErrorCode::UNSUPPORTED_SASL_MECHANISM
    );
    // A client speaking 1..=3 gets 1, with the broker's limits.
    match client.call(Request::Handshake(handshake(1, 3))) {
        Ok(Response::Handshake(h)) => {
            assert_eq!(h.version, 1);
            assert_eq!(h.node_id, 1);
            assert_eq!(h.frame_bytes_max, 16 * 1024 * 1024);
            assert_eq!(h.subscriptions_max, 1000);
            assert!(h.server.starts_with("sluice "), "{}", h.server);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error_code(client.call(Request::Handshake(handshake(1, 1)))),
        ErrorCode::INVALID_REQUEST
    );
    assert!(matches!(
        client.call(Request::Metadata(MetadataRequest::default())),
        Ok(Response::Metadata(_))
    ));
}

#[test]
fn topics_are_created_described_listed_and_deleted() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let created = client.call(Request::CreateTopic(CreateTopicRequest {
        name: "orders".into(),
        partitions: 3,
        replication_factor: 1,
        configs: vec![ConfigEntry {
            name: "retention.ms".into(),
            value: "86400000".into(),
        }],
    }));
    let Ok(Response::CreateTopic(created)) = created else {
        panic!("{created:?}")
    };
    assert_eq!((created.partitions, created.replication_factor), (3, 1));
    let again = client.call(Request::CreateTopic(CreateTopicRequest {
        name: "orders".into(),
        partitions: 1,
        ..Default::default()
    }));
    assert_eq!(error_code(again), ErrorCode::TOPIC_ALREADY_EXISTS);
    let bad_name = client.call(Request::CreateTopic(CreateTopicRequest {
        name: "no spaces".into(),
        ..Default::default()
    }));
    assert_eq!(error_code(bad_name), ErrorCode::INVALID_TOPIC_EXCEPTION);
    let bad_config = client.call(Request::CreateTopic(CreateTopicRequest {
        name: "cfg".into(),
        configs: vec![ConfigEntry {
            name: "retention.ms".into(),
            value: "soon".into(),
        }],
        ..Default::default()
    }));
    assert_eq!(error_code(bad_config), ErrorCode::INVALID_CONFIG);
    // Broker defaults: num.partitions 1.
    let defaulted = client.create_topic("defaulted", 0);

    client.produce(
        Acks::All,
        created.topic_id,
        2,
        batch(vec![record("k", "v", now_ms(), &[])]),
    );
    let described = client.call(Request::DescribeTopic(DescribeTopicRequest {
        name: "orders".into(),
    }));
    let Ok(Response::DescribeTopic(described)) = described else {
        panic!("{described:?}")
    };
    assert_eq!(described.topic_id, created.topic_id);
    assert_eq!(described.partitions.len(), 3);
    assert_eq!(described.partitions[2].high_watermark, 1);
    assert_eq!(described.partitions[0].high_watermark, 0);
    assert!(described
        .partitions
        .iter()
        .all(|p| p.error == ErrorCode::NONE && p.leader == 1));
    assert_eq!(
        described.configs,
        vec![ConfigEntry {
            name: "retention.ms".into(),
            value: "86400000".into()
        }]
    );

    let metadata = client.call(Request::Metadata(MetadataRequest {
        topics: vec!["orders".into(), "missing".into()],
    }));
    let Ok(Response::Metadata(metadata)) = metadata else {
        panic!("{metadata:?}")
    };
    assert_eq!(metadata.brokers.len(), 1);
    assert_eq!(
        format!("{}:{}", metadata.brokers[0].host, metadata.brokers[0].port),
        broker.native
    );
    assert_eq!(metadata.topics[0].topic_id, created.topic_id);
    assert_eq!(metadata.topics[0].partitions.len(), 3);
    assert_eq!(
        metadata.topics[1].error,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
    );
    let all = client.call(Request::Metadata(MetadataRequest::default()));
    let Ok(Response::Metadata(all)) = all else {
        panic!("{all:?}")
    };
    let ids: Vec<TopicId> = all.topics.iter().map(|t| t.topic_id).collect();
    assert!(ids.contains(&created.topic_id) && ids.contains(&defaulted));

    let deleted = client.call(Request::DeleteTopic(DeleteTopicRequest {
        topic_id: created.topic_id,
        name: String::new(),
    }));
    assert_eq!(
        deleted,
        Ok(Response::DeleteTopic(DeleteTopicResponse {
            topic_id: created.topic_id
        }))
    );
    let gone = client.call(Request::DeleteTopic(DeleteTopicRequest {
        topic_id: created.topic_id,
        name: String::new(),
    }));
    assert_eq!(error_code(gone), ErrorCode::UNKNOWN_TOPIC_ID);
    let by_name = client.call(Request::DeleteTopic(DeleteTopicRequest {
        topic_id: [0; 16],
        name: "defaulted".into(),
    }));
    assert_eq!(
        by_name,
        Ok(Response::DeleteTopic(DeleteTopicResponse {
            topic_id: defaulted
        }))
    );
    let described = client.call(Request::DescribeTopic(DescribeTopicRequest {
        name: "orders".into(),
    }));
    assert_eq!(error_code(described), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
}

#[test]
fn produce_answers_per_acks_with_base_offsets() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("acks", 2);
    let two = batch(vec![
        record("a", "1", now_ms(), &[]),
        record("b", "2", now_ms(), &[]),
    ]);
    let all = client.produce(Acks::All, topic, 1, two.clone());
    assert_eq!(
        (all.error, all.base_offset, all.log_start_offset),
        (ErrorCode::NONE, 0, 0)
    );
    let leader = client.produce(Acks::Leader, topic, 1, two.clone());
    assert_eq!((leader.error, leader.base_offset), (ErrorCode::NONE, 2));
    // acks none: no answer at all; the next produce (same connection, appended in order) sees
    // its offsets taken.
    client.send(&Request::Produce(ProduceRequest {
        acks: Acks::None,
        timeout_ms: 0,
        partitions: vec![ProducePartition {
            topic_id: topic,
            partition: 1,
            records: two.clone(),
        }],
    }));
    let after = client.produce(Acks::All, topic, 1, two.clone());
    assert_eq!(after.base_offset, 6);
    assert!(client.pushed.is_empty());

    // Several partitions in one request, answered in request order, with per-partition errors.
    let mut corrupt = BytesMut::from(&two[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let answer = client.call(Request::Produce(ProduceRequest {
        acks: Acks::All,
        timeout_ms: 10_000,
        partitions: vec![
            ProducePartition {
                topic_id: topic,
                partition: 0,
                records: two.clone(),
            },
            ProducePartition {
                topic_id: topic,
                partition: 9,
                records: two.clone(),
            },
            ProducePartition {
                topic_id: [9; 16],
                partition: 0,
                records: two.clone(),
            },
            ProducePartition {
                topic_id: topic,
                partition: 0,
                records: corrupt.freeze(),
            },
            ProducePartition {
                topic_id: topic,
                partition: 0,
                records: Bytes::new(),
            },
        ],
    }));
    let Ok(Response::Produce(answer)) = answer else {
        panic!("{answer:?}")
    };
    let codes: Vec<ErrorCode> = answer.partitions.iter().map(|p| p.error).collect();
    assert_eq!(
        codes,
        vec![
            ErrorCode::NONE,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
            ErrorCode::UNKNOWN_TOPIC_ID,
            ErrorCode::CORRUPT_MESSAGE,
            ErrorCode::INVALID_RECORD,
        ]
    );
    assert_eq!(answer.partitions[0].base_offset, 0);
    assert_eq!(answer.partitions[1].partition, 9);
    assert!(!answer.partitions[3].message.is_empty());
}

#[test]
fn pipelined_produces_are_appended_in_the_order_sent() {
    // 200 PRODUCE requests sent back to back on one connection, alternating acks all and
    // leader, each one batch of two records: whatever order the answers come in, request i's
    // batch sits at offset 2 * i (the broker appends a request only after the one before it).
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("pipelined", 1);
    let requests = 200u32;
    let mut ids = Vec::new();
    for i in 0..requests {
        let records = batch(vec![
            record(&format!("k{i}"), "first", now_ms(), &[]),
            record(&format!("k{i}"), "second", now_ms(), &[]),
        ]);
        ids.push(client.send(&Request::Produce(ProduceRequest {
            acks: if i % 2 == 0 { Acks::All } else { Acks::Leader },
            timeout_ms: 10_000,
            partitions: vec![ProducePartition {
                topic_id: topic,
                partition: 0,
                records,
            }],
        })));
    }
    // Answers may come in any order (an acks=leader answer overtakes an acks=all one).
    let mut base_offsets = std::collections::HashMap::new();
    while base_offsets.len() < ids.len() {
        match client.recv().expect("connection closed") {
            ServerFrame::Response {
                request_id,
                response: Response::Produce(answer),
            } => {
                assert_eq!(answer.partitions[0].error, ErrorCode::NONE);
                base_offsets.insert(request_id, answer.partitions[0].base_offset);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(base_offsets[id], 2 * i as i64, "request {i}");
    }
    let sub = client
        .subscribe(topic, 0, StartPosition::Earliest, Fallback::Error, 1 << 20)
        .unwrap();
    let records = client.consume_until(sub.subscription_id, 0, 2 * i64::from(requests));
    assert_eq!(records.len(), 2 * requests as usize);
    for (offset, r) in records.iter().enumerate() {
        assert_eq!(r.offset, offset as i64);
        assert_eq!(
            r.key.as_deref(),
            Some(format!("k{}", offset / 2).as_bytes())
        );
    }
}

#[test]
fn subscriptions_start_where_asked() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("starts", 1);
    let base = now_ms() - 100_000;
    for i in 0..5 {
        let produced = client.produce(
            Acks::All,
            topic,
            0,
            batch(vec![record("k", &format!("v{i}"), base + i * 1000, &[])]),
        );
        assert_eq!(produced.base_offset, i);
    }
    let values = |records: &[DecodedRecord]| -> Vec<String> {
        records
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect()
    };

    let earliest = client
        .subscribe(topic, 0, StartPosition::Earliest, Fallback::Error, 1 << 20)
        .unwrap();
    assert_eq!(
        (
            earliest.start_offset,
            earliest.log_start_offset,
            earliest.high_watermark
        ),
        (0, 0, 5)
    );
    let got = client.consume_until(earliest.subscription_id, 0, 5);
    assert_eq!(values(&got), ["v0", "v1", "v2", "v3", "v4"]);
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );

    let at = client
        .subscribe(topic, 0, StartPosition::Offset(3), Fallback::Error, 1 << 20)
        .unwrap();
    assert_eq!(at.start_offset, 3);
    assert_eq!(
        values(&client.consume_until(at.subscription_id, 3, 5)),
        ["v3", "v4"]
    );

    let by_time = client
        .subscribe(
            topic,
            0,
            StartPosition::Timestamp(base + 2500),
            Fallback::Error,
            1 << 20,
        )
        .unwrap();
    assert_eq!(by_time.start_offset, 3);
    let future = client
        .subscribe(
            topic,
            0,
            StartPosition::Timestamp(now_ms() + 3_600_000),
            Fallback::Error,
            1 << 20,
        )
        .unwrap();
    assert_eq!(future.start_offset, 5);

    let out_of_range = client.subscribe(
        topic,
        0,
        StartPosition::Offset(99),
        Fallback::Error,
        1 << 20,
    );
    assert_eq!(
        out_of_range.unwrap_err().code,
        ErrorCode::OFFSET_OUT_OF_RANGE
    );
    let reset = client
        .subscribe(
            topic,
            0,
            StartPosition::Offset(99),
            Fallback::Latest,
            1 << 20,
        )
        .unwrap();
    assert_eq!(reset.start_offset, 5);

    // A group's committed offset, and the fallback when the group has none.
    let commit = client.call(Request::CommitOffsets(CommitOffsetsRequest {
        group_id: "starters".into(),
        generation_id: -1,
        member_id: String::new(),
        offsets: vec![OffsetCommitEntry {
            topic_id: topic,
            partition: 0,
            offset: 2,
            leader_epoch: -1,
            metadata: None,
        }],
    }));
    assert!(
        matches!(commit, Ok(Response::CommitOffsets(_))),
        "{commit:?}"
    );
    let committed = client
        .subscribe(
            topic,
            0,
            StartPosition::Committed {
                group_id: "starters".into(),
            },
            Fallback::Error,
            1 << 20,
        )
        .unwrap();
    assert_eq!(committed.start_offset, 2);
    assert_eq!(
        values(&client.consume_until(committed.subscription_id, 2, 5)),
        ["v2", "v3", "v4"]
    );
    let fresh = client
        .subscribe(
            topic,
            0,
            StartPosition::Committed {
                group_id: "nobody".into(),
            },
            Fallback::Earliest,
            1 << 20,
        )
        .unwrap();
    assert_eq!(fresh.start_offset, 0);
    let none = client.subscribe(
        topic,
        0,
        StartPosition::Committed {
            group_id: "nobody".into(),
        },
        Fallback::Error,
        1 << 20,
    );
    assert_eq!(none.unwrap_err().code, ErrorCode::OFFSET_OUT_OF_RANGE);

    // Latest: only what is committed afterwards is pushed, as it arrives.
    let latest = client
        .subscribe(topic, 0, StartPosition::Latest, Fallback::Error, 1 << 20)
        .unwrap();
    assert_eq!(latest.start_offset, 5);
    let mut other = Client::open(&broker.native);
    other.produce(
        Acks::All,
        topic,
        0,
        batch(vec![record("k", "v5", now_ms(), &[])]),
    );
    // Every earlier subscription gets it too; the "latest" one sees only it.
    let mut seen_latest = false;
    while !seen_latest {
        let data = client.next_data();
        client.grant(data.subscription_id, data.records.len() as u32);
        if data.subscription_id == latest.subscription_id {
            let records: Vec<_> = split_batches(&data.records)
                .unwrap()
                .iter()
                .flat_map(|b| decode_records(b).unwrap())
                .collect();
            assert_eq!(values(&records), ["v5"]);
            assert_eq!(
                (records[0].offset, data.next_offset, data.high_watermark),
                (5, 6, 6)
            );
            seen_latest = true;
        }
    }

    // Bad requests.
    assert_eq!(
        client
            .subscribe(topic, 3, StartPosition::Earliest, Fallback::Error, 1)
            .unwrap_err()
            .code,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        client
            .subscribe([1; 16], 0, StartPosition::Earliest, Fallback::Error, 1)
            .unwrap_err()
            .code,
        ErrorCode::UNKNOWN_TOPIC_ID
    );
    assert_eq!(
        client
            .subscribe(topic, 0, StartPosition::Earliest, Fallback::Error, 0)
            .unwrap_err()
            .code,
        ErrorCode::INVALID_REQUEST
    );
    assert_eq!(
        client
            .subscribe(topic, 0, StartPosition::Timestamp(-5), Fallback::Error, 1)
            .unwrap_err()
            .code,
        ErrorCode::INVALID_REQUEST
    );
}

#[test]
fn data_never_exceeds_the_credit_and_large_batches_still_arrive() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("credit", 1);
    let one = batch(vec![record("k", &"x".repeat(100), now_ms(), &[])]);
    let size = one.len() as u32;
    for _ in 0..3 {
        client.produce(Acks::All, topic, 0, one.clone());
    }
    // A window of one batch and a half: one batch per frame.
    let window = size + size / 2;
    let sub = client
        .subscribe(topic, 0, StartPosition::Earliest, Fallback::Error, window)
        .unwrap();
    let id = sub.subscription_id;
    let first = client.next_data();
    assert_eq!((first.records.len() as u32, first.next_offset), (size, 1));
    // Half a batch of credit left: nothing more comes until the client grants.
    client.barrier();
    assert!(
        client.pushed.is_empty(),
        "data beyond the credit: {:?}",
        client.pushed
    );
    client.grant(id, size / 2);
    client.barrier();
    assert!(
        client.pushed.is_empty(),
        "a grant short of one batch sent data"
    );
    client.grant(id, size - size / 2);
    let second = client.next_data();
    assert_eq!((second.records.len() as u32, second.next_offset), (size, 2));
    client.grant(id, 4 * size);
    let third = client.next_data();
    assert_eq!(third.next_offset, 3);
    let unsubscribed = client.call(Request::Unsubscribe(UnsubscribeRequest {
        subscription_id: id,
    }));
    assert_eq!(unsubscribed, Ok(Response::Unsubscribe(Empty)));
    assert!(client.pushed.is_empty(), "data after the credit ran out");

    // A batch far larger than the whole window is sent alone once the credit is back to the
    // window, and again for the next one once its bytes are granted back.
    let big = batch(vec![record("k", &"y".repeat(5000), now_ms(), &[])]);
    let small_window = 100;
    client.produce(Acks::All, topic, 0, big.clone());
    client.produce(Acks::All, topic, 0, big.clone());
    let sub = client
        .subscribe(
            topic,
            0,
            StartPosition::Offset(3),
            Fallback::Error,
            small_window,
        )
        .unwrap();
    let first_big = client.next_data();
    assert_eq!(first_big.subscription_id, sub.subscription_id);
    assert_eq!(
        (first_big.records.len(), first_big.next_offset),
        (big.len(), 4)
    );
    client.barrier();
    assert!(
        client.pushed.is_empty(),
        "a second oversized batch came while in deficit"
    );
    client.grant(sub.subscription_id, big.len() as u32);
    let second_big = client.next_data();
    assert_eq!(
        (second_big.records.len(), second_big.next_offset),
        (big.len(), 5)
    );

    // Unsubscribe: answered, then no more frames for it; unknown ids are errors.
    let mut other = Client::open(&broker.native);
    other.produce(Acks::All, topic, 0, one.clone());
    assert_eq!(
        client.call(Request::Unsubscribe(UnsubscribeRequest {
            subscription_id: sub.subscription_id
        })),
        Ok(Response::Unsubscribe(Empty))
    );
    let again = client.call(Request::Unsubscribe(UnsubscribeRequest {
        subscription_id: sub.subscription_id,
    }));
    assert_eq!(error_code(again), ErrorCode::UNKNOWN_SUBSCRIPTION);
    let grant_id = client.send(&Request::GrantCredit(GrantCreditRequest {
        subscription_id: 999,
        credit_bytes: 1,
    }));
    assert_eq!(
        error_code(client.answer(grant_id)),
        ErrorCode::UNKNOWN_SUBSCRIPTION
    );
}

#[test]
fn a_data_frame_holds_at_most_one_read_of_the_log() {
    // With credit for everything, a push still reads the log one read-ahead window at a time
    // (frames of about that size), so cold reads stay window-sized pooled buffers and the next
    // window is read while this frame goes out.
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("frames", 1);
    let value = "v".repeat(1000);
    let (batches, per_batch) = (12, 200);
    for _ in 0..batches {
        let records = (0..per_batch)
            .map(|_| record("k", &value, now_ms(), &[]))
            .collect();
        client.produce(Acks::All, topic, 0, batch(records));
    }
    let end = (batches * per_batch) as i64;
    let sub = client
        .subscribe(topic, 0, StartPosition::Earliest, Fallback::Error, 64 << 20)
        .unwrap();
    let read_ahead = storage::LogConfig::default().read_ahead_bytes;
    let (mut frames, mut next, mut records) = (0, 0, 0);
    while next < end {
        let data = client.next_data();
        assert_eq!(data.subscription_id, sub.subscription_id);
        assert!(
            data.records.len() <= read_ahead,
            "a frame of {} bytes, over the read-ahead size {read_ahead}",
            data.records.len()
        );
        for batch in split_batches(&data.records).unwrap() {
            for record in decode_records(&batch).unwrap() {
                assert_eq!(record.offset, records, "in order, none skipped");
                records += 1;
            }
        }
        next = data.next_offset;
        assert_eq!(next, records);
        frames += 1;
    }
    assert!(frames >= 3, "{frames} frames for {end} records of 1 KB");
}

#[test]
fn deleting_a_topic_ends_its_subscriptions() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("doomed", 1);
    let sub = client
        .subscribe(topic, 0, StartPosition::Latest, Fallback::Error, 1 << 20)
        .unwrap();
    let mut admin = Client::open(&broker.native);
    let deleted = admin.call(Request::DeleteTopic(DeleteTopicRequest {
        topic_id: topic,
        name: String::new(),
    }));
    assert!(deleted.is_ok(), "{deleted:?}");
    match client.next_push() {
        ServerFrame::End(end) => {
            assert_eq!(end.subscription_id, sub.subscription_id);
            assert_eq!(end.error, ErrorCode::UNKNOWN_TOPIC_ID);
        }
        other => panic!("expected the subscription to end, got {other:?}"),
    }
}

#[test]
fn group_offsets_are_committed_and_fetched() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let a = client.create_topic("offsets-a", 2);
    let b = client.create_topic("offsets-b", 1);
    let entry = |topic_id, partition, offset| OffsetCommitEntry {
        topic_id,
        partition,
        offset,
        leader_epoch: -1,
        metadata: Some(format!("m{offset}")),
    };
    let commit = client.call(Request::CommitOffsets(CommitOffsetsRequest {
        group_id: "g1".into(),
        generation_id: -1,
        member_id: String::new(),
        offsets: vec![
            entry(a, 0, 10),
            entry(a, 1, 11),
            entry(b, 0, 12),
            entry([3; 16], 0, 1),
            entry(a, 7, 1),
        ],
    }));
    let Ok(Response::CommitOffsets(commit)) = commit else {
        panic!("{commit:?}")
    };
    let codes: Vec<ErrorCode> = commit.partitions.iter().map(|p| p.error).collect();
    assert_eq!(
        codes,
        [
            ErrorCode::NONE,
            ErrorCode::NONE,
            ErrorCode::NONE,
            ErrorCode::UNKNOWN_TOPIC_ID,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        ]
    );

    let fetch = client.call(Request::FetchOffsets(FetchOffsetsRequest {
        group_id: "g1".into(),
        partitions: vec![
            TopicPartition {
                topic_id: b,
                partition: 0,
            },
            TopicPartition {
                topic_id: a,
                partition: 1,
            },
            TopicPartition {
                topic_id: [3; 16],
                partition: 0,
            },
        ],
    }));
    let Ok(Response::FetchOffsets(fetch)) = fetch else {
        panic!("{fetch:?}")
    };
    let got: Vec<(i64, ErrorCode, Option<String>)> = fetch
        .offsets
        .iter()
        .map(|o| (o.offset, o.error, o.metadata.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (12, ErrorCode::NONE, Some("m12".into())),
            (11, ErrorCode::NONE, Some("m11".into())),
            (-1, ErrorCode::UNKNOWN_TOPIC_ID, None)
        ]
    );

    let everything = client.call(Request::FetchOffsets(FetchOffsetsRequest {
        group_id: "g1".into(),
        partitions: Vec::new(),
    }));
    let Ok(Response::FetchOffsets(everything)) = everything else {
        panic!("{everything:?}")
    };
    let mut all: Vec<(TopicId, u32, i64)> = everything
        .offsets
        .iter()
        .map(|o| (o.topic_id, o.partition, o.offset))
        .collect();
    all.sort();
    let mut want = vec![(a, 0, 10), (a, 1, 11), (b, 0, 12)];
    want.sort();
    assert_eq!(all, want);

    let invalid = client.call(Request::FetchOffsets(FetchOffsetsRequest {
        group_id: String::new(),
        partitions: Vec::new(),
    }));
    assert_eq!(error_code(invalid), ErrorCode::INVALID_GROUP_ID);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_natively_consumed_by_librdkafka_identically() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("native-to-kafka", 1);
    let ts = now_ms() - 5000;
    let first = vec![
        record("k0", "v0", ts, &[("h", "1"), ("h", "2")]),
        record("k1", "v1", ts + 1, &[]),
    ];
    let second = vec![record("k2", "v2", ts + 7, &[("trace", "abc")])];
    assert_eq!(
        client
            .produce(Acks::All, topic, 0, batch(first.clone()))
            .base_offset,
        0
    );
    assert_eq!(
        client
            .produce(Acks::Leader, topic, 0, batch(second.clone()))
            .base_offset,
        2
    );

    let consumer = common::assigned_consumer(&broker, "native-to-kafka", 0, Offset::Beginning);
    let got = common::poll_messages(&consumer, 3);
    let sent: Vec<Record> = first.into_iter().chain(second).collect();
    for (i, (message, record)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(message.offset(), i as i64);
        assert_eq!(message.key(), record.key.as_deref());
        assert_eq!(message.payload(), record.value.as_deref());
        assert_eq!(message.timestamp().to_millis(), Some(record.timestamp));
        let headers: Vec<(String, Option<Vec<u8>>)> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                    .collect()
            })
            .unwrap_or_default();
        let want: Vec<(String, Option<Vec<u8>>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_vec())))
            .collect();
        assert_eq!(headers, want, "record {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_by_librdkafka_consumed_natively_identically() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("kafka-to-native", 1, &[]).await;
    let kafka = producer(&broker, &[("compression.type", "none")]);
    let ts = now_ms() - 3000;
    let mut sent = Vec::new();
    for i in 0..20i64 {
        let key = format!("key{i}");
        let value = format!("value{i}");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "n",
                value: Some(&i.to_string()),
            })
            .insert(Header {
                key: "empty",
                value: None::<&[u8]>,
            });
        let delivery = kafka
            .send(
                FutureRecord::to("kafka-to-native")
                    .partition(0)
                    .key(&key)
                    .payload(&value)
                    .timestamp(ts + i)
                    .headers(headers),
                TIMEOUT,
            )
            .await
            .unwrap();
        sent.push((delivery.offset, key, value, ts + i, i));
    }
    let mut client = Client::open(&broker.native);
    let metadata = client.call(Request::Metadata(MetadataRequest {
        topics: vec!["kafka-to-native".into()],
    }));
    let Ok(Response::Metadata(metadata)) = metadata else {
        panic!("{metadata:?}")
    };
    let topic = metadata.topics[0].topic_id;
    let sub = client
        .subscribe(topic, 0, StartPosition::Earliest, Fallback::Error, 1 << 20)
        .unwrap();
    let got = client.consume_until(sub.subscription_id, 0, 20);
    assert_eq!(got.len(), 20);
    for (record, (offset, key, value, timestamp, i)) in got.iter().zip(&sent) {
        assert_eq!(record.offset, *offset);
        assert_eq!(record.key.as_deref(), Some(key.as_bytes()));
        assert_eq!(record.value.as_deref(), Some(value.as_bytes()));
        assert_eq!(record.timestamp, *timestamp);
        assert_eq!(
            record.headers,
            vec![
                ("n".to_string(), Some(Bytes::from(i.to_string()))),
                ("empty".to_string(), None)
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_offsets_are_shared_with_kafka_groups() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("shared-groups", 1);
    for i in 0..10 {
        client.produce(
            Acks::All,
            topic,
            0,
            batch(vec![record("k", &format!("v{i}"), now_ms(), &[])]),
        );
    }
    // Committed natively, resumed by a Kafka group consumer.
    let commit = client.call(Request::CommitOffsets(CommitOffsetsRequest {
        group_id: "native-first".into(),
        generation_id: -1,
        member_id: String::new(),
        offsets: vec![OffsetCommitEntry {
            topic_id: topic,
            partition: 0,
            offset: 6,
            leader_epoch: -1,
            metadata: None,
        }],
    }));
    let Ok(Response::CommitOffsets(commit)) = commit else {
        panic!("{commit:?}")
    };
    assert_eq!(commit.partitions[0].error, ErrorCode::NONE);
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", "native-first")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["shared-groups"]).unwrap();
    let resumed = common::poll_messages(&consumer, 1);
    assert_eq!(resumed[0].offset(), 6);
    assert_eq!(resumed[0].payload(), Some(&b"v6"[..]));
    drop(consumer);

    // Committed by a Kafka consumer, fetched and resumed natively.
    let kafka: BaseConsumer = broker
        .client_config()
        .set("group.id", "kafka-first")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("shared-groups", 0, Offset::Offset(8))
        .unwrap();
    kafka.commit(&tpl, CommitMode::Sync).unwrap();
    let fetched = client.call(Request::FetchOffsets(FetchOffsetsRequest {
        group_id: "kafka-first".into(),
        partitions: vec![TopicPartition {
            topic_id: topic,
            partition: 0,
        }],
    }));
    let Ok(Response::FetchOffsets(fetched)) = fetched else {
        panic!("{fetched:?}")
    };
    assert_eq!(fetched.offsets[0].offset, 8);
    let sub = client
        .subscribe(
            topic,
            0,
            StartPosition::Committed {
                group_id: "kafka-first".into(),
            },
            Fallback::Error,
            1 << 20,
        )
        .unwrap();
    assert_eq!(sub.start_offset, 8);
    let got = client.consume_until(sub.subscription_id, 8, 10);
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [8, 9]);
}

#[test]
fn malformed_frames_get_error_frames_and_the_broker_carries_on() {
    let broker = TestBroker::start(&[]);
    let mut client = Client::open(&broker.native);

    // Unknown opcode: an error frame, and the connection goes on.
    let mut frame = BytesMut::new();
    encode_frame(&mut frame, 0x0999, 41, &Ping { nonce: 1 });
    client.send_raw(&frame);
    assert_eq!(error_code(client.answer(41)), ErrorCode::UNKNOWN_OPCODE);

    // Truncated payload (a PING of 3 bytes), trailing bytes, request id 0, bad enum values.
    client.send_raw(&[9, 0, 0, 0, 0x02, 0x00, 42, 0, 0, 0, 1, 2, 3]);
    let truncated = client.answer(42).unwrap_err();
    assert_eq!(truncated.code, ErrorCode::INVALID_REQUEST);
    assert!(truncated.message.contains("nonce"), "{}", truncated.message);
    client.send_raw(&[
        15, 0, 0, 0, 0x02, 0x00, 43, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
    ]);
    assert_eq!(error_code(client.answer(43)), ErrorCode::INVALID_REQUEST);
    client.send_raw(&[14, 0, 0, 0, 0x02, 0x00, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    match client.recv().unwrap() {
        ServerFrame::Error {
            request_id: 0,
            error,
        } => assert_eq!(error.code, ErrorCode::INVALID_REQUEST),
        other => panic!("{other:?}"),
    }
    // A count far beyond the payload: refused before anything is allocated.
    client.send_raw(&[10, 0, 0, 0, 0x03, 0x00, 44, 0, 0, 0, 0xff, 0xff, 0x01, 0x00]);
    assert_eq!(error_code(client.answer(44)), ErrorCode::INVALID_REQUEST);
    // Invalid UTF-8 in a name.
    client.send_raw(&[10, 0, 0, 0, 0x06, 0x00, 45, 0, 0, 0, 2, 0, 0xc3, 0x28]);
    assert_eq!(error_code(client.answer(45)), ErrorCode::INVALID_REQUEST);
    client.barrier();

    // A length beyond the frame limit: an error frame, then the connection is closed without
    // the broker reading (or allocating) the body.
    client.send_raw(&(1u32 << 30).to_le_bytes());
    match client.recv() {
        Some(ServerFrame::Error {
            request_id: 0,
            error,
        }) => assert_eq!(error.code, ErrorCode::FRAME_TOO_LARGE),
        other => panic!("{other:?}"),
    }
    assert!(
        client.recv().is_none(),
        "the connection stays open after a bad length"
    );

    // A length too short for a header closes the connection too.
    let mut short = Client::open(&broker.native);
    short.send_raw(&[3, 0, 0, 0, 1, 2, 3]);
    match short.recv() {
        Some(ServerFrame::Error {
            request_id: 0,
            error,
        }) => assert_eq!(error.code, ErrorCode::INVALID_REQUEST),
        other => panic!("{other:?}"),
    }
    assert!(short.recv().is_none());

    // Garbage and half frames from other clients change nothing for new ones.
    let mut garbage = TcpStream::connect(&broker.native).unwrap();
    garbage.write_all(&[0xff; 3]).unwrap();
    drop(garbage);
    let mut fresh = Client::open(&broker.native);
    fresh.barrier();
    let topic = fresh.create_topic("still-here", 1);
    assert_eq!(
        fresh
            .produce(
                Acks::All,
                topic,
                0,
                batch(vec![record("k", "v", now_ms(), &[])])
            )
            .error,
        ErrorCode::NONE
    );
}

#[test]
fn idle_native_connections_are_closed() {
    let broker = TestBroker::start(&["--connections.max.idle.ms", "200"]);
    let mut client = Client::open(&broker.native);
    // A subscription is an outstanding request for data: its connection is not idle, however
    // quiet the topic.
    let mut subscriber = Client::open(&broker.native);
    let topic = subscriber.create_topic("quiet", 1);
    subscriber
        .subscribe(topic, 0, StartPosition::Latest, Fallback::Error, 1024)
        .unwrap();
    // recv blocks until the broker closes the connection (TIMEOUT bounds a failure).
    assert!(client.recv().is_none());
    std::thread::sleep(std::time::Duration::from_millis(600));
    subscriber.barrier();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_passed_by_delete_records_takes_the_fallback() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("trimmed", 1);
    let one = batch(vec![record("k", "v", now_ms(), &[])]);
    for _ in 0..10 {
        client.produce(Acks::All, topic, 0, one.clone());
    }
    // Credit for exactly one batch each: both stop after offset 0.
    let size = one.len() as u32;
    let reset = client
        .subscribe(topic, 0, StartPosition::Earliest, Fallback::Earliest, size)
        .unwrap();
    let strict = client
        .subscribe(topic, 0, StartPosition::Earliest, Fallback::Error, size)
        .unwrap();
    for _ in 0..2 {
        assert_eq!(client.next_data().next_offset, 1);
    }

    let mut trim = TopicPartitionList::new();
    trim.add_partition_offset("trimmed", 0, Offset::Offset(6))
        .unwrap();
    let deleted = broker
        .admin_client()
        .delete_records(&trim, &rdkafka::admin::AdminOptions::new())
        .await
        .unwrap();
    assert_eq!(
        deleted.find_partition("trimmed", 0).unwrap().offset(),
        Offset::Offset(6)
    );

    client.grant(reset.subscription_id, size);
    let data = client.next_data();
    assert_eq!(data.subscription_id, reset.subscription_id);
    let records = decode_records(&data.records).unwrap();
    assert_eq!((records[0].offset, data.next_offset), (6, 7));

    client.grant(strict.subscription_id, size);
    match client.next_push() {
        ServerFrame::End(end) => {
            assert_eq!(end.subscription_id, strict.subscription_id);
            assert_eq!(end.error, ErrorCode::OFFSET_OUT_OF_RANGE);
        }
        other => panic!("expected the strict subscription to end, got {other:?}"),
    }
    // Ended: its id is gone.
    let id = client.send(&Request::GrantCredit(GrantCreditRequest {
        subscription_id: strict.subscription_id,
        credit_bytes: 1,
    }));
    assert_eq!(
        error_code(client.answer(id)),
        ErrorCode::UNKNOWN_SUBSCRIPTION
    );
}

#[test]
fn every_partition_round_trips_across_shards() {
    // 16 partitions over 2 shards: the connection's shard owns some and not others (all on one
    // shard has a 2^-15 chance), so produce and subscriptions cross shards.
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("spread", 16);
    let partitions: Vec<ProducePartition> = (0..16u32)
        .map(|p| ProducePartition {
            topic_id: topic,
            partition: p,
            records: batch(vec![record("k", &format!("p{p}"), now_ms(), &[])]),
        })
        .collect();
    let answer = client.call(Request::Produce(ProduceRequest {
        acks: Acks::All,
        timeout_ms: 10_000,
        partitions,
    }));
    let Ok(Response::Produce(answer)) = answer else {
        panic!("{answer:?}")
    };
    for (p, result) in answer.partitions.iter().enumerate() {
        assert_eq!(
            (result.partition, result.error, result.base_offset),
            (p as u32, ErrorCode::NONE, 0)
        );
    }
    let mut subscriptions = std::collections::HashMap::new();
    for p in 0..16u32 {
        let sub = client
            .subscribe(topic, p, StartPosition::Earliest, Fallback::Error, 1 << 16)
            .unwrap();
        subscriptions.insert(sub.subscription_id, p);
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < 16 {
        let data = client.next_data();
        let p = subscriptions[&data.subscription_id];
        let records: Vec<DecodedRecord> = split_batches(&data.records)
            .unwrap()
            .iter()
            .flat_map(|b| decode_records(b).unwrap())
            .collect();
        assert_eq!(
            records[0].value.as_deref(),
            Some(format!("p{p}").as_bytes())
        );
        assert!(seen.insert(p), "partition {p} pushed twice");
    }
}

#[test]
fn answers_never_exceed_the_frame_limit() {
    let broker = TestBroker::start(&["--native-max-frame-bytes", "65536"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("wide", 20);
    // 20 commits with 4000 bytes of metadata each: two requests fit, their sum does not.
    for half in [0..10u32, 10..20] {
        let offsets = half
            .map(|partition| OffsetCommitEntry {
                topic_id: topic,
                partition,
                offset: 1,
                leader_epoch: -1,
                metadata: Some("m".repeat(4000)),
            })
            .collect();
        let commit = client.call(Request::CommitOffsets(CommitOffsetsRequest {
            group_id: "wide".into(),
            generation_id: -1,
            member_id: String::new(),
            offsets,
        }));
        assert!(
            matches!(commit, Ok(Response::CommitOffsets(_))),
            "{commit:?}"
        );
    }
    let all = client.call(Request::FetchOffsets(FetchOffsetsRequest {
        group_id: "wide".into(),
        partitions: Vec::new(),
    }));
    assert_eq!(error_code(all), ErrorCode::RECORD_LIST_TOO_LARGE);
    let some = client.call(Request::FetchOffsets(FetchOffsetsRequest {
        group_id: "wide".into(),
        partitions: vec![TopicPartition {
            topic_id: topic,
            partition: 3,
        }],
    }));
    let Ok(Response::FetchOffsets(some)) = some else {
        panic!("{some:?}")
    };
    assert_eq!(
        some.offsets[0].metadata.as_ref().map(String::len),
        Some(4000)
    );
}

#[test]
fn requests_in_flight_are_answered_after_the_client_stops_sending() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let mut client = Client::open(&broker.native);
    let topic = client.create_topic("half-closed", 1);
    let one = batch(vec![record("k", "v", now_ms(), &[])]);
    let produce = |acks| {
        Request::Produce(ProduceRequest {
            acks,
            timeout_ms: 10_000,
            partitions: vec![ProducePartition {
                topic_id: topic,
                partition: 0,
                records: one.clone(),
            }],
        })
    };
    let ids: Vec<u32> = [
        produce(Acks::All),
        Request::DescribeTopic(DescribeTopicRequest {
            name: "half-closed".into(),
        }),
        produce(Acks::All),
    ]
    .iter()
    .map(|r| client.send(r))
    .collect();
    client.stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answered = Vec::new();
    while let Some(frame) = client.recv() {
        match frame {
            ServerFrame::Response {
                request_id,
                response,
            } => answered.push((request_id, response)),
            other => panic!("{other:?}"),
        }
    }
    answered.sort_by_key(|(id, _)| *id);
    assert_eq!(answered.len(), 3, "{answered:?}");
    assert_eq!(answered.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids);
    let Response::Produce(last) = &answered[2].1 else {
        panic!("{answered:?}")
    };
    assert_eq!(last.partitions[0].base_offset, 1);
}
