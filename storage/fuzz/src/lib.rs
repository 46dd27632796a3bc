//! Helpers shared by the storage fuzz targets and the seed generator.
//!
//! The `recover_log` target reads its input as a [`RecoverInput`]:
//!
//! ```text
//! byte 0: flags (FLAG_*)
//! then, for each side file whose flag is set, in the order state, index, timeindex:
//!     a length L (u16, little-endian), then L bytes (fewer if the input ends first)
//! the rest: the bytes of segment 00000000000000000000.log
//! ```
//!
//! With `FLAG_STATE` alone the state bytes are written to `partition.state` as they are (almost
//! always rejected by its CRC); with `FLAG_STATE_ENCODED` as well they are read as fields
//! ([`encode_state`]) and encoded with a valid CRC, so recovery takes its trusted path.

/// Write `partition.state`.
pub const FLAG_STATE: u8 = 1 << 0;
/// Encode the state bytes as a well-formed state file instead of writing them raw.
pub const FLAG_STATE_ENCODED: u8 = 1 << 1;
/// Write `00000000000000000000.index`.
pub const FLAG_INDEX: u8 = 1 << 2;
/// Write `00000000000000000000.timeindex`.
pub const FLAG_TIMEINDEX: u8 = 1 << 3;
/// Close the log cleanly before reopening it (otherwise it is dropped, as in a crash).
pub const FLAG_CLOSE: u8 = 1 << 4;
/// Append and flush one batch after recovery, and check that it survives the reopen.
pub const FLAG_APPEND: u8 = 1 << 5;
/// Read back with a 1-byte `max_bytes` (one batch per read) instead of 64 KiB.
pub const FLAG_SMALL_READS: u8 = 1 << 6;

pub const SEGMENT_FILE: &str = "00000000000000000000.log";
pub const INDEX_FILE: &str = "00000000000000000000.index";
pub const TIMEINDEX_FILE: &str = "00000000000000000000.timeindex";
pub const STATE_FILE: &str = "partition.state";

/// A `recover_log` input split into its parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoverInput<'a> {
    pub flags: u8,
    pub state: Option<&'a [u8]>,
    pub index: Option<&'a [u8]>,
    pub timeindex: Option<&'a [u8]>,
    pub segment: &'a [u8],
}

impl<'a> RecoverInput<'a> {
    pub fn parse(data: &'a [u8]) -> Self {
        let Some((&flags, mut rest)) = data.split_first() else {
            return RecoverInput::default();
        };
        let mut side = |flag: u8| -> Option<&'a [u8]> {
            if flags & flag == 0 {
                return None;
            }
            let len = match rest {
                [] => return None,
                [lo] => *lo as usize,
                [lo, hi, ..] => u16::from_le_bytes([*lo, *hi]) as usize,
            };
            let tail = &rest[rest.len().min(2)..];
            let (part, tail) = tail.split_at(len.min(tail.len()));
            rest = tail;
            Some(part)
        };
        let state = side(FLAG_STATE);
        let index = side(FLAG_INDEX);
        let timeindex = side(FLAG_TIMEINDEX);
        RecoverInput {
            flags,
            state,
            index,
            timeindex,
            segment: rest,
        }
    }

    /// The inverse of [`RecoverInput::parse`] (side parts longer than 64 KiB are cut).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.flags];
        for (flag, part) in [
            (FLAG_STATE, self.state),
            (FLAG_INDEX, self.index),
            (FLAG_TIMEINDEX, self.timeindex),
        ] {
            if self.flags & flag != 0 {
                let part = part.unwrap_or(&[]);
                let part = &part[..part.len().min(u16::MAX as usize)];
                out.extend_from_slice(&(part.len() as u16).to_le_bytes());
                out.extend_from_slice(part);
            }
        }
        out.extend_from_slice(self.segment);
        out
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Builds a well-formed `partition.state` from fuzz bytes (missing bytes read as zero):
/// log start u32 | recovery point u32 | high watermark u32 | epoch count (byte % 4) |
/// that many (epoch i32, start u32) | vote length byte (255 = no vote) and vote bytes.
///
/// The layout written is the one documented in `storage/src/state.rs` (version 1); if that
/// format changes, this must follow or the trusted recovery path goes unfuzzed.
pub fn encode_state(fields: &[u8]) -> Vec<u8> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Vec<u8> {
        let mut v = vec![0u8; n];
        for (i, b) in v.iter_mut().enumerate() {
            *b = fields.get(at + i).copied().unwrap_or(0);
        }
        at += n;
        v
    };
    let u32_of = |b: Vec<u8>| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let log_start = u32_of(take(4)) as u64;
    let recovery_point = u32_of(take(4)) as u64;
    let high_watermark = u32_of(take(4)) as u64;
    let count = take(1)[0] % 4;
    let mut epochs = Vec::new();
    for _ in 0..count {
        let epoch = u32_of(take(4)) as i32;
        let start = u32_of(take(4)) as u64;
        epochs.push((epoch, start));
    }
    let vote_len = take(1)[0];
    let vote = if vote_len == 255 {
        None
    } else {
        Some(take(vote_len as usize))
    };

    let mut out = Vec::new();
    out.extend_from_slice(b"SLST");
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&log_start.to_le_bytes());
    out.extend_from_slice(&recovery_point.to_le_bytes());
    out.extend_from_slice(&high_watermark.to_le_bytes());
    out.extend_from_slice(&(epochs.len() as u32).to_le_bytes());
    for (epoch, start) in epochs {
        out.extend_from_slice(&epoch.to_le_bytes());
        out.extend_from_slice(&start.to_le_bytes());
    }
    match vote {
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
        Some(v) => {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(&v);
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// The log configuration every fuzz target and seed uses: small enough that tiny inputs fill
/// several index intervals and read-ahead windows.
pub fn fuzz_config() -> storage::LogConfig {
    storage::LogConfig {
        segment_bytes: 1024 * 1024,
        index_interval_bytes: 256,
        cache_bytes: 64 * 1024,
        read_ahead_bytes: 4096,
        preallocate_bytes: 16 * 1024,
        ..storage::LogConfig::default()
    }
}

/// `count` valid batches with contiguous offsets from `base`, as they sit in a segment.
pub fn valid_segment(base: u64, records: &[i32], payload_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = base;
    for (i, &n) in records.iter().enumerate() {
        let mut b =
            storage::batch::testing::seeded(i as u64, n, payload_len, 1_700_000_000_000 + i as i64);
        storage::batch::assign(&mut b, offset, 1 + (i as i32) / 2);
        offset += n as u64;
        out.extend_from_slice(&b);
    }
    out
}

/// Where new temporary log directories go: `$SLUICE_FUZZ_TMPDIR`, else `/dev/shm` (tmpfs, so
/// the fdatasyncs recovery does cost nothing), else the system temp dir. Decided once.
pub fn temp_root() -> &'static std::path::Path {
    static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        if let Some(dir) = std::env::var_os("SLUICE_FUZZ_TMPDIR") {
            return dir.into();
        }
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
            return shm.to_path_buf();
        }
        std::env::temp_dir()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recover_input_round_trips() {
        let input = RecoverInput {
            flags: FLAG_STATE | FLAG_TIMEINDEX | FLAG_CLOSE,
            state: Some(b"abc"),
            index: None,
            timeindex: Some(b""),
            segment: b"segment bytes",
        };
        assert_eq!(RecoverInput::parse(&input.to_bytes()), input);
    }
}
