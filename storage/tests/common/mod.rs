//! Shared helpers for the storage integration tests: every test runs once per backend.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::Path;

use bytes::BytesMut;
use storage::batch::testing::seeded;
use storage::io::io_uring_available;
use storage::{Backend, LogConfig, PartitionLog};

/// The backends this machine can run: POSIX always, io_uring when the kernel allows it.
pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Posix];
    if io_uring_available() {
        all.push(Backend::Uring);
    } else {
        eprintln!("io_uring unavailable here: running the POSIX backend only");
    }
    all
}

/// Runs `f` on every backend, each on its own runtime.
pub fn each_backend<F, Fut>(f: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends() {
        let name = backend.name();
        storage::runtime::block_on(backend, &f)
            .unwrap_or_else(|e| panic!("runtime for {name}: {e}"));
    }
}

/// Deterministic batch number `i`: `records` records, a payload derived from `i`.
pub fn batch(i: u64, records: i32, payload_len: usize) -> BytesMut {
    BytesMut::from(&seeded(i, records, payload_len, 1_700_000_000_000 + i as i64)[..])
}

pub fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        preallocate_bytes: 16 * 1024,
        cache_bytes: 32 * 1024,
        read_ahead_bytes: 16 * 1024,
        ..LogConfig::default()
    }
}

pub async fn open(dir: &Path, config: LogConfig, backend: &Backend) -> PartitionLog {
    PartitionLog::open(dir, config, backend.clone())
        .await
        .expect("open log")
}

/// Reads every batch from `from` to the log end.
pub async fn read_all(log: &PartitionLog, from: u64) -> Vec<bytes::Bytes> {
    let mut out = Vec::new();
    let mut offset = from;
    let end = log.log_end_offset();
    while offset < end {
        let read = log.read(offset, 64 * 1024, u64::MAX).await.expect("read");
        assert!(!read.batches.is_empty(), "no progress at offset {offset}");
        offset = read.next_offset;
        out.extend(read.batches);
    }
    out
}

/// `b` with the base offset and epoch the log assigned, for comparing with what is read back.
pub fn as_stored(mut b: BytesMut, base_offset: u64, epoch: i32) -> bytes::Bytes {
    storage::batch::assign(&mut b, base_offset, epoch);
    b.freeze()
}
