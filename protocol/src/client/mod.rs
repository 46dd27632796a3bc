//! An async client for Sluice's native protocol (`NATIVE.md`), on tokio.
//!
//! - [`Client`]: one connection to a broker, reopened on demand with exponential backoff and
//!   jitter; topic administration, metadata, offsets.
//! - [`Producer`]: a record accumulator: `send` encodes each record straight into its
//!   partition's open batch (linger time and batch size), delivery is reported per batch;
//!   compresses batches (gzip, snappy, lz4, zstd), partitions keys with Kafka's murmur2 so a
//!   key lands in the partition a Kafka client would choose, and pipelines produce requests.
//! - [`Consumer`]: a [`Stream`](futures::Stream) of [`ConsumerRecord`]s from subscriptions the
//!   broker pushes, with credit granted back as the application consumes, explicit
//!   [`commit`](Consumer::commit) and automatic commits. It resubscribes from its position
//!   after a connection loss.
//!
//! Errors are [`ClientError`], an enum to match on.
//!
//! Delivery: the native protocol has no producer-id handshake, so the producer is not
//! idempotent. A produce whose answer is lost is retried, which can append its records twice:
//! delivery is **at least once**, and a retried batch can land after a later one (as a Kafka
//! producer with `enable.idempotence=false` and several requests in flight).
//!
//! ```no_run
//! use futures::StreamExt;
//! use protocol::client::{Client, ClientConfig, ConsumerConfig, ProducerConfig, ProducerRecord};
//!
//! # async fn demo() -> Result<(), protocol::client::ClientError> {
//! let client = Client::connect(ClientConfig::new("127.0.0.1:9192")).await?;
//! let producer = client.producer(ProducerConfig::default());
//! let delivery = producer.send(ProducerRecord::new("orders").key("k1").value("hello")).await?;
//! let written = delivery.await?;
//! println!("{}/{} at {}", written.topic, written.partition, written.offset);
//!
//! let mut consumer = client.consumer(ConsumerConfig::default().group("app"));
//! consumer.subscribe("orders").await?;
//! while let Some(record) = consumer.next().await {
//!     let record = record?;
//!     println!("{} {:?}", record.offset, record.value);
//!     consumer.commit().await?;
//! }
//! # Ok(()) }
//! ```

mod backoff;
mod connection;
mod consumer;
mod error;
mod producer;

pub use backoff::Backoff;
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, Start};
pub use error::{code_is_retriable, ClientError};
pub use producer::{DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata};

pub use crate::compression::Compression;
pub use crate::native::{
    Acks, ConfigEntry, DescribeTopicResponse, ErrorCode, Fallback, FetchedOffset, MetadataResponse,
    TopicId, TopicMetadata,
};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connection::Connection;

use crate::native::{
    CommitOffsetsRequest, CreateTopicRequest, CreateTopicResponse, DeleteTopicRequest,
    DescribeTopicRequest, FetchOffsetsRequest, MetadataRequest, OffsetCommitEntry, Ping, Request,
    Response, TopicPartition,
};

/// The broker's native port when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9192";

/// How a [`Client`] connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `HOST:PORT` of the broker's native listener.
    pub addr: String,
    /// Sent in the handshake, for the broker's logs.
    pub client_id: String,
    pub connect_timeout: Duration,
    /// How long a request waits for its answer.
    pub request_timeout: Duration,
    /// First and largest delay between reconnect attempts (exponential, with jitter).
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// How long operations keep reconnecting before they give up (0: a single attempt).
    pub reconnect_timeout: Duration,
    /// The largest frame the client accepts from the broker.
    pub frame_bytes_max: u32,
}

impl ClientConfig {
    pub fn new(addr: impl Into<String>) -> ClientConfig {
        ClientConfig {
            addr: addr.into(),
            client_id: format!("sluice-rust/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(10),
            // Above the producer's default produce_timeout, so acks=all answers in time.
            request_timeout: Duration::from_secs(40),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            reconnect_timeout: Duration::from_secs(30),
            frame_bytes_max: 256 << 20,
        }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig::new(DEFAULT_ADDR)
    }
}

/// What the client knows about a topic: enough to produce to and subscribe to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub id: TopicId,
    pub partitions: u32,
}

/// A topic to create.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    pub name: String,
    /// 0: the broker's `num.partitions`.
    pub partitions: u32,
    /// 0: the broker's default.
    pub replication_factor: u16,
    pub configs: Vec<(String, String)>,
}

/// A handle to a broker; cheap to clone (clones share the connection).
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: ClientConfig,
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    topics: Mutex<HashMap<String, TopicInfo>>,
}

impl Client {
    /// Connects and handshakes once (no retry), so a wrong address fails at once.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        let client = Client::lazy(config);
        client.connection_once().await?;
        Ok(client)
    }

    /// A client that connects on first use.
    pub fn lazy(config: ClientConfig) -> Client {
        Client {
            inner: Arc::new(Inner {
                config,
                connection: tokio::sync::Mutex::new(None),
                topics: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A producer sending through this client's connection.
    pub fn producer(&self, config: ProducerConfig) -> Producer {
        Producer::new(self.clone(), config)
    }

    /// A consumer on this client's connection; add partitions with `subscribe` / `assign`.
    pub fn consumer(&self, config: ConsumerConfig) -> Consumer {
        Consumer::new(self.clone(), config)
    }

    /// The live connection, or a new one (one attempt).
    async fn connection_once(&self) -> Result<Arc<Connection>, ClientError> {
        let mut slot = self.inner.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            if !connection.is_dead() {
                return Ok(connection.clone());
            }
        }
        *slot = None;
        let connection = Connection::open(&self.inner.config).await?;
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// The live connection, reconnecting with backoff for up to `reconnect_timeout`.
    pub(crate) async fn connection(&self) -> Result<Arc<Connection>, ClientError> {
        let config = &self.inner.config;
        let deadline = Instant::now() + config.reconnect_timeout;
        let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
        loop {
            match self.connection_once().await {
                Ok(connection) => return Ok(connection),
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    let delay = backoff.next_delay().min(deadline - Instant::now());
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a request on the current connection, reconnecting first if needed. With
    /// `retry`, a lost connection or timeout is retried (for requests safe to repeat).
    async fn call(&self, request: Request, retry: bool) -> Result<Response, ClientError> {
        let config = &self.inner.config;
        let deadline = Instant::now() + config.reconnect_timeout;
        let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
        loop {
            let connection = self.connection().await?;
            match connection.call(request.clone()).await {
                Err(e @ (ClientError::ConnectionLost(_) | ClientError::Timeout { .. }))
                    if retry && Instant::now() < deadline =>
                {
                    let _ = e;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }

    /// PING: the round-trip time.
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let start = Instant::now();
        match self.call(Request::Ping(Ping { nonce: 7 }), true).await? {
            Response::Ping(Ping { nonce: 7 }) => Ok(start.elapsed()),
            _ => Err(ClientError::Protocol(
                "PING answer does not echo the nonce".into(),
            )),
        }
    }

    /// The broker's node id and limits, from the current connection's handshake.
    pub async fn server_info(&self) -> Result<crate::native::HandshakeResponse, ClientError> {
        Ok(self.connection().await?.handshake.clone())
    }

    /// METADATA for these topics (none: every topic).
    pub async fn metadata(&self, topics: &[&str]) -> Result<MetadataResponse, ClientError> {
        let request = Request::Metadata(MetadataRequest {
            topics: topics.iter().map(|t| t.to_string()).collect(),
        });
        match self.call(request, true).await? {
            Response::Metadata(answer) => {
                let mut cache = self.topics_cache();
                for topic in &answer.topics {
                    if topic.error.is_ok() {
                        cache.insert(topic.name.clone(), topic_info(topic));
                    }
                }
                Ok(answer)
            }
            _ => Err(unexpected("METADATA")),
        }
    }

    fn topics_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, TopicInfo>> {
        self.inner.topics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The topic's id and partition count, from the cache or a METADATA request.
    pub async fn topic(&self, name: &str) -> Result<TopicInfo, ClientError> {
        if let Some(info) = self.topics_cache().get(name) {
            return Ok(info.clone());
        }
        self.refresh_topic(name).await
    }

    /// Forgets the cached topic and asks the broker again (after UNKNOWN_TOPIC_ID and the
    /// like: the topic was deleted, re-created or grew partitions).
    pub async fn refresh_topic(&self, name: &str) -> Result<TopicInfo, ClientError> {
        self.topics_cache().remove(name);
        let answer = self.metadata(&[name]).await?;
        let Some(topic) = answer.topics.iter().find(|t| t.name == name) else {
            return Err(ClientError::UnknownTopic(name.to_owned()));
        };
        match topic.error {
            ErrorCode::NONE => Ok(topic_info(topic)),
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION => {
                Err(ClientError::UnknownTopic(name.to_owned()))
            }
            code => Err(ClientError::broker(code, format!("topic {name:?}"))),
        }
    }

    /// Every topic (internal ones included, marked `internal`).
    pub async fn list_topics(&self) -> Result<Vec<TopicMetadata>, ClientError> {
        Ok(self.metadata(&[]).await?.topics)
    }

    /// CREATE_TOPIC. Not retried (a retry after a lost answer would report
    /// TOPIC_ALREADY_EXISTS for the topic it created).
    pub async fn create_topic(&self, topic: NewTopic) -> Result<CreateTopicResponse, ClientError> {
        let request = Request::CreateTopic(CreateTopicRequest {
            name: topic.name.clone(),
            partitions: topic.partitions,
            replication_factor: topic.replication_factor,
            configs: topic
                .configs
                .into_iter()
                .map(|(name, value)| ConfigEntry { name, value })
                .collect(),
        });
        match self.call(request, false).await? {
            Response::CreateTopic(answer) => {
                self.topics_cache().insert(
                    topic.name.clone(),
                    TopicInfo {
                        name: topic.name,
                        id: answer.topic_id,
                        partitions: answer.partitions,
                    },
                );
                Ok(answer)
            }
            _ => Err(unexpected("CREATE_TOPIC")),
        }
    }

    /// DELETE_TOPIC by name; returns the deleted topic's id.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicId, ClientError> {
        self.topics_cache().remove(name);
        let request = Request::DeleteTopic(DeleteTopicRequest {
            topic_id: [0; 16],
            name: name.to_owned(),
        });
        match self.call(request, false).await? {
            Response::DeleteTopic(answer) => Ok(answer.topic_id),
            _ => Err(unexpected("DELETE_TOPIC")),
        }
    }

    /// DESCRIBE_TOPIC: partitions with offsets, and the configs set on the topic.
    pub async fn describe_topic(&self, name: &str) -> Result<DescribeTopicResponse, ClientError> {
        let request = Request::DescribeTopic(DescribeTopicRequest {
            name: name.to_owned(),
        });
        match self.call(request, true).await? {
            Response::DescribeTopic(answer) => Ok(answer),
            _ => Err(unexpected("DESCRIBE_TOPIC")),
        }
    }

    /// COMMIT_OFFSETS for a group with no active Kafka members (generation -1), as a Kafka
    /// consumer using `assign()` commits. `offsets` are (topic, partition, next offset).
    /// Fails with the first partition error.
    pub async fn commit_offsets(
        &self,
        group_id: &str,
        offsets: &[(TopicId, u32, i64)],
    ) -> Result<(), ClientError> {
        if group_id.is_empty() {
            return Err(ClientError::InvalidArgument("empty group id".into()));
        }
        let request = Request::CommitOffsets(CommitOffsetsRequest {
            group_id: group_id.to_owned(),
            generation_id: -1,
            member_id: String::new(),
            offsets: offsets
                .iter()
                .map(|&(topic_id, partition, offset)| OffsetCommitEntry {
                    topic_id,
                    partition,
                    offset,
                    leader_epoch: -1,
                    metadata: None,
                })
                .collect(),
        });
        // Committing the same offsets twice is harmless: safe to retry.
        match self.call(request, true).await? {
            Response::CommitOffsets(answer) => {
                match answer.partitions.iter().find(|p| !p.error.is_ok()) {
                    Some(failed) => Err(ClientError::broker(
                        failed.error,
                        format!("commit of partition {}", failed.partition),
                    )),
                    None => Ok(()),
                }
            }
            _ => Err(unexpected("COMMIT_OFFSETS")),
        }
    }

    /// FETCH_OFFSETS: the group's committed offsets for these partitions (none: all).
    pub async fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: &[(TopicId, u32)],
    ) -> Result<Vec<FetchedOffset>, ClientError> {
        let request = Request::FetchOffsets(FetchOffsetsRequest {
            group_id: group_id.to_owned(),
            partitions: partitions
                .iter()
                .map(|&(topic_id, partition)| TopicPartition {
                    topic_id,
                    partition,
                })
                .collect(),
        });
        match self.call(request, true).await? {
            Response::FetchOffsets(answer) => Ok(answer.offsets),
            _ => Err(unexpected("FETCH_OFFSETS")),
        }
    }
}

fn topic_info(topic: &TopicMetadata) -> TopicInfo {
    TopicInfo {
        name: topic.name.clone(),
        id: topic.topic_id,
        partitions: topic.partitions.len() as u32,
    }
}

fn unexpected(op: &str) -> ClientError {
    ClientError::Protocol(format!("{op} answered with another op"))
}

/// A topic id as Kafka prints it: the UUID in its 8-4-4-4-12 hex form.
pub fn format_topic_id(id: &TopicId) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
