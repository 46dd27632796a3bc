//! What the engine counts, through the `metrics` facade: a no-op until the program embedding
//! the engine installs a recorder (the broker renders them as Prometheus text on `/metrics`).
//!
//! | name | kind | what |
//! |---|---|---|
//! | `sluice_storage_cache_hits_total` | counter | reads served from the tail cache (no I/O) |
//! | `sluice_storage_cache_misses_total` | counter | reads that went to disk (O_DIRECT, read-ahead window) |
//! | `sluice_storage_prefetched_reads_total` | counter | disk reads a sequential reader found already done in the background |
//! | `sluice_storage_read_bytes_total` | counter | bytes read from segment files (cold reads, prefetches, recovery) |
//! | `sluice_storage_flush_seconds` | histogram | one flush (group commit): preallocate, write, fdatasync, seal |
//! | `sluice_storage_fdatasync_seconds` | histogram | one `fdatasync` of a segment file during a flush |
//!
//! Counters are process-wide and monotonic (they survive a partition's deletion or reopening),
//! which is why they live here and are not per-log fields read at scrape time. The handles are
//! looked up once per thread (a log is owned by one thread), so counting costs one atomic add.

use std::time::Duration;

pub const CACHE_HITS: &str = "sluice_storage_cache_hits_total";
pub const CACHE_MISSES: &str = "sluice_storage_cache_misses_total";
pub const PREFETCHED_READS: &str = "sluice_storage_prefetched_reads_total";
pub const READ_BYTES: &str = "sluice_storage_read_bytes_total";
pub const FLUSH_SECONDS: &str = "sluice_storage_flush_seconds";
pub const FDATASYNC_SECONDS: &str = "sluice_storage_fdatasync_seconds";

thread_local! {
    static HANDLES: Handles = Handles {
        cache_hits: metrics::counter!(CACHE_HITS),
        cache_misses: metrics::counter!(CACHE_MISSES),
        prefetched_reads: metrics::counter!(PREFETCHED_READS),
        read_bytes: metrics::counter!(READ_BYTES),
        flush: metrics::histogram!(FLUSH_SECONDS),
        fdatasync: metrics::histogram!(FDATASYNC_SECONDS),
    };
}

struct Handles {
    cache_hits: metrics::Counter,
    cache_misses: metrics::Counter,
    prefetched_reads: metrics::Counter,
    read_bytes: metrics::Counter,
    flush: metrics::Histogram,
    fdatasync: metrics::Histogram,
}

/// Describes the metrics (their HELP text) to the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        CACHE_HITS,
        "Log reads served from the tail cache, without I/O."
    );
    metrics::describe_counter!(
        CACHE_MISSES,
        "Log reads that went to disk (O_DIRECT read or read-ahead window)."
    );
    metrics::describe_counter!(
        PREFETCHED_READS,
        "Disk reads of a sequential reader that a background prefetch had already done."
    );
    metrics::describe_counter!(
        READ_BYTES,
        metrics::Unit::Bytes,
        "Bytes read from segment files: cold reads, prefetches and recovery."
    );
    metrics::describe_histogram!(
        FLUSH_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one log flush (group commit): preallocate, write, fdatasync, seal."
    );
    metrics::describe_histogram!(
        FDATASYNC_SECONDS,
        metrics::Unit::Seconds,
        "Duration of one fdatasync of a segment file during a flush."
    );
}

pub(crate) fn cache_hit() {
    HANDLES.with(|h| h.cache_hits.increment(1));
}

pub(crate) fn cache_miss() {
    HANDLES.with(|h| h.cache_misses.increment(1));
}

pub(crate) fn read_prefetched() {
    HANDLES.with(|h| h.prefetched_reads.increment(1));
}

pub(crate) fn read_from_disk(bytes: usize) {
    HANDLES.with(|h| h.read_bytes.increment(bytes as u64));
}

pub(crate) fn flushed(took: Duration) {
    HANDLES.with(|h| h.flush.record(took.as_secs_f64()));
}

pub(crate) fn fdatasync(took: Duration) {
    HANDLES.with(|h| h.fdatasync.record(took.as_secs_f64()));
}
