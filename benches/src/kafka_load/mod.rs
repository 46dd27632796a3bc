//! `kafka-load`: the librdkafka load generator (see `src/bin/kafka_load.rs` for what it runs).

pub mod client;
pub mod consume;
pub mod disk;
pub mod latency;
pub mod plan;
pub mod produce;
pub mod report;
pub mod sink;
pub mod targets;
