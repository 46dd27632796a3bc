//! KIP-848 consumer groups: the broker computes the assignment and each member converges to it
//! through heartbeats, one epoch at a time.
//!
//! ```text
//! group epoch      bumped by every membership, subscription or subscribed-metadata change
//! assignment epoch the group epoch the target assignment was computed for
//! member epoch     the assignment epoch a member has caught up with
//! ```
//! A heartbeat updates the member, recomputes the target when the group epoch moved ahead
//! ([`super::assignor`]), then reconciles the member (Kafka's `CurrentAssignmentBuilder`): a
//! member first gives up the partitions the target takes from it (UNREVOKED_PARTITIONS: its
//! epoch does not move until its heartbeat no longer lists them), then gets the new ones that no
//! other member still holds (UNRELEASED_PARTITIONS until the rest are free), and its epoch moves
//! to the assignment epoch. So no partition is ever owned by two members at once.
//!
//! Members are kept in memory only; the group's type and epoch are records in
//! `__consumer_offsets` (Kafka's `ConsumerGroupMetadata`), so after a restart members find
//! themselves unknown, rejoin with epoch 0 and resume from their committed offsets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::assignor::{self, Assignment, MemberSpec};
use crate::cluster::metadata::MetadataSnapshot;

/// Longest regular expression accepted as a subscription.
const MAX_REGEX_LEN: usize = 1024;
/// Most topics one member may subscribe to by name.
pub const MAX_SUBSCRIBED_TOPICS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    /// Waiting for the member to confirm it gave up `revoking`.
    UnrevokedPartitions,
    /// Waiting for other members to give up partitions of this member's target.
    UnreleasedPartitions,
}

#[derive(Debug)]
pub struct ConsumerMember {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_names: BTreeSet<String>,
    pub subscribed_regex: Option<(String, regex::Regex)>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout: Duration,
    pub epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub revoking: Assignment,
    /// When the member must have revoked by (else it is removed).
    pub revoke_deadline: Option<Instant>,
    pub last_seen: Instant,
    /// The assignment last sent to the member (None: never, or must be sent again).
    pub sent: Option<Assignment>,
    /// A static member that left temporarily (epoch -2): its place is kept for a session.
    pub parked: bool,
}

impl ConsumerMember {
    fn subscribes(&self, topic: &str) -> bool {
        self.subscribed_names.contains(topic)
            || self
                .subscribed_regex
                .as_ref()
                .is_some_and(|(_, re)| re.is_match(topic))
    }

    /// Ids of the existing topics this member subscribes to.
    fn topic_ids(&self, metadata: &MetadataSnapshot) -> BTreeSet<Uuid> {
        let mut ids: BTreeSet<Uuid> = self
            .subscribed_names
            .iter()
            .filter_map(|name| metadata.topic(name).map(|t| t.id))
            .collect();
        if let Some((_, re)) = &self.subscribed_regex {
            ids.extend(
                metadata
                    .topics
                    .values()
                    .filter(|t| !t.name.starts_with("__") && re.is_match(&t.name))
                    .map(|t| t.id),
            );
        }
        ids
    }
}

/// The KIP-848 state of a group.
#[derive(Debug, Default)]
pub struct ConsumerGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    /// The epoch last written to `__consumer_offsets`.
    pub persisted_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub static_members: HashMap<String, String>,
    pub target: HashMap<String, Assignment>,
    /// Partition counts of the subscribed topics when the target was computed.
    pub subscribed_partitions: BTreeMap<Uuid, i32>,
    pub assignor: String,
    /// Members silent this long are removed (group.consumer.session.timeout.ms).
    pub session_timeout: Duration,
    /// (metadata version, group epoch) when the subscribed partitions were last resolved:
    /// heartbeats skip the work while neither moved.
    resolved_at: Option<(u64, i32)>,
}

/// A heartbeat, decoded and checked.
#[derive(Debug)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_names: Option<Vec<String>>,
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// What the heartbeat answers.
#[derive(Debug)]
pub struct Answer {
    pub member_id: String,
    pub member_epoch: i32,
    /// The member's partitions, when they changed since it was last told.
    pub assignment: Option<Assignment>,
}

/// Group-level settings a heartbeat needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub session_timeout: Duration,
    pub assignors: Vec<String>,
}

/// The epoch a member sends to leave, and to leave for now keeping its place (static).
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

impl ConsumerGroup {
    pub fn restored(epoch: i32) -> ConsumerGroup {
        ConsumerGroup {
            epoch,
            assignment_epoch: epoch,
            persisted_epoch: epoch,
            ..ConsumerGroup::default()
        }
    }

    /// Kafka's state names for ListGroups and ConsumerGroupDescribe.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.epoch != self.assignment_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Topics any member subscribes to (OffsetDelete keeps their offsets).
    pub fn subscribed_topics(&self, metadata: &MetadataSnapshot) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for member in self.members.values() {
            names.extend(member.subscribed_names.iter().cloned());
            if member.subscribed_regex.is_some() {
                names.extend(
                    metadata
                        .topics
                        .keys()
                        .filter(|t| member.subscribes(t))
                        .cloned(),
                );
            }
        }
        names
    }

    /// Checks an offset commit or fetch of a member against its epoch.
    pub fn check_member_epoch(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        let member = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if epoch > member.epoch {
            Err(ResponseError::FencedMemberEpoch)
        } else if epoch < member.epoch {
            Err(ResponseError::StaleMemberEpoch)
        } else {
            Ok(())
        }
    }

    /// Handles one heartbeat at `now`.
    pub fn heartbeat(
        &mut self,
        request: Heartbeat,
        metadata: &MetadataSnapshot,
        settings: &Settings,
        now: Instant,
    ) -> Result<Answer, ResponseError> {
        self.session_timeout = settings.session_timeout;
        if let Some(assignor) = &request.server_assignor {
            if !settings.assignors.iter().any(|a| a == assignor) {
                return Err(ResponseError::UnsupportedAssignor);
            }
        }
        match request.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => return self.leave(request, now),
            0 => self.join(&request, now)?,
            epoch if epoch > 0 => self.check_epoch(&request)?,
            _ => return Err(ResponseError::InvalidRequest),
        }
        let member_id = request.member_id.clone();
        self.update_member(request, now)?;
        self.refresh_metadata(metadata);
        if self.epoch > self.assignment_epoch {
            self.compute_target(metadata, settings);
        }
        self.reconcile(&member_id, now);
        let member = self
            .members
            .get_mut(&member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        let assignment = if member.sent.as_ref() != Some(&member.assigned) {
            member.sent = Some(member.assigned.clone());
            Some(member.assigned.clone())
        } else {
            None
        };
        Ok(Answer {
            member_id,
            member_epoch: member.epoch,
            assignment,
        })
    }

    fn join(&mut self, request: &Heartbeat, now: Instant) -> Result<(), ResponseError> {
        if request.rebalance_timeout_ms <= 0
            || (request.subscribed_names.is_none() && request.subscribed_regex.is_none())
            || request.owned.as_ref().is_some_and(|o| !o.is_empty())
        {
            return Err(ResponseError::InvalidRequest);
        }
        if let Some(instance) = &request.instance_id {
            if let Some(holder) = self.static_members.get(instance).cloned() {
                if holder != request.member_id {
                    let parked = self.members.get(&holder).is_some_and(|m| m.parked);
                    if !parked {
                        return Err(ResponseError::UnreleasedInstanceId);
                    }
                    // The static member comes back under a new member id: it takes over its
                    // old place, assignment and epoch, and nobody rebalances.
                    if let Some(mut old) = self.members.remove(&holder) {
                        old.parked = false;
                        old.sent = None;
                        old.last_seen = now;
                        if let Some(target) = self.target.remove(&holder) {
                            self.target.insert(request.member_id.clone(), target);
                        }
                        self.members.insert(request.member_id.clone(), old);
                        self.static_members
                            .insert(instance.clone(), request.member_id.clone());
                        tracing::info!(%instance, old = %holder, new = %request.member_id, "static member rejoined");
                        return Ok(());
                    }
                }
            }
        }
        match self.members.get_mut(&request.member_id) {
            Some(member) => {
                // Rejoining (after being fenced, say): it starts over owning nothing.
                member.epoch = 0;
                member.previous_epoch = 0;
                member.assigned.clear();
                member.revoking.clear();
                member.state = MemberState::Stable;
                member.sent = None;
                member.revoke_deadline = None;
            }
            None => {
                if self.members.len() >= super::state::MAX_MEMBERS {
                    return Err(ResponseError::GroupMaxSizeReached);
                }
                self.members.insert(
                    request.member_id.clone(),
                    ConsumerMember {
                        instance_id: request.instance_id.clone(),
                        rack_id: None,
                        client_id: String::new(),
                        client_host: String::new(),
                        subscribed_names: BTreeSet::new(),
                        subscribed_regex: None,
                        server_assignor: None,
                        rebalance_timeout: Duration::ZERO,
                        epoch: 0,
                        previous_epoch: 0,
                        state: MemberState::Stable,
                        assigned: Assignment::new(),
                        revoking: Assignment::new(),
                        revoke_deadline: None,
                        last_seen: now,
                        sent: None,
                        parked: false,
                    },
                );
                if let Some(instance) = &request.instance_id {
                    self.static_members
                        .insert(instance.clone(), request.member_id.clone());
                }
                self.epoch += 1;
                tracing::debug!(member = %request.member_id, epoch = self.epoch, "member joins");
            }
        }
        Ok(())
    }

    fn check_epoch(&self, request: &Heartbeat) -> Result<(), ResponseError> {
        if let Some(instance) = &request.instance_id {
            if let Some(holder) = self.static_members.get(instance) {
                if *holder != request.member_id {
                    return Err(ResponseError::FencedInstanceId);
                }
            }
        }
        let member = self
            .members
            .get(&request.member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if request.member_epoch == member.epoch {
            return Ok(());
        }
        // The member missed our last answer: it may keep its previous epoch as long as it owns
        // nothing it should not.
        let owns_only_assigned = request.owned.as_ref().is_some_and(|owned| {
            owned.iter().all(|(topic, partitions)| {
                member
                    .assigned
                    .get(topic)
                    .is_some_and(|a| partitions.is_subset(a))
            })
        });
        if request.member_epoch == member.previous_epoch && owns_only_assigned {
            Ok(())
        } else {
            Err(ResponseError::FencedMemberEpoch)
        }
    }

    fn update_member(&mut self, request: Heartbeat, now: Instant) -> Result<(), ResponseError> {
        let regex = match &request.subscribed_regex {
            Some(r) if r.len() > MAX_REGEX_LEN => {
                return Err(ResponseError::InvalidRegularExpression)
            }
            Some(r) if !r.is_empty() => Some(
                regex::Regex::new(&format!("^(?:{r})$"))
                    .map(|re| (r.clone(), re))
                    .map_err(|_| ResponseError::InvalidRegularExpression)?,
            ),
            _ => None,
        };
        let member = self
            .members
            .get_mut(&request.member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        let mut changed = false;
        if let Some(names) = request.subscribed_names {
            let names: BTreeSet<String> = names.into_iter().collect();
            if names != member.subscribed_names {
                member.subscribed_names = names;
                changed = true;
            }
        }
        if request.subscribed_regex.is_some() {
            let before = member.subscribed_regex.as_ref().map(|(s, _)| s.clone());
            let after = regex.as_ref().map(|(s, _)| s.clone());
            if before != after {
                member.subscribed_regex = regex;
                changed = true;
            }
        }
        if request.server_assignor.is_some() && request.server_assignor != member.server_assignor {
            member.server_assignor = request.server_assignor;
            changed = true;
        }
        if request.rebalance_timeout_ms > 0 {
            member.rebalance_timeout = Duration::from_millis(request.rebalance_timeout_ms as u64);
        }
        if request.rack_id.is_some() {
            member.rack_id = request.rack_id;
        }
        if request.instance_id.is_some() {
            member.instance_id = request.instance_id;
        }
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.last_seen = now;
        // A member in the middle of revoking tells us what it still owns.
        if let (Some(owned), MemberState::UnrevokedPartitions) = (&request.owned, member.state) {
            let still_revoking = member.revoking.iter().any(|(topic, partitions)| {
                owned.get(topic).is_some_and(|o| !o.is_disjoint(partitions))
            });
            if !still_revoking {
                member.revoking.clear();
                member.revoke_deadline = None;
                member.state = MemberState::Stable;
            }
        }
        // A full heartbeat (after a reconnect, say) that disagrees with what we sent: send again.
        if request.owned.is_some() && request.member_epoch > 0 {
            let owned = request.owned.unwrap_or_default();
            if member.sent.is_some() && owned != member.assigned {
                member.sent = None;
            }
        }
        if changed {
            self.epoch += 1;
        }
        Ok(())
    }

    /// Bumps the group epoch when a subscribed topic appeared, vanished or grew.
    fn refresh_metadata(&mut self, metadata: &MetadataSnapshot) {
        if self.resolved_at == Some((metadata.version, self.epoch)) {
            return;
        }
        let mut ids = BTreeSet::new();
        for member in self.members.values() {
            ids.extend(member.topic_ids(metadata));
        }
        let current: BTreeMap<Uuid, i32> = ids
            .into_iter()
            .filter_map(|id| metadata.topic_by_id(&id).map(|t| (id, t.partitions)))
            .collect();
        if current != self.subscribed_partitions {
            self.subscribed_partitions = current;
            self.epoch += 1;
        }
        self.resolved_at = Some((metadata.version, self.epoch));
    }

    /// The assignor members asked for (the most popular; ties by name), else the default.
    fn pick_assignor(&self, settings: &Settings) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(a) = &member.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map(|(name, _)| name.to_owned())
            .or_else(|| settings.assignors.first().cloned())
            .unwrap_or_else(|| "uniform".to_owned())
    }

    fn compute_target(&mut self, metadata: &MetadataSnapshot, settings: &Settings) {
        let assignor = self.pick_assignor(settings);
        let specs: Vec<MemberSpec<'_>> = self
            .members
            .iter()
            .map(|(id, m)| MemberSpec {
                id,
                topics: m.topic_ids(metadata),
                current: self.target.get(id),
            })
            .collect();
        let target = assignor::assign(&assignor, &specs, &self.subscribed_partitions);
        self.target = target;
        self.assignor = assignor;
        self.assignment_epoch = self.epoch;
        tracing::debug!(epoch = self.epoch, assignor = %self.assignor, members = self.members.len(), "target assignment computed");
    }

    /// Whether a member other than `member_id` holds (or is still revoking) a partition.
    fn held_by_other(&self, member_id: &str, topic: &Uuid, partition: i32) -> bool {
        self.members.iter().any(|(id, m)| {
            id != member_id
                && (m
                    .assigned
                    .get(topic)
                    .is_some_and(|p| p.contains(&partition))
                    || m.revoking
                        .get(topic)
                        .is_some_and(|p| p.contains(&partition)))
        })
    }

    /// Moves a member one step towards its target.
    fn reconcile(&mut self, member_id: &str, now: Instant) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let Some(member) = self.members.get(member_id) else {
            return;
        };
        if member.state == MemberState::UnrevokedPartitions {
            return;
        }
        if member.state == MemberState::Stable
            && member.epoch == assignment_epoch
            && member.assigned == target
        {
            return;
        }
        // What it must give up first.
        let mut keep = Assignment::new();
        let mut revoke = Assignment::new();
        for (topic, partitions) in &member.assigned {
            for &p in partitions {
                let side = if target.get(topic).is_some_and(|t| t.contains(&p)) {
                    &mut keep
                } else {
                    &mut revoke
                };
                side.entry(*topic).or_default().insert(p);
            }
        }
        if !revoke.is_empty() {
            let deadline = now + member.rebalance_timeout;
            if let Some(member) = self.members.get_mut(member_id) {
                member.assigned = keep;
                member.revoking = revoke;
                member.state = MemberState::UnrevokedPartitions;
                member.revoke_deadline = Some(deadline);
            }
            return;
        }
        // Then what it may take: the target's partitions nobody else holds any more.
        let mut assigned = keep;
        let mut unreleased = false;
        for (topic, partitions) in &target {
            for &p in partitions {
                if assigned.get(topic).is_some_and(|a| a.contains(&p)) {
                    continue;
                }
                if self.held_by_other(member_id, topic, p) {
                    unreleased = true;
                } else {
                    assigned.entry(*topic).or_default().insert(p);
                }
            }
        }
        if let Some(member) = self.members.get_mut(member_id) {
            member.assigned = assigned;
            if member.epoch != assignment_epoch {
                member.previous_epoch = member.epoch;
                member.epoch = assignment_epoch;
            }
            member.state = if unreleased {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            };
        }
    }

    fn leave(&mut self, request: Heartbeat, now: Instant) -> Result<Answer, ResponseError> {
        let member_id = match &request.instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(holder) if *holder != request.member_id => {
                    return Err(ResponseError::FencedInstanceId)
                }
                Some(holder) => holder.clone(),
                None => request.member_id.clone(),
            },
            None => request.member_id.clone(),
        };
        if !self.members.contains_key(&member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if request.member_epoch == STATIC_LEAVE_EPOCH && request.instance_id.is_some() {
            // Keeps its partitions and place for a session; nobody rebalances.
            if let Some(member) = self.members.get_mut(&member_id) {
                member.parked = true;
                member.last_seen = now;
            }
        } else {
            self.remove_member(&member_id);
        }
        Ok(Answer {
            member_id,
            member_epoch: request.member_epoch,
            assignment: None,
        })
    }

    pub fn remove_member(&mut self, member_id: &str) {
        if let Some(member) = self.members.remove(member_id) {
            if let Some(instance) = &member.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
            self.target.remove(member_id);
            self.epoch += 1;
            tracing::debug!(member = %member_id, epoch = self.epoch, "member left");
        }
    }

    /// When the next member may expire (session or revocation deadline).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|m| [Some(m.last_seen + self.session_timeout), m.revoke_deadline])
            .flatten()
            .min()
    }

    /// Removes members whose session expired or that did not revoke in time. Returns whether
    /// the group still has members.
    pub fn tick(&mut self, now: Instant) -> bool {
        let session_timeout = self.session_timeout;
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                now >= m.last_seen + session_timeout || m.revoke_deadline.is_some_and(|d| now >= d)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            tracing::info!(member = %id, "member removed: session expired or revocation overdue");
            self.remove_member(&id);
        }
        !self.members.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::cluster::metadata::TopicInfo;
    use std::sync::Arc;

    fn metadata(topics: &[(&str, i32)]) -> MetadataSnapshot {
        let mut snapshot = MetadataSnapshot::default();
        for (i, (name, partitions)) in topics.iter().enumerate() {
            let id = Uuid::from_u128(i as u128 + 1);
            snapshot.topics.insert(
                name.to_string(),
                Arc::new(TopicInfo {
                    name: name.to_string(),
                    id,
                    partitions: *partitions,
                    configs: BTreeMap::new(),
                }),
            );
            snapshot.by_id.insert(id, name.to_string());
        }
        snapshot
    }

    fn settings() -> Settings {
        Settings {
            session_timeout: Duration::from_secs(45),
            assignors: vec!["uniform".into(), "range".into()],
        }
    }

    fn beat(member: &str, epoch: i32, owned: Option<Assignment>) -> Heartbeat {
        Heartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 30_000,
            subscribed_names: (epoch == 0).then(|| vec!["t".to_string()]),
            subscribed_regex: None,
            server_assignor: None,
            owned: owned.or_else(|| (epoch == 0).then(Assignment::new)),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn second_member_gets_partitions_only_after_the_first_revokes() {
        let md = metadata(&[("t", 4)]);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = g
            .heartbeat(beat("a", 0, None), &md, &settings(), now)
            .unwrap();
        assert_eq!(count(a.assignment.as_ref().unwrap()), 4);
        let a_epoch = a.member_epoch;
        let a_owned = a.assignment.unwrap();

        let b = g
            .heartbeat(beat("b", 0, None), &md, &settings(), now)
            .unwrap();
        // Everything is still a's: b waits with nothing.
        assert_eq!(count(b.assignment.as_ref().unwrap()), 0);
        assert_eq!(g.state_name(), "Reconciling");

        // a is told to keep two (epoch unchanged until it confirms).
        let a2 = g
            .heartbeat(beat("a", a_epoch, Some(a_owned)), &md, &settings(), now)
            .unwrap();
        assert_eq!(a2.member_epoch, a_epoch);
        let kept = a2.assignment.unwrap();
        assert_eq!(count(&kept), 2);
        // a confirms; its epoch moves on.
        let a3 = g
            .heartbeat(
                beat("a", a_epoch, Some(kept.clone())),
                &md,
                &settings(),
                now,
            )
            .unwrap();
        assert!(a3.member_epoch > a_epoch);
        // b now gets the other two.
        let b2 = g
            .heartbeat(
                beat("b", b.member_epoch, Some(Assignment::new())),
                &md,
                &settings(),
                now,
            )
            .unwrap();
        let got = b2.assignment.unwrap();
        assert_eq!(count(&got), 2);
        for (topic, ps) in &got {
            assert!(kept.get(topic).is_none_or(|k| k.is_disjoint(ps)));
        }
        assert_eq!(g.state_name(), "Stable");
    }

    #[test]
    fn stale_epochs_are_fenced_and_sessions_expire() {
        let md = metadata(&[("t", 2)]);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let a = g
            .heartbeat(beat("a", 0, None), &md, &settings(), now)
            .unwrap();
        let err = g
            .heartbeat(beat("a", a.member_epoch + 5, None), &md, &settings(), now)
            .unwrap_err();
        assert_eq!(err, ResponseError::FencedMemberEpoch);
        assert_eq!(
            g.heartbeat(beat("zz", 3, None), &md, &settings(), now)
                .unwrap_err(),
            ResponseError::UnknownMemberId
        );
        assert!(g.tick(now));
        assert!(!g.tick(now + Duration::from_secs(46)));
        assert_eq!(g.state_name(), "Empty");
    }

    #[test]
    fn a_static_member_returns_to_its_place_without_a_new_epoch() {
        let md = metadata(&[("t", 2)]);
        let now = Instant::now();
        let mut g = ConsumerGroup::default();
        let mut join = beat("first", 0, None);
        join.instance_id = Some("i".into());
        let first = g.heartbeat(join, &md, &settings(), now).unwrap();
        let owned = first.assignment.unwrap();
        let epoch = g.epoch;
        // A second process with the same instance id while the first is active: refused.
        let mut dup = beat("dup", 0, None);
        dup.instance_id = Some("i".into());
        assert_eq!(
            g.heartbeat(dup, &md, &settings(), now).unwrap_err(),
            ResponseError::UnreleasedInstanceId
        );
        // The first leaves for now (epoch -2), and comes back under a new member id.
        let mut park = beat("first", STATIC_LEAVE_EPOCH, None);
        park.instance_id = Some("i".into());
        g.heartbeat(park, &md, &settings(), now).unwrap();
        let mut back = beat("second", 0, None);
        back.instance_id = Some("i".into());
        let second = g.heartbeat(back, &md, &settings(), now).unwrap();
        assert_eq!(second.assignment.unwrap(), owned);
        assert_eq!(g.epoch, epoch, "no rebalance");
        assert!(!g.members.contains_key("first"));
    }
}
