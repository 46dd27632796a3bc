//! `sluice inspect-log`: walks every segment of a partition directory with the same scanner
//! recovery uses and reports what it finds, without changing a byte. Exit status 2 means some
//! segment has a torn or corrupt tail that the broker would truncate on open.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use storage::scan::{ScanStop, Scanner};

/// The outcome of an inspection.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    Damaged,
}

const READ_BYTES: usize = 4 * 1024 * 1024;

pub fn run(dir: &Path, per_batch: bool, out: &mut impl Write) -> io::Result<Verdict> {
    let mut segments: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", dir.display())))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let stem = path.file_name()?.to_str()?.strip_suffix(".log")?;
            let base = stem.parse().ok().filter(|_| stem.len() == 20)?;
            Some((base, path))
        })
        .collect();
    segments.sort();
    if segments.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no segment files (<base_offset>.log) in {}; pass a partition directory",
                dir.display()
            ),
        ));
    }
    let mut verdict = Verdict::Clean;
    for (base, path) in segments {
        let damaged = inspect_segment(base, &path, per_batch, out)?;
        if damaged {
            verdict = Verdict::Damaged;
        }
    }
    Ok(verdict)
}

/// Scans one segment; returns true if it ends in something other than a clean end.
fn inspect_segment(
    base: u64,
    path: &Path,
    per_batch: bool,
    out: &mut impl Write,
) -> io::Result<bool> {
    let mut file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut scanner = Scanner::new(base);
    // Bytes read but not yet consumed by the scanner; they start at `scanner.position`.
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_start = 0u64;
    let mut chunk = vec![0u8; READ_BYTES];
    let mut batches = 0u64;
    let mut lines = Vec::new();
    let stop = loop {
        let n = file.read(&mut chunk)?;
        pending.extend_from_slice(&chunk[..n]);
        let at_eof = n == 0;
        let stop = scanner.scan(&pending, at_eof, |b| {
            batches += 1;
            if per_batch {
                let h = &b.header;
                lines.push(format!(
                    "  offset {}..={} position {} size {} records {} epoch {} max_timestamp {}{}",
                    h.base_offset,
                    h.last_offset(),
                    b.position,
                    h.total_len(),
                    h.records_count,
                    h.partition_leader_epoch,
                    h.max_timestamp,
                    if h.is_control() { " control" } else { "" },
                ));
            }
        });
        for line in lines.drain(..) {
            writeln!(out, "{line}")?;
        }
        match stop {
            ScanStop::NeedMore { position, .. } => {
                pending.drain(..(position - pending_start) as usize);
                pending_start = position;
            }
            other => break other,
        }
    };
    let (end, damaged, note) = match &stop {
        ScanStop::End { position } => (*position, false, String::from("clean")),
        ScanStop::Invalid { position, reason } => (*position, true, format!("DAMAGED: {reason}")),
        ScanStop::NeedMore { position, .. } => {
            (*position, true, String::from("DAMAGED: truncated"))
        }
    };
    writeln!(
        out,
        "{}: base {base} batches {batches} next_offset {} valid_bytes {end} file_bytes {file_len} {note}",
        path.display(),
        scanner.next_offset,
    )?;
    Ok(damaged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use storage::batch::{assign, testing::seeded};

    #[test]
    fn reports_clean_and_damaged_segments() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        for i in 0..3u64 {
            let mut b = seeded(i, 2, 5000, 0);
            assign(&mut b, i * 2, 0);
            bytes.extend_from_slice(&b);
        }
        let path = dir.path().join("00000000000000000000.log");
        std::fs::write(&path, &bytes).unwrap();
        let mut out = Vec::new();
        assert_eq!(run(dir.path(), true, &mut out).unwrap(), Verdict::Clean);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("batches 3 next_offset 6"), "{text}");
        assert_eq!(text.lines().count(), 4);

        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let mut out = Vec::new();
        assert_eq!(run(dir.path(), false, &mut out).unwrap(), Verdict::Damaged);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("batches 2 next_offset 4"));
    }
}
