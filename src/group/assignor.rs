//! Server-side partition assignors for KIP-848 consumer groups: pure functions from the members'
//! subscriptions (and their current target assignment, for stickiness) to a new target.
//!
//! - `uniform` (the default, like Kafka's): every member gets the same number of partitions,
//!   give or take one, and a partition stays with its member whenever balance allows, so a
//!   membership change moves as few partitions as possible.
//! - `range`: per topic, members sorted by id get contiguous ranges, so members of the same
//!   rank get the same partitions of co-partitioned topics.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

/// A member's partitions: topic id to partition indexes.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Assignor names, as members ask for them (`group.remote.assignor`).
pub const KNOWN: &[&str] = &["uniform", "range"];

/// What an assignor knows of one member.
#[derive(Debug)]
pub struct MemberSpec<'a> {
    pub id: &'a str,
    /// Ids of the (existing) topics it subscribes to.
    pub topics: BTreeSet<Uuid>,
    /// Its assignment in the previous target.
    pub current: Option<&'a Assignment>,
}

/// Runs the assignor `name` (one of [`KNOWN`]; anything else falls back to uniform) over
/// `partitions` (topic id to partition count). Every member gets an entry, maybe empty.
pub fn assign(
    name: &str,
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> HashMap<String, Assignment> {
    match name {
        "range" => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

fn uniform(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> HashMap<String, Assignment> {
    let mut result: HashMap<String, Assignment> = members
        .iter()
        .map(|m| (m.id.to_owned(), Assignment::new()))
        .collect();
    if members.is_empty() {
        return result;
    }
    // Every partition some member subscribes to.
    let wanted: Vec<(Uuid, i32)> = partitions
        .iter()
        .filter(|(topic, _)| members.iter().any(|m| m.topics.contains(topic)))
        .flat_map(|(topic, count)| (0..*count).map(move |p| (*topic, p)))
        .collect();
    let floor = wanted.len() / members.len();
    let mut extra_slots = wanted.len() % members.len();
    let mut owner: HashMap<(Uuid, i32), &str> = HashMap::new();
    let mut counts: HashMap<&str, usize> = HashMap::new();

    // Stickiness: each member keeps what it had, up to `floor`, and up to `floor + 1` while
    // there are extra slots to hand out (given to members in id order).
    let mut by_id: Vec<&MemberSpec<'_>> = members.iter().collect();
    by_id.sort_by(|a, b| a.id.cmp(b.id));
    for pass in 0..2 {
        for member in &by_id {
            let Some(current) = member.current else {
                continue;
            };
            let have = counts.get(member.id).copied().unwrap_or(0);
            let limit = if pass == 0 {
                floor
            } else if have == floor && extra_slots > 0 {
                floor + 1
            } else {
                continue;
            };
            let mut kept = have;
            for (topic, indexes) in current {
                let count = partitions.get(topic).copied().unwrap_or(0);
                if !member.topics.contains(topic) {
                    continue;
                }
                for &index in indexes {
                    if kept >= limit {
                        break;
                    }
                    if index < count && !owner.contains_key(&(*topic, index)) {
                        owner.insert((*topic, index), member.id);
                        kept += 1;
                    }
                }
            }
            if pass == 1 && kept > floor {
                extra_slots -= 1;
            }
            counts.insert(member.id, kept);
        }
    }

    // The rest go to the least loaded subscribed member (ties by id).
    for partition in &wanted {
        if owner.contains_key(partition) {
            continue;
        }
        let choice = by_id
            .iter()
            .filter(|m| m.topics.contains(&partition.0))
            .min_by_key(|m| (counts.get(m.id).copied().unwrap_or(0), m.id));
        if let Some(member) = choice {
            owner.insert(*partition, member.id);
            *counts.entry(member.id).or_default() += 1;
        }
    }
    for ((topic, index), member) in owner {
        if let Some(assignment) = result.get_mut(member) {
            assignment.entry(topic).or_default().insert(index);
        }
    }
    result
}

fn range(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> HashMap<String, Assignment> {
    let mut result: HashMap<String, Assignment> = members
        .iter()
        .map(|m| (m.id.to_owned(), Assignment::new()))
        .collect();
    for (topic, count) in partitions {
        let mut subscribed: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.id)
            .collect();
        if subscribed.is_empty() {
            continue;
        }
        subscribed.sort_unstable();
        let count = (*count).max(0) as usize;
        let share = count / subscribed.len();
        let extra = count % subscribed.len();
        let mut next = 0usize;
        for (rank, member) in subscribed.iter().enumerate() {
            let take = share + usize::from(rank < extra);
            if take > 0 {
                if let Some(assignment) = result.get_mut(*member) {
                    assignment
                        .entry(*topic)
                        .or_default()
                        .extend((next..next + take).map(|p| p as i32));
                }
            }
            next += take;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(n: u128) -> Vec<Uuid> {
        (1..=n).map(Uuid::from_u128).collect()
    }

    fn sizes(result: &HashMap<String, Assignment>) -> Vec<usize> {
        let mut s: Vec<usize> = result
            .values()
            .map(|a| a.values().map(BTreeSet::len).sum())
            .collect();
        s.sort_unstable();
        s
    }

    #[test]
    fn uniform_is_balanced_and_complete() {
        let t = topics(2);
        let partitions = BTreeMap::from([(t[0], 5), (t[1], 3)]);
        let subscribed: BTreeSet<Uuid> = t.iter().copied().collect();
        let members: Vec<MemberSpec<'_>> = ["a", "b", "c"]
            .iter()
            .map(|id| MemberSpec {
                id,
                topics: subscribed.clone(),
                current: None,
            })
            .collect();
        let result = assign("uniform", &members, &partitions);
        assert_eq!(sizes(&result), vec![2, 3, 3]);
        let mut all = BTreeSet::new();
        for a in result.values() {
            for (topic, ps) in a {
                for p in ps {
                    assert!(all.insert((*topic, *p)), "assigned twice");
                }
            }
        }
        assert_eq!(all.len(), 8);
    }

    #[test]
    fn uniform_moves_only_what_balance_needs() {
        let t = topics(1);
        let partitions = BTreeMap::from([(t[0], 6)]);
        let subscribed = BTreeSet::from([t[0]]);
        let alone = Assignment::from([(t[0], (0..6).collect())]);
        let members = vec![
            MemberSpec {
                id: "a",
                topics: subscribed.clone(),
                current: Some(&alone),
            },
            MemberSpec {
                id: "b",
                topics: subscribed.clone(),
                current: None,
            },
        ];
        let result = assign("uniform", &members, &partitions);
        assert_eq!(sizes(&result), vec![3, 3]);
        // a kept three of its own; b got the other three.
        let a = &result["a"][&t[0]];
        assert!(a.is_subset(&(0..6).collect()));
        assert_eq!(a.len(), 3);
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let t = topics(2);
        let partitions = BTreeMap::from([(t[0], 2), (t[1], 2)]);
        let members = vec![
            MemberSpec {
                id: "a",
                topics: BTreeSet::from([t[0]]),
                current: None,
            },
            MemberSpec {
                id: "b",
                topics: BTreeSet::from([t[0], t[1]]),
                current: None,
            },
        ];
        let result = assign("uniform", &members, &partitions);
        assert!(!result["a"].contains_key(&t[1]));
        assert_eq!(result["b"].get(&t[1]).map(BTreeSet::len), Some(2));
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let t = topics(2);
        let partitions = BTreeMap::from([(t[0], 5), (t[1], 5)]);
        let subscribed: BTreeSet<Uuid> = t.iter().copied().collect();
        let members: Vec<MemberSpec<'_>> = ["b", "a"]
            .iter()
            .map(|id| MemberSpec {
                id,
                topics: subscribed.clone(),
                current: None,
            })
            .collect();
        let result = assign("range", &members, &partitions);
        for topic in &t {
            assert_eq!(result["a"][topic], BTreeSet::from([0, 1, 2]));
            assert_eq!(result["b"][topic], BTreeSet::from([3, 4]));
        }
    }
}
