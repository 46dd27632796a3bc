//! Injected I/O failures: a failed write or fdatasync poisons the log (it never reports data
//! durable that may not be), and reopening recovers exactly what reached the disk.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use common::*;
use storage::io::{Fault, FaultyBackend};
use storage::StorageError;

#[test]
fn failed_fdatasync_poisons_and_loses_nothing_acknowledged() {
    for errno in [libc::EIO, libc::ENOSPC] {
        each_backend(|backend| async move {
            let dir = tempfile::tempdir().unwrap();
            let faulty = FaultyBackend::new(backend.clone());
            let log = open(dir.path(), small_segments(), &faulty.backend()).await;
            for i in 0..10 {
                log.append(batch(i, 1, 500), 0).unwrap();
            }
            assert_eq!(log.flush().await.unwrap(), 10);
            log.append(batch(10, 1, 500), 0).unwrap();
            faulty.fail(Fault::Sync, 0, errno);
            let err = log.flush().await.unwrap_err();
            assert!(matches!(err, StorageError::Poisoned { .. }), "{err}");
            assert_eq!(log.durable_offset(), 10, "nothing new reported durable");
            assert!(matches!(
                log.append(batch(11, 1, 5), 0),
                Err(StorageError::Poisoned { .. })
            ));
            assert!(matches!(
                log.flush().await,
                Err(StorageError::Poisoned { .. })
            ));
            // The failed sync may have lost the page cache's copy: simulate the worst case.
            faulty.crash().unwrap();
            drop(log);
            faulty.reset();
            let log = open(dir.path(), small_segments(), &backend).await;
            assert_eq!(log.log_end_offset(), 10);
            assert_eq!(read_all(&log, 0).await.len(), 10);
        });
    }
}

#[test]
fn failed_write_poisons() {
    each_backend(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let faulty = FaultyBackend::new(backend.clone());
        let log = open(dir.path(), small_segments(), &faulty.backend()).await;
        log.append(batch(0, 1, 500), 0).unwrap();
        log.flush().await.unwrap();
        log.append(batch(1, 1, 500), 0).unwrap();
        faulty.fail(Fault::Write, 0, libc::EIO);
        assert!(matches!(
            log.flush().await,
            Err(StorageError::Poisoned { .. })
        ));
        assert_eq!(log.durable_offset(), 1);
        drop(log);
        faulty.reset();
        let log = open(dir.path(), small_segments(), &backend).await;
        assert!(log.log_end_offset() >= 1, "the flushed batch survives");
        assert_eq!(
            read_all(&log, 0).await[0],
            as_stored(batch(0, 1, 500), 0, 0)
        );
    });
}

#[test]
fn preallocation_without_space_is_retriable() {
    each_backend(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let faulty = FaultyBackend::new(backend.clone());
        let log = open(dir.path(), small_segments(), &faulty.backend()).await;
        log.append(batch(0, 1, 500), 0).unwrap();
        // Both the generous and the exact preallocation attempt fail.
        faulty.fail_always(Fault::Allocate, libc::ENOSPC);
        let err = log.flush().await.unwrap_err();
        assert!(matches!(err, StorageError::DiskFull { .. }), "{err}");
        assert!(err.to_string().contains("no space left on device"), "{err}");
        assert!(matches!(
            log.append(batch(1, 1, 5), 0),
            Err(StorageError::DiskFull { .. })
        ));
        assert!(log.flush().await.is_err(), "still full");
        faulty.clear_faults();
        // Space is back: the retried flush writes what was accepted, and appends resume.
        assert_eq!(log.flush().await.unwrap(), 1);
        log.append(batch(1, 1, 5), 0).unwrap();
        assert_eq!(log.flush().await.unwrap(), 2);
    });
}

#[test]
fn concurrent_flushes_share_syncs() {
    each_backend(|backend| async move {
        let dir = tempfile::tempdir().unwrap();
        let log = std::rc::Rc::new(open(dir.path(), small_segments(), &backend).await);
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let log = log.clone();
            tasks.push(tokio::task::spawn_local(async move {
                for i in 0..20 {
                    let info = log.append(batch(t * 100 + i, 1, 300), 0).unwrap();
                    log.wait_durable(info.last_offset + 1).await.unwrap();
                    assert!(log.durable_offset() > info.last_offset);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(log.durable_offset(), 160);
    });
}
