//! Prometheus metrics, served as text on the admin port (`GET /metrics`, see `admin.rs`).
//!
//! ```text
//! events, where they happen          state, when scraped (scrape.rs)
//! (metrics facade -> recorder)       (ShardSet::call to every shard, like group/lag.rs)
//!   connection.rs: connections,        partitions: log start/end, high watermark, size
//!     requests, latency                groups: lag per group/topic/partition
//!   handlers::dispatch: error codes    storage backend, readiness, version
//!   produce.rs / fetch.rs: bytes
//!   storage: cache hits, flushes           |
//!          |                               |
//!          +--> PrometheusHandle::render --+--> one text exposition body
//! ```
//!
//! Events are counted through the `metrics` facade into a `metrics-exporter-prometheus`
//! recorder installed by `sluice serve` ([`install`]); without it (unit tests, `inspect-log`)
//! every hook is a no-op. State is never updated on the hot path: it is read from the shards
//! at scrape time, so a deleted topic or group leaves no stale series behind.
//!
//! Cost on the hot path: the handles are registered once per shard thread and kept in
//! thread-locals, with static label values (API names come from the handler table), so
//! counting a request is a few atomic adds and a histogram push, with no allocation. Per-topic
//! byte counters are looked up by `&str` in a per-thread map ([`TOPIC_HANDLES_MAX`] entries).
//!
//! Names follow Prometheus conventions: `sluice_` prefix, `_total` counters, `_seconds`
//! histograms, base units. The README's "Operations" section lists every metric.

mod errors;
pub mod native;
mod scrape;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use errors::ErrorCodes;
pub use scrape::render;

pub const REQUESTS: &str = "sluice_kafka_requests_total";
pub const REQUEST_ERRORS: &str = "sluice_kafka_request_errors_total";
pub const REQUEST_SECONDS: &str = "sluice_kafka_request_duration_seconds";
pub const CONNECTIONS_OPEN: &str = "sluice_kafka_connections_open";
pub const CONNECTIONS_ACCEPTED: &str = "sluice_kafka_connections_accepted_total";
pub const TOPIC_BYTES_IN: &str = "sluice_topic_bytes_in_total";
pub const TOPIC_BYTES_OUT: &str = "sluice_topic_bytes_out_total";

/// Request latency buckets (seconds): sub-millisecond answers up to Fetch long polls (at most
/// 60 s).
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Flush and fdatasync buckets (seconds): NVMe syncs in tens of microseconds to a stalled disk.
const STORAGE_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];
/// Topics whose byte counters one shard keeps handles for; beyond it the map is cleared and
/// refilled (the counters themselves live on in the recorder).
pub const TOPIC_HANDLES_MAX: usize = 10_000;
/// How often recorded histogram samples are folded into their buckets when nobody scrapes.
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder and describes every metric. Called once by
/// `sluice serve`, before the shards start (handles registered before it would be no-ops).
pub fn install() -> Result<(), String> {
    let describe = |e: metrics_exporter_prometheus::BuildError| format!("metrics: {e}");
    let mut builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(REQUEST_SECONDS.into()), REQUEST_BUCKETS)
        .map_err(describe)?;
    for name in [
        storage::metrics::FLUSH_SECONDS,
        storage::metrics::FDATASYNC_SECONDS,
    ] {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(name.into()), STORAGE_BUCKETS)
            .map_err(describe)?;
    }
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| "metrics: a recorder is already installed".to_owned())?;
    let _ = HANDLE.set(handle);
    describe_all();
    native::describe();
    Ok(())
}

/// The installed recorder's handle (`None` before [`install`]).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE.get()
}

/// Folds recorded histogram samples into their buckets, so memory stays bounded between
/// scrapes. Runs on shard 0 beside the admin listener.
pub async fn upkeep_loop() {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    loop {
        tick.tick().await;
        if let Some(handle) = handle() {
            handle.run_upkeep();
        }
    }
}

fn describe_all() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        REQUESTS,
        "Kafka requests received, by API and version (unsupported versions: version=\"unsupported\")."
    );
    describe_counter!(
        REQUEST_ERRORS,
        "Error codes in Kafka responses, by API and error: one per partition, group or resource \
         that failed, as Kafka's ErrorsPerSec counts them."
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Time from a decoded request to its encoded response, by API (Fetch includes its long poll)."
    );
    describe_gauge!(CONNECTIONS_OPEN, "Kafka client connections open now.");
    describe_counter!(CONNECTIONS_ACCEPTED, "Kafka client connections accepted.");
    describe_counter!(
        TOPIC_BYTES_IN,
        Unit::Bytes,
        "Record batch bytes appended by Produce, by topic."
    );
    describe_counter!(
        TOPIC_BYTES_OUT,
        Unit::Bytes,
        "Record batch bytes returned by Fetch, by topic."
    );
    storage::metrics::describe();
}

// ---------------------------------------------------------------------------------------------
// Kafka requests
// ---------------------------------------------------------------------------------------------

/// One API's handles on one shard thread, each registered on first use (so only versions
/// and errors that occurred have series).
struct ApiHandles {
    name: &'static str,
    min_version: i16,
    max_version: i16,
    /// By version; a version outside the served range is counted as "unsupported" (a bounded
    /// label, whatever a client sends).
    requests: HashMap<Option<i16>, Counter>,
    duration: Histogram,
    /// By error code.
    errors: HashMap<i16, Counter>,
}

impl ApiHandles {
    fn new(key: ApiKey) -> ApiHandles {
        let name = api_name(key);
        let (min, max) = crate::kafka::handlers::support(key).map_or((0, -1), |s| (s.min, s.max));
        ApiHandles {
            name,
            min_version: min,
            max_version: max,
            requests: HashMap::new(),
            duration: metrics::histogram!(REQUEST_SECONDS, "api" => name),
            errors: HashMap::new(),
        }
    }

    fn request(&mut self, version: i16) -> &Counter {
        let name = self.name;
        let served = (self.min_version..=self.max_version).contains(&version);
        let version = served.then_some(version);
        self.requests.entry(version).or_insert_with(|| {
            let label = version.map_or_else(|| "unsupported".to_owned(), |v| v.to_string());
            metrics::counter!(REQUESTS, "api" => name, "version" => label)
        })
    }

    fn error(&mut self, code: i16) -> &Counter {
        let name = self.name;
        self.errors.entry(code).or_insert_with(|| {
            metrics::counter!(
                REQUEST_ERRORS,
                "api" => name,
                "error" => error_name(code),
                "code" => code.to_string()
            )
        })
    }
}

thread_local! {
    /// By API key; filled on the first request of each API on this thread.
    static APIS: RefCell<HashMap<i16, ApiHandles>> = RefCell::new(HashMap::new());
}

fn with_api<R>(key: ApiKey, f: impl FnOnce(&mut ApiHandles) -> R) -> R {
    APIS.with(|apis| {
        let mut apis = apis.borrow_mut();
        f(apis
            .entry(key as i16)
            .or_insert_with(|| ApiHandles::new(key)))
    })
}

/// A request was answered (or failed) after `took`.
pub fn request_done(key: ApiKey, version: i16, took: Duration) {
    with_api(key, |api| {
        api.request(version).increment(1);
        api.duration.record(took.as_secs_f64());
    });
}

/// Counts every non-zero error code of a response.
pub fn count_errors<R: ErrorCodes + ?Sized>(key: ApiKey, response: &R) {
    response.error_codes(&mut |code| count_error(key, code));
}

/// Counts one error code answered outside a typed response (e.g. UNSUPPORTED_VERSION in the
/// legacy formats).
pub fn count_error(key: ApiKey, code: i16) {
    if code != 0 {
        with_api(key, |api| api.error(code).increment(1));
    }
}

/// The API's name as Kafka writes it in its request metrics (`Produce`, `ListOffsets`, ...).
fn api_name(key: ApiKey) -> &'static str {
    macro_rules! names {
        ($($api:ident),* $(,)?) => {
            match key {
                $(ApiKey::$api => stringify!($api),)*
                _ => "Other",
            }
        };
    }
    names!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        InitProducerId,
        OffsetForLeaderEpoch,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeConfigs,
        AlterConfigs,
        DescribeLogDirs,
        CreatePartitions,
        DeleteGroups,
        IncrementalAlterConfigs,
        OffsetDelete,
        DescribeCluster,
        DescribeProducers,
        DescribeTransactions,
        ListTransactions,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
    )
}

/// Kafka's name of an error code (`UNKNOWN_TOPIC_OR_PARTITION`), as its clients print it.
fn error_name(code: i16) -> String {
    use kafka_protocol::error::ResponseError;
    match ResponseError::try_from_code(code) {
        None => "NONE".to_owned(),
        Some(ResponseError::Unknown(_)) => "UNKNOWN".to_owned(),
        Some(known) => screaming_snake(&known.to_string()),
    }
}

/// `UnknownTopicOrPartition` -> `UNKNOWN_TOPIC_OR_PARTITION`.
fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

thread_local! {
    static CONNECTIONS: (Gauge, Counter) = (
        metrics::gauge!(CONNECTIONS_OPEN),
        metrics::counter!(CONNECTIONS_ACCEPTED),
    );
}

/// Counts an accepted connection as open until the guard is dropped.
#[derive(Debug)]
#[must_use = "the connection counts as open while the guard lives"]
pub struct OpenConnection(());

/// A connection was accepted.
pub fn connection_opened() -> OpenConnection {
    CONNECTIONS.with(|(open, accepted)| {
        open.increment(1.0);
        accepted.increment(1);
    });
    OpenConnection(())
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        // `try_with`: a task dropped while its thread's locals are torn down must not panic.
        let _ = CONNECTIONS.try_with(|(open, _)| open.decrement(1.0));
    }
}

// ---------------------------------------------------------------------------------------------
// Bytes per topic
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// (bytes in, bytes out) by topic name.
    static TOPICS: RefCell<HashMap<String, (Counter, Counter)>> = RefCell::new(HashMap::new());
}

fn with_topic(topic: &str, f: impl FnOnce(&(Counter, Counter))) {
    TOPICS.with(|topics| {
        let mut topics = topics.borrow_mut();
        if let Some(handles) = topics.get(topic) {
            return f(handles);
        }
        if topics.len() >= TOPIC_HANDLES_MAX {
            topics.clear();
        }
        let handles = (
            metrics::counter!(TOPIC_BYTES_IN, "topic" => topic.to_owned()),
            metrics::counter!(TOPIC_BYTES_OUT, "topic" => topic.to_owned()),
        );
        f(topics.entry(topic.to_owned()).or_insert(handles));
    });
}

/// Produce appended `bytes` of record batches to `topic`.
pub fn bytes_in(topic: &str, bytes: usize) {
    if bytes > 0 {
        with_topic(topic, |(bytes_in, _)| bytes_in.increment(bytes as u64));
    }
}

/// Fetch (or a native subscription) returned `bytes` of record batches of `topic`.
pub fn bytes_out(topic: &str, bytes: usize) {
    if bytes > 0 {
        with_topic(topic, |(_, bytes_out)| bytes_out.increment(bytes as u64));
    }
}

/// Counts the bytes of a Fetch answer per topic (topics named by id from v13 are looked up in
/// `metadata`).
pub fn fetched(
    metadata: &crate::cluster::metadata::MetadataSnapshot,
    out: &crate::kafka::fetch_encoding::FetchOut,
) {
    for topic in &out.topics {
        let bytes: usize = topic
            .partitions
            .iter()
            .flat_map(|p| &p.records)
            .map(|b| b.len())
            .sum();
        if bytes == 0 {
            continue;
        }
        if !topic.name.is_empty() {
            bytes_out(&topic.name, bytes);
        } else if let Some(info) = metadata.topic_by_id(&topic.id) {
            bytes_out(&info.name, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(35), "UNSUPPORTED_VERSION");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(30_000), "UNKNOWN");
    }

    #[test]
    fn every_supported_api_has_a_name() {
        for api in crate::kafka::handlers::SUPPORTED {
            assert_ne!(api_name(api.key), "Other", "{:?}", api.key);
            assert_eq!(api_name(api.key), format!("{:?}", api.key));
        }
    }
}
