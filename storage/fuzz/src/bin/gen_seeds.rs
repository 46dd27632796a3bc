//! Writes the seed corpora under `storage/fuzz/seeds/<target>/` (or under the directory given
//! as the first argument):
//!
//! ```sh
//! cd storage/fuzz && cargo run --features gen-seeds --bin gen_seeds
//! ```
//!
//! Seeds are small valid segments (plus torn and padded variants), so the fuzzer starts from
//! inputs that pass the length, magic, CRC and offset checks instead of having to find them.
//! The `recover_log` seeds include one made by a real log closed cleanly, so its state file and
//! indexes send recovery down the trusted path.

use std::path::{Path, PathBuf};

use bytes::BytesMut;
use storage::{Backend, PartitionLog};
use storage_fuzz::*;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    assert!(
        bytes.len() < 16 * 1024,
        "seed {name} is {} bytes; keep seeds small",
        bytes.len()
    );
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    println!("{} ({} bytes)", path.display(), bytes.len());
}

/// The files of a log that got `batches` appends and was closed cleanly.
fn closed_log_files(batches: u64) -> (Vec<u8>, Vec<u8>, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let path = dir.path().to_path_buf();
    storage::runtime::block_on(Backend::Posix, |backend| async move {
        let log = PartitionLog::open(&path, fuzz_config(), backend)
            .await
            .unwrap_or_else(|e| panic!("open: {e}"));
        for i in 0..batches {
            let b = storage::batch::testing::seeded(
                i,
                1 + (i % 3) as i32,
                90,
                1_700_000_000_000 + i as i64,
            );
            log.append(BytesMut::from(&b[..]), 1 + (i / 5) as i32)
                .unwrap_or_else(|e| panic!("append: {e}"));
        }
        log.close().await.unwrap_or_else(|e| panic!("close: {e}"));
    })
    .unwrap_or_else(|e| panic!("runtime: {e}"));
    let read = |name: &str| {
        std::fs::read(dir.path().join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    };
    (
        read(STATE_FILE),
        read(INDEX_FILE),
        read(TIMEINDEX_FILE),
        read(SEGMENT_FILE),
    )
}

fn main() {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds"));

    // scan_segment: raw segment bytes.
    let scan = root.join("scan_segment");
    let clean = valid_segment(0, &[1, 3, 2], 50);
    write(&scan, "clean-3-batches", &clean);
    let mut padded = valid_segment(0, &[2, 1, 1, 4, 1], 30);
    padded.resize(padded.len() + 100, 0);
    write(&scan, "zero-padded-5-batches", &padded);
    let torn = valid_segment(0, &[1, 1, 2, 1], 70);
    write(&scan, "torn-tail-4-batches", &torn[..torn.len() - 10]);

    // recover_log: flags byte, side files, segment (see storage_fuzz::RecoverInput).
    let recover = root.join("recover_log");
    let segment = valid_segment(0, &[1, 2, 3, 1, 1, 2], 60);
    let plain = RecoverInput {
        flags: 0,
        segment: &segment,
        ..Default::default()
    };
    write(&recover, "plain-6-batches", &plain.to_bytes());

    let mut torn = valid_segment(0, &[2, 2, 1], 80);
    torn.truncate(torn.len() - 7);
    torn.resize(torn.len() + 40, 0);
    let torn_append = RecoverInput {
        flags: FLAG_CLOSE | FLAG_APPEND | FLAG_SMALL_READS,
        segment: &torn,
        ..Default::default()
    };
    write(&recover, "torn-tail-append-close", &torn_append.to_bytes());

    // A well-formed state: log start 2, recovery point 10 (the segment's end), high watermark 9,
    // one epoch (1 from offset 0), no vote.
    let mut fields = Vec::new();
    fields.extend_from_slice(&2u32.to_le_bytes());
    fields.extend_from_slice(&10u32.to_le_bytes());
    fields.extend_from_slice(&9u32.to_le_bytes());
    fields.push(1);
    fields.extend_from_slice(&1i32.to_le_bytes());
    fields.extend_from_slice(&0u32.to_le_bytes());
    fields.push(255);
    let with_state = RecoverInput {
        flags: FLAG_STATE | FLAG_STATE_ENCODED | FLAG_APPEND,
        state: Some(&fields),
        segment: &segment,
        ..Default::default()
    };
    write(&recover, "encoded-state", &with_state.to_bytes());

    // 60 batches: over 4 KiB, so reads of it need more than one read-ahead window.
    let (state, index, timeindex, log) = closed_log_files(60);
    let closed = RecoverInput {
        flags: FLAG_STATE | FLAG_INDEX | FLAG_TIMEINDEX | FLAG_CLOSE,
        state: Some(&state),
        index: Some(&index),
        timeindex: Some(&timeindex),
        segment: &log,
    };
    write(&recover, "closed-log-with-indexes", &closed.to_bytes());
}
