//! Per-log configuration, named after Kafka's topic configs where one exists.

/// When appended data is made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every `wait_durable` flushes at once (group commit merges concurrent callers). Kafka's
    /// `flush.messages=1`. The default: an acknowledged write is on disk.
    Always,
    /// Flush when `messages` unflushed records have accumulated or the oldest unflushed append
    /// is `interval_ms` old, whichever comes first (Kafka's `flush.messages` / `flush.ms`).
    /// Callers of `wait_durable` wait for that flush.
    Interval { messages: u64, interval_ms: u64 },
}

/// Configuration of one partition log.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes`: roll to a new segment before this size is exceeded.
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: Option<u64>,
    /// `retention.ms`: delete closed segments whose newest batch is older (None = forever).
    pub retention_ms: Option<u64>,
    /// `retention.bytes`: delete the oldest closed segments while the log is larger.
    pub retention_bytes: Option<u64>,
    /// `index.interval.bytes`: bytes of log between two offset-index entries.
    pub index_interval_bytes: u32,
    /// `flush.messages` / `flush.ms`.
    pub flush: FlushPolicy,
    /// Bytes of recent batches kept in memory for reads.
    pub cache_bytes: usize,
    /// Smallest cold read; sequential consumers are served from the last read's buffer.
    pub read_ahead_bytes: usize,
    /// Segments are extended with `fallocate` in steps of this many bytes.
    pub preallocate_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            index_interval_bytes: 4096,
            flush: FlushPolicy::Always,
            cache_bytes: 32 * 1024 * 1024,
            read_ahead_bytes: 1024 * 1024,
            preallocate_bytes: 32 * 1024 * 1024,
        }
    }
}

impl LogConfig {
    /// Checks the values against the engine's limits; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        use crate::limits::{SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN};
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(format!(
                "segment.bytes must be between {SEGMENT_BYTES_MIN} and {SEGMENT_BYTES_MAX}, got {}",
                self.segment_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err("index.interval.bytes must be positive".into());
        }
        if let FlushPolicy::Interval { messages: 0, .. } = self.flush {
            return Err("flush.messages must be positive".into());
        }
        Ok(())
    }
}
