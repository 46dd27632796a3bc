//! `native-bench`: the same workloads over sluice's native protocol and over the Kafka
//! protocol (librdkafka), on one broker, beside the references the bars are relative to (see
//! `src/bin/native_bench.rs`).

pub mod bars;
pub mod iperf;
pub mod run;
