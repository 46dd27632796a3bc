//! Consumer groups and their lag, for the admin HTTP API (`src/admin.rs`).
//!
//! ```text
//! every shard: its partitions' offsets ----------+
//!                                                 +--> joined on the calling shard:
//! coordinating shard(s): groups, committed offsets+    lag = max(0, high watermark - committed)
//! ```
//! Everything leaving a shard is a plain value (`String`s and numbers; no `Rc`, no `RefCell`),
//! copied out under one short borrow with no `.await` inside it, and gathered with
//! [`ShardSet::call`](crate::shard::ShardSet::call).
//!
//! The end offset lag is measured against is the high watermark: the latest offset a consumer
//! can read, which is what Kafka's `kafka-consumer-groups --describe` shows as LOG-END-OFFSET
//! (it asks ListOffsets for "latest"). Groups and partitions are read in separate shard calls,
//! so a figure can be a moment old; a lag is never negative. A committed offset whose topic or
//! partition no longer exists (or that is negative) has no lag and is counted apart.
//!
//! Sizes are bounded: a listing returns at most [`PAGE_LIMIT_MAX`] groups per call (each shard
//! picks its smallest ids after the cursor in linear time and summarises only those), and
//! one group's detail at most [`DETAIL_PARTITIONS_MAX`] partitions (its totals still cover
//! every partition).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::ConsumerProtocolAssignment;
use kafka_protocol::protocol::Decodable;
use serde::Serialize;

use super::state::Group;
use super::{partition_for, OFFSETS_TOPIC};
use crate::cluster::metadata::MetadataSnapshot;
use crate::shard::{BrokerContext, Shard, ShardGone};

/// Most groups in one listing page.
pub const PAGE_LIMIT_MAX: usize = 1000;
/// Most partitions listed in one group's detail.
pub const DETAIL_PARTITIONS_MAX: usize = 10_000;

/// One partition's offsets and size, as its owning shard sees them.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionEnd {
    pub topic: String,
    pub partition: i32,
    pub log_start_offset: u64,
    /// The latest offset consumers can read (acknowledged and durable).
    pub high_watermark: u64,
    /// The offset the next appended record gets (at or above the high watermark).
    pub log_end_offset: u64,
    pub size_bytes: u64,
    pub segments: usize,
    /// Bytes of recent batches held in memory by the log's tail cache.
    pub cache_bytes: usize,
}

/// High watermarks by topic name and partition.
#[derive(Debug, Default)]
pub struct EndOffsets(HashMap<String, HashMap<i32, u64>>);

impl EndOffsets {
    pub fn new(ends: &[PartitionEnd]) -> Self {
        let mut map: HashMap<String, HashMap<i32, u64>> = HashMap::new();
        for end in ends {
            map.entry(end.topic.clone())
                .or_default()
                .insert(end.partition, end.high_watermark);
        }
        EndOffsets(map)
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<u64> {
        self.0.get(topic)?.get(&partition).copied()
    }
}

/// `max(0, end - committed)`; `None` when the end is unknown or nothing valid was committed.
pub fn lag(committed: i64, end: Option<u64>) -> Option<u64> {
    let committed = u64::try_from(committed).ok()?;
    Some(end?.saturating_sub(committed))
}

/// The partitions this shard owns (of `topics` only, when given). Partitions whose topic id no
/// longer matches the metadata (a deletion in progress) are left out.
pub fn local_ends(shard: &Shard, topics: Option<&HashSet<String>>) -> Vec<PartitionEnd> {
    let metadata = shard.metadata();
    shard
        .partitions()
        .into_iter()
        .filter(|p| topics.is_none_or(|t| t.contains(&*p.topic)))
        .filter(|p| metadata.topic(&p.topic).is_some_and(|t| t.id == p.topic_id))
        .map(|p| {
            let stats = p.log.stats();
            PartitionEnd {
                topic: p.topic.to_string(),
                partition: p.index,
                log_start_offset: stats.log_start_offset,
                high_watermark: stats.high_watermark,
                log_end_offset: stats.log_end_offset,
                size_bytes: stats.size_bytes,
                segments: stats.segments,
                cache_bytes: stats.cache_bytes,
            }
        })
        .collect()
}

/// [`local_ends`] of every shard, in no particular order.
pub async fn partition_ends(
    ctx: &Arc<BrokerContext>,
    topics: Option<Arc<HashSet<String>>>,
) -> Result<Vec<PartitionEnd>, ShardGone> {
    let calls = (0..ctx.shards.count()).map(|target| {
        let topics = topics.clone();
        ctx.shards.call(target, move |shard| async move {
            local_ends(&shard, topics.as_deref())
        })
    });
    let mut out = Vec::new();
    for ends in futures::future::join_all(calls).await {
        out.extend(ends?);
    }
    Ok(out)
}

/// One line of the group listing.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSummary {
    pub group_id: String,
    pub group_type: &'static str,
    /// "consumer" for Kafka consumers; empty for groups that only commit offsets.
    pub protocol_type: String,
    /// The assignor chosen in the current generation, if any.
    pub protocol: Option<String>,
    pub state: &'static str,
    pub generation: i32,
    pub members: usize,
    pub committed_partitions: usize,
    /// Sum of the lags that are known.
    pub total_lag: u64,
    /// Committed partitions without a lag (topic or partition gone, negative offset).
    pub lag_unknown_partitions: usize,
}

/// Lag totals over a group's committed offsets: (total, unknown).
fn totals(group: &Group, ends: &EndOffsets) -> (u64, usize) {
    let mut total = 0u64;
    let mut unknown = 0usize;
    for ((topic, partition), committed) in &group.offsets {
        match lag(committed.value.offset, ends.get(topic, *partition)) {
            Some(l) => total = total.saturating_add(l),
            None => unknown += 1,
        }
    }
    (total, unknown)
}

fn summary(group: &Group, ends: &EndOffsets) -> GroupSummary {
    let (total_lag, lag_unknown_partitions) = totals(group, ends);
    GroupSummary {
        group_id: group.id.clone(),
        group_type: group.group_type(),
        protocol_type: protocol_type(group),
        protocol: protocol(group),
        state: group.state_name(),
        generation: generation(group),
        members: member_count(group),
        committed_partitions: group.offsets.len(),
        total_lag,
        lag_unknown_partitions,
    }
}

/// One shard's share of a listing page.
#[derive(Debug)]
pub struct LocalPage {
    /// The smallest ids after the cursor, at most `limit`, sorted.
    pub groups: Vec<GroupSummary>,
    /// How many groups of this shard come after the cursor.
    pub after_cursor: usize,
    /// How many groups this shard coordinates.
    pub total: usize,
}

/// This shard's groups with ids after `after`: the first `limit` of them, summarised.
pub fn local_page(
    shard: &Shard,
    after: Option<&str>,
    limit: usize,
    ends: &EndOffsets,
) -> LocalPage {
    let groups = shard.groups.groups.borrow();
    let mut page: Vec<&Group> = groups
        .values()
        .filter(|g| after.is_none_or(|a| g.id.as_str() > a))
        .collect();
    let after_cursor = page.len();
    if page.len() > limit {
        page.select_nth_unstable_by(limit, |a, b| a.id.cmp(&b.id));
        page.truncate(limit);
    }
    page.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    LocalPage {
        groups: page.into_iter().map(|g| summary(g, ends)).collect(),
        after_cursor,
        total: groups.len(),
    }
}

/// A page of the listing of every group on the broker, in id order.
#[derive(Debug, Clone, Serialize)]
pub struct GroupListing {
    pub groups: Vec<GroupSummary>,
    /// Groups on the broker, whatever the cursor.
    pub total_groups: usize,
    /// More groups follow this page: ask again with `after=<next_after>`.
    pub truncated: bool,
    pub next_after: Option<String>,
}

/// Lists up to `limit` (capped at [`PAGE_LIMIT_MAX`]) groups with ids after `after`.
pub async fn list_groups(
    ctx: &Arc<BrokerContext>,
    after: Option<String>,
    limit: usize,
) -> Result<GroupListing, ShardGone> {
    let limit = limit.min(PAGE_LIMIT_MAX);
    let ends = Arc::new(EndOffsets::new(&partition_ends(ctx, None).await?));
    let calls = (0..ctx.shards.count()).map(|target| {
        let (after, ends) = (after.clone(), ends.clone());
        ctx.shards.call(target, move |shard| async move {
            local_page(&shard, after.as_deref(), limit, &ends)
        })
    });
    let (mut groups, mut after_cursor, mut total_groups) = (Vec::new(), 0usize, 0usize);
    for page in futures::future::join_all(calls).await {
        let page = page?;
        groups.extend(page.groups);
        after_cursor += page.after_cursor;
        total_groups += page.total;
    }
    groups.sort_unstable_by(|a, b| a.group_id.cmp(&b.group_id));
    groups.truncate(limit);
    let truncated = after_cursor > groups.len();
    let next_after = if truncated {
        groups.last().map(|g| g.group_id.clone())
    } else {
        None
    };
    Ok(GroupListing {
        groups,
        total_groups,
        truncated,
        next_after,
    })
}

/// One member of a group.
#[derive(Debug, Clone, Serialize)]
pub struct MemberDetail {
    pub member_id: String,
    /// `group.instance.id` of a static member (KIP-345).
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// The member's partitions, when the group uses the consumer protocol and the assignment
    /// of the current generation is known and decodes.
    pub assignment: Option<Vec<AssignedTopic>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AssignedTopic {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// One committed partition of a group and its lag.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed_offset: i64,
    pub committed_leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// The high watermark (Kafka's LOG-END-OFFSET); `None` when the partition is gone.
    pub log_end_offset: Option<u64>,
    pub lag: Option<u64>,
}

/// One group in full.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDetail {
    pub group_id: String,
    pub group_type: &'static str,
    pub protocol_type: String,
    pub protocol: Option<String>,
    pub state: &'static str,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: Vec<MemberDetail>,
    /// Sorted by topic, then partition; at most [`DETAIL_PARTITIONS_MAX`].
    pub partitions: Vec<PartitionLag>,
    pub partitions_truncated: bool,
    pub committed_partitions: usize,
    pub total_lag: u64,
    pub lag_unknown_partitions: usize,
}

/// Decodes a consumer-protocol assignment (`[i16 version][ConsumerProtocolAssignment]`).
/// Versions above the newest known are read as the newest, as Kafka's `ConsumerProtocol` does.
pub fn decode_assignment(bytes: &bytes::Bytes) -> Option<Vec<AssignedTopic>> {
    if bytes.len() < 2 {
        return None;
    }
    let mut buf = bytes.clone();
    let version = bytes::Buf::get_i16(&mut buf);
    if version < 0 {
        return None;
    }
    let assignment = ConsumerProtocolAssignment::decode(&mut buf, version.min(3)).ok()?;
    Some(
        assignment
            .assigned_partitions
            .into_iter()
            .map(|tp| AssignedTopic {
                topic: tp.topic.to_string(),
                partitions: tp.partitions,
            })
            .collect(),
    )
}

fn protocol_type(group: &Group) -> String {
    match &group.consumer {
        Some(_) => "consumer".to_owned(),
        None => group.protocol_type.clone().unwrap_or_default(),
    }
}

/// The classic group's chosen assignor, or the KIP-848 group's server-side one.
fn protocol(group: &Group) -> Option<String> {
    match &group.consumer {
        Some(c) => Some(c.assignor.clone()).filter(|a| !a.is_empty()),
        None => group.protocol.clone(),
    }
}

/// The classic generation, or the KIP-848 group epoch.
fn generation(group: &Group) -> i32 {
    group
        .consumer
        .as_ref()
        .map_or(group.generation, |c| c.epoch)
}

fn member_count(group: &Group) -> usize {
    group.members.len() + group.consumer.as_ref().map_or(0, |c| c.members.len())
}

/// A group as copied off its coordinating shard: committed offsets not yet joined with ends.
fn local_detail(group: &Group, metadata: &MetadataSnapshot) -> GroupDetail {
    let consumer = group.protocol_type.as_deref() == Some("consumer");
    let mut members: Vec<MemberDetail> = group
        .members
        .iter()
        .map(|(id, m)| MemberDetail {
            member_id: id.clone(),
            group_instance_id: m.instance_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            assignment: if consumer && !m.assignment.is_empty() {
                decode_assignment(&m.assignment)
            } else {
                None
            },
        })
        .collect();
    if let Some(c) = &group.consumer {
        // KIP-848 members: the partitions they own now (by topic name).
        members.extend(c.members.iter().map(|(id, m)| {
            MemberDetail {
                member_id: id.clone(),
                group_instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                assignment: Some(
                    m.assigned
                        .iter()
                        .map(|(topic, partitions)| AssignedTopic {
                            topic: metadata
                                .topic_by_id(topic)
                                .map(|t| t.name.clone())
                                .unwrap_or_else(|| topic.to_string()),
                            partitions: partitions.iter().copied().collect(),
                        })
                        .collect(),
                ),
            }
        }));
    }
    let partitions = group
        .offsets
        .iter()
        .map(|((topic, partition), committed)| PartitionLag {
            topic: topic.clone(),
            partition: *partition,
            committed_offset: committed.value.offset,
            committed_leader_epoch: committed.value.leader_epoch,
            metadata: committed.value.metadata.clone(),
            commit_timestamp_ms: committed.value.timestamp,
            log_end_offset: None,
            lag: None,
        })
        .collect();
    GroupDetail {
        group_id: group.id.clone(),
        group_type: group.group_type(),
        protocol_type: protocol_type(group),
        protocol: protocol(group),
        state: group.state_name(),
        generation: generation(group),
        leader: group.leader.clone(),
        members,
        partitions,
        partitions_truncated: false,
        committed_partitions: group.offsets.len(),
        total_lag: 0,
        lag_unknown_partitions: 0,
    }
}

/// One group with the lag of every committed partition; `Ok(None)` when there is no such
/// group. Never creates `__consumer_offsets`.
pub async fn describe_group(
    ctx: &Arc<BrokerContext>,
    group_id: &str,
) -> Result<Option<GroupDetail>, ShardGone> {
    let Some(offsets_topic) = ctx.metadata.load().topic(OFFSETS_TOPIC).cloned() else {
        return Ok(None);
    };
    let index = partition_for(group_id, offsets_topic.partitions);
    let owner = ctx.shards.owner(&offsets_topic.id, index);
    let id = group_id.to_owned();
    let detail = ctx
        .shards
        .call(owner, move |shard| async move {
            let metadata = shard.metadata();
            shard
                .groups
                .groups
                .borrow()
                .get(&id)
                .map(|g| local_detail(g, &metadata))
        })
        .await?;
    let Some(mut detail) = detail else {
        return Ok(None);
    };
    let topics: HashSet<String> = detail.partitions.iter().map(|p| p.topic.clone()).collect();
    let ends = EndOffsets::new(&partition_ends(ctx, Some(Arc::new(topics))).await?);
    for p in &mut detail.partitions {
        p.log_end_offset = ends.get(&p.topic, p.partition);
        p.lag = lag(p.committed_offset, p.log_end_offset);
        match p.lag {
            Some(l) => detail.total_lag = detail.total_lag.saturating_add(l),
            None => detail.lag_unknown_partitions += 1,
        }
    }
    detail
        .partitions
        .sort_unstable_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    if detail.partitions.len() > DETAIL_PARTITIONS_MAX {
        detail.partitions.truncate(DETAIL_PARTITIONS_MAX);
        detail.partitions_truncated = true;
    }
    Ok(Some(detail))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    #[test]
    fn lag_is_never_negative_and_unknown_without_an_end() {
        assert_eq!(lag(5, Some(12)), Some(7));
        assert_eq!(lag(12, Some(12)), Some(0));
        assert_eq!(lag(20, Some(12)), Some(0));
        assert_eq!(lag(5, None), None);
        assert_eq!(lag(-1, Some(12)), None);
    }

    #[test]
    fn end_offsets_look_up_by_topic_and_partition() {
        let end = |topic: &str, partition, hw| PartitionEnd {
            topic: topic.into(),
            partition,
            log_start_offset: 0,
            high_watermark: hw,
            log_end_offset: hw + 1,
            size_bytes: 0,
            segments: 1,
            cache_bytes: 0,
        };
        let ends = EndOffsets::new(&[end("a", 0, 10), end("a", 1, 11), end("b", 0, 3)]);
        assert_eq!(ends.get("a", 1), Some(11));
        assert_eq!(ends.get("b", 0), Some(3));
        assert_eq!(ends.get("b", 1), None);
        assert_eq!(ends.get("c", 0), None);
    }

    #[test]
    fn consumer_assignments_decode() {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(StrBytes::from_static_str("orders").into())
                .with_partitions(vec![0, 2]),
        ]);
        let mut bytes = bytes::BytesMut::new();
        bytes.extend_from_slice(&3i16.to_be_bytes());
        assignment.encode(&mut bytes, 3).unwrap();
        let decoded = decode_assignment(&bytes.freeze()).unwrap();
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded[0].topic, "orders");
        assert_eq!(decoded[0].partitions, vec![0, 2]);
        assert!(decode_assignment(&bytes::Bytes::from_static(&[0, 1, 0xff])).is_none());
        assert!(decode_assignment(&bytes::Bytes::new()).is_none());
    }
}
