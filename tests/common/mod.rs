//! A real broker process for integration tests: started on ephemeral ports in a temporary data
//! directory, found through the one line it prints when ready, killed with SIGKILL or stopped
//! with SIGTERM, and restarted on the same data.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

pub struct TestBroker {
    child: Option<Child>,
    pub kafka: String,
    /// The native protocol listener (protocol/NATIVE.md).
    pub native: String,
    pub admin: String,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    extra: Vec<String>,
    /// Listen on these addresses (kafka, admin, native) instead of ephemeral ports.
    addresses: Option<[String; 3]>,
}

impl TestBroker {
    /// Starts a broker with `extra` flags on a fresh data directory.
    pub fn start(extra: &[&str]) -> TestBroker {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let mut broker = TestBroker {
            child: None,
            kafka: String::new(),
            native: String::new(),
            admin: String::new(),
            dir,
            _tmp: Some(tmp),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            addresses: None,
        };
        broker.launch();
        broker
    }

    fn launch(&mut self) {
        let ephemeral = || "127.0.0.1:0".to_string();
        let [kafka, admin, native] = self
            .addresses
            .clone()
            .unwrap_or_else(|| [ephemeral(), ephemeral(), ephemeral()]);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .args([
                "--kafka-listen",
                &kafka,
                "--admin-listen",
                &admin,
                "--native-listen",
                &native,
            ])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(self.test_defaults())
            .args(&self.extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sluice");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(
            line.starts_with("sluice ready "),
            "unexpected first line: {line:?}"
        );
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
                .to_string()
        };
        self.kafka = field("kafka");
        self.native = field("native");
        self.admin = field("admin");
        self.child = Some(child);
    }

    /// Settings tests want unless they set them: groups rebalance at once instead of waiting
    /// `group.initial.rebalance.delay.ms` (3 s) for more members, as in Kafka's own tests.
    fn test_defaults(&self) -> Vec<&'static str> {
        const DELAY: &str = "--group.initial.rebalance.delay.ms";
        if self.extra.iter().any(|f| f == DELAY) {
            Vec::new()
        } else {
            vec![DELAY, "0"]
        }
    }

    /// SIGKILL: no flush, no checkpoint.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY-free: kill(1) from the shell keeps unsafe code out of the tests.
            Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .unwrap();
            let status = child.wait().unwrap();
            assert!(status.success(), "broker exited with {status}");
        }
    }

    pub fn restart(&mut self) {
        self.launch();
    }

    /// Restarts on the addresses the broker had (the ports it was given when it started), so
    /// clients that hold them reconnect to the same place.
    pub fn restart_on_same_addresses(&mut self) {
        self.addresses = Some([self.kafka.clone(), self.admin.clone(), self.native.clone()]);
        self.launch();
    }

    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.kafka)
            .set("message.timeout.ms", "10000");
        config
    }

    pub fn admin_client(&self) -> AdminClient<DefaultClientContext> {
        self.client_config().create().unwrap()
    }

    pub async fn create_topic(&self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        for (k, v) in configs {
            topic = topic.set(k, v);
        }
        let results = self
            .admin_client()
            .create_topics([&topic], &AdminOptions::new())
            .await
            .unwrap();
        results[0].as_ref().unwrap();
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Sends one Kafka request on a fresh connection and decodes the answer, for APIs rdkafka does
/// not expose: `[length | request header | body]` out, `[length | response header | body]` in.
pub fn send_request<Req, Resp>(
    addr: &str,
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    req: &Req,
) -> Resp
where
    Req: kafka_protocol::protocol::Encodable + kafka_protocol::protocol::HeaderVersion,
    Resp: kafka_protocol::protocol::Decodable,
{
    use kafka_protocol::messages::{RequestHeader, ResponseHeader};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use std::io::{Read, Write};

    const CORRELATION_ID: i32 = 4242;
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(CORRELATION_ID)
        .with_client_id(Some(StrBytes::from_static_str("sluice-tests")));
    let mut frame = bytes::BytesMut::new();
    header
        .encode(&mut frame, Req::header_version(version))
        .unwrap();
    req.encode(&mut frame, version).unwrap();

    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(&i32::try_from(frame.len()).unwrap().to_be_bytes())
        .unwrap();
    stream.write_all(&frame).unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut answer = vec![0u8; usize::try_from(i32::from_be_bytes(length)).unwrap()];
    stream.read_exact(&mut answer).unwrap();

    let mut answer = bytes::Bytes::from(answer);
    let response_header =
        ResponseHeader::decode(&mut answer, api_key.response_header_version(version)).unwrap();
    assert_eq!(response_header.correlation_id, CORRELATION_ID);
    let response = Resp::decode(&mut answer, version).unwrap();
    assert!(
        answer.is_empty(),
        "{} bytes left after the {api_key:?} v{version} response",
        answer.len()
    );
    response
}

/// A librdkafka producer on `broker` with `extra` settings over the defaults.
pub fn producer(broker: &TestBroker, extra: &[(&str, &str)]) -> rdkafka::producer::FutureProducer {
    let mut config = broker.client_config();
    config.set("linger.ms", "5");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().unwrap()
}

/// A consumer assigned to one partition from `offset` (no group membership).
pub fn assigned_consumer(
    broker: &TestBroker,
    topic: &str,
    partition: i32,
    offset: rdkafka::Offset,
) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = broker
        .client_config()
        .set("group.id", "unused-assign-only")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, offset).unwrap();
    consumer.assign(&tpl).unwrap();
    consumer
}

/// Polls until `count` messages arrived, failing after TIMEOUT.
pub fn poll_messages(
    consumer: &rdkafka::consumer::BaseConsumer,
    count: usize,
) -> Vec<rdkafka::message::OwnedMessage> {
    use rdkafka::error::KafkaError;
    let deadline = std::time::Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    while out.len() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {count} messages arrived",
            out.len()
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(m.detach()),
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => panic!("consume error: {e}"),
        }
    }
    out
}
