//! Incremental fetch sessions (KIP-227): a consumer that fetches many partitions sends the full
//! list once, then only what changed; the broker answers with only the partitions that have
//! news (data, an error, or a moved high watermark or log start).
//!
//! Sessions live on the shard of the connection that created them (a client keeps one fetch
//! connection per broker). A session id unknown here — evicted, or the client reconnected to
//! another shard — is answered FETCH_SESSION_ID_NOT_FOUND, and the client starts a new one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

/// Sessions kept per shard (Kafka's `max.incremental.fetch.session.cache.slots` is 1000 per
/// broker); when full, a new session replaces the least recently used idle one, if any.
const SESSIONS_MAX: usize = 1000;
/// A session unused for this long may be evicted to make room.
const EVICTABLE_AFTER: Duration = Duration::from_secs(120);
/// A request with `session_epoch` -1 closes (or skips) sessions; 0 asks for a new one.
const FINAL_EPOCH: i32 = -1;
const INITIAL_EPOCH: i32 = 0;

/// A topic as a fetch names it: by name before v13, by id from v13.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicKey {
    pub name: String,
    pub id: Uuid,
}

/// One partition of a fetch: where to read and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchTarget {
    pub topic: TopicKey,
    pub partition: i32,
    pub offset: i64,
    pub max_bytes: i32,
}

#[derive(Debug, Clone)]
struct SessionPartition {
    offset: i64,
    max_bytes: i32,
    /// What the last response told the client, to decide whether there is news.
    sent_high_watermark: i64,
    sent_log_start: i64,
}

#[derive(Debug)]
struct Session {
    next_epoch: i32,
    partitions: IndexMap<(TopicKey, i32), SessionPartition>,
    last_used: Instant,
}

/// How a request relates to the session cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// A full fetch without a session (answer with session id 0).
    Sessionless,
    /// A full fetch that created session `id`.
    Full { id: i32 },
    /// An incremental fetch in session `id`.
    Incremental { id: i32 },
}

/// The fetch sessions of one shard.
#[derive(Debug, Default)]
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    last_id: i32,
}

impl FetchSessions {
    /// Applies a request to the cache and returns the partitions to read, in response order.
    pub fn begin(
        &mut self,
        session_id: i32,
        epoch: i32,
        requested: Vec<FetchTarget>,
        forgotten: Vec<(TopicKey, i32)>,
    ) -> Result<(SessionMode, Vec<FetchTarget>), ResponseError> {
        match epoch {
            FINAL_EPOCH => {
                self.sessions.remove(&session_id);
                Ok((SessionMode::Sessionless, requested))
            }
            INITIAL_EPOCH => {
                if session_id != 0 {
                    self.sessions.remove(&session_id);
                }
                match self.create(&requested) {
                    Some(id) => Ok((SessionMode::Full { id }, requested)),
                    None => Ok((SessionMode::Sessionless, requested)),
                }
            }
            _ => {
                let session = self
                    .sessions
                    .get_mut(&session_id)
                    .ok_or(ResponseError::FetchSessionIdNotFound)?;
                if session.next_epoch != epoch {
                    return Err(ResponseError::InvalidFetchSessionEpoch);
                }
                session.next_epoch = next_epoch(epoch);
                session.last_used = Instant::now();
                for key in forgotten {
                    session.partitions.shift_remove(&key);
                }
                for target in requested {
                    let entry = session
                        .partitions
                        .entry((target.topic.clone(), target.partition))
                        .or_insert(SessionPartition {
                            offset: 0,
                            max_bytes: 0,
                            sent_high_watermark: -1,
                            sent_log_start: -1,
                        });
                    entry.offset = target.offset;
                    entry.max_bytes = target.max_bytes;
                }
                let all = session
                    .partitions
                    .iter()
                    .map(|((topic, partition), p)| FetchTarget {
                        topic: topic.clone(),
                        partition: *partition,
                        offset: p.offset,
                        max_bytes: p.max_bytes,
                    })
                    .collect();
                Ok((SessionMode::Incremental { id: session_id }, all))
            }
        }
    }

    fn create(&mut self, requested: &[FetchTarget]) -> Option<i32> {
        if self.sessions.len() >= SESSIONS_MAX {
            let idle = self
                .sessions
                .iter()
                .filter(|(_, s)| s.last_used.elapsed() >= EVICTABLE_AFTER)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id)?;
            self.sessions.remove(&idle);
        }
        let id = self.next_id();
        let partitions = requested
            .iter()
            .map(|t| {
                let state = SessionPartition {
                    offset: t.offset,
                    max_bytes: t.max_bytes,
                    sent_high_watermark: -1,
                    sent_log_start: -1,
                };
                ((t.topic.clone(), t.partition), state)
            })
            .collect();
        self.sessions.insert(
            id,
            Session {
                next_epoch: 1,
                partitions,
                last_used: Instant::now(),
            },
        );
        Some(id)
    }

    fn next_id(&mut self) -> i32 {
        loop {
            self.last_id = if self.last_id >= i32::MAX - 1 {
                1
            } else {
                self.last_id + 1
            };
            if !self.sessions.contains_key(&self.last_id) {
                return self.last_id;
            }
        }
    }

    /// Records what a response told the client about a partition and says whether an
    /// incremental response must include it (it has data or an error, or its high watermark or
    /// log start moved since the client last heard).
    pub fn note_sent(
        &mut self,
        mode: SessionMode,
        target: &FetchTarget,
        high_watermark: i64,
        log_start: i64,
        news: bool,
    ) -> bool {
        let (SessionMode::Full { id } | SessionMode::Incremental { id }) = mode else {
            return true;
        };
        let Some(state) = self.sessions.get_mut(&id).and_then(|s| {
            s.partitions
                .get_mut(&(target.topic.clone(), target.partition))
        }) else {
            return true;
        };
        let changed =
            state.sent_high_watermark != high_watermark || state.sent_log_start != log_start;
        state.sent_high_watermark = high_watermark;
        state.sent_log_start = log_start;
        matches!(mode, SessionMode::Full { .. }) || news || changed
    }
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(p: i32, offset: i64) -> FetchTarget {
        FetchTarget {
            topic: TopicKey {
                name: "t".into(),
                id: Uuid::nil(),
            },
            partition: p,
            offset,
            max_bytes: 100,
        }
    }

    #[test]
    fn full_then_incremental_then_forget() {
        let mut cache = FetchSessions::default();
        let (mode, all) = cache
            .begin(0, 0, vec![target(0, 5), target(1, 7)], vec![])
            .unwrap();
        let SessionMode::Full { id } = mode else {
            panic!("{mode:?}")
        };
        assert_eq!(all.len(), 2);
        assert!(cache.note_sent(mode, &all[0], 10, 0, false));
        assert!(cache.note_sent(mode, &all[1], 10, 0, false));
        // Incremental: only partition 0 moved; both are fetched, only news is answered.
        let (mode, all) = cache.begin(id, 1, vec![target(0, 6)], vec![]).unwrap();
        assert_eq!(mode, SessionMode::Incremental { id });
        assert_eq!(all, vec![target(0, 6), target(1, 7)]);
        assert!(cache.note_sent(mode, &all[0], 10, 0, true), "data is news");
        assert!(
            !cache.note_sent(mode, &all[1], 10, 0, false),
            "unchanged partition is left out"
        );
        assert!(
            cache.note_sent(mode, &all[1], 11, 0, false),
            "a moved high watermark is news"
        );
        // Wrong epoch, unknown id, forgetting.
        assert_eq!(
            cache.begin(id, 1, vec![], vec![]),
            Err(ResponseError::InvalidFetchSessionEpoch)
        );
        assert_eq!(
            cache.begin(id + 1, 1, vec![], vec![]),
            Err(ResponseError::FetchSessionIdNotFound)
        );
        let forget = vec![(
            TopicKey {
                name: "t".into(),
                id: Uuid::nil(),
            },
            0,
        )];
        let (_, all) = cache.begin(id, 2, vec![], forget).unwrap();
        assert_eq!(all, vec![target(1, 7)]);
        // Epoch -1 closes it.
        assert_eq!(
            cache.begin(id, -1, vec![], vec![]).unwrap().0,
            SessionMode::Sessionless
        );
        assert_eq!(
            cache.begin(id, 3, vec![], vec![]),
            Err(ResponseError::FetchSessionIdNotFound)
        );
    }
}
