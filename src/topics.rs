//! Topic lifecycle across shards: create (metadata first, then each partition's log on its
//! owner), delete, add partitions, change configs (metadata first, then every open partition's
//! log), and opening the partitions a shard owns at start-up.
//!
//! Metadata changes are serialised on shard 0, which owns the metadata log; partition logs are
//! opened and removed on the shards that own them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::cluster::metadata::{validate_topic_name, MetadataEvent, MetadataStore, TopicInfo};
use crate::cluster::topic_config::{self, EffectiveConfig};
use crate::partition::Partition;
use crate::shard::{BrokerContext, Shard};

/// A Kafka error code with a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError {
    pub code: ResponseError,
    pub message: String,
}

impl TopicError {
    pub fn new(code: ResponseError, message: impl Into<String>) -> Self {
        TopicError {
            code,
            message: message.into(),
        }
    }
}

/// What a CreateTopics entry asks for, after defaults are applied.
#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// Largest partition count accepted for one topic.
const PARTITIONS_MAX: i32 = 10_000;

/// The directory of one partition's log (Kafka's `<topic>-<partition>` layout).
pub fn partition_dir(ctx: &BrokerContext, topic: &str, index: i32) -> PathBuf {
    ctx.config.data_dir.join(format!("{topic}-{index}"))
}

/// Checks a topic request against Kafka's rules without creating anything.
pub fn validate_new_topic(ctx: &BrokerContext, topic: &NewTopic) -> Result<(), TopicError> {
    validate_topic_name(&topic.name)
        .map_err(|m| TopicError::new(ResponseError::InvalidTopicException, m))?;
    if topic.partitions < 1 || topic.partitions > PARTITIONS_MAX {
        return Err(TopicError::new(
            ResponseError::InvalidPartitions,
            format!(
                "number of partitions must be between 1 and {PARTITIONS_MAX}, got {}",
                topic.partitions
            ),
        ));
    }
    if topic.replication_factor != 1 {
        return Err(TopicError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor must be 1 on a single-node broker, got {}",
                topic.replication_factor
            ),
        ));
    }
    for (key, value) in &topic.configs {
        topic_config::check_value(key, value)
            .map_err(|m| TopicError::new(ResponseError::InvalidConfig, m))?;
    }
    if ctx.metadata.load().topic(&topic.name).is_some() {
        return Err(TopicError::new(
            ResponseError::TopicAlreadyExists,
            format!("topic '{}' already exists", topic.name),
        ));
    }
    Ok(())
}

/// Creates a topic: durable in metadata, then every partition's log opened on its owner.
pub async fn create_topic(
    ctx: &Arc<BrokerContext>,
    topic: NewTopic,
) -> Result<Arc<TopicInfo>, TopicError> {
    let shard_ctx = ctx.clone();
    let created = ctx
        .shards
        .call(0, move |shard| async move {
            // Re-validated on shard 0 under the change lock: two creates of one name must not
            // both pass validation while the first is being made durable.
            let store = metadata_store(&shard)?;
            let _serialised = store.lock_changes().await;
            validate_new_topic(&shard_ctx, &topic)?;
            let info = TopicInfo {
                name: topic.name.clone(),
                id: Uuid::new_v4(),
                partitions: topic.partitions,
                configs: topic.configs.clone(),
            };
            store
                .commit(MetadataEvent::CreateTopic(info.clone()))
                .await
                .map_err(|m| TopicError::new(ResponseError::KafkaStorageError, m))?;
            tracing::info!(topic = %info.name, partitions = info.partitions, "topic created");
            Ok::<_, TopicError>(info)
        })
        .await
        .map_err(|e| TopicError::new(ResponseError::UnknownServerError, e.to_string()))??;
    let info = Arc::new(created);
    open_partitions(ctx, &info, 0..info.partitions).await?;
    Ok(info)
}

fn metadata_store(shard: &Shard) -> Result<Rc<MetadataStore>, TopicError> {
    shard.metadata_store.borrow().clone().ok_or_else(|| {
        TopicError::new(
            ResponseError::NotController,
            "metadata is not open on this shard",
        )
    })
}

/// Opens partitions `range` of `topic` on their owning shards.
pub async fn open_partitions(
    ctx: &Arc<BrokerContext>,
    topic: &Arc<TopicInfo>,
    range: std::ops::Range<i32>,
) -> Result<(), TopicError> {
    let opens = range.map(|index| {
        let owner = ctx.shards.owner(&topic.id, index);
        let topic = topic.clone();
        ctx.shards.call(owner, move |shard| async move {
            open_partition(&shard, &topic, index).await
        })
    });
    for result in futures::future::join_all(opens).await {
        result.map_err(|e| TopicError::new(ResponseError::UnknownServerError, e.to_string()))??;
    }
    Ok(())
}

/// Opens (recovering) one partition's log on this shard, if it is not open already.
pub async fn open_partition(
    shard: &Rc<Shard>,
    topic: &TopicInfo,
    index: i32,
) -> Result<(), TopicError> {
    if shard.partition(&topic.id, index).is_some() {
        return Ok(());
    }
    let dir = partition_dir(&shard.ctx, &topic.name, index);
    let config = EffectiveConfig {
        overrides: &topic.configs,
        defaults: &shard.ctx.config.defaults,
    }
    .log_config();
    let log = storage::PartitionLog::open(&dir, config, shard.backend.clone()).await.map_err(|e| {
        tracing::error!(topic = %topic.name, partition = index, error = %e, "cannot open partition log");
        TopicError::new(ResponseError::KafkaStorageError, e.to_string())
    })?;
    if topic.name == crate::group::OFFSETS_TOPIC && shard.partition(&topic.id, index).is_none() {
        // Groups and offsets are in memory before the partition (and so the coordinator) is
        // reachable.
        crate::group::load_partition(shard, &log, index)
            .await
            .map_err(|m| TopicError::new(ResponseError::KafkaStorageError, m))?;
    }
    if topic.name == crate::txn::TXN_TOPIC && shard.partition(&topic.id, index).is_none() {
        crate::txn::load_partition(shard, &log)
            .await
            .map_err(|m| TopicError::new(ResponseError::KafkaStorageError, m))?;
    }
    if shard.partition(&topic.id, index).is_none() {
        let producers = crate::producer::state::ProducerStates::recover(&log)
            .await
            .map_err(|m| TopicError::new(ResponseError::KafkaStorageError, m))?;
        shard.insert_partition(Partition::new(
            Arc::from(topic.name.as_str()),
            topic.id,
            index,
            log,
            producers,
        ));
    }
    Ok(())
}

/// Deletes a topic: gone from metadata first (so clients stop seeing it), then every partition
/// is closed and its directory removed by its owner.
pub async fn delete_topic(ctx: &Arc<BrokerContext>, name: String) -> Result<Uuid, TopicError> {
    let topic = ctx.metadata.load().topic(&name).cloned().ok_or_else(|| {
        TopicError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("no topic '{name}'"),
        )
    })?;
    if name.starts_with("__") {
        return Err(TopicError::new(
            ResponseError::InvalidRequest,
            format!("internal topic '{name}' cannot be deleted"),
        ));
    }
    let event_name = name.clone();
    ctx.shards
        .call(0, move |shard| async move {
            let store = metadata_store(&shard)?;
            let _serialised = store.lock_changes().await;
            if store.snapshot().topic(&event_name).is_none() {
                return Err(TopicError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("no topic '{event_name}'"),
                ));
            }
            store
                .commit(MetadataEvent::DeleteTopic { name: event_name })
                .await
                .map_err(|m| TopicError::new(ResponseError::KafkaStorageError, m))
        })
        .await
        .map_err(|e| TopicError::new(ResponseError::UnknownServerError, e.to_string()))??;
    let removals = (0..topic.partitions).map(|index| {
        let owner = ctx.shards.owner(&topic.id, index);
        let topic = topic.clone();
        ctx.shards.call(owner, move |shard| async move {
            remove_partition(&shard, &topic, index).await
        })
    });
    for result in futures::future::join_all(removals).await {
        if let Ok(Err(e)) = result {
            tracing::warn!(topic = %name, error = %e, "partition files not fully removed");
        }
    }
    // Committed offsets of the topic go too (as in Kafka): a topic re-created under the same
    // name starts its consumers from auto.offset.reset, not from stale positions.
    let purges = (0..ctx.shards.count()).map(|target| {
        let name = name.clone();
        ctx.shards.call(target, move |shard| async move {
            crate::group::delete_topic_offsets(&shard, &name).await
        })
    });
    for result in futures::future::join_all(purges).await {
        if let Ok(Err(e)) = result {
            tracing::warn!(topic = %name, error = %e, "committed offsets of the deleted topic not all removed");
        }
    }
    tracing::info!(topic = %name, "topic deleted");
    Ok(topic.id)
}

async fn remove_partition(shard: &Rc<Shard>, topic: &TopicInfo, index: i32) -> Result<(), String> {
    if let Some(partition) = shard.remove_partition(&topic.id, index) {
        let _ = partition.log.close().await;
    }
    let dir = partition_dir(&shard.ctx, &topic.name, index);
    let doomed = dir.with_file_name(format!(
        "{topic}-{index}.{id}-delete",
        topic = topic.name,
        id = topic.id.simple()
    ));
    // Rename first so a re-created topic of the same name never sees the old files, then remove.
    tokio::task::spawn_blocking(move || match std::fs::rename(&dir, &doomed) {
        Ok(()) => std::fs::remove_dir_all(&doomed),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Grows a topic to `count` partitions.
pub async fn create_partitions(
    ctx: &Arc<BrokerContext>,
    name: String,
    count: i32,
    validate_only: bool,
) -> Result<(), TopicError> {
    let topic = ctx.metadata.load().topic(&name).cloned().ok_or_else(|| {
        TopicError::new(
            ResponseError::UnknownTopicOrPartition,
            format!("no topic '{name}'"),
        )
    })?;
    if count <= topic.partitions {
        return Err(TopicError::new(
            ResponseError::InvalidPartitions,
            format!(
                "topic '{name}' has {} partitions; the new count {count} must be larger",
                topic.partitions
            ),
        ));
    }
    if count > PARTITIONS_MAX {
        return Err(TopicError::new(
            ResponseError::InvalidPartitions,
            format!("at most {PARTITIONS_MAX} partitions"),
        ));
    }
    if validate_only {
        return Ok(());
    }
    let event_name = name.clone();
    ctx.shards
        .call(0, move |shard| async move {
            let store = metadata_store(&shard)?;
            let _serialised = store.lock_changes().await;
            let current = store.snapshot().topic(&event_name).map(|t| t.partitions);
            if current.is_none_or(|now| now >= count) {
                return Err(TopicError::new(
                    ResponseError::InvalidPartitions,
                    format!(
                        "topic '{event_name}' changed concurrently; it has {current:?} partitions"
                    ),
                ));
            }
            store
                .commit(MetadataEvent::CreatePartitions {
                    name: event_name,
                    count,
                })
                .await
                .map_err(|m| TopicError::new(ResponseError::KafkaStorageError, m))
        })
        .await
        .map_err(|e| TopicError::new(ResponseError::UnknownServerError, e.to_string()))??;
    let updated = ctx.metadata.load().topic(&name).cloned();
    if let Some(updated) = updated {
        open_partitions(ctx, &updated, topic.partitions..count).await?;
    }
    Ok(())
}

/// Changes a topic's config overrides. `edit` computes the new overrides from the current
/// ones (AlterConfigs replaces them all, IncrementalAlterConfigs edits some); it runs on
/// shard 0 under the metadata change lock, so concurrent changes apply one after the other
/// and none is lost. Every resulting value is validated (INVALID_CONFIG naming the key);
/// nothing is changed when any is invalid or with `validate_only`.
///
/// The change is durable in metadata before it takes effect; then every open partition's log
/// gets the new settings on its owning shard. Settings read per request (max.message.bytes,
/// message.timestamp.type) apply as soon as the metadata snapshot is published.
pub async fn alter_topic_configs<F>(
    ctx: &Arc<BrokerContext>,
    name: String,
    edit: F,
    validate_only: bool,
) -> Result<(), TopicError>
where
    F: FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, TopicError>
        + Send
        + 'static,
{
    let changed = ctx
        .shards
        .call(0, move |shard| async move {
            let store = metadata_store(&shard)?;
            let _serialised = store.lock_changes().await;
            let topic = store
                .snapshot()
                .topic(&name)
                .cloned()
                .ok_or_else(|| unknown_topic(&name))?;
            let next = edit(&topic.configs)?;
            for (key, value) in &next {
                topic_config::check_value(key, value)
                    .map_err(|m| TopicError::new(ResponseError::InvalidConfig, m))?;
            }
            let diff = config_diff(&topic.configs, &next);
            if validate_only || diff.is_empty() {
                return Ok(None);
            }
            store
                .commit(MetadataEvent::SetConfigs {
                    name: name.clone(),
                    configs: diff,
                })
                .await
                .map_err(|m| TopicError::new(ResponseError::KafkaStorageError, m))?;
            tracing::info!(topic = %name, configs = ?next, "topic configs changed");
            Ok::<_, TopicError>(store.snapshot().topic(&name).cloned())
        })
        .await
        .map_err(|e| TopicError::new(ResponseError::UnknownServerError, e.to_string()))??;
    match changed {
        Some(topic) => apply_log_configs(ctx, &topic).await,
        None => Ok(()),
    }
}

fn unknown_topic(name: &str) -> TopicError {
    TopicError::new(
        ResponseError::UnknownTopicOrPartition,
        format!("no topic '{name}'"),
    )
}

/// The `SetConfigs` change from `old` to `new` overrides: `None` removes an override.
fn config_diff(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> BTreeMap<String, Option<String>> {
    let removed = old
        .keys()
        .filter(|key| !new.contains_key(*key))
        .map(|key| (key.clone(), None));
    let set = new
        .iter()
        .filter(|(key, value)| old.get(*key) != Some(*value))
        .map(|(key, value)| (key.clone(), Some(value.clone())));
    removed.chain(set).collect()
}

/// Gives every open partition of `topic` its log settings, each on its owning shard.
async fn apply_log_configs(ctx: &Arc<BrokerContext>, topic: &TopicInfo) -> Result<(), TopicError> {
    let updates = (0..topic.partitions).map(|index| {
        let owner = ctx.shards.owner(&topic.id, index);
        let id = topic.id;
        ctx.shards.call(owner, move |shard| async move {
            apply_log_config(&shard, id, index)
        })
    });
    for result in futures::future::join_all(updates).await {
        result.map_err(|e| TopicError::new(ResponseError::UnknownServerError, e.to_string()))??;
    }
    Ok(())
}

/// Gives one open partition the log settings of the *current* snapshot rather than values
/// passed along, so when two changes race, whichever update runs last applies the latest
/// configs. A partition that is not open has nothing to update: it reads the configs when it
/// opens.
fn apply_log_config(shard: &Shard, topic_id: Uuid, index: i32) -> Result<(), TopicError> {
    let Some(partition) = shard.partition(&topic_id, index) else {
        return Ok(());
    };
    let snapshot = shard.metadata();
    let Some(topic) = snapshot.topic_by_id(&topic_id) else {
        return Ok(());
    };
    let config = EffectiveConfig {
        overrides: &topic.configs,
        defaults: &shard.ctx.config.defaults,
    }
    .log_config();
    partition.log.set_config(config).map_err(|e| {
        TopicError::new(
            ResponseError::KafkaStorageError,
            format!(
                "the configs of '{}' were saved, but partition {index} could not apply them \
                 (it will when reopened): {e}",
                topic.name
            ),
        )
    })
}

/// Opens every partition this shard owns according to the metadata snapshot.
pub async fn open_owned_partitions(shard: &Rc<Shard>) -> Result<usize, String> {
    let snapshot = shard.metadata();
    let mut opened = 0;
    for topic in snapshot.topics.values() {
        for index in 0..topic.partitions {
            if shard.ctx.shards.owner(&topic.id, index) == shard.id {
                open_partition(shard, topic, index)
                    .await
                    .map_err(|e| e.message)?;
                opened += 1;
            }
        }
    }
    Ok(opened)
}
