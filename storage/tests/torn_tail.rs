//! Torn tails: cut or garble the last two pages of a log at every 512-byte position; recovery
//! must end exactly at the last intact batch, and every batch before the damage survives.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;
use common::*;
use storage::{Backend, LogConfig};

#[derive(Clone, Copy, Debug)]
enum Damage {
    Cut,
    Garble,
}

fn config() -> LogConfig {
    LogConfig {
        preallocate_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

/// Writes a log and returns its batches and the ends (byte positions) of each batch.
async fn write_log(dir: &Path, backend: &Backend, clean_close: bool) -> (Vec<Bytes>, Vec<u64>) {
    let log = open(dir, config(), backend).await;
    let mut stored = Vec::new();
    let mut ends = Vec::new();
    let mut position = 0;
    for i in 0..40u64 {
        // Sizes straddle page boundaries in many different ways.
        let b = batch(i, 1 + (i % 3) as i32, 100 + (i as usize * 373) % 2500);
        let info = log.append(b.clone(), 0).unwrap();
        position += b.len() as u64;
        ends.push(position);
        stored.push(as_stored(b, info.base_offset, 0));
        if i % 4 == 0 {
            log.flush().await.unwrap();
        }
    }
    log.flush().await.unwrap();
    if clean_close {
        log.close().await.unwrap();
    }
    (stored, ends)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

async fn check_every_position(backend: Backend, damage: Damage, clean_close: bool) {
    let original = tempfile::tempdir().unwrap();
    let (stored, ends) = write_log(original.path(), &backend, clean_close).await;
    let data_len = *ends.last().unwrap();
    let first_page = data_len.saturating_sub(8192) / 512 * 512;
    let mut position = first_page;
    let mut cases = 0;
    while position < data_len {
        let work = tempfile::tempdir().unwrap();
        copy_dir(original.path(), work.path());
        let segment = work.path().join("00000000000000000000.log");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .unwrap();
        match damage {
            Damage::Cut => file.set_len(position).unwrap(),
            Damage::Garble => {
                let garbage: Vec<u8> = (0..512u64)
                    .map(|k| (k * 131 + position / 512 * 7 + 1) as u8 | 1)
                    .collect();
                file.write_all_at(&garbage, position).unwrap();
            }
        }
        drop(file);
        // The last batch that ends at or before the damage is the last one that must survive.
        let survivors = ends.iter().take_while(|&&end| end <= position).count();
        let log = open(work.path(), config(), &backend).await;
        let all = read_all(&log, 0).await;
        assert_eq!(
            all.len(),
            survivors,
            "{damage:?} at {position} (clean close: {clean_close}, backend {})",
            backend.name()
        );
        assert_eq!(&all[..], &stored[..survivors]);
        // The recovered log accepts appends right after the last intact batch.
        let next = log.log_end_offset();
        assert_eq!(log.append(batch(1000, 1, 10), 0).unwrap().base_offset, next);
        log.flush().await.unwrap();
        drop(log);
        let log = open(work.path(), config(), &backend).await;
        assert_eq!(read_all(&log, 0).await.len(), survivors + 1);
        position += 512;
        cases += 1;
    }
    assert!(cases >= 16, "expected two pages of positions, got {cases}");
}

#[test]
fn cut_after_crash() {
    each_backend(|b| check_every_position(b, Damage::Cut, false));
}

#[test]
fn garble_after_crash() {
    each_backend(|b| check_every_position(b, Damage::Garble, false));
}

#[test]
fn cut_after_clean_close() {
    each_backend(|b| check_every_position(b, Damage::Cut, true));
}
