//! Cluster metadata: topics, their ids, partition counts and config overrides.
//!
//! Single-node today: the metadata log is a local partition log owned by shard 0. The design
//! (`../shared/DESIGN.md` §8) makes it the controller Raft group's log; the event format and the
//! snapshot published to every shard stay the same.

pub mod metadata;
pub mod topic_config;
