//! Broker configuration: every setting is a CLI flag, an environment variable (`SLUICE_...`)
//! and a key of the TOML file given with `--config`; precedence flag > env > file > default.
//!
//! Kafka's names are used wherever Kafka has the setting (`log.retention.ms`,
//! `auto.create.topics.enable`, ...). In TOML they may be written quoted
//! (`"log.retention.ms" = 1000`) or as dotted keys (`log.retention.ms = 1000`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;
use storage::BackendChoice;

/// `sluice serve` flags. Every field is optional here so that a flag given on the command line
/// (or through its environment variable) can be told apart from one left to the file/default.
#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// TOML configuration file (see config/sluice.toml).
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where partition logs and metadata live.
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Kafka listener, HOST:PORT (port 0 picks a free port).
    #[arg(long, env = "SLUICE_KAFKA_LISTEN")]
    pub kafka_listen: Option<SocketAddr>,
    /// Address clients are told to connect to (Kafka's advertised.listeners), HOST:PORT.
    #[arg(long, env = "SLUICE_ADVERTISED_KAFKA")]
    pub advertised_kafka: Option<String>,
    /// Admin HTTP listener (/health, /ready, /v1 JSON API), HOST:PORT.
    #[arg(long, env = "SLUICE_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Native protocol listener (protocol/NATIVE.md), HOST:PORT (port 0 picks a free port).
    #[arg(long, env = "SLUICE_NATIVE_LISTEN")]
    pub native_listen: Option<SocketAddr>,
    /// Largest native frame accepted and sent (bytes), announced in the handshake.
    #[arg(long, env = "SLUICE_NATIVE_MAX_FRAME_BYTES")]
    pub native_max_frame_bytes: Option<u32>,
    /// Subscriptions one native connection may hold at once.
    #[arg(long, env = "SLUICE_NATIVE_MAX_SUBSCRIPTIONS")]
    pub native_max_subscriptions: Option<u32>,
    /// Worker threads, each owning a share of the partitions (default: one per core).
    #[arg(long, env = "SLUICE_SHARDS")]
    pub shards: Option<usize>,
    /// This broker's id (Kafka's node.id).
    #[arg(long = "node-id", env = "SLUICE_NODE_ID")]
    pub node_id: Option<i32>,
    /// Storage I/O backend: auto, io_uring or posix.
    #[arg(long, env = "SLUICE_STORAGE_BACKEND")]
    pub storage_backend: Option<BackendChoice>,
    /// Log lines on stderr: text (human-readable) or json (one object per line). RUST_LOG
    /// filters either way.
    #[arg(long, env = "SLUICE_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    #[arg(
        long = "auto.create.topics.enable",
        env = "SLUICE_AUTO_CREATE_TOPICS_ENABLE"
    )]
    pub auto_create_topics_enable: Option<bool>,
    #[arg(long = "num.partitions", env = "SLUICE_NUM_PARTITIONS")]
    pub num_partitions: Option<i32>,
    #[arg(
        long = "default.replication.factor",
        env = "SLUICE_DEFAULT_REPLICATION_FACTOR"
    )]
    pub default_replication_factor: Option<i16>,
    #[arg(long = "log.retention.ms", env = "SLUICE_LOG_RETENTION_MS")]
    pub log_retention_ms: Option<i64>,
    #[arg(long = "log.retention.bytes", env = "SLUICE_LOG_RETENTION_BYTES")]
    pub log_retention_bytes: Option<i64>,
    #[arg(long = "log.segment.bytes", env = "SLUICE_LOG_SEGMENT_BYTES")]
    pub log_segment_bytes: Option<i64>,
    #[arg(long = "log.roll.ms", env = "SLUICE_LOG_ROLL_MS")]
    pub log_roll_ms: Option<i64>,
    #[arg(
        long = "log.flush.interval.messages",
        env = "SLUICE_LOG_FLUSH_INTERVAL_MESSAGES"
    )]
    pub log_flush_interval_messages: Option<i64>,
    #[arg(long = "log.flush.interval.ms", env = "SLUICE_LOG_FLUSH_INTERVAL_MS")]
    pub log_flush_interval_ms: Option<i64>,
    #[arg(
        long = "log.message.timestamp.type",
        env = "SLUICE_LOG_MESSAGE_TIMESTAMP_TYPE"
    )]
    pub log_message_timestamp_type: Option<String>,
    #[arg(long = "message.max.bytes", env = "SLUICE_MESSAGE_MAX_BYTES")]
    pub message_max_bytes: Option<i32>,
    #[arg(
        long = "socket.request.max.bytes",
        env = "SLUICE_SOCKET_REQUEST_MAX_BYTES"
    )]
    pub socket_request_max_bytes: Option<i32>,
    #[arg(
        long = "connections.max.idle.ms",
        env = "SLUICE_CONNECTIONS_MAX_IDLE_MS"
    )]
    pub connections_max_idle_ms: Option<i64>,
    /// Bytes of requests the broker holds in memory at once, across all connections; readers
    /// wait (backpressure) when it is used up.
    #[arg(
        long = "queued.max.request.bytes",
        env = "SLUICE_QUEUED_MAX_REQUEST_BYTES"
    )]
    pub queued_max_request_bytes: Option<i64>,
    /// Bytes of recent batches each partition keeps in memory for consumers.
    #[arg(long = "log.cache.bytes", env = "SLUICE_LOG_CACHE_BYTES")]
    pub log_cache_bytes: Option<i64>,
    /// Bytes all partitions' caches may hold together past their own `log.cache.bytes`, shared
    /// by all shards (default: an eighth of the memory, at most 1 GiB; 0: each cache keeps to
    /// its own).
    #[arg(long = "log.cache.total.bytes", env = "SLUICE_LOG_CACHE_TOTAL_BYTES")]
    pub log_cache_total_bytes: Option<i64>,
    /// Classic groups: how long the first rebalance of an empty group waits for more members
    /// (ms), so consumers started together land in one generation.
    #[arg(
        long = "group.initial.rebalance.delay.ms",
        env = "SLUICE_GROUP_INITIAL_REBALANCE_DELAY_MS"
    )]
    pub group_initial_rebalance_delay_ms: Option<i64>,
    /// KIP-848 groups: how often members heartbeat (ms).
    #[arg(
        long = "group.consumer.heartbeat.interval.ms",
        env = "SLUICE_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS"
    )]
    pub group_consumer_heartbeat_interval_ms: Option<i64>,
    /// KIP-848 groups: a member silent this long (ms) is removed.
    #[arg(
        long = "group.consumer.session.timeout.ms",
        env = "SLUICE_GROUP_CONSUMER_SESSION_TIMEOUT_MS"
    )]
    pub group_consumer_session_timeout_ms: Option<i64>,
    /// KIP-848 groups: server-side assignors, the first being the default (uniform, range).
    #[arg(
        long = "group.consumer.assignors",
        env = "SLUICE_GROUP_CONSUMER_ASSIGNORS"
    )]
    pub group_consumer_assignors: Option<String>,
    /// Committed offsets of a group without members expire this long (minutes) after their
    /// commit.
    #[arg(
        long = "offsets.retention.minutes",
        env = "SLUICE_OFFSETS_RETENTION_MINUTES"
    )]
    pub offsets_retention_minutes: Option<i64>,
    /// Idempotent producers silent this long (ms) are forgotten by the partitions.
    #[arg(
        long = "producer.id.expiration.ms",
        env = "SLUICE_PRODUCER_ID_EXPIRATION_MS"
    )]
    pub producer_id_expiration_ms: Option<i64>,
    /// How often expired offsets are looked for (ms).
    #[arg(
        long = "offsets.retention.check.interval.ms",
        env = "SLUICE_OFFSETS_RETENTION_CHECK_INTERVAL_MS"
    )]
    pub offsets_retention_check_interval_ms: Option<i64>,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (tracing's default format).
    #[default]
    Text,
    /// One JSON object per line, event fields at the top level, for log shippers.
    Json,
}

impl LogFormat {
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format '{other}': use text or json")),
        }
    }
}

/// The TOML file: the same settings, keyed by the flag names.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(rename = "data-dir")]
    data_dir: Option<PathBuf>,
    #[serde(rename = "kafka-listen")]
    kafka_listen: Option<SocketAddr>,
    #[serde(rename = "advertised-kafka")]
    advertised_kafka: Option<String>,
    #[serde(rename = "admin-listen")]
    admin_listen: Option<SocketAddr>,
    #[serde(rename = "native-listen")]
    native_listen: Option<SocketAddr>,
    #[serde(rename = "native-max-frame-bytes")]
    native_max_frame_bytes: Option<u32>,
    #[serde(rename = "native-max-subscriptions")]
    native_max_subscriptions: Option<u32>,
    shards: Option<usize>,
    #[serde(rename = "node-id")]
    node_id: Option<i32>,
    #[serde(rename = "storage-backend")]
    storage_backend: Option<String>,
    #[serde(rename = "log-format")]
    log_format: Option<String>,
    #[serde(rename = "auto.create.topics.enable")]
    auto_create_topics_enable: Option<bool>,
    #[serde(rename = "num.partitions")]
    num_partitions: Option<i32>,
    #[serde(rename = "default.replication.factor")]
    default_replication_factor: Option<i16>,
    #[serde(rename = "log.retention.ms")]
    log_retention_ms: Option<i64>,
    #[serde(rename = "log.retention.bytes")]
    log_retention_bytes: Option<i64>,
    #[serde(rename = "log.segment.bytes")]
    log_segment_bytes: Option<i64>,
    #[serde(rename = "log.roll.ms")]
    log_roll_ms: Option<i64>,
    #[serde(rename = "log.flush.interval.messages")]
    log_flush_interval_messages: Option<i64>,
    #[serde(rename = "log.flush.interval.ms")]
    log_flush_interval_ms: Option<i64>,
    #[serde(rename = "log.message.timestamp.type")]
    log_message_timestamp_type: Option<String>,
    #[serde(rename = "message.max.bytes")]
    message_max_bytes: Option<i32>,
    #[serde(rename = "socket.request.max.bytes")]
    socket_request_max_bytes: Option<i32>,
    #[serde(rename = "connections.max.idle.ms")]
    connections_max_idle_ms: Option<i64>,
    #[serde(rename = "queued.max.request.bytes")]
    queued_max_request_bytes: Option<i64>,
    #[serde(rename = "log.cache.bytes")]
    log_cache_bytes: Option<i64>,
    #[serde(rename = "log.cache.total.bytes")]
    log_cache_total_bytes: Option<i64>,
    #[serde(rename = "group.initial.rebalance.delay.ms")]
    group_initial_rebalance_delay_ms: Option<i64>,
    #[serde(rename = "group.consumer.heartbeat.interval.ms")]
    group_consumer_heartbeat_interval_ms: Option<i64>,
    #[serde(rename = "group.consumer.session.timeout.ms")]
    group_consumer_session_timeout_ms: Option<i64>,
    #[serde(rename = "group.consumer.assignors")]
    group_consumer_assignors: Option<String>,
    #[serde(rename = "offsets.retention.minutes")]
    offsets_retention_minutes: Option<i64>,
    #[serde(rename = "offsets.retention.check.interval.ms")]
    offsets_retention_check_interval_ms: Option<i64>,
    #[serde(rename = "producer.id.expiration.ms")]
    producer_id_expiration_ms: Option<i64>,
}

/// The broker's effective configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    pub kafka_listen: SocketAddr,
    pub advertised_kafka: Option<String>,
    pub admin_listen: SocketAddr,
    pub native: NativeConfig,
    pub shards: usize,
    pub node_id: i32,
    pub storage_backend: BackendChoice,
    pub log_format: LogFormat,
    pub defaults: TopicDefaults,
    pub socket_request_max_bytes: usize,
    pub connections_max_idle_ms: u64,
    pub queued_max_request_bytes: usize,
    /// The tail caches' shared budget, broker-wide (one for all shards).
    pub log_cache_total_bytes: usize,
    pub groups: GroupConfig,
    pub producer_id_expiration_ms: i64,
}

/// The native protocol listener and its limits (protocol/NATIVE.md, "Limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeConfig {
    pub listen: SocketAddr,
    pub max_frame_bytes: u32,
    pub max_subscriptions: u32,
}

impl NativeConfig {
    /// Smallest frame limit accepted: room for a default-sized batch and its framing.
    pub const MAX_FRAME_BYTES_MIN: u32 = 64 * 1024;
}

/// Group coordinator settings (Kafka's names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    pub initial_rebalance_delay_ms: i64,
    pub consumer_heartbeat_interval_ms: i64,
    pub consumer_session_timeout_ms: i64,
    /// Server-side assignors offered to KIP-848 groups; the first is the default.
    pub consumer_assignors: Vec<String>,
    pub offsets_retention_minutes: i64,
    pub offsets_retention_check_interval_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            consumer_heartbeat_interval_ms: 5000,
            consumer_session_timeout_ms: 45_000,
            consumer_assignors: vec!["uniform".into(), "range".into()],
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
        }
    }
}

/// Broker-wide defaults for topic settings (Kafka's `log.*` and friends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDefaults {
    pub auto_create_topics_enable: bool,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub log_retention_ms: i64,
    pub log_retention_bytes: i64,
    pub log_segment_bytes: i64,
    pub log_roll_ms: i64,
    pub log_flush_interval_messages: i64,
    pub log_flush_interval_ms: i64,
    pub log_message_timestamp_type: String,
    pub message_max_bytes: i32,
    pub log_cache_bytes: i64,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            auto_create_topics_enable: true,
            num_partitions: 1,
            default_replication_factor: 1,
            log_retention_ms: 7 * 24 * 60 * 60 * 1000,
            log_retention_bytes: -1,
            log_segment_bytes: 1024 * 1024 * 1024,
            log_roll_ms: 7 * 24 * 60 * 60 * 1000,
            // Unlike Kafka (which leaves durability to replication), an acknowledged write is on
            // disk by default: flush after every message, with group commit.
            log_flush_interval_messages: 1,
            log_flush_interval_ms: i64::MAX,
            log_message_timestamp_type: "CreateTime".into(),
            message_max_bytes: 1_048_588,
            log_cache_bytes: 32 * 1024 * 1024,
        }
    }
}

/// The default shared budget of the tail caches: an eighth of the memory the broker may use
/// (the machine's, or its container's limit), at most 1 GiB. Recent data then stays in memory
/// for consumers that fall behind by up to that much, as Kafka's page cache would keep it;
/// filling it costs first-touch page faults once after start, so it is capped (on the VM
/// measured, an eighth of 24 GiB grown during a produce run halved its throughput;
/// benches/RESULTS.md). Without a memory figure: no shared budget.
fn default_cache_total_bytes() -> u64 {
    const CAP: u64 = 1 << 30;
    crate::memory::available_bytes().map_or(0, |bytes| (bytes / 8).min(CAP))
}

macro_rules! pick {
    ($cli:expr, $file:expr, $default:expr) => {
        $cli.clone().or($file).unwrap_or($default)
    };
}

impl BrokerConfig {
    /// Builds the effective configuration from flags/env and the optional file.
    pub fn load(args: &ServeArgs) -> Result<Self, String> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let d = TopicDefaults::default();
        let g = GroupConfig::default();
        // Where a value read from the file came from, for its error message.
        let in_file = |key: &str| match &args.config {
            Some(path) => format!("{}: {key}", path.display()),
            None => key.to_owned(),
        };
        let backend = match (&args.storage_backend, &file.storage_backend) {
            (Some(b), _) => *b,
            (None, Some(s)) => s
                .parse()
                .map_err(|e| format!("{}: {e}", in_file("storage-backend")))?,
            (None, None) => BackendChoice::Auto,
        };
        let log_format = match (&args.log_format, &file.log_format) {
            (Some(f), _) => *f,
            (None, Some(s)) => s
                .parse()
                .map_err(|e| format!("{}: {e}", in_file("log-format")))?,
            (None, None) => LogFormat::default(),
        };
        let shards_default = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let config = BrokerConfig {
            data_dir: pick!(args.data_dir, file.data_dir, PathBuf::from("./sluice-data")),
            kafka_listen: pick!(
                args.kafka_listen,
                file.kafka_listen,
                socket("127.0.0.1:9092")
            ),
            advertised_kafka: args.advertised_kafka.clone().or(file.advertised_kafka),
            admin_listen: pick!(
                args.admin_listen,
                file.admin_listen,
                socket("127.0.0.1:9644")
            ),
            native: NativeConfig {
                listen: pick!(
                    args.native_listen,
                    file.native_listen,
                    socket("127.0.0.1:9192")
                ),
                max_frame_bytes: pick!(
                    args.native_max_frame_bytes,
                    file.native_max_frame_bytes,
                    16 * 1024 * 1024
                )
                .clamp(
                    NativeConfig::MAX_FRAME_BYTES_MIN,
                    protocol::native::limits::FRAME_BYTES_MAX,
                ),
                max_subscriptions: pick!(
                    args.native_max_subscriptions,
                    file.native_max_subscriptions,
                    1000
                )
                .max(1),
            },
            shards: pick!(args.shards, file.shards, shards_default),
            node_id: pick!(args.node_id, file.node_id, 1),
            storage_backend: backend,
            log_format,
            defaults: TopicDefaults {
                auto_create_topics_enable: pick!(
                    args.auto_create_topics_enable,
                    file.auto_create_topics_enable,
                    d.auto_create_topics_enable
                ),
                num_partitions: pick!(args.num_partitions, file.num_partitions, d.num_partitions),
                default_replication_factor: pick!(
                    args.default_replication_factor,
                    file.default_replication_factor,
                    d.default_replication_factor
                ),
                log_retention_ms: pick!(
                    args.log_retention_ms,
                    file.log_retention_ms,
                    d.log_retention_ms
                ),
                log_retention_bytes: pick!(
                    args.log_retention_bytes,
                    file.log_retention_bytes,
                    d.log_retention_bytes
                ),
                log_segment_bytes: pick!(
                    args.log_segment_bytes,
                    file.log_segment_bytes,
                    d.log_segment_bytes
                ),
                log_roll_ms: pick!(args.log_roll_ms, file.log_roll_ms, d.log_roll_ms),
                log_flush_interval_messages: pick!(
                    args.log_flush_interval_messages,
                    file.log_flush_interval_messages,
                    d.log_flush_interval_messages
                ),
                log_flush_interval_ms: pick!(
                    args.log_flush_interval_ms,
                    file.log_flush_interval_ms,
                    d.log_flush_interval_ms
                ),
                log_message_timestamp_type: pick!(
                    args.log_message_timestamp_type,
                    file.log_message_timestamp_type,
                    d.log_message_timestamp_type
                ),
                message_max_bytes: pick!(
                    args.message_max_bytes,
                    file.message_max_bytes,
                    d.message_max_bytes
                ),
                log_cache_bytes: pick!(
                    args.log_cache_bytes,
                    file.log_cache_bytes,
                    d.log_cache_bytes
                ),
            },
            socket_request_max_bytes: pick!(
                args.socket_request_max_bytes,
                file.socket_request_max_bytes,
                104_857_600
            )
            .max(0) as usize,
            queued_max_request_bytes: pick!(
                args.queued_max_request_bytes,
                file.queued_max_request_bytes,
                512 * 1024 * 1024
            )
            .max(0) as usize,
            log_cache_total_bytes: pick!(
                args.log_cache_total_bytes,
                file.log_cache_total_bytes,
                default_cache_total_bytes() as i64
            )
            .max(0) as usize,
            connections_max_idle_ms: pick!(
                args.connections_max_idle_ms,
                file.connections_max_idle_ms,
                600_000
            )
            .max(0) as u64,
            groups: GroupConfig {
                initial_rebalance_delay_ms: pick!(
                    args.group_initial_rebalance_delay_ms,
                    file.group_initial_rebalance_delay_ms,
                    g.initial_rebalance_delay_ms
                ),
                consumer_heartbeat_interval_ms: pick!(
                    args.group_consumer_heartbeat_interval_ms,
                    file.group_consumer_heartbeat_interval_ms,
                    g.consumer_heartbeat_interval_ms
                ),
                consumer_session_timeout_ms: pick!(
                    args.group_consumer_session_timeout_ms,
                    file.group_consumer_session_timeout_ms,
                    g.consumer_session_timeout_ms
                ),
                consumer_assignors: match args
                    .group_consumer_assignors
                    .clone()
                    .or(file.group_consumer_assignors)
                {
                    Some(list) => list
                        .split(',')
                        .map(|a| a.trim().to_owned())
                        .filter(|a| !a.is_empty())
                        .collect(),
                    None => g.consumer_assignors,
                },
                offsets_retention_minutes: pick!(
                    args.offsets_retention_minutes,
                    file.offsets_retention_minutes,
                    g.offsets_retention_minutes
                ),
                offsets_retention_check_interval_ms: pick!(
                    args.offsets_retention_check_interval_ms,
                    file.offsets_retention_check_interval_ms,
                    g.offsets_retention_check_interval_ms
                ),
            },
            producer_id_expiration_ms: pick!(
                args.producer_id_expiration_ms,
                file.producer_id_expiration_ms,
                86_400_000
            ),
        };
        config.validate().map_err(|e| match &args.config {
            Some(path) => format!(
                "{e} (settings from flags, environment and {})",
                path.display()
            ),
            None => e,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let d = &self.defaults;
        if self.shards == 0 || self.shards > 1024 {
            return Err(format!(
                "shards must be between 1 and 1024, got {}",
                self.shards
            ));
        }
        if d.num_partitions < 1 {
            return Err(format!(
                "num.partitions must be at least 1, got {}",
                d.num_partitions
            ));
        }
        if d.default_replication_factor != 1 {
            return Err("default.replication.factor must be 1 on a single-node broker".into());
        }
        if self.socket_request_max_bytes < 1024 {
            return Err("socket.request.max.bytes must be at least 1024".into());
        }
        if self.queued_max_request_bytes < self.socket_request_max_bytes {
            return Err(format!(
                "queued.max.request.bytes ({}) must be at least socket.request.max.bytes ({})",
                self.queued_max_request_bytes, self.socket_request_max_bytes
            ));
        }
        // A native frame is reserved from the same budget before it is read.
        if self.queued_max_request_bytes < self.native.max_frame_bytes as usize {
            return Err(format!(
                "queued.max.request.bytes ({}) must be at least native-max-frame-bytes ({})",
                self.queued_max_request_bytes, self.native.max_frame_bytes
            ));
        }
        let g = &self.groups;
        if g.initial_rebalance_delay_ms < 0 {
            return Err("group.initial.rebalance.delay.ms must not be negative".into());
        }
        if g.consumer_heartbeat_interval_ms < 1
            || g.consumer_session_timeout_ms <= g.consumer_heartbeat_interval_ms
        {
            return Err(format!(
                "group.consumer.session.timeout.ms ({}) must be larger than \
                 group.consumer.heartbeat.interval.ms ({}), which must be positive",
                g.consumer_session_timeout_ms, g.consumer_heartbeat_interval_ms
            ));
        }
        if g.consumer_assignors.is_empty() {
            return Err("group.consumer.assignors must name at least one assignor".into());
        }
        for name in &g.consumer_assignors {
            if !crate::group::assignor::KNOWN.contains(&name.as_str()) {
                return Err(format!(
                    "group.consumer.assignors: unknown assignor {name:?} (known: {})",
                    crate::group::assignor::KNOWN.join(", ")
                ));
            }
        }
        if g.offsets_retention_minutes < 1 || g.offsets_retention_check_interval_ms < 1 {
            return Err(
                "offsets.retention.minutes and offsets.retention.check.interval.ms must be positive"
                    .into(),
            );
        }
        if self.producer_id_expiration_ms < 1 {
            return Err("producer.id.expiration.ms must be positive".into());
        }
        if d.message_max_bytes < 0 {
            return Err("message.max.bytes must not be negative".into());
        }
        crate::cluster::topic_config::check_value(
            "segment.bytes",
            &d.log_segment_bytes.to_string(),
        )
        .map_err(|e| format!("log.segment.bytes: {e}"))?;
        crate::cluster::topic_config::check_value(
            "message.timestamp.type",
            &d.log_message_timestamp_type,
        )
        .map_err(|e| format!("log.message.timestamp.type: {e}"))?;
        Ok(())
    }

    /// The host:port clients are told to use: `advertised-kafka` when set; else the bound
    /// address, except that a wildcard bind (0.0.0.0 or ::) advertises this machine's host name,
    /// since clients cannot connect to a wildcard.
    pub fn advertised(&self, bound: SocketAddr) -> (String, i32) {
        if let Some(adv) = &self.advertised_kafka {
            if let Some((host, port)) = adv.rsplit_once(':') {
                if let Ok(port) = port.parse() {
                    return (host.trim_matches(|c| c == '[' || c == ']').to_owned(), port);
                }
            }
        }
        if bound.ip().is_unspecified() {
            let host = std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_owned());
            tracing::warn!(%host, "listening on a wildcard address without --advertised-kafka; advertising the host name");
            return (host, bound.port() as i32);
        }
        (bound.ip().to_string(), bound.port() as i32)
    }
}

impl BrokerConfig {
    /// Every setting and its effective value, keyed as in the TOML file, in the order of
    /// config/sluice.toml. `None`: not set (the value is derived at start-up).
    pub fn entries(&self) -> Vec<(&'static str, Option<toml::Value>)> {
        use toml::Value;
        let int = |n: i64| Some(Value::Integer(n));
        let size = |n: usize| Some(Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
        let text = |s: &str| Some(Value::String(s.to_owned()));
        let d = &self.defaults;
        let g = &self.groups;
        vec![
            ("data-dir", text(&self.data_dir.display().to_string())),
            ("kafka-listen", text(&self.kafka_listen.to_string())),
            (
                "advertised-kafka",
                self.advertised_kafka.as_deref().and_then(text),
            ),
            ("admin-listen", text(&self.admin_listen.to_string())),
            ("native-listen", text(&self.native.listen.to_string())),
            (
                "native-max-frame-bytes",
                int(self.native.max_frame_bytes.into()),
            ),
            (
                "native-max-subscriptions",
                int(self.native.max_subscriptions.into()),
            ),
            ("shards", size(self.shards)),
            ("node-id", int(self.node_id.into())),
            (
                "storage-backend",
                text(match self.storage_backend {
                    BackendChoice::Auto => "auto",
                    BackendChoice::IoUring => "io_uring",
                    BackendChoice::Posix => "posix",
                }),
            ),
            ("log-format", text(self.log_format.name())),
            (
                "auto.create.topics.enable",
                Some(Value::Boolean(d.auto_create_topics_enable)),
            ),
            ("num.partitions", int(d.num_partitions.into())),
            (
                "default.replication.factor",
                int(d.default_replication_factor.into()),
            ),
            ("log.retention.ms", int(d.log_retention_ms)),
            ("log.retention.bytes", int(d.log_retention_bytes)),
            ("log.segment.bytes", int(d.log_segment_bytes)),
            ("log.roll.ms", int(d.log_roll_ms)),
            (
                "log.flush.interval.messages",
                int(d.log_flush_interval_messages),
            ),
            ("log.flush.interval.ms", int(d.log_flush_interval_ms)),
            (
                "log.message.timestamp.type",
                text(&d.log_message_timestamp_type),
            ),
            ("message.max.bytes", int(d.message_max_bytes.into())),
            ("log.cache.bytes", int(d.log_cache_bytes)),
            ("log.cache.total.bytes", size(self.log_cache_total_bytes)),
            (
                "group.initial.rebalance.delay.ms",
                int(g.initial_rebalance_delay_ms),
            ),
            (
                "group.consumer.heartbeat.interval.ms",
                int(g.consumer_heartbeat_interval_ms),
            ),
            (
                "group.consumer.session.timeout.ms",
                int(g.consumer_session_timeout_ms),
            ),
            (
                "group.consumer.assignors",
                text(&g.consumer_assignors.join(",")),
            ),
            (
                "offsets.retention.minutes",
                int(g.offsets_retention_minutes),
            ),
            (
                "offsets.retention.check.interval.ms",
                int(g.offsets_retention_check_interval_ms),
            ),
            (
                "producer.id.expiration.ms",
                int(self.producer_id_expiration_ms),
            ),
            (
                "socket.request.max.bytes",
                size(self.socket_request_max_bytes),
            ),
            (
                "queued.max.request.bytes",
                size(self.queued_max_request_bytes),
            ),
            (
                "connections.max.idle.ms",
                int(i64::try_from(self.connections_max_idle_ms).unwrap_or(i64::MAX)),
            ),
        ]
    }

    /// The effective configuration as a TOML file that loads back to the same settings
    /// (`sluice config check` prints it). Unset keys are listed as comments.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for (key, value) in self.entries() {
            let name = if key.contains('.') {
                format!("\"{key}\"")
            } else {
                key.to_owned()
            };
            match value {
                Some(value) => out.push_str(&format!("{name} = {value}\n")),
                None => out.push_str(&format!("# {name} is not set\n")),
            }
        }
        out
    }
}

fn socket(s: &str) -> SocketAddr {
    match s.parse() {
        Ok(addr) => addr,
        Err(_) => unreachable!("built-in default address {s} parses"),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // Dotted bare keys (`log.retention.ms = 1`) arrive as nested tables: flatten them back to
    // Kafka's names.
    let mut flat = BTreeMap::new();
    flatten("", toml::Value::Table(table), &mut flat);
    let flat_table: toml::Table = flat.into_iter().collect();
    FileConfig::deserialize(toml::Value::Table(flat_table)).map_err(|e| {
        // toml's message spans lines ("...\nin `key`\n"): keep it to one.
        let message = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        format!(
            "{}: {message} (see config/sluice.toml for every key)",
            path.display()
        )
    })
}

fn flatten(prefix: &str, value: toml::Value, out: &mut BTreeMap<String, toml::Value>) {
    match value {
        toml::Value::Table(table) => {
            for (key, inner) in table {
                let name = if prefix.is_empty() {
                    key
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, inner, out);
            }
        }
        other => {
            out.insert(prefix.to_owned(), other);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_flag_over_file_over_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(
            &path,
            "num.partitions = 3\n\"log.retention.ms\" = 5000\ndata-dir = \"/x\"\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            num_partitions: Some(7),
            ..ServeArgs::default()
        };
        let config = BrokerConfig::load(&args).unwrap();
        assert_eq!(config.defaults.num_partitions, 7, "flag wins");
        assert_eq!(config.defaults.log_retention_ms, 5000, "file beats default");
        assert_eq!(config.data_dir, PathBuf::from("/x"));
        assert!(config.defaults.auto_create_topics_enable, "Kafka's default");
    }

    /// `config/sluice.toml` documents every key at its default: loading it must change nothing.
    #[test]
    fn example_file_lists_the_defaults() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/sluice.toml");
        let from_file = BrokerConfig::load(&ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        })
        .unwrap();
        let defaults = BrokerConfig::load(&ServeArgs::default()).unwrap();
        assert_eq!(from_file.defaults, defaults.defaults);
        assert_eq!(from_file.data_dir, defaults.data_dir);
        assert_eq!(from_file.kafka_listen, defaults.kafka_listen);
        assert_eq!(from_file.admin_listen, defaults.admin_listen);
        assert_eq!(from_file.native, defaults.native);
        assert_eq!(
            from_file.socket_request_max_bytes,
            defaults.socket_request_max_bytes
        );
        assert_eq!(
            from_file.queued_max_request_bytes,
            defaults.queued_max_request_bytes
        );
        assert_eq!(
            from_file.connections_max_idle_ms,
            defaults.connections_max_idle_ms
        );
        assert_eq!(from_file.groups, defaults.groups);
        assert_eq!(
            from_file.producer_id_expiration_ms,
            defaults.producer_id_expiration_ms
        );
        assert_eq!(from_file.log_format, defaults.log_format);
        assert_eq!(from_file.storage_backend, defaults.storage_backend);
        assert_eq!(from_file.node_id, defaults.node_id);
    }

    #[test]
    fn log_format_comes_from_flag_file_or_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, "log-format = \"json\"\n").unwrap();
        let load = |config: Option<PathBuf>, flag: Option<LogFormat>| {
            BrokerConfig::load(&ServeArgs {
                config,
                log_format: flag,
                ..ServeArgs::default()
            })
            .unwrap()
            .log_format
        };
        assert_eq!(load(None, None), LogFormat::Text);
        assert_eq!(load(Some(path.clone()), None), LogFormat::Json);
        assert_eq!(load(Some(path), Some(LogFormat::Text)), LogFormat::Text);

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "log-format = \"xml\"\n").unwrap();
        let err = BrokerConfig::load(&ServeArgs {
            config: Some(bad),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(
            err.contains("log-format") && err.contains("bad.toml"),
            "{err}"
        );
    }

    #[test]
    fn the_request_budget_holds_a_native_frame() {
        let err = BrokerConfig::load(&ServeArgs {
            queued_max_request_bytes: Some(200 << 20),
            native_max_frame_bytes: Some(300 << 20),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(err.contains("native-max-frame-bytes"), "{err}");
    }

    #[test]
    fn values_of_the_wrong_type_name_their_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("typo.toml");
        std::fs::write(
            &path,
            "num.partitions = 2\n\"log.retention.ms\" = \"a week\"\n",
        )
        .unwrap();
        let err = BrokerConfig::load(&ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(
            err.contains("log.retention.ms") && err.contains("typo.toml"),
            "{err}"
        );
        assert!(!err.contains("num.partitions"), "{err}");
    }

    /// What `sluice config check` prints loads back to the very same configuration, so every
    /// setting is in it (each one here differs from its default).
    #[test]
    fn printed_configuration_loads_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let args = ServeArgs {
            data_dir: Some("/var/lib/sluice".into()),
            kafka_listen: Some(socket("0.0.0.0:19092")),
            advertised_kafka: Some("broker.example:19092".into()),
            admin_listen: Some(socket("0.0.0.0:19644")),
            native_listen: Some(socket("0.0.0.0:19192")),
            native_max_frame_bytes: Some(1 << 20),
            native_max_subscriptions: Some(10),
            shards: Some(3),
            node_id: Some(7),
            storage_backend: Some(BackendChoice::Posix),
            log_format: Some(LogFormat::Json),
            auto_create_topics_enable: Some(false),
            num_partitions: Some(4),
            default_replication_factor: Some(1),
            log_retention_ms: Some(1000),
            log_retention_bytes: Some(1 << 30),
            log_segment_bytes: Some(1 << 24),
            log_roll_ms: Some(2000),
            log_flush_interval_messages: Some(10),
            log_flush_interval_ms: Some(50),
            log_message_timestamp_type: Some("LogAppendTime".into()),
            message_max_bytes: Some(2_000_000),
            socket_request_max_bytes: Some(10_000_000),
            connections_max_idle_ms: Some(1234),
            queued_max_request_bytes: Some(20_000_000),
            log_cache_bytes: Some(1 << 20),
            log_cache_total_bytes: Some(1 << 30),
            group_initial_rebalance_delay_ms: Some(0),
            group_consumer_heartbeat_interval_ms: Some(1000),
            group_consumer_session_timeout_ms: Some(9000),
            group_consumer_assignors: Some("range".into()),
            offsets_retention_minutes: Some(60),
            producer_id_expiration_ms: Some(5000),
            offsets_retention_check_interval_ms: Some(7000),
            config: None,
        };
        let config = BrokerConfig::load(&args).unwrap();
        let path = dir.path().join("effective.toml");
        std::fs::write(&path, config.to_toml()).unwrap();
        let reloaded = BrokerConfig::load(&ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        })
        .unwrap();
        assert_eq!(format!("{reloaded:?}"), format!("{config:?}"));
        // And with nothing set, only advertised-kafka is left out.
        let defaults = BrokerConfig::load(&ServeArgs::default()).unwrap().to_toml();
        assert_eq!(defaults.lines().filter(|l| l.starts_with('#')).count(), 1);
        assert!(
            defaults.contains("# advertised-kafka is not set"),
            "{defaults}"
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "log.retention.mss = 1\n").unwrap();
        let err = BrokerConfig::load(&ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        })
        .unwrap_err();
        assert!(
            err.contains("log.retention.mss") && err.contains("bad.toml"),
            "{err}"
        );
    }
}
