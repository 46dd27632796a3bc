//! Per-partition producer state for idempotent producers (Kafka's `ProducerStateManager`):
//! for each producer id its epoch and its last five batches (sequence range and offsets), so a
//! retried batch is recognised and answered with its original offsets instead of being written
//! twice, and a gap in the sequence is refused.
//!
//! For transactions it also keeps, per producer, the first offset of its open transaction here
//! (the smallest of those is the last stable offset, which read_committed consumers never pass)
//! and the list of aborted transactions (producer, first offset, marker offset) that Fetch
//! hands to read_committed consumers so they skip aborted records.
//!
//! The state is rebuilt when the partition opens: from the snapshot file written at clean
//! shutdown and periodically (`producer-state.snapshot` in the partition directory, CRC32C
//! protected, written to a `.tmp` file and renamed), then from the batches after the snapshot's
//! offset; without a usable snapshot, from the whole log.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use storage::batch::BatchHeader;
use storage::PartitionLog;

/// Batches remembered per producer (Kafka's too: clients keep at most five in flight).
pub const BATCHES_KEPT: usize = 5;
/// The snapshot file in a partition's directory.
pub const SNAPSHOT_FILE: &str = "producer-state.snapshot";
const SNAPSHOT_MAGIC: &[u8; 4] = b"SLPS";
const SNAPSHOT_VERSION: u16 = 2;
/// Most producers one snapshot may hold (a bound for reading an untrusted file).
const SNAPSHOT_PRODUCERS_MAX: usize = 10_000_000;

/// One appended batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first.
    pub batches: VecDeque<BatchMeta>,
    /// Wall-clock ms of the last append (for `producer.id.expiration.ms`).
    pub last_append_ms: i64,
    /// First offset of this producer's open transaction in this partition.
    pub txn_first_offset: Option<i64>,
}

/// An aborted transaction in this partition: its records lie in `[first_offset, last_offset]`
/// (the last being its abort marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What to do with an idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Append,
    /// Already in the log: answer with these offsets and write nothing.
    Duplicate {
        first_offset: i64,
        last_offset: i64,
    },
}

/// The producers of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStates {
    pub producers: HashMap<i64, ProducerEntry>,
    /// In marker order (so by `last_offset`).
    pub aborted: Vec<AbortedTxn>,
}

/// The sequence after `seq` (sequences wrap at i32::MAX, as Kafka's do).
fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// The last sequence of a batch starting at `first` with `records` records.
fn last_seq(first: i32, records: i32) -> i32 {
    let span = i64::from(records.max(1)) - 1;
    ((i64::from(first) + span) % (i64::from(i32::MAX) + 1)) as i32
}

impl ProducerStates {
    /// Checks an idempotent batch (producer id >= 0) against the state (Kafka's
    /// `ProducerAppendInfo.checkSequence` and duplicate detection).
    pub fn check(&self, header: &BatchHeader) -> Result<Verdict, ResponseError> {
        let first = header.base_sequence;
        let last = last_seq(first, header.records_count);
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // Unknown producer: a fresh one starts at 0; anything else means its state is
            // gone (expired or deleted with the log) and the client must reset.
            return if first == 0 {
                Ok(Verdict::Append)
            } else {
                Err(ResponseError::UnknownProducerId)
            };
        };
        if header.producer_epoch < entry.epoch {
            return Err(ResponseError::InvalidProducerEpoch);
        }
        if header.producer_epoch > entry.epoch {
            // A new epoch starts its sequences over.
            return if first == 0 {
                Ok(Verdict::Append)
            } else {
                Err(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return Ok(Verdict::Duplicate {
                first_offset: dup.first_offset,
                last_offset: dup.last_offset,
            });
        }
        match entry.batches.back() {
            Some(latest) if next_seq(latest.last_seq) == first => Ok(Verdict::Append),
            None if first == 0 => Ok(Verdict::Append),
            _ => Err(ResponseError::OutOfOrderSequenceNumber),
        }
    }

    /// Records an appended batch (live, or replayed from the log) at `first_offset`.
    pub fn record(&mut self, header: &BatchHeader, first_offset: i64, now_ms: i64) {
        if header.producer_id < 0 || header.is_control() {
            return;
        }
        let meta = BatchMeta {
            first_seq: header.base_sequence,
            last_seq: last_seq(header.base_sequence, header.records_count),
            first_offset,
            last_offset: first_offset + i64::from(header.last_offset_delta),
        };
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_append_ms: now_ms,
                txn_first_offset: None,
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if header.is_transactional() && entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(first_offset);
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(meta);
        entry.last_append_ms = entry.last_append_ms.max(now_ms);
    }

    /// Records a transaction marker of `producer_id` written at `offset`: its open transaction
    /// here ends (and, aborted, joins the aborted list).
    pub fn apply_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        offset: i64,
        now_ms: i64,
    ) {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_append_ms: now_ms,
                txn_first_offset: None,
            });
        if epoch > entry.epoch {
            // A bumped epoch (the transaction was fenced or timed out): sequences restart.
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_append_ms = entry.last_append_ms.max(now_ms);
        if let Some(first_offset) = entry.txn_first_offset.take() {
            if !commit {
                self.aborted.push(AbortedTxn {
                    producer_id,
                    first_offset,
                    last_offset: offset,
                });
            }
        }
    }

    /// The first offset of the oldest open transaction: the last stable offset when below the
    /// high watermark.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.txn_first_offset)
            .min()
    }

    /// Aborted transactions overlapping `[from, to]`, as Fetch reports them: (producer id,
    /// first offset).
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset <= to)
            .map(|a| (a.producer_id, a.first_offset))
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start (deleted by retention).
    pub fn trim_aborted(&mut self, log_start: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start);
    }

    /// Forgets producers silent for `expiration_ms` (Kafka's `producer.id.expiration.ms`);
    /// a producer with an open transaction is kept (the coordinator will end it).
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_append_ms) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Rebuilds the state of `log`: from its snapshot when usable, then from the batches after
    /// it.
    pub async fn recover(log: &PartitionLog) -> Result<ProducerStates, String> {
        let path = log.dir().join(SNAPSHOT_FILE);
        let start = log.log_start_offset();
        let end = log.log_end_offset();
        let (mut states, mut offset) = match std::fs::read(&path) {
            Ok(bytes) => match decode_snapshot(Bytes::from(bytes)) {
                Ok((states, offset)) if offset <= end => (states, offset.max(start)),
                Ok((_, offset)) => {
                    // It may describe batches the crash took: never trust it again.
                    tracing::info!(path = %path.display(), offset, end, "producer snapshot is past the log end (truncated log); rebuilding from the log");
                    discard(&path)?;
                    (ProducerStates::default(), start)
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable producer snapshot; rebuilding from the log");
                    discard(&path)?;
                    (ProducerStates::default(), start)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (ProducerStates::default(), start)
            }
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let now = crate::cluster::metadata::now_ms();
        while offset < end {
            let read = log
                .read(offset, 1 << 20, u64::MAX)
                .await
                .map_err(|e| format!("cannot read the log to rebuild producer state: {e}"))?;
            if read.batches.is_empty() {
                break;
            }
            for batch in &read.batches {
                let header = BatchHeader::decode(batch)
                    .map_err(|e| format!("bad batch while rebuilding producer state: {e}"))?;
                if header.producer_id < 0 || header.last_offset() < offset as i64 {
                    continue;
                }
                if header.is_control() {
                    if let Some(commit) = marker_kind(batch) {
                        states.apply_marker(
                            header.producer_id,
                            header.producer_epoch,
                            commit,
                            header.base_offset,
                            now,
                        );
                    }
                } else {
                    states.record(&header, header.base_offset, now);
                }
            }
            offset = read.next_offset.max(offset + 1);
        }
        Ok(states)
    }

    /// Writes the snapshot of the state as of `offset` (the log end when taken), atomically.
    pub fn save(&self, dir: &Path, offset: u64) -> std::io::Result<()> {
        let bytes = self.encode_snapshot(offset);
        let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
        {
            let mut file = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
        std::fs::File::open(dir)?.sync_all()
    }

    fn encode_snapshot(&self, offset: u64) -> Bytes {
        let mut out = BytesMut::new();
        out.put_slice(SNAPSHOT_MAGIC);
        out.put_u16(SNAPSHOT_VERSION);
        out.put_u64(offset);
        out.put_u32(self.producers.len() as u32);
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        for id in ids {
            let entry = &self.producers[id];
            out.put_i64(*id);
            out.put_i16(entry.epoch);
            out.put_i64(entry.last_append_ms);
            out.put_i64(entry.txn_first_offset.unwrap_or(-1));
            out.put_u8(entry.batches.len() as u8);
            for b in &entry.batches {
                out.put_i32(b.first_seq);
                out.put_i32(b.last_seq);
                out.put_i64(b.first_offset);
                out.put_i64(b.last_offset);
            }
        }
        out.put_u32(self.aborted.len() as u32);
        for a in &self.aborted {
            out.put_i64(a.producer_id);
            out.put_i64(a.first_offset);
            out.put_i64(a.last_offset);
        }
        let crc = crc32c::crc32c(&out);
        out.put_u32(crc);
        out.freeze()
    }
}

/// The kind of a control batch's marker: Some(true) commit, Some(false) abort, None for other
/// control records. The marker's key is `[i16 version][i16 type]`.
pub fn marker_kind(batch: &Bytes) -> Option<bool> {
    let records = protocol::records::decode_records(batch).ok()?;
    let key = records.first()?.key.clone()?;
    if key.len() < 4 {
        return None;
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn discard(path: &Path) -> Result<(), String> {
    std::fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))
}

/// Reads a snapshot: (state, offset it was taken at). Untrusted bytes: every length is
/// checked against what remains before anything is allocated.
fn decode_snapshot(mut buf: Bytes) -> Result<(ProducerStates, u64), String> {
    const HEADER: usize = 4 + 2 + 8 + 4;
    const ENTRY_MIN: usize = 8 + 2 + 8 + 8 + 1;
    const ABORTED: usize = 8 + 8 + 8;
    const BATCH: usize = 4 + 4 + 8 + 8;
    if buf.len() < HEADER + 4 {
        return Err("snapshot too short".into());
    }
    let body_len = buf.len() - 4;
    let stored = u32::from_be_bytes([
        buf[body_len],
        buf[body_len + 1],
        buf[body_len + 2],
        buf[body_len + 3],
    ]);
    if crc32c::crc32c(&buf[..body_len]) != stored {
        return Err("snapshot checksum mismatch".into());
    }
    buf.truncate(body_len);
    if &buf[..4] != SNAPSHOT_MAGIC {
        return Err("not a producer snapshot".into());
    }
    buf.advance(4);
    let version = buf.get_u16();
    if version != SNAPSHOT_VERSION {
        return Err(format!("snapshot version {version}"));
    }
    let offset = buf.get_u64();
    let count = buf.get_u32() as usize;
    if count > SNAPSHOT_PRODUCERS_MAX || count.saturating_mul(ENTRY_MIN) > buf.remaining() {
        return Err(format!("snapshot claims {count} producers"));
    }
    let mut states = ProducerStates::default();
    states.producers.reserve(count);
    for _ in 0..count {
        if buf.remaining() < ENTRY_MIN {
            return Err("truncated snapshot entry".into());
        }
        let id = buf.get_i64();
        let epoch = buf.get_i16();
        let last_append_ms = buf.get_i64();
        let txn_first_offset = Some(buf.get_i64()).filter(|o| *o >= 0);
        let batches = buf.get_u8() as usize;
        if batches > BATCHES_KEPT || buf.remaining() < batches * BATCH {
            return Err("bad snapshot batch count".into());
        }
        let batches = (0..batches)
            .map(|_| BatchMeta {
                first_seq: buf.get_i32(),
                last_seq: buf.get_i32(),
                first_offset: buf.get_i64(),
                last_offset: buf.get_i64(),
            })
            .collect();
        states.producers.insert(
            id,
            ProducerEntry {
                epoch,
                batches,
                last_append_ms,
                txn_first_offset,
            },
        );
    }
    if buf.remaining() < 4 {
        return Err("truncated snapshot".into());
    }
    let aborted = buf.get_u32() as usize;
    if aborted.saturating_mul(ABORTED) != buf.remaining() {
        return Err(format!("snapshot claims {aborted} aborted transactions"));
    }
    states.aborted = (0..aborted)
        .map(|_| AbortedTxn {
            producer_id: buf.get_i64(),
            first_offset: buf.get_i64(),
            last_offset: buf.get_i64(),
        })
        .collect();
    if buf.has_remaining() {
        return Err("trailing bytes in snapshot".into());
    }
    Ok((states, offset))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: records,
        }
    }

    #[test]
    fn sequences_duplicates_and_epochs() {
        let mut s = ProducerStates::default();
        assert_eq!(
            s.check(&header(7, 0, 5, 1)),
            Err(ResponseError::UnknownProducerId)
        );
        assert_eq!(s.check(&header(7, 0, 0, 3)), Ok(Verdict::Append));
        s.record(&header(7, 0, 0, 3), 100, 1);
        // A retry of the same batch: its original offsets, nothing written.
        assert_eq!(
            s.check(&header(7, 0, 0, 3)),
            Ok(Verdict::Duplicate {
                first_offset: 100,
                last_offset: 102
            })
        );
        assert_eq!(s.check(&header(7, 0, 3, 2)), Ok(Verdict::Append));
        assert_eq!(
            s.check(&header(7, 0, 4, 2)),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        s.record(&header(7, 1, 0, 1), 103, 2);
        assert_eq!(
            s.check(&header(7, 0, 1, 1)),
            Err(ResponseError::InvalidProducerEpoch)
        );
        assert_eq!(
            s.check(&header(7, 2, 9, 1)),
            Err(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(s.check(&header(7, 2, 0, 1)), Ok(Verdict::Append));
    }

    #[test]
    fn five_batches_are_remembered_and_sequences_wrap() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&header(1, 0, i, 1), 10 + i as i64, 0);
        }
        assert_eq!(s.producers[&1].batches.len(), BATCHES_KEPT);
        assert!(matches!(
            s.check(&header(1, 0, 2, 1)),
            Ok(Verdict::Duplicate {
                first_offset: 12,
                ..
            })
        ));
        assert_eq!(
            s.check(&header(1, 0, 1, 1)),
            Err(ResponseError::OutOfOrderSequenceNumber),
            "older than the five kept"
        );
        let mut s = ProducerStates::default();
        s.record(&header(2, 0, i32::MAX - 1, 2), 0, 0);
        assert_eq!(s.check(&header(2, 0, 0, 1)), Ok(Verdict::Append));
    }

    #[test]
    fn transactions_set_the_stable_offset_and_aborts_are_listed() {
        let mut s = ProducerStates::default();
        let mut txn = header(1, 0, 0, 2);
        txn.attributes = storage::batch::ATTRIBUTE_TRANSACTIONAL;
        s.record(&txn, 10, 0);
        let mut other = header(2, 0, 0, 1);
        other.attributes = storage::batch::ATTRIBUTE_TRANSACTIONAL;
        s.record(&other, 12, 0);
        assert_eq!(s.first_unstable_offset(), Some(10));
        s.apply_marker(1, 0, false, 13, 0);
        assert_eq!(s.first_unstable_offset(), Some(12));
        s.apply_marker(2, 0, true, 14, 0);
        assert_eq!(s.first_unstable_offset(), None);
        assert_eq!(s.aborted_between(0, 100), vec![(1, 10)]);
        assert!(s.aborted_between(14, 100).is_empty());
        s.trim_aborted(14);
        assert!(s.aborted.is_empty());
    }

    #[test]
    fn snapshots_round_trip_and_reject_damage() {
        let mut s = ProducerStates::default();
        s.record(&header(1, 3, 0, 4), 0, 9);
        s.record(&header(2, 0, 0, 1), 4, 9);
        let mut txn = header(3, 0, 0, 1);
        txn.attributes = storage::batch::ATTRIBUTE_TRANSACTIONAL;
        s.record(&txn, 5, 9);
        s.apply_marker(3, 0, false, 6, 9);
        s.record(&txn, 7, 9);
        let bytes = s.encode_snapshot(5);
        assert_eq!(decode_snapshot(bytes.clone()).unwrap(), (s.clone(), 5));
        for cut in [0, 10, bytes.len() - 1] {
            assert!(decode_snapshot(bytes.slice(..cut)).is_err());
        }
        let mut flipped = bytes.to_vec();
        flipped[20] ^= 1;
        assert!(decode_snapshot(Bytes::from(flipped)).is_err());
        assert_eq!(
            s.expire(9 + 100, 50),
            2,
            "the producer in a transaction stays"
        );
    }
}
