//! The disk's own durable-write latency, the reference for acks=all: 4 KiB written in place
//! and `fdatasync`ed, in a loop, in the directory the broker's data goes to.
//!
//! A second figure is what an appending log pays: 4 KiB appended into space preallocated with
//! `fallocate` (as the broker's segments are), each append `fdatasync`ed. On ext4 the first
//! write into preallocated space converts the extent from "unwritten" to "written", a metadata
//! change, so every such fdatasync commits a journal transaction: slower than an overwrite.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::client::latency_histogram;
use crate::BenchResult;

const BLOCK: usize = 4096;
/// Writes cycle over this many blocks of a file written in full first, so no write extends it
/// (an fdatasync after an extending write also flushes the size: not what the broker pays
/// with preallocated segments).
const BLOCKS: u64 = 256;

/// fdatasync latency in µs of 4 KiB overwrites, over `duration` (at most `max_syncs`).
pub fn fdatasync_latency(
    dir: &Path,
    duration: Duration,
    max_syncs: u64,
) -> BenchResult<Histogram<u64>> {
    measure_in(dir, "fdatasync", Layout::Overwrite, duration, max_syncs)
}

/// fdatasync latency in µs of 4 KiB appends into preallocated space (see the module docs).
pub fn append_fdatasync_latency(
    dir: &Path,
    duration: Duration,
    max_syncs: u64,
) -> BenchResult<Histogram<u64>> {
    measure_in(
        dir,
        "append-fdatasync",
        Layout::AppendPreallocated,
        duration,
        max_syncs,
    )
}

/// Where each synced 4 KiB block goes.
#[derive(Clone, Copy)]
enum Layout {
    /// Over blocks already written (cycling over `BLOCKS` of them).
    Overwrite,
    /// After the previous one, into `fallocate`d (unwritten) space.
    AppendPreallocated,
}

/// Measures in a scratch file in `dir`, removed afterwards.
fn measure_in(
    dir: &Path,
    name: &str,
    layout: Layout,
    duration: Duration,
    max_syncs: u64,
) -> BenchResult<Histogram<u64>> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("kafka-load-{name}-{}", std::process::id()));
    let outcome = measure(&path, layout, duration, max_syncs);
    let _ = std::fs::remove_file(&path);
    outcome
}

fn measure(
    path: &Path,
    layout: Layout,
    duration: Duration,
    max_syncs: u64,
) -> BenchResult<Histogram<u64>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)?;
    let block = vec![0x5au8; BLOCK];
    match layout {
        Layout::Overwrite => {
            for i in 0..BLOCKS {
                file.write_all_at(&block, i * BLOCK as u64)?;
            }
        }
        Layout::AppendPreallocated => {
            let room = i64::try_from((max_syncs + 1) * BLOCK as u64)?;
            nix::fcntl::fallocate(
                file.as_raw_fd(),
                nix::fcntl::FallocateFlags::empty(),
                0,
                room,
            )?;
        }
    }
    file.sync_all()?;
    let mut histogram = latency_histogram()?;
    let deadline = Instant::now() + duration;
    let mut i = 0u64;
    while i < max_syncs && Instant::now() < deadline {
        let position = match layout {
            Layout::Overwrite => (i % BLOCKS) * BLOCK as u64,
            Layout::AppendPreallocated => i * BLOCK as u64,
        };
        let started = Instant::now();
        file.write_all_at(&block, position)?;
        file.sync_data()?;
        histogram.saturating_record(started.elapsed().as_micros() as u64);
        i += 1;
    }
    Ok(histogram)
}
