//! The `sluice` client commands, run as a user runs them: the built binary against a real
//! broker's native listener (topic admin, produce from stdin with keys and headers, consume as
//! JSON, group positions, bench summaries), and the message when nothing listens.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::TestBroker;

fn sluice(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env_remove("SLUICE_BROKER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        // A command that is done (or failed) before reading its input closes the pipe; what
        // it printed and its exit status are what the tests check.
        match input.write_all(text.as_bytes()) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            other => other.unwrap(),
        }
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Runs a command that must succeed; returns its stdout.
fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = sluice(args, stdin);
    assert!(
        out.status.success(),
        "sluice {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn says_how_to_start_a_broker_when_nothing_listens() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for args in [
        vec!["topic", "list", "--broker", &addr],
        vec!["consume", "t", "--broker", &addr],
        vec!["bench", "produce", "--count", "1", "--broker", &addr],
    ] {
        let out = sluice(&args, Some("line\n"));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!(
                "nothing listens on {addr}: start a broker with `sluice serve` or pass --broker HOST:PORT"
            )),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn topic_create_list_describe_delete() {
    let broker = TestBroker::start(&[]);
    let b = broker.native.as_str();
    let created = ok(
        &[
            "topic",
            "create",
            "cli-topic",
            "-p",
            "3",
            "--config",
            "retention.ms=3600000",
            "--broker",
            b,
        ],
        None,
    );
    assert!(
        created.contains("created topic cli-topic with 3 partitions"),
        "{created}"
    );

    let listed = ok(&["topic", "list", "--broker", b], None);
    let line = listed
        .lines()
        .find(|l| l.starts_with("cli-topic "))
        .unwrap();
    assert_eq!(line.split_whitespace().nth(1), Some("3"), "{listed}");
    assert!(
        !listed.contains("__consumer_offsets"),
        "internal topics hidden: {listed}"
    );

    let described = ok(&["topic", "describe", "cli-topic", "--broker", b], None);
    assert!(described.contains("partitions: 3"), "{described}");
    assert!(described.contains("retention.ms=3600000"), "{described}");

    let again = sluice(&["topic", "create", "cli-topic", "--broker", b], None);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("TOPIC_ALREADY_EXISTS"));

    let deleted = ok(&["topic", "delete", "cli-topic", "--broker", b], None);
    assert!(deleted.contains("deleted topic cli-topic"), "{deleted}");
    let listed = ok(&["topic", "list", "--broker", b], None);
    assert!(!listed.contains("cli-topic"), "{listed}");
    let missing = sluice(&["topic", "describe", "cli-topic", "--broker", b], None);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn produce_with_keys_and_headers_then_consume_as_json() {
    let broker = TestBroker::start(&[]);
    let b = broker.native.as_str();
    ok(
        &["topic", "create", "lines", "-p", "4", "--broker", b],
        None,
    );
    let input = "user-1:first\nuser-2:second\nno key here\nuser-1:third\n";
    ok(
        &[
            "produce",
            "lines",
            "-K",
            ":",
            "-H",
            "source=cli",
            "-H",
            "v=1",
            "--broker",
            b,
        ],
        Some(input),
    );
    let out = ok(
        &[
            "consume", "lines", "--from", "earliest", "-o", "json", "-e", "--broker", b,
        ],
        None,
    );
    let records: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{out}");
    let find = |value: &str| records.iter().find(|r| r["value"] == value).unwrap();
    let first = find("first");
    assert_eq!(first["key"], "user-1");
    assert_eq!(first["topic"], "lines");
    assert_eq!(
        first["headers"],
        serde_json::json!([["source", "cli"], ["v", "1"]])
    );
    // Keys are partitioned as Kafka's default partitioner would.
    let expected = protocol::murmur2::partition_for_key(b"user-1", 4);
    assert_eq!(first["partition"], expected);
    assert_eq!(find("third")["partition"], expected);
    assert!(find("third")["offset"].as_i64() > first["offset"].as_i64());
    assert_eq!(find("no key here")["key"], serde_json::Value::Null);
    assert!(first["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
}

#[test]
fn consume_from_offsets_and_group_positions() {
    let broker = TestBroker::start(&[]);
    let b = broker.native.as_str();
    ok(&["topic", "create", "seq", "-p", "1", "--broker", b], None);
    let input: String = (0..10).map(|i| format!("m{i}\n")).collect();
    ok(&["produce", "seq", "--broker", b], Some(&input));

    let from_offset = ok(
        &["consume", "seq", "--from", "offset:7", "-e", "--broker", b],
        None,
    );
    assert_eq!(from_offset, "m7\nm8\nm9\n");
    let future = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 3_600_000;
    let from_time = ok(
        &[
            "consume",
            "seq",
            "--from",
            &format!("timestamp:{future}"),
            "-e",
            "--broker",
            b,
        ],
        None,
    );
    assert_eq!(from_time, "", "nothing is that recent");

    // A group reads 4, commits, and the next run resumes after them.
    let first = ok(
        &[
            "consume", "seq", "--group", "readers", "-n", "4", "--broker", b,
        ],
        None,
    );
    assert_eq!(first, "m0\nm1\nm2\nm3\n");
    let rest = ok(
        &["consume", "seq", "--group", "readers", "-e", "--broker", b],
        None,
    );
    assert_eq!(rest, "m4\nm5\nm6\nm7\nm8\nm9\n");
}

#[test]
fn bench_reports_json_summaries_over_both_protocols() {
    let broker = TestBroker::start(&[]);
    let b = broker.native.as_str();
    for protocol in ["native", "kafka"] {
        let topic = format!("bench-{protocol}");
        let common = [
            "--topic",
            &topic,
            "--protocol",
            protocol,
            "--broker",
            b,
            "--kafka-broker",
            &broker.kafka,
            "--json",
        ];
        let produce: serde_json::Value = serde_json::from_str(&ok(
            &[
                &[
                    "bench",
                    "produce",
                    "--count",
                    "2000",
                    "--size",
                    "64",
                    "--partitions",
                    "2",
                ][..],
                &common,
            ]
            .concat(),
            None,
        ))
        .unwrap();
        assert_eq!(produce["messages"], 2000, "{produce}");
        assert_eq!(produce["bytes"], 2000 * 64, "{produce}");
        assert_eq!(produce["protocol"], protocol);
        let latency = &produce["latency_ms"];
        assert!(latency["p50"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap());
        assert!(latency["p999"].as_f64().unwrap() <= latency["max"].as_f64().unwrap());

        let consume: serde_json::Value =
            serde_json::from_str(&ok(&[&["bench", "consume"][..], &common].concat(), None))
                .unwrap();
        assert_eq!(consume["messages"], 2000, "{consume}");
        assert!(consume["mb_per_s"].as_f64().unwrap() > 0.0);

        let e2e: serde_json::Value = serde_json::from_str(&ok(
            &[
                &[
                    "bench",
                    "e2e",
                    "--rate",
                    "400",
                    "--duration",
                    "0.5",
                    "--size",
                    "32",
                ][..],
                &common,
            ]
            .concat(),
            None,
        ))
        .unwrap();
        assert_eq!(e2e["messages"], 200, "{e2e}");
        assert_eq!(e2e["errors"], 0, "{e2e}");
        assert!(e2e["latency_ms"]["max"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn produce_from_a_file_and_consume_key_value_lines() {
    let broker = TestBroker::start(&[]);
    let b = broker.native.as_str();
    ok(
        &["topic", "create", "from-file", "-p", "1", "--broker", b],
        None,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.txt");
    std::fs::write(&path, "a=1\nb=2\nc=3\n").unwrap();
    let path = path.to_str().unwrap();
    ok(
        &[
            "produce",
            "from-file",
            "-f",
            path,
            "-K",
            "=",
            "--compression",
            "zstd",
            "--broker",
            b,
        ],
        None,
    );
    let out = ok(
        &[
            "consume",
            "from-file",
            "-o",
            "kv",
            "--key-separator",
            " -> ",
            "-e",
            "--broker",
            b,
        ],
        None,
    );
    assert_eq!(out, "a -> 1\nb -> 2\nc -> 3\n");
    let missing = sluice(
        &[
            "produce",
            "from-file",
            "-f",
            "/nonexistent/input",
            "--broker",
            b,
        ],
        None,
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /nonexistent/input"));
    let no_topic = sluice(&["produce", "no-such-topic", "--broker", b], Some("x\n"));
    assert_eq!(no_topic.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_topic.stderr).contains("unknown topic \"no-such-topic\""));
}
