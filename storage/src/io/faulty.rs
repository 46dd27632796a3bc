//! A fault-injecting backend for tests.
//!
//! It wraps a real backend and can
//! - fail the n-th write, fdatasync or fallocate with an errno of the test's choosing (EIO,
//!   ENOSPC, ...), and
//! - simulate a power cut: every change made to a file since its last `sync_data` is undone on
//!   disk (writes rolled back, size restored), files created since their directory was last
//!   synced disappear, and every later call fails with EIO until [`FaultyBackend::reset`].
//!
//! Undo records are captured with plain blocking std calls: this backend exists for tests, where
//! simplicity beats not blocking the runtime.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{Backend, File, FileInner, OpenMode};
use crate::aligned::AlignedBuf;

/// Which operation a planned fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    Write,
    Sync,
    Allocate,
}

#[derive(Debug, Default)]
struct State {
    /// Per operation: the planned failure.
    planned: RefCell<HashMap<Fault, Plan>>,
    /// Per file: what to restore if the "power" fails, in the order the changes happened.
    undo: RefCell<HashMap<PathBuf, Vec<Undo>>>,
    created_unsynced: RefCell<Vec<PathBuf>>,
    crashed: Cell<bool>,
}

#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Calls to let through first.
    skip: u32,
    errno: i32,
    /// Keep failing every later call too (until `clear_faults`).
    persistent: bool,
}

#[derive(Debug)]
struct Undo {
    pos: u64,
    old_bytes: Vec<u8>,
    old_len: u64,
}

/// The fault-injecting backend; clones share one plan.
#[derive(Clone)]
pub struct FaultyBackend {
    inner: Box<Backend>,
    state: Rc<State>,
}

impl fmt::Debug for FaultyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyBackend")
            .field("inner", &self.inner.name())
            .finish()
    }
}

impl FaultyBackend {
    /// Wraps `inner` (a real backend).
    pub fn new(inner: Backend) -> Self {
        FaultyBackend {
            inner: Box::new(inner),
            state: Rc::default(),
        }
    }

    /// This wrapper as a [`Backend`] to open logs with.
    pub fn backend(&self) -> Backend {
        Backend::Faulty(self.clone())
    }

    pub(super) fn inner_name(&self) -> &'static str {
        self.inner.name()
    }

    /// Lets `skip` calls of `op` through, then fails the next one with `errno`.
    pub fn fail(&self, op: Fault, skip: u32, errno: i32) {
        self.state.planned.borrow_mut().insert(
            op,
            Plan {
                skip,
                errno,
                persistent: false,
            },
        );
    }

    /// Fails every call of `op` with `errno` until [`FaultyBackend::clear_faults`].
    pub fn fail_always(&self, op: Fault, errno: i32) {
        self.state.planned.borrow_mut().insert(
            op,
            Plan {
                skip: 0,
                errno,
                persistent: true,
            },
        );
    }

    /// Cancels planned faults.
    pub fn clear_faults(&self) {
        self.state.planned.borrow_mut().clear();
    }

    /// Simulates a power cut: undoes every unsynced change on disk and fails all later calls.
    pub fn crash(&self) -> io::Result<()> {
        self.state.crashed.set(true);
        let undo = std::mem::take(&mut *self.state.undo.borrow_mut());
        for (path, changes) in undo {
            let file = match std::fs::OpenOptions::new().write(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for change in changes.iter().rev() {
                file.set_len(
                    change
                        .old_len
                        .max(change.pos + change.old_bytes.len() as u64),
                )?;
                file.write_all_at(&change.old_bytes, change.pos)?;
                file.set_len(change.old_len)?;
            }
            file.sync_all()?;
        }
        for path in std::mem::take(&mut *self.state.created_unsynced.borrow_mut()) {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Back to normal after a crash: no plan, no undo records, calls succeed.
    pub fn reset(&self) {
        self.state.crashed.set(false);
        self.state.planned.borrow_mut().clear();
        self.state.undo.borrow_mut().clear();
        self.state.created_unsynced.borrow_mut().clear();
    }

    pub(super) fn check_alive(&self) -> io::Result<()> {
        if self.state.crashed.get() {
            return Err(io::Error::other("simulated crash: the process is gone"));
        }
        Ok(())
    }

    fn take_fault(&self, op: Fault) -> io::Result<()> {
        self.check_alive()?;
        let mut planned = self.state.planned.borrow_mut();
        if let Some(plan) = planned.get_mut(&op) {
            if plan.skip == 0 {
                let plan = *plan;
                if !plan.persistent {
                    planned.remove(&op);
                }
                return Err(io::Error::from_raw_os_error(plan.errno));
            }
            plan.skip -= 1;
        }
        Ok(())
    }

    pub(super) fn dir_synced(&self, dir: &Path) {
        self.state
            .created_unsynced
            .borrow_mut()
            .retain(|p| p.parent() != Some(dir));
    }

    pub(super) async fn open(&self, path: &Path, mode: OpenMode) -> io::Result<File> {
        self.check_alive()?;
        // Durability is what this backend simulates, through `sync_data`; a write that is
        // durable by itself would bypass the simulated faults and crash losses.
        let mode = OpenMode {
            durable_writes: false,
            ..mode
        };
        let existed = path.exists();
        let inner = Box::pin(self.inner.open(path, mode)).await?;
        if !existed {
            self.state
                .created_unsynced
                .borrow_mut()
                .push(path.to_path_buf());
        }
        let direct = inner.direct;
        let file = FaultyFile {
            inner: Box::new(inner),
            state: self.clone(),
        };
        Ok(File {
            inner: FileInner::Faulty(file),
            path: path.to_path_buf(),
            direct,
            durable_writes: false,
        })
    }

    /// Records how to undo a change of `[pos, pos + len)` (and of the size) in `path`.
    fn record_undo(&self, path: &Path, pos: u64, len: u64) -> io::Result<()> {
        let file = std::fs::File::open(path)?;
        let old_len = file.metadata()?.len();
        let end = (pos + len).min(old_len);
        let mut old_bytes = vec![0u8; end.saturating_sub(pos) as usize];
        file.read_exact_at(&mut old_bytes, pos)?;
        self.state
            .undo
            .borrow_mut()
            .entry(path.to_path_buf())
            .or_default()
            .push(Undo {
                pos,
                old_bytes,
                old_len,
            });
        Ok(())
    }
}

pub(super) struct FaultyFile {
    inner: Box<File>,
    state: FaultyBackend,
}

impl FaultyFile {
    fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(super) async fn write_all_at(
        &self,
        buf: AlignedBuf,
        pos: u64,
    ) -> (io::Result<()>, AlignedBuf) {
        if let Err(e) = self.state.take_fault(Fault::Write) {
            return (Err(e), buf);
        }
        if let Err(e) = self.state.record_undo(self.path(), pos, buf.len() as u64) {
            return (Err(e), buf);
        }
        Box::pin(self.inner.write_all_at(buf, pos)).await
    }

    pub(super) async fn write_chunks_at(
        &self,
        chunks: Vec<AlignedBuf>,
        pos: u64,
    ) -> (io::Result<()>, Vec<AlignedBuf>) {
        if let Err(e) = self.state.take_fault(Fault::Write) {
            return (Err(e), chunks);
        }
        let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
        if let Err(e) = self.state.record_undo(self.path(), pos, len) {
            return (Err(e), chunks);
        }
        Box::pin(self.inner.write_chunks_at(chunks, pos)).await
    }

    pub(super) async fn read_at(
        &self,
        buf: AlignedBuf,
        pos: u64,
    ) -> (io::Result<usize>, AlignedBuf) {
        if let Err(e) = self.state.check_alive() {
            return (Err(e), buf);
        }
        Box::pin(self.inner.read_at(buf, pos)).await
    }

    pub(super) async fn sync_data(&self) -> io::Result<()> {
        self.state.take_fault(Fault::Sync)?;
        Box::pin(self.inner.sync_data()).await?;
        self.state.state.undo.borrow_mut().remove(self.path());
        Ok(())
    }

    pub(super) async fn allocate(&self, pos: u64, len: u64) -> io::Result<()> {
        self.state.take_fault(Fault::Allocate)?;
        self.state.record_undo(self.path(), pos, 0)?;
        Box::pin(self.inner.allocate(pos, len)).await
    }

    pub(super) async fn set_len(&self, len: u64) -> io::Result<()> {
        self.state.check_alive()?;
        let current = Box::pin(self.inner.len()).await?;
        self.state
            .record_undo(self.path(), len.min(current), current.saturating_sub(len))?;
        Box::pin(self.inner.set_len(len)).await
    }

    pub(super) async fn len(&self) -> io::Result<u64> {
        self.state.check_alive()?;
        Box::pin(self.inner.len()).await
    }
}

impl FaultyBackend {
    /// Whether the wrapped backend needs an io_uring runtime.
    pub fn inner_is_uring(&self) -> bool {
        match &*self.inner {
            Backend::Uring => true,
            Backend::Posix => false,
            Backend::Faulty(f) => f.inner_is_uring(),
        }
    }
}
