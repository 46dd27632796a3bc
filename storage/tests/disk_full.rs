//! Disk full, on a real small file system: appends fail with a clear `DiskFull` error, nothing
//! already flushed is lost, and appends succeed again once space is freed.
//!
//! The test makes a 16 MiB ext4 image (`mkfs.ext4 -m 0`, so root gets no reserved blocks) and
//! loop-mounts it, which needs root and a kernel that lets this process mount. Where that is not
//! possible it prints why and passes without checking anything.

// Helpers here are test code too: a failed unwrap is a failed test (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use common::*;
use storage::{Backend, LogConfig, StorageError};

const IMAGE_BYTES: u64 = 16 * 1024 * 1024;
/// Taken up front and deleted to free space.
const FILLER_BYTES: usize = 4 * 1024 * 1024;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4 * 1024 * 1024,
        preallocate_bytes: 1024 * 1024,
        cache_bytes: 1024 * 1024,
        read_ahead_bytes: 256 * 1024,
        ..LogConfig::default()
    }
}

/// A loop-mounted ext4 file system; unmounted (lazily if it is busy) when dropped.
#[derive(Debug)]
struct SmallFs {
    mountpoint: PathBuf,
    /// Holds the image and the mountpoint; removed after `drop` has unmounted.
    _dir: tempfile::TempDir,
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.mountpoint)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let lazy = Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
            if !lazy.is_ok_and(|s| s.success()) {
                eprintln!(
                    "could not unmount {} (even lazily)",
                    self.mountpoint.display()
                );
            }
        }
    }
}

fn mkfs_ext4() -> Option<PathBuf> {
    ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            let found = Command::new("mkfs.ext4").arg("-V").output().is_ok();
            found.then(|| PathBuf::from("mkfs.ext4"))
        })
}

/// Makes and mounts the small file system, or says why it cannot.
fn mount_small_fs() -> Result<SmallFs, String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!(
            "not running as root (euid {euid}); mounting a loop device needs root"
        ));
    }
    let mkfs = mkfs_ext4().ok_or("mkfs.ext4 not found (install e2fsprogs)")?;
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let image = dir.path().join("fs.img");
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).map_err(|e| format!("mkdir mountpoint: {e}"))?;
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(IMAGE_BYTES))
        .map_err(|e| format!("create image: {e}"))?;
    let out = Command::new(&mkfs)
        .args(["-q", "-F", "-m", "0"])
        .arg(&image)
        .output()
        .map_err(|e| format!("run {}: {e}", mkfs.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            mkfs.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let out = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&image)
        .arg(&mountpoint)
        .output()
        .map_err(|e| format!("run mount: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mount -o loop failed (no loop devices or no CAP_SYS_ADMIN here?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(SmallFs {
        mountpoint,
        _dir: dir,
    })
}

fn write_filler(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(&vec![0xA5u8; FILLER_BYTES]).unwrap();
    f.sync_all().unwrap();
}

/// Batch `i` of this test: 20..120 KiB, so the file system fills in about a hundred appends.
fn big_batch(i: u64) -> bytes::BytesMut {
    let payload = 20 * 1024 + (i as usize * 37 % 100) * 1024;
    batch(i, 1 + (i % 5) as i32, payload)
}

fn assert_disk_full(e: &StorageError, what: &str) {
    let message = e.to_string();
    assert!(
        matches!(e, StorageError::DiskFull { .. }),
        "{what}: expected DiskFull, got {e:?} ({message})"
    );
    assert!(
        message.contains("no space left on device"),
        "{what}: unclear message: {message}"
    );
    assert!(e.is_retriable(), "{what}: DiskFull must be retriable");
}

async fn disk_full_then_space_freed(backend: Backend, mountpoint: &Path) {
    let name = backend.name();
    let dir = mountpoint.join("log");
    let filler = mountpoint.join("filler");
    write_filler(&filler);

    let log = open(&dir, config(), &backend).await;
    // Batches known durable (their flush succeeded) and batches appended since the last
    // successful flush, both as the log stores them.
    let mut flushed: Vec<Bytes> = Vec::new();
    let mut pending: Vec<Bytes> = Vec::new();
    let mut i = 0u64;
    let failure = loop {
        assert!(i < 10_000, "{name}: the file system never filled up");
        let b = big_batch(i);
        match log.append(b.clone(), 0) {
            Ok(info) => pending.push(as_stored(b, info.base_offset, 0)),
            Err(e) => break ("append", e),
        }
        i += 1;
        if i.is_multiple_of(3) {
            match log.flush().await {
                Ok(durable) => {
                    assert_eq!(durable, log.log_end_offset());
                    flushed.append(&mut pending);
                }
                Err(e) => break ("flush", e),
            }
        }
    };
    let (op, err) = failure;
    eprintln!(
        "{name}: {op} failed after {i} appends ({} flushed, {} pending): {err}",
        flushed.len(),
        pending.len()
    );
    assert_disk_full(&err, &format!("{name}: first failing {op}"));
    // The flag holds: further appends are refused while the disk is full, but the log is not
    // poisoned and everything flushed is still readable.
    let refused = log.append(big_batch(i), 0);
    match refused {
        Err(e) => assert_disk_full(&e, &format!("{name}: append after DiskFull")),
        Ok(info) => panic!(
            "{name}: append after DiskFull succeeded at offset {}",
            info.base_offset
        ),
    }
    let durable = log.durable_offset();
    let all_so_far: Vec<Bytes> = flushed.iter().chain(&pending).cloned().collect();
    assert_same_batches(
        &read_all(&log, 0).await,
        &all_so_far,
        &format!("{name}: reads while full"),
    );
    assert!(
        durable >= flushed_end(&flushed),
        "{name}: durable offset went backwards"
    );

    // Free space: the retried flush gets through and appends work again.
    std::fs::remove_file(&filler).unwrap();
    let durable = log
        .flush()
        .await
        .unwrap_or_else(|e| panic!("{name}: flush after freeing space: {e}"));
    assert_eq!(
        durable,
        log.log_end_offset(),
        "{name}: the retried flush covers every append"
    );
    flushed.append(&mut pending);
    for j in 0..10 {
        let b = big_batch(i + j);
        let info = log
            .append(b.clone(), 0)
            .unwrap_or_else(|e| panic!("{name}: append after freeing space: {e}"));
        flushed.push(as_stored(b, info.base_offset, 0));
        log.flush()
            .await
            .unwrap_or_else(|e| panic!("{name}: flush after freeing space: {e}"));
    }
    let end = log.log_end_offset();
    drop(log);

    let log = open(&dir, config(), &backend).await;
    assert_eq!(log.log_end_offset(), end, "{name}: log end after reopen");
    assert_same_batches(
        &read_all(&log, 0).await,
        &flushed,
        &format!("{name}: after reopen"),
    );
    log.close().await.unwrap();
}

/// Compares batch lists without dumping megabytes of bytes when they differ.
fn assert_same_batches(actual: &[Bytes], expected: &[Bytes], what: &str) {
    if let Some(at) = actual.iter().zip(expected).position(|(a, e)| a != e) {
        panic!(
            "{what}: batch {at} differs from the one appended ({} bytes read, {} expected)",
            actual[at].len(),
            expected[at].len()
        );
    }
    assert_eq!(actual.len(), expected.len(), "{what}: number of batches");
}

fn flushed_end(flushed: &[Bytes]) -> u64 {
    flushed
        .last()
        .map(|b| {
            let h = storage::batch::BatchHeader::parse(b).unwrap();
            h.last_offset() as u64 + 1
        })
        .unwrap_or(0)
}

#[test]
fn disk_full_fails_appends_loses_nothing_and_recovers_when_space_is_freed() {
    // One fresh file system per backend, so each starts with the same free space.
    if let Err(reason) = mount_small_fs() {
        eprintln!("SKIPPED disk_full test: {reason}");
        return;
    }
    each_backend(|backend| async move {
        let fs = mount_small_fs()
            .unwrap_or_else(|reason| panic!("mounting a second time failed: {reason}"));
        disk_full_then_space_freed(backend, &fs.mountpoint).await;
        drop(fs);
    });
}
