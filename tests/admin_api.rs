//! The admin HTTP API against the real broker: `/health`, `/ready`, and the JSON `/v1` API with
//! consumer lag checked to the exact offset after librdkafka produced, consumed and committed.
//! Requests go over a plain TCP socket (HTTP/1.1 written by hand), so nothing but the broker's
//! own HTTP stack is under test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{send_request, TestBroker, TIMEOUT};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetCommitRequest, OffsetCommitResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::AdminOptions;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

/// One answer: status, content type and body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        assert_eq!(self.content_type, "application/json", "body: {}", self.body);
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// `GET path` on a fresh connection, read to the end (`connection: close`).
fn get(broker: &TestBroker, path: &str) -> Answer {
    let mut stream = std::net::TcpStream::connect(&broker.admin).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        broker.admin
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("no end of head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
    let status = status_line[9..12].parse().unwrap();
    let header = |name: &str| {
        head.split("\r\n")
            .skip(1)
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let length: usize = header("content-length").parse().expect("content-length");
    assert_eq!(length, body.len(), "content-length of {path}");
    Answer {
        status,
        content_type: header("content-type"),
        body: body.to_owned(),
    }
}

async fn produce(producer: &FutureProducer, topic: &str, partition: i32, count: usize) {
    for i in 0..count {
        let payload = format!("{topic}-{partition}-{i}");
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(partition)
                    .payload(&payload),
                TIMEOUT,
            )
            .await
            .unwrap();
    }
}

fn group_consumer(broker: &TestBroker, group: &str) -> BaseConsumer {
    broker
        .client_config()
        .set("group.id", group)
        .set("client.id", "admin-api-test")
        .set("group.instance.id", "admin-api-instance")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "200")
        .create()
        .unwrap()
}

/// A simple-consumer commit (generation -1, no member id), as the group-less tools do.
fn simple_commit(broker: &TestBroker, group: &str, topic: &str, partition: i32, offset: i64) {
    let response: OffsetCommitResponse = send_request(
        &broker.kafka,
        ApiKey::OffsetCommit,
        8,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(partition)
                    .with_committed_offset(offset)
                    .with_committed_metadata(Some(StrBytes::from_static_str(
                        "by hand",
                    )))])]),
    );
    assert_eq!(response.topics[0].partitions[0].error_code, 0);
}

fn partition<'a>(detail: &'a Value, topic: &str, index: i64) -> &'a Value {
    detail["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["topic"] == topic && p["partition"] == index)
        .unwrap_or_else(|| panic!("no {topic}-{index} in {detail}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_ready_answer_plain_text() {
    let broker = TestBroker::start(&["--shards", "2"]);
    let health = get(&broker, "/health");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    assert!(health.content_type.starts_with("text/plain"));
    let ready = get(&broker, "/ready");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    assert_eq!(get(&broker, "/nothing-here").status, 404);

    let info = get(&broker, "/v1/broker");
    assert_eq!(info.status, 200);
    let info = info.json();
    assert_eq!(info["shards"], 2);
    assert_eq!(info["node_id"], 1);
    assert_eq!(info["ready"], true);
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["listeners"][0]["name"], "kafka");
    assert_eq!(info["listeners"][0]["listen"], broker.kafka.as_str());
    assert_eq!(info["listeners"][1]["listen"], broker.admin.as_str());
    assert_eq!(info["listeners"][2]["name"], "native");
    assert_eq!(info["listeners"][2]["listen"], broker.native.as_str());
    assert_eq!(info["data_dir"], broker.dir.display().to_string());
    assert!(["io_uring", "posix"].contains(&info["storage_backend"].as_str().unwrap()));

    // Not GET: 405, and the connection still answers the next request.
    let mut stream = std::net::TcpStream::connect(&broker.admin).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(b"POST /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 405 "), "{raw}");

    // An oversized request head: 431, not a hang or a crash.
    let mut stream = std::net::TcpStream::connect(&broker.admin).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let big = "a".repeat(16 * 1024);
    let _ = stream.write_all(format!("GET /health HTTP/1.1\r\nx-big: {big}\r\n\r\n").as_bytes());
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    assert!(
        String::from_utf8_lossy(&raw).starts_with("HTTP/1.1 431 "),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(get(&broker, "/health").status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_lag_is_exact() {
    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("lagged", 3, &[]).await;
    broker.create_topic("doomed", 1, &[]).await;
    let producer: FutureProducer = broker
        .client_config()
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()
        .unwrap();
    produce(&producer, "lagged", 0, 10).await;
    produce(&producer, "lagged", 1, 7).await;
    produce(&producer, "doomed", 0, 4).await;

    // No group yet: 404 with a JSON body, and no __consumer_offsets created by asking.
    let missing = get(&broker, "/v1/groups/consumers");
    assert_eq!(missing.status, 404);
    let missing = missing.json();
    assert_eq!(missing["error"], "group not found");
    assert_eq!(missing["group"], "consumers");
    assert_eq!(get(&broker, "/v1/topics/__consumer_offsets").status, 404);

    // A subscribed consumer reads all 17 records, then commits 4 of partition 0 and all of
    // partition 1; partition 2 (empty) is never committed.
    let consumer = group_consumer(&broker, "consumers");
    consumer.subscribe(&["lagged"]).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = 0;
    while seen < 17 {
        assert!(
            Instant::now() < deadline,
            "only {seen} of 17 records arrived"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(_)) => seen += 1,
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => panic!("consume error: {e}"),
        }
    }
    let mut commits = TopicPartitionList::new();
    commits
        .add_partition_offset("lagged", 0, Offset::Offset(4))
        .unwrap();
    commits
        .add_partition_offset("lagged", 1, Offset::Offset(7))
        .unwrap();
    commits
        .find_partition("lagged", 0)
        .unwrap()
        .set_metadata("checkpoint-a");
    consumer.commit(&commits, CommitMode::Sync).unwrap();

    let answer = get(&broker, "/v1/groups/consumers");
    assert_eq!(answer.status, 200, "{}", answer.body);
    let detail = answer.json();
    assert_eq!(detail["group_id"], "consumers");
    assert_eq!(detail["group_type"], "classic");
    assert_eq!(detail["protocol_type"], "consumer");
    assert_eq!(detail["state"], "Stable");
    let members = detail["members"].as_array().unwrap();
    assert_eq!(members.len(), 1, "{detail}");
    assert_eq!(members[0]["client_id"], "admin-api-test");
    assert_eq!(members[0]["group_instance_id"], "admin-api-instance");
    assert_eq!(detail["leader"], members[0]["member_id"]);
    let assignment = members[0]["assignment"].as_array().expect("assignment");
    assert_eq!(assignment.len(), 1, "{detail}");
    assert_eq!(assignment[0]["topic"], "lagged");
    let mut assigned: Vec<i64> = assignment[0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_i64().unwrap())
        .collect();
    assigned.sort_unstable();
    assert_eq!(assigned, [0, 1, 2]);

    assert_eq!(detail["committed_partitions"], 2);
    assert_eq!(detail["partitions"].as_array().unwrap().len(), 2);
    let p0 = partition(&detail, "lagged", 0);
    assert_eq!(p0["committed_offset"], 4);
    assert_eq!(p0["metadata"], "checkpoint-a");
    assert_eq!(p0["log_end_offset"], 10);
    assert_eq!(p0["lag"], 6);
    let p1 = partition(&detail, "lagged", 1);
    assert_eq!(p1["committed_offset"], 7);
    assert_eq!(p1["log_end_offset"], 7);
    assert_eq!(p1["lag"], 0);
    assert_eq!(detail["total_lag"], 6);
    assert_eq!(detail["lag_unknown_partitions"], 0);
    assert_eq!(detail["partitions_truncated"], false);

    // More records behind the committed offset: the lag follows the high watermark.
    produce(&producer, "lagged", 1, 5).await;
    let detail = get(&broker, "/v1/groups/consumers").json();
    let p1 = partition(&detail, "lagged", 1);
    assert_eq!(
        (p1["log_end_offset"].clone(), p1["lag"].clone()),
        (12.into(), 5.into())
    );
    assert_eq!(detail["total_lag"], 11);

    // A simple-consumer group (no members) whose name needs percent-encoding: one commit past
    // the end (lag 0, never negative), one on a topic that is then deleted (lag unknown).
    let simple = "tools/one off";
    simple_commit(&broker, simple, "lagged", 2, 3);
    simple_commit(&broker, simple, "doomed", 0, 1);
    let detail = get(&broker, "/v1/groups/tools%2Fone%20off").json();
    assert_eq!(detail["group_id"], simple);
    assert_eq!(detail["state"], "Empty");
    assert_eq!(detail["protocol_type"], "");
    assert_eq!(detail["members"].as_array().unwrap().len(), 0);
    let doomed = partition(&detail, "doomed", 0);
    assert_eq!(
        (doomed["log_end_offset"].clone(), doomed["lag"].clone()),
        (4.into(), 3.into())
    );
    let p2 = partition(&detail, "lagged", 2);
    assert_eq!(p2["committed_offset"], 3);
    assert_eq!(p2["metadata"], "by hand");
    assert_eq!(p2["log_end_offset"], 0);
    assert_eq!(p2["lag"], 0);
    assert_eq!(detail["total_lag"], 3);

    let results = broker
        .admin_client()
        .delete_topics(&["doomed"], &AdminOptions::new())
        .await
        .unwrap();
    results[0].as_ref().unwrap();
    // Deleting a topic deletes its committed offsets too, as in Kafka.
    let detail = get(&broker, "/v1/groups/tools%2Fone%20off").json();
    assert!(
        detail["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["topic"] != "doomed"),
        "{detail}"
    );
    assert_eq!(detail["total_lag"], 0);
    assert_eq!(detail["lag_unknown_partitions"], 0);

    // The listing: both groups, in id order, with their totals; then page by page.
    let listing = get(&broker, "/v1/groups").json();
    assert_eq!(listing["total_groups"], 2);
    assert_eq!(listing["truncated"], false);
    assert!(listing["next_after"].is_null());
    let groups = listing["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{listing}");
    assert_eq!(groups[0]["group_id"], "consumers");
    assert_eq!(groups[0]["state"], "Stable");
    assert_eq!(groups[0]["members"], 1);
    assert_eq!(groups[0]["protocol"], "range");
    assert_eq!(groups[0]["total_lag"], 11);
    assert_eq!(groups[1]["group_id"], simple);
    assert_eq!(groups[1]["members"], 0);
    assert_eq!(groups[1]["total_lag"], 0);
    assert_eq!(groups[1]["lag_unknown_partitions"], 0);

    let first = get(&broker, "/v1/groups?limit=1").json();
    assert_eq!(first["groups"].as_array().unwrap().len(), 1);
    assert_eq!(first["truncated"], true);
    assert_eq!(first["next_after"], "consumers");
    let second = get(&broker, "/v1/groups?limit=1&after=consumers").json();
    assert_eq!(second["groups"][0]["group_id"], simple);
    assert_eq!(second["truncated"], false);
    assert_eq!(get(&broker, "/v1/groups?limit=0").status, 400);
    assert_eq!(get(&broker, "/v1/groups?limit=1001").status, 400);

    // Topics: offsets and sizes per partition.
    let topic = get(&broker, "/v1/topics/lagged").json();
    assert_eq!(topic["partition_count"], 3);
    let ends: Vec<(i64, i64, i64)> = topic["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().unwrap(),
                p["log_start_offset"].as_i64().unwrap(),
                p["high_watermark"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ends, [(0, 0, 10), (1, 0, 12), (2, 0, 0)]);
    assert!(topic["size_bytes"].as_u64().unwrap() > 0);
    assert!(topic["cache_bytes"].as_u64().unwrap() > 0);
    let topics = get(&broker, "/v1/topics").json();
    let names: Vec<&str> = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["__consumer_offsets", "lagged"]);
    assert_eq!(topics["topics"][0]["internal"], true);
    assert_eq!(get(&broker, "/v1/topics/doomed").status, 404);
    drop(consumer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_and_lag_survive_a_restart() {
    let mut broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic("kept", 1, &[]).await;
    let producer: FutureProducer = broker.client_config().set("acks", "all").create().unwrap();
    produce(&producer, "kept", 0, 9).await;
    drop(producer);
    simple_commit(&broker, "replayed", "kept", 0, 2);
    broker.stop();
    broker.restart();
    let detail = get(&broker, "/v1/groups/replayed").json();
    let p = partition(&detail, "kept", 0);
    assert_eq!(
        (
            p["committed_offset"].clone(),
            p["log_end_offset"].clone(),
            p["lag"].clone()
        ),
        (2.into(), 9.into(), 7.into())
    );
}
