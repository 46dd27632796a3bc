//! Append, flush, read, reopen, roll, timestamps, epochs, truncation, retention: on every backend.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::*;
use storage::{LogConfig, StorageError};

#[test]
fn append_read_flush_reopen() {
    each_backend(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut expected = Vec::new();
        {
            let log = open(dir.path(), small_segments(), &backend).await;
            for i in 0..200u64 {
                let b = batch(i, 3, 700 + (i as usize % 5) * 300);
                let info = log.append(b.clone(), 1).unwrap();
                assert_eq!(info.base_offset, i * 3);
                expected.push(as_stored(b, info.base_offset, 1));
                if i % 7 == 0 {
                    log.flush().await.unwrap();
                }
            }
            assert_eq!(log.flush().await.unwrap(), 600);
            assert_eq!(
                read_all(&log, 0).await,
                expected,
                "hot/cold read after appends"
            );
            assert!(log.stats().segments > 2, "small segments roll");
            log.close().await.unwrap();
        }
        let log = open(dir.path(), small_segments(), &backend).await;
        assert_eq!(log.log_end_offset(), 600);
        assert_eq!(
            read_all(&log, 0).await,
            expected,
            "cold read after clean reopen"
        );
        // Reading from the middle of a batch returns the batch that holds the offset.
        let mid = log.read(301, 1, u64::MAX).await.unwrap();
        assert_eq!(mid.batches[0], expected[100]);
        assert!(matches!(
            log.read(601, 1, u64::MAX).await,
            Err(StorageError::OffsetOutOfRange { .. })
        ));
        // Appends continue after the reopened tail.
        let b = batch(999, 1, 10);
        let info = log.append(b.clone(), 2).unwrap();
        assert_eq!(info.base_offset, 600);
        log.flush().await.unwrap();
        drop(log);
        let log = open(dir.path(), small_segments(), &backend).await;
        let tail = log.read(600, 1 << 20, u64::MAX).await.unwrap();
        assert_eq!(tail.batches, vec![as_stored(b, 600, 2)]);
        assert_eq!(log.end_offset_for_epoch(1), Some((1, 600)));
        assert_eq!(log.end_offset_for_epoch(2), Some((2, 601)));
        assert_eq!(log.end_offset_for_epoch(0), None);
    });
}

#[test]
fn unflushed_appends_vanish_after_crash_but_flushed_survive() {
    each_backend(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let faulty = storage::io::FaultyBackend::new(backend.clone());
        let log = open(dir.path(), small_segments(), &faulty.backend()).await;
        for i in 0..50 {
            log.append(batch(i, 1, 900), 0).unwrap();
        }
        log.flush().await.unwrap();
        for i in 50..60 {
            log.append(batch(i, 1, 900), 0).unwrap();
        }
        faulty.crash().unwrap();
        drop(log);
        faulty.reset();
        let log = open(dir.path(), small_segments(), &backend).await;
        assert_eq!(log.log_end_offset(), 50);
        assert_eq!(read_all(&log, 0).await.len(), 50);
    });
}

#[test]
fn timestamps_truncation_and_retention() {
    each_backend(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let log = open(dir.path(), small_segments(), &backend).await;
        for i in 0..100u64 {
            log.append(batch(i, 2, 1000), 0).unwrap();
        }
        log.flush().await.unwrap();
        let hit = log
            .find_by_timestamp(1_700_000_000_000 + 40)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hit.base_offset, 80);
        assert!(log
            .find_by_timestamp(1_800_000_000_000)
            .await
            .unwrap()
            .is_none());
        assert_eq!(log.max_timestamp(), Some((1_700_000_000_000 + 99, 198)));

        log.truncate_to(150).await.unwrap();
        assert_eq!(log.log_end_offset(), 150);
        assert!(log.truncate_to(149).await.is_err(), "149 is inside a batch");
        let b = batch(500, 1, 10);
        assert_eq!(log.append(b, 1).unwrap().base_offset, 150);
        log.flush().await.unwrap();
        drop(log);
        let log = open(dir.path(), small_segments(), &backend).await;
        assert_eq!(log.log_end_offset(), 151);
        assert_eq!(read_all(&log, 0).await.len(), 76);

        let start = log.delete_records_before(20).await.unwrap();
        assert_eq!(start, 20);
        assert!(log.read(10, 1, u64::MAX).await.is_err());
        let config = LogConfig {
            retention_bytes: Some(10_000),
            ..small_segments()
        };
        drop(log);
        let log = open(dir.path(), config, &backend).await;
        assert_eq!(log.log_start_offset(), 20);
        let outcome = log.enforce_retention().await.unwrap();
        assert!(outcome.segments_deleted > 0);
        assert!(log.stats().size_bytes < 64 * 1024);
        let start = log.log_start_offset();
        assert_eq!(read_all(&log, start).await.last().unwrap().len(), 71);
    });
}

#[test]
fn interval_flush_policy_flushes_by_count_and_by_age() {
    each_backend(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush: storage::FlushPolicy::Interval {
                messages: 3,
                interval_ms: 20,
            },
            ..small_segments()
        };
        let log = open(dir.path(), config, &backend).await;
        // One message: not enough to flush by count, so it waits for the interval.
        let info = log.append(batch(0, 1, 100), 0).unwrap();
        assert_eq!(log.flush_if_due().await.unwrap(), 0, "not due yet");
        log.wait_durable(info.last_offset + 1).await.unwrap();
        assert_eq!(log.durable_offset(), 1);
        // Three messages in one batch reach flush.messages: due at once.
        log.append(batch(1, 3, 100), 0).unwrap();
        assert_eq!(log.flush_if_due().await.unwrap(), 4);
    });
}

#[test]
fn segment_ms_rolls_by_age() {
    each_backend(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        // segment.ms = 0: every append finds the active segment old enough to roll.
        let config = LogConfig {
            segment_ms: Some(0),
            ..small_segments()
        };
        let log = open(dir.path(), config.clone(), &backend).await;
        for i in 0..4 {
            log.append(batch(i, 1, 100), 0).unwrap();
            log.flush().await.unwrap();
        }
        assert_eq!(log.stats().segments, 4);
        drop(log);
        let log = open(dir.path(), config, &backend).await;
        assert_eq!(log.stats().segments, 4);
        assert_eq!(read_all(&log, 0).await.len(), 4);
    });
}

#[test]
fn set_config_applies_to_the_next_append_and_rejects_invalid_values() {
    each_backend(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let big = LogConfig {
            segment_bytes: 1024 * 1024,
            ..small_segments()
        };
        let log = open(dir.path(), big.clone(), &backend).await;
        for i in 0..8 {
            log.append(batch(i, 1, 4000), 0).unwrap();
        }
        log.flush().await.unwrap();
        assert_eq!(log.stats().segments, 1, "32 KiB fits one 1 MiB segment");

        // An invalid config is refused and the current one stays.
        let invalid = LogConfig {
            segment_bytes: 1,
            ..big.clone()
        };
        assert!(matches!(
            log.set_config(invalid),
            Err(StorageError::InvalidArgument(_))
        ));
        assert_eq!(log.config().segment_bytes, 1024 * 1024);

        // Smaller segments: the next appends roll.
        let small = LogConfig {
            segment_bytes: storage::limits::SEGMENT_BYTES_MIN,
            ..big
        };
        log.set_config(small.clone()).unwrap();
        assert_eq!(log.config().segment_bytes, small.segment_bytes);
        for i in 8..16 {
            log.append(batch(i, 1, 4000), 0).unwrap();
        }
        log.flush().await.unwrap();
        assert!(log.stats().segments > 2, "{:?}", log.stats());
        assert_eq!(read_all(&log, 0).await.len(), 16);
        log.close().await.unwrap();
        let log = open(dir.path(), small, &backend).await;
        assert_eq!(read_all(&log, 0).await.len(), 16, "rolled segments reopen");
    });
}

/// Truncates `log` at `offset` and appends a two-record batch of `len` bytes per seed at
/// `epoch`, then flushes; `expected` (one entry per two-record batch) follows.
async fn rewrite(
    log: &storage::PartitionLog,
    offset: u64,
    seeds: std::ops::Range<u64>,
    len: usize,
    epoch: i32,
    expected: &mut Vec<bytes::Bytes>,
) {
    log.truncate_to(offset).await.unwrap();
    expected.truncate(offset as usize / 2);
    for i in seeds {
        let b = batch(i, 2, len);
        let info = log.append(b.clone(), epoch).unwrap();
        expected.push(as_stored(b, info.base_offset, epoch));
    }
    log.flush().await.unwrap();
}

/// A small cache and small read windows, so reads go to disk and windows get prefetched.
fn small_read_windows() -> LogConfig {
    LogConfig {
        segment_bytes: 8 << 20,
        cache_bytes: 16 * 1024,
        read_ahead_bytes: 32 * 1024,
        ..LogConfig::default()
    }
}

/// Writes 400 batches of two records (`payload_len(i)` bytes each), flushes and closes the
/// log; returns the batches as stored.
async fn write_cold(
    dir: &std::path::Path,
    config: &LogConfig,
    backend: &storage::Backend,
    payload_len: impl Fn(u64) -> usize,
) -> Vec<bytes::Bytes> {
    let log = open(dir, config.clone(), backend).await;
    let mut expected = Vec::new();
    for i in 0..400u64 {
        let b = batch(i, 2, payload_len(i));
        let info = log.append(b.clone(), 0).unwrap();
        expected.push(as_stored(b, info.base_offset, 0));
    }
    log.flush().await.unwrap();
    log.close().await.unwrap();
    expected
}

/// A batch damaged on disk after it was written is reported, never served, also when it lies
/// in a window that was prefetched (whose CRCs the prefetch checks, not the reader).
#[test]
fn damage_in_a_prefetched_window_is_reported() {
    each_backend(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let config = small_read_windows();
        let expected = write_cold(dir.path(), &config, &backend, |_| 1000).await;
        // Flip one payload byte of batch 300, far past the first window: a clean close left a
        // checkpoint, so reopening does not scan it again.
        let damaged = 300;
        let position: usize = expected[..damaged].iter().map(|b| b.len()).sum();
        let segment = dir.path().join(format!("{:020}.log", 0));
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[position + expected[damaged].len() - 10] ^= 0x5a;
        std::fs::write(&segment, &bytes).unwrap();

        let log = open(dir.path(), config, &backend).await;
        assert_eq!(log.log_end_offset(), 800, "recovery left the log whole");
        let mut offset = 0;
        let mut read = Vec::new();
        let error = loop {
            match log.read(offset, 4096, u64::MAX).await {
                Ok(r) => {
                    assert!(!r.batches.is_empty(), "no progress at {offset}");
                    offset = r.next_offset;
                    read.extend(r.batches);
                }
                Err(e) => break e,
            }
        };
        assert!(
            matches!(error, StorageError::Corrupt { .. }),
            "damage reported: {error}"
        );
        // The read that meets the damage fails as a whole; the ones before were served intact.
        assert!(
            (damaged - 4..=damaged).contains(&read.len()),
            "stopped just before the damaged batch, at offset {offset}"
        );
        assert_eq!(
            read,
            expected[..read.len()],
            "every batch before it, intact"
        );
        assert!(matches!(
            log.read(damaged as u64 * 2, 1, u64::MAX).await,
            Err(StorageError::Corrupt { .. })
        ));
    });
}

/// A sequential reader of cold data gets the next window prefetched in the background; what
/// it reads must be exactly what was appended, also when the log is truncated and rewritten
/// while a prefetch is under way.
#[test]
fn sequential_cold_reads_with_prefetch_and_truncation() {
    each_backend(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let config = small_read_windows();
        let mut expected = write_cold(dir.path(), &config, &backend, |i| {
            500 + (i as usize % 7) * 250
        })
        .await;
        let log = open(dir.path(), config.clone(), &backend).await;
        // Small reads, so each window serves several and the next ones are prefetched.
        let mut offset = 0;
        let mut read = Vec::new();
        while offset < 400 {
            let r = log.read(offset, 4096, u64::MAX).await.unwrap();
            assert!(!r.batches.is_empty(), "no progress at {offset}");
            offset = r.next_offset;
            read.extend(r.batches);
        }
        assert_eq!(read, expected[..read.len()], "first half, sequential");

        // Truncate behind the reader's prefetch and write different batches in its place.
        rewrite(&log, 300, 1000..1250, 900, 1, &mut expected).await;
        log.close().await.unwrap();
        drop(log);
        let log = open(dir.path(), config, &backend).await;
        let mut offset = 0;
        let mut read = Vec::new();
        while offset < log.log_end_offset() {
            let r = log.read(offset, 3000, u64::MAX).await.unwrap();
            assert!(!r.batches.is_empty(), "no progress at {offset}");
            offset = r.next_offset;
            read.extend(r.batches);
            if offset == 200 {
                // Mid-stream, with a prefetch likely in flight: cut and rewrite ahead of it.
                rewrite(&log, 400, 2000..2100, 1300, 2, &mut expected).await;
            }
        }
        assert_eq!(
            read, expected,
            "every batch, in order, after truncation and rewrite"
        );
    });
}
