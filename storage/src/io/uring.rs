//! io_uring backend (tokio-uring). Reads, writes and fdatasync go through the ring; metadata
//! calls io_uring lacks (ftruncate, fstat, fallocate on old kernels) go to the blocking pool on
//! a duplicate of the same descriptor.

use std::io;
use std::sync::Arc;

use super::std_ops;
use crate::aligned::AlignedBuf;

pub(super) struct UringFile {
    ring: tokio_uring::fs::File,
    std: Arc<std::fs::File>,
}

impl UringFile {
    pub(super) fn new(std: Arc<std::fs::File>) -> io::Result<Self> {
        let ring = tokio_uring::fs::File::from_std(std.try_clone()?);
        Ok(UringFile { ring, std })
    }

    pub(super) async fn write_all_at(
        &self,
        buf: AlignedBuf,
        pos: u64,
    ) -> (io::Result<()>, AlignedBuf) {
        self.ring.write_all_at(buf, pos).await
    }

    pub(super) async fn write_chunks_at(
        &self,
        chunks: Vec<AlignedBuf>,
        pos: u64,
    ) -> (io::Result<()>, Vec<AlignedBuf>) {
        if chunks.len() == 1 {
            let mut chunks = chunks;
            let Some(chunk) = chunks.pop() else {
                unreachable!()
            };
            let (res, chunk) = self.ring.write_all_at(chunk, pos).await;
            return (res, vec![chunk]);
        }
        let expected: usize = chunks.iter().map(|c| c.len()).sum();
        let (res, chunks) = self.ring.writev_at_all(chunks, Some(pos)).await;
        let res = match res {
            Ok(n) if n == expected => Ok(()),
            Ok(n) => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("wrote {n} of {expected} bytes"),
            )),
            Err(e) => Err(e),
        };
        (res, chunks)
    }

    pub(super) async fn read_at(
        &self,
        mut buf: AlignedBuf,
        pos: u64,
    ) -> (io::Result<usize>, AlignedBuf) {
        buf.clear();
        self.ring.read_at(buf, pos).await
    }

    pub(super) async fn sync_data(&self) -> io::Result<()> {
        self.ring.sync_data().await
    }

    pub(super) async fn allocate(&self, pos: u64, len: u64) -> io::Result<()> {
        match self.ring.fallocate(pos, len, 0).await {
            Err(e)
                if e.raw_os_error() == Some(libc::EOPNOTSUPP)
                    || e.raw_os_error() == Some(libc::EINVAL) =>
            {
                std_ops::allocate(self.std.clone(), pos, len).await
            }
            other => other,
        }
    }

    pub(super) async fn set_len(&self, len: u64) -> io::Result<()> {
        std_ops::set_len(self.std.clone(), len).await
    }

    pub(super) async fn len(&self) -> io::Result<u64> {
        std_ops::len(self.std.clone()).await
    }
}
