//! Operating the real broker: `/metrics` after librdkafka traffic (parsed as Prometheus text),
//! structured logs, `sluice config check`, a start-up with a bad config file, and
//! `sluice health` (the container health check). `/ready` itself is covered by
//! `tests/admin_api.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{send_request, TestBroker, TIMEOUT};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use prometheus_parse::{LineInfo, Sample, Scrape, Value};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const SLUICE: &str = env!("CARGO_BIN_EXE_sluice");

/// `GET path` on the admin port: (status, body).
fn get(admin: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(admin).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("no end of head");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    (head[9..12].parse().unwrap(), body.to_owned())
}

/// Scrapes `/metrics` and parses it; every line must be a comment, blank or a sample the
/// parser understands (it skips what it cannot read, so that is checked here).
fn scrape(broker: &TestBroker) -> Scrape {
    let (status, body) = get(&broker.admin, "/metrics");
    assert_eq!(status, 200, "{body}");
    for line in body.lines() {
        if !line.starts_with('#') {
            assert!(
                !matches!(LineInfo::parse(line), LineInfo::Ignored),
                "not Prometheus text: {line:?}"
            );
        }
    }
    Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn value(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{}: not a number: {other:?}", sample.metric),
    }
}

/// Samples of `metric` whose labels include every `(name, value)` of `labels`.
fn samples<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| {
            labels
                .iter()
                .all(|(k, v)| s.labels.get(k).is_some_and(|l| l == *v))
        })
        .collect()
}

/// The sum of `metric` over the series matching `labels`.
fn sum(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    samples(scrape, metric, labels).into_iter().map(value).sum()
}

/// The one series of `metric` matching `labels`.
fn one(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples(scrape, metric, labels);
    assert_eq!(found.len(), 1, "{metric}{labels:?}: {found:?}");
    value(found[0])
}

/// Bytes the tail caches of `broker` hold, summed over its shards.
fn cached_bytes(broker: &TestBroker) -> f64 {
    let metrics = scrape(broker);
    samples(&metrics, "sluice_storage_cache_bytes", &[])
        .into_iter()
        .map(value)
        .sum()
}

/// Sends `count` copies of `payload` to partition 0 of `topic`, each acknowledged before the next.
async fn send_to_partition_0(producer: &FutureProducer, topic: &str, payload: &[u8], count: usize) {
    for _ in 0..count {
        producer
            .send(
                FutureRecord::<(), _>::to(topic)
                    .partition(0)
                    .payload(payload),
                TIMEOUT,
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shard_cache_budget_keeps_written_data_past_each_partitions_own_cache() {
    const TOPIC: &str = "ops-cache";
    const PAYLOAD_BYTES: usize = 10_000;
    const COUNT: usize = 300; // 3 MB: far past the 64 KiB each partition keeps on its own
    let cached_after_producing = |broker: TestBroker| async move {
        broker.create_topic(TOPIC, 1, &[]).await;
        let producer: FutureProducer = broker.client_config().set("acks", "all").create().unwrap();
        send_to_partition_0(&producer, TOPIC, &vec![b'c'; PAYLOAD_BYTES], COUNT).await;
        cached_bytes(&broker)
    };
    let own = ["--shards", "1", "--log.cache.bytes", "65536"];
    let without_budget = cached_after_producing(TestBroker::start(
        &[&own[..], &["--log.cache.total.bytes", "0"]].concat(),
    ))
    .await;
    assert!(without_budget < 1e6, "cached {without_budget}");
    let with_budget = cached_after_producing(TestBroker::start(
        &[&own[..], &["--log.cache.total.bytes", "16777216"]].concat(),
    ))
    .await;
    assert!(
        with_budget >= (COUNT * PAYLOAD_BYTES) as f64,
        "cached {with_budget}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_real_traffic() {
    const TOPIC: &str = "ops-metrics";
    const GROUP: &str = "ops-group";
    const COUNT: usize = 50;
    const PAYLOAD_BYTES: usize = 200;
    const COMMITTED: i64 = 30;

    let broker = TestBroker::start(&["--shards", "2"]);
    broker.create_topic(TOPIC, 1, &[]).await;
    let producer: FutureProducer = broker
        .client_config()
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()
        .unwrap();
    let payload = vec![b'x'; PAYLOAD_BYTES];
    send_to_partition_0(&producer, TOPIC, &payload, COUNT).await;

    // A group member reads everything and commits only the first COMMITTED records.
    let consumer: BaseConsumer = broker
        .client_config()
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = 0;
    while seen < COUNT {
        assert!(Instant::now() < deadline, "only {seen} of {COUNT} arrived");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                assert_eq!(
                    rdkafka::Message::payload(&m).map(<[u8]>::len),
                    Some(PAYLOAD_BYTES)
                );
                seen += 1;
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => panic!("consume error: {e}"),
        }
    }
    let mut commits = TopicPartitionList::new();
    commits
        .add_partition_offset(TOPIC, 0, Offset::Offset(COMMITTED))
        .unwrap();
    consumer.commit(&commits, CommitMode::Sync).unwrap();

    // One request that fails: ListOffsets of a topic that does not exist.
    let missing: ListOffsetsResponse = send_request(
        &broker.kafka,
        ApiKey::ListOffsets,
        7,
        &ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("no-such-topic")))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]),
    );
    assert_eq!(missing.topics[0].partitions[0].error_code, 3);

    let metrics = scrape(&broker);
    let topic = [("topic", TOPIC)];
    let partition = [("topic", TOPIC), ("partition", "0")];

    // Requests by API and version, their latency, and the failed one by error code.
    assert!(
        sum(
            &metrics,
            "sluice_kafka_requests_total",
            &[("api", "Produce")]
        ) > 0.0
    );
    assert!(sum(&metrics, "sluice_kafka_requests_total", &[("api", "Fetch")]) > 0.0);
    assert!(
        sum(
            &metrics,
            "sluice_kafka_requests_total",
            &[("api", "OffsetCommit")]
        ) > 0.0
    );
    for sample in samples(&metrics, "sluice_kafka_requests_total", &[]) {
        let version = sample.labels.get("version").unwrap();
        assert!(
            version == "unsupported" || version.parse::<i16>().is_ok(),
            "{sample:?}"
        );
    }
    assert!(
        sum(
            &metrics,
            "sluice_kafka_request_duration_seconds_count",
            &[("api", "Produce")]
        ) >= 1.0
    );
    // (The parser names a histogram's buckets after the histogram.)
    let produce_latency = samples(
        &metrics,
        "sluice_kafka_request_duration_seconds",
        &[("api", "Produce")],
    );
    assert!(
        matches!(&produce_latency[..], [s] if matches!(s.value, Value::Histogram(_))),
        "{produce_latency:?}"
    );
    assert!(
        one(
            &metrics,
            "sluice_kafka_request_errors_total",
            &[
                ("api", "ListOffsets"),
                ("error", "UNKNOWN_TOPIC_OR_PARTITION"),
                ("code", "3")
            ]
        ) >= 1.0
    );

    // Bytes per topic: batches carry their headers, so at least the payloads.
    let payload_total = (COUNT * PAYLOAD_BYTES) as f64;
    let bytes_in = one(&metrics, "sluice_topic_bytes_in_total", &topic);
    assert!(bytes_in >= payload_total, "bytes in {bytes_in}");
    let bytes_out = one(&metrics, "sluice_topic_bytes_out_total", &topic);
    assert!(bytes_out >= payload_total, "bytes out {bytes_out}");

    // Connections: the producer, the consumer and the raw request at least.
    assert!(one(&metrics, "sluice_kafka_connections_accepted_total", &[]) >= 3.0);
    assert!(one(&metrics, "sluice_kafka_connections_open", &[]) >= 2.0);

    // Partition state, read from the shards at scrape time.
    assert_eq!(
        one(&metrics, "sluice_partition_log_end_offset", &partition),
        COUNT as f64
    );
    assert_eq!(
        one(&metrics, "sluice_partition_high_watermark", &partition),
        COUNT as f64
    );
    assert_eq!(
        one(&metrics, "sluice_partition_log_start_offset", &partition),
        0.0
    );
    assert!(one(&metrics, "sluice_partition_size_bytes", &partition) >= payload_total);

    // Group lag: what the group has read but not committed.
    assert_eq!(
        one(
            &metrics,
            "sluice_consumer_group_lag",
            &[("group", GROUP), ("topic", TOPIC), ("partition", "0")]
        ),
        (COUNT as i64 - COMMITTED) as f64
    );
    assert_eq!(
        one(&metrics, "sluice_consumer_group_lag_series_dropped", &[]),
        0.0
    );

    // Storage: the backend in use, reads served, flushes timed (acks=all waits for them).
    let backends = samples(&metrics, "sluice_storage_backend_info", &[]);
    assert_eq!(backends.len(), 1, "{backends:?}");
    assert!(["io_uring", "posix"].contains(&backends[0].labels.get("backend").unwrap()));
    assert_eq!(value(backends[0]), 1.0);
    let reads = one(&metrics, "sluice_storage_cache_hits_total", &[])
        + one(&metrics, "sluice_storage_cache_misses_total", &[]);
    assert!(reads >= 1.0, "reads {reads}");
    // The produced records sit in the tail cache of one shard's partition.
    let cached = cached_bytes(&broker);
    assert!(cached >= (COUNT * payload.len()) as f64, "cached {cached}");
    assert!(one(&metrics, "sluice_storage_fdatasync_seconds_count", &[]) >= 1.0);
    assert!(one(&metrics, "sluice_storage_flush_seconds_count", &[]) >= 1.0);
    assert_eq!(one(&metrics, "sluice_ready", &[]), 1.0);
    assert!(metrics.docs.contains_key("sluice_kafka_requests_total"));

    // More records behind the commit: the lag follows at the next scrape.
    send_to_partition_0(&producer, TOPIC, &payload, 5).await;
    let metrics = scrape(&broker);
    assert_eq!(
        one(
            &metrics,
            "sluice_consumer_group_lag",
            &[("group", GROUP), ("topic", TOPIC), ("partition", "0")]
        ),
        (COUNT as i64 + 5 - COMMITTED) as f64
    );
    drop(consumer);
}

/// Runs `sluice args...` to completion (with a deadline), without any inherited
/// `SLUICE_*`/`RUST_LOG` setting.
fn run_sluice(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(SLUICE);
    command.args(args).stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("SLUICE_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("sluice {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sluice.toml")
}

#[test]
fn bad_config_files_stop_start_up_naming_key_and_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cases = [
        (
            "unknown-key.toml",
            "log.retention.mss = 1\n",
            "log.retention.mss",
        ),
        (
            "wrong-type.toml",
            "\"log.retention.ms\" = \"a week\"\n",
            "log.retention.ms",
        ),
        ("bad-format.toml", "log-format = \"xml\"\n", "log-format"),
    ];
    for (name, text, key) in cases {
        let file = tmp.path().join(name);
        std::fs::write(&file, text).unwrap();
        let file = file.to_str().unwrap();
        for command in [&["serve"][..], &["config", "check"][..]] {
            let mut args = command.to_vec();
            args.extend([
                "--config",
                file,
                "--data-dir",
                data.to_str().unwrap(),
                "--kafka-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                "--native-listen",
                "127.0.0.1:0",
            ]);
            let out = run_sluice(&args, &[]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.starts_with("error: ") && stderr.contains(key) && stderr.contains(name),
                "{args:?}: {stderr}"
            );
            assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        }
    }
    assert!(
        !data.exists(),
        "a rejected configuration touched the data directory"
    );
}

#[test]
fn config_check_prints_every_key_of_the_example_file() {
    let example = example_config();
    let out = run_sluice(
        &["config", "check", "--config", example.to_str().unwrap()],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every key the example lists (commented-out ones too) is printed with its value.
    let documented: Vec<String> = std::fs::read_to_string(&example)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("# "))
        .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim().to_owned()))
        .filter(|k| !k.contains(' '))
        .collect();
    assert!(documented.len() >= 29, "{documented:?}");
    for key in &documented {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{key} = "))
                || l.starts_with(&format!("# {key} is not set"))),
            "{key} missing from:\n{stdout}"
        );
    }
    assert!(stdout.contains("\nlog-format = \"text\"\n"), "{stdout}");
    assert!(stdout.contains("\"num.partitions\" = 1\n"), "{stdout}");

    // Flags and SLUICE_* variables count exactly as for `serve`.
    let out = run_sluice(
        &["config", "check", "--num.partitions", "6"],
        &[("SLUICE_LOG_FORMAT", "json"), ("SLUICE_SHARDS", "3")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "log-format = \"json\"",
        "shards = 3",
        "\"num.partitions\" = 6",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line} missing from:\n{stdout}"
        );
    }
}

/// A broker process whose stderr (its log) is captured; killed if the test fails.
struct LoggedBroker {
    child: Option<std::process::Child>,
    kafka: String,
    native: String,
    admin: String,
    _tmp: tempfile::TempDir,
}

impl LoggedBroker {
    fn start(extra: &[&str], env: &[(&str, &str)]) -> LoggedBroker {
        let tmp = tempfile::tempdir().unwrap();
        let mut command = Command::new(SLUICE);
        for (key, _) in std::env::vars() {
            if key.starts_with("SLUICE_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        let mut child = command
            .args(["serve", "--kafka-listen", "127.0.0.1:0"])
            .args(["--admin-listen", "127.0.0.1:0", "--shards", "1"])
            .args(["--native-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(tmp.path().join("data"))
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
                .to_owned()
        };
        LoggedBroker {
            kafka: field("kafka"),
            native: field("native"),
            admin: field("admin"),
            child: Some(child),
            _tmp: tmp,
        }
    }

    /// Sends a frame whose length is invalid; the broker closes the connection and logs it.
    fn send_bad_frame(&self) {
        let mut stream = std::net::TcpStream::connect(&self.kafka).unwrap();
        stream.write_all(&3i32.to_be_bytes()).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    }

    /// SIGTERM, a clean exit, and the whole log.
    fn stop(mut self) -> String {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let mut log = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "broker exited with {status}: {log}");
        log
    }
}

impl Drop for LoggedBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn json_lines(log: &str) -> Vec<serde_json::Value> {
    log.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: not JSON: {l:?}")))
        .collect()
}

#[test]
fn logs_are_json_when_asked_and_filtered_by_rust_log() {
    // --log-format json, RUST_LOG=warn: only warnings, each one JSON object per line; the bad
    // frame is one line naming the peer and the reason.
    let broker = LoggedBroker::start(&["--log-format", "json"], &[("RUST_LOG", "warn")]);
    broker.send_bad_frame();
    let lines = json_lines(&broker.stop());
    assert!(
        lines
            .iter()
            .all(|l| l["level"] == "WARN" || l["level"] == "ERROR"),
        "{lines:?}"
    );
    let closed: Vec<_> = lines
        .iter()
        .filter(|l| l["message"] == "closing connection: bad request")
        .collect();
    assert_eq!(closed.len(), 1, "{lines:?}");
    assert!(closed[0]["peer"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));
    assert!(closed[0]["reason"]
        .as_str()
        .unwrap()
        .contains("socket.request.max.bytes"));
    assert!(closed[0]["timestamp"].is_string());

    // SLUICE_LOG_FORMAT does the same; RUST_LOG=info lets start-up lines through.
    let broker = LoggedBroker::start(&[], &[("SLUICE_LOG_FORMAT", "json"), ("RUST_LOG", "info")]);
    let lines = json_lines(&broker.stop());
    let selected = lines
        .iter()
        .find(|l| l["message"] == "storage backend selected")
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(selected["level"], "INFO");
    assert!(["io_uring", "posix"].contains(&selected["backend"].as_str().unwrap()));

    // By default: human-readable text.
    let broker = LoggedBroker::start(&[], &[("RUST_LOG", "info")]);
    broker.send_bad_frame();
    let log = broker.stop();
    let line = log
        .lines()
        .find(|l| l.contains("closing connection: bad request"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(!line.starts_with('{'), "{line}");
    assert!(
        line.contains("WARN") && line.contains("peer=127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains("socket.request.max.bytes"), "{line}");
}

#[test]
fn native_traffic_is_counted() {
    use protocol::native::{HandshakeRequest, Ping, Request};
    let broker = TestBroker::start(&[]);
    let mut stream = std::net::TcpStream::connect(&broker.native).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut frames = bytes::BytesMut::new();
    Request::Handshake(HandshakeRequest {
        version_min: 1,
        version_max: 1,
        ..HandshakeRequest::default()
    })
    .encode_frame(1, &mut frames);
    Request::Ping(Ping { nonce: 1 }).encode_frame(2, &mut frames);
    frames.extend_from_slice(&[9, 0, 0, 0, 0x02, 0x00, 3, 0, 0, 0, 1, 2, 3]);
    stream.write_all(&frames).unwrap();
    // Three answers: the handshake, the pong, the ERROR frame (read whole, by their lengths).
    for _ in 0..3 {
        let mut length = [0u8; 4];
        stream.read_exact(&mut length).unwrap();
        let mut rest = vec![0u8; u32::from_le_bytes(length) as usize];
        stream.read_exact(&mut rest).unwrap();
    }
    let metrics = scrape(&broker);
    let requests = "sluice_native_requests_total";
    assert_eq!(one(&metrics, requests, &[("op", "HANDSHAKE")]), 1.0);
    assert_eq!(one(&metrics, requests, &[("op", "PING")]), 1.0);
    let errors = [("op", "undecoded"), ("error", "INVALID_REQUEST")];
    assert_eq!(one(&metrics, "sluice_native_errors_total", &errors), 1.0);
    assert_eq!(one(&metrics, "sluice_native_connections_open", &[]), 1.0);
}

#[test]
fn native_bad_frames_are_logged_with_peer_and_reason() {
    let broker = LoggedBroker::start(&[], &[("RUST_LOG", "info")]);
    // A payload that does not decode: refused with an ERROR frame and an info line.
    let mut refused = std::net::TcpStream::connect(&broker.native).unwrap();
    refused.set_read_timeout(Some(TIMEOUT)).unwrap();
    refused
        .write_all(&[9, 0, 0, 0, 0x02, 0x00, 5, 0, 0, 0, 1, 2, 3])
        .unwrap();
    let mut answer = [0u8; 10];
    refused.read_exact(&mut answer).unwrap();
    assert_eq!(&answer[4..6], &[0xff, 0x7f], "an ERROR frame");
    // A length over native-max-frame-bytes: the connection is closed.
    let mut closed = std::net::TcpStream::connect(&broker.native).unwrap();
    closed.set_read_timeout(Some(TIMEOUT)).unwrap();
    closed.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = closed.read_to_end(&mut rest);
    let log = broker.stop();
    let line = log
        .lines()
        .find(|l| l.contains("closing native connection: bad frame"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("WARN") && line.contains("peer=127.0.0.1:"),
        "{line}"
    );
    assert!(line.contains("exceeds the limit of 16777216"), "{line}");
    let line = log
        .lines()
        .find(|l| l.contains("native request refused"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("peer=127.0.0.1:") && line.contains("nonce"),
        "{line}"
    );
}

#[test]
fn health_command_asks_ready() {
    let broker = LoggedBroker::start(&[], &[]);
    let out = run_sluice(&["health", "--admin", &broker.admin], &[]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\n");
    // The admin port from SLUICE_ADMIN_LISTEN, as in the container; a wildcard means here.
    let port = broker.admin.rsplit_once(':').unwrap().1;
    let wildcard = format!("0.0.0.0:{port}");
    let out = run_sluice(&["health"], &[("SLUICE_ADMIN_LISTEN", &wildcard)]);
    assert!(out.status.success(), "{out:?}");
    let (status, _) = get(&broker.admin, "/metrics");
    assert_eq!(status, 200);
    broker.stop();

    // Nothing listening: not healthy.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = free.local_addr().unwrap().to_string();
    drop(free);
    let out = run_sluice(&["health", "--admin", &closed], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("not ready: "));
}
