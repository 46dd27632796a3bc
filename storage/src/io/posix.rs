//! POSIX backend: `pread`/`pwrite`/`fdatasync` on tokio's blocking pool, so a shard thread
//! never blocks on the disk even without io_uring.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::{blocking, std_ops};
use crate::aligned::AlignedBuf;

pub(super) struct PosixFile {
    file: Arc<std::fs::File>,
}

impl PosixFile {
    pub(super) fn new(file: Arc<std::fs::File>) -> Self {
        PosixFile { file }
    }

    pub(super) async fn write_all_at(
        &self,
        buf: AlignedBuf,
        pos: u64,
    ) -> (io::Result<()>, AlignedBuf) {
        let file = self.file.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let result = file.write_all_at(buf.as_slice(), pos);
            (result, buf)
        })
        .await;
        match outcome {
            Ok(pair) => pair,
            // The closure cannot panic short of a bug in std; the buffer is lost with the task.
            Err(join) => (
                Err(io::Error::other(format!("write task failed: {join}"))),
                AlignedBuf::with_capacity(0),
            ),
        }
    }

    pub(super) async fn write_chunks_at(
        &self,
        chunks: Vec<AlignedBuf>,
        pos: u64,
    ) -> (io::Result<()>, Vec<AlignedBuf>) {
        let file = self.file.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut at = pos;
            for chunk in &chunks {
                if let Err(e) = file.write_all_at(chunk.as_slice(), at) {
                    return (Err(e), chunks);
                }
                at += chunk.len() as u64;
            }
            (Ok(()), chunks)
        })
        .await;
        match outcome {
            Ok(pair) => pair,
            Err(join) => (
                Err(io::Error::other(format!("write task failed: {join}"))),
                Vec::new(),
            ),
        }
    }

    pub(super) async fn read_at(
        &self,
        mut buf: AlignedBuf,
        pos: u64,
    ) -> (io::Result<usize>, AlignedBuf) {
        let file = self.file.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            let capacity = buf.capacity();
            buf.zero_extend_to(capacity);
            let mut filled = 0;
            let result = loop {
                match file.read_at(&mut buf.as_mut_slice()[filled..], pos + filled as u64) {
                    Ok(0) => break Ok(filled),
                    Ok(n) => {
                        filled += n;
                        if filled == capacity {
                            break Ok(filled);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            buf.truncate(*result.as_ref().unwrap_or(&0));
            (result, buf)
        })
        .await;
        match outcome {
            Ok(pair) => pair,
            Err(join) => (
                Err(io::Error::other(format!("read task failed: {join}"))),
                AlignedBuf::with_capacity(0),
            ),
        }
    }

    pub(super) async fn sync_data(&self) -> io::Result<()> {
        let file = self.file.clone();
        blocking(move || file.sync_data()).await
    }

    pub(super) async fn allocate(&self, pos: u64, len: u64) -> io::Result<()> {
        std_ops::allocate(self.file.clone(), pos, len).await
    }

    pub(super) async fn set_len(&self, len: u64) -> io::Result<()> {
        std_ops::set_len(self.file.clone(), len).await
    }

    pub(super) async fn len(&self) -> io::Result<u64> {
        std_ops::len(self.file.clone()).await
    }
}
