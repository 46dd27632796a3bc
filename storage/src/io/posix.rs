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
            let slices: Vec<&[u8]> = chunks.iter().map(|c| c.as_slice()).collect();
            let result = pwritev_all(&file, &slices, pos);
            drop(slices);
            (result, chunks)
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

/// Linux's limit on iovecs per call.
const IOV_MAX: usize = 1024;

/// Writes `slices` back to back from `pos` with `pwritev`: one system call for a whole flush,
/// which on an O_DSYNC file is also one sync (a write per chunk would be a sync per chunk).
fn pwritev_all(file: &std::fs::File, slices: &[&[u8]], mut pos: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut index = 0;
    let mut skip = 0; // bytes of slices[index] already written
    while index < slices.len() {
        let iovecs: Vec<libc::iovec> = slices[index..]
            .iter()
            .take(IOV_MAX)
            .enumerate()
            .map(|(i, s)| {
                let s = if i == 0 { &s[skip..] } else { s };
                libc::iovec {
                    iov_base: s.as_ptr() as *mut libc::c_void,
                    iov_len: s.len(),
                }
            })
            .collect();
        let offset =
            i64::try_from(pos).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: every iovec points into a slice borrowed for the whole call and gives its
        // exact length; the kernel only reads them. The descriptor is open while `file` lives.
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iovecs.as_ptr(),
                iovecs.len() as libc::c_int,
                offset,
            )
        };
        if written < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        let mut left = written as usize;
        pos += left as u64;
        while left > 0 && index < slices.len() {
            let remaining = slices[index].len() - skip;
            if left >= remaining {
                left -= remaining;
                index += 1;
                skip = 0;
            } else {
                skip += left;
                left = 0;
            }
        }
        // Empty slices at the front need no write.
        while index < slices.len() && slices[index].len() == skip {
            index += 1;
            skip = 0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn pwritev_all_writes_every_slice_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("f");
        let file = std::fs::File::create_new(&path).unwrap_or_else(|e| panic!("{e}"));
        let a = vec![1u8; 5000];
        let b: Vec<u8> = Vec::new();
        let c = vec![3u8; 1500];
        let many: Vec<Vec<u8>> = (0..1500).map(|i| vec![(i % 251) as u8; 3]).collect();
        let mut slices: Vec<&[u8]> = vec![&a, &b, &c];
        slices.extend(many.iter().map(|v| v.as_slice()));
        pwritev_all(&file, &slices, 100).unwrap_or_else(|e| panic!("{e}"));
        let expected: Vec<u8> = slices.concat();
        let mut back = vec![0u8; expected.len()];
        file.read_exact_at(&mut back, 100)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, expected);
    }
}
