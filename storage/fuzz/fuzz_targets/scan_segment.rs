//! Feeds arbitrary bytes to the pure recovery scanner as one segment's contents.
//!
//! The same bytes are scanned three ways, which must reach the same verdict (accepted batches,
//! stop kind and position; only the wording of an `Invalid` reason may differ): in one piece at
//! end of file; split at a point derived from the input (the first call ends before EOF, so a
//! batch that straddles the cut yields `NeedMore` and the scan continues from where it
//! stopped); and streamed in small chunks, as recovery reads a big segment. Each outcome is
//! checked: accepted batches lie back to back from position 0, re-parse on their exact bytes,
//! and carry contiguous offsets from the segment base; the stop position is where they end and
//! within the input; an `End` is justified by zeroes or EOF; and an `Invalid` stop is not
//! hiding a batch the scanner should have accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use storage::batch::BatchHeader;
use storage::limits::{BATCH_LENGTH_FIELD_END, SEGMENT_OFFSET_SPAN_MAX};
use storage::scan::{ScanStop, Scanner};

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    /// (position, header) of every accepted batch, in order.
    batches: Vec<(u64, BatchHeader)>,
    stop: ScanStop,
    position: u64,
    next_offset: u64,
}

fn finish(scanner: &Scanner, batches: Vec<(u64, BatchHeader)>, stop: ScanStop) -> Outcome {
    Outcome {
        batches,
        stop,
        position: scanner.position,
        next_offset: scanner.next_offset,
    }
}

/// The outcome without the `Invalid` reason, whose wording may depend on how much of the
/// input the failing call was given (e.g. "... but N bytes follow it").
fn verdict(mut out: Outcome) -> Outcome {
    if let ScanStop::Invalid { reason, .. } = &mut out.stop {
        reason.clear();
    }
    out
}

/// Scans `data` in one call, at end of file.
fn one_piece(data: &[u8], base: u64) -> Outcome {
    let mut scanner = Scanner::new(base);
    let mut batches = Vec::new();
    let stop = scanner.scan(data, true, |b| batches.push((b.position, b.header)));
    finish(&scanner, batches, stop)
}

/// Checks a `NeedMore` answer to a call that was handed `given` bytes from `start`.
fn check_need_more(stop: &ScanStop, scanner: &Scanner, start: usize, given: usize) {
    if let ScanStop::NeedMore {
        position,
        bytes_needed,
    } = *stop
    {
        assert_eq!(
            position, scanner.position,
            "NeedMore must point at the scanner's position"
        );
        let position = position as usize;
        assert!(
            position >= start && position <= start + given,
            "NeedMore outside the buffer"
        );
        let have = start + given - position;
        assert!(
            bytes_needed > have,
            "NeedMore asks for {bytes_needed} bytes but {have} were already there"
        );
        assert!(bytes_needed >= BATCH_LENGTH_FIELD_END);
    }
}

/// Scans `data[..cut]` (at EOF only if `cut` is the end), then the rest from wherever the
/// first call asked to continue.
fn split(data: &[u8], base: u64, cut: usize) -> Outcome {
    let mut scanner = Scanner::new(base);
    let mut batches = Vec::new();
    let at_eof = cut == data.len();
    let stop = scanner.scan(&data[..cut], at_eof, |b| {
        batches.push((b.position, b.header))
    });
    check_need_more(&stop, &scanner, 0, cut);
    let stop = match stop {
        ScanStop::NeedMore { position, .. } => {
            assert!(!at_eof, "NeedMore at end of file");
            let from = position as usize;
            let stop = scanner.scan(&data[from..], true, |b| {
                batches.push((b.position, b.header))
            });
            assert!(
                !matches!(stop, ScanStop::NeedMore { .. }),
                "NeedMore at end of file: {stop:?}"
            );
            stop
        }
        other => other,
    };
    finish(&scanner, batches, stop)
}

/// Streams `data` in reads of `chunk` bytes, or of what the scanner asked for if more.
fn chunked(data: &[u8], base: u64, chunk: usize) -> Outcome {
    let mut scanner = Scanner::new(base);
    let mut batches = Vec::new();
    let mut needed = 0usize;
    let mut calls = 0usize;
    loop {
        calls += 1;
        assert!(calls <= data.len() + 2, "scanner makes no progress");
        let start = scanner.position as usize;
        assert!(start <= data.len(), "scanner position past the input");
        let end = (start + chunk.max(needed)).min(data.len());
        let at_eof = end == data.len();
        let stop = scanner.scan(&data[start..end], at_eof, |b| {
            batches.push((b.position, b.header))
        });
        check_need_more(&stop, &scanner, start, end - start);
        match stop {
            ScanStop::NeedMore { bytes_needed, .. } => {
                assert!(!at_eof, "NeedMore at end of file");
                needed = bytes_needed;
            }
            other => return finish(&scanner, batches, other),
        }
    }
}

/// Would a batch at the start of `rest` be accepted when `next_offset` is expected next?
fn acceptable(rest: &[u8], base: u64, next_offset: u64) -> bool {
    let Ok(total) = BatchHeader::framed_len(rest) else {
        return false;
    };
    if total > rest.len() {
        return false;
    }
    let Ok(header) = BatchHeader::parse(&rest[..total]) else {
        return false;
    };
    header.base_offset >= 0
        && header.base_offset as u64 == next_offset
        && next_offset + header.offset_count() - base <= SEGMENT_OFFSET_SPAN_MAX
}

fn check(data: &[u8], base: u64, out: &Outcome) {
    let mut position = 0u64;
    let mut next_offset = base;
    for &(at, header) in &out.batches {
        assert_eq!(at, position, "accepted batches are not back to back");
        let total = header.total_len();
        let end = at as usize + total;
        assert!(end <= data.len(), "accepted batch runs past the input");
        let reparsed = BatchHeader::parse(&data[at as usize..end]);
        assert_eq!(
            reparsed,
            Ok(header),
            "accepted batch does not re-parse on its own bytes"
        );
        assert_eq!(
            header.base_offset as u64, next_offset,
            "offsets are not contiguous"
        );
        next_offset += header.offset_count();
        assert!(
            next_offset - base <= SEGMENT_OFFSET_SPAN_MAX,
            "batch overflows the segment span"
        );
        position += total as u64;
    }
    assert_eq!(
        out.position, position,
        "scanner position is not the end of the last batch"
    );
    assert_eq!(
        out.next_offset, next_offset,
        "scanner next offset is not after the last batch"
    );
    let stop_at = match &out.stop {
        ScanStop::End { position } | ScanStop::Invalid { position, .. } => *position,
        ScanStop::NeedMore { .. } => panic!("NeedMore from a scan that ended at EOF"),
    };
    assert_eq!(
        stop_at, position,
        "stop position is not where accepted batches end"
    );
    assert!(
        stop_at as usize <= data.len(),
        "stop position past the input"
    );
    let rest = &data[stop_at as usize..];
    match &out.stop {
        ScanStop::End { .. } => {
            let head = &rest[..rest.len().min(BATCH_LENGTH_FIELD_END)];
            assert!(
                head.iter().all(|&b| b == 0),
                "End at a position that holds data"
            );
        }
        ScanStop::Invalid { reason, .. } => {
            assert!(!reason.is_empty(), "Invalid without a reason");
            assert!(
                !acceptable(rest, base, next_offset),
                "scanner rejected a valid batch at {stop_at}: {reason}"
            );
        }
        ScanStop::NeedMore { .. } => unreachable!(),
    }
}

fuzz_target!(|data: &[u8]| {
    let len = data.len();
    let cut = match data {
        [.., a, b] => u16::from_le_bytes([*a, *b]) as usize % (len + 1),
        _ => 0,
    };
    let chunk = 1 + data.get(len / 2).map_or(0, |&b| b as usize) % 160;
    let mut bases = vec![0u64];
    if let Some(first) = data.get(..8) {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(first);
        bases.push(u64::from_be_bytes(raw));
    }
    for base in bases {
        let whole = one_piece(data, base);
        check(data, base, &whole);
        let whole = verdict(whole);
        assert_eq!(
            verdict(split(data, base, cut)),
            whole,
            "split at {cut} disagrees with one piece"
        );
        assert_eq!(
            verdict(chunked(data, base, chunk)),
            whole,
            "chunks of {chunk} disagree with one piece"
        );
    }
});
