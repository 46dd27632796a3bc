//! The I/O backend: the one seam between the log engine and the operating system.
//!
//! Three implementations share one interface:
//! - [`Backend::Uring`]: io_uring through tokio-uring. Data files are opened with O_DIRECT, so
//!   writes go from our aligned buffers straight to the device and the kernel page cache holds
//!   nothing of ours (the log keeps its own tail cache).
//! - [`Backend::Posix`]: positioned `pread`/`pwrite` + `fdatasync` on the blocking thread pool,
//!   same files, same format. Chosen when io_uring cannot be set up (seccomp profiles in
//!   containers often block `io_uring_setup`) or by configuration.
//! - [`Backend::Faulty`]: wraps another backend and injects EIO/ENOSPC or a simulated crash that
//!   loses every write not yet synced. Tests only.
//!
//! Buffers are passed by value and handed back (io_uring owns them while the kernel does), and
//! every buffer is an [`AlignedBuf`], so the same call works with and without O_DIRECT.
//!
//! tokio-uring has no active maintainer, which is why nothing outside this module names it: a
//! raw `io-uring` backend (linked write+fsync, deeper queues) can replace it here alone.

mod faulty;
mod posix;
mod uring;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use faulty::{Fault, FaultyBackend};

use crate::aligned::AlignedBuf;

/// Which backend to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// io_uring when the kernel allows it, POSIX otherwise.
    #[default]
    Auto,
    IoUring,
    Posix,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "io_uring" | "io-uring" | "uring" => Ok(BackendChoice::IoUring),
            "posix" => Ok(BackendChoice::Posix),
            other => Err(format!(
                "unknown storage backend '{other}': use auto, io_uring or posix"
            )),
        }
    }
}

/// True when this process may create an io_uring instance (the kernel supports it and no
/// seccomp filter or `kernel.io_uring_disabled` sysctl blocks it).
pub fn io_uring_available() -> bool {
    io_uring::IoUring::new(4).is_ok()
}

/// A file-system backend. Cheap to clone; not `Send` (it lives on one shard's thread).
#[derive(Clone, Debug)]
pub enum Backend {
    Uring,
    Posix,
    Faulty(FaultyBackend),
}

/// How to open a file.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenMode {
    pub create: bool,
    /// Bypass the page cache (O_DIRECT). Falls back to buffered I/O, with a warning, on file
    /// systems that refuse O_DIRECT (tmpfs on old kernels, some overlay setups).
    pub direct: bool,
    /// Every write is durable when it completes (O_DSYNC), so the caller need not follow it
    /// with `fdatasync`. That saves a whole round trip per flush: io_uring cannot run an
    /// fsync inline and hands it to a worker thread, while an O_DSYNC write makes the block
    /// layer issue the cache flush itself when the write completes. The fault-injecting
    /// backend ignores this flag so that its simulated fdatasync failures stay reachable.
    pub durable_writes: bool,
}

impl Backend {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Uring => "io_uring",
            Backend::Posix => "posix",
            Backend::Faulty(f) => f.inner_name(),
        }
    }

    /// Opens (or creates) a file for reading and writing.
    pub async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<File> {
        match self {
            Backend::Faulty(f) => f.open(path, mode).await,
            Backend::Uring | Backend::Posix => {
                let (std_file, direct) = open_std(path.to_path_buf(), mode).await?;
                let durable_writes = mode.durable_writes;
                let std_file = Arc::new(std_file);
                let inner = match self {
                    Backend::Uring => FileInner::Uring(uring::UringFile::new(std_file)?),
                    _ => FileInner::Posix(posix::PosixFile::new(std_file)),
                };
                Ok(File {
                    inner,
                    path: path.to_path_buf(),
                    direct,
                    durable_writes,
                })
            }
        }
    }

    /// Removes a file; a missing file is not an error.
    pub async fn remove_file(&self, path: &Path) -> io::Result<()> {
        if let Backend::Faulty(f) = self {
            f.check_alive()?;
        }
        let path = path.to_path_buf();
        blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        })
        .await
    }

    /// Renames a file (atomic within one file system).
    pub async fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        if let Backend::Faulty(f) = self {
            f.check_alive()?;
        }
        let (from, to) = (from.to_path_buf(), to.to_path_buf());
        blocking(move || std::fs::rename(from, to)).await
    }

    /// Makes directory entries (created, renamed, removed files) durable.
    pub async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if let Backend::Faulty(f) = self {
            f.check_alive()?;
            f.dir_synced(dir);
        }
        let dir = dir.to_path_buf();
        blocking(move || std::fs::File::open(dir)?.sync_all()).await
    }

    /// Creates a directory and its parents.
    pub async fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let dir = dir.to_path_buf();
        blocking(move || std::fs::create_dir_all(dir)).await
    }

    /// Lists the file names in a directory.
    pub async fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let dir = dir.to_path_buf();
        blocking(move || {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                if let Some(name) = entry?.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
            Ok(names)
        })
        .await
    }
}

/// Runs a blocking std call off the shard thread.
pub(crate) async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(join) => Err(io::Error::other(format!(
            "blocking I/O task failed: {join}"
        ))),
    }
}

async fn open_std(path: PathBuf, mode: OpenMode) -> io::Result<(std::fs::File, bool)> {
    blocking(move || {
        use std::os::unix::fs::OpenOptionsExt;
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create(mode.create);
        if mode.durable_writes {
            options.custom_flags(libc::O_DSYNC);
        }
        if mode.direct {
            let mut direct = options.clone();
            // custom_flags replaces what was set before, so O_DSYNC is repeated here.
            let dsync = if mode.durable_writes {
                libc::O_DSYNC
            } else {
                0
            };
            direct.custom_flags(libc::O_DIRECT | dsync);
            match direct.open(&path) {
                Ok(file) => return Ok((file, true)),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::warn!(
                        path = %path.display(),
                        "file system refuses O_DIRECT; using buffered I/O for this file"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Ok((options.open(&path)?, false))
    })
    .await
}

/// An open file on some backend.
pub struct File {
    inner: FileInner,
    path: PathBuf,
    direct: bool,
    durable_writes: bool,
}

enum FileInner {
    Uring(uring::UringFile),
    Posix(posix::PosixFile),
    Faulty(faulty::FaultyFile),
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("path", &self.path)
            .field("direct", &self.direct)
            .finish()
    }
}

impl File {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when the file bypasses the page cache; then offsets, lengths and buffer addresses
    /// of every read and write must be multiples of `DIRECT_IO_ALIGNMENT` (our `AlignedBuf`s
    /// and aligned positions guarantee that).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// True when a completed write is already durable (opened with
    /// [`OpenMode::durable_writes`] on a real backend): no `fdatasync` needs to follow it.
    pub fn writes_are_durable(&self) -> bool {
        self.durable_writes
    }

    /// Writes all of `buf` at `pos`.
    pub async fn write_all_at(&self, buf: AlignedBuf, pos: u64) -> (io::Result<()>, AlignedBuf) {
        match &self.inner {
            FileInner::Uring(f) => f.write_all_at(buf, pos).await,
            FileInner::Posix(f) => f.write_all_at(buf, pos).await,
            FileInner::Faulty(f) => f.write_all_at(buf, pos).await,
        }
    }

    /// Writes `chunks` back to back from `pos` with as few system calls as the backend allows
    /// (one `writev` on io_uring).
    pub async fn write_chunks_at(
        &self,
        chunks: Vec<AlignedBuf>,
        pos: u64,
    ) -> (io::Result<()>, Vec<AlignedBuf>) {
        match &self.inner {
            FileInner::Uring(f) => f.write_chunks_at(chunks, pos).await,
            FileInner::Posix(f) => f.write_chunks_at(chunks, pos).await,
            FileInner::Faulty(f) => f.write_chunks_at(chunks, pos).await,
        }
    }

    /// Reads up to `buf.capacity()` bytes at `pos` into the start of `buf` (its length is set to
    /// the bytes read; fewer than asked only at end of file).
    pub async fn read_at(&self, buf: AlignedBuf, pos: u64) -> (io::Result<usize>, AlignedBuf) {
        let (res, buf) = match &self.inner {
            FileInner::Uring(f) => f.read_at(buf, pos).await,
            FileInner::Posix(f) => f.read_at(buf, pos).await,
            FileInner::Faulty(f) => f.read_at(buf, pos).await,
        };
        if let Ok(n) = res {
            crate::metrics::read_from_disk(n);
        }
        (res, buf)
    }

    /// `fdatasync`: everything written so far, and the file size, are on stable storage.
    pub async fn sync_data(&self) -> io::Result<()> {
        match &self.inner {
            FileInner::Uring(f) => f.sync_data().await,
            FileInner::Posix(f) => f.sync_data().await,
            FileInner::Faulty(f) => f.sync_data().await,
        }
    }

    /// Reserves blocks for `[pos, pos + len)` and extends the file size to cover it
    /// (`fallocate` mode 0), so later writes in that range need no allocation metadata.
    pub async fn allocate(&self, pos: u64, len: u64) -> io::Result<()> {
        match &self.inner {
            FileInner::Uring(f) => f.allocate(pos, len).await,
            FileInner::Posix(f) => f.allocate(pos, len).await,
            FileInner::Faulty(f) => f.allocate(pos, len).await,
        }
    }

    /// Truncates or extends the file to `len` bytes.
    pub async fn set_len(&self, len: u64) -> io::Result<()> {
        match &self.inner {
            FileInner::Uring(f) => f.set_len(len).await,
            FileInner::Posix(f) => f.set_len(len).await,
            FileInner::Faulty(f) => f.set_len(len).await,
        }
    }

    /// The current file size.
    pub async fn len(&self) -> io::Result<u64> {
        match &self.inner {
            FileInner::Uring(f) => f.len().await,
            FileInner::Posix(f) => f.len().await,
            FileInner::Faulty(f) => f.len().await,
        }
    }
}

/// Shared by the uring and POSIX backends for metadata calls, which io_uring cannot do.
pub(crate) mod std_ops {
    use super::*;

    pub async fn allocate(file: Arc<std::fs::File>, pos: u64, len: u64) -> io::Result<()> {
        blocking(move || fallocate(&file, pos, len)).await
    }

    pub async fn set_len(file: Arc<std::fs::File>, len: u64) -> io::Result<()> {
        blocking(move || file.set_len(len)).await
    }

    pub async fn len(file: Arc<std::fs::File>) -> io::Result<u64> {
        blocking(move || Ok(file.metadata()?.len())).await
    }

    pub fn fallocate(file: &std::fs::File, pos: u64, len: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (Ok(pos), Ok(len)) = (i64::try_from(pos), i64::try_from(len)) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: the fd is open for the lifetime of `file`; fallocate takes no pointers.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, pos, len) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EOPNOTSUPP) {
            // Some file systems cannot preallocate; the write will allocate instead.
            let current = file.metadata()?.len();
            if current < (pos + len) as u64 {
                file.set_len((pos + len) as u64)?;
            }
            return Ok(());
        }
        Err(err)
    }
}
