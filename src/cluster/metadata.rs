//! The metadata log and the snapshot every shard reads.
//!
//! Changes are events (`CreateTopic`, `DeleteTopic`, ...) appended as JSON records to the
//! `__cluster_metadata` log and made durable before they take effect; on start the log is
//! replayed. Readers never lock: the snapshot is an immutable value behind an `ArcSwap`, replaced
//! whole on each change (copy-on-write).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use protocol::records::{decode_records, BatchBuilder, Record};
use serde::{Deserialize, Serialize};
use storage::{Backend, LogConfig, PartitionLog};
use uuid::Uuid;

/// Directory of the metadata log inside the data directory.
pub const METADATA_DIR: &str = "__cluster_metadata-0";

/// Kafka's limit on topic name length.
pub const TOPIC_NAME_MAX: usize = 249;

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub configs: BTreeMap<String, String>,
}

/// Everything the brokers' shards need to know about topics.
#[derive(Debug, Default, Clone)]
pub struct MetadataSnapshot {
    pub topics: BTreeMap<String, Arc<TopicInfo>>,
    pub by_id: HashMap<Uuid, String>,
    /// The first producer id no block has reserved yet.
    pub next_producer_id: i64,
    /// Counts the events applied: a cheap "did anything change" for caches.
    pub version: u64,
}

impl MetadataSnapshot {
    pub fn topic(&self, name: &str) -> Option<&Arc<TopicInfo>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicInfo>> {
        self.by_id.get(id).and_then(|name| self.topics.get(name))
    }

    fn apply(&mut self, event: &MetadataEvent) {
        self.version += 1;
        match event {
            MetadataEvent::CreateTopic(topic) => {
                self.by_id.insert(topic.id, topic.name.clone());
                self.topics
                    .insert(topic.name.clone(), Arc::new(topic.clone()));
            }
            MetadataEvent::DeleteTopic { name } => {
                if let Some(topic) = self.topics.remove(name) {
                    self.by_id.remove(&topic.id);
                }
            }
            MetadataEvent::CreatePartitions { name, count } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    // Never shrink: two concurrent grows may commit out of order.
                    let topic = Arc::make_mut(topic);
                    topic.partitions = topic.partitions.max(*count);
                }
            }
            MetadataEvent::ProducerIdBlock { first, size } => {
                self.next_producer_id = self.next_producer_id.max(first.saturating_add(*size));
            }
            MetadataEvent::SetConfigs { name, configs } => {
                if let Some(topic) = self.topics.get_mut(name) {
                    let topic = Arc::make_mut(topic);
                    for (key, value) in configs {
                        match value {
                            Some(v) => topic.configs.insert(key.clone(), v.clone()),
                            None => topic.configs.remove(key),
                        };
                    }
                }
            }
        }
    }
}

/// A change to the metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataEvent {
    CreateTopic(TopicInfo),
    DeleteTopic {
        name: String,
    },
    CreatePartitions {
        name: String,
        count: i32,
    },
    /// `None` removes an override.
    SetConfigs {
        name: String,
        configs: BTreeMap<String, Option<String>>,
    },
    /// Producer ids `[first, first + size)` are reserved for InitProducerId.
    ProducerIdBlock {
        first: i64,
        size: i64,
    },
}

/// The durable metadata log; lives on shard 0.
#[derive(Debug)]
pub struct MetadataStore {
    log: PartitionLog,
    view: Arc<ArcSwap<MetadataSnapshot>>,
    /// Held by changes computed from the current snapshot (config edits) from reading it to
    /// committing, so two such changes cannot both start from the same state and lose one.
    changes: tokio::sync::Mutex<()>,
}

impl MetadataStore {
    /// Opens (recovering) the metadata log and replays it into `view`.
    pub async fn open(
        data_dir: &Path,
        backend: Backend,
        view: Arc<ArcSwap<MetadataSnapshot>>,
    ) -> Result<Self, String> {
        let dir = data_dir.join(METADATA_DIR);
        let config = LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            retention_ms: None,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&dir, config, backend)
            .await
            .map_err(|e| format!("cannot open the metadata log in {}: {e}", dir.display()))?;
        let mut snapshot = MetadataSnapshot::default();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let read = log
                .read(offset, 1 << 20, u64::MAX)
                .await
                .map_err(|e| format!("cannot read the metadata log: {e}"))?;
            if read.batches.is_empty() {
                break;
            }
            for batch in &read.batches {
                for record in decode_records(batch).map_err(|e| format!("metadata log: {e}"))? {
                    let Some(value) = record.value else { continue };
                    let event: MetadataEvent = serde_json::from_slice(&value).map_err(|e| {
                        format!("metadata log record at offset {}: {e}", record.offset)
                    })?;
                    snapshot.apply(&event);
                }
            }
            offset = read.next_offset;
        }
        log.set_high_watermark(log.log_end_offset());
        view.store(Arc::new(snapshot));
        Ok(MetadataStore {
            log,
            view,
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// Serialises read-modify-write changes: hold the guard from reading the snapshot until
    /// the change is committed.
    pub async fn lock_changes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changes.lock().await
    }

    /// The current snapshot (the one `commit` publishes).
    pub fn snapshot(&self) -> Arc<MetadataSnapshot> {
        self.view.load_full()
    }

    /// Makes `event` durable, then publishes the new snapshot.
    pub async fn commit(&self, event: MetadataEvent) -> Result<(), String> {
        let json = serde_json::to_vec(&event).map_err(|e| format!("encode metadata event: {e}"))?;
        let mut builder = BatchBuilder::new();
        builder.push(Record {
            value: Some(Bytes::from(json)),
            timestamp: now_ms(),
            ..Record::default()
        });
        let batch: BytesMut = builder.build();
        let info = self
            .log
            .append(batch, 0)
            .map_err(|e| format!("metadata log append: {e}"))?;
        self.log
            .wait_durable(info.last_offset + 1)
            .await
            .map_err(|e| format!("metadata log flush: {e}"))?;
        let mut next = (**self.view.load()).clone();
        next.apply(&event);
        self.view.store(Arc::new(next));
        Ok(())
    }

    pub async fn close(&self) -> Result<(), String> {
        self.log.close().await.map_err(|e| e.to_string())
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name '{name}' is not allowed"));
    }
    if name.len() > TOPIC_NAME_MAX {
        return Err(format!(
            "topic name is longer than {TOPIC_NAME_MAX} characters"
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' contains '{bad}'; use ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka() {
        assert!(validate_topic_name("orders.v1_a-b").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a/b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
