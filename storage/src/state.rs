//! The partition state file: the small durable record kept beside the segments.
//!
//! It holds the log start offset, the recovery point (segments below it are closed, synced and
//! indexed, so recovery skips them), the high watermark, the leader-epoch checkpoint
//! (epoch -> first offset, as Kafka's `leader-epoch-checkpoint`), and an opaque vote for Raft.
//!
//! It is replaced atomically: write `partition.state.tmp`, fdatasync, rename over
//! `partition.state`, fsync the directory. A reader therefore sees the old or the new version,
//! never a mix; a CRC32C still guards against media corruption.
//!
//! Layout (little-endian): magic `SLST` | version u16 | reserved u16 | log_start u64 |
//! recovery_point u64 | high_watermark u64 | epochs u32 | (epoch i32, start u64)* |
//! vote_len u32 | vote bytes | crc32c u32 over everything before it.

use std::path::Path;

use bytes::Bytes;

use crate::aligned::AlignedBuf;
use crate::error::{Result, StorageError};
use crate::io::{Backend, OpenMode};
use crate::limits::{EPOCH_ENTRIES_MAX, STATE_FILE_BYTES_MAX, VOTE_BYTES_MAX};

pub(crate) const STATE_FILE: &str = "partition.state";
const STATE_TMP_FILE: &str = "partition.state.tmp";
const MAGIC: &[u8; 4] = b"SLST";
const VERSION: u16 = 1;

/// One leader epoch and the first offset written in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartitionState {
    pub log_start_offset: u64,
    pub recovery_point: u64,
    pub high_watermark: u64,
    pub epochs: Vec<EpochEntry>,
    pub vote: Option<Bytes>,
}

impl PartitionState {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(48 + self.epochs.len() * 12);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.log_start_offset.to_le_bytes());
        out.extend_from_slice(&self.recovery_point.to_le_bytes());
        out.extend_from_slice(&self.high_watermark.to_le_bytes());
        out.extend_from_slice(&(self.epochs.len() as u32).to_le_bytes());
        for e in &self.epochs {
            out.extend_from_slice(&e.epoch.to_le_bytes());
            out.extend_from_slice(&e.start_offset.to_le_bytes());
        }
        let vote = self.vote.as_deref().unwrap_or(&[]);
        let vote_len = if self.vote.is_some() {
            vote.len() as u32
        } else {
            u32::MAX
        };
        out.extend_from_slice(&vote_len.to_le_bytes());
        out.extend_from_slice(vote);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Decodes a state file; every length is checked before use.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() < 4 {
            return Err("state file too short".into());
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(body) != stored {
            return Err("state file CRC mismatch".into());
        }
        let mut r = Reader { bytes: body };
        if r.take(4)? != MAGIC {
            return Err("state file magic mismatch".into());
        }
        let version = r.u16()?;
        if version != VERSION {
            return Err(format!("state file version {version} is not {VERSION}"));
        }
        r.u16()?;
        let log_start_offset = r.u64()?;
        let recovery_point = r.u64()?;
        let high_watermark = r.u64()?;
        let count = r.u32()? as usize;
        if count > EPOCH_ENTRIES_MAX {
            return Err(format!("state file claims {count} epochs"));
        }
        let mut epochs = Vec::with_capacity(count.min(r.bytes.len() / 12));
        for _ in 0..count {
            let epoch = r.u32()? as i32;
            let start_offset = r.u64()?;
            epochs.push(EpochEntry {
                epoch,
                start_offset,
            });
        }
        let vote_len = r.u32()?;
        let vote = if vote_len == u32::MAX {
            None
        } else if vote_len as usize > VOTE_BYTES_MAX {
            return Err(format!("state file vote of {vote_len} bytes"));
        } else {
            Some(Bytes::copy_from_slice(r.take(vote_len as usize)?))
        };
        if !r.bytes.is_empty() {
            return Err("trailing bytes in state file".into());
        }
        Ok(PartitionState {
            log_start_offset,
            recovery_point,
            high_watermark,
            epochs,
            vote,
        })
    }

    /// Reads the state file of `dir`; `Ok(None)` if there is none or it is unusable (then the
    /// caller recovers everything from the segments and says so in the log).
    pub async fn load(backend: &Backend, dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(STATE_FILE);
        let file = match backend
            .open(
                &path,
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
            .map_err(|e| StorageError::io("stat state file", e))?;
        if len as usize > STATE_FILE_BYTES_MAX {
            tracing::warn!(path = %path.display(), len, "state file too large; ignoring it");
            return Ok(None);
        }
        let (res, buf) = file
            .read_at(AlignedBuf::with_capacity(len as usize), 0)
            .await;
        let n = res.map_err(|e| StorageError::io("read state file", e))?;
        match Self::decode(&buf.as_slice()[..n.min(len as usize)]) {
            Ok(state) => Ok(Some(state)),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "state file unusable; recovering from segments");
                Ok(None)
            }
        }
    }

    /// Atomically replaces the state file.
    pub async fn store(&self, backend: &Backend, dir: &Path) -> Result<()> {
        let tmp = dir.join(STATE_TMP_FILE);
        let encoded = self.encode();
        let ctx = |what: &str| format!("{what} {}", tmp.display());
        backend
            .remove_file(&tmp)
            .await
            .map_err(|e| StorageError::io(ctx("remove"), e))?;
        let file = backend
            .open(
                &tmp,
                OpenMode {
                    create: true,
                    direct: false,
                    durable_writes: false,
                },
            )
            .await
            .map_err(|e| StorageError::io(ctx("create"), e))?;
        let mut buf = AlignedBuf::with_capacity(encoded.len());
        buf.extend_from_slice(&encoded);
        let (res, _) = file.write_all_at(buf, 0).await;
        res.map_err(|e| StorageError::io(ctx("write"), e))?;
        file.sync_data()
            .await
            .map_err(|e| StorageError::io(ctx("sync"), e))?;
        drop(file);
        backend
            .rename(&tmp, &dir.join(STATE_FILE))
            .await
            .map_err(|e| StorageError::io(ctx("rename"), e))?;
        backend
            .sync_dir(dir)
            .await
            .map_err(|e| StorageError::io(ctx("sync dir of"), e))
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("state file truncated".into());
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn u16(&mut self) -> std::result::Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let state = PartitionState {
            log_start_offset: 5,
            recovery_point: 100,
            high_watermark: 90,
            epochs: vec![
                EpochEntry {
                    epoch: 1,
                    start_offset: 0,
                },
                EpochEntry {
                    epoch: 3,
                    start_offset: 50,
                },
            ],
            vote: Some(Bytes::from_static(b"vote")),
        };
        let bytes = state.encode();
        assert_eq!(PartitionState::decode(&bytes).unwrap(), state);
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(
                PartitionState::decode(&bad).is_err(),
                "flip at {i} accepted"
            );
        }
        for cut in 0..bytes.len() {
            assert!(PartitionState::decode(&bytes[..cut]).is_err());
        }
    }
}
