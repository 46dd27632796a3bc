//! Sparse indexes of one segment, kept in memory and written beside the log when the segment
//! closes. Both can always be rebuilt from the log, so a missing or inconsistent index file is
//! repaired, never trusted.
//!
//! - `.index`: one entry per `index.interval.bytes` of log (4 KiB by default): the batch's
//!   offset relative to the segment base (`u32`) and its byte position (`u32`). A lookup finds
//!   the last entry at or below the wanted offset and scans forward from its position.
//! - `.timeindex`: entries `(max timestamp so far: i64, next offset relative to base: u32)`,
//!   added with offset-index entries when the maximum timestamp grew. Every batch before an
//!   entry's offset has a timestamp no larger than the entry's, so a search for the first batch
//!   at or after time `t` may skip to the last entry whose timestamp is below `t`.
//!
//! File format: entries packed big-endian, nothing else (like Kafka's).

const OFFSET_ENTRY_BYTES: usize = 8;
const TIME_ENTRY_BYTES: usize = 12;

/// Offset index entry: `(relative offset, position)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// Time index entry: `(max timestamp so far, relative offset of the next batch)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub max_timestamp: i64,
    pub relative_next_offset: u32,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn push(&mut self, entry: OffsetEntry) {
        debug_assert!(self.entries.last().is_none_or(|last| {
            last.relative_offset < entry.relative_offset && last.position < entry.position
        }));
        self.entries.push(entry);
    }

    /// The last entry at or below `relative_offset` as (relative offset, position), or the
    /// segment start.
    pub fn floor(&self, relative_offset: u32) -> (u32, u64) {
        let at = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        match at {
            0 => (0, 0),
            _ => (
                self.entries[at - 1].relative_offset,
                self.entries[at - 1].position as u64,
            ),
        }
    }

    /// Drops entries at or past `relative_offset` (truncation).
    pub fn truncate_from_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Decodes an index file and checks it against the segment it belongs to; `None` means the
    /// file is unusable and the index must be rebuilt.
    pub fn decode(bytes: &[u8], segment_len: u64, offset_span: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES) {
            return None;
        }
        let mut index = OffsetIndex::default();
        for raw in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
            let entry = OffsetEntry {
                relative_offset: u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]),
                position: u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]),
            };
            let ordered = index.entries.last().is_none_or(|last| {
                last.relative_offset < entry.relative_offset && last.position < entry.position
            });
            if !ordered
                || entry.position as u64 >= segment_len
                || entry.relative_offset as u64 >= offset_span
            {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }

    /// The last entry as (relative offset, position).
    pub fn last(&self) -> Option<(u32, u64)> {
        self.entries
            .last()
            .map(|e| (e.relative_offset, e.position as u64))
    }
}

#[derive(Debug, Default, Clone)]
pub(crate) struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    pub fn push(&mut self, entry: TimeEntry) {
        if let Some(last) = self.entries.last() {
            if entry.max_timestamp <= last.max_timestamp {
                return;
            }
        }
        self.entries.push(entry);
    }

    /// The relative offset from which the first batch with a timestamp `>= target` can be
    /// searched: past every batch known to be older.
    pub fn lookup(&self, target: i64) -> u32 {
        let at = self.entries.partition_point(|e| e.max_timestamp < target);
        if at == 0 {
            0
        } else {
            self.entries[at - 1].relative_next_offset
        }
    }

    pub fn truncate_from_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_next_offset <= relative_offset);
        self.entries.truncate(keep);
    }

    /// The last entry as (max timestamp, relative next offset).
    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries
            .last()
            .map(|e| (e.max_timestamp, e.relative_next_offset))
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * TIME_ENTRY_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.max_timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_next_offset.to_be_bytes());
        }
        out
    }

    pub fn decode(bytes: &[u8], offset_span: u64) -> Option<Self> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_BYTES) {
            return None;
        }
        let mut index = TimeIndex::default();
        for raw in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&raw[..8]);
            let entry = TimeEntry {
                max_timestamp: i64::from_be_bytes(ts),
                relative_next_offset: u32::from_be_bytes([raw[8], raw[9], raw[10], raw[11]]),
            };
            let ordered = index.entries.last().is_none_or(|last| {
                last.max_timestamp < entry.max_timestamp
                    && last.relative_next_offset < entry.relative_next_offset
            });
            if !ordered || entry.relative_next_offset as u64 > offset_span {
                return None;
            }
            index.entries.push(entry);
        }
        Some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::default();
        idx.push(OffsetEntry {
            relative_offset: 10,
            position: 4100,
        });
        idx.push(OffsetEntry {
            relative_offset: 20,
            position: 8300,
        });
        assert_eq!(idx.floor(0), (0, 0));
        assert_eq!(idx.floor(10), (10, 4100));
        assert_eq!(idx.floor(19), (10, 4100));
        assert_eq!(idx.floor(25), (20, 8300));
        let round = OffsetIndex::decode(&idx.encode(), 10_000, 100).unwrap();
        assert_eq!(round.floor(25), (20, 8300));
        assert!(
            OffsetIndex::decode(&idx.encode(), 8000, 100).is_none(),
            "position past end"
        );
        idx.truncate_from_offset(20);
        assert_eq!(idx.floor(25), (10, 4100));
    }

    #[test]
    fn time_lookup_skips_only_older_batches() {
        let mut idx = TimeIndex::default();
        idx.push(TimeEntry {
            max_timestamp: 100,
            relative_next_offset: 5,
        });
        idx.push(TimeEntry {
            max_timestamp: 90,
            relative_next_offset: 7,
        }); // not monotonic: ignored
        idx.push(TimeEntry {
            max_timestamp: 200,
            relative_next_offset: 9,
        });
        assert_eq!(idx.lookup(100), 0);
        assert_eq!(idx.lookup(101), 5);
        assert_eq!(idx.lookup(250), 9);
        let round = TimeIndex::decode(&idx.encode(), 10).unwrap();
        assert_eq!(round.lookup(150), 5);
    }
}
