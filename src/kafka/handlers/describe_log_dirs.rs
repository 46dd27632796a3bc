//! DescribeLogDirs: the broker has one log dir, its data directory. Lists every partition (or
//! the requested ones that exist) with its size on disk, and (v4) the filesystem's total and
//! usable bytes. Nothing is ever moved between dirs, so offset lag is 0 and no log is a future.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use uuid::Uuid;

use super::{str_bytes, ApiSupport, RequestContext};
use crate::cluster::metadata::{MetadataSnapshot, TopicInfo};
use crate::shard::BrokerContext;

pub const SUPPORT: ApiSupport = ApiSupport {
    key: ApiKey::DescribeLogDirs,
    min: 1,
    max: 4,
};

/// Requested partitions by topic, deduplicated and limited to ones that exist.
type Wanted = BTreeMap<String, (Arc<TopicInfo>, BTreeSet<i32>)>;

pub async fn handle(
    ctx: &RequestContext<'_>,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let broker = &ctx.shard.ctx;
    let wanted = resolve(&broker.metadata.load(), &request);
    let sizes = partition_sizes(broker, &wanted).await;
    let disk = describe_dir(broker.config.data_dir.clone()).await;
    let topics = wanted
        .into_iter()
        .filter_map(|(name, (info, partitions))| {
            let partitions: Vec<_> = partitions
                .into_iter()
                .filter_map(|index| {
                    // A partition that is not open (e.g. deleted meanwhile) is not in the dir.
                    let size = sizes.get(&(info.id, index))?;
                    Some(
                        DescribeLogDirsPartition::default()
                            .with_partition_index(index)
                            .with_partition_size(*size)
                            .with_offset_lag(0)
                            .with_is_future_key(false),
                    )
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(str_bytes(name)))
                    .with_partitions(partitions)
            })
        })
        .collect();
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(disk.path))
        .with_topics(topics)
        .with_total_bytes(disk.total_bytes)
        .with_usable_bytes(disk.usable_bytes);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// Null topics means every partition of every topic; otherwise the listed partitions that exist
/// (Kafka leaves unknown ones out of the answer rather than failing).
fn resolve(snapshot: &MetadataSnapshot, request: &DescribeLogDirsRequest) -> Wanted {
    let mut wanted = Wanted::new();
    match &request.topics {
        None => {
            for (name, info) in &snapshot.topics {
                let all = (0..info.partitions).collect();
                wanted.insert(name.clone(), (info.clone(), all));
            }
        }
        Some(topics) => {
            for topic in topics {
                let Some(info) = snapshot.topic(&topic.topic.0) else {
                    continue;
                };
                let (_, partitions) = wanted
                    .entry(info.name.clone())
                    .or_insert_with(|| (info.clone(), BTreeSet::new()));
                let valid = topic.partitions.iter().copied();
                partitions.extend(valid.filter(|p| (0..info.partitions).contains(p)));
            }
        }
    }
    wanted
}

/// Sizes in bytes of the wanted partitions, asking each shard once for all it owns.
async fn partition_sizes(
    broker: &Arc<BrokerContext>,
    wanted: &Wanted,
) -> BTreeMap<(Uuid, i32), i64> {
    let mut by_owner: BTreeMap<usize, Vec<(Uuid, i32)>> = BTreeMap::new();
    for (info, partitions) in wanted.values() {
        for index in partitions {
            let owner = broker.shards.owner(&info.id, *index);
            by_owner.entry(owner).or_default().push((info.id, *index));
        }
    }
    let calls = by_owner.into_iter().map(|(owner, partitions)| {
        broker.shards.call(owner, move |shard| async move {
            partitions
                .into_iter()
                .filter_map(|(id, index)| {
                    let size = shard.partition(&id, index)?.log.stats().size_bytes;
                    Some(((id, index), i64::try_from(size).unwrap_or(i64::MAX)))
                })
                .collect::<Vec<_>>()
        })
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .flatten()
        .flatten()
        .collect()
}

/// The log dir's absolute path and its filesystem's size.
#[derive(Debug)]
struct DirInfo {
    path: String,
    total_bytes: i64,
    usable_bytes: i64,
}

/// Absolute path (Kafka reports `File.getAbsolutePath`) and `statvfs` figures, on the blocking
/// pool since both are filesystem calls. Sizes are -1 (Kafka's "unknown") if they cannot be read.
async fn describe_dir(dir: PathBuf) -> DirInfo {
    let fallback = dir.display().to_string();
    tokio::task::spawn_blocking(move || {
        let path = std::path::absolute(&dir).unwrap_or(dir);
        let (total_bytes, usable_bytes) = match rustix::fs::statvfs(&path) {
            Ok(fs) => (
                to_i64(fs.f_blocks.saturating_mul(fs.f_frsize)),
                // f_bavail: what an unprivileged writer may use, as Java's getUsableSpace.
                to_i64(fs.f_bavail.saturating_mul(fs.f_frsize)),
            ),
            Err(e) => {
                tracing::warn!(dir = %path.display(), error = %e, "statvfs failed");
                (-1, -1)
            }
        };
        DirInfo {
            path: path.display().to_string(),
            total_bytes,
            usable_bytes,
        }
    })
    .await
    .unwrap_or(DirInfo {
        path: fallback,
        total_bytes: -1,
        usable_bytes: -1,
    })
}

fn to_i64(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}
