//! Opening a log: find the segments, trust what the recovery point vouches for, scan the rest.
//!
//! - Segments that end at or below the recovery point were closed, synced and indexed: their
//!   index files are loaded (and rebuilt if missing or inconsistent) and only the bytes after
//!   the last index entry are scanned, which also finds the segment's end.
//! - Every other segment is scanned from the start; each batch's length, magic, CRC32C and
//!   offset are checked and the indexes rebuilt as it goes.
//! - The first invalid byte ends the log: the file is truncated there, later segments are
//!   deleted, and a warning says what was cut and why.
//!
//! Nothing read from a file is trusted before a bound check, so any content opens without a
//! panic (`fuzz/` feeds the scanner arbitrary bytes).

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;

use super::segment::{parse_log_file_name, segment_open_mode, Segment, Staging};
use super::{Inner, CHUNK_POOL_MAX};
use crate::aligned::AlignedBuf;
use crate::cache::TailCache;
use crate::config::LogConfig;
use crate::error::{Result, StorageError};
use crate::index::{OffsetIndex, TimeIndex};
use crate::io::{Backend, File, OpenMode};
use crate::limits::{align_down, align_up, BATCH_BYTES_MAX, RECOVERY_READ_BYTES};
use crate::scan::{ScanStop, Scanner};
use crate::state::{EpochEntry, PartitionState, STATE_FILE};

pub(super) async fn recover(dir: &Path, config: &LogConfig, backend: &Backend) -> Result<Inner> {
    let ctx = |what: &str| format!("{what} {}", dir.display());
    backend
        .create_dir_all(dir)
        .await
        .map_err(|e| StorageError::io(ctx("create"), e))?;
    let names = backend
        .list_dir(dir)
        .await
        .map_err(|e| StorageError::io(ctx("list"), e))?;
    let mut bases: Vec<u64> = names
        .iter()
        .filter_map(|n| parse_log_file_name(n))
        .collect();
    bases.sort_unstable();
    remove_orphans(backend, dir, &names, &bases).await?;

    let state = PartitionState::load(backend, dir).await?;
    let had_state = state.is_some();
    let state = state.unwrap_or_default();
    let mut log_start = state
        .log_start_offset
        .max(bases.first().copied().unwrap_or(0));
    if !had_state {
        log_start = bases.first().copied().unwrap_or(0);
    }

    // Segments wholly below the log start were being deleted when the process stopped.
    while bases.len() > 1 && bases[1] <= log_start {
        delete_segment_files(backend, dir, bases[0]).await?;
        bases.remove(0);
    }

    let mut segments = BTreeMap::new();
    let mut epochs: Vec<EpochEntry> = Vec::new();
    let mut changed = !had_state;
    let mut expected_base: Option<u64> = None;
    let mut cut_at: Option<usize> = None;
    for (i, &base) in bases.iter().enumerate() {
        if let Some(expected) = expected_base {
            if base != expected {
                tracing::warn!(
                    dir = %dir.display(), base, expected,
                    "segment does not continue the log; it and every later segment are dropped"
                );
                cut_at = Some(i);
                break;
            }
        }
        let successor = bases.get(i + 1).copied();
        let trusted = had_state && successor.is_some_and(|next| next <= state.recovery_point);
        let last_trusted_candidate = had_state && successor.is_none();
        let path = dir.join(super::segment::log_file_name(base));
        let file = backend
            .open(&path, segment_open_mode(false, config.flush))
            .await
            .map_err(|e| StorageError::io(format!("open {}", path.display()), e))?;
        let mut seg = Segment::new_active(dir, base);
        seg.file = Some(Rc::new(file));
        let trust = (trusted || last_trusted_candidate).then_some(Trust {
            recovery_point: state.recovery_point,
            is_last: successor.is_none(),
        });
        let outcome = load_segment(backend, &mut seg, trust, config.index_interval_bytes).await?;
        if outcome.scanned {
            epochs.retain(|e| e.start_offset < base);
            for e in &outcome.epochs {
                if epochs.last().is_none_or(|last| e.epoch > last.epoch) {
                    epochs.push(*e);
                }
            }
        } else {
            for e in state
                .epochs
                .iter()
                .filter(|e| e.start_offset >= base && e.start_offset < seg.next_offset)
            {
                if epochs.last().is_none_or(|last| e.epoch > last.epoch) {
                    epochs.push(*e);
                }
            }
        }
        changed |= outcome.truncated;
        // Recovered segments are closed; the last one is reopened for appends below.
        seg.staging = None;
        expected_base = Some(seg.next_offset);
        let stop_here = outcome.corrupt;
        segments.insert(base, seg);
        if stop_here {
            cut_at = Some(i + 1);
            break;
        }
    }
    if let Some(cut) = cut_at {
        for &base in &bases[cut..] {
            tracing::warn!(dir = %dir.display(), base, "deleting segment after the end of the valid log");
            delete_segment_files(backend, dir, base).await?;
        }
        changed = true;
    }
    // An empty leading segment below the log start is fine; an empty log starts at log_start.
    let log_end = segments
        .values()
        .next_back()
        .map(|s| s.next_offset)
        .unwrap_or(log_start);
    let log_start = log_start.min(log_end);
    if segments.is_empty() {
        segments.insert(log_start, Segment::new_active(dir, log_start));
    }
    epochs.retain(|e| e.start_offset < log_end);

    // The last segment becomes the active one again.
    let mut chunk_pool = Vec::with_capacity(CHUNK_POOL_MAX);
    if let Some((_, active)) = segments.iter_mut().next_back() {
        reopen_for_append(active, &mut chunk_pool).await?;
    }
    let recovery_point = segments
        .values()
        .next_back()
        .map(|s| s.base_offset)
        .unwrap_or(log_start);
    let mut inner = Inner {
        segments,
        log_start_offset: log_start,
        log_end_offset: log_end,
        written_offset: log_end,
        durable_offset: log_end,
        high_watermark: state.high_watermark.clamp(log_start, log_end),
        recovery_point,
        epochs,
        vote: state.vote.clone(),
        cache: TailCache::new(config.cache_bytes),
        read_ahead: None,
        chunk_pool,
        poisoned: None,
        disk_full: false,
        closed: false,
        unflushed_messages: 0,
        unflushed_bytes: 0,
        first_unflushed_at: None,
        active_started_ms: None,
    };
    if changed
        || inner.recovery_point != state.recovery_point
        || inner.log_start_offset != state.log_start_offset
    {
        let new_state = PartitionState {
            log_start_offset: inner.log_start_offset,
            recovery_point: inner.recovery_point,
            high_watermark: inner.high_watermark,
            epochs: inner.epochs.clone(),
            vote: inner.vote.clone(),
        };
        new_state.store(backend, dir).await?;
    }
    inner.cache.clear();
    tracing::debug!(
        dir = %dir.display(), backend = backend.name(), log_start, log_end,
        segments = inner.segments.len(), "partition log opened"
    );
    Ok(inner)
}

/// Removes temporary files and indexes whose log file is gone.
async fn remove_orphans(
    backend: &Backend,
    dir: &Path,
    names: &[String],
    bases: &[u64],
) -> Result<()> {
    for name in names {
        let orphan_index = ["index", "timeindex"].iter().any(|ext| {
            name.strip_suffix(&format!(".{ext}"))
                .and_then(|stem| parse_log_file_name(&format!("{stem}.log")))
                .is_some_and(|base| !bases.contains(&base))
        });
        if orphan_index || (name.ends_with(".tmp") && name != STATE_FILE) {
            backend
                .remove_file(&dir.join(name))
                .await
                .map_err(|e| StorageError::io(format!("remove {name}"), e))?;
        }
    }
    Ok(())
}

pub(super) async fn delete_segment_files(backend: &Backend, dir: &Path, base: u64) -> Result<()> {
    let log = dir.join(super::segment::log_file_name(base));
    for path in [
        log.with_extension("index"),
        log.with_extension("timeindex"),
        log,
    ] {
        backend
            .remove_file(&path)
            .await
            .map_err(|e| StorageError::io(format!("remove {}", path.display()), e))?;
    }
    Ok(())
}

struct LoadOutcome {
    scanned: bool,
    truncated: bool,
    corrupt: bool,
    epochs: Vec<EpochEntry>,
}

/// Fills in `seg` from its files: index files plus a tail scan when the state file vouches for it, a full scan
/// otherwise (or when the index files do not hold up).
/// What the state file vouches for about a segment.
#[derive(Clone, Copy)]
struct Trust {
    recovery_point: u64,
    /// The last segment is trusted only if it ends exactly at the recovery point (a clean close).
    is_last: bool,
}

async fn load_segment(
    backend: &Backend,
    seg: &mut Segment,
    trust: Option<Trust>,
    interval: u32,
) -> Result<LoadOutcome> {
    let Some(file) = seg.file.clone() else {
        unreachable!("segment opened above")
    };
    let file_len = file
        .len()
        .await
        .map_err(|e| StorageError::io("stat segment", e))?;
    if let Some(trust) = trust {
        if let Some(outcome) =
            try_trusted_load(backend, seg, &file, file_len, trust, interval).await?
        {
            return Ok(outcome);
        }
        *seg = reset_segment(seg);
    }
    let mut epochs = Vec::new();
    let stop = scan_from(seg, &file, file_len, 0, interval, &mut epochs).await?;
    let (end, corrupt) = match &stop {
        ScanStop::End { position } => (*position, false),
        ScanStop::Invalid { position, reason } => {
            tracing::warn!(
                path = %seg.path.display(), position = *position, file_len, %reason,
                "truncating torn or corrupt tail"
            );
            (*position, true)
        }
        ScanStop::NeedMore { position, .. } => (*position, true),
    };
    let truncated = end < file_len;
    if truncated {
        file.set_len(end)
            .await
            .map_err(|e| StorageError::io("truncate segment tail", e))?;
        file.sync_data()
            .await
            .map_err(|e| StorageError::io("sync truncated segment", e))?;
    }
    seg.allocated = end;
    Ok(LoadOutcome {
        scanned: true,
        truncated,
        corrupt,
        epochs,
    })
}

fn reset_segment(seg: &Segment) -> Segment {
    let dir = seg.path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut fresh = Segment::new_active(&dir, seg.base_offset);
    fresh.file = seg.file.clone();
    fresh
}

/// Loads a closed segment from its index files; `None` if anything does not add up.
async fn try_trusted_load(
    backend: &Backend,
    seg: &mut Segment,
    file: &File,
    file_len: u64,
    trust: Trust,
    interval: u32,
) -> Result<Option<LoadOutcome>> {
    let span = crate::limits::SEGMENT_OFFSET_SPAN_MAX;
    let Some(index_bytes) = read_small_file(backend, &seg.index_path()).await? else {
        return Ok(None);
    };
    let Some(time_bytes) = read_small_file(backend, &seg.timeindex_path()).await? else {
        return Ok(None);
    };
    let Some(offset_index) = OffsetIndex::decode(&index_bytes, file_len, span) else {
        return Ok(None);
    };
    let Some(time_index) = TimeIndex::decode(&time_bytes, span) else {
        return Ok(None);
    };
    let (relative, position) = offset_index.last().unwrap_or((0, 0));
    // Scan the tail after the last index entry: it must end exactly at the end of the file.
    let mut tail = Segment::new_active(Path::new(""), seg.base_offset);
    tail.size = position;
    tail.next_offset = seg.base_offset + relative as u64;
    let mut epochs = Vec::new();
    let stop = scan_from(&mut tail, file, file_len, position, interval, &mut epochs).await?;
    let ends_right = if trust.is_last {
        tail.next_offset == trust.recovery_point
    } else {
        tail.next_offset <= trust.recovery_point
    };
    if stop != (ScanStop::End { position: file_len }) || !ends_right {
        return Ok(None);
    }
    let first_ts = read_first_timestamp(file).await;
    seg.offset_index = offset_index;
    seg.time_index = time_index;
    seg.size = file_len;
    seg.written = file_len;
    seg.allocated = file_len;
    seg.next_offset = tail.next_offset;
    seg.bytes_since_index_entry = tail.bytes_since_index_entry;
    // The time index records maxima before each entry; the tail scan adds what follows.
    let (indexed_max, _) = seg.time_index.last().unwrap_or((i64::MIN, 0));
    if tail.max_timestamp > indexed_max {
        seg.max_timestamp = tail.max_timestamp;
        seg.offset_of_max_timestamp = tail.offset_of_max_timestamp;
    } else {
        seg.max_timestamp = indexed_max;
        seg.offset_of_max_timestamp = seg.base_offset;
    }
    seg.first_batch_timestamp = first_ts;
    Ok(Some(LoadOutcome {
        scanned: false,
        truncated: false,
        corrupt: false,
        epochs,
    }))
}

async fn read_first_timestamp(file: &File) -> Option<i64> {
    let (res, buf) = file.read_at(AlignedBuf::with_capacity(4096), 0).await;
    let n = res.ok()?;
    let header = crate::batch::BatchHeader::decode(&buf.as_slice()[..n.min(buf.len())]).ok()?;
    Some(header.max_timestamp)
}

async fn read_small_file(backend: &Backend, path: &Path) -> Result<Option<Vec<u8>>> {
    let file = match backend
        .open(
            path,
            OpenMode {
                create: false,
                direct: false,
                durable_writes: false,
            },
        )
        .await
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io(format!("open {}", path.display()), e)),
    };
    let len = file
        .len()
        .await
        .map_err(|e| StorageError::io("stat index", e))?;
    if len > crate::limits::SEGMENT_BYTES_MAX / 4 {
        return Ok(None);
    }
    let (res, buf) = file
        .read_at(AlignedBuf::with_capacity(len as usize), 0)
        .await;
    let n = res.map_err(|e| StorageError::io(format!("read {}", path.display()), e))?;
    if n as u64 != len {
        return Ok(None);
    }
    Ok(Some(buf.as_slice()[..n].to_vec()))
}

/// Scans `file` from `start` (a batch boundary whose state `seg` already reflects), feeding
/// every valid batch into `seg`'s bookkeeping and `epochs`.
async fn scan_from(
    seg: &mut Segment,
    file: &File,
    file_len: u64,
    start: u64,
    interval: u32,
    epochs: &mut Vec<EpochEntry>,
) -> Result<ScanStop> {
    let mut scanner = Scanner::new(seg.base_offset);
    scanner.position = start;
    scanner.next_offset = seg.next_offset;
    seg.size = start;
    let mut want = RECOVERY_READ_BYTES;
    loop {
        let file_pos = align_down(scanner.position);
        let skew = (scanner.position - file_pos) as usize;
        if scanner.position >= file_len {
            seg.written = seg.size;
            return Ok(ScanStop::End {
                position: scanner.position,
            });
        }
        let len = (want + skew).min(align_up(file_len - file_pos) as usize);
        let (res, buf) = file.read_at(AlignedBuf::with_capacity(len), file_pos).await;
        let n = res.map_err(|e| StorageError::io(format!("read {}", seg.path.display()), e))?;
        let n = (n as u64).min(file_len - file_pos) as usize;
        let at_eof = file_pos + n as u64 >= file_len;
        let data = buf.as_slice().get(skew..n).unwrap_or(&[]);
        let stop = scanner.scan(data, at_eof, |b| {
            let h = &b.header;
            let base = h.base_offset as u64;
            let next = base + h.offset_count();
            seg.note_batch(base, next, h.max_timestamp, h.total_len() as u64, interval);
            if h.partition_leader_epoch >= 0
                && epochs
                    .last()
                    .is_none_or(|e| h.partition_leader_epoch > e.epoch)
            {
                epochs.push(EpochEntry {
                    epoch: h.partition_leader_epoch,
                    start_offset: base,
                });
            }
        });
        seg.written = seg.size;
        match stop {
            ScanStop::NeedMore { bytes_needed, .. } => {
                if bytes_needed > BATCH_BYTES_MAX {
                    return Ok(ScanStop::Invalid {
                        position: scanner.position,
                        reason: "batch too large".into(),
                    });
                }
                want = RECOVERY_READ_BYTES.max(bytes_needed);
            }
            other => return Ok(other),
        }
    }
}

/// Makes the last segment writable again: its partial tail block goes back into staging.
async fn reopen_for_append(seg: &mut Segment, pool: &mut Vec<AlignedBuf>) -> Result<()> {
    let tail_start = align_down(seg.size);
    let mut staging = Staging::new(tail_start);
    let tail_len = (seg.size - tail_start) as usize;
    if tail_len > 0 {
        let Some(file) = seg.file.clone() else {
            unreachable!("recovered segments are open")
        };
        let (res, buf) = file
            .read_at(AlignedBuf::with_capacity(4096), tail_start)
            .await;
        let n = res.map_err(|e| StorageError::io("read segment tail", e))?;
        if n < tail_len {
            return Err(StorageError::Corrupt {
                path: seg.path.clone(),
                position: tail_start,
                reason: "tail block shorter than the recovered size".into(),
            });
        }
        staging.append(&buf.as_slice()[..tail_len], pool);
    }
    seg.staging = Some(staging);
    seg.sealed = false;
    Ok(())
}
