//! Sluice's partition log engine.
//!
//! A partition log is a directory of segments holding Kafka RecordBatch v2 bytes exactly as
//! they go on the wire, written through io_uring with O_DIRECT, with sparse indexes, a tail
//! cache, crash recovery and retention. The crate knows batches and offsets, nothing of Kafka's
//! APIs: it parses only the 61-byte batch header (see [`batch`]) and never depends on
//! `kafka-protocol`.
//!
//! # Layout
//! | module | job |
//! |---|---|
//! | [`log`] | `PartitionLog`: append, flush (group commit), read, truncate, retention, recovery |
//! | [`io`] | the I/O backends: io_uring, POSIX fallback, fault injection for tests |
//! | [`batch`] | the RecordBatch v2 header view and validation |
//! | [`scan`] | the pure recovery scanner (fuzzed) |
//! | `index`, `cache`, `state` | sparse indexes, tail cache, the partition state file |
//! | [`limits`] | every fixed bound, checked at compile time |
//! | [`runtime`] | starting a shard runtime on the best available backend |
//! | [`metrics`] | cache hits and misses, flush and fdatasync latency (the `metrics` facade) |
//!
//! The contract (appended versus durable, who may call what concurrently, alignment) is on
//! [`PartitionLog`].

pub mod aligned;
pub mod batch;
mod buffer_pool;
mod cache;
pub mod config;
pub mod error;
mod index;
pub mod io;
pub mod limits;
pub mod log;
pub mod metrics;
pub mod runtime;
pub mod scan;
mod state;

pub use aligned::AlignedBuf;
pub use cache::{shard_cache_bytes, share_cache_budget, CacheBudget};
pub use config::{FlushPolicy, LogConfig};
pub use error::{BatchError, Result, StorageError};
pub use io::{Backend, BackendChoice};
pub use log::maintenance::RetentionOutcome;
pub use log::{AppendInfo, LogStats, PartitionLog, ReadBatches, TimestampMatch};
pub use state::EpochEntry;
