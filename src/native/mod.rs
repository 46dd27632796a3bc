//! The native protocol front end (spec: `protocol/NATIVE.md`, codec: `protocol::native`).
//!
//! ```text
//! listener (every shard, SO_REUSEPORT) -> connection.rs: length check before allocating,
//!   memory budget, decode -> handlers::dispatch (one file per op) -> the same internal paths
//!   the Kafka handlers use (produce, topics, group offsets) -> answer frames, out of order
//! SUBSCRIBE -> subscription.rs: a task on the connection's shard reading the partition on its
//!   owner shard up to the high watermark and pushing whole batches within the client's credit
//! ```

pub mod connection;
mod handlers;
mod subscription;
