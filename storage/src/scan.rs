//! The recovery scanner: walks the bytes of a segment and accepts batches while they are valid.
//!
//! It is pure (bytes in, verdict out) so the fuzzer can hammer it without a file system, and it
//! never allocates or trusts a length before checking it against the bytes actually present
//! and [`crate::limits::BATCH_BYTES_MAX`].
//!
//! A batch is accepted when its length is in bounds and fully present, its magic is 2, its
//! CRC32C matches, its base offset is exactly the next expected offset (the writer never leaves
//! gaps within a segment), and its offsets fit the segment's `u32` relative span. The scan stops
//! at the first batch that is not; everything from there on is the torn or corrupt tail.

use crate::batch::BatchHeader;
use crate::limits::{BATCH_LENGTH_FIELD_END, SEGMENT_OFFSET_SPAN_MAX};

/// One accepted batch.
#[derive(Debug, Clone, Copy)]
pub struct ScannedBatch {
    /// Byte position of the batch in the segment.
    pub position: u64,
    pub header: BatchHeader,
}

/// Why a scan step stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanStop {
    /// The buffer ended inside a batch that may be complete in the file: call again with at
    /// least `bytes_needed` bytes from `position`.
    NeedMore { position: u64, bytes_needed: usize },
    /// A clean end: end of file, or zeroes (preallocated space or write padding).
    End { position: u64 },
    /// Garbage or a torn batch at `position`; the log ends there.
    Invalid { position: u64, reason: String },
}

/// Scanner state carried across reads of one segment.
#[derive(Debug, Clone)]
pub struct Scanner {
    segment_base: u64,
    /// Where the next batch must start in the segment.
    pub position: u64,
    /// The base offset the next batch must have.
    pub next_offset: u64,
}

impl Scanner {
    pub fn new(segment_base: u64) -> Self {
        Scanner {
            segment_base,
            position: 0,
            next_offset: segment_base,
        }
    }

    /// Scans `buf`, which holds the segment's bytes starting at `self.position`; `at_eof` says
    /// that the file ends where `buf` does. Calls `on_batch` for each accepted batch.
    pub fn scan(
        &mut self,
        buf: &[u8],
        at_eof: bool,
        mut on_batch: impl FnMut(&ScannedBatch),
    ) -> ScanStop {
        let mut at = 0usize;
        loop {
            let rest = &buf[at..];
            let position = self.position;
            if rest.len() < BATCH_LENGTH_FIELD_END {
                return if !at_eof {
                    ScanStop::NeedMore {
                        position,
                        bytes_needed: BATCH_LENGTH_FIELD_END,
                    }
                } else if rest.iter().all(|&b| b == 0) {
                    ScanStop::End { position }
                } else {
                    ScanStop::Invalid {
                        position,
                        reason: "torn batch header at end of file".into(),
                    }
                };
            }
            if rest[..BATCH_LENGTH_FIELD_END].iter().all(|&b| b == 0) {
                return ScanStop::End { position };
            }
            let total = match BatchHeader::framed_len(rest) {
                Ok(total) => total,
                Err(e) => {
                    return ScanStop::Invalid {
                        position,
                        reason: e.to_string(),
                    }
                }
            };
            if rest.len() < total {
                return if at_eof {
                    ScanStop::Invalid {
                        position,
                        reason: format!("batch of {total} bytes cut off by end of file"),
                    }
                } else {
                    ScanStop::NeedMore {
                        position,
                        bytes_needed: total,
                    }
                };
            }
            let header = match BatchHeader::parse(&rest[..total]) {
                Ok(h) => h,
                Err(e) => {
                    return ScanStop::Invalid {
                        position,
                        reason: e.to_string(),
                    }
                }
            };
            if header.base_offset < 0 || header.base_offset as u64 != self.next_offset {
                return ScanStop::Invalid {
                    position,
                    reason: format!(
                        "batch base offset {} where {} was expected",
                        header.base_offset, self.next_offset
                    ),
                };
            }
            let next = self.next_offset + header.offset_count();
            if next - self.segment_base > SEGMENT_OFFSET_SPAN_MAX {
                return ScanStop::Invalid {
                    position,
                    reason: "offsets overflow the segment".into(),
                };
            }
            on_batch(&ScannedBatch { position, header });
            self.position += total as u64;
            self.next_offset = next;
            at += total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{assign, testing::seeded};

    fn log_bytes(counts: &[i32]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offset = 100;
        for (i, &n) in counts.iter().enumerate() {
            let mut b = seeded(i as u64, n, 50 + i, 0);
            assign(&mut b, offset, 1);
            offset += n as u64;
            out.extend_from_slice(&b);
        }
        out
    }

    #[test]
    fn accepts_a_clean_log_and_stops_at_zero_padding() {
        let mut bytes = log_bytes(&[1, 3, 2]);
        let len = bytes.len() as u64;
        bytes.resize(bytes.len() + 5000, 0);
        let mut s = Scanner::new(100);
        let mut n = 0;
        assert_eq!(
            s.scan(&bytes, true, |_| n += 1),
            ScanStop::End { position: len }
        );
        assert_eq!((n, s.next_offset), (3, 106));
    }

    #[test]
    fn asks_for_more_then_continues() {
        let bytes = log_bytes(&[1, 1]);
        let mut s = Scanner::new(100);
        let cut = 80;
        let stop = s.scan(&bytes[..cut], false, |_| {});
        let ScanStop::NeedMore { position, .. } = stop else {
            panic!("{stop:?}")
        };
        let stop = s.scan(&bytes[position as usize..], true, |_| {});
        assert_eq!(
            stop,
            ScanStop::End {
                position: bytes.len() as u64
            }
        );
        assert_eq!(s.next_offset, 102);
    }

    #[test]
    fn rejects_offset_gaps_and_torn_tails() {
        let bytes = log_bytes(&[2, 2]);
        let mut s = Scanner::new(99);
        assert!(matches!(
            s.scan(&bytes, true, |_| {}),
            ScanStop::Invalid { position: 0, .. }
        ));
        let mut s = Scanner::new(100);
        assert!(matches!(
            s.scan(&bytes[..bytes.len() - 3], true, |_| {}),
            ScanStop::Invalid { .. }
        ));
    }
}
