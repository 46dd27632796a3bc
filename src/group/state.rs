//! One group's state machine (Kafka's classic protocol) and the per-shard map of groups.
//!
//! ```text
//! Empty --join--> PreparingRebalance --all joined / rebalance timeout--> CompletingRebalance
//!   ^                    ^                                                   | leader's SyncGroup
//!   |                    +---- member joins, leaves, changes, or expires ---- Stable <-+
//!   +---- last member leaves or expires
//! ```
//! Everything here is synchronous and runs on the shard owning the group's
//! `__consumer_offsets` partition; waiting JoinGroup and SyncGroup requests hold the receiving
//! end of a oneshot channel whose sender is kept in their member.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use tokio::sync::oneshot;

use super::codec::{GroupValue, OffsetValue};
use crate::kafka::handlers::str_bytes;

/// Most members (joined or awaiting their second join) in one group.
pub const MAX_MEMBERS: usize = 1000;
/// Most protocols one member may offer.
pub const MAX_PROTOCOLS: usize = 64;
/// Most bytes of protocol metadata one member may send.
pub const MAX_MEMBER_METADATA: usize = 1 << 20;
/// Longest group, member or client id accepted.
pub const MAX_ID_LEN: usize = 1024;
/// Session timeouts accepted (Kafka's group.min/max.session.timeout.ms, with a lower floor so
/// tests run fast).
pub const MIN_SESSION_TIMEOUT: Duration = Duration::from_millis(500);
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(1800);
/// Longest rebalance timeout honoured.
pub const MAX_REBALANCE_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

#[derive(Debug)]
pub struct Member {
    /// `group.instance.id` of a static member (KIP-345).
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub join_waiter: Option<oneshot::Sender<JoinGroupResponse>>,
    pub sync_waiter: Option<oneshot::Sender<SyncGroupResponse>>,
    pub last_seen: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn alive(&self, now: Instant) -> bool {
        self.join_waiter.is_some()
            || self.sync_waiter.is_some()
            || now < self.last_seen + self.session_timeout
    }
}

/// A committed offset and the `__consumer_offsets` offset of the record holding it (a later
/// record wins even when two commits finish out of order).
#[derive(Debug, Clone)]
pub struct Committed {
    pub value: OffsetValue,
    pub log_offset: u64,
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// In join order: the first is the leader when none is left.
    pub members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED (KIP-394) and when they expire.
    pub pending: HashMap<String, Instant>,
    /// Static members: `group.instance.id` to the member id currently holding it.
    pub static_members: HashMap<String, String>,
    pub offsets: HashMap<(String, i32), Committed>,
    pub rebalance_deadline: Option<Instant>,
    /// The first join of an empty group waits until then for more members
    /// (`group.initial.rebalance.delay.ms`), so consumers started together share a generation.
    pub join_not_before: Option<Instant>,
    /// Latest the initial delay may be extended to (the rebalance timeout).
    pub join_delay_cap: Option<Instant>,
    /// The `__consumer_offsets` offset of the latest group metadata record applied.
    pub metadata_offset: Option<u64>,
    /// True while the group's timer task runs.
    pub timer: bool,
    /// When the group last lost its last member (ms since the epoch; 0 if unknown): offset
    /// retention counts from here for groups that had members.
    pub emptied_at_ms: i64,
    /// The KIP-848 state when this is a consumer group (None: a classic group).
    pub consumer: Option<super::consumer::ConsumerGroup>,
    /// Offsets committed in open transactions, by producer id (see `txn.rs`).
    pub pending_txn_offsets: HashMap<i64, Vec<super::txn::PendingOffset>>,
}

/// A JoinGroup error answer.
pub fn join_error(code: ResponseError, member_id: &str, version: i16) -> JoinGroupResponse {
    let response = JoinGroupResponse::default()
        .with_error_code(code.code())
        .with_generation_id(-1)
        .with_member_id(str_bytes(member_id));
    if version >= 7 {
        response.with_protocol_name(None)
    } else {
        response
    }
}

pub fn sync_error(code: ResponseError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(code.code())
}

impl Group {
    pub fn new(id: String) -> Group {
        Group {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            offsets: HashMap::new(),
            rebalance_deadline: None,
            join_not_before: None,
            join_delay_cap: None,
            metadata_offset: None,
            timer: false,
            emptied_at_ms: 0,
            consumer: None,
            pending_txn_offsets: HashMap::new(),
        }
    }

    /// Protocols every member supports, in `first`'s order of preference.
    fn common_protocols<'a>(&'a self, first: &'a [(String, Bytes)]) -> Vec<&'a str> {
        first
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect()
    }

    /// Whether a joining member with these protocols fits the group (Kafka's
    /// `supportsProtocols`).
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && !self.common_protocols(protocols).is_empty()
    }

    /// Checks the `group.instance.id` a request carries against the member id (Kafka's
    /// `validateMember`): another member holding the instance id means this one was fenced.
    pub fn check_member(
        &self,
        member_id: &str,
        instance: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance.filter(|i| !i.is_empty()) {
            match self.static_members.get(instance) {
                Some(holder) if holder != member_id => return Err(ResponseError::FencedInstanceId),
                Some(_) => {}
                None => return Err(ResponseError::UnknownMemberId),
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(ResponseError::UnknownMemberId)
        }
    }

    /// The topics the members subscribe to, when the group runs the consumer protocol and has
    /// members (OffsetDelete may not delete offsets of those); `None` for any other group.
    pub fn subscribed_topics(
        &self,
        metadata: &crate::cluster::metadata::MetadataSnapshot,
    ) -> Option<std::collections::HashSet<String>> {
        if let Some(consumer) = self.consumer.as_ref().filter(|c| !c.members.is_empty()) {
            return Some(consumer.subscribed_topics(metadata).into_iter().collect());
        }
        if self.state == GroupState::Empty || self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.as_deref()?;
        let mut topics = std::collections::HashSet::new();
        for member in self.members.values() {
            topics.extend(subscription_topics(&member.metadata_for(protocol)));
        }
        Some(topics)
    }

    pub fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// Starts a rebalance: waiting syncs are told to rejoin, assignments are dropped.
    pub fn prepare_rebalance(&mut self) {
        for member in self.members.values_mut() {
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(sync_error(ResponseError::RebalanceInProgress));
            }
            member.assignment = Bytes::new();
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO);
        self.state = GroupState::PreparingRebalance;
        self.rebalance_deadline = Some(Instant::now() + timeout);
        tracing::debug!(group = %self.id, generation = self.generation, "rebalance started");
    }

    fn become_empty(&mut self) {
        self.emptied_at_ms = crate::cluster::metadata::now_ms();
        self.state = GroupState::Empty;
        self.generation += 1;
        self.protocol = None;
        self.leader = None;
        self.rebalance_deadline = None;
    }

    /// Completes the join phase when every member has rejoined (or, with `force`, when the
    /// rebalance timeout passed: members that did not rejoin are removed).
    pub fn try_complete_join(&mut self, force: bool) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined =
            self.pending.is_empty() && self.members.values().all(|m| m.join_waiter.is_some());
        if !all_joined && !force {
            return;
        }
        if !force && self.join_not_before.is_some_and(|t| Instant::now() < t) {
            // The initial delay: more members may still come.
            return;
        }
        self.join_not_before = None;
        self.join_delay_cap = None;
        if force {
            self.members.retain(|_, m| m.join_waiter.is_some());
        }
        if self.members.is_empty() {
            self.become_empty();
            return;
        }
        self.generation += 1;
        let leader = match &self.leader {
            Some(l) if self.members.contains_key(l) => l.clone(),
            _ => self.members.keys().next().cloned().unwrap_or_default(),
        };
        let protocol = self
            .members
            .get(&leader)
            .map(|m| {
                self.common_protocols(&m.protocols)
                    .first()
                    .map(|s| s.to_string())
            })
            .unwrap_or_default();
        let Some(protocol) = protocol else {
            // Cannot happen: every member was admitted only if it shared a protocol.
            tracing::warn!(group = %self.id, "no protocol common to all members");
            for member in self.members.values_mut() {
                if let Some(w) = member.join_waiter.take() {
                    let _ = w.send(join_error(ResponseError::InconsistentGroupProtocol, "", 9));
                }
            }
            self.members.clear();
            self.become_empty();
            return;
        };
        self.leader = Some(leader.clone());
        self.protocol = Some(protocol.clone());
        self.state = GroupState::CompletingRebalance;
        self.rebalance_deadline = None;
        let now = Instant::now();
        let member_list: Vec<JoinGroupResponseMember> = self
            .members
            .iter()
            .map(|(id, m)| response_member(id, m, &protocol))
            .collect();
        let generation = self.generation;
        let protocol_type = self.protocol_type.clone().unwrap_or_default();
        for (id, member) in self.members.iter_mut() {
            member.last_seen = now;
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(self_join_response(
                    id,
                    generation,
                    &protocol_type,
                    &protocol,
                    &leader,
                    if *id == leader {
                        member_list.clone()
                    } else {
                        Vec::new()
                    },
                ));
            }
        }
        tracing::debug!(group = %self.id, generation, members = self.members.len(), %protocol, "join completed");
    }

    /// The answer to a member that rejoins without changes while the group is stable.
    pub fn current_join_response(&self, member_id: &str) -> JoinGroupResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if self.is_leader(member_id) {
            self.members
                .iter()
                .map(|(id, m)| response_member(id, m, &protocol))
                .collect()
        } else {
            Vec::new()
        };
        self_join_response(
            member_id,
            self.generation,
            self.protocol_type.as_deref().unwrap_or_default(),
            &protocol,
            &leader,
            members,
        )
    }

    /// Removes a member (left or expired); answers its waiting requests and rebalances the
    /// rest. Returns whether it was there.
    pub fn remove_member(&mut self, member_id: &str) -> bool {
        if self.pending.remove(member_id).is_some() {
            self.try_complete_join(false);
            return true;
        }
        let Some(member) = self.members.shift_remove(member_id) else {
            return false;
        };
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if let Some(w) = member.join_waiter {
            let _ = w.send(join_error(ResponseError::UnknownMemberId, member_id, 9));
        }
        if let Some(w) = member.sync_waiter {
            let _ = w.send(sync_error(ResponseError::UnknownMemberId));
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.become_empty();
                } else {
                    self.prepare_rebalance();
                }
            }
            GroupState::PreparingRebalance => {
                if self.members.is_empty() && self.pending.is_empty() {
                    self.become_empty();
                } else {
                    self.try_complete_join(false);
                }
            }
            GroupState::Empty => {}
        }
        true
    }

    /// Starts or extends the initial rebalance delay of a group whose first member joins now
    /// (Kafka's `InitialDelayedJoin`): each join while it runs pushes it back by `delay`, never
    /// past the rebalance timeout.
    pub fn delay_initial_join(&mut self, now: Instant, delay: Duration, rebalance: Duration) {
        if delay.is_zero() {
            return;
        }
        let cap = *self.join_delay_cap.get_or_insert(now + rebalance);
        self.join_not_before = Some((now + delay).min(cap));
    }

    /// The next instant the timer has work at: a session, pending id, rebalance or initial
    /// delay deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        if let Some(consumer) = &self.consumer {
            return consumer.next_deadline();
        }
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.last_seen + m.session_timeout);
        sessions
            .chain(self.pending.values().copied())
            .chain(self.rebalance_deadline)
            .chain(self.join_not_before)
            .min()
    }

    /// One timer tick: expires pending ids and silent members, ends overdue rebalances.
    /// Returns whether the group still needs its timer.
    pub fn tick(&mut self, now: Instant) -> bool {
        if let Some(consumer) = &mut self.consumer {
            return consumer.tick(now);
        }
        if self.join_not_before.is_some_and(|t| now >= t) {
            self.join_not_before = None;
            self.try_complete_join(false);
        }
        let before = self.pending.len();
        self.pending.retain(|_, deadline| now < *deadline);
        if self.pending.len() != before {
            self.try_complete_join(false);
        }
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| !m.alive(now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id);
        }
        if self.state == GroupState::PreparingRebalance
            && self.rebalance_deadline.is_some_and(|d| now >= d)
        {
            tracing::info!(group = %self.id, "rebalance timed out; removing members that did not rejoin");
            self.try_complete_join(true);
        }
        !self.members.is_empty() || !self.pending.is_empty()
    }

    /// The group metadata record for the current generation.
    pub fn metadata_value(&self, timestamp: i64) -> GroupValue {
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            timestamp,
        }
    }

    /// Applies a replayed group metadata record (members are not stored: the group is Empty).
    pub fn apply_metadata(&mut self, value: Option<GroupValue>, log_offset: u64) {
        self.metadata_offset = Some(log_offset);
        match value {
            Some(v) => {
                self.consumer = None;
                self.protocol_type = Some(v.protocol_type).filter(|t| !t.is_empty());
                self.generation = v.generation;
            }
            None => {
                // The group was deleted.
                self.protocol_type = None;
                self.metadata_offset = None;
            }
        }
    }

    /// Offsets due to expire at `now_ms` (only while the group has no members).
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        let has_members = !self.members.is_empty()
            || !self.pending.is_empty()
            || self
                .consumer
                .as_ref()
                .is_some_and(|c| !c.members.is_empty());
        if has_members {
            return Vec::new();
        }
        self.offsets
            .iter()
            .filter(|(_, c)| match c.value.expire_timestamp {
                Some(expire) => now_ms >= expire,
                None => {
                    let since = c.value.timestamp.max(self.emptied_at_ms);
                    now_ms.saturating_sub(since) >= retention_ms
                }
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Whether an open transaction has an offset for this partition pending (OffsetFetch with
    /// `require_stable` answers UNSTABLE_OFFSET_COMMIT then).
    pub fn has_pending_offset(&self, topic: &str, partition: i32) -> bool {
        self.pending_txn_offsets
            .values()
            .flatten()
            .any(|(t, p, _, _)| t == topic && *p == partition)
    }

    /// The group's type for ListGroups ("classic" or "consumer").
    pub fn group_type(&self) -> &'static str {
        if self.consumer.is_some() {
            "consumer"
        } else {
            "classic"
        }
    }

    /// The group's state name as clients see it.
    pub fn state_name(&self) -> &'static str {
        match &self.consumer {
            Some(consumer) => consumer.state_name(),
            None => self.state.name(),
        }
    }

    /// Whether the group holds nothing worth remembering (no members, offsets or metadata).
    pub fn is_forgettable(&self) -> bool {
        self.consumer.is_none()
            && self.pending_txn_offsets.is_empty()
            && self.members.is_empty()
            && self.pending.is_empty()
            && self.offsets.is_empty()
            && self.metadata_offset.is_none()
    }

    /// Applies an offset commit (live or replayed) unless a later one is already in.
    pub fn apply_offset(
        &mut self,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
        log_offset: u64,
    ) {
        let key = (topic, partition);
        if self
            .offsets
            .get(&key)
            .is_some_and(|c| c.log_offset > log_offset)
        {
            return;
        }
        match value {
            Some(value) => {
                self.offsets.insert(key, Committed { value, log_offset });
            }
            None => {
                self.offsets.remove(&key);
            }
        }
    }
}

/// The topics of a consumer's subscription metadata (`ConsumerProtocolSubscription`, whose
/// first two bytes are its version; newer versions only add fields, so they are read as the
/// newest this broker knows). Unreadable metadata subscribes to nothing.
fn subscription_topics(metadata: &Bytes) -> Vec<String> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    let mut buf = metadata.clone();
    if buf.len() < 2 {
        return Vec::new();
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]).clamp(0, 3);
    bytes::Buf::advance(&mut buf, 2);
    match ConsumerProtocolSubscription::decode(&mut buf, version) {
        Ok(subscription) => subscription.topics.iter().map(|t| t.to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

fn response_member(id: &str, member: &Member, protocol: &str) -> JoinGroupResponseMember {
    JoinGroupResponseMember::default()
        .with_member_id(str_bytes(id))
        .with_group_instance_id(member.instance_id.clone().map(str_bytes))
        .with_metadata(member.metadata_for(protocol))
}

fn self_join_response(
    member_id: &str,
    generation: i32,
    protocol_type: &str,
    protocol: &str,
    leader: &str,
    members: Vec<JoinGroupResponseMember>,
) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_generation_id(generation)
        .with_protocol_type(Some(str_bytes(protocol_type)))
        .with_protocol_name(Some(str_bytes(protocol)))
        .with_leader(str_bytes(leader))
        .with_member_id(str_bytes(member_id))
        .with_members(members)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn member(protocols: &[&str]) -> (Member, oneshot::Receiver<JoinGroupResponse>) {
        let (tx, rx) = oneshot::channel();
        let m = Member {
            instance_id: None,
            client_id: "c".into(),
            client_host: String::new(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from_static(b"m")))
                .collect(),
            assignment: Bytes::new(),
            join_waiter: Some(tx),
            sync_waiter: None,
            last_seen: Instant::now(),
        };
        (m, rx)
    }

    #[test]
    fn join_picks_a_common_protocol_in_the_leaders_order() {
        let mut g = Group::new("g".into());
        g.protocol_type = Some("consumer".into());
        let (a, mut ra) = member(&["range", "roundrobin"]);
        let (b, mut rb) = member(&["roundrobin", "range"]);
        g.members.insert("a".into(), a);
        g.prepare_rebalance();
        g.try_complete_join(false);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let first = ra.try_recv().unwrap();
        assert_eq!(first.generation_id, 1);
        g.members.get_mut("a").unwrap().join_waiter = None;
        g.members.insert("b".into(), b);
        g.prepare_rebalance();
        // a has not rejoined yet.
        g.try_complete_join(false);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        let (tx, mut ra2) = oneshot::channel();
        g.members.get_mut("a").unwrap().join_waiter = Some(tx);
        g.try_complete_join(false);
        let leader = ra2.try_recv().unwrap();
        let follower = rb.try_recv().unwrap();
        assert_eq!(leader.generation_id, 2);
        assert_eq!(leader.members.len(), 2);
        assert!(follower.members.is_empty());
        assert_eq!(leader.protocol_name.as_deref(), Some("range"));
        assert_eq!(leader.leader.as_str(), "a");
    }

    #[test]
    fn forced_completion_drops_members_that_did_not_rejoin() {
        let mut g = Group::new("g".into());
        let (a, _ra) = member(&["range"]);
        let (mut b, _rb) = member(&["range"]);
        b.join_waiter = None;
        g.members.insert("a".into(), a);
        g.members.insert("b".into(), b);
        g.prepare_rebalance();
        g.try_complete_join(false);
        assert_eq!(g.state, GroupState::PreparingRebalance);
        g.try_complete_join(true);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        assert_eq!(g.members.len(), 1);
    }
}
